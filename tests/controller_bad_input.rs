//! Bad input only the controllers can judge: each row's condition, no hot loop, no secret,
//! and the good resources beside them unblocked. Its own test binary: the pass counter is a
//! global tracing subscriber, which a thread-scoped one in a shared binary is not reliably
//! (another test's thread can cache a callsite's interest as "never").

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::fake_apiserver::ResourceKey;
use common::operator::{Harness, NS, WAIT, conditions};
use common::{environment, tenant};
use digital_channels_operator::api::conditions::{ConditionStatus, find};
use digital_channels_operator::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use digital_channels_operator::simulator::{DEMO_CC_T100, SimulatorConfig};

/// Counts the operator's passes per resource: the `reconcile` span that every pass opens,
/// named by kind and resource. Installed as the test thread's subscriber; the operator's
/// tasks run on that thread (`#[tokio::test]` is single-threaded).
#[derive(Clone, Default)]
struct PassCounter(Arc<std::sync::Mutex<Passes>>);

#[derive(Default)]
struct Passes {
    /// Passes begun, by `kind/name`.
    begun: BTreeMap<String, u64>,
    /// The longest pass that ended, by `kind/name`.
    longest: BTreeMap<String, Duration>,
    /// Passes in flight, by span id.
    open: std::collections::HashMap<u64, (String, std::time::Instant)>,
}

impl PassCounter {
    fn passes(&self, kind: &str, name: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .begun
            .get(&format!("{kind}/{name}"))
            .copied()
            .unwrap_or(0)
    }

    fn longest(&self, kind: &str, name: &str) -> Duration {
        self.0
            .lock()
            .unwrap()
            .longest
            .get(&format!("{kind}/{name}"))
            .copied()
            .unwrap_or_default()
    }

    fn all(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap().begun.clone()
    }

