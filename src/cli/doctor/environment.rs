//! The checks of one environment and its tenants, in order: the spec, its Secrets, names,
//! TCP and TLS, the database, the ops user, the OAuth client and its verification, the Nexus
//! tables, then each tenant's user. A check runs only when those it needs held.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::check::{Report, Verdict};
use super::database::{self, DbTarget};
use super::probe;
use super::verdicts::{self, CaInUse, TlsOutcome};
use crate::api::validation::{environment_problems, tenant_problems_named};
use crate::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use crate::runbook::Connector;
use crate::runbook::contact_center::choose;
use crate::runbook::secrets::{SecretError, SecretStore};
use crate::secret::{Credentials, SecretString};
use crate::upstream::UpstreamError;
use crate::upstream::environment::ContactCenter;
use crate::upstream::gws_auth::{Grant, OAuthClient};

/// How to reach the systems: the operator's clients, and the bounds of one probe.
pub struct Probes {
    pub connector: Arc<dyn Connector>,
    pub timeout: Duration,
    /// Whether `--extra-ca-file` adds a CA (the connector holds it).
    pub extra_ca_file: bool,
    /// The same bundle, for the TLS probe, which builds its own client.
    pub extra_ca_pem: Option<Vec<u8>>,
}

/// What the environment's Secrets held.
#[derive(Default)]
struct Secrets {
    ops: Option<Credentials>,
    database_url: Option<SecretString>,
    ca_pem: Option<Vec<u8>>,
    client_secret: Option<SecretString>,
}

/// One environment under check: its report group and the ids of its checks.
struct Scope<'a> {
    env: &'a DigitalChannelsEnvironment,
    group: String,
    key: String,
    namespace: Option<String>,
}

impl Scope<'_> {
    fn id(&self, local: &str) -> String {
        format!("{}/{local}", self.key)
    }

    fn push(&self, report: &mut Report, local: &str, title: &str, verdict: Verdict) {
        report.push(&self.group, &self.id(local), title, verdict);
    }

    fn push_timed(&self, report: &mut Report, local: &str, title: &str, v: Verdict, at: Instant) {
        report.push_timed(&self.group, &self.id(local), title, v, Some(at.elapsed()));
    }

    /// Why `local`'s check is skipped, given the local ids it needs.
    fn blocked(&self, report: &Report, needs: &[&str]) -> Option<String> {
        let ids: Vec<String> = needs.iter().map(|n| self.id(n)).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        report.blocked(&refs)
    }

    fn held(&self, report: &Report, local: &str) -> bool {
        self.blocked(report, &[local]).is_none() && report.status_of(&self.id(local)).is_some()
    }
}

fn spec_verdict(problems: Vec<String>) -> Verdict {
    if problems.is_empty() {
        Verdict::ok("valid")
    } else {
        Verdict::failure(problems.join("; "), "fix the spec")
    }
}

/// The spec as the API server's validation sees it: nothing else is worth probing otherwise.
fn spec_holds(report: &mut Report, scope: &Scope<'_>) -> bool {
    let spec = spec_verdict(environment_problems(&scope.env.spec));
    scope.push(report, "spec", "Spec", spec);
    scope.held(report, "spec")
}

/// The checks of `env` and of `tenants` (those that reference it), appended to `report`.
pub async fn check(
    report: &mut Report,
    probes: &Probes,
    env: &DigitalChannelsEnvironment,
    tenants: &[&DigitalChannelsTenant],
    store: &dyn SecretStore,
) {
    let name = env.metadata.name.clone().unwrap_or_default();
    let namespace = env.metadata.namespace.clone();
    let qualified = match &namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.clone(),
    };
    let scope = Scope {
        env,
        group: format!("DigitalChannelsEnvironment {qualified}"),
        key: format!("environment:{qualified}"),
        namespace,
    };
    if !spec_holds(report, &scope) {
        return;
    }
    let secrets = read_secrets(report, &scope, store).await;
    let target = secrets
        .database_url
        .as_ref()
        .and_then(|u| DbTarget::parse(u).ok());
    names(report, &scope, probes, target.as_ref().map(|(t, _)| t)).await;
    connections(
        report,
        &scope,
        probes,
        &secrets,
        target.as_ref().map(|(t, _)| t),
    )
    .await;
    let pool = match &target {
        Some((t, options)) => login(report, &scope, t, options).await,
        None => None,
    };
    let centers = upstream(report, &scope, probes, &secrets).await;
    tables(
        report,
        &scope,
        pool.as_ref(),
        &secrets,
        target.as_ref().map(|(t, _)| t),
    )
    .await;
    if let Some(pool) = pool {
        pool.close().await;
    }
    for tenant in tenants {
        check_tenant(
            report,
            &scope,
            probes,
            &secrets,
            centers.as_deref(),
            tenant,
            store,
        )
        .await;
    }
}

