-- The engine's read of the roster, in two steps: the light columns (and the row's identity:
-- version and xmin) of every active person at each re-plan, and the JSON columns only of the
-- people whose row is new or changed since the last read (parsing them is the slow part).

-- name: people_light
SELECT p.id, p.version, p.xmin::text AS xmin, p.kind, p.reserve, j.path, p.home_lat,
       p.home_lon, p.max_hours_per_24h, p.min_rest_hours
FROM people AS p
JOIN jurisdictions AS j ON j.code = p.jurisdiction_code
WHERE p.active
ORDER BY p.id;

-- name: people_full
SELECT p.*, p.xmin::text AS xmin
FROM people AS p
WHERE p.id = ANY($1::text[]);

-- name: cache_scope
-- Which schema (and database) unqualified names resolve to: the key of a shared cache.
SELECT current_database() AS db, current_schema() AS schema;

-- name: people_digest
-- Changes whenever the set of active people or any of their rows does (every write gives a row
-- a new xmin): a sum of 64-bit hashes of (id, xmin), which unlike a maximum also moves when an
-- older transaction commits last. Paths are not covered: a jurisdiction's path never changes,
-- and one with people cannot be deleted.
SELECT count(*)::text || ':'
       || COALESCE(sum(hashtextextended(p.id || ':' || p.xmin::text, 0)), 0)::text
FROM people AS p
WHERE p.active;
