//! Hostile numbers from upstream: a token answer whose `expires_in` no clock can hold must
//! neither panic nor stop the operator. The operator runs for real (both controllers against
//! the in-memory API server and the simulator); GWS Auth is reached through a proxy that
//! rewrites `expires_in` in every token answer.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use common::operator::Harness;
use digital_channels_operator::api::conditions::ConditionStatus;
use digital_channels_operator::upstream::http::install_crypto_provider;

/// A proxy in front of the simulator that puts `expires_in` (raw JSON text) into every
/// successful token answer, and counts how many it rewrote.
struct TokenRewriter {
    url: String,
    shared: Arc<Proxy>,
    task: tokio::task::JoinHandle<()>,
}

struct Proxy {
    upstream: String,
    client: reqwest::Client,
    expires_in: Mutex<String>,
    rewritten: AtomicUsize,
}

impl TokenRewriter {
    async fn start(upstream: &str, expires_in: &str) -> Self {
        install_crypto_provider();
        let shared = Arc::new(Proxy {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            expires_in: Mutex::new(expires_in.to_string()),
            rewritten: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, shared, task }
    }

    fn set(&self, expires_in: &str) {
        *self.shared.expires_in.lock().unwrap() = expires_in.to_string();
    }

    fn rewritten(&self) -> usize {
        self.shared.rewritten.load(Ordering::SeqCst)
    }
}

impl Drop for TokenRewriter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    State(proxy): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = proxy
        .client
        .request(method, format!("{}{path}", proxy.upstream))
        .body(body);
    for (name, value) in headers.iter().filter(|(n, _)| *n != header::HOST) {
        request = request.header(name, value);
    }
    let Ok(answer) = request.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let mut bytes = answer.bytes().await.unwrap_or_default().to_vec();
    if uri.path().ends_with("/oauth/token") && status.is_success() {
        let value = proxy.expires_in.lock().unwrap().clone();
        if let Some(rewritten) = with_expires_in(&bytes, &value) {
            bytes = rewritten;
            proxy.rewritten.fetch_add(1, Ordering::SeqCst);
        }
    }
    let mut response = (status, bytes).into_response();
    if let Some(ct) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    response
}

/// The answer with the number after `"expires_in":` replaced by `value`, verbatim: a number
/// no JSON library would write (one past `u64::MAX`, say) reaches the client as such.
fn with_expires_in(body: &[u8], value: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let field = "\"expires_in\":";
    let start = text.find(field)? + field.len();
    let len = text[start..]
        .find(|c: char| !(c.is_ascii_digit() || c == '-' || c == '.' || c == 'e'))
        .unwrap_or(text.len() - start);
    Some(format!("{}{value}{}", &text[..start], &text[start + len..]).into_bytes())
}

async fn start_behind_proxy(expires_in: &str) -> (Harness, TokenRewriter) {
    let h = Harness::start().await;
    let proxy = TokenRewriter::start(&h.sim.url(), expires_in).await;
    let sim_url = h.sim.url();
    h.env(|e| {
        e.spec.auth_url = proxy.url.clone();
        e.spec.environment_url = Some(sim_url);
    });
    h.tenant(|_| {});
    (h, proxy)
}

#[test]
fn the_proxy_puts_the_value_verbatim() {
    let body = br#"{"access_token":"a","expires_in":43199,"scope":"*"}"#;
    assert_eq!(
        with_expires_in(body, "18446744073709551616").unwrap(),
        br#"{"access_token":"a","expires_in":18446744073709551616,"scope":"*"}"#
    );
}

/// Issue 15, defect 5: `expires_in` 18446744073709551615 or 9223372036854775807 panicked on
/// `Instant` overflow and crash-looped the operator. Such a token is valid: both resources
/// become Ready with it, and the operator keeps running.
#[tokio::test]
async fn a_token_that_never_expires_is_used_without_a_panic() {
    for hostile in ["18446744073709551615", "9223372036854775807"] {
        let (h, proxy) = start_behind_proxy(hostile).await;
        h.both_ready().await;
        assert!(
            proxy.rewritten() >= 2,
            "{hostile}: both grants went through the proxy"
        );
        assert!(
            !h.task.is_finished(),
            "{hostile}: the controllers still run"
        );
        h.stop().await;
    }
}

/// An `expires_in` that is no lifetime at all (past `u64::MAX`, negative) makes the token
/// answer invalid: the step fails cleanly with `InvalidAnswer`, and once GWS answers sanely
/// the environment and tenant become Ready on their own.
#[tokio::test]
async fn an_expires_in_that_is_no_lifetime_fails_the_step_cleanly() {
    for hostile in ["18446744073709551616", "-1"] {
        let (h, proxy) = start_behind_proxy(hostile).await;
        let env = h
            .env_condition("Ready", ConditionStatus::False, Some("InvalidAnswer"))
            .await;
        let text = serde_json::to_string(&env.status).unwrap();
        assert!(
            text.contains("token_client_credentials failed: unexpected answer shape"),
            "{hostile}: {text}"
        );
        assert!(
            !h.task.is_finished(),
            "{hostile}: the controllers still run"
        );
        proxy.set("3600");
        h.both_ready().await;
        h.stop().await;
    }
}