async fn read_secrets(report: &mut Report, scope: &Scope<'_>, store: &dyn SecretStore) -> Secrets {
    let spec = &scope.env.spec;
    let ns = scope.namespace.as_deref();
    let ops_ref = &spec.ops_credentials_secret;
    let keys = [ops_ref.username_key.as_str(), ops_ref.password_key.as_str()];
    let ops = store
        .read_credentials(&ops_ref.name, keys[0], keys[1])
        .await;
    let found = ops.as_ref().map(drop).map_err(Clone::clone);
    let verdict = verdicts::secret(&ops_ref.name, "ops credentials", &keys, ns, &found);
    let title = format!("Secret {}", ops_ref.name);
    scope.push(report, "secret:ops", &title, verdict);
    let database_url = read_database_url(report, scope, store).await;
    let ca_pem = read_ca(report, scope, store).await;
    let name = scope.env.metadata.name.clone().unwrap_or_default();
    let at = spec.client_secret_ref(&name);
    let secret = store.read(&at.name, &at.key).await;
    let policy = spec.management_policy;
    let verdict = verdicts::client_secret(&at.name, &at.key, policy, &unit(&secret));
    scope.push(
        report,
        "secret:client",
        &format!("Secret {}", at.name),
        verdict,
    );
    Secrets {
        ops: ops.ok(),
        database_url,
        ca_pem,
        client_secret: secret.ok().filter(|s| !s.is_empty()),
    }
}

async fn read_database_url(
    report: &mut Report,
    scope: &Scope<'_>,
    store: &dyn SecretStore,
) -> Option<SecretString> {
    let at = &scope.env.spec.database.url_secret;
    let url = store.read(&at.name, &at.key).await;
    let ns = scope.namespace.as_deref();
    let mut verdict = verdicts::secret(&at.name, "Nexus database URL", &[&at.key], ns, &unit(&url));
    if let Ok(u) = &url
        && let Err(e) = DbTarget::parse(u)
    {
        let fix = format!(
            "put a postgres://user:password@host:5432/nexus URL in Secret {}",
            at.name
        );
        verdict = Verdict::failure(e, fix);
    }
    scope.push(
        report,
        "secret:database",
        &format!("Secret {}", at.name),
        verdict,
    );
    url.ok()
}

/// The CA bundle of `spec.tls.caSecret`, when there is one, which must hold a certificate.
async fn read_ca(
    report: &mut Report,
    scope: &Scope<'_>,
    store: &dyn SecretStore,
) -> Option<Vec<u8>> {
    let at = &scope.env.spec.tls.as_ref()?.ca_secret;
    let pem = store.read(&at.name, &at.key).await;
    let ns = scope.namespace.as_deref();
    let mut verdict = verdicts::secret(&at.name, "CA bundle", &[&at.key], ns, &unit(&pem));
    if let Ok(p) = &pem
        && !matches!(reqwest::Certificate::from_pem_bundle(p.expose().as_bytes()), Ok(c) if !c.is_empty())
    {
        let fix = format!(
            "put the CA certificates, PEM-encoded, in Secret {} key {}",
            at.name, at.key
        );
        verdict = Verdict::failure("holds no PEM certificate (CA bundle)", fix);
    }
    scope.push(report, "secret:ca", &format!("Secret {}", at.name), verdict);
    pem.ok().map(|p| p.expose().as_bytes().to_vec())
}

