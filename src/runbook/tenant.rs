//! The tenant's steps: contact center, `chatservice-uri`, tenant token, PlatformUCS,
//! the Nexus tenant and its API key, the output Secret, and the manual DesignerEnv step.

use std::time::Instant;

use super::Runbook;
use super::contact_center;
use super::environment::ResolvedEnvironment;
use super::report::{Outcome, Reason, RunReport, Step, StepError};
use super::secrets::{OutputRecord, SecretStore, WriteOutcome};
use crate::api::DigitalChannelsTenant;
use crate::api::common::trim_url;
use crate::secret::{Credentials, SecretString};
use crate::upstream::environment::Setting;
use crate::upstream::gws_auth::Grant;
use crate::upstream::nexus::{NexusApi, TenantRequest};
use crate::upstream::{ErrorKind, UpstreamError};

/// Keys of the output Secret.
pub mod keys {
    pub const API_KEY: &str = "xapikey";
    pub const CONTACT_CENTER_ID: &str = "contactCenterId";
    pub const TENANT_NAME: &str = "tenantName";
    pub const NEXUS_URL: &str = "nexusUrl";
}

/// Bookkeeping kept as annotations on the output Secret, for `provision`, which has no
/// status. The controllers keep the same in the tenant's status, which wins. No secrets.
pub mod annotations {
    /// The UCS URL last registered.
    pub const UCS_URL: &str = "digitalchannels.dev/ucs-url";
    /// HMAC of the tenant user's credentials (see `credentials_fingerprint`), so a rotated
    /// password is noticed without keeping it anywhere.
    pub const CREDENTIALS_FINGERPRINT: &str = "digitalchannels.dev/credentials-fingerprint";
    /// Nexus's operationId of the provisioning.
    pub const OPERATION_ID: &str = "digitalchannels.dev/operation-id";
}

/// The setting that points GWS at Nexus.
pub const CHAT_SERVICE_SETTING: &str = "chatservice-uri";

/// What to set by hand in Agent Setup: no public API exists for it.
pub fn designer_env_instructions(tenant_name: &str) -> String {
    format!(
        "In Agent Setup, open the Environment tenant's Transactions; create the transaction DesignerEnv (type List, \
         Name and Alias DesignerEnv) if absent, and add baseurl=/nexus/v1, password= (empty) and url=/nexus/v3. \
         Then annotate the tenant {tenant_name} with {}=\"true\".",
        crate::api::DESIGNER_ENV_ANNOTATION
    )
}

/// API keys that Nexus's create answer gave but that are not in their output Secret yet
/// (its write failed): the only copy, kept and used by the next pass until it is written.
/// A restart loses them; the key is then recovered from the tenant's `nex_apikeys` row.
#[derive(Clone, Default)]
pub struct PendingKeys(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, SecretString>>>,
);

impl PendingKeys {
    fn slot(nexus_url: &str, contact_center_id: &str) -> String {
        format!("{}|{contact_center_id}", trim_url(nexus_url))
    }

    fn keep(&self, nexus_url: &str, contact_center_id: &str, key: &SecretString) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(Self::slot(nexus_url, contact_center_id), key.clone());
    }

    fn get(&self, nexus_url: &str, contact_center_id: &str) -> Option<SecretString> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&Self::slot(nexus_url, contact_center_id))
            .cloned()
    }

    fn written(&self, nexus_url: &str, contact_center_id: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&Self::slot(nexus_url, contact_center_id));
    }
}

/// What a tenant run found and did.
#[derive(Debug, Default)]
pub struct TenantRun {
    pub report: RunReport,
    pub contact_center_id: Option<String>,
    pub operation_id: Option<String>,
    pub output_secret_name: String,
    /// The API key, for showing it masked; it is written only to the output Secret.
    pub api_key: Option<SecretString>,
    /// [`api_key_digest`] of that key, for the tenant's status.
    pub api_key_digest: Option<String>,
    /// The PlatformUCS URL registered, for the tenant's status.
    pub ucs_url: Option<String>,
    /// The credentials' fingerprint the Nexus tenant was provisioned or updated with.
    pub credentials_fingerprint: Option<String>,
}

