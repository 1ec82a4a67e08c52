//! The context every handler shares, and the one wrapper every simulated operation goes
//! through: count the call, wait the configured latency, apply faults, log operation + status.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::SimulatorConfig;
use super::db::{self, GapiRow};
use super::faults::{Fault, Faults, RetryAfter};
use super::listener::{self, Switch};
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
    /// The listening socket and the open connections.
    pub switch: Arc<Switch>,
    /// Tenant user passwords changed since start (a rotation in GWS), by (ccId, user).
    rotated_passwords: Mutex<std::collections::HashMap<(String, String), String>>,
    /// Every request of the simulated APIs, with its sender and arrival time.
    pub requests: super::requests::RequestLog,
}

impl App {
    pub(crate) fn new(
        config: SimulatorConfig,
        db: PgPool,
        state: State,
        switch: Arc<Switch>,
    ) -> App {
        App {
            config,
            db,
            faults: Faults::default(),
            state: Mutex::new(state),
            gapis_cache: tokio::sync::RwLock::default(),
            tenant_writes: tokio::sync::Mutex::default(),
            shutdown: CancellationToken::new(),
            switch,
            rotated_passwords: Mutex::default(),
            requests: Default::default(),
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
        self.run_as(op, &[], handler).await
    }

    /// Runs one request of `op`, counted as `op`, which also takes the faults of the narrower
    /// `targets` (one grant of the token endpoint); theirs come first.
    pub(crate) async fn run_as(
        &self,
        op: &'static str,
        targets: &[&'static str],
        handler: impl Future<Output = Result<Response, ApiError>>,
    ) -> Response {
        {
            let mut state = self.state();
            state.count_call(op);
            for target in targets {
                state.record_call_time(target);
            }
        }
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        let mut keys = targets.to_vec();
        keys.push(op);
        let fault = self.faults.take_first(&keys);
        let response = self.answer(op, fault, handler).await;
        // Operation and status only: paths, bodies and headers may carry secrets.
        tracing::debug!(
            operation = op,
            status = response.status().as_u16(),
            "simulated request"
        );
        response
    }

    /// The answer to one request of `op`: the handler's, or what an injected `fault` makes
    /// of it (the handler run or not, the answer lost, late or never sent).
    async fn answer(
        &self,
        op: &'static str,
        fault: Option<Fault>,
        handler: impl Future<Output = Result<Response, ApiError>>,
    ) -> Response {
        match fault {
            Some(Fault::Fail(status, retry_after)) => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let mut response =
                    ApiError::new(status, format!("injected fault for {op}")).into_response();
                set_retry_after(response.headers_mut(), retry_after);
                response
            }
            Some(Fault::Timeout) => {
                self.hang().await;
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
            Some(Fault::TimeoutAfterEffect) => {
                let _done = handler.await;
                self.hang().await;
                ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("injected: the answer of {op} came too late"),
                )
                .into_response()
            }
            Some(Fault::ResetAfterEffect) => {
                let _done = handler.await;
                reset_current_connection();
                unanswered(op)
            }
            Some(Fault::Reset) => {
                reset_current_connection();
                unanswered(op)
            }
            Some(Fault::GoDown(down_for)) => {
                // Before the reset: once its connection is gone, the server may drop this
                // future at any await.
                self.go_down(down_for);
                reset_current_connection();
                unanswered(op)
            }
            Some(Fault::Delay(delay)) => {
                // A slow upstream that still answers: the request is held in flight, then
                // handled as usual.
                tokio::time::sleep(delay).await;
                handler.await.unwrap_or_else(IntoResponse::into_response)
            }
            None => handler.await.unwrap_or_else(IntoResponse::into_response),
        }
    }

    /// Waits longer than any client does, or until shutdown.
    async fn hang(&self) {
        tokio::select! {
            () = tokio::time::sleep(HANG) => {}
            () = self.shutdown.cancelled() => {}
        }
    }

    /// Closes the port for `down_for`, resetting every connection, then listens again on
    /// the same port (unless the simulator is shut down meanwhile). The port is closing when
    /// this returns, and closed soon after.
    fn go_down(&self, down_for: Duration) {
        self.switch.close();
        tracing::debug!(
            down_ms = down_for.as_millis() as u64,
            "simulator down: connections refused"
        );
        let switch = self.switch.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            switch.stop_listening().await;
            tokio::select! {
                () = tokio::time::sleep(down_for) => switch.start_listening().await,
                () = shutdown.cancelled() => {}
            }
        });
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

/// Resets the connection of the request being handled, so that its answer is never sent.
fn reset_current_connection() {
    if listener::CURRENT
        .try_with(listener::Connection::reset)
        .is_err()
    {
        tracing::warn!("no connection to reset: the request is answered instead");
    }
}

/// What a handler hands back for a request whose connection was reset: it never leaves.
fn unanswered(op: &str) -> Response {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        format!("injected: the connection of {op} was reset"),
    )
    .into_response()
}

/// Sets the `Retry-After` of an injected failure as asked.
fn set_retry_after(headers: &mut HeaderMap, retry_after: RetryAfter) {
    match retry_after {
        RetryAfter::Usual => {}
        RetryAfter::Absent => {
            headers.remove(header::RETRY_AFTER);
        }
        RetryAfter::Seconds(n) => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(n));
        }
        RetryAfter::HttpDateIn(n) => {
            let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(n));
            if let Ok(value) = HeaderValue::from_str(&date) {
                headers.insert(header::RETRY_AFTER, value);
            }
        }
    }
}
