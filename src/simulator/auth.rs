//! GWS Auth client administration: `/auth/v3/ops/clients[/{client_id}]`, ops Basic auth.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::app::SharedApp;
use super::reply::{ApiError, Envelope, parse_json, required};
use super::state::{Client, Secret, Write};

/// A grant type the server adds on its own to every client, so that clients of this API have
/// to compare grant types with "contains" rather than equality (the page says GWS does that).
pub(crate) const SERVER_ADDED_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CLIENT_TYPES: [&str; 2] = ["CONFIDENTIAL", "PUBLIC"];
const DEFAULT_ACCESS_TIMEOUT: u64 = 43_200;
const DEFAULT_REFRESH_TIMEOUT: u64 = 2_592_000;

pub(crate) fn routes() -> Router<SharedApp> {
    Router::new()
        .route(
            "/auth/v3/ops/clients",
            get(list_clients).post(create_client),
        )
        .route(
            "/auth/v3/ops/clients/{client_id}",
            get(get_client).put(update_client).delete(delete_client),
        )
}

/// `{"data": {...}}` of create and update.
#[derive(Deserialize)]
struct ClientBody {
    data: Option<ClientFields>,
}

/// Every field is optional here; create checks the required ones, update applies what is given.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClientFields {
    #[serde(rename = "client_id")]
    client_id: Option<String>,
    #[serde(rename = "client_secret")]
    client_secret: Option<String>,
    name: Option<String>,
    description: Option<String>,
    client_type: Option<String>,
    internal_client: Option<bool>,
    authorized_grant_types: Option<Vec<String>>,
    #[serde(rename = "redirectURIs")]
    redirect_uris: Option<Vec<String>>,
    authorities: Option<Vec<String>>,
    scope: Option<Vec<String>>,
    access_token_expiration_timeout: Option<u64>,
    refresh_token_expiration_timeout: Option<u64>,
}

impl ClientFields {
    fn parse(body: &Bytes) -> Result<ClientFields, ApiError> {
        parse_json::<ClientBody>(body)?
            .data
            .ok_or_else(|| ApiError::bad_request("body must be {\"data\": {...}}"))
    }

    /// Checks the fields that are present; on create also that the required ones are.
    fn validate(&self, creating: bool) -> Result<(), ApiError> {
        if creating {
            required(&self.client_id, "data.client_id")?;
            required(&self.client_secret, "data.client_secret")?;
            required(&self.client_type, "data.clientType")?;
            for (present, field) in [
                (
                    self.authorized_grant_types.is_some(),
                    "authorizedGrantTypes",
                ),
                (self.redirect_uris.is_some(), "redirectURIs"),
                (self.scope.is_some(), "scope"),
            ] {
                if !present {
                    return Err(ApiError::bad_request(format!("data.{field} is required")));
                }
            }
        }
        if self.client_secret.as_deref().is_some_and(str::is_empty) {
            return Err(ApiError::bad_request(
                "data.client_secret must not be empty",
            ));
        }
        if let Some(t) = &self.client_type
            && !CLIENT_TYPES.contains(&t.as_str())
        {
            return Err(ApiError::bad_request(format!(
                "data.clientType must be one of {}",
                CLIENT_TYPES.join(", ")
            )));
        }
        for (list, field) in [
            (&self.authorized_grant_types, "authorizedGrantTypes"),
            (&self.scope, "scope"),
        ] {
            if list.as_ref().is_some_and(Vec::is_empty) {
                return Err(ApiError::bad_request(format!(
                    "data.{field} must not be empty"
                )));
            }
        }
        for (timeout, field) in [
            (
                self.access_token_expiration_timeout,
                "accessTokenExpirationTimeout",
            ),
            (
                self.refresh_token_expiration_timeout,
                "refreshTokenExpirationTimeout",
            ),
        ] {
            if timeout == Some(0) {
                return Err(ApiError::bad_request(format!(
                    "data.{field} must be positive"
                )));
            }
        }
        Ok(())
    }

