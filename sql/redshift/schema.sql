-- The calls table in Amazon Redshift. Plain SQL that Redshift and PostgreSQL both accept, so the
-- local stand-in runs it as it is. Redshift does not enforce the primary key: writes stay
-- idempotent on id because every insert checks for the id itself (INSERT ... SELECT ... WHERE
-- NOT EXISTS). Widths are in bytes (Redshift VARCHAR), four per character of UTF-8 at most.
CREATE TABLE IF NOT EXISTS calls (
    id               VARCHAR(256)   NOT NULL,
    contact_name     VARCHAR(800)   NOT NULL,
    account_name     VARCHAR(800),
    started_at       TIMESTAMP      NOT NULL,
    duration_seconds BIGINT,
    outcome          VARCHAR(400),
    notes            VARCHAR(65535),
    created_at       TIMESTAMP      NOT NULL,
    PRIMARY KEY (id)
)
