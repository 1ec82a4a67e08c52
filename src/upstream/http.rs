//! The HTTP layer shared by the Genesys clients: timeouts, a custom CA bundle, answers read
//! with a size limit, JSON envelopes, error classification, retries with jittered
//! exponential backoff, and metrics.
//!
//! Every answer body is read here, chunk by chunk, and never past
//! [`HttpConfig::max_body_bytes`]: a 50 MiB or endless answer costs at most the limit plus
//! one chunk, and ends as an `InvalidAnswer`; a slow endless one ends at the request timeout
//! (which covers the body) as a `Transient` timeout. The clients only ever see the bytes.

use std::time::{Duration, Instant, SystemTime};

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ErrorKind, Result, System, UpstreamError};
use super::json::{Obj, ProbeError, parse_error, probe};
use crate::fence::{FenceAfterConnectLayer, LeaderFence};
use crate::secret::SecretString;
use crate::telemetry::metrics;

/// Installs ring as the process's TLS crypto provider: reqwest is built without one, and
/// kube and sqlx use ring too. Calling it again does nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How many times a transient failure is tried, and how long to wait in between.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured inside one call; a longer one ends the call and is
    /// passed up so the caller can requeue.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries: for callers that do their own (the controllers requeue with backoff).
    pub fn none() -> Self {
        Self {
            attempts: 1,
            ..Self::default()
        }
    }

    /// The wait before attempt `attempt + 1`: exponential, capped, with full jitter
    /// in the upper half so that many clients do not retry in step.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt));
        let capped = exp.min(self.max_backoff);
        let jitter: f64 = rand::random_range(0.5..=1.0);
        capped.mul_f64(jitter)
    }
}

/// Default of [`HttpConfig::max_body_bytes`]: 1 MiB.
///
/// The largest answer the runbook reads is the contact-center list, about 150 bytes per
/// contact center: 1 MiB holds some 7,000, far more than a private edition serves. Decoded,
/// a body within this limit costs at most about 25 MiB (measured by
/// `tests/hostile_answers.rs`, with [`max_json_containers`] capping the objects and
/// arrays), well inside the pod's memory limit (256 MiB by default).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// How many objects and arrays a 2xx answer may hold: one per 32 bytes of the body limit
/// (32,768 for 1 MiB), at least 64. Decoding costs per object or array, not per byte (a
/// 7-byte `{"a":0}` becomes a map node of some 650 bytes), so this is what bounds the cost
/// of a body within the limit. A contact-center list needs about 2 per 150 bytes.
pub fn max_json_containers(max_body_bytes: usize) -> usize {
    (max_body_bytes / 32).max(64)
}

/// How much of an error answer (non-2xx) is read for its message: 64 KiB, or
/// [`HttpConfig::max_body_bytes`] if smaller. Its status decides its kind, so a longer one
/// is dropped unread and the error says the status's reason phrase.
pub const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// Settings every HTTP client shares.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Of a whole request, the answer's body included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// PEM bundle trusted in addition to the system roots.
    pub ca_bundle_pem: Option<Vec<u8>>,
    pub retry: RetryPolicy,
    /// Largest answer body read, in bytes (default [`DEFAULT_MAX_BODY_BYTES`], 1 MiB). A
    /// 2xx answer that is longer, or announces it will be, is an `InvalidAnswer` ("the
    /// answer was larger than N bytes"); it is never read further.
    pub max_body_bytes: usize,
    /// Checked right before every attempt leaves, and again once a new connection is made:
    /// a closed fence sends nothing (see [`crate::fence`]). Open by default.
    pub fence: LeaderFence,
    /// Sent as [`INSTANCE_HEADER`] on every request, so an upstream (the simulator) can
    /// tell which process sent what.
    pub instance: Option<String>,
}

/// The header that names the sending process, when [`HttpConfig::instance`] is set.
pub const INSTANCE_HEADER: &str = "x-dc-operator-instance";

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            ca_bundle_pem: None,
            retry: RetryPolicy::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            fence: LeaderFence::unelected(),
            instance: None,
        }
    }
}

/// A reqwest client plus the policy around it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    retry: RetryPolicy,
    max_body_bytes: usize,
    fence: LeaderFence,
    instance: Option<reqwest::header::HeaderValue>,
}

