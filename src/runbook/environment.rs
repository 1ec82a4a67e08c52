//! The environment's steps: the client secret, the `nexus_client` OAuth client, its
//! verification, and the `nex_gapis` row.

use std::time::Instant;

use super::Runbook;
use super::report::{Outcome, Reason, RunReport, Step, StepError};
use super::secrets::{SecretError, SecretStore};
use crate::api::{DigitalChannelsEnvironment, DigitalChannelsEnvironmentSpec, SecretKeyRef};
use crate::secret::{Credentials, SecretString};
use crate::upstream::gws_auth::{ClientRegistration, Grant};
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
    pub ca_pem: Option<Vec<u8>>,
    /// The redirect URI the operator set on the client before (status), replaced by a new
    /// `nexusUrl`.
    pub managed_redirect_uri: Option<String>,
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
            crate::api::common::trim_url(&self.spec.gws_url),
            &self.spec.client.id,
            self.client_secret.expose(),
        ])
    }

    /// [`Self::fingerprint`] of the client secret: what the environment records once GWS
    /// Auth holds it, so that a tenant can tell a rotation not pushed yet.
    pub fn client_secret_digest(&self) -> Option<String> {
        self.fingerprint(&["client-secret", self.client_secret.expose()])
    }

    pub fn registration(&self) -> ClientRegistration {
        ClientRegistration {
            client_id: self.spec.client.id.clone(),
            secret: self.client_secret.clone(),
            redirect_uri: self.spec.nexus_url.clone(),
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
    let credentials = async {
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
        Ok::<_, (Step, StepError)>((ops, database_url, ca_pem))
    }
    .await;
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
    let key_ref = fingerprint_key_ref(&name);
    let resolved = async {
        let (secret, outcome) =
            read_or_generate(store, &secret_ref, generate, "client secret").await?;
        let key = match read_or_generate(store, &key_ref, generate, "fingerprint key").await {
            Ok((key, _)) => Some(key),
            // Not made yet: only a reader that needs it (a tenant's pass) waits for it.
            Err(e) if !generate && e.reason == Reason::SecretNotFound => None,
            Err(e) => return Err(e),
        };
        Ok::<_, StepError>((secret, key, outcome))
    }
    .await;
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
        ca_pem,
        managed_redirect_uri: env
            .status
            .as_ref()
            .and_then(|s| s.client_redirect_uri.clone()),
    })
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
}

impl EnvironmentRun {
    /// True when the `nex_gapis` row was inserted or its secret changed: Nexus must
    /// restart to see it.
    pub fn gapi_changed(&self) -> bool {
        matches!(self.report.outcome_of(Step::GapiRegistered), Some(Ok(o)) if o.changed())
    }
}

/// Runs the environment's steps: each looks, then writes only what differs.
pub async fn run_environment(
    runbook: &Runbook,
    env: &DigitalChannelsEnvironment,
    store: &dyn SecretStore,
) -> EnvironmentRun {
    let mut run = EnvironmentRun::default();
    let Some(resolved) = resolve_environment(env, store, true, &mut run.report).await else {
        return run;
    };
    let ops_hint = format!(
        "Check the ops user in Secret {}",
        resolved.spec.ops_credentials_secret.name
    );
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
    let registered = register_client(auth.as_ref(), &resolved).await;
    let failed = registered.is_err();
    let (result, detail) = match registered {
        Ok((outcome, detail)) => (Ok(outcome), detail),
        Err(e) => (
            Err(StepError::from_upstream(&e, hint_for(&e, &ops_hint))),
            String::new(),
        ),
    };
    run.report
        .push(Step::ClientRegistered, started, result, detail);
    if failed {
        return run;
    }

    let started = Instant::now();
    let verified = verify_client(runbook, auth.as_ref(), &resolved).await;
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

fn hint_for<'a>(error: &crate::upstream::UpstreamError, hint: &'a str) -> &'a str {
    if error.kind == ErrorKind::Unauthorized {
        hint
    } else {
        ""
    }
}

