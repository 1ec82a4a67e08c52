//! The environment's steps: the client secret, the `nexus_client` OAuth client, its
//! verification, and the `nex_gapis` row.

use std::time::Instant;

use super::Runbook;
use super::report::{Outcome, Reason, RunReport, Step, StepError};
use super::secrets::{SecretError, SecretStore};
use crate::api::common::normal_url;
use crate::api::{
    DigitalChannelsEnvironment, DigitalChannelsEnvironmentSpec, ManagementPolicy, SecretKeyRef,
};
use crate::secret::{Credentials, SecretString};
use crate::upstream::gws_auth::{ClientRegistration, Grant, OAuthClient};
use crate::upstream::{ErrorKind, GwsAuthApi};

/// An environment with its Secrets read: everything a tenant run needs from it.
#[derive(Clone, Debug)]
pub struct ResolvedEnvironment {
    pub name: String,
    pub spec: DigitalChannelsEnvironmentSpec,
    pub ops: Credentials,
    pub client_secret_ref: SecretKeyRef,
    pub client_secret: SecretString,
    /// See [`fingerprint_key_ref`]. `None` only when read without generating (a tenant, a
    /// cleanup) before the environment's own pass made it: what needs it then waits.
    pub fingerprint_key: Option<SecretString>,
    pub database_url: SecretString,
    /// Where the database URL comes from (`Secret dc/nexus-db key url`): every database
    /// error names it, never the URL.
    pub database_url_from: String,
    pub ca_pem: Option<Vec<u8>>,
    /// The redirect URI the operator set on the client before (status), replaced by a new
    /// `nexusUrl`.
    pub managed_redirect_uri: Option<String>,
}

/// What every client this project makes says in its description, then who manages it.
pub const MANAGED_BY: &str = "managed by dc-operator";

/// Who manages an OAuth client, as its description says upstream: two managers of one
/// client would undo each other's writes, so each tells the other apart by it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientManager {
    /// The operator, for one DigitalChannelsEnvironment.
    Operator { namespace: String, name: String },
    /// `dc-operator provision`, from manifests.
    Provision,
}

impl ClientManager {
    /// The client's description when this one manages it.
    pub fn description(&self) -> String {
        match self {
            ClientManager::Operator { namespace, name } => {
                format!("{MANAGED_BY}: DigitalChannelsEnvironment {namespace}/{name}")
            }
            ClientManager::Provision => format!("{MANAGED_BY} provision"),
        }
    }

    /// How a person allows this manager to take over a client.
    fn take_over_hint(&self) -> String {
        match self {
            ClientManager::Operator { .. } => format!(
                "set the annotation {}: \"true\" on this DigitalChannelsEnvironment",
                crate::api::environment::TAKE_OVER_CLIENT_ANNOTATION
            ),
            ClientManager::Provision => "run provision with --take-over".to_string(),
        }
    }
}

/// Who a run manages the client as, and whether it may take over one that is not its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Management {
    pub manager: ClientManager,
    pub take_over: bool,
}

impl Default for Management {
    fn default() -> Self {
        Self {
            manager: ClientManager::Provision,
            take_over: false,
        }
    }
}

/// A run's manager and what its record says of the client.
struct Claimant<'a> {
    management: &'a Management,
    journal: Option<&'a dyn CreateJournal>,
    /// Observe: look, create and update nothing.
    policy: ManagementPolicy,
    /// Status records that this environment made or adopted the client.
    recorded: bool,
}

/// What an existing client is to a manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Its description names this manager, or this manager's record says it made or adopted it.
    Ours,
    /// Made by hand (or by a version that wrote no manager): ours only if it already holds
    /// our secret, or when taking over is allowed.
    Unclaimed,
    /// Its description names another manager (quoted, at most 120 characters).
    Elsewhere(String),
}

/// Whose a client is, from its description and this manager's record. A description naming
/// another manager wins over the record: that one took it over since.
pub fn claim_of(description: Option<&str>, me: &ClientManager, recorded: bool) -> Claim {
    match description {
        Some(d) if d == me.description() => Claim::Ours,
        // Quoted in messages and events: bounded, on one line.
        Some(d) if d.starts_with(MANAGED_BY) => Claim::Elsewhere(shorten(d)),
        _ if recorded => Claim::Ours,
        _ => Claim::Unclaimed,
    }
}

