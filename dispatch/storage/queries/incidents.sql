-- name: get
SELECT i.*, j.path FROM incidents i JOIN jurisdictions j ON j.code = i.jurisdiction_code
WHERE i.id = $1;

-- name: get_for_update
SELECT i.*, j.path FROM incidents i JOIN jurisdictions j ON j.code = i.jurisdiction_code
WHERE i.id = $1
FOR UPDATE OF i;

-- name: insert
INSERT INTO incidents
    (id, type, title, description, lat, lon, jurisdiction_code, priority, status, demands,
     supplies, reported_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, COALESCE($12, clock_timestamp()))
RETURNING *;

-- name: update
UPDATE incidents
SET type = $2, title = $3, description = $4, lat = $5, lon = $6, jurisdiction_code = $7,
    priority = $8, demands = $9, supplies = $10, version = version + 1, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: set_status
UPDATE incidents
SET status = $2,
    closed_at = CASE WHEN $2 = 'closed' THEN COALESCE($3, clock_timestamp()) ELSE closed_at END,
    version = version + 1, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: history_insert
INSERT INTO incident_status_history
    (incident_id, from_status, to_status, reason, actor, request_id, at)
VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, clock_timestamp()));

-- name: list
-- $1 scope path (NULL = all), $2 under path, $3 statuses, $4 priorities, $5 type,
-- $6 open only, $7 cursor, $8 limit
SELECT i.*, j.path FROM incidents i JOIN jurisdictions j ON j.code = i.jurisdiction_code
WHERE ($1::text IS NULL OR j.path = $1 OR starts_with(j.path, $1 || '/'))
  AND ($2::text IS NULL OR j.path = $2 OR starts_with(j.path, $2 || '/'))
  AND ($3::text[] IS NULL OR i.status = ANY($3::text[]))
  AND ($4::int[] IS NULL OR i.priority = ANY($4::int[]))
  AND ($5::text IS NULL OR i.type = $5)
  AND (NOT $6::boolean OR i.status <> 'closed')
  AND ($7::text IS NULL OR i.id > $7)
ORDER BY i.id
LIMIT $8;
