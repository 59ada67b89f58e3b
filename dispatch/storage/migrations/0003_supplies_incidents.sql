-- Supplies and incidents: a version per stock line, a ledger of stock movements and the history
-- of incident status changes.

-- Each stock line carries its own version, so two coordinators setting different items of one
-- depot do not conflict. A trigger bumps it on every change of quantity or reserved, whoever
-- makes the change (API, engine reservations, SQL by hand).
ALTER TABLE stock ADD COLUMN version integer NOT NULL DEFAULT 1;

CREATE FUNCTION stock_bump_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.quantity IS DISTINCT FROM OLD.quantity OR NEW.reserved IS DISTINCT FROM OLD.reserved THEN
        NEW.version := OLD.version + 1;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER stock_bump_version BEFORE UPDATE ON stock
    FOR EACH ROW EXECUTE FUNCTION stock_bump_version();

-- Every change of a stock line, with the line as it was left. No foreign key on depot_id: the
-- ledger outlives a deleted depot (the audit log records the deletion).
CREATE TABLE stock_movements (
    id              bigserial PRIMARY KEY,
    depot_id        text NOT NULL,
    item            text NOT NULL REFERENCES items (code),
    kind            text NOT NULL
                    CHECK (kind IN ('initial', 'set', 'adjust', 'reserve', 'release', 'dispatch',
                                    'return')),
    delta           bigint NOT NULL,
    quantity_after  bigint NOT NULL CHECK (quantity_after >= 0),
    reserved_after  bigint NOT NULL CHECK (reserved_after >= 0),
    reason          text NOT NULL DEFAULT '',
    actor           text NOT NULL,
    request_id      text,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stock_movements_line_idx ON stock_movements (depot_id, item, id);

-- Who moved an incident from which status to which, and why (feeds after-action timelines).
CREATE TABLE incident_status_history (
    id           bigserial PRIMARY KEY,
    incident_id  text NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    from_status  text,
    to_status    text NOT NULL
                 CHECK (to_status IN ('reported', 'active', 'contained', 'closed')),
    reason       text NOT NULL DEFAULT '',
    actor        text NOT NULL,
    request_id   text,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incident_status_history_idx ON incident_status_history (incident_id, id);
