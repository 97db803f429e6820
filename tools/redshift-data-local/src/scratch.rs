//! Scratch databases, so that tests running at the same time on one
//! PostgreSQL server never see each other's tables.

use tokio_postgres::{Config, NoTls};
use uuid::Uuid;

use crate::error::StandInError;

/// Creates a uniquely named database on the server of `admin_url` and returns
/// its URL, so that concurrently running tests each get their own.
pub async fn create_scratch_database(admin_url: &str) -> Result<String, StandInError> {
    let config: Config = admin_url
        .parse()
        .map_err(StandInError::InvalidDatabaseUrl)?;
    let (client, connection) = config.connect(NoTls).await.map_err(StandInError::database(
        "connecting to create a scratch database",
    ))?;
    let driver = tokio::spawn(connection);
    let name = format!("scratch_{}", Uuid::new_v4().simple());
    let created = client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .map_err(StandInError::database("creating a scratch database"));
    drop(client);
    // The connection ends once the client is gone; its outcome is irrelevant.
    let _ = driver.await;
    created.map(|()| with_database(admin_url, &name))
}

/// The connection string `url` pointed at database `name`. Both URL
/// (`postgres://...`) and key-value (`host=... dbname=...`) forms are
/// understood; in the latter, a later `dbname` overrides an earlier one.
fn with_database(url: &str, name: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return format!("{url} dbname={name}");
    };
    let authority_start = scheme_end + 3;
    let query_start = url.find('?').unwrap_or(url.len());
    let path_start = url[authority_start..query_start]
        .find('/')
        .map_or(query_start, |i| authority_start + i);
    format!("{}/{name}{}", &url[..path_start], &url[query_start..])
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_or_adds_the_database() {
        assert_eq!(
            with_database("postgres://u@h:5/postgres?sslmode=disable", "x"),
            "postgres://u@h:5/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
        assert_eq!(
            with_database("host=h user=u", "x"),
            "host=h user=u dbname=x"
        );
    }
}
