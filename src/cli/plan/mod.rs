//! `dc-operator plan`: what a pass would create, update or delete, and why, found by the
//! step code itself. Each resource runs on a copy with `managementPolicy: Observe`, whatever
//! its own policy: every step looks and says where it would write. Behind the steps, the
//! upstreams ([`guard`]) and the Secrets ([`store`]) let no write through, not even the ones
//! Observe makes in Kubernetes (the output Secret, the fingerprint key): those are kept in
//! memory and shown as changes. A resource being deleted shows what its cleanup would
//! delete, found by the cleanup code against upstreams that record the deletes instead.
//!
//! `provision --dry-run` is `plan -f`: the same code.

mod changes;
pub mod cluster;
pub mod guard;
pub mod render;
mod resource;
pub mod store;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;

pub use resource::Planner;

use super::file_store::FileStore;
use super::manifests::Bundle;
use crate::api::ManagementPolicy;
use crate::runbook::Connector;
use crate::runbook::environment::{ClientManager, Management};

/// What a change does, as terraform marks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    pub fn symbol(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Delete => '-',
        }
    }
}

/// One field of a change: as it is (`from`) and as it would be (`to`). A secret shows
/// neither: only that it is set or differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Field {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

impl Field {
    /// A value set (a create).
    pub fn set(name: &str, to: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            from: None,
            to: Some(to.into()),
            secret: false,
        }
    }

    /// A value changed.
    pub fn changed(name: &str, from: impl Into<String>, to: impl Into<String>) -> Self {
        Self {
            from: Some(from.into()),
            ..Self::set(name, to)
        }
    }

    /// A secret set or changed: never its value.
    pub fn secret(name: &str) -> Self {
        Self {
            name: name.to_string(),
            from: None,
            to: None,
            secret: true,
        }
    }
}

/// One thing a pass would create, update or delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub action: Action,
    /// What it is, in words: `OAuth client nexus_client`, `Secret t100-digital-channels`.
    pub object: String,
    /// Where it lives: `GWS Auth`, `GWS Environment API`, `Nexus`, `Nexus database`,
    /// `Kubernetes` (for `-f`: the output directory).
    pub system: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
    /// Why, in one sentence.
    pub why: String,
    /// False for an upstream change of an observed resource: no pass makes it while
    /// `managementPolicy` is Observe; switching to Manage would.
    pub applies: bool,
}

/// What a pass would do to one resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePlan {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub management_policy: ManagementPolicy,
    pub deleting: bool,
    pub changes: Vec<Change>,
    /// What a person should know that is no change (a manual step, a suspended resource).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What kept a step from looking: the plan is incomplete (exit code 1).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl ResourcePlan {
    pub fn new(kind: &'static str, meta: &kube::api::ObjectMeta, policy: ManagementPolicy) -> Self {
        Self {
            kind,
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            management_policy: policy,
            deleting: meta.deletion_timestamp.is_some(),
            changes: Vec::new(),
            notes: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// `namespace/name`, or the name alone.
    pub fn id(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Adds a change; one to the same object with the same action is merged into it.
    pub fn push(&mut self, change: Change) {
        match self
            .changes
            .iter_mut()
            .find(|c| c.action == change.action && c.object == change.object)
        {
            Some(same) => {
                same.fields.extend(change.fields);
                same.why = format!("{}; {}", same.why, change.why);
            }
            None => self.changes.push(change),
        }
    }
}

/// How many changes of each action.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
}

impl Counts {
    pub fn total(self) -> usize {
        self.create + self.update + self.delete
    }

    fn add(&mut self, action: Action) {
        match action {
            Action::Create => self.create += 1,
            Action::Update => self.update += 1,
            Action::Delete => self.delete += 1,
        }
    }
}

/// A whole plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub resources: Vec<ResourcePlan>,
}

impl Plan {
    /// What passes would change (`applies`), and what only switching the observed resources
    /// to Manage would.
    pub fn counts(&self) -> (Counts, Counts) {
        let (mut pass, mut switch) = (Counts::default(), Counts::default());
        for c in self.resources.iter().flat_map(|r| &r.changes) {
            match c.applies {
                true => pass.add(c.action),
                false => switch.add(c.action),
            }
        }
        (pass, switch)
    }

    pub fn has_errors(&self) -> bool {
        self.resources.iter().any(|r| !r.errors.is_empty())
    }

    /// As terraform's `-detailed-exitcode`: 1 when something could not be looked at, 2 when
    /// a pass would change something, 0 when nothing would.
    pub fn exit_code(&self) -> u8 {
        match (self.has_errors(), self.counts().0.total()) {
            (true, _) => 1,
            (false, 0) => 0,
            (false, _) => 2,
        }
    }
}

/// Tenants looked at side by side (in the order shown): an estate of hundreds plans in
/// minutes, not hours, without a burst on the upstreams.
pub const TENANTS_AT_ONCE: usize = 8;

