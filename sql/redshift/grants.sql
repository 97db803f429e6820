-- What the database user of the call history function may do, and nothing more. Run once, after
-- `make migrate` has created the tables, as their owner or a superuser (the Redshift query
-- editor will do). Before running it, replace call_history_service everywhere with the user the
-- function signs in as:
--
--   RedshiftDbUser (a provisioned cluster, IAM temporary credentials): that user, e.g. app_user;
--   RedshiftSecretArn: the username in the secret;
--   a Serverless workgroup without a secret: "IAMR:<FunctionRoleName>", the stack's output, in
--     double quotes; create it first with CREATE USER "IAMR:<FunctionRoleName>" PASSWORD DISABLE;
--     (the function's first sign-in would create it too, without these grants).
--
-- The function reads and adds calls; it never deletes, alters or drops anything, so those
-- privileges are not granted. `make migrate` runs as a user who may create tables (the owner
-- of the schema, say), not as this one.

-- The tables live in the public schema (the function names them without a schema).
GRANT USAGE ON SCHEMA public TO call_history_service;

-- calls: history, reads by id and the replica's pulls (SELECT); new and replayed calls
-- (INSERT). The function never changes or locks a stored call.
GRANT SELECT, INSERT ON TABLE calls TO call_history_service;

-- calls_write_lock: a table that holds no rows. Every write transaction begins with
-- `LOCK calls_write_lock`, so that checking an id and inserting it are one atomic step
-- (Redshift enforces no primary key) while readers of calls are never blocked. Redshift has no
-- LOCK privilege (its GRANT knows SELECT, INSERT, UPDATE, DELETE, DROP, REFERENCES) and its
-- documentation names none for LOCK, which takes an ACCESS EXCLUSIVE lock; PostgreSQL, which
-- Redshift descends from, asks UPDATE (or DELETE) for that lock, and the local stand-in checks
-- exactly these grants on PostgreSQL (tests/redshift_grants.rs). Check once on your cluster,
-- signed in as the function's user: BEGIN; LOCK calls_write_lock; END;
GRANT SELECT, UPDATE ON TABLE calls_write_lock TO call_history_service;