/// What the operator recorded of a tenant: the tenant's status, else (for `provision`, or
/// a tenant from before status held it) the output Secret's annotations.
fn recorded<'a>(
    tenant: &'a DigitalChannelsTenant,
    previous: &'a OutputRecord,
    from_status: impl Fn(&'a crate::api::TenantStatus) -> Option<&'a String>,
    annotation: &str,
) -> Option<&'a String> {
    tenant
        .status
        .as_ref()
        .and_then(from_status)
        .or_else(|| previous.annotations.get(annotation))
}

/// SHA-256 of an API key, first 16 bytes, base64url: a record of which key the operator
/// holds that reveals nothing of it (the keys are random UUIDs).
pub fn api_key_digest(key: &SecretString) -> String {
    use base64::Engine;
    let digest = ring::digest::digest(&ring::digest::SHA256, key.expose().as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}

/// The tenant user's credentials as a fingerprint, to notice a rotated password without
/// keeping it: keyed with the environment's fingerprint key, so neither a client secret
/// rotation changes it nor can a reader of status or of the output Secret test guesses.
fn credentials_fingerprint(env: &ResolvedEnvironment, credentials: &Credentials) -> Option<String> {
    env.fingerprint(&[
        "tenant-user",
        &credentials.username,
        credentials.password.expose(),
    ])
}

/// The fingerprint of versions before the fingerprint key (keyed with the client secret),
/// still found in the annotations of tenants provisioned by them: the same credentials must
/// not look rotated after an upgrade.
fn legacy_credentials_fingerprint(
    client_secret: &SecretString,
    credentials: &Credentials,
) -> String {
    use base64::Engine;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, client_secret.expose().as_bytes());
    let mut message = credentials.username.as_bytes().to_vec();
    message.push(0);
    message.extend_from_slice(credentials.password.expose().as_bytes());
    let tag = ring::hmac::sign(&key, &message);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag.as_ref()[..16])
}

fn upstream(hint: &str) -> impl Fn(UpstreamError) -> StepError + '_ {
    move |e| {
        let hint = if e.kind == ErrorKind::Unauthorized {
            hint
        } else {
            ""
        };
        StepError::from_upstream(&e, hint)
    }
}

