//! From what the observed steps reported and what they saw, the changes a pass would make:
//! pure, so that every case is a row of a table.

use super::store::{PlannedSecret, SecretWrite};
use super::{Action, Change, Field, ResourcePlan};
use crate::runbook::environment::MANAGED_BY;
use crate::runbook::report::{Outcome, Reason, RunReport, Step};
use crate::runbook::tenant::{CHAT_SERVICE_SETTING, keys};
use crate::upstream::environment::Setting;
use crate::upstream::gws_auth::{ClientRegistration, OAuthClient, REQUIRED_GRANT_TYPES};

pub const GWS_AUTH: &str = "GWS Auth";
pub const ENVIRONMENT_API: &str = "GWS Environment API";
pub const NEXUS: &str = "Nexus";
pub const NEXUS_DB: &str = "Nexus database";
pub const KUBERNETES: &str = "Kubernetes";

/// What the environment's observed pass saw.
pub struct EnvironmentSight<'a> {
    pub report: &'a RunReport,
    pub client_id: &'a str,
    /// The client as Manage would write it (once the Secrets were read).
    pub wanted: Option<&'a ClientRegistration>,
    /// The client as the GET found it.
    pub found: Option<&'a OAuthClient>,
    /// `gwsUrl` in normal form: the row's `url`.
    pub gws_url: &'a str,
    pub client_secret_name: &'a str,
    /// `namespace/name` of `spec.nexusDeployment`, restarted by the controller (not by
    /// `provision`) after the row changes.
    pub restarts: Option<String>,
    /// Manage: a pass makes the upstream changes; Observe: only a switch would.
    pub applies: bool,
}

