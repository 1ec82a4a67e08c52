//! A PostgreSQL server of the test's own, that the test can stop, start and restart without
//! disturbing the server other tests share: initdb into a temporary directory, password
//! (SCRAM) authentication on 127.0.0.1, a free port kept across restarts. Dropped (or the test
//! process gone), the server stops and its directory is removed.
//!
//! Included with `#[path = "common/own_postgres.rs"] mod own_postgres;` by the suites that need
//! it, so the other suites do not compile it.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use digital_channels_operator::local_postgres::{find_binaries, is_root};

pub struct OwnPostgres {
    dir: PathBuf,
    port: u16,
    password: String,
    bin: PathBuf,
    run_as: Option<String>,
    watchdog: Option<std::process::Child>,
}

impl OwnPostgres {
    /// initdb and start a server whose superuser `postgres` has `password`.
    pub fn start(password: &str) -> Self {
        let bin = find_binaries().expect("PostgreSQL server binaries (initdb, pg_ctl, postgres)");
        let run_as = is_root().then(|| "postgres".to_string());
        let dir = std::env::temp_dir().join(format!(
            "dc-own-pg-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, password).unwrap();
        if let Some(user) = &run_as {
            let status = Command::new("chown")
                .args(["-R", user, dir.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(status.success(), "chown {}", dir.display());
        }
        let mut server = Self {
            dir,
            port: 0,
            password: password.to_string(),
            bin,
            run_as,
            watchdog: None,
        };
        let data = server.data();
        let out = server
            .command("initdb")
            .args(["-D", &data, "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_file(&pwfile);
        server.port = free_port();
        server.watchdog = Some(server.watchdog());
        server.start_again();
        server
    }

    fn data(&self) -> String {
        self.dir.join("data").to_str().unwrap().to_string()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn pg_ctl(&self, args: &[&str]) {
        let options = format!(
            "-h 127.0.0.1 -p {} -k {} -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        let out = self
            .command("pg_ctl")
            .args(args)
            .args(["-w", "-t", "30", "-D", &self.data(), "-o", &options])
            .arg("-l")
            .arg(&log)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Starts the (stopped) server on the same port; returns once it accepts connections.
    pub fn start_again(&self) {
        self.pg_ctl(&["start"]);
        let address: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "own PostgreSQL did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server ("fast": open sessions are terminated); the port then refuses.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast"]);
    }

    /// Stops and starts the server, as an upgrade or a failover does: every open connection
    /// ends with `57P01 terminating connection due to administrator command`.
    pub fn restart(&self) {
        self.pg_ctl(&["restart", "-m", "fast"]);
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        self.url_with_password(database, &self.password)
    }

    pub fn url_with_password(&self, database: &str, password: &str) -> String {
        format!(
            "postgres://postgres:{password}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// Creates a database and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connect to own PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create database");
        let _ = admin.close().await;
        self.url(name)
    }

    /// The server's log, for a failure message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// A shell that stops the server and removes its directory when this process is gone,
    /// even without destructors (a killed test binary).
    fn watchdog(&self) -> std::process::Child {
        let script = format!(
            "while [ -d /proc/{parent} ]; do sleep 1; done; \"$0\" stop -m immediate -D \"$1\" >/dev/null 2>&1; rm -rf \"$2\"",
            parent = std::process::id()
        );
        // The watchdog runs as the server's user, so that pg_ctl accepts to run.
        let mut c = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--", "/bin/sh", "-c", &script]);
                c
            }
            None => {
                let mut c = Command::new("/bin/sh");
                c.args(["-c", &script]);
                c
            }
        };
        c.arg(self.bin.join("pg_ctl"))
            .arg(self.data())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("watchdog shell")
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-m", "immediate", "-w", "-D", &self.data()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
