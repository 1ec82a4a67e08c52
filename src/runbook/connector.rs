//! Builds the clients for the URLs and credentials of a resource, and keeps them: a
//! controller reconciles the same environment again and again, and must not open a new
//! connection pool or TLS setup each time.
//!
//! What is kept is bounded by what is in use, not by history: one HTTP client per upstream
//! origin and one pool per database (host, port, database, user), each replaced when its CA
//! bundle or its password changes, the replaced pool closed; and at most [`MAX_KEPT`] of
//! each, the least recently used dropped first. The maps are keyed by SHA-256 digests, so no
//! password or URL is held as a key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::secret::SecretString;
use crate::upstream::error::Result;
use crate::upstream::http::HttpConfig;
use crate::upstream::{
    EnvironmentApi, EnvironmentClient, ErrorKind, GwsAuthApi, GwsAuthClient, HttpClient, NexusApi,
    NexusClient, NexusDb, PgNexusDb, System, UpstreamError,
};

/// Hands out a client per external system. Tests swap in fakes or point at the simulator.
pub trait Connector: Send + Sync {
    /// `ca_pem` is an extra CA bundle from the environment's `tls.caSecret`.
    fn gws_auth(&self, auth_url: &str, ca_pem: Option<&[u8]>) -> Result<Arc<dyn GwsAuthApi>>;
    fn environment(
        &self,
        environment_url: &str,
        ca_pem: Option<&[u8]>,
    ) -> Result<Arc<dyn EnvironmentApi>>;
    fn nexus(&self, nexus_url: &str, ca_pem: Option<&[u8]>) -> Result<Arc<dyn NexusApi>>;
    fn nexus_db(&self, database_url: &SecretString) -> Result<Arc<dyn NexusDb>>;
}

/// Most HTTP clients, and most database pools, kept at once.
pub const MAX_KEPT: usize = 32;

type Digest = [u8; 32];

fn digest(parts: &[&[u8]]) -> Digest {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        // Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part);
    }
    let mut out = [0; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// A cache of values by key, each made for one fingerprint (a CA bundle, a password): a
/// new fingerprint for a key replaces its value, and past `capacity` the least recently
/// used entry goes. What was replaced or evicted is handed back to be closed.
struct Kept<V> {
    entries: HashMap<Digest, Slot<V>>,
    capacity: usize,
    clock: u64,
}

struct Slot<V> {
    fingerprint: Digest,
    value: V,
    used: u64,
}

impl<V: Clone> Kept<V> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
            clock: 0,
        }
    }

    /// The value for `key` made for `fingerprint`, made now if there is none; with the
    /// values it displaced.
    fn get_or_make(
        &mut self,
        key: Digest,
        fingerprint: Digest,
        make: impl FnOnce() -> Result<V>,
    ) -> Result<(V, Vec<V>)> {
        self.clock += 1;
        if let Some(slot) = self.entries.get_mut(&key)
            && slot.fingerprint == fingerprint
        {
            slot.used = self.clock;
            return Ok((slot.value.clone(), Vec::new()));
        }
        let value = make()?;
        let mut displaced = Vec::new();
        let slot = Slot {
            fingerprint,
            value: value.clone(),
            used: self.clock,
        };
        if let Some(old) = self.entries.insert(key, slot) {
            displaced.push(old.value);
        }
        while self.entries.len() > self.capacity {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            displaced.extend(self.entries.remove(&oldest).map(|s| s.value));
        }
        Ok((value, displaced))
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The real clients: reqwest and sqlx, kept by origin and by database as said above.
pub struct RealConnector {
    config: HttpConfig,
    http: Mutex<Kept<HttpClient>>,
    pools: Mutex<Kept<Arc<PgNexusDb>>>,
}

impl RealConnector {
    pub fn new(config: HttpConfig) -> Self {
        Self {
            config,
            http: Mutex::new(Kept::new(MAX_KEPT)),
            pools: Mutex::new(Kept::new(MAX_KEPT)),
        }
    }

    /// HTTP clients kept now.
    pub fn http_client_count(&self) -> usize {
        self.http.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Database pools kept now.
    pub fn pool_count(&self) -> usize {
        self.pools.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn http(&self, system: System, url: &str, ca_pem: Option<&[u8]>) -> Result<HttpClient> {
        let key = digest(&[origin(url).as_bytes()]);
        let fingerprint = digest(&[ca_pem.unwrap_or_default(), &[u8::from(ca_pem.is_some())]]);
        let mut cache = self.http.lock().unwrap_or_else(|e| e.into_inner());
        let (client, _) = cache.get_or_make(key, fingerprint, || {
            let mut config = self.config.clone();
            if let Some(pem) = ca_pem {
                // The environment's CA comes on top of the process-wide extra CA, if any.
                let mut bundle = config.ca_bundle_pem.take().unwrap_or_default();
                bundle.push(b'\n');
                bundle.extend_from_slice(pem);
                config.ca_bundle_pem = Some(bundle);
            }
            HttpClient::new(&config).map_err(|message| {
                UpstreamError::new(system, "configure", ErrorKind::Rejected, message)
            })
        })?;
        // A replaced client's idle connections end with its last clone.
        Ok(client)
    }

    /// The pool for this database URL: kept per database and user, replaced (and the old
    /// one closed) when the password or any other part of the URL changes.
    pub fn pg_nexus_db(&self, database_url: &SecretString) -> Result<Arc<PgNexusDb>> {
        let url = database_url.expose();
        let key = digest(&[without_password(url).as_bytes()]);
        let fingerprint = digest(&[url.as_bytes()]);
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let (db, displaced) = pools.get_or_make(key, fingerprint, || {
            Ok(Arc::new(
                PgNexusDb::connect_lazy(database_url)?.with_fence(self.config.fence.clone()),
            ))
        })?;
        drop(pools);
        for old in displaced {
            close_later(old);
        }
        Ok(db)
    }
}

/// Closes a pool no longer handed out: its idle connections end now, one in use when its
/// statement ends.
fn close_later(db: Arc<PgNexusDb>) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move { db.close().await });
        }
        Err(_) => tracing::debug!("no runtime to close a replaced database pool on"),
    }
}