impl ResolvedEnvironment {
    /// HMAC-SHA256 of `parts` keyed with the fingerprint key, first 16 bytes, base64url:
    /// tells whether a secret changed without keeping it, and cannot be reversed or tried
    /// against guesses without the key.
    pub fn fingerprint(&self, parts: &[&str]) -> Option<String> {
        use base64::Engine;
        let key = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            self.fingerprint_key.as_ref()?.expose().as_bytes(),
        );
        let mut context = ring::hmac::Context::with_key(&key);
        for part in parts {
            context.update(part.as_bytes());
            context.update(&[0]);
        }
        let tag = context.sign();
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag.as_ref()[..16]))
    }

    /// [`Self::fingerprint`] of the `nex_gapis` row the environment wants: what Nexus must
    /// have loaded.
    pub fn gapi_digest(&self) -> Option<String> {
        self.fingerprint(&[
            "nex_gapis",
            &normal_url(&self.spec.gws_url),
            &self.spec.client.id,
            self.client_secret.expose(),
        ])
    }

    /// [`Self::fingerprint`] of the client secret: what the environment records once GWS
    /// Auth holds it, so that a tenant can tell a rotation not pushed yet.
    pub fn client_secret_digest(&self) -> Option<String> {
        self.fingerprint(&["client-secret", self.client_secret.expose()])
    }

    /// The client as `manager` wants it.
    pub fn registration(&self, manager: &ClientManager) -> ClientRegistration {
        ClientRegistration {
            client_id: self.spec.client.id.clone(),
            secret: self.client_secret.clone(),
            description: manager.description(),
            redirect_uri: normal_url(&self.spec.nexus_url),
            previous_redirect_uri: self.managed_redirect_uri.clone(),
            access_token_expiration_timeout: self.spec.client.access_token_expiration_timeout,
            refresh_token_expiration_timeout: self.spec.client.refresh_token_expiration_timeout,
        }
    }

    pub fn ca(&self) -> Option<&[u8]> {
        self.ca_pem.as_deref()
    }
}

/// Reads the environment's Secrets. With `generate`, a missing client secret is generated
/// and stored (only the environment's own run does that; a tenant waits for it).
pub async fn resolve_environment(
    env: &DigitalChannelsEnvironment,
    store: &dyn SecretStore,
    generate: bool,
    report: &mut RunReport,
) -> Option<ResolvedEnvironment> {
    let name = env.metadata.name.clone().unwrap_or_default();
    let spec = &env.spec;

    let started = Instant::now();
    let credentials = read_credentials(spec, store).await;
    let (ops, database_url, ca_pem) = match credentials {
        Ok(found) => {
            report.push(Step::Credentials, started, Ok(Outcome::AlreadyRight), "");
            found
        }
        Err((step, e)) => {
            report.push(step, started, Err(e), "");
            return None;
        }
    };

    let started = Instant::now();
    let secret_ref = spec.client_secret_ref(&name);
    let status = env.status.clone().unwrap_or_default();
    let modes = (generate, spec.management_policy);
    let resolved = read_client_secrets(store, &name, &secret_ref, &status, modes).await;
    let (client_secret, fingerprint_key) = match resolved {
        Ok((secret, key, outcome)) => {
            report.push(
                Step::ClientSecret,
                started,
                Ok(outcome),
                format!("Secret {}", secret_ref.name),
            );
            (secret, key)
        }
        Err(e) => {
            report.push(Step::ClientSecret, started, Err(e), "");
            return None;
        }
    };

    Some(ResolvedEnvironment {
        name,
        spec: spec.clone(),
        ops,
        client_secret_ref: secret_ref,
        client_secret,
        fingerprint_key,
        database_url,
        database_url_from: store.locate(
            &spec.database.url_secret.name,
            &spec.database.url_secret.key,
        ),
        ca_pem,
        managed_redirect_uri: env
            .status
            .as_ref()
            .and_then(|s| s.client_redirect_uri.clone()),
    })
}

/// The client secret (generated where this environment may) and the fingerprint key
/// (generated only by the environment's own pass), with the client secret's outcome.
async fn read_client_secrets(
    store: &dyn SecretStore,
    name: &str,
    secret_ref: &SecretKeyRef,
    status: &crate::api::EnvironmentStatus,
    (generate, policy): (bool, ManagementPolicy),
) -> Result<(SecretString, Option<SecretString>, Outcome), StepError> {
    let key_ref = fingerprint_key_ref(name);
    // Observed: a generated secret would not be the one the existing client holds.
    let generate_secret =
        generate && !policy.observes() && may_generate_client_secret(status, &secret_ref.name);
    let (secret, outcome) = read_or_generate(store, secret_ref, generate_secret, "client secret")
        .await
        .map_err(|e| moved_to_missing_secret(e, status, secret_ref))
        .map_err(|e| observed_missing_secret(e, policy, secret_ref))?;
    let key = match read_or_generate(store, &key_ref, generate, "fingerprint key").await {
        Ok((key, _)) => Some(key),
        // Not made yet: only a reader that needs it (a tenant's pass) waits for it.
        Err(e) if !generate && e.reason == Reason::SecretNotFound => None,
        Err(e) => return Err(e),
    };
    Ok((secret, key, outcome))
}

