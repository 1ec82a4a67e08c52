//! One tenant pass: what it reads once, each step as a method, and the order in
//! [`TenantPass::run`], which is the graph of the module's documentation.

use std::sync::Arc;

use super::provision::{
    Records, credentials_fingerprint, legacy_credentials_fingerprint, provision_tenant, upstream,
};
use super::{TenantRun, annotations, api_key_digest, designer_env_instructions, keys};
use crate::api::DigitalChannelsTenant;
use crate::api::common::normal_url;
use crate::api::tenant::UcsSpec;
use crate::runbook::Runbook;
use crate::runbook::contact_center;
use crate::runbook::environment::{ResolvedEnvironment, fingerprint_key_ref};
use crate::runbook::recorder::StepRecorder;
use crate::runbook::report::{Outcome, Reason, Step, StepError};
use crate::runbook::secrets::{OutputRecord, SecretStore, WriteOutcome};
use crate::secret::{Credentials, SecretString};
use crate::upstream::environment::{ContactCenter, Setting};
use crate::upstream::gws_auth::Grant;
use crate::upstream::nexus::TenantRequest;
use crate::upstream::{EnvironmentApi, ErrorKind, GwsAuthApi, NexusApi, NexusDb, UpstreamError};

/// A tenant, its environment and the means to act: what every step of a pass shares.
pub(super) struct TenantPass<'a> {
    runbook: &'a Runbook,
    tenant: &'a DigitalChannelsTenant,
    env: &'a ResolvedEnvironment,
    store: &'a dyn SecretStore,
    claim: &'a dyn super::ClaimBeforeWrites,
    pub output_secret_name: String,
    ops_hint: String,
}

/// What the token chain reads: the tenant user, and the output Secret as it is (the key and
/// bookkeeping of earlier passes).
struct Inputs<'p> {
    user: Credentials,
    previous: &'p OutputRecord,
}

struct Clients {
    auth: Arc<dyn GwsAuthApi>,
    environment: Arc<dyn EnvironmentApi>,
    nexus: Arc<dyn NexusApi>,
    db: Arc<dyn NexusDb>,
}

/// The tenant token of this pass, and whether it came from the cache.
struct TenantToken {
    value: SecretString,
    reused: bool,
}

/// What the two chains after the tenant token share.
struct Chain<'a, 'p> {
    steps: &'a StepRecorder,
    clients: &'a Clients,
    inputs: &'a Inputs<'p>,
    token: &'a TenantToken,
    cc: &'a str,
    /// PlatformUCS's outcome once it has one: `None` while it runs.
    ucs_done: std::sync::Mutex<Option<Option<String>>>,
}

/// What provisioning gave: the key and Nexus's operation id.
struct Provisioned {
    api_key: SecretString,
    operation_id: Option<String>,
    fingerprint: String,
}

impl<'a> TenantPass<'a> {
    pub fn new(
        runbook: &'a Runbook,
        tenant: &'a DigitalChannelsTenant,
        env: &'a ResolvedEnvironment,
        store: &'a dyn SecretStore,
        claim: &'a dyn super::ClaimBeforeWrites,
    ) -> Self {
        let name = tenant.metadata.name.clone().unwrap_or_default();
        Self {
            runbook,
            tenant,
            env,
            store,
            claim,
            output_secret_name: tenant.spec.output_secret_name(&name),
            ops_hint: format!(
                "Check the ops user in Secret {}",
                env.spec.ops_credentials_secret.name
            ),
        }
    }

    /// Observe: every step looks and none writes upstream.
    fn observes(&self) -> bool {
        self.tenant.spec.management_policy.observes()
    }

