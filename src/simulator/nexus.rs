//! Digital Channels (Nexus) provisioning: PlatformUCS services and tenants. Tenant provisioning
//! checks GWS the way Nexus does, through a `nex_gapis` row, and writes `nex_apikeys`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::{App, SharedApp};
use super::db;
use super::reply::{
    ApiError, BEARER_CHALLENGE, Envelope, bearer_token, header_text, parse_json, required,
};
use super::state::{Secret, Subject, Tenant, UcsService, Write};

pub(crate) fn routes() -> Router<SharedApp> {
    Router::new()
        .route(
            "/nexus/v3/provisioning/services/{cc_id}/PlatformUCS",
            post(register_ucs).delete(delete_ucs),
        )
        .route("/nexus/v3/provisioning/tenants", post(create_tenant))
        .route(
            "/nexus/v3/provisioning/tenants/{cc_id}",
            get(get_tenant).put(update_tenant).delete(delete_tenant),
        )
}

fn new_operation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---------------------------------------------------------------------------------------------
// PlatformUCS

/// The PlatformUCS headers: `x-api-key` is a valid GWS access token or a key of `nex_apikeys`
/// \[assumed: the runbook does not say which\], and `x-ccid` names the path's contact center.
async fn check_ucs_headers(app: &App, headers: &HeaderMap, cc_id: &str) -> Result<(), ApiError> {
    let key = header_text(headers, "x-api-key")
        .ok_or_else(|| ApiError::unauthorized("x-api-key header is required", BEARER_CHALLENGE))?;
    let is_token = app.state().valid_access_token(key).is_some();
    if !is_token
        && !db::api_key_exists(&app.db, key)
            .await
            .map_err(|e| ApiError::database(&e))?
    {
        return Err(ApiError::unauthorized(
            "invalid x-api-key",
            BEARER_CHALLENGE,
        ));
    }
    match header_text(headers, "x-ccid") {
        Some(given) if given == cc_id => Ok(()),
        Some(_) => Err(ApiError::bad_request(
            "x-ccid does not match the contact center in the path",
        )),
        None => Err(ApiError::bad_request("x-ccid header is required")),
    }
}

#[derive(Deserialize)]
struct UcsBody {
    url: Option<String>,
    secret: Option<Value>,
    data: Option<Value>,
}

