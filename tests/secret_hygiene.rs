//! No secret leaves the places meant for it. A full scenario (wrong passwords, then right ones,
//! an environment and a tenant to Ready, a client secret and a tenant password rotated, both
//! deleted with `deletionPolicy: Delete`) runs through `dc-operator run` at `RUST_LOG=trace`
//! with recognisable secret values, and every output channel is searched for each of them
//! (and their base64 forms): the logs, every event, every status and condition the operator
//! wrote, every other request body it sent to the API server, `/metrics`, the output and
//! errors of `dc-operator provision` on bad input, and the panic payloads of the errors and
//! values a caller could unwrap. The API key may appear in its output Secret only.
//!
//! And TLS is verified by default: an upstream with a certificate of a private CA fails
//! until the environment names the CA in `tls.caSecret`.

mod common;
#[path = "common/own_postgres.rs"]
mod own_postgres;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::fake_apiserver::{FakeApiServer, ResourceKey};
use common::operator::{Harness, NS};
use common::tls_front::tls_front;
use common::{MemoryStore, Sim, TestDb};
use digital_channels_operator::api::conditions::{ConditionStatus, find};
use digital_channels_operator::api::environment::TlsSpec;
use digital_channels_operator::api::{
    DeletionPolicy, DigitalChannelsEnvironment, DigitalChannelsTenant, SecretKeyRef,
};
use digital_channels_operator::simulator::{DEMO_CC_T100, Seed, Simulator, SimulatorConfig};
use k8s_openapi::api::core::v1::Secret;
use own_postgres::OwnPostgres;

const OPS_PW: &str = "S3CRET-ops-pw-7731";
const WRONG_OPS_PW: &str = "S3CRET-wrong-ops-pw-1234";
const DB_PW: &str = "S3CRET-db-pw-9182";
const WRONG_DB_PW: &str = "S3CRET-wrong-db-pw-5521";
const CLIENT_SECRET: &str = "S3CRET-client-secret-5529";
const CLIENT_SECRET_ROTATED: &str = "S3CRET-client-secret-rotated-6630";
const TENANT_PW: &str = "S3CRET-tenant-pw-4410";
const WRONG_TENANT_PW: &str = "S3CRET-wrong-tenant-pw-0042";
const TENANT_PW_ROTATED: &str = "S3CRET-tenant-pw-rotated-8812";

/// The fixed secret values of the scenario.
const FIXED: [&str; 9] = [
    OPS_PW,
    WRONG_OPS_PW,
    DB_PW,
    WRONG_DB_PW,
    CLIENT_SECRET,
    CLIENT_SECRET_ROTATED,
    TENANT_PW,
    WRONG_TENANT_PW,
    TENANT_PW_ROTATED,
];

/// A value and the forms it may travel in: as is, and base64 (Secret data, Basic auth).
struct Needle {
    what: String,
    forms: Vec<String>,
}

fn needle(what: &str, value: &str) -> Needle {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut forms = vec![value.to_string(), b64.encode(value)];
    // Basic authentication of the ops user.
    if what.contains("ops") {
        forms.push(b64.encode(format!("ops:{value}")));
    }
    Needle {
        what: what.to_string(),
        forms,
    }
}

/// Every form of every needle found in `text`, as "what (form)".
fn leaks(needles: &[Needle], text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for n in needles {
        for form in &n.forms {
            if text.contains(form.as_str()) {
                found.push(format!("{} ({form})", n.what));
            }
        }
    }
    found
}

/// Where a leak was found: the channel and the lines around it.
fn assert_clean(channel: &str, needles: &[Needle], text: &str) {
    let found = leaks(needles, text);
    if !found.is_empty() {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                needles
                    .iter()
                    .any(|n| n.forms.iter().any(|f| l.contains(f.as_str())))
            })
            .take(5)
            .collect();
        panic!(
            "{channel} leaks {found:?}:\n{}",
            lines
                .iter()
                .map(|l| l.chars().take(600).collect::<String>())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn secret(api: &FakeApiServer, name: &str, pairs: &[(&str, &str)]) {
    let data = pairs
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                k8s_openapi::ByteString(v.as_bytes().to_vec()),
            )
        })
        .collect();
    api.apply_as(&Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    });
}

