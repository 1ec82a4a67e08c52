//! Issue 15, "Proof, in the suite": the operator as a process, under chaos.
//!
//! 20 tenants (half named by contactCenterId, half by contactCenterDomain, PlatformUCS on,
//! `deletionPolicy: Delete`) and their environment are applied together while `dc-operator
//! run` is killed (SIGKILL) 8 to 10 times, each time just after a request reached the
//! simulator (every operation takes [`LATENCY`], so it is still in flight), with lost answers
//! and answers that never come armed on every create. Then a second replica stands by and
//! the leader is frozen (SIGSTOP) past its Lease during a batch of creates, and resumed
//! (SIGCONT) once the standby took over. Then everything is deleted, tenants first, while the
//! operator is killed again.
//!
//! A killed process comes back under the same name, as a container restarted in its pod
//! does, and takes its own Lease back at once; the frozen one is another pod.
//!
//! Checked: every upstream effect exactly once, every output key the one Nexus issued for
//! that tenant, nothing stuck or left upstream, and no request from a process after another
//! took the Lease from it (the simulator records the sender of each request and when it
//! arrived, a proxy per replica its Kubernetes requests, and a task when the Lease changed
//! holder on the API server). The last check is a test of its own, ignored while a request
//! that passed the fence right before the freeze can still leave on resume.
//!
//! "Once" for the two upserts, `chatservice-uri` and PlatformUCS, means one setting and one
//! service per contact center, with the right value: both are re-sent when their outcome is
//! unknown (the HTTP client retries them; PlatformUCS has no GET, so a process killed before
//! it recorded the registration registers again).
//!
//! `CHAOS_SEED=<n>` replays the kill schedule of a run (printed at the start).

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::fake_apiserver::FakeApiServer;
use common::{SeenRequests, Sim, environment, recording_proxy, tenant};
use digital_channels_operator::api::conditions::{ConditionStatus, find};
use digital_channels_operator::api::{
    DeletionPolicy, DigitalChannelsEnvironment, DigitalChannelsTenant, FINALIZER,
};
use digital_channels_operator::controller::leader::LEASE_NAME;
use digital_channels_operator::simulator::{
    RequestRecord, Seed, SimulatorConfig, generated_contact_center,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NS: &str = "dc";
const LEASE_NS: &str = "dc-system";
/// Tenants applied with the environment, under the kills.
const FIRST: usize = 20;
/// Tenants applied while the leader is about to be frozen.
const LATER: usize = 10;
const ALL: usize = FIRST + LATER;
/// Every simulated operation takes this long: a request that just arrived is in flight.
const LATENCY: Duration = Duration::from_millis(150);
/// How long the operator gets to settle after the chaos of each phase.
const SETTLE: Duration = Duration::from_secs(60);

/// One `(when, holder)` per change of the Lease's holder seen on the API server.
type Holders = Arc<Mutex<Vec<(SystemTime, String)>>>;

/// The operator processes started so far; all killed (and thawed) however the test ends.
#[derive(Default)]
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a SIGKILL interrupted: requests of the killed process in flight, writes among them.
#[derive(Debug)]
#[allow(dead_code)] // Read through Debug, in the test's report.
struct Kill {
    in_flight: usize,
    writes: usize,
}

/// A request that changes something upstream (the token endpoint aside).
fn is_write(r: &RequestRecord) -> bool {
    r.method != "GET" && !r.path.ends_with("/token")
}

struct Chaos {
    api: Arc<FakeApiServer>,
    sim: Sim,
    dir: tempfile::TempDir,
    /// Per instance: its kubeconfig, through a proxy that records its requests.
    kubeconfigs: BTreeMap<String, std::path::PathBuf>,
    kube_requests: BTreeMap<String, SeenRequests>,
    rng: StdRng,
    processes: Processes,
    holders: Holders,
    kills: Vec<Kill>,
}

impl Chaos {
    async fn start() -> Chaos {
        digital_channels_operator::upstream::http::install_crypto_provider();
        let api = Arc::new(FakeApiServer::start().await);
        let sim = Sim::start_with(SimulatorConfig {
            seed: Seed::with_contact_centers(ALL),
            latency: LATENCY,
            ..SimulatorConfig::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let (mut kubeconfigs, mut kube_requests) = (BTreeMap::new(), BTreeMap::new());
        for instance in ["replica-a", "replica-b"] {
            let (proxy, seen) = recording_proxy(api.url().replace("http://", "")).await;
            let server = format!("http://{proxy}");
            kubeconfigs.insert(
                instance.to_owned(),
                kubeconfig(dir.path(), instance, &server),
            );
            kube_requests.insert(instance.to_owned(), seen);
        }
        let seed = std::env::var("CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random::<u64>);
        eprintln!("CHAOS_SEED={seed}");
        let holders = record_lease_holders(api.clone());
        Chaos {
            api,
            sim,
            dir,
            kubeconfigs,
            kube_requests,
            rng: StdRng::seed_from_u64(seed),
            processes: Processes::default(),
            holders,
            kills: Vec::new(),
        }
    }

    /// Starts `dc-operator run` as `identity` (its Lease holder and request header); its
    /// log goes to `<identity>-<n>.log`. Returns its index in `processes`.
    fn spawn(&mut self, identity: &str) -> usize {
        let index = self.processes.0.len();
        let log =
            std::fs::File::create(self.dir.path().join(format!("{identity}-{index}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_dc-operator"))
            .args(["run", "--namespace", NS, "--concurrency", "16"])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--max-backoff", "2s", "--request-timeout", "3s"])
            .env("KUBECONFIG", &self.kubeconfigs[identity])
            .env("DC_LEADER_ELECTION_NAMESPACE", LEASE_NS)
            .env("POD_NAME", identity)
            .env("DC_LOG_FORMAT", "text")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.processes.0.push(child);
        index
    }

    /// SIGKILLs process `index` so that it dies with requests in flight: every other time
    /// just after its next upstream write (a create or delete) reached the simulator, else
    /// just after its n-th request from now (n random, 1 to `most`: somewhere in the burst
    /// of passes a start makes); after `patience` if none comes (its work done, or work that
    /// is not HTTP).
    async fn kill_in_flight(&mut self, index: usize, most: usize, patience: Duration) {
        let on_write = self.kills.len().is_multiple_of(2);
        let n = self.rng.random_range(1..=most);
        let base = self.sim.handle.requests().len();
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let requests = self.sim.handle.requests();
            let new = &requests[base..];
            let due = if on_write {
                new.iter().any(is_write)
            } else {
                new.len() >= n
            };
            if due || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let child = &mut self.processes.0[index];
        child.kill().unwrap();
        let killed = SystemTime::now();
        child.wait().unwrap();
        // Every request waits LATENCY before it is handled: one that came that recently is
        // in flight (only this process of its name was alive to send it).
        let in_flight: Vec<RequestRecord> = self.sim.handle.requests()[base..]
            .iter()
            .filter(|r| killed.duration_since(r.at).is_ok_and(|d| d < LATENCY))
            .cloned()
            .collect();
        self.kills.push(Kill {
            in_flight: in_flight.len(),
            writes: in_flight.iter().filter(|r| is_write(r)).count(),
        });
    }

    /// Sends `signal` (`STOP`, `CONT`) to process `index`.
    async fn signal(&self, index: usize, signal: &str) {
        let pid = self.processes.0[index].id().to_string();
        let signal = format!("-{signal}");
        let status = tokio::task::spawn_blocking(move || {
            Command::new("kill").args([&signal, &pid]).status()
        })
        .await
        .unwrap()
        .unwrap();
        assert!(status.success());
    }

    /// The warnings and errors of every process, to explain a failure.
    fn log_summary(&self) -> String {
        let mut summary = String::new();
        let mut entries: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        entries.sort();
        for path in entries {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("lease"))
                .collect();
            let name = path.file_name().unwrap().to_string_lossy();
            summary += &format!("--- {name}: {} lines\n", text.lines().count());
            for line in &lines[lines.len().saturating_sub(25)..] {
                summary += line;
                summary.push('\n');
            }
        }
        summary
    }
}

fn kubeconfig(dir: &std::path::Path, name: &str, server: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster: {{server: \"{server}\"}}\n\
             contexts:\n- name: fake\n  context: {{cluster: fake, user: fake, namespace: default}}\nusers:\n- name: fake\n  user: {{}}\n"
        ),
    )
    .unwrap();
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn holder(api: &FakeApiServer) -> String {
    api.get_as::<Lease>(LEASE_NS, LEASE_NAME)
        .and_then(|l| l.spec?.holder_identity)
        .unwrap_or_default()
}

/// Records each change of the Lease's holder as the API server stores it: the check runs
/// after every stored change (and every 20 ms), for the whole test.
fn record_lease_holders(api: Arc<FakeApiServer>) -> Holders {
    let holders: Holders = Arc::default();
    let record = holders.clone();
    tokio::spawn(async move {
        loop {
            api.wait_for(Duration::from_secs(1), |a| {
                let now = holder(a);
                let mut seen = record.lock().unwrap();
                if seen.last().is_none_or(|(_, last)| *last != now) {
                    seen.push((SystemTime::now(), now));
                }
                None::<()>
            })
            .await;
        }
    });
    holders
}

/// The requests that reached the simulator from an instance after another instance took
/// the Lease from it and before it held the Lease again.
fn requests_after_losing_the_lease(
    holders: &[(SystemTime, String)],
    requests: &[RequestRecord],
) -> Vec<RequestRecord> {
    requests
        .iter()
        .filter(|r| {
            r.instance
                .as_deref()
                .is_some_and(|i| sent_after_losing_the_lease(holders, i, r.at))
        })
        .cloned()
        .collect()
}

/// Whether a request of `instance` at `at` came after another instance took the Lease from
/// it, and before it held the Lease again.
fn sent_after_losing_the_lease(
    holders: &[(SystemTime, String)],
    instance: &str,
    at: SystemTime,
) -> bool {
    let before: Vec<&str> = holders
        .iter()
        .filter(|(changed, _)| *changed <= at)
        .map(|(_, h)| h.as_str())
        .collect();
    let held_before = before.contains(&instance);
    let now = before.last().copied().unwrap_or_default();
    held_before && !now.is_empty() && now != instance
}

/// The Kubernetes requests, Lease requests aside, that each instance sent after losing the
/// Lease (see [`sent_after_losing_the_lease`]).
fn kube_requests_after_losing_the_lease(
    holders: &[(SystemTime, String)],
    seen: &BTreeMap<String, SeenRequests>,
) -> Vec<(String, SystemTime, String)> {
    let mut late = Vec::new();
    for (instance, requests) in seen {
        for (at, line) in requests.lock().unwrap().iter() {
            if !line.contains("/leases") && sent_after_losing_the_lease(holders, instance, *at) {
                late.push((instance.clone(), *at, line.clone()));
            }
        }
    }
    late
}

fn secret(name: &str, pairs: &[(&str, &str)]) -> Secret {
    common::secret_manifest(NS, name, pairs)
}

/// Tenant `cc<i>` of contact center `i`: named by id when `i` is even, by domain when odd.
fn chaos_tenant(i: usize) -> DigitalChannelsTenant {
    let name = format!("cc{i}");
    let mut t = tenant(&name, &name, true);
    t.metadata.uid = None;
    t.spec.deletion_policy = DeletionPolicy::Delete;
    if i.is_multiple_of(2) {
        t.spec.contact_center_domain = None;
        t.spec.contact_center_id = Some(generated_contact_center(i));
    }
    t
}

fn apply_tenants(api: &FakeApiServer, range: std::ops::Range<usize>) {
    for i in range {
        let name = format!("cc{i}");
        api.apply_as(&secret(
            &format!("{name}-user"),
            &[("username", "nexus"), ("password", "nexus_password")],
        ));
        api.apply_as(&chaos_tenant(i));
    }
}

fn ready(conditions: Option<&Vec<digital_channels_operator::api::conditions::Condition>>) -> bool {
    conditions
        .and_then(|c| find(c, "Ready"))
        .is_some_and(|c| c.status == ConditionStatus::True)
}

/// Whether the environment and tenants `cc0..cc<n>` are all Ready.
fn all_ready(api: &FakeApiServer, n: usize) -> bool {
    let env = api.get_as::<DigitalChannelsEnvironment>(NS, "prod");
    env.is_some_and(|e| ready(e.status.as_ref().map(|s| &s.conditions)))
        && (0..n).all(|i| {
            api.get_as::<DigitalChannelsTenant>(NS, &format!("cc{i}"))
                .is_some_and(|t| ready(t.status.as_ref().map(|s| &s.conditions)))
        })
}

/// What is not Ready, to explain a timeout.
fn not_ready(api: &FakeApiServer, n: usize) -> String {
    let env = api.get_as::<DigitalChannelsEnvironment>(NS, "prod");
    let mut out = format!("environment: {:?}\n", env.and_then(|e| e.status));
    for i in 0..n {
        let t = api.get_as::<DigitalChannelsTenant>(NS, &format!("cc{i}"));
        if !t
            .as_ref()
            .is_some_and(|t| ready(t.status.as_ref().map(|s| &s.conditions)))
        {
            out += &format!("cc{i}: {:?}\n", t.and_then(|t| t.status));
        }
    }
    out
}

async fn wait_all_ready(chaos: &Chaos, n: usize) {
    let done = chaos
        .api
        .wait_for(SETTLE, |a| all_ready(a, n).then_some(()))
        .await;
    assert!(
        done.is_some(),
        "not all Ready after {SETTLE:?}:\n{}\n{}",
        not_ready(&chaos.api, n),
        chaos.log_summary()
    );
}

/// Faults armed on each create operation.
const ARMED_PER_CREATE: u64 = 3;

/// Lost answers and answers that never come, on every create of the provisioning: each
/// effect happens upstream while the operator cannot know it.
fn arm_create_faults(sim: &Sim) {
    let faults = sim.handle.faults();
    for op in [
        "nexus.create_tenant",
        "nexus.register_ucs",
        "environment.upsert_setting",
    ] {
        faults.lose_answer_next(op, ARMED_PER_CREATE as u32 - 1, 504);
        faults.timeout_after_effect_next(op, 1);
    }
    faults.lose_answer_next("auth.create_client", 1, 502);
}

/// The same for the deletions.
fn arm_delete_faults(sim: &Sim) {
    let faults = sim.handle.faults();
    for op in ["nexus.delete_tenant", "nexus.delete_ucs"] {
        faults.lose_answer_next(op, 2, 504);
        faults.timeout_after_effect_next(op, 1);
    }
    faults.lose_answer_next("auth.delete_client", 1, 502);
}

/// Every create happened once: one Nexus tenant, one PlatformUCS service and one
/// `chatservice-uri` per contact center, one OAuth client, one `nex_gapis` row (the first
/// one, never replaced: `gapi_created` is when the first check saw it made).
async fn assert_created_once(chaos: &Chaos, tenants: usize, gapi_created: &mut Option<String>) {
    let state = chaos.sim.handle.snapshot();
    let logs = || chaos.log_summary();
    for op in ["nexus.create_tenant", "nexus.register_ucs"] {
        assert_eq!(state.creates(op), tenants as u64, "{op}\n{}", logs());
    }
    // The setting is an upsert, re-sent by the HTTP client when its answer is lost: the
    // same value again, and only then (the next pass reads the settings first).
    let settings = "environment.upsert_setting";
    assert_eq!(
        state.creates(settings),
        tenants as u64,
        "{settings}\n{}",
        logs()
    );
    assert!(
        state.updates(settings) <= ARMED_PER_CREATE,
        "{settings} repeated {} times\n{}",
        state.updates(settings),
        logs()
    );
    let chat: Vec<_> = state
        .settings
        .values()
        .filter_map(|s| s.get("chatservice-uri"))
        .filter(|s| s.value.as_str() == Some(chaos.sim.url().as_str()))
        .collect();
    assert_eq!(chat.len(), tenants, "chatservice-uri per contact center");
    assert_eq!(state.creates("auth.create_client"), 1, "{}", logs());
    assert_eq!(state.tenants.len(), tenants, "{:?}", state.tenants.keys());
    assert_eq!(state.ucs_services.len(), tenants);
    assert!(
        state
            .ucs_services
            .values()
            .all(|u| u == "https://ucs.example.com"),
        "{:?}",
        state.ucs_services
    );
    let gapis = chaos.sim.handle.gapis_rows().await.unwrap();
    assert_eq!(gapis.len(), 1, "one nex_gapis row: {gapis:?}");
    let created = gapis[0].created.clone().unwrap_or_default();
    assert_eq!(
        *gapi_created.get_or_insert_with(|| created.clone()),
        created,
        "the nex_gapis row was replaced"
    );
}

/// Every tenant's output Secret holds the key Nexus issued for that tenant (its own row of
/// `nex_apikeys`), and Nexus issued one set of keys per tenant.
async fn assert_keys_are_the_issued_ones(chaos: &Chaos, tenants: usize) {
    let rows = chaos.sim.handle.apikey_rows().await.unwrap();
    assert_eq!(
        rows.len(),
        3 * tenants,
        "own, -Designer and -iWD keys per tenant"
    );
    for i in 0..tenants {
        let (cc, name) = (generated_contact_center(i), format!("cc{i}"));
        let issued: Vec<&str> = rows
            .iter()
            .filter(|r| r.tenantid.as_deref() == Some(cc.as_str()) && r.name == name)
            .map(|r| r.id.as_str())
            .collect();
        let output = chaos
            .api
            .get_as::<Secret>(NS, &format!("{name}-digital-channels"))
            .and_then(|s| s.data?.remove("xapikey"))
            .map(|k| String::from_utf8(k.0).unwrap());
        assert_eq!(issued.len(), 1, "{name}: one key issued");
        assert_eq!(
            output.as_deref(),
            Some(issued[0]),
            "{name}: the output key is the one Nexus issued"
        );
    }
}

/// Everything deleted once, nothing stuck in the API server, nothing left upstream.
async fn assert_all_gone(chaos: &Chaos, deleted: &std::collections::BTreeSet<String>) {
    let state = chaos.sim.handle.snapshot();
    for op in ["nexus.delete_tenant", "nexus.delete_ucs"] {
        assert_eq!(
            state.deletes(op),
            ALL as u64,
            "{op}\n{}",
            chaos.log_summary()
        );
    }
    assert_eq!(state.deletes("auth.delete_client"), 1);
    assert!(state.tenants.is_empty(), "{:?}", state.tenants.keys());
    assert!(state.ucs_services.is_empty(), "{:?}", state.ucs_services);
    assert!(state.clients.is_empty(), "{:?}", state.clients.keys());
    assert!(chaos.sim.handle.gapis_rows().await.unwrap().is_empty());
    assert!(chaos.sim.handle.apikey_rows().await.unwrap().is_empty());
    let api = &chaos.api;
    assert!(api.list_as::<DigitalChannelsTenant>(Some(NS)).is_empty());
    assert!(
        api.list_as::<DigitalChannelsEnvironment>(Some(NS))
            .is_empty()
    );
    // An output Secret is left to the garbage collector, which the fake API server does not
    // run: each must be owned by its tenant, gone. (The environment's generated client secret
    // and fingerprint key stay, by design: docs/install.md, "Uninstall".)
    let left: Vec<String> = api
        .list_as::<Secret>(Some(NS))
        .into_iter()
        .filter(|s| {
            s.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.ends_with("-digital-channels"))
        })
        .filter(|s| {
            let owners = s.metadata.owner_references.iter().flatten();
            let uids: Vec<&str> = owners.map(|o| o.uid.as_str()).collect();
            uids.is_empty() || !uids.iter().all(|u| deleted.contains(*u))
        })
        .filter_map(|s| s.metadata.name)
        .collect();
    assert!(
        left.is_empty(),
        "output Secrets left with no deleted owner: {left:?}"
    );
}

/// The UIDs of the environment and the tenants, before they are deleted.
fn resource_uids(api: &FakeApiServer) -> std::collections::BTreeSet<String> {
    let tenants = api.list_as::<DigitalChannelsTenant>(Some(NS)).into_iter();
    let envs = api
        .list_as::<DigitalChannelsEnvironment>(Some(NS))
        .into_iter();
    tenants
        .filter_map(|t| t.metadata.uid)
        .chain(envs.filter_map(|e| e.metadata.uid))
        .collect()
}

/// Whether every tenant and the environment are gone (a finalizer left keeps one).
fn stuck(api: &FakeApiServer) -> Vec<String> {
    let tenants = api.list_as::<DigitalChannelsTenant>(Some(NS)).into_iter();
    let tenants = tenants.map(|t| (t.metadata.name, t.metadata.finalizers));
    let envs = api
        .list_as::<DigitalChannelsEnvironment>(Some(NS))
        .into_iter();
    let envs = envs.map(|e| (e.metadata.name, e.metadata.finalizers));
    tenants
        .chain(envs)
        .map(|(name, finalizers)| {
            let holds = finalizers
                .unwrap_or_default()
                .iter()
                .any(|f| f == FINALIZER);
            format!("{} (finalizer: {holds})", name.unwrap_or_default())
        })
        .collect()
}

/// Phase 1: the environment and the first tenants applied together under 8 to 10 kills.
/// Returns the process left running, the leader.
async fn provision_under_kills(chaos: &mut Chaos) -> usize {
    for (name, pairs) in [
        ("gws-ops", vec![("username", "ops"), ("password", "ops")]),
        ("nexus-db", vec![("url", chaos.sim.db.url.as_str())]),
    ] {
        chaos.api.apply_as(&secret(name, &pairs));
    }
    arm_create_faults(&chaos.sim);
    let mut leader = chaos.spawn("replica-a");
    let mut env = environment(&chaos.sim.url());
    env.metadata.uid = None;
    env.spec.deletion_policy = DeletionPolicy::Delete;
    chaos.api.apply_as(&env);
    apply_tenants(&chaos.api, 0..FIRST);
    let kills = chaos.rng.random_range(8..=10);
    for _ in 0..kills {
        chaos
            .kill_in_flight(leader, 80, Duration::from_secs(5))
            .await;
        leader = chaos.spawn("replica-a");
    }
    eprintln!("phase 1: {kills} kills");
    wait_all_ready(chaos, FIRST).await;
    leader
}

/// Phase 2: a standby starts; more tenants are applied and the leader is frozen as its
/// first create of them reaches Nexus, past its Lease; resumed once the standby took over,
/// it must stop without sending anything. Returns the new leader.
async fn freeze_the_leader(chaos: &mut Chaos, leader: usize) -> usize {
    let standby = chaos.spawn("replica-b");
    // The standby has seen the Lease held before the leader stops renewing it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let base = chaos.sim.handle.requests().len();
    apply_tenants(&chaos.api, FIRST..ALL);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let requests = chaos.sim.handle.requests();
        let creating = requests[base.min(requests.len())..].iter().any(|r| {
            r.instance.as_deref() == Some("replica-a")
                && r.method == "POST"
                && r.path.ends_with("/provisioning/tenants")
        });
        if creating {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica-a never created a tenant"
        );
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    chaos.signal(leader, "STOP").await;
    let taken = chaos
        .api
        .wait_for(Duration::from_secs(40), |a| {
            (holder(a) == "replica-b").then_some(())
        })
        .await;
    assert!(
        taken.is_some(),
        "replica-b takes the Lease\n{}",
        chaos.log_summary()
    );
    // The frozen leader's answers are waiting for it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    chaos.signal(leader, "CONT").await;
    let exited = wait_exit(&mut chaos.processes.0[leader], Duration::from_secs(10)).await;
    assert_eq!(
        exited.and_then(|s| s.code()),
        Some(1),
        "the resumed leader exits\n{}",
        chaos.log_summary()
    );
    wait_all_ready(chaos, ALL).await;
    standby
}

async fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Phase 3: every tenant deleted, then the environment, the leader killed a few times
/// during each. Returns the process left running.
async fn delete_under_kills(chaos: &mut Chaos, mut leader: usize) -> usize {
    arm_delete_faults(&chaos.sim);
    for i in 0..ALL {
        chaos
            .api
            .delete_as::<DigitalChannelsTenant>(NS, &format!("cc{i}"));
    }
    for _ in 0..3 {
        chaos
            .kill_in_flight(leader, 40, Duration::from_secs(5))
            .await;
        leader = chaos.spawn("replica-b");
    }
    let tenants_gone = chaos
        .api
        .wait_for(SETTLE, |a| {
            a.list_as::<DigitalChannelsTenant>(Some(NS))
                .is_empty()
                .then_some(())
        })
        .await;
    assert!(
        tenants_gone.is_some(),
        "tenants stuck: {:?}\n{}",
        stuck(&chaos.api),
        chaos.log_summary()
    );
    chaos
        .api
        .delete_as::<DigitalChannelsEnvironment>(NS, "prod");
    chaos
        .kill_in_flight(leader, 3, Duration::from_secs(2))
        .await;
    leader = chaos.spawn("replica-b");
    let gone = chaos
        .api
        .wait_for(SETTLE, |a| stuck(a).is_empty().then_some(()))
        .await;
    assert!(
        gone.is_some(),
        "stuck: {:?}\n{}",
        stuck(&chaos.api),
        chaos.log_summary()
    );
    leader
}

/// The whole scenario, with every check but the Lease's fencing; answers the run for it.
async fn chaos_scenario() -> Chaos {
    let started = std::time::Instant::now();
    let mut chaos = Chaos::start().await;
    let mut gapi_created = None;

    let leader = provision_under_kills(&mut chaos).await;
    assert_created_once(&chaos, FIRST, &mut gapi_created).await;
    assert_keys_are_the_issued_ones(&chaos, FIRST).await;
    eprintln!("phase 1 done at {:?}", started.elapsed());

    let leader = freeze_the_leader(&mut chaos, leader).await;
    assert_created_once(&chaos, ALL, &mut gapi_created).await;
    assert_keys_are_the_issued_ones(&chaos, ALL).await;
    eprintln!("phase 2 done at {:?}", started.elapsed());

    let deleted = resource_uids(&chaos.api);
    delete_under_kills(&mut chaos, leader).await;
    assert_all_gone(&chaos, &deleted).await;
    // Nothing was created again on the way out.
    let state = chaos.sim.handle.snapshot();
    for op in [
        "nexus.create_tenant",
        "nexus.register_ucs",
        "environment.upsert_setting",
    ] {
        assert_eq!(state.creates(op), ALL as u64, "{op}");
    }
    assert_eq!(state.creates("auth.create_client"), 1);

    let holders = chaos.holders.lock().unwrap().clone();
    let names: Vec<&str> = holders.iter().map(|(_, h)| h.as_str()).collect();
    assert!(
        names.windows(2).any(|w| w == ["replica-a", "replica-b"]),
        "replica-b took the Lease from replica-a: {names:?}"
    );
    let in_flight = chaos.kills.iter().filter(|k| k.in_flight > 0).count();
    assert!(
        in_flight * 2 >= chaos.kills.len() && chaos.kills.iter().any(|k| k.writes > 0),
        "most kills with requests in flight, upstream writes among them: {:?}",
        chaos.kills
    );
    let faults = chaos.sim.handle.faults();
    let unmet: Vec<&str> = digital_channels_operator::simulator::OPERATIONS
        .iter()
        .copied()
        .filter(|op| faults.remaining(op) > 0)
        .collect();
    eprintln!(
        "done in {:?}; requests in flight at each kill: {:?}; {} processes; faults never met: {unmet:?}; \
         PlatformUCS registrations repeated: {}",
        started.elapsed(),
        chaos.kills,
        chaos.processes.0.len(),
        state.updates("nexus.register_ucs")
    );
    chaos
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_effect_once_and_nothing_left_under_kills_a_frozen_leader_and_deletion() {
    chaos_scenario().await;
}

/// The same scenario, judged on the Lease: no request, upstream or to Kubernetes (the Lease's
/// own aside), from a process after another took the Lease from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "defect: a request that passed the fence just before SIGSTOP leaves on SIGCONT, after the takeover"]
async fn no_request_leaves_a_process_after_it_lost_the_lease_under_chaos() {
    let chaos = chaos_scenario().await;
    let holders = chaos.holders.lock().unwrap().clone();
    let late = requests_after_losing_the_lease(&holders, &chaos.sim.handle.requests());
    assert!(
        late.is_empty(),
        "requests after their sender lost the Lease: {late:#?}\nholders: {holders:?}\n{}",
        chaos.log_summary()
    );
    let late_kube = kube_requests_after_losing_the_lease(&holders, &chaos.kube_requests);
    assert!(
        late_kube.is_empty(),
        "Kubernetes requests after their sender lost the Lease: {late_kube:#?}\nholders: {holders:?}"
    );
    let seen_kube = chaos.kube_requests["replica-a"].lock().unwrap().len();
    assert!(seen_kube > 0, "the proxy saw replica-a's requests");
}

#[test]
fn a_request_is_late_once_another_instance_took_the_lease_until_its_sender_holds_it_again() {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    let at = |s: u64| t0 + Duration::from_secs(s);
    let holders: Vec<(SystemTime, String)> = [(0, "a"), (10, ""), (11, "a"), (20, "b"), (30, "a")]
        .iter()
        .map(|(s, h)| (at(*s), h.to_string()))
        .collect();
    let request = |instance: Option<&str>, s: u64| RequestRecord {
        instance: instance.map(str::to_owned),
        method: "POST".into(),
        path: format!("/{s}"),
        unix_micros: 0,
        at: at(s),
    };
    for (instance, s, late) in [
        (Some("a"), 5, false),
        // Released (no holder): not taken by another.
        (Some("a"), 10, false),
        (Some("a"), 19, false),
        (Some("a"), 20, true),
        (Some("a"), 25, true),
        // Held again.
        (Some("a"), 31, false),
        // b's own time, and b after a took it back.
        (Some("b"), 25, false),
        (Some("b"), 35, true),
        // Never held it: a standby's or another process's requests are not judged here.
        (Some("c"), 25, false),
        (None, 25, false),
    ] {
        let found = requests_after_losing_the_lease(&holders, &[request(instance, s)]);
        assert_eq!(!found.is_empty(), late, "{instance:?} at {s}");
    }
}