fn change(action: Action, object: String, system: &str, why: String, applies: bool) -> Change {
    Change {
        action,
        object,
        system: system.to_string(),
        fields: Vec::new(),
        why,
        applies,
    }
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// A failed step: the plan cannot say what lies behind it.
fn failure(step: Step, reason: Reason, message: &str) -> String {
    format!("{step}: {reason}: {message}")
}

/// The environment's changes, errors and notes, added to `plan`.
pub fn environment(s: &EnvironmentSight<'_>, plan: &mut ResourcePlan) {
    for step in &s.report.steps {
        let outcome = match &step.result {
            Ok(outcome) => outcome,
            Err(e) => {
                plan.errors.push(failure(step.step, e.reason, &e.message));
                continue;
            }
        };
        match (step.step, outcome) {
            (Step::ClientRegistered, Outcome::Missing(_)) => plan.push(client_create(s)),
            (Step::ClientRegistered, Outcome::Drifted(_)) => plan.push(client_update(s)),
            (Step::ClientVerified, Outcome::Drifted(_)) => {
                let mut c = client_change(s, Action::Update);
                c.fields.push(Field::secret("client_secret"));
                c.why = format!(
                    "GWS Auth refuses the secret of Secret {}: Manage sets the client's secret to it",
                    s.client_secret_name
                );
                plan.push(c);
            }
            (Step::GapiRegistered, Outcome::Missing(_) | Outcome::Drifted(_)) => {
                gapi(s, matches!(outcome, Outcome::Missing(_)), plan);
            }
            _ => {}
        }
    }
}

fn client_change(s: &EnvironmentSight<'_>, action: Action) -> Change {
    let object = format!("OAuth client {}", s.client_id);
    change(action, object, GWS_AUTH, String::new(), s.applies)
}

fn client_create(s: &EnvironmentSight<'_>) -> Change {
    let mut c = client_change(s, Action::Create);
    c.why = format!("GWS Auth has no OAuth client {}", s.client_id);
    if let Some(w) = s.wanted {
        let grants: Vec<String> = REQUIRED_GRANT_TYPES.map(String::from).to_vec();
        c.fields = vec![
            Field::set("description", format!("{:?}", w.description)),
            Field::set("redirectURIs", list(std::slice::from_ref(&w.redirect_uri))),
            Field::set("authorizedGrantTypes", list(&grants)),
            Field::set("scope", "[*]"),
            Field::set("authorities", "[ROLE_INTERNAL_CLIENT]"),
            Field::set(
                "accessTokenExpirationTimeout",
                w.access_token_expiration_timeout.to_string(),
            ),
            Field::set(
                "refreshTokenExpirationTimeout",
                w.refresh_token_expiration_timeout.to_string(),
            ),
            Field::secret("client_secret"),
        ];
    }
    c
}

fn client_update(s: &EnvironmentSight<'_>) -> Change {
    let mut c = client_change(s, Action::Update);
    let (Some(wanted), Some(found)) = (s.wanted, s.found) else {
        c.why = "it differs from what the spec wants".to_string();
        return c;
    };
    c.fields = client_fields(wanted, found);
    let by_hand = !found
        .description
        .as_deref()
        .is_some_and(|d| d.starts_with(MANAGED_BY));
    c.why = match by_hand {
        true => "a client no manager marked as its own (made by hand) differs from the spec: \
                 the update marks it as this one's"
            .to_string(),
        false => "it differs from what the spec wants".to_string(),
    };
    c
}

/// Each field of the client that differs, as it is and as the update would set it.
pub fn client_fields(wanted: &ClientRegistration, found: &OAuthClient) -> Vec<Field> {
    let names = wanted.differences(found);
    let words = wanted.explain_differences(found);
    names
        .into_iter()
        .zip(words)
        .map(|(name, said)| match name {
            "description" => Field::changed(
                name,
                format!("{:?}", found.description.clone().unwrap_or_default()),
                format!("{:?}", wanted.description),
            ),
            "authorizedGrantTypes" => {
                let mut all = found.authorized_grant_types.clone();
                let missing = REQUIRED_GRANT_TYPES
                    .iter()
                    .filter(|g| !all.iter().any(|a| a == *g));
                let missing: Vec<String> = missing.map(|g| g.to_string()).collect();
                let from = list(&all);
                all.extend(missing);
                Field::changed(name, from, list(&all))
            }
            // The rest as explained: "<name> <as it is> -> <as it will be>".
            _ => {
                let rest = said.strip_prefix(name).unwrap_or(&said).trim();
                match rest.split_once(" -> ") {
                    Some((from, to)) => Field::changed(name, from, to),
                    None => Field::set(name, rest),
                }
            }
        })
        .collect()
}

fn gapi(s: &EnvironmentSight<'_>, missing: bool, plan: &mut ResourcePlan) {
    let object = "nex_gapis row".to_string();
    let row = format!("url {} and clientid {}", s.gws_url, s.client_id);
    let mut c = match missing {
        true => change(
            Action::Create,
            object,
            NEXUS_DB,
            format!("Nexus's table has no row for {row}"),
            s.applies,
        ),
        false => change(
            Action::Update,
            object,
            NEXUS_DB,
            format!(
                "the row for {row} holds another secret than Secret {}",
                s.client_secret_name
            ),
            s.applies,
        ),
    };
    c.fields = match missing {
        true => vec![
            Field::set("url", s.gws_url),
            Field::set("clientid", s.client_id),
            Field::set("apikey", "NA"),
            Field::secret("clientsecret"),
        ],
        false => vec![Field::secret("clientsecret")],
    };
    plan.push(c);
    match &s.restarts {
        Some(deployment) => {
            let mut restart = change(
                Action::Update,
                format!("Deployment {deployment}"),
                KUBERNETES,
                "Nexus reads nex_gapis only when it starts: restarted as `kubectl rollout restart` does"
                    .to_string(),
                s.applies,
            );
            restart.fields = vec![Field::set(
                "spec.template.metadata.annotations[kubectl.kubernetes.io/restartedAt]",
                "(the time of the restart)",
            )];
            plan.push(restart);
        }
        None => plan.notes.push(
            "Nexus reads nex_gapis only when it starts: restart it once the row has changed \
             (with spec.nexusDeployment the operator does)"
                .to_string(),
        ),
    }
}

/// What the tenant's observed pass saw.
pub struct TenantSight<'a> {
    pub report: &'a RunReport,
    pub tenant_name: &'a str,
    pub contact_center: Option<&'a str>,
    pub nexus_url: &'a str,
    pub gws_url: &'a str,
    pub type_: &'a str,
    pub genesys_tenant_id: i64,
    /// `chatservice-uri` of the contact center, as listed.
    pub setting: Option<&'a Setting>,
    pub ucs_wanted: Option<&'a str>,
    pub ucs_recorded: Option<&'a str>,
    pub output_secret: &'a str,
    /// Where the output Secret goes: `Kubernetes`, or the output directory for `-f`.
    pub secrets_at: &'a str,
    pub applies: bool,
    /// The environment's client would be created or given its secret first: no tenant token
    /// can be had before, so the token chain was not looked at but in `nex_apikeys`.
    pub client_pending: bool,
    /// Then, how many key rows of this tenant `nex_apikeys` holds.
    pub key_rows: Option<usize>,
}

impl TenantSight<'_> {
    fn cc(&self) -> &str {
        self.contact_center.unwrap_or("(to be resolved)")
    }
}

/// The tenant's changes, errors and notes, added to `plan`.
pub fn tenant(s: &TenantSight<'_>, plan: &mut ResourcePlan) {
    for step in &s.report.steps {
        match (&step.result, step.step) {
            (Err(e), Step::TenantToken) if s.client_pending && e.reason == Reason::Unauthorized => {
                without_token(s, plan);
            }
            (Err(e), _) => plan.errors.push(failure(step.step, e.reason, &e.message)),
            (Ok(outcome), step) => tenant_step(s, step, outcome, plan),
        }
    }
}

