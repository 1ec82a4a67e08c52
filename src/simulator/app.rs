//! The context every handler shares, and the one wrapper every simulated operation goes
//! through: count the call, wait the configured latency, apply faults, log operation + status.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::SimulatorConfig;
use super::db::{self, GapiRow};
use super::faults::{Fault, Faults};
use super::reply::{ApiError, BASIC_CHALLENGE, basic_credentials};
use super::state::{State, StateView};

/// How long a `timeout` fault hangs: longer than any sensible client timeout.
const HANG: Duration = Duration::from_secs(300);

pub(crate) type SharedApp = Arc<App>;

pub(crate) struct App {
    pub config: SimulatorConfig,
    pub db: PgPool,
    pub faults: Faults,
    state: Mutex<State>,
    /// `nex_gapis` as Nexus read it at its last (re)start; used when `config.gapis_cache`.
    gapis_cache: tokio::sync::RwLock<Vec<GapiRow>>,
    /// Serializes tenant writes, whose duplicate check and key inserts span database calls.
    pub tenant_writes: tokio::sync::Mutex<()>,
    /// Cancelled at shutdown, so that hanging faults end with the server.
    pub shutdown: CancellationToken,
    /// Tenant user passwords changed since start (a rotation in GWS), by (ccId, user).
    rotated_passwords: Mutex<std::collections::HashMap<(String, String), String>>,
}

impl App {
    pub(crate) fn new(config: SimulatorConfig, db: PgPool, state: State) -> App {
        App {
            config,
            db,
            faults: Faults::default(),
            state: Mutex::new(state),
            gapis_cache: tokio::sync::RwLock::default(),
            tenant_writes: tokio::sync::Mutex::default(),
            shutdown: CancellationToken::new(),
            rotated_passwords: Mutex::default(),
        }
    }

    /// Whether the Person `username` of contact center `cc_id` has this password now: a
    /// rotated password replaces the seeded one.
    pub(crate) fn is_tenant_user(&self, cc_id: &str, username: &str, password: &str) -> bool {
        let rotated = self
            .rotated_passwords
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(cc_id.to_owned(), username.to_owned()))
            .cloned();
        match rotated {
            Some(current) => current == password,
            None => self.config.seed.is_tenant_user(cc_id, username, password),
        }
    }

    /// Changes a tenant user's password, as an administrator would in Configuration Server.
    pub(crate) fn rotate_tenant_password(&self, cc_id: &str, username: &str, password: &str) {
        self.rotated_passwords
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((cc_id.to_owned(), username.to_owned()), password.to_owned());
    }

    /// The state stays usable even if a handler panicked while holding the lock: every update
    /// is a single map operation.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn snapshot(&self) -> StateView {
        self.state().view()
    }

    /// Runs one request of operation `op`. The handler future only starts when no fault hit.
    pub(crate) async fn run(
        &self,
        op: &'static str,
        handler: impl Future<Output = Result<Response, ApiError>>,
    ) -> Response {
        self.state().count_call(op);
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        let response = match self.faults.take(op) {
            Some(Fault::Fail(status)) => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                ApiError::new(status, format!("injected fault for {op}")).into_response()
            }
            Some(Fault::Timeout) => {
                tokio::select! {
                    () = tokio::time::sleep(HANG) => {}
                    () = self.shutdown.cancelled() => {}
                }
                ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("injected timeout for {op}"),
                )
                .into_response()
            }
            Some(Fault::LoseAnswer(status)) => {
                let _done = handler.await;
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::GATEWAY_TIMEOUT);
                ApiError::new(status, format!("injected: the answer of {op} was lost"))
                    .into_response()
            }
            None => handler.await.unwrap_or_else(IntoResponse::into_response),
        };
        // Operation and status only: paths, bodies and headers may carry secrets.
        tracing::debug!(
            operation = op,
            status = response.status().as_u16(),
            "simulated request"
        );
        response
    }

    /// Checks the GWS Auth admin ("ops") Basic credentials.
    pub(crate) fn require_ops(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match basic_credentials(headers) {
            Some((user, password)) if self.config.seed.is_ops_user(&user, &password) => Ok(()),
            Some(_) => Err(ApiError::unauthorized("Bad credentials", BASIC_CHALLENGE)),
            None => Err(ApiError::unauthorized(
                "Full authentication is required to access this resource",
                BASIC_CHALLENGE,
            )),
        }
    }

    /// `nex_gapis` as tenant provisioning sees it: the cache when configured, else the table.
    pub(crate) async fn gapis(&self) -> Result<Vec<GapiRow>, ApiError> {
        if self.config.gapis_cache {
            Ok(self.gapis_cache.read().await.clone())
        } else {
            db::gapi_rows(&self.db)
                .await
                .map_err(|e| ApiError::database(&e))
        }
    }

    /// What a Nexus restart does to the cache: read `nex_gapis` again.
    pub(crate) async fn reload_gapis(&self) -> Result<(), sqlx::Error> {
        let rows = db::gapi_rows(&self.db).await?;
        *self.gapis_cache.write().await = rows;
        Ok(())
    }

    /// A Nexus restart as the operator's tests see it: reload and count it.
    pub(crate) async fn restart_nexus(&self) -> Result<(), sqlx::Error> {
        self.reload_gapis().await?;
        self.state().nexus_restarts += 1;
        Ok(())
    }
}