/// Scheme, host and port of a URL (the whole text if it does not parse): what a TLS
/// setup and a connection pool are for.
fn origin(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => url.to_string(),
    }
}

/// A database URL without its password: which database, as which user.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

impl Connector for RealConnector {
    fn gws_auth(&self, auth_url: &str, ca_pem: Option<&[u8]>) -> Result<Arc<dyn GwsAuthApi>> {
        Ok(Arc::new(GwsAuthClient::new(
            self.http(System::GwsAuth, auth_url, ca_pem)?,
            auth_url,
        )))
    }

    fn environment(
        &self,
        environment_url: &str,
        ca_pem: Option<&[u8]>,
    ) -> Result<Arc<dyn EnvironmentApi>> {
        Ok(Arc::new(EnvironmentClient::new(
            self.http(System::Environment, environment_url, ca_pem)?,
            environment_url,
        )))
    }

    fn nexus(&self, nexus_url: &str, ca_pem: Option<&[u8]>) -> Result<Arc<dyn NexusApi>> {
        Ok(Arc::new(NexusClient::new(
            self.http(System::Nexus, nexus_url, ca_pem)?,
            nexus_url,
        )))
    }

    fn nexus_db(&self, database_url: &SecretString) -> Result<Arc<dyn NexusDb>> {
        Ok(self.pg_nexus_db(database_url)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Digest {
        [n; 32]
    }

    #[test]
    fn a_new_fingerprint_replaces_the_entry_and_the_oldest_goes_past_the_bound() {
        let mut kept: Kept<u32> = Kept::new(2);
        let mut made = 0;
        let mut get = |kept: &mut Kept<u32>, k: u8, f: u8| {
            kept.get_or_make(key(k), key(f), || {
                made += 1;
                Ok(made)
            })
            .unwrap()
        };
        // (key, fingerprint) -> (value, displaced, entries)
        assert_eq!(get(&mut kept, 1, 1), (1, vec![]));
        assert_eq!(get(&mut kept, 1, 1), (1, vec![]), "kept");
        assert_eq!(get(&mut kept, 1, 2), (2, vec![1]), "replaced");
        assert_eq!(kept.len(), 1);
        assert_eq!(get(&mut kept, 2, 1), (3, vec![]));
        assert_eq!(get(&mut kept, 1, 2), (2, vec![]), "key 1 used last");
        assert_eq!(
            get(&mut kept, 3, 1),
            (4, vec![3]),
            "key 2 least recently used"
        );
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn a_database_is_known_without_its_password_and_no_key_holds_it() {
        assert_eq!(
            without_password("postgres://nexus:s3cret@db:5432/nexus?sslmode=require"),
            "postgres://nexus@db:5432/nexus?sslmode=require"
        );
        assert_eq!(
            origin("https://user:pw@gws.example.com:8443/auth/v3"),
            "https://gws.example.com:8443"
        );
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
    }
}
