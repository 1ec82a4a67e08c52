//! What every end-to-end scenario stands on: the cluster of `DC_E2E_CONTEXT`, the chart's
//! ServiceAccount and RBAC applied for real, a simulator of the Genesys APIs on its own
//! database, and `dc-operator run` processes logged in as that ServiceAccount.
//!
//! Each scenario gets two fresh namespaces: the release namespace (ServiceAccount, Lease) and
//! the watched namespace (resources and their Secrets). The operator runs with exactly the
//! rights the chart grants; any Forbidden answer it meets fails the scenario with that answer.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use digital_channels_operator::api::conditions::{Condition, ConditionStatus};
use digital_channels_operator::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use digital_channels_operator::local_postgres::LocalPostgres;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::Value;

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
pub const OPERATOR_BIN: &str = env!("CARGO_BIN_EXE_dc-operator");
pub const CHART: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/digital-channels-operator"
);
/// The field manager of the person applying manifests in these tests.
pub const USER_MANAGER: &str = "e2e-user";
/// The leader Lease's duration in `dc-operator run`.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);

/// Scenarios share the cluster. One that runs a cluster-wide operator takes this lock for
/// writing, so that no other scenario's resources are reconciled by it; the others read.
static CLUSTER_SCOPE: RwLock<()> = RwLock::new(());

/// Taken by every scenario for its whole run: shared, or exclusive for a cluster-wide operator.
pub enum ScopeGuard {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

pub fn shared_scope() -> ScopeGuard {
    ScopeGuard::Shared(CLUSTER_SCOPE.read().unwrap_or_else(|e| e.into_inner()))
}

pub fn exclusive_scope() -> ScopeGuard {
    ScopeGuard::Exclusive(CLUSTER_SCOPE.write().unwrap_or_else(|e| e.into_inner()))
}

/// The cluster of the kubeconfig's current context, when the suite is asked to use it
/// ([`crate::cluster_gate`]: `DC_E2E=1` and `DC_E2E_CONTEXT` names that context); otherwise
/// `None` and a line saying the scenario skipped and why. With `DC_E2E_REQUIRED=1` (CI) a
/// skip fails instead.
pub async fn cluster(scenario: &str) -> Option<kube::Client> {
    if !crate::cluster_gate::allowed(&format!("e2e {scenario}")) {
        return None;
    }
    digital_channels_operator::upstream::http::install_crypto_provider();
    install_crds();
    Some(
        kube::Client::try_default()
            .await
            .expect("a cluster from the kubeconfig"),
    )
}

/// `crds/` applied once per test process, and established before any scenario uses them.
fn install_crds() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &format!("{ROOT}/crds"),
        ]);
        kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/digitalchannelsenvironments.digitalchannels.dev",
            "crd/digitalchannelstenants.digitalchannels.dev",
        ]);
    });
}

fn tool(name: &str) -> String {
    let local = format!("{ROOT}/.tools/bin/{name}");
    if Path::new(&local).exists() {
        local
    } else {
        name.to_string()
    }
}

/// Output of a command that must succeed; its stderr is in the panic message otherwise.
fn run_ok(program: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let output = run(program, args, stdin);
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{program}: {e} (run scripts/install-tools for helm and kubectl)")
        });
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("wait")
}

/// `kubectl` as the cluster admin; stdout on success.
pub fn kubectl(args: &[&str]) -> String {
    String::from_utf8_lossy(&run_ok(&tool("kubectl"), args, None).stdout).into_owned()
}

/// `kubectl` with a manifest on stdin; the whole output, so callers can look for warnings.
pub fn kubectl_stdin(args: &[&str], manifest: &str) -> std::process::Output {
    run(&tool("kubectl"), args, Some(manifest))
}

