//! GWS Auth in memory: OAuth clients (their secrets kept apart, never shown by a GET), tenant
//! users, and the tokens it issued.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use super::{CallLog, Faked, Script, lock, unauthorized};
use crate::secret::{Credentials, SecretString};
use crate::upstream::error::Result;
use crate::upstream::gws_auth::{ClientRegistration, Grant, GwsAuthApi, OAuthClient, Token};
use crate::upstream::{ErrorKind, System, UpstreamError};

const SYSTEM: System = System::GwsAuth;

#[derive(Default)]
struct State {
    ops: (String, String),
    clients: BTreeMap<String, (OAuthClient, SecretString)>,
    /// `<ccId>\<user>` (the contact center lower-cased) → password.
    users: HashMap<String, String>,
    /// Live access tokens → the client they were issued to.
    access: HashMap<String, String>,
    /// Refresh tokens → the client they were issued to.
    refresh: HashMap<String, String>,
    issued: u64,
    expires_in: u64,
}

/// GWS Auth: `ops:ops` by default, no client, no user; tokens live 43199 s.
pub struct FakeGwsAuth {
    pub log: CallLog,
    pub script: Script,
    state: Mutex<State>,
}

impl Default for FakeGwsAuth {
    fn default() -> Self {
        Self::new(CallLog::default())
    }
}

fn user_key(username: &str) -> Option<String> {
    let (cc, user) = username.split_once('\\')?;
    Some(format!("{}\\{user}", cc.to_ascii_lowercase()))
}

impl FakeGwsAuth {
    pub fn new(log: CallLog) -> Self {
        let state = State {
            ops: ("ops".into(), "ops".into()),
            expires_in: 43_199,
            ..State::default()
        };
        Self {
            log,
            script: Script::default(),
            state: Mutex::new(state),
        }
    }

    /// A client made elsewhere (by hand, another manager), with its secret.
    pub fn put_client(&self, client: OAuthClient, secret: &str) {
        let id = client.client_id.clone();
        lock(&self.state)
            .clients
            .insert(id, (client, SecretString::new(secret)));
    }

    /// The client as GWS Auth holds it (without its secret).
    pub fn client(&self, client_id: &str) -> Option<OAuthClient> {
        lock(&self.state)
            .clients
            .get(client_id)
            .map(|c| c.0.clone())
    }

    /// The client's secret, which no API shows: for a test's assertions.
    pub fn client_secret(&self, client_id: &str) -> Option<SecretString> {
        lock(&self.state)
            .clients
            .get(client_id)
            .map(|c| c.1.clone())
    }

    /// A tenant user (a Person of the contact center), or its new password.
    pub fn put_user(&self, contact_center_id: &str, user: &str, password: &str) {
        let key = format!("{}\\{user}", contact_center_id.to_ascii_lowercase());
        lock(&self.state).users.insert(key, password.to_string());
    }

    /// The lifetime of the tokens issued from now on.
    pub fn set_expires_in(&self, seconds: u64) {
        lock(&self.state).expires_in = seconds;
    }

    /// Forgets every token issued (a restart, a revocation): they are refused from now on.
    pub fn forget_tokens(&self) {
        let mut state = lock(&self.state);
        state.access.clear();
        state.refresh.clear();
    }

    /// Whether `token` is a live access token: what Nexus asks of a bearer.
    pub fn is_live(&self, token: &str) -> bool {
        lock(&self.state).access.contains_key(token)
    }

    fn check_ops(&self, ops: &Credentials, operation: &'static str) -> Result<()> {
        let state = lock(&self.state);
        if ops.username == state.ops.0 && ops.password.expose() == state.ops.1 {
            Ok(())
        } else {
            Err(unauthorized(SYSTEM, operation, "Bad credentials"))
        }
    }

    /// Checks the grant and issues a token for it.
    fn issue(&self, client_id: &str, client_secret: &SecretString, grant: &Grant) -> Result<Token> {
        const OP: &str = "token";
        let mut state = lock(&self.state);
        match state.clients.get(client_id) {
            Some((_, secret)) if secret == client_secret => {}
            _ => {
                return Err(unauthorized(
                    SYSTEM,
                    OP,
                    "invalid_client: Bad client credentials",
                ));
            }
        }
        let invalid_grant = |why: &str| {
            UpstreamError::new(
                SYSTEM,
                OP,
                ErrorKind::Rejected,
                format!("invalid_grant: {why}"),
            )
            .with_status(400)
        };
        let with_refresh = match grant {
            Grant::ClientCredentials => false,
            Grant::Password { username, password } => {
                let known = user_key(username).and_then(|k| state.users.get(&k));
                if known.is_none_or(|p| p != password.expose()) {
                    return Err(invalid_grant("Bad credentials"));
                }
                true
            }
            Grant::RefreshToken(token) => {
                if state.refresh.remove(token.expose()).is_none() {
                    return Err(invalid_grant("Invalid refresh token"));
                }
                true
            }
        };
        state.issued += 1;
        let access = format!("access-{}", state.issued);
        state.access.insert(access.clone(), client_id.to_string());
        let refresh = with_refresh.then(|| format!("refresh-{}", state.issued));
        if let Some(r) = &refresh {
            state.refresh.insert(r.clone(), client_id.to_string());
        }
        Ok(Token {
            access_token: SecretString::new(access),
            refresh_token: refresh.map(SecretString::new),
            expires_in: state.expires_in,
        })
    }
}