/// The ops user, the database URL and the CA bundle, each read from its Secret; a failure
/// names the step it shows on.
async fn read_credentials(
    spec: &crate::api::DigitalChannelsEnvironmentSpec,
    store: &dyn SecretStore,
) -> Result<(Credentials, SecretString, Option<Vec<u8>>), (Step, StepError)> {
    let ops = store
        .read_credentials(
            &spec.ops_credentials_secret.name,
            &spec.ops_credentials_secret.username_key,
            &spec.ops_credentials_secret.password_key,
        )
        .await
        .map_err(|e| (Step::Credentials, e.to_step_error("GWS ops credentials")))?;
    // The database is the nex_gapis step's: its Secret's failure shows there.
    let database_url = store
        .read(
            &spec.database.url_secret.name,
            &spec.database.url_secret.key,
        )
        .await
        .map_err(|e| (Step::GapiRegistered, e.to_step_error("Nexus database URL")))?;
    let ca_pem = match &spec.tls {
        Some(tls) => {
            let pem = store
                .read(&tls.ca_secret.name, &tls.ca_secret.key)
                .await
                .map_err(|e| (Step::Credentials, e.to_step_error("CA bundle")))?
                .expose()
                .as_bytes()
                .to_vec();
            check_ca_bundle(&tls.ca_secret, &pem).map_err(|e| (Step::Credentials, e))?;
            Some(pem)
        }
        None => None,
    };
    Ok((ops, database_url, ca_pem))
}

/// Whether a missing client secret may be generated: not when GWS Auth was verified to hold
/// the secret of another Secret (status), for a new `client.secret` that does not exist is
/// far likelier a typo than a wish to rotate, and generating would replace the running
/// client's secret. Rotating by a new Secret means creating it first.
fn may_generate_client_secret(status: &crate::api::EnvironmentStatus, wanted: &str) -> bool {
    match (&status.client_secret_name, &status.client_secret_digest) {
        (Some(recorded), Some(_)) => recorded == wanted,
        _ => true,
    }
}

/// The error of a client secret not generated because the spec moved away from the Secret
/// GWS Auth holds (see [`may_generate_client_secret`]), said as such.
fn moved_to_missing_secret(
    error: StepError,
    status: &crate::api::EnvironmentStatus,
    wanted: &SecretKeyRef,
) -> StepError {
    match &status.client_secret_name {
        Some(recorded) if error.reason == Reason::SecretNotFound && *recorded != wanted.name => {
            StepError::permanent(
                Reason::SecretNotFound,
                format!(
                    "spec.client.secret names Secret {}, which does not exist; the OAuth client holds the secret of Secret {recorded}. \
                     Nothing is generated, so that a typo cannot replace the client's secret: fix the name, or create Secret {} with the secret to rotate to",
                    wanted.name, wanted.name
                ),
            )
        }
        _ => error,
    }
}

/// Under Observe, an absent client secret is `Missing`, with what to supply: nothing is
/// generated, for a new secret would not be the one the OAuth client holds.
fn observed_missing_secret(
    error: StepError,
    policy: ManagementPolicy,
    at: &SecretKeyRef,
) -> StepError {
    if !policy.observes() || error.reason != Reason::SecretNotFound {
        return error;
    }
    StepError::permanent(
        Reason::Missing,
        format!(
            "Secret {} (key {}) with the OAuth client's secret does not exist. Under Observe none is generated: \
             a new one would not be the secret of a client made by hand. Create the Secret with the client's \
             current secret (Manage would generate one, which an existing client does not hold)",
            at.name, at.key
        ),
    )
}

/// A CA bundle that cannot be used, said where it is read: the HTTP clients built from it
/// would fail later with words that name neither the Secret nor the field (and with a reason
/// that blames the upstream).
fn check_ca_bundle(at: &SecretKeyRef, pem: &[u8]) -> Result<(), StepError> {
    let problem = match reqwest::Certificate::from_pem_bundle(pem) {
        Ok(certs) if !certs.is_empty() => return Ok(()),
        Ok(_) => "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        Err(_) => "is not valid PEM",
    };
    Err(StepError::permanent(
        Reason::InvalidSecret,
        format!(
            "Secret {} key {} (CA bundle, spec.tls.caSecret) {problem}; put the CA certificates there, PEM-encoded",
            at.name, at.key
        ),
    ))
}

