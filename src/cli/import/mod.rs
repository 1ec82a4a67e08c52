//! `dc-operator import`: the tenants an environment's upstreams already hold, as
//! `managementPolicy: Observe` manifests ready for `kubectl apply` or a Git repository.
//!
//! It reads, and writes nothing upstream (the clients are `plan`'s guarded ones): the contact
//! centers the Environment API lists, each one's Nexus tenant (the tenant GET with a tenant
//! user's token, as key recovery reads it; only with `--tenant-user-secret`), and the names
//! and contact centers of the `nex_apikeys` rows (never their keys). A tenant is written only
//! when that is certain ([`decide`]); the rest is said on stderr and in the output's comments.

pub mod decide;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use kube::ResourceExt;

use self::decide::{Decision, Found, Imported, NexusLook};
use super::file_store::FileStore;
use super::plan::guard::{GuardedConnector, Seen, Writes};
use super::plan::store::PlanStore;
use crate::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use crate::runbook::secrets::SecretStore;
use crate::runbook::{Connector, Runbook};
use crate::secret::{Credentials, SecretString};
use crate::upstream::gws_auth::Grant;
use crate::upstream::{ErrorKind, UpstreamError};

/// What import reads through: the environment's Secrets and its upstreams.
struct Reader<'a> {
    env: &'a DigitalChannelsEnvironment,
    store: &'a dyn SecretStore,
    runbook: Runbook,
}

/// The environment's credentials, as a pass reads them.
struct Access {
    ops: Credentials,
    database_url: SecretString,
    ca: Option<Vec<u8>>,
    /// For the tenant GET: the client secret and the tenant user, when both are at hand.
    tenant_login: Result<(SecretString, Credentials), String>,
}

impl Reader<'_> {
    async fn access(&self, tenant_user: Option<&str>) -> Result<Access, String> {
        let spec = &self.env.spec;
        let secret = |e: crate::runbook::SecretError| e.to_string();
        let ops = &spec.ops_credentials_secret;
        let ops = self
            .store
            .read_credentials(&ops.name, &ops.username_key, &ops.password_key)
            .await
            .map_err(secret)?;
        let db = &spec.database.url_secret;
        let database_url = self.store.read(&db.name, &db.key).await.map_err(secret)?;
        let ca = match &spec.tls {
            Some(tls) => Some(
                self.store
                    .read(&tls.ca_secret.name, &tls.ca_secret.key)
                    .await
                    .map_err(secret)?
                    .expose()
                    .as_bytes()
                    .to_vec(),
            ),
            None => None,
        };
        let tenant_login = self.tenant_login(tenant_user).await;
        Ok(Access {
            ops,
            database_url,
            ca,
            tenant_login,
        })
    }

    async fn tenant_login(
        &self,
        user: Option<&str>,
    ) -> Result<(SecretString, Credentials), String> {
        let Some(user) = user else {
            return Err("no --tenant-user-secret given".to_string());
        };
        let name = self.env.metadata.name.clone().unwrap_or_default();
        let at = self.env.spec.client_secret_ref(&name);
        let secret = self.store.read(&at.name, &at.key).await;
        let secret = secret.map_err(|e| format!("the client secret cannot be read: {e}"))?;
        let user = self
            .store
            .read_credentials(user, "username", "password")
            .await;
        let user = user.map_err(|e| format!("the tenant user cannot be read: {e}"))?;
        Ok((secret, user))
    }

    /// Everything import decides from, or the failure of a read it cannot do without.
    async fn read(&self, tenant_user: Option<&str>) -> Result<Found, String> {
        let access = self.access(tenant_user).await?;
        let spec = &self.env.spec;
        let said = |e: UpstreamError| e.to_string();
        let connector = &self.runbook.connector;
        let environment = connector.environment(spec.environment_url(), access.ca.as_deref());
        let contact_centers = environment
            .map_err(said)?
            .list_contact_centers(&access.ops)
            .await
            .map_err(said)?;
        let db = connector.nexus_db(&access.database_url).map_err(said)?;
        let key_rows = db.list_api_key_names().await.map_err(said)?;
        let mut nexus = BTreeMap::new();
        for cc in &contact_centers {
            nexus.insert(cc.id.clone(), self.look(&access, &cc.id).await);
        }
        Ok(Found {
            contact_centers,
            nexus,
            key_rows,
            ..Found::default()
        })
    }

    /// The Nexus tenant of a contact center, as key recovery reads it: with the tenant user's
    /// token.
    async fn look(&self, access: &Access, cc: &str) -> NexusLook {
        let (secret, user) = match &access.tenant_login {
            Ok(login) => login,
            Err(why) => return NexusLook::NotRead(why.clone()),
        };
        let spec = &self.env.spec;
        let ca = access.ca.as_deref();
        let connector = &self.runbook.connector;
        let (auth, nexus) = match (
            connector.gws_auth(&spec.auth_url, ca),
            connector.nexus(&spec.nexus_url, ca),
        ) {
            (Ok(auth), Ok(nexus)) => (auth, nexus),
            (Err(e), _) | (_, Err(e)) => return NexusLook::NotRead(e.to_string()),
        };
        let grant = Grant::Password {
            username: format!("{cc}\\{}", user.username),
            password: user.password.clone(),
        };
        let token = match auth.token(&spec.client.id, secret, &grant).await {
            Ok(token) => token.access_token,
            Err(e) if e.kind == ErrorKind::Unauthorized => {
                return NexusLook::NotRead(format!(
                    "the tenant user cannot log in at contact center {cc}"
                ));
            }
            Err(e) => return NexusLook::NotRead(e.to_string()),
        };
        match nexus.get_tenant(&token, cc).await {
            Ok(Some(info)) => NexusLook::Tenant(info.name),
            Ok(None) => NexusLook::Absent,
            Err(e) if matches!(e.kind, ErrorKind::Rejected | ErrorKind::NotFound) => {
                NexusLook::NotRead("Nexus refused the tenant GET (an assumed endpoint)".to_string())
            }
            Err(e) => NexusLook::NotRead(e.to_string()),
        }
    }
}

