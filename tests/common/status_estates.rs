//! Two estates as status holds them, for `dc-operator status` against the in-memory API
//! server (tests/cli_status.rs) and the real one (tests/e2e/cli_status.rs): a healthy one
//! (prod and t100 Ready) and a broken one (prod refused by GWS Auth, t400 of a missing
//! environment), and their trees with ages normalised.
#![allow(dead_code)]

/// A condition, flipped long ago (ages are normalised in the comparisons).
pub fn cond(type_: &str, status: &str, reason: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"type": type_, "status": status, "reason": reason, "message": message,
                       "lastTransitionTime": "2024-01-01T00:00:00Z", "observedGeneration": 1})
}

/// The environment `prod` in `ns`: Ready, or refused by GWS Auth and retried at `retry_at`.
pub fn env_object(ns: &str, ready: bool, retry_at: Option<&str>) -> serde_json::Value {
    let refused = "GWS Auth refused the ops credentials of Secret gws-ops (401).";
    let conditions = match ready {
        true => vec![
            cond("ClientRegistered", "True", "Provisioned", "Registered."),
            cond("ClientVerified", "True", "Verified", "Verified."),
            cond(
                "GapiRegistered",
                "True",
                "Provisioned",
                "nex_gapis holds GWS.",
            ),
            cond("Ready", "True", "Provisioned", "All holds."),
            cond("Reconciling", "False", "Provisioned", ""),
            cond("Stalled", "False", "Provisioned", ""),
        ],
        false => vec![
            cond("ClientRegistered", "False", "Unauthorized", refused),
            cond(
                "ClientVerified",
                "Unknown",
                "Pending",
                "Waits for ClientRegistered.",
            ),
            cond(
                "GapiRegistered",
                "Unknown",
                "Pending",
                "Waits for ClientVerified.",
            ),
            cond(
                "Ready",
                "False",
                "Unauthorized",
                &format!("ClientRegistered: {refused}"),
            ),
            cond("Reconciling", "False", "Unauthorized", ""),
            cond("Stalled", "True", "Unauthorized", "ClientRegistered: ..."),
        ],
    };
    let mut status = serde_json::json!({"observedGeneration": 1, "conditions": conditions});
    if let Some(at) = retry_at {
        status["nextRetryAt"] = serde_json::json!(at);
    }
    serde_json::json!({
        "apiVersion": "digitalchannels.dev/v1alpha1", "kind": "DigitalChannelsEnvironment",
        "metadata": {"name": "prod", "namespace": ns},
        "spec": {"authUrl": "https://auth.example.com", "gwsUrl": "https://gws.example.com",
                 "nexusUrl": "https://nexus.example.com", "opsCredentialsSecret": {"name": "gws-ops"},
                 "database": {"urlSecret": {"name": "nexus-db", "key": "url"}}},
        "status": status
    })
}

/// A tenant of `env` in `ns` with these conditions.
pub fn tenant_object(
    ns: &str,
    name: &str,
    env: &str,
    conditions: Vec<serde_json::Value>,
) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "digitalchannels.dev/v1alpha1", "kind": "DigitalChannelsTenant",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"environmentRef": {"name": env}, "tenantName": name,
                 "credentialsSecret": {"name": "t100-user"}},
        "status": {"observedGeneration": 1, "conditions": conditions}
    })
}

/// A tenant Ready, every step holding.
pub fn ready_tenant_conditions() -> Vec<serde_json::Value> {
    vec![
        cond("EnvironmentReady", "True", "Verified", "prod is Ready."),
        cond("ContactCenterResolved", "True", "Resolved", "Found."),
        cond("ChatServiceRegistered", "True", "Provisioned", "Set."),
        cond("TenantProvisioned", "True", "Provisioned", "Provisioned."),
        cond("Ready", "True", "Provisioned", "The tenant is provisioned."),
        cond(
            "DesignerEnvConfigured",
            "True",
            "Acknowledged",
            "Acknowledged.",
        ),
        cond("Reconciling", "False", "Provisioned", ""),
        cond("Stalled", "False", "Provisioned", ""),
    ]
}