/// Where the environment's fingerprint key lives: 32 random bytes, generated once and never
/// rotated, that key the HMACs the operator records (the tenant credentials' fingerprint,
/// the client secret's digest). Readers of status or of an output Secret do not hold it.
pub fn fingerprint_key_ref(environment_name: &str) -> SecretKeyRef {
    SecretKeyRef {
        name: format!("{environment_name}-fingerprint-key"),
        key: "key".to_string(),
    }
}

/// A Secret key's value; with `generate`, a random one stored when the Secret is absent.
async fn read_or_generate(
    store: &dyn SecretStore,
    at: &SecretKeyRef,
    generate: bool,
    what: &str,
) -> Result<(SecretString, Outcome), StepError> {
    match store.read(&at.name, &at.key).await {
        Ok(secret) if !secret.is_empty() => Ok((secret, Outcome::AlreadyRight)),
        Ok(_) => Err(StepError::permanent(
            Reason::SecretKeyMissing,
            format!(
                "Secret {} key {} is empty; delete the key to have a {what} generated",
                at.name, at.key
            ),
        )),
        Err(SecretError::NotFound { .. }) if generate => store
            .create_generated(&at.name, &at.key, &SecretString::generate())
            .await
            .map(|s| (s, Outcome::Created))
            .map_err(|e| e.to_step_error(what)),
        Err(e) => Err(e.to_step_error(what)),
    }
}

/// Reads an environment's Secrets without generating anything: what a tenant and a
/// cleanup need. The error is the step that failed.
pub async fn read_environment(
    env: &DigitalChannelsEnvironment,
    store: &dyn SecretStore,
) -> Result<ResolvedEnvironment, StepError> {
    let mut report = RunReport::default();
    match resolve_environment(env, store, false, &mut report).await {
        Some(resolved) => Ok(resolved),
        None => Err(report
            .failure()
            .map(|(_, e)| e.clone())
            .expect("resolve reports its failure")),
    }
}

/// What an environment run did.
#[derive(Debug, Default)]
pub struct EnvironmentRun {
    pub report: RunReport,
    pub resolved: Option<ResolvedEnvironment>,
    /// Whether the client is this manager's after the run: `Some(true)` when it created it
    /// (or sent a create whose answer was lost), found it its own or adopted it,
    /// `Some(false)` when it left it to another, `None` when the run did not get that far.
    pub client_ours: Option<bool>,
}

impl EnvironmentRun {
    /// True when the `nex_gapis` row was inserted or its secret changed: Nexus must
    /// restart to see it.
    pub fn gapi_changed(&self) -> bool {
        matches!(self.report.outcome_of(Step::GapiRegistered), Some(Ok(o)) if o.changed())
    }
}

/// Runs the environment's steps as `dc-operator provision` does (see
/// [`run_environment_managed`]).
pub async fn run_environment(
    runbook: &Runbook,
    env: &DigitalChannelsEnvironment,
    store: &dyn SecretStore,
) -> EnvironmentRun {
    run_environment_managed(runbook, env, store, &Management::default()).await
}

/// Runs the environment's steps: each looks, then writes only what differs. The client is
/// written only when it is `management`'s own (see [`claim_of`]).
pub async fn run_environment_managed(
    runbook: &Runbook,
    env: &DigitalChannelsEnvironment,
    store: &dyn SecretStore,
    management: &Management,
) -> EnvironmentRun {
    run_environment_journaled(runbook, env, store, management, None).await
}

/// [`run_environment_managed`], telling `journal` right before the client create leaves.
pub async fn run_environment_journaled(
    runbook: &Runbook,
    env: &DigitalChannelsEnvironment,
    store: &dyn SecretStore,
    management: &Management,
    journal: Option<&dyn CreateJournal>,
) -> EnvironmentRun {
    let mut run = EnvironmentRun::default();
    let policy = env.spec.management_policy;
    run.report.policy = policy;
    let Some(resolved) = resolve_environment(env, store, true, &mut run.report).await else {
        return run;
    };
    let auth = match runbook
        .connector
        .gws_auth(&resolved.spec.auth_url, resolved.ca())
    {
        Ok(auth) => auth,
        Err(e) => {
            run.report.push(
                Step::ClientRegistered,
                Instant::now(),
                Err(StepError::from_upstream(&e, "")),
                "",
            );
            return run;
        }
    };

    let started = Instant::now();
    let claimant = Claimant {
        management,
        journal,
        policy,
        // Whether status records that this environment made or adopted the client.
        recorded: env
            .status
            .as_ref()
            .is_some_and(|s| s.records_client(&env.spec.client.id)),
    };
    let (registered, ours) = register_client(auth.as_ref(), &resolved, &claimant).await;
    // Observed, the client is not made nor adopted: nothing to record as this one's.
    run.client_ours = ours.filter(|_| !policy.observes());
    let Ok((outcome, detail)) = registered.map_err(|e| {
        run.report.push(Step::ClientRegistered, started, Err(e), "");
    }) else {
        return run;
    };
    let absent = matches!(outcome, Outcome::Missing(_));
    run.report
        .push(Step::ClientRegistered, started, Ok(outcome), detail);

    let started = Instant::now();
    let verified = match absent {
        true => Ok(absent_client(&resolved)),
        false => verify_client(runbook, auth.as_ref(), &resolved, &management.manager).await,
    };
    let failed = verified.is_err();
    run.report.push(Step::ClientVerified, started, verified, "");
    if failed {
        return run;
    }

    let started = Instant::now();
    let gapi = register_gapi(runbook, &resolved).await;
    run.report.push(Step::GapiRegistered, started, gapi, "");
    run.resolved = Some(resolved);
    run
}

