//! Packaging: the Helm chart, `deploy/`, `examples/` and the Dockerfile.
//!
//! These tests shell out to the tools that `scripts/install-tools` puts into `.tools/bin/` (helm,
//! kubectl, kubernetes-validate, hadolint, tools-python); `$HELM`, `$KUBECTL`,
//! `$KUBERNETES_VALIDATE`, `$HADOLINT` and `$TOOLS_PYTHON` override them. A missing tool is a
//! failure that says "run scripts/install-tools", never a silent skip. The one exception is
//! promtool (`$PROMTOOL`), which install-tools can fetch only where apt is at hand: without it the
//! alert test prints that it skipped, except on CI (`CI` set, or `DC_E2E_REQUIRED=1`), where it
//! fails.
//!
//! Schema validation runs kubernetes-validate (strict: unknown fields are errors) against the
//! oldest Kubernetes the chart supports and the newest one the validator knows. It has no schemas
//! for the Prometheus Operator's kinds: ServiceMonitor and PrometheusRule are skipped by it (and
//! checked field by field here instead); any other kind without a schema fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_yaml_ng::Value;

const CHART: &str = "charts/digital-channels-operator";
const RELEASE: &str = "digital-channels-operator";
const NAMESPACE: &str = "digital-channels";
const LEASE: &str = "digital-channels-operator";
/// Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest the pinned
/// kubernetes-validate knows.
const KUBE_VERSIONS: &[&str] = &["1.28.0", "1.37.0"];
/// Kinds kubernetes-validate has no schema for; they come from the Prometheus Operator's CRDs.
const KINDS_WITHOUT_SCHEMA: &[&str] = &["ServiceMonitor", "PrometheusRule"];
/// `helm template` flags of a cluster that serves the Prometheus Operator's kinds: the chart
/// renders ServiceMonitor and PrometheusRule only then (`.Capabilities.APIVersions`).
const MONITORING_APIS: &[&str] = &[
    "--api-versions",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "--api-versions",
    "monitoring.coreos.com/v1/PrometheusRule",
];
/// The Grafana dashboard of the chart, relative to the chart.
const DASHBOARD: &str = "dashboards/digital-channels.json";
/// The project's documentation as the chart links it: the chart is read without a checkout
/// (`helm show readme`, NOTES.txt), so its links are absolute.
const DOCS_URL: &str =
    "https://github.com/digital-channels-operator/digital-channels-operator/blob/main/docs/";

// ---------------------------------------------------------------------------------------------
// The RBAC rules of the operator: the documented set (docs/install.md explains each). A rule is
// (apiGroup, resources, verbs, resourceNames).
// ---------------------------------------------------------------------------------------------
type Rule = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

/// On the operator's own kinds: always in the ClusterRole, so that a watched namespace being
/// deleted (its Roles go first) cannot strand the finalizers.
const RESOURCE_RULES: &[Rule] = &[
    (
        "digitalchannels.dev",
        &["digitalchannelsenvironments", "digitalchannelstenants"],
        &["get", "list", "watch", "patch", "update"],
        &[],
    ),
    (
        "digitalchannels.dev",
        &[
            "digitalchannelsenvironments/status",
            "digitalchannelstenants/status",
        ],
        &["get", "patch", "update"],
        &[],
    ),
    (
        "digitalchannels.dev",
        &[
            "digitalchannelsenvironments/finalizers",
            "digitalchannelstenants/finalizers",
        ],
        &["update"],
        &[],
    ),
];

/// Whether a namespace is being deleted: any namespace when cluster-wide ...
const NAMESPACE_GET_ANY: &[Rule] = &[("", &["namespaces"], &["get"], &[])];
/// ... the watched ones otherwise (ci/all-options-values.yaml watches these two).
const NAMESPACE_GET_WATCHED: &[Rule] =
    &[("", &["namespaces"], &["get"], &["tenants-a", "tenants-b"])];

/// In every watched namespace (ClusterRole when cluster-wide, Role per namespace otherwise).
const WATCH_RULES: &[Rule] = &[
    (
        "",
        &["secrets"],
        &["get", "list", "watch", "create", "update", "patch"],
        &[],
    ),
    ("events.k8s.io", &["events"], &["create", "patch"], &[]),
];

/// Leader election, in the operator's own namespace only.
const LEASE_RULES: &[Rule] = &[
    ("coordination.k8s.io", &["leases"], &["create"], &[]),
    (
        "coordination.k8s.io",
        &["leases"],
        &["get", "update"],
        &[LEASE],
    ),
];

/// Nexus restart (nexusRestart.enabled), in each of nexusRestart.namespaces.
const NEXUS_RULES_ANY: &[Rule] = &[("apps", &["deployments"], &["get", "patch"], &[])];
const NEXUS_RULES_NAMED: &[Rule] = &[("apps", &["deployments"], &["get", "patch"], &["nexus"])];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tool from .tools/bin (or the environment variable naming it); panics with the fix when absent.
fn tool(name: &str, env: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let p = root().join(".tools/bin").join(name);
    assert!(
        p.exists(),
        "{name} is missing ({} does not exist and ${env} is not set): run scripts/install-tools",
        p.display()
    );
    p
}

fn helm() -> Command {
    let mut c = Command::new(tool("helm", "HELM"));
    c.current_dir(root());
    // Keep helm away from the user's repositories, plugins and caches.
    let home = std::env::temp_dir().join("dc-operator-packaging-helm");
    c.env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"));
    c
}

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (run scripts/install-tools)"))
}

/// Runs a command that must succeed; returns its stdout.
fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `helm template` of the chart with the given values files (relative to the chart) and flags.
fn template(values: &[&str], extra: &[&str]) -> String {
    let mut c = helm();
    c.args(["template", RELEASE, CHART, "--namespace", NAMESPACE]);
    for v in values {
        c.arg("-f").arg(Path::new(CHART).join(v));
    }
    c.args(extra);
    run(&mut c)
}

/// The YAML documents of a stream, without the empty ones.
fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for key in path.split('.') {
        cur = match cur {
            Value::Mapping(m) => m.get(key).unwrap_or(&Value::Null),
            Value::Sequence(s) => key
                .parse::<usize>()
                .ok()
                .and_then(|i| s.get(i))
                .unwrap_or(&Value::Null),
            _ => &Value::Null,
        };
    }
    cur
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string in {v:?}"))
}

/// A string under a key that contains dots (labels, annotations, selectors).
fn key_in<'a>(v: &'a Value, map: &str, key: &str) -> Option<&'a str> {
    get(v, map).as_mapping()?.get(key)?.as_str()
}

fn kind(v: &Value) -> &str {
    s(v, "kind")
}

fn of_kind<'a>(objs: &'a [Value], k: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| kind(o) == k).collect()
}

fn one<'a>(objs: &'a [Value], k: &str) -> &'a Value {
    let found = of_kind(objs, k);
    assert_eq!(found.len(), 1, "expected one {k}, found {}", found.len());
    found[0]
}

fn kinds(objs: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for o in objs {
        *m.entry(kind(o).to_string()).or_insert(0) += 1;
    }
    m
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .map(|x| x.as_str().expect("string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Every values file under the chart's ci/ folder (relative to the chart).
fn ci_values() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root().join(CHART).join("ci"))
        .expect("chart ci/ folder")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml"))
        .map(|n| format!("ci/{n}"))
        .collect();
    v.sort();
    assert!(v.contains(&"ci/all-options-values.yaml".to_string()));
    v
}

/// Regular files under `dir`, relative path -> bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn assert_same_tree(expected: &Path, actual: &Path, fix: &str) {
    let (e, a) = (tree(expected), tree(actual));
    let e_names: BTreeSet<_> = e.keys().collect();
    let a_names: BTreeSet<_> = a.keys().collect();
    assert_eq!(
        e_names,
        a_names,
        "{} and {} hold different files; {fix}",
        expected.display(),
        actual.display()
    );
    for (name, bytes) in &e {
        assert!(
            a[name] == *bytes,
            "{name} differs between {} and {}; {fix}",
            expected.display(),
            actual.display()
        );
    }
}

/// The root crds/*.yaml files; fails when there are none.
fn root_crds() -> BTreeMap<String, Vec<u8>> {
    let dir = root().join("crds");
    assert!(
        dir.is_dir(),
        "crds/ is missing: `dc-operator crds` output belongs there"
    );
    let t: BTreeMap<_, _> = tree(&dir)
        .into_iter()
        .filter(|(n, _)| n.ends_with(".yaml"))
        .collect();
    assert!(!t.is_empty(), "crds/ holds no .yaml file");
    t
}

fn validate(files: &[&Path]) {
    let validator = tool("kubernetes-validate", "KUBERNETES_VALIDATE");
    for version in KUBE_VERSIONS {
        let out = output(
            Command::new(&validator)
                .args(["--strict", "--quiet", "--kubernetes-version", version])
                .args(files),
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "kubernetes-validate {version} failed:\n{text}"
        );
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let skipped = line.starts_with("WARN")
                && line.contains("Couldn't find schema for kind")
                && KINDS_WITHOUT_SCHEMA
                    .iter()
                    .any(|k| line.contains(&format!("kind {k} ")));
            assert!(
                skipped,
                "kubernetes-validate {version}: unexpected output: {line}"
            );
        }
    }
}

fn write_temp(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, content).unwrap();
    p
}

/// Leaf paths of a values tree (lists and empty maps are leaves).
fn leaf_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            for (k, val) in m {
                let k = k.as_str().expect("string key");
                let p = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                };
                // Kubernetes objects given as values are leaves: their inner fields are not chart values.
                if [
                    "podSecurityContext",
                    "securityContext",
                    "resources",
                    "livenessProbe",
                    "readinessProbe",
                    "affinity",
                    "nodeSelector",
                    "podAnnotations",
                    "podLabels",
                ]
                .contains(&p.as_str())
                    || p.ends_with(".annotations")
                    || p.ends_with(".labels")
                {
                    out.insert(p);
                } else {
                    leaf_paths(val, &p, out);
                }
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