/// The client a create makes: what was asked, as GWS Auth shows it.
fn created(client: &ClientRegistration) -> OAuthClient {
    OAuthClient {
        client_id: client.client_id.clone(),
        name: Some(client.client_id.clone()),
        description: Some(client.description.clone()),
        client_type: Some("CONFIDENTIAL".into()),
        internal_client: Some(true),
        authorized_grant_types: crate::upstream::gws_auth::REQUIRED_GRANT_TYPES
            .iter()
            .map(|g| g.to_string())
            .collect(),
        redirect_uris: vec![client.redirect_uri.clone()],
        authorities: vec!["ROLE_INTERNAL_CLIENT".into()],
        scope: vec!["*".into()],
        access_token_expiration_timeout: Some(client.access_token_expiration_timeout),
        refresh_token_expiration_timeout: Some(client.refresh_token_expiration_timeout),
    }
}

/// Sets the fields an update body gives; the others stay.
fn apply_update(client: &mut OAuthClient, secret: &mut SecretString, data: &Value) {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    if let Some(v) = data.get("authorizedGrantTypes") {
        client.authorized_grant_types = strings(v);
    }
    if let Some(v) = data.get("redirectURIs") {
        client.redirect_uris = strings(v);
    }
    if let Some(v) = data.get("scope") {
        client.scope = strings(v);
    }
    if let Some(v) = data.get("authorities") {
        client.authorities = strings(v);
    }
    if let Some(v) = data.get("description").and_then(Value::as_str) {
        client.description = Some(v.to_string());
    }
    if let Some(v) = data
        .get("accessTokenExpirationTimeout")
        .and_then(Value::as_i64)
    {
        client.access_token_expiration_timeout = Some(v);
    }
    if let Some(v) = data
        .get("refreshTokenExpirationTimeout")
        .and_then(Value::as_i64)
    {
        client.refresh_token_expiration_timeout = Some(v);
    }
    if let Some(v) = data.get("client_secret").and_then(Value::as_str) {
        *secret = SecretString::new(v);
    }
}

impl Faked for FakeGwsAuth {
    fn books(&self) -> (&CallLog, &Script, System) {
        (&self.log, &self.script, SYSTEM)
    }
}

#[async_trait]
impl GwsAuthApi for FakeGwsAuth {
    async fn list_clients(&self, ops: &Credentials) -> Result<Vec<OAuthClient>> {
        self.run("list_clients", "", || {
            self.check_ops(ops, "list_clients")?;
            Ok(lock(&self.state)
                .clients
                .values()
                .map(|c| c.0.clone())
                .collect())
        })
    }

    async fn get_client(&self, ops: &Credentials, client_id: &str) -> Result<Option<OAuthClient>> {
        self.run("get_client", client_id, || {
            self.check_ops(ops, "get_client")?;
            Ok(self.client(client_id))
        })
    }

    async fn create_client(
        &self,
        ops: &Credentials,
        client: &ClientRegistration,
    ) -> Result<OAuthClient> {
        const OP: &str = "create_client";
        self.run(OP, &client.client_id, || {
            self.check_ops(ops, OP)?;
            let mut state = lock(&self.state);
            if state.clients.contains_key(&client.client_id) {
                let e =
                    UpstreamError::new(SYSTEM, OP, ErrorKind::Conflict, "client already exists");
                return Err(e.with_status(409));
            }
            let made = created(client);
            let entry = (made.clone(), client.secret.clone());
            state.clients.insert(client.client_id.clone(), entry);
            Ok(made)
        })
    }

    async fn update_client(&self, ops: &Credentials, client_id: &str, body: &Value) -> Result<()> {
        const OP: &str = "update_client";
        self.run(OP, client_id, || {
            self.check_ops(ops, OP)?;
            let mut state = lock(&self.state);
            let Some((client, secret)) = state.clients.get_mut(client_id) else {
                let e = UpstreamError::new(SYSTEM, OP, ErrorKind::NotFound, "no such client");
                return Err(e.with_status(404));
            };
            apply_update(client, secret, body.get("data").unwrap_or(&Value::Null));
            Ok(())
        })
    }

    async fn delete_client(&self, ops: &Credentials, client_id: &str) -> Result<bool> {
        self.run("delete_client", client_id, || {
            self.check_ops(ops, "delete_client")?;
            let mut state = lock(&self.state);
            state.access.retain(|_, c| c != client_id);
            state.refresh.retain(|_, c| c != client_id);
            Ok(state.clients.remove(client_id).is_some())
        })
    }

    async fn token(
        &self,
        client_id: &str,
        client_secret: &SecretString,
        grant: &Grant,
    ) -> Result<Token> {
        let target = match grant {
            Grant::Password { username, .. } => username.clone(),
            other => other.name().to_string(),
        };
        self.run("token", &target, || {
            self.issue(client_id, client_secret, grant)
        })
    }
}
