//! Shared test fixtures: a real PostgreSQL database per test, the simulator, an in-memory
//! secret store, and sample resources.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use digital_channels_operator::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use digital_channels_operator::local_postgres::LocalPostgres;
use digital_channels_operator::runbook::secrets::{
    OutputRecord, SecretError, SecretStore, WriteOutcome, key_of,
};
use digital_channels_operator::runbook::{RealConnector, Runbook};
use digital_channels_operator::secret::SecretString;
use digital_channels_operator::simulator::{Simulator, SimulatorConfig, SimulatorHandle};
use digital_channels_operator::upstream::http::{HttpConfig, RetryPolicy};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The server for the whole test binary: DATABASE_URL, a local server, or a throwaway
/// one. No PostgreSQL at all fails the test: a database test never skips.
fn server() -> &'static LocalPostgres {
    static SERVER: OnceLock<LocalPostgres> = OnceLock::new();
    SERVER.get_or_init(|| {
        LocalPostgres::find_or_start().unwrap_or_else(|e| panic!("PostgreSQL for tests: {e}"))
    })
}

/// A fresh database, dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn new() -> Self {
        let name = format!("dct_{}", rand::random::<u64>() % 1_000_000_000_000);
        let server = tokio::task::spawn_blocking(server)
            .await
            .expect("server thread");
        let url = server
            .create_database(&name)
            .await
            .expect("create test database");
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await
            .expect("connect to test database");
        Self { name, url, pool }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any runtime guarantee: use a short-lived one on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(server().drop_database(&name)).ok()
        })
        .join();
    }
}

/// Fast retries so transient-failure tests do not wait seconds.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(2),
    }
}

pub fn http_config() -> HttpConfig {
    HttpConfig {
        timeout: Duration::from_secs(2),
        retry: fast_retry(),
        ..HttpConfig::default()
    }
}

pub fn runbook() -> Runbook {
    digital_channels_operator::upstream::http::install_crypto_provider();
    Runbook::new(Arc::new(RealConnector::new(http_config())))
}

/// A simulator on loopback with its own database.
pub struct Sim {
    pub handle: SimulatorHandle,
    pub db: TestDb,
}

impl Sim {
    pub async fn start() -> Self {
        Self::start_with(SimulatorConfig::default()).await
    }

    pub async fn start_with(config: SimulatorConfig) -> Self {
        let db = TestDb::new().await;
        let handle = Simulator::start(config, db.pool.clone(), ([127, 0, 0, 1], 0).into())
            .await
            .expect("simulator starts");
        Self { handle, db }
    }

    pub fn url(&self) -> String {
        self.handle.base_url()
    }
}

/// Secrets in memory, as a test's namespace.
#[derive(Default, Clone)]
pub struct MemoryStore {
    pub secrets: Arc<Mutex<BTreeMap<String, OutputRecord>>>,
}

impl MemoryStore {
    pub fn put(&self, name: &str, pairs: &[(&str, &str)]) {
        let mut record = OutputRecord::default();
        for (k, v) in pairs {
            record.data.insert(k.to_string(), SecretString::new(*v));
        }
        self.secrets
            .lock()
            .unwrap()
            .insert(name.to_string(), record);
    }

    pub fn remove(&self, name: &str) {
        self.secrets.lock().unwrap().remove(name);
    }

    pub fn get(&self, name: &str, key: &str) -> Option<String> {
        self.secrets
            .lock()
            .unwrap()
            .get(name)
            .and_then(|r| r.data.get(key).map(|v| v.expose().to_string()))
    }

    /// Every value stored, to check that none leaks into output.
    pub fn all_values(&self) -> Vec<String> {
        self.secrets
            .lock()
            .unwrap()
            .values()
            .flat_map(|r| r.data.values().map(|v| v.expose().to_string()))
            .collect()
    }
}

#[async_trait]
impl SecretStore for MemoryStore {
    async fn read(&self, name: &str, key: &str) -> Result<SecretString, SecretError> {
        let secrets = self.secrets.lock().unwrap();
        key_of(name, key, secrets.get(name).map(|s| &s.data))
    }

    async fn create_generated(
        &self,
        name: &str,
        key: &str,
        value: &SecretString,
    ) -> Result<SecretString, SecretError> {
        let mut secrets = self.secrets.lock().unwrap();
        let entry = secrets.entry(name.to_string()).or_default();
        Ok(entry
            .data
            .entry(key.to_string())
            .or_insert_with(|| value.clone())
            .clone())
    }

