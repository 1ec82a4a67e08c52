//! The model and the renderer on constructed estates: a healthy one and a broken one, in
//! exact text (golden, at a fixed now), and the decisions as tables.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::Format;
use super::model::{Selection, State, estate, to_do};
use super::render::{human_duration, render};
use crate::api::conditions::{Condition, ConditionStatus};
use crate::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};

pub const NOW: &str = "2025-06-01T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

/// `seconds` before [`NOW`], as RFC 3339.
fn ago(seconds: i64) -> String {
    now()
        .checked_sub(jiff::SignedDuration::from_secs(seconds))
        .unwrap()
        .to_string()
}

/// A condition as status holds it: `(type, status, reason, message, seconds since it flipped)`.
pub fn condition(c: (&str, &str, &str, &str, i64)) -> Value {
    json!({"type": c.0, "status": c.1, "reason": c.2, "message": c.3,
           "lastTransitionTime": ago(c.4), "observedGeneration": 1})
}

/// The kstatus pair as the controllers write it for this Ready.
fn kstatus(ready: &str, reason: &str, stalled: bool, message: &str) -> [Value; 2] {
    let (reconciling, stalled) = match (ready, stalled) {
        ("True", _) => ("False", "False"),
        (_, true) => ("False", "True"),
        _ => ("True", "False"),
    };
    let m = |s: &str| if s == "True" { message } else { "" };
    [
        condition(("Reconciling", reconciling, reason, m(reconciling), 600)),
        condition(("Stalled", stalled, reason, m(stalled), 600)),
    ]
}

pub fn env_json(name: &str, policy: &str, conditions: Vec<Value>, retry: Option<&str>) -> Value {
    let mut status = json!({"observedGeneration": 1, "conditions": conditions});
    if let Some(at) = retry {
        status["nextRetryAt"] = json!(at);
    }
    json!({
        "apiVersion": "digitalchannels.dev/v1alpha1",
        "kind": "DigitalChannelsEnvironment",
        "metadata": {"name": name, "namespace": "digital-channels", "generation": 1},
        "spec": {
            "authUrl": "https://auth.example.com", "gwsUrl": "https://gws.example.com",
            "nexusUrl": "https://nexus.example.com", "opsCredentialsSecret": {"name": "gws-ops"},
            "database": {"urlSecret": {"name": "nexus-db", "key": "url"}},
            "managementPolicy": policy
        },
        "status": status
    })
}

pub fn tenant_json(name: &str, env: &str, policy: &str, conditions: Vec<Value>) -> Value {
    json!({
        "apiVersion": "digitalchannels.dev/v1alpha1",
        "kind": "DigitalChannelsTenant",
        "metadata": {"name": name, "namespace": "digital-channels", "generation": 1},
        "spec": {
            "environmentRef": {"name": env}, "tenantName": name,
            "credentialsSecret": {"name": format!("{name}-user")},
            "managementPolicy": policy
        },
        "status": {"observedGeneration": 1, "conditions": conditions,
                   "outputSecretName": format!("{name}-digital-channels")}
    })
}

fn ready_env() -> Vec<Value> {
    let mut c = vec![
        condition((
            "ClientRegistered",
            "True",
            "Provisioned",
            "The client is registered.",
            7200,
        )),
        condition((
            "ClientVerified",
            "True",
            "Verified",
            "GWS Auth accepts the client.",
            7200,
        )),
        condition((
            "GapiRegistered",
            "True",
            "Provisioned",
            "nex_gapis holds GWS.",
            7200,
        )),
        condition(("Ready", "True", "Provisioned", "All holds.", 7200)),
    ];
    c.extend(kstatus("True", "Provisioned", false, ""));
    c
}

