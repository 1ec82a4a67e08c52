//! `dc-operator doctor -f` against the simulator over loopback: a healthy estate is all ok
//! (exit 0), a broken one says what is wrong and what to do (exit 1), with the exact text of
//! both checked (durations, ports and database names normalised); an untrusted certificate is
//! named as such; no Secret value is ever printed. And the rights `doctor` asks the API server
//! about are exactly those the chart's RBAC grants.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::tls_front::tls_front;
use common::{Sim, TestDb};
use digital_channels_operator::cli::doctor::rights::{Ask, asks};
use digital_channels_operator::simulator::{DEMO_CC_T100, Seed, SimulatorConfig};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_dc-operator");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

const OPS_PW: &str = "doctor-ops-pw-5150";
const WRONG_OPS_PW: &str = "doctor-wrong-ops-pw-6161";
const TENANT_PW: &str = "doctor-tenant-pw-7272";
const WRONG_TENANT_PW: &str = "doctor-wrong-tenant-pw-8383";

/// The demo seed with recognisable passwords.
fn seed() -> Seed {
    let mut seed = Seed::demo();
    seed.ops_users = vec![("ops".into(), OPS_PW.into())];
    for user in &mut seed.tenant_users {
        user.password = TENANT_PW.into();
    }
    seed
}

async fn sim() -> Sim {
    Sim::start_with(SimulatorConfig {
        seed: seed(),
        ..SimulatorConfig::default()
    })
    .await
}

/// Manifests as `provision -f` takes them. `tls_ca`: the CA named in `spec.tls.caSecret`.
struct Estate<'a> {
    auth: &'a str,
    nexus: &'a str,
    database_url: &'a str,
    ops_password: &'a str,
    tenant_password: &'a str,
    tls_ca: Option<&'a str>,
}

impl Estate<'_> {
    fn yaml(&self) -> String {
        let (tls, ca_secret) = match self.tls_ca {
            Some(pem) => (
                "  tls: {caSecret: {name: genesys-ca, key: ca.crt}}\n".to_string(),
                format!(
                    "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: genesys-ca}}\nstringData:\n  ca.crt: |\n{}",
                    pem.lines()
                        .map(|l| format!("    {l}\n"))
                        .collect::<String>()
                ),
            ),
            None => (String::new(), String::new()),
        };
        format!(
            r#"apiVersion: digitalchannels.dev/v1alpha1
kind: DigitalChannelsEnvironment
metadata: {{name: prod, namespace: dc}}
spec:
  authUrl: {auth}
  gwsUrl: {auth}/gws
  nexusUrl: {nexus}
  opsCredentialsSecret: {{name: gws-ops}}
  database: {{urlSecret: {{name: nexus-db, key: url}}}}
{tls}---
apiVersion: digitalchannels.dev/v1alpha1
kind: DigitalChannelsTenant
metadata: {{name: t100, namespace: dc}}
spec:
  environmentRef: {{name: prod}}
  contactCenterId: {DEMO_CC_T100}
  tenantName: t100
  credentialsSecret: {{name: t100-user}}
---
apiVersion: v1
kind: Secret
metadata: {{name: gws-ops}}
stringData: {{username: ops, password: "{ops}"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: nexus-db}}
stringData: {{url: "{db}"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: t100-user}}
stringData: {{username: nexus, password: "{tenant}"}}
{ca_secret}"#,
            auth = self.auth,
            nexus = self.nexus,
            ops = self.ops_password,
            db = self.database_url,
            tenant = self.tenant_password,
        )
    }
}

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("dc-operator runs")
}

