-- The stock room besides selling: suppliers and purchase orders, stocktakes, low-stock alerts, and
-- the webhook outbox that tells the outside world what happened.

-- Moving average unit cost of what is on hand (NULL until a receipt with a cost), so that stock
-- can be valued; and the book's unresolved low-stock alert, so that every stock change knows
-- from the row it just updated whether an alert must open or resolve.
ALTER TABLE stock_levels ADD COLUMN avg_unit_cost_cents BIGINT CHECK (avg_unit_cost_cents >= 0);
ALTER TABLE stock_levels ADD COLUMN alert_id BIGINT;

CREATE TABLE suppliers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    address TEXT,
    lead_time_days INTEGER NOT NULL DEFAULT 7 CHECK (lead_time_days BETWEEN 0 AND 365),
    notes TEXT,
    -- A supplier with purchase orders is archived rather than deleted.
    archived_at TIMESTAMP,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- Two active suppliers never share a name (case-insensitive).
CREATE UNIQUE INDEX suppliers_active_name_idx ON suppliers (LOWER(name)) WHERE archived_at IS NULL;

CREATE TABLE purchase_orders (
    id INTEGER PRIMARY KEY,
    supplier_id BIGINT NOT NULL REFERENCES suppliers (id),
    status TEXT NOT NULL
        CHECK (status IN ('draft', 'submitted', 'partially_received', 'received', 'cancelled')),
    currency TEXT NOT NULL,
    expected_on DATE,
    note TEXT,
    total_cents BIGINT NOT NULL CHECK (total_cents >= 0),
    version INTEGER NOT NULL DEFAULT 1,
    created_by BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    submitted_at TIMESTAMP,
    received_at TIMESTAMP,
    cancelled_at TIMESTAMP
);
CREATE INDEX purchase_orders_supplier_idx ON purchase_orders (supplier_id, id);
CREATE INDEX purchase_orders_status_idx ON purchase_orders (status, id);

CREATE TABLE purchase_order_lines (
    id INTEGER PRIMARY KEY,
    purchase_order_id BIGINT NOT NULL REFERENCES purchase_orders (id) ON DELETE CASCADE,
    book_id BIGINT NOT NULL REFERENCES books (id),
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    -- May exceed quantity only through an explicit over-receipt.
    received_quantity BIGINT NOT NULL DEFAULT 0 CHECK (received_quantity >= 0),
    unit_cost_cents BIGINT NOT NULL CHECK (unit_cost_cents >= 0),
    UNIQUE (purchase_order_id, book_id)
);
-- on_order of a book: the outstanding quantities of its lines on open purchase orders.
CREATE INDEX purchase_order_lines_book_idx ON purchase_order_lines (book_id);

-- A receipt made against a purchase order names it.
ALTER TABLE stock_receipts ADD COLUMN purchase_order_id BIGINT REFERENCES purchase_orders (id);

CREATE TABLE stocktakes (
    id INTEGER PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('open', 'completed', 'cancelled')),
    -- What it covers: every book, a category with its sub-categories, or a list of books.
    scope TEXT NOT NULL CHECK (scope IN ('all', 'category', 'books')),
    category_id BIGINT REFERENCES categories (id),
    note TEXT,
    -- Set at completion: whether uncounted lines were zeroed or left alone.
    zero_uncounted BOOLEAN,
    version INTEGER NOT NULL DEFAULT 1,
    created_by BIGINT REFERENCES users (id),
    completed_by BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    completed_at TIMESTAMP,
    cancelled_at TIMESTAMP
);
CREATE INDEX stocktakes_status_idx ON stocktakes (status, id);

CREATE TABLE stocktake_lines (
    stocktake_id BIGINT NOT NULL REFERENCES stocktakes (id) ON DELETE CASCADE,
    book_id BIGINT NOT NULL REFERENCES books (id),
    -- on_hand when the stocktake opened.
    snapshot_on_hand BIGINT NOT NULL,
    -- The last count (NULL until counted), and on_hand at the moment it was recorded: the
    -- snapshot plus every movement since, which is what the count is compared with.
    counted BIGINT CHECK (counted >= 0),
    expected_at_count BIGINT,
    counted_at TIMESTAMP,
    counted_by BIGINT REFERENCES users (id),
    -- The stocktake movement posted at completion, if any.
    posted_quantity BIGINT,
    -- TRUE while the stocktake is open: at most one open stocktake covers a book.
    is_open BOOLEAN NOT NULL DEFAULT TRUE,
    PRIMARY KEY (stocktake_id, book_id)
);
CREATE UNIQUE INDEX stocktake_lines_open_book_idx ON stocktake_lines (book_id) WHERE is_open;

CREATE TABLE stock_alerts (
    id INTEGER PRIMARY KEY,
    book_id BIGINT NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    -- open -> acknowledged (staff) -> resolved (stock went back above the reorder point).
    status TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    -- The book's figures when the alert opened.
    on_hand BIGINT NOT NULL,
    reserved BIGINT NOT NULL,
    available BIGINT NOT NULL,
    reorder_point BIGINT NOT NULL,
    opened_at TIMESTAMP NOT NULL,
    acknowledged_at TIMESTAMP,
    acknowledged_by BIGINT REFERENCES users (id),
    resolved_at TIMESTAMP
);
CREATE UNIQUE INDEX stock_alerts_one_unresolved_idx ON stock_alerts (book_id)
    WHERE status <> 'resolved';
CREATE INDEX stock_alerts_status_idx ON stock_alerts (status, id);

CREATE TABLE webhook_endpoints (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT,
    -- Comma-separated event types this endpoint receives.
    event_types TEXT NOT NULL,
    -- HMAC-SHA256 key; shown once when the endpoint is created.
    secret TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- The outbox: written in the transaction of the change that caused the event, delivered after
-- commit. payload is the exact JSON body sent (and signed) on every attempt.
CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- One event to one endpoint. A worker claims a pending delivery by moving next_attempt_at past
-- the attempt's lease (and bumping attempts, which doubles as the claim token), so that replicas
-- never send the same delivery at the same time, and a crashed worker's claim runs out.
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    endpoint_id BIGINT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_status_code INTEGER,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    completed_at TIMESTAMP
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id);

CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY,
    delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at TIMESTAMP NOT NULL,
    status_code INTEGER,
    latency_ms BIGINT NOT NULL,
    error TEXT
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);
