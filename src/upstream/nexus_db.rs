//! The Nexus PostgreSQL database: the `nex_gapis` row and API keys in `nex_apikeys`.
//!
//! Both tables belong to Nexus, which creates them; the operator never creates or
//! migrates them. `nex_gapis` has no known unique key, so a row is found by
//! `url` + `clientid` before anything is inserted.

use std::str::FromStr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use super::error::{ErrorKind, Result, System, UpstreamError};
use crate::fence::LeaderFence;
use crate::secret::SecretString;
use crate::telemetry::metrics;

/// One `nex_gapis` row, as far as the operator cares.
#[derive(Clone, Debug)]
pub struct GapiRow {
    pub url: String,
    pub client_id: String,
    pub client_secret: SecretString,
}

/// The Nexus database operations.
#[async_trait]
pub trait NexusDb: Send + Sync {
    /// Every row for this client id and this GWS URL in any spelling (see
    /// `api::common::same_url`), with its `url` as stored; normally zero or one.
    async fn find_gapis(&self, url: &str, client_id: &str) -> Result<Vec<GapiRow>>;
    async fn insert_gapi(&self, url: &str, client_id: &str, secret: &SecretString) -> Result<()>;
    /// Sets the secret on every row for this `url` exactly as stored (from [`Self::find_gapis`])
    /// and client id; returns the rows changed.
    async fn update_gapi_secret(
        &self,
        url: &str,
        client_id: &str,
        secret: &SecretString,
    ) -> Result<u64>;
    /// Deletes the rows for this `url` exactly as stored and client id; returns how many.
    async fn delete_gapis(&self, url: &str, client_id: &str) -> Result<u64>;
    /// The API keys (row ids) of the tenant's own `nex_apikeys` rows: named after the tenant
    /// and, where the table has a `tenantid` column, of its contact center. Normally one;
    /// the caller refuses to choose among several.
    async fn find_api_keys(&self, tenant_id: &str, name: &str) -> Result<Vec<SecretString>>;
    /// Every `nex_apikeys` row's name and contact center, never its `id` (the key itself):
    /// which tenants Nexus has keys for, as `dc-operator import` reads them.
    async fn list_api_key_names(&self) -> Result<Vec<ApiKeyName>>;
}

/// A `nex_apikeys` row without its key: its `name` and, where the table has the column, its
/// `tenantid` (the contact center).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiKeyName {
    pub name: String,
    pub tenant_id: Option<String>,
}

/// The sqlx implementation. Connections are opened lazily and kept in a small pool.
pub struct PgNexusDb {
    pool: PgPool,
    /// Whether `nex_apikeys` has the `tenantid` column, asked once.
    has_tenant_column: tokio::sync::OnceCell<bool>,
    /// For [`Self::explain`]; `None` for a pool made elsewhere.
    options: Option<PgConnectOptions>,
    fence: LeaderFence,
}