async fn register_ucs(
    State(app): State<SharedApp>,
    Path(cc_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const OP: &str = "nexus.register_ucs";
    app.run(OP, async {
        check_ucs_headers(&app, &headers, &cc_id).await?;
        let body: UcsBody = parse_json(&body)?;
        let url = required(&body.url, "url")?.to_owned();
        for (value, field) in [(&body.secret, "secret"), (&body.data, "data")] {
            if value.as_ref().is_some_and(|v| !v.is_object()) {
                return Err(ApiError::bad_request(format!("{field} must be an object")));
            }
        }
        let mut state = app.state();
        let previous = state
            .ucs
            .insert(cc_id.clone(), UcsService { url: url.clone() });
        // A repeated registration replaces the service instead of adding a second one.
        state.count_upsert(OP, previous.is_some());
        Ok(Envelope::ok()
            .data(json!({"id": cc_id, "url": url}))
            .operation_id(&new_operation_id())
            .into_response())
    })
    .await
}

async fn delete_ucs(
    State(app): State<SharedApp>,
    Path(cc_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    const OP: &str = "nexus.delete_ucs";
    app.run(OP, async {
        check_ucs_headers(&app, &headers, &cc_id).await?;
        let mut state = app.state();
        state.ucs.remove(&cc_id).ok_or_else(|| {
            ApiError::not_found(format!("PlatformUCS service for '{cc_id}' not found"))
        })?;
        state.count_write(OP, Write::Delete);
        Ok(Envelope::ok()
            .operation_id(&new_operation_id())
            .into_response())
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Tenants

/// The tenant endpoints take the tenant's GWS access token (password grant) as a bearer token:
/// 401 when it is missing, unknown or expired, 403 when it belongs to another contact center or
/// to no tenant user (client_credentials). Answers the token's contact center.
fn tenant_bearer(app: &App, headers: &HeaderMap) -> Result<String, ApiError> {
    let token = bearer_token(headers).ok_or_else(|| {
        ApiError::unauthorized(
            "Authorization: Bearer <token> is required",
            BEARER_CHALLENGE,
        )
    })?;
    let state = app.state();
    let access = state
        .valid_access_token(token)
        .ok_or_else(|| ApiError::unauthorized("invalid or expired token", BEARER_CHALLENGE))?;
    match &access.subject {
        Subject::TenantUser { cc_id, .. } => Ok(cc_id.clone()),
        Subject::Client => Err(ApiError::forbidden(
            "the token is not a tenant user's token (use the password grant)",
        )),
    }
}

fn require_same_cc(token_cc: &str, cc_id: &str) -> Result<(), ApiError> {
    if token_cc == cc_id {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "the token does not belong to contact center '{cc_id}'"
        )))
    }
}

/// The tenant body of create (and of the assumed update).
#[derive(Deserialize)]
struct TenantBody {
    id: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    tenant_type: Option<String>,
    backendurl: Option<String>,
    username: Option<String>,
    token: Option<String>,
    genesystemenantid: Option<TenantNumber>,
}

/// `genesystemenantid` as a number, or a numeric string \[assumed tolerance\].
#[derive(Deserialize)]
#[serde(untagged)]
enum TenantNumber {
    Number(i64),
    Text(String),
}

/// A validated tenant body.
struct TenantSpec {
    name: String,
    tenant_type: String,
    backendurl: String,
    username: String,
    token: String,
    genesystemenantid: i64,
}

impl TenantBody {
    /// Validates the body for contact center `cc_id`; `id` may be left out only by an update.
    fn into_spec(self, cc_id: &str, creating: bool) -> Result<TenantSpec, ApiError> {
        match self.id.as_deref() {
            Some(id) if id != cc_id => {
                return Err(ApiError::bad_request(
                    "id does not match the contact center",
                ));
            }
            None if creating => return Err(ApiError::bad_request("id is required")),
            _ => {}
        }
        let genesystemenantid = match self.genesystemenantid {
            // [assumed] Defaults to 1, the value of every documented example.
            None => 1,
            Some(TenantNumber::Number(n)) => n,
            Some(TenantNumber::Text(t)) => t
                .trim()
                .parse()
                .map_err(|_| ApiError::bad_request("genesystemenantid must be an integer"))?,
        };
        Ok(TenantSpec {
            name: required(&self.name, "name")?.to_owned(),
            tenant_type: required(&self.tenant_type, "type")?.to_owned(),
            backendurl: required(&self.backendurl, "backendurl")?.to_owned(),
            username: required(&self.username, "username")?.to_owned(),
            token: required(&self.token, "token")?.to_owned(),
            genesystemenantid,
        })
    }

    /// The contact center a create names; checked before the rest of the body.
    fn id(&self) -> Result<&str, ApiError> {
        required(&self.id, "id")
    }
}

/// What Nexus does before accepting a tenant: find the GWS of `backendurl` in `nex_gapis` (the
/// cached rows when `gapis_cache`), and log in there with that row's client and the tenant user.
/// \[assumed\] Each failure is a 400 with a message naming what to fix: it is configuration,
/// not a transient error, and retrying without a change cannot help.
async fn verify_with_gws(app: &App, cc_id: &str, spec: &TenantSpec) -> Result<(), ApiError> {
    let rows: Vec<_> = app
        .gapis()
        .await?
        .into_iter()
        .filter(|row| row.url == spec.backendurl)
        .collect();
    if rows.is_empty() {
        return Err(ApiError::bad_request(format!(
            "no GWS API registered in nex_gapis for backendurl {}",
            spec.backendurl
        )));
    }
    let state = app.state();
    let client = rows
        .iter()
        .find_map(|row| {
            let client = state.clients.get(&row.clientid)?;
            client
                .secret_matches(row.clientsecret.as_deref().unwrap_or_default())
                .then_some(client)
        })
        .ok_or_else(|| {
            let ids: Vec<&str> = rows.iter().map(|r| r.clientid.as_str()).collect();
            ApiError::bad_request(format!(
                "GWS Auth rejected the nex_gapis client credentials for backendurl {} \
                 (clientid {}): unknown client or wrong clientsecret",
                spec.backendurl,
                ids.join(", ")
            ))
        })?;
    if !client.has_grant("password") {
        return Err(ApiError::bad_request(format!(
            "client '{}' of nex_gapis lacks the password grant",
            client.client_id
        )));
    }
    // [assumed] Nexus logs in as the tenant user with `username` / `token`.
    if !app.is_tenant_user(cc_id, &spec.username, &spec.token) {
        return Err(ApiError::bad_request(format!(
            "GWS Auth rejected the credentials of tenant user '{}' of contact center '{cc_id}'",
            spec.username
        )));
    }
    Ok(())
}

async fn create_tenant(State(app): State<SharedApp>, headers: HeaderMap, body: Bytes) -> Response {
    const OP: &str = "nexus.create_tenant";
    app.run(OP, async {
        let token_cc = tenant_bearer(&app, &headers)?;
        let body: TenantBody = parse_json(&body)?;
        let cc_id = body.id()?.to_owned();
        require_same_cc(&token_cc, &cc_id)?;
        let spec = body.into_spec(&cc_id, true)?;
        let _writes = app.tenant_writes.lock().await;
        if app.state().tenants.contains_key(&cc_id) {
            return Err(ApiError::conflict("Resource already exists"));
        }
        verify_with_gws(&app, &cc_id, &spec).await?;
        let xapikey = db::insert_tenant_keys(&app.db, &cc_id, &spec.name)
            .await
            .map_err(|e| ApiError::database(&e))?;
        let operation_id = new_operation_id();
        let mut state = app.state();
        state
            .tenants
            .insert(cc_id.clone(), tenant(&cc_id, spec, &operation_id));
        state.count_write(OP, Write::Create);
        Ok(Envelope::ok()
            .data(json!({"xapikey": xapikey}))
            .operation_id(&operation_id)
            .into_response())
    })
    .await
}

fn tenant(cc_id: &str, spec: TenantSpec, operation_id: &str) -> Tenant {
    Tenant {
        id: cc_id.to_owned(),
        name: spec.name,
        tenant_type: spec.tenant_type,
        backendurl: spec.backendurl,
        username: spec.username,
        genesystemenantid: spec.genesystemenantid,
        operation_id: operation_id.to_owned(),
        token: Secret::new(spec.token),
    }
}

fn tenant_not_found(cc_id: &str) -> ApiError {
    ApiError::not_found(format!("tenant '{cc_id}' not found"))
}

/// \[assumed\] `GET .../tenants/{ccId}`: the tenant without its password or key.
async fn get_tenant(
    State(app): State<SharedApp>,
    Path(cc_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    app.run("nexus.get_tenant", async {
        require_same_cc(&tenant_bearer(&app, &headers)?, &cc_id)?;
        let state = app.state();
        let tenant = state
            .tenants
            .get(&cc_id)
            .ok_or_else(|| tenant_not_found(&cc_id))?;
        Ok(Envelope::ok().data(tenant.to_wire()).into_response())
    })
    .await
}

/// \[assumed\] `PUT .../tenants/{ccId}` with the create body: checked like a create, keeps the
/// tenant's API keys (a rename renames their rows).
async fn update_tenant(
    State(app): State<SharedApp>,
    Path(cc_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const OP: &str = "nexus.update_tenant";
    app.run(OP, async {
        require_same_cc(&tenant_bearer(&app, &headers)?, &cc_id)?;
        let spec = parse_json::<TenantBody>(&body)?.into_spec(&cc_id, false)?;
        let _writes = app.tenant_writes.lock().await;
        let old_name = app
            .state()
            .tenants
            .get(&cc_id)
            .map(|t| t.name.clone())
            .ok_or_else(|| tenant_not_found(&cc_id))?;
        verify_with_gws(&app, &cc_id, &spec).await?;
        if old_name != spec.name {
            db::rename_tenant_keys(&app.db, &cc_id, &old_name, &spec.name)
                .await
                .map_err(|e| ApiError::database(&e))?;
        }
        let operation_id = new_operation_id();
        let updated = tenant(&cc_id, spec, &operation_id);
        let data = updated.to_wire();
        let mut state = app.state();
        state.tenants.insert(cc_id.clone(), updated);
        state.count_write(OP, Write::Update);
        Ok(Envelope::ok()
            .data(data)
            .operation_id(&operation_id)
            .into_response())
    })
    .await
}

/// \[assumed\] `DELETE .../tenants/{ccId}`: removes the tenant and its `nex_apikeys` rows.
async fn delete_tenant(
    State(app): State<SharedApp>,
    Path(cc_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    const OP: &str = "nexus.delete_tenant";
    app.run(OP, async {
        require_same_cc(&tenant_bearer(&app, &headers)?, &cc_id)?;
        let _writes = app.tenant_writes.lock().await;
        if !app.state().tenants.contains_key(&cc_id) {
            return Err(tenant_not_found(&cc_id));
        }
        db::delete_tenant_keys(&app.db, &cc_id)
            .await
            .map_err(|e| ApiError::database(&e))?;
        let mut state = app.state();
        state.tenants.remove(&cc_id);
        state.count_write(OP, Write::Delete);
        Ok(Envelope::ok()
            .operation_id(&new_operation_id())
            .into_response())
    })
    .await
}
