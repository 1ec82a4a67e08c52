//! How close provisioning gets to the bound of its upstream round trips, and what the operator
//! costs once converged. Prints figures; asserts nothing (docs/performance.md).
//!
//! ```text
//! cargo bench --bench scale -- [--tenants 1000] [--concurrency 32] [--latency-ms 20]
//!                              [--unrelated-secrets 2000] [--no-cluster]
//! ```
//!
//! 1. In process: the simulator with the given latency per call, one environment and N tenants
//!    provisioned at once through `run_tenant` (the controllers' step code), C at a time; then
//!    one drift pass over all of them.
//! 2. On the cluster of the kubeconfig's current context, only when `DC_E2E=1` and
//!    `DC_E2E_CONTEXT` names that context (`.ci/run` sets both for `../shared/k8s`; the rule of
//!    the e2e suite, `tests/common/cluster_gate.rs`): `dc-operator run` on a fresh namespace that
//!    also holds the unrelated 100 KiB Secrets; N tenants applied at once; time to all Ready,
//!    Kubernetes API writes per tenant from the operator's own request counter, writes in the
//!    converged steady state, and the operator's RSS.

#[path = "../tests/common/cluster_gate.rs"]
mod cluster_gate;
#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;
#[path = "scale/floor.rs"]
mod floor;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use digital_channels_operator::runbook::environment::{ResolvedEnvironment, run_environment};
use digital_channels_operator::runbook::tenant::run_tenant;
use digital_channels_operator::runbook::{RunReport, Runbook};
use digital_channels_operator::simulator::{Seed, SimulatorConfig, StateView};
use futures::StreamExt;

/// Calls a tenant's runbook makes one after another: contact centers, settings list and post,
/// token, PlatformUCS, tenant GET and create.
const SEQUENTIAL_CALLS: u32 = 7;
/// The longest chain once steps run side by side: token, tenant GET, tenant create (the
/// contact-center list is shared by the environment's tenants, once per pass).
const CRITICAL_PATH_CALLS: u32 = 3;

struct Args {
    tenants: usize,
    concurrency: usize,
    latency: Duration,
    unrelated_secrets: usize,
    cluster: bool,
}

impl Args {
    fn parse() -> Args {
        let mut args = Args {
            tenants: 1000,
            concurrency: 32,
            latency: Duration::from_millis(20),
            unrelated_secrets: 2000,
            cluster: true,
        };
        // `cargo test --all-targets` runs this binary too, without `--bench`: a small smoke run
        // there keeps it working without the minutes of the full one.
        if !std::env::args().any(|a| a == "--bench") {
            args.tenants = 40;
            args.concurrency = 8;
            args.latency = Duration::from_millis(5);
            args.unrelated_secrets = 20;
            println!("scale: smoke run (cargo test); `cargo bench --bench scale` for the figures");
        }
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = |name: &str| -> usize {
                it.next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{name} needs a number"))
            };
            match arg.as_str() {
                "--tenants" => args.tenants = value("--tenants"),
                "--concurrency" => args.concurrency = value("--concurrency"),
                "--latency-ms" => {
                    args.latency = Duration::from_millis(value("--latency-ms") as u64)
                }
                "--unrelated-secrets" => args.unrelated_secrets = value("--unrelated-secrets"),
                "--no-cluster" => args.cluster = false,
                // `cargo bench` passes --bench; filters mean nothing here.
                _ => {}
            }
        }
        args
    }

    /// ceil(N / C) waves of `calls` round trips each.
    fn bound(&self, calls: u32) -> Duration {
        let waves = self.tenants.div_ceil(self.concurrency) as u32;
        self.latency * calls * waves
    }
}

fn main() {
    let args = Args::parse();
    digital_channels_operator::upstream::http::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!(
            "scale: {} tenants on one environment, concurrency {}, {} ms per upstream call",
            args.tenants,
            args.concurrency,
            args.latency.as_millis()
        );
        in_process(&args).await;
        if !args.cluster {
            println!("\n(--no-cluster: `dc-operator run` not measured)");
        } else if cluster_gate::allowed("\nscale: `dc-operator run` on a cluster") {
            cluster::measure(&args).await;
        }
    });
}