fn ready_tenant(designer: (&str, &str), policy_reason: &str) -> Vec<Value> {
    let r = policy_reason;
    let mut c = vec![
        condition((
            "ContactCenterResolved",
            "True",
            r,
            "Contact center found.",
            3600,
        )),
        condition((
            "ChatServiceRegistered",
            "True",
            r,
            "chatservice-uri is set.",
            3600,
        )),
        condition((
            "TenantProvisioned",
            "True",
            r,
            "The Nexus tenant exists.",
            3600,
        )),
        condition(("Ready", "True", r, "The tenant is provisioned.", 3600)),
        condition((
            "DesignerEnvConfigured",
            designer.0,
            designer.1,
            "In Agent Setup set DesignerEnv baseurl=/nexus/v1, then annotate the tenant.",
            3600,
        )),
        condition((
            "EnvironmentReady",
            "True",
            "Verified",
            "prod is Ready.",
            3600,
        )),
    ];
    c.extend(kstatus("True", r, false, ""));
    c
}

/// Everything Ready; one tenant observed, one waiting for the DesignerEnv step by hand.
pub fn healthy() -> (Vec<Value>, Vec<Value>) {
    let envs = vec![env_json("prod", "Manage", ready_env(), None)];
    let tenants = vec![
        tenant_json(
            "t100",
            "prod",
            "Manage",
            ready_tenant(("True", "Acknowledged"), "Provisioned"),
        ),
        tenant_json(
            "t200",
            "prod",
            "Observe",
            ready_tenant(("False", "ManualStepRequired"), "InSync"),
        ),
    ];
    (envs, tenants)
}

/// Steps `[type, status, reason, message]` that flipped `ago` seconds before now, then a
/// False Ready with `reason` and `message`, and the kstatus pair.
fn failing(steps: &[[&str; 4]], ready: (&str, &str), stalled: bool, ago: i64) -> Vec<Value> {
    let (reason, message) = ready;
    let mut c: Vec<Value> = steps
        .iter()
        .map(|s| condition((s[0], s[1], s[2], s[3], ago)))
        .collect();
    c.push(condition(("Ready", "False", reason, message, ago)));
    c.extend(kstatus("False", reason, stalled, message));
    c
}

/// The environment refused by GWS Auth (retried), a Ready tenant that says so, a tenant
/// whose contact center does not exist, and a tenant of an environment that does not.
pub fn broken(retry_at: &str) -> (Vec<Value>, Vec<Value>) {
    let refused = "GWS Auth refused the ops credentials of Secret gws-ops (401). Check the username and password in it.";
    let env = failing(
        &[
            ["ClientRegistered", "False", "Unauthorized", refused],
            [
                "ClientVerified",
                "Unknown",
                "Pending",
                "Waits for ClientRegistered.",
            ],
            [
                "GapiRegistered",
                "Unknown",
                "Pending",
                "Waits for ClientVerified.",
            ],
        ],
        ("Unauthorized", &format!("ClientRegistered: {refused}")),
        true,
        1200,
    );
    let mut t100 = ready_tenant(("True", "Acknowledged"), "Provisioned");
    t100.retain(|c| c["type"] != "EnvironmentReady");
    let waiting = "DigitalChannelsEnvironment prod is not Ready yet (Unauthorized).";
    t100.push(condition((
        "EnvironmentReady",
        "False",
        "WaitingForEnvironment",
        waiting,
        1200,
    )));
    let nowhere =
        "DigitalChannelsEnvironment staging does not exist in namespace digital-channels.";
    let t400 = failing(
        &[[
            "EnvironmentReady",
            "False",
            "WaitingForEnvironment",
            nowhere,
        ]],
        ("WaitingForEnvironment", nowhere),
        false,
        90,
    );
    let envs = vec![env_json("prod", "Manage", env, Some(retry_at))];
    let tenants = vec![
        tenant_json("t100", "prod", "Manage", t100),
        tenant_json("t300", "prod", "Manage", unknown_contact_center()),
        tenant_json("t400", "staging", "Manage", t400),
    ];
    (envs, tenants)
}

