//! The subcommands: `crds`, `simulate`, `provision`, `demo`, `status` (and `run`, the
//! controllers).
//! `simulate` and `demo` need the cargo feature `simulator` (on by default); a build without it
//! (the image) still knows their names, to say that they are not in it.

#[cfg(feature = "simulator")]
pub mod demo;
pub mod doctor;
pub mod file_store;
pub mod import;
pub mod manifests;
pub mod plan;
pub mod plugin;
pub mod provision;
mod provision_inputs;
#[cfg(feature = "simulator")]
pub mod simulate;
pub mod status;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;
use crate::upstream::http::{HttpConfig, RetryPolicy};

#[derive(Parser, Debug)]
#[command(
    name = "dc-operator",
    version,
    about = "Enables Genesys Multicloud CX tenants for Digital Channels (Nexus)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print both CustomResourceDefinitions as YAML (what crds/ holds), or their fields as
    /// markdown (docs/configuration.md).
    Crds(CrdsArgs),
    /// Serve the GWS Auth, Environment and Digital Channels APIs, backed by PostgreSQL.
    #[cfg(feature = "simulator")]
    Simulate(SimulateArgs),
    #[cfg(not(feature = "simulator"))]
    #[command(hide = true, disable_help_flag = true)]
    Simulate(NotInThisBuild),
    /// Run the runbook once from manifest files, without a cluster.
    Provision(ProvisionArgs),
    /// Start the simulator in-process and provision a sample environment and tenant.
    #[cfg(feature = "simulator")]
    Demo(DemoArgs),
    #[cfg(not(feature = "simulator"))]
    #[command(hide = true, disable_help_flag = true)]
    Demo(NotInThisBuild),
    /// Run the controllers against the cluster of the in-cluster config or KUBECONFIG.
    Run(RunArgs),
    /// Check an environment before it is applied: names, TLS, credentials, client, tables, users.
    Doctor(doctor::DoctorArgs),
    /// Show what a pass would create, update or delete, writing nothing (exit 0 no change, 2 changes, 1 error).
    Plan(PlanArgs),
    /// Write Observe manifests for the tenants an environment's upstreams already have.
    Import(ImportArgs),
    /// Where every environment and tenant stands: each step, what to do, the next retry.
    Status(StatusArgs),
}

/// A subcommand of the `simulator` feature in a build without it: any arguments are taken, so
/// that the answer is always that the subcommand is not in this build.
#[derive(Args, Debug)]
pub struct NotInThisBuild {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub args: Vec<String>,
}

/// The error of `demo` or `simulate` in a build without the `simulator` feature.
pub fn not_in_this_build(subcommand: &str) -> String {
    format!(
        "`{subcommand}` is not in this build of dc-operator: it was built without the cargo \
         feature `simulator` (the image leaves it out); build with default features for it"
    )
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Namespace to watch; repeat or separate with commas for several. Default: all namespaces.
    #[arg(long = "namespace", env = "DC_NAMESPACE", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "DC_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
    /// Take a Lease before reconciling, so that only one replica acts at a time.
    #[arg(long, env = "DC_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Namespace of the leader Lease; default: the pod's namespace (POD_NAMESPACE), else "default".
    #[arg(long, env = "DC_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Resources reconciled at once, per kind.
    #[arg(long, env = "DC_CONCURRENCY", default_value_t = 4)]
    pub concurrency: u16,
    /// How often a Ready resource is checked for drift (jittered by 10 %).
    #[arg(long, env = "DC_RESYNC_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub resync_interval: Duration,
    /// Longest wait between retries of a failing resource.
    #[arg(long, env = "DC_MAX_BACKOFF", default_value = "5m", value_parser = parse_duration)]
    pub max_backoff: Duration,
    /// Log format.
    #[arg(long, env = "DC_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// This replica's name (in a pod: its metadata.name): its identity in the leader Lease and
    /// the reporting instance of its Events. Without it: a random Lease identity, no instance.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    #[command(flatten)]
    pub http: HttpArgs,
}

/// Settings for the outbound HTTP clients.
#[derive(Args, Debug, Clone)]
pub struct HttpArgs {
    /// Timeout of one request to a Genesys service.
    #[arg(long, env = "DC_REQUEST_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// A PEM bundle trusted in addition to the system roots for every Genesys service.
    #[arg(long, env = "DC_EXTRA_CA_FILE")]
    pub extra_ca_file: Option<PathBuf>,
}

impl HttpArgs {
    pub fn http_config(&self, retry: RetryPolicy) -> Result<HttpConfig, String> {
        let ca_bundle_pem = match &self.extra_ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| format!("--extra-ca-file {}: {e}", path.display()))?,
            ),
            None => None,
        };
        Ok(HttpConfig {
            timeout: self.request_timeout,
            ca_bundle_pem,
            retry,
            ..HttpConfig::default()
        })
    }
}

