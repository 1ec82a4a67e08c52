//! `dc-operator status` (and `kubectl dc status`) as a user runs it: the built binary against
//! an in-memory Kubernetes API server, under its own name and linked as `kubectl-dc`; and the
//! `status.nextRetryAt` it shows, as both controllers write it.

mod common;
#[path = "common/status_estates.rs"]
mod status_estates;

use common::operator::Harness;
use digital_channels_operator::api::conditions::ConditionStatus;
use digital_channels_operator::simulator::DEMO_CC_T100;
use status_estates::{
    HEALTHY_TREE, broken_tree, cond, env_object, in_an_hour, normalised, ready_tenant_conditions,
    tenant_object, waiting_conditions,
};

/// How far `at` is from now, in seconds (negative: in the past).
fn seconds_from_now(at: &str) -> f64 {
    let at: jiff::Timestamp = at.parse().expect("RFC 3339");
    at.duration_since(jiff::Timestamp::now()).as_secs_f64()
}

/// A failure fixed outside the cluster is retried on the backoff (at most 1 s in the test
/// harness): status says when, and says nothing once the tenant is Ready.
#[tokio::test]
async fn a_retried_failure_shows_its_next_retry_and_ready_clears_it() {
    let h = Harness::start().await;
    h.sim
        .handle
        .set_tenant_user_password(DEMO_CC_T100, "nexus", "changed-in-gws-42");
    h.env(|_| {});
    h.tenant(|_| {});
    let t = h
        .tenant_condition(
            "TenantProvisioned",
            ConditionStatus::False,
            Some("Unauthorized"),
        )
        .await;
    let at = t.status.as_ref().unwrap().next_retry_at.clone();
    let at = at.expect("a failure retried on the backoff says when");
    let from_now = seconds_from_now(&at);
    // The backoff is at most 1.2 s here; the status may be read a little after its write.
    assert!(
        (-3.0..=2.0).contains(&from_now),
        "nextRetryAt {at} is {from_now} s from now"
    );

    h.sim
        .handle
        .set_tenant_user_password(DEMO_CC_T100, "nexus", "nexus_password");
    let t = h
        .tenant_condition("Ready", ConditionStatus::True, None)
        .await;
    assert_eq!(t.status.unwrap().next_retry_at, None, "Ready clears it");
    let env = h.get_env().unwrap();
    assert_eq!(env.status.unwrap().next_retry_at, None);
    h.stop().await;
}

/// A failure whose fix is a change in the cluster waits for that change, not for a time:
/// no nextRetryAt. The environment refused by GWS Auth is retried, and says when.
#[tokio::test]
async fn a_failure_awaiting_a_change_has_no_next_retry() {
    let h = Harness::start().await;
    h.env(|e| e.spec.ops_credentials_secret.name = "no-such-secret".into());
    h.tenant(|t| t.spec.credentials_secret.name = "no-such-user".into());
    let env = h
        .env_condition("Ready", ConditionStatus::False, Some("SecretNotFound"))
        .await;
    assert_eq!(env.status.unwrap().next_retry_at, None);

    h.secret(
        "ops-wrong",
        &[("username", "ops"), ("password", "wrong-4711")],
    );
    h.env(|e| e.spec.ops_credentials_secret.name = "ops-wrong".into());
    let env = h
        .env_condition("Ready", ConditionStatus::False, Some("Unauthorized"))
        .await;
    let at = env.status.unwrap().next_retry_at;
    assert!(at.is_some(), "GWS Auth's refusal is retried on the backoff");
    // The tenant says so once the environment's status write has woken it.
    let t = h
        .tenant_condition(
            "Ready",
            ConditionStatus::False,
            Some("WaitingForEnvironment"),
        )
        .await;
    // It waits for its environment, whose change wakes it: no time of its own.
    assert_eq!(t.status.unwrap().next_retry_at, None);
    h.stop().await;
}