async fn in_process(args: &Args) {
    let sim = common::Sim::start_with(SimulatorConfig {
        seed: Seed::with_contact_centers(args.tenants),
        latency: args.latency,
        ..SimulatorConfig::default()
    })
    .await;
    let store = common::sample_store(&sim.db.url);
    store.put(
        "tenant-user",
        &[("username", "nexus"), ("password", "nexus_password")],
    );
    let runbook = common::runbook();
    let env = run_environment(&runbook, &common::environment(&sim.url()), &store).await;
    let env = env.resolved.expect("the environment provisions");
    let tenants: Vec<_> = (0..args.tenants)
        .map(|i| {
            let mut t = common::tenant(&format!("cc{i}"), &format!("cc{i}"), true);
            t.spec.credentials_secret.name = "tenant-user".to_string();
            t
        })
        .collect();

    let before = sim.handle.snapshot();
    let started = Instant::now();
    let ready = pass(&runbook, &tenants, &env, &store, args.concurrency).await;
    let wall = started.elapsed();
    let provisioned = sim.handle.snapshot();
    let drift_started = Instant::now();
    let drift = pass(&runbook, &tenants, &env, &store, args.concurrency).await;
    let drift_wall = drift_started.elapsed();
    let after = sim.handle.snapshot();

    let failed = ready.iter().filter(|(_, r)| !r.succeeded()).count();
    let drift_changed = drift.iter().filter(|(_, r)| r.changed_anything()).count();
    println!("\n## In process: run_tenant against the simulator");
    println!(
        "provisioned: {} of {} ({failed} failed)",
        args.tenants - failed,
        args.tenants
    );
    let sequential = args.bound(SEQUENTIAL_CALLS);
    let critical = args.bound(CRITICAL_PATH_CALLS) + args.latency;
    println!(
        "wall time: {:.2} s; bound of the sequential runbook ({SEQUENTIAL_CALLS} calls): {:.2} s, ratio {:.2}; \
         bound of the critical path ({CRITICAL_PATH_CALLS} calls + one shared list): {:.2} s, ratio {:.2}",
        wall.as_secs_f64(),
        sequential.as_secs_f64(),
        wall.as_secs_f64() / sequential.as_secs_f64(),
        critical.as_secs_f64(),
        wall.as_secs_f64() / critical.as_secs_f64()
    );
    let mut times: Vec<Duration> = ready.iter().map(|(t, _)| *t).collect();
    println!("time to Ready per tenant: {}", percentiles(&mut times));
    println!(
        "upstream calls per tenant to provision: {:.2}",
        total_calls(&before, &provisioned) as f64 / args.tenants as f64
    );
    print_calls(&before, &provisioned, args.tenants);
    println!(
        "drift pass: {:.2} s; {drift_changed} tenants changed; writes: {}; upstream reads per tenant: {:.2}",
        drift_wall.as_secs_f64(),
        writes(&provisioned, &after),
        total_calls(&provisioned, &after) as f64 / args.tenants as f64
    );
    print_calls(&provisioned, &after, args.tenants);
    println!(
        "token requests: {} to provision, {} in the drift pass ({} tenant users; one is the environment's check)",
        provisioned.tokens_issued - before.tokens_issued,
        after.tokens_issued - provisioned.tokens_issued,
        args.tenants
    );
    println!(
        "peak RSS of this process (simulator, PostgreSQL client and runbook together): {} MiB",
        rss_kib("self", "VmHWM") / 1024
    );
}

