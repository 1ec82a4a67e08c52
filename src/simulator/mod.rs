//! A simulator of the Genesys services the runbook talks to — GWS Auth (`/auth/v3`), the GWS
//! Environment API (`/environment/v3`) and Digital Channels/Nexus (`/nexus/v3`) — on one address,
//! faithful to `reference/genesys-apis.md`. Nexus's tables `nex_gapis` and `nex_apikeys` live in a
//! real PostgreSQL database, so the operator's database step is exercised for real.
//!
//! Used by `dc-operator demo`, `dc-operator simulate` and the tests of the upstream clients.
//!
//! Wire conventions (where the page says \[assumed\], the choice is documented at the handler):
//! - v3 errors are `{"status":{"code":<HTTP status>,"message":"..."}}`; 409 for an existing
//!   client or tenant, 404 for unknown ones, 400 for malformed or incomplete bodies, 401 for
//!   missing or wrong credentials, 403 for a token of the wrong kind or contact center.
//! - The token endpoint answers RFC 6749 errors `{"error":..,"error_description":..}`:
//!   `invalid_client` 401; `invalid_request`, `invalid_grant`, `unsupported_grant_type`,
//!   `unauthorized_client`, `invalid_scope` 400.
//! - The `/_sim` routes administer the simulator itself: `GET /_sim/state`, `POST` and
//!   `DELETE /_sim/faults`, `POST /_sim/nexus/restart`, `GET` and `DELETE /_sim/requests`
//!   (every request with its sender's `x-dc-operator-instance` and arrival time).
//! - Faults (see [`Faults`]): an error status with or without `Retry-After` (seconds or an
//!   HTTP-date), a hang, a lost answer, a reset connection, and the port closed for a while
//!   (connections refused), then open again on the same port
//!   ([`SimulatorHandle::stop_listening`] and [`SimulatorHandle::start_listening`] do the
//!   same by hand).

mod admin;
mod app;
mod auth;
mod db;
mod environment;
mod faults;
mod listener;
mod nexus;
mod reply;
mod requests;
mod seed;
mod state;
mod token;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Response};

pub use db::{ApiKeyRow, GapiRow};
pub use faults::{Faults, GRANT_TARGETS, OPERATIONS, RetryAfter};
pub use requests::RequestRecord;
pub use seed::{
    ContactCenter, DEMO_CC_T100, DEMO_CC_T200, DEMO_ENVIRONMENT_ID, Seed, TenantUser,
    generated_contact_center,
};
pub use state::{Client, Setting, StateView, Tenant};

use app::{App, SharedApp};
use reply::ApiError;

/// How long `shutdown` waits for open connections before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    pub seed: Seed,
    /// Added before every simulated operation, to make timing visible in `demo`.
    pub latency: Duration,
    /// Lifetime of every access token (default 43200 s, as the runbook's client).
    pub token_lifetime: Duration,
    /// When true, tenant provisioning sees `nex_gapis` only as of the last
    /// [`SimulatorHandle::restart_nexus`] (or start), like the real Nexus, which reads the table
    /// at start-up. Default false: every provisioning reads the table.
    pub gapis_cache: bool,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            seed: Seed::demo(),
            latency: Duration::ZERO,
            token_lifetime: Duration::from_secs(43_200),
            gapis_cache: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    #[error("simulator database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("simulator cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Entry point; see [`Simulator::start`].
pub struct Simulator;

impl Simulator {
    /// Creates the Nexus tables if absent (as Nexus would), binds `bind` (port 0 picks a free
    /// port) and serves in a background task until [`SimulatorHandle::shutdown`] or drop.
    pub async fn start(
        config: SimulatorConfig,
        db: sqlx::PgPool,
        bind: SocketAddr,
    ) -> Result<SimulatorHandle, SimulatorError> {
        db::ensure_schema(&db).await?;
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|source| SimulatorError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimulatorError::Bind { addr: bind, source })?;
        let state = state::State {
            settings: environment::seeded_settings(&config.seed),
            ..state::State::default()
        };
        let (switch, listener) = listener::Switch::open(listener, addr);
        let app = Arc::new(App::new(config, db, state, switch));
        // Nexus reads nex_gapis when it starts.
        app.reload_gapis().await?;
        let shutdown = app.shutdown.clone();
        let service =
            router(app.clone()).into_make_service_with_connect_info::<listener::Connection>();
        let server =
            axum::serve(listener, service).with_graceful_shutdown(shutdown.cancelled_owned());
        let task = tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::warn!(error = %e, "simulator server stopped");
            }
        });
        tracing::info!(%addr, "simulator listening");
        Ok(SimulatorHandle {
            addr,
            app,
            task: Some(task),
        })
    }
}

