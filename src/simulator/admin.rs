//! The `/_sim` surface: state, faults, Nexus restarts and tenant-user passwords over HTTP, for `dc-operator simulate`
//! and end-to-end tests that cannot hold a [`super::SimulatorHandle`]. Not counted as operations.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::app::SharedApp;
use super::faults::FaultRequest;
use super::reply::{ApiError, Envelope, parse_json};

pub(crate) fn routes() -> Router<SharedApp> {
    Router::new()
        .route("/_sim/state", get(state))
        .route("/_sim/faults", post(add_fault).delete(clear_faults))
        .route("/_sim/nexus/restart", post(restart_nexus))
        .route("/_sim/requests", get(requests).delete(clear_requests))
        .route(
            "/_sim/tenant-users/password",
            post(set_tenant_user_password),
        )
}

/// Body of `POST /_sim/tenant-users/password`: a tenant Person's new password, as an
/// administrator would set it in Configuration Server.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PasswordChange {
    contact_center_id: String,
    username: String,
    password: String,
}

async fn state(State(app): State<SharedApp>) -> Response {
    Json(app.snapshot()).into_response()
}

/// Which process sent each request, and when it arrived.
async fn requests(State(app): State<SharedApp>) -> Response {
    Json(app.requests.all()).into_response()
}

async fn clear_requests(State(app): State<SharedApp>) -> Response {
    app.requests.clear();
    Envelope::ok().into_response()
}

async fn add_fault(State(app): State<SharedApp>, body: Bytes) -> Result<Response, ApiError> {
    let request: FaultRequest = parse_json(&body)?;
    request.apply(&app.faults).map_err(ApiError::bad_request)?;
    Ok(Envelope::ok().into_response())
}

async fn clear_faults(State(app): State<SharedApp>) -> Response {
    app.faults.clear();
    Envelope::ok().into_response()
}

async fn set_tenant_user_password(
    State(app): State<SharedApp>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let change: PasswordChange = parse_json(&body)?;
    app.rotate_tenant_password(
        &change.contact_center_id,
        &change.username,
        &change.password,
    );
    Ok(Envelope::ok().into_response())
}

async fn restart_nexus(State(app): State<SharedApp>) -> Result<Response, ApiError> {
    app.restart_nexus()
        .await
        .map_err(|e| ApiError::database(&e))?;
    Ok(Envelope::ok().into_response())
}
