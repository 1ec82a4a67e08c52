//! `dc-operator doctor`: why an environment will not work, before it is applied. From the
//! cluster (`doctor [ENV] [-n NS]`: the environment, its tenants and their Secrets, plus the
//! CRDs, the operator's rights and its Lease) or from files (`doctor -f FILE`, as `provision`
//! takes them). Every check is ok, warning or failure with the fix; one that needs a check that
//! did not hold is skipped and says so. Nothing is written anywhere; no Secret value is shown.

pub mod check;
pub mod cluster;
pub mod database;
pub mod environment;
pub mod probe;
pub mod rights;
pub mod verdicts;
pub mod x509;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use kube::Api;

use self::check::{Report, Verdict};
use self::environment::Probes;
use super::HttpArgs;
use super::file_store::FileStore;
use super::manifests::Bundle;
use crate::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use crate::runbook::RealConnector;
use crate::upstream::http::RetryPolicy;

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// The DigitalChannelsEnvironment to check; default: every one in the namespace.
    #[arg(conflicts_with = "files")]
    pub environment: Option<String>,
    /// Namespace of the environment; default: the kubeconfig context's.
    #[arg(short = 'n', long, conflicts_with = "files")]
    pub namespace: Option<String>,
    /// Manifest files instead of the cluster: a DigitalChannelsEnvironment, its tenants and
    /// the Secrets they reference, as `provision -f` takes them.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// With -f: where `provision` keeps a client secret it generated (read only).
    #[arg(long, default_value = "./dc-output", requires = "files")]
    pub output_dir: PathBuf,
    /// The operator's ServiceAccount, NAMESPACE/NAME: its rights are checked, and its
    /// namespace holds the leader Lease. Default: the `helm install` of docs/install.md.
    #[arg(long, default_value = "digital-channels/digital-channels-operator")]
    pub service_account: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Format,
    #[command(flatten)]
    pub http: HttpArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Runs the checks and prints them; `Ok(true)` when nothing failed (exit 0), `Ok(false)` when
/// something did (exit 1), `Err` for input errors (exit 2).
pub async fn doctor(args: DoctorArgs, out: &mut dyn Write) -> Result<bool, String> {
    let probes = probes(&args)?;
    let report = if args.files.is_empty() {
        from_cluster(&args, &probes).await?
    } else {
        from_files(&args, &probes).await?
    };
    let text = match args.output {
        Format::Text => report.text(),
        Format::Json => report.json(),
    };
    out.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write the report: {e}"))?;
    Ok(report.passed())
}

fn probes(args: &DoctorArgs) -> Result<Probes, String> {
    // One attempt per call: a doctor says what it found, it does not wait out a failure.
    let config = args.http.http_config(RetryPolicy::none())?;
    Ok(Probes {
        extra_ca_file: config.ca_bundle_pem.is_some(),
        extra_ca_pem: config.ca_bundle_pem.clone(),
        timeout: config.timeout,
        connector: Arc::new(RealConnector::new(config)),
    })
}

async fn from_files(args: &DoctorArgs, probes: &Probes) -> Result<Report, String> {
    let bundle = Bundle::from_paths(&args.files)?;
    if bundle.environments.is_empty() {
        return Err("the files hold no DigitalChannelsEnvironment".to_string());
    }
    let mut report = Report::default();
    for env in &bundle.environments {
        let store = FileStore::new(
            &bundle.secrets,
            &args.output_dir,
            env.metadata.namespace.clone(),
        )?;
        let tenants = tenants_of(env, &bundle.tenants);
        environment::check(&mut report, probes, env, &tenants, &store).await;
    }
    Ok(report)
}

fn tenants_of<'a>(
    env: &DigitalChannelsEnvironment,
    all: &'a [DigitalChannelsTenant],
) -> Vec<&'a DigitalChannelsTenant> {
    let name = env.metadata.name.as_deref().unwrap_or_default();
    all.iter()
        .filter(|t| t.spec.environment_ref.name == name)
        .collect()
}

fn service_account(text: &str) -> Result<(String, String), String> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!(
            "--service-account {text:?}: expected NAMESPACE/NAME"
        )),
    }
}

async fn from_cluster(args: &DoctorArgs, probes: &Probes) -> Result<Report, String> {
    let (sa_ns, sa_name) = service_account(&args.service_account)?;
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("cannot reach Kubernetes (KUBECONFIG or ~/.kube/config): {e}"))?;
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let mut report = Report::default();
    let kinds_readable = cluster::check_crds(&mut report, &client).await;
    let envs = if kinds_readable {
        environments(&client, &ns, args.environment.as_deref()).await?
    } else {
        Vec::new()
    };
    let nexus: Vec<(String, String)> = envs
        .iter()
        .filter_map(|e| e.spec.nexus_deployment.as_ref())
        .map(|d| {
            (
                d.namespace.clone().unwrap_or_else(|| ns.clone()),
                d.name.clone(),
            )
        })
        .collect();
    cluster::check_rights(&mut report, &client, (&sa_ns, &sa_name), &ns, &nexus).await;
    cluster::check_lease(&mut report, &client, &sa_ns).await;
    let group = format!("Namespace {ns}");
    if !kinds_readable {
        let why = "skipped: needs the CRDs, which failed";
        report.push(
            &group,
            "environments",
            "Environments",
            Verdict::skipped(why),
        );
        return Ok(report);
    }
    if envs.is_empty() {
        let verdict = Verdict::warning(
            format!("no DigitalChannelsEnvironment in namespace {ns}"),
            "name another namespace with -n, or apply one first (doctor -f checks manifests)",
        );
        report.push(&group, "environments", "Environments", verdict);
    }
    check_environments(&mut report, probes, &client, &ns, &envs).await?;
    Ok(report)
}

/// Each environment with its tenants, their Secrets read from the namespace.
async fn check_environments(
    report: &mut Report,
    probes: &Probes,
    client: &kube::Client,
    ns: &str,
    envs: &[DigitalChannelsEnvironment],
) -> Result<(), String> {
    let all_tenants: Vec<DigitalChannelsTenant> = Api::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .map_err(|e| {
            let why = crate::controller::kube_message(&e);
            format!("cannot list DigitalChannelsTenants in {ns}: {why}")
        })?
        .items;
    let store = crate::controller::secrets::KubeSecretStore::new(client.clone(), ns, None);
    for env in envs {
        let tenants = tenants_of(env, &all_tenants);
        environment::check(report, probes, env, &tenants, &store).await;
    }
    Ok(())
}

/// The environment named, or every one in the namespace; one that does not exist is an input
/// error.
async fn environments(
    client: &kube::Client,
    ns: &str,
    name: Option<&str>,
) -> Result<Vec<DigitalChannelsEnvironment>, String> {
    let api: Api<DigitalChannelsEnvironment> = Api::namespaced(client.clone(), ns);
    let read = |e: kube::Error| {
        format!(
            "cannot read DigitalChannelsEnvironments in {ns}: {}",
            crate::controller::kube_message(&e)
        )
    };
    match name {
        Some(n) => match api.get_opt(n).await.map_err(read)? {
            Some(env) => Ok(vec![env]),
            None => Err(format!("DigitalChannelsEnvironment {ns}/{n} not found")),
        },
        None => Ok(api.list(&Default::default()).await.map_err(read)?.items),
    }
}