/// The verification of a client observed absent: no client to ask a token of.
fn absent_client(env: &ResolvedEnvironment) -> Outcome {
    Outcome::Missing(format!(
        "OAuth client {} does not exist, so its secret cannot be verified: Manage would create it with the secret of Secret {}",
        env.spec.client.id, env.client_secret_ref.name
    ))
}

fn hint_for<'a>(error: &crate::upstream::UpstreamError, hint: &'a str) -> &'a str {
    if error.kind == ErrorKind::Unauthorized {
        hint
    } else {
        ""
    }
}

/// GET the client; create it when absent; when present and this manager's (see
/// [`claim_of`]), update the fields that differ. Also says whether the client is ours now.
async fn register_client(
    auth: &dyn GwsAuthApi,
    env: &ResolvedEnvironment,
    claimant: &Claimant<'_>,
) -> (Result<(Outcome, String), StepError>, Option<bool>) {
    let ops_hint = format!(
        "Check the ops user in Secret {}",
        env.spec.ops_credentials_secret.name
    );
    let upstream =
        |e: crate::upstream::UpstreamError| StepError::from_upstream(&e, hint_for(&e, &ops_hint));
    let wanted = env.registration(&claimant.management.manager);
    let existing = match get_or_create(auth, env, &wanted, claimant, upstream).await {
        Ok(Found::Created) => {
            let made = format!("client {}", wanted.client_id);
            return (Ok((Outcome::Created, made)), Some(true));
        }
        Ok(Found::Absent) => {
            let missing = format!(
                "OAuth client {} does not exist in GWS Auth: Manage would create it, with the secret of Secret {} and the redirect URI {}",
                wanted.client_id, env.client_secret_ref.name, wanted.redirect_uri
            );
            return (Ok((Outcome::Missing(missing), String::new())), None);
        }
        Ok(Found::Existing(existing)) => *existing,
        Err((e, ours)) => return (Err(e), ours),
    };
    let claim = claim_of(
        existing.description.as_deref(),
        &claimant.management.manager,
        claimant.recorded,
    );
    let adopted = match adopt(auth, env, claimant.management, &claim).await {
        Ok(adopted) => adopted,
        Err((e, ours)) => return (Err(e), ours),
    };
    let differences = wanted.differences(&existing);
    if differences.is_empty() {
        let right = format!("client {}{adopted}", wanted.client_id);
        return (Ok((Outcome::AlreadyRight, right)), Some(true));
    }
    if claimant.policy.observes() {
        let how = match (&claim, adopted.is_empty()) {
            (_, true) => "",
            (Claim::Unclaimed, _) if !claimant.management.take_over => {
                ", adopting the client, which holds the client secret already"
            }
            _ => ", taking the client over",
        };
        let drift = format!(
            "OAuth client {} differs: {}. Manage would update these fields{how}",
            wanted.client_id,
            wanted.explain_differences(&existing).join("; "),
        );
        return (Ok((Outcome::Drifted(drift), String::new())), None);
    }
    let body = wanted.update_body(&existing, false);
    if let Err(e) = auth.update_client(&env.ops, &wanted.client_id, &body).await {
        return (Err(upstream(e)), Some(true));
    }
    let fixed = format!("fixed {}{adopted}", differences.join(", "));
    (Ok((Outcome::Updated, fixed)), Some(true))
}

/// Told right before a client create leaves: the caller records that the client may now
/// exist, where a crash does not lose it (the operator: in status), so that a cleanup after a
/// crash still looks for it. An error stops the create.
#[async_trait::async_trait]
pub trait CreateJournal: Send + Sync {
    async fn before_create(&self, client_id: &str) -> Result<(), String>;
}

/// What the client GET, and under Manage the create, found.
enum Found {
    Existing(Box<OAuthClient>),
    /// This call created it.
    Created,
    /// Absent, and left so (Observe).
    Absent,
}

