-- Returns and refunds: what came back of an order (and whether it went back on the shelf), and
-- every refund of a payment, carried out by the provider after the transaction that decided it.

-- How many copies of each line have come back, so that a line never takes back more than it sold
-- (a conditional update on this column decides, whatever races).
ALTER TABLE order_lines ADD COLUMN returned_quantity BIGINT NOT NULL DEFAULT 0
    CHECK (returned_quantity >= 0);

CREATE TABLE returns (
    id INTEGER PRIMARY KEY,
    order_id BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    -- requested: asked for by the customer, nothing moved yet; received: the copies are back and
    -- refunded; rejected: staff turned the request down.
    status TEXT NOT NULL CHECK (status IN ('requested', 'received', 'rejected')),
    -- Whether the copies go back into stock (a return movement each) or are written off.
    restock BOOLEAN NOT NULL,
    reason TEXT NOT NULL,
    refund_cents BIGINT NOT NULL CHECK (refund_cents >= 0),
    requested_by BIGINT NOT NULL REFERENCES users (id),
    decided_by BIGINT REFERENCES users (id),
    decision_note TEXT,
    created_at TIMESTAMP NOT NULL,
    decided_at TIMESTAMP
);
CREATE INDEX returns_order_idx ON returns (order_id, id);

CREATE TABLE return_lines (
    id INTEGER PRIMARY KEY,
    return_id BIGINT NOT NULL REFERENCES returns (id) ON DELETE CASCADE,
    order_line_id BIGINT NOT NULL REFERENCES order_lines (id),
    book_id BIGINT NOT NULL REFERENCES books (id),
    quantity BIGINT NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    refund_cents BIGINT NOT NULL CHECK (refund_cents >= 0),
    UNIQUE (return_id, order_line_id)
);

-- One refund of (part of) a payment. Written as pending inside the transaction that decides it
-- (a cancellation or a return), then carried out through the provider after commit; the refund
-- task retries pending ones whose next_attempt_at has come, so a crash between commit and the
-- provider call loses nothing. payment_id is NULL for a charge that was never recorded as a
-- payment (the order stopped being payable while the card was charged).
CREATE TABLE refunds (
    id INTEGER PRIMARY KEY,
    order_id BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    payment_id BIGINT REFERENCES payments (id),
    return_id BIGINT REFERENCES returns (id),
    method TEXT NOT NULL CHECK (method IN ('card', 'cash', 'bank_transfer')),
    -- The provider's charge to refund (card refunds).
    charge_reference TEXT,
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    -- The provider's refund id once it succeeded.
    provider_reference TEXT,
    failure_code TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    reason TEXT NOT NULL,
    created_by BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX refunds_order_idx ON refunds (order_id, id);
CREATE INDEX refunds_due_idx ON refunds (next_attempt_at) WHERE status = 'pending';