/// A tenant whose contact center domain matches none.
fn unknown_contact_center() -> Vec<Value> {
    let unknown = "No contact center has the domain t300; the known domains are t100, t200.";
    let pending = "Waits for ContactCenterResolved.";
    failing(
        &[
            [
                "ContactCenterResolved",
                "False",
                "ContactCenterNotFound",
                unknown,
            ],
            ["ChatServiceRegistered", "Unknown", "Pending", pending],
            ["TenantProvisioned", "Unknown", "Pending", pending],
        ],
        (
            "ContactCenterNotFound",
            &format!("ContactCenterResolved: {unknown}"),
        ),
        true,
        300,
    )
}

fn typed(
    (envs, tenants): (Vec<Value>, Vec<Value>),
) -> (Vec<DigitalChannelsEnvironment>, Vec<DigitalChannelsTenant>) {
    let envs = envs.into_iter().map(|e| serde_json::from_value(e).unwrap());
    let tenants = tenants
        .into_iter()
        .map(|t| serde_json::from_value(t).unwrap());
    (envs.collect(), tenants.collect())
}

fn shown(estate_of: (Vec<Value>, Vec<Value>), name: Option<&str>, format: Format) -> String {
    let (envs, tenants) = typed(estate_of);
    let selection = Selection {
        name: name.map(str::to_string),
    };
    let estate = estate(&envs, &tenants, &selection).expect("something selected");
    render(&estate, format, now(), false)
}

const HEALTHY: &str = "\
NAME                              READY   REASON               STATE     POLICY    AGE    MESSAGE
DigitalChannelsEnvironment/prod   True    Provisioned          Current   Manage    120m
├─ ClientRegistered               True    Provisioned                              120m
├─ ClientVerified                 True    Verified                                 120m
├─ GapiRegistered                 True    Provisioned                              120m
├─ DigitalChannelsTenant/t100     True    Provisioned          Current   Manage    60m
│  ├─ EnvironmentReady            True    Verified                                 60m
│  ├─ ContactCenterResolved       True    Provisioned                              60m
│  ├─ ChatServiceRegistered       True    Provisioned                              60m
│  ├─ TenantProvisioned           True    Provisioned                              60m
│  └─ DesignerEnvConfigured       True    Acknowledged                             60m
└─ DigitalChannelsTenant/t200     True    InSync               Current   Observe   60m
   │  to do: DesignerEnvConfigured: set it as the message says, then annotate the tenant
   ├─ EnvironmentReady            True    Verified                                 60m
   ├─ ContactCenterResolved       True    InSync                                   60m
   ├─ ChatServiceRegistered       True    InSync                                   60m
   ├─ TenantProvisioned           True    InSync                                   60m
   └─ DesignerEnvConfigured       False   ManualStepRequired                       60m    In Agent Setup set DesignerEnv baseurl=/nexus/v1, then annotate the tenant.
";

#[test]
fn a_healthy_estate_in_text() {
    let text = shown(healthy(), None, Format::Text);
    assert_eq!(text, HEALTHY, "\n{text}");
    let (envs, tenants) = typed(healthy());
    assert!(
        estate(&envs, &tenants, &Selection::default())
            .unwrap()
            .ready
    );
}

/// The retry time of [`broken`] here: 4 min 10 s after [`NOW`].
fn retry_at() -> String {
    ago(-250)
}

