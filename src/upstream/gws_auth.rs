//! GWS Auth: the ops API for OAuth clients and the token endpoint.

use async_trait::async_trait;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::{ErrorKind, Result, System, UpstreamError};
use super::http::{Call, HttpClient};
use super::json::{Obj, null_as_default, objects};
use crate::api::common::{normal_url, same_url};
use crate::secret::{Credentials, SecretString};

/// An OAuth client as GWS Auth shows it (never with its secret). A list that is `null`
/// reads as empty, as Jackson writes absent ones.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthClient {
    #[serde(
        rename = "client_id",
        alias = "clientId",
        default,
        deserialize_with = "null_as_default"
    )]
    pub client_id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Free text; the operator writes who manages the client there (see
    /// [`ClientRegistration::description`]).
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub client_type: Option<String>,
    #[serde(default)]
    pub internal_client: Option<bool>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub authorized_grant_types: Vec<String>,
    #[serde(default, rename = "redirectURIs", deserialize_with = "null_as_default")]
    pub redirect_uris: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub authorities: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub scope: Vec<String>,
    #[serde(default)]
    pub access_token_expiration_timeout: Option<i64>,
    #[serde(default)]
    pub refresh_token_expiration_timeout: Option<i64>,
}

/// The client we want: what the runbook's table asks for.
#[derive(Clone, Debug)]
pub struct ClientRegistration {
    pub client_id: String,
    pub secret: SecretString,
    /// Who manages the client, shown upstream: "managed by dc-operator: ..." (see
    /// `runbook::environment::ClientManager`).
    pub description: String,
    /// Already in normal form (`api::common::normal_url`).
    pub redirect_uri: String,
    /// The redirect URI this operator set before (an earlier `nexusUrl`): replaced, not kept
    /// beside the new one. URIs others set stay.
    pub previous_redirect_uri: Option<String>,
    pub access_token_expiration_timeout: i64,
    pub refresh_token_expiration_timeout: i64,
}

/// The grant types the runbook's table lists.
pub const REQUIRED_GRANT_TYPES: [&str; 4] = [
    "refresh_token",
    "password",
    "client_credentials",
    "authorization_code",
];

impl ClientRegistration {
    /// The body of a create, secret included.
    fn create_body(&self) -> Value {
        json!({"data": {
            "clientType": "CONFIDENTIAL",
            "internalClient": true,
            "name": self.client_id,
            "description": self.description,
            "client_id": self.client_id,
            "client_secret": self.secret.expose(),
            "authorities": ["ROLE_INTERNAL_CLIENT"],
            "scope": ["*"],
            "authorizedGrantTypes": REQUIRED_GRANT_TYPES,
            "redirectURIs": [self.redirect_uri],
            "accessTokenExpirationTimeout": self.access_token_expiration_timeout,
            "refreshTokenExpirationTimeout": self.refresh_token_expiration_timeout,
        }})
    }

