//! The Nexus tenant: created once, its API key kept, recovered or refused, never replaced.

use super::annotations;
use super::keys;
use crate::runbook::environment::ResolvedEnvironment;
use crate::runbook::report::{Outcome, Reason, StepError};
use crate::runbook::secrets::OutputRecord;
use crate::secret::{Credentials, SecretString};
use crate::upstream::nexus::{NexusApi, TenantRequest};
use crate::upstream::{ErrorKind, UpstreamError};

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
pub(super) fn credentials_fingerprint(
    env: &ResolvedEnvironment,
    credentials: &Credentials,
) -> Option<String> {
    env.fingerprint(&[
        "tenant-user",
        &credentials.username,
        credentials.password.expose(),
    ])
}

/// The fingerprint of versions before the fingerprint key (keyed with the client secret),
/// still found in the annotations of tenants provisioned by them: the same credentials must
/// not look rotated after an upgrade.
pub(super) fn legacy_credentials_fingerprint(
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

pub(super) fn upstream(hint: &str) -> impl Fn(UpstreamError) -> StepError + '_ {
    move |e| {
        let hint = if e.kind == ErrorKind::Unauthorized {
            hint
        } else {
            ""
        };
        StepError::from_upstream(&e, hint)
    }
}

/// The Nexus instances whose (assumed) tenant GET has answered a tenant: there a 404 means
/// the tenant is gone, not that the route is unknown. Cheap to clone; clones share the set.
#[derive(Clone, Default)]
pub struct TenantReads(std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>);

impl TenantReads {
    fn confirm(&self, nexus_url: &str) {
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        known.insert(crate::api::common::normal_url(nexus_url));
    }

    fn confirmed(&self, nexus_url: &str) -> bool {
        let known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        known.contains(&crate::api::common::normal_url(nexus_url))
    }
}

/// What the operator recorded of the tenant, and the credentials' fingerprint now.
pub(super) struct Records<'a> {
    pub api_key_digest: Option<&'a str>,
    /// The fingerprints recorded: the status's and the output Secret's. A pass on a cached
    /// tenant older than the operator's last status write sees a stale status, while the
    /// Secret it just read is current: the credentials are rotated only if neither matches.
    pub credentials: Vec<&'a str>,
    pub current_credentials: &'a str,
    /// See [`legacy_credentials_fingerprint`].
    pub legacy_credentials: &'a str,
    /// The create answer's key of an earlier pass, not yet written anywhere.
    pub pending_key: Option<SecretString>,
    /// Where the tenant GET is known to answer, and this Nexus's URL.
    pub reads: &'a TenantReads,
    pub nexus_url: &'a str,
    /// Observe: look, create and update nothing.
    pub observe: bool,
}

/// Creates the tenant once and keeps its key. When the tenant exists but its key was
/// never recorded (the create's answer was lost), the key is recovered from
/// `nex_apikeys` rather than provisioning twice. A rotated tenant password is pushed
/// with the (assumed) update; the tenant is never deleted and re-created, which would
/// change its key under every consumer. Under Observe nothing is created or updated: an
/// absent tenant is `Missing` (no key), a rotated password `Drifted` (the key found).
pub(super) async fn provision_tenant(
    nexus: &dyn NexusApi,
    db: &dyn crate::upstream::NexusDb,
    token: &SecretString,
    request: &TenantRequest,
    previous: &OutputRecord,
    records: &Records<'_>,
) -> Result<(Outcome, Option<SecretString>, Option<String>), StepError> {
    let to_step = upstream("Check the tenant user's rights in Nexus");
    // A pending key is the newest create answer: it wins over what the Secret still holds.
    let known_key = records
        .pending_key
        .clone()
        .or_else(|| previous.value(keys::API_KEY).cloned());
    let previous_op = previous.annotations.get(annotations::OPERATION_ID).cloned();
    let exists = tenant_exists(nexus, db, token, request, known_key.is_some(), records).await?;
    if !exists && records.observe {
        let missing = format!(
            "Nexus has no tenant {} ({}) and nex_apikeys no key for it: Manage would create the tenant and keep its new key \
             in the output Secret",
            request.contact_center_id, request.name
        );
        return Ok((Outcome::Missing(missing), None, previous_op));
    }
    if !exists {
        match nexus.create_tenant(token, request).await {
            Ok(created) => {
                return Ok((
                    Outcome::Created,
                    Some(created.api_key),
                    created.operation_id,
                ));
            }
            Err(e) if e.kind == ErrorKind::Conflict => {}
            Err(e) => return Err(to_step(e)),
        }
    }
    let (key, outcome) = existing_key(db, request, known_key, records.api_key_digest).await?;
    let rotated = !records.credentials.is_empty()
        && records
            .credentials
            .iter()
            .all(|f| *f != records.current_credentials && *f != records.legacy_credentials);
    if rotated && outcome == Outcome::AlreadyRight {
        let outcome = push_credentials(nexus, token, request, records.observe).await?;
        return Ok((outcome, Some(key), previous_op));
    }
    Ok((outcome, Some(key), previous_op))
}