/// The client as it is, or that this call created it (under Observe, that it is absent). A
/// failure says whether the client may be ours all the same (`Some(true)`: a create whose
/// answer was lost, a time-out or a 5xx, may have made it, and a cleanup must look for it;
/// `Some(false)`: refused, so surely not made).
async fn get_or_create(
    auth: &dyn GwsAuthApi,
    env: &ResolvedEnvironment,
    wanted: &ClientRegistration,
    claimant: &Claimant<'_>,
    to_step: impl Fn(crate::upstream::UpstreamError) -> StepError,
) -> Result<Found, (StepError, Option<bool>)> {
    let existing = auth.get_client(&env.ops, &wanted.client_id).await;
    if let Some(existing) = existing.map_err(|e| (to_step(e), None))? {
        return Ok(Found::Existing(Box::new(existing)));
    }
    if claimant.policy.observes() {
        return Ok(Found::Absent);
    }
    if let Some(journal) = claimant.journal {
        journal
            .before_create(&wanted.client_id)
            .await
            .map_err(|why| {
                let message =
                    format!("cannot record the client in status before creating it: {why}");
                (
                    StepError::transient(Reason::UpstreamUnavailable, message),
                    None,
                )
            })?;
    }
    match auth.create_client(&env.ops, wanted).await {
        Ok(_) => Ok(Found::Created),
        // Created by someone else between our GET and POST: judged like any other.
        Err(e) if e.kind == ErrorKind::Conflict => {
            match auth.get_client(&env.ops, &wanted.client_id).await {
                Ok(Some(client)) => Ok(Found::Existing(Box::new(client))),
                Ok(None) => Err((to_step(e), None)),
                Err(e) => Err((to_step(e), None)),
            }
        }
        Err(e) if matches!(e.kind, ErrorKind::Transient | ErrorKind::InvalidAnswer) => {
            Err((to_step(e), Some(true)))
        }
        Err(e) => Err((to_step(e), Some(false))),
    }
}

/// Whether this run may write a client it found, by its claim. A client of ours: yes. One
/// made by hand: when it holds our secret already (proved by a token), or taking over is
/// allowed (the verification then sets our secret). Another manager's: only taking over.
/// Gives a note for the step's detail, or the refusal and whether the client is ours.
async fn adopt(
    auth: &dyn GwsAuthApi,
    env: &ResolvedEnvironment,
    management: &Management,
    claim: &Claim,
) -> Result<&'static str, (StepError, Option<bool>)> {
    let client_id = &env.spec.client.id;
    let take_over = management.take_over;
    let hint = management.manager.take_over_hint();
    let secret_at = format!(
        "Secret {} key {}",
        env.client_secret_ref.name, env.client_secret_ref.key
    );
    match claim {
        Claim::Ours => Ok(""),
        Claim::Elsewhere(_) | Claim::Unclaimed if take_over => Ok(" (taken over)"),
        Claim::Elsewhere(description) => Err((
            StepError::permanent(
                Reason::ClientManagedElsewhere,
                format!(
                    "OAuth client {client_id} is managed elsewhere: its description in GWS Auth says \"{}\". Nothing was changed, so that two managers do not undo each other. \
                     If this one should manage it, stop the other and {hint} (its secret becomes the one in {secret_at}; a running Nexus keeps the old one until restarted).",
                    description
                ),
            ),
            Some(false),
        )),
        Claim::Unclaimed => match auth
            .token(client_id, &env.client_secret, &Grant::ClientCredentials)
            .await
        {
            Ok(_) => Ok(" (adopted: it holds the client secret already)"),
            Err(e) if e.kind == ErrorKind::Unauthorized => Err((
                StepError::permanent(
                    Reason::ClientExists,
                    format!(
                        "OAuth client {client_id} already exists in GWS Auth, was not made by this manager, and does not accept the client secret in {secret_at}. Nothing was changed. \
                         To adopt it, put its current secret in {secret_at}; to replace its secret with that one instead, {hint} (a running Nexus keeps the old secret until restarted)."
                    ),
                ),
                Some(false),
            )),
            Err(e) => Err((StepError::from_upstream(&e, ""), None)),
        },
    }
}

/// An upstream text quoted in a message: bounded, on one line.
fn shorten(text: &str) -> String {
    let line: String = text.chars().filter(|c| !c.is_control()).take(120).collect();
    if line.chars().count() < text.chars().count() {
        format!("{line}...")
    } else {
        line
    }
}