    /// What differs between the client as it is and as we want it, by field name; empty
    /// when it is right. Grant types compare as "contains": the server may add its own.
    pub fn differences(&self, actual: &OAuthClient) -> Vec<&'static str> {
        let mut diffs = Vec::new();
        if !REQUIRED_GRANT_TYPES
            .iter()
            .all(|g| actual.authorized_grant_types.iter().any(|a| a == g))
        {
            diffs.push("authorizedGrantTypes");
        }
        if self.redirect_uris(actual) != actual.redirect_uris {
            diffs.push("redirectURIs");
        }
        if !actual.scope.is_empty() && !actual.scope.iter().any(|s| s == "*") {
            diffs.push("scope");
        }
        if !actual.authorities.is_empty()
            && !actual
                .authorities
                .iter()
                .any(|a| a == "ROLE_INTERNAL_CLIENT")
        {
            diffs.push("authorities");
        }
        // A server that does not show the description cannot be told it differs.
        if actual
            .description
            .as_deref()
            .is_some_and(|d| d != self.description)
        {
            diffs.push("description");
        }
        if actual
            .access_token_expiration_timeout
            .is_some_and(|t| t != self.access_token_expiration_timeout)
        {
            diffs.push("accessTokenExpirationTimeout");
        }
        if actual
            .refresh_token_expiration_timeout
            .is_some_and(|t| t != self.refresh_token_expiration_timeout)
        {
            diffs.push("refreshTokenExpirationTimeout");
        }
        diffs
    }

    /// [`Self::differences`] in words: each field as it is and as an update would set it
    /// (no secret is among them), for a person deciding whether to let it happen.
    pub fn explain_differences(&self, actual: &OAuthClient) -> Vec<String> {
        let quote = |text: &str| {
            let short: String = text.chars().filter(|c| !c.is_control()).take(120).collect();
            format!("{short:?}")
        };
        let list = |items: &[String]| format!("[{}]", items.join(", "));
        self.differences(actual)
            .into_iter()
            .map(|field| match field {
                "authorizedGrantTypes" => {
                    let missing: Vec<String> = REQUIRED_GRANT_TYPES
                        .iter()
                        .filter(|g| !actual.authorized_grant_types.iter().any(|a| a == *g))
                        .map(|g| g.to_string())
                        .collect();
                    format!("authorizedGrantTypes lacks {}", list(&missing))
                }
                "redirectURIs" => format!(
                    "redirectURIs {} -> {}",
                    list(&actual.redirect_uris),
                    list(&self.redirect_uris(actual))
                ),
                "scope" => format!("scope {} -> [*]", list(&actual.scope)),
                "authorities" => format!(
                    "authorities {} -> [ROLE_INTERNAL_CLIENT]",
                    list(&actual.authorities)
                ),
                "description" => format!(
                    "description {} -> {}",
                    quote(actual.description.as_deref().unwrap_or_default()),
                    quote(&self.description)
                ),
                "accessTokenExpirationTimeout" => format!(
                    "accessTokenExpirationTimeout {} -> {}",
                    actual.access_token_expiration_timeout.unwrap_or_default(),
                    self.access_token_expiration_timeout
                ),
                "refreshTokenExpirationTimeout" => format!(
                    "refreshTokenExpirationTimeout {} -> {}",
                    actual.refresh_token_expiration_timeout.unwrap_or_default(),
                    self.refresh_token_expiration_timeout
                ),
                other => other.to_string(),
            })
            .collect()
    }

    /// The client's redirect URIs as they should be: those others set, and the current
    /// `nexusUrl`, in their order; the one this operator set before is dropped.
    fn redirect_uris(&self, actual: &OAuthClient) -> Vec<String> {
        let same = |a: &str, b: &str| same_url(a, b);
        let mut uris: Vec<String> = actual
            .redirect_uris
            .iter()
            .filter(|u| {
                same(u, &self.redirect_uri)
                    || !self
                        .previous_redirect_uri
                        .as_deref()
                        .is_some_and(|p| same(u, p))
            })
            .cloned()
            .collect();
        if !uris.iter().any(|u| same(u, &self.redirect_uri)) {
            uris.push(self.redirect_uri.clone());
        }
        uris
    }

    /// The body of an update that brings `actual` to what we want, keeping grant types the
    /// server added. With `with_secret`, the secret is set too.
    pub fn update_body(&self, actual: &OAuthClient, with_secret: bool) -> Value {
        let mut grants = actual.authorized_grant_types.clone();
        for g in REQUIRED_GRANT_TYPES {
            if !grants.iter().any(|a| a == g) {
                grants.push(g.to_string());
            }
        }
        let redirects = self.redirect_uris(actual);
        // Lists that already hold what is needed are kept as they are: an update writes
        // only what `differences` announced (a person may have added a scope).
        let kept_or = |actual: &[String], needed: &str| match actual.iter().any(|a| a == needed) {
            true => actual.to_vec(),
            false => vec![needed.to_string()],
        };
        let mut data = json!({
            "authorizedGrantTypes": grants,
            "redirectURIs": redirects,
            "description": self.description,
            "scope": kept_or(&actual.scope, "*"),
            "authorities": kept_or(&actual.authorities, "ROLE_INTERNAL_CLIENT"),
            "accessTokenExpirationTimeout": self.access_token_expiration_timeout,
            "refreshTokenExpirationTimeout": self.refresh_token_expiration_timeout,
        });
        if with_secret {
            data["client_secret"] = Value::String(self.secret.expose().to_string());
        }
        json!({ "data": data })
    }
}

/// An OAuth grant.
#[derive(Clone, Debug)]
pub enum Grant {
    ClientCredentials,
    /// `username` is already `<ccId>\<user>`.
    Password {
        username: String,
        password: SecretString,
    },
    RefreshToken(SecretString),
}

impl Grant {
    pub fn name(&self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::Password { .. } => "password",
            Grant::RefreshToken(_) => "refresh_token",
        }
    }
}