fn secret_value(api: &FakeApiServer, name: &str, key: &str) -> String {
    let s = api.get_as::<Secret>(NS, name).unwrap();
    String::from_utf8(s.data.unwrap()[key].0.clone()).unwrap()
}

/// The demo seed with the scenario's ops and tenant passwords.
fn seed() -> Seed {
    let mut seed = Seed::demo();
    seed.ops_users = vec![("ops".into(), OPS_PW.into())];
    for user in &mut seed.tenant_users {
        user.password = TENANT_PW.into();
    }
    seed
}

/// The simulator on a database of an own server whose password is [`DB_PW`].
async fn sim_with_db_password() -> (Arc<OwnPostgres>, Sim) {
    let pg = tokio::task::spawn_blocking(|| OwnPostgres::start(DB_PW))
        .await
        .unwrap();
    let name = format!("dcown_{}", rand::random::<u64>() % 1_000_000_000_000);
    let url = pg.create_database(&name).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .connect(&url)
        .await
        .unwrap();
    let config = SimulatorConfig {
        seed: seed(),
        ..SimulatorConfig::default()
    };
    let handle = Simulator::start(config, pool.clone(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    (
        Arc::new(pg),
        Sim {
            handle,
            db: TestDb { name, url, pool },
        },
    )
}

async fn wait_condition<K>(
    api: &FakeApiServer,
    name: &str,
    type_: &str,
    status: ConditionStatus,
    reason: Option<&str>,
) where
    K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned + serde::Serialize,
{
    let found = api
        .wait_for(Duration::from_secs(60), |a| {
            let o = a.get_as::<K>(NS, name)?;
            let v = serde_json::to_value(&o).ok()?;
            let conditions: Vec<digital_channels_operator::api::conditions::Condition> =
                serde_json::from_value(v.pointer("/status/conditions")?.clone()).ok()?;
            let c = find(&conditions, type_)?;
            (c.status == status && reason.is_none_or(|r| c.reason == r)).then_some(())
        })
        .await;
    assert!(
        found.is_some(),
        "{name} never had {type_}={status:?} {reason:?}: {:#?}",
        api.object(&ResourceKey::of::<K>(), NS, name)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_events_status_errors_or_metrics_at_trace_level() {
    digital_channels_operator::upstream::http::install_crypto_provider();
    let (pg, sim) = sim_with_db_password().await;
    let api = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dc-operator"))
        .args([
            "run",
            "--namespace",
            NS,
            "--leader-election",
            "false",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--max-backoff",
            "1s",
            "--resync-interval",
            "10s",
            "--request-timeout",
            "5s",
            "--log-format",
            "json",
        ])
        .env("KUBECONFIG", api.write_kubeconfig(dir.path()))
        .env("RUST_LOG", "trace")
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let stdout = drain(Box::new(child.stdout.take().unwrap()));

    let db_url = |password: &str| pg.url_with_password(&sim.db.name, password);
    secret(
        &api,
        "gws-ops",
        &[("username", "ops"), ("password", WRONG_OPS_PW)],
    );
    secret(&api, "nexus-db", &[("url", &db_url(WRONG_DB_PW))]);
    secret(&api, "nexus-client", &[("client-secret", CLIENT_SECRET)]);
    secret(
        &api,
        "t100-user",
        &[("username", "nexus"), ("password", WRONG_TENANT_PW)],
    );
    let mut env = common::environment(&sim.url());
    env.metadata.uid = None;
    env.spec.client.secret = Some(SecretKeyRef {
        name: "nexus-client".into(),
        key: "client-secret".into(),
    });
    env.spec.deletion_policy = DeletionPolicy::Delete;
    api.apply_as(&env);
    let mut tenant = common::tenant("t100", "t100", true);
    tenant.metadata.uid = None;
    tenant.spec.deletion_policy = DeletionPolicy::Delete;
    api.apply_as(&tenant);

    // Failures first: each wrong password is a condition, then fixed.
    let env_is = |type_, status, reason| {
        wait_condition::<DigitalChannelsEnvironment>(&api, "prod", type_, status, reason)
    };
    env_is(
        "ClientRegistered",
        ConditionStatus::False,
        Some("Unauthorized"),
    )
    .await;
    secret(
        &api,
        "gws-ops",
        &[("username", "ops"), ("password", OPS_PW)],
    );
    env_is(
        "GapiRegistered",
        ConditionStatus::False,
        Some("Unauthorized"),
    )
    .await;
    secret(&api, "nexus-db", &[("url", &db_url(DB_PW))]);
    env_is("Ready", ConditionStatus::True, None).await;
    let tenant_is = |type_, status, reason| {
        wait_condition::<DigitalChannelsTenant>(&api, "t100", type_, status, reason)
    };
    tenant_is(
        "TenantProvisioned",
        ConditionStatus::False,
        Some("Unauthorized"),
    )
    .await;
    secret(
        &api,
        "t100-user",
        &[("username", "nexus"), ("password", TENANT_PW)],
    );
    tenant_is("Ready", ConditionStatus::True, None).await;

    // Rotations: the client secret, then the tenant user's password.
    secret(
        &api,
        "nexus-client",
        &[("client-secret", CLIENT_SECRET_ROTATED)],
    );
    let rotated = api
        .wait_for(Duration::from_secs(30), |_| {
            sim.handle.snapshot().clients["nexus_client"]
                .secret_matches(CLIENT_SECRET_ROTATED)
                .then_some(())
        })
        .await;
    assert!(rotated.is_some(), "the client secret rotation reached GWS");
    env_is("Ready", ConditionStatus::True, None).await;
    sim.handle
        .set_tenant_user_password(DEMO_CC_T100, "nexus", TENANT_PW_ROTATED);
    secret(
        &api,
        "t100-user",
        &[("username", "nexus"), ("password", TENANT_PW_ROTATED)],
    );
    let pushed = api
        .wait_for(Duration::from_secs(30), |_| {
            sim.handle.snapshot().tenants[DEMO_CC_T100]
                .token_matches(TENANT_PW_ROTATED)
                .then_some(())
        })
        .await;
    assert!(
        pushed.is_some(),
        "the tenant password rotation reached Nexus"
    );
    tenant_is("Ready", ConditionStatus::True, None).await;

    // The values made during the run: API keys, the fingerprint key, tokens, the URLs.
    let api_key = secret_value(&api, "t100-digital-channels", "xapikey");
    let fingerprint_key = secret_value(&api, "prod-fingerprint-key", "key");
    let extra_keys: Vec<String> = sim
        .handle
        .apikey_rows()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .filter(|k| *k != api_key)
        .collect();
    assert_eq!(extra_keys.len(), 2, "the -Designer and -iWD keys");
    let tokens = sim.handle.issued_tokens();
    assert!(tokens.len() >= 4, "tokens issued: {}", tokens.len());

    // The metrics, while the operator runs.
    let mut metrics = String::new();
    for _ in 0..50 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            metrics = r.text().await.unwrap_or_default();
            if metrics.contains("dc_operator_external_requests_total") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(metrics.contains("dc_operator_reconcile_total"), "{metrics}");

    // Statuses as they stand, then deletion (the cleanup deletes in GWS, Nexus, the table).
    let last_status = serde_json::to_string(&[
        api.object(&ResourceKey::of::<DigitalChannelsEnvironment>(), NS, "prod"),
        api.object(&ResourceKey::of::<DigitalChannelsTenant>(), NS, "t100"),
    ])
    .unwrap();
    api.delete_as::<DigitalChannelsTenant>(NS, "t100");
    let gone = api
        .wait_for(Duration::from_secs(30), |a| {
            a.get_as::<DigitalChannelsTenant>(NS, "t100")
                .is_none()
                .then_some(())
        })
        .await;
    assert!(gone.is_some(), "tenant deleted");
    api.delete_as::<DigitalChannelsEnvironment>(NS, "prod");
    let gone = api
        .wait_for(Duration::from_secs(30), |a| {
            a.get_as::<DigitalChannelsEnvironment>(NS, "prod")
                .is_none()
                .then_some(())
        })
        .await;
    assert!(gone.is_some(), "environment deleted");
    assert!(!sim.handle.snapshot().tenants.contains_key(DEMO_CC_T100));

    let pid = child.id().to_string();
    tokio::task::spawn_blocking(move || Command::new("kill").args(["-TERM", &pid]).status())
        .await
        .unwrap()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    let logs = stderr.join().unwrap() + &stdout.join().unwrap();
    assert!(status.success(), "exit {status:?}");

    // The needles: every secret value, and what the run made.
    let mut needles: Vec<Needle> = FIXED.iter().map(|v| needle(v, v)).collect();
    needles.push(needle("database URL", &db_url(DB_PW)));
    needles.push(needle("wrong database URL", &db_url(WRONG_DB_PW)));
    needles.push(needle("fingerprint key", &fingerprint_key));
    for (i, k) in extra_keys.iter().enumerate() {
        needles.push(needle(&format!("extra API key {i}"), k));
    }
    for (i, t) in tokens.iter().enumerate() {
        needles.push(needle(&format!("token {i}"), t));
    }
    let api_key_needle = [needle("API key", &api_key)];
    let fixed_count = needles.len() + 1;

    // 1. Logs, at trace level: they are long, and say what happened.
    assert!(logs.len() > 100_000, "trace logs: {} bytes", logs.len());
    assert!(logs.contains("TRACE") || logs.contains(r#""level":"TRACE""#));
    assert_clean("the logs", &needles, &logs);
    assert_clean("the logs", &api_key_needle, &logs);
    assert!(!logs.contains("panicked"), "a panic in the logs");

    // 2. Events.
    let events = serde_json::to_string(&[
        api.objects(&ResourceKey::new("events.k8s.io", "v1", "events"), None),
        api.objects(&ResourceKey::new("", "v1", "events"), None),
    ])
    .unwrap();
    assert!(events.contains("Provisioned"), "events were published");
    assert_clean("the events", &needles, &events);
    assert_clean("the events", &api_key_needle, &events);

    // 3. Every status and condition written, every other request body sent to the API
    // server; the API key goes into its output Secret only, the fingerprint key into its own.
    let writes = api.writes();
    let statuses: Vec<_> = writes
        .iter()
        .filter(|w| w.subresource.as_deref() == Some("status"))
        .collect();
    assert!(statuses.len() >= 8, "{} status writes", statuses.len());
    let mut messages = BTreeMap::new();
    for w in &writes {
        let body = w.body.as_ref().map(|b| b.to_string()).unwrap_or_default();
        for c in w
            .body
            .as_ref()
            .and_then(|b| b.pointer("/status/conditions"))
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            messages.insert(c["reason"].to_string(), c["message"].to_string());
        }
        let name = w.name.clone().unwrap_or_default();
        let channel = format!("{:?} {}/{name} {:?}", w.verb, w.resource, w.subresource);
        let own_secret = |n: &str| w.resource == "secrets" && name == n;
        let others: Vec<&Needle> = needles
            .iter()
            .filter(|n| !(own_secret("prod-fingerprint-key") && n.what == "fingerprint key"))
            .collect();
        let others: Vec<Needle> = others
            .into_iter()
            .map(|n| Needle {
                what: n.what.clone(),
                forms: n.forms.clone(),
            })
            .collect();
        assert_clean(&channel, &others, &body);
        if !own_secret("t100-digital-channels") {
            assert_clean(&channel, &api_key_needle, &body);
        }
    }
    for reason in ["\"Unauthorized\"", "\"Provisioned\""] {
        assert!(messages.contains_key(reason), "{messages:#?}");
    }
    assert_clean("the last statuses", &needles, &last_status);
    assert_clean("the last statuses", &api_key_needle, &last_status);

    // 4. Metrics.
    assert_clean("/metrics", &needles, &metrics);
    assert_clean("/metrics", &api_key_needle, &metrics);

    eprintln!(
        "figure: {fixed_count} secret values ({} fixed, {} made by the run) searched in logs \
         ({} bytes at trace), {} events, {} writes ({} status), /metrics: 0 leaks",
        FIXED.len(),
        fixed_count - FIXED.len(),
        logs.len(),
        api.objects(&ResourceKey::new("events.k8s.io", "v1", "events"), None)
            .len(),
        writes.len(),
        statuses.len()
    );
    drop(pg);
}

/// A manifest set for `dc-operator provision` against `base`, with `secrets` YAML.
fn manifests(base: &str, secrets: &str) -> String {
    format!(
        r#"{secrets}
---
apiVersion: digitalchannels.dev/v1alpha1
kind: DigitalChannelsEnvironment
metadata: {{name: prod}}
spec:
  authUrl: {base}
  gwsUrl: {base}/gws
  nexusUrl: {base}
  opsCredentialsSecret: {{name: gws-ops}}
  database: {{urlSecret: {{name: nexus-db, key: url}}}}
---
apiVersion: digitalchannels.dev/v1alpha1
kind: DigitalChannelsTenant
metadata: {{name: t100}}
spec:
  environmentRef: {{name: prod}}
  contactCenterDomain: t100
  tenantName: t100
  credentialsSecret: {{name: t100-user}}
"#
    )
}

fn secrets_yaml(ops: &str, url: &str, tenant: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: gws-ops}}\nstringData: {{username: ops, password: \"{ops}\"}}\n\
         ---\napiVersion: v1\nkind: Secret\nmetadata: {{name: nexus-db}}\nstringData: {{url: \"{url}\"}}\n\
         ---\napiVersion: v1\nkind: Secret\nmetadata: {{name: t100-user}}\nstringData: {{username: nexus, password: \"{tenant}\"}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_on_bad_input_and_unwrapped_errors_show_no_secret_and_no_panic() {
    digital_channels_operator::upstream::http::install_crypto_provider();
    let (pg, sim) = sim_with_db_password().await;
    let base = sim.url();
    let url = pg.url_with_password(&sim.db.name, DB_PW);
    let wrong_url = pg.url_with_password(&sim.db.name, WRONG_DB_PW);
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, String)> = vec![
        (
            "wrong ops password",
            manifests(&base, &secrets_yaml(WRONG_OPS_PW, &url, TENANT_PW)),
        ),
        (
            "wrong database password",
            manifests(&base, &secrets_yaml(OPS_PW, &wrong_url, TENANT_PW)),
        ),
        (
            "wrong tenant password",
            manifests(&base, &secrets_yaml(OPS_PW, &url, WRONG_TENANT_PW)),
        ),
        (
            "a database URL that is not PostgreSQL's",
            manifests(
                &base,
                &secrets_yaml(OPS_PW, &format!("mysql://u:{DB_PW}@127.0.0.1/x"), TENANT_PW),
            ),
        ),
        (
            "a database URL with a bad port",
            manifests(
                &base,
                &secrets_yaml(
                    OPS_PW,
                    &format!("postgres://u:{DB_PW}@127.0.0.1:port/x"),
                    TENANT_PW,
                ),
            ),
        ),
        (
            "Secret data that is not base64",
            manifests(
                &base,
                &format!(
                    "apiVersion: v1\nkind: Secret\nmetadata: {{name: gws-ops}}\ndata: {{username: b3Bz, password: \"{OPS_PW}!\"}}\n"
                ),
            ),
        ),
        (
            "a Secret of the wrong shape",
            manifests(
                &base,
                &format!(
                    "apiVersion: v1\nkind: Secret\nmetadata: {{name: gws-ops}}\nstringData: {{password: [\"{OPS_PW}\"]}}\n"
                ),
            ),
        ),
        (
            "a Secret that is not YAML",
            manifests(
                &base,
                &format!(
                    "apiVersion: v1\nkind: Secret\nmetadata: {{name: gws-ops}}\nstringData: {{password: \"{OPS_PW}\"\n"
                ),
            ),
        ),
    ];
    let needles: Vec<Needle> = [
        OPS_PW,
        WRONG_OPS_PW,
        DB_PW,
        WRONG_DB_PW,
        TENANT_PW,
        WRONG_TENANT_PW,
        CLIENT_SECRET,
    ]
    .iter()
    .map(|v| needle(v, v))
    .collect();
    for (i, (what, yaml)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("case{i}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        let out_dir = dir.path().join(format!("out{i}"));
        let output = {
            let (file, out_dir) = (file.clone(), out_dir.clone());
            tokio::task::spawn_blocking(move || {
                Command::new(env!("CARGO_BIN_EXE_dc-operator"))
                    .arg("provision")
                    .arg("-f")
                    .arg(&file)
                    .arg("--output-dir")
                    .arg(&out_dir)
                    .args(["--request-timeout", "5s"])
                    .env("RUST_LOG", "trace")
                    .env("RUST_BACKTRACE", "1")
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        };
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            matches!(output.status.code(), Some(1 | 2)),
            "{what}: exit {:?}\n{text}",
            output.status
        );
        assert!(!text.contains("panicked"), "{what}: a panic\n{text}");
        assert_clean(&format!("provision with {what}"), &needles, &text);
    }

    // What a caller that unwraps gets: the errors and values of a real run with wrong
    // passwords, and the resolved environment, as a panic payload.
    let store = MemoryStore::default();
    store.put(
        "gws-ops",
        &[("username", "ops"), ("password", WRONG_OPS_PW)],
    );
    store.put("nexus-db", &[("url", &wrong_url)]);
    store.put("prod-nexus-client", &[("client-secret", CLIENT_SECRET)]);
    store.put(
        "t100-user",
        &[("username", "nexus"), ("password", WRONG_TENANT_PW)],
    );
    let runbook = common::runbook();
    let env = common::environment(&base);
    let refused =
        digital_channels_operator::runbook::environment::run_environment(&runbook, &env, &store)
            .await;
    store.put("gws-ops", &[("username", "ops"), ("password", OPS_PW)]);
    let db_refused =
        digital_channels_operator::runbook::environment::run_environment(&runbook, &env, &store)
            .await;
    let resolved = digital_channels_operator::runbook::environment::read_environment(&env, &store)
        .await
        .unwrap();
    let db = digital_channels_operator::upstream::PgNexusDb::connect_lazy(
        &digital_channels_operator::secret::SecretString::new(wrong_url.clone()),
    )
    .unwrap();
    use digital_channels_operator::upstream::NexusDb;
    let db_error = db.find_gapis("x", "y").await.unwrap_err();
    let mut payloads = Vec::new();
    let mut catch = |f: Box<dyn FnOnce() + std::panic::UnwindSafe>| {
        let payload = std::panic::catch_unwind(f).unwrap_err();
        payloads.push(
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        );
    };
    let step_error = refused.report.failure().map(|(_, e)| e.clone()).unwrap();
    assert_eq!(step_error.reason.as_str(), "Unauthorized");
    let db_step_error = db_refused.report.failure().map(|(_, e)| e.clone()).unwrap();
    assert_eq!(db_step_error.reason.as_str(), "Unauthorized");
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    catch(Box::new(move || {
        unwrap(Err(step_error));
    }));
    catch(Box::new(move || {
        expect(Err(db_step_error), "the database step");
    }));
    catch(Box::new(move || {
        unwrap(Err(db_error));
    }));
    let report = format!("{:?}{:?}", refused.report, db_refused.report);
    catch(Box::new(move || panic!("{report}")));
    catch(Box::new(move || panic!("{resolved:?}")));
    std::panic::set_hook(previous);
    let all = payloads.join("\n");
    assert!(all.contains("Unauthorized"), "{all}");
    assert!(all.contains("password authentication failed"), "{all}");
    assert_clean("panic payloads", &needles, &all);
    eprintln!(
        "figure: {} bad provision inputs and {} panic payloads: 0 leaks, 0 panics",
        cases.len(),
        payloads.len()
    );
}

/// What a caller's `unwrap` and `expect` do with an error.
fn unwrap<E: std::fmt::Debug>(result: Result<(), E>) {
    result.unwrap()
}

fn expect<E: std::fmt::Debug>(result: Result<(), E>, what: &str) {
    result.expect(what)
}

#[tokio::test]
async fn tls_is_verified_by_default_and_tls_ca_secret_trusts_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start().await;
    let (url, ca) = tls_front(h.sim.handle.addr(), dir.path()).await;
    let with_url = |e: &mut DigitalChannelsEnvironment| {
        e.spec.auth_url = url.clone();
        e.spec.gws_url = format!("{url}/gws");
        e.spec.nexus_url = url.clone();
    };
    h.env(with_url);
    let env = h
        .env_condition("ClientRegistered", ConditionStatus::False, None)
        .await;
    let c = find(&env.status.clone().unwrap().conditions, "ClientRegistered")
        .unwrap()
        .clone();
    assert_eq!(c.reason, "UpstreamUnavailable", "{}", c.message);
    assert!(c.message.contains("cannot connect to"), "{}", c.message);
    assert_eq!(h.sim.handle.snapshot().calls("auth.get_client"), 0);

    h.secret("genesys-ca", &[("ca.crt", &ca)]);
    h.env(|e| {
        with_url(e);
        e.spec.tls = Some(TlsSpec {
            ca_secret: SecretKeyRef {
                name: "genesys-ca".into(),
                key: "ca.crt".into(),
            },
        });
    });
    h.env_condition("Ready", ConditionStatus::True, None).await;
    h.tenant(|_| {});
    h.tenant_condition("Ready", ConditionStatus::True, None)
        .await;
    eprintln!(
        "figure: TLS: refused without the CA ({}), Ready with tls.caSecret",
        c.reason
    );
    h.stop().await;
}

/// Known defect (src/upstream/http.rs, `error_from_transport`; not fixed here: another change
/// is under way there): a TLS handshake that fails because the certificate is not trusted is
/// reported as "cannot connect to https://host:port", exactly like a refused connection, so
/// nothing tells the user to set `spec.tls.caSecret`. The cause (rustls' "invalid peer
/// certificate: UnknownIssuer") is in the reqwest error's source chain.
#[tokio::test]
#[ignore = "defect in src/upstream/http.rs: an untrusted certificate is worded as a refused connection"]
async fn an_untrusted_certificate_is_named_in_the_condition() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start().await;
    let (url, _) = tls_front(h.sim.handle.addr(), dir.path()).await;
    h.env(|e| {
        e.spec.auth_url = url.clone();
        e.spec.gws_url = format!("{url}/gws");
        e.spec.nexus_url = url.clone();
    });
    let env = h
        .env_condition("ClientRegistered", ConditionStatus::False, None)
        .await;
    let c = find(&env.status.clone().unwrap().conditions, "ClientRegistered")
        .unwrap()
        .clone();
    assert!(
        c.message.to_lowercase().contains("certificate"),
        "{}: {}",
        c.reason,
        c.message
    );
    h.stop().await;
}