// ---------------------------------------------------------------------------------------
// The command, run as a user runs it, against an in-memory API server.
// ---------------------------------------------------------------------------------------

const BIN: &str = env!("CARGO_BIN_EXE_dc-operator");
const STATUS_NS: &str = "digital-channels";
fn kinds() -> (
    common::fake_apiserver::ResourceKey,
    common::fake_apiserver::ResourceKey,
) {
    use common::fake_apiserver::ResourceKey;
    use digital_channels_operator::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
    (
        ResourceKey::of::<DigitalChannelsEnvironment>(),
        ResourceKey::of::<DigitalChannelsTenant>(),
    )
}

/// An API server holding the healthy estate: prod and t100, both Ready.
async fn healthy_server() -> common::fake_apiserver::FakeApiServer {
    let api = common::fake_apiserver::FakeApiServer::start().await;
    let (envs, tenants) = kinds();
    api.insert(&envs, env_object(STATUS_NS, true, None));
    api.insert(
        &tenants,
        tenant_object(STATUS_NS, "t100", "prod", ready_tenant_conditions()),
    );
    api
}

/// A run of the binary, under `program` (the binary or a link to it), with KUBECONFIG.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn run(program: &str, kubeconfig: &std::path::Path, args: &[&str]) -> Run {
    let (program, kubeconfig) = (program.to_string(), kubeconfig.to_path_buf());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(program)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .expect("run dc-operator")
    })
    .await
    .unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test]
async fn a_healthy_and_a_broken_estate_and_their_exit_codes() {
    let api = healthy_server().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());

    let healthy = run(BIN, &kubeconfig, &["status", "-n", STATUS_NS]).await;
    assert_eq!(
        normalised(&healthy.stdout),
        HEALTHY_TREE,
        "\n{}",
        healthy.stdout
    );
    assert_eq!(healthy.code, Some(0), "all Ready: {}", healthy.stderr);

    let (envs, tenants) = kinds();
    api.insert(&envs, env_object(STATUS_NS, false, Some(&in_an_hour())));
    api.insert(
        &tenants,
        tenant_object(STATUS_NS, "t400", "staging", waiting_conditions(STATUS_NS)),
    );
    let broken = run(BIN, &kubeconfig, &["status", "-n", STATUS_NS]).await;
    assert_eq!(
        normalised(&broken.stdout),
        broken_tree(STATUS_NS),
        "\n{}",
        broken.stdout
    );
    assert_eq!(broken.code, Some(1), "not all Ready: {}", broken.stderr);

    // A tenant alone: its environment is shown for context, and its own Ready decides.
    let t100 = run(BIN, &kubeconfig, &["status", "t100", "-n", STATUS_NS]).await;
    assert_eq!(t100.code, Some(0), "{}", t100.stdout);
    let prod = run(BIN, &kubeconfig, &["status", "prod", "-n", STATUS_NS]).await;
    assert_eq!(prod.code, Some(1), "{}", prod.stdout);
    assert!(!prod.stdout.contains("t400"), "{}", prod.stdout);

    let json = run(BIN, &kubeconfig, &["status", "-A", "-o", "json"]).await;
    assert_eq!(json.code, Some(1));
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json["ready"], false);
    assert_eq!(json["environments"][1]["tenants"][0]["name"], "t400");
    let yaml = run(BIN, &kubeconfig, &["status", "-n", STATUS_NS, "-o", "yaml"]).await;
    let yaml: serde_json::Value = serde_yaml_ng::from_str(&yaml.stdout).unwrap();
    assert_eq!(yaml, json, "the same model");
}

