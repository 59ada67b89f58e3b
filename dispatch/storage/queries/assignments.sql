-- name: get
SELECT a.*, i.jurisdiction_code, j.path AS incident_path, i.title AS incident_title,
       i.lat AS incident_lat, i.lon AS incident_lon, i.priority AS incident_priority
FROM assignments AS a
JOIN incidents AS i ON i.id = a.incident_id
JOIN jurisdictions AS j ON j.code = i.jurisdiction_code
WHERE a.id = $1;

-- name: get_versioned
-- The same with the row version's xmin: a guarded update (``AND xmin = $n``) then moves
-- exactly this version of the row, or nothing if anything changed it meanwhile.
SELECT a.*, a.xmin AS row_xmin, i.jurisdiction_code, j.path AS incident_path,
       i.title AS incident_title, i.lat AS incident_lat, i.lon AS incident_lon,
       i.priority AS incident_priority
FROM assignments AS a
JOIN incidents AS i ON i.id = a.incident_id
JOIN jurisdictions AS j ON j.code = i.jurisdiction_code
WHERE a.id = $1;

-- name: list
-- $1 scope path, $2 person, $3 incident, $4 statuses, $5 cursor, $6 limit
SELECT a.*, i.jurisdiction_code, j.path AS incident_path, i.title AS incident_title,
       i.lat AS incident_lat, i.lon AS incident_lon, i.priority AS incident_priority
FROM assignments AS a
JOIN incidents AS i ON i.id = a.incident_id
JOIN jurisdictions AS j ON j.code = i.jurisdiction_code
WHERE ($1::text IS NULL OR j.path = $1 OR starts_with(j.path, $1 || '/'))
  AND ($2::text IS NULL OR a.person_id = $2)
  AND ($3::text IS NULL OR a.incident_id = $3)
  AND ($4::text[] IS NULL OR a.status = ANY($4::text[]))
  AND ($5::text IS NULL OR a.id > $5)
ORDER BY a.id
LIMIT $6;

-- name: set_position
UPDATE assignments SET last_lat = $2, last_lon = $3 WHERE id = $1;

-- name: set_locked
UPDATE assignments SET locked = $2, version = version + 1 WHERE id = $1 RETURNING *;

-- name: active_of_person
SELECT * FROM assignments
WHERE person_id = $1 AND status IN ('proposed', 'offered', 'accepted', 'en_route', 'on_scene')
FOR UPDATE;

-- name: upsert_rule
INSERT INTO pair_rules (person_id, incident_id, rule, skill, created_at, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (person_id, incident_id)
DO UPDATE SET rule = EXCLUDED.rule, skill = EXCLUDED.skill, created_at = EXCLUDED.created_at,
              created_by = EXCLUDED.created_by;

-- name: delete_rule
DELETE FROM pair_rules WHERE person_id = $1 AND incident_id = $2 RETURNING rule;

-- name: rules_of_incident
SELECT person_id, incident_id, rule, skill, created_at, created_by
FROM pair_rules WHERE incident_id = $1 ORDER BY person_id;

-- name: insert_pinned
INSERT INTO assignments (person_id, incident_id, skill, status, mode_key, locked, pinned,
                         reason, offer_deadline, proposed_at, offered_at)
VALUES ($1, $2, $3, 'offered', $4, true, true, $5, $6, $7, $7)
RETURNING *;

-- name: incident_for_update
SELECT i.*, j.path FROM incidents AS i JOIN jurisdictions AS j ON j.code = i.jurisdiction_code
WHERE i.id = $1 FOR UPDATE OF i;

-- name: person_path
SELECT p.id, j.path FROM people AS p JOIN jurisdictions AS j ON j.code = p.jurisdiction_code
WHERE p.id = $1;