const BROKEN: &str = "\
NAME                                 READY     REASON                  STATE         POLICY   AGE   MESSAGE
DigitalChannelsEnvironment/prod      False     Unauthorized            Stalled       Manage   20m   ClientRegistered: GWS Auth refused the ops credentials of Secret gws-ops (401). Check the username a…
│  to do: fix the Secret named in the message (ops user, tenant user, database URL)
│  next retry: in 4m10s
├─ ClientRegistered                  False     Unauthorized                                   20m   GWS Auth refused the ops credentials of Secret gws-ops (401). Check the username and password in it.
├─ ClientVerified                    Unknown   Pending                                        20m   Waits for ClientRegistered.
├─ GapiRegistered                    Unknown   Pending                                        20m   Waits for ClientVerified.
├─ DigitalChannelsTenant/t100        True      Provisioned             Current       Manage   60m
│  │  to do: EnvironmentReady: fix the environment; the tenant proceeds at once when it turns Ready
│  ├─ EnvironmentReady               False     WaitingForEnvironment                          20m   DigitalChannelsEnvironment prod is not Ready yet (Unauthorized).
│  ├─ ContactCenterResolved          True      Provisioned                                    60m
│  ├─ ChatServiceRegistered          True      Provisioned                                    60m
│  ├─ TenantProvisioned              True      Provisioned                                    60m
│  └─ DesignerEnvConfigured          True      Acknowledged                                   60m
└─ DigitalChannelsTenant/t300        False     ContactCenterNotFound   Stalled       Manage   5m    ContactCenterResolved: No contact center has the domain t300; the known domains are t100, t200.
   │  to do: fix contactCenterId / contactCenterDomain, or provision the tenant in GWS
   ├─ ContactCenterResolved          False     ContactCenterNotFound                          5m    No contact center has the domain t300; the known domains are t100, t200.
   ├─ ChatServiceRegistered          Unknown   Pending                                        5m    Waits for ContactCenterResolved.
   └─ TenantProvisioned              Unknown   Pending                                        5m    Waits for ContactCenterResolved.

DigitalChannelsEnvironment/staging   -         NotFound                -             -        -     missing environment: no DigitalChannelsEnvironment staging in namespace digital-channels
│  to do: create DigitalChannelsEnvironment staging in namespace digital-channels, or point these tenants' environmentRef at one that exists
└─ DigitalChannelsTenant/t400        False     WaitingForEnvironment   Reconciling   Manage   90s   DigitalChannelsEnvironment staging does not exist in namespace digital-channels.
   │  to do: fix the environment; the tenant proceeds at once when it turns Ready
   └─ EnvironmentReady               False     WaitingForEnvironment                          90s   DigitalChannelsEnvironment staging does not exist in namespace digital-channels.
";

#[test]
fn a_broken_estate_in_text() {
    let text = shown(broken(&retry_at()), None, Format::Text);
    assert_eq!(text, BROKEN, "\n{text}");
    let (envs, tenants) = typed(broken(&retry_at()));
    assert!(
        !estate(&envs, &tenants, &Selection::default())
            .unwrap()
            .ready
    );
}

const BROKEN_WIDE: &str = "\
NAME                                 READY     REASON                  STATE         POLICY   AGE   MESSAGE
DigitalChannelsEnvironment/prod      False     Unauthorized            Stalled       Manage   20m   ClientRegistered: GWS Auth refused the ops credentials of Secret gws-ops (401). Check the username and password in it.
│  to do: fix the Secret named in the message (ops user, tenant user, database URL)
│  next retry: in 4m10s (2025-06-01T12:04:10Z)
│  generation 1, observed 1
├─ ClientRegistered                  False     Unauthorized                                   20m   GWS Auth refused the ops credentials of Secret gws-ops (401). Check the username and password in it.
├─ ClientVerified                    Unknown   Pending                                        20m   Waits for ClientRegistered.
├─ GapiRegistered                    Unknown   Pending                                        20m   Waits for ClientVerified.
├─ DigitalChannelsTenant/t100        True      Provisioned             Current       Manage   60m   The tenant is provisioned.
│  │  to do: EnvironmentReady: fix the environment; the tenant proceeds at once when it turns Ready
│  │  generation 1, observed 1; output Secret t100-digital-channels
│  ├─ EnvironmentReady               False     WaitingForEnvironment                          20m   DigitalChannelsEnvironment prod is not Ready yet (Unauthorized).
│  ├─ ContactCenterResolved          True      Provisioned                                    60m   Contact center found.
│  ├─ ChatServiceRegistered          True      Provisioned                                    60m   chatservice-uri is set.
│  ├─ TenantProvisioned              True      Provisioned                                    60m   The Nexus tenant exists.
│  └─ DesignerEnvConfigured          True      Acknowledged                                   60m   In Agent Setup set DesignerEnv baseurl=/nexus/v1, then annotate the tenant.
└─ DigitalChannelsTenant/t300        False     ContactCenterNotFound   Stalled       Manage   5m    ContactCenterResolved: No contact center has the domain t300; the known domains are t100, t200.
   │  to do: fix contactCenterId / contactCenterDomain, or provision the tenant in GWS
   │  generation 1, observed 1; output Secret t300-digital-channels
   ├─ ContactCenterResolved          False     ContactCenterNotFound                          5m    No contact center has the domain t300; the known domains are t100, t200.
   ├─ ChatServiceRegistered          Unknown   Pending                                        5m    Waits for ContactCenterResolved.
   └─ TenantProvisioned              Unknown   Pending                                        5m    Waits for ContactCenterResolved.

