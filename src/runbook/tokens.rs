//! One shared token per credential, reused until it nears expiry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::secret::SecretString;
use crate::upstream::error::Result;
use crate::upstream::gws_auth::{Grant, GwsAuthApi, Token};

/// A token is renewed when less than a tenth of its lifetime, or a minute, is left.
const RENEW_MARGIN: Duration = Duration::from_secs(60);

/// The longest lifetime a token is trusted for, whatever `expires_in` says: a day. GWS
/// issues 12 h tokens by default; a longer `expires_in` (up to `u64::MAX` from a broken or
/// hostile server) costs no more than one token request a day, and keeps the `Instant`
/// arithmetic of [`reuse_for`] far from overflow.
const MAX_TRUSTED_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long a token that lives `expires_in` seconds is reused: its lifetime (at most
/// [`MAX_TRUSTED_LIFETIME`]) less the renewal margin. Any value gives an answer.
fn reuse_for(expires_in: u64) -> Duration {
    let lifetime = Duration::from_secs(expires_in).min(MAX_TRUSTED_LIFETIME);
    let margin = RENEW_MARGIN.min(lifetime / 10);
    lifetime.saturating_sub(margin)
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    auth_url: String,
    client_id: String,
    username: Option<String>,
    /// Which password or secret the token came from, so a rotated credential gets a new
    /// token. A hash is enough: it is kept in memory only.
    credential_digest: u64,
}

impl Key {
    fn new(auth_url: &str, client_id: &str, client_secret: &SecretString, grant: &Grant) -> Key {
        let (username, password) = match grant {
            Grant::Password { username, password } => (Some(username.clone()), password.expose()),
            _ => (None, ""),
        };
        Key {
            auth_url: auth_url.to_string(),
            client_id: client_id.to_string(),
            username,
            credential_digest: digest(&[client_secret.expose(), password]),
        }
    }
}

#[derive(Clone)]
struct Cached {
    token: Token,
    renew_at: Instant,
}

/// Tokens by (auth URL, client, user). Cheap to clone; clones share the cache.
#[derive(Clone, Default)]
pub struct TokenCache {
    inner: Arc<Mutex<HashMap<Key, Cached>>>,
}

fn digest(parts: &[&str]) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

impl TokenCache {
    /// The map, even when a pass panicked while holding it: every change is a single
    /// insert or removal, so a poisoned map is still whole, and refusing it would make
    /// every later pass panic too.
    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Cached>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A token for the grant: the cached one while it is fresh, else a new one (a refresh
    /// grant first when a refresh token is at hand). Returns whether it was reused.
    pub async fn get(
        &self,
        auth: &dyn GwsAuthApi,
        auth_url: &str,
        client_id: &str,
        client_secret: &SecretString,
        grant: &Grant,
    ) -> Result<(SecretString, bool)> {
        let key = Key::new(auth_url, client_id, client_secret, grant);
        let cached = self.tokens().get(&key).cloned();
        if let Some(c) = &cached
            && Instant::now() < c.renew_at
        {
            return Ok((c.token.access_token.clone(), true));
        }
        let refreshed = match cached.and_then(|c| c.token.refresh_token) {
            Some(refresh) => auth
                .token(client_id, client_secret, &Grant::RefreshToken(refresh))
                .await
                .ok(),
            None => None,
        };
        let token = match refreshed {
            Some(t) => t,
            None => auth.token(client_id, client_secret, grant).await?,
        };
        // An `Instant` that cannot hold the time (never, within a day) renews at once.
        let now = Instant::now();
        let entry = Cached {
            renew_at: now.checked_add(reuse_for(token.expires_in)).unwrap_or(now),
            token: token.clone(),
        };
        self.tokens().insert(key, entry);
        Ok((token.access_token, false))
    }

    /// Forgets the grant's token if it is still `rejected` (one fetched meanwhile stays): a
    /// 401 to it means GWS Auth no longer knows it (restarted, revoked).
    pub fn forget(
        &self,
        auth_url: &str,
        client_id: &str,
        client_secret: &SecretString,
        grant: &Grant,
        rejected: &SecretString,
    ) {
        let key = Key::new(auth_url, client_id, client_secret, grant);
        let mut tokens = self.tokens();
        if tokens
            .get(&key)
            .is_some_and(|c| &c.token.access_token == rejected)
        {
            tokens.remove(&key);
        }
    }

    /// Forgets every token of a client (after its secret changed, or a 401).
    pub fn invalidate(&self, auth_url: &str, client_id: &str) {
        self.tokens()
            .retain(|k, _| !(k.auth_url == auth_url && k.client_id == client_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Credentials;
    use crate::upstream::gws_auth::{ClientRegistration, OAuthClient};
    use async_trait::async_trait;
    use serde_json::Value;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// GWS Auth that hands out one token with this `expires_in`, and counts the grants.
    struct Issuer {
        expires_in: u64,
        issued: AtomicU32,
    }

    impl Issuer {
        fn new(expires_in: u64) -> Self {
            Self {
                expires_in,
                issued: AtomicU32::new(0),
            }
        }
    }

    #[async_trait]
    impl GwsAuthApi for Issuer {
        async fn list_clients(&self, _: &Credentials) -> Result<Vec<OAuthClient>> {
            unreachable!("the token cache only asks for tokens")
        }
        async fn get_client(&self, _: &Credentials, _: &str) -> Result<Option<OAuthClient>> {
            unreachable!("the token cache only asks for tokens")
        }
        async fn create_client(
            &self,
            _: &Credentials,
            _: &ClientRegistration,
        ) -> Result<OAuthClient> {
            unreachable!("the token cache only asks for tokens")
        }
        async fn update_client(&self, _: &Credentials, _: &str, _: &Value) -> Result<()> {
            unreachable!("the token cache only asks for tokens")
        }
        async fn delete_client(&self, _: &Credentials, _: &str) -> Result<bool> {
            unreachable!("the token cache only asks for tokens")
        }
        async fn token(&self, _: &str, _: &SecretString, _: &Grant) -> Result<Token> {
            let n = self.issued.fetch_add(1, Ordering::SeqCst);
            Ok(Token {
                access_token: SecretString::new(format!("token-{n}")),
                refresh_token: None,
                expires_in: self.expires_in,
            })
        }
    }

    #[test]
    fn the_reuse_time_is_the_lifetime_less_the_margin_within_a_day() {
        let day = MAX_TRUSTED_LIFETIME;
        for (expires_in, reuse) in [
            (0, Duration::ZERO),
            (1, Duration::from_millis(900)),
            (300, Duration::from_secs(270)),
            (600, Duration::from_secs(540)),
            (43_200, Duration::from_secs(43_140)),
            (86_400, day - RENEW_MARGIN),
            (86_401, day - RENEW_MARGIN),
            (i64::MAX as u64, day - RENEW_MARGIN),
            (u64::MAX, day - RENEW_MARGIN),
        ] {
            assert_eq!(reuse_for(expires_in), reuse, "expires_in {expires_in}");
        }
    }

    /// A pass that panicked while holding the cache's lock must not make every later pass
    /// panic on the poisoned lock: the map is whole (every change is one call), so it is used.
    #[tokio::test]
    async fn a_poisoned_cache_still_serves() {
        let cache = TokenCache::default();
        let auth = Issuer::new(43_200);
        let (first, _) = fetch(&cache, &auth).await;
        let inner = cache.inner.clone();
        let _ = std::thread::spawn(move || {
            let _guard = inner.lock();
            panic!("a pass panics while it holds the token cache");
        })
        .join();
        assert!(cache.inner.is_poisoned());
        assert_eq!(fetch(&cache, &auth).await, (first.clone(), true));
        let secret = SecretString::new("client-secret");
        let grant = Grant::ClientCredentials;
        cache.forget("http://auth", "nexus_client", &secret, &grant, &first);
        assert!(!fetch(&cache, &auth).await.1, "forgotten, so a new one");
        cache.invalidate("http://auth", "nexus_client");
        assert!(!fetch(&cache, &auth).await.1, "invalidated, so a new one");
    }

    async fn fetch(cache: &TokenCache, auth: &Issuer) -> (SecretString, bool) {
        let secret = SecretString::new("client-secret");
        cache
            .get(
                auth,
                "http://auth",
                "nexus_client",
                &secret,
                &Grant::ClientCredentials,
            )
            .await
            .expect("the fake never fails")
    }

    /// A hostile `expires_in` must not panic on `Instant` arithmetic: the token is used,
    /// and reused as long as the ceiling allows. Zero (or no `expires_in`) is never reused.
    #[tokio::test]
    async fn any_expires_in_gives_a_token_without_panicking() {
        for (expires_in, reused) in [
            (u64::MAX, true),
            (i64::MAX as u64, true),
            (u64::MAX / 1_000_000_000, true),
            (43_199, true),
            (1, true),
            (0, false),
        ] {
            let cache = TokenCache::default();
            let auth = Issuer::new(expires_in);
            let (first, was_reused) = fetch(&cache, &auth).await;
            assert!(!was_reused, "{expires_in}: the first token is new");
            let (second, was_reused) = fetch(&cache, &auth).await;
            assert_eq!(was_reused, reused, "{expires_in}");
            assert_eq!(first == second, reused, "{expires_in}");
        }
    }
}
