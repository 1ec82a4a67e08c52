//! The Nexus tables the simulator shares with the operator: `nex_gapis` (written by the
//! operator, read by tenant provisioning) and `nex_apikeys` (written by tenant provisioning).

use std::fmt;

use serde::Serialize;
use sqlx::{PgPool, Row};

/// Schema as Nexus creates it. `nex_gapis` has no unique key, like the real one, so the
/// operator has to look rows up before inserting.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS nex_gapis (
    url text NOT NULL,
    clientid text NOT NULL,
    apikey text,
    clientsecret text,
    created timestamptz DEFAULT now(),
    region text,
    authinturl text,
    authexturl text
);
CREATE TABLE IF NOT EXISTS nex_apikeys (
    id text PRIMARY KEY,
    name text NOT NULL,
    tenantid text,
    created timestamptz DEFAULT now()
);
";

/// Advisory lock taken around schema creation: two simulators starting at once against one
/// database would otherwise race on `pg_type` despite `IF NOT EXISTS`.
const SCHEMA_LOCK: i64 = 0x6e65_785f_7363_6865; // "nex_sche"

/// Suffixes of the extra keys Nexus creates next to a tenant's own key.
const EXTRA_KEY_SUFFIXES: [&str; 2] = ["-Designer", "-iWD"];

/// One `nex_gapis` row. `clientsecret` is plaintext in the table, so Debug hides it.
#[derive(Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct GapiRow {
    pub url: String,
    pub clientid: String,
    pub apikey: Option<String>,
    #[serde(skip)]
    pub clientsecret: Option<String>,
    /// `created` as PostgreSQL prints a timestamptz.
    pub created: Option<String>,
    pub region: Option<String>,
    pub authinturl: Option<String>,
    pub authexturl: Option<String>,
}

impl fmt::Debug for GapiRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GapiRow")
            .field("url", &self.url)
            .field("clientid", &self.clientid)
            .field("apikey", &self.apikey)
            .field(
                "clientsecret",
                &self.clientsecret.as_ref().map(|_| "<redacted>"),
            )
            .field("created", &self.created)
            .field("region", &self.region)
            .field("authinturl", &self.authinturl)
            .field("authexturl", &self.authexturl)
            .finish()
    }
}

/// One `nex_apikeys` row; `id` is the API key itself, so Debug hides it.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    pub tenantid: Option<String>,
}

impl fmt::Debug for ApiKeyRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyRow")
            .field("id", &"<redacted>")
            .field("name", &self.name)
            .field("tenantid", &self.tenantid)
            .finish()
    }
}

pub(crate) async fn ensure_schema(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SCHEMA_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
    tx.commit().await
}

pub(crate) async fn gapi_rows(pool: &PgPool) -> Result<Vec<GapiRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT url, clientid, apikey, clientsecret, created::text AS created, region, \
         authinturl, authexturl FROM nex_gapis ORDER BY created, url, clientid",
    )
    .fetch_all(pool)
    .await
}

pub(crate) async fn api_key_rows(pool: &PgPool) -> Result<Vec<ApiKeyRow>, sqlx::Error> {
    sqlx::query_as("SELECT id, name, tenantid FROM nex_apikeys ORDER BY tenantid, name")
        .fetch_all(pool)
        .await
}

pub(crate) async fn api_key_exists(pool: &PgPool, key: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM nex_apikeys WHERE id = $1)")
        .bind(key)
        .fetch_one(pool)
        .await?;
    row.try_get(0)
}

/// Names of the keys Nexus makes for a tenant: its own first, then `-Designer` and `-iWD`.
fn key_names(tenant_name: &str) -> impl Iterator<Item = String> + '_ {
    std::iter::once(tenant_name.to_owned()).chain(
        EXTRA_KEY_SUFFIXES
            .iter()
            .map(move |suffix| format!("{tenant_name}{suffix}")),
    )
}

/// Creates the keys Nexus makes for a new tenant and answers the tenant's own key.
pub(crate) async fn insert_tenant_keys(
    pool: &PgPool,
    tenant_id: &str,
    tenant_name: &str,
) -> Result<String, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut own_key = None;
    for name in key_names(tenant_name) {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query("INSERT INTO nex_apikeys (id, name, tenantid) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(name)
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        own_key.get_or_insert(id);
    }
    tx.commit().await?;
    Ok(own_key.unwrap_or_default())
}

/// Follows a tenant rename; the keys themselves stay, as consumers hold them.
pub(crate) async fn rename_tenant_keys(
    pool: &PgPool,
    tenant_id: &str,
    old_name: &str,
    new_name: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for (old, new) in key_names(old_name).zip(key_names(new_name)) {
        sqlx::query("UPDATE nex_apikeys SET name = $3 WHERE tenantid = $1 AND name = $2")
            .bind(tenant_id)
            .bind(old)
            .bind(new)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

pub(crate) async fn delete_tenant_keys(pool: &PgPool, tenant_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM nex_apikeys WHERE tenantid = $1")
        .bind(tenant_id)
        .execute(pool)
        .await?;
    Ok(())
}