/// Runs the tenant's steps against an environment that is ready.
pub async fn run_tenant(
    runbook: &Runbook,
    tenant: &DigitalChannelsTenant,
    env: &ResolvedEnvironment,
    store: &dyn SecretStore,
) -> TenantRun {
    let name = tenant.metadata.name.clone().unwrap_or_default();
    let spec = &tenant.spec;
    let mut run = TenantRun {
        output_secret_name: spec.output_secret_name(&name),
        ..TenantRun::default()
    };
    let ops_hint = format!(
        "Check the ops user in Secret {}",
        env.spec.ops_credentials_secret.name
    );

    // Credentials.
    let started = Instant::now();
    let secrets = async {
        let user = store
            .read_credentials(
                &spec.credentials_secret.name,
                &spec.credentials_secret.username_key,
                &spec.credentials_secret.password_key,
            )
            .await
            .map_err(|e| e.to_step_error("tenant user"))?;
        let ucs_key = match spec.ucs.as_ref().and_then(|u| u.api_key_secret.as_ref()) {
            Some(r) => Some(
                store
                    .read(&r.name, &r.key)
                    .await
                    .map_err(|e| e.to_step_error("UCS API key"))?,
            ),
            None => None,
        };
        let previous = store
            .read_output(&run.output_secret_name)
            .await
            .map_err(|e| e.to_step_error("output"))?
            .unwrap_or_default();
        Ok::<_, StepError>((user, ucs_key, previous))
    }
    .await;
    let (user, ucs_key, previous) = match secrets {
        Ok(found) => {
            run.report
                .push(Step::Credentials, started, Ok(Outcome::AlreadyRight), "");
            found
        }
        Err(e) => {
            run.report.push(Step::Credentials, started, Err(e), "");
            return run;
        }
    };
    // Before anything upstream: a key created now must have a place to go.
    if let Err(e) = store.check_output(&run.output_secret_name).await {
        run.report.push(
            Step::OutputSecret,
            Instant::now(),
            Err(e.to_step_error("output")),
            run.output_secret_name.clone(),
        );
        return run;
    }

    let clients = (|| {
        Ok::<_, UpstreamError>((
            runbook.connector.gws_auth(&env.spec.auth_url, env.ca())?,
            runbook
                .connector
                .environment(env.spec.environment_url(), env.ca())?,
            runbook.connector.nexus(&env.spec.nexus_url, env.ca())?,
            runbook.connector.nexus_db(&env.database_url)?,
        ))
    })();
    let (auth, environment, nexus, db) = match clients {
        Ok(c) => c,
        Err(e) => {
            run.report.push(
                Step::ContactCenterResolved,
                Instant::now(),
                Err(StepError::from_upstream(&e, "")),
                "",
            );
            return run;
        }
    };

    // Contact center.
    let started = Instant::now();
    let centers = environment
        .list_contact_centers(&env.ops)
        .await
        .map_err(upstream(&ops_hint));
    let chosen = centers.and_then(|centers| {
        contact_center::choose(
            &centers,
            spec.contact_center_id.as_deref(),
            spec.contact_center_domain.as_deref(),
        )
        .map(|c| c.id.clone())
    });
    let cc_id = match chosen {
        Ok(id) => {
            run.report.push(
                Step::ContactCenterResolved,
                started,
                Ok(Outcome::Verified),
                id.clone(),
            );
            id
        }
        Err(e) => {
            run.report
                .push(Step::ContactCenterResolved, started, Err(e), "");
            return run;
        }
    };
    run.contact_center_id = Some(cc_id.clone());

    // chatservice-uri: POST only when absent or different.
    let started = Instant::now();
    let result = register_chat_service(environment.as_ref(), &env.ops, &cc_id, &env.spec.nexus_url)
        .await
        .map_err(upstream(&ops_hint));
    let failed = result.is_err();
    run.report
        .push(Step::ChatServiceRegistered, started, result, "");
    if failed {
        return run;
    }

    // Tenant token: password grant as `<ccId>\<user>`, reused until it nears expiry.
    let started = Instant::now();
    let grant = Grant::Password {
        username: format!("{cc_id}\\{}", user.username),
        password: user.password.clone(),
    };
    let user_hint = format!(
        "Check the tenant user in Secret {} (it logs in as {cc_id}\\{})",
        spec.credentials_secret.name, user.username
    );
    let token = match runbook
        .tokens
        .get(
            auth.as_ref(),
            &env.spec.auth_url,
            &env.spec.client.id,
            &env.client_secret,
            &grant,
        )
        .await
    {
        Ok((token, reused)) => {
            let outcome = if reused {
                Outcome::Reused
            } else {
                Outcome::Obtained
            };
            run.report.push(Step::TenantToken, started, Ok(outcome), "");
            token
        }
        Err(e) => {
            run.report
                .push(Step::TenantToken, started, Err(upstream(&user_hint)(e)), "");
            return run;
        }
    };

    // PlatformUCS: no GET is known, so the registered URL is remembered (status, annotation).
    let mut record = OutputRecord::default();
    if let Some(ucs) = &spec.ucs {
        let started = Instant::now();
        let registered = recorded(
            tenant,
            &previous,
            |s| s.ucs_url.as_ref(),
            annotations::UCS_URL,
        );
        let result = if registered.is_some_and(|u| trim_url(u) == trim_url(&ucs.url)) {
            Ok(Outcome::AlreadyRight)
        } else {
            let key = ucs_key.as_ref().unwrap_or(&token);
            nexus
                .register_ucs(key, &cc_id, &ucs.url)
                .await
                .map(|_| {
                    if registered.is_some() {
                        Outcome::Updated
                    } else {
                        Outcome::Created
                    }
                })
                // "Already exists" to a first registration: registered. To a change of URL it
                // would leave the old one in place: an error.
                .or_else(|e| match e.kind {
                    ErrorKind::Conflict if registered.is_none() => Ok(Outcome::AlreadyRight),
                    _ => Err(e),
                })
                .map_err(upstream(
                    "Check spec.ucs.apiKeySecret, or the tenant token's rights in Nexus",
                ))
        };
        let failed = result.is_err();
        run.report
            .push(Step::UcsRegistered, started, result, ucs.url.clone());
        if failed {
            return run;
        }
        record
            .annotations
            .insert(annotations::UCS_URL.to_string(), ucs.url.clone());
        run.ucs_url = Some(ucs.url.clone());
    }

    // The Nexus tenant.
    let started = Instant::now();
    let request = TenantRequest {
        contact_center_id: cc_id.clone(),
        name: spec.tenant_name.clone(),
        type_: spec.type_.clone(),
        backend_url: env.spec.gws_url.clone(),
        username: user.username.clone(),
        password: user.password.clone(),
        genesys_tenant_id: spec.genesys_tenant_id,
    };
    let Some(current_fingerprint) = credentials_fingerprint(env, &user) else {
        run.report.push(
            Step::TenantProvisioned,
            Instant::now(),
            Err(StepError::transient(
                Reason::WaitingForEnvironment,
                format!(
                    "DigitalChannelsEnvironment {} has not made its fingerprint key (Secret {}) yet",
                    env.name,
                    super::environment::fingerprint_key_ref(&env.name).name
                ),
            )),
            "",
        );
        return run;
    };
    let legacy_fingerprint = legacy_credentials_fingerprint(&env.client_secret, &user);
    let recorded_fingerprint = recorded(
        tenant,
        &previous,
        |s| s.credentials_fingerprint.as_ref(),
        annotations::CREDENTIALS_FINGERPRINT,
    )
    .cloned();
    let recorded_digest = tenant
        .status
        .as_ref()
        .and_then(|s| s.api_key_digest.clone());
    let pending = runbook.pending_keys.get(&env.spec.nexus_url, &cc_id);
    let provisioned = provision_tenant(
        nexus.as_ref(),
        db.as_ref(),
        &token,
        &request,
        &previous,
        &Records {
            api_key_digest: recorded_digest.as_deref(),
            credentials: recorded_fingerprint.as_deref(),
            current_credentials: &current_fingerprint,
            legacy_credentials: &legacy_fingerprint,
            pending_key: pending,
        },
    )
    .await;
    if let Ok((Outcome::Created, key, _)) = &provisioned {
        runbook.pending_keys.keep(&env.spec.nexus_url, &cc_id, key);
    }
    let (api_key, operation_id) = match provisioned {
        Ok((outcome, key, operation_id)) => {
            run.report.push(
                Step::TenantProvisioned,
                started,
                Ok(outcome),
                spec.tenant_name.clone(),
            );
            (key, operation_id)
        }
        Err(e) => {
            run.report
                .push(Step::TenantProvisioned, started, Err(e), "");
            return run;
        }
    };
    run.operation_id = operation_id.clone();

    // The output Secret.
    let started = Instant::now();
    record.data = [
        (keys::API_KEY, api_key.clone()),
        (keys::CONTACT_CENTER_ID, SecretString::new(cc_id.clone())),
        (
            keys::TENANT_NAME,
            SecretString::new(spec.tenant_name.clone()),
        ),
        (
            keys::NEXUS_URL,
            SecretString::new(env.spec.nexus_url.clone()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    record.annotations.insert(
        annotations::CREDENTIALS_FINGERPRINT.to_string(),
        current_fingerprint.clone(),
    );
    if let Some(op) = &operation_id {
        record
            .annotations
            .insert(annotations::OPERATION_ID.to_string(), op.clone());
    }
    let written = store.write_output(&run.output_secret_name, &record).await;
    let result = written
        .map(|w| match w {
            WriteOutcome::Created => Outcome::Created,
            WriteOutcome::Updated => Outcome::Updated,
            WriteOutcome::Unchanged => Outcome::AlreadyRight,
        })
        .map_err(|e| e.to_step_error("output"));
    let failed = result.is_err();
    run.report.push(
        Step::OutputSecret,
        started,
        result,
        run.output_secret_name.clone(),
    );
    if failed {
        return run;
    }
    runbook.pending_keys.written(&env.spec.nexus_url, &cc_id);
    run.api_key_digest = Some(api_key_digest(&api_key));
    run.credentials_fingerprint = Some(current_fingerprint);
    run.api_key = Some(api_key);

    // DesignerEnv: manual until acknowledged.
    let acknowledged = tenant
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::api::DESIGNER_ENV_ANNOTATION))
        .is_some_and(|v| v == "true");
    let (outcome, detail) = if acknowledged {
        (Outcome::AlreadyRight, "acknowledged".to_string())
    } else {
        (
            Outcome::ManualStepRequired,
            designer_env_instructions(&name),
        )
    };
    run.report.push(
        Step::DesignerEnvConfigured,
        Instant::now(),
        Ok(outcome),
        detail,
    );
    run
}

async fn register_chat_service(
    environment: &dyn crate::upstream::EnvironmentApi,
    ops: &Credentials,
    cc_id: &str,
    nexus_url: &str,
) -> Result<Outcome, UpstreamError> {
    let settings = environment.list_settings(ops, cc_id).await?;
    let current = settings.iter().find(|s| s.name == CHAT_SERVICE_SETTING);
    if let Some(s) = current
        && s.value
            .as_str()
            .is_some_and(|v| trim_url(v) == trim_url(nexus_url))
        && s.location == "/"
    {
        return Ok(Outcome::AlreadyRight);
    }
    let wanted = Setting {
        name: CHAT_SERVICE_SETTING.to_string(),
        location: "/".to_string(),
        value: serde_json::Value::String(nexus_url.to_string()),
        shared: false,
    };
    environment.upsert_setting(ops, cc_id, &wanted).await?;
    Ok(if current.is_some() {
        Outcome::Updated
    } else {
        Outcome::Created
    })
}

/// What the operator recorded of the tenant, and the credentials' fingerprint now.
struct Records<'a> {
    api_key_digest: Option<&'a str>,
    credentials: Option<&'a str>,
    current_credentials: &'a str,
    /// See [`legacy_credentials_fingerprint`].
    legacy_credentials: &'a str,
    /// The create answer's key of an earlier pass, not yet written anywhere.
    pending_key: Option<SecretString>,
}