#[tokio::test]
async fn input_errors_are_2_and_what_cannot_be_shown_is_1() {
    let api = healthy_server().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    for args in [
        &["status", "-o", "table"][..],
        &["status", "-n", STATUS_NS, "-A"],
        &["status", "a", "b"],
    ] {
        let r = run(BIN, &kubeconfig, args).await;
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
    }

    let unknown = run(BIN, &kubeconfig, &["status", "t999", "-n", STATUS_NS]).await;
    assert_eq!(unknown.code, Some(1));
    assert_eq!(
        unknown.stderr.trim(),
        "error: no DigitalChannelsEnvironment or DigitalChannelsTenant named t999 in namespace digital-channels"
    );

    // The kubeconfig's namespace (`default` here) holds nothing: said, and nothing is wrong.
    let empty = run(BIN, &kubeconfig, &["status"]).await;
    assert_eq!(empty.code, Some(0), "{}", empty.stderr);
    assert_eq!(
        empty.stdout.trim(),
        "No DigitalChannelsEnvironments or DigitalChannelsTenants found in namespace default."
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nowhere = dir.path().join("nowhere");
    let text = std::fs::read_to_string(&kubeconfig)
        .unwrap()
        .replace(&api.url(), &format!("http://127.0.0.1:{port}"));
    std::fs::write(&nowhere, text).unwrap();
    let unreachable = run(BIN, &nowhere, &["status"]).await;
    assert_eq!(unreachable.code, Some(1));
    assert!(
        unreachable
            .stderr
            .starts_with("error: listing digitalchannelsenvironments"),
        "{}",
        unreachable.stderr
    );
}

/// The lines a child process writes, read on a thread of their own.
fn lines_of(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (off the runtime) for a line that `wanted` accepts; the lines read until then.
async fn wait_line(
    rx: std::sync::mpsc::Receiver<String>,
    wanted: fn(&str) -> bool,
) -> (std::sync::mpsc::Receiver<String>, Vec<String>) {
    tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) if wanted(&line) => {
                    seen.push(line);
                    return (rx, seen);
                }
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no such line; read: {seen:#?}")
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_draws_again_on_a_change_and_stops_on_ctrl_c() {
    let api = healthy_server().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let mut child = std::process::Command::new(BIN)
        .args(["status", "-n", STATUS_NS, "--watch"])
        .env("KUBECONFIG", &kubeconfig)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines_of(child.stdout.take().unwrap());
    let (rx, first) = wait_line(rx, |l| {
        l.starts_with("└─ DigitalChannelsTenant/t100") && l.contains(" True ")
    })
    .await;
    assert!(first[0].starts_with("NAME "), "{first:#?}");

    // The tenant user's password is refused: the next frame says so.
    let refused = "GWS Auth refused the tenant user of Secret t100-user (401).";
    let (_, tenants) = kinds();
    api.insert(
        &tenants,
        tenant_object(
            STATUS_NS,
            "t100",
            "prod",
            vec![
                cond("TenantProvisioned", "False", "Unauthorized", refused),
                cond("Ready", "False", "Unauthorized", refused),
                cond("Stalled", "True", "Unauthorized", refused),
            ],
        ),
    );
    let (_rx, second) = wait_line(rx, |l| {
        l.starts_with("└─ DigitalChannelsTenant/t100") && l.contains("Unauthorized")
    })
    .await;
    assert!(
        second.iter().any(String::is_empty),
        "frames apart: {second:#?}"
    );
    assert!(
        second.iter().any(|l| l.starts_with("NAME ")),
        "a whole new frame"
    );

    let interrupt = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupt.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "Ctrl-C ends it; the last view was not all Ready"
    );
}

/// `kubectl dc`: the binary linked as `kubectl-dc` names itself so, and kubectl runs it as
/// its plugin `dc` (when `scripts/install-tools` put kubectl into .tools/bin).
#[tokio::test]
async fn linked_as_kubectl_dc_it_is_the_kubectl_plugin() {
    let api = healthy_server().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let plugin = dir.path().join("kubectl-dc");
    std::os::unix::fs::symlink(BIN, &plugin).unwrap();
    let plugin = plugin.to_str().unwrap();

    let help = run(plugin, &kubeconfig, &["--help"]).await;
    assert!(
        help.stdout.contains("Usage: kubectl dc <COMMAND>"),
        "{}",
        help.stdout
    );
    let help = run(plugin, &kubeconfig, &["status", "--help"]).await;
    assert!(
        help.stdout
            .contains("Usage: kubectl dc status [OPTIONS] [NAME]"),
        "{}",
        help.stdout
    );
    let bad = run(plugin, &kubeconfig, &["status", "a", "b"]).await;
    assert_eq!(bad.code, Some(2));
    assert!(
        bad.stderr
            .contains("Usage: kubectl dc status [OPTIONS] [NAME]"),
        "{}",
        bad.stderr
    );
    let own = run(BIN, &kubeconfig, &["--help"]).await;
    assert!(
        own.stdout.contains("Usage: dc-operator <COMMAND>"),
        "{}",
        own.stdout
    );

    let linked = run(plugin, &kubeconfig, &["status", "-n", STATUS_NS]).await;
    assert_eq!(
        (normalised(&linked.stdout), linked.code),
        (HEALTHY_TREE.to_string(), Some(0))
    );

    let kubectl = concat!(env!("CARGO_MANIFEST_DIR"), "/.tools/bin/kubectl");
    if !std::path::Path::new(kubectl).exists() {
        eprintln!("skipped `kubectl dc status`: no {kubectl} (scripts/install-tools)");
        return;
    }
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let through_kubectl = |args: &'static [&'static str]| {
        let (kubeconfig, path) = (kubeconfig.clone(), path.clone());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(kubectl)
                .args(args)
                .env("KUBECONFIG", kubeconfig)
                .env("PATH", path)
                .output()
                .unwrap()
        })
    };
    let out = through_kubectl(&["dc", "status", "-n", STATUS_NS])
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        normalised(&stdout),
        HEALTHY_TREE,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
    let (_, tenants) = kinds();
    api.insert(
        &tenants,
        tenant_object(STATUS_NS, "t400", "staging", waiting_conditions(STATUS_NS)),
    );
    let out = through_kubectl(&["dc", "status", "-n", STATUS_NS])
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "kubectl passes the plugin's exit code on"
    );
}