/// Runs every tenant once, `concurrency` at a time; each tenant's time is from the start of
/// the pass to the end of its run (waiting for a slot included: all were "applied at once").
async fn pass(
    runbook: &Runbook,
    tenants: &[digital_channels_operator::api::DigitalChannelsTenant],
    env: &ResolvedEnvironment,
    store: &common::MemoryStore,
    concurrency: usize,
) -> Vec<(Duration, RunReport)> {
    let started = Instant::now();
    futures::stream::iter(tenants)
        .map(|t| async move {
            let run = run_tenant(runbook, t, env, store).await;
            (started.elapsed(), run.report)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

fn percentiles(times: &mut [Duration]) -> String {
    times.sort();
    let at = |p: f64| {
        let i = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
        times[i].as_secs_f64()
    };
    format!(
        "p50 {:.2} s, p95 {:.2} s, max {:.2} s",
        at(0.50),
        at(0.95),
        at(1.0)
    )
}

fn total_calls(from: &StateView, to: &StateView) -> u64 {
    to.calls.values().sum::<u64>() - from.calls.values().sum::<u64>()
}

fn writes(from: &StateView, to: &StateView) -> u64 {
    let ops: Vec<&String> = to.calls.keys().collect();
    ops.iter()
        .map(|op| {
            (to.creates(op) + to.updates(op) + to.deletes(op))
                - (from.creates(op) + from.updates(op) + from.deletes(op))
        })
        .sum()
}

fn print_calls(from: &StateView, to: &StateView, tenants: usize) {
    for (op, n) in &to.calls {
        let d = n - from.calls(op);
        if d > 0 {
            println!(
                "  {op:<36} {d:>7}  {:>6.3} per tenant",
                d as f64 / tenants as f64
            );
        }
    }
}

/// A field of /proc/<pid>/status in KiB (`self` for this process).
fn rss_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim_start_matches(':')
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

mod cluster {
    use super::*;
    use digital_channels_operator::api::conditions::ConditionStatus;
    use digital_channels_operator::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::Api;
    use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
    use serde_json::json;

    const MANAGER: &str = "dc-bench";

    pub async fn measure(args: &Args) {
        let client = kube::Client::try_default()
            .await
            .expect("a client of the kubeconfig's current context");
        let ns = format!("dc-bench-{:04x}", rand::random::<u16>());
        println!("\n## `dc-operator run` on the cluster of DC_E2E_CONTEXT (namespace {ns})");
        install_crds(&client).await;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await
            .expect("namespace");
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let started = Instant::now();
        unrelated_secrets(&secrets, args.unrelated_secrets).await;
        println!(
            "{} unrelated Secrets of 100 KiB written in {:.0} s",
            args.unrelated_secrets,
            started.elapsed().as_secs_f64()
        );

        let sim = common::Sim::start_with(SimulatorConfig {
            seed: Seed::with_contact_centers(args.tenants),
            latency: args.latency,
            ..SimulatorConfig::default()
        })
        .await;
        for (name, pairs) in [
            ("gws-ops", vec![("username", "ops"), ("password", "ops")]),
            ("nexus-db", vec![("url", sim.db.url.as_str())]),
            (
                "tenant-user",
                vec![("username", "nexus"), ("password", "nexus_password")],
            ),
        ] {
            let data: BTreeMap<&str, &str> = pairs.into_iter().collect();
            let secret = json!({"metadata": {"name": name}, "stringData": data});
            secrets
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(secret).unwrap(),
                )
                .await
                .expect("Secret");
        }
        let mut operator = Operator::start(&ns, args.concurrency);
        operator.serving().await;
        let writes_before = operator.kubernetes_writes().await;
        let reads_before = operator.kubernetes_requests(&["get"]).await;
        // The environment and its tenants applied together, as a GitOps apply does.
        let envs: Api<DigitalChannelsEnvironment> = Api::namespaced(client.clone(), &ns);
        let mut env = common::environment(&sim.url());
        env.metadata = kube::api::ObjectMeta {
            name: Some("prod".into()),
            ..Default::default()
        };
        // Ready times are taken from watches, not from lists: listing a thousand tenants
        // every few hundred milliseconds would load the API server the operator is timed on.
        let readiness = ReadyTimes::watch(&tenants_api(&client, &ns), &envs);
        let applied = Instant::now();
        envs.create(&PostParams::default(), &env)
            .await
            .expect("environment");
        let tenants: Api<DigitalChannelsTenant> = Api::namespaced(client.clone(), &ns);
        futures::stream::iter(0..args.tenants)
            .map(|i| {
                let tenants = tenants.clone();
                async move {
                    let mut t = common::tenant(&format!("cc{i}"), &format!("cc{i}"), true);
                    t.metadata = kube::api::ObjectMeta {
                        name: Some(format!("cc{i}")),
                        ..Default::default()
                    };
                    t.spec.credentials_secret.name = "tenant-user".to_string();
                    tenants
                        .create(&PostParams::default(), &t)
                        .await
                        .expect("tenant");
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        let first_pass = operator.first_pass().await;
        let (ready_at, environment_ready_at) = watch_ready(applied, args.tenants, readiness).await;
        let wall = ready_at.values().max().copied().unwrap_or_default();
        let settled = operator.settle().await;
        let provisioning = diff(&writes_before, &settled);
        let reads = diff(&reads_before, &operator.kubernetes_requests(&["get"]).await);
        let quiet_for = Duration::from_secs(15);
        tokio::time::sleep(quiet_for).await;
        let steady = diff(&settled, &operator.kubernetes_writes().await);

        let n = args.tenants as f64;
        let events = provisioning.get("events").copied().unwrap_or(0);
        let others: u64 = provisioning
            .iter()
            .filter(|(r, _)| *r != "events")
            .map(|(_, c)| c)
            .sum();
        println!(
            "time to all Ready: {:.2} s from the first apply; sequential bound {:.2} s (ratio {:.2}); \
             critical-path bound {:.2} s (ratio {:.2})",
            wall.as_secs_f64(),
            args.bound(SEQUENTIAL_CALLS).as_secs_f64(),
            wall.as_secs_f64() / args.bound(SEQUENTIAL_CALLS).as_secs_f64(),
            (args.bound(CRITICAL_PATH_CALLS) + args.latency).as_secs_f64(),
            wall.as_secs_f64() / (args.bound(CRITICAL_PATH_CALLS) + args.latency).as_secs_f64()
        );
        let mut times: Vec<Duration> = ready_at.values().copied().collect();
        println!("time to Ready per tenant: {}", percentiles(&mut times));
        println!(
            "the environment Ready after {:.2} s (its tenants wait for it, the floor's do not)",
            environment_ready_at.unwrap_or(wall).as_secs_f64()
        );
        println!(
            "start-up to first pass: {:.2} s (process start to its first reconcile)",
            first_pass.as_secs_f64()
        );
        let upstream = args.latency * CRITICAL_PATH_CALLS;
        let ideal = floor::measure(&client, args.tenants, args.concurrency, upstream).await;
        println!(
            "floor (a plain client making only the unavoidable requests, {} at a time, same cluster, same run): \
             {:.2} s; the operator takes {:.2} x the floor",
            args.concurrency,
            ideal.as_secs_f64(),
            wall.as_secs_f64() / ideal.as_secs_f64()
        );
        println!(
            "Kubernetes API writes per tenant to provision: {:.2} (events apart), plus {:.2} events; by resource: {provisioning:?}",
            others as f64 / n,
            events as f64 / n
        );
        println!(
            "Kubernetes API reads (GET) per tenant to provision: {:.2}; by resource: {reads:?}",
            reads.values().sum::<u64>() as f64 / n
        );
        println!(
            "writes in {} s of converged steady state: {} ({steady:?})",
            quiet_for.as_secs(),
            steady.values().sum::<u64>()
        );
        println!(
            "upstream calls per tenant (environment included): {:.2}",
            sim.handle.snapshot().calls.values().sum::<u64>() as f64 / n
        );
        print_pass_parts(&operator, args, &times).await;
        println!(
            "operator RSS converged with {} tenants and {} unrelated 100 KiB Secrets: {} MiB (peak {} MiB)",
            args.tenants,
            args.unrelated_secrets,
            operator.rss("VmRSS") / 1024,
            operator.rss("VmHWM") / 1024
        );

        // Retain: deleting the namespace lets the operator release each finalizer.
        let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
        wait(Duration::from_secs(300), "the namespace to go", || async {
            namespaces
                .get_opt(&ns)
                .await
                .ok()
                .flatten()
                .is_none()
                .then_some(())
        })
        .await;
        operator.stop();
    }

    fn ready(conditions: &[digital_channels_operator::api::conditions::Condition]) -> bool {
        conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
    }

    async fn install_crds(client: &kube::Client) {
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
        for entry in std::fs::read_dir(dir).expect("crds/") {
            let path = entry.expect("crds/ entry").path();
            let crd: CustomResourceDefinition =
                serde_yaml_ng::from_str(&std::fs::read_to_string(&path).expect("CRD file"))
                    .expect("CRD");
            let name = crd.metadata.name.clone().expect("CRD name");
            crds.patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .expect("apply CRD");
            wait(
                Duration::from_secs(30),
                "the CRD to be established",
                || async {
                    let c = crds.get(&name).await.ok()?;
                    c.status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(())
                },
            )
            .await;
        }
    }

    /// As Helm release Secrets are: 100 KiB of data each, nothing the operator uses.
    async fn unrelated_secrets(secrets: &Api<Secret>, n: usize) {
        use base64::Engine;
        futures::stream::iter(0..n)
            .map(|i| async move {
                let payload: Vec<u8> = (0..75 * 1024).map(|_| rand::random::<u8>()).collect();
                let secret = json!({
                    "metadata": {"name": format!("sh.helm.release.v1.app-{i}.v1"),
                                 "labels": {"owner": "helm"}},
                    "type": "helm.sh/release.v1",
                    "data": {"release": base64::engine::general_purpose::STANDARD.encode(payload)},
                });
                secrets
                    .create(
                        &PostParams::default(),
                        &serde_json::from_value(secret).unwrap(),
                    )
                    .await
                    .expect("unrelated Secret");
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
    }

    async fn wait<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = probe().await {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn diff(from: &BTreeMap<String, u64>, to: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
        to.iter()
            .map(|(k, v)| (k.clone(), v - from.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect()
    }

    /// The mean tenant pass and its parts, and the time a tenant spends outside its passes.
    async fn print_pass_parts(operator: &Operator, args: &Args, times: &[Duration]) {
        let (tenant_sum, tenant_passes) = operator.reconcile_seconds("DigitalChannelsTenant").await;
        let (env_sum, env_passes) = operator
            .reconcile_seconds("DigitalChannelsEnvironment")
            .await;
        let passes = (tenant_passes + env_passes).max(1.0);
        // What passes ask of the API server: not the watches and their lists, nor the Lease.
        let kubernetes = operator
            .summed("dc_operator_kubernetes_request_duration_seconds_sum", |l| {
                !["verb=\"watch\"", "verb=\"list\"", "resource=\"leases\""]
                    .iter()
                    .any(|p| l.contains(p))
            })
            .await;
        let upstream = operator
            .summed("dc_operator_external_request_duration_seconds_sum", |_| {
                true
            })
            .await;
        let ms = |seconds: f64| 1000.0 * seconds;
        println!(
            "passes: {tenant_passes} tenant ({:.2} a tenant), {env_passes} environment; mean pass {:.0} ms, of which \
             Kubernetes requests {:.0} ms and upstream calls {:.0} ms (each summed: a pass's steps run side by side, \
             its longest upstream chain is {} calls x {} ms)",
            tenant_passes / args.tenants as f64,
            ms((tenant_sum + env_sum) / passes),
            ms(kubernetes / passes),
            ms(upstream / passes),
            CRITICAL_PATH_CALLS,
            args.latency.as_millis()
        );
        println!(
            "Kubernetes requests by verb and resource (count, mean ms): {}",
            operator.kubernetes_latencies().await
        );
        let in_system: f64 = times.iter().map(Duration::as_secs_f64).sum();
        println!(
            "time from the apply to Ready outside a pass: mean {:.0} ms a tenant (waiting for one of the \
             {} slots, for its environment, for a watch event)",
            ms((in_system - tenant_sum).max(0.0) / times.len().max(1) as f64),
            args.concurrency
        );
    }

    fn tenants_api(client: &kube::Client, ns: &str) -> Api<DigitalChannelsTenant> {
        Api::namespaced(client.clone(), ns)
    }

    /// When each tenant and the environment were first seen Ready (at their generation).
    struct ReadyTimes {
        seen: std::sync::Arc<std::sync::Mutex<BTreeMap<String, Instant>>>,
        _watches: Vec<tokio::task::JoinHandle<()>>,
    }

    impl ReadyTimes {
        fn watch(
            tenants: &Api<DigitalChannelsTenant>,
            envs: &Api<DigitalChannelsEnvironment>,
        ) -> ReadyTimes {
            let seen = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
            let watches = vec![
                Self::spawn(tenants.clone(), seen.clone(), "tenant/"),
                Self::spawn(envs.clone(), seen.clone(), "environment/"),
            ];
            ReadyTimes {
                seen,
                _watches: watches,
            }
        }

        fn spawn<K>(
            api: Api<K>,
            seen: std::sync::Arc<std::sync::Mutex<BTreeMap<String, Instant>>>,
            prefix: &'static str,
        ) -> tokio::task::JoinHandle<()>
        where
            K: kube::Resource<DynamicType = ()>
                + Clone
                + std::fmt::Debug
                + serde::de::DeserializeOwned
                + serde::Serialize
                + Send
                + 'static,
        {
            use kube::runtime::{WatchStreamExt, watcher};
            tokio::spawn(async move {
                let stream = watcher(api, watcher::Config::default()).applied_objects();
                futures::pin_mut!(stream);
                while let Some(Ok(object)) = stream.next().await {
                    let value = serde_json::to_value(&object).unwrap_or_default();
                    let conditions = serde_json::from_value::<
                        Vec<digital_channels_operator::api::conditions::Condition>,
                    >(value["status"]["conditions"].clone())
                    .unwrap_or_default();
                    let current =
                        value["status"]["observedGeneration"] == value["metadata"]["generation"];
                    if current && ready(&conditions) {
                        let name =
                            format!("{prefix}{}", object.meta().name.clone().unwrap_or_default());
                        let mut seen = seen.lock().unwrap();
                        seen.entry(name).or_insert_with(Instant::now);
                    }
                }
            })
        }
    }

    /// Waits until `n` tenants are Ready; their times and the environment's, from `applied`.
    async fn watch_ready(
        applied: Instant,
        n: usize,
        readiness: ReadyTimes,
    ) -> (BTreeMap<String, Duration>, Option<Duration>) {
        loop {
            assert!(
                applied.elapsed() < Duration::from_secs(600),
                "not all {n} tenants Ready after 600 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            let seen = readiness.seen.lock().unwrap().clone();
            let since = |at: &Instant| at.saturating_duration_since(applied);
            let tenants: BTreeMap<String, Duration> = seen
                .iter()
                .filter_map(|(k, at)| Some((k.strip_prefix("tenant/")?.to_string(), since(at))))
                .collect();
            if tenants.len() >= n {
                let env = seen.get("environment/prod").map(since);
                return (tenants, env);
            }
        }
    }

    struct Operator {
        child: std::process::Child,
        metrics: String,
        started: Instant,
        _log: tempfile::NamedTempFile,
    }

    impl Operator {
        /// Waits until the metrics endpoint answers.
        async fn serving(&self) {
            let deadline = Instant::now() + Duration::from_secs(30);
            while reqwest::get(&self.metrics).await.is_err() {
                assert!(
                    Instant::now() < deadline,
                    "the operator never served /metrics"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        /// The time from the process's start to its first reconcile of any kind.
        async fn first_pass(&self) -> Duration {
            loop {
                let (_, envs) = self.reconcile_seconds("DigitalChannelsEnvironment").await;
                let (_, tenants) = self.reconcile_seconds("DigitalChannelsTenant").await;
                if envs + tenants > 0.0 {
                    return self.started.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        fn start(ns: &str, concurrency: usize) -> Operator {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let log = tempfile::NamedTempFile::new().expect("log file");
            let child = std::process::Command::new(env!("CARGO_BIN_EXE_dc-operator"))
                .args([
                    "run",
                    &format!("--namespace={ns}"),
                    "--leader-election=false",
                    &format!("--concurrency={concurrency}"),
                    &format!("--metrics-addr=127.0.0.1:{port}"),
                    "--log-format=json",
                ])
                .env("RUST_LOG", "warn")
                .stdout(log.reopen().expect("log"))
                .stderr(log.reopen().expect("log"))
                .spawn()
                .expect("dc-operator run");
            Operator {
                child,
                started: Instant::now(),
                metrics: format!("http://127.0.0.1:{port}/metrics"),
                _log: log,
            }
        }

        /// Writes so far by resource, from `dc_operator_kubernetes_requests_total`.
        async fn kubernetes_writes(&self) -> BTreeMap<String, u64> {
            self.kubernetes_requests(&["create", "update", "patch", "delete"])
                .await
        }

        /// Requests with one of `verbs` so far by resource (the leader Lease apart).
        async fn kubernetes_requests(&self, verbs: &[&str]) -> BTreeMap<String, u64> {
            let text = self.metrics_text().await;
            let mut writes = BTreeMap::new();
            for line in text
                .lines()
                .filter(|l| l.starts_with("dc_operator_kubernetes_requests_total{"))
            {
                let label = |name: &str| {
                    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
                    let end = start + line[start..].find('"')?;
                    Some(line[start..end].to_string())
                };
                let (Some(verb), Some(resource)) = (label("verb"), label("resource")) else {
                    continue;
                };
                let count: u64 = line
                    .rsplit(' ')
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0) as u64;
                if verbs.contains(&verb.as_str()) && resource != "leases" {
                    *writes.entry(resource).or_default() += count;
                }
            }
            writes
        }

        /// Sum and count of `reconcile_duration_seconds` of one kind.
        async fn reconcile_seconds(&self, kind: &str) -> (f64, f64) {
            let text = self.metrics_text().await;
            let value = |name: &str| {
                text.lines()
                    .find(|l| l.starts_with(name) && l.contains(&format!("kind=\"{kind}\"")))
                    .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            (
                value("dc_operator_reconcile_duration_seconds_sum"),
                value("dc_operator_reconcile_duration_seconds_count"),
            )
        }

        /// Each verb and resource's request count and mean latency, from
        /// `dc_operator_kubernetes_request_duration_seconds`.
        async fn kubernetes_latencies(&self) -> String {
            let text = self.metrics_text().await;
            let family = "dc_operator_kubernetes_request_duration_seconds";
            let mut by: BTreeMap<String, (f64, f64)> = BTreeMap::new();
            for line in text.lines() {
                let (sum, rest) = match line.strip_prefix(&format!("{family}_sum{{")) {
                    Some(rest) => (true, rest),
                    None => match line.strip_prefix(&format!("{family}_count{{")) {
                        Some(rest) => (false, rest),
                        None => continue,
                    },
                };
                let Some((labels, value)) = rest.rsplit_once("} ") else {
                    continue;
                };
                let value: f64 = value.parse().unwrap_or(0.0);
                let entry = by.entry(labels.replace('"', "")).or_default();
                match sum {
                    true => entry.0 += value,
                    false => entry.1 += value,
                }
            }
            by.iter()
                .map(|(k, (sum, n))| format!("{k}: {n} x {:.0} ms", 1000.0 * sum / n.max(1.0)))
                .collect::<Vec<_>>()
                .join("; ")
        }

        /// The sum of the samples named `name` whose line passes `keep`.
        async fn summed(&self, name: &str, keep: impl Fn(&str) -> bool) -> f64 {
            let text = self.metrics_text().await;
            text.lines()
                .filter(|l| l.starts_with(&format!("{name}{{")) && keep(l))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        }

        /// The operator's `/metrics` page.
        async fn metrics_text(&self) -> String {
            reqwest::get(&self.metrics)
                .await
                .expect("operator metrics")
                .text()
                .await
                .expect("metrics text")
        }

        /// Waits until 3 s pass without a write, and gives the writes then.
        async fn settle(&self) -> BTreeMap<String, u64> {
            let mut last = self.kubernetes_writes().await;
            loop {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let now = self.kubernetes_writes().await;
                if now == last {
                    return now;
                }
                last = now;
            }
        }

        fn rss(&self, field: &str) -> u64 {
            rss_kib(&self.child.id().to_string(), field)
        }

        fn stop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Drop for Operator {
        fn drop(&mut self) {
            self.stop();
        }
    }
}