/// The tenants that exist already: their names, and the contact centers they name (in
/// lower case): by id, as recorded, or by domain among those listed.
fn existing(
    env: &DigitalChannelsEnvironment,
    tenants: &[DigitalChannelsTenant],
    found: &mut Found,
) {
    for t in tenants {
        found.taken_names.push(t.name_any());
        if t.spec.environment_ref.name != env.name_any() {
            continue;
        }
        let recorded = t.status.as_ref().and_then(|s| s.contact_center_id.clone());
        let by_domain = || {
            let domain = t.spec.contact_center_domain.as_deref()?;
            let chosen =
                crate::runbook::contact_center::choose(&found.contact_centers, None, Some(domain));
            chosen.ok().map(|c| c.id.clone())
        };
        let cc = t
            .spec
            .contact_center_id
            .clone()
            .or(recorded)
            .or_else(by_domain);
        if let Some(cc) = cc {
            found.existing.insert(cc.to_lowercase(), t.name_any());
        }
    }
}

/// One tenant's manifest, its comments first.
pub fn manifest(env: &DigitalChannelsEnvironment, t: &Imported) -> String {
    let user_secret = format!("{}-nexus-user", t.resource_name);
    let mut metadata = serde_json::json!({"name": t.resource_name});
    if let Some(ns) = &env.metadata.namespace {
        metadata["namespace"] = ns.clone().into();
    }
    let doc = serde_json::json!({
        "apiVersion": "digitalchannels.dev/v1alpha1",
        "kind": "DigitalChannelsTenant",
        "metadata": metadata,
        "spec": {
            "environmentRef": {"name": env.name_any()},
            "contactCenterId": t.contact_center_id,
            "tenantName": t.tenant_name,
            "credentialsSecret": {"name": user_secret},
            "managementPolicy": "Observe",
        },
    });
    let mut text = format!(
        "# Imported by dc-operator import from DigitalChannelsEnvironment {}: Nexus tenant {:?}.\n",
        env.name_any(),
        t.tenant_name
    );
    for r in &t.remarks {
        text.push_str(&format!("# {r}.\n"));
    }
    text.push_str(&format!(
        "# Before applying, create Secret {user_secret} (keys username, password) with the tenant user\n\
         # Nexus logs in as. Add spec.ucs if the tenant has PlatformUCS (no read of it is known).\n"
    ));
    text.push_str(&serde_yaml_ng::to_string(&doc).expect("JSON values serialize"));
    text
}

/// The manifests to `out` (one multi-document YAML) or one file per tenant into `dir`; what
/// could not be decided to stderr, and as comments on stdout.
fn write_out(
    env: &DigitalChannelsEnvironment,
    decision: &Decision,
    dir: Option<&Path>,
    out: &mut dyn Write,
) -> Result<(), String> {
    for n in &decision.notes {
        eprintln!("import: {n}");
    }
    for u in &decision.undecided {
        eprintln!("import: could not decide: {u}");
    }
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for t in &decision.tenants {
            let path = dir.join(format!("{}.yaml", t.resource_name));
            std::fs::write(&path, manifest(env, t))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!("import: wrote {}", path.display());
        }
        return Ok(());
    }
    let _ = writeln!(out, "{}", text(env, decision));
    Ok(())
}