    async fn read_output(&self, name: &str) -> Result<Option<OutputRecord>, SecretError> {
        Ok(self.secrets.lock().unwrap().get(name).cloned())
    }

    async fn write_output(
        &self,
        name: &str,
        record: &OutputRecord,
    ) -> Result<WriteOutcome, SecretError> {
        let mut secrets = self.secrets.lock().unwrap();
        let outcome = match secrets.get(name) {
            Some(old) if old == record => return Ok(WriteOutcome::Unchanged),
            Some(_) => WriteOutcome::Updated,
            None => WriteOutcome::Created,
        };
        secrets.insert(name.to_string(), record.clone());
        Ok(outcome)
    }
}

/// The standard sample: ops:ops, the tenant user nexus/nexus_password, the database URL.
pub fn sample_store(database_url: &str) -> MemoryStore {
    let store = MemoryStore::default();
    store.put("gws-ops", &[("username", "ops"), ("password", "ops")]);
    store.put("nexus-db", &[("url", database_url)]);
    store.put(
        "t100-user",
        &[("username", "nexus"), ("password", "nexus_password")],
    );
    store.put(
        "t200-user",
        &[("username", "nexus"), ("password", "nexus_password")],
    );
    store
}

/// A Secret manifest with these keys and values, as a test applies it.
pub fn secret_manifest(
    namespace: &str,
    name: &str,
    pairs: &[(&str, &str)],
) -> k8s_openapi::api::core::v1::Secret {
    let data = pairs
        .iter()
        .map(|(k, v)| {
            let value = k8s_openapi::ByteString(v.as_bytes().to_vec());
            (k.to_string(), value)
        })
        .collect();
    k8s_openapi::api::core::v1::Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    }
}

pub fn environment(base_url: &str) -> DigitalChannelsEnvironment {
    serde_yaml_ng::from_str(&format!(
        r#"
apiVersion: digitalchannels.dev/v1alpha1
kind: DigitalChannelsEnvironment
metadata: {{name: prod, namespace: dc, generation: 1, uid: env-uid}}
spec:
  authUrl: {base_url}
  gwsUrl: {base_url}/gws
  nexusUrl: {base_url}
  opsCredentialsSecret: {{name: gws-ops}}
  database: {{urlSecret: {{name: nexus-db, key: url}}}}
"#
    ))
    .expect("sample environment parses")
}

pub fn tenant(name: &str, domain: &str, with_ucs: bool) -> DigitalChannelsTenant {
    let ucs = if with_ucs {
        "  ucs: {url: https://ucs.example.com}\n"
    } else {
        ""
    };
    serde_yaml_ng::from_str(&format!(
        r#"
apiVersion: digitalchannels.dev/v1alpha1
kind: DigitalChannelsTenant
metadata: {{name: {name}, namespace: dc, generation: 1, uid: {name}-uid}}
spec:
  environmentRef: {{name: prod}}
  contactCenterDomain: {domain}
  tenantName: {name}
  credentialsSecret: {{name: {name}-user}}
{ucs}"#
    ))
    .expect("sample tenant parses")
}
pub mod by_hand;
pub mod fake_apiserver;
pub mod operator;
pub mod tls_front;

/// A request line seen by [`recording_proxy`], and when.
pub type SeenRequests = Arc<Mutex<Vec<(std::time::SystemTime, String)>>>;

/// A TCP proxy to `upstream` (`host:port`) that records, for every chunk a client sends,
/// each HTTP/1.1 request line in it and when it came: which requests a process sent to the
/// API server, and when. Answers the proxy's `host:port`.
pub async fn recording_proxy(upstream: String) -> (String, SeenRequests) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: SeenRequests = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let record = record.clone();
            tokio::spawn(async move {
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let down = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                let mut buffer = vec![0; 64 << 10];
                while let Ok(n) = client_read.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    let at = std::time::SystemTime::now();
                    let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                    for line in text.lines().filter(|l| l.ends_with(" HTTP/1.1")) {
                        record.lock().unwrap().push((at, line.to_owned()));
                    }
                    if server_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
                down.abort();
            });
        }
    });
    (addr.to_string(), seen)
}
