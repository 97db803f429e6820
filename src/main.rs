//! Start-up only: configuration, logging, then Lambda or the local server.

use call_history::config::Config;

/// mimalloc: fewer cycles per request than the system allocator for the many small, short-lived
/// allocations of JSON responses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use call_history::server::{self, ServerLimits};
use call_history::{build_app, logging};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("openapi") {
        return write_openapi(args.get(2).map(String::as_str));
    }
    let (config, problems) = Config::from_env();
    logging::init(config.in_lambda);
    for problem in &problems {
        tracing::warn!("⚠️ Configuration: {problem}");
    }
    let app = build_app(&config).await;

    let outcome = match args.get(1).map(String::as_str) {
        Some("migrate") => migrate(&app).await,
        Some("snapshot") => snapshot(&app, args.get(2).map(String::as_str)).await,
        Some("seed-redshift") => call_history::seed_redshift::run(&app)
            .await
            .map_err(Into::into),
        _ => return serve(&config, app).await,
    };
    if let Err(err) = outcome {
        // One sentence, as everything else in the log, rather than the error's debug form.
        tracing::error!("❌ {err}");
        std::process::exit(1);
    }
    Ok(())
}

/// Inside Lambda, the runtime loop; elsewhere, the local server until Ctrl-C.
async fn serve(config: &Config, app: call_history::App) -> Result<(), lambda_http::Error> {
    if config.in_lambda {
        return call_history::lifecycle::run(app, config.post_answer_budget).await;
    }
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], config.port));
    let listener = match server::bind(address).await {
        Ok(listener) => listener,
        Err(err) => {
            // One sentence, not a debug dump: the usual cause is a second `make run`.
            tracing::error!("❌ {err}");
            std::process::exit(1);
        }
    };
    let status = app.store.snapshot().await;
    tracing::info!(
        "🚀 Call history API on http://{address} (Redshift: {}; local SQLite: {})",
        status.redshift_message,
        status.sqlite_message
    );
    app.run_upkeep();
    server::serve(listener, app.router, ServerLimits::default(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}

/// `call-history openapi [PATH]`: writes the OpenAPI description (what `GET /openapi.json`
/// serves) to PATH, or to standard output. Needs no configuration.
fn write_openapi(path: Option<&str>) -> Result<(), lambda_http::Error> {
    let document = call_history::api::openapi::document_json();
    match path {
        Some(path) => std::fs::write(path, document)?,
        None => std::io::Write::write_all(&mut std::io::stdout(), document.as_bytes())?,
    }
    Ok(())
}

/// `call-history snapshot [PATH]`: writes the newest calls in Redshift as the SQL a deployed
/// backup starts with, which the next build ships (default `sql/sqlite/snapshot.sql`).
async fn snapshot(app: &call_history::App, path: Option<&str>) -> Result<(), lambda_http::Error> {
    let redshift = app.configured_redshift()?;
    let (sql, rows) =
        call_history::snapshot::snapshot(redshift, call_history::snapshot::DEFAULT_SNAPSHOT_ROWS)
            .await?;
    let path = path.unwrap_or("sql/sqlite/snapshot.sql");
    std::fs::write(path, sql)?;
    tracing::info!("✅ Wrote {rows} calls from Redshift to {path}; rebuild to ship them");
    Ok(())
}

/// `call-history migrate`: creates the Redshift `calls` table when it is missing.
async fn migrate(app: &call_history::App) -> Result<(), lambda_http::Error> {
    let migration = app.configured_redshift()?.migrate().await?;
    if migration.added_ingested_at {
        tracing::info!(
            "✅ Redshift schema is in place; the calls table gained its ingested_at column"
        );
    } else {
        tracing::info!("✅ Redshift schema is in place");
    }
    Ok(())
}
