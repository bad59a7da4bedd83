DROP TABLE refunds;
DROP TABLE return_lines;
DROP TABLE returns;
ALTER TABLE order_lines DROP COLUMN returned_quantity;