    /// Copies the given fields onto `client`.
    fn apply(self, client: &mut Client) {
        let ClientFields {
            client_id: _,
            client_secret,
            name,
            description,
            client_type,
            internal_client,
            authorized_grant_types,
            redirect_uris,
            authorities,
            scope,
            access_token_expiration_timeout,
            refresh_token_expiration_timeout,
        } = self;
        if let Some(secret) = client_secret {
            client.secret = Secret::new(secret);
        }
        set(&mut client.name, name);
        set(&mut client.description, description);
        set(&mut client.client_type, client_type);
        set(&mut client.internal_client, internal_client);
        set(&mut client.redirect_uris, redirect_uris);
        set(&mut client.authorities, authorities);
        set(&mut client.scope, scope);
        set(
            &mut client.access_token_expiration_timeout,
            access_token_expiration_timeout,
        );
        set(
            &mut client.refresh_token_expiration_timeout,
            refresh_token_expiration_timeout,
        );
        if let Some(mut grants) = authorized_grant_types {
            if !grants.iter().any(|g| g == SERVER_ADDED_GRANT) {
                grants.push(SERVER_ADDED_GRANT.to_owned());
            }
            client.authorized_grant_types = grants;
        }
    }
}

fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}

fn client_json(client: &Client) -> Value {
    serde_json::to_value(client).unwrap_or(Value::Null)
}

/// What GWS answers in place of the plaintext secret: an opaque, encrypted-looking base64 value.
fn opaque_secret() -> String {
    let noise: [u8; 48] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(noise)
}

async fn list_clients(State(app): State<SharedApp>, headers: HeaderMap) -> Response {
    app.run("auth.list_clients", async {
        app.require_ops(&headers)?;
        let clients: Vec<Value> = app.state().clients.values().map(client_json).collect();
        Ok(Envelope::ok().data(Value::Array(clients)).into_response())
    })
    .await
}

async fn get_client(
    State(app): State<SharedApp>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    app.run("auth.get_client", async {
        app.require_ops(&headers)?;
        let state = app.state();
        let client = state
            .clients
            .get(&client_id)
            .ok_or_else(|| client_not_found(&client_id))?;
        Ok(Envelope::ok().data(client_json(client)).into_response())
    })
    .await
}

async fn create_client(State(app): State<SharedApp>, headers: HeaderMap, body: Bytes) -> Response {
    const OP: &str = "auth.create_client";
    app.run(OP, async {
        app.require_ops(&headers)?;
        let fields = ClientFields::parse(&body)?;
        fields.validate(true)?;
        let client_id = required(&fields.client_id, "data.client_id")?.to_owned();
        let mut state = app.state();
        if state.clients.contains_key(&client_id) {
            return Err(ApiError::conflict(format!(
                "client '{client_id}' already exists"
            )));
        }
        let mut client = Client {
            name: client_id.clone(),
            client_id: client_id.clone(),
            description: String::new(),
            client_type: String::new(),
            internal_client: false,
            authorized_grant_types: Vec::new(),
            redirect_uris: Vec::new(),
            authorities: Vec::new(),
            scope: Vec::new(),
            access_token_expiration_timeout: DEFAULT_ACCESS_TIMEOUT,
            refresh_token_expiration_timeout: DEFAULT_REFRESH_TIMEOUT,
            secret: Secret::default(),
        };
        fields.apply(&mut client);
        let mut echoed = client_json(&client);
        if let Some(obj) = echoed.as_object_mut() {
            obj.insert("client_secret".to_owned(), Value::String(opaque_secret()));
        }
        state.clients.insert(client_id.clone(), client);
        state.count_write(OP, Write::Create);
        Ok(Envelope::ok()
            .data(echoed)
            .path(format!("/clients/{client_id}"))
            .into_response())
    })
    .await
}

async fn update_client(
    State(app): State<SharedApp>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const OP: &str = "auth.update_client";
    app.run(OP, async {
        app.require_ops(&headers)?;
        let fields = ClientFields::parse(&body)?;
        fields.validate(false)?;
        if fields
            .client_id
            .as_deref()
            .is_some_and(|id| id != client_id)
        {
            return Err(ApiError::bad_request(
                "data.client_id does not match the client in the path",
            ));
        }
        let mut state = app.state();
        let client = state
            .clients
            .get_mut(&client_id)
            .ok_or_else(|| client_not_found(&client_id))?;
        fields.apply(client);
        let data = client_json(client);
        state.count_write(OP, Write::Update);
        Ok(Envelope::ok().data(data).into_response())
    })
    .await
}

async fn delete_client(
    State(app): State<SharedApp>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    const OP: &str = "auth.delete_client";
    app.run(OP, async {
        app.require_ops(&headers)?;
        let mut state = app.state();
        state
            .clients
            .remove(&client_id)
            .ok_or_else(|| client_not_found(&client_id))?;
        state.revoke_tokens_of(&client_id);
        state.count_write(OP, Write::Delete);
        Ok(Envelope::ok().into_response())
    })
    .await
}

fn client_not_found(client_id: &str) -> ApiError {
    ApiError::not_found(format!("client '{client_id}' not found"))
}