/// The krew manifest template: every placeholder documented in its header, and once filled
/// a plugin `dc` whose every platform installs the binary as `kubectl-dc`.
#[test]
fn the_krew_manifest_template_fills_into_a_plugin_named_dc() {
    let template = include_str!("../integrations/krew/dc.yaml");
    let (header, body) = template
        .split_once("apiVersion:")
        .expect("a header, then the manifest");
    let placeholders: std::collections::BTreeSet<&str> = body
        .split("${")
        .skip(1)
        .map(|rest| rest.split_once('}').expect("closed placeholder").0)
        .collect();
    assert!(placeholders.contains("VERSION") && placeholders.contains("URI_LINUX_AMD64"));
    let mut filled = format!("apiVersion:{body}");
    for p in &placeholders {
        assert!(
            header.contains(&format!("${{{p}}}")),
            "{p} is not documented"
        );
        filled = filled.replace(&format!("${{{p}}}"), &format!("filled-{p}"));
    }
    let manifest: serde_json::Value = serde_yaml_ng::from_str(&filled).unwrap();
    assert_eq!(manifest["kind"], "Plugin");
    assert_eq!(manifest["metadata"]["name"], "dc", "kubectl dc");
    let platforms = manifest["spec"]["platforms"].as_array().unwrap();
    assert!(!platforms.is_empty());
    for p in platforms {
        assert_eq!(
            p["bin"], "kubectl-dc",
            "the name that makes it `kubectl dc`"
        );
        let files = p["files"].as_array().unwrap();
        assert!(
            files
                .iter()
                .any(|f| f["from"] == "dc-operator" && f["to"] == "kubectl-dc"),
            "{p}"
        );
        for field in ["uri", "sha256"] {
            assert!(p[field].as_str().unwrap().starts_with("filled-"), "{p}");
        }
    }
}