/// An access token and how long it lives.
#[derive(Clone, Debug)]
pub struct Token {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// Remaining lifetime in seconds, as the server said.
    pub expires_in: u64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The GWS Auth operations the runbook uses.
#[async_trait]
pub trait GwsAuthApi: Send + Sync {
    async fn list_clients(&self, ops: &Credentials) -> Result<Vec<OAuthClient>>;
    async fn get_client(&self, ops: &Credentials, client_id: &str) -> Result<Option<OAuthClient>>;
    async fn create_client(
        &self,
        ops: &Credentials,
        client: &ClientRegistration,
    ) -> Result<OAuthClient>;
    /// Sends an update body (see [`ClientRegistration::update_body`]).
    async fn update_client(&self, ops: &Credentials, client_id: &str, body: &Value) -> Result<()>;
    /// Deletes the client; `false` when it was already gone.
    async fn delete_client(&self, ops: &Credentials, client_id: &str) -> Result<bool>;
    async fn token(
        &self,
        client_id: &str,
        client_secret: &SecretString,
        grant: &Grant,
    ) -> Result<Token>;
}

/// The reqwest implementation.
pub struct GwsAuthClient {
    http: HttpClient,
    base: String,
}

impl GwsAuthClient {
    pub fn new(http: HttpClient, auth_url: &str) -> Self {
        Self {
            http,
            base: format!("{}/auth/v3", normal_url(auth_url)),
        }
    }