    /// Runs the steps, each once its inputs hold; `None` when one failed (it is recorded).
    /// Each Secret is read by the step that needs it, so that its failure shows there.
    pub async fn run(&self, steps: &StepRecorder, run: &mut TenantRun) -> Option<()> {
        // Before anything upstream: a key created now must have a place to go.
        let previous = steps
            .require(
                Step::OutputSecret,
                self.output_secret_name.clone(),
                self.read_output(),
            )
            .await?;
        let clients = steps
            .require(Step::ContactCenterResolved, "", async { self.connect() })
            .await?;
        // Nothing upstream is written before the claim: a contact center claimed by another
        // resource stops the pass here, and is recorded as this tenant's only once claimed.
        let cc = steps
            .run_detailed(
                Step::ContactCenterResolved,
                |id: Option<&String>| id.cloned().unwrap_or_default(),
                async {
                    let (outcome, (cc, centers)) = self.resolve_contact_center(&clients).await?;
                    self.claim.claim(&cc, &centers).await?;
                    Ok((outcome, cc))
                },
            )
            .await?;
        run.contact_center_id = Some(cc.clone());

        let chat_service = steps.run(
            Step::ChatServiceRegistered,
            "",
            self.register_chat_service(&clients, &cc),
        );
        let tenant = self.provision_and_record(steps, run, &clients, &previous, &cc);
        let (chat_service, tenant) = tokio::join!(chat_service, tenant);
        chat_service.and(tenant)
    }

    /// The token chain: the tenant token, then PlatformUCS beside the Nexus tenant, then the
    /// key into the output Secret and the DesignerEnv step.
    async fn provision_and_record(
        &self,
        steps: &StepRecorder,
        run: &mut TenantRun,
        clients: &Clients,
        previous: &OutputRecord,
        cc: &str,
    ) -> Option<()> {
        let user = steps
            .require(Step::TenantToken, "", self.read_user())
            .await?;
        let inputs = &Inputs { user, previous };
        let token = steps
            .run(
                Step::TenantToken,
                "",
                self.tenant_token(clients, cc, &inputs.user),
            )
            .await?;
        let chain = Chain {
            steps,
            clients,
            inputs,
            token: &token,
            cc,
            ucs_done: std::sync::Mutex::new(None),
        };
        let (ucs_url, provisioned) = tokio::join!(self.ucs_chain(&chain), self.key_chain(&chain));
        let ucs_held = self.tenant.spec.ucs.is_none() || ucs_url.is_some();
        run.ucs_url = ucs_url.clone();
        let (provisioned, written) = provisioned?;
        run.operation_id = provisioned.operation_id.clone();
        let record = self.output_record(cc, previous, &provisioned, ucs_url);
        if record != written {
            // PlatformUCS finished after the key was written: its record follows.
            let name = self.output_secret_name.clone();
            steps
                .require(Step::OutputSecret, name, self.write_output(&record))
                .await?;
        }
        run.api_key_digest = Some(api_key_digest(&provisioned.api_key));
        run.credentials_fingerprint = Some(provisioned.fingerprint);
        run.api_key = Some(provisioned.api_key);
        steps
            .run_detailed(
                Step::DesignerEnvConfigured,
                |d: Option<&String>| d.cloned().unwrap_or_default(),
                async { Ok(self.designer_env()) },
            )
            .await;
        ucs_held.then_some(())
    }

    /// PlatformUCS, beside the Nexus tenant: its URL once registered, also left in
    /// `ucs_done` for the key's first write.
    async fn ucs_chain(&self, c: &Chain<'_, '_>) -> Option<String> {
        let url = async {
            let ucs = self.tenant.spec.ucs.as_ref()?;
            let key = c
                .steps
                .require(Step::UcsRegistered, ucs.url.clone(), self.read_ucs_key())
                .await?;
            let key = &key;
            let register = move |token: SecretString| async move {
                let key = key.as_ref().unwrap_or(&token);
                self.register_ucs(c.clients, c.inputs, key, c.cc, ucs).await
            };
            let with_token = self.with_token(c.clients, c.cc, &c.inputs.user, c.token, register);
            c.steps
                .run(Step::UcsRegistered, ucs.url.clone(), with_token)
                .await
                .flatten()
        }
        .await;
        *c.ucs_done.lock().unwrap_or_else(|e| e.into_inner()) = Some(url.clone());
        url
    }

