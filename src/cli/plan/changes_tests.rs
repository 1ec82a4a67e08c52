use super::*;
use crate::api::ManagementPolicy;
use crate::runbook::report::{StepError, StepReport};
use crate::secret::SecretString;

fn report(steps: Vec<(Step, Result<Outcome, StepError>)>) -> RunReport {
    RunReport {
        steps: steps
            .into_iter()
            .map(|(step, result)| StepReport {
                step,
                result,
                detail: String::new(),
                duration: std::time::Duration::ZERO,
            })
            .collect(),
        policy: ManagementPolicy::Observe,
    }
}

fn drifted() -> Result<Outcome, StepError> {
    Ok(Outcome::Drifted("d".into()))
}

fn missing() -> Result<Outcome, StepError> {
    Ok(Outcome::Missing("m".into()))
}

fn right() -> Result<Outcome, StepError> {
    Ok(Outcome::AlreadyRight)
}

fn failed(reason: Reason) -> Result<Outcome, StepError> {
    Err(StepError::permanent(reason, "said"))
}

fn empty_plan() -> ResourcePlan {
    let meta = kube::api::ObjectMeta {
        name: Some("x".into()),
        ..Default::default()
    };
    ResourcePlan::new("K", &meta, ManagementPolicy::Manage)
}

/// Each change as `symbol object [field, ...]`, then the errors and notes as counts.
fn said(plan: &ResourcePlan) -> (Vec<String>, usize, usize) {
    let changes = plan
        .changes
        .iter()
        .map(|c| {
            let fields: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
            format!("{} {} {fields:?}", c.action.symbol(), c.object)
        })
        .collect();
    (changes, plan.errors.len(), plan.notes.len())
}

fn wanted() -> ClientRegistration {
    ClientRegistration {
        client_id: "nexus_client".into(),
        secret: SecretString::new("s"),
        description: "managed by dc-operator provision".into(),
        redirect_uri: "https://nexus.example.com".into(),
        previous_redirect_uri: None,
        access_token_expiration_timeout: 43_200,
        refresh_token_expiration_timeout: 2_592_000,
    }
}

fn by_hand() -> OAuthClient {
    OAuthClient {
        client_id: "nexus_client".into(),
        description: Some("made by hand".into()),
        authorized_grant_types: vec!["password".into()],
        redirect_uris: vec!["https://old.example.com".into()],
        ..OAuthClient::default()
    }
}

/// (steps, restarts, changes, errors, notes)
type EnvironmentRow = (
    Vec<(Step, Result<Outcome, StepError>)>,
    bool,
    Vec<String>,
    usize,
    usize,
);

