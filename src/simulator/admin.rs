//! The `/_sim` surface: state, faults and Nexus restarts over HTTP, for `dc-operator simulate`
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
}

async fn state(State(app): State<SharedApp>) -> Response {
    Json(app.snapshot()).into_response()
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

async fn restart_nexus(State(app): State<SharedApp>) -> Result<Response, ApiError> {
    app.restart_nexus()
        .await
        .map_err(|e| ApiError::database(&e))?;
    Ok(Envelope::ok().into_response())
}
