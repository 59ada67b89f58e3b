-- name: set_availability
-- $3 is the application clock's time (never now(): drills run on simulated time).
UPDATE people
SET availability = $2, version = version + 1, updated_at = $3
WHERE id = $1
RETURNING *;

-- name: active_assignment
SELECT a.*, i.jurisdiction_code, j.path AS incident_path, i.title AS incident_title,
       i.lat AS incident_lat, i.lon AS incident_lon, i.priority AS incident_priority
FROM assignments AS a
JOIN incidents AS i ON i.id = a.incident_id
JOIN jurisdictions AS j ON j.code = i.jurisdiction_code
WHERE a.person_id = $1
  AND a.status IN ('proposed', 'offered', 'accepted', 'en_route', 'on_scene');
