-- name: get
SELECT p.*, j.path
FROM people AS p JOIN jurisdictions AS j ON j.code = p.jurisdiction_code
WHERE p.id = $1;

-- name: get_for_update
SELECT p.*, j.path
FROM people AS p JOIN jurisdictions AS j ON j.code = p.jurisdiction_code
WHERE p.id = $1
FOR UPDATE OF p;

-- name: insert
INSERT INTO people (id, kind, name, jurisdiction_code, home_lat, home_lon, contacts, skills,
                    certifications, availability, max_hours_per_24h, min_rest_hours, reserve,
                    active)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
RETURNING *;

-- name: update
UPDATE people
SET kind = $2, name = $3, jurisdiction_code = $4, home_lat = $5, home_lon = $6, contacts = $7,
    skills = $8, certifications = $9, availability = $10, max_hours_per_24h = $11,
    min_rest_hours = $12, reserve = $13, active = $14,
    version = version + 1, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: deactivate
UPDATE people SET active = false, version = version + 1, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: delete
DELETE FROM people WHERE id = $1;

-- name: list
-- $1 scope path (NULL = all), $2 jurisdiction subtree path (NULL = no filter), $3 kind,
-- $4 effective skill name, $5 minimum level, $6 the date skills must be valid on, $7 active,
-- $8 reserve, $9 ILIKE pattern on name, $10 only this person id (volunteers), $11 cursor, $12 limit
SELECT p.*, j.path
FROM people AS p JOIN jurisdictions AS j ON j.code = p.jurisdiction_code
WHERE ($1::text IS NULL OR j.path = $1 OR starts_with(j.path, $1 || '/'))
  AND ($2::text IS NULL OR j.path = $2 OR starts_with(j.path, $2 || '/'))
  AND ($3::text IS NULL OR p.kind = $3)
  AND ($4::text IS NULL OR (
        -- containment first so the GIN index on skills can narrow the scan
        p.skills @> jsonb_build_array(jsonb_build_object('name', $4::text))
        AND EXISTS (
            SELECT 1 FROM jsonb_array_elements(p.skills) AS s
            WHERE s ->> 'name' = $4
              AND (s ->> 'level')::int >= COALESCE($5::int, 1)
              AND (s ->> 'expires_on' IS NULL OR (s ->> 'expires_on')::date >= $6::date))
        AND (NOT EXISTS (
                SELECT 1 FROM jsonb_array_elements(p.certifications) AS c
                WHERE c ->> 'name' = $4)
             OR EXISTS (
                SELECT 1 FROM jsonb_array_elements(p.certifications) AS c
                WHERE c ->> 'name' = $4
                  AND (c ->> 'expires_on' IS NULL OR (c ->> 'expires_on')::date >= $6::date)))))
  AND ($7::boolean IS NULL OR p.active = $7)
  AND ($8::boolean IS NULL OR p.reserve = $8)
  AND ($9::text IS NULL OR p.name ILIKE $9)
  AND ($10::text IS NULL OR p.id = $10)
  AND ($11::text IS NULL OR p.id > $11)
ORDER BY p.id
LIMIT $12;

-- name: create_import_table
CREATE TEMP TABLE people_import (
    row_no             integer NOT NULL,
    id                 text NOT NULL,
    kind               text NOT NULL,
    name               text NOT NULL,
    jurisdiction_code  text NOT NULL,
    home_lat           double precision NOT NULL,
    home_lon           double precision NOT NULL,
    contacts           text NOT NULL,
    skills             text NOT NULL,
    certifications     text NOT NULL,
    availability       text NOT NULL,
    max_hours_per_24h  real NOT NULL,
    min_rest_hours     real NOT NULL,
    reserve            boolean NOT NULL,
    active             boolean NOT NULL
) ON COMMIT DROP;

-- name: import_problems
-- Rows the database would refuse or the caller may not write. $1 the caller's scope path.
SELECT t.row_no, t.id, t.jurisdiction_code,
       j.code IS NULL AS unknown_jurisdiction,
       p.id IS NOT NULL AS exists,
       j.code IS NOT NULL
         AND NOT ($1::text IS NULL OR j.path = $1 OR starts_with(j.path, $1 || '/'))
         AS out_of_scope
FROM people_import AS t
LEFT JOIN jurisdictions AS j ON j.code = t.jurisdiction_code
LEFT JOIN people AS p ON p.id = t.id
WHERE j.code IS NULL
   OR p.id IS NOT NULL
   OR NOT ($1::text IS NULL OR j.path = $1 OR starts_with(j.path, $1 || '/'))
ORDER BY t.row_no;

-- name: import_insert
-- Every staged row except the rejected ones ($1), in file order.
INSERT INTO people (id, kind, name, jurisdiction_code, home_lat, home_lon, contacts, skills,
                    certifications, availability, max_hours_per_24h, min_rest_hours, reserve,
                    active)
SELECT id, kind, name, jurisdiction_code, home_lat, home_lon, contacts::jsonb, skills::jsonb,
       certifications::jsonb, availability::jsonb, max_hours_per_24h, min_rest_hours, reserve,
       active
FROM people_import
WHERE NOT (row_no = ANY ($1::int[]))
ORDER BY row_no;
