-- name: request_replan
-- Debounced: the first request in a quiet period sets the due time (each change wakes the engine);
-- later ones do not push it, and add their reason while fewer than 19 are pending. Once that
-- list is full, a request that would not bring the due time forward changes nothing (no row
-- lock: concurrent answers do not queue on this row); the caller then holds the pending
-- request with ``hold_replan`` instead. No row when nothing was changed.
WITH r AS (
    UPDATE engine_state
    SET replan_due_at = LEAST(COALESCE(replan_due_at, $1::timestamptz), $1::timestamptz),
        generation = generation + 1,
        reasons = (reasons || $2::text)[greatest(1, cardinality(reasons) - 18):]
    WHERE replan_due_at IS NULL OR replan_due_at > $1::timestamptz OR cardinality(reasons) < 19
    RETURNING generation
)
SELECT generation, pg_notify(muster_channel('muster_engine'), 'replan') FROM r;

-- name: hold_replan
-- The request is covered by a pending one (due no later than $1, reasons full): lock it until
-- commit, so that the engine cannot claim it (and read the world) before this transaction's
-- change is visible. KEY SHARE conflicts with claim_replan's FOR UPDATE but not with the
-- UPDATE of request_replan, so holders never queue for each other (nor deadlock when one then
-- brings the due time forward). No row if the engine claimed it meanwhile (this waits for that
-- claim's commit, then re-checks on the row as it now is).
SELECT true FROM engine_state
WHERE replan_due_at IS NOT NULL AND replan_due_at <= $1::timestamptz AND cardinality(reasons) >= 19
FOR KEY SHARE;

-- name: replan_pending
SELECT replan_due_at IS NOT NULL FROM engine_state;

-- name: notify
SELECT pg_notify(muster_channel('muster_engine'), $1);

-- name: state
SELECT replan_due_at, cadence_due_at, generation, reasons, last_plan_id, last_plan_at
FROM engine_state;

-- name: claim_replan
-- Take the pending request (reasons and generation) before solving; RETURNING shows new values,
-- so the old ones are read first under the row lock.
WITH old AS (SELECT generation, reasons FROM engine_state FOR UPDATE)
UPDATE engine_state
SET replan_due_at = NULL, reasons = '{}'
FROM old
RETURNING old.generation, old.reasons;

-- name: finish_plan
UPDATE engine_state
SET last_plan_id = $1, last_plan_at = $2, cadence_due_at = $3;

-- name: next_due
SELECT LEAST(
    (SELECT min(offer_deadline) FROM assignments WHERE status = 'offered'),
    (SELECT replan_due_at FROM engine_state),
    (SELECT cadence_due_at FROM engine_state)
) AS due;

-- name: expire_due
UPDATE assignments
SET status = 'expired', expired_at = $1, version = version + 1
WHERE status = 'offered' AND offer_deadline <= $1
RETURNING id, person_id, incident_id, skill;

-- name: exclude_pair
INSERT INTO pair_rules (person_id, incident_id, rule, created_at, created_by)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (person_id, incident_id)
DO UPDATE SET rule = EXCLUDED.rule, skill = NULL, created_at = EXCLUDED.created_at,
              created_by = EXCLUDED.created_by;

-- name: world_people
SELECT p.id, p.kind, p.reserve, j.path, p.home_lat, p.home_lon, p.skills, p.availability,
       p.max_hours_per_24h, p.min_rest_hours
FROM people AS p
JOIN jurisdictions AS j ON j.code = p.jurisdiction_code
WHERE p.active
ORDER BY p.id;

-- name: world_work
-- Hours each person worked in the last 24 h and when they were last released.
-- (float8: decoding numeric to Decimal is a cost at every re-plan.)
SELECT person_id,
       (sum(extract(epoch FROM (LEAST(COALESCE(released_at, $1), $1)
                                - GREATEST(COALESCE(en_route_at, accepted_at), $1 - interval '24 hours')))
            ) / 3600.0)::float8 AS hours,
       max(released_at) AS last_released
FROM assignments
WHERE accepted_at IS NOT NULL
  AND (released_at IS NULL OR released_at > $1 - interval '24 hours')
GROUP BY person_id;

-- name: world_incidents
SELECT i.id, i.lat, i.lon, i.priority, i.demands, i.supplies, i.jurisdiction_code, j.path
FROM incidents AS i
JOIN jurisdictions AS j ON j.code = i.jurisdiction_code
WHERE i.status IN ('reported', 'active')
ORDER BY i.id;

-- name: world_allocated
SELECT incident_id, item, sum(quantity)::bigint AS quantity
FROM allocations
WHERE status IN ('reserved', 'dispatched', 'delivered')
GROUP BY incident_id, item;

-- name: world_depots
SELECT d.id, d.lat, d.lon, j.path,
       COALESCE(jsonb_object_agg(s.item, s.quantity - s.reserved)
                FILTER (WHERE s.item IS NOT NULL), '{}') AS stock
FROM depots AS d
JOIN jurisdictions AS j ON j.code = d.jurisdiction_code
LEFT JOIN stock AS s ON s.depot_id = d.id
WHERE d.active
GROUP BY d.id, d.lat, d.lon, j.path
ORDER BY d.id;

-- name: world_active
SELECT id, person_id, incident_id, skill, status, locked, pinned
FROM assignments
WHERE status IN ('proposed', 'offered', 'accepted', 'en_route', 'on_scene')
ORDER BY id;

-- name: world_excluded
SELECT incident_id, person_id FROM pair_rules WHERE rule IN ('forbid', 'declined', 'expired');

-- name: insert_plan
INSERT INTO plans (created_at, trigger, snapshot, result, status, method, solve_seconds)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id;

-- name: plan_counts
UPDATE plans SET offers_made = $2, withdrawn = $3, allocations_made = $4 WHERE id = $1;

-- name: offer
-- Set-based: one statement for every new offer of a plan. A person who got another active
-- assignment meanwhile is skipped by the partial unique index instead of double-booked.
INSERT INTO assignments (person_id, incident_id, skill, mode_key, travel_minutes, reason,
                         offer_deadline, status, plan_id, proposed_at, offered_at)
SELECT o.person_id, o.incident_id, o.skill, o.mode_key, o.travel_minutes, o.reason,
       o.offer_deadline, 'offered', $8, $9, $9
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::real[], $6::text[],
            $7::timestamptz[])
     AS o (person_id, incident_id, skill, mode_key, travel_minutes, reason, offer_deadline)
