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

-- name: authenticate_and_claim
-- ``tokens.authenticate`` and ``claim`` in one round trip: $1 token hash, then claim's $2..$5.
-- No row: the token is unknown or revoked (nothing claimed).
WITH t AS (
    SELECT t.id, t.role, t.jurisdiction_code, t.person_id, j.path AS scope_path
    FROM api_tokens AS t
    LEFT JOIN jurisdictions AS j ON j.code = t.jurisdiction_code
    WHERE t.token_hash = $1 AND t.revoked_at IS NULL
), touched AS (
    UPDATE api_tokens SET last_used_at = now()
    WHERE id = (SELECT id FROM t)
      AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
), ins AS (
    INSERT INTO idempotency_keys (token_id, key, method, path, request_hash)
    SELECT id, $2, $3, $4, $5 FROM t
    ON CONFLICT (token_id, key) DO NOTHING
    RETURNING 1
)
SELECT t.id, t.role, t.jurisdiction_code, t.person_id, t.scope_path,
       (SELECT count(*) FROM ins) AS inserted, k.request_hash, k.status_code, k.response_body,
       k.content_type
FROM t
LEFT JOIN idempotency_keys AS k ON k.token_id = t.id AND k.key = $2;

-- name: complete
UPDATE idempotency_keys
SET status_code = $3, response_body = $4, content_type = $5
WHERE token_id = $1 AND key = $2;

-- name: release
DELETE FROM idempotency_keys WHERE token_id = $1 AND key = $2 AND status_code IS NULL;

-- name: expire
DELETE FROM idempotency_keys WHERE created_at < now() - $1::interval;
