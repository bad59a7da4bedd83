-- Payments of orders: every attempt is recorded, succeeded, failed (declined) or pending
-- (a bank transfer awaiting confirmation).

CREATE TABLE payments (
    id BIGSERIAL PRIMARY KEY,
    order_id BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    method TEXT NOT NULL CHECK (method IN ('card', 'cash', 'bank_transfer')),
    amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0),
    status TEXT NOT NULL CHECK (status IN ('succeeded', 'failed', 'pending')),
    -- The provider's charge id (card payments).
    provider_reference TEXT,
    -- Why the provider declined (failed payments), such as card_declined.
    failure_code TEXT,
    created_by BIGINT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX payments_order_idx ON payments (order_id, id);
