//! GWS Auth token endpoint `POST /auth/v3/oauth/token`: client_credentials, password and
//! refresh_token grants, parameters from the query string or a form body (the runbook uses both).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use super::app::{App, SharedApp};
use super::reply::{ApiError, basic_credentials, header_text};
use super::state::Subject;

pub(crate) fn routes() -> Router<SharedApp> {
    Router::new().route("/auth/v3/oauth/token", post(token))
}

/// Request parameters, query string first, then the form body (which wins on repeats).
struct Params(HashMap<String, String>);

impl Params {
    fn read(query: Option<&str>, headers: &HeaderMap, body: &Bytes) -> Result<Params, ApiError> {
        let mut params: HashMap<String, String> = query
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        if !body.is_empty() {
            let is_form = header_text(headers, header::CONTENT_TYPE.as_str())
                .is_none_or(|ct| ct.starts_with("application/x-www-form-urlencoded"));
            if !is_form {
                return Err(ApiError::oauth(
                    "invalid_request",
                    "the body must be application/x-www-form-urlencoded",
                ));
            }
            params.extend(url::form_urlencoded::parse(body).into_owned());
        }
        Ok(Params(params))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::oauth("invalid_request", format!("missing parameter {name}")))
    }
}

async fn token(
    State(app): State<SharedApp>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // A fault can aim at one grant: which one, the request says (unreadable: none).
    let grant = Params::read(query.as_deref(), &headers, &body)
        .ok()
        .and_then(|p| p.get("grant_type").and_then(grant_target));
    app.run_as("auth.token", grant.as_slice(), async {
        let params = Params::read(query.as_deref(), &headers, &body)?;
        issue(&app, &params, &headers)
    })
    .await
}

/// The fault target of one grant (see [`super::faults::GRANT_TARGETS`]).
fn grant_target(grant_type: &str) -> Option<&'static str> {
    match grant_type {
        "client_credentials" => Some("auth.token.client_credentials"),
        "password" => Some("auth.token.password"),
        "refresh_token" => Some("auth.token.refresh_token"),
        _ => None,
    }
}

/// What the token answer needs from one grant.
struct Grant {
    subject: Subject,
    /// `Some` for grants that hand back a refresh token (password, refresh_token).
    refresh_token: Option<String>,
}

fn issue(app: &App, params: &Params, headers: &HeaderMap) -> Result<Response, ApiError> {
    let client_id = authenticate_client(app, params, headers)?;
    let grant_type = params.require("grant_type")?;
    if !["client_credentials", "password", "refresh_token"].contains(&grant_type) {
        return Err(ApiError::oauth(
            "unsupported_grant_type",
            format!("Unsupported grant type: {grant_type}"),
        ));
    }
    let mut state = app.state();
    let refresh_lifetime = match state.clients.get(&client_id) {
        Some(c) if c.has_grant(grant_type) => {
            Duration::from_secs(c.refresh_token_expiration_timeout)
        }
        _ => {
            return Err(ApiError::oauth(
                "unauthorized_client",
                format!("Unauthorized grant type: {grant_type}"),
            ));
        }
    };
    if let Some(scope) = params.get("scope")
        && scope != "*"
    {
        return Err(ApiError::oauth(
            "invalid_scope",
            format!("Invalid scope: {scope}"),
        ));
    }
    let grant = match grant_type {
        "client_credentials" => Grant {
            subject: Subject::Client,
            refresh_token: None,
        },
        "password" => {
            let subject = tenant_user(app, params)?;
            let refresh = state.issue_refresh_token(&client_id, subject.clone(), refresh_lifetime);
            Grant {
                subject,
                refresh_token: Some(refresh),
            }
        }
        _ => {
            let refresh = params.require("refresh_token")?;
            let subject = state
                .valid_refresh_token(refresh)
                .filter(|t| t.client_id == client_id)
                .map(|t| t.subject.clone())
                .ok_or_else(|| ApiError::oauth("invalid_grant", "Invalid refresh token"))?;
            // Like Spring's default, the refresh token is reused, not rotated.
            Grant {
                subject,
                refresh_token: Some(refresh.to_owned()),
            }
        }
    };
    let (access_token, expires_at) =
        state.issue_access_token(&client_id, grant.subject, app.config.token_lifetime);
    Ok(token_answer(access_token, expires_at, grant.refresh_token))
}

/// The token endpoint's answer, as Spring Security OAuth2 gives it, never cached.
fn token_answer(
    access_token: String,
    expires_at: std::time::Instant,
    refresh_token: Option<String>,
) -> Response {
    let mut body = json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": expires_in(expires_at),
        "scope": "*",
    });
    if let (Some(refresh), Some(obj)) = (refresh_token, body.as_object_mut()) {
        obj.insert("refresh_token".to_owned(), refresh.into());
    }
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The client, from Basic auth or else the `client_id` / `client_secret` parameters. A Basic
/// header with an empty password (`curl --user nexus_client:`) takes the secret from the parameters.
fn authenticate_client(
    app: &App,
    params: &Params,
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    let (basic_id, basic_secret) = basic_credentials(headers).unzip();
    let client_id = basic_id
        .as_deref()
        .or(params.get("client_id"))
        .ok_or_else(|| ApiError::oauth("invalid_client", "client authentication is required"))?;
    if let Some(param_id) = params.get("client_id")
        && param_id != client_id
    {
        return Err(ApiError::oauth(
            "invalid_client",
            "client_id does not match the credentials",
        ));
    }
    let secret = basic_secret
        .as_deref()
        .filter(|s| !s.is_empty())
        .or(params.get("client_secret"))
        .unwrap_or_default();
    match app.state().clients.get(client_id) {
        Some(client) if client.secret_matches(secret) => Ok(client_id.to_owned()),
        _ => Err(ApiError::oauth("invalid_client", "Bad client credentials")),
    }
}

/// The password grant's Person: `username` is `<ccId>\<user>` with a literal backslash.
fn tenant_user(app: &App, params: &Params) -> Result<Subject, ApiError> {
    let username = params.require("username")?;
    let password = params.require("password")?;
    let (cc_id, user) = username.split_once('\\').ok_or_else(|| {
        ApiError::oauth(
            "invalid_grant",
            "username must be <contact center id>\\<user>",
        )
    })?;
    if app.is_tenant_user(cc_id, user, password) {
        Ok(Subject::TenantUser {
            cc_id: cc_id.to_owned(),
            username: user.to_owned(),
        })
    } else {
        Err(ApiError::oauth("invalid_grant", "Bad credentials"))
    }
}

/// Remaining lifetime in whole seconds, rounded down as Spring does: 43199 for a fresh
/// 43200 s token.
fn expires_in(expires_at: Instant) -> u64 {
    expires_at
        .saturating_duration_since(Instant::now())
        .saturating_sub(Duration::from_nanos(1))
        .as_secs()
}