fn unit(result: &Result<SecretString, SecretError>) -> Result<(), SecretError> {
    result.as_ref().map(drop).map_err(Clone::clone)
}

/// An HTTP endpoint of the environment.
struct Endpoint {
    key: &'static str,
    system: &'static str,
    field: &'static str,
    url: url::Url,
}

impl Endpoint {
    fn host(&self) -> String {
        self.url
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_string()
    }

    fn port(&self) -> u16 {
        self.url.port_or_known_default().unwrap_or(443)
    }
}

fn endpoints(scope: &Scope<'_>) -> Vec<Endpoint> {
    let spec = &scope.env.spec;
    [
        ("auth", "GWS Auth", "spec.authUrl", spec.auth_url.as_str()),
        (
            "environment",
            "Environment API",
            "spec.environmentUrl",
            spec.environment_url(),
        ),
        ("nexus", "Nexus", "spec.nexusUrl", spec.nexus_url.as_str()),
    ]
    .into_iter()
    .filter_map(|(key, system, field, url)| {
        let url = url::Url::parse(url.trim()).ok()?;
        Some(Endpoint {
            key,
            system,
            field,
            url,
        })
    })
    .collect()
}

/// Every host the environment names, once, with the fields that name it.
async fn names(report: &mut Report, scope: &Scope<'_>, probes: &Probes, db: Option<&DbTarget>) {
    let spec = &scope.env.spec;
    let mut hosts: BTreeMap<String, (u16, Vec<&str>)> = BTreeMap::new();
    let mut seen: Vec<String> = Vec::new();
    let gws = url::Url::parse(spec.gws_url.trim()).ok();
    let mut add = |host: String, port: u16, field: &'static str| {
        if !seen.contains(&host) {
            seen.push(host.clone());
        }
        hosts
            .entry(host)
            .or_insert((port, Vec::new()))
            .1
            .push(field);
    };
    for e in endpoints(scope) {
        add(e.host(), e.port(), e.field);
    }
    if let Some(u) = &gws {
        add(
            u.host_str()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .to_string(),
            u.port_or_known_default().unwrap_or(443),
            "spec.gwsUrl",
        );
    }
    if let Some(t) = db {
        add(t.host.clone(), t.port, "database URL");
    }
    for host in seen {
        let (port, fields) = &hosts[&host];
        let started = Instant::now();
        let found = probe::resolve(&host, *port, probes.timeout).await;
        let verdict = verdicts::dns(fields, &found);
        scope.push_timed(
            report,
            &format!("dns:{host}"),
            &format!("DNS {host}"),
            verdict,
            started,
        );
    }
}

/// TCP then TLS to each HTTP endpoint, and TCP to the database.
async fn connections(
    report: &mut Report,
    scope: &Scope<'_>,
    probes: &Probes,
    secrets: &Secrets,
    db: Option<&DbTarget>,
) {
    let ca = CaInUse {
        ca_secret: scope
            .env
            .spec
            .tls
            .as_ref()
            .map(|t| t.ca_secret.name.clone()),
        extra_ca_file: probes.extra_ca_file,
    };
    // As the connector does: the environment's CA on top of --extra-ca-file's.
    let mut bundle = probes.extra_ca_pem.clone();
    if let Some(pem) = &secrets.ca_pem {
        let b = bundle.get_or_insert_with(Vec::new);
        b.push(b'\n');
        b.extend_from_slice(pem);
    }
    for e in endpoints(scope) {
        endpoint(report, scope, probes, &e, (&ca, bundle.as_deref())).await;
    }
    let Some(t) = db else {
        return;
    };
    let title = "TCP PostgreSQL";
    if let Some(why) = scope.blocked(report, &[&format!("dns:{}", t.host)]) {
        scope.push(report, "tcp:database", title, Verdict::skipped(why));
        return;
    }
    let started = Instant::now();
    let result = probe::connect(&t.host, t.port, probes.timeout).await;
    let target = format!("{}:{}", t.host, t.port);
    let verdict = verdicts::tcp(&target, "the database URL", &result);
    scope.push_timed(report, "tcp:database", title, verdict, started);
}

