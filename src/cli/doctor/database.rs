//! The Nexus database: the login (with TLS as the URL's `sslmode` asks), and `nex_gapis` and
//! `nex_apikeys` present and readable. Every statement runs in a read-only session
//! (`default_transaction_read_only`), so nothing here can write, whatever the user may do.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::check::Verdict;
use crate::secret::SecretString;
use crate::upstream::NexusDb;
use crate::upstream::PgNexusDb;

/// Which database, as which user: never the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbTarget {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub sslmode: String,
}

impl DbTarget {
    /// The target and connection options of a `postgres://` URL; the error never quotes it.
    pub fn parse(url: &SecretString) -> Result<(DbTarget, PgConnectOptions), String> {
        let text = url.expose();
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Err("the database URL must start with postgres:// or postgresql://".into());
        }
        let parsed = url::Url::parse(text).map_err(|_| "the database URL does not parse")?;
        let options = PgConnectOptions::from_str(text)
            .map_err(|_| "the database URL is not a valid postgres:// URL")?;
        let sslmode = parsed
            .query_pairs()
            .find(|(k, _)| k == "sslmode")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| "prefer".to_string());
        let target = DbTarget {
            host: options.get_host().to_string(),
            port: options.get_port(),
            database: options.get_database().unwrap_or_default().to_string(),
            user: options.get_username().to_string(),
            sslmode,
        };
        Ok((target, options))
    }

    pub fn label(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

/// Why a statement or the login failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbFailure {
    Unreachable(String),
    TimedOut,
    AuthRefused(String),
    NoDatabase(String),
    Untrusted(String),
    Tls(String),
    MissingTable,
    PermissionDenied(String),
    Other(String),
}

/// A sqlx error as a [`DbFailure`]. Server messages name users and tables, never passwords.
pub fn classify(error: &sqlx::Error) -> DbFailure {
    match error {
        sqlx::Error::Database(db) => {
            let message = db.message().to_string();
            match db.code().as_deref() {
                Some("28P01" | "28000") => DbFailure::AuthRefused(message),
                Some("3D000") => DbFailure::NoDatabase(message),
                Some("42P01") => DbFailure::MissingTable,
                Some("42501") => DbFailure::PermissionDenied(message),
                _ => DbFailure::Other(message),
            }
        }
        sqlx::Error::Io(e) => DbFailure::Unreachable(e.to_string()),
        sqlx::Error::PoolTimedOut => DbFailure::TimedOut,
        sqlx::Error::Tls(e) => {
            let text = e.to_string();
            if super::probe::untrusted_in_chain(e.as_ref()) {
                DbFailure::Untrusted(text)
            } else {
                DbFailure::Tls(text)
            }
        }
        other => DbFailure::Other(other.to_string()),
    }
}

/// The login, and whether the session is encrypted.
pub fn login(target: &DbTarget, secret_name: &str, result: &Result<bool, DbFailure>) -> Verdict {
    let in_url = format!("in the database URL of Secret {secret_name}");
    let sslmode = &target.sslmode;
    match result {
        Ok(true) => Verdict::ok(format!(
            "logged in as {} to {}, over TLS (sslmode={sslmode})",
            target.user, target.database
        )),
        Ok(false) => Verdict::warning(
            format!(
                "logged in as {} to {}; the connection is not encrypted (sslmode={sslmode})",
                target.user, target.database
            ),
            format!("set sslmode=require or verify-full {in_url}, with TLS on the server"),
        ),
        Err(DbFailure::AuthRefused(m)) => Verdict::failure(
            format!("PostgreSQL refused user {}: {m}", target.user),
            format!("fix the user and password {in_url}"),
        ),
        Err(DbFailure::NoDatabase(m)) => {
            Verdict::failure(m.clone(), format!("name Nexus's database {in_url}"))
        }
        Err(DbFailure::Untrusted(m)) => Verdict::failure(
            format!("certificate not trusted (sslmode={sslmode}): {m}"),
            format!(
                "add sslrootcert=<CA file> {in_url}, or use sslmode=require (encrypted, not verified)"
            ),
        ),
        Err(DbFailure::Tls(m)) => Verdict::failure(
            format!("TLS with the database failed (sslmode={sslmode}): {m}"),
            format!("check the server's TLS, or the sslmode {in_url}"),
        ),
        Err(DbFailure::TimedOut) => Verdict::failure(
            "no connection within 10s",
            "check that the database accepts connections from here (pg_hba.conf, max_connections)",
        ),
        Err(other) => Verdict::failure(
            format!("cannot log in: {}", describe(other)),
            format!("check the host, port and database {in_url}"),
        ),
    }
}

