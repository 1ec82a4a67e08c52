//! A PostgreSQL database for `demo` and the tests: `DATABASE_URL` when set, else a server
//! answering on 127.0.0.1:5432, else a throwaway server started from the installed
//! PostgreSQL binaries and removed again.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One line that says how to get PostgreSQL, for when none can be found.
pub const INSTALL_HINT: &str = "no PostgreSQL found: set DATABASE_URL, or install the server binaries \
     (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql)";

/// A PostgreSQL server the process can use. Dropping it stops a throwaway server.
pub struct LocalPostgres {
    /// `postgres://user@host:port` without a database name.
    server_url: String,
    throwaway: Option<Throwaway>,
}

struct Throwaway {
    child: Child,
    dir: PathBuf,
}

impl LocalPostgres {
    /// Finds or starts a server.
    pub fn find_or_start() -> Result<Self, String> {
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.is_empty()
        {
            return Ok(Self {
                server_url: strip_database(&url),
                throwaway: None,
            });
        }
        let local: SocketAddr = "127.0.0.1:5432".parse().expect("valid address");
        if TcpStream::connect_timeout(&local, Duration::from_millis(300)).is_ok() {
            return Ok(Self {
                server_url: "postgres://postgres@127.0.0.1:5432".to_string(),
                throwaway: None,
            });
        }
        Self::start_throwaway()
    }

    /// The server of a database URL (its user, password and options kept), for creating the
    /// database it names.
    pub fn of_url(url: &str) -> Self {
        Self {
            server_url: strip_database(url),
            throwaway: None,
        }
    }

    /// The URL of a database on this server.
    pub fn url_for(&self, database: &str) -> String {
        match url::Url::parse(&self.server_url) {
            Ok(mut u) => {
                u.set_path(&format!("/{database}"));
                u.to_string()
            }
            Err(_) => format!("{}/{database}", self.server_url),
        }
    }

