-- name: get
SELECT id, created_at, trigger, status, method, solve_seconds, offers_made, withdrawn,
       allocations_made, result
FROM plans WHERE id = $1;

-- name: get_snapshot
SELECT snapshot, snapshot_z FROM plans WHERE id = $1;

-- name: insert
INSERT INTO plans (created_at, trigger, snapshot_z, result, status, method, solve_seconds)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id;

-- name: list
SELECT id, created_at, trigger, status, method, solve_seconds, offers_made, withdrawn,
       allocations_made
FROM plans
WHERE ($1::bigint IS NULL OR id < $1)
ORDER BY id DESC
LIMIT $2;

-- name: latest_id
SELECT max(id) FROM plans;

-- name: incident_allocations
SELECT a.*, d.name AS depot_name FROM allocations AS a JOIN depots AS d ON d.id = a.depot_id
WHERE a.incident_id = $1 ORDER BY a.id;

-- name: incident_active
SELECT * FROM assignments
WHERE incident_id = $1 AND status IN ('offered', 'accepted', 'en_route', 'on_scene')
ORDER BY id;
