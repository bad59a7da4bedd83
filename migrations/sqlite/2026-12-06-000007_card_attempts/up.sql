-- A card payment is written before the card is charged: status `processing`, with the key the
-- provider deduplicates the charge by, and a lease that says until when the request that wrote it
-- is settling it. Whoever settles it after the lease (a retry with the same Idempotency-Key, or
-- the maintenance sweep) takes the lease over with a new token; only the holder of the current
-- token may record the outcome.
--
-- SQLite cannot change a CHECK constraint: the table is rebuilt (refunds refer to it, hence
-- foreign keys off for the while).

PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE payments_new (
    id INTEGER PRIMARY KEY,
    order_id BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    method TEXT NOT NULL CHECK (method IN ('card', 'cash', 'bank_transfer')),
    amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0),
    status TEXT NOT NULL CHECK (status IN ('succeeded', 'failed', 'pending', 'processing')),
    -- The provider's charge id (card payments).
    provider_reference TEXT,
    -- Why the provider declined (failed payments), such as card_declined.
    failure_code TEXT,
    created_by BIGINT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    provider_key TEXT,
    lease_until TIMESTAMP,
    lease_token TEXT,
    idempotency_key_id BIGINT
);
INSERT INTO payments_new (id, order_id, method, amount_cents, status, provider_reference,
                          failure_code, created_by, created_at)
    SELECT id, order_id, method, amount_cents, status, provider_reference, failure_code,
           created_by, created_at
    FROM payments;
DROP TABLE payments;
ALTER TABLE payments_new RENAME TO payments;
CREATE INDEX payments_order_idx ON payments (order_id, id);
CREATE UNIQUE INDEX payments_provider_key_idx ON payments (provider_key);
CREATE INDEX payments_processing_idx ON payments (lease_until) WHERE status = 'processing';
COMMIT;
PRAGMA foreign_keys = ON;
