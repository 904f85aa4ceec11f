-- The oldest schema a release may have and still run on this database (db.py: a rollback
-- to the previous release finds a database its successor migrated). Raised only by a
-- migration that declares `-- readable-by: N`; additive migrations leave it alone.
CREATE TABLE schema_floor (
    readable_by INTEGER NOT NULL
);
INSERT INTO schema_floor (readable_by) VALUES (1);
