-- name: read
-- What answers need, many in one round trip: for each request (position ``req`` in the arrays)
-- the token ($1 its hash; unknown or revoked: no row for that request; last_used_at stamped at
-- most once a minute, as in tokens.authenticate), what its Idempotency-Key ($2, may be NULL)
-- already holds, and the offer ($3) with its row version (the assignment columns are NULL when
-- there is no such assignment).
WITH u AS (
    SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[]) WITH ORDINALITY
                  AS u (token_hash, key, assignment_id, req)
), t AS (
    SELECT u.req, u.key AS wanted_key, u.assignment_id AS wanted_id, t.id, t.role,
           t.jurisdiction_code, t.person_id, j.path AS scope_path
    FROM u
    JOIN api_tokens AS t ON t.token_hash = u.token_hash AND t.revoked_at IS NULL
    LEFT JOIN jurisdictions AS j ON j.code = t.jurisdiction_code
), touched AS (
    UPDATE api_tokens SET last_used_at = now()
    WHERE id IN (SELECT id FROM t)
      AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
)
SELECT t.req, t.id AS token_id, t.role AS token_role,
       t.jurisdiction_code AS token_jurisdiction_code, t.person_id AS token_person_id,
       t.scope_path AS token_scope_path,
       k.request_hash AS key_request_hash, k.status_code AS key_status_code,
       k.response_body AS key_response_body, k.content_type AS key_content_type,
       (k.token_id IS NOT NULL) AS key_found,
       a.*, a.xmin AS row_xmin, i.jurisdiction_code, j.path AS incident_path,
       i.title AS incident_title, i.lat AS incident_lat, i.lon AS incident_lon,
       i.priority AS incident_priority
FROM t
LEFT JOIN idempotency_keys AS k ON k.token_id = t.id AND k.key = t.wanted_key
LEFT JOIN (
    assignments AS a
    JOIN incidents AS i ON i.id = a.incident_id
    JOIN jurisdictions AS j ON j.code = i.jurisdiction_code
) ON a.id = t.wanted_id;

-- name: answer_batch
-- Answers, many in one transaction (migration 0012): one outcome word an item, in order.
SELECT answer_offers($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                     $17);

-- name: refuse
-- A refused answer's problem response, kept under its Idempotency-Key for retries. No row: the
-- key was taken meanwhile (the caller reads again and replays what it holds).
INSERT INTO idempotency_keys (token_id, key, method, path, request_hash, status_code,
                              response_body, content_type)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (token_id, key) DO NOTHING
RETURNING 1;
