-- Delivery: cross-instance fan-out of outbox messages and of coordinator events through
-- LISTEN/NOTIFY, and the last sequence number each person acknowledged (observability only;
-- delivery never depends on it).
--
-- Channels (payloads stay far below PostgreSQL's 8000-byte limit):
--   muster_outbox  comma-separated distinct person ids that got messages in one statement,
--                  at most 100 ids a notification ("ids", never message contents)
--   muster_events  {"schema": S, "events": [{"kind", "id", "path", "summary"}, ...]}, events
--                  packed greedily up to about 7000 bytes a notification; no personal data.
-- Notifications are sent at commit, so a listener that is woken always finds the rows.
-- Channels carrying no schema in their payload are per schema (muster_channel): a drill runs in
-- its own schema of the same database, and its writes must not wake live listeners.

CREATE FUNCTION muster_channel(base text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN current_schema() = 'public' THEN base ELSE base || ':' || current_schema() END
$$;

CREATE TABLE delivery_acks (
    person_id       text PRIMARY KEY REFERENCES people (id),
    last_acked_seq  bigint NOT NULL CHECK (last_acked_seq >= 0),
    acked_at        timestamptz NOT NULL
);

-- One statement-level trigger: send_many() writes thousands of messages in one statement and
-- listeners get one short notification per 100 recipients, not one per message.
CREATE FUNCTION outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ids text;
BEGIN
    FOR ids IN
        SELECT string_agg(person_id, ',' ORDER BY person_id)
        FROM (
            SELECT person_id, (row_number() OVER (ORDER BY person_id) - 1) / 100 AS chunk
            FROM (SELECT DISTINCT person_id FROM new_outbox) AS d
        ) AS c
        GROUP BY chunk
    LOOP
        PERFORM pg_notify(muster_channel('muster_outbox'), ids);
    END LOOP;
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS new_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Pack events into as few notifications as fit; the schema lets a listener ignore drills that
-- run in their own schema of the same database.
CREATE FUNCTION muster_emit_events(schema_name text, events jsonb[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    ev     jsonb;
    piece  text;
    batch  text := '';
    head   text := '{"schema":' || to_json(schema_name)::text || ',"events":[';
BEGIN
    IF events IS NULL THEN
        RETURN;
    END IF;
    FOREACH ev IN ARRAY events LOOP
        piece := ev::text;
        IF batch <> '' AND octet_length(batch) + octet_length(piece) > 7000 THEN
            PERFORM pg_notify('muster_events', head || batch || ']}');
            batch := '';
        END IF;
        batch := CASE WHEN batch = '' THEN piece ELSE batch || ',' || piece END;
    END LOOP;
    IF batch <> '' THEN
        PERFORM pg_notify('muster_events', head || batch || ']}');
    END IF;
END
$$;

CREATE FUNCTION incident_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM muster_emit_events(TG_TABLE_SCHEMA, (
            SELECT array_agg(jsonb_build_object(
                'kind', 'incident_created', 'id', n.id, 'path', j.path,
                'summary', jsonb_build_object(
                    'jurisdiction', n.jurisdiction_code, 'type', n.type, 'title', n.title,
                    'priority', n.priority, 'status', n.status, 'version', n.version))
                ORDER BY n.id)
            FROM new_incidents AS n JOIN jurisdictions AS j ON j.code = n.jurisdiction_code));
    ELSE
        PERFORM muster_emit_events(TG_TABLE_SCHEMA, (
            SELECT array_agg(jsonb_build_object(
                'kind', CASE WHEN n.status <> o.status THEN 'incident_status'
                             ELSE 'incident_updated' END,
                'id', n.id, 'path', j.path,
                'summary', jsonb_build_object(
                    'jurisdiction', n.jurisdiction_code, 'type', n.type, 'title', n.title,
                    'priority', n.priority, 'status', n.status, 'previous_status', o.status,
                    'version', n.version))
                ORDER BY n.id)
            FROM new_incidents AS n
            JOIN old_incidents AS o ON o.id = n.id
            JOIN jurisdictions AS j ON j.code = n.jurisdiction_code
            WHERE n.version <> o.version OR n.status <> o.status));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER incident_events_insert AFTER INSERT ON incidents
    REFERENCING NEW TABLE AS new_incidents
    FOR EACH STATEMENT EXECUTE FUNCTION incident_events();
CREATE TRIGGER incident_events_update AFTER UPDATE ON incidents
    REFERENCING OLD TABLE AS old_incidents NEW TABLE AS new_incidents
    FOR EACH STATEMENT EXECUTE FUNCTION incident_events();

-- New assignments (offers, pins) and status changes (answers, expiry, withdrawal, release).
-- The path is the incident's jurisdiction: that is what scopes an assignment.
CREATE FUNCTION assignment_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM muster_emit_events(TG_TABLE_SCHEMA, (
            SELECT array_agg(jsonb_build_object(
                'kind', 'assignment_status', 'id', n.id, 'path', j.path,
                'summary', jsonb_build_object(
                    'incident', n.incident_id, 'person', n.person_id, 'skill', n.skill,
                    'status', n.status, 'previous_status', NULL))
                ORDER BY n.id)
            FROM new_assignments AS n
            JOIN incidents AS i ON i.id = n.incident_id
            JOIN jurisdictions AS j ON j.code = i.jurisdiction_code));
    ELSE
        PERFORM muster_emit_events(TG_TABLE_SCHEMA, (
            SELECT array_agg(jsonb_build_object(
                'kind', 'assignment_status', 'id', n.id, 'path', j.path,
                'summary', jsonb_build_object(
                    'incident', n.incident_id, 'person', n.person_id, 'skill', n.skill,
                    'status', n.status, 'previous_status', o.status))
                ORDER BY n.id)
            FROM new_assignments AS n
            JOIN old_assignments AS o ON o.id = n.id
            JOIN incidents AS i ON i.id = n.incident_id
            JOIN jurisdictions AS j ON j.code = i.jurisdiction_code
            WHERE n.status <> o.status));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER assignment_events_insert AFTER INSERT ON assignments
    REFERENCING NEW TABLE AS new_assignments
    FOR EACH STATEMENT EXECUTE FUNCTION assignment_events();
CREATE TRIGGER assignment_events_update AFTER UPDATE ON assignments
    REFERENCING OLD TABLE AS old_assignments NEW TABLE AS new_assignments
    FOR EACH STATEMENT EXECUTE FUNCTION assignment_events();

-- A plan is announced once, at commit, with its final counts (apply_plan fills them in after
-- the insert). Plans span jurisdictions: the path is NULL and the summary holds counts only.
CREATE FUNCTION plan_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM muster_emit_events(TG_TABLE_SCHEMA, (
        SELECT array_agg(jsonb_build_object(
            'kind', 'plan_stored', 'id', p.id::text, 'path', NULL,
            'summary', jsonb_build_object(
                'status', p.status, 'method', p.method, 'created_at', p.created_at,
                'solve_seconds', p.solve_seconds, 'offers_made', p.offers_made,
                'withdrawn', p.withdrawn, 'allocations_made', p.allocations_made)))
        FROM plans AS p WHERE p.id = NEW.id));
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER plan_events AFTER INSERT ON plans
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION plan_events();
