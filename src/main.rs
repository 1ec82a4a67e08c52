//! `dc-operator`: parse the command line once, set up logging, run the subcommand.

use clap::Parser;
use digital_channels_operator::cli::{Cli, Command, demo, provision, simulate};
use digital_channels_operator::runbook::{RealConnector, Runbook};
use digital_channels_operator::telemetry::{self, LogFormat};
use digital_channels_operator::upstream::http::{RetryPolicy, install_crypto_provider};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    install_crypto_provider();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::from(2)
        }
    }
}

/// `Ok(false)`: the command ran but not everything holds (exit code 1).
async fn run(cli: Cli) -> Result<bool, String> {
    match cli.command {
        Command::Crds(args) => match args.output_dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                for (file, text) in digital_channels_operator::api::crd_files() {
                    std::fs::write(dir.join(&file), text).map_err(|e| format!("{file}: {e}"))?;
                }
                Ok(true)
            }
            None => {
                print!("{}", digital_channels_operator::api::crds_yaml());
                Ok(true)
            }
        },
        Command::Simulate(args) => {
            // sqlx logs PostgreSQL's notices ("relation already exists, skipping") at INFO.
            telemetry::init_logging(args.log_format, "info,sqlx=warn");
            simulate::simulate(args).await.map(|_| true)
        }
        Command::Provision(args) => {
            telemetry::init_logging(LogFormat::Text, "warn");
            let bundle = provision_bundle(&args.files)?;
            let connector = RealConnector::new(args.http.http_config(RetryPolicy::default())?);
            let runbook = Runbook::new(std::sync::Arc::new(connector));
            let mut out = std::io::stdout();
            let summary = provision::provision_as(
                &runbook,
                &bundle,
                &args.output_dir,
                args.take_over,
                &mut out,
            )
            .await?;
            provision::print_summary(&summary, &mut out);
            Ok(summary.all_hold)
        }
        Command::Run(args) => {
            telemetry::init_logging(args.log_format, "info,sqlx=warn");
            run_controllers(args).await.map(|_| true)
        }
        Command::Demo(args) => {
            telemetry::init_logging(LogFormat::Text, "warn");
            demo::demo(args).await
        }
    }
}

fn provision_bundle(
    files: &[std::path::PathBuf],
) -> Result<digital_channels_operator::cli::manifests::Bundle, String> {
    let mut bundle = digital_channels_operator::cli::manifests::Bundle::default();
    for f in files {
        bundle.add_file(f)?;
    }
    Ok(bundle)
}

async fn run_controllers(args: digital_channels_operator::cli::RunArgs) -> Result<(), String> {
    use digital_channels_operator::controller::{self, ControllerConfig, RunSettings};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use tokio_util::sync::CancellationToken;

    // A zero interval would requeue in a hot loop against the Genesys services.
    if args.resync_interval < std::time::Duration::from_secs(10) {
        return Err("--resync-interval must be at least 10s".to_string());
    }
    if args.max_backoff < std::time::Duration::from_secs(1) {
        return Err("--max-backoff must be at least 1s".to_string());
    }
    let client = controller::kube_client::counting_client()
        .await
        .map_err(|e| format!("cannot reach Kubernetes (in-cluster config or KUBECONFIG): {e}"))?;
    // The controllers requeue with their own backoff: one quick retry per call is enough.
    let retry = RetryPolicy {
        attempts: 2,
        ..RetryPolicy::default()
    };
    let runbook = Runbook::new(Arc::new(RealConnector::new(args.http.http_config(retry)?)));
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        signal.cancel();
    });
    let ready = Arc::new(AtomicBool::new(false));
    let server_stop = shutdown.clone();
    let server = tokio::spawn(telemetry::server::serve(
        args.metrics_addr,
        ready.clone(),
        async move { server_stop.cancelled().await },
    ));
    let settings = RunSettings {
        namespaces: args.namespaces,
        concurrency: args.concurrency,
        leader_election: args.leader_election,
        leader_election_namespace: args
            .leader_election_namespace
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".to_string()),
        controller: ControllerConfig {
            resync_interval: args.resync_interval,
            max_backoff: args.max_backoff,
            ..ControllerConfig::default()
        },
    };
    let result = controller::run(client, runbook, settings, ready, shutdown.clone()).await;
    shutdown.cancel();
    match server.await {
        Ok(Err(e)) => return Err(format!("metrics server on {}: {e}", args.metrics_addr)),
        Err(e) => return Err(format!("metrics server: {e}")),
        Ok(Ok(())) => {}
    }
    result
}

/// SIGTERM (Kubernetes) or Ctrl-C.
async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
