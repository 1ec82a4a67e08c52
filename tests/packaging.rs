//! Packaging: the Helm chart, `deploy/`, `examples/` and the Dockerfile.
//!
//! These tests shell out to the tools that `scripts/install-tools` puts into `.tools/bin/` (helm,
//! kubectl, kubernetes-validate, hadolint, tools-python); `$HELM`, `$KUBECTL`,
//! `$KUBERNETES_VALIDATE`, `$HADOLINT` and `$TOOLS_PYTHON` override them. A missing tool is a
//! failure that says "run scripts/install-tools", never a silent skip.
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

    let objs = docs(&template(&["ci/all-options-values.yaml"], &[]));
    let k = kinds(&objs);
    for (kind, n) in [
        ("ServiceMonitor", 1),
        ("PrometheusRule", 1),
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
    let errors = rules["DigitalChannelsReconcileErrors"];
    assert!(s(errors, "expr").contains(r#"rate(dc_operator_reconcile_total{result="error"}[5m])"#));
    assert!(s(errors, "expr").ends_with("> 0"));
    assert_eq!(s(errors, "for"), "5m");
    let upstream = rules["DigitalChannelsUpstreamUnavailable"];
    assert!(
        s(upstream, "expr")
            .contains(r#"dc_operator_external_requests_total{code=~"5..|timeout|unreachable"}"#)
    );
    assert!(s(upstream, "expr").trim_end().ends_with("> 0.25"));
    assert_eq!(s(upstream, "labels.severity"), "warning");
    for r in rules.values() {
        assert!(
            get(r, "annotations.summary").is_string()
                && get(r, "annotations.description").is_string()
        );
    }

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
        [vec![53, 53], vec![443, 6443], vec![443], vec![5432]]
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
            &template(&[v], &[]),
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
    let build = r#"cargo build --locked --release --target "$target" --bin dc-operator"#;
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
