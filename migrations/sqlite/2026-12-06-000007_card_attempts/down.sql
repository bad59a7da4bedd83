PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE payments_old (
    id INTEGER PRIMARY KEY,
    order_id BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    method TEXT NOT NULL CHECK (method IN ('card', 'cash', 'bank_transfer')),
    amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0),
    status TEXT NOT NULL CHECK (status IN ('succeeded', 'failed', 'pending')),
    provider_reference TEXT,
    failure_code TEXT,
    created_by BIGINT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL
);
INSERT INTO payments_old (id, order_id, method, amount_cents, status, provider_reference,
                          failure_code, created_by, created_at)
    SELECT id, order_id, method, amount_cents,
           CASE status WHEN 'processing' THEN 'failed' ELSE status END,
           provider_reference, failure_code, created_by, created_at
    FROM payments;
DROP TABLE payments;
ALTER TABLE payments_old RENAME TO payments;
CREATE INDEX payments_order_idx ON payments (order_id, id);
COMMIT;
PRAGMA foreign_keys = ON;
