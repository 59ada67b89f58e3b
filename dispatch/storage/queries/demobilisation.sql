-- name: active_in
-- Emergency assignments on the incidents of the stood-down jurisdictions.
SELECT a.id, a.person_id, a.incident_id, a.status
FROM assignments AS a
JOIN incidents AS i ON i.id = a.incident_id
WHERE i.jurisdiction_code = ANY($1::text[])
  AND a.mode_key <> 'routine'
  AND a.status IN ('proposed', 'offered', 'accepted', 'en_route', 'on_scene')
ORDER BY a.id
FOR UPDATE OF a;

-- name: withdraw_ids
UPDATE assignments SET status = 'withdrawn', withdrawn_at = $2, version = version + 1
WHERE id = ANY($1::text[]);

-- name: release_ids
UPDATE assignments SET status = 'released', released_at = $2, version = version + 1
WHERE id = ANY($1::text[]);

-- name: hours
-- Hours worked per person on emergency assignments of these incidents.
SELECT a.person_id,
       round(sum(extract(epoch FROM (COALESCE(a.released_at, $2)
                                     - COALESCE(a.en_route_at, a.accepted_at))) / 3600.0)::numeric,
             2)::float8 AS hours,
       count(*)::int AS assignments
FROM assignments AS a
JOIN incidents AS i ON i.id = a.incident_id
WHERE i.jurisdiction_code = ANY($1::text[])
  AND a.mode_key <> 'routine'
  AND a.accepted_at IS NOT NULL
GROUP BY a.person_id
ORDER BY a.person_id;

-- name: open_allocations
SELECT al.id, al.depot_id, al.item, al.quantity, al.status, al.incident_id
FROM allocations AS al
JOIN incidents AS i ON i.id = al.incident_id
WHERE i.jurisdiction_code = ANY($1::text[])
  AND al.mode_key <> 'routine'
  AND al.status IN ('reserved', 'dispatched')
ORDER BY al.id
FOR UPDATE OF al;

-- name: insert_stand_down
INSERT INTO stand_downs (jurisdiction_code, at, actor, reason, released, withdrawn,
                         supplies_returned, hours, summary)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id;

-- name: get_stand_down
SELECT s.*, j.path FROM stand_downs AS s JOIN jurisdictions AS j ON j.code = s.jurisdiction_code
WHERE s.id = $1;

-- name: list_stand_downs
SELECT s.*, j.path FROM stand_downs AS s JOIN jurisdictions AS j ON j.code = s.jurisdiction_code
WHERE ($1::text IS NULL OR j.path = $1 OR starts_with(j.path, $1 || '/'))
  AND ($2::bigint IS NULL OR s.id < $2)
ORDER BY s.id DESC
LIMIT $3;