/// TCP, then TLS (an `http://` URL being a warning) to one endpoint.
async fn endpoint(
    report: &mut Report,
    scope: &Scope<'_>,
    probes: &Probes,
    e: &Endpoint,
    (ca, bundle): (&CaInUse, Option<&[u8]>),
) {
    let host = e.host();
    let tcp_id = format!("tcp:{}", e.key);
    let title = format!("TCP {}", e.system);
    if let Some(why) = scope.blocked(report, &[&format!("dns:{host}")]) {
        scope.push(report, &tcp_id, &title, Verdict::skipped(why));
    } else {
        let started = Instant::now();
        let result = probe::connect(&host, e.port(), probes.timeout).await;
        let verdict = verdicts::tcp(&format!("{host}:{}", e.port()), e.field, &result);
        scope.push_timed(report, &tcp_id, &title, verdict, started);
    }
    let title = format!("TLS {}", e.system);
    let tls_id = format!("tls:{}", e.key);
    if let Some(why) = scope.blocked(report, &[&tcp_id, "secret:ca"]) {
        scope.push(report, &tls_id, &title, Verdict::skipped(why));
        return;
    }
    let started = Instant::now();
    if e.url.scheme() != "https" {
        let verdict = verdicts::tls(&host, e.field, &TlsOutcome::Plain, ca);
        scope.push(report, &tls_id, &title, verdict);
        return;
    }
    let origin = e.url.origin().ascii_serialization();
    let outcome = probe::tls(&origin, bundle, probes.timeout).await;
    let verdict = verdicts::tls(&host, e.field, &outcome, ca);
    scope.push_timed(report, &tls_id, &title, verdict, started);
}

async fn login(
    report: &mut Report,
    scope: &Scope<'_>,
    target: &DbTarget,
    options: &sqlx::postgres::PgConnectOptions,
) -> Option<sqlx::PgPool> {
    let title = "PostgreSQL login";
    if let Some(why) = scope.blocked(report, &["tcp:database"]) {
        scope.push(report, "database", title, Verdict::skipped(why));
        return None;
    }
    let started = Instant::now();
    let result = database::connect(options).await;
    let secret = &scope.env.spec.database.url_secret.name;
    let verdict = database::login(
        target,
        secret,
        &result.as_ref().map(|(_, tls)| *tls).map_err(Clone::clone),
    );
    scope.push_timed(report, "database", title, verdict, started);
    // The title names the target; `needs` go by id.
    result.ok().map(|(pool, _)| pool)
}

async fn tables(
    report: &mut Report,
    scope: &Scope<'_>,
    pool: Option<&sqlx::PgPool>,
    secrets: &Secrets,
    target: Option<&DbTarget>,
) {
    let spec = &scope.env.spec;
    let user = target.map(|t| t.user.clone()).unwrap_or_default();
    for table in ["nex_gapis", "nex_apikeys"] {
        let (Some(pool), None) = (
            pool,
            scope.blocked(report, &["secret:database", "database"]),
        ) else {
            let why = scope
                .blocked(report, &["secret:database", "database"])
                .unwrap_or_else(|| "skipped: no database to look at".into());
            scope.push(report, table, table, Verdict::skipped(why));
            continue;
        };
        let started = Instant::now();
        let result = database::readable(pool, table).await;
        let row = match (&result, table) {
            (Ok(()), "nex_gapis") => {
                database::gapi_row(
                    pool,
                    &spec.gws_url,
                    &spec.client.id,
                    secrets.client_secret.as_ref(),
                )
                .await
            }
            _ => None,
        };
        let verdict = database::table(table, &user, row, &result);
        scope.push_timed(report, table, table, verdict, started);
    }
}

