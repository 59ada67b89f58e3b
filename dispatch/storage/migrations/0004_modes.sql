-- Modes: routine / emergency IV … I per jurisdiction, the policy each mode puts in force, and
-- the append-only history of every change. See dispatch/modes.py for the inheritance rule.

-- A list of callable pools: non-empty, known names, each at most once.
CREATE FUNCTION mode_pools_valid(pools text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT cardinality(pools) BETWEEN 1 AND 5
       AND pools <@ ARRAY['on_duty_staff', 'staff', 'volunteers', 'reserves', 'mutual_aid']
       AND (SELECT count(DISTINCT p) FROM unnest(pools) AS p) = cardinality(pools)
$$;

CREATE TABLE mode_policies (
    key                       text PRIMARY KEY CHECK (key IN ('routine', 'IV', 'III', 'II', 'I')),
    callable_pools            text[] NOT NULL CHECK (mode_pools_valid(callable_pools)),
    mutual_aid                text NOT NULL
                              CHECK (mutual_aid IN ('none', 'siblings', 'siblings_and_parent')),
    offer_expiry_s            integer NOT NULL CHECK (offer_expiry_s BETWEEN 30 AND 86400),
    replan_every_s            integer NOT NULL CHECK (replan_every_s BETWEEN 5 AND 86400),
    max_travel_minutes        integer NOT NULL CHECK (max_travel_minutes BETWEEN 1 AND 600),
    priority_weights          jsonb NOT NULL
                              CHECK (jsonb_typeof(priority_weights) = 'object'
                                     AND priority_weights ?& ARRAY['1', '2', '3', '4', '5']),
    reassign_penalty_minutes  integer NOT NULL CHECK (reassign_penalty_minutes BETWEEN 0 AND 600),
    suspend_routine_tasks     boolean NOT NULL,
    version                   integer NOT NULL DEFAULT 1,
    updated_at                timestamptz NOT NULL DEFAULT now(),
    CHECK (('mutual_aid' = ANY (callable_pools)) = (mutual_aid <> 'none'))
);

-- The shipped defaults (dispatch.modes.DEFAULT_POLICIES; a test keeps the two equal).
INSERT INTO mode_policies (key, callable_pools, mutual_aid, offer_expiry_s, replan_every_s,
                           max_travel_minutes, priority_weights, reassign_penalty_minutes,
                           suspend_routine_tasks)
VALUES
    ('routine', ARRAY['on_duty_staff'], 'none', 14400, 3600, 30,
     '{"1": 16, "2": 8, "3": 4, "4": 2, "5": 1}', 60, false),
    ('IV', ARRAY['staff'], 'none', 600, 300, 45,
     '{"1": 16, "2": 8, "3": 4, "4": 2, "5": 1}', 30, false),
    ('III', ARRAY['staff', 'volunteers'], 'none', 300, 120, 60,
     '{"1": 16, "2": 8, "3": 4, "4": 2, "5": 1}', 20, false),
    ('II', ARRAY['staff', 'volunteers', 'reserves'], 'none', 180, 60, 75,
     '{"1": 32, "2": 16, "3": 6, "4": 2, "5": 1}', 10, true),
    ('I', ARRAY['staff', 'volunteers', 'reserves', 'mutual_aid'], 'siblings_and_parent', 120, 15, 90,
     '{"1": 64, "2": 24, "3": 8, "4": 2, "5": 1}', 5, true);

-- The current own setting of a node (no row = no setting of its own, i.e. routine).
-- Rows go with their jurisdiction; mode_history keeps the record.
CREATE TABLE jurisdiction_modes (
    code     text PRIMARY KEY REFERENCES jurisdictions (code) ON DELETE CASCADE,
    mode     text NOT NULL CHECK (mode IN ('routine', 'emergency')),
    level    text CHECK (level IN ('IV', 'III', 'II', 'I')),
    reason   text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    set_by   text NOT NULL,
    set_at   timestamptz NOT NULL DEFAULT now(),
    version  integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    CHECK ((mode = 'emergency') = (level IS NOT NULL))
);
CREATE INDEX jurisdiction_modes_emergency_idx ON jurisdiction_modes (code)
    WHERE mode = 'emergency';

-- Every change of an own setting, append-only. No foreign key: the history outlives the node.
CREATE TABLE mode_history (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    jurisdiction_code  text NOT NULL,
    from_mode          text CHECK (from_mode IN ('routine', 'emergency')),
    from_level         text CHECK (from_level IN ('IV', 'III', 'II', 'I')),
    to_mode            text NOT NULL CHECK (to_mode IN ('routine', 'emergency')),
    to_level           text CHECK (to_level IN ('IV', 'III', 'II', 'I')),
    reason             text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    actor              text NOT NULL,
    actor_role         text NOT NULL,
    at                 timestamptz NOT NULL DEFAULT clock_timestamp(),
    request_id         text,
    -- from_* is NULL when the node had no own setting before.
    CHECK (CASE WHEN from_mode IS NULL THEN from_level IS NULL
                ELSE (from_mode = 'emergency') = (from_level IS NOT NULL) END),
    CHECK ((to_mode = 'emergency') = (to_level IS NOT NULL))
);
CREATE INDEX mode_history_node_idx ON mode_history (jurisdiction_code, id);

CREATE FUNCTION mode_history_forbid_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'mode_history is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER mode_history_no_update BEFORE UPDATE OR DELETE ON mode_history
    FOR EACH ROW EXECUTE FUNCTION mode_history_forbid_change();
CREATE TRIGGER mode_history_no_truncate BEFORE TRUNCATE ON mode_history
    FOR EACH STATEMENT EXECUTE FUNCTION mode_history_forbid_change();