    /// Passes begun longer than `bound` ago that have not ended.
    fn hanging(&self, bound: Duration) -> Vec<String> {
        let passes = self.0.lock().unwrap();
        passes
            .open
            .values()
            .filter(|(_, started)| started.elapsed() > bound)
            .map(|(key, started)| format!("{key} for {:?}", started.elapsed()))
            .collect()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PassCounter {
    fn on_close(&self, id: tracing::span::Id, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        let mut passes = self.0.lock().unwrap();
        if let Some((key, started)) = passes.open.remove(&id.into_u64()) {
            let longest = passes.longest.entry(key).or_default();
            *longest = (*longest).max(started.elapsed());
        }
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = attrs.metadata();
        if meta.name() != "reconcile" || !meta.target().starts_with("digital_channels_operator") {
            return;
        }
        #[derive(Default)]
        struct Names {
            kind: String,
            resource: String,
        }
        impl tracing::field::Visit for Names {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                match field.name() {
                    "kind" => self.kind = format!("{value:?}"),
                    "resource" => self.resource = format!("{value:?}"),
                    _ => {}
                }
            }
        }
        let mut names = Names::default();
        attrs.record(&mut names);
        let key = format!("{}/{}", names.kind, names.resource);
        let mut passes = self.0.lock().unwrap();
        *passes.begun.entry(key.clone()).or_default() += 1;
        passes
            .open
            .insert(id.into_u64(), (key, std::time::Instant::now()));
    }
}

/// A change to a sample resource, one per row.
type Edit<K> = Box<dyn Fn(&mut K)>;

/// A port on loopback that nothing listens on: connecting is refused at once.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One bad input and what the user sees: `condition` of the resource `name` has `status`,
/// `reason` and a message with every one of `message`. `retries`: a failure whose fix may
/// come from outside the cluster (an upstream down, or refusing until fixed there) is retried
/// on the backoff; one whose fix is a change in the cluster waits for that change.
struct BadInputRow {
    what: &'static str,
    kind: &'static str,
    name: &'static str,
    condition: &'static str,
    status: ConditionStatus,
    reason: &'static str,
    message: Vec<String>,
    retries: bool,
}

fn row(
    what: &'static str,
    kind: &'static str,
    name: &'static str,
    (condition, reason): (&'static str, &'static str),
    message: &[&str],
    retries: bool,
) -> BadInputRow {
    BadInputRow {
        what,
        kind,
        name,
        condition,
        status: ConditionStatus::False,
        reason,
        message: message.iter().map(|m| m.to_string()).collect(),
        retries,
    }
}

/// Secret values the rows use: none may appear in any condition.
const BAD_INPUT_SECRETS: [&str; 3] = [
    "wrong-ops-password-4711",
    "wrong-tenant-password-4711",
    "db-password-4711",
];

/// How long the passes are counted once every row shows its condition.
const QUIET_WINDOW: Duration = Duration::from_secs(3);

#[tokio::test]
async fn bad_input_only_the_controllers_can_judge_is_a_condition_without_a_hot_loop() {
    let counter = PassCounter::default();
    {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(counter.clone());
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    }
    // The demo's contact centers, cc0..cc4, and two that share the domain `shared`.
    let mut seed = digital_channels_operator::simulator::Seed::with_contact_centers(5);
    for i in [100, 101] {
        let id = digital_channels_operator::simulator::generated_contact_center(i);
        seed.contact_centers
            .push(digital_channels_operator::simulator::ContactCenter {
                id,
                environment_id: digital_channels_operator::simulator::DEMO_ENVIRONMENT_ID
                    .to_string(),
                domains: vec!["shared".to_string()],
            });
    }
    let h = Harness::start_with(SimulatorConfig {
        seed,
        ..SimulatorConfig::default()
    })
    .await;
    let refused_auth = closed_port();
    let refused_db = closed_port();
    h.secret("ops-username-only", &[("username", "ops")]);
    h.secret(
        "ops-wrong-password",
        &[("username", "ops"), ("password", BAD_INPUT_SECRETS[0])],
    );
    h.secret(
        "cc1-wrong-password",
        &[("username", "nexus"), ("password", BAD_INPUT_SECRETS[1])],
    );
    h.secret(
        "db-mysql",
        &[(
            "url",
            &format!(
                "mysql://nexus:{}@127.0.0.1:3306/nexus",
                BAD_INPUT_SECRETS[2]
            ),
        )],
    );
    h.secret(
        "db-refused",
        &[(
            "url",
            &format!(
                "postgres://nexus:{}@127.0.0.1:{refused_db}/nexus",
                BAD_INPUT_SECRETS[2]
            ),
        )],
    );
    h.secret("ca-not-pem", &[("ca.crt", "this is not a certificate")]);
    h.secret(
        "ca-broken-pem",
        &[(
            "ca.crt",
            "-----BEGIN CERTIFICATE-----\nMIIB!!not*base64\n-----END CERTIFICATE-----\n",
        )],
    );

    // The environments: each its own client id, so that none is another's rival.
    let sim_url = h.sim.url();
    let environments: Vec<(&str, Edit<DigitalChannelsEnvironment>)> =
        vec![
            ("prod", Box::new(|_| {})),
            (
                "env-no-secret",
                Box::new(|e| e.spec.ops_credentials_secret.name = "no-such-secret".into()),
            ),
            (
                "env-no-key",
                Box::new(|e| e.spec.ops_credentials_secret.name = "ops-username-only".into()),
            ),
            (
                "env-unreachable",
                Box::new(move |e| e.spec.auth_url = format!("http://127.0.0.1:{refused_auth}")),
            ),
            (
                "env-ops-password",
                Box::new(|e| e.spec.ops_credentials_secret.name = "ops-wrong-password".into()),
            ),
            (
                "env-not-postgres",
                Box::new(|e| e.spec.database.url_secret.name = "db-mysql".into()),
            ),
            (
                "env-db-refused",
                Box::new(|e| e.spec.database.url_secret.name = "db-refused".into()),
            ),
            (
                "env-ca-not-pem",
                Box::new(|e| {
                    e.spec.tls = Some(serde_json::from_value(
                    serde_json::json!({"caSecret": {"name": "ca-not-pem", "key": "ca.crt"}}),
                ).unwrap())
                }),
            ),
            (
                "env-ca-broken",
                Box::new(|e| {
                    e.spec.tls = Some(serde_json::from_value(
                    serde_json::json!({"caSecret": {"name": "ca-broken-pem", "key": "ca.crt"}}),
                ).unwrap())
                }),
            ),
            (
                "env-no-url",
                // The schema's pattern lets it through; no URL parser does.
                Box::new(|e| e.spec.auth_url = "http://[::1".into()),
            ),
        ];
    for (name, edit) in &environments {
        let mut env = environment(&sim_url);
        env.metadata.uid = None;
        env.metadata.name = Some(name.to_string());
        if *name != "prod" {
            env.spec.client.id = format!("client-{name}");
        }
        edit(&mut env);
        h.api.apply_as(&env);
    }

    // The tenants, on `prod` unless the row is about the environment.
    let tenants: Vec<(&str, Edit<DigitalChannelsTenant>)> = vec![
        (
            "dct-no-env",
            Box::new(|t| t.spec.environment_ref.name = "nowhere".into()),
        ),
        (
            "dct-env-not-ready",
            Box::new(|t| t.spec.environment_ref.name = "env-no-secret".into()),
        ),
        (
            "dct-no-secret",
            // A contact center of its own: the Secret is read by the step that needs it.
            Box::new(|t| {
                t.spec.contact_center_domain = Some("cc3".into());
                t.spec.credentials_secret.name = "no-such-user".into();
            }),
        ),
        (
            "dct-no-key",
            Box::new(|t| {
                t.spec.contact_center_domain = Some("cc4".into());
                t.spec.credentials_secret.username_key = "login".into();
            }),
        ),
        (
            "dct-password",
            Box::new(|t| {
                t.spec.contact_center_domain = Some("cc1".into());
                t.spec.credentials_secret.name = "cc1-wrong-password".into();
            }),
        ),
        (
            "dct-unknown-domain",
            Box::new(|t| t.spec.contact_center_domain = Some("t999".into())),
        ),
        (
            "dct-unknown-id",
            Box::new(|t| {
                t.spec.contact_center_domain = None;
                t.spec.contact_center_id =
                    Some(digital_channels_operator::simulator::generated_contact_center(999));
            }),
        ),
        (
            "dct-ambiguous",
            Box::new(|t| t.spec.contact_center_domain = Some("shared".into())),
        ),
    ];
    let new_tenant = |name: &str, edit: &dyn Fn(&mut DigitalChannelsTenant)| {
        // Its own domain (unknown to GWS) unless the row sets one: no two claim one.
        let mut t = tenant(name, name, false);
        t.metadata.uid = None;
        t.spec.credentials_secret.name = "t100-user".into();
        edit(&mut t);
        t
    };
    for (name, edit) in &tenants {
        h.api.apply_as(&new_tenant(name, edit.as_ref()));
    }
    // The good tenant, beside them all.
    h.tenant(|_| {});
    h.both_ready().await;
    // Claims on what t100 holds, once it holds them.
    let rivals: Vec<(&str, Edit<DigitalChannelsTenant>)> = vec![
        (
            "dct-same-cc",
            Box::new(|t| {
                t.spec.contact_center_domain = None;
                t.spec.contact_center_id = Some(DEMO_CC_T100.into());
            }),
        ),
        (
            "dct-same-name",
            Box::new(|t| t.spec.tenant_name = "t100".into()),
        ),
    ];
    for (name, edit) in &rivals {
        h.api.apply_as(&new_tenant(name, edit.as_ref()));
    }

    let ready = "Ready";
    let rows = vec![
        row(
            "ops Secret missing",
            "dce",
            "env-no-secret",
            ("ClientRegistered", "SecretNotFound"),
            &["Secret no-such-secret (GWS ops credentials) does not exist"],
            false,
        ),
        row(
            "ops Secret without the password key",
            "dce",
            "env-no-key",
            ("ClientRegistered", "SecretKeyMissing"),
            &["Secret ops-username-only (GWS ops credentials) has no key password"],
            false,
        ),
        row(
            "GWS Auth unreachable (nothing listens on the port)",
            "dce",
            "env-unreachable",
            ("ClientRegistered", "UpstreamUnavailable"),
            &["GWS Auth", &format!("127.0.0.1:{refused_auth}")],
            true,
        ),
        row(
            "wrong ops password",
            "dce",
            "env-ops-password",
            ("ClientRegistered", "Unauthorized"),
            &[
                "GWS Auth",
                "Check the ops user in Secret ops-wrong-password",
            ],
            true,
        ),
        row(
            "database URL not PostgreSQL (mysql://)",
            "dce",
            "env-not-postgres",
            ("GapiRegistered", "InvalidSecret"),
            &[
                "Secret dc/db-mysql key url (Nexus database URL)",
                "must start with postgres:// or postgresql://",
            ],
            false,
        ),
        row(
            "database unreachable (nothing listens on the port)",
            "dce",
            "env-db-refused",
            ("GapiRegistered", "UpstreamUnavailable"),
            &[
                "Nexus database",
                "refused",
                "(database URL from Secret dc/db-refused key url)",
            ],
            true,
        ),
        row(
            "CA bundle that is not PEM",
            "dce",
            "env-ca-not-pem",
            ("ClientRegistered", "InvalidSecret"),
            &[
                "Secret ca-not-pem key ca.crt (CA bundle, spec.tls.caSecret)",
                "holds no PEM certificate",
            ],
            false,
        ),
        row(
            "CA bundle with a broken certificate",
            "dce",
            "env-ca-broken",
            ("ClientRegistered", "InvalidSecret"),
            &[
                "Secret ca-broken-pem key ca.crt (CA bundle, spec.tls.caSecret)",
                "is not valid PEM",
            ],
            false,
        ),
        row(
            "authUrl the schema's pattern lets through but no URL parser reads (`http://[::1`)",
            "dce",
            "env-no-url",
            (ready, "InvalidSpec"),
            &["spec.authUrl must be an http:// or https:// URL"],
            false,
        ),
        row(
            "environment missing",
            "dct",
            "dct-no-env",
            (ready, "WaitingForEnvironment"),
            &["DigitalChannelsEnvironment nowhere does not exist in namespace dc"],
            false,
        ),
        row(
            "environment not Ready (its ops Secret is missing)",
            "dct",
            "dct-env-not-ready",
            (ready, "WaitingForEnvironment"),
            &["DigitalChannelsEnvironment env-no-secret is not Ready yet (SecretNotFound)"],
            false,
        ),
        row(
            "tenant user's Secret missing",
            "dct",
            "dct-no-secret",
            ("TenantProvisioned", "SecretNotFound"),
            &["Secret no-such-user", "does not exist"],
            false,
        ),
        row(
            "tenant user's Secret without the username key",
            "dct",
            "dct-no-key",
            ("TenantProvisioned", "SecretKeyMissing"),
            &["Secret t100-user", "has no key login"],
            false,
        ),
        row(
            "wrong tenant password",
            "dct",
            "dct-password",
            ("TenantProvisioned", "Unauthorized"),
            &["cc1-wrong-password"],
            true,
        ),
        row(
            "unknown contact center domain",
            "dct",
            "dct-unknown-domain",
            ("ContactCenterResolved", "ContactCenterNotFound"),
            &["no contact center has domain t999", DEMO_CC_T100],
            true,
        ),
        row(
            "unknown contact center id",
            "dct",
            "dct-unknown-id",
            ("ContactCenterResolved", "ContactCenterNotFound"),
            &[&format!(
                "contact center {} does not exist in GWS",
                digital_channels_operator::simulator::generated_contact_center(999)
            )],
            true,
        ),
        row(
            "ambiguous contact center domain",
            "dct",
            "dct-ambiguous",
            ("ContactCenterResolved", "AmbiguousContactCenter"),
            &[
                "2 contact centers have domain shared",
                "set spec.contactCenterId",
            ],
            true,
        ),
        row(
            "contact center another tenant holds",
            "dct",
            "dct-same-cc",
            (ready, "Conflict"),
            &[
                "DigitalChannelsTenant dc/t100 already uses the contact center",
                DEMO_CC_T100,
            ],
            true,
        ),
        row(
            "tenant name another tenant holds",
            "dct",
            "dct-same-name",
            (ready, "Conflict"),
            &["DigitalChannelsTenant dc/t100 already uses the tenant name t100"],
            true,
        ),
    ];

    // Every row shows its condition.
    let mut seen = BTreeMap::new();
    for r in &rows {
        let found = h
            .api
            .wait_for(WAIT, |api| {
                let conditions = match r.kind {
                    "dce" => {
                        api.get_as::<DigitalChannelsEnvironment>(NS, r.name)?
                            .status?
                            .conditions
                    }
                    _ => {
                        api.get_as::<DigitalChannelsTenant>(NS, r.name)?
                            .status?
                            .conditions
                    }
                };
                let c = find(&conditions, r.condition)?;
                let ready = find(&conditions, "Ready")?;
                (c.status == r.status && c.reason == r.reason).then(|| (c.clone(), ready.clone()))
            })
            .await;
        let Some((c, ready)) = found else {
            let now = match r.kind {
                "dce" => format!(
                    "{:#?}",
                    h.api.get_as::<DigitalChannelsEnvironment>(NS, r.name)
                ),
                _ => format!("{:#?}", h.api.get_as::<DigitalChannelsTenant>(NS, r.name)),
            };
            panic!(
                "{} {}: never {}={:?} {}; it has {now}",
                r.kind, r.name, r.condition, r.status, r.reason
            );
        };
        for words in &r.message {
            assert!(
                c.message.contains(words.as_str()),
                "{}: {:?} lacks {words:?}",
                r.what,
                c.message
            );
        }
        assert_eq!(
            (ready.status, ready.reason.as_str()),
            (ConditionStatus::False, r.reason),
            "{}: Ready says why",
            r.what
        );
        for secret in BAD_INPUT_SECRETS {
            assert!(
                !c.message.contains(secret) && !ready.message.contains(secret),
                "{}: a secret in {:?}",
                r.what,
                c.message
            );
        }
        seen.insert(r.name, (c, ready));
    }

    let events = serde_json::to_string(
        &h.api
            .objects(&ResourceKey::new("events.k8s.io", "v1", "events"), Some(NS)),
    )
    .unwrap();
    for secret in BAD_INPUT_SECRETS {
        assert!(!events.contains(secret), "a secret in an event");
    }

    // No hot loop: once every row shows its condition, count the passes.
    let passes_before: BTreeMap<&str, u64> = rows
        .iter()
        .map(|r| (r.name, counter.passes(row_kind(r.kind), r.name)))
        .collect();
    let good_before = counter.passes("DigitalChannelsTenant", "t100");
    let calls_before: u64 = h.sim.handle.snapshot().calls.values().sum();
    tokio::time::sleep(QUIET_WINDOW).await;
    let calls_during: u64 = h.sim.handle.snapshot().calls.values().sum::<u64>() - calls_before;
    // Backoff doubles up to max_backoff (1 s here), jittered by at most -20 %.
    let retry_bound = (QUIET_WINDOW.as_secs_f64() / 0.8).floor() as u64 + 1;
    let mut report = Vec::new();
    for r in &rows {
        let during = counter.passes(row_kind(r.kind), r.name) - passes_before[r.name];
        let bound = if r.retries { retry_bound } else { 0 };
        let longest = counter.longest(row_kind(r.kind), r.name);
        report.push(format!(
            "{} {}: {during} passes, longest {longest:.1?}",
            r.kind, r.name
        ));
        // No pass hangs: the longest is the database pool's (10 s to acquire, then 3 s to
        // tell why not).
        assert!(
            longest < Duration::from_secs(15),
            "{}: a pass took {longest:?}",
            r.what
        );
        assert!(
            during <= bound,
            "{}: {during} passes in {QUIET_WINDOW:?} (bound {bound}); all: {:#?}",
            r.what,
            counter.all()
        );
    }
    let hanging = counter.hanging(Duration::from_secs(15));
    assert!(hanging.is_empty(), "passes that never end: {hanging:?}");
    assert_eq!(
        counter.passes("DigitalChannelsTenant", "t100"),
        good_before,
        "the Ready tenant is left alone"
    );
    println!(
        "passes in {QUIET_WINDOW:?}: {}; simulator calls: {calls_during}",
        report.join(", ")
    );
    // A pass that retries makes at most a few calls before its failing step (the database
    // row comes after the client's GET and token); the others make none.
    let retrying_passes: u64 = rows
        .iter()
        .filter(|r| r.retries)
        .map(|r| counter.passes(row_kind(r.kind), r.name) - passes_before[r.name])
        .sum();
    assert!(
        calls_during <= 4 * retrying_passes,
        "{calls_during} upstream calls for {retrying_passes} retrying passes"
    );

    // Not blocked, not crashed: the good tenant is still Ready, and a new one becomes Ready
    // as fast as ever.
    assert!(!h.task.is_finished(), "the operator is still running");
    assert_eq!(
        find(&conditions(&h.get_tenant().unwrap()), "Ready")
            .unwrap()
            .status,
        ConditionStatus::True
    );
    let started = std::time::Instant::now();
    h.api.apply_as(&new_tenant("late", &|t| {
        t.spec.contact_center_domain = Some("cc2".into())
    }));
    let late = h
        .api
        .wait_for(WAIT, |api| {
            let t = api.get_as::<DigitalChannelsTenant>(NS, "late")?;
            let ready = find(&t.status?.conditions, "Ready")?.clone();
            (ready.status == ConditionStatus::True).then_some(ready)
        })
        .await;
    assert!(
        late.is_some(),
        "a tenant created beside the bad ones becomes Ready"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "and soon: {:?}",
        started.elapsed()
    );
    println!(
        "a new tenant beside them: Ready in {:.1?}",
        started.elapsed()
    );

    if std::env::var("DC_PRINT_BAD_INPUT").as_deref() == Ok("1") {
        println!("| # | kind | bad input | condition | reason | message |");
        println!("| --- | --- | --- | --- | --- | --- |");
        for (i, r) in rows.iter().enumerate() {
            let (c, _) = &seen[r.name];
            println!(
                "| {} | `{}` | {} | `{}={:?}` | `{}` | {} |",
                i + 1,
                r.kind,
                r.what,
                c.type_,
                c.status,
                c.reason,
                c.message.replace('|', "\\|")
            );
        }
    }
    h.stop().await;
}

fn row_kind(short: &str) -> &'static str {
    match short {
        "dce" => "DigitalChannelsEnvironment",
        _ => "DigitalChannelsTenant",
    }
}