/// A successful (2xx) answer, its body read in full and within the limit.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// A request to send: rebuilt for every attempt because a `RequestBuilder` is consumed.
pub struct Call<'a> {
    pub system: System,
    pub operation: &'static str,
    pub method: Method,
    pub url: String,
    pub build: Box<dyn Fn(RequestBuilder) -> RequestBuilder + Send + Sync + 'a>,
    /// The secrets this request carries: an upstream that echoes one in its error message
    /// must not carry it into a condition or a log.
    pub sensitive: Vec<SecretString>,
    /// A create that must not be sent twice: retried only when it certainly never reached the
    /// upstream (connection refused, 429, 503). After a timeout or another 5xx its effect is
    /// unknown, so
    /// the error goes back to the caller, which looks (a GET) before it creates again.
    pub at_most_once: bool,
}

impl<'a> Call<'a> {
    /// See [`Call::at_most_once`](Self::at_most_once).
    pub fn at_most_once(mut self) -> Self {
        self.at_most_once = true;
        self
    }

    /// Names the secrets to scrub from error messages.
    pub fn hiding(mut self, secrets: &[&SecretString]) -> Self {
        self.sensitive.extend(secrets.iter().map(|s| (*s).clone()));
        self
    }

    fn scrub(&self, mut text: String) -> String {
        for secret in &self.sensitive {
            if secret.expose().len() >= 4 {
                text = text.replace(secret.expose(), "<redacted>");
            }
        }
        text
    }
}