DigitalChannelsEnvironment/staging   -         NotFound                -             -        -     missing environment: no DigitalChannelsEnvironment staging in namespace digital-channels
│  to do: create DigitalChannelsEnvironment staging in namespace digital-channels, or point these tenants' environmentRef at one that exists
└─ DigitalChannelsTenant/t400        False     WaitingForEnvironment   Reconciling   Manage   90s   DigitalChannelsEnvironment staging does not exist in namespace digital-channels.
   │  to do: fix the environment; the tenant proceeds at once when it turns Ready
   │  generation 1, observed 1; output Secret t400-digital-channels
   └─ EnvironmentReady               False     WaitingForEnvironment                          90s   DigitalChannelsEnvironment staging does not exist in namespace digital-channels.
";

#[test]
fn a_broken_estate_wide() {
    let text = shown(broken(&retry_at()), None, Format::Wide);
    assert_eq!(text, BROKEN_WIDE, "\n{text}");
}

fn names(estate: &super::model::Estate) -> Vec<String> {
    estate
        .environments
        .iter()
        .flat_map(|g| {
            let env = format!(
                "{}{}",
                g.name,
                if g.context_only { " (context)" } else { "" }
            );
            std::iter::once(env).chain(g.tenants.iter().map(|t| format!("  {}", t.name)))
        })
        .collect()
}

#[test]
fn name_selects_an_environment_with_its_tenants_or_a_tenant_under_its_environment() {
    let (envs, tenants) = typed(broken(&retry_at()));
    let select = |name: Option<&str>| {
        let selection = Selection {
            name: name.map(str::to_string),
        };
        estate(&envs, &tenants, &selection).map(|e| (names(&e), e.ready))
    };
    let everything = ["prod", "  t100", "  t300", "staging", "  t400"];
    for (name, shown, ready) in [
        (None, Some(&everything[..]), false),
        (Some("prod"), Some(&everything[..3]), false),
        // A tenant alone: its environment is context, and not part of the exit code.
        (Some("t100"), Some(&["prod (context)", "  t100"][..]), true),
        (Some("t300"), Some(&["prod (context)", "  t300"][..]), false),
        (
            Some("t400"),
            Some(&["staging (context)", "  t400"][..]),
            false,
        ),
        // A missing environment by its name: shown with its tenants, and not Ready.
        (Some("staging"), Some(&everything[3..]), false),
        (Some("nothing"), None, false),
    ] {
        let got = select(name);
        let expected = shown.map(|s| (s.iter().map(|n| n.to_string()).collect(), ready));
        assert_eq!(got, expected, "{name:?}");
    }
}

#[test]
fn a_tenant_selected_shows_its_environment_as_one_row() {
    let text = shown(broken(&retry_at()), Some("t100"), Format::Text);
    let rows: Vec<&str> = text.lines().map(str::trim_end).collect();
    assert!(
        rows[1].starts_with("DigitalChannelsEnvironment/prod "),
        "{text}"
    );
    assert!(
        rows[2].starts_with("└─ DigitalChannelsTenant/t100 "),
        "{text}"
    );
    assert!(
        !text.contains("─ ClientRegistered"),
        "no step of the context: {text}"
    );
    assert!(!text.contains("to do: fix the Secret"), "{text}");
}

