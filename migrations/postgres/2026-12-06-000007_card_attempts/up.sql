-- A card payment is written before the card is charged: status `processing`, with the key the
-- provider deduplicates the charge by, and a lease that says until when the request that wrote it
-- is settling it. Whoever settles it after the lease (a retry with the same Idempotency-Key, or
-- the maintenance sweep) takes the lease over with a new token; only the holder of the current
-- token may record the outcome.

ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('succeeded', 'failed', 'pending', 'processing'));
ALTER TABLE payments
    ADD COLUMN provider_key TEXT,
    ADD COLUMN lease_until TIMESTAMP,
    ADD COLUMN lease_token TEXT,
    ADD COLUMN idempotency_key_id BIGINT;
CREATE UNIQUE INDEX payments_provider_key_idx ON payments (provider_key);
CREATE INDEX payments_processing_idx ON payments (lease_until) WHERE status = 'processing';