    /// The Nexus tenant, then its key into the output Secret as soon as it is in hand,
    /// whatever PlatformUCS is doing: it is the only copy. PlatformUCS's record goes with it
    /// when it is done by then (the usual case: one call against two), else in a second
    /// write after it.
    async fn key_chain(&self, c: &Chain<'_, '_>) -> Option<(Provisioned, OutputRecord)> {
        let provision = move |token: SecretString| async move {
            self.provision(c.clients, c.inputs, &token, c.cc).await
        };
        let with_token = self.with_token(c.clients, c.cc, &c.inputs.user, c.token, provision);
        let name = self.tenant.spec.tenant_name.clone();
        // No key when observed missing: nothing to write.
        let provisioned = c
            .steps
            .run(Step::TenantProvisioned, name, with_token)
            .await??;
        let ucs_so_far = c.ucs_done.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let previous = c.inputs.previous;
        let record = self.output_record(c.cc, previous, &provisioned, ucs_so_far.flatten());
        let name = self.output_secret_name.clone();
        c.steps
            .run(Step::OutputSecret, name, self.write_output(&record))
            .await?;
        self.runbook.pending_keys.written(&self.pending_slot(c.cc));
        Some((provisioned, record))
    }

    /// The output Secret as it is, once it is known to be this tenant's to write.
    async fn read_output(&self) -> Result<OutputRecord, StepError> {
        let name = &self.output_secret_name;
        let to_step = |e: crate::runbook::secrets::SecretError| e.to_step_error("output");
        self.store.check_output(name).await.map_err(to_step)?;
        let previous = self.store.read_output(name).await.map_err(to_step)?;
        Ok(previous.unwrap_or_default())
    }

    async fn read_user(&self) -> Result<Credentials, StepError> {
        let secret = &self.tenant.spec.credentials_secret;
        self.store
            .read_credentials(&secret.name, &secret.username_key, &secret.password_key)
            .await
            .map_err(|e| e.to_step_error("tenant user"))
    }

    /// `spec.ucs.apiKeySecret`, if set (else the tenant token is the key).
    async fn read_ucs_key(&self) -> Result<Option<SecretString>, StepError> {
        let Some(r) = self
            .tenant
            .spec
            .ucs
            .as_ref()
            .and_then(|u| u.api_key_secret.as_ref())
        else {
            return Ok(None);
        };
        let key = self.store.read(&r.name, &r.key).await;
        key.map(Some).map_err(|e| e.to_step_error("UCS API key"))
    }

    fn connect(&self) -> Result<Clients, StepError> {
        let (connector, env) = (&self.runbook.connector, self.env);
        let to_step = |e: UpstreamError| StepError::from_upstream(&e, "");
        Ok(Clients {
            auth: connector
                .gws_auth(&env.spec.auth_url, env.ca())
                .map_err(to_step)?,
            environment: connector
                .environment(env.spec.environment_url(), env.ca())
                .map_err(to_step)?,
            nexus: connector
                .nexus(&env.spec.nexus_url, env.ca())
                .map_err(to_step)?,
            db: env.nexus_db(connector.as_ref())?,
        })
    }

    /// The contact center's id, from the environment's shared list.
    async fn resolve_contact_center(
        &self,
        clients: &Clients,
    ) -> Result<(Outcome, (String, Arc<Vec<ContactCenter>>)), StepError> {
        let spec = &self.tenant.spec;
        let centers = self
            .runbook
            .contact_centers
            .get(
                clients.environment.as_ref(),
                self.env.spec.environment_url(),
                &self.env.ops,
            )
            .await
            .map_err(upstream(&self.ops_hint))?;
        let chosen = contact_center::choose(
            &centers,
            spec.contact_center_id.as_deref(),
            spec.contact_center_domain.as_deref(),
        )?;
        let id = chosen.id.clone();
        Ok((Outcome::Verified, (id, centers)))
    }

    /// `chatservice-uri`: POST only when absent or different.
    async fn register_chat_service(
        &self,
        clients: &Clients,
        cc: &str,
    ) -> Result<(Outcome, ()), StepError> {
        let (environment, ops, nexus_url) = (
            clients.environment.as_ref(),
            &self.env.ops,
            &self.env.spec.nexus_url,
        );
        let registered = async {
            let settings = environment.list_settings(ops, cc).await?;
            let current = settings
                .iter()
                .find(|s| s.name == super::CHAT_SERVICE_SETTING);
            if let Some(s) = current
                && s.value
                    .as_str()
                    .is_some_and(|v| normal_url(v) == normal_url(nexus_url))
                && s.location == "/"
            {
                return Ok(Outcome::AlreadyRight);
            }
            if self.observes() {
                return Ok(observed_setting(current, cc, nexus_url));
            }
            let wanted = Setting {
                name: super::CHAT_SERVICE_SETTING.to_string(),
                location: "/".to_string(),
                value: serde_json::Value::String(normal_url(nexus_url)),
                shared: false,
            };
            environment.upsert_setting(ops, cc, &wanted).await?;
            Ok(if current.is_some() {
                Outcome::Updated
            } else {
                Outcome::Created
            })
        };
        let outcome = registered.await.map_err(upstream(&self.ops_hint))?;
        Ok((outcome, ()))
    }

