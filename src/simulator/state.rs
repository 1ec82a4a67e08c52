//! The in-memory side of the simulated services (clients, tokens, settings, tenants, UCS
//! services) and the read-only [`StateView`] tests and `/_sim/state` see.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

/// A secret value kept by the simulator: compared, never serialized, printed as `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub(crate) fn matches(&self, candidate: &str) -> bool {
        self.0 == candidate
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An OAuth client of GWS Auth. Serializes with the wire names of `/auth/v3/ops/clients`,
/// without the secret (GET never shows it).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    #[serde(rename = "client_id")]
    pub client_id: String,
    pub name: String,
    pub description: String,
    pub client_type: String,
    pub internal_client: bool,
    pub authorized_grant_types: Vec<String>,
    #[serde(rename = "redirectURIs")]
    pub redirect_uris: Vec<String>,
    pub authorities: Vec<String>,
    pub scope: Vec<String>,
    pub access_token_expiration_timeout: u64,
    pub refresh_token_expiration_timeout: u64,
    #[serde(skip)]
    pub(crate) secret: Secret,
}

impl Client {
    /// Whether `candidate` is the client's current secret (the plaintext itself is never exposed).
    pub fn secret_matches(&self, candidate: &str) -> bool {
        self.secret.matches(candidate)
    }

    pub(crate) fn has_grant(&self, grant: &str) -> bool {
        self.authorized_grant_types.iter().any(|g| g == grant)
    }
}

/// A contact center setting of the Environment API.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Setting {
    pub name: String,
    pub location: String,
    pub value: Value,
    pub shared: bool,
    /// Whether `shared` goes over the wire as the string "true"/"false" (GWS does both).
    pub shared_as_string: bool,
}

impl Setting {
    /// The wire form, with `shared` as a string or a boolean as stored.
    pub(crate) fn to_wire(&self) -> Value {
        let shared = if self.shared_as_string {
            Value::String(self.shared.to_string())
        } else {
            Value::Bool(self.shared)
        };
        json!({"name": self.name, "location": self.location, "value": self.value, "shared": shared})
    }
}

/// A Digital Channels tenant. Its password (`token`) and API key are not part of the view.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub tenant_type: String,
    pub backendurl: String,
    pub username: String,
    pub genesystemenantid: i64,
    pub operation_id: String,
    #[serde(skip)]
    pub(crate) token: Secret,
}

impl Tenant {
    /// Whether `candidate` is the tenant user password Nexus holds (`token`), e.g. to prove that
    /// an update after a password rotation reached Nexus.
    pub fn token_matches(&self, candidate: &str) -> bool {
        self.token.matches(candidate)
    }

    /// The wire form of the assumed `GET .../tenants/{ccId}`: the create body minus `token`.
    pub(crate) fn to_wire(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "type": self.tenant_type,
            "backendurl": self.backendurl,
            "username": self.username,
            "genesystemenantid": self.genesystemenantid,
        })
    }
}

/// Who an access token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Subject {
    /// `client_credentials`: the client itself.
    Client,
    /// `password`: a tenant Person of one contact center.
    TenantUser { cc_id: String, username: String },
}

#[derive(Clone, Debug)]
pub(crate) struct AccessToken {
    pub client_id: String,
    pub subject: Subject,
    pub expires_at: Instant,
}

#[derive(Clone, Debug)]
pub(crate) struct RefreshToken {
    pub client_id: String,
    pub subject: Subject,
    pub expires_at: Instant,
}

/// A PlatformUCS service registration.
#[derive(Clone, Debug)]
pub(crate) struct UcsService {
    pub url: String,
}

/// Everything the simulated services hold in memory. `nex_gapis` and `nex_apikeys` live in
/// PostgreSQL instead, as they do with Nexus.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub clients: BTreeMap<String, Client>,
    /// ccId -> setting name -> setting.
    pub settings: BTreeMap<String, BTreeMap<String, Setting>>,
    pub tenants: BTreeMap<String, Tenant>,
    pub ucs: BTreeMap<String, UcsService>,
    pub access_tokens: HashMap<String, AccessToken>,
    pub refresh_tokens: HashMap<String, RefreshToken>,
    pub tokens_issued: u64,
    pub nexus_restarts: u64,
    pub calls: BTreeMap<String, u64>,
    /// When the last [`MAX_CALL_TIMES`] requests of each operation (and fault target) came.
    pub call_times: BTreeMap<String, VecDeque<Instant>>,
    pub creates: BTreeMap<String, u64>,
    pub updates: BTreeMap<String, u64>,
    pub deletes: BTreeMap<String, u64>,
}

/// How many request times are kept per operation: the newest, so that a long `simulate`
/// run does not grow forever.
pub(crate) const MAX_CALL_TIMES: usize = 10_000;

/// Which tally of successful writes to bump.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Write {
    Create,
    Update,
    Delete,
}

impl State {
    pub(crate) fn count_call(&mut self, op: &str) {
        *self.calls.entry(op.to_owned()).or_default() += 1;
        self.record_call_time(op);
    }

    /// Notes when a request of `op` (or of a narrower fault target) came, without counting it.
    pub(crate) fn record_call_time(&mut self, op: &str) {
        let times = self.call_times.entry(op.to_owned()).or_default();
        if times.len() == MAX_CALL_TIMES {
            times.pop_front();
        }
        times.push_back(Instant::now());
    }

