-- Orders: the order, its lines (snapshots of the book at the time of sale), its status history,
-- and the idempotency keys that make POST /orders safe to retry.

CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    -- NULL: a walk-in sale.
    customer_id BIGINT REFERENCES customers (id),
    status TEXT NOT NULL CHECK (status IN ('pending_payment', 'paid', 'fulfilled', 'completed',
                                           'cancelled', 'partially_returned', 'returned')),
    currency TEXT NOT NULL,
    subtotal_cents BIGINT NOT NULL CHECK (subtotal_cents >= 0),
    total_cents BIGINT NOT NULL CHECK (total_cents >= 0),
    -- The delivery address as JSON text.
    shipping_address TEXT,
    notes TEXT,
    -- An unpaid order past this time is cancelled by the expiry task.
    expires_at TIMESTAMP NOT NULL,
    created_by BIGINT NOT NULL REFERENCES users (id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX orders_customer_idx ON orders (customer_id, created_at);
CREATE INDEX orders_status_idx ON orders (status, created_at);
CREATE INDEX orders_created_idx ON orders (created_at, id);
-- The expiry task's scan.
CREATE INDEX orders_pending_expiry_idx ON orders (expires_at) WHERE status = 'pending_payment';

CREATE TABLE order_lines (
    id INTEGER PRIMARY KEY,
    order_id BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    book_id BIGINT NOT NULL REFERENCES books (id),
    title TEXT NOT NULL,
    isbn TEXT NOT NULL,
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    quantity BIGINT NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    line_total_cents BIGINT NOT NULL CHECK (line_total_cents >= 0),
    position INTEGER NOT NULL,
    UNIQUE (order_id, position),
    UNIQUE (order_id, book_id)
);
CREATE INDEX order_lines_book_idx ON order_lines (book_id);

-- Append-only status history.
CREATE TABLE order_events (
    id INTEGER PRIMARY KEY,
    order_id BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    from_status TEXT,
    to_status TEXT NOT NULL,
    actor_user_id BIGINT REFERENCES users (id),
    note TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX order_events_order_idx ON order_events (order_id, id);

-- One row per (caller, Idempotency-Key): status_code is NULL while the first request runs.
CREATE TABLE idempotency_keys (
    id INTEGER PRIMARY KEY,
    -- Whose key it is, such as `user:12`.
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    -- SHA-256 (hex) of the canonical JSON body.
    request_hash TEXT NOT NULL,
    status_code INTEGER,
    response_body TEXT,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (scope, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
