-- The table writers lock to take turns: an insert of calls first runs `LOCK calls_write_lock`, so
-- that its check for the id and its insert cannot interleave with another writer's. It holds no
-- rows; locking it blocks only other writers, never a reader of `calls` (locking `calls` itself
-- would make every reader wait for every writer).
CREATE TABLE IF NOT EXISTS calls_write_lock (
    id INTEGER NOT NULL
)