/// A client_credentials token proves the secret; GET never shows it. When GWS refuses
/// our secret (it was rotated in the Secret, or the client was created by hand), the
/// client's secret is set to ours and verified again.
async fn verify_client(
    runbook: &Runbook,
    auth: &dyn GwsAuthApi,
    env: &ResolvedEnvironment,
    manager: &ClientManager,
) -> Result<Outcome, StepError> {
    let client_id = &env.spec.client.id;
    let first = auth
        .token(client_id, &env.client_secret, &Grant::ClientCredentials)
        .await;
    match first {
        Ok(_) => Ok(Outcome::Verified),
        Err(e) if e.kind == ErrorKind::Unauthorized && env.spec.management_policy.observes() => {
            Ok(Outcome::Drifted(format!(
                "GWS Auth refuses the secret of Secret {} for OAuth client {client_id}: Manage would set the client's secret \
                 to it (a running Nexus keeps the old one until restarted). To keep the client's secret, put it in that Secret instead",
                env.client_secret_ref.name
            )))
        }
        Err(e) if e.kind == ErrorKind::Unauthorized => {
            runbook.tokens.invalidate(&env.spec.auth_url, client_id);
            let wanted = env.registration(manager);
            let existing = auth
                .get_client(&env.ops, client_id)
                .await
                .map_err(|e| StepError::from_upstream(&e, ""))?
                .unwrap_or_default();
            auth.update_client(&env.ops, client_id, &wanted.update_body(&existing, true))
                .await
                .map_err(|e| StepError::from_upstream(&e, ""))?;
            auth.token(client_id, &env.client_secret, &Grant::ClientCredentials)
                .await
                .map(|_| Outcome::Updated)
                .map_err(|e| {
                    StepError::from_upstream(
                        &e,
                        "GWS Auth refuses the client secret even after it was set again; check the client in GWS Auth",
                    )
                })
        }
        Err(e) => Err(StepError::from_upstream(&e, "")),
    }
}

/// Insert the `nex_gapis` row once; update its secret when it differs.
async fn register_gapi(runbook: &Runbook, env: &ResolvedEnvironment) -> Result<Outcome, StepError> {
    let db_hint = "Check the database URL in that Secret";
    let to_step = |e: crate::upstream::UpstreamError| {
        if crate::upstream::nexus_db::is_missing_table(&e) {
            // Nexus not installed (or not started once) yet: nothing the operator watches
            // changes when it is, so look again with backoff instead of waiting for a change.
            let mut step = StepError::from_upstream(&e, db_hint);
            step.transient = true;
            return step;
        }
        StepError::from_upstream(&e, hint_for(&e, db_hint))
    };
    let db = env.nexus_db(runbook.connector.as_ref())?;
    let (url, client_id) = (normal_url(&env.spec.gws_url), env.spec.client.id.as_str());
    // Rows under any spelling of this GWS URL are this row: matched, never added beside.
    let rows = db.find_gapis(&url, client_id).await.map_err(to_step)?;
    let observes = env.spec.management_policy.observes();
    if rows.is_empty() && observes {
        return Ok(Outcome::Missing(format!(
            "nex_gapis has no row for url {url} and clientid {client_id}: Manage would insert it, with the secret of Secret {}; \
             Nexus reads the table only when it starts, so it is then restarted (spec.nexusDeployment) or asks to be",
            env.client_secret_ref.name
        )));
    }
    if rows.is_empty() {
        db.insert_gapi(&url, client_id, &env.client_secret)
            .await
            .map_err(to_step)?;
        return Ok(Outcome::Created);
    }
    if rows.iter().all(|r| r.client_secret == env.client_secret) {
        return Ok(Outcome::AlreadyRight);
    }
    if observes {
        return Ok(Outcome::Drifted(format!(
            "the clientsecret of nex_gapis for url {url} and clientid {client_id} is not the secret of Secret {}: \
             Manage would update it; Nexus reads the table only when it starts, so it is then restarted (spec.nexusDeployment) or asks to be",
            env.client_secret_ref.name
        )));
    }
    for stored in stored_urls(&rows) {
        db.update_gapi_secret(&stored, client_id, &env.client_secret)
            .await
            .map_err(to_step)?;
    }
    Ok(Outcome::Updated)
}

/// The `url` values of rows as stored (each spelling once): what updates and deletes name.
fn stored_urls(rows: &[crate::upstream::nexus_db::GapiRow]) -> Vec<String> {
    let mut urls: Vec<String> = rows.iter().map(|r| r.url.clone()).collect();
    urls.sort();
    urls.dedup();
    urls
}

/// Environment cleanup for `deletionPolicy: Delete`, as `provision` would do it (see
/// [`delete_environment_managed`]).
pub async fn delete_environment(
    runbook: &Runbook,
    env: &ResolvedEnvironment,
) -> Result<(), StepError> {
    delete_environment_managed(runbook, env, &ClientManager::Provision)
        .await
        .map(drop)
}

