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
        Command::Crds => {
            print!("{}", digital_channels_operator::api::crds_yaml());
            Ok(true)
        }
        Command::Simulate(args) => {
            telemetry::init_logging(args.log_format);
            simulate::simulate(args).await.map(|_| true)
        }
        Command::Provision(args) => {
            telemetry::init_logging(LogFormat::Text);
            let bundle = provision_bundle(&args.files)?;
            let connector = RealConnector::new(args.http.http_config(RetryPolicy::default())?);
            let runbook = Runbook::new(std::sync::Arc::new(connector));
            let mut out = std::io::stdout();
            let summary = provision::provision(&runbook, &bundle, &args.output_dir, &mut out).await?;
            provision::print_summary(&summary, &mut out);
            Ok(summary.all_hold)
        }
        Command::Demo(args) => {
            telemetry::init_logging(LogFormat::Text);
            demo::demo(args).await
        }
    }
}

fn provision_bundle(files: &[std::path::PathBuf]) -> Result<digital_channels_operator::cli::manifests::Bundle, String> {
    let mut bundle = digital_channels_operator::cli::manifests::Bundle::default();
    for f in files {
        bundle.add_file(f)?;
    }
    Ok(bundle)
}
