#![allow(dead_code)] // each bench uses part of it
//! What the benchmarks that need the Redshift stand-in share: a stand-in on a scratch
//! database, and the service built in-process against it.

use call_history::config::Config;
use call_history::App;
use redshift_data_local::{create_scratch_database, Options, StandIn};

/// A configuration from these variables only; a problem in them is a mistake in the bench.
pub fn config(vars: &[(&str, String)]) -> Config {
    let (config, problems) = Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    });
    assert!(problems.is_empty(), "{problems:?}");
    config
}

/// The service on a fresh stand-in, its `calls` table created, with these variables besides
/// the Redshift ones (`SQLITE_PATH` among them).
pub struct OnStandIn {
    pub standin: StandIn,
    pub app: App,
    pub database_url: String,
}

pub async fn on_standin(admin_url: &str, vars: &[(&str, String)]) -> OnStandIn {
    let database_url = create_scratch_database(admin_url)
        .await
        .expect("scratch database");
    let standin = StandIn::start(Options::new(database_url.clone()))
        .await
        .expect("stand-in");
    std::env::set_var("AWS_ENDPOINT_URL_REDSHIFT_DATA", standin.data_api_url());
    std::env::set_var("AWS_ENDPOINT_URL_CLOUDWATCH", standin.cloudwatch_url());
    let mut all = vec![
        ("REDSHIFT_CLUSTER_ID", "bench".to_string()),
        ("REDSHIFT_DATABASE", "bench".to_string()),
        ("REDSHIFT_DB_USER", "bench".to_string()),
    ];
    all.extend(vars.iter().cloned());
    let app = call_history::build_app(&config(&all)).await;
    app.store
        .redshift()
        .expect("configured")
        .migrate()
        .await
        .expect("schema");
    OnStandIn {
        standin,
        app,
        database_url,
    }
}