/// The ops user, the OAuth client, its verification and the contact centers; the list of
/// contact centers when it could be read.
async fn upstream(
    report: &mut Report,
    scope: &Scope<'_>,
    probes: &Probes,
    secrets: &Secrets,
) -> Option<Vec<ContactCenter>> {
    let spec = &scope.env.spec;
    let ca = secrets.ca_pem.as_deref();
    let auth = probes.connector.gws_auth(&spec.auth_url, ca);
    let client_id = &spec.client.id;
    let policy = spec.management_policy;
    let looked: Option<Result<Option<OAuthClient>, UpstreamError>> = match (
        scope.blocked(report, &["secret:ops", "tcp:auth", "tls:auth"]),
        &secrets.ops,
        &auth,
    ) {
        (Some(why), _, _) => {
            scope.push(report, "ops", "Ops credentials", Verdict::skipped(why));
            None
        }
        (None, Some(ops), Ok(api)) => {
            let started = Instant::now();
            let result = api.get_client(ops, client_id).await;
            let verdict = verdicts::ops(&ops.username, &spec.ops_credentials_secret.name, &result);
            scope.push_timed(report, "ops", "Ops credentials", verdict, started);
            Some(result)
        }
        (None, _, Err(e)) => {
            scope.push(
                report,
                "ops",
                "Ops credentials",
                Verdict::failure(e.detail.clone(), "fix spec.tls.caSecret or --extra-ca-file"),
            );
            None
        }
        (None, None, _) => None,
    };
    match (scope.blocked(report, &["ops"]), &looked) {
        (None, Some(result)) => scope.push(
            report,
            "client",
            "OAuth client",
            verdicts::client(client_id, policy, result),
        ),
        (why, _) => scope.push(
            report,
            "client",
            "OAuth client",
            Verdict::skipped(why.unwrap_or_else(|| "skipped: the ops user was not checked".into())),
        ),
    }
    verify(report, scope, secrets, auth.as_ref().ok()).await;
    contact_centers(report, scope, probes, secrets).await
}

/// The client_credentials grant with the client secret of its Secret.
async fn verify(
    report: &mut Report,
    scope: &Scope<'_>,
    secrets: &Secrets,
    auth: Option<&Arc<dyn crate::upstream::GwsAuthApi>>,
) {
    let spec = &scope.env.spec;
    let title = "Client verification";
    let name = scope.env.metadata.name.clone().unwrap_or_default();
    let at = spec.client_secret_ref(&name);
    let skip = scope
        .blocked(report, &["tcp:auth", "tls:auth", "secret:client"])
        .or_else(|| match report.status_of(&scope.id("client")) {
            Some(super::check::Status::Warning) => {
                Some("skipped: the OAuth client does not exist yet".to_string())
            }
            _ => None,
        });
    let (None, Some(secret), Some(api)) = (skip.clone(), &secrets.client_secret, auth) else {
        let why = skip.unwrap_or_else(|| format!("skipped: Secret {} does not exist yet", at.name));
        scope.push(report, "verify", title, Verdict::skipped(why));
        return;
    };
    let started = Instant::now();
    let result = api
        .token(&spec.client.id, secret, &Grant::ClientCredentials)
        .await
        .map(drop);
    let verdict =
        verdicts::verification(&spec.client.id, &at.name, spec.management_policy, &result);
    scope.push_timed(report, "verify", title, verdict, started);
}

async fn contact_centers(
    report: &mut Report,
    scope: &Scope<'_>,
    probes: &Probes,
    secrets: &Secrets,
) -> Option<Vec<ContactCenter>> {
    let spec = &scope.env.spec;
    let title = "Contact centers";
    let (None, Some(ops)) = (
        scope.blocked(
            report,
            &["secret:ops", "tcp:environment", "tls:environment"],
        ),
        &secrets.ops,
    ) else {
        let why = scope
            .blocked(
                report,
                &["secret:ops", "tcp:environment", "tls:environment"],
            )
            .unwrap_or_default();
        scope.push(report, "contact-centers", title, Verdict::skipped(why));
        return None;
    };
    let started = Instant::now();
    let result = match probes
        .connector
        .environment(spec.environment_url(), secrets.ca_pem.as_deref())
    {
        Ok(api) => api.list_contact_centers(ops).await,
        Err(e) => Err(e),
    };
    let counted = result.as_ref().map(Vec::len).map_err(Clone::clone);
    let verdict =
        verdicts::contact_centers(&ops.username, &spec.ops_credentials_secret.name, &counted);
    scope.push_timed(report, "contact-centers", title, verdict, started);
    result.ok()
}