/// The `nex_gapis` row of this environment, compared with the client secret when known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowState {
    Absent,
    Matches,
    Differs,
    /// The client secret is not known (its Secret is missing).
    Present,
}

/// A Nexus table, and for `nex_gapis` the row of this environment.
pub fn table(
    table: &str,
    user: &str,
    row: Option<RowState>,
    result: &Result<(), DbFailure>,
) -> Verdict {
    let grants = if table == "nex_gapis" {
        "SELECT, INSERT, UPDATE, DELETE"
    } else {
        "SELECT"
    };
    match (result, row) {
        (Ok(()), Some(RowState::Differs)) => Verdict::warning(
            "readable; its row for spec.gwsUrl holds another client secret",
            "nothing to do under Manage: it updates the row and Nexus must restart to read it (spec.nexusDeployment)",
        ),
        (Ok(()), Some(RowState::Absent)) => {
            Verdict::ok("readable; no row for spec.gwsUrl yet (Manage inserts it)")
        }
        (Ok(()), Some(RowState::Matches)) => {
            Verdict::ok("readable; its row for spec.gwsUrl holds the client secret")
        }
        (Ok(()), _) => Verdict::ok("readable"),
        (Err(DbFailure::MissingTable), _) => Verdict::failure(
            format!("table {table} does not exist"),
            "Nexus creates nex_gapis and nex_apikeys at its first start: check the database name in the URL, or start Nexus on this database first",
        ),
        (Err(DbFailure::PermissionDenied(m)), _) => Verdict::failure(
            format!("cannot read {table}: {m}"),
            format!("GRANT {grants} ON {table} TO {user}"),
        ),
        (Err(other), _) => Verdict::failure(
            format!("cannot read {table}: {}", describe(other)),
            "check the database and its user",
        ),
    }
}

fn describe(failure: &DbFailure) -> String {
    match failure {
        DbFailure::Unreachable(m) => format!("cannot reach the database: {m}"),
        DbFailure::TimedOut => "timed out".to_string(),
        DbFailure::MissingTable => "a table is missing".to_string(),
        DbFailure::AuthRefused(m)
        | DbFailure::NoDatabase(m)
        | DbFailure::Untrusted(m)
        | DbFailure::Tls(m)
        | DbFailure::PermissionDenied(m)
        | DbFailure::Other(m) => m.clone(),
    }
}

/// A pool of one read-only connection, opened now (the login check).
pub async fn connect(options: &PgConnectOptions) -> Result<(PgPool, bool), DbFailure> {
    let options = options
        .clone()
        .options([("default_transaction_read_only", "on")]);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| classify(&e))?;
    let encrypted: Option<bool> =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_optional(&pool)
            .await
            .map_err(|e| classify(&e))?;
    Ok((pool, encrypted.unwrap_or(false)))
}

/// Whether `table` exists and this user may read it.
pub async fn readable(pool: &PgPool, table: &str) -> Result<(), DbFailure> {
    let statement = match table {
        "nex_gapis" => "SELECT 1 FROM nex_gapis LIMIT 1",
        _ => "SELECT 1 FROM nex_apikeys LIMIT 1",
    };
    sqlx::query(statement)
        .fetch_optional(pool)
        .await
        .map(drop)
        .map_err(|e| classify(&e))
}