impl PgNexusDb {
    /// Builds the pool without connecting. The URL never appears in an error.
    pub fn connect_lazy(database_url: &SecretString) -> Result<Self> {
        let refused =
            |why: &str| UpstreamError::new(System::NexusDb, "connect", ErrorKind::Rejected, why);
        // Without a scheme, libpq-style parsing falls back to defaults (a local server, the
        // OS user) and connects somewhere else entirely.
        let url = database_url.expose();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(refused(
                "the database URL must start with postgres:// or postgresql:// \
                 (postgres://user:password@host:5432/nexus?sslmode=require)",
            ));
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| refused("the database URL is not a valid postgres:// URL"))?;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(10))
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(options.clone());
        let mut db = Self::from_pool(pool);
        db.options = Some(options);
        Ok(db)
    }

    /// A pool that timed out says nothing of why no connection came: one direct attempt,
    /// bounded, tells (connection refused, bad credentials, ...).
    async fn explain(&self, error: sqlx::Error) -> sqlx::Error {
        let (sqlx::Error::PoolTimedOut, Some(options)) = (&error, &self.options) else {
            return error;
        };
        // The wait may have outlasted the Lease: no connection leaves a fenced process.
        if !self.fence.is_open() {
            return error;
        }
        use sqlx::Connection;
        match tokio::time::timeout(
            Duration::from_secs(3),
            sqlx::PgConnection::connect_with(options),
        )
        .await
        {
            Ok(Err(cause)) => cause,
            _ => error,
        }
    }

    /// A statement, on a connection of the pool, with a pool time-out explained, timed and
    /// counted. The leader fence is checked before a connection is taken and again once it is
    /// held, right before the statement is sent: opening a connection can take seconds.
    async fn run<T, Q, F>(&self, operation: &'static str, statement: Q) -> Result<T>
    where
        Q: FnOnce(PoolConnection<Postgres>) -> F,
        F: std::future::Future<Output = std::result::Result<T, sqlx::Error>>,
    {
        let fenced = || UpstreamError::fenced(System::NexusDb, operation);
        if !self.fence.is_open() {
            return Err(fenced());
        }
        timed(operation, async {
            let connection = match self.pool.acquire().await {
                Ok(connection) => connection,
                Err(e) => return Err(Err(self.explain(e).await)),
            };
            if !self.fence.is_open() {
                return Err(Ok(fenced()));
            }
            statement(connection).await.map_err(Err)
        })
        .await
    }

    /// Sends nothing more from now on: for a leader replica, see [`crate::fence`].
    pub fn with_fence(mut self, fence: LeaderFence) -> Self {
        self.fence = fence;
        self
    }

    /// Closes the pool: its connections end now, and any later statement fails.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            has_tenant_column: tokio::sync::OnceCell::new(),
            options: None,
            fence: LeaderFence::unelected(),
        }
    }

    async fn has_tenant_column(&self) -> Result<bool> {
        self.has_tenant_column
            .get_or_try_init(|| async {
                let (exists,): (bool,) = self
                    .run("find_api_keys", |mut c| async move {
                        sqlx::query_as(
                            "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
                         WHERE table_name = 'nex_apikeys' AND column_name = 'tenantid' \
                         AND table_schema = ANY (current_schemas(false)))",
                        )
                        .fetch_one(&mut *c)
                        .await
                    })
                    .await?;
                Ok(exists)
            })
            .await
            .copied()
    }
}

/// SQLSTATE `undefined_table`: a Nexus table is missing.
const MISSING_TABLE_CODE: &str = "42P01";

/// Whether the database lacks a Nexus table (`nex_gapis`, `nex_apikeys`): Nexus is not
/// installed on it or has not migrated it yet. Not a request to repeat as it is, yet a state
/// that ends without any change the operator could watch (Nexus starting for the first time),
/// so a caller retries it with backoff rather than wait for a change.
pub fn is_missing_table(error: &UpstreamError) -> bool {
    error.system == System::NexusDb
        && error
            .detail
            .contains(&format!("[SQLSTATE {MISSING_TABLE_CODE}]"))
}

/// Classifies a database error: connection trouble is transient, refused credentials
/// and a missing table are not.
fn db_error(operation: &'static str, error: sqlx::Error) -> UpstreamError {
    let (kind, detail) = match &error {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            let kind = match code.as_str() {
                "28P01" | "28000" | "42501" => ErrorKind::Unauthorized,
                MISSING_TABLE_CODE => ErrorKind::Rejected,
                c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57") => {
                    ErrorKind::Transient
                }
                _ => ErrorKind::Rejected,
            };
            let hint = if code == MISSING_TABLE_CODE {
                ": Nexus is not installed on this database, or not migrated yet (Nexus creates this table at its first start)"
            } else {
                ""
            };
            (kind, format!("{} [SQLSTATE {code}]{hint}", db.message()))
        }
        sqlx::Error::PoolTimedOut => (
            ErrorKind::Transient,
            format!(
                "{} waiting 10s for a database connection",
                super::error::TIMED_OUT
            ),
        ),
        // A pool replaced after the database URL changed (a rotated password): the next
        // pass takes the new one.
        sqlx::Error::PoolClosed => (
            ErrorKind::Transient,
            "the connection pool was replaced (the database URL changed)".to_string(),
        ),
        sqlx::Error::Io(e) => (
            ErrorKind::Transient,
            format!("cannot reach the database: {e}"),
        ),
        sqlx::Error::Tls(_) => (
            ErrorKind::Transient,
            "TLS handshake with the database failed".to_string(),
        ),
        sqlx::Error::Protocol(p) => (ErrorKind::Transient, format!("protocol error: {p}")),
        sqlx::Error::Configuration(_) => (
            ErrorKind::Rejected,
            "invalid database configuration".to_string(),
        ),
        other => (ErrorKind::Rejected, format!("{other}")),
    };
    UpstreamError::new(System::NexusDb, operation, kind, detail)
}