fn read_yaml(path: &str) -> Value {
    serde_yaml_ng::from_str(&fs::read_to_string(root().join(path)).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Lint and render
// ---------------------------------------------------------------------------------------------

#[test]
fn helm_lint_passes_with_default_and_ci_values() {
    run(helm().args(["lint", "--strict", CHART]));
    for v in ci_values() {
        run(helm()
            .args(["lint", "--strict", CHART, "-f"])
            .arg(Path::new(CHART).join(&v)));
    }
}

#[test]
fn default_render_has_the_expected_objects() {
    let objs = docs(&template(&[], &[]));
    let expected: BTreeMap<String, usize> = [
        ("ClusterRole", 1),
        ("ClusterRoleBinding", 1),
        ("Deployment", 1),
        ("Role", 1),
        ("RoleBinding", 1),
        ("Service", 1),
        ("ServiceAccount", 1),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    assert_eq!(
        kinds(&objs),
        expected,
        "default values must not need extra CRDs nor a NetworkPolicy"
    );
    for o in &objs {
        if !["ClusterRole", "ClusterRoleBinding"].contains(&kind(o)) {
            assert_eq!(
                s(o, "metadata.namespace"),
                NAMESPACE,
                "{} has no namespace",
                kind(o)
            );
        }
        assert_eq!(
            key_in(o, "metadata.labels", "app.kubernetes.io/name"),
            Some("digital-channels-operator")
        );
        assert_eq!(
            key_in(o, "metadata.labels", "app.kubernetes.io/managed-by"),
            Some("Helm")
        );
    }
    let dep = one(&objs, "Deployment");
    assert_eq!(s(dep, "metadata.name"), RELEASE);
    assert_eq!(
        s(dep, "spec.template.spec.containers.0.image"),
        "digital-channels-operator:0.1.0"
    );
    let args = strings(get(dep, "spec.template.spec.containers.0.args"));
    assert_eq!(
        args,
        [
            "run",
            "--metrics-addr=0.0.0.0:8080",
            "--log-format=json",
            "--resync-interval=10m",
            "--concurrency=4"
        ],
        "default: all namespaces, no extra CA"
    );
    let env = env_of(dep);
    assert_eq!(env.get("RUST_LOG").map(String::as_str), Some("info"));
    assert_eq!(
        env.get("DC_LEADER_ELECTION").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        env.get("DC_LEADER_ELECTION_NAMESPACE").map(String::as_str),
        Some("fieldRef:metadata.namespace")
    );
    assert!(!env.contains_key("DC_EXTRA_CA_FILE"));
    let svc = one(&objs, "Service");
    assert_eq!(get(svc, "spec.ports.0.port").as_u64(), Some(8080));
    assert_eq!(s(svc, "spec.ports.0.targetPort"), "metrics");
}

/// name -> value, or "fieldRef:<path>" for downward-API variables.
fn env_of(dep: &Value) -> BTreeMap<String, String> {
    get(dep, "spec.template.spec.containers.0.env")
        .as_sequence()
        .expect("env")
        .iter()
        .map(|e| {
            let v = match get(e, "value").as_str() {
                Some(v) => v.to_string(),
                None => format!("fieldRef:{}", s(e, "valueFrom.fieldRef.fieldPath")),
            };
            (s(e, "name").to_string(), v)
        })
        .collect()
}

#[test]
fn all_options_values_set_every_value_and_render_them() {
    // The ci file exercises every value of values.yaml.
    let mut defaults = BTreeSet::new();
    leaf_paths(
        &read_yaml(&format!("{CHART}/values.yaml")),
        "",
        &mut defaults,
    );
    let mut set = BTreeSet::new();
    leaf_paths(
        &read_yaml(&format!("{CHART}/ci/all-options-values.yaml")),
        "",
        &mut set,
    );
    let missing: Vec<_> = defaults.difference(&set).collect();
    assert!(
        missing.is_empty(),
        "ci/all-options-values.yaml does not set: {missing:?}"
    );
    let unknown: Vec<_> = set.difference(&defaults).collect();
    assert!(
        unknown.is_empty(),
        "ci/all-options-values.yaml sets values that values.yaml lacks: {unknown:?}"
    );

    let objs = docs(&template(&["ci/all-options-values.yaml"], MONITORING_APIS));
    let k = kinds(&objs);
    for (kind, n) in [
        ("ServiceMonitor", 1),
        ("PrometheusRule", 1),
        ("ConfigMap", 1),
        ("NetworkPolicy", 1),
        ("Role", 5), // tenants-a, tenants-b, leader election, nexus, nexus-eu
        ("RoleBinding", 5),
        ("Deployment", 1),
        ("Service", 1),
        ("ServiceAccount", 1),
    ] {
        assert_eq!(k.get(kind).copied(), Some(n), "{kind} in {k:?}");
    }
    // A namespace list: cluster-wide rights on the operator's own kinds only (see
    // rbac_rules_are_exactly_the_documented_set); Secrets stay in the Roles.
    assert_eq!(k.get("ClusterRole").copied(), Some(1), "{k:?}");
    assert_eq!(k.get("ClusterRoleBinding").copied(), Some(1), "{k:?}");

    let dep = one(&objs, "Deployment");
    assert_eq!(s(dep, "metadata.name"), "dc-operator-all");
    assert_eq!(get(dep, "spec.replicas").as_u64(), Some(2));
    let pod = get(dep, "spec.template");
    let c = get(pod, "spec.containers.0");
    assert_eq!(
        s(c, "image"),
        "registry.example.com/genesys/digital-channels-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    assert_eq!(s(c, "imagePullPolicy"), "Always");
    assert_eq!(
        s(pod, "spec.imagePullSecrets.0.name"),
        "registry-credentials"
    );
    assert_eq!(s(pod, "spec.serviceAccountName"), "dc-operator-sa");
    assert_eq!(s(pod, "spec.priorityClassName"), "system-cluster-critical");
    assert_eq!(
        key_in(pod, "spec.nodeSelector", "kubernetes.io/os"),
        Some("linux")
    );
    assert_eq!(s(pod, "spec.tolerations.0.key"), "dedicated");
    assert!(get(pod, "spec.affinity.podAntiAffinity").is_mapping());
    assert_eq!(
        key_in(pod, "metadata.annotations", "example.com/scrape"),
        Some("true")
    );
    let labels = get(pod, "metadata.labels").as_mapping().unwrap();
    assert_eq!(labels.get("team").and_then(Value::as_str), Some("platform"));
    assert_eq!(
        labels.get("app.kubernetes.io/name").and_then(Value::as_str),
        Some("dc-op"),
        "podLabels must not replace the selector labels"
    );
    assert_eq!(
        key_in(dep, "spec.selector.matchLabels", "app.kubernetes.io/name"),
        Some("dc-op")
    );
    assert_eq!(
        strings(get(c, "args")),
        [
            "run",
            "--namespace=tenants-a",
            "--namespace=tenants-b",
            "--metrics-addr=0.0.0.0:9090",
            "--log-format=text",
            "--resync-interval=5m",
            "--concurrency=8",
            "--extra-ca-file=/etc/dc-operator/extra-ca/bundle.pem",
        ]
    );
    let env = env_of(dep);
    assert_eq!(env["RUST_LOG"], "info,digital_channels_operator=debug");
    assert_eq!(
        env["DC_LEADER_ELECTION"], "true",
        "replicas > 1 forces leader election on"
    );
    assert_eq!(env["HTTPS_PROXY"], "http://proxy.example.com:3128");
    assert_eq!(env["NO_PROXY"], ".svc,.cluster.local,10.0.0.0/8");
    assert_eq!(
        s(c, "volumeMounts.0.mountPath"),
        "/etc/dc-operator/extra-ca"
    );
    assert_eq!(get(c, "volumeMounts.0.readOnly").as_bool(), Some(true));
    assert_eq!(s(pod, "spec.volumes.0.secret.secretName"), "genesys-ca");
    assert_eq!(s(pod, "spec.volumes.0.secret.items.0.key"), "bundle.pem");
    assert_eq!(get(c, "ports.0.containerPort").as_u64(), Some(9090));
    assert_eq!(s(c, "resources.limits.memory"), "512Mi");
    assert_eq!(get(c, "livenessProbe.periodSeconds").as_u64(), Some(30));
    assert_eq!(get(c, "readinessProbe.failureThreshold").as_u64(), Some(2));
    assert_eq!(
        get(pod, "spec.securityContext.runAsUser").as_u64(),
        Some(10001)
    );

    let sa = one(&objs, "ServiceAccount");
    assert_eq!(s(sa, "metadata.name"), "dc-operator-sa");
    assert_eq!(
        key_in(sa, "metadata.annotations", "example.com/owner"),
        Some("platform-team")
    );

    let svc = one(&objs, "Service");
    assert_eq!(get(svc, "spec.ports.0.port").as_u64(), Some(9090));
    assert_eq!(
        key_in(svc, "metadata.annotations", "prometheus.io/port"),
        Some("9090")
    );

    let sm = one(&objs, "ServiceMonitor");
    assert_eq!(s(sm, "apiVersion"), "monitoring.coreos.com/v1");
    assert_eq!(s(sm, "metadata.labels.release"), "prometheus");
    assert_eq!(s(sm, "spec.endpoints.0.port"), "metrics");
    assert_eq!(s(sm, "spec.endpoints.0.path"), "/metrics");
    assert_eq!(s(sm, "spec.endpoints.0.interval"), "15s");
    assert_eq!(s(sm, "spec.endpoints.0.scrapeTimeout"), "5s");
    assert_eq!(
        strings(get(sm, "spec.namespaceSelector.matchNames")),
        [NAMESPACE]
    );
    assert_eq!(
        get(sm, "spec.selector.matchLabels"),
        get(svc, "spec.selector")
    );

    let pr = one(&objs, "PrometheusRule");
    assert_eq!(s(pr, "apiVersion"), "monitoring.coreos.com/v1");
    assert_eq!(s(pr, "metadata.labels.release"), "prometheus");
    let rules: BTreeMap<&str, &Value> = get(pr, "spec.groups.0.rules")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| (s(r, "alert"), r))
        .collect();
    let tenant = rules["DigitalChannelsTenantNotReady"];
    assert_eq!(
        s(tenant, "expr"),
        r#"dc_operator_resources{kind="DigitalChannelsTenant",ready="false"} > 0"#
    );
    assert_eq!(s(tenant, "for"), "20m");
    assert_eq!(s(tenant, "labels.severity"), "critical");
    let environment = rules["DigitalChannelsEnvironmentNotReady"];
    assert_eq!(
        s(environment, "expr"),
        r#"dc_operator_resources{kind="DigitalChannelsEnvironment",ready="false"} > 0"#
    );
    assert_eq!(s(environment, "for"), "5m");
    assert_eq!(s(environment, "labels.severity"), "critical");
    let failures = rules["DigitalChannelsReconcileFailures"];
    assert_eq!(
        s(failures, "expr"),
        r#"sum by (kind) (increase(dc_operator_reconcile_total{result="failed"}[15m])) > 0"#
    );
    assert_eq!(s(failures, "for"), "30m");
    assert_eq!(s(failures, "labels.severity"), "info");
    let errors = rules["DigitalChannelsReconcileErrors"];
    assert_eq!(
        s(errors, "expr"),
        r#"sum by (kind) (increase(dc_operator_reconcile_total{result="error"}[15m])) > 0"#
    );
    assert_eq!(s(errors, "for"), "5m");
    let upstream = rules["DigitalChannelsUpstreamUnavailable"];
    assert!(s(upstream, "expr").contains(
        r#"rate(dc_operator_external_requests_total{code=~"5..|timeout|unreachable"}[15m])"#
    ));
    assert!(s(upstream, "expr").trim_end().ends_with("> 0.25"));
    assert_eq!(s(upstream, "labels.severity"), "warning");
    assert_eq!(rules.len(), 5, "{:?}", rules.keys());
    for r in rules.values() {
        assert!(
            get(r, "annotations.summary").is_string()
                && get(r, "annotations.description").is_string()
        );
        assert_eq!(
            s(r, "annotations.runbook_url"),
            "https://wiki.example.com/platform/digital-channels-operator#troubleshooting"
        );
    }
    // What the alerts mean is tested against the operator's metrics with promtool:
    // prometheus_rule_alerts_fire_on_the_operator_metrics_and_stay_quiet_when_healthy.

    let dashboard = one(&objs, "ConfigMap");
    assert_eq!(s(dashboard, "metadata.name"), "dc-operator-all-dashboard");
    assert_eq!(s(dashboard, "metadata.namespace"), "monitoring");
    assert_eq!(
        key_in(dashboard, "metadata.labels", "dashboards"),
        Some("digital-channels")
    );
    assert_eq!(
        key_in(dashboard, "metadata.labels", "grafana_dashboard"),
        None,
        "a label set to null in the values is dropped"
    );
    assert_eq!(
        key_in(dashboard, "metadata.labels", "app.kubernetes.io/name"),
        Some("dc-op")
    );
    assert_eq!(
        key_in(dashboard, "metadata.annotations", "grafana_folder"),
        Some("Digital Channels")
    );

    let np = one(&objs, "NetworkPolicy");
    assert_eq!(strings(get(np, "spec.policyTypes")), ["Ingress", "Egress"]);
    assert_eq!(
        get(np, "spec.podSelector.matchLabels"),
        get(svc, "spec.selector")
    );
    assert_eq!(s(np, "spec.ingress.0.ports.0.port"), "metrics");
    assert_eq!(
        key_in(
            np,
            "spec.ingress.0.from.0.namespaceSelector.matchLabels",
            "kubernetes.io/metadata.name"
        ),
        Some("monitoring")
    );
    let egress = get(np, "spec.egress").as_sequence().unwrap();
    assert_eq!(egress.len(), 4, "DNS, API server, two upstreams");
    let ports = |rule: &Value| -> Vec<(u64, String)> {
        get(rule, "ports")
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    get(p, "port").as_u64().unwrap(),
                    s(p, "protocol").to_string(),
                )
            })
            .collect()
    };
    assert_eq!(ports(&egress[0]), [(53, "UDP".into()), (53, "TCP".into())]);
    assert_eq!(get(&egress[0], "to").as_sequence().unwrap().len(), 2);
    assert_eq!(
        ports(&egress[1]),
        [(443, "TCP".into()), (6443, "TCP".into())]
    );
    assert_eq!(s(&egress[1], "to.0.ipBlock.cidr"), "10.0.0.1/32");
    assert_eq!(s(&egress[1], "to.1.ipBlock.cidr"), "192.168.10.0/24");
    assert_eq!(ports(&egress[2]), [(443, "TCP".into()), (80, "TCP".into())]);
    assert_eq!(s(&egress[2], "to.0.ipBlock.cidr"), "203.0.113.0/24");
    assert!(get(&egress[2], "to.1.namespaceSelector").is_mapping());
    assert_eq!(ports(&egress[3]), [(5432, "TCP".into())]);
    assert_eq!(s(&egress[3], "to.0.ipBlock.cidr"), "198.51.100.10/32");
}

