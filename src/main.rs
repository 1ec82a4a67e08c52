//! `dc-operator`: parse the command line once, set up logging, run the subcommand.

#![forbid(unsafe_code)]
// No function over 60 lines (clippy.toml): code is read more than written.
#![warn(clippy::too_many_lines)]

use digital_channels_operator::cli::{Cli, Command, import, plan, plugin, provision};
#[cfg(feature = "simulator")]
use digital_channels_operator::cli::{demo, simulate};
use digital_channels_operator::runbook::{RealConnector, Runbook};
use digital_channels_operator::telemetry::{self, LogFormat};
use digital_channels_operator::upstream::http::{RetryPolicy, install_crypto_provider};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    install_crypto_provider();
    // Named `kubectl dc` in help and usage when run as the kubectl plugin.
    let cli = plugin::parse();
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
        Command::Crds(args) => crds(args).map(|_| true),
        #[cfg(feature = "simulator")]
        Command::Simulate(args) => {
            // sqlx logs PostgreSQL's notices ("relation already exists, skipping") at INFO.
            telemetry::init_logging(args.log_format, "info,sqlx=warn");
            simulate::simulate(args).await.map(|_| true)
        }
        Command::Provision(args) => provision_files(args).await,
        Command::Doctor(args) => {
            telemetry::init_logging(LogFormat::Text, "warn");
            digital_channels_operator::cli::doctor::doctor(args, &mut std::io::stdout()).await
        }
        // Exit codes of its own (terraform's -detailed-exitcode): 0 no change, 2 changes, 1 error.
        Command::Plan(args) => std::process::exit(plan::command(args).await.into()),
        Command::Import(args) => import::command(args).await,
        Command::Status(args) => digital_channels_operator::cli::status::status(&args).await,
        Command::Run(args) => {
            telemetry::init_logging(args.log_format, "info,sqlx=warn");
            run_controllers(args).await.map(|_| true)
        }
        #[cfg(feature = "simulator")]
        Command::Demo(args) => {
            telemetry::init_logging(LogFormat::Text, "warn");
            demo::demo(args).await
        }
        #[cfg(not(feature = "simulator"))]
        Command::Simulate(_) => Err(digital_channels_operator::cli::not_in_this_build(
            "simulate",
        )),
        #[cfg(not(feature = "simulator"))]
        Command::Demo(_) => Err(digital_channels_operator::cli::not_in_this_build("demo")),
    }
}

/// `crds`: to stdout, or one file per CRD; or the configuration reference, in one file.
fn crds(args: digital_channels_operator::cli::CrdsArgs) -> Result<(), String> {
    use digital_channels_operator::{api, cli::CrdsFormat};
    let files = match args.format {
        CrdsFormat::Yaml => api::crd_files(),
        CrdsFormat::Markdown => vec![(
            "configuration.md".to_string(),
            api::reference::configuration_reference(),
        )],
    };
    let Some(dir) = args.output_dir else {
        let texts: Vec<String> = files.into_iter().map(|(_, text)| text).collect();
        print!("{}", texts.join("---\n"));
        return Ok(());
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (file, text) in files {
        std::fs::write(dir.join(&file), text).map_err(|e| format!("{file}: {e}"))?;
    }
    Ok(())
}

/// `provision`: the runbook once over the manifest files; whether every step holds.
async fn provision_files(
    args: digital_channels_operator::cli::ProvisionArgs,
) -> Result<bool, String> {
    if args.dry_run {
        std::process::exit(plan::dry_run(&args).await.into());
    }
    telemetry::init_logging(LogFormat::Text, "warn");
    let bundle = digital_channels_operator::cli::manifests::Bundle::from_paths(&args.files)?;
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

async fn run_controllers(args: digital_channels_operator::cli::RunArgs) -> Result<(), String> {
    use digital_channels_operator::controller::{self, ControllerConfig, RunSettings};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use tokio_util::sync::CancellationToken;

    check_intervals(args.resync_interval, args.max_backoff)?;
    // Every request that leaves the process, to Kubernetes or upstream, passes this fence:
    // with leader election, only while this replica holds the Lease.
    let fence = digital_channels_operator::fence::LeaderFence::for_election(args.leader_election);
    let identity = controller::leader::instance_identity(args.pod_name.clone());
    let client = controller::kube_client::counting_client(fence.clone())
        .await
        .map_err(|e| format!("cannot reach Kubernetes (in-cluster config or KUBECONFIG): {e}"))?;
    // The controllers requeue with their own backoff: one quick retry per call is enough.
    let retry = RetryPolicy {
        attempts: 2,
        ..RetryPolicy::default()
    };
    let mut http = args.http.http_config(retry)?;
    http.fence = fence.clone();
    http.instance = Some(identity.clone());
    let runbook = Runbook::new(Arc::new(RealConnector::new(http)));
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
            pod_name: args.pod_name,
            ..ControllerConfig::default()
        },
        identity,
        fence,
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

/// The longest `--resync-interval` and `--max-backoff`: 30 days. Both are jittered by up to
/// 20 % (`Duration::mul_f64`, which panics past `Duration::MAX`), and kube-runtime cuts any
/// requeue at about six months anyway.
const MAX_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// The intervals of `run`, within bounds.
fn check_intervals(
    resync_interval: std::time::Duration,
    max_backoff: std::time::Duration,
) -> Result<(), String> {
    use std::time::Duration;
    let hours = MAX_INTERVAL.as_secs() / 3600;
    // A zero interval would requeue in a hot loop against the Genesys services.
    if resync_interval < Duration::from_secs(10) {
        return Err("--resync-interval must be at least 10s".to_string());
    }
    if max_backoff < Duration::from_secs(1) {
        return Err("--max-backoff must be at least 1s".to_string());
    }
    if resync_interval > MAX_INTERVAL {
        return Err(format!("--resync-interval must be at most {hours}h"));
    }
    if max_backoff > MAX_INTERVAL {
        return Err(format!("--max-backoff must be at most {hours}h"));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn intervals_are_checked_at_both_ends() {
        let s = Duration::from_secs;
        let ok = Ok(());
        for (resync, max_backoff, verdict) in [
            (s(600), s(300), ok),
            (s(10), s(1), ok),
            (s(30 * 86_400), s(30 * 86_400), ok),
            (s(9), s(300), Err("--resync-interval must be at least 10s")),
            (
                s(600),
                Duration::from_millis(999),
                Err("--max-backoff must be at least 1s"),
            ),
            (
                s(30 * 86_400 + 1),
                s(300),
                Err("--resync-interval must be at most 720h"),
            ),
            (
                s(600),
                s(30 * 86_400 + 1),
                Err("--max-backoff must be at most 720h"),
            ),
            (
                Duration::MAX,
                s(300),
                Err("--resync-interval must be at most 720h"),
            ),
            (
                s(600),
                Duration::MAX,
                Err("--max-backoff must be at most 720h"),
            ),
        ] {
            let verdict = verdict.map_err(str::to_string);
            assert_eq!(
                check_intervals(resync, max_backoff),
                verdict,
                "{resync:?} {max_backoff:?}"
            );
        }
    }
}
