-- name: get
SELECT * FROM jurisdictions WHERE code = $1;

-- name: get_for_update
SELECT * FROM jurisdictions WHERE code = $1 FOR UPDATE;

-- name: paths_of
SELECT code, path FROM jurisdictions WHERE code = ANY($1::text[]);

-- name: insert
INSERT INTO jurisdictions (code, parent_code, path, kind, name, centre_lat, centre_lon, boundary)
SELECT $1, $2, COALESCE((SELECT path FROM jurisdictions WHERE code = $2), '') || '/' || $1,
       $3, $4, $5, $6, $7
RETURNING *;

-- name: update
UPDATE jurisdictions
SET name = $2, centre_lat = $3, centre_lon = $4, boundary = $5,
    version = version + 1, updated_at = now()
WHERE code = $1
RETURNING *;

-- name: delete
DELETE FROM jurisdictions WHERE code = $1;

-- name: list
-- $1 scope path (NULL = all), $2 parent, $3 kind, $4 under path, $5 cursor, $6 limit
SELECT * FROM jurisdictions
WHERE ($1::text IS NULL OR path = $1 OR starts_with(path, $1 || '/'))
  AND ($2::text IS NULL OR parent_code = $2)
  AND ($3::text IS NULL OR kind = $3)
  AND ($4::text IS NULL OR path = $4 OR starts_with(path, $4 || '/'))
  AND ($5::text IS NULL OR code > $5)
ORDER BY code
LIMIT $6;