#[test]
fn default_network_policy_allows_only_dns_api_server_and_upstream_ports() {
    let objs = docs(&template(&[], &["--set", "networkPolicy.enabled=true"]));
    let np = one(&objs, "NetworkPolicy");
    assert!(
        get(np, "spec.ingress.0.from").is_null(),
        "metrics reachable from any source by default"
    );
    let egress = get(np, "spec.egress").as_sequence().unwrap();
    let ports: Vec<Vec<u64>> = egress
        .iter()
        .map(|r| {
            get(r, "ports")
                .as_sequence()
                .unwrap()
                .iter()
                .map(|p| get(p, "port").as_u64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        ports,
        [vec![53, 53], vec![443, 6443], vec![443, 80], vec![5432]]
    );
    assert_eq!(
        s(&egress[0], "to.0.podSelector.matchLabels.k8s-app"),
        "kube-dns"
    );
}

#[test]
fn invalid_value_combinations_are_refused() {
    for (args, message) in [
        (
            vec![
                "--set",
                "extraCaBundle.secretName=a",
                "--set",
                "extraCaBundle.configMapName=b",
            ],
            "not both",
        ),
        (
            vec!["--set", "nexusRestart.enabled=true"],
            "nexusRestart.namespaces",
        ),
        (vec!["--set", "logFormat=xml"], "logFormat"),
        (vec!["--set", "unknownValue=1"], "unknownValue"),
        (
            vec!["--set", "serviceAccount.create=false"],
            "serviceAccount.name",
        ),
        (
            vec!["--set", "networkPolicy.upstreams[0].ports={70000}"],
            "/networkPolicy/upstreams/0/ports/0",
        ),
        (
            vec!["--set", "networkPolicy.upstreams[0].ports={80,80}"],
            "/networkPolicy/upstreams/0/ports': items at 0 and 1 are equal",
        ),
        (
            vec!["--set", "networkPolicy.upstreams[0].ports=null"],
            "/networkPolicy/upstreams/0/ports': got null",
        ),
    ] {
        let out = output(
            helm()
                .args(["template", RELEASE, CHART, "--namespace", NAMESPACE])
                .args(&args),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} rendered");
        assert!(err.contains(message), "{args:?}: {err}");
    }
}

#[test]
fn rendered_manifests_validate_against_kubernetes_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![write_temp(dir.path(), "default.yaml", &template(&[], &[]))];
    for (i, v) in ci_values().iter().enumerate() {
        files.push(write_temp(
            dir.path(),
            &format!("ci-{i}.yaml"),
            &template(&[v], MONITORING_APIS),
        ));
    }
    files.push(write_temp(
        dir.path(),
        "netpol.yaml",
        &template(
            &[],
            &[
                "--set",
                "networkPolicy.enabled=true",
                "--set",
                "watchNamespaces={a,b}",
            ],
        ),
    ));
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    validate(&refs);
}

#[test]
fn crds_validate_against_kubernetes_schemas() {
    let crds = root_crds();
    let paths: Vec<PathBuf> = crds.keys().map(|n| root().join("crds").join(n)).collect();
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    validate(&refs);
}

// ---------------------------------------------------------------------------------------------
// Monitoring: ServiceMonitor and PrometheusRule only where their CRDs are, the Grafana dashboard
// ---------------------------------------------------------------------------------------------

const MONITORING_ON: &[&str] = &[
    "--set",
    "metrics.serviceMonitor.enabled=true",
    "--set",
    "metrics.prometheusRule.enabled=true",
];

#[test]
fn monitoring_objects_are_rendered_only_where_their_crds_are_served() {
    let default_kinds = kinds(&docs(&template(&[], &[])));
    // A bare cluster: both enabled, neither rendered, nothing else changes.
    let bare = docs(&template(&[], MONITORING_ON));
    assert_eq!(
        kinds(&bare),
        default_kinds,
        "without the Prometheus Operator's CRDs, enabling monitoring must not add objects"
    );
    for (apis, want) in [
        (
            &["monitoring.coreos.com/v1/ServiceMonitor"][..],
            &["ServiceMonitor"][..],
        ),
        (
            &["monitoring.coreos.com/v1/PrometheusRule"][..],
            &["PrometheusRule"][..],
        ),
        (
            &[
                "monitoring.coreos.com/v1/ServiceMonitor",
                "monitoring.coreos.com/v1/PrometheusRule",
            ][..],
            &["PrometheusRule", "ServiceMonitor"][..],
        ),
    ] {
        let mut flags: Vec<&str> = MONITORING_ON.to_vec();
        for api in apis {
            flags.extend(["--api-versions", api]);
        }
        let objs = docs(&template(&[], &flags));
        let mut k = kinds(&objs);
        let mut added: Vec<&str> = Vec::new();
        for kind in ["PrometheusRule", "ServiceMonitor"] {
            if k.remove(kind) == Some(1) {
                added.push(kind);
            }
        }
        assert_eq!(added, want, "--api-versions {apis:?}");
        assert_eq!(k, default_kinds, "--api-versions {apis:?}");
    }
    // Served but not enabled: nothing.
    let objs = docs(&template(&[], MONITORING_APIS));
    assert_eq!(kinds(&objs), default_kinds, "served, not enabled");

    // What was skipped, the install's notes say (helm install --dry-run=client: no cluster).
    let notes = |flags: &[&str]| -> String {
        let mut c = helm();
        c.args([
            "install",
            RELEASE,
            CHART,
            "--namespace",
            NAMESPACE,
            "--dry-run=client",
        ])
        .args(flags)
        .env("KUBECONFIG", root().join("target/no-kubeconfig"));
        let out = run(&mut c);
        out.split_once("NOTES:")
            .unwrap_or_else(|| panic!("no NOTES in:\n{out}"))
            .1
            .to_string()
    };
    let skipped = notes(MONITORING_ON)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for kind in ["ServiceMonitor", "PrometheusRule"] {
        assert!(
            skipped.contains(&format!("serves no monitoring.coreos.com/v1 {kind}")),
            "the notes must say that {kind} was skipped:\n{skipped}"
        );
    }
    let quiet = notes(&[]);
    assert!(
        !quiet.contains("monitoring.coreos.com"),
        "nothing enabled, nothing to say:\n{quiet}"
    );
}

/// The dashboard ConfigMap of a render, parsed; checks that it holds exactly the chart's file.
fn dashboard_of(objs: &[Value]) -> (&Value, serde_json::Value) {
    let cm = one(objs, "ConfigMap");
    let data = get(cm, "data").as_mapping().expect("data");
    assert_eq!(data.len(), 1, "one key: {data:?}");
    let text = key_in(cm, "data", "digital-channels.json").expect("data.digital-channels.json");
    let file = fs::read_to_string(root().join(CHART).join(DASHBOARD)).unwrap();
    assert!(
        text == file,
        "the ConfigMap must hold {CHART}/{DASHBOARD} as it is"
    );
    (
        cm,
        serde_json::from_str(text).expect("the dashboard is JSON"),
    )
}

#[test]
fn grafana_dashboard_is_rendered_only_when_enabled() {
    let objs = docs(&template(&[], &[]));
    assert!(of_kind(&objs, "ConfigMap").is_empty(), "off by default");

    let objs = docs(&template(&[], &["--set", "grafanaDashboard.enabled=true"]));
    let (cm, dashboard) = dashboard_of(&objs);
    assert_eq!(
        s(cm, "metadata.name"),
        "digital-channels-operator-dashboard"
    );
    assert_eq!(s(cm, "metadata.namespace"), NAMESPACE);
    assert_eq!(
        key_in(cm, "metadata.labels", "grafana_dashboard"),
        Some("1"),
        "the label Grafana's sidecar looks for by default"
    );
    assert_eq!(
        key_in(cm, "metadata.labels", "app.kubernetes.io/name"),
        Some("digital-channels-operator")
    );
    assert!(get(cm, "metadata.annotations").is_null());
    assert_eq!(dashboard["uid"], "dc-operator");

    let objs = docs(&template(
        &[],
        &[
            "--set",
            "grafanaDashboard.enabled=true",
            "--set",
            "grafanaDashboard.namespace=monitoring",
            "--set",
            "grafanaDashboard.labels.team=platform",
        ],
    ));
    let (cm, _) = dashboard_of(&objs);
    assert_eq!(s(cm, "metadata.namespace"), "monitoring");
    assert_eq!(key_in(cm, "metadata.labels", "team"), Some("platform"));
    assert_eq!(
        key_in(cm, "metadata.labels", "grafana_dashboard"),
        Some("1"),
        "extra labels are added to the default one"
    );
}

/// Exported sample name -> its label names, from src/telemetry/metrics.rs: the
/// registry's prefix, the `registry.register("name", "help", field.clone())` calls, the types of
/// the `Metrics` fields and the `EncodeLabelSet` structs; cross-checked with what the operator's
/// registry encodes.
fn exported_metrics() -> BTreeMap<String, BTreeSet<String>> {
    let path = "src/telemetry/metrics.rs";
    let src = fs::read_to_string(root().join(path)).unwrap();
    let lines: Vec<&str> = src.lines().map(str::trim).collect();
    // Label structs: name -> fields.
    let mut label_sets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        if !(l.starts_with("#[derive(") && l.contains("EncodeLabelSet")) {
            continue;
        }
        let name = lines[i + 1]
            .strip_prefix("pub struct ")
            .and_then(|r| r.strip_suffix(" {"))
            .unwrap_or_else(|| panic!("{path}: a struct after line {}", i + 1));
        let fields = lines[i + 2..]
            .iter()
            .take_while(|l| **l != "}")
            .map(|l| {
                l.strip_prefix("pub ")
                    .and_then(|r| r.split_once(':'))
                    .unwrap_or_else(|| panic!("{path}: a label field: {l}"))
                    .0
                    .to_string()
            })
            .collect();
        label_sets.insert(name.to_string(), fields);
    }
    // Fields of `Metrics`: name -> (type, label struct).
    let start = lines
        .iter()
        .position(|l| *l == "pub struct Metrics {")
        .unwrap_or_else(|| panic!("{path}: no `pub struct Metrics`"));
    let mut fields: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for l in lines[start + 1..].iter().take_while(|l| **l != "}") {
        let Some((name, ty)) = l.strip_prefix("pub ").and_then(|r| r.split_once(": ")) else {
            continue;
        };
        let ty = ty.trim_end_matches(',');
        let (kind, labels) = if let Some(rest) = ty.strip_prefix("HistogramFamily<") {
            ("histogram", rest.trim_end_matches('>'))
        } else if let Some(rest) = ty.strip_prefix("Family<") {
            let (labels, metric) = rest
                .trim_end_matches('>')
                .split_once(", ")
                .unwrap_or_else(|| panic!("{path}: {l}"));
            let kind = match metric {
                "Counter" => "counter",
                "Gauge" => "gauge",
                other => panic!("{path}: metric type {other} unknown to this test"),
            };
            (kind, labels)
        } else {
            continue; // the registry
        };
        fields.insert(name, (kind, labels));
    }
    // register("name", "help", field.clone()): the exported family names.
    let calls: Vec<&str> = src.split("registry.register(").skip(1).collect();
    assert!(!calls.is_empty(), "{path}: no registry.register call");
    let prefix = src
        .split("Registry::with_prefix(\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("{path}: no Registry::with_prefix(\"...\")"));
    let mut out = BTreeMap::new();
    for call in calls {
        let name = call
            .split('"')
            .nth(1)
            .unwrap_or_else(|| panic!("{path}: register without a name"));
        let field = call
            .split(".clone()")
            .next()
            .and_then(|before| before.rsplit([' ', '\n', ',']).next())
            .unwrap_or_else(|| panic!("{path}: register({name}) without `field.clone()`"));
        let (kind, label_struct) = fields
            .get(field)
            .unwrap_or_else(|| panic!("{path}: register({name}) of unknown field {field}"));
        let labels = label_sets
            .get(*label_struct)
            .unwrap_or_else(|| panic!("{path}: label set {label_struct} not found"))
            .clone();
        let family = format!("{prefix}_{name}");
        let with_le = || {
            let mut l = labels.clone();
            l.insert("le".to_string());
            l
        };
        match *kind {
            "counter" => {
                out.insert(format!("{family}_total"), labels.clone());
            }
            "gauge" => {
                out.insert(family, labels.clone());
            }
            _ => {
                out.insert(format!("{family}_bucket"), with_le());
                out.insert(format!("{family}_sum"), labels.clone());
                out.insert(format!("{family}_count"), labels.clone());
            }
        }
    }
    // The parse agrees with what the operator's registry really encodes, for the families that
    // have a recording method (a family without samples is not encoded at all).
    let m = digital_channels_operator::telemetry::metrics();
    m.record_external("test-system", "test-operation", "200", 0.01);
    m.record_step_failure("TestKind", "TestStep", "TestReason");
    let mut encoded: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in m.encode().lines().filter(|l| !l.starts_with('#')) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = line[name_end..]
            .strip_prefix('{')
            .and_then(|r| r.split_once('}'))
            .map(|(inside, _)| {
                inside
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, _)| k.to_string())
                    .collect()
            })
            .unwrap_or_default();
        encoded.insert(line[..name_end].to_string(), labels);
    }
    for sample in [
        "dc_operator_external_requests_total",
        "dc_operator_external_request_duration_seconds_bucket",
        "dc_operator_external_request_duration_seconds_count",
        "dc_operator_step_failures_total",
    ] {
        assert!(
            encoded.contains_key(sample),
            "the registry encodes no {sample}"
        );
    }
    for (sample, labels) in &encoded {
        assert_eq!(
            out.get(sample),
            Some(labels),
            "{path} as this test reads it: {sample}"
        );
    }
    out
}