/// The key of a tenant that exists and whose create answer is not in this pass. The key
/// the operator recorded stands; one edited in the output Secret, or a lost one, is
/// recovered from the tenant's own nex_apikeys row, and only if that row is the key once
/// recorded.
async fn existing_key(
    db: &dyn crate::upstream::NexusDb,
    request: &TenantRequest,
    known_key: Option<SecretString>,
    recorded_digest: Option<&str>,
) -> Result<(SecretString, Outcome), StepError> {
    let edited = |k: &SecretString| recorded_digest.is_some_and(|d| api_key_digest(k) != d);
    match known_key {
        Some(known) if !edited(&known) => Ok((known, Outcome::AlreadyRight)),
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
            Ok((key, Outcome::Recovered))
        }
    }
}

/// Rotated credentials, pushed with the (assumed) tenant update; under Observe, said as
/// drift instead.
async fn push_credentials(
    nexus: &dyn NexusApi,
    token: &SecretString,
    request: &TenantRequest,
    observe: bool,
) -> Result<Outcome, StepError> {
    if observe {
        return Ok(Outcome::Drifted(format!(
            "the tenant user's credentials are not those recorded for Nexus tenant {} ({}): Manage would update the \
             tenant with them",
            request.contact_center_id, request.name
        )));
    }
    match nexus.update_tenant(token, request).await {
        Ok(()) => Ok(Outcome::Updated),
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
        Err(e) => Err(upstream("Check the tenant user's rights in Nexus")(e)),
    }
}

/// Whether the tenant exists in Nexus. The GET is an assumed endpoint: when Nexus refuses
/// it, the create's 409 tells the same. A 404 may be an unknown route rather than an absent
/// tenant: with a key recorded, Nexus's own table decides, unless this Nexus's GET has
/// answered tenants before, in which case a tenant it no longer has while its key row stays
/// is said so rather than taken as provisioned (creating it again would change its key).
async fn tenant_exists(
    nexus: &dyn NexusApi,
    db: &dyn crate::upstream::NexusDb,
    token: &SecretString,
    request: &TenantRequest,
    key_known: bool,
    records: &Records<'_>,
) -> Result<bool, StepError> {
    let to_step = upstream("Check the tenant user's rights in Nexus");
    let (cc, name) = (&request.contact_center_id, &request.name);
    match nexus.get_tenant(token, cc).await {
        Ok(Some(_)) => {
            records.reads.confirm(records.nexus_url);
            Ok(true)
        }
        // Observed with no key known: Manage would send the create, whose 409 tells that
        // the tenant exists; the look instead is its key row, which recovery would take.
        Ok(None)
        | Err(UpstreamError {
            kind: ErrorKind::Rejected,
            ..
        }) if records.observe && !key_known && !records.reads.confirmed(records.nexus_url) => {
            let rows = db.find_api_keys(cc, name).await.map_err(&to_step)?;
            Ok(!rows.is_empty())
        }
        Ok(None) if key_known => {
            let rows = db.find_api_keys(cc, name).await.map_err(&to_step)?;
            if rows.is_empty() {
                return Ok(false);
            }
            if records.reads.confirmed(records.nexus_url) {
                return Err(StepError::permanent(
                    Reason::TenantMissing,
                    format!(
                        "Nexus has no tenant {cc} ({name}) any more, though nex_apikeys still holds its key: restore \
                         the tenant in Nexus, or delete its nex_apikeys row and the output Secret to provision it \
                         again with a new key"
                    ),
                ));
            }
            tracing::warn!(
                contact_center = %cc,
                "Nexus answered 404 to the tenant GET, which may not exist there; its nex_apikeys row is taken as the tenant"
            );
            Ok(true)
        }
        Ok(None) => Ok(false),
        // Refused GET: with a recorded key the tenant exists; without, try the create.
        Err(e) if matches!(e.kind, ErrorKind::Rejected) => Ok(key_known),
        Err(e) => Err(to_step(e)),
    }
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
        .map_err(upstream("Check the database URL in that Secret"))?;
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
