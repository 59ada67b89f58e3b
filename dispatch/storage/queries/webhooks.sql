-- name: insert_endpoint
-- $1 url, $2 jurisdiction, $3 kinds, $4 description, $5 secret, $6 enabled, $7 now
INSERT INTO webhook_endpoints (url, jurisdiction_code, kinds, description, secret, enabled,
                               created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
RETURNING *;

-- name: get_endpoint
SELECT e.*, j.path
FROM webhook_endpoints AS e
JOIN jurisdictions AS j ON j.code = e.jurisdiction_code
WHERE e.id = $1;

-- name: get_endpoint_for_update
SELECT e.*, j.path
FROM webhook_endpoints AS e
JOIN jurisdictions AS j ON j.code = e.jurisdiction_code
WHERE e.id = $1
FOR UPDATE OF e;

-- name: list_endpoints
-- $1 scope path (NULL = all), $2 cursor (id), $3 limit
SELECT e.*, j.path
FROM webhook_endpoints AS e
JOIN jurisdictions AS j ON j.code = e.jurisdiction_code
WHERE ($1::text IS NULL OR j.path = $1 OR starts_with(j.path, $1 || '/'))
  AND ($2::text IS NULL OR e.id > $2)
ORDER BY e.id
LIMIT $3;

-- name: endpoint_stats
SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'delivered') AS delivered,
       count(*) FILTER (WHERE status = 'dead') AS dead
FROM webhook_deliveries
WHERE endpoint_id = $1;

-- name: update_endpoint
-- $1 id, $2 url, $3 kinds, $4 description, $5 enabled, $6 now
UPDATE webhook_endpoints
SET url = $2, kinds = $3, description = $4, enabled = $5, updated_at = $6, version = version + 1
WHERE id = $1
RETURNING *;

-- name: rotate_secret
-- $1 id, $2 new secret, $3 keep the old one until (NULL = drop it now), $4 now
UPDATE webhook_endpoints
SET previous_secret = CASE WHEN $3::timestamptz IS NULL THEN NULL ELSE secret END,
    previous_secret_expires_at = $3,
    secret = $2,
    updated_at = $4,
    version = version + 1
WHERE id = $1
RETURNING *;

-- name: delete_endpoint
DELETE FROM webhook_endpoints WHERE id = $1;

-- name: list_deliveries
-- $1 endpoint, $2 status (NULL = any), $3 cursor (n), $4 limit
SELECT d.*, o.person_id, o.seq, o.kind, o.exercise
FROM webhook_deliveries AS d
JOIN outbox AS o ON o.id = d.outbox_id
WHERE d.endpoint_id = $1
  AND ($2::text IS NULL OR d.status = $2)
  AND ($3::bigint IS NULL OR d.n > $3)
ORDER BY d.n
LIMIT $4;

-- name: replay_one
-- A dead delivery back to pending, attempts reset, due at $3. The last error stays as history.
UPDATE webhook_deliveries AS d
SET status = 'pending', attempts = 0, next_attempt_at = $3, dead_at = NULL
FROM outbox AS o
WHERE d.id = $2 AND d.endpoint_id = $1 AND d.status = 'dead' AND o.id = d.outbox_id
RETURNING d.*, o.person_id, o.seq, o.kind, o.exercise;

-- name: delivery_status
SELECT status FROM webhook_deliveries WHERE id = $2 AND endpoint_id = $1;

-- name: replay_dead
UPDATE webhook_deliveries
SET status = 'pending', attempts = 0, next_attempt_at = $2, dead_at = NULL
WHERE endpoint_id = $1 AND status = 'dead'
RETURNING id;

-- name: notify
SELECT pg_notify(muster_channel('muster_webhooks'), $1);

-- name: claim_endpoint
-- One enabled endpoint with due deliveries and no live lease, most overdue first; the lease is
-- written on the endpoint row, so a competing claim that waited for this row re-checks
-- lease_until on the new version and skips it. $1 now, $2 lease until, $3 owner.
WITH pick AS (
    SELECT e.id
    FROM webhook_endpoints AS e
    WHERE e.enabled
      AND (e.lease_until IS NULL OR e.lease_until <= $1)
      AND EXISTS (SELECT 1 FROM webhook_deliveries AS d
                  WHERE d.endpoint_id = e.id AND d.status = 'pending'
                    AND d.next_attempt_at <= $1)
    ORDER BY (SELECT min(d.next_attempt_at) FROM webhook_deliveries AS d
              WHERE d.endpoint_id = e.id AND d.status = 'pending'), e.id
    LIMIT 1
    FOR UPDATE OF e SKIP LOCKED
)
UPDATE webhook_endpoints AS e
SET lease_until = $2, lease_owner = $3
FROM pick
WHERE e.id = pick.id
RETURNING e.id, e.url, e.secret, e.previous_secret, e.previous_secret_expires_at;

-- name: due_batch
-- $1 endpoint, $2 now, $3 limit: the endpoint's due deliveries in message order.
SELECT d.id, d.attempts, o.id AS outbox_id, o.person_id, o.seq, o.kind, o.payload, o.exercise,
       o.created_at
FROM webhook_deliveries AS d
JOIN outbox AS o ON o.id = d.outbox_id
WHERE d.endpoint_id = $1 AND d.status = 'pending' AND d.next_attempt_at <= $2
ORDER BY d.n
LIMIT $3;

-- name: record_delivered
-- $1 delivery, $2 now, $3 HTTP status
UPDATE webhook_deliveries
SET status = 'delivered', attempts = attempts + 1, last_attempt_at = $2, delivered_at = $2,
    last_status_code = $3, last_error = NULL, next_attempt_at = NULL
WHERE id = $1 AND status = 'pending';

-- name: record_failed
-- $1 delivery, $2 now, $3 HTTP status or NULL, $4 error, $5 next attempt (NULL = dead-letter)
UPDATE webhook_deliveries
SET attempts = attempts + 1, last_attempt_at = $2::timestamptz, last_status_code = $3,
    last_error = $4,
    status = CASE WHEN $5::timestamptz IS NULL THEN 'dead' ELSE 'pending' END,
    next_attempt_at = $5,
    dead_at = CASE WHEN $5::timestamptz IS NULL THEN $2::timestamptz END
WHERE id = $1 AND status = 'pending';

-- name: renew_lease
UPDATE webhook_endpoints SET lease_until = $3 WHERE id = $1 AND lease_owner = $2;

-- name: release_lease
UPDATE webhook_endpoints SET lease_until = NULL, lease_owner = NULL
WHERE id = $1 AND lease_owner = $2;

-- name: next_due
-- The earliest moment a delivery becomes sendable (an endpoint's lease holds its rows back).
SELECT min(GREATEST(d.next_attempt_at, COALESCE(e.lease_until, '-infinity'::timestamptz)))
FROM webhook_deliveries AS d
JOIN webhook_endpoints AS e ON e.id = d.endpoint_id
WHERE d.status = 'pending' AND e.enabled;