#[test]
#[allow(clippy::too_many_lines)] // one table
fn each_observed_environment_step_is_its_change() {
    let client = "OAuth client nexus_client";
    let row = "nex_gapis row";
    let secret = r#"["client_secret"]"#;
    let all_client = r#"["description", "redirectURIs", "authorizedGrantTypes", "scope", "authorities", "accessTokenExpirationTimeout", "refreshTokenExpirationTimeout", "client_secret"]"#;
    let table: Vec<EnvironmentRow> = vec![
        (
            vec![(Step::ClientRegistered, right()), (Step::GapiRegistered, right())],
            false,
            vec![],
            0,
            0,
        ),
        (
            vec![(Step::ClientRegistered, missing()), (Step::ClientVerified, missing())],
            false,
            vec![format!("+ {client} {all_client}")],
            0,
            0,
        ),
        (
            vec![(Step::ClientRegistered, drifted())],
            false,
            vec![format!(
                r#"~ {client} ["authorizedGrantTypes", "redirectURIs", "description"]"#
            )],
            0,
            0,
        ),
        (
            vec![(Step::ClientVerified, drifted())],
            false,
            vec![format!("~ {client} {secret}")],
            0,
            0,
        ),
        // Two steps that would update the client: one change, both fields.
        (
            vec![(Step::ClientRegistered, drifted()), (Step::ClientVerified, drifted())],
            false,
            vec![format!(
                r#"~ {client} ["authorizedGrantTypes", "redirectURIs", "description", "client_secret"]"#
            )],
            0,
            0,
        ),
        (
            vec![(Step::GapiRegistered, missing())],
            false,
            vec![format!(r#"+ {row} ["url", "clientid", "apikey", "clientsecret"]"#)],
            0,
            1,
        ),
        (
            vec![(Step::GapiRegistered, drifted())],
            true,
            vec![
                format!(r#"~ {row} ["clientsecret"]"#),
                r#"~ Deployment nexus/nexus ["spec.template.metadata.annotations[kubectl.kubernetes.io/restartedAt]"]"#
                    .to_string(),
            ],
            0,
            0,
        ),
        (
            vec![(Step::Credentials, failed(Reason::SecretNotFound))],
            false,
            vec![],
            1,
            0,
        ),
    ];
    let (want, found) = (wanted(), by_hand());
    for (steps, restarts, changes, errors, notes) in table {
        let report = report(steps);
        let sight = EnvironmentSight {
            report: &report,
            client_id: "nexus_client",
            wanted: Some(&want),
            found: Some(&found),
            gws_url: "https://gws.example.com",
            client_secret_name: "prod-nexus-client",
            restarts: restarts.then(|| "nexus/nexus".to_string()),
            applies: true,
        };
        let mut plan = empty_plan();
        environment(&sight, &mut plan);
        assert_eq!(said(&plan), (changes, errors, notes), "{:?}", report.steps);
    }
}

#[test]
fn a_client_field_shows_as_it_is_and_as_it_would_be() {
    let fields = client_fields(&wanted(), &by_hand());
    let shown: Vec<(String, Option<String>, Option<String>)> =
        fields.into_iter().map(|f| (f.name, f.from, f.to)).collect();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        shown,
        [
            (
                "authorizedGrantTypes".to_string(),
                some("[password]"),
                some("[password, refresh_token, client_credentials, authorization_code]")
            ),
            (
                "redirectURIs".to_string(),
                some("[https://old.example.com]"),
                some("[https://old.example.com, https://nexus.example.com]")
            ),
            (
                "description".to_string(),
                some("\"made by hand\""),
                some("\"managed by dc-operator provision\"")
            ),
        ]
    );
}

fn tenant_sight<'a>(report: &'a RunReport, setting: Option<&'a Setting>) -> TenantSight<'a> {
    TenantSight {
        report,
        tenant_name: "t100",
        contact_center: Some("cc"),
        nexus_url: "https://nexus.example.com",
        gws_url: "https://gws.example.com",
        type_: "PureEngage",
        genesys_tenant_id: 1,
        setting,
        ucs_wanted: Some("https://ucs.example.com"),
        ucs_recorded: None,
        output_secret: "t100-digital-channels",
        secrets_at: KUBERNETES,
        applies: false,
        client_pending: false,
        key_rows: None,
    }
}

#[test]
#[allow(clippy::too_many_lines)] // one table
fn each_observed_tenant_step_is_its_change() {
    let chat = "setting chatservice-uri of contact center cc";
    let ucs = "PlatformUCS service of contact center cc";
    let tenant_made = [
        r#"+ Nexus tenant t100 at contact center cc ["name", "type", "backendurl", "genesystemenantid", "token"]"#.to_string(),
        r#"+ Secret t100-digital-channels ["xapikey", "contactCenterId", "tenantName", "nexusUrl"]"#.to_string(),
    ];
    let token = |r| (Step::TenantToken, failed(r));
    // (steps, setting found, UCS recorded, client pending, key rows, changes, errors, notes)
    type Row = (
        Vec<(Step, Result<Outcome, StepError>)>,
        bool,
        Option<&'static str>,
        bool,
        Option<usize>,
        Vec<String>,
        usize,
        usize,
    );
    let table: Vec<Row> = vec![
        (
            vec![(Step::ChatServiceRegistered, right())],
            false,
            None,
            false,
            None,
            vec![],
            0,
            0,
        ),
        (
            vec![(Step::ChatServiceRegistered, missing())],
            false,
            None,
            false,
            None,
            vec![format!(r#"+ {chat} ["value", "location", "shared"]"#)],
            0,
            0,
        ),
        (
            vec![(Step::ChatServiceRegistered, drifted())],
            true,
            None,
            false,
            None,
            vec![format!(r#"~ {chat} ["value", "location"]"#)],
            0,
            0,
        ),
        (
            vec![(Step::UcsRegistered, Ok(Outcome::NotObservable("n".into())))],
            false,
            None,
            false,
            None,
            vec![format!(r#"+ {ucs} ["url"]"#)],
            0,
            0,
        ),
        (
            vec![(Step::UcsRegistered, drifted())],
            false,
            Some("https://old-ucs.example.com"),
            false,
            None,
            vec![format!(r#"~ {ucs} ["url"]"#)],
            0,
            0,
        ),
        (
            vec![(Step::TenantProvisioned, missing())],
            false,
            None,
            false,
            None,
            tenant_made.to_vec(),
            0,
            0,
        ),
        (
            vec![(Step::TenantProvisioned, drifted())],
            false,
            None,
            false,
            None,
            vec![r#"~ Nexus tenant t100 at contact center cc ["token"]"#.to_string()],
            0,
            0,
        ),
        // No token before the client is made: the key rows tell.
        (
            vec![token(Reason::Unauthorized)],
            false,
            None,
            true,
            Some(0),
            {
                let mut made = tenant_made.to_vec();
                made.push(format!(r#"+ {ucs} ["url"]"#));
                made
            },
            0,
            1,
        ),
        (
            vec![token(Reason::Unauthorized)],
            false,
            None,
            true,
            Some(1),
            vec![format!(r#"+ {ucs} ["url"]"#)],
            0,
            2,
        ),
        (
            vec![token(Reason::Unauthorized)],
            false,
            Some("https://ucs.example.com"),
            true,
            Some(2),
            vec![],
            1,
            1,
        ),
        // A refused token with the client in place is the tenant user's problem.
        (
            vec![token(Reason::Unauthorized)],
            false,
            None,
            false,
            None,
            vec![],
            1,
            0,
        ),
        (
            vec![(Step::DesignerEnvConfigured, Ok(Outcome::ManualStepRequired))],
            false,
            None,
            false,
            None,
            vec![],
            0,
            1,
        ),
    ];
    let found = Setting {
        name: CHAT_SERVICE_SETTING.into(),
        location: "/elsewhere".into(),
        value: serde_json::json!("https://old.example.com"),
        shared: false,
    };
    for (steps, with_setting, recorded, pending, rows, changes, errors, notes) in table {
        let report = report(steps);
        let mut sight = tenant_sight(&report, with_setting.then_some(&found));
        (sight.ucs_recorded, sight.client_pending, sight.key_rows) = (recorded, pending, rows);
        let mut plan = empty_plan();
        tenant(&sight, &mut plan);
        assert_eq!(said(&plan), (changes, errors, notes), "{:?}", report.steps);
        assert!(
            plan.changes.iter().all(|c| !c.applies),
            "observed: only on a switch"
        );
    }
}

#[test]
fn a_secret_is_named_never_shown() {
    use super::super::store::{PlannedSecret, SecretWrite};
    let planned = [
        PlannedSecret {
            name: "prod-nexus-client".into(),
            action: Action::Create,
            write: SecretWrite::Generated {
                key: "client-secret".into(),
            },
        },
        PlannedSecret {
            name: "t100-digital-channels".into(),
            action: Action::Update,
            write: SecretWrite::Output {
                keys: vec!["xapikey".into()],
                annotations: vec![
                    (
                        "digitalchannels.dev/ucs-url".into(),
                        None,
                        Some("https://u".into()),
                    ),
                    (
                        crate::runbook::tenant::annotations::CREDENTIALS_FINGERPRINT.into(),
                        Some("old-hmac".into()),
                        Some("new-hmac".into()),
                    ),
                ],
            },
        },
    ];
    let purposes = SecretPurposes {
        client_secret: Some("prod-nexus-client"),
        fingerprint_key: None,
        system: KUBERNETES,
    };
    let mut plan = empty_plan();
    secrets(&planned, &purposes, &mut plan);
    let shown: Vec<String> = plan
        .changes
        .iter()
        .flat_map(|c| {
            c.fields
                .iter()
                .map(|f| super::super::render::field(f, c.action))
        })
        .collect();
    assert_eq!(
        shown,
        [
            "client-secret = (secret)",
            "xapikey: (secret) differs",
            "metadata.annotations[digitalchannels.dev/ucs-url] = \"https://u\"",
            "metadata.annotations[digitalchannels.dev/credentials-fingerprint]: (secret) differs",
        ]
    );
    assert!(
        plan.changes.iter().all(|c| c.applies),
        "Kubernetes's: a pass writes them"
    );
    assert!(plan.changes[0].why.contains("generated"));
}