fn tenant_step(s: &TenantSight<'_>, step: Step, outcome: &Outcome, plan: &mut ResourcePlan) {
    match (step, outcome) {
        (Step::ChatServiceRegistered, Outcome::Missing(_) | Outcome::Drifted(_)) => {
            plan.push(setting(s));
        }
        (Step::UcsRegistered, Outcome::NotObservable(_) | Outcome::Drifted(_)) => {
            plan.push(ucs(s));
        }
        (Step::TenantProvisioned, Outcome::Missing(_)) => tenant_create(s, plan),
        (Step::TenantProvisioned, Outcome::Drifted(_)) => {
            let mut c = nexus_tenant(s, Action::Update);
            c.fields = vec![Field::secret("token")];
            c.why = "the tenant user's credentials are not those recorded for it: the tenant \
                     is updated with them (its API key stays)"
                .to_string();
            plan.push(c);
        }
        (Step::DesignerEnvConfigured, Outcome::ManualStepRequired) => plan.notes.push(format!(
            "DesignerEnv is a manual step in Agent Setup; annotate the tenant with {}=\"true\" once done",
            crate::api::DESIGNER_ENV_ANNOTATION
        )),
        _ => {}
    }
}

fn setting(s: &TenantSight<'_>) -> Change {
    let object = format!(
        "setting {CHAT_SERVICE_SETTING} of contact center {}",
        s.cc()
    );
    let quoted = |v: &serde_json::Value| match v {
        serde_json::Value::String(text) => format!("{text:?}"),
        other => other.to_string(),
    };
    let want = format!("{:?}", s.nexus_url);
    match s.setting {
        None => {
            let why = format!("the contact center has no {CHAT_SERVICE_SETTING} setting");
            let mut c = change(Action::Create, object, ENVIRONMENT_API, why, s.applies);
            c.fields = vec![
                Field::set("value", want),
                Field::set("location", "\"/\""),
                Field::set("shared", "false"),
            ];
            c
        }
        Some(found) => {
            let why = "it does not point at the environment's nexusUrl".to_string();
            let mut c = change(Action::Update, object, ENVIRONMENT_API, why, s.applies);
            let is = quoted(&found.value);
            if is != want {
                c.fields.push(Field::changed("value", is, want));
            }
            if found.location != "/" {
                let location = format!("{:?}", found.location);
                c.fields.push(Field::changed("location", location, "\"/\""));
            }
            c
        }
    }
}

fn ucs(s: &TenantSight<'_>) -> Change {
    let object = format!("PlatformUCS service of contact center {}", s.cc());
    let want = s.ucs_wanted.unwrap_or_default().to_string();
    match s.ucs_recorded {
        Some(old) => {
            let why = "it was registered with another URL (as recorded)".to_string();
            let mut c = change(Action::Update, object, NEXUS, why, s.applies);
            c.fields = vec![Field::changed("url", old, want)];
            c
        }
        None => {
            let why = "not observable: Nexus has no known read of it; it is registered once, \
                       and one that exists already counts as done"
                .to_string();
            let mut c = change(Action::Create, object, NEXUS, why, s.applies);
            c.fields = vec![Field::set("url", want)];
            c
        }
    }
}

fn nexus_tenant(s: &TenantSight<'_>, action: Action) -> Change {
    let object = format!(
        "Nexus tenant {} at contact center {}",
        s.tenant_name,
        s.cc()
    );
    change(action, object, NEXUS, String::new(), s.applies)
}

/// The Nexus tenant created, and its key into the output Secret: shown only in the create's
/// answer, so known after the create only.
fn tenant_create(s: &TenantSight<'_>, plan: &mut ResourcePlan) {
    let mut c = nexus_tenant(s, Action::Create);
    c.why = format!(
        "Nexus has no tenant at contact center {} and nex_apikeys no key for {}",
        s.cc(),
        s.tenant_name
    );
    c.fields = vec![
        Field::set("name", format!("{:?}", s.tenant_name)),
        Field::set("type", format!("{:?}", s.type_)),
        Field::set("backendurl", format!("{:?}", s.gws_url)),
        Field::set("genesystemenantid", s.genesys_tenant_id.to_string()),
        Field::secret("token"),
    ];
    plan.push(c);
    let mut secret = change(
        Action::Create,
        format!("Secret {}", s.output_secret),
        s.secrets_at,
        "the new tenant's API key, which Nexus shows only in the create's answer".to_string(),
        s.applies,
    );
    secret.fields = [
        keys::API_KEY,
        keys::CONTACT_CENTER_ID,
        keys::TENANT_NAME,
        keys::NEXUS_URL,
    ]
    .iter()
    .map(|k| Field::secret(k))
    .collect();
    plan.push(secret);
}

