-- name: claim
-- Insert a placeholder; on conflict return the existing row instead.
WITH ins AS (
    INSERT INTO idempotency_keys (token_id, key, method, path, request_hash)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (token_id, key) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins) AS inserted, k.request_hash, k.status_code, k.response_body,
       k.content_type
FROM (SELECT 1) AS one
LEFT JOIN idempotency_keys AS k ON k.token_id = $1 AND k.key = $2;

-- name: complete
UPDATE idempotency_keys
SET status_code = $3, response_body = $4, content_type = $5
WHERE token_id = $1 AND key = $2;

-- name: release
DELETE FROM idempotency_keys WHERE token_id = $1 AND key = $2 AND status_code IS NULL;

-- name: expire
DELETE FROM idempotency_keys WHERE created_at < now() - $1::interval;