async fn check_tenant(
    report: &mut Report,
    env_scope: &Scope<'_>,
    probes: &Probes,
    secrets: &Secrets,
    centers: Option<&[ContactCenter]>,
    tenant: &DigitalChannelsTenant,
    store: &dyn SecretStore,
) {
    let name = tenant.metadata.name.clone().unwrap_or_default();
    let qualified = match &env_scope.namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.clone(),
    };
    let group = format!("DigitalChannelsTenant {qualified}");
    let key = format!("tenant:{qualified}");
    let id = |local: &str| format!("{key}/{local}");
    let spec = spec_verdict(tenant_problems_named(&name, &tenant.spec));
    report.push(&group, &id("spec"), "Spec", spec);
    let cred = &tenant.spec.credentials_secret;
    let keys = [cred.username_key.as_str(), cred.password_key.as_str()];
    let user = store.read_credentials(&cred.name, keys[0], keys[1]).await;
    let found = user.as_ref().map(drop).map_err(Clone::clone);
    let ns = env_scope.namespace.as_deref();
    let verdict = verdicts::secret(&cred.name, "tenant user", &keys, ns, &found);
    report.push(
        &group,
        &id("secret"),
        &format!("Secret {}", cred.name),
        verdict,
    );
    let cc = contact_center(report, env_scope, &group, &id("cc"), centers, tenant);
    let title = "Tenant user";
    let needs = [id("spec"), id("secret"), id("cc"), env_scope.id("verify")];
    let needs: Vec<&str> = needs.iter().map(String::as_str).collect();
    let (None, Ok(user), Some(cc), Some(secret)) =
        (report.blocked(&needs), &user, cc, &secrets.client_secret)
    else {
        let why = report
            .blocked(&needs)
            .unwrap_or_else(|| "skipped: nothing to log in with".into());
        report.push(&group, &id("user"), title, Verdict::skipped(why));
        return;
    };
    let spec = &env_scope.env.spec;
    let login = format!("{cc}\\{}", user.username);
    let grant = Grant::Password {
        username: login.clone(),
        password: user.password.clone(),
    };
    let started = Instant::now();
    let result = match probes
        .connector
        .gws_auth(&spec.auth_url, secrets.ca_pem.as_deref())
    {
        Ok(api) => api.token(&spec.client.id, secret, &grant).await.map(drop),
        Err(e) => Err(e),
    };
    let verdict = verdicts::tenant_user(&login, &cred.name, &result);
    report.push_timed(&group, &id("user"), title, verdict, Some(started.elapsed()));
}

/// The tenant's contact center: the spec's id, checked against the list when there is one;
/// else chosen from the list by domain (as the runbook does).
fn contact_center(
    report: &mut Report,
    env_scope: &Scope<'_>,
    group: &str,
    id: &str,
    centers: Option<&[ContactCenter]>,
    tenant: &DigitalChannelsTenant,
) -> Option<String> {
    let title = "Contact center";
    let spec = &tenant.spec;
    let Some(list) = centers else {
        if let Some(cc) = &spec.contact_center_id {
            report.push(
                group,
                id,
                title,
                Verdict::ok(format!("{cc} (spec.contactCenterId; not looked up)")),
            );
            return Some(cc.clone());
        }
        let why = report
            .blocked(&[&env_scope.id("contact-centers")])
            .unwrap_or_else(|| "skipped: no contact center list".into());
        report.push(group, id, title, Verdict::skipped(why));
        return None;
    };
    match choose(
        list,
        spec.contact_center_id.as_deref(),
        spec.contact_center_domain.as_deref(),
    ) {
        Ok(found) => {
            let domains = found.domains.join(", ");
            report.push(
                group,
                id,
                title,
                Verdict::ok(format!("{} (domains: {domains})", found.id)),
            );
            Some(found.id.clone())
        }
        Err(e) => {
            report.push(group, id, title, Verdict::failure(e.message, "set spec.contactCenterId, or a spec.contactCenterDomain that names one contact center"));
            None
        }
    }
}