/// The plan of what `provision` would do with these manifests (and what an earlier run
/// left in `output_dir`): `plan -f` and `provision --dry-run`.
pub async fn plan_bundle(
    upstream: Arc<dyn Connector>,
    bundle: &Bundle,
    output_dir: &Path,
    take_over: bool,
) -> Result<Plan, String> {
    let env = super::provision::checked_environment(bundle)?;
    let store = FileStore::new(&bundle.secrets, output_dir, env.metadata.namespace.clone())?;
    let planner = Planner::new(upstream, "output directory");
    let management = Management {
        manager: ClientManager::Provision,
        take_over,
    };
    let mut plan = Plan::default();
    let env_state = match env.metadata.deletion_timestamp {
        Some(_) => {
            let deleting = planner
                .environment_deletion(env, &store, &management, &[])
                .await;
            plan.resources.push(deleting);
            resource::EnvState::failing("the environment is being deleted".to_string())
        }
        None => {
            let (env_plan, env_state) = planner.environment(env, &store, &management).await;
            plan.resources.push(env_plan);
            env_state
        }
    };
    let store = &store;
    let planned = futures::stream::iter(&bundle.tenants)
        .map(|t| planner.tenant(t, Some(env), &env_state, store))
        .buffered(TENANTS_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    plan.resources.extend(planned);
    planner.check_no_write(&mut plan);
    Ok(plan)
}

/// How a plan is shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    #[default]
    Text,
    Json,
}

/// Prints a plan; the exit code it calls for.
pub fn print(plan: &Plan, format: PlanFormat, out: &mut dyn Write) -> u8 {
    match format {
        PlanFormat::Text => render::text(plan, out),
        PlanFormat::Json => {
            let text = serde_json::to_string_pretty(&render::json(plan)).expect("JSON values");
            let _ = writeln!(out, "{text}");
        }
    }
    plan.exit_code()
}

/// The manifests of `files`, as `provision` reads them.
pub fn bundle_of(files: &[std::path::PathBuf]) -> Result<Bundle, String> {
    Bundle::from_paths(files)
}

fn real_upstream(http: &super::HttpArgs) -> Result<Arc<dyn Connector>, String> {
    let config = http.http_config(crate::upstream::http::RetryPolicy::default())?;
    Ok(Arc::new(crate::runbook::RealConnector::new(config)))
}

/// Prints the plan (or the error) to stdout (stderr); the exit code.
fn finish(plan: Result<Plan, String>, format: PlanFormat) -> u8 {
    let mut out = std::io::stdout();
    let code = match plan {
        Ok(plan) => print(&plan, format, &mut out),
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    };
    let _ = out.flush();
    code
}

/// `dc-operator plan`; its exit code: 0 nothing would change, 2 something would, 1 an error
/// of any kind (terraform's `-detailed-exitcode`).
pub async fn command(args: super::PlanArgs) -> u8 {
    crate::telemetry::init_logging(crate::telemetry::LogFormat::Text, "warn");
    let plan = async {
        let upstream = real_upstream(&args.http)?;
        if !args.files.is_empty() {
            let bundle = bundle_of(&args.files)?;
            return plan_bundle(upstream, &bundle, &args.output_dir, args.take_over).await;
        }
        let client = kube::Client::try_default().await.map_err(|e| {
            format!(
                "cannot reach Kubernetes (KUBECONFIG, ~/.kube/config or in-cluster config): {e}"
            )
        })?;
        let namespace = match (args.all_namespaces, &args.namespace) {
            (true, _) => None,
            (false, Some(ns)) => Some(ns.clone()),
            (false, None) => Some(client.default_namespace().to_string()),
        };
        let selection = cluster::Selection {
            namespace,
            name: args.name.clone(),
        };
        cluster::plan_cluster(&client, upstream, &selection).await
    }
    .await;
    finish(plan, args.output)
}

/// `dc-operator provision --dry-run`: `plan -f` with provision's arguments.
pub async fn dry_run(args: &super::ProvisionArgs) -> u8 {
    crate::telemetry::init_logging(crate::telemetry::LogFormat::Text, "warn");
    let plan = async {
        let upstream = real_upstream(&args.http)?;
        let bundle = bundle_of(&args.files)?;
        plan_bundle(upstream, &bundle, &args.output_dir, args.take_over).await
    }
    .await;
    finish(plan, PlanFormat::Text)
}

/// A usage error exits as clap does (code 2), except for `plan`, where 2 means changes
/// pending: there it exits 1, an error of any kind.
pub fn exit_on_usage_error(e: clap::Error) -> ! {
    if e.use_stderr() && std::env::args().nth(1).as_deref() == Some("plan") {
        let _ = e.print();
        std::process::exit(1)
    }
    e.exit()
}
