-- name: after
-- Messages to one person after a sequence number, oldest first ($3 = page size).
SELECT seq, kind, payload, exercise, created_at
FROM outbox
WHERE person_id = $1 AND seq > $2
ORDER BY seq
LIMIT $3;

-- name: after_many
-- The same for many people at once, each after their own position ($1 people, $2 positions,
-- $3 messages per person at most); one index range scan per person.
SELECT o.person_id, o.seq, o.kind, o.payload, o.exercise, o.created_at
FROM unnest($1::text[], $2::bigint[]) AS c (person_id, after_seq)
CROSS JOIN LATERAL (
    SELECT m.person_id, m.seq, m.kind, m.payload, m.exercise, m.created_at
    FROM outbox AS m
    WHERE m.person_id = c.person_id AND m.seq > c.after_seq
    ORDER BY m.seq
    LIMIT $3
) AS o
ORDER BY o.person_id, o.seq;

-- name: last_seq
SELECT COALESCE((SELECT last_seq FROM outbox_counters WHERE person_id = $1), 0) AS last_seq;

-- name: record_ack
-- Keep the highest sequence a person acknowledged; an older ack never moves it back.
INSERT INTO delivery_acks AS d (person_id, last_acked_seq, acked_at)
VALUES ($1, $2, $3)
ON CONFLICT (person_id) DO UPDATE
SET last_acked_seq = GREATEST(d.last_acked_seq, EXCLUDED.last_acked_seq),
    acked_at = EXCLUDED.acked_at
RETURNING last_acked_seq;

-- name: last_ack
SELECT COALESCE((SELECT last_acked_seq FROM delivery_acks WHERE person_id = $1), 0) AS last_ack;