/// One PromQL expression, as far as the dashboard needs: the metrics it selects (with the label
/// names of their selectors) and the label names of its `by (...)` clauses.
#[derive(Debug, Default)]
struct PromQl {
    metrics: Vec<(String, Vec<String>)>,
    by: BTreeSet<String>,
}

fn parse_promql(expr: &str) -> PromQl {
    const GROUPING: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset", // binary operators and modifiers
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile", // aggregations, which may stand before `by (...)`
    ];
    let chars: Vec<char> = expr.chars().collect();
    let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = PromQl::default();
    let mut i = 0;
    let skip_until = |i: &mut usize, end: char| {
        while *i < chars.len() && chars[*i] != end {
            *i += 1;
        }
        *i += 1;
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            skip_until(&mut i, '"');
        } else if c == '[' {
            skip_until(&mut i, ']'); // a range: [5m], [$__rate_interval]
        } else if c == '$' {
            i += 1;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c == '{' {
            // A selector: label names before the matchers, values are strings.
            let (_, labels) = out
                .metrics
                .last_mut()
                .unwrap_or_else(|| panic!("a selector without a metric name in {expr}"));
            i += 1;
            while i < chars.len() && chars[i] != '}' {
                if chars[i] == '"' {
                    i += 1;
                    skip_until(&mut i, '"');
                } else if ident_char(chars[i]) {
                    let from = i;
                    while i < chars.len() && ident_char(chars[i]) {
                        i += 1;
                    }
                    labels.push(chars[from..i].iter().collect());
                } else {
                    i += 1;
                }
            }
            i += 1;
        } else if ident_char(c) {
            let from = i;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[from..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j] == ' ' {
                j += 1;
            }
            let call = j < chars.len() && chars[j] == '(';
            if GROUPING.contains(&word.as_str()) && call {
                let close = chars[j..]
                    .iter()
                    .position(|&c| c == ')')
                    .unwrap_or_else(|| panic!("unclosed {word} ( in {expr}"));
                let list: String = chars[j + 1..j + close].iter().collect();
                out.by.extend(
                    list.split(',')
                        .map(|l| l.trim().to_string())
                        .filter(|l| !l.is_empty()),
                );
                i = j + close + 1;
            } else if !call && !KEYWORDS.contains(&word.as_str()) {
                out.metrics.push((word, Vec::new()));
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Every panel of the dashboard, rows' nested panels included.
fn dashboard_panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

#[test]
fn grafana_dashboard_queries_only_metrics_the_operator_exports() {
    let exported = exported_metrics();
    // Prometheus adds it to every scraped target (the chart's ServiceMonitor's included); the
    // dashboard's variable filters on it and matches series without it.
    let target_labels: BTreeSet<String> = ["namespace".to_string()].into();
    let text = fs::read_to_string(root().join(CHART).join(DASHBOARD)).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut used_metrics = BTreeSet::new();
    let mut grouped_by = BTreeSet::new();
    let check = |expr: &str, legend: &str, what: &str| -> (BTreeSet<String>, BTreeSet<String>) {
        let q = parse_promql(expr);
        assert!(!q.metrics.is_empty(), "{what}: no metric in {expr}");
        let mut known = target_labels.clone();
        let mut names = BTreeSet::new();
        for (metric, labels) in &q.metrics {
            let own = exported.get(metric).unwrap_or_else(|| {
                panic!(
                    "{what}: {metric} is not a metric src/telemetry/metrics.rs registers \
                     (it exports {:?})",
                    exported.keys().collect::<Vec<_>>()
                )
            });
            for l in labels {
                assert!(
                    own.contains(l) || target_labels.contains(l),
                    "{what}: {metric} has no label {l} (it has {own:?}): {expr}"
                );
            }
            known.extend(own.iter().cloned());
            names.insert(metric.clone());
        }
        for l in &q.by {
            assert!(
                known.contains(l),
                "{what}: by ({l}) is no label of {names:?}: {expr}"
            );
        }
        // The legend names only labels the result keeps.
        for part in legend.split("{{").skip(1) {
            let label = part.split("}}").next().unwrap().trim();
            assert!(
                q.by.contains(label) && label != "le",
                "{what}: legend {{{{{label}}}}} is not kept by {expr}"
            );
        }
        (names, q.by)
    };
    let mut ids = BTreeSet::new();
    for panel in dashboard_panels(&dashboard) {
        let title = panel["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "{title}: duplicate id"
        );
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{title}: gridPos");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{title}: queries the dashboard's data source variable"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            let legend = t["legendFormat"].as_str().unwrap_or("");
            let (names, by) = check(expr, legend, title);
            used_metrics.extend(names);
            grouped_by.extend(by);
        }
    }
    // Template variables: label_values(metric, label).
    for var in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if var["type"] != "query" {
            continue;
        }
        let query = var["query"]["query"]
            .as_str()
            .or(var["query"].as_str())
            .expect("a query variable's query");
        let args = query
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: {query}", var["name"]));
        let (metric, label) = args.split_once(',').expect("label_values(metric, label)");
        let (metric, label) = (metric.trim(), label.trim());
        let own = exported
            .get(metric)
            .unwrap_or_else(|| panic!("variable {}: unknown metric {metric}", var["name"]));
        assert!(
            own.contains(label) || target_labels.contains(label),
            "variable {}: {metric} has no label {label}",
            var["name"]
        );
    }
    // What the dashboard is for: resources by readiness, step failures by reason, upstream
    // latency and errors by system, time to Ready.
    for metric in [
        "dc_operator_resources",
        "dc_operator_step_failures_total",
        "dc_operator_external_request_duration_seconds_bucket",
        "dc_operator_external_requests_total",
        "dc_operator_time_to_ready_seconds_bucket",
    ] {
        assert!(used_metrics.contains(metric), "no panel shows {metric}");
    }
    for label in ["ready", "reason", "system", "code", "kind"] {
        assert!(grouped_by.contains(label), "no panel groups by {label}");
    }
}

#[test]
fn promql_parser_of_the_dashboard_test_finds_metrics_and_labels() {
    let q = parse_promql(
        r#"histogram_quantile(0.95, sum by (system, le) (rate(dc_operator_x_bucket{namespace=~"$ns", code!~"2..|ok"}[$__rate_interval]))) / on () 60 * sum(up)"#,
    );
    assert_eq!(
        q.metrics,
        [
            (
                "dc_operator_x_bucket".to_string(),
                vec!["namespace".to_string(), "code".to_string()]
            ),
            ("up".to_string(), vec![])
        ]
    );
    assert_eq!(
        q.by,
        ["le".to_string(), "system".to_string()]
            .into_iter()
            .collect()
    );
}

// ---------------------------------------------------------------------------------------------
// Alerts: the rendered PrometheusRule, evaluated by promtool against the series the operator exports
// ---------------------------------------------------------------------------------------------

/// Every alert of the chart's PrometheusRule; the failing scenario below makes each one fire.
const ALERTS: &[&str] = &[
    "DigitalChannelsEnvironmentNotReady",
    "DigitalChannelsTenantNotReady",
    "DigitalChannelsReconcileFailures",
    "DigitalChannelsReconcileErrors",
    "DigitalChannelsUpstreamUnavailable",
];

/// Labels Prometheus adds to each sample it scrapes from the chart's ServiceMonitor target
/// (some of them): the alerts that do not aggregate keep them.
const TARGET_LABELS: &[(&str, &str)] = &[
    ("instance", "10.0.0.7:8080"),
    ("job", "digital-channels-operator-metrics"),
    ("namespace", NAMESPACE),
    ("pod", "digital-channels-operator-6d9f7c8b5-x2v4q"),
];

/// promtool from .tools/bin (or `$PROMTOOL`). Missing: a failure on CI (`CI` set, or
/// `DC_E2E_REQUIRED=1`), otherwise `None` and a printed skip (scripts/install-tools fetches it
/// only where apt is at hand).
fn promtool() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PROMTOOL").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let p = root().join(".tools/bin/promtool");
    if p.exists() {
        return Some(p);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    let required = std::env::var("DC_E2E_REQUIRED").is_ok_and(|v| v == "1");
    assert!(
        !(ci || required),
        "promtool is missing ({} does not exist and $PROMTOOL is not set), and on CI \
         (CI or DC_E2E_REQUIRED=1) the alert test must run: run scripts/install-tools",
        p.display()
    );
    eprintln!(
        "SKIPPED: the chart's alerts were not evaluated: promtool is missing ({}); run \
         scripts/install-tools (it needs apt) or set PROMTOOL",
        p.display()
    );
    None
}

/// The label values the alerts select on, taken from the operator's code.
struct OperatorValues {
    environment: String,
    tenant: String,
}

fn operator_values() -> OperatorValues {
    use digital_channels_operator::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
    // reconcile_total's result: the outcomes of src/controller/pass.rs.
    let controller = fs::read_to_string(root().join("src/controller/pass.rs")).unwrap();
    for outcome in ["error", "failed", "ok"] {
        assert!(
            controller.contains(&format!("=> \"{outcome}\"")),
            "src/controller/pass.rs no longer counts result=\"{outcome}\"; the alerts select on it"
        );
    }
    OperatorValues {
        environment: <DigitalChannelsEnvironment as kube::Resource>::kind(&()).into_owned(),
        tenant: <DigitalChannelsTenant as kube::Resource>::kind(&()).into_owned(),
    }
}

/// The series the scenarios feed to promtool, created through the operator's own metric families
/// and label types and returned as its registry encodes them (`name{label="value",...}`): names,
/// label names, their order and their values are exactly what /metrics shows.
fn encoded_series(v: &OperatorValues) -> BTreeSet<String> {
    use digital_channels_operator::telemetry::metrics::{ExternalRequest, KindReady, KindResult};
    use digital_channels_operator::upstream::error::System;
    let m = digital_channels_operator::telemetry::metrics();
    // Created at zero (encoded like any other sample; nothing counted), the guard dropped at once.
    for kind in [&v.environment, &v.tenant] {
        for result in ["ok", "failed", "error"] {
            let _ = m.reconcile_total.get_or_create(&KindResult {
                kind: kind.clone(),
                result: result.to_string(),
            });
        }
        for ready in [true, false] {
            let _ = m.resources.get_or_create(&KindReady {
                kind: kind.clone(),
                ready: ready.to_string(),
            });
        }
    }
    for (system, operation, code) in [
        (System::Nexus, "get_tenant", "200"),
        (System::Nexus, "get_tenant", "503"),
        (System::GwsAuth, "token_password", "200"),
        (System::GwsAuth, "token_password", "timeout"),
        (System::NexusDb, "find_gapis", "ok"),
    ] {
        let _ = m.external_requests_total.get_or_create(&ExternalRequest {
            system: system.as_str().to_string(),
            operation: operation.to_string(),
            code: code.to_string(),
        });
    }
    m.encode()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series.to_string()))
        .collect()
}

/// One input series of a promtool test: `name{labels}` as the operator encodes it (checked), plus
/// the target labels, with one sample a minute.
fn input_series(
    encoded: &BTreeSet<String>,
    exported: &BTreeMap<String, BTreeSet<String>>,
    name: &str,
    labels: &[(&str, &str)],
    values: &[u64],
) -> serde_json::Value {
    let own = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect::<Vec<_>>()
        .join(",");
    let series = format!("{name}{{{own}}}");
    assert!(
        encoded.contains(&series),
        "the operator's registry does not encode {series}; it encodes {encoded:#?}"
    );
    let names: BTreeSet<String> = labels.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(
        exported.get(name),
        Some(&names),
        "{name} as src/telemetry/metrics.rs registers it"
    );
    let target = TARGET_LABELS
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect::<Vec<_>>()
        .join(",");
    let values = values
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    serde_json::json!({"series": format!("{name}{{{own},{target}}}"), "values": values})
}