#[test]
fn no_estate_is_ready_and_every_namespace_gets_a_column() {
    let (envs, tenants) = typed(healthy());
    let all = estate(&envs, &tenants, &Selection::default()).unwrap();
    let text = render(&all, Format::Text, now(), true);
    let header = text.lines().next().unwrap();
    assert!(header.starts_with("NAMESPACE          NAME "), "{header}");
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .starts_with("digital-channels   DigitalChannelsEnvironment/prod ")
    );
    let empty = estate(&[], &[], &Selection::default()).unwrap();
    assert!(empty.ready && empty.environments.is_empty());
}

#[test]
fn json_and_yaml_carry_the_model_for_scripts() {
    let (envs, tenants) = typed(broken(&retry_at()));
    let estate = estate(&envs, &tenants, &Selection::default()).unwrap();
    let json: Value = serde_json::from_str(&render(&estate, Format::Json, now(), false)).unwrap();
    let yaml: Value =
        serde_yaml_ng::from_str(&render(&estate, Format::Yaml, now(), false)).unwrap();
    assert_eq!(json, yaml, "the same model either way");
    assert_eq!(json["ready"], false);
    let prod = &json["environments"][0];
    assert_eq!(prod["name"], "prod");
    let env = &prod["environment"];
    assert_eq!(
        (&env["state"], &env["managementPolicy"], &env["nextRetryAt"]),
        (&json!("Stalled"), &json!("Manage"), &json!(retry_at()))
    );
    assert_eq!(env["readyCondition"]["reason"], "Unauthorized");
    assert_eq!(env["conditions"][0]["type"], "ClientRegistered");
    assert!(env["toDo"].as_str().unwrap().starts_with("fix the Secret"));
    let t300 = &prod["tenants"][1];
    assert_eq!(
        (&t300["name"], &t300["ready"]),
        (&json!("t300"), &json!(false))
    );
    let staging = &json["environments"][1];
    assert_eq!(
        staging["environment"],
        Value::Null,
        "the missing environment"
    );
    assert!(
        staging["toDo"]
            .as_str()
            .unwrap()
            .starts_with("create DigitalChannelsEnvironment staging")
    );
    assert_eq!(staging["tenants"][0]["name"], "t400");
}

fn c(type_: &str, status: ConditionStatus, reason: &str) -> Condition {
    Condition::new(type_, status, reason, "")
}

#[test]
fn the_one_thing_to_do() {
    use ConditionStatus::{False, True, Unknown};
    let ready = |status, reason| Some(c("Ready", status, reason));
    let designer = c("DesignerEnvConfigured", False, "ManualStepRequired");
    let restart = c("NexusRestarted", False, "ManualStepRequired");
    let pending = c("TenantProvisioned", Unknown, "Pending");
    let wait = "wait for the operator's first pass; if none comes, check that dc-operator run \
                is running and watches this namespace";
    let cases: Vec<(Option<Condition>, Vec<Condition>, Option<&str>)> = vec![
        (None, vec![], Some(wait)),
        (ready(True, "Provisioned"), vec![], None),
        (ready(True, "InSync"), vec![pending.clone()], None),
        (
            ready(True, "Provisioned"),
            vec![designer],
            Some("DesignerEnvConfigured: set it as the message says, then annotate the tenant"),
        ),
        (
            ready(True, "Provisioned"),
            vec![restart],
            Some("NexusRestarted: restart Nexus and annotate the environment as the message says"),
        ),
        (
            ready(False, "SecretNotFound"),
            vec![],
            Some("create the Secret in the resource's namespace; picked up within seconds"),
        ),
        (
            ready(False, "Suspended"),
            vec![],
            Some("set spec.suspend to false"),
        ),
        (
            ready(Unknown, "Pending"),
            vec![pending],
            Some("look at the condition its message names"),
        ),
        (
            ready(False, "SomethingNew"),
            vec![],
            Some("read the message"),
        ),
    ];
    for (ready, steps, expected) in cases {
        assert_eq!(
            to_do(ready.as_ref(), &steps).as_deref(),
            expected,
            "{ready:?} {steps:?}"
        );
    }
}

