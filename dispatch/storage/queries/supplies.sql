-- name: item_get
SELECT * FROM items WHERE code = $1;

-- name: item_insert
INSERT INTO items (code, name, unit) VALUES ($1, $2, $3) RETURNING *;

-- name: item_list
-- $1 cursor (code), $2 limit
SELECT * FROM items WHERE ($1::text IS NULL OR code > $1) ORDER BY code LIMIT $2;

-- name: items_known
SELECT code FROM items WHERE code = ANY($1::text[]);

-- name: depot_get
SELECT d.*, j.path FROM depots d JOIN jurisdictions j ON j.code = d.jurisdiction_code
WHERE d.id = $1;

-- name: depot_get_for_update
-- Serialises changes of one depot and its stock lines; NO KEY so stock inserts (whose foreign
-- key check takes KEY SHARE on the depot) in other transactions are not blocked by it.
SELECT d.*, j.path FROM depots d JOIN jurisdictions j ON j.code = d.jurisdiction_code
WHERE d.id = $1
FOR NO KEY UPDATE OF d;

-- name: depot_get_for_delete
SELECT d.*, j.path FROM depots d JOIN jurisdictions j ON j.code = d.jurisdiction_code
WHERE d.id = $1
FOR UPDATE OF d;

-- name: depot_insert
INSERT INTO depots (id, name, jurisdiction_code, lat, lon, active)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: depot_update
UPDATE depots
SET name = $2, jurisdiction_code = $3, lat = $4, lon = $5, active = $6,
    version = version + 1, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: depot_delete
DELETE FROM depots WHERE id = $1;

-- name: depot_list
-- $1 scope path (NULL = all), $2 under path, $3 item held (quantity > 0), $4 cursor, $5 limit
SELECT d.*, j.path FROM depots d JOIN jurisdictions j ON j.code = d.jurisdiction_code
WHERE ($1::text IS NULL OR j.path = $1 OR starts_with(j.path, $1 || '/'))
  AND ($2::text IS NULL OR j.path = $2 OR starts_with(j.path, $2 || '/'))
  AND ($3::text IS NULL OR EXISTS (
        SELECT 1 FROM stock s WHERE s.depot_id = d.id AND s.item = $3 AND s.quantity > 0))
  AND ($4::text IS NULL OR d.id > $4)
ORDER BY d.id
LIMIT $5;

-- name: stock_of
SELECT * FROM stock WHERE depot_id = ANY($1::text[]) ORDER BY depot_id, item;

-- name: stock_get
SELECT * FROM stock WHERE depot_id = $1 AND item = $2;

-- name: stock_get_for_update
SELECT * FROM stock WHERE depot_id = $1 AND item = $2 FOR UPDATE;

-- name: stock_held
-- Lines that still hold something (a depot with any is not deleted).
SELECT item, quantity, reserved FROM stock
WHERE depot_id = $1 AND (quantity > 0 OR reserved > 0)
ORDER BY item;

-- name: stock_set
INSERT INTO stock (depot_id, item, quantity) VALUES ($1, $2, $3)
ON CONFLICT (depot_id, item) DO UPDATE SET quantity = EXCLUDED.quantity
RETURNING *;

-- name: stock_add
-- The CHECK constraints refuse a result below zero or below reserved, whatever the caller checked.
UPDATE stock SET quantity = quantity + $3 WHERE depot_id = $1 AND item = $2 RETURNING *;

-- name: stock_insert
INSERT INTO stock (depot_id, item, quantity) VALUES ($1, $2, $3) RETURNING *;

-- name: movement_insert
INSERT INTO stock_movements
    (depot_id, item, kind, delta, quantity_after, reserved_after, reason, actor, request_id, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, COALESCE($10, clock_timestamp()))
RETURNING id;
