-- The calls table in Amazon Redshift. `call-history migrate` creates it, or brings an older one up
-- to date (it adds `ingested_at` to a table made before that column existed).
--
-- Redshift does not enforce the primary key: writes stay idempotent on id because every insert
-- checks for the id itself (INSERT ... SELECT ... WHERE NOT EXISTS) while holding the lock of
-- `calls_write_lock` (write_lock.sql). Widths are in bytes (Redshift VARCHAR), four per character
-- of UTF-8 at most.
--
-- `ingested_at` is set by the warehouse (GETDATE(): the start of the inserting statement) and is
-- what the service's local replicas pull by: rows ingested since their last pull, with a
-- look-back for transactions that commit late. History is read newest first, so the table is
-- sorted by `started_at`; DISTSTYLE AUTO lets Redshift copy a small table to every node and
-- spread it once it grows.
CREATE TABLE IF NOT EXISTS calls (
    id               VARCHAR(256)   NOT NULL,
    contact_name     VARCHAR(800)   NOT NULL,
    account_name     VARCHAR(800),
    started_at       TIMESTAMP      NOT NULL,
    duration_seconds BIGINT,
    outcome          VARCHAR(400),
    notes            VARCHAR(65535),
    created_at       TIMESTAMP      NOT NULL,
    ingested_at      TIMESTAMP      DEFAULT GETDATE(),
    PRIMARY KEY (id)
)
DISTSTYLE AUTO
SORTKEY (started_at)