/// No tenant token before the environment's client is right: the Nexus tenant is known by
/// its key rows only, and PlatformUCS by its record.
fn without_token(s: &TenantSight<'_>, plan: &mut ResourcePlan) {
    plan.notes.push(
        "no tenant token until the environment's OAuth client exists with its secret: the Nexus \
         tenant was looked for in nex_apikeys only"
            .to_string(),
    );
    match s.key_rows {
        Some(0) => tenant_create(s, plan),
        Some(1) => plan.notes.push(format!(
            "nex_apikeys holds the key of {}: a pass takes it into Secret {}, creating nothing",
            s.tenant_name, s.output_secret
        )),
        Some(n) => plan.errors.push(format!(
            "TenantProvisioned: Conflict: {n} rows of nex_apikeys match tenant {}; a pass will not choose one",
            s.tenant_name
        )),
        None => {}
    }
    if s.ucs_wanted.is_some() && s.ucs_recorded != s.ucs_wanted {
        plan.push(ucs(s));
    }
}

/// What a Secret the pass would write is for.
pub struct SecretPurposes<'a> {
    pub client_secret: Option<&'a str>,
    pub fingerprint_key: Option<&'a str>,
    /// Where the Secrets go: `Kubernetes`, or the output directory for `-f`.
    pub system: &'a str,
}

/// The Secrets a pass would write (made by a pass under either policy: they are Kubernetes's).
pub fn secrets(planned: &[PlannedSecret], purposes: &SecretPurposes<'_>, plan: &mut ResourcePlan) {
    for p in planned {
        let why = match (&p.write, p.action) {
            (SecretWrite::Generated { .. }, _)
                if Some(p.name.as_str()) == purposes.client_secret =>
            {
                "no Secret holds the client secret: one is generated (32 random bytes) and never regenerated"
            }
            (SecretWrite::Generated { .. }, _)
                if Some(p.name.as_str()) == purposes.fingerprint_key =>
            {
                "the environment's fingerprint key (random bytes that key what it records of secrets), made once"
            }
            (SecretWrite::Generated { .. }, _) => "a generated value",
            (SecretWrite::Output { .. }, Action::Create) => {
                "the tenant's API key and where it belongs, for the applications"
            }
            (SecretWrite::Output { .. }, _) => "it differs from the Nexus tenant and the spec",
        };
        let mut c = change(
            p.action,
            format!("Secret {}", p.name),
            purposes.system,
            why.to_string(),
            true,
        );
        c.fields = match &p.write {
            SecretWrite::Generated { key } => vec![Field::secret(key)],
            SecretWrite::Output { keys, annotations } => keys
                .iter()
                .map(|k| Field::secret(k))
                .chain(
                    annotations
                        .iter()
                        .map(|(name, old, new)| annotation(name, old, new)),
                )
                .collect(),
        };
        plan.push(c);
    }
}

fn annotation(name: &str, old: &Option<String>, new: &Option<String>) -> Field {
    let field = format!("metadata.annotations[{name}]");
    // An HMAC of the tenant user's credentials: no secret, yet nothing a person can read.
    if name == crate::runbook::tenant::annotations::CREDENTIALS_FINGERPRINT {
        return Field::secret(&field);
    }
    let show = |v: &Option<String>| {
        v.as_ref()
            .map_or("(none)".to_string(), |v| format!("{v:?}"))
    };
    match old {
        None => Field::set(&field, show(new)),
        Some(_) => Field::changed(&field, show(old), show(new)),
    }
}

/// A write the cleanup asked for: what it would delete. `client_found`: whether the GET
/// before found the client ("already gone" counts as done, so it is no change).
pub fn deleted(attempt: &super::guard::Attempt, client_found: bool) -> Option<Change> {
    let (object, system, why) = match attempt.operation {
        "delete_client" if client_found => (
            format!("OAuth client {}", attempt.target),
            GWS_AUTH,
            "deletionPolicy Delete: the client this environment made goes with it",
        ),
        "delete_gapis" => (
            format!("nex_gapis row {}", attempt.target),
            NEXUS_DB,
            "deletionPolicy Delete: the row of the client goes with it",
        ),
        "delete_ucs" => (
            format!("PlatformUCS service of contact center {}", attempt.target),
            NEXUS,
            "deletionPolicy Delete: the service this tenant registered goes with it",
        ),
        "delete_tenant" => (
            format!("Nexus tenant at contact center {}", attempt.target),
            NEXUS,
            "deletionPolicy Delete: the Nexus tenant this tenant made goes with it (its API key stops working)",
        ),
        _ => return None,
    };
    Some(change(
        Action::Delete,
        object,
        system,
        why.to_string(),
        true,
    ))
}

#[cfg(test)]
#[path = "changes_tests.rs"]
mod tests;
