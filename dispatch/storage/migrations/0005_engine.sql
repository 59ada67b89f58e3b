-- Mobilisation engine: plans, assignments, pair rules, allocations, outbox, engine timers,
-- stand-down summaries. All times come from the engine's Clock (parameters), never now(),
-- so drills on simulated time use the same SQL.

CREATE TABLE plans (
    id            bigserial PRIMARY KEY,
    created_at    timestamptz NOT NULL,
    trigger       text NOT NULL,
    snapshot      jsonb NOT NULL,
    result        jsonb NOT NULL,
    status        text NOT NULL,
    method        text NOT NULL,
    solve_seconds double precision NOT NULL CHECK (solve_seconds >= 0),
    offers_made   integer NOT NULL DEFAULT 0,
    withdrawn     integer NOT NULL DEFAULT 0,
    allocations_made integer NOT NULL DEFAULT 0
);

CREATE TABLE assignments (
    id              text PRIMARY KEY DEFAULT ('a-' || replace(gen_random_uuid()::text, '-', '')),
    person_id       text NOT NULL REFERENCES people (id),
    incident_id     text NOT NULL REFERENCES incidents (id),
    skill           text NOT NULL,
    status          text NOT NULL CHECK (status IN ('proposed', 'offered', 'accepted', 'declined',
                        'expired', 'en_route', 'on_scene', 'released', 'withdrawn', 'cancelled')),
    mode_key        text NOT NULL DEFAULT 'routine',
    plan_id         bigint REFERENCES plans (id),
    locked          boolean NOT NULL DEFAULT false,
    pinned          boolean NOT NULL DEFAULT false,
    travel_minutes  real,
    reason          text NOT NULL DEFAULT '',
    offer_deadline  timestamptz,
    decline_reason  text,
    last_lat        double precision CHECK (last_lat BETWEEN -90 AND 90),
    last_lon        double precision CHECK (last_lon BETWEEN -180 AND 180),
    proposed_at     timestamptz NOT NULL,
    offered_at      timestamptz,
    accepted_at     timestamptz,
    declined_at     timestamptz,
    expired_at      timestamptz,
    en_route_at     timestamptz,
    on_scene_at     timestamptz,
    released_at     timestamptz,
    withdrawn_at    timestamptz,
    cancelled_at    timestamptz,
    version         integer NOT NULL DEFAULT 1,
    CHECK (status <> 'offered' OR offer_deadline IS NOT NULL)
);
-- The database, not the code, makes double-booking impossible: one active assignment a person.
CREATE UNIQUE INDEX assignments_one_active_per_person ON assignments (person_id)
    WHERE status IN ('proposed', 'offered', 'accepted', 'en_route', 'on_scene');
CREATE INDEX assignments_incident_idx ON assignments (incident_id, status);
CREATE INDEX assignments_person_idx ON assignments (person_id, proposed_at);
CREATE INDEX assignments_deadline_idx ON assignments (offer_deadline) WHERE status = 'offered';

-- Coordinator pins/forbids and the engine's own exclusions (declined, expired) per pair.
CREATE TABLE pair_rules (
    person_id    text NOT NULL REFERENCES people (id),
    incident_id  text NOT NULL REFERENCES incidents (id),
    rule         text NOT NULL CHECK (rule IN ('pin', 'forbid', 'declined', 'expired')),
    skill        text,
    created_at   timestamptz NOT NULL,
    created_by   text NOT NULL,
    PRIMARY KEY (person_id, incident_id),
    CHECK (rule <> 'pin' OR skill IS NOT NULL)
);

CREATE TABLE allocations (
    id              text PRIMARY KEY DEFAULT ('s-' || replace(gen_random_uuid()::text, '-', '')),
    plan_id         bigint REFERENCES plans (id),
    depot_id        text NOT NULL REFERENCES depots (id),
    incident_id     text NOT NULL REFERENCES incidents (id),
    item            text NOT NULL REFERENCES items (code),
    quantity        bigint NOT NULL CHECK (quantity > 0),
    status          text NOT NULL CHECK (status IN ('reserved', 'dispatched', 'delivered',
                        'returned', 'cancelled')),
    mode_key        text NOT NULL DEFAULT 'routine',
    travel_minutes  real,
    reserved_at     timestamptz NOT NULL,
    dispatched_at   timestamptz,
    delivered_at    timestamptz,
    returned_at     timestamptz,
    cancelled_at    timestamptz,
    version         integer NOT NULL DEFAULT 1
);
CREATE INDEX allocations_incident_idx ON allocations (incident_id, status);

-- One row: the engine's timers. Deadlines of offers live in assignments.offer_deadline.
CREATE TABLE engine_state (
    id              boolean PRIMARY KEY DEFAULT true CHECK (id),
    replan_due_at   timestamptz,
    cadence_due_at  timestamptz,
    generation      bigint NOT NULL DEFAULT 0,
    reasons         text[] NOT NULL DEFAULT '{}',
    last_plan_id    bigint REFERENCES plans (id),
    last_plan_at    timestamptz
);
INSERT INTO engine_state DEFAULT VALUES;

-- Messages to people, written in the transaction of the change that causes them.
CREATE TABLE outbox_counters (
    person_id  text PRIMARY KEY REFERENCES people (id),
    last_seq   bigint NOT NULL
);

CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    person_id   text NOT NULL REFERENCES people (id),
    seq         bigint NOT NULL,
    kind        text NOT NULL,
    payload     jsonb NOT NULL,
    exercise    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL,
    UNIQUE (person_id, seq)
);

CREATE FUNCTION outbox_next_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_counters AS c (person_id, last_seq) VALUES (NEW.person_id, 1)
    ON CONFLICT (person_id) DO UPDATE SET last_seq = c.last_seq + 1
    RETURNING last_seq INTO NEW.seq;
    RETURN NEW;
END
$$;
CREATE TRIGGER outbox_next_seq BEFORE INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_next_seq();

CREATE TABLE stand_downs (
    id                 bigserial PRIMARY KEY,
    jurisdiction_code  text NOT NULL REFERENCES jurisdictions (code),
    at                 timestamptz NOT NULL,
    actor              text NOT NULL,
    reason             text NOT NULL,
    released           integer NOT NULL,
    withdrawn          integer NOT NULL,
    supplies_returned  jsonb NOT NULL,
    hours              jsonb NOT NULL,
    summary            jsonb NOT NULL
);