/// `helm template` of the chart; the rendered documents.
pub fn helm_template(release: &str, namespace: &str, sets: &[String]) -> Vec<Value> {
    let mut args = vec![
        "template".to_string(),
        release.to_string(),
        CHART.to_string(),
        "--namespace".to_string(),
        namespace.to_string(),
    ];
    for set in sets {
        args.push("--set".to_string());
        args.push(set.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run_ok(&tool("helm"), &args, None);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    serde_yaml_ng::Deserializer::from_str(&text)
        .filter_map(|doc| {
            let value: Value = serde::Deserialize::deserialize(doc).expect("rendered YAML");
            (!value.is_null()).then_some(value)
        })
        .collect()
}

pub fn kind_of(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

fn to_stream(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| serde_yaml_ng::to_string(d).expect("YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// A child process killed when the test ends, however it ends.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Polls `probe` every 250 ms until it returns `Some`; panics with `what` and `context()`
/// (the operators' Forbidden answers and last log lines) after `timeout`.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    context: impl Fn() -> String,
    mut probe: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    condition(conditions, type_).is_some_and(|c| c.status == ConditionStatus::True)
}

/// The shared PostgreSQL server of this test process.
fn postgres() -> &'static LocalPostgres {
    static SERVER: OnceLock<LocalPostgres> = OnceLock::new();
    SERVER.get_or_init(|| LocalPostgres::find_or_start().expect("PostgreSQL"))
}

/// `dc-operator simulate` on its own database.
pub struct Simulator {
    pub url: String,
    pub database_url: String,
    database: String,
    _process: Process,
}

impl Simulator {
    pub async fn start() -> Simulator {
        let database = format!("dce2e_{}", rand::random::<u32>());
        let database_url = postgres()
            .create_database(&database)
            .await
            .expect("database");
        let port = free_port();
        let process = Process(
            Command::new(OPERATOR_BIN)
                .args([
                    "simulate",
                    "--addr",
                    &format!("127.0.0.1:{port}"),
                    "--database-url",
                    &database_url,
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dc-operator simulate"),
        );
        let sim = Simulator {
            url: format!("http://127.0.0.1:{port}"),
            database_url,
            database,
            _process: process,
        };
        wait_for(
            "the simulator to answer",
            Duration::from_secs(30),
            String::new,
            || async { sim.try_state().await },
        )
        .await;
        sim
    }

    async fn try_state(&self) -> Option<Value> {
        reqwest::get(format!("{}/_sim/state", self.url))
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    /// Clients, settings, tenants, UCS services and call counts (no secrets).
    pub async fn state(&self) -> Value {
        self.try_state().await.expect("simulator state")
    }

    /// Calls of one operation so far, e.g. `nexus.update_tenant`.
    pub async fn calls(&self, operation: &str) -> u64 {
        self.state().await["calls"][operation].as_u64().unwrap_or(0)
    }

    /// Changes a tenant user's password in the simulated GWS.
    pub async fn set_tenant_user_password(&self, cc_id: &str, username: &str, password: &str) {
        let resp = reqwest::Client::new()
            .post(format!("{}/_sim/tenant-users/password", self.url))
            .json(&serde_json::json!({
                "contactCenterId": cc_id, "username": username, "password": password
            }))
            .send()
            .await
            .expect("simulator");
        assert!(resp.status().is_success(), "{}", resp.status());
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        // Best effort, from a thread of its own: the test's runtime may be gone already.
        let database = self.database.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let _ = postgres().drop_database(&database).await;
            });
        })
        .join();
    }
}

/// How the chart is rendered for a scenario.
pub enum Scope {
    /// `watchNamespaces: [watched]`: Roles in the watched namespace.
    Namespaces,
    /// `watchNamespaces: []`: a ClusterRole.
    ClusterWide,
}

/// One scenario's namespaces, chart RBAC, simulator and operators.
pub struct Scenario {
    pub client: kube::Client,
    /// Where the resources and their Secrets live.
    pub ns: String,
    /// The release namespace: the ServiceAccount and the Lease.
    pub op_ns: String,
    pub scope_mode: Scope,
    pub sim: Simulator,
    dir: tempfile::TempDir,
    /// Admin kubeconfig, and one logged in as the chart's ServiceAccount.
    pub sa_kubeconfig: PathBuf,
    pub operators: Vec<Operator>,
    /// Cluster-scoped objects (ClusterRole, ClusterRoleBinding) to delete at the end.
    cluster_objects: Vec<(String, String)>,
    /// When the scenario deleted its watched namespace (RFC 3339, as in the JSON logs).
    namespace_deleted_at: Option<String>,
    _scope: ScopeGuard,
}

impl Scenario {
    /// Namespaces, the chart's ServiceAccount and RBAC (exactly as rendered), a token for
    /// that ServiceAccount, and a simulator. No operator yet: see [`Scenario::start_operator`].
    pub async fn new(client: kube::Client, label: &str, scope_mode: Scope) -> Scenario {
        Self::with_rbac_edit(client, label, scope_mode, |_| {}).await
    }

    /// As [`Scenario::new`], with a change to the rendered RBAC documents before they are
    /// applied (to prove that a missing rule is caught).
    pub async fn with_rbac_edit(
        client: kube::Client,
        label: &str,
        scope_mode: Scope,
        edit: impl FnOnce(&mut [Value]),
    ) -> Scenario {
        let guard = match scope_mode {
            Scope::ClusterWide => exclusive_scope(),
            Scope::Namespaces => shared_scope(),
        };
        let id = format!("{label}-{:04x}", rand::random::<u16>());
        let ns = format!("e2e-{id}");
        let op_ns = format!("e2e-{id}-op");
        for name in [&ns, &op_ns] {
            create_namespace(&client, name, &[]).await;
        }
        let release = format!("dco-{id}");
        let sets = match scope_mode {
            Scope::Namespaces => vec![format!("watchNamespaces={{{ns}}}")],
            Scope::ClusterWide => vec![],
        };
        let mut rbac: Vec<Value> = helm_template(&release, &op_ns, &sets)
            .into_iter()
            .filter(|d| {
                matches!(
                    kind_of(d),
                    "ServiceAccount"
                        | "Role"
                        | "RoleBinding"
                        | "ClusterRole"
                        | "ClusterRoleBinding"
                )
            })
            .collect();
        assert!(
            rbac.iter().any(|d| kind_of(d) == "ServiceAccount"),
            "the chart renders a ServiceAccount"
        );
        edit(&mut rbac);
        let cluster_objects = rbac
            .iter()
            .filter(|d| kind_of(d).starts_with("Cluster"))
            .map(|d| {
                (
                    kind_of(d).to_lowercase(),
                    d["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        let out = kubectl_stdin(&["apply", "--server-side", "-f", "-"], &to_stream(&rbac));
        assert!(
            out.status.success(),
            "applying the chart's RBAC: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sa = rbac
            .iter()
            .find(|d| kind_of(d) == "ServiceAccount")
            .and_then(|d| d["metadata"]["name"].as_str())
            .expect("ServiceAccount name")
            .to_string();

        let dir = tempfile::tempdir().expect("tempdir");
        let sa_kubeconfig = dir.path().join("operator.kubeconfig");
        write_service_account_kubeconfig(&op_ns, &sa, &sa_kubeconfig);
        let sim = Simulator::start().await;
        Scenario {
            client,
            ns,
            op_ns,
            scope_mode,
            sim,
            dir,
            sa_kubeconfig,
            operators: Vec::new(),
            cluster_objects,
            namespace_deleted_at: None,
            _scope: guard,
        }
    }

    /// Starts `dc-operator run` as the chart's ServiceAccount, with the arguments the chart's
    /// Deployment passes (namespaces, leader election in the release namespace).
    pub fn start_operator(&mut self, identity: &str) -> usize {
        let metrics_port = free_port();
        let log_path = self.dir.path().join(format!("{identity}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut args = vec!["run".to_string()];
        if let Scope::Namespaces = self.scope_mode {
            args.push(format!("--namespace={}", self.ns));
        }
        args.extend([
            format!("--metrics-addr=127.0.0.1:{metrics_port}"),
            "--log-format=json".to_string(),
            "--resync-interval=30s".to_string(),
            "--max-backoff=5s".to_string(),
            format!("--leader-election-namespace={}", self.op_ns),
        ]);
        let child = Command::new(OPERATOR_BIN)
            .args(&args)
            .env("KUBECONFIG", &self.sa_kubeconfig)
            .env("POD_NAME", identity)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("dc-operator run");
        self.operators.push(Operator {
            identity: identity.to_string(),
            metrics_port,
            log_path,
            process: Some(Process(child)),
        });
        self.operators.len() - 1
    }

    /// What a failed wait shows: every Forbidden answer and the last log lines.
    pub fn context(&self) -> String {
        self.operators
            .iter()
            .map(Operator::diagnosis)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// What any operator was refused by RBAC, as the failure message of a scenario.
    pub fn forbidden_report(&self) -> Option<String> {
        let report: Vec<String> = self
            .operators
            .iter()
            .map(|op| (op, self.unexpected(op.forbidden_lines())))
            .filter(|(_, lines)| !lines.is_empty())
            .map(|(op, lines)| {
                format!(
                    "operator {} was refused by the API server with the chart's RBAC:\n{}",
                    op.identity,
                    lines.join("\n")
                )
            })
            .collect();
        (!report.is_empty()).then(|| report.join("\n"))
    }

    /// Deleting the watched namespace deletes the chart's Role in it at once: refusals in that
    /// namespace from then on are the deletion's doing, not a missing rule.
    pub fn namespace_deleted(&mut self) {
        self.namespace_deleted_at = Some(jiff::Timestamp::now().to_string());
    }

    fn unexpected(&self, lines: Vec<String>) -> Vec<String> {
        let Some(deleted_at) = &self.namespace_deleted_at else {
            return lines;
        };
        let in_namespace = format!("in the namespace \\\"{}\\\"", self.ns);
        lines
            .into_iter()
            .filter(|l| {
                let at = serde_json::from_str::<Value>(l)
                    .ok()
                    .and_then(|v| v["timestamp"].as_str().map(str::to_string))
                    .unwrap_or_default();
                !(at.as_str() >= deleted_at.as_str() && l.contains(&in_namespace))
            })
            .collect()
    }

    /// Fails when any operator met a Forbidden answer: the chart lacks a rule.
    pub fn assert_no_forbidden(&self) {
        if let Some(report) = self.forbidden_report() {
            panic!("{report}");
        }
    }

    /// Applies a manifest as the user would (server-side apply, the user's field manager).
    pub async fn apply<K>(&self, manifest: Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let name = manifest["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        Api::<K>::namespaced(self.client.clone(), &self.ns)
            .patch(
                &name,
                &PatchParams::apply(USER_MANAGER).force(),
                &Patch::Apply(&manifest),
            )
            .await
            .unwrap_or_else(|e| panic!("apply {name}: {e}"))
    }

    /// `kubectl apply -n NS -f examples/simulator/`, pointed at this scenario's simulator.
    pub fn apply_examples(&self) {
        let out = kubectl_stdin(
            &["apply", "-n", &self.ns, "-f", "-"],
            &simulator_examples(&self.sim),
        );
        assert!(
            out.status.success(),
            "kubectl apply -n {} -f examples/simulator/: {}",
            self.ns,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Ends the scenario: fails on any Forbidden answer, stops the operators, deletes the
    /// namespaces and cluster-scoped RBAC.
    pub async fn finish(self) {
        self.assert_no_forbidden();
    }

    /// Stops the operators and deletes what the scenario made, without looking at the logs.
    pub async fn finish_without_checks(self) {}
}

/// Also after a failed assertion: a scenario's leftovers must not reach the next one (a
/// cluster-wide operator would reconcile them).
impl Drop for Scenario {
    fn drop(&mut self) {
        self.operators.clear();
        // Resources still holding the finalizer would keep the namespace Terminating once the
        // operator is gone: release them, as docs/install.md's Uninstall says.
        release_finalizers(&self.ns);
        for ns in [&self.ns, &self.op_ns] {
            let _ = run(
                &tool("kubectl"),
                &[
                    "delete",
                    "namespace",
                    ns,
                    "--ignore-not-found",
                    "--wait=false",
                ],
                None,
            );
        }
        for (kind, name) in &self.cluster_objects {
            let _ = run(
                &tool("kubectl"),
                &["delete", kind, name, "--ignore-not-found"],
                None,
            );
        }
    }
}

fn release_finalizers(ns: &str) {
    for kind in ["digitalchannelstenants", "digitalchannelsenvironments"] {
        let names = run(
            &tool("kubectl"),
            &["-n", ns, "get", kind, "-o", "name"],
            None,
        );
        for name in String::from_utf8_lossy(&names.stdout).lines() {
            let _ = run(
                &tool("kubectl"),
                &[
                    "-n",
                    ns,
                    "patch",
                    name,
                    "--type=merge",
                    "-p",
                    r#"{"metadata":{"finalizers":null}}"#,
                ],
                None,
            );
        }
    }
}

pub async fn create_namespace(client: &kube::Client, name: &str, labels: &[(&str, &str)]) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    labels: Some(
                        labels
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    ),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
}

/// A kubeconfig with the admin's server and CA and a fresh token of `namespace/sa`.
fn write_service_account_kubeconfig(namespace: &str, sa: &str, path: &Path) {
    let token = kubectl(&["-n", namespace, "create", "token", sa, "--duration=2h"]);
    let token = token.trim();
    let view = kubectl(&["config", "view", "--raw", "--minify", "--flatten"]);
    std::fs::write(path, view).expect("write kubeconfig");
    let path_s = path.to_str().expect("utf-8 path");
    let kc = |args: &[&str]| {
        let mut full = vec!["--kubeconfig", path_s];
        full.extend_from_slice(args);
        kubectl(&full)
    };
    kc(&[
        "config",
        "set-credentials",
        "operator",
        &format!("--token={token}"),
    ]);
    kc(&["config", "set-context", "--current", "--user=operator"]);
}

/// `kubectl auth can-i` as the scenario's ServiceAccount.
pub fn can_i(kubeconfig: &Path, args: &[&str]) -> bool {
    let mut full = vec![
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
        "auth",
        "can-i",
    ];
    full.extend_from_slice(args);
    let out = run(&tool("kubectl"), &full, None);
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

/// One `dc-operator run` process and its log.
pub struct Operator {
    pub identity: String,
    pub metrics_port: u16,
    log_path: PathBuf,
    process: Option<Process>,
}

impl Operator {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Log lines that carry a 403 from the API server.
    pub fn forbidden_lines(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                (l.contains("forbidden") || l.contains("code: 403"))
                    // Admission, not RBAC: nothing new in a namespace being deleted.
                    && !l.contains("because it is being terminated")
            })
            .map(str::to_string)
            .collect()
    }

    fn diagnosis(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        format!(
            "--- operator {} (forbidden: {:?})\n{tail}",
            self.identity,
            self.forbidden_lines()
        )
    }

    pub async fn metrics(&self) -> String {
        match reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port)).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// SIGKILL: no lease release, no graceful shutdown.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.0.kill();
            let _ = p.0.wait();
        }
    }
}

/// The example Secrets, environment and tenant of `examples/simulator/`, pointed at this
/// scenario's simulator and database, as one manifest stream for `kubectl apply -n`.
pub fn simulator_examples(sim: &Simulator) -> String {
    ["10-secrets.yaml", "20-environment.yaml", "30-tenant.yaml"]
        .iter()
        .map(|file| {
            std::fs::read_to_string(format!("{ROOT}/examples/simulator/{file}"))
                .expect("example")
                .replace("http://127.0.0.1:8181", &sim.url)
                .replace(
                    "postgres://postgres@127.0.0.1:5432/dcsim",
                    &sim.database_url,
                )
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}

impl Scenario {
    /// Waits until `name` of kind `K` satisfies `pred`; fails with the operators' context.
    pub async fn wait_until<K>(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&K) -> bool,
    ) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api = self.api::<K>();
        let last = std::sync::Mutex::new(None::<String>);
        wait_for(
            &format!("{name}: {what}"),
            timeout,
            || {
                format!(
                    "last seen: {}\n{}",
                    last.lock().unwrap().clone().unwrap_or_default(),
                    self.context()
                )
            },
            || async {
                let object = api.get_opt(name).await.ok()??;
                *last.lock().unwrap() = Some(format!("{object:?}"));
                pred(&object).then_some(object)
            },
        )
        .await
    }

    pub async fn wait_tenant_ready(&self, name: &str) -> DigitalChannelsTenant {
        self.wait_until(name, "Ready", READY_TIMEOUT, |t: &DigitalChannelsTenant| {
            t.status
                .as_ref()
                .is_some_and(|s| is_true(&s.conditions, "Ready"))
        })
        .await
    }

    pub async fn wait_environment_ready(&self, name: &str) -> DigitalChannelsEnvironment {
        self.wait_until(
            name,
            "Ready",
            READY_TIMEOUT,
            |e: &DigitalChannelsEnvironment| {
                e.status
                    .as_ref()
                    .is_some_and(|s| is_true(&s.conditions, "Ready"))
            },
        )
        .await
    }

    /// Waits until `name` of kind `K` is gone.
    pub async fn wait_gone<K>(&self, name: &str, timeout: Duration)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api = self.api::<K>();
        wait_for(
            &format!("{name} to be deleted"),
            timeout,
            || self.context(),
            || async { matches!(api.get_opt(name).await, Ok(None)).then_some(()) },
        )
        .await;
    }
}

/// Generous: a cold CI machine with two cores runs two scenarios at once.
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);