/// Times a statement and records it under `external_requests_total`. The statement fails
/// with `Err(Err(sqlx))`, or `Err(Ok(error))` for one that was never sent (not counted).
async fn timed<T>(
    operation: &'static str,
    statement: impl std::future::Future<
        Output = std::result::Result<T, std::result::Result<UpstreamError, sqlx::Error>>,
    >,
) -> Result<T> {
    let started = Instant::now();
    let result = match statement.await {
        Ok(value) => Ok(value),
        Err(Ok(unsent)) => return Err(unsent),
        Err(Err(e)) => Err(db_error(operation, e)),
    };
    let code = match &result {
        Ok(_) => "ok".to_string(),
        Err(e) => e.metric_code(),
    };
    metrics().record_external(
        System::NexusDb.as_str(),
        operation,
        &code,
        started.elapsed().as_secs_f64(),
    );
    result
}

#[async_trait]
impl NexusDb for PgNexusDb {
    async fn find_gapis(&self, url: &str, client_id: &str) -> Result<Vec<GapiRow>> {
        let rows: Vec<(String, String, Option<String>)> = self
            .run("find_gapis", |mut c| async move {
                sqlx::query_as(
                    "SELECT url, clientid, clientsecret FROM nex_gapis WHERE clientid = $1",
                )
                .bind(client_id)
                .fetch_all(&mut *c)
                .await
            })
            .await?;
        // Compared in normal form here, not in SQL: a row written by hand or by an older
        // version with a trailing slash (or in other letter case) is the same row.
        Ok(rows
            .into_iter()
            .filter(|(stored, _, _)| crate::api::common::same_url(stored, url))
            .map(|(url, client_id, secret)| GapiRow {
                url,
                client_id,
                client_secret: SecretString::new(secret.unwrap_or_default()),
            })
            .collect())
    }

    async fn insert_gapi(&self, url: &str, client_id: &str, secret: &SecretString) -> Result<()> {
        self.run("insert_gapi", |mut c| async move {
            sqlx::query(
                "INSERT INTO nex_gapis (url, clientid, apikey, clientsecret, created) VALUES ($1, $2, 'NA', $3, now())",
            )
            .bind(url)
            .bind(client_id)
            .bind(secret.expose())
            .execute(&mut *c)
            .await
        })
        .await
        .map(drop)
    }

    async fn update_gapi_secret(
        &self,
        url: &str,
        client_id: &str,
        secret: &SecretString,
    ) -> Result<u64> {
        let done = self
            .run("update_gapi_secret", |mut c| async move {
                sqlx::query(
                    "UPDATE nex_gapis SET clientsecret = $3 WHERE url = $1 AND clientid = $2",
                )
                .bind(url)
                .bind(client_id)
                .bind(secret.expose())
                .execute(&mut *c)
                .await
            })
            .await?;
        Ok(done.rows_affected())
    }

    async fn delete_gapis(&self, url: &str, client_id: &str) -> Result<u64> {
        let done = self
            .run("delete_gapis", |mut c| async move {
                sqlx::query("DELETE FROM nex_gapis WHERE url = $1 AND clientid = $2")
                    .bind(url)
                    .bind(client_id)
                    .execute(&mut *c)
                    .await
            })
            .await?;
        Ok(done.rows_affected())
    }

    async fn find_api_keys(&self, tenant_id: &str, name: &str) -> Result<Vec<SecretString>> {
        let by_tenant = self.has_tenant_column().await?;
        let rows: Vec<(String,)> = self
            .run("find_api_keys", |mut c| async move {
                let query = if by_tenant {
                    // As text, lower-cased: the column may be a uuid, the contact center id
                    // any case.
                    sqlx::query_as(
                        "SELECT id FROM nex_apikeys WHERE name = $1 AND lower(tenantid::text) = lower($2)",
                    )
                    .bind(name)
                    .bind(tenant_id)
                } else {
                    sqlx::query_as("SELECT id FROM nex_apikeys WHERE name = $1").bind(name)
                };
                query.fetch_all(&mut *c).await
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id,)| SecretString::new(id))
            .collect())
    }

    async fn list_api_key_names(&self) -> Result<Vec<ApiKeyName>> {
        let by_tenant = self.has_tenant_column().await?;
        let rows: Vec<(String, Option<String>)> = self
            .run("list_api_key_names", |mut c| async move {
                let query = if by_tenant {
                    "SELECT name, tenantid::text FROM nex_apikeys ORDER BY tenantid, name"
                } else {
                    "SELECT name, NULL::text FROM nex_apikeys ORDER BY name"
                };
                sqlx::query_as(query).fetch_all(&mut *c).await
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(name, tenant_id)| ApiKeyName { name, tenant_id })
            .collect())
    }
}
