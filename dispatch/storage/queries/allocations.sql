-- name: get_for_update
SELECT al.*, j.path FROM allocations AS al
JOIN incidents AS i ON i.id = al.incident_id
JOIN jurisdictions AS j ON j.code = i.jurisdiction_code
WHERE al.id = $1
FOR UPDATE OF al;

-- name: list
SELECT al.*, j.path FROM allocations AS al
JOIN incidents AS i ON i.id = al.incident_id
JOIN jurisdictions AS j ON j.code = i.jurisdiction_code
WHERE ($1::text IS NULL OR j.path = $1 OR starts_with(j.path, $1 || '/'))
  AND ($2::text IS NULL OR al.incident_id = $2)
  AND ($3::text IS NULL OR al.depot_id = $3)
  AND ($4::text IS NULL OR al.id > $4)
ORDER BY al.id
LIMIT $5;

-- name: release_reserved
UPDATE stock SET reserved = reserved - $3 WHERE depot_id = $1 AND item = $2;

-- name: take_out
-- Dispatch: the reserved units leave the depot.
UPDATE stock SET reserved = reserved - $3, quantity = quantity - $3
WHERE depot_id = $1 AND item = $2;

-- name: put_back
UPDATE stock SET quantity = quantity + $3 WHERE depot_id = $1 AND item = $2;