/// This environment's `nex_gapis` row, through the operator's own client on the read-only pool.
pub async fn gapi_row(
    pool: &PgPool,
    gws_url: &str,
    client_id: &str,
    client_secret: Option<&SecretString>,
) -> Option<RowState> {
    let db = PgNexusDb::from_pool(pool.clone());
    let rows = db.find_gapis(gws_url, client_id).await.ok()?;
    Some(match (rows.as_slice(), client_secret) {
        ([], _) => RowState::Absent,
        (_, None) => RowState::Present,
        (rows, Some(secret)) if rows.iter().all(|r| &r.client_secret == secret) => {
            RowState::Matches
        }
        _ => RowState::Differs,
    })
}

#[cfg(test)]
mod tests {
    use super::super::check::Status::{Failure, Ok as Good, Warning};
    use super::*;

    fn target() -> DbTarget {
        DbTarget::parse(&SecretString::new(
            "postgres://nexus:pw@db.example.com:5433/nexus?sslmode=require",
        ))
        .unwrap()
        .0
    }

    #[test]
    fn the_target_names_no_password() {
        let t = target();
        assert_eq!(t.label(), "nexus@db.example.com:5433/nexus");
        assert_eq!(t.sslmode, "require");
        let plain = DbTarget::parse(&SecretString::new("postgres://u:p@h/d"))
            .unwrap()
            .0;
        assert_eq!((plain.port, plain.sslmode.as_str()), (5432, "prefer"));
        for bad in [
            "mysql://u:secretpw@h/d",
            "secretpw",
            "postgres://u:secretpw@[::1/d",
        ] {
            let e = DbTarget::parse(&SecretString::new(bad)).unwrap_err();
            assert!(!e.contains("secretpw"), "{e}");
        }
    }

    #[test]
    fn logins() {
        let t = target();
        for (result, status, message) in [
            (
                Ok(true),
                Good,
                "logged in as nexus to nexus, over TLS (sslmode=require)",
            ),
            (
                Ok(false),
                Warning,
                "logged in as nexus to nexus; the connection is not encrypted (sslmode=require)",
            ),
            (
                Err(DbFailure::AuthRefused(
                    "password authentication failed for user \"nexus\"".into(),
                )),
                Failure,
                "PostgreSQL refused user nexus: password authentication failed for user \"nexus\"",
            ),
            (
                Err(DbFailure::Unreachable(
                    "Connection refused (os error 111)".into(),
                )),
                Failure,
                "cannot log in: cannot reach the database: Connection refused (os error 111)",
            ),
        ] {
            let v = login(&t, "nexus-db", &result);
            assert_eq!((v.status, v.message.as_str()), (status, message));
        }
    }

    #[test]
    fn tables_and_their_row() {
        for (name, row, result, status, fix) in [
            ("nex_gapis", Some(RowState::Absent), Ok(()), Good, None),
            (
                "nex_gapis",
                Some(RowState::Differs),
                Ok(()),
                Warning,
                Some(
                    "nothing to do under Manage: it updates the row and Nexus must restart to read it (spec.nexusDeployment)",
                ),
            ),
            (
                "nex_gapis",
                None,
                Err(DbFailure::MissingTable),
                Failure,
                Some(
                    "Nexus creates nex_gapis and nex_apikeys at its first start: check the database name in the URL, or start Nexus on this database first",
                ),
            ),
            (
                "nex_gapis",
                None,
                Err(DbFailure::PermissionDenied(
                    "permission denied for table nex_gapis".into(),
                )),
                Failure,
                Some("GRANT SELECT, INSERT, UPDATE, DELETE ON nex_gapis TO nexus"),
            ),
            (
                "nex_apikeys",
                None,
                Err(DbFailure::PermissionDenied("denied".into())),
                Failure,
                Some("GRANT SELECT ON nex_apikeys TO nexus"),
            ),
        ] {
            let v = table(name, "nexus", row, &result);
            assert_eq!(
                (v.status, v.fix.as_deref()),
                (status, fix),
                "{name} {row:?}"
            );
        }
    }
}