impl HttpClient {
    pub fn new(config: &HttpConfig) -> std::result::Result<Self, String> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("dc-operator/", env!("CARGO_PKG_VERSION")))
            // The Genesys calls never need one; a followed 307/308 would send the body (a
            // password, a client secret) again to whatever host it names, past the fence.
            .redirect(reqwest::redirect::Policy::none())
            .connector_layer(FenceAfterConnectLayer::new(config.fence.clone()));
        if let Some(pem) = &config.ca_bundle_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("the CA bundle is not valid PEM: {e}"))?;
            if certs.is_empty() {
                return Err("the CA bundle holds no certificate".to_string());
            }
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder.build().map_err(|e| match &config.ca_bundle_pem {
            Some(_) => format!("the CA bundle is not usable: {e}"),
            None => format!("cannot build the HTTP client: {e}"),
        })?;
        let instance =
            match &config.instance {
                Some(name) => Some(reqwest::header::HeaderValue::from_str(name).map_err(|_| {
                    format!("the instance name {name:?} is not a valid header value")
                })?),
                None => None,
            };
        Ok(Self {
            client,
            retry: config.retry.clone(),
            max_body_bytes: config.max_body_bytes,
            fence: config.fence.clone(),
            instance,
        })
    }

    /// Sends the call, retrying transient failures, and returns the successful answer with
    /// its body. A body that breaks off or times out is a transient failure of the attempt
    /// (retried like any other); one over the limit is an `InvalidAnswer`.
    pub async fn send(&self, call: &Call<'_>) -> Result<Answer> {
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let request = (call.build)(self.request(call));
            // Right before it leaves, every attempt: a replica that lost its Lease (or was
            // frozen past it) sends nothing, and the error is never retried.
            if !self.fence.is_open() {
                return Err(UpstreamError::fenced(call.system, call.operation));
            }
            let outcome = match request.send().await {
                Ok(response) if response.status().is_success() => {
                    self.read_answer(call, response).await
                }
                Ok(response) => Err(self.error_from_response(call, response).await),
                // The connector dropped a connection made after the fence closed.
                Err(e) if refused_by_fence(&e) => {
                    return Err(UpstreamError::fenced(call.system, call.operation));
                }
                Err(e) => Err(error_from_transport(call, &e)),
            };
            let code = match &outcome {
                Ok(answer) => answer.status.to_string(),
                Err(e) => e.metric_code(),
            };
            metrics().record_external(
                call.system.as_str(),
                call.operation,
                &code,
                started.elapsed().as_secs_f64(),
            );
            match outcome {
                Ok(response) => return Ok(response),
                Err(error)
                    if error.is_transient()
                        && attempt + 1 < self.retry.attempts
                        && (!call.at_most_once || never_reached(&error)) =>
                {
                    let wait = match error.retry_after {
                        Some(after) if after > self.retry.max_retry_after => return Err(error),
                        Some(after) => after,
                        None => self.retry.backoff(attempt),
                    };
                    tracing::debug!(
                        system = %call.system,
                        operation = call.operation,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "transient failure, retrying: {}",
                        error.detail
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// A new request for `call`, naming this process when configured to.
    fn request(&self, call: &Call<'_>) -> RequestBuilder {
        let request = self.client.request(call.method.clone(), &call.url);
        match &self.instance {
            Some(name) => request.header(INSTANCE_HEADER, name.clone()),
            None => request,
        }
    }

    /// Sends the call and decodes the JSON answer.
    pub async fn send_json<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<T> {
        let answer = self.send(call).await?;
        self.decode_json(call, &answer)
    }

    /// Sends the call; a 404 is `None` rather than an error.
    pub async fn send_optional<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<Option<T>> {
        match self.send(call).await {
            Ok(answer) => self.decode_json(call, &answer).map(Some),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends a call whose answer carries nothing we need (a write, a delete): it succeeds
    /// when the answer is empty, or JSON that is not a failure envelope. Anything else in a
    /// 2xx (an HTML page, say, as a proxy's login page comes) is an `InvalidAnswer`.
    pub async fn send_unit(&self, call: &Call<'_>) -> Result<()> {
        let answer = self.send(call).await?;
        if answer
            .body
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            return Ok(());
        }
        self.check_envelope(call, &answer)
    }

    /// The answer must be JSON (of any shape, and not too many objects and arrays), and
    /// not a failure envelope: GWS and Nexus signal failure in a 2xx too, with
    /// `status.code` a number other than 0.
    fn check_envelope(&self, call: &Call<'_>, answer: &Answer) -> Result<()> {
        let max = max_json_containers(self.max_body_bytes);
        match probe(&answer.body, max) {
            Ok(None) => Ok(()),
            Err(ProbeError::NotJson(e)) => Err(invalid_answer(
                call,
                format!("answer is not JSON: {}", parse_error(&e)),
            )),
            Err(ProbeError::TooManyContainers) => Err(invalid_answer(
                call,
                format!("the answer holds more than {max} objects and arrays"),
            )),
            Ok(Some(code)) => {
                // Rare, so the value tree is only built here, for the message.
                let message = serde_json::from_slice::<Value>(&answer.body)
                    .ok()
                    .as_ref()
                    .and_then(envelope_message)
                    .unwrap_or_default();
                Err(UpstreamError::new(
                    call.system,
                    call.operation,
                    ErrorKind::Rejected,
                    format!("status code {code}: {}", call.scrub(message)),
                ))
            }
        }
    }

    /// Decodes a 2xx answer straight into `T` (no value tree in between), which must be an
    /// object. Parser messages name what was wrong and where, never a string of the answer.
    fn decode_json<T: DeserializeOwned>(&self, call: &Call<'_>, answer: &Answer) -> Result<T> {
        self.check_envelope(call, answer)?;
        serde_json::from_slice::<Obj<T>>(&answer.body)
            .map(|o| o.0)
            .map_err(|e| {
                invalid_answer(
                    call,
                    format!("unexpected answer shape: {}", parse_error(&e)),
                )
            })
    }

    /// Reads a 2xx body, at most `max_body_bytes` of it.
    async fn read_answer(&self, call: &Call<'_>, mut response: Response) -> Result<Answer> {
        let status = response.status().as_u16();
        match read_limited(&mut response, self.max_body_bytes).await {
            Ok(body) => Ok(Answer { status, body }),
            Err(BodyError::TooLarge) => Err(UpstreamError::new(
                call.system,
                call.operation,
                ErrorKind::InvalidAnswer,
                format!(
                    "HTTP {status}: the answer was larger than {} bytes",
                    self.max_body_bytes
                ),
            )
            .with_status(status)),
            Err(BodyError::Transport(e)) => Err(error_from_transport(call, &e)),
        }
    }

    async fn error_from_response(&self, call: &Call<'_>, mut response: Response) -> UpstreamError {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        // Only for its message: a body that is too long, breaks off or times out leaves the
        // reason phrase, and the status alone decides.
        let cap = self.max_body_bytes.min(MAX_ERROR_BODY_BYTES);
        let body = read_limited(&mut response, cap).await.ok();
        drop(response);
        let parsed = body
            .as_deref()
            .and_then(|b| serde_json::from_slice::<Value>(b).ok());
        let message = parsed
            .as_ref()
            .and_then(envelope_message)
            .unwrap_or_else(|| reason_phrase(status));
        let mut kind = UpstreamError::kind_for_status(status.as_u16());
        // RFC 6749 sends refused credentials as a 400 with these codes: they are not a
        // malformed request but wrong credentials. A 404, 409, 429 or 5xx keeps its kind.
        let oauth_refusal = parsed
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(Value::as_str)
            .is_some_and(|e| {
                matches!(
                    e,
                    "invalid_grant" | "invalid_client" | "unauthorized_client"
                )
            });
        if oauth_refusal && kind == ErrorKind::Rejected {
            kind = ErrorKind::Unauthorized;
        }
        let mut error = UpstreamError::new(
            call.system,
            call.operation,
            kind,
            format!("HTTP {}: {}", status.as_u16(), call.scrub(message)),
        )
        .with_status(status.as_u16());
        error.retry_after = retry_after;
        error
    }
}

/// The longest wait a `Retry-After` is read as: a day. Longer is a broken header or a
/// skewed clock, and an unbounded `Duration` (up to `u64::MAX` seconds) would overflow
/// whatever `Instant` a caller adds it to. The callers cut further: one call waits at most
/// [`RetryPolicy::max_retry_after`], a controller at most its own ceiling.
pub const RETRY_AFTER_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// The wait a `Retry-After` value asks for (RFC 9110 §10.2.3), at `now`: delay-seconds, or an
/// HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms a recipient must accept)
/// less `now`, a date already past being no wait at all. Any wait is at most
/// [`RETRY_AFTER_LIMIT`], too many seconds to count included. Anything else is ignored
/// (`None`): the client's own backoff applies.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(value.parse().unwrap_or(u64::MAX))
    } else {
        let date = httpdate::parse_http_date(value).ok()?;
        date.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(RETRY_AFTER_LIMIT))
}

enum BodyError {
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads the body chunk by chunk and gives up as soon as it would pass `limit`, or at once
/// when the announced length does: memory stays within the limit plus one chunk.
async fn read_limited(
    response: &mut Response,
    limit: usize,
) -> std::result::Result<Vec<u8>, BodyError> {
    let announced = response.content_length();
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::with_capacity(announced.map_or(0, |n| n as usize).min(64 << 10));
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if chunk.len() > limit - body.len() {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn invalid_answer(call: &Call<'_>, detail: String) -> UpstreamError {
    UpstreamError::new(
        call.system,
        call.operation,
        ErrorKind::InvalidAnswer,
        detail,
    )
}

/// Whether the connection was dropped by the fence's connector layer, before anything was
/// written on it (see [`FenceAfterConnectLayer`]).
fn refused_by_fence(error: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.is::<crate::fence::Fenced>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Whether a failed request certainly had no effect upstream: the connection was never
/// made, or the upstream said it did not handle the request (429 Too Many Requests, 503
/// Service Unavailable). A 500, 502 or 504, a timeout or a reset leave it unknown.
fn never_reached(error: &UpstreamError) -> bool {
    match error.status {
        Some(status) => status == 429 || status == 503,
        None => error.detail.starts_with(CONNECT_FAILED),
    }
}

/// How a refused or unroutable connection is worded (see [`never_reached`]).
const CONNECT_FAILED: &str = "cannot connect to";

fn error_from_transport(call: &Call<'_>, error: &reqwest::Error) -> UpstreamError {
    let what = if error.is_timeout() {
        super::error::TIMED_OUT.to_string()
    } else if error.is_connect() {
        format!("{CONNECT_FAILED} {}", host_of(&call.url))
    } else {
        format!("request failed: {}", without_url(error))
    };
    UpstreamError::new(call.system, call.operation, ErrorKind::Transient, what)
}

/// The human message of a GWS/Nexus envelope or an RFC 6749 error body.
fn envelope_message(value: &Value) -> Option<String> {
    let text = |p: &str| value.pointer(p).and_then(Value::as_str).map(str::to_string);
    text("/status/message")
        .or_else(|| text("/errors/0/status/message"))
        .or_else(|| match (text("/error"), text("/error_description")) {
            (Some(e), Some(d)) => Some(format!("{e}: {d}")),
            (Some(e), None) => Some(e),
            (None, d) => d,
        })
        .or_else(|| text("/message"))
}

fn reason_phrase(status: StatusCode) -> String {
    status
        .canonical_reason()
        .unwrap_or("no message")
        .to_string()
}

/// Scheme, host and port only: a URL could carry credentials in its user-info part.
fn host_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "the configured URL".to_string(),
    }
}

fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), &host_of(url.as_str()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(5),
        };
        for attempt in 0..10 {
            let wait = policy.backoff(attempt);
            let ceiling =
                Duration::from_millis(100 * 2u64.pow(attempt)).min(Duration::from_secs(1));
            assert!(wait <= ceiling, "attempt {attempt}: {wait:?} > {ceiling:?}");
            assert!(
                wait >= ceiling / 2,
                "attempt {attempt}: {wait:?} < half of {ceiling:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_read_in_both_forms() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let at = |v: &str| parse_retry_after(v, now);
        assert_eq!(at("120"), Some(Duration::from_secs(120)));
        assert_eq!(at(" 0 "), Some(Duration::ZERO));
        // Past the limit, in either form, is the limit: any caller may add it to an Instant.
        for huge in [
            "86401",
            "9223372036854775807",
            "18446744073709551615",
            "99999999999999999999999",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            let wait = at(huge);
            assert_eq!(wait, Some(RETRY_AFTER_LIMIT), "{huge:?}");
            assert!(
                std::time::Instant::now()
                    .checked_add(wait.unwrap())
                    .is_some()
            );
        }
        assert_eq!(at("86400"), Some(RETRY_AFTER_LIMIT));
        // IMF-fixdate, and the obsolete RFC 850 and asctime forms.
        assert_eq!(
            at("Sun, 06 Nov 1994 08:51:37 GMT"),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            at("Sunday, 06-Nov-94 08:50:37 GMT"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            at("Sun Nov  6 08:49:47 1994"),
            Some(Duration::from_secs(10))
        );
        // A date gone by: retry now.
        assert_eq!(at("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(at("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
        for bad in [
            "",
            "-1",
            "-9223372036854775808",
            "1.5",
            "1e400",
            "soon",
            "Sun, 06 Nov 1994 25:00:00 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
        ] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn envelope_and_oauth_messages_are_read() {
        let gws = serde_json::json!({"status": {"code": 3, "message": "Client already exists"}});
        assert_eq!(
            envelope_message(&gws).as_deref(),
            Some("Client already exists")
        );
        let oauth =
            serde_json::json!({"error": "invalid_grant", "error_description": "Bad credentials"});
        assert_eq!(
            envelope_message(&oauth).as_deref(),
            Some("invalid_grant: Bad credentials")
        );
    }

    #[test]
    fn echoed_secrets_are_scrubbed() {
        let call = Call {
            system: System::Nexus,
            operation: "create_tenant",
            method: Method::POST,
            url: "http://x".into(),
            build: Box::new(|r| r),
            at_most_once: false,
            sensitive: Vec::new(),
        }
        .hiding(&[&SecretString::new("s3cr3t-pass"), &SecretString::new("ab")]);
        assert_eq!(
            call.scrub("invalid token 's3cr3t-pass' for ab".into()),
            "invalid token '<redacted>' for ab"
        );
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(UpstreamError::kind_for_status(503), ErrorKind::Transient);
        assert_eq!(UpstreamError::kind_for_status(429), ErrorKind::Transient);
        assert_eq!(UpstreamError::kind_for_status(401), ErrorKind::Unauthorized);
        assert_eq!(UpstreamError::kind_for_status(403), ErrorKind::Unauthorized);
        assert_eq!(UpstreamError::kind_for_status(400), ErrorKind::Rejected);
        assert_eq!(UpstreamError::kind_for_status(409), ErrorKind::Conflict);
    }

    #[test]
    fn host_of_drops_user_info_and_path() {
        assert_eq!(
            host_of("https://user:pw@auth.example.com:8443/auth/v3?x=1"),
            "https://auth.example.com:8443"
        );
    }
}
