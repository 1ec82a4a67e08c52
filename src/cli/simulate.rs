//! `dc-operator simulate`: the Genesys APIs for trying manifests without Genesys.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

use super::SimulateArgs;
use crate::local_postgres::LocalPostgres;
use crate::simulator::{Simulator, SimulatorConfig};

pub async fn simulate(args: SimulateArgs) -> Result<(), String> {
    // Keep a throwaway server alive for as long as we serve.
    let mut _local = None;
    let url = match args.database_url {
        Some(url) => {
            LocalPostgres::create_database_named_in(&url).await?;
            url
        }
        None => {
            let server = LocalPostgres::find_or_start()?;
            let url = server.create_database("dcsim").await?;
            eprintln!("Simulator database: {}", url_without_password(&url));
            _local = Some(server);
            url
        }
    };
    let pool = PgPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&url)
        .await
        .map_err(|e| format!("cannot connect to the simulator's database: {e}"))?;
    let config = SimulatorConfig {
        latency: args.latency,
        gapis_cache: args.gapis_cache,
        ..SimulatorConfig::default()
    };
    let handle = Simulator::start(config, pool, args.addr)
        .await
        .map_err(|e| format!("cannot start the simulator: {e}"))?;
    eprintln!(
        "Simulator serving GWS Auth, Environment and Nexus on {} (ops user ops/ops, tenant user nexus/nexus_password); Ctrl-C stops it.",
        handle.base_url()
    );
    let _ = tokio::signal::ctrl_c().await;
    handle.shutdown().await;
    Ok(())
}

fn url_without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "the configured database".to_string(),
    }
}
