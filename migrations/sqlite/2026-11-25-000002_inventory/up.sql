-- Stock: one level per book, the append-only ledger of every change to on_hand, and receipts.

CREATE TABLE stock_levels (
    book_id BIGINT PRIMARY KEY REFERENCES books (id) ON DELETE CASCADE,
    on_hand BIGINT NOT NULL DEFAULT 0,
    reserved BIGINT NOT NULL DEFAULT 0,
    reorder_point BIGINT NOT NULL DEFAULT 0,
    reorder_quantity BIGINT NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1,
    updated_at TIMESTAMP NOT NULL,
    CHECK (reserved >= 0 AND on_hand >= reserved),
    CHECK (reorder_point >= 0 AND reorder_quantity >= 0)
);
-- Every book existing before this migration starts with zero stock (CURRENT_TIMESTAMP is UTC).
INSERT INTO stock_levels (book_id, updated_at)
SELECT id, CURRENT_TIMESTAMP FROM books;

-- Append-only: rows are never updated or deleted. on_hand of a book equals the sum of its rows.
-- No cascade from books: a book with movements cannot be deleted (it is archived instead).
CREATE TABLE stock_movements (
    id INTEGER PRIMARY KEY,
    book_id BIGINT NOT NULL REFERENCES books (id),
    quantity BIGINT NOT NULL CHECK (quantity <> 0),
    kind TEXT NOT NULL CHECK (kind IN ('receipt', 'sale', 'return', 'adjustment', 'stocktake')),
    -- What caused it, such as `receipt:12` or `order:40`.
    reference TEXT,
    reason TEXT,
    note TEXT,
    unit_cost_cents BIGINT,
    user_id BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX stock_movements_book_idx ON stock_movements (book_id, created_at);
CREATE INDEX stock_movements_kind_idx ON stock_movements (kind, created_at);
-- The unfiltered ledger, newest first.
CREATE INDEX stock_movements_created_idx ON stock_movements (created_at, id);

-- A delivery of stock; its lines are the `receipt` movements referencing `receipt:<id>`.
CREATE TABLE stock_receipts (
    id INTEGER PRIMARY KEY,
    supplier TEXT,
    note TEXT,
    user_id BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL
);