/// The labels of a `dc_operator_resources{ready="false"}` sample as Prometheus stores it.
fn not_ready_labels(kind: &str) -> Vec<(&str, &str)> {
    let mut l = vec![("kind", kind), ("ready", "false")];
    l.extend_from_slice(TARGET_LABELS);
    l
}

/// A Go duration of the rules (`15m`, `1h30m`, `90s`) in whole minutes.
fn minutes(duration: &str) -> u64 {
    let mut total = 0;
    let mut number = String::new();
    for c in duration.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number
            .parse()
            .unwrap_or_else(|_| panic!("duration {duration}"));
        number.clear();
        total += match c {
            's' => n / 60,
            'm' => n,
            'h' => n * 60,
            _ => panic!("duration {duration}: unit {c} unknown to this test"),
        };
    }
    assert!(number.is_empty(), "duration {duration} without a unit");
    total
}

/// An alert annotation as Prometheus expands it for an alert with these labels and value: the
/// rules use only `{{ $labels.NAME }}` and `{{ $value }}`.
fn expand(template: &str, labels: &BTreeMap<String, String>, value: Option<&str>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .unwrap_or_else(|| panic!("unclosed {{{{ in {template}"))
            + start;
        let inner = rest[start + 2..end].trim();
        if inner == "$value" {
            out.push_str(value.unwrap_or_else(|| panic!("{template}: $value not expected")));
        } else if let Some(label) = inner.strip_prefix("$labels.") {
            out.push_str(labels.get(label).unwrap_or_else(|| {
                panic!("{template}: the alert has no label {label} (it has {labels:?})")
            }));
        } else {
            panic!("{template}: template {{{{{inner}}}}} unknown to this test");
        }
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The rules of a render: (Prometheus rules file as JSON, alert -> rule).
fn prometheus_rules(objs: &[Value]) -> (serde_json::Value, BTreeMap<String, Value>) {
    let pr = one(objs, "PrometheusRule");
    let groups = get(pr, "spec.groups");
    let mut rules = BTreeMap::new();
    for group in groups.as_sequence().expect("spec.groups") {
        for rule in get(group, "rules").as_sequence().expect("rules") {
            let name = s(rule, "alert").to_string();
            assert!(
                rules.insert(name.clone(), rule.clone()).is_none(),
                "{name} twice"
            );
        }
    }
    let names: Vec<&str> = rules.keys().map(String::as_str).collect();
    let mut want = ALERTS.to_vec();
    want.sort();
    assert_eq!(names, want, "the alerts of the PrometheusRule");
    let file = serde_json::json!({ "groups": serde_json::to_value(groups).unwrap() });
    (file, rules)
}

#[test]
fn prometheus_rule_alerts_fire_on_the_operator_metrics_and_stay_quiet_when_healthy() {
    let Some(promtool) = promtool() else {
        return;
    };
    let exported = exported_metrics();
    let v = operator_values();
    let encoded = encoded_series(&v);
    let (env, tenant) = (v.environment.as_str(), v.tenant.as_str());
    let default_runbook = s(
        &read_yaml(&format!("{CHART}/values.yaml")),
        "metrics.prometheusRule.runbookUrl",
    )
    .to_string();
    assert_eq!(
        default_runbook,
        format!("{DOCS_URL}troubleshooting.md"),
        "the alerts' runbook is the shipped troubleshooting page"
    );

    for (values, runbook) in [
        (None, default_runbook.as_str()),
        (
            Some("ci/all-options-values.yaml"),
            "https://wiki.example.com/platform/digital-channels-operator#troubleshooting",
        ),
    ] {
        let what = values.unwrap_or("default values");
        let mut flags: Vec<&str> = MONITORING_APIS.to_vec();
        flags.extend(["--set", "metrics.prometheusRule.enabled=true"]);
        let objs = docs(&template(values.as_slice(), &flags));
        let (rules_file, rules) = prometheus_rules(&objs);
        let for_of = |alert: &str| minutes(s(&rules[alert], "for"));
        let severity = |alert: &str| s(&rules[alert], "labels.severity").to_string();
        for (alert, rule) in &rules {
            assert_eq!(
                key_in(rule, "annotations", "runbook_url"),
                Some(runbook),
                "{what}: {alert}"
            );
        }

        // What firing alerts look like: the labels of the expression's result plus severity
        // (promtool adds alertname), and the annotations expanded with the result's labels, as
        // Prometheus does (a template naming a label the result lacks fails here).
        let alert = |name: &str, labels: &[(&str, &str)], value: Option<&str>| {
            let sample: BTreeMap<String, String> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let mut l = sample.clone();
            l.insert("severity".to_string(), severity(name));
            let annotations: BTreeMap<String, String> = get(&rules[name], "annotations")
                .as_mapping()
                .expect("annotations")
                .iter()
                .map(|(k, t)| {
                    let t = t.as_str().expect("annotation text");
                    (k.as_str().unwrap().to_string(), expand(t, &sample, value))
                })
                .collect();
            serde_json::json!({"exp_labels": l, "exp_annotations": annotations})
        };
        let firing: BTreeMap<&str, serde_json::Value> = [
            (
                "DigitalChannelsEnvironmentNotReady",
                alert(
                    "DigitalChannelsEnvironmentNotReady",
                    &not_ready_labels(env),
                    Some("1"),
                ),
            ),
            (
                "DigitalChannelsTenantNotReady",
                alert(
                    "DigitalChannelsTenantNotReady",
                    &not_ready_labels(tenant),
                    Some("2"),
                ),
            ),
            (
                "DigitalChannelsReconcileFailures",
                alert(
                    "DigitalChannelsReconcileFailures",
                    &[("kind", tenant)],
                    None,
                ),
            ),
            (
                "DigitalChannelsReconcileErrors",
                alert("DigitalChannelsReconcileErrors", &[("kind", env)], None),
            ),
            (
                "DigitalChannelsUpstreamUnavailable",
                alert(
                    "DigitalChannelsUpstreamUnavailable",
                    &[("system", "nexus")],
                    None,
                ),
            ),
        ]
        .into_iter()
        .collect();

        const RUN: u64 = 90; // minutes of samples, one a minute
        // A resource that keeps failing is retried at most every --max-backoff (5m) plus 20 %
        // jitter: one failed pass every 6 minutes is the sparsest a failing resource gets.
        const RETRY: u64 = 6;
        let samples = |f: &dyn Fn(u64) -> u64| (0..=RUN).map(f).collect::<Vec<u64>>();
        let series = |name: &str, labels: &[(&str, &str)], values: Vec<u64>| {
            input_series(&encoded, &exported, name, labels, &values)
        };
        let reconciles = "dc_operator_reconcile_total";
        let resources = "dc_operator_resources";
        let requests = "dc_operator_external_requests_total";

        // Failing: the environment's passes end in API errors and it is not Ready; two tenants
        // are not Ready and their passes fail; Nexus answers 503; GWS Auth is fine.
        let failing_input = vec![
            series(
                reconciles,
                &[("kind", env), ("result", "error")],
                samples(&|m| 1 + m / RETRY),
            ),
            series(
                reconciles,
                &[("kind", tenant), ("result", "failed")],
                samples(&|m| 1 + m / RETRY),
            ),
            series(
                reconciles,
                &[("kind", tenant), ("result", "ok")],
                samples(&|_| 40),
            ),
            series(
                resources,
                &[("kind", env), ("ready", "false")],
                samples(&|_| 1),
            ),
            series(
                resources,
                &[("kind", env), ("ready", "true")],
                samples(&|_| 0),
            ),
            series(
                resources,
                &[("kind", tenant), ("ready", "false")],
                samples(&|_| 2),
            ),
            series(
                resources,
                &[("kind", tenant), ("ready", "true")],
                samples(&|_| 3),
            ),
            series(
                requests,
                &[
                    ("system", "nexus"),
                    ("operation", "get_tenant"),
                    ("code", "503"),
                ],
                samples(&|m| 2 * m),
            ),
            series(
                requests,
                &[
                    ("system", "nexus"),
                    ("operation", "get_tenant"),
                    ("code", "200"),
                ],
                samples(&|_| 50),
            ),
            series(
                requests,
                &[
                    ("system", "gws-auth"),
                    ("operation", "token_password"),
                    ("code", "200"),
                ],
                samples(&|m| 10 + 3 * m),
            ),
        ];
        let mut failing_tests = Vec::new();
        for name in ALERTS {
            let on = for_of(name);
            assert!(
                on + RETRY < 60,
                "{what}: {name} waits {on}m; the scenario checks at 60m"
            );
            // Pending until its `for` has passed, then firing, and still at the end.
            failing_tests.push(serde_json::json!({
                "eval_time": format!("{}m", on - 1), "alertname": name, "exp_alerts": [],
            }));
            for at in [60, RUN] {
                failing_tests.push(serde_json::json!({
                    "eval_time": format!("{at}m"), "alertname": name,
                    "exp_alerts": [firing[name].clone()],
                }));
            }
        }

        // Healthy: passes ok and everything Ready, but for blips that heal: two failed passes a
        // few minutes apart, an environment and a tenant not Ready for 3 minutes, and a few 5xx
        // and timeouts among many successful calls.
        let window = minutes(
            s(&rules["DigitalChannelsReconcileFailures"], "expr")
                .split_once('[')
                .and_then(|(_, r)| r.split_once(']'))
                .expect("a range in the expression")
                .0,
        );
        assert!(
            for_of("DigitalChannelsReconcileFailures") > window + 3,
            "{what}: a blip of two failed passes must not fire DigitalChannelsReconcileFailures"
        );
        for name in [
            "DigitalChannelsEnvironmentNotReady",
            "DigitalChannelsTenantNotReady",
        ] {
            assert!(
                for_of(name) > 3,
                "{what}: a 3-minute blip must not fire {name}"
            );
        }
        let blip = |from: u64| move |m: u64| u64::from((from..from + 3).contains(&m));
        let healthy_input = vec![
            series(
                reconciles,
                &[("kind", env), ("result", "ok")],
                samples(&|m| 5 + m),
            ),
            series(
                reconciles,
                &[("kind", env), ("result", "error")],
                samples(&|_| 2),
            ),
            series(
                reconciles,
                &[("kind", tenant), ("result", "ok")],
                samples(&|m| 5 + 3 * m),
            ),
            series(
                reconciles,
                &[("kind", tenant), ("result", "failed")],
                samples(&|m| match m {
                    0..2 => 1,
                    2..5 => 2,
                    _ => 3,
                }),
            ),
            series(
                resources,
                &[("kind", env), ("ready", "false")],
                samples(&blip(20)),
            ),
            series(
                resources,
                &[("kind", env), ("ready", "true")],
                samples(&|m| 1 - blip(20)(m)),
            ),
            series(
                resources,
                &[("kind", tenant), ("ready", "false")],
                samples(&blip(10)),
            ),
            series(
                resources,
                &[("kind", tenant), ("ready", "true")],
                samples(&|m| 3 - blip(10)(m)),
            ),
            series(
                requests,
                &[
                    ("system", "nexus"),
                    ("operation", "get_tenant"),
                    ("code", "200"),
                ],
                samples(&|m| 9 * m),
            ),
            series(
                requests,
                &[
                    ("system", "nexus"),
                    ("operation", "get_tenant"),
                    ("code", "503"),
                ],
                samples(&|m| m),
            ),
            series(
                requests,
                &[
                    ("system", "gws-auth"),
                    ("operation", "token_password"),
                    ("code", "200"),
                ],
                samples(&|m| 20 * m),
            ),
            series(
                requests,
                &[
                    ("system", "gws-auth"),
                    ("operation", "token_password"),
                    ("code", "timeout"),
                ],
                samples(&|m| m / 10),
            ),
            series(
                requests,
                &[
                    ("system", "nexus-db"),
                    ("operation", "find_gapis"),
                    ("code", "ok"),
                ],
                samples(&|m| 4 * m),
            ),
        ];
        let mut healthy_tests = Vec::new();
        for name in ALERTS {
            for at in (5..=RUN).step_by(5) {
                healthy_tests.push(serde_json::json!({
                    "eval_time": format!("{at}m"), "alertname": name, "exp_alerts": [],
                }));
            }
        }

        let dir = tempfile::tempdir().unwrap();
        let rules_path = write_temp(
            dir.path(),
            "rules.yaml",
            &serde_json::to_string_pretty(&rules_file).unwrap(),
        );
        run(Command::new(&promtool)
            .arg("check")
            .arg("rules")
            .arg(&rules_path));
        let tests = serde_json::json!({
            "rule_files": ["rules.yaml"],
            "evaluation_interval": "1m",
            "tests": [
                {"name": "failing", "interval": "1m", "input_series": failing_input,
                 "alert_rule_test": failing_tests},
                {"name": "healthy", "interval": "1m", "input_series": healthy_input,
                 "alert_rule_test": healthy_tests},
            ],
        });
        let tests_path = write_temp(
            dir.path(),
            "tests.yaml",
            &serde_json::to_string_pretty(&tests).unwrap(),
        );
        let out = output(Command::new(&promtool).current_dir(dir.path()).args([
            "test",
            "rules",
            "tests.yaml",
        ]));
        assert!(
            out.status.success(),
            "{what}: promtool test rules failed:\n{}{}\nrules:\n{}\ntests:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            fs::read_to_string(&rules_path).unwrap(),
            fs::read_to_string(&tests_path).unwrap(),
        );
    }
}

#[test]
fn alert_test_helpers_parse_durations_and_expand_annotations() {
    assert_eq!(minutes("15m"), 15);
    assert_eq!(minutes("1h30m"), 90);
    assert_eq!(minutes("120s"), 2);
    let labels: BTreeMap<String, String> = [("kind".to_string(), "K".to_string())].into();
    assert_eq!(
        expand(
            "{{ $value }} of {{ $labels.kind }}: {{$labels.kind}}",
            &labels,
            Some("2")
        ),
        "2 of K: K"
    );
}

// ---------------------------------------------------------------------------------------------
// Pod security
// ---------------------------------------------------------------------------------------------

/// The "restricted" Pod Security Standard, field by field, plus requests/limits and probes.
fn assert_restricted(dep: &Value, metrics_port: u64, what: &str) {
    let pod = get(dep, "spec.template.spec");
    for forbidden in ["hostNetwork", "hostPID", "hostIPC", "hostUsers"] {
        assert!(
            get(pod, forbidden).is_null()
                || get(pod, forbidden).as_bool() == Some(forbidden == "hostUsers"),
            "{what}: {forbidden} set"
        );
    }
    assert_eq!(
        get(pod, "automountServiceAccountToken").as_bool(),
        Some(true),
        "{what}: the operator needs its token"
    );
    let psc = get(pod, "securityContext");
    assert_eq!(
        get(psc, "runAsNonRoot").as_bool(),
        Some(true),
        "{what}: pod runAsNonRoot"
    );
    assert_eq!(
        s(psc, "seccompProfile.type"),
        "RuntimeDefault",
        "{what}: pod seccomp"
    );
    if let Some(uid) = get(psc, "runAsUser").as_u64() {
        assert_ne!(uid, 0, "{what}: runAsUser 0");
    }
    for v in get(pod, "volumes").as_sequence().into_iter().flatten() {
        let m = v.as_mapping().unwrap();
        let types: Vec<&str> = m
            .keys()
            .filter_map(Value::as_str)
            .filter(|k| *k != "name")
            .collect();
        for t in types {
            assert!(
                [
                    "configMap",
                    "secret",
                    "emptyDir",
                    "projected",
                    "downwardAPI",
                    "persistentVolumeClaim",
                    "ephemeral",
                    "csi"
                ]
                .contains(&t),
                "{what}: volume type {t} is not allowed by the restricted profile"
            );
        }
    }
    let containers = get(pod, "containers").as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    assert!(get(pod, "initContainers").is_null() && get(pod, "ephemeralContainers").is_null());
    let c = &containers[0];
    let sc = get(c, "securityContext");
    assert_eq!(
        get(sc, "runAsNonRoot").as_bool(),
        Some(true),
        "{what}: runAsNonRoot"
    );
    assert_eq!(
        get(sc, "readOnlyRootFilesystem").as_bool(),
        Some(true),
        "{what}: readOnlyRootFilesystem"
    );
    assert_eq!(
        get(sc, "allowPrivilegeEscalation").as_bool(),
        Some(false),
        "{what}: allowPrivilegeEscalation"
    );
    assert_ne!(
        get(sc, "privileged").as_bool(),
        Some(true),
        "{what}: privileged"
    );
    assert_eq!(
        strings(get(sc, "capabilities.drop")),
        ["ALL"],
        "{what}: capabilities.drop"
    );
    assert!(
        get(sc, "capabilities.add").is_null(),
        "{what}: capabilities.add"
    );
    assert_eq!(
        s(sc, "seccompProfile.type"),
        "RuntimeDefault",
        "{what}: seccomp"
    );
    assert!(
        get(c, "ports")
            .as_sequence()
            .unwrap()
            .iter()
            .all(|p| get(p, "hostPort").is_null()),
        "{what}: hostPort"
    );
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(
                !get(c, &format!("resources.{kind}.{res}")).is_null(),
                "{what}: resources.{kind}.{res}"
            );
        }
    }
    assert_eq!(s(c, "ports.0.name"), "metrics");
    assert_eq!(get(c, "ports.0.containerPort").as_u64(), Some(metrics_port));
    assert_eq!(
        s(c, "livenessProbe.httpGet.path"),
        "/healthz",
        "{what}: liveness"
    );
    assert_eq!(
        s(c, "livenessProbe.httpGet.port"),
        "metrics",
        "{what}: liveness port"
    );
    assert_eq!(
        s(c, "readinessProbe.httpGet.path"),
        "/readyz",
        "{what}: readiness"
    );
    assert_eq!(
        s(c, "readinessProbe.httpGet.port"),
        "metrics",
        "{what}: readiness port"
    );
    assert!(
        strings(get(c, "args")).contains(&format!("--metrics-addr=0.0.0.0:{metrics_port}")),
        "{what}: probes and metrics on the same port"
    );
}