/// Creates the tenant once and keeps its key. When the tenant exists but its key was
/// never recorded (the create's answer was lost), the key is recovered from
/// `nex_apikeys` rather than provisioning twice. A rotated tenant password is pushed
/// with the (assumed) update; the tenant is never deleted and re-created, which would
/// change its key under every consumer.
async fn provision_tenant(
    nexus: &dyn NexusApi,
    db: &dyn crate::upstream::NexusDb,
    token: &SecretString,
    request: &TenantRequest,
    previous: &OutputRecord,
    records: &Records<'_>,
) -> Result<(Outcome, SecretString, Option<String>), StepError> {
    let recorded_digest = records.api_key_digest;
    let to_step = upstream("Check the tenant user's rights in Nexus");
    // A pending key is the newest create answer: it wins over what the Secret still holds.
    let known_key = records
        .pending_key
        .clone()
        .or_else(|| previous.value(keys::API_KEY).cloned());
    let previous_op = previous.annotations.get(annotations::OPERATION_ID).cloned();
    // The GET is an assumed endpoint: when Nexus refuses it, fall through to the create,
    // whose 409 tells the same.
    let exists = match nexus.get_tenant(token, &request.contact_center_id).await {
        Ok(Some(_)) => true,
        // A 404 may be an unknown route rather than an absent tenant: with a key recorded,
        // Nexus's own table decides before anything is created again.
        Ok(None) if known_key.is_some() => !db
            .find_api_keys(&request.contact_center_id, &request.name)
            .await
            .map_err(&to_step)?
            .is_empty(),
        Ok(None) => false,
        // Refused GET: with a recorded key the tenant exists; without, try the create.
        Err(e) if matches!(e.kind, ErrorKind::Rejected) => known_key.is_some(),
        Err(e) => return Err(to_step(e)),
    };
    if !exists {
        match nexus.create_tenant(token, request).await {
            Ok(created) => return Ok((Outcome::Created, created.api_key, created.operation_id)),
            Err(e) if e.kind == ErrorKind::Conflict => {}
            Err(e) => return Err(to_step(e)),
        }
    }
    // The tenant exists and its create answer is not in this pass. The key the operator
    // recorded stands; one edited in the output Secret, or a lost one, is recovered from
    // the tenant's own nex_apikeys row, and only if that row is the key once recorded.
    let edited = |k: &SecretString| recorded_digest.is_some_and(|d| api_key_digest(k) != d);
    let (key, outcome) = match known_key {
        Some(known) if !edited(&known) => (known, Outcome::AlreadyRight),
        known => {
            let key = recover_api_key(db, request).await?;
            // Unless the Secret and Nexus's table agree on a new key (an administrator rotated
            // it), a row that is not the recorded key is not taken.
            if edited(&key) && known.as_ref() != Some(&key) {
                return Err(StepError::permanent(
                    Reason::Conflict,
                    format!(
                        "the xapikey of tenant {} ({}) is not the key the operator recorded, and nex_apikeys holds \
                         yet another one; the operator will not choose: put the right key into the output Secret \
                         under xapikey",
                        request.name, request.contact_center_id
                    ),
                ));
            }
            (key, Outcome::Recovered)
        }
    };
    let rotated = records
        .credentials
        .is_some_and(|f| f != records.current_credentials && f != records.legacy_credentials);
    if rotated && outcome == Outcome::AlreadyRight {
        return match nexus.update_tenant(token, request).await {
            Ok(()) => Ok((Outcome::Updated, key, previous_op)),
            Err(e) if matches!(e.kind, ErrorKind::Rejected | ErrorKind::NotFound) => {
                Err(StepError::permanent(
                    Reason::TenantUpdateUnsupported,
                    format!(
                        "the tenant user's credentials changed but Nexus refused the tenant update ({}); update the tenant's \
                     token in Nexus by hand, then restore the previous password or recreate the output Secret",
                        e.detail
                    ),
                ))
            }
            Err(e) => Err(to_step(e)),
        };
    }
    Ok((outcome, key, previous_op))
}

