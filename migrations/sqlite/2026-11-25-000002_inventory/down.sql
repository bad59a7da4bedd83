DROP TABLE stock_receipts;
DROP TABLE stock_movements;
DROP TABLE stock_levels;