#[test]
fn deployment_meets_the_restricted_pod_security_standard() {
    let objs = docs(&template(&[], &[]));
    let dep = one(&objs, "Deployment");
    assert_restricted(dep, 8080, "default values");
    // The image's user: distroless nonroot.
    assert_eq!(
        get(dep, "spec.template.spec.securityContext.runAsUser").as_u64(),
        Some(65532)
    );
    assert_eq!(
        get(dep, "spec.template.spec.securityContext.runAsGroup").as_u64(),
        Some(65532)
    );
    for v in ci_values() {
        let objs = docs(&template(&[&v], &[]));
        let dep = one(&objs, "Deployment");
        let port = read_yaml(&format!("{CHART}/{v}"))["metrics"]["port"]
            .as_u64()
            .unwrap_or(8080);
        assert_restricted(dep, port, &v);
    }
}

// ---------------------------------------------------------------------------------------------
// RBAC
// ---------------------------------------------------------------------------------------------

/// (apiGroup, resource, verb, resourceName) tuples: two rule lists grant the same exactly when
/// these sets are equal.
type Grant = (String, String, String, String);

fn grants_of_tables(tables: &[&[Rule]]) -> BTreeSet<Grant> {
    tables.iter().flat_map(|t| grants_of_table(t)).collect()
}

fn grants_of_table(rules: &[Rule]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for (group, resources, verbs, names) in rules {
        for r in *resources {
            for v in *verbs {
                if names.is_empty() {
                    out.insert((group.to_string(), r.to_string(), v.to_string(), "*".into()));
                }
                for n in *names {
                    out.insert((
                        group.to_string(),
                        r.to_string(),
                        v.to_string(),
                        n.to_string(),
                    ));
                }
            }
        }
    }
    out
}

fn grants_of_role(role: &Value) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in get(role, "rules").as_sequence().expect("rules") {
        let allowed: BTreeSet<&str> = ["apiGroups", "resources", "verbs", "resourceNames"]
            .into_iter()
            .collect();
        for k in rule.as_mapping().unwrap().keys() {
            assert!(
                allowed.contains(k.as_str().unwrap()),
                "unexpected rule field {k:?} (nonResourceURLs?)"
            );
        }
        let names = strings(get(rule, "resourceNames"));
        for g in strings(get(rule, "apiGroups")) {
            for r in strings(get(rule, "resources")) {
                for v in strings(get(rule, "verbs")) {
                    assert!(g != "*" && r != "*" && v != "*", "wildcard in {rule:?}");
                    if names.is_empty() {
                        out.insert((g.clone(), r.clone(), v.clone(), "*".into()));
                    }
                    for n in &names {
                        out.insert((g.clone(), r.clone(), v.clone(), n.clone()));
                    }
                }
            }
        }
    }
    out
}

/// (kind, namespace, name) -> grants, for every ClusterRole and Role; and checks that each has a
/// binding to the operator's service account, and that nothing else is bound.
fn rbac(objs: &[Value], sa: &str) -> BTreeMap<(String, String, String), BTreeSet<Grant>> {
    let mut roles = BTreeMap::new();
    for o in objs
        .iter()
        .filter(|o| ["Role", "ClusterRole"].contains(&kind(o)))
    {
        let ns = get(o, "metadata.namespace")
            .as_str()
            .unwrap_or("")
            .to_string();
        roles.insert(
            (kind(o).to_string(), ns, s(o, "metadata.name").to_string()),
            grants_of_role(o),
        );
    }
    let mut bound = BTreeSet::new();
    for b in objs
        .iter()
        .filter(|o| ["RoleBinding", "ClusterRoleBinding"].contains(&kind(o)))
    {
        let ns = get(b, "metadata.namespace")
            .as_str()
            .unwrap_or("")
            .to_string();
        let role_kind = s(b, "roleRef.kind").to_string();
        assert_eq!(role_kind, kind(b).trim_end_matches("Binding"), "{b:?}");
        let subjects = get(b, "subjects").as_sequence().unwrap();
        assert_eq!(subjects.len(), 1);
        assert_eq!(s(&subjects[0], "kind"), "ServiceAccount");
        assert_eq!(s(&subjects[0], "name"), sa);
        assert_eq!(s(&subjects[0], "namespace"), NAMESPACE);
        let key = (role_kind, ns, s(b, "roleRef.name").to_string());
        assert!(
            roles.contains_key(&key),
            "binding {key:?} refers to no role of the chart"
        );
        bound.insert(key);
    }
    assert_eq!(bound.len(), roles.len(), "every role is bound exactly once");
    roles
}

fn key(kind: &str, ns: &str, name: &str) -> (String, String, String) {
    (kind.into(), ns.into(), name.into())
}