/// The key of a tenant whose create answer was lost: the one `nex_apikeys` row of this
/// tenant (its name, and its contact center where the table has a `tenantid` column).
/// Several rows, or none, and nothing is guessed.
async fn recover_api_key(
    db: &dyn crate::upstream::NexusDb,
    request: &TenantRequest,
) -> Result<SecretString, StepError> {
    let rows = db
        .find_api_keys(&request.contact_center_id, &request.name)
        .await
        .map_err(upstream(
            "Check the database URL in the environment's Secret",
        ))?;
    let who = format!("tenant {} ({})", request.name, request.contact_center_id);
    match <[SecretString; 1]>::try_from(rows) {
        Ok([key]) => Ok(key),
        Err(rows) if rows.is_empty() => Err(StepError::permanent(
            Reason::Conflict,
            format!(
                "{who} exists in Nexus but its API key was never recorded and nex_apikeys has no key named {} \
                 for it; put the key into the output Secret under xapikey, or remove the tenant from Nexus",
                request.name
            ),
        )),
        Err(rows) => Err(StepError::permanent(
            Reason::Conflict,
            format!(
                "{who} exists in Nexus but its API key was never recorded, and {} rows of nex_apikeys match it; \
                 the operator will not choose one: put the right key into the output Secret under xapikey",
                rows.len()
            ),
        )),
    }
}