/// `status [NAME] [-n NS | -A] [-o wide|json|yaml] [--watch]`: reads the cluster only.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// An environment (shown with its tenants) or a tenant (shown under its environment).
    pub name: Option<String>,
    /// Namespace to look in; default: the kubeconfig context's, else "default".
    #[arg(short = 'n', long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Look in every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Output: text (a tree), wide (every message and detail), json or yaml.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: status::Format,
    /// Draw again on every change of either kind, until Ctrl-C.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

#[derive(Args, Debug)]
pub struct CrdsArgs {
    /// Write one file per CRD (with --format markdown: configuration.md) into this directory
    /// instead of printing.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// yaml: the CRDs themselves; markdown: the configuration reference of every field
    /// (what docs/configuration.md holds).
    #[arg(long, value_enum, default_value = "yaml")]
    pub format: CrdsFormat,
}

/// What `crds` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrdsFormat {
    /// Both CustomResourceDefinitions, as `kubectl apply -f -` takes them.
    Yaml,
    /// The configuration reference generated from their schemas.
    Markdown,
}

#[cfg(feature = "simulator")]
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Address to serve on.
    #[arg(long, env = "DC_SIMULATE_ADDR", default_value = "127.0.0.1:8181")]
    pub addr: std::net::SocketAddr,
    /// PostgreSQL database for nex_gapis and nex_apikeys, created if absent; default: database dcsim on a local server (see docs/command-line.md).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Delay added to every request.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub latency: Duration,
    /// Emulate Nexus's cache: nex_gapis changes are seen only after POST /_sim/nexus/restart.
    #[arg(long)]
    pub gapis_cache: bool,
    /// Log format.
    #[arg(long, env = "DC_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Args, Debug)]
pub struct ProvisionArgs {
    /// Manifest files, or directories (their .yaml, .yml and .json files in name order, as kubectl): one DigitalChannelsEnvironment, any number of DigitalChannelsTenants, and their Secrets.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Where output Secrets (and a generated client secret) are written, mode 0600.
    #[arg(long, default_value = "./dc-output")]
    pub output_dir: PathBuf,
    /// Take over an OAuth client that another manager has (the operator, for a
    /// DigitalChannelsEnvironment, or someone by hand): its secret becomes the manifests' and
    /// its description names provision. Without it such a client is left untouched and the
    /// run fails saying what it found.
    #[arg(long)]
    pub take_over: bool,
    /// Write nothing: show what the run would change, as `plan -f` (exit 0 no change, 2 changes, 1 error).
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub http: HttpArgs,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// An environment (with its tenants) or a tenant (with its environment) in the cluster.
    #[arg(conflicts_with = "files")]
    pub name: Option<String>,
    /// Namespace of the resources; default: the kubeconfig's.
    #[arg(short = 'n', long, conflicts_with_all = ["files", "all_namespaces"])]
    pub namespace: Option<String>,
    /// The resources of every namespace.
    #[arg(short = 'A', long, conflicts_with = "files")]
    pub all_namespaces: bool,
    /// Manifest files instead of a cluster, as `provision` takes them.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// With -f: where `provision` keeps its output Secrets (read, never written).
    #[arg(long, default_value = "./dc-output", requires = "files")]
    pub output_dir: PathBuf,
    /// With -f: plan as `provision --take-over` would run.
    #[arg(long, requires = "files")]
    pub take_over: bool,
    /// text, or json.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: plan::PlanFormat,
    #[command(flatten)]
    pub http: HttpArgs,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The DigitalChannelsEnvironment in the cluster whose upstreams to read.
    #[arg(conflicts_with = "files", required_unless_present = "files")]
    pub environment: Option<String>,
    /// Its namespace; default: the kubeconfig's.
    #[arg(short = 'n', long, conflicts_with = "files")]
    pub namespace: Option<String>,
    /// Manifest files instead of a cluster: the environment and the Secrets it references.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// A Secret (username, password) of a tenant user that logs in at every contact center:
    /// with it each contact center's Nexus tenant is read; without, only nex_apikeys is.
    #[arg(long)]
    pub tenant_user_secret: Option<String>,
    /// One file per tenant in this directory instead of one multi-document YAML on stdout.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    #[command(flatten)]
    pub http: HttpArgs,
}

#[cfg(feature = "simulator")]
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the demo's output Secrets go; default: a temporary directory removed at exit.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
}

/// Parses `500ms`, `15s`, `10m`, `1h` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 10m or 1h"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?}; use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("5 weeks").is_err());
    }
}
