-- Muster foundation: jurisdictions, roster, supplies, incidents, tokens, audit, idempotency.
-- Never edit a landed migration; add a new numbered file instead.

CREATE TABLE jurisdictions (
    code         text PRIMARY KEY CHECK (code ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    parent_code  text REFERENCES jurisdictions (code) ON DELETE RESTRICT,
    path         text COLLATE "C" NOT NULL UNIQUE,
    kind         text NOT NULL CHECK (kind IN ('city', 'district', 'street', 'community', 'grid')),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    centre_lat   double precision CHECK (centre_lat BETWEEN -90 AND 90),
    centre_lon   double precision CHECK (centre_lon BETWEEN -180 AND 180),
    boundary     jsonb,
    version      integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((centre_lat IS NULL) = (centre_lon IS NULL)),
    CHECK (parent_code IS DISTINCT FROM code)
);
CREATE INDEX jurisdictions_parent_idx ON jurisdictions (parent_code);

CREATE TABLE people (
    id                 text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$'),
    kind               text NOT NULL CHECK (kind IN ('volunteer', 'staff')),
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    jurisdiction_code  text NOT NULL REFERENCES jurisdictions (code),
    home_lat           double precision NOT NULL CHECK (home_lat BETWEEN -90 AND 90),
    home_lon           double precision NOT NULL CHECK (home_lon BETWEEN -180 AND 180),
    contacts           jsonb NOT NULL DEFAULT '{}',
    skills             jsonb NOT NULL DEFAULT '[]',
    certifications     jsonb NOT NULL DEFAULT '[]',
    availability       jsonb NOT NULL DEFAULT '{"weekly": [], "exceptions": []}',
    max_hours_per_24h  real NOT NULL DEFAULT 12 CHECK (max_hours_per_24h > 0 AND max_hours_per_24h <= 24),
    min_rest_hours     real NOT NULL DEFAULT 8 CHECK (min_rest_hours >= 0 AND min_rest_hours <= 72),
    reserve            boolean NOT NULL DEFAULT false,
    active             boolean NOT NULL DEFAULT true,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX people_jurisdiction_idx ON people (jurisdiction_code, id);
CREATE INDEX people_skills_idx ON people USING gin (skills jsonb_path_ops);

CREATE TABLE items (
    code  text PRIMARY KEY CHECK (code ~ '^[a-z0-9][a-z0-9_]{0,63}$'),
    name  text NOT NULL,
    unit  text NOT NULL
);

CREATE TABLE depots (
    id                 text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$'),
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    jurisdiction_code  text NOT NULL REFERENCES jurisdictions (code),
    lat                double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon                double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    active             boolean NOT NULL DEFAULT true,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX depots_jurisdiction_idx ON depots (jurisdiction_code, id);

-- Quantities are whole units of the item's unit; a database constraint keeps them >= 0 and keeps
-- reservations within what is on hand, whatever the code above does.
CREATE TABLE stock (
    depot_id  text NOT NULL REFERENCES depots (id) ON DELETE CASCADE,
    item      text NOT NULL REFERENCES items (code),
    quantity  bigint NOT NULL CHECK (quantity >= 0),
    reserved  bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    PRIMARY KEY (depot_id, item),
    CHECK (reserved <= quantity)
);

CREATE TABLE incidents (
    id                 text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$'),
    type               text NOT NULL CHECK (length(type) BETWEEN 1 AND 64),
    title              text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description        text NOT NULL DEFAULT '',
    lat                double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon                double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    jurisdiction_code  text NOT NULL REFERENCES jurisdictions (code),
    priority           smallint NOT NULL CHECK (priority BETWEEN 1 AND 5),
    status             text NOT NULL DEFAULT 'reported'
                       CHECK (status IN ('reported', 'active', 'contained', 'closed')),
    demands            jsonb NOT NULL DEFAULT '[]',
    supplies           jsonb NOT NULL DEFAULT '{}',
    reported_at        timestamptz NOT NULL DEFAULT now(),
    closed_at          timestamptz,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incidents_jurisdiction_idx ON incidents (jurisdiction_code, id);
CREATE INDEX incidents_open_idx ON incidents (status) WHERE status <> 'closed';

CREATE TABLE api_tokens (
    id                 uuid PRIMARY KEY,
    token_hash         bytea NOT NULL UNIQUE,
    role               text NOT NULL
                       CHECK (role IN ('admin', 'coordinator', 'trainer', 'volunteer', 'observer')),
    jurisdiction_code  text REFERENCES jurisdictions (code),
    person_id          text REFERENCES people (id),
    label              text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT now(),
    revoked_at         timestamptz,
    last_used_at       timestamptz,
    CHECK ((role = 'volunteer') = (person_id IS NOT NULL)),
    CHECK (role = 'admin' OR role = 'volunteer' OR jurisdiction_code IS NOT NULL)
);

CREATE TABLE idempotency_keys (
    token_id       uuid NOT NULL REFERENCES api_tokens (id),
    key            text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    method         text NOT NULL,
    path           text NOT NULL,
    request_hash   text NOT NULL,
    status_code    integer,
    response_body  bytea,
    content_type   text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (token_id, key)
);

-- The audit log is append-only (triggers reject UPDATE, DELETE and TRUNCATE) and hash-chained:
-- each row's hash covers its content and the previous row's hash, so an edit made behind the
-- service's back (with the triggers disabled) is detected by `muster audit verify`.
--
-- Rows are sealed into the chain at COMMIT by a deferred constraint trigger: the chain lock is
-- then taken last, after every row lock of the transaction, so writers cannot deadlock on it,
-- and the chain order is the commit order.
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    seq          bigint UNIQUE,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor        text NOT NULL,
    actor_role   text NOT NULL,
    action       text NOT NULL,
    object_type  text NOT NULL,
    object_id    text NOT NULL,
    before       jsonb,
    after        jsonb,
    request_id   text,
    prev_hash    text,
    hash         text
);
CREATE INDEX audit_object_idx ON audit_log (object_type, object_id, seq);

CREATE FUNCTION audit_row_hash(a audit_log) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(
        jsonb_build_array(
            a.seq,
            to_char(a.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
            a.actor, a.actor_role, a.action, a.object_type, a.object_id,
            a.before, a.after, a.request_id, a.prev_hash
        )::text, 'UTF8')), 'hex')
$$;

CREATE FUNCTION audit_log_seal() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    last_seq  bigint;
    last_hash text;
    r         audit_log%ROWTYPE;
BEGIN
    -- Serialise sealing so the chain is linear; the lock is held until the commit completes.
    PERFORM pg_advisory_xact_lock(1836413812, 1);
    SELECT seq, hash INTO last_seq, last_hash
    FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1;
    SELECT * INTO r FROM audit_log WHERE id = NEW.id;
    r.seq := COALESCE(last_seq, 0) + 1;
    r.prev_hash := COALESCE(last_hash, repeat('0', 64));
    r.at := date_trunc('microseconds', clock_timestamp());
    r.hash := audit_row_hash(r);
    UPDATE audit_log SET seq = r.seq, prev_hash = r.prev_hash, at = r.at, hash = r.hash
    WHERE id = NEW.id;
    RETURN NULL;
END
$$;

CREATE FUNCTION audit_log_forbid_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The only permitted update is the seal of a row not yet in the chain, which happens at the
    -- commit of the transaction that inserted it (so no other session ever sees such a row).
    IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND OLD.hash IS NULL AND NEW.hash IS NOT NULL
       AND (NEW.id, NEW.actor, NEW.actor_role, NEW.action, NEW.object_type, NEW.object_id,
            NEW.before, NEW.after, NEW.request_id)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.actor, OLD.actor_role, OLD.action, OLD.object_type, OLD.object_id,
            OLD.before, OLD.after, OLD.request_id) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE CONSTRAINT TRIGGER audit_log_seal AFTER INSERT ON audit_log
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION audit_log_seal();
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_forbid_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_forbid_change();
