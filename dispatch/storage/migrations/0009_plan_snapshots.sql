-- Plan snapshots compressed. The solver input of every plan is kept so any decision can be
-- replayed and explained; at city scale it is a few hundred kilobytes of JSON per plan, and
-- storing it as jsonb cost more than everything else a plan stores and changes together.
-- New plans keep it zlib-compressed JSON in ``snapshot_z`` (read back by
-- dispatch/storage/plans.py); older plans keep their jsonb ``snapshot``. One of the two is set.

ALTER TABLE plans ADD COLUMN snapshot_z bytea;
-- Already compressed: no second compression attempt by the server.
ALTER TABLE plans ALTER COLUMN snapshot_z SET STORAGE EXTERNAL;
ALTER TABLE plans ALTER COLUMN snapshot DROP NOT NULL;
ALTER TABLE plans ADD CONSTRAINT plans_snapshot_stored
    CHECK (snapshot IS NOT NULL OR snapshot_z IS NOT NULL);