#[test]
fn where_a_resource_stands() {
    use ConditionStatus::{False, True};
    let written = |ready: Condition, kstatus: [(&str, ConditionStatus); 2]| {
        let mut conditions = vec![ready];
        conditions.extend(kstatus.iter().map(|(t, s)| c(t, *s, "x")));
        conditions
    };
    let ready = c("Ready", True, "Provisioned");
    let failing = c("Ready", False, "Unauthorized");
    let transient = c("Ready", False, "UpstreamUnavailable");
    let current = [("Reconciling", False), ("Stalled", False)];
    let cases: Vec<(Vec<Condition>, Option<i64>, bool, State)> = vec![
        (
            written(ready.clone(), current),
            Some(1),
            false,
            State::Current,
        ),
        (
            written(failing.clone(), [("Reconciling", False), ("Stalled", True)]),
            Some(1),
            false,
            State::Stalled,
        ),
        (
            written(
                transient.clone(),
                [("Reconciling", True), ("Stalled", False)],
            ),
            Some(1),
            false,
            State::Reconciling,
        ),
        // Not written yet: derived from Ready as the controllers would.
        (vec![failing.clone()], Some(1), false, State::Stalled),
        (vec![transient], Some(1), false, State::Reconciling),
        (vec![], Some(1), false, State::Reconciling),
        // A spec the operator has not acted on yet.
        (
            written(ready.clone(), current),
            Some(0),
            false,
            State::Reconciling,
        ),
        (
            vec![ready.clone(), c("Suspended", True, "Suspended")],
            Some(1),
            false,
            State::Suspended,
        ),
        (written(ready, current), Some(1), true, State::Deleting),
    ];
    for (conditions, observed, deleting, expected) in cases {
        assert_eq!(
            state_of(&conditions, observed, deleting),
            expected,
            "{conditions:?} observed {observed:?}"
        );
    }
}

/// The state of a tenant of generation 1 with these conditions.
fn state_of(conditions: &[Condition], observed: Option<i64>, deleting: bool) -> State {
    let meta = kube::api::ObjectMeta {
        name: Some("t".into()),
        generation: Some(1),
        deletion_timestamp: deleting
            .then(|| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now())),
        ..Default::default()
    };
    super::model::resource(super::model::Observed {
        kind: "DigitalChannelsTenant",
        meta: &meta,
        policy: crate::api::ManagementPolicy::Manage,
        suspend: false,
        observed_generation: observed,
        conditions,
        next_retry_at: None,
    })
    .state
}

#[test]
fn a_ready_resource_has_no_next_retry_to_show() {
    let conditions = [c("Ready", ConditionStatus::True, "Provisioned")];
    let meta = kube::api::ObjectMeta::default();
    let stale = "2025-06-01T11:00:00Z".to_string();
    let shown = super::model::resource(super::model::Observed {
        kind: "DigitalChannelsTenant",
        meta: &meta,
        policy: crate::api::ManagementPolicy::Manage,
        suspend: false,
        observed_generation: None,
        conditions: &conditions,
        next_retry_at: Some(&stale),
    });
    assert_eq!(shown.next_retry_at, None);
}

#[test]
fn ages_as_kubectl_writes_them() {
    for (seconds, age) in [
        (-5, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (250, "4m10s"),
        (600, "10m"),
        (7200, "120m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 1800, "3h30m"),
        (9 * 3600, "9h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (50 * 3600, "2d2h"),
        (8 * 86_400, "8d"),
        (729 * 86_400, "729d"),
        (730 * 86_400, "2y"),
        (800 * 86_400, "2y70d"),
        (3000 * 86_400, "8y"),
    ] {
        assert_eq!(human_duration(seconds), age, "{seconds}");
    }
}

#[test]
fn the_docs_show_both_estates_as_they_are_drawn() {
    let docs = include_str!("../../../docs/status.md");
    assert!(docs.contains(HEALTHY), "docs/status.md: the healthy estate");
    assert!(docs.contains(BROKEN), "docs/status.md: the broken estate");
}
