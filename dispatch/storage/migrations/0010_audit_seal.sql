-- Sealing the audit chain without serialising every audited commit.
--
-- Until now each audited transaction took the chain lock at commit and held it through the
-- commit's disk flush, so audited writes (every answer of every volunteer) committed one at a
-- time. Now a committing transaction seals only if the lock is free: it then seals every row
-- that is visible and not yet in the chain (its own, and those that others committed while it
-- was busy), in id order. A transaction that finds the lock taken commits its rows unsealed;
-- the next sealer picks them up, and the service's sweeper (``audit_seal()`` about once a
-- second) makes sure that happens in quiet times too. Readers of the chain seal first.
-- The chain itself is unchanged: linear, gap-free ``seq``, each hash over the row and the
-- previous hash. An unsealed row can only ever receive its seal (audit_log_forbid_change).

CREATE INDEX audit_log_unsealed_idx ON audit_log (id) WHERE seq IS NULL;

-- Seal every visible unsealed row, oldest id first. The caller holds the chain lock.
CREATE FUNCTION audit_seal_visible() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    last_seq  bigint;
    last_hash text;
    r         audit_log%ROWTYPE;
    n         integer := 0;
BEGIN
    SELECT seq, hash INTO last_seq, last_hash
    FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1;
    last_seq := COALESCE(last_seq, 0);
    last_hash := COALESCE(last_hash, repeat('0', 64));
    FOR r IN SELECT * FROM audit_log WHERE seq IS NULL ORDER BY id FOR UPDATE LOOP
        r.seq := last_seq + 1;
        r.prev_hash := last_hash;
        r.at := date_trunc('microseconds', r.at);
        r.hash := audit_row_hash(r);
        UPDATE audit_log SET seq = r.seq, prev_hash = r.prev_hash, at = r.at, hash = r.hash
        WHERE id = r.id;
        last_seq := r.seq;
        last_hash := r.hash;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

-- At commit (deferred constraint trigger): seal if nobody else is sealing right now.
CREATE OR REPLACE FUNCTION audit_log_seal() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_try_advisory_xact_lock(1836413812, 1) THEN
        PERFORM audit_seal_visible();
    END IF;
    RETURN NULL;
END
$$;

-- The sweeper and the readers: wait for the lock, then seal what is pending.
CREATE FUNCTION audit_seal() RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1836413812, 1);
    RETURN audit_seal_visible();
END
$$;