    /// Creates the database `url` names when it does not exist (connecting to it answers
    /// 3D000 invalid_catalog_name), so that a database that exists needs no right to create
    /// one, nor to the `postgres` database.
    pub async fn create_database_named_in(url: &str) -> Result<(), String> {
        use sqlx::Connection;
        let server = Self::of_url(url);
        let database = url::Url::parse(url)
            .map(|u| u.path().trim_start_matches('/').to_string())
            .map_err(|_| {
                "the database URL is not a URL (postgres://user:password@host:5432/database)"
                    .to_string()
            })?;
        if database.is_empty() {
            return Ok(());
        }
        match sqlx::PgConnection::connect(url).await {
            Ok(connection) => {
                let _ = connection.close().await;
                Ok(())
            }
            Err(e)
                if e.as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|c| c == "3D000") =>
            {
                server.create_database(&database).await.map(|_| ())
            }
            Err(e) => Err(format!(
                "cannot connect to PostgreSQL at {}: {e}",
                server.display_address()
            )),
        }
    }

    /// Creates `database` unless it exists, and returns its URL.
    pub async fn create_database(&self, database: &str) -> Result<String, String> {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&self.url_for("postgres"))
            .await
            .map_err(|e| {
                format!(
                    "cannot connect to PostgreSQL at {}: {e}",
                    self.display_address()
                )
            })?;
        let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(database)
            .fetch_optional(&mut admin)
            .await
            .map_err(|e| format!("cannot list databases: {e}"))?;
        if exists.is_none() {
            let create = format!("CREATE DATABASE {}", identifier(database)?);
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(create))
                .execute(&mut admin)
                .await
            {
                // Another process may have created it meanwhile (42P04 duplicate_database).
                let duplicate = e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|c| c == "42P04");
                if !duplicate {
                    return Err(format!("cannot create database {database}: {e}"));
                }
            }
        }
        let _ = admin.close().await;
        Ok(self.url_for(database))
    }

    /// Drops `database`, closing its other connections first.
    pub async fn drop_database(&self, database: &str) -> Result<(), String> {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&self.url_for("postgres"))
            .await
            .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
        let drop = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            identifier(database)?
        );
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&mut admin)
            .await
            .map_err(|e| format!("cannot drop database {database}: {e}"))?;
        let _ = admin.close().await;
        Ok(())
    }

    /// Host and port, for telling a person which server is used.
    pub fn display_address(&self) -> String {
        url::Url::parse(&self.server_url)
            .ok()
            .map(|u| {
                format!(
                    "{}:{}",
                    u.host_str().unwrap_or("?"),
                    u.port().unwrap_or(5432)
                )
            })
            .unwrap_or_else(|| "the configured server".to_string())
    }

    /// True when this process started the server.
    pub fn is_throwaway(&self) -> bool {
        self.throwaway.is_some()
    }

    fn start_throwaway() -> Result<Self, String> {
        let bin = find_binaries().ok_or_else(|| INSTALL_HINT.to_string())?;
        let dir = std::env::temp_dir().join(format!(
            "dc-operator-pg-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // initdb and postgres refuse to run as root: run them as the `postgres` user then.
        let run_as = if is_root() {
            Some(system_user()?)
        } else {
            None
        };
        if let Some((_, uid, gid)) = &run_as {
            std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
        }
        let data = dir.join("data");
        if let Err(e) = init_data(&run_as, &bin, &data) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let port = free_port()?;
        // A watchdog shell keeps the server tied to this process: when we exit, even
        // without running destructors (a panic in a test, a kill), the server goes too.
        // It looks at /proc rather than `kill -0`, which a non-root watchdog may not send
        // to a root parent.
        let script = format!(
            "\"$0\" -D \"$1\" -k \"$2\" -h 127.0.0.1 -p {port} -F -c fsync=off -c full_page_writes=off & pg=$!; \
             while [ -d /proc/{parent} ] && kill -0 $pg 2>/dev/null; do sleep 1; done; \
             kill -INT $pg 2>/dev/null; wait $pg; rm -rf \"$2\"",
            parent = std::process::id()
        );
        let mut shell = command(&run_as, Path::new("/bin/sh"));
        shell
            .args([
                "-c",
                &script,
                path_str(&bin.join("postgres")),
                path_str(&data),
                path_str(&dir),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = shell
            .spawn()
            .map_err(|e| format!("cannot start postgres: {e}"))?;
        let server = Self {
            server_url: format!("postgres://postgres@127.0.0.1:{port}"),
            throwaway: Some(Throwaway { child, dir }),
        };
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("valid address");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                return Err("the throwaway PostgreSQL did not start within 30s".to_string());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }
}

/// `initdb` of a trusting cluster in `data`, as `run_as` when root.
fn init_data(run_as: &Option<(String, u32, u32)>, bin: &Path, data: &Path) -> Result<(), String> {
    let initdb = command(run_as, &bin.join("initdb"))
        .args([
            "-D",
            path_str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !initdb.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr).trim()
        ));
    }
    Ok(())
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if let Some(t) = &mut self.throwaway {
            // Killing the watchdog alone would orphan the server: stop the server with
            // pg_ctl's fast mode, then reap the watchdog.
            if let Some(bin) = find_binaries() {
                let run_as = if is_root() { system_user().ok() } else { None };
                let _ = command(&run_as, &bin.join("pg_ctl"))
                    .args([
                        "stop",
                        "-m",
                        "fast",
                        "-w",
                        "-D",
                        path_str(&t.dir.join("data")),
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = t.child.kill();
            let _ = t.child.wait();
            let _ = std::fs::remove_dir_all(&t.dir);
        }
    }
}

/// Database names cannot be bind parameters: accept only plain identifiers.
fn identifier(name: &str) -> Result<&str, String> {
    let plain = !name.is_empty()
        && name.len() < 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        Ok(name)
    } else {
        Err(format!(
            "{name:?} is not a plain database name ([a-z_][a-z0-9_]*)"
        ))
    }
}

fn strip_database(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_path("");
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => url.to_string(),
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn command(run_as: &Option<(String, u32, u32)>, program: &Path) -> Command {
    match run_as {
        Some((user, _, _)) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// The directory holding initdb, pg_ctl and postgres (on `PATH`, else the newest under
/// `/usr/lib/postgresql`).
pub fn find_binaries() -> Option<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_all(&dir) {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| has_all(p))
        .collect();
    versions.sort();
    versions.pop()
}

/// Whether this process runs as root (PostgreSQL refuses to run as root).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A non-root account to run the server as: `postgres` where the package made one, else `nobody`.
fn system_user() -> Result<(String, u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| format!("cannot read /etc/passwd: {e}"))?;
    for wanted in ["postgres", "nobody"] {
        for line in passwd.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() > 3
                && fields[0] == wanted
                && let (Ok(uid), Ok(gid)) = (fields[2].parse(), fields[3].parse())
            {
                return Ok((wanted.to_string(), uid, gid));
            }
        }
    }
    Err("running as root and no postgres or nobody user exists to run PostgreSQL as".to_string())
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_stripped_from_urls_and_options_kept() {
        let server = LocalPostgres::of_url("postgres://u:p@h:5432/db?sslmode=disable");
        assert_eq!(server.server_url, "postgres://u:p@h:5432?sslmode=disable");
        assert_eq!(
            server.url_for("other"),
            "postgres://u:p@h:5432/other?sslmode=disable"
        );
        assert_eq!(
            LocalPostgres::of_url("postgres://u@h").url_for("db"),
            "postgres://u@h/db"
        );
    }
}