    fn call<'a>(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder + Send + Sync + 'a,
    ) -> Call<'a> {
        Call {
            system: System::GwsAuth,
            operation,
            method,
            url: format!("{}{path}", self.base),
            build: Box::new(build),
            at_most_once: false,
            sensitive: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

fn client_path(client_id: &str) -> String {
    format!("/ops/clients/{}", urlencode(client_id))
}

pub(crate) fn urlencode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

#[async_trait]
impl GwsAuthApi for GwsAuthClient {
    async fn list_clients(&self, ops: &Credentials) -> Result<Vec<OAuthClient>> {
        let call = self
            .call("list_clients", Method::GET, "/ops/clients", |r| {
                r.basic_auth(&ops.username, Some(ops.password.expose()))
            })
            .hiding(&[&ops.password]);
        Ok(objects(
            self.http
                .send_json::<Data<Vec<Obj<OAuthClient>>>>(&call)
                .await?
                .data,
        ))
    }

    async fn get_client(&self, ops: &Credentials, client_id: &str) -> Result<Option<OAuthClient>> {
        let call = self
            .call("get_client", Method::GET, &client_path(client_id), |r| {
                r.basic_auth(&ops.username, Some(ops.password.expose()))
            })
            .hiding(&[&ops.password]);
        Ok(self
            .http
            .send_optional::<Data<Obj<OAuthClient>>>(&call)
            .await?
            .map(|d| d.data.0))
    }

    async fn create_client(
        &self,
        ops: &Credentials,
        client: &ClientRegistration,
    ) -> Result<OAuthClient> {
        let body = client.create_body();
        let call = self
            .call("create_client", Method::POST, "/ops/clients", move |r| {
                r.basic_auth(&ops.username, Some(ops.password.expose()))
                    .json(&body)
            })
            .hiding(&[&ops.password, &client.secret])
            .at_most_once();
        Ok(self
            .http
            .send_json::<Data<Obj<OAuthClient>>>(&call)
            .await?
            .data
            .0)
    }

    async fn update_client(&self, ops: &Credentials, client_id: &str, body: &Value) -> Result<()> {
        let body_secret = SecretString::new(
            body.pointer("/data/client_secret")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        );
        let call = self
            .call(
                "update_client",
                Method::PUT,
                &client_path(client_id),
                move |r| {
                    r.basic_auth(&ops.username, Some(ops.password.expose()))
                        .json(body)
                },
            )
            .hiding(&[&ops.password, &body_secret]);
        self.http.send_unit(&call).await
    }

    async fn delete_client(&self, ops: &Credentials, client_id: &str) -> Result<bool> {
        let call = self
            .call(
                "delete_client",
                Method::DELETE,
                &client_path(client_id),
                |r| r.basic_auth(&ops.username, Some(ops.password.expose())),
            )
            .hiding(&[&ops.password]);
        match self.http.send_unit(&call).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn token(
        &self,
        client_id: &str,
        client_secret: &SecretString,
        grant: &Grant,
    ) -> Result<Token> {
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", grant.name().to_string()),
            ("client_id", client_id.to_string()),
            ("scope", "*".to_string()),
        ];
        match grant {
            Grant::ClientCredentials => {}
            Grant::Password { username, password } => {
                form.push(("username", username.clone()));
                form.push(("password", password.expose().to_string()));
            }
            Grant::RefreshToken(token) => form.push(("refresh_token", token.expose().to_string())),
        }
        let operation = match grant {
            Grant::ClientCredentials => "token_client_credentials",
            Grant::Password { .. } => "token_password",
            Grant::RefreshToken(_) => "token_refresh",
        };
        let mut carried = vec![client_secret.clone()];
        match grant {
            Grant::Password { password, .. } => carried.push(password.clone()),
            Grant::RefreshToken(token) => carried.push(token.clone()),
            Grant::ClientCredentials => {}
        }
        let mut call = self.call(operation, Method::POST, "/oauth/token", move |r| {
            r.basic_auth(client_id, Some(client_secret.expose()))
                .form(&form)
        });
        call.sensitive = carried;
        let answer: TokenAnswer = self.http.send_json(&call).await?;
        if answer.access_token.is_empty() {
            return Err(UpstreamError::new(
                System::GwsAuth,
                operation,
                ErrorKind::InvalidAnswer,
                "the token answer holds no access_token",
            ));
        }
        Ok(Token {
            access_token: SecretString::new(answer.access_token),
            refresh_token: answer.refresh_token.map(SecretString::new),
            expires_in: answer.expires_in.unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod redirect_tests {
    use super::*;

    fn wanted(current: &str, previous: Option<&str>) -> ClientRegistration {
        ClientRegistration {
            client_id: "nexus_client".into(),
            secret: "s".into(),
            description: "managed by dc-operator provision".into(),
            redirect_uri: current.into(),
            previous_redirect_uri: previous.map(str::to_string),
            access_token_expiration_timeout: 43200,
            refresh_token_expiration_timeout: 2592000,
        }
    }

    fn client(uris: &[&str]) -> OAuthClient {
        serde_json::from_value(serde_json::json!({
            "client_id": "nexus_client",
            "authorizedGrantTypes": REQUIRED_GRANT_TYPES,
            "redirectURIs": uris,
        }))
        .unwrap()
    }

    #[test]
    fn the_operators_uri_is_replaced_and_others_are_kept() {
        let actual = client(&["https://other.example.com", "https://old.example.com/"]);
        let w = wanted("https://new.example.com", Some("https://old.example.com"));
        assert_eq!(w.differences(&actual), ["redirectURIs"]);
        assert_eq!(
            w.update_body(&actual, false)["data"]["redirectURIs"],
            serde_json::json!(["https://other.example.com", "https://new.example.com"])
        );
        let settled = client(&["https://other.example.com", "https://new.example.com"]);
        assert!(w.differences(&settled).is_empty());
    }

    #[test]
    fn without_a_record_nothing_is_dropped() {
        let actual = client(&["https://other.example.com"]);
        let w = wanted("https://new.example.com", None);
        assert_eq!(
            w.update_body(&actual, false)["data"]["redirectURIs"],
            serde_json::json!(["https://other.example.com", "https://new.example.com"])
        );
    }
}

/// Found by review: an update writes only what the differences announced.
#[cfg(test)]
mod announced_update_tests {
    use super::*;

    /// A client made by hand that differs only in its description (all Observe announces),
    /// but also carries a scope and an authority of its own: the update Manage then sends
    /// replaces scope and authorities wholesale, writes Observe never announced.
    #[test]
    fn the_update_writes_only_what_observe_announced() {
        let wanted = ClientRegistration {
            client_id: "nexus_client".into(),
            secret: "s".into(),
            description: "managed by dc-operator: DigitalChannelsEnvironment dc/prod".into(),
            redirect_uri: "https://nexus.example.com".into(),
            previous_redirect_uri: None,
            access_token_expiration_timeout: 43200,
            refresh_token_expiration_timeout: 2592000,
        };
        let by_hand = OAuthClient {
            client_id: "nexus_client".into(),
            description: Some("nexus_client".into()),
            authorized_grant_types: REQUIRED_GRANT_TYPES.iter().map(|g| g.to_string()).collect(),
            redirect_uris: vec!["https://nexus.example.com".into()],
            scope: vec!["*".into(), "chat".into()],
            authorities: vec!["ROLE_INTERNAL_CLIENT".into(), "ROLE_CHAT_ADMIN".into()],
            access_token_expiration_timeout: None,
            refresh_token_expiration_timeout: None,
            ..Default::default()
        };
        let announced = wanted.explain_differences(&by_hand);
        assert_eq!(announced.len(), 1, "{announced:?}");
        let body = wanted.update_body(&by_hand, false);
        assert_eq!(
            body["data"]["scope"],
            serde_json::json!(["*", "chat"]),
            "{body}"
        );
        assert_eq!(
            body["data"]["authorities"],
            serde_json::json!(["ROLE_INTERNAL_CLIENT", "ROLE_CHAT_ADMIN"]),
            "{body}"
        );
    }
}