/// GET the client; create it when absent, update the fields that differ when present.
async fn register_client(
    auth: &dyn GwsAuthApi,
    env: &ResolvedEnvironment,
) -> Result<(Outcome, String), crate::upstream::UpstreamError> {
    let wanted = env.registration();
    let existing = match auth.get_client(&env.ops, &wanted.client_id).await? {
        Some(client) => client,
        None => match auth.create_client(&env.ops, &wanted).await {
            Ok(_) => return Ok((Outcome::Created, format!("client {}", wanted.client_id))),
            // Created by someone else between our GET and POST: compare it like any other.
            Err(e) if e.kind == ErrorKind::Conflict => auth
                .get_client(&env.ops, &wanted.client_id)
                .await?
                .ok_or(e)?,
            Err(e) => return Err(e),
        },
    };
    let differences = wanted.differences(&existing);
    if differences.is_empty() {
        return Ok((
            Outcome::AlreadyRight,
            format!("client {}", wanted.client_id),
        ));
    }
    auth.update_client(
        &env.ops,
        &wanted.client_id,
        &wanted.update_body(&existing, false),
    )
    .await?;
    Ok((
        Outcome::Updated,
        format!("fixed {}", differences.join(", ")),
    ))
}

/// A client_credentials token proves the secret; GET never shows it. When GWS refuses
/// our secret (it was rotated in the Secret, or the client was created by hand), the
/// client's secret is set to ours and verified again.
async fn verify_client(
    runbook: &Runbook,
    auth: &dyn GwsAuthApi,
    env: &ResolvedEnvironment,
) -> Result<Outcome, StepError> {
    let client_id = &env.spec.client.id;
    let first = auth
        .token(client_id, &env.client_secret, &Grant::ClientCredentials)
        .await;
    match first {
        Ok(_) => Ok(Outcome::Verified),
        Err(e) if e.kind == ErrorKind::Unauthorized => {
            runbook.tokens.invalidate(&env.spec.auth_url, client_id);
            let wanted = env.registration();
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
    let db_hint = format!(
        "Check the database URL in Secret {}",
        env.spec.database.url_secret.name
    );
    let to_step = |e: crate::upstream::UpstreamError| {
        if crate::upstream::nexus_db::is_missing_table(&e) {
            // Nexus not installed (or not started once) yet: nothing the operator watches
            // changes when it is, so look again with backoff instead of waiting for a change.
            let mut step = StepError::from_upstream(&e, &db_hint);
            step.transient = true;
            return step;
        }
        StepError::from_upstream(&e, hint_for(&e, &db_hint))
    };
    let url_secret = &env.spec.database.url_secret;
    let db = runbook
        .connector
        .nexus_db(&env.database_url)
        .map_err(|e| match e.kind {
            // Making the pool connects nowhere: what it refuses is the URL in the Secret.
            ErrorKind::Rejected => StepError::permanent(
                Reason::InvalidSecret,
                format!(
                    "Secret {} key {} (Nexus database URL): {}",
                    url_secret.name, url_secret.key, e.detail
                ),
            ),
            _ => to_step(e),
        })?;
    let (url, client_id) = (env.spec.gws_url.as_str(), env.spec.client.id.as_str());
    let rows = db.find_gapis(url, client_id).await.map_err(to_step)?;
    if rows.is_empty() {
        db.insert_gapi(url, client_id, &env.client_secret)
            .await
            .map_err(to_step)?;
        return Ok(Outcome::Created);
    }
    if rows.iter().all(|r| r.client_secret == env.client_secret) {
        return Ok(Outcome::AlreadyRight);
    }
    db.update_gapi_secret(url, client_id, &env.client_secret)
        .await
        .map_err(to_step)?;
    Ok(Outcome::Updated)
}

/// Environment cleanup for `deletionPolicy: Delete`: the OAuth client and the
/// `nex_gapis` row. "Already gone" counts as done.
pub async fn delete_environment(
    runbook: &Runbook,
    env: &ResolvedEnvironment,
) -> Result<(), StepError> {
    let auth = runbook
        .connector
        .gws_auth(&env.spec.auth_url, env.ca())
        .map_err(|e| StepError::from_upstream(&e, ""))?;
    auth.delete_client(&env.ops, &env.spec.client.id)
        .await
        .map_err(|e| StepError::from_upstream(&e, ""))?;
    runbook
        .tokens
        .invalidate(&env.spec.auth_url, &env.spec.client.id);
    let db = runbook
        .connector
        .nexus_db(&env.database_url)
        .map_err(|e| StepError::from_upstream(&e, ""))?;
    db.delete_gapis(&env.spec.gws_url, &env.spec.client.id)
        .await
        .map_err(|e| StepError::from_upstream(&e, ""))?;
    Ok(())
}
