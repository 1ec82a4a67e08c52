//! End to end against a real cluster: runs only when KUBECONFIG is set, and says it skipped
//! otherwise. It applies crds/, starts `dc-operator simulate` and `dc-operator run` on this
//! machine, applies examples/simulator/ into a fresh namespace, waits for Ready, checks status
//! and the output Secret, deletes both resources and checks the cleanup in the simulator.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use digital_channels_operator::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use digital_channels_operator::local_postgres::LocalPostgres;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};

const SIMULATOR_URL_IN_EXAMPLES: &str = "http://127.0.0.1:8181";
const DATABASE_URL_IN_EXAMPLES: &str = "postgres://postgres@127.0.0.1:5432/dcsim";
const NAMESPACE_IN_EXAMPLES: &str = "namespace: digital-channels";

/// A child process killed when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn kubectl(args: &[&str], stdin: Option<&str>) {
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("kubectl on PATH");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "kubectl {args:?} failed");
}

async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
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
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn ready(conditions: &[digital_channels_operator::api::Condition]) -> bool {
    conditions.iter().any(|c| {
        c.type_ == "Ready" && c.status == digital_channels_operator::api::ConditionStatus::True
    })
}

#[tokio::test]
async fn operator_provisions_and_cleans_up_in_a_real_cluster() {
    if std::env::var("KUBECONFIG").map_or(true, |v| v.is_empty()) {
        println!("e2e: skipped (KUBECONFIG is not set; see README 'End-to-end tests')");
        return;
    }
    digital_channels_operator::upstream::http::install_crypto_provider();
    let client = kube::Client::try_default()
        .await
        .expect("cluster from KUBECONFIG");
    let root = env!("CARGO_MANIFEST_DIR");
    let bin = env!("CARGO_BIN_EXE_dc-operator");

    // The simulator, on its own database.
    let server = LocalPostgres::find_or_start().expect("PostgreSQL");
    let database = format!("dce2e_{}", rand::random::<u32>());
    let database_url = server.create_database(&database).await.unwrap();
    let sim_port = free_port();
    let sim_url = format!("http://127.0.0.1:{sim_port}");
    let _simulator = Process(
        Command::new(bin)
            .args([
                "simulate",
                "--addr",
                &format!("127.0.0.1:{sim_port}"),
                "--database-url",
                &database_url,
            ])
            .spawn()
            .unwrap(),
    );

    kubectl(
        &["apply", "--server-side", "-f", &format!("{root}/crds")],
        None,
    );
    let ns = format!("dc-e2e-{}", rand::random::<u16>());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.clone()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let metrics_port = free_port();
    let _operator = Process(
        Command::new(bin)
            .args([
                "run",
                "--namespace",
                &ns,
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
                "--leader-election",
                "false",
                "--resync-interval",
                "30s",
            ])
            .spawn()
            .unwrap(),
    );

    // The README's example manifests, pointed at this run's simulator, database and namespace.
    for file in ["10-secrets.yaml", "20-environment.yaml", "30-tenant.yaml"] {
        let text = std::fs::read_to_string(format!("{root}/examples/simulator/{file}"))
            .unwrap()
            .replace(SIMULATOR_URL_IN_EXAMPLES, &sim_url)
            .replace(DATABASE_URL_IN_EXAMPLES, &database_url)
            .replace(NAMESPACE_IN_EXAMPLES, &format!("namespace: {ns}"));
        kubectl(&["apply", "-f", "-"], Some(&text));
    }

    let tenants: Api<DigitalChannelsTenant> = Api::namespaced(client.clone(), &ns);
    let envs: Api<DigitalChannelsEnvironment> = Api::namespaced(client.clone(), &ns);
    let tenant = wait_for(
        "the tenant to be Ready",
        Duration::from_secs(180),
        || async {
            let t = tenants.get("t100").await.ok()?;
            ready(&t.status.as_ref()?.conditions).then_some(t)
        },
    )
    .await;
    let status = tenant.status.unwrap();
    assert_eq!(
        status.contact_center_id.as_deref(),
        Some(digital_channels_operator::simulator::DEMO_CC_T100)
    );
    let env = envs.get("prod").await.unwrap();
    assert!(ready(&env.status.unwrap().conditions));

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let output = secrets
        .get("t100-digital-channels")
        .await
        .expect("output Secret");
    let data = output.data.unwrap();
    for key in ["xapikey", "contactCenterId", "tenantName", "nexusUrl"] {
        assert!(data.contains_key(key), "output Secret lacks {key}");
    }
    assert!(
        output
            .metadata
            .owner_references
            .unwrap()
            .iter()
            .any(|o| o.kind == "DigitalChannelsTenant")
    );

    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("dc_operator_reconcile_total"), "{metrics}");

    // Delete: the examples use deletionPolicy Delete, so the simulator loses the tenant and client.
    tenants
        .delete("t100", &DeleteParams::default())
        .await
        .unwrap();
    envs.delete("prod", &DeleteParams::default()).await.unwrap();
    wait_for(
        "both resources to be gone",
        Duration::from_secs(120),
        || async {
            let gone = tenants.get_opt("t100").await.ok()?.is_none()
                && envs.get_opt("prod").await.ok()?.is_none();
            gone.then_some(())
        },
    )
    .await;
    let state: serde_json::Value = reqwest::get(format!("{sim_url}/_sim/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        state["tenants"].as_object().map(|m| m.len()),
        Some(0),
        "{state}"
    );
    assert_eq!(
        state["clients"].as_object().map(|m| m.len()),
        Some(0),
        "{state}"
    );

    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
    let _ = server.drop_database(&database).await;
}
