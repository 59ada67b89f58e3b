-- name: person
SELECT p.*, j.path
FROM people AS p JOIN jurisdictions AS j ON j.code = p.jurisdiction_code
WHERE p.id = $1;

-- name: person_for_update
SELECT p.*, j.path
FROM people AS p JOIN jurisdictions AS j ON j.code = p.jurisdiction_code
WHERE p.id = $1
FOR UPDATE OF p;

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

-- name: assignments
-- $1 person, $2 statuses (NULL = all), $3 cursor (id), $4 limit
SELECT a.*, i.jurisdiction_code, j.path AS incident_path, i.title AS incident_title,
       i.lat AS incident_lat, i.lon AS incident_lon, i.priority AS incident_priority
FROM assignments AS a
JOIN incidents AS i ON i.id = a.incident_id
JOIN jurisdictions AS j ON j.code = i.jurisdiction_code
WHERE a.person_id = $1
  AND ($2::text[] IS NULL OR a.status = ANY ($2::text[]))
  AND ($3::text IS NULL OR a.id > $3)
ORDER BY a.id
LIMIT $4;