    /// Runs `call` with the tenant token. A cached token that is refused (401) is dropped and
    /// the call tried once more with a fresh one: GWS Auth forgot it (a restart, a revocation).
    /// A fresh token that is refused is the user's problem, and said so.
    async fn with_token<T, Fut>(
        &self,
        clients: &Clients,
        cc: &str,
        user: &Credentials,
        token: &TenantToken,
        call: impl Fn(SecretString) -> Fut,
    ) -> Result<T, StepError>
    where
        Fut: std::future::Future<Output = Result<T, StepError>>,
    {
        match call(token.value.clone()).await {
            Err(e) if e.reason == Reason::Unauthorized && token.reused => {
                let env = self.env;
                self.runbook.tokens.forget(
                    &env.spec.auth_url,
                    &env.spec.client.id,
                    &env.client_secret,
                    &Self::grant(cc, user),
                    &token.value,
                );
                let (_, fresh) = self.tenant_token(clients, cc, user).await?;
                call(fresh.value).await
            }
            other => other,
        }
    }

    fn grant(cc: &str, user: &Credentials) -> Grant {
        Grant::Password {
            username: format!("{cc}\\{}", user.username),
            password: user.password.clone(),
        }
    }

    /// The tenant token: password grant as `<ccId>\<user>`, reused until it nears expiry.
    async fn tenant_token(
        &self,
        clients: &Clients,
        cc: &str,
        user: &Credentials,
    ) -> Result<(Outcome, TenantToken), StepError> {
        let env = self.env;
        let grant = Self::grant(cc, user);
        let hint = format!(
            "Check the tenant user in Secret {} (it logs in as {cc}\\{})",
            self.tenant.spec.credentials_secret.name, user.username
        );
        let (token, reused) = self
            .runbook
            .tokens
            .get(
                clients.auth.as_ref(),
                &env.spec.auth_url,
                &env.spec.client.id,
                &env.client_secret,
                &grant,
            )
            .await
            .map_err(upstream(&hint))?;
        let outcome = if reused {
            Outcome::Reused
        } else {
            Outcome::Obtained
        };
        Ok((
            outcome,
            TenantToken {
                value: token,
                reused,
            },
        ))
    }

    /// PlatformUCS. No GET is known, so the registered URL is remembered (status, annotation).
    /// Gives the URL registered; none when observed (nothing registered, so nothing to record).
    async fn register_ucs(
        &self,
        clients: &Clients,
        inputs: &Inputs<'_>,
        key: &SecretString,
        cc: &str,
        ucs: &UcsSpec,
    ) -> Result<(Outcome, Option<String>), StepError> {
        let registered = self.recorded(
            inputs.previous,
            |s| s.ucs_url.as_ref(),
            annotations::UCS_URL,
        );
        if registered.is_some_and(|u| normal_url(u) == normal_url(&ucs.url)) {
            return Ok((Outcome::AlreadyRight, Some(ucs.url.clone())));
        }
        if self.observes() {
            return Ok((observed_ucs(registered, &ucs.url), None));
        }
        let outcome = match clients.nexus.register_ucs(key, cc, &ucs.url).await {
            Ok(_) if registered.is_some() => Outcome::Updated,
            Ok(_) => Outcome::Created,
            // "Already exists" to a first registration: registered. To a change of URL it
            // would leave the old one in place: an error.
            Err(e) if e.kind == ErrorKind::Conflict && registered.is_none() => {
                Outcome::AlreadyRight
            }
            Err(e) => {
                return Err(upstream(
                    "Check spec.ucs.apiKeySecret, or the tenant token's rights in Nexus",
                )(e));
            }
        };
        Ok((outcome, Some(ucs.url.clone())))
    }