    pub(crate) fn count_write(&mut self, op: &str, write: Write) {
        let tally = match write {
            Write::Create => &mut self.creates,
            Write::Update => &mut self.updates,
            Write::Delete => &mut self.deletes,
        };
        *tally.entry(op.to_owned()).or_default() += 1;
    }

    /// A write that created the entry, or `replaced` the one there.
    pub(crate) fn count_upsert(&mut self, op: &str, replaced: bool) {
        let write = if replaced {
            Write::Update
        } else {
            Write::Create
        };
        self.count_write(op, write);
    }

    /// Stores a new access token and answers it with its expiry.
    pub(crate) fn issue_access_token(
        &mut self,
        client_id: &str,
        subject: Subject,
        lifetime: Duration,
    ) -> (String, Instant) {
        let now = Instant::now();
        // Expired tokens are dropped here so that a long `simulate` run does not grow forever.
        self.access_tokens.retain(|_, t| t.expires_at > now);
        self.refresh_tokens.retain(|_, t| t.expires_at > now);
        let token = uuid::Uuid::new_v4().to_string();
        let expires_at = now + lifetime;
        self.access_tokens.insert(
            token.clone(),
            AccessToken {
                client_id: client_id.to_owned(),
                subject,
                expires_at,
            },
        );
        self.tokens_issued += 1;
        (token, expires_at)
    }

    pub(crate) fn issue_refresh_token(
        &mut self,
        client_id: &str,
        subject: Subject,
        lifetime: Duration,
    ) -> String {
        let token = uuid::Uuid::new_v4().to_string();
        self.refresh_tokens.insert(
            token.clone(),
            RefreshToken {
                client_id: client_id.to_owned(),
                subject,
                expires_at: Instant::now() + lifetime,
            },
        );
        token
    }

    /// The access token if it exists and has not expired.
    pub(crate) fn valid_access_token(&self, token: &str) -> Option<&AccessToken> {
        self.access_tokens
            .get(token)
            .filter(|t| t.expires_at > Instant::now())
    }

    pub(crate) fn valid_refresh_token(&self, token: &str) -> Option<&RefreshToken> {
        self.refresh_tokens
            .get(token)
            .filter(|t| t.expires_at > Instant::now())
    }

    /// Tokens die with their client.
    pub(crate) fn revoke_tokens_of(&mut self, client_id: &str) {
        self.access_tokens.retain(|_, t| t.client_id != client_id);
        self.refresh_tokens.retain(|_, t| t.client_id != client_id);
    }

    pub(crate) fn view(&self) -> StateView {
        StateView {
            clients: self.clients.clone(),
            settings: self.settings.clone(),
            tenants: self.tenants.clone(),
            ucs_services: self
                .ucs
                .iter()
                .map(|(cc, s)| (cc.clone(), s.url.clone()))
                .collect(),
            tokens_issued: self.tokens_issued,
            nexus_restarts: self.nexus_restarts,
            calls: self.calls.clone(),
            call_times: self
                .call_times
                .iter()
                .map(|(op, times)| (op.clone(), times.iter().copied().collect()))
                .collect(),
            creates: self.creates.clone(),
            updates: self.updates.clone(),
            deletes: self.deletes.clone(),
        }
    }
}

/// A read-only copy of the simulator's state and request counts. Holds no secret: use
/// [`Client::secret_matches`] to check a client secret.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateView {
    /// client_id -> client.
    pub clients: BTreeMap<String, Client>,
    /// ccId -> setting name -> setting.
    pub settings: BTreeMap<String, BTreeMap<String, Setting>>,
    /// ccId -> tenant.
    pub tenants: BTreeMap<String, Tenant>,
    /// ccId -> PlatformUCS url.
    pub ucs_services: BTreeMap<String, String>,
    /// Access tokens issued since start, by every grant.
    pub tokens_issued: u64,
    /// Times the Nexus `nex_gapis` cache was reloaded after start.
    pub nexus_restarts: u64,
    /// Requests per operation, failed and faulted ones included.
    pub calls: BTreeMap<String, u64>,
    /// When the requests of each operation came (the newest 10,000), failed and faulted ones
    /// included; also per grant of the token endpoint (`auth.token.password`, ...).
    #[serde(skip)]
    pub call_times: BTreeMap<String, Vec<Instant>>,
    /// Successful creations per operation (client, new setting, tenant, new UCS service).
    pub creates: BTreeMap<String, u64>,
    /// Successful changes of something that existed (client update, setting overwrite,
    /// repeated UCS registration, tenant update).
    pub updates: BTreeMap<String, u64>,
    /// Successful deletions per operation.
    pub deletes: BTreeMap<String, u64>,
}

impl StateView {
    /// Requests seen for `op`.
    pub fn calls(&self, op: &str) -> u64 {
        self.calls.get(op).copied().unwrap_or(0)
    }

    /// When the requests of `op` came, oldest first: to check how far apart retries were.
    pub fn call_times(&self, op: &str) -> &[Instant] {
        self.call_times.get(op).map_or(&[], Vec::as_slice)
    }

    /// Successful creations for `op`.
    pub fn creates(&self, op: &str) -> u64 {
        self.creates.get(op).copied().unwrap_or(0)
    }

    /// Successful updates for `op`.
    pub fn updates(&self, op: &str) -> u64 {
        self.updates.get(op).copied().unwrap_or(0)
    }

    /// Successful deletions for `op`.
    pub fn deletes(&self, op: &str) -> u64 {
        self.deletes.get(op).copied().unwrap_or(0)
    }
}
