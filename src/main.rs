//! Start-up only: configuration, logging, then Lambda or the local server.

use call_history::config::Config;
use call_history::{build_app, logging};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (config, problems) = Config::from_env();
    logging::init(config.in_lambda);
    for problem in &problems {
        tracing::warn!("⚠️ Configuration: {problem}");
    }
    let app = build_app(&config).await;

    if std::env::args().nth(1).as_deref() == Some("migrate") {
        return migrate(&app).await;
    }
    if config.in_lambda {
        let router = app.router;
        let handler = lambda_http::service_fn(move |request| call_history::handle_lambda_request(router.clone(), request));
        return lambda_http::run_concurrent(handler).await;
    }
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], config.port));
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(
        "🚀 Call history API on http://{address} (serving from {})",
        app.store.current_source().as_str()
    );
    axum::serve(listener, app.router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// `call-history migrate`: creates the Redshift `calls` table when it is missing.
async fn migrate(app: &call_history::App) -> Result<(), lambda_http::Error> {
    let Some(redshift) = app.store.redshift() else {
        return Err("Redshift is not configured: set REDSHIFT_CLUSTER_ID or REDSHIFT_WORKGROUP and REDSHIFT_DATABASE".into());
    };
    redshift.apply_schema().await?;
    tracing::info!("✅ Redshift schema is in place");
    Ok(())
}