/// The whole output as one multi-document YAML, what could not be decided as comments first.
pub fn text(env: &DigitalChannelsEnvironment, decision: &Decision) -> String {
    let mut head: Vec<String> = decision
        .undecided
        .iter()
        .map(|u| format!("# Could not decide: {u}."))
        .collect();
    head.extend(decision.notes.iter().map(|n| format!("# Note: {n}.")));
    let docs: Vec<String> = decision.tenants.iter().map(|t| manifest(env, t)).collect();
    let mut text = head.join("\n");
    if !text.is_empty() && !docs.is_empty() {
        text.push('\n');
    }
    text.push_str(&docs.join("---\n"));
    text.trim_end().to_string()
}

/// What import needs: the environment, where its Secrets are read, the tenants that exist.
struct Source {
    env: DigitalChannelsEnvironment,
    store: Box<dyn SecretStore>,
    tenants: Vec<DigitalChannelsTenant>,
}

async fn source(args: &super::ImportArgs) -> Result<Source, String> {
    if !args.files.is_empty() {
        let bundle = super::plan::bundle_of(&args.files)?;
        let env = match bundle.environments.as_slice() {
            [one] => one.clone(),
            _ => {
                return Err(
                    "the files must hold exactly one DigitalChannelsEnvironment".to_string()
                );
            }
        };
        // No output directory: import reads the manifests' Secrets only.
        let store = FileStore::new(
            &bundle.secrets,
            Path::new(""),
            env.metadata.namespace.clone(),
        )?;
        return Ok(Source {
            env,
            store: Box::new(store),
            tenants: bundle.tenants,
        });
    }
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("cannot reach Kubernetes (KUBECONFIG or in-cluster config): {e}"))?;
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let name = args.environment.clone().unwrap_or_default();
    let envs: kube::Api<DigitalChannelsEnvironment> = kube::Api::namespaced(client.clone(), &ns);
    let env = envs
        .get_opt(&name)
        .await
        .map_err(|e| format!("cannot read DigitalChannelsEnvironment {name}: {e}"))?
        .ok_or_else(|| {
            format!("DigitalChannelsEnvironment {name} does not exist in namespace {ns}")
        })?;
    let tenants: kube::Api<DigitalChannelsTenant> = kube::Api::namespaced(client.clone(), &ns);
    let tenants = tenants
        .list(&Default::default())
        .await
        .map_err(|e| format!("cannot list DigitalChannelsTenants: {e}"))?
        .items;
    let store = crate::controller::secrets::KubeSecretStore::new(client, &ns, None);
    Ok(Source {
        env,
        store: Box::new(store),
        tenants,
    })
}

/// Reads the upstreams of `env` and decides; nothing is written anywhere.
pub async fn import(
    upstream: Arc<dyn Connector>,
    env: &DigitalChannelsEnvironment,
    store: &dyn SecretStore,
    tenants: &[DigitalChannelsTenant],
    tenant_user: Option<&str>,
) -> Result<Decision, String> {
    let guarded = GuardedConnector::new(upstream, Writes::Refuse, Arc::new(Seen::default()));
    let store = PlanStore::new(store);
    let reader = Reader {
        env,
        store: &store,
        runbook: Runbook::new(Arc::new(guarded)),
    };
    let mut found = reader.read(tenant_user).await?;
    existing(env, tenants, &mut found);
    Ok(decide::decide(&found))
}

/// `dc-operator import`: `Ok(true)` when every tenant found was decided (exit 0),
/// `Ok(false)` when something was not or a read failed (exit 1), `Err` for input errors
/// (exit 2).
pub async fn command(args: super::ImportArgs) -> Result<bool, String> {
    crate::telemetry::init_logging(crate::telemetry::LogFormat::Text, "warn");
    let source = source(&args).await?;
    let config = args
        .http
        .http_config(crate::upstream::http::RetryPolicy::default())?;
    let upstream: Arc<dyn Connector> = Arc::new(crate::runbook::RealConnector::new(config));
    let decided = import(
        upstream,
        &source.env,
        source.store.as_ref(),
        &source.tenants,
        args.tenant_user_secret.as_deref(),
    )
    .await;
    let decision = match decided {
        Ok(decision) => decision,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(false);
        }
    };
    let mut out = std::io::stdout();
    if let Err(e) = write_out(&source.env, &decision, args.output_dir.as_deref(), &mut out) {
        eprintln!("error: {e}");
        return Ok(false);
    }
    let _ = out.flush();
    Ok(decision.undecided.is_empty())
}
