DROP INDEX payments_processing_idx;
DROP INDEX payments_provider_key_idx;
UPDATE payments SET status = 'failed', failure_code = 'abandoned' WHERE status = 'processing';
ALTER TABLE payments
    DROP COLUMN provider_key,
    DROP COLUMN lease_until,
    DROP COLUMN lease_token,
    DROP COLUMN idempotency_key_id;
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('succeeded', 'failed', 'pending'));
