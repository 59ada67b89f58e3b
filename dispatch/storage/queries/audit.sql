-- name: insert_entry
INSERT INTO audit_log (actor, actor_role, action, object_type, object_id, before, after, request_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id;

-- name: seal
-- Put every committed row not yet in the chain into it (waits for the chain lock).
SELECT audit_seal();

-- name: list_entries
SELECT seq, at, actor, actor_role, action, object_type, object_id, before, after, request_id,
       prev_hash, hash
FROM audit_log
WHERE seq IS NOT NULL
  AND ($1::bigint IS NULL OR seq > $1)
  AND ($2::text IS NULL OR object_type = $2)
  AND ($3::text IS NULL OR object_id = $3)
  AND ($4::text IS NULL OR actor = $4)
ORDER BY seq
LIMIT $5;

-- name: verify_chain
-- Recompute every row's hash and check each row links to the one before it.
SELECT seq, hash, prev_hash,
       audit_row_hash(a) AS expected_hash,
       lag(hash) OVER (ORDER BY seq) AS previous_hash,
       lag(seq) OVER (ORDER BY seq) AS previous_seq
FROM audit_log AS a
WHERE seq IS NOT NULL
ORDER BY seq;
