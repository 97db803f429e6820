-- Local backup database (SQLite). Applied on every cold start; every statement is idempotent.
-- Timestamps are stored as fixed-width RFC 3339 UTC text (YYYY-MM-DDTHH:MM:SS.ffffffZ), so that
-- ordering the text orders the instants.
CREATE TABLE IF NOT EXISTS calls (
    id               TEXT PRIMARY KEY NOT NULL,
    contact_name     TEXT NOT NULL,
    account_name     TEXT,
    started_at       TEXT NOT NULL,
    duration_seconds INTEGER,
    outcome          TEXT,
    notes            TEXT,
    created_at       TEXT NOT NULL,
    -- The call as the API writes it in JSON, from the columns above: history copies it out
    -- instead of writing every call anew. Derived, never the record: null until the service
    -- writes it (rows added by hand or by an older version), and cleared by the trigger below
    -- whenever the columns change without it; a call without it is written from its columns.
    answer           TEXT,
    -- When this service last wrote the row (Unix milliseconds): a pull of the replica's whole
    -- window removes calls the warehouse no longer holds, but never one written after the pull
    -- was sent (taken by Redshift meanwhile, not in the pull's snapshot).
    written_at       INTEGER
);

-- History is read newest first, optionally for one contact.
CREATE INDEX IF NOT EXISTS calls_by_start ON calls (started_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS calls_by_contact_start ON calls (contact_name, started_at DESC, id DESC);
-- The calls whose answer is missing, written when the service opens the file.
CREATE INDEX IF NOT EXISTS calls_without_answer ON calls (id) WHERE answer IS NULL;

-- An answer must never outlive the columns it was written from: an update of the columns that
-- leaves the answer as it was clears it (anyone but the service; and the service itself when
-- only the form of stored text changes, whose answer is then written again on the next open).
CREATE TRIGGER IF NOT EXISTS calls_answer_follows
    AFTER UPDATE OF id, contact_name, account_name, started_at, duration_seconds, outcome, notes, created_at
    ON calls
    WHEN NEW.answer IS OLD.answer AND NEW.answer IS NOT NULL
BEGIN
    UPDATE calls SET answer = NULL WHERE rowid = NEW.rowid;
END;

-- Calls written here while Redshift could not take them, waiting to be replayed to Redshift.
-- Written in the same transaction as the call itself.
CREATE TABLE IF NOT EXISTS pending_sync (
    id        TEXT PRIMARY KEY NOT NULL REFERENCES calls (id),
    queued_at TEXT NOT NULL
);

-- Journaled writes that Redshift refused at replay (a value it will not store), set aside so that
-- the rest of the journal replays. The call itself stays in `calls`; the reason is kept here.
-- A conflict is a journaled write whose id Redshift already held with other content: Redshift's
-- version stays there, this one stays in `calls` (pulls do not overwrite a call listed here).
CREATE TABLE IF NOT EXISTS rejected_sync (
    id          TEXT PRIMARY KEY NOT NULL,
    reason      TEXT NOT NULL,
    rejected_at TEXT NOT NULL,
    conflict    INTEGER NOT NULL DEFAULT 0
);

-- Leases by name (`replay`, `pull`): who does a job that one environment at a time should do when
-- several share this file, until when (Unix milliseconds). An expired lease is anyone's.
CREATE TABLE IF NOT EXISTS leases (
    name       TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

-- The local replica of Redshift: one row, written with each successful pull, so that every
-- environment sharing this file knows how fresh the copy is.
CREATE TABLE IF NOT EXISTS replica_state (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    -- When the last successful pull was sent (Unix milliseconds): the copy holds everything
    -- Redshift held then.
    pulled_at       INTEGER NOT NULL,
    -- The warehouse's own clock at that pull (TIMESTAMP text): the next pull asks for calls
    -- ingested since then, less a look-back.
    warehouse_clock TEXT NOT NULL,
    -- The copy holds every call that started after this instant (stored time text); every call
    -- when null (the warehouse held no more calls than the window).
    window_floor    TEXT,
    -- When the whole window was last pulled (Unix milliseconds).
    full_pull_at    INTEGER NOT NULL
);