ON CONFLICT (person_id) WHERE status IN ('proposed', 'offered', 'accepted', 'en_route', 'on_scene')
DO NOTHING
RETURNING id, person_id, incident_id, skill, offer_deadline, travel_minutes, reason;

-- name: withdraw
UPDATE assignments
SET status = 'withdrawn', withdrawn_at = $2, version = version + 1
WHERE id = ANY($1::text[]) AND status IN ('offered', 'accepted') AND NOT locked AND NOT pinned
RETURNING id, person_id, incident_id, skill;

-- name: reserve_stock
UPDATE stock SET reserved = reserved + $3
WHERE depot_id = $1 AND item = $2 AND quantity - reserved >= $3
RETURNING depot_id;

-- name: insert_allocation
INSERT INTO allocations (plan_id, depot_id, incident_id, item, quantity, status, mode_key,
                         travel_minutes, reserved_at)
VALUES ($1, $2, $3, $4, $5, 'reserved', $6, $7, $8)
RETURNING id;

-- name: outbox
INSERT INTO outbox (person_id, kind, payload, exercise, created_at)
VALUES ($1, $2, $3, $4, $5)
RETURNING seq;

-- name: outbox_many
INSERT INTO outbox (person_id, kind, payload, exercise, created_at)
SELECT m.person_id, $2, m.payload, $4, $5
FROM unnest($1::text[], $3::jsonb[]) AS m (person_id, payload);

-- name: incident_policy_keys
SELECT DISTINCT i.jurisdiction_code FROM incidents AS i WHERE i.status IN ('reported', 'active');

-- name: release_surplus
-- Fixed assignments whose demand line shrank: working people are released, open offers withdrawn.
UPDATE assignments
SET status = CASE WHEN status IN ('proposed', 'offered') THEN 'withdrawn' ELSE 'released' END,
    withdrawn_at = CASE WHEN status IN ('proposed', 'offered') THEN $2 ELSE withdrawn_at END,
    released_at = CASE WHEN status IN ('proposed', 'offered') THEN released_at ELSE $2 END,
    version = version + 1
WHERE id = ANY($1::text[]) AND status IN ('proposed', 'offered', 'accepted', 'en_route', 'on_scene')
RETURNING id, person_id, incident_id, status;
