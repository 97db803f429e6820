//! `sql/redshift/grants.sql` gives the function's database user what its statements need and
//! nothing more: checked on PostgreSQL, which Redshift descends from and the local stand-in runs
//! on, by running the function's kinds of statement as a user holding only those grants.
//! Needs DATABASE_URL (a PostgreSQL server; `make test` starts one).

mod common;

use tokio_postgres::{Client, NoTls};

const GRANTS: &str = include_str!("../sql/redshift/grants.sql");
/// The placeholder the operator replaces with the function's user.
const PLACEHOLDER: &str = "call_history_service";

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("PostgreSQL at DATABASE_URL");
    tokio::spawn(connection);
    client
}

/// A fresh warehouse with both tables as `call-history migrate` makes them (through the Data
/// API, on the stand-in), a role holding only the grants of the file (under a name of its own:
/// roles are shared by every database of the server), and a session as that role.
async fn as_the_function() -> (Client, String) {
    let redshift = common::Redshift::start(1000).await;
    let app = common::spawn_app_on(&redshift, &[]).await;
    drop(app);
    let client = connect(&redshift.database_url).await;
    let role = format!("svc_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE ROLE {role}"))
        .await
        .expect("role");
    assert!(GRANTS.contains(PLACEHOLDER));
    client
        .batch_execute(&GRANTS.replace(PLACEHOLDER, &role))
        .await
        .expect("grants.sql runs as written");
    client
        .batch_execute(&format!("SET ROLE {role}"))
        .await
        .expect("set role");
    (client, role)
}

/// The error of a statement refused for want of a privilege, or `None` when it ran.
async fn refusal(client: &Client, sql: &str) -> Option<String> {
    let outcome = client.batch_execute(sql).await;
    client.batch_execute("ROLLBACK").await.ok();
    outcome.err().map(|error| {
        error
            .as_db_error()
            .map(|e| e.message().to_string())
            .unwrap_or_default()
    })
}

/// Drops the role again (its grants with it): roles outlive the scratch database.
async fn forget(client: &Client, role: &str) {
    client
        .batch_execute(&format!(
            "RESET ROLE; DROP OWNED BY {role}; DROP ROLE {role}"
        ))
        .await
        .expect("role dropped");
}

const INSERT: &str = "INSERT INTO calls (id, contact_name, started_at, created_at)
    SELECT 'grant-test', 'Ada Lovelace', now(), now()
    WHERE NOT EXISTS (SELECT 1 FROM calls WHERE id = 'grant-test')";

#[tokio::test]
async fn the_grants_let_the_function_lock_read_and_write() {
    let (client, role) = as_the_function().await;
    let transaction = format!("BEGIN; LOCK calls_write_lock; {INSERT}; COMMIT;");
    assert_eq!(refusal(&client, &transaction).await, None);
    let rows = client
        .query("SELECT id FROM calls WHERE id = 'grant-test'", &[])
        .await
        .expect("reads calls");
    assert_eq!(rows.len(), 1, "inserted once, under the lock");
    client
        .query("SELECT id FROM calls_write_lock", &[])
        .await
        .expect("reads the lock table");
    forget(&client, &role).await;
}

#[tokio::test]
async fn the_grants_allow_nothing_the_function_does_not_do() {
    let (client, role) = as_the_function().await;
    for sql in [
        // The function serialises writers on calls_write_lock: it never locks calls itself,
        // which would hold every reader up.
        "BEGIN; LOCK calls; COMMIT;",
        "UPDATE calls SET notes = 'changed'",
        "DELETE FROM calls",
        "TRUNCATE calls",
        "DROP TABLE calls",
        "ALTER TABLE calls ADD COLUMN extra INT",
        "DELETE FROM calls_write_lock",
        "INSERT INTO calls_write_lock (id) VALUES (2)",
    ] {
        let refused = refusal(&client, sql).await;
        assert!(
            refused
                .as_deref()
                .is_some_and(|m| m.contains("permission denied") || m.contains("must be owner")),
            "{sql}: {refused:?}"
        );
    }
    forget(&client, &role).await;
}

#[tokio::test]
async fn without_update_the_lock_is_refused() {
    // Why UPDATE is granted on the lock table: SELECT and INSERT alone do not allow LOCK.
    let (client, role) = as_the_function().await;
    client.batch_execute("RESET ROLE").await.expect("reset");
    client
        .batch_execute(&format!(
            "REVOKE UPDATE ON calls_write_lock FROM {role}; SET ROLE {role}"
        ))
        .await
        .expect("revoke");
    let refused = refusal(&client, "BEGIN; LOCK calls_write_lock; COMMIT;").await;
    assert!(
        refused
            .as_deref()
            .is_some_and(|m| m.contains("permission denied")),
        "{refused:?}"
    );
    forget(&client, &role).await;
}
