-- name: lock_jurisdiction
-- Serialises mode changes on one node even before it has a jurisdiction_modes row. NO KEY
-- UPDATE does not block rows that merely reference the jurisdiction (people, incidents...).
SELECT code, path FROM jurisdictions WHERE code = $1 FOR NO KEY UPDATE;

-- name: get_own_for_update
SELECT * FROM jurisdiction_modes WHERE code = $1 FOR UPDATE;

-- name: get_own
SELECT * FROM jurisdiction_modes WHERE code = $1;

-- name: upsert_own
-- $1 code, $2 mode, $3 level, $4 reason, $5 set_by, $6 set_at (NULL = now)
INSERT INTO jurisdiction_modes AS m (code, mode, level, reason, set_by, set_at)
VALUES ($1, $2, $3, $4, $5, COALESCE($6, clock_timestamp()))
ON CONFLICT (code) DO UPDATE
SET mode = EXCLUDED.mode, level = EXCLUDED.level, reason = EXCLUDED.reason,
    set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at, version = m.version + 1
RETURNING *;

-- name: insert_history
-- $1 code, $2 from_mode, $3 from_level, $4 to_mode, $5 to_level, $6 reason, $7 actor,
-- $8 actor_role, $9 request_id, $10 at (NULL = now)
INSERT INTO mode_history (jurisdiction_code, from_mode, from_level, to_mode, to_level, reason,
                          actor, actor_role, request_id, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, COALESCE($10, clock_timestamp()))
RETURNING *;

-- name: history
-- The newest $2 changes of node $1, newest first.
SELECT * FROM mode_history WHERE jurisdiction_code = $1 ORDER BY id DESC LIMIT $2;

-- name: paths_of
SELECT code, path FROM jurisdictions WHERE code = ANY($1::text[]);

-- name: subtree_paths
-- Node at path $1 and everything below it.
SELECT code, path FROM jurisdictions WHERE path = $1 OR starts_with(path, $1 || '/');

-- name: own_of
SELECT code, mode, level FROM jurisdiction_modes WHERE code = ANY($1::text[]);

-- name: own_in_subtree
-- Own settings of the node at path $1, everything below it, and the codes $2 (its ancestors).
SELECT m.code, m.mode, m.level
FROM jurisdiction_modes AS m JOIN jurisdictions AS j USING (code)
WHERE j.path = $1 OR starts_with(j.path, $1 || '/') OR m.code = ANY($2::text[]);

-- name: list_own
-- $1 scope path (NULL = all), $2 mode, $3 level, $4 cursor (code), $5 limit
SELECT m.*, j.path
FROM jurisdiction_modes AS m JOIN jurisdictions AS j USING (code)
WHERE ($1::text IS NULL OR j.path = $1 OR starts_with(j.path, $1 || '/'))
  AND ($2::text IS NULL OR m.mode = $2)
  AND ($3::text IS NULL OR m.level = $3)
  AND ($4::text IS NULL OR m.code > $4)
ORDER BY m.code
LIMIT $5;

-- name: policies
SELECT * FROM mode_policies;

-- name: policy
SELECT * FROM mode_policies WHERE key = $1;

-- name: policy_for_update
SELECT * FROM mode_policies WHERE key = $1 FOR UPDATE;

-- name: update_policy
UPDATE mode_policies
SET callable_pools = $2, mutual_aid = $3, offer_expiry_s = $4, replan_every_s = $5,
    max_travel_minutes = $6, priority_weights = $7, reassign_penalty_minutes = $8,
    suspend_routine_tasks = $9, version = version + 1, updated_at = now()
WHERE key = $1
RETURNING *;
