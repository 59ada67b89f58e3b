-- Webhooks for gateways (SMS and chat bridges): endpoints per jurisdiction and one delivery row
-- per (endpoint, outbox message). Deliveries are enqueued by a trigger on outbox, in the same
-- transaction as the message, so nothing written to the outbox can be missed. All times come from
-- the application's Clock (message times and parameters), never now().

CREATE TABLE webhook_endpoints (
    id                          text PRIMARY KEY
                                DEFAULT ('wh-' || replace(gen_random_uuid()::text, '-', '')),
    url                         text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2000),
    jurisdiction_code           text NOT NULL REFERENCES jurisdictions (code),
    -- NULL: every kind of message; otherwise only these kinds.
    kinds                       text[] CHECK (kinds IS NULL OR cardinality(kinds) > 0),
    description                 text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    -- A shared signing secret (HMAC key), not a password: it has to be readable to sign.
    secret                      text NOT NULL,
    -- After a rotation with a grace period the old secret also signs until it expires.
    previous_secret             text,
    previous_secret_expires_at  timestamptz,
    enabled                     boolean NOT NULL DEFAULT true,
    -- Which dispatcher is sending to this endpoint now, until when (crash: the lease runs out).
    lease_until                 timestamptz,
    lease_owner                 text,
    version                     integer NOT NULL DEFAULT 1,
    created_at                  timestamptz NOT NULL,
    updated_at                  timestamptz NOT NULL,
    CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);
CREATE INDEX webhook_endpoints_jurisdiction_idx ON webhook_endpoints (jurisdiction_code);

CREATE TABLE webhook_deliveries (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Insertion order: per-endpoint send order and keyset pagination.
    n                 bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    endpoint_id       text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    outbox_id         bigint NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at   timestamptz,
    last_attempt_at   timestamptz,
    last_status_code  integer,
    last_error        text,
    delivered_at      timestamptz,
    dead_at           timestamptz,
    created_at        timestamptz NOT NULL,
    UNIQUE (endpoint_id, outbox_id),
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL)),
    CHECK (status <> 'delivered' OR delivered_at IS NOT NULL),
    CHECK (status <> 'dead' OR dead_at IS NOT NULL)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_pending_order_idx ON webhook_deliveries (endpoint_id, n)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_list_idx ON webhook_deliveries (endpoint_id, status, n);

-- One statement-level trigger: send_many() inserts thousands of messages in one statement, and
-- this enqueues all their deliveries in one INSERT ... SELECT. A message goes to every enabled
-- endpoint whose jurisdiction subtree holds the recipient's jurisdiction and whose kinds (if
-- any) include the message's kind. Due at the message's own (Clock) time.
CREATE FUNCTION webhook_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    added bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries (endpoint_id, outbox_id, next_attempt_at, created_at)
    SELECT e.id, m.id, m.created_at, m.created_at
    FROM new_messages AS m
    JOIN people AS p ON p.id = m.person_id
    JOIN jurisdictions AS pj ON pj.code = p.jurisdiction_code
    JOIN webhook_endpoints AS e ON e.enabled AND (e.kinds IS NULL OR m.kind = ANY (e.kinds))
    JOIN jurisdictions AS ej ON ej.code = e.jurisdiction_code
    WHERE pj.path = ej.path OR starts_with(pj.path, ej.path || '/')
    ORDER BY m.id, e.id;
    GET DIAGNOSTICS added = ROW_COUNT;
    IF added > 0 THEN
        PERFORM pg_notify(muster_channel('muster_webhooks'), 'enqueued');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_webhooks AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS new_messages
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_enqueue();