fn router(app: SharedApp) -> Router {
    Router::new()
        .merge(auth::routes())
        .merge(token::routes())
        .merge(environment::routes())
        .merge(nexus::routes())
        .merge(admin::routes())
        .fallback(unknown_path)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(on_its_connection))
        // Outermost: a request is recorded as it arrives, before any latency or fault.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            requests::record,
        ))
        .with_state(app)
}

/// Handles the request with its connection known to the fault injection, which may reset it,
/// in a task of its own: a request the client gave up on (a timeout) is still carried out to
/// the end, as a server does, and never left half done (a tenant's keys written but not the
/// tenant) because the server dropped it.
async fn on_its_connection(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let connection = request
        .extensions()
        .get::<axum::extract::ConnectInfo<listener::Connection>>()
        .map(|info| info.0.clone());
    let handled = match connection {
        Some(connection) => {
            tokio::spawn(listener::CURRENT.scope(connection, next.run(request))).await
        }
        None => tokio::spawn(next.run(request)).await,
    };
    handled.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "simulator handler failed");
        ApiError::internal("the simulator failed to handle the request").into_response()
    })
}

async fn unknown_path() -> Response {
    ApiError::not_found("no such resource").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this resource",
    )
    .into_response()
}

/// A running simulator. Dropping it stops the server too, without waiting.
pub struct SimulatorHandle {
    addr: SocketAddr,
    app: SharedApp,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimulatorHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<ip>:<port>`; a wildcard bind is reached through loopback.
    pub fn base_url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// Fault injection, shared with the running server.
    pub fn faults(&self) -> &Faults {
        &self.app.faults
    }

    /// A copy of the state and the request counts.
    pub fn snapshot(&self) -> StateView {
        self.app.snapshot()
    }

    /// Takes the simulator off the network: the port is closed (connection attempts are
    /// refused) and every open connection is reset. Returns once the port is closed.
    pub async fn stop_listening(&self) {
        self.app.switch.stop_listening().await;
    }

    /// Listens again on the same port; returns once it does.
    pub async fn start_listening(&self) {
        self.app.switch.start_listening().await;
    }

    /// Simulates a Nexus restart: reloads the `nex_gapis` cache (only matters with
    /// `gapis_cache`). A database error is logged and leaves the previous cache in place.
    pub async fn restart_nexus(&self) {
        if let Err(e) = self.app.restart_nexus().await {
            tracing::warn!(error = %e, "simulated Nexus restart could not read nex_gapis");
        }
    }

    /// Changes a tenant user's password in the simulated GWS, as a rotation would.
    pub fn set_tenant_user_password(
        &self,
        contact_center_id: &str,
        username: &str,
        password: &str,
    ) {
        self.app
            .rotate_tenant_password(contact_center_id, username, password);
    }

    /// The `nex_gapis` rows as they are in the database now.
    pub async fn gapis_rows(&self) -> Result<Vec<GapiRow>, SimulatorError> {
        Ok(db::gapi_rows(&self.app.db).await?)
    }

    /// The `nex_apikeys` rows as they are in the database now.
    pub async fn apikey_rows(&self) -> Result<Vec<ApiKeyRow>, SimulatorError> {
        Ok(db::api_key_rows(&self.app.db).await?)
    }

    /// Every request of the simulated APIs so far (the newest 100,000), oldest first, with
    /// the instance that sent it and when it arrived.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.app.requests.all()
    }

    /// Every access and refresh token issued and not yet expired: values a test looks for
    /// where no token may appear (logs, status, events).
    pub fn issued_tokens(&self) -> Vec<String> {
        let state = self.app.state();
        state
            .access_tokens
            .keys()
            .chain(state.refresh_tokens.keys())
            .cloned()
            .collect()
    }

    /// Stops serving: open connections get a short grace period, hanging faults end at once.
    pub async fn shutdown(mut self) {
        self.app.shutdown.cancel();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        self.app.shutdown.cancel();
    }
}