    /// The Nexus tenant, created once; its key kept (see [`provision_tenant`]).
    async fn provision(
        &self,
        clients: &Clients,
        inputs: &Inputs<'_>,
        token: &SecretString,
        cc: &str,
    ) -> Result<(Outcome, Option<Provisioned>), StepError> {
        let (env, user) = (self.env, &inputs.user);
        let Some(fingerprint) = credentials_fingerprint(env, user) else {
            return Err(StepError::transient(
                Reason::WaitingForEnvironment,
                format!(
                    "DigitalChannelsEnvironment {} has not made its fingerprint key (Secret {}) yet",
                    env.name,
                    fingerprint_key_ref(&env.name).name
                ),
            ));
        };
        let request = self.tenant_request(user, cc);
        let legacy = legacy_credentials_fingerprint(&env.client_secret, user);
        let recorded_fingerprints = self.recorded_fingerprints(inputs.previous);
        let recorded_digest = self
            .tenant
            .status
            .as_ref()
            .and_then(|s| s.api_key_digest.clone());
        let pending = self.runbook.pending_keys.get(&self.pending_slot(cc));
        let records = Records {
            api_key_digest: recorded_digest.as_deref(),
            credentials: recorded_fingerprints,
            current_credentials: &fingerprint,
            legacy_credentials: &legacy,
            pending_key: pending,
            reads: &self.runbook.tenant_reads,
            nexus_url: &env.spec.nexus_url,
            observe: self.observes(),
        };
        let (outcome, api_key, operation_id) = provision_tenant(
            clients.nexus.as_ref(),
            clients.db.as_ref(),
            token,
            &request,
            inputs.previous,
            &records,
        )
        .await?;
        let Some(api_key) = api_key else {
            return Ok((outcome, None));
        };
        if outcome == Outcome::Created {
            // The only copy until the output Secret holds it.
            self.runbook
                .pending_keys
                .keep(self.pending_slot(cc), &api_key);
        }
        // Observed drift of the credentials: the record stays, so the drift stays in view
        // and Manage pushes them.
        let fingerprint = match (&outcome, records.credentials.first()) {
            (Outcome::Drifted(_), Some(recorded)) => recorded.to_string(),
            _ => fingerprint,
        };
        let provisioned = Provisioned {
            api_key,
            operation_id,
            fingerprint,
        };
        Ok((outcome, Some(provisioned)))
    }

    /// The create (and update) body of the Nexus tenant, with `backendurl` in normal form.
    fn tenant_request(&self, user: &Credentials, cc: &str) -> TenantRequest {
        let spec = &self.tenant.spec;
        TenantRequest {
            contact_center_id: cc.to_string(),
            name: spec.tenant_name.clone(),
            type_: spec.type_.clone(),
            backend_url: normal_url(&self.env.spec.gws_url),
            username: user.username.clone(),
            password: user.password.clone(),
            genesys_tenant_id: spec.genesys_tenant_id,
        }
    }

    /// The credentials' fingerprints recorded: the status's and the output Secret's.
    fn recorded_fingerprints<'r>(&'r self, previous: &'r OutputRecord) -> Vec<&'r str> {
        let from_status = self
            .tenant
            .status
            .as_ref()
            .and_then(|s| s.credentials_fingerprint.as_deref());
        let from_secret = previous
            .annotations
            .get(annotations::CREDENTIALS_FINGERPRINT)
            .map(String::as_str);
        [from_status, from_secret].into_iter().flatten().collect()
    }