/// `provision`, then `doctor`, on the same files and output directory: (exit code, stdout).
fn provision_then_doctor(estate: &Estate, provision_first: bool, extra: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("estate.yaml"), estate.yaml()).unwrap();
    if provision_first {
        let out = run(&["provision", "-f", "estate.yaml"], dir.path());
        assert!(
            out.status.success(),
            "provision: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut args = vec!["doctor", "-f", "estate.yaml"];
    args.extend_from_slice(extra);
    let out = run(&args, dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    for secret in [OPS_PW, WRONG_OPS_PW, TENANT_PW, WRONG_TENANT_PW] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "a Secret value was printed:\n{stdout}{stderr}"
        );
    }
    let client_secret =
        std::fs::read_to_string(dir.path().join("dc-output/prod-nexus-client.yaml"))
            .unwrap_or_default();
    if let Some(line) = client_secret.lines().find(|l| l.contains("client-secret:")) {
        let encoded = line.split(':').nth(1).unwrap().trim();
        assert!(!stdout.contains(encoded), "the client secret was printed");
    }
    (out.status.code().unwrap_or(-1), stdout)
}

/// Durations, ports, the database name and what localhost resolves to, as fixed text.
fn normalise(text: &str, db_name: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.replace(db_name, "<db>");
        if let Some(at) = line.rfind(" (") {
            let tail = &line[at + 2..];
            if tail.ends_with("ms)") && tail[..tail.len() - 3].chars().all(|c| c.is_ascii_digit()) {
                line.truncate(at);
            }
        }
        line = replace_numbers_after(&line, "localhost:");
        line = replace_numbers_after(&line, "127.0.0.1:");
        if line.trim_start().starts_with("✓ DNS localhost") {
            // 127.0.0.1, and ::1 where the machine has it.
            line = line.replace("127.0.0.1, ::1", "127.0.0.1");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `prefix` followed by a number becomes `prefix<port>` (PostgreSQL's too: a throwaway server
/// for the tests listens elsewhere).
fn replace_numbers_after(line: &str, prefix: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find(prefix) {
        out.push_str(&rest[..at + prefix.len()]);
        rest = &rest[at + prefix.len()..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("<port>");
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

/// Whether the test server speaks TLS (a throwaway one may not): the login line says so.
async fn server_has_tls(db: &TestDb) -> bool {
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    ssl == "on"
}

fn login_line(tls: bool) -> &'static str {
    if tls {
        "  ✓ PostgreSQL login          logged in as postgres to <db>, over TLS (sslmode=prefer)\n"
    } else {
        "  ! PostgreSQL login          logged in as postgres to <db>; the connection is not encrypted (sslmode=prefer)\n      fix: set sslmode=require or verify-full in the database URL of Secret nexus-db, with TLS on the server\n"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_estate_is_all_ok() {
    digital_channels_operator::upstream::http::install_crypto_provider();
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let (url, ca) = tls_front(sim.handle.addr(), dir.path()).await;
    let estate = Estate {
        auth: &url,
        nexus: &url,
        database_url: &sim.db.url,
        ops_password: OPS_PW,
        tenant_password: TENANT_PW,
        tls_ca: Some(&ca),
    };
    let (code, out) = provision_then_doctor(&estate, true, &[]);
    let tls = server_has_tls(&sim.db).await;
    let user = database_user(&sim.db.url);
    let want = HEALTHY
        .replace("  <login>\n", login_line(tls))
        .replace("as postgres", &format!("as {user}"))
        .replace(
            "<summary>",
            if tls {
                "25 ok, 0 warnings"
            } else {
                "24 ok, 1 warning"
            },
        );
    assert_eq!(normalise(&out, &sim.db.name), want, "got:\n{out}");
    assert_eq!(code, 0, "warnings alone pass");
}

fn database_user(url: &str) -> String {
    url::Url::parse(url).unwrap().username().to_string()
}

const HEALTHY: &str = "\
DigitalChannelsEnvironment dc/prod
  ✓ Spec                      valid
  ✓ Secret gws-ops            ops credentials: keys username, password
  ✓ Secret nexus-db           Nexus database URL: keys url
  ✓ Secret genesys-ca         CA bundle: keys ca.crt
  ✓ Secret prod-nexus-client  OAuth client secret: keys client-secret
  ✓ DNS localhost             127.0.0.1 (spec.authUrl, spec.environmentUrl, spec.nexusUrl, spec.gwsUrl)
  ✓ DNS 127.0.0.1             127.0.0.1 (database URL)
  ✓ TCP GWS Auth              localhost:<port> accepts connections (127.0.0.1:<port>)
  ✓ TLS GWS Auth              certificate issued by CN=dc-test-ca trusted (spec.tls.caSecret genesys-ca + the system roots)
  ✓ TCP Environment API       localhost:<port> accepts connections (127.0.0.1:<port>)
  ✓ TLS Environment API       certificate issued by CN=dc-test-ca trusted (spec.tls.caSecret genesys-ca + the system roots)
  ✓ TCP Nexus                 localhost:<port> accepts connections (127.0.0.1:<port>)
  ✓ TLS Nexus                 certificate issued by CN=dc-test-ca trusted (spec.tls.caSecret genesys-ca + the system roots)
  ✓ TCP PostgreSQL            127.0.0.1:<port> accepts connections (127.0.0.1:<port>)
  <login>
  ✓ Ops credentials           user ops accepted by GWS Auth (ops API)
  ✓ OAuth client              nexus_client exists (managed by dc-operator provision)
  ✓ Client verification       nexus_client accepted the secret of Secret prod-nexus-client (client_credentials grant)
  ✓ Contact centers           2 contact center(s) listed as ops
  ✓ nex_gapis                 readable; its row for spec.gwsUrl holds the client secret
  ✓ nex_apikeys               readable

DigitalChannelsTenant dc/t100
  ✓ Spec              valid
  ✓ Secret t100-user  tenant user: keys username, password
  ✓ Contact center    578ec98e-f07c-46ad-9675-f36c22f3ba9f (domains: t100)
  ✓ Tenant user       578ec98e-f07c-46ad-9675-f36c22f3ba9f\\nexus accepted (password grant)

<summary>, 0 failures, 0 skipped
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_estate_says_what_is_wrong_and_what_to_do() {
    digital_channels_operator::upstream::http::install_crypto_provider();
    let sim = sim().await;
    let healthy = Estate {
        auth: &sim.url(),
        nexus: &sim.url(),
        database_url: &sim.db.url,
        ops_password: OPS_PW,
        tenant_password: TENANT_PW,
        tls_ca: None,
    };
    // The client exists and holds its secret: provisioned once while all was right.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("estate.yaml"), healthy.yaml()).unwrap();
    assert!(
        run(&["provision", "-f", "estate.yaml"], dir.path())
            .status
            .success()
    );
    // Then: a wrong ops password, a tenant user GWS refuses, a database without Nexus's
    // tables, and Nexus on a port where nothing listens.
    let empty = TestDb::new().await;
    let closed = format!("http://127.0.0.1:{}", free_port());
    let broken = Estate {
        nexus: &closed,
        database_url: &empty.url,
        ops_password: WRONG_OPS_PW,
        tenant_password: WRONG_TENANT_PW,
        ..healthy
    };
    std::fs::write(dir.path().join("estate.yaml"), broken.yaml()).unwrap();
    let out = run(&["doctor", "-f", "estate.yaml"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    for secret in [OPS_PW, WRONG_OPS_PW, TENANT_PW, WRONG_TENANT_PW] {
        assert!(
            !text.contains(secret),
            "a Secret value was printed:\n{text}"
        );
    }
    assert_eq!(out.status.code(), Some(1), "{text}");
    let tls = server_has_tls(&empty).await;
    let want = BROKEN
        .replace("  <login>\n", login_line(tls))
        .replace("as postgres", &format!("as {}", database_user(&empty.url)))
        .replace(
            "<summary>",
            if tls {
                "13 ok, 2 warnings"
            } else {
                "12 ok, 3 warnings"
            },
        );
    assert_eq!(normalise(&text, &empty.name), want, "got:\n{text}");

    let json = run(&["doctor", "-f", "estate.yaml", "-o", "json"], dir.path());
    assert_eq!(json.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["passed"], false);
    assert_eq!(report["summary"]["failure"], 6);
    let user = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "tenant:dc/t100/user")
        .unwrap();
    assert_eq!(user["status"], "failure");
    assert!(user["fix"].as_str().unwrap().contains("Secret t100-user"));
}

const BROKEN: &str = "\
DigitalChannelsEnvironment dc/prod
  ✓ Spec                      valid
  ✓ Secret gws-ops            ops credentials: keys username, password
  ✓ Secret nexus-db           Nexus database URL: keys url
  ✓ Secret prod-nexus-client  OAuth client secret: keys client-secret
  ✓ DNS 127.0.0.1             127.0.0.1 (spec.authUrl, spec.environmentUrl, spec.nexusUrl, spec.gwsUrl, database URL)
  ✓ TCP GWS Auth              127.0.0.1:<port> accepts connections (127.0.0.1:<port>)
  ! TLS GWS Auth              plain http: credentials and tokens cross the network unencrypted
      fix: use an https:// URL in spec.authUrl
  ✓ TCP Environment API       127.0.0.1:<port> accepts connections (127.0.0.1:<port>)
  ! TLS Environment API       plain http: credentials and tokens cross the network unencrypted
      fix: use an https:// URL in spec.environmentUrl
  ✗ TCP Nexus                 connection refused by 127.0.0.1:<port>
      fix: nothing listens there: check the port in spec.nexusUrl and that the service runs
  - TLS Nexus                 skipped: needs \"TCP Nexus\", which failed
  ✓ TCP PostgreSQL            127.0.0.1:<port> accepts connections (127.0.0.1:<port>)
  <login>
  ✗ Ops credentials           GWS Auth refused user ops: HTTP 401: Bad credentials
      fix: put the GWS Auth admin (ops) user's username and password in Secret gws-ops
  - OAuth client              skipped: needs \"Ops credentials\", which failed
  ✓ Client verification       nexus_client accepted the secret of Secret prod-nexus-client (client_credentials grant)
  ✗ Contact centers           the Environment API refused user ops: HTTP 401: Bad credentials
      fix: put an ops user the Environment API accepts in Secret gws-ops
  ✗ nex_gapis                 table nex_gapis does not exist
      fix: Nexus creates nex_gapis and nex_apikeys at its first start: check the database name in the URL, or start Nexus on this database first
  ✗ nex_apikeys               table nex_apikeys does not exist
      fix: Nexus creates nex_gapis and nex_apikeys at its first start: check the database name in the URL, or start Nexus on this database first

DigitalChannelsTenant dc/t100
  ✓ Spec              valid
  ✓ Secret t100-user  tenant user: keys username, password
  ✓ Contact center    578ec98e-f07c-46ad-9675-f36c22f3ba9f (spec.contactCenterId; not looked up)
  ✗ Tenant user       GWS Auth refused 578ec98e-f07c-46ad-9675-f36c22f3ba9f\\nexus (password grant): HTTP 400: invalid_grant: Bad credentials
      fix: put the username and password of a Person of that contact center in Secret t100-user

<summary>, 6 failures, 2 skipped
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_named_with_its_issuer_and_the_fix() {
    digital_channels_operator::upstream::http::install_crypto_provider();
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = tls_front(sim.handle.addr(), dir.path()).await;
    let estate = Estate {
        auth: &url,
        nexus: &url,
        database_url: &sim.db.url,
        ops_password: OPS_PW,
        tenant_password: TENANT_PW,
        tls_ca: None,
    };
    let (code, out) = provision_then_doctor(&estate, false, &[]);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("✗ TLS GWS Auth"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        lines[at].contains("certificate not trusted: CN=dc-test-ca ("),
        "{out}"
    );
    assert_eq!(
        lines[at + 1].trim(),
        "fix: put the CA certificate of CN=dc-test-ca (PEM) in a Secret and name it in spec.tls.caSecret"
    );
    for skipped in ["Ops credentials", "Client verification", "Contact centers"] {
        assert!(
            out.lines().any(
                |l| l.contains(&format!("- {skipped}")) && l.contains("TLS GWS Auth")
                    || l.contains(&format!("- {skipped}")) && l.contains("TLS Environment API")
            ),
            "{skipped} is skipped for the TLS failure:\n{out}"
        );
    }
}

#[test]
fn input_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "kind: ConfigMap\nmetadata: {name: x}\n",
    )
    .unwrap();
    for args in [
        vec!["doctor", "-f", "missing.yaml"],
        vec!["doctor", "-f", "bad.yaml"],
        vec!["doctor", "prod", "-f", "bad.yaml"],
        vec!["doctor", "--service-account", "no-slash", "-n", "dc"],
    ] {
        let out = run(&args, dir.path());
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
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

// ---------------------------------------------------------------------------------------------
// The rights doctor asks about are exactly those the chart grants.
// ---------------------------------------------------------------------------------------------

const RELEASE: &str = "digital-channels-operator";
const RELEASE_NS: &str = "dc-system";

fn helm_template(sets: &[&str]) -> Vec<Value> {
    let local = format!("{ROOT}/.tools/bin/helm");
    let helm = if Path::new(&local).exists() {
        local
    } else {
        "helm".to_string()
    };
    let home = std::env::temp_dir().join("dc-operator-doctor-helm");
    let mut c = Command::new(helm);
    c.args([
        "template",
        RELEASE,
        &format!("{ROOT}/charts/digital-channels-operator"),
        "--namespace",
        RELEASE_NS,
    ])
    .env("HELM_CONFIG_HOME", home.join("config"))
    .env("HELM_CACHE_HOME", home.join("cache"))
    .env("HELM_DATA_HOME", home.join("data"));
    for s in sets {
        c.args(["--set", s]);
    }
    let out = c.output().expect("helm (run scripts/install-tools)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml_ng::Deserializer::from_str(&String::from_utf8_lossy(&out.stdout))
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// Every (group, resource, verb, name, namespace) a rule of the rendered RBAC grants; a
/// ClusterRole's namespace is "*".
fn granted(docs: &[Value]) -> Vec<(String, String, String, String, String)> {
    let mut out = Vec::new();
    for d in docs {
        let kind = d["kind"].as_str().unwrap_or_default();
        let namespace = match kind {
            "ClusterRole" => "*".to_string(),
            "Role" => d["metadata"]["namespace"].as_str().unwrap().to_string(),
            _ => continue,
        };
        for rule in d["rules"].as_array().unwrap() {
            let list = |k: &str| -> Vec<String> {
                rule[k]
                    .as_array()
                    .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
                    .unwrap_or_default()
            };
            let names = match list("resourceNames") {
                n if n.is_empty() => vec![String::new()],
                n => n,
            };
            for g in list("apiGroups") {
                for r in list("resources") {
                    for v in list("verbs") {
                        for n in &names {
                            out.push((
                                g.clone(),
                                r.clone(),
                                v.clone(),
                                n.clone(),
                                namespace.clone(),
                            ));
                        }
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn ask_key(a: &Ask) -> (String, String, String, String, String) {
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    (
        a.group.clone(),
        resource,
        a.verb.clone(),
        a.name.clone(),
        a.namespace.clone(),
    )
}

#[test]
fn the_rights_asked_are_exactly_what_the_chart_grants() {
    // Watching one namespace with Nexus restarts of one named Deployment: every rule of the
    // chart is then narrow enough to compare one for one.
    let docs = helm_template(&[
        "watchNamespaces={dc}",
        "nexusRestart.enabled=true",
        "nexusRestart.namespaces={nexus}",
        "nexusRestart.deploymentNames={nexus}",
    ]);
    let grants = granted(&docs);
    let wanted: Vec<_> = asks("dc", RELEASE_NS, &[("nexus".into(), "nexus".into())])
        .iter()
        .map(ask_key)
        .collect();
    let covers = |g: &(String, String, String, String, String),
                  w: &(String, String, String, String, String)| {
        g.0 == w.0 && g.1 == w.1 && g.2 == w.2 && g.3 == w.3 && (g.4 == w.4 || g.4 == "*")
    };
    let missing: Vec<_> = wanted
        .iter()
        .filter(|w| !grants.iter().any(|g| covers(g, w)))
        .collect();
    assert!(
        missing.is_empty(),
        "doctor asks for rights the chart does not grant: {missing:#?}"
    );
    let unasked: Vec<_> = grants
        .iter()
        .filter(|g| !wanted.iter().any(|w| covers(g, w)))
        .collect();
    assert!(
        unasked.is_empty(),
        "the chart grants rights doctor does not check: {unasked:#?}"
    );
}
