-- Drills run by the service (the trainer API): a registry in the live schema. Each drill's own
-- data lives in its ``drill_*`` schema (drills/isolation.py), created when it starts and dropped
-- when it ends; the registry keeps the scenario, the options, the lifecycle, the progress
-- published by the instance running it, and the after-action report.
--
-- (Like every migration this also runs in each drill schema, where the tables stay empty.)
-- All times come from the application's Clock (parameters), never now().

CREATE TABLE drills (
    id                 text PRIMARY KEY CHECK (id ~ '^d-[a-z0-9]{1,40}$'),
    name               text NOT NULL,
    -- The scenario as submitted (YAML text), and where it came from ('api' or 'bundled:NAME').
    scenario           text NOT NULL,
    source             text NOT NULL,
    -- {"seed": int, "speed": "max" | "xN", "policy": "optimised" | "greedy"}
    options            jsonb NOT NULL,
    status             text NOT NULL DEFAULT 'created'
                       CHECK (status IN ('created', 'running', 'paused', 'stopped', 'finished',
                                         'failed', 'interrupted')),
    -- Who may see and steer the drill: the snapshot's jurisdiction, else the creator's scope
    -- (NULL: unscoped, visible to unscoped tokens only).
    scope_code         text REFERENCES jurisdictions (code),
    schema_name        text NOT NULL UNIQUE CHECK (schema_name ~ '^drill_[a-z0-9_]{1,50}$'),
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    started_at         timestamptz,
    ended_at           timestamptz,
    -- A stop was asked for; the running instance ends the drill between two events.
    stop_requested_at  timestamptz,
    -- The instance running the drill (it also holds an advisory lock on the drill while it runs,
    -- so another instance can tell a live owner from a crashed one).
    owner              text,
    -- Published by the owner: share of simulated time done, and the simulated clock as of the
    -- wall time sim_wall_at (any instance interpolates the simulated "now" from these).
    progress           real NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    sim_time           timestamptz,
    sim_wall_at        timestamptz,
    -- Answers from real participants taken by other instances (the owner wakes its loop).
    pokes              bigint NOT NULL DEFAULT 0,
    -- Live participation: the highest drill-outbox id already relayed to the live outbox.
    relayed_outbox_id  bigint NOT NULL DEFAULT 0,
    relayed            integer NOT NULL DEFAULT 0,
    report             jsonb,
    run                jsonb,
    report_html        text,
    error              text,
    version            integer NOT NULL DEFAULT 1,
    CHECK ((status IN ('stopped', 'finished', 'failed', 'interrupted')) = (ended_at IS NOT NULL)),
    CHECK (status <> 'finished' OR report IS NOT NULL),
    CHECK (status = 'created' OR started_at IS NOT NULL OR status = 'stopped')
);
CREATE INDEX drills_scope_idx ON drills (scope_code, id);
CREATE INDEX drills_active_idx ON drills (status) WHERE status IN ('running', 'paused');

-- Real people taking part in a live-participation drill: their offers reach their usual streams.
CREATE TABLE drill_participants (
    drill_id   text NOT NULL REFERENCES drills (id) ON DELETE CASCADE,
    person_id  text NOT NULL REFERENCES people (id),
    PRIMARY KEY (drill_id, person_id)
);
CREATE INDEX drill_participants_person_idx ON drill_participants (person_id, drill_id);