#[test]
fn rbac_rules_are_exactly_the_documented_set() {
    // Default: cluster-wide, leader election on, no Nexus restart.
    let got = rbac(&docs(&template(&[], &[])), RELEASE);
    let want: BTreeMap<_, _> = [
        (
            key("ClusterRole", "", RELEASE),
            grants_of_tables(&[RESOURCE_RULES, NAMESPACE_GET_ANY, WATCH_RULES]),
        ),
        (
            key(
                "Role",
                NAMESPACE,
                "digital-channels-operator-leader-election",
            ),
            grants_of_table(LEASE_RULES),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want, "default values");

    // A namespace list, Nexus restart limited to a name, leader election forced by replicas.
    let got = rbac(
        &docs(&template(&["ci/all-options-values.yaml"], &[])),
        "dc-operator-sa",
    );
    let want: BTreeMap<_, _> = [
        (
            key("ClusterRole", "", "dc-operator-all"),
            grants_of_tables(&[RESOURCE_RULES, NAMESPACE_GET_WATCHED]),
        ),
        (
            key("Role", "tenants-a", "dc-operator-all"),
            grants_of_table(WATCH_RULES),
        ),
        (
            key("Role", "tenants-b", "dc-operator-all"),
            grants_of_table(WATCH_RULES),
        ),
        (
            key("Role", NAMESPACE, "dc-operator-all-leader-election"),
            grants_of_table(LEASE_RULES),
        ),
        (
            key("Role", "nexus", "dc-operator-all-nexus-restart"),
            grants_of_table(NEXUS_RULES_NAMED),
        ),
        (
            key("Role", "nexus-eu", "dc-operator-all-nexus-restart"),
            grants_of_table(NEXUS_RULES_NAMED),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want, "ci/all-options-values.yaml");

    // Cluster-wide with Nexus restart on any Deployment of its namespace; one replica without
    // leader election needs no Lease rights.
    let got = rbac(
        &docs(&template(&["ci/configmap-ca-values.yaml"], &[])),
        "existing-operator-sa",
    );
    let want: BTreeMap<_, _> = [
        (
            key("ClusterRole", "", RELEASE),
            grants_of_tables(&[RESOURCE_RULES, NAMESPACE_GET_ANY, WATCH_RULES]),
        ),
        (
            key("Role", "nexus", "digital-channels-operator-nexus-restart"),
            grants_of_table(NEXUS_RULES_ANY),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want, "ci/configmap-ca-values.yaml");

    // rbac.create=false: no RBAC object at all.
    let objs = docs(&template(&[], &["--set", "rbac.create=false"]));
    assert!(
        objs.iter().all(|o| !kind(o).contains("Role")),
        "rbac.create=false"
    );

    // Each rule is explained in docs/install.md.
    let doc = fs::read_to_string(root().join("docs/install.md")).expect("docs/install.md");
    for (_, resources, verbs, _) in RESOURCE_RULES
        .iter()
        .chain(NAMESPACE_GET_ANY)
        .chain(WATCH_RULES)
        .chain(LEASE_RULES)
        .chain(NEXUS_RULES_NAMED)
    {
        for r in *resources {
            assert!(doc.contains(r), "docs/install.md does not mention {r}");
        }
        for v in *verbs {
            assert!(doc.contains(v), "docs/install.md does not mention {v}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CRDs, deploy/
// ---------------------------------------------------------------------------------------------

#[test]
fn chart_crds_equal_root_crds() {
    let root_files = root_crds();
    let chart_dir = root().join(CHART).join("crds");
    assert!(
        chart_dir.is_dir(),
        "{CHART}/crds is missing: run scripts/render-deploy (it copies crds/ there)"
    );
    let chart_files = tree(&chart_dir);
    assert_eq!(
        chart_files.keys().collect::<Vec<_>>(),
        root_files.keys().collect::<Vec<_>>(),
        "{CHART}/crds and crds/ hold different files: run scripts/render-deploy"
    );
    for (name, bytes) in &root_files {
        assert!(
            chart_files[name] == *bytes,
            "{CHART}/crds/{name} differs from crds/{name}: run scripts/render-deploy"
        );
    }
    // helm template --include-crds emits exactly those.
    let rendered = docs(&template(&[], &["--include-crds"]));
    let crds_rendered: Vec<_> = of_kind(&rendered, "CustomResourceDefinition")
        .iter()
        .map(|c| s(c, "metadata.name").to_string())
        .collect();
    let mut names: Vec<String> = crds_rendered.clone();
    names.sort();
    let mut want = vec![
        "digitalchannelsenvironments.digitalchannels.dev".to_string(),
        "digitalchannelstenants.digitalchannels.dev".to_string(),
    ];
    want.sort();
    assert_eq!(names, want);
}

#[test]
fn deploy_equals_the_rendered_chart() {
    let fix = "run scripts/render-deploy";
    let rendered = template(&[], &[]);
    let committed = fs::read_to_string(root().join("deploy/digital-channels-operator.yaml"))
        .unwrap_or_else(|e| panic!("deploy/digital-channels-operator.yaml: {e}; {fix}"));
    assert!(
        committed == rendered,
        "deploy/digital-channels-operator.yaml differs from `helm template {RELEASE} {CHART} --namespace {NAMESPACE}`; {fix}"
    );
    // The whole folder, including the CRD copies and the kustomization.
    let out = tempfile::tempdir().unwrap();
    let mut c = Command::new("bash");
    c.arg(root().join("scripts/render-deploy"))
        .arg("--out")
        .arg(out.path());
    c.env("HELM", tool("helm", "HELM"));
    run(&mut c);
    assert_same_tree(out.path(), &root().join("deploy"), fix);
    let crds = root_crds();
    for (name, bytes) in &crds {
        assert!(
            fs::read(root().join("deploy/crds").join(name))
                .ok()
                .as_deref()
                == Some(bytes.as_slice()),
            "deploy/crds/{name} differs from crds/{name}; {fix}"
        );
    }
    // kustomize builds it: namespace, CRDs, operator.
    let built = docs(&run(Command::new(tool("kubectl", "KUBECTL"))
        .args(["kustomize"])
        .arg(root().join("deploy"))));
    let k = kinds(&built);
    assert_eq!(k.get("Namespace"), Some(&1));
    assert_eq!(k.get("CustomResourceDefinition"), Some(&crds.len()));
    assert_eq!(k.get("Deployment"), Some(&1));
    assert_eq!(built.len(), 1 + crds.len() + docs(&rendered).len());
    let ns = one(&built, "Namespace");
    assert_eq!(s(ns, "metadata.name"), NAMESPACE);
    assert_eq!(
        key_in(ns, "metadata.labels", "pod-security.kubernetes.io/enforce"),
        Some("restricted")
    );
    let ns_file = root().join("deploy/namespace.yaml");
    validate(&[ns_file.as_path()]);
}

// ---------------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------------

#[test]
fn hadolint_passes_on_the_dockerfile() {
    run(Command::new(tool("hadolint", "HADOLINT")).arg(root().join("Dockerfile")));
}

#[test]
fn dockerfile_builds_what_build_static_builds() {
    let dockerfile = fs::read_to_string(root().join("Dockerfile")).unwrap();
    let script = fs::read_to_string(root().join("scripts/build-static")).unwrap();
    let froms: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "multi-stage: {froms:?}");
    assert!(
        froms[0].starts_with("FROM rust:") && froms[0].ends_with(" AS builder"),
        "{}",
        froms[0]
    );
    assert_eq!(froms[1], "FROM gcr.io/distroless/static-debian12:nonroot");
    // The image leaves out the simulator, the PostgreSQL starter, `demo` and `simulate`.
    let build = r#"cargo build --locked --release --no-default-features --target "$target" --bin dc-operator"#;
    assert!(dockerfile.contains(build), "Dockerfile: {build}");
    assert!(script.contains(build), "scripts/build-static: {build}");
    let target = r#"target="$(uname -m)-unknown-linux-gnu""#;
    assert!(
        dockerfile.contains(target) && script.contains(target),
        "same target triple: {target}"
    );
    assert!(dockerfile.contains(r#"RUSTFLAGS="-C target-feature=+crt-static""#));
    assert!(script.contains(r#"RUSTFLAGS="-C target-feature=+crt-static""#));
    assert!(dockerfile.contains("SQLX_OFFLINE=true") && script.contains("SQLX_OFFLINE=true"));
    for line in [
        "USER 65532:65532",
        "EXPOSE 8080",
        r#"ENTRYPOINT ["/dc-operator"]"#,
        r#"CMD ["run"]"#,
    ] {
        assert!(
            dockerfile.lines().any(|l| l == line),
            "Dockerfile lacks `{line}`"
        );
    }
    // The image's user is the one the chart runs as.
    let values = read_yaml(&format!("{CHART}/values.yaml"));
    assert_eq!(
        values["podSecurityContext"]["runAsUser"].as_u64(),
        Some(65532)
    );
    // .dockerignore keeps what the build needs.
    let ignore = fs::read_to_string(root().join(".dockerignore")).unwrap();
    for needed in ["/src", "/Cargo.toml", "/Cargo.lock", "/crds", "/.sqlx"] {
        assert!(
            !ignore.lines().any(|l| l.trim() == needed),
            ".dockerignore drops {needed}"
        );
    }
    for dropped in ["/target", "/.tools", "/.git"] {
        assert!(
            ignore.lines().any(|l| l.trim() == dropped),
            ".dockerignore keeps {dropped}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// examples/
// ---------------------------------------------------------------------------------------------

fn example_objects(dir: &str) -> Vec<Value> {
    let mut files: Vec<PathBuf> = fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| docs(&fs::read_to_string(f).unwrap()))
        .collect()
}

fn secret_value(objs: &[Value], name: &str, key: &str) -> String {
    let secret = of_kind(objs, "Secret")
        .into_iter()
        .find(|o| s(o, "metadata.name") == name)
        .unwrap_or_else(|| panic!("no Secret {name} in the examples"));
    get(secret, &format!("stringData.{key}"))
        .as_str()
        .unwrap_or_else(|| panic!("Secret {name} has no key {key}"))
        .to_string()
}

/// Checks one example set; returns (environment, tenant, objects).
fn check_examples(dir: &str) -> (Value, Value, Vec<Value>) {
    let mut objs = example_objects(dir);
    if dir != "examples" {
        objs.extend(
            example_objects("examples")
                .into_iter()
                .filter(|o| kind(o) == "Namespace"),
        );
    }
    // Namespace-free, so that `kubectl apply -n ANY -f examples/` works.
    for o in &objs {
        if kind(o) != "Namespace" {
            assert!(get(o, "metadata.namespace").is_null(), "{dir}: {o:?}");
        }
    }
    let env = one(&objs, "DigitalChannelsEnvironment").clone();
    let tenant = one(&objs, "DigitalChannelsTenant").clone();
    for o in [&env, &tenant] {
        assert_eq!(s(o, "apiVersion"), "digitalchannels.dev/v1alpha1");
    }
    assert_eq!(s(&env, "metadata.name"), "prod");
    assert_eq!(s(&tenant, "metadata.name"), "t100");
    assert_eq!(s(&tenant, "spec.environmentRef.name"), "prod");
    assert_eq!(s(&tenant, "spec.tenantName"), "t100");
    assert_eq!(s(&tenant, "spec.contactCenterDomain"), "t100");
    // Every referenced Secret and key is there.
    let key_or =
        |v: &Value, path: &str, default: &str| get(v, path).as_str().unwrap_or(default).to_string();
    let ops = s(&env, "spec.opsCredentialsSecret.name");
    secret_value(
        &objs,
        ops,
        &key_or(&env, "spec.opsCredentialsSecret.usernameKey", "username"),
    );
    secret_value(
        &objs,
        ops,
        &key_or(&env, "spec.opsCredentialsSecret.passwordKey", "password"),
    );
    secret_value(
        &objs,
        s(&env, "spec.database.urlSecret.name"),
        s(&env, "spec.database.urlSecret.key"),
    );
    let creds = s(&tenant, "spec.credentialsSecret.name");
    secret_value(
        &objs,
        creds,
        &key_or(&tenant, "spec.credentialsSecret.usernameKey", "username"),
    );
    secret_value(
        &objs,
        creds,
        &key_or(&tenant, "spec.credentialsSecret.passwordKey", "password"),
    );
    // The core kinds are valid Kubernetes objects.
    let tmp = tempfile::tempdir().unwrap();
    let core: Vec<String> = objs
        .iter()
        .filter(|o| !s(o, "apiVersion").starts_with("digitalchannels.dev/"))
        .map(|o| serde_yaml_ng::to_string(o).unwrap())
        .collect();
    let f = write_temp(tmp.path(), "core.yaml", &core.join("---\n"));
    validate(&[f.as_path()]);
    (env, tenant, objs)
}

#[test]
fn examples_are_complete_and_valid() {
    let (env, tenant, objs) = check_examples("examples");
    let ns = one(&objs, "Namespace");
    assert_eq!(s(ns, "metadata.name"), NAMESPACE);
    for field in ["authUrl", "gwsUrl", "nexusUrl"] {
        let url = s(&env, &format!("spec.{field}"));
        assert!(
            url.starts_with("https://") && url.ends_with(".example.com"),
            "{field}: {url}"
        );
    }
    assert!(s(&tenant, "spec.ucs.url").starts_with("https://"));
    for (name, key) in [
        ("gws-ops", "password"),
        ("t100-nexus-user", "password"),
        ("nexus-db", "url"),
    ] {
        assert!(
            secret_value(&objs, name, key).contains("CHANGE-ME"),
            "{name}.{key} must be an obvious placeholder"
        );
    }
}

#[test]
fn simulator_examples_point_at_the_local_simulator() {
    let (env, tenant, objs) = check_examples("examples/simulator");
    for field in ["authUrl", "gwsUrl", "nexusUrl"] {
        assert_eq!(
            s(&env, &format!("spec.{field}")),
            "http://127.0.0.1:8181",
            "{field}"
        );
    }
    assert!(
        get(&env, "spec.environmentUrl").is_null()
            || s(&env, "spec.environmentUrl") == "http://127.0.0.1:8181"
    );
    assert!(
        get(&tenant, "spec.ucs").is_null(),
        "the simulator variant keeps to the required steps"
    );
    assert_eq!(secret_value(&objs, "gws-ops", "username"), "ops");
    assert_eq!(secret_value(&objs, "gws-ops", "password"), "ops");
    assert_eq!(secret_value(&objs, "t100-nexus-user", "username"), "nexus");
    assert_eq!(
        secret_value(&objs, "t100-nexus-user", "password"),
        "nexus_password"
    );
    assert_eq!(
        secret_value(&objs, "nexus-db", "url"),
        "postgres://postgres@127.0.0.1:5432/dcsim"
    );
}

/// The example custom resources validate against the CRDs' OpenAPI schemas (with the python
/// jsonschema that install-tools provides; kubernetes-validate knows no custom kinds).
#[test]
fn examples_validate_against_the_crd_schemas() {
    let crds = root_crds();
    let python = tool("tools-python", "TOOLS_PYTHON");
    let mut schemas = serde_json::Map::new();
    for bytes in crds.values() {
        for crd in docs(std::str::from_utf8(bytes).unwrap()) {
            let kind = s(&crd, "spec.names.kind").to_string();
            let group = s(&crd, "spec.group");
            for v in get(&crd, "spec.versions").as_sequence().unwrap() {
                let api = format!("{group}/{}", s(v, "name"));
                let schema: serde_json::Value =
                    serde_json::to_value(get(v, "schema.openAPIV3Schema")).expect("schema as JSON");
                schemas.insert(format!("{api} {kind}"), schema);
            }
        }
    }
    let mut crs = Vec::new();
    for dir in ["examples", "examples/simulator"] {
        for o in example_objects(dir) {
            if s(&o, "apiVersion").starts_with("digitalchannels.dev/") {
                crs.push(serde_json::json!({
                    "where": format!("{dir}: {} {}", kind(&o), s(&o, "metadata.name")),
                    "key": format!("{} {}", s(&o, "apiVersion"), kind(&o)),
                    "object": serde_json::to_value(&o).unwrap(),
                }));
            }
        }
    }
    assert_eq!(crs.len(), 4);
    let tmp = tempfile::tempdir().unwrap();
    let input = write_temp(
        tmp.path(),
        "input.json",
        &serde_json::json!({"schemas": schemas, "objects": crs}).to_string(),
    );
    let script = r#"
import json, sys, jsonschema
data = json.load(open(sys.argv[1]))
bad = 0
for o in data["objects"]:
    schema = data["schemas"].get(o["key"])
    if schema is None:
        print(f"{o['where']}: no CRD serves {o['key']}"); bad += 1; continue
    for e in jsonschema.Draft4Validator(schema).iter_errors(o["object"]):
        print(f"{o['where']}: {'.'.join(map(str, e.absolute_path))}: {e.message}"); bad += 1
sys.exit(1 if bad else 0)
"#;
    run(Command::new(python).arg("-c").arg(script).arg(&input));
}

// ---------------------------------------------------------------------------------------------
// The chart on its own: what a user sees who has the chart and no checkout
// ---------------------------------------------------------------------------------------------

/// Links of a Markdown text that point into a checkout (neither absolute nor an anchor).
fn relative_links(markdown: &str) -> Vec<String> {
    markdown
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|target| !target.contains("://") && !target.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn helm_show_readme_prints_the_chart_readme() {
    let shown = run(helm().args(["show", "readme", CHART]));
    let file = fs::read_to_string(root().join(CHART).join("README.md")).expect("chart README.md");
    assert_eq!(
        shown.trim(),
        file.trim(),
        "helm show readme prints README.md"
    );
    for needed in [
        "## What it installs",
        "## Prerequisites",
        "## CustomResourceDefinitions",
        "## Values",
        "dc-operator crds",
        DOCS_URL,
    ] {
        assert!(shown.contains(needed), "the chart README lacks {needed:?}");
    }
    assert_eq!(
        relative_links(&shown),
        Vec::<String>::new(),
        "the chart README is read without a checkout: links must be absolute"
    );
}

/// The rows `| `path` | default | meaning |` of the chart README's values table.
fn readme_value_rows(readme: &str) -> Vec<(String, String)> {
    readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| {
            let (path, rest) = l.split_once("` |")?;
            let default = rest.split(" | ").next()?.trim();
            Some((path.to_string(), default.to_string()))
        })
        .collect()
}

#[test]
fn chart_readme_values_are_real_values_with_their_defaults() {
    let readme = fs::read_to_string(root().join(CHART).join("README.md")).expect("chart README.md");
    let values = read_yaml(&format!("{CHART}/values.yaml"));
    let mut paths = BTreeSet::new();
    leaf_paths(&values, "", &mut paths);
    let rows = readme_value_rows(&readme);
    assert!(rows.len() >= 10, "the values table has {} rows", rows.len());
    for (path, default) in rows {
        assert!(
            paths.contains(&path),
            "chart README: {path} is no value of values.yaml"
        );
        // A default in backticks is YAML and must be the one values.yaml holds; other cells
        // describe a structured default in words.
        if let Some(yaml) = default.strip_prefix('`').and_then(|d| d.strip_suffix('`')) {
            let documented: Value = serde_yaml_ng::from_str(yaml).expect("YAML default");
            assert_eq!(
                &documented,
                get(&values, &path),
                "chart README: default of {path}"
            );
        }
    }
}

/// NOTES.txt as `helm install` prints it (client-side dry run: no cluster is contacted).
fn notes(values: Option<&str>) -> String {
    let mut c = helm();
    c.args([
        "install",
        "--dry-run=client",
        RELEASE,
        CHART,
        "--namespace",
        NAMESPACE,
    ])
    .env("KUBECONFIG", "/nonexistent/kubeconfig");
    if let Some(v) = values {
        c.arg("-f").arg(Path::new(CHART).join(v));
    }
    let out = run(&mut c);
    let (_, notes) = out
        .split_once("NOTES:\n")
        .expect("helm install prints NOTES");
    notes.to_string()
}

#[test]
fn notes_do_not_assume_a_checkout() {
    for values in [None, Some("ci/all-options-values.yaml")] {
        let notes = notes(values);
        let what = values.unwrap_or("default values");
        let checkout_paths: Vec<&str> = notes
            .split_whitespace()
            .filter(|word| !word.contains("://"))
            .filter(|word| {
                [
                    "crds/",
                    "examples/",
                    "docs/",
                    "charts/",
                    "scripts/",
                    "README",
                ]
                .iter()
                .any(|dir| word.contains(dir))
            })
            .collect();
        assert!(
            checkout_paths.is_empty(),
            "{what}: NOTES name paths of a checkout: {checkout_paths:?}\n{notes}"
        );
        for needed in [
            "dc-operator crds | kubectl apply",
            "helm show crds",
            DOCS_URL,
        ] {
            assert!(
                notes.contains(needed),
                "{what}: NOTES lack {needed:?}\n{notes}"
            );
        }
    }
}

/// Markdown and YAML files a user copies URLs from: the examples, the READMEs and the docs.
fn documented_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path
                .extension()
                .is_some_and(|e| e == "md" || e == "yaml" || e == "yml")
            {
                out.push(path);
            }
        }
    }
    let mut files = vec![
        root().join("README.md"),
        root().join(CHART).join("README.md"),
    ];
    walk(&root().join("examples"), &mut files);
    walk(&root().join("docs"), &mut files);
    files
}

/// Host and TCP port of an http, https or postgres URL found at the start of `rest` (the text
/// right after `scheme://`); `None` for other schemes and for a scheme named alone ("an
/// `http://` URL").
fn url_host_port(scheme: &str, rest: &str) -> Option<(String, u16)> {
    let default = match scheme {
        "http" => 80,
        "https" => 443,
        "postgres" | "postgresql" => 5432,
        _ => return None,
    };
    let authority: String = rest
        .chars()
        .take_while(|c| !"/?#`'\"()<> ,;\n".contains(*c))
        .collect();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').unwrap_or((v6, ""));
            (host.to_string(), after.strip_prefix(':'))
        }
        None => match host_port.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (host_port.to_string(), None),
        },
    };
    let port = port.and_then(|p| p.parse().ok()).unwrap_or(default);
    (!host.is_empty()).then_some((host, port))
}

#[test]
fn url_host_port_reads_scheme_defaults_and_explicit_ports() {
    let hp = url_host_port;
    assert_eq!(
        hp("https", "gws.example.com/x"),
        Some(("gws.example.com".into(), 443))
    );
    assert_eq!(
        hp("http", "gauth-environment.<ns>`"),
        Some(("gauth-environment.".into(), 80))
    );
    assert_eq!(
        hp("https", "h.example.com:8443/"),
        Some(("h.example.com".into(), 8443))
    );
    assert_eq!(
        hp("postgres", "u:p@db.svc:5433/nexus?sslmode=require"),
        Some(("db.svc".into(), 5433))
    );
    assert_eq!(
        hp("postgresql", "u@db.svc/nexus"),
        Some(("db.svc".into(), 5432))
    );
    assert_eq!(hp("http", "[::1]:9000/"), Some(("::1".into(), 9000)));
    assert_eq!(hp("ftp", "x"), None);
    assert_eq!(hp("http", "` URL is a warning"), None);
}

/// Every (file, URL host, port) of the documented files, except loopback addresses: the examples
/// for a local `dc-operator run` point at the simulator on 127.0.0.1, and a pod's loopback is the
/// pod itself, which NetworkPolicy does not govern.
fn documented_ports() -> Vec<(String, String, u16)> {
    let mut found = Vec::new();
    for file in documented_files() {
        let text = fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(root()).unwrap().display().to_string();
        for (i, _) in text.match_indices("://") {
            let scheme: String = text[..i]
                .chars()
                .rev()
                .take_while(char::is_ascii_alphanumeric)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let Some((host, port)) = url_host_port(&scheme, &text[i + 3..]) else {
                continue;
            };
            let loopback = host == "localhost" || host == "::1" || host.starts_with("127.");
            if !loopback {
                found.push((name.clone(), host, port));
            }
        }
    }
    found
}

#[test]
fn network_policy_allows_the_port_of_every_documented_url() {
    let objs = docs(&template(&[], &["--set", "networkPolicy.enabled=true"]));
    let np = one(&objs, "NetworkPolicy");
    // After DNS and the API server come the upstreams.
    let allowed: BTreeSet<u64> = get(np, "spec.egress")
        .as_sequence()
        .unwrap()
        .iter()
        .skip(2)
        .flat_map(|rule| get(rule, "ports").as_sequence().unwrap().iter())
        .map(|p| get(p, "port").as_u64().unwrap())
        .collect();
    let found = documented_ports();
    assert!(
        found.iter().any(|(_, _, port)| *port == 80),
        "the scan finds the docs' plain-HTTP in-cluster URLs"
    );
    let refused: Vec<_> = found
        .iter()
        .filter(|(_, _, port)| !allowed.contains(&u64::from(*port)))
        .collect();
    assert!(
        refused.is_empty(),
        "networkPolicy.upstreams allows {allowed:?}, not the ports of these documented URLs: {refused:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Documentation
// ---------------------------------------------------------------------------------------------

#[test]
fn every_value_is_documented() {
    let values = read_yaml(&format!("{CHART}/values.yaml"));
    let mut paths = BTreeSet::new();
    leaf_paths(&values, "", &mut paths);
    let doc = fs::read_to_string(root().join("docs/install.md")).expect("docs/install.md");
    let missing: Vec<_> = paths
        .iter()
        .filter(|p| !doc.contains(&format!("| `{p}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/install.md values table lacks: {missing:?}"
    );
    // values.yaml: a `# --` comment above every leaf key. Paths come from indentation (two spaces a
    // level); keys inside list items are never values, so those lines are skipped.
    let text = fs::read_to_string(root().join(CHART).join("values.yaml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut stack: Vec<String> = Vec::new();
    let mut line_of: BTreeMap<String, usize> = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        let trimmed = l.trim_start();
        let indent = l.len() - trimmed.len();
        if trimmed.starts_with('#') || trimmed.starts_with('-') || indent % 2 != 0 {
            continue;
        }
        let Some((key, _)) = trimmed.split_once(':') else {
            continue;
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let depth = indent / 2;
        if depth > stack.len() {
            continue; // inside a list item or a literal map
        }
        stack.truncate(depth);
        stack.push(key.to_string());
        line_of.entry(stack.join(".")).or_insert(i);
    }
    for p in &paths {
        let i = *line_of
            .get(p)
            .unwrap_or_else(|| panic!("{p} not found in values.yaml"));
        let documented = lines[..i]
            .iter()
            .rev()
            .take_while(|l| l.trim_start().starts_with('#'))
            .any(|l| l.trim_start().starts_with("# --"));
        assert!(
            documented,
            "values.yaml: {p} has no `# --` comment above it"
        );
    }
    // The schema knows every value.
    let schema: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(root().join(CHART).join("values.schema.json")).unwrap(),
    )
    .unwrap();
    for p in &paths {
        let mut cur = &schema;
        for part in p.split('.') {
            cur = &cur["properties"][part];
            assert!(!cur.is_null(), "values.schema.json lacks {p}");
        }
    }
}
