-- The drill registry (migration 0008). Every time is a parameter from the application's Clock.

-- name: insert
INSERT INTO drills (id, name, scenario, source, options, scope_code, schema_name, created_by,
                    created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9);

-- name: insert_participants
INSERT INTO drill_participants (drill_id, person_id)
SELECT $1, p FROM unnest($2::text[]) AS p;

-- name: get
-- One drill with its scope path and participants ($2: also the heavy columns).
SELECT d.id, d.name, d.source, d.options, d.status, d.scope_code, j.path AS scope_path,
       d.schema_name, d.created_by, d.created_at, d.updated_at, d.started_at, d.ended_at,
       d.stop_requested_at, d.owner, d.progress, d.sim_time, d.sim_wall_at, d.relayed,
       d.error, d.version, d.report IS NOT NULL AS has_report,
       CASE WHEN $2::boolean THEN d.scenario END AS scenario,
       ARRAY(SELECT p.person_id FROM drill_participants AS p
             WHERE p.drill_id = d.id ORDER BY p.person_id) AS participants
FROM drills AS d
LEFT JOIN jurisdictions AS j ON j.code = d.scope_code
WHERE d.id = $1;

-- name: lock
SELECT d.status, d.stop_requested_at, d.owner, d.version
FROM drills AS d WHERE d.id = $1 FOR UPDATE;

-- name: list
-- Drills visible to a scope ($1 NULL: all), newest first; $2 statuses or NULL; keyset on id.
SELECT d.id, d.name, d.source, d.options, d.status, d.scope_code, j.path AS scope_path,
       d.schema_name, d.created_by, d.created_at, d.updated_at, d.started_at, d.ended_at,
       d.stop_requested_at, d.owner, d.progress, d.sim_time, d.sim_wall_at, d.relayed,
       d.error, d.version, d.report IS NOT NULL AS has_report, NULL::text AS scenario,
       ARRAY(SELECT p.person_id FROM drill_participants AS p
             WHERE p.drill_id = d.id ORDER BY p.person_id) AS participants
FROM drills AS d
LEFT JOIN jurisdictions AS j ON j.code = d.scope_code
WHERE ($1::text IS NULL OR j.path = $1 OR starts_with(j.path, $1 || '/'))
  AND ($2::text[] IS NULL OR d.status = ANY($2::text[]))
  AND ($3::text IS NULL OR d.id < $3)
ORDER BY d.id DESC
LIMIT $4;

-- name: start
UPDATE drills
SET status = 'running', started_at = $2, updated_at = $2, owner = $3, sim_time = $4,
    sim_wall_at = $2, version = version + 1
WHERE id = $1;

-- name: set_status
-- Pause or resume; the simulated clock reading is published with it.
UPDATE drills
SET status = $2, updated_at = $3, sim_time = COALESCE($4, sim_time), sim_wall_at = $3,
    version = version + 1
WHERE id = $1;

-- name: request_stop
UPDATE drills SET stop_requested_at = $2, updated_at = $2, version = version + 1 WHERE id = $1;

-- name: end_unstarted
UPDATE drills
SET status = 'stopped', stop_requested_at = $2, ended_at = $2, updated_at = $2,
    version = version + 1
WHERE id = $1;

-- name: finish
-- The end of a run: final status, the report (if any) and the error (if any).
UPDATE drills
SET status = $2, ended_at = $3, updated_at = $3, report = $4, run = $5, report_html = $6,
    error = $7, progress = CASE WHEN $2 = 'finished' THEN 1 ELSE progress END,
    sim_time = COALESCE($8, sim_time), sim_wall_at = $3, version = version + 1
WHERE id = $1 AND status IN ('running', 'paused')
RETURNING id;

-- name: publish
-- The owner's periodic reading of its drills (no version bump: not a lifecycle change).
UPDATE drills AS d
SET progress = u.progress, sim_time = u.sim_time, sim_wall_at = $4
FROM unnest($1::text[], $2::real[], $3::timestamptz[]) AS u (id, progress, sim_time)
WHERE d.id = u.id AND d.status = 'running';

-- name: watch
-- What the owner reconciles: lifecycle changes made through other instances.
SELECT id, status, stop_requested_at, pokes, version FROM drills WHERE id = ANY($1::text[]);

-- name: poke
UPDATE drills SET pokes = pokes + 1 WHERE id = $1;

-- name: active
-- Drills some instance should be running (for the crash sweep).
SELECT id, schema_name, owner FROM drills WHERE status IN ('running', 'paused') ORDER BY id;

-- name: interrupt
UPDATE drills
SET status = 'interrupted', ended_at = $2, updated_at = $2, error = $3, version = version + 1
WHERE id = $1 AND status IN ('running', 'paused')
RETURNING id;

-- name: report
SELECT d.status, d.report, d.run, d.report_html FROM drills AS d WHERE d.id = $1;

-- name: participating
-- Drills a person takes part in ($2: only these statuses).
SELECT d.id, d.name, d.status, d.options, d.started_at, d.sim_time
FROM drill_participants AS p JOIN drills AS d ON d.id = p.drill_id
WHERE p.person_id = $1 AND d.status = ANY($2::text[])
ORDER BY d.id;

-- name: is_participant
SELECT EXISTS (SELECT 1 FROM drill_participants WHERE drill_id = $1 AND person_id = $2);

-- name: relay_mark
UPDATE drills SET relayed_outbox_id = $2, relayed = relayed + $3 WHERE id = $1
RETURNING relayed_outbox_id;

-- name: relay_position
SELECT relayed_outbox_id FROM drills WHERE id = $1 FOR UPDATE;

-- name: relay_insert
-- Exercise-marked copies of drill messages in the live outbox (sequence numbers by trigger).
INSERT INTO outbox (person_id, kind, payload, exercise, created_at)
SELECT m.person_id, m.kind, m.payload, true, $4
FROM unnest($1::text[], $2::text[], $3::jsonb[]) AS m (person_id, kind, payload);

-- name: live_people
-- Active live people among $1 with their jurisdiction paths.
SELECT p.id, j.path FROM people AS p JOIN jurisdictions AS j ON j.code = p.jurisdiction_code
WHERE p.id = ANY($1::text[]) AND p.active;

-- name: drill_outbox
-- New messages to participants in a drill's own outbox. {schema} is a validated drill schema
-- name (drills.isolation), quoted; the only dynamic part of these queries.
SELECT o.id, o.person_id, o.kind, o.payload, o.created_at
FROM {schema}.outbox AS o
WHERE o.id > $1 AND o.person_id = ANY($2::text[])
ORDER BY o.id;

-- name: drill_outbox_max
SELECT COALESCE(max(o.id), 0) FROM {schema}.outbox AS o;

-- name: drill_assignments
-- A drill's assignments of the given people (the participants' part of the report).
SELECT a.id, a.person_id, a.incident_id, a.skill, a.status, a.offered_at, a.accepted_at,
       a.declined_at, a.expired_at, a.withdrawn_at, a.decline_reason
FROM {schema}.assignments AS a
WHERE a.person_id = ANY($1::text[])
ORDER BY a.person_id, a.offered_at NULLS LAST, a.id;