/// A tenant waiting for the environment `staging` of `ns`, which does not exist.
pub fn waiting_conditions(ns: &str) -> Vec<serde_json::Value> {
    let why = format!("DigitalChannelsEnvironment staging does not exist in namespace {ns}.");
    vec![
        cond("EnvironmentReady", "False", "WaitingForEnvironment", &why),
        cond("Ready", "False", "WaitingForEnvironment", &why),
        cond("Reconciling", "True", "WaitingForEnvironment", &why),
        cond("Stalled", "False", "WaitingForEnvironment", ""),
    ]
}

/// `kubectl get`-style ages (`5y150d`, `3m20s`, `45s`) as `<age>`, and each run of spaces
/// as one: ages change the columns' widths from one day to the next.
pub fn normalised(text: &str) -> String {
    let is_age = |t: &str| {
        t.starts_with(|c: char| c.is_ascii_digit())
            && t.ends_with(['y', 'd', 'h', 'm', 's'])
            && t.chars().all(|c| c.is_ascii_digit() || "ydhms".contains(c))
    };
    text.lines()
        .map(|line| {
            line.split_whitespace()
                .map(|t| if is_age(t) { "<age>" } else { t })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub const HEALTHY_TREE: &str = "\
NAME READY REASON STATE POLICY AGE MESSAGE
DigitalChannelsEnvironment/prod True Provisioned Current Manage <age>
├─ ClientRegistered True Provisioned <age>
├─ ClientVerified True Verified <age>
├─ GapiRegistered True Provisioned <age>
└─ DigitalChannelsTenant/t100 True Provisioned Current Manage <age>
├─ EnvironmentReady True Verified <age>
├─ ContactCenterResolved True Resolved <age>
├─ ChatServiceRegistered True Provisioned <age>
├─ TenantProvisioned True Provisioned <age>
└─ DesignerEnvConfigured True Acknowledged <age>";

/// The tree of the broken estate in namespace `NAMESPACE`.
const BROKEN_TREE: &str = "\
NAME READY REASON STATE POLICY AGE MESSAGE
DigitalChannelsEnvironment/prod False Unauthorized Stalled Manage <age> ClientRegistered: GWS Auth refused the ops credentials of Secret gws-ops (401).
│ to do: fix the Secret named in the message (ops user, tenant user, database URL)
│ next retry: in <age>
├─ ClientRegistered False Unauthorized <age> GWS Auth refused the ops credentials of Secret gws-ops (401).
├─ ClientVerified Unknown Pending <age> Waits for ClientRegistered.
├─ GapiRegistered Unknown Pending <age> Waits for ClientVerified.
└─ DigitalChannelsTenant/t100 True Provisioned Current Manage <age>
├─ EnvironmentReady True Verified <age>
├─ ContactCenterResolved True Resolved <age>
├─ ChatServiceRegistered True Provisioned <age>
├─ TenantProvisioned True Provisioned <age>
└─ DesignerEnvConfigured True Acknowledged <age>

DigitalChannelsEnvironment/staging - NotFound - - - missing environment: no DigitalChannelsEnvironment staging in namespace NAMESPACE
│ to do: create DigitalChannelsEnvironment staging in namespace NAMESPACE, or point these tenants' environmentRef at one that exists
└─ DigitalChannelsTenant/t400 False WaitingForEnvironment Reconciling Manage <age> DigitalChannelsEnvironment staging does not exist in namespace NAMESPACE.
│ to do: fix the environment; the tenant proceeds at once when it turns Ready
└─ EnvironmentReady False WaitingForEnvironment <age> DigitalChannelsEnvironment staging does not exist in namespace NAMESPACE.";

/// In an hour: the next retry of the broken environment.
pub fn in_an_hour() -> String {
    jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(3600))
        .unwrap()
        .round(jiff::Unit::Second)
        .unwrap()
        .to_string()
}

/// The tree of the broken estate in namespace `ns`.
pub fn broken_tree(ns: &str) -> String {
    BROKEN_TREE.replace("NAMESPACE", ns)
}