/// Environment cleanup for `deletionPolicy: Delete`: the OAuth client and the `nex_gapis`
/// row. "Already gone" counts as done. A client whose description names another manager
/// (it was taken over since) is left with its row; then the answer is `Some` of that
/// description.
pub async fn delete_environment_managed(
    runbook: &Runbook,
    env: &ResolvedEnvironment,
    manager: &ClientManager,
) -> Result<Option<String>, StepError> {
    let auth = runbook
        .connector
        .gws_auth(&env.spec.auth_url, env.ca())
        .map_err(|e| StepError::from_upstream(&e, ""))?;
    let found = auth
        .get_client(&env.ops, &env.spec.client.id)
        .await
        .map_err(|e| StepError::from_upstream(&e, ""))?;
    if let Some(Claim::Elsewhere(description)) =
        found.map(|c| claim_of(c.description.as_deref(), manager, true))
    {
        return Ok(Some(description));
    }
    auth.delete_client(&env.ops, &env.spec.client.id)
        .await
        .map_err(|e| StepError::from_upstream(&e, ""))?;
    runbook
        .tokens
        .invalidate(&env.spec.auth_url, &env.spec.client.id);
    let db = env.nexus_db(runbook.connector.as_ref())?;
    let rows = db
        .find_gapis(&normal_url(&env.spec.gws_url), &env.spec.client.id)
        .await
        .map_err(|e| StepError::from_upstream(&e, ""))?;
    for stored in stored_urls(&rows) {
        db.delete_gapis(&stored, &env.spec.client.id)
            .await
            .map_err(|e| StepError::from_upstream(&e, ""))?;
    }
    Ok(None)
}

#[cfg(test)]
mod claim_tests {
    use super::*;

    #[test]
    fn whose_client_it_is_decides_from_the_description_then_the_record() {
        let prod = ClientManager::Operator {
            namespace: "dc".into(),
            name: "prod".into(),
        };
        let other = ClientManager::Operator {
            namespace: "dc".into(),
            name: "other".into(),
        };
        let cli = ClientManager::Provision;
        let elsewhere = |m: &ClientManager| Claim::Elsewhere(m.description());
        for (description, me, recorded, expected) in [
            (Some(prod.description()), &prod, false, Claim::Ours),
            (Some(prod.description()), &prod, true, Claim::Ours),
            (Some(cli.description()), &cli, false, Claim::Ours),
            // Another manager's, whatever our record says: it took the client over since.
            (Some(other.description()), &prod, true, elsewhere(&other)),
            (Some(cli.description()), &prod, true, elsewhere(&cli)),
            (Some(prod.description()), &cli, false, elsewhere(&prod)),
            // Made by hand, or by a version that wrote no manager: ours only by our record.
            (Some("nexus_client".to_string()), &prod, true, Claim::Ours),
            (
                Some("nexus_client".to_string()),
                &prod,
                false,
                Claim::Unclaimed,
            ),
            (None, &cli, false, Claim::Unclaimed),
            (Some(String::new()), &prod, false, Claim::Unclaimed),
        ] {
            assert_eq!(
                claim_of(description.as_deref(), me, recorded),
                expected,
                "{description:?} for {me:?}, recorded {recorded}"
            );
        }
    }

    #[test]
    fn a_client_secret_is_generated_only_where_none_was_verified_elsewhere() {
        let status = |name: Option<&str>, digest: bool| crate::api::EnvironmentStatus {
            client_secret_name: name.map(str::to_string),
            client_secret_digest: digest.then(|| "d".to_string()),
            ..Default::default()
        };
        for (recorded, verified, wanted, expected) in [
            (None, false, "prod-nexus-client", true),
            (Some("prod-nexus-client"), false, "other", true),
            (Some("prod-nexus-client"), true, "prod-nexus-client", true),
            (Some("prod-nexus-client"), true, "prod-nexus-cleint", false),
        ] {
            assert_eq!(
                may_generate_client_secret(&status(recorded, verified), wanted),
                expected,
                "{recorded:?} verified {verified}, wanted {wanted}"
            );
        }
    }

    #[test]
    fn the_description_names_the_resource_or_the_command() {
        let prod = ClientManager::Operator {
            namespace: "digital-channels".into(),
            name: "prod".into(),
        };
        assert_eq!(
            prod.description(),
            "managed by dc-operator: DigitalChannelsEnvironment digital-channels/prod"
        );
        assert_eq!(
            ClientManager::Provision.description(),
            "managed by dc-operator provision"
        );
    }
}

#[cfg(test)]
#[path = "environment_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "environment_observe_tests.rs"]
mod observe_tests;