    /// The output Secret's content: the key, where it belongs, and the bookkeeping
    /// annotations. A PlatformUCS that failed this pass keeps its earlier record.
    fn output_record(
        &self,
        cc: &str,
        previous: &OutputRecord,
        provisioned: &Provisioned,
        ucs_url: Option<String>,
    ) -> OutputRecord {
        let (spec, env) = (&self.tenant.spec, self.env);
        let data = [
            (keys::API_KEY, provisioned.api_key.clone()),
            (keys::CONTACT_CENTER_ID, SecretString::new(cc)),
            (
                keys::TENANT_NAME,
                SecretString::new(spec.tenant_name.clone()),
            ),
            (
                keys::NEXUS_URL,
                SecretString::new(normal_url(&env.spec.nexus_url)),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut record = OutputRecord {
            data,
            ..OutputRecord::default()
        };
        let ucs_url = match spec.ucs {
            Some(_) => ucs_url.or_else(|| previous.annotations.get(annotations::UCS_URL).cloned()),
            None => None,
        };
        let bookkeeping = [
            (annotations::UCS_URL, ucs_url),
            (
                annotations::CREDENTIALS_FINGERPRINT,
                Some(provisioned.fingerprint.clone()),
            ),
            (annotations::OPERATION_ID, provisioned.operation_id.clone()),
        ];
        for (name, value) in bookkeeping {
            if let Some(value) = value {
                record.annotations.insert(name.to_string(), value);
            }
        }
        record
    }

    async fn write_output(&self, record: &OutputRecord) -> Result<(Outcome, ()), StepError> {
        let written = self
            .store
            .write_output(&self.output_secret_name, record)
            .await
            .map_err(|e| e.to_step_error("output"))?;
        let outcome = match written {
            WriteOutcome::Created => Outcome::Created,
            WriteOutcome::Updated => Outcome::Updated,
            WriteOutcome::Unchanged => Outcome::AlreadyRight,
        };
        Ok((outcome, ()))
    }

    /// Where this tenant's key waits for its Secret: this resource's own slot.
    fn pending_slot(&self, cc: &str) -> super::pending::Slot {
        let uid = self.tenant.metadata.uid.as_deref().unwrap_or_default();
        super::pending::Slot::new(uid, &self.env.spec.nexus_url, cc)
    }

    /// DesignerEnv: manual until acknowledged. Gives what to do.
    fn designer_env(&self) -> (Outcome, String) {
        use crate::api::switches::Switch;
        let name = self.tenant.metadata.name.as_deref().unwrap_or_default();
        match Switch::of(&self.tenant.metadata, crate::api::DESIGNER_ENV_ANNOTATION) {
            Switch::On => (Outcome::AlreadyRight, "acknowledged".to_string()),
            Switch::Absent => (Outcome::ManualStepRequired, designer_env_instructions(name)),
            Switch::NotUnderstood(said) => (
                Outcome::ManualStepRequired,
                format!("{said} {}", designer_env_instructions(name)),
            ),
        }
    }

    /// What the operator recorded of the tenant: its status, else (for `provision`, or a
    /// tenant from before status held it) the output Secret's annotations.
    fn recorded<'r>(
        &'r self,
        previous: &'r OutputRecord,
        from_status: impl Fn(&'r crate::api::TenantStatus) -> Option<&'r String>,
        annotation: &str,
    ) -> Option<&'r String> {
        self.tenant
            .status
            .as_ref()
            .and_then(from_status)
            .or_else(|| previous.annotations.get(annotation))
    }
}

/// What an observed `chatservice-uri` that is not right is, and what Manage would do.
fn observed_setting(current: Option<&Setting>, cc: &str, nexus_url: &str) -> Outcome {
    let wanted = normal_url(nexus_url);
    match current {
        None => Outcome::Missing(format!(
            "contact center {cc} has no {} setting: Manage would create it with the value {wanted} at location /",
            super::CHAT_SERVICE_SETTING
        )),
        Some(s) => {
            let value: String = match &s.value {
                serde_json::Value::String(v) => v.chars().take(200).collect(),
                other => other.to_string().chars().take(200).collect(),
            };
            Outcome::Drifted(format!(
                "the {} setting of contact center {cc} is {value:?} at location {:?}: Manage would set it to {wanted} at /",
                super::CHAT_SERVICE_SETTING,
                s.location
            ))
        }
    }
}

/// PlatformUCS under Observe, its record not the spec's URL: no read of the service is
/// known, so only the operator's own record can be compared.
fn observed_ucs(registered: Option<&String>, wanted: &str) -> Outcome {
    match registered {
        Some(old) => Outcome::Drifted(format!(
            "PlatformUCS was registered with {old} (as recorded): Manage would register {wanted}"
        )),
        None => Outcome::NotObservable(format!(
            "PlatformUCS has no known read, so it cannot be observed. Manage will register it once with {wanted} \
             (a service that exists already is answered as such, and counts as done). This does not hold Ready back"
        )),
    }
}
