-- name: insert
INSERT INTO api_tokens (id, token_hash, role, jurisdiction_code, person_id, label)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, role, jurisdiction_code, person_id, label, created_at, revoked_at, last_used_at;

-- name: authenticate
-- The unrevoked token with this hash, stamping last_used_at (at most once a minute) in the same
-- statement: one round trip per authenticated request.
-- idempotency.authenticate_and_claim and answers.read repeat these two CTEs inside their own
-- single round trips: keep the three in step.
WITH t AS (
    SELECT t.id, t.role, t.jurisdiction_code, t.person_id, j.path AS scope_path
    FROM api_tokens AS t
    LEFT JOIN jurisdictions AS j ON j.code = t.jurisdiction_code
    WHERE t.token_hash = $1 AND t.revoked_at IS NULL
), touched AS (
    UPDATE api_tokens SET last_used_at = now()
    WHERE id = (SELECT id FROM t)
      AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
)
SELECT id, role, jurisdiction_code, person_id, scope_path FROM t;

-- name: revoke
UPDATE api_tokens SET revoked_at = now()
WHERE id = $1 AND revoked_at IS NULL
RETURNING id, role, jurisdiction_code, person_id, label, created_at, revoked_at, last_used_at;

-- name: get
SELECT id, role, jurisdiction_code, person_id, label, created_at, revoked_at, last_used_at
FROM api_tokens WHERE id = $1;

-- name: list
-- $1 cursor, $2 limit, $3 scope path (NULL = all); volunteer tokens are placed by their person.
SELECT t.id, t.role, t.jurisdiction_code, t.person_id, t.label, t.created_at, t.revoked_at,
       t.last_used_at
FROM api_tokens AS t
LEFT JOIN people AS p ON p.id = t.person_id
LEFT JOIN jurisdictions AS j ON j.code = COALESCE(t.jurisdiction_code, p.jurisdiction_code)
WHERE ($1::uuid IS NULL OR t.id > $1)
  AND ($3::text IS NULL OR j.path = $3 OR starts_with(j.path, $3 || '/'))
ORDER BY t.id
LIMIT $2;

-- name: count_admins
SELECT count(*) FROM api_tokens WHERE role = 'admin' AND revoked_at IS NULL;