/// Tenant cleanup for `deletionPolicy: Delete`: the Nexus tenant and its PlatformUCS
/// service. "Already gone" counts as done.
pub async fn delete_tenant(
    runbook: &Runbook,
    tenant: &DigitalChannelsTenant,
    env: &ResolvedEnvironment,
    store: &dyn SecretStore,
    contact_center_id: &str,
) -> Result<(), StepError> {
    let spec = &tenant.spec;
    let user = store
        .read_credentials(
            &spec.credentials_secret.name,
            &spec.credentials_secret.username_key,
            &spec.credentials_secret.password_key,
        )
        .await
        .map_err(|e| e.to_step_error("tenant user"))?;
    let to_step = |e: UpstreamError| StepError::from_upstream(&e, "");
    let auth = runbook
        .connector
        .gws_auth(&env.spec.auth_url, env.ca())
        .map_err(to_step)?;
    let nexus = runbook
        .connector
        .nexus(&env.spec.nexus_url, env.ca())
        .map_err(to_step)?;
    let grant = Grant::Password {
        username: format!("{contact_center_id}\\{}", user.username),
        password: user.password.clone(),
    };
    let (token, _) = runbook
        .tokens
        .get(
            auth.as_ref(),
            &env.spec.auth_url,
            &env.spec.client.id,
            &env.client_secret,
            &grant,
        )
        .await
        .map_err(to_step)?;
    if let Some(ucs) = &spec.ucs {
        let key = match &ucs.api_key_secret {
            Some(r) => store
                .read(&r.name, &r.key)
                .await
                .map_err(|e| e.to_step_error("UCS API key"))?,
            None => token.clone(),
        };
        nexus
            .delete_ucs(&key, contact_center_id)
            .await
            .map_err(to_step)?;
    }
    nexus
        .delete_tenant(&token, contact_center_id)
        .await
        .map_err(to_step)?;
    Ok(())
}
