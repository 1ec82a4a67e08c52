//! One shared token per credential, reused until it nears expiry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::secret::SecretString;
use crate::upstream::error::Result;
use crate::upstream::gws_auth::{Grant, GwsAuthApi, Token};

/// A token is renewed when less than this share of its lifetime, or a minute, is left.
const RENEW_MARGIN: Duration = Duration::from_secs(60);

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
        let cached = self
            .inner
            .lock()
            .expect("token cache lock")
            .get(&key)
            .cloned();
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
        let lifetime = Duration::from_secs(token.expires_in);
        let margin = RENEW_MARGIN.min(lifetime / 10);
        let entry = Cached {
            renew_at: Instant::now() + lifetime.saturating_sub(margin),
            token: token.clone(),
        };
        self.inner
            .lock()
            .expect("token cache lock")
            .insert(key, entry);
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
        let mut tokens = self.inner.lock().expect("token cache lock");
        if tokens
            .get(&key)
            .is_some_and(|c| &c.token.access_token == rejected)
        {
            tokens.remove(&key);
        }
    }

    /// Forgets every token of a client (after its secret changed, or a 401).
    pub fn invalidate(&self, auth_url: &str, client_id: &str) {
        self.inner
            .lock()
            .expect("token cache lock")
            .retain(|k, _| !(k.auth_url == auth_url && k.client_id == client_id));
    }
}
