//! Hostile upstream answers: any status with any body, from every client operation of
//! `src/upstream`, ends in a genuinely acceptable result or a classified `UpstreamError`;
//! never a panic, never a secret in the message, and bounded memory.
//!
//! The upstream is a raw HTTP/1.1 server on loopback that answers whatever the test tells it,
//! framing included (Content-Length, chunked, close-delimited, a Content-Length the connection
//! never delivers, endless streams). The property tests hold an oracle written from the API
//! reference (`shared/reference/genesys-apis.md`), independent of the client code, that says
//! what each (operation, status, body) must give.

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use digital_channels_operator::secret::{Credentials, SecretString};
use digital_channels_operator::upstream::environment::Setting;
use digital_channels_operator::upstream::gws_auth::{ClientRegistration, Grant, OAuthClient};
use digital_channels_operator::upstream::http::{
    DEFAULT_MAX_BODY_BYTES, MAX_ERROR_BODY_BYTES, install_crypto_provider, max_json_containers,
};
use digital_channels_operator::upstream::nexus::TenantRequest;
use digital_channels_operator::upstream::{
    EnvironmentApi, EnvironmentClient, ErrorKind, GwsAuthApi, GwsAuthClient, HttpClient,
    HttpConfig, NexusApi, NexusClient, RetryPolicy, System, UpstreamError,
};
use peak_alloc::PeakAlloc;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------------------
// The loopback upstream.

/// How the body travels.
#[derive(Clone, Debug)]
enum Framing {
    Length,
    Chunked,
    /// No length: the body ends when the server closes the connection.
    Close,
    /// Content-Length promises this many bytes more than are sent; then the server closes.
    Short(usize),
}

#[derive(Clone, Debug)]
enum Body {
    Bytes(Vec<u8>, Framing),
    /// `total` bytes of filler (endless when `None`), written a piece at a time so that
    /// the server never holds the body either. `Framing::Length` needs a total.
    Stream {
        total: Option<u64>,
        framing: Framing,
        piece: usize,
        pause: Option<Duration>,
    },
}

#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Body,
}

impl Reply {
    fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: Body::Bytes(body.into(), Framing::Length),
        }
    }
}

/// An "endless" stream stops here, far past any limit, so that a client without a limit
/// fails its test instead of taking the machine down.
const SAFETY_VALVE: u64 = 256 << 20;

struct Upstream {
    addr: SocketAddr,
    reply: Arc<Mutex<Reply>>,
    /// Body bytes the server managed to write for the last request.
    written: Arc<AtomicU64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reply = Arc::new(Mutex::new(Reply::new(200, "{}")));
        let written = Arc::new(AtomicU64::new(0));
        let accept = tokio::spawn({
            let reply = reply.clone();
            let written = written.clone();
            async move {
                while let Ok((socket, _)) = listener.accept().await {
                    let reply = reply.lock().unwrap().clone();
                    let written = written.clone();
                    tokio::spawn(async move {
                        let _ = answer(socket, reply, &written).await;
                    });
                }
            }
        });
        Self {
            addr,
            reply,
            written,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
        self.written.store(0, Ordering::SeqCst);
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads the whole request (so that closing never resets it), then writes the reply.
async fn answer(mut socket: TcpStream, reply: Reply, written: &AtomicU64) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
        if let Some(pos) = find(&request, b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut have = request.len() - head_end;
    while have < length {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        have += n;
    }

    let mut out = format!(
        "HTTP/1.1 {} Whatever\r\nContent-Type: {}\r\nConnection: close\r\n",
        reply.status, reply.content_type
    );
    // 204 and 304 have no body, whatever the server would like.
    if matches!(reply.status, 204 | 304) {
        out.push_str("\r\n");
        socket.write_all(out.as_bytes()).await?;
        return socket.shutdown().await;
    }
    match reply.body {
        Body::Bytes(data, framing) => {
            match framing {
                Framing::Length => out.push_str(&format!("Content-Length: {}\r\n", data.len())),
                Framing::Short(extra) => {
                    out.push_str(&format!("Content-Length: {}\r\n", data.len() + extra))
                }
                Framing::Chunked => out.push_str("Transfer-Encoding: chunked\r\n"),
                Framing::Close => {}
            }
            out.push_str("\r\n");
            socket.write_all(out.as_bytes()).await?;
            if let Framing::Chunked = framing {
                // In up to three chunks, so that a chunk boundary falls inside the JSON.
                let third = data.len().div_ceil(3).max(1);
                for piece in data.chunks(third) {
                    socket
                        .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                        .await?;
                    socket.write_all(piece).await?;
                    socket.write_all(b"\r\n").await?;
                }
                socket.write_all(b"0\r\n\r\n").await?;
            } else {
                socket.write_all(&data).await?;
            }
            written.fetch_add(data.len() as u64, Ordering::SeqCst);
        }
        Body::Stream {
            total,
            framing,
            piece,
            pause,
        } => {
            match (&framing, total) {
                (Framing::Length, Some(total)) => {
                    out.push_str(&format!("Content-Length: {total}\r\n"))
                }
                (Framing::Chunked, _) => out.push_str("Transfer-Encoding: chunked\r\n"),
                (Framing::Close, _) => {}
                other => panic!("no such stream: {other:?}"),
            }
            out.push_str("\r\n");
            socket.write_all(out.as_bytes()).await?;
            let filler = vec![b'x'; piece];
            let limit = total.unwrap_or(SAFETY_VALVE);
            let mut sent = 0u64;
            while sent < limit {
                let n = (limit - sent).min(piece as u64) as usize;
                if let Framing::Chunked = framing {
                    socket.write_all(format!("{n:x}\r\n").as_bytes()).await?;
                    socket.write_all(&filler[..n]).await?;
                    socket.write_all(b"\r\n").await?;
                } else {
                    socket.write_all(&filler[..n]).await?;
                }
                sent += n as u64;
                written.fetch_add(n as u64, Ordering::SeqCst);
                if let Some(pause) = pause {
                    tokio::time::sleep(pause).await;
                }
            }
            if total.is_some()
                && let Framing::Chunked = framing
            {
                socket.write_all(b"0\r\n\r\n").await?;
            }
        }
    }
    socket.shutdown().await
}

// ---------------------------------------------------------------------------------------
// The operations, with recognisable secrets in every request.

const CC: &str = "578ec98e-f07c-46ad-9675-f36c22f3ba9f";
const OPS_PASSWORD: &str = "REQ-SECRET-ops-password";
const CLIENT_SECRET: &str = "REQ-SECRET-client-secret";
const TENANT_PASSWORD: &str = "REQ-SECRET-tenant-password";
const REFRESH_TOKEN: &str = "REQ-SECRET-refresh-token";
const API_KEY: &str = "REQ-SECRET-api-key";
const BEARER: &str = "REQ-SECRET-bearer";
/// No error message may hold this: every secret in a request or an answer carries it.
const SECRET_MARK: &str = "SECRET";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    ListContactCenters,
    ListSettings,
    UpsertSetting,
    ListClients,
    GetClient,
    CreateClient,
    UpdateClient,
    DeleteClient,
    TokenClientCredentials,
    TokenPassword,
    TokenRefresh,
    RegisterUcs,
    DeleteUcs,
    CreateTenant,
    GetTenant,
    UpdateTenant,
    DeleteTenant,
}

/// What an operation does with a 2xx body.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Shape {
    /// Needs the body: decodes it.
    Decode,
    /// Like `Decode`, and a 404 is `None`.
    Optional,
    /// Needs nothing from the body but that it is not a failure.
    Unit,
    /// Like `Unit`, and a 404 is `false`.
    Delete,
}

impl Op {
    fn system(self) -> System {
        use Op::*;
        match self {
            ListContactCenters | ListSettings | UpsertSetting => System::Environment,
            RegisterUcs | DeleteUcs | CreateTenant | GetTenant | UpdateTenant | DeleteTenant => {
                System::Nexus
            }
            _ => System::GwsAuth,
        }
    }

    fn shape(self) -> Shape {
        use Op::*;
        match self {
            GetClient | GetTenant => Shape::Optional,
            UpsertSetting | UpdateClient | RegisterUcs | UpdateTenant => Shape::Unit,
            DeleteClient | DeleteUcs | DeleteTenant => Shape::Delete,
            _ => Shape::Decode,
        }
    }

    /// The secrets this operation sends, which an upstream might echo.
    fn carried(self) -> &'static [&'static str] {
        use Op::*;
        match self {
            ListContactCenters | ListSettings | UpsertSetting | ListClients | GetClient
            | DeleteClient => &[OPS_PASSWORD],
            CreateClient | UpdateClient => &[OPS_PASSWORD, CLIENT_SECRET],
            TokenClientCredentials => &[CLIENT_SECRET],
            TokenPassword => &[CLIENT_SECRET, TENANT_PASSWORD],
            TokenRefresh => &[CLIENT_SECRET, REFRESH_TOKEN],
            RegisterUcs | DeleteUcs => &[API_KEY],
            CreateTenant | UpdateTenant => &[BEARER, TENANT_PASSWORD],
            GetTenant | DeleteTenant => &[BEARER],
        }
    }
}

/// What came back, in a form the oracle can predict.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Summary {
    Unit,
    Deleted(bool),
    Count(usize),
    Found(Option<String>),
    Created(String),
    Token(String),
    ApiKey(String),
}

struct Clients {
    auth: GwsAuthClient,
    env: EnvironmentClient,
    nexus: NexusClient,
}

fn ops() -> Credentials {
    Credentials {
        username: "ops".into(),
        password: SecretString::new(OPS_PASSWORD),
    }
}

fn registration() -> ClientRegistration {
    ClientRegistration {
        client_id: "nexus_client".into(),
        description: "managed by dc-operator provision".into(),
        secret: SecretString::new(CLIENT_SECRET),
        redirect_uri: "https://nexus.example.com".into(),
        previous_redirect_uri: None,
        access_token_expiration_timeout: 43200,
        refresh_token_expiration_timeout: 2_592_000,
    }
}

fn tenant_request() -> TenantRequest {
    TenantRequest {
        contact_center_id: CC.into(),
        name: "t100".into(),
        type_: "PureEngage".into(),
        backend_url: "https://gws.example.com".into(),
        username: "nexus".into(),
        password: SecretString::new(TENANT_PASSWORD),
        genesys_tenant_id: 1,
    }
}

impl Clients {
    fn new(url: &str, config: &HttpConfig) -> Self {
        install_crypto_provider();
        let http = HttpClient::new(config).unwrap();
        Self {
            auth: GwsAuthClient::new(http.clone(), url),
            env: EnvironmentClient::new(http.clone(), url),
            nexus: NexusClient::new(http, url),
        }
    }

    async fn run(&self, op: Op) -> Result<Summary, UpstreamError> {
        use Op::*;
        use Summary::*;
        let secret = SecretString::new(CLIENT_SECRET);
        let bearer = SecretString::new(BEARER);
        let api_key = SecretString::new(API_KEY);
        match op {
            ListContactCenters => self
                .env
                .list_contact_centers(&ops())
                .await
                .map(|v| Count(v.len())),
            ListSettings => self
                .env
                .list_settings(&ops(), CC)
                .await
                .map(|v| Count(v.len())),
            UpsertSetting => {
                let setting = Setting {
                    name: "chatservice-uri".into(),
                    location: "/".into(),
                    value: "https://nexus.example.com".into(),
                    shared: false,
                };
                self.env
                    .upsert_setting(&ops(), CC, &setting)
                    .await
                    .map(|()| Unit)
            }
            ListClients => self.auth.list_clients(&ops()).await.map(|v| Count(v.len())),
            GetClient => self
                .auth
                .get_client(&ops(), "nexus_client")
                .await
                .map(|c| Found(c.map(|c| c.client_id))),
            CreateClient => self
                .auth
                .create_client(&ops(), &registration())
                .await
                .map(|c| Created(c.client_id)),
            UpdateClient => {
                let body = registration().update_body(&OAuthClient::default(), true);
                self.auth
                    .update_client(&ops(), "nexus_client", &body)
                    .await
                    .map(|()| Unit)
            }
            DeleteClient => self
                .auth
                .delete_client(&ops(), "nexus_client")
                .await
                .map(Deleted),
            TokenClientCredentials | TokenPassword | TokenRefresh => {
                let grant = match op {
                    TokenClientCredentials => Grant::ClientCredentials,
                    TokenPassword => Grant::Password {
                        username: format!("{CC}\\nexus"),
                        password: SecretString::new(TENANT_PASSWORD),
                    },
                    _ => Grant::RefreshToken(SecretString::new(REFRESH_TOKEN)),
                };
                self.auth
                    .token("nexus_client", &secret, &grant)
                    .await
                    .map(|t| Token(t.access_token.expose().to_string()))
            }
            RegisterUcs => self
                .nexus
                .register_ucs(&api_key, CC, "https://ucs.example.com")
                .await
                .map(|()| Unit),
            DeleteUcs => self.nexus.delete_ucs(&api_key, CC).await.map(Deleted),
            CreateTenant => self
                .nexus
                .create_tenant(&bearer, &tenant_request())
                .await
                .map(|t| ApiKey(t.api_key.expose().to_string())),
            GetTenant => self
                .nexus
                .get_tenant(&bearer, CC)
                .await
                .map(|t| Found(t.map(|t| t.id))),
            UpdateTenant => self
                .nexus
                .update_tenant(&bearer, &tenant_request())
                .await
                .map(|()| Unit),
            DeleteTenant => self.nexus.delete_tenant(&bearer, CC).await.map(Deleted),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The oracle: what each answer must give, from the API reference alone.

#[derive(Clone, Debug, PartialEq)]
enum Expected {
    Ok(Summary),
    Err(ErrorKind),
}

/// The status classes of the issue: 5xx/408/425/429 Transient, 401/403 Unauthorized, 404
/// NotFound, 409 Conflict, any other non-2xx Rejected.
fn status_kind(status: u16) -> ErrorKind {
    match status {
        401 | 403 => ErrorKind::Unauthorized,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        408 | 425 | 429 | 500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Rejected,
    }
}

fn expected(op: Op, status: u16, body: &[u8], framing: &Framing, limit: usize) -> Expected {
    let (body, complete) = if matches!(status, 204 | 304) {
        (&[][..], true)
    } else {
        (body, !matches!(framing, Framing::Short(_)))
    };
    if (200..300).contains(&status) {
        if let Framing::Short(extra) = framing
            && !matches!(status, 204)
        {
            // The connection breaks off the answer: a transport failure, unless the
            // announced length alone is over the limit.
            return if body.len() + extra > limit {
                Expected::Err(ErrorKind::InvalidAnswer)
            } else {
                Expected::Err(ErrorKind::Transient)
            };
        }
        if body.len() > limit {
            return Expected::Err(ErrorKind::InvalidAnswer);
        }
        let max_containers = max_json_containers(limit);
        return match op.shape() {
            Shape::Unit => unit_answer(body, max_containers)
                .map_or_else(Expected::Err, |()| Expected::Ok(Summary::Unit)),
            Shape::Delete => unit_answer(body, max_containers)
                .map_or_else(Expected::Err, |()| Expected::Ok(Summary::Deleted(true))),
            Shape::Decode | Shape::Optional => decoded_answer(op, body, max_containers),
        };
    }
    let mut kind = status_kind(status);
    // RFC 6749: refused credentials come as a 400 naming the error.
    let error_cap = limit.min(MAX_ERROR_BODY_BYTES);
    if kind == ErrorKind::Rejected
        && complete
        && body.len() <= error_cap
        && serde_json::from_slice::<Value>(body).is_ok_and(|v| {
            matches!(
                v.get("error").and_then(Value::as_str),
                Some("invalid_grant" | "invalid_client" | "unauthorized_client")
            )
        })
    {
        kind = ErrorKind::Unauthorized;
    }
    match (kind, op.shape()) {
        (ErrorKind::NotFound, Shape::Optional) => Expected::Ok(Summary::Found(None)),
        (ErrorKind::NotFound, Shape::Delete) => Expected::Ok(Summary::Deleted(false)),
        (kind, _) => Expected::Err(kind),
    }
}

/// GWS and Nexus signal failure in the envelope too: `status.code` a number other than 0.
fn failure_envelope(v: &Value) -> bool {
    v.pointer("/status/code")
        .and_then(Value::as_f64)
        .is_some_and(|code| code != 0.0)
}

fn blank(body: &[u8]) -> bool {
    body.iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Objects and arrays in a value, itself included.
fn containers(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(containers).sum::<usize>(),
        Value::Object(o) => 1 + o.values().map(containers).sum::<usize>(),
        _ => 0,
    }
}

/// A write needs nothing from the answer: no body, or JSON that is not a failure envelope.
fn unit_answer(body: &[u8], max_containers: usize) -> Result<(), ErrorKind> {
    if blank(body) {
        return Ok(());
    }
    match serde_json::from_slice::<Value>(body) {
        Err(_) => Err(ErrorKind::InvalidAnswer),
        Ok(v) if containers(&v) > max_containers => Err(ErrorKind::InvalidAnswer),
        Ok(v) if failure_envelope(&v) => Err(ErrorKind::Rejected),
        Ok(_) => Ok(()),
    }
}

/// Decoding costs per object or array: the client caps their number.
fn decoded_answer(op: Op, body: &[u8], max_containers: usize) -> Expected {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Expected::Err(ErrorKind::InvalidAnswer);
    };
    if containers(&v) > max_containers {
        return Expected::Err(ErrorKind::InvalidAnswer);
    }
    if failure_envelope(&v) {
        return Expected::Err(ErrorKind::Rejected);
    }
    match summary_of(op, &v) {
        Some(summary) => Expected::Ok(summary),
        None => Expected::Err(ErrorKind::InvalidAnswer),
    }
}

/// Present and not null.
fn given<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

fn is_opt_str(o: &Map<String, Value>, key: &str) -> bool {
    given(o, key).is_none_or(Value::is_string)
}

fn req_str<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    o.get(key).and_then(Value::as_str)
}

/// A list of strings; absent or null is empty (Jackson writes nulls).
fn is_str_list(o: &Map<String, Value>, key: &str) -> bool {
    given(o, key).is_none_or(|v| v.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
}

/// A list of objects each `ok`; absent or null is empty.
fn obj_list(
    o: &Map<String, Value>,
    key: &str,
    ok: fn(&Map<String, Value>) -> bool,
) -> Option<usize> {
    match given(o, key) {
        None => Some(0),
        Some(v) => {
            let items = v.as_array()?;
            items
                .iter()
                .all(|i| i.as_object().is_some_and(ok))
                .then_some(items.len())
        }
    }
}

fn is_opt_i64(o: &Map<String, Value>, key: &str) -> bool {
    given(o, key).is_none_or(|v| v.as_i64().is_some())
}

fn contact_center_ok(o: &Map<String, Value>) -> bool {
    req_str(o, "id").is_some() && is_opt_str(o, "environmentId") && is_str_list(o, "domains")
}

fn setting_ok(o: &Map<String, Value>) -> bool {
    req_str(o, "name").is_some()
        && is_opt_str(o, "location")
        && given(o, "shared").is_none_or(|v| v.is_boolean() || v.is_string())
}

/// `client_id`, or its spelling `clientId`, not both; null is empty.
fn client_id(o: &Map<String, Value>) -> Option<String> {
    let spellings: Vec<&Value> = ["client_id", "clientId"]
        .iter()
        .filter_map(|k| o.get(*k))
        .collect();
    match spellings.as_slice() {
        [] | [Value::Null] => Some(String::new()),
        [Value::String(s)] => Some(s.clone()),
        _ => None,
    }
}

fn client_ok(o: &Map<String, Value>) -> bool {
    client_id(o).is_some()
        && is_opt_str(o, "name")
        && is_opt_str(o, "clientType")
        && given(o, "internalClient").is_none_or(Value::is_boolean)
        && [
            "authorizedGrantTypes",
            "redirectURIs",
            "authorities",
            "scope",
        ]
        .iter()
        .all(|k| is_str_list(o, k))
        && is_opt_i64(o, "accessTokenExpirationTimeout")
        && is_opt_i64(o, "refreshTokenExpirationTimeout")
}

fn tenant_ok(o: &Map<String, Value>) -> bool {
    req_str(o, "id").is_some()
        && ["name", "type", "backendurl", "username"]
            .iter()
            .all(|k| is_opt_str(o, k))
        && is_opt_i64(o, "genesystemenantid")
}

/// What a 2xx JSON answer gives, or `None` when it is not an acceptable answer.
fn summary_of(op: Op, v: &Value) -> Option<Summary> {
    use Op::*;
    let top = v.as_object()?;
    let data = || top.get("data").and_then(Value::as_object);
    match op {
        ListContactCenters => {
            obj_list(data()?, "contactCenters", contact_center_ok).map(Summary::Count)
        }
        ListSettings => match given(top, "data") {
            None => Some(Summary::Count(0)),
            Some(d) => obj_list(d.as_object()?, "settings", setting_ok).map(Summary::Count),
        },
        ListClients => {
            let items = top.get("data")?.as_array()?;
            items
                .iter()
                .all(|i| i.as_object().is_some_and(client_ok))
                .then_some(Summary::Count(items.len()))
        }
        GetClient | CreateClient => {
            let d = data()?;
            let id = client_ok(d).then(|| client_id(d))??;
            Some(if op == GetClient {
                Summary::Found(Some(id))
            } else {
                Summary::Created(id)
            })
        }
        TokenClientCredentials | TokenPassword | TokenRefresh => {
            let token = req_str(top, "access_token")?;
            (!token.is_empty()
                && is_opt_str(top, "refresh_token")
                && given(top, "expires_in").is_none_or(|v| v.as_u64().is_some()))
            .then(|| Summary::Token(token.to_string()))
        }
        CreateTenant => {
            let d = data()?;
            let key = given(d, "xapikey")?.as_str()?;
            (!key.is_empty() && is_opt_str(top, "operationId"))
                .then(|| Summary::ApiKey(key.to_string()))
        }
        GetTenant => {
            let d = data()?;
            let id = req_str(d, "id")?;
            tenant_ok(d).then(|| Summary::Found(Some(id.to_string())))
        }
        UpsertSetting | UpdateClient | DeleteClient | RegisterUcs | DeleteUcs | UpdateTenant
        | DeleteTenant => unreachable!("{op:?} decodes no answer"),
    }
}

// ---------------------------------------------------------------------------------------
// The generators: valid answers, then everything hostile done to them.

/// The body limit the property tests configure: small, so going past it is cheap.
const PROPERTY_LIMIT: usize = 64 * 1024;
const CASES_PER_OPERATION: u32 = 64;

fn property_config() -> HttpConfig {
    HttpConfig {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            attempts: 2,
            initial_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            max_retry_after: Duration::ZERO,
        },
        max_body_bytes: PROPERTY_LIMIT,
        ..HttpConfig::default()
    }
}

fn word() -> BoxedStrategy<Value> {
    "[a-z0-9-]{1,16}".prop_map(Value::String).boxed()
}

/// A secret handed out in an answer: an error message must never show it.
fn answer_secret() -> BoxedStrategy<Value> {
    "SECRET-[a-z0-9]{8,24}".prop_map(Value::String).boxed()
}

fn words() -> BoxedStrategy<Value> {
    prop::collection::vec("[a-z0-9_*]{1,12}", 0..4)
        .prop_map(|v| json!(v))
        .boxed()
}

/// Any JSON value, small.
fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e300f64..1e300).prop_map(|f| json!(f)),
        "[a-zA-Z0-9 <>&]{0,12}".prop_map(Value::String),
        answer_secret(),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// An optional field: absent, null, or a value.
fn maybe(value: BoxedStrategy<Value>) -> BoxedStrategy<Option<Value>> {
    prop_oneof![2 => Just(None), 1 => Just(Some(Value::Null)), 3 => value.prop_map(Some)].boxed()
}

fn object(fields: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect(),
    )
}

fn contact_center() -> BoxedStrategy<Value> {
    (word(), maybe(word()), maybe(words()), maybe(word()))
        .prop_map(|(id, env, domains, auth)| {
            object(vec![
                ("id", Some(id)),
                ("environmentId", env),
                ("domains", domains),
                ("auth", auth),
            ])
        })
        .boxed()
}

fn setting() -> BoxedStrategy<Value> {
    let shared = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        prop::sample::select(vec!["true", "false", "TRUE", "yes"]).prop_map(|s| json!(s)),
    ]
    .boxed();
    (word(), maybe(word()), maybe(any_json()), maybe(shared))
        .prop_map(|(name, location, value, shared)| {
            object(vec![
                ("name", Some(name)),
                ("location", location),
                ("value", value),
                ("shared", shared),
            ])
        })
        .boxed()
}

fn oauth_client() -> BoxedStrategy<Value> {
    let flag = any::<bool>().prop_map(Value::Bool).boxed();
    let timeout = (0i64..3_000_000).prop_map(|n| json!(n)).boxed();
    (
        (prop::sample::select(vec!["client_id", "clientId"]), word()),
        (maybe(word()), maybe(word()), maybe(flag)),
        (
            maybe(words()),
            maybe(words()),
            maybe(words()),
            maybe(words()),
        ),
        (
            maybe(timeout.clone()),
            maybe(timeout),
            maybe(answer_secret()),
        ),
    )
        .prop_map(
            |((id_key, id), (name, ty, internal), (g, r, a, s), (at, rt, sec))| {
                object(vec![
                    (id_key, Some(id)),
                    ("name", name),
                    ("clientType", ty),
                    ("internalClient", internal),
                    ("authorizedGrantTypes", g),
                    ("redirectURIs", r),
                    ("authorities", a),
                    ("scope", s),
                    ("accessTokenExpirationTimeout", at),
                    ("refreshTokenExpirationTimeout", rt),
                    // The create answer echoes an encrypted secret.
                    ("client_secret", sec),
                ])
            },
        )
        .boxed()
}

/// `{"data": ...}`, sometimes with a success envelope.
fn enveloped(data: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    (data, any::<bool>())
        .prop_map(|(data, status)| {
            if status {
                json!({"status": {"code": 0}, "data": data})
            } else {
                json!({"data": data})
            }
        })
        .boxed()
}

fn valid_answer(op: Op) -> BoxedStrategy<Value> {
    use Op::*;
    let list = |item: BoxedStrategy<Value>| {
        prop::collection::vec(item, 0..4)
            .prop_map(Value::Array)
            .boxed()
    };
    match op {
        ListContactCenters => enveloped(
            maybe(list(contact_center()))
                .prop_map(|cc| object(vec![("contactCenters", cc)]))
                .boxed(),
        ),
        ListSettings => maybe(
            maybe(list(setting()))
                .prop_map(|s| object(vec![("settings", s)]))
                .boxed(),
        )
        .prop_map(|data| object(vec![("data", data)]))
        .boxed(),
        ListClients => enveloped(list(oauth_client())),
        GetClient | CreateClient => enveloped(oauth_client()),
        TokenClientCredentials | TokenPassword | TokenRefresh => (
            answer_secret(),
            maybe(answer_secret()),
            maybe((0u64..100_000).prop_map(|n| json!(n)).boxed()),
            maybe(Just(json!("bearer")).boxed()),
        )
            .prop_map(|(access, refresh, expires, ty)| {
                object(vec![
                    ("access_token", Some(access)),
                    ("refresh_token", refresh),
                    ("expires_in", expires),
                    ("token_type", ty),
                    ("scope", Some(json!("*"))),
                ])
            })
            .boxed(),
        CreateTenant => (
            enveloped(
                answer_secret()
                    .prop_map(|k| json!({ "xapikey": k }))
                    .boxed(),
            ),
            maybe(word()),
        )
            .prop_map(|(mut v, op_id)| {
                if let Some(op_id) = op_id {
                    v["operationId"] = op_id;
                }
                v
            })
            .boxed(),
        GetTenant => enveloped(
            (
                word(),
                maybe(word()),
                maybe(Just(json!("PureEngage")).boxed()),
                maybe(word()),
                maybe((0i64..100).prop_map(|n| json!(n)).boxed()),
            )
                .prop_map(|(id, name, ty, url, gid)| {
                    object(vec![
                        ("id", Some(id)),
                        ("name", name),
                        ("type", ty),
                        ("backendurl", url),
                        ("genesystemenantid", gid),
                    ])
                })
                .boxed(),
        ),
        UpsertSetting | UpdateClient | DeleteClient | RegisterUcs | DeleteUcs | UpdateTenant
        | DeleteTenant => prop_oneof![
            Just(json!({})),
            Just(json!({"status": {"code": 0}})),
            Just(json!({"status": {"code": 0, "message": "ok"}, "path": "/x"})),
            any_json().prop_map(|d| json!({"status": {"code": 0}, "data": d})),
            Just(json!("OK")),
        ]
        .boxed(),
    }
}

/// JSON pointers of every node, the root included.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let key = k.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{key}"), out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// Replaces one node (chosen by `which`, among those `filter` allows) with `new`.
fn replace_node(mut v: Value, which: Index, new: Value, filter: fn(&Value) -> bool) -> Value {
    let mut all = Vec::new();
    pointers(&v, String::new(), &mut all);
    let fitting: Vec<String> = all
        .into_iter()
        .filter(|p| v.pointer(p).is_some_and(filter))
        .collect();
    if fitting.is_empty() {
        return new;
    }
    let at = which.get(&fitting).clone();
    *v.pointer_mut(&at).unwrap() = new;
    v
}

/// An error message, sometimes echoing a secret of the request.
fn message(op: Op) -> BoxedStrategy<String> {
    let carried: Vec<&'static str> = op.carried().to_vec();
    (
        "[a-z ]{0,30}",
        prop::option::of(prop::sample::select(carried)),
    )
        .prop_map(|(text, secret)| match secret {
            Some(s) => format!("{text} '{s}' refused"),
            None => text,
        })
        .boxed()
}

fn error_body(op: Op) -> BoxedStrategy<Value> {
    let code = prop_oneof![1i64..1000, -1000i64..0].boxed();
    prop_oneof![
        (code.clone(), message(op)).prop_map(|(c, m)| json!({"status": {"code": c, "message": m}})),
        (
            prop::sample::select(vec![
                "invalid_grant",
                "invalid_client",
                "unauthorized_client",
                "invalid_request",
                "invalid_scope",
            ]),
            message(op)
        )
            .prop_map(|(e, m)| json!({"error": e, "error_description": m})),
        (code, message(op))
            .prop_map(|(c, m)| json!({"errors": [{"status": {"code": c, "message": m}}]})),
        message(op).prop_map(|m| json!({ "message": m })),
    ]
    .boxed()
}

fn html_page() -> BoxedStrategy<Vec<u8>> {
    prop::sample::select(vec![
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        "<!DOCTYPE html><html><body><form action=\"/login\"><input name=\"password\"></form></body></html>",
        "<html",
    ])
    .prop_map(|s| s.as_bytes().to_vec())
    .boxed()
}

fn deep_nesting() -> BoxedStrategy<Vec<u8>> {
    (1usize..400, 0u8..5)
        .prop_map(|(depth, kind)| {
            let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
            match kind {
                0 => arrays,
                1 => objects,
                2 => format!("{{\"data\":{arrays}}}"),
                3 => format!(
                    "{{\"data\":{{\"settings\":[{{\"name\":\"n\",\"value\":{objects}}}]}}}}"
                ),
                _ => "[".repeat(depth),
            }
            .into_bytes()
        })
        .boxed()
}

fn hostile_body(op: Op) -> BoxedStrategy<Vec<u8>> {
    let valid = valid_answer(op);
    let to_vec = |v: Value| serde_json::to_vec(&v).unwrap();
    let any_node = |_: &Value| true;
    let string_node = |v: &Value| v.is_string();
    let code = prop_oneof![
        4 => (1i64..1000).prop_map(|c| json!(c)),
        1 => Just(json!(-1)),
        1 => Just(json!(u64::MAX)),
        1 => Just(json!(0.5)),
        1 => Just(json!(0.0)),
        1 => Just(json!("1")),
        1 => Just(Value::Null),
    ];
    prop_oneof![
        // Valid, so that acceptable answers are seen to be accepted.
        4 => valid.clone().prop_map(to_vec),
        // Wrong types, null where something was expected.
        3 => (valid.clone(), any::<Index>(), any_json())
            .prop_map(move |(v, i, new)| to_vec(replace_node(v, i, new, any_node))),
        1 => (valid.clone(), any::<Index>())
            .prop_map(move |(v, i)| to_vec(replace_node(v, i, Value::Null, any_node))),
        // Truncated JSON.
        2 => (valid.clone(), any::<Index>()).prop_map(move |(v, i)| {
            let bytes = to_vec(v);
            bytes[..i.index(bytes.len())].to_vec()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..512),
        1 => html_page(),
        1 => deep_nesting(),
        // Many tiny objects or arrays, on both sides of the cap on their number.
        1 => (valid.clone(), any::<Index>(), 0..2 * max_json_containers(PROPERTY_LIMIT), any::<bool>())
            .prop_map(move |(v, i, n, objects)| {
                let tiny = if objects { json!({}) } else { json!([]) };
                to_vec(replace_node(v, i, Value::Array(vec![tiny; n]), any_node))
            }),
        // Huge strings, on both sides of the limit.
        1 => (valid.clone(), any::<Index>(), 0..2 * PROPERTY_LIMIT).prop_map(move |(v, i, n)| {
            to_vec(replace_node(v, i, Value::String("x".repeat(n)), string_node))
        }),
        // A failure envelope in a 2xx, or a code that only looks like one.
        2 => (valid, code, message(op)).prop_map(move |(mut v, code, m)| {
            let status = json!({"code": code, "message": m});
            match v.as_object_mut() {
                Some(o) => {
                    o.insert("status".into(), status);
                }
                None => v = json!({ "status": status }),
            }
            to_vec(v)
        }),
        2 => error_body(op).prop_map(to_vec),
        1 => prop::sample::select(vec!["null", "[]", "\"text\"", "0", "true", "{}", "", " \r\n", "\u{feff}{}"])
            .prop_map(|s| s.as_bytes().to_vec()),
    ]
    .boxed()
}

fn status() -> BoxedStrategy<u16> {
    prop_oneof![
        8 => Just(200u16),
        1 => Just(201),
        1 => Just(202),
        1 => Just(204),
        1 => 200u16..300,
        1 => Just(400),
        1 => Just(401),
        1 => Just(403),
        1 => Just(404),
        1 => Just(409),
        1 => Just(429),
        1 => Just(500),
        1 => Just(502),
        1 => Just(503),
        1 => Just(504),
        2 => 300u16..600,
        1 => 600u16..1000,
    ]
    .boxed()
}

fn framing() -> BoxedStrategy<Framing> {
    prop_oneof![
        4 => Just(Framing::Length),
        2 => Just(Framing::Chunked),
        1 => Just(Framing::Close),
        1 => (1usize..100).prop_map(Framing::Short),
    ]
    .boxed()
}

#[derive(Clone)]
struct Case {
    status: u16,
    body: Vec<u8>,
    framing: Framing,
    content_type: &'static str,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.body[..self.body.len().min(400)];
        write!(
            f,
            "HTTP {} ({:?}, {}), {} bytes: {:?}",
            self.status,
            self.framing,
            self.content_type,
            self.body.len(),
            String::from_utf8_lossy(shown)
        )
    }
}

fn case(op: Op) -> impl Strategy<Value = Case> {
    (
        status(),
        hostile_body(op),
        framing(),
        prop::sample::select(vec![
            "application/json",
            "text/html; charset=utf-8",
            "text/plain",
        ]),
    )
        .prop_map(|(status, body, framing, content_type)| Case {
            status,
            body,
            framing,
            content_type,
        })
}

// ---------------------------------------------------------------------------------------
// The properties.

/// Memory figures are only meaningful while nothing else in this process allocates: the
/// memory tests take this exclusively, the others share it.
static MEMORY: RwLock<()> = RwLock::new(());

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn label(result: &Result<Summary, UpstreamError>) -> String {
    match result {
        Ok(_) => "Ok".into(),
        Err(e) => format!("{:?}", e.kind),
    }
}

/// Checks what every error must be, whatever the answer: classified, named, short, and
/// without a secret.
fn check_error(op: Op, case: &Case, limit: usize, e: &UpstreamError) -> Result<(), TestCaseError> {
    let text = e.to_string();
    prop_assert!(!text.contains(SECRET_MARK), "a secret in {text:?}");
    prop_assert!(!text.contains("<html"), "the HTML page quoted in {text:?}");
    prop_assert_eq!(e.system, op.system());
    prop_assert!(e.detail.len() <= 303, "detail of {} bytes", e.detail.len());
    if !(200..300).contains(&case.status) {
        prop_assert_eq!(e.status, Some(case.status), "{}", text);
        prop_assert!(text.contains(&format!("HTTP {}", case.status)), "{}", text);
    }
    // A 204 or 304 carries no body, whatever the server had.
    let sent = if matches!(case.status, 204 | 304) {
        0
    } else {
        case.body.len()
    };
    if e.kind == ErrorKind::InvalidAnswer && sent > limit {
        prop_assert!(
            text.contains(&format!("larger than {limit} bytes")),
            "{}",
            text
        );
    }
    Ok(())
}

fn property(op: Op) {
    let _shared = MEMORY.read().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    let upstream = rt.block_on(Upstream::start());
    let clients = Clients::new(&upstream.url(), &property_config());
    let tally: Mutex<BTreeMap<String, u32>> = Mutex::default();
    let mut runner = TestRunner::new(Config {
        cases: CASES_PER_OPERATION,
        failure_persistence: None,
        ..Config::default()
    });
    let started = Instant::now();
    let outcome = runner.run(&case(op), |case| {
        upstream.set(Reply {
            status: case.status,
            content_type: case.content_type,
            body: Body::Bytes(case.body.clone(), case.framing.clone()),
        });
        let want = expected(op, case.status, &case.body, &case.framing, PROPERTY_LIMIT);
        let got = rt.block_on(clients.run(op));
        *tally.lock().unwrap().entry(label(&got)).or_default() += 1;
        match (&want, &got) {
            (Expected::Ok(w), Ok(g)) => prop_assert_eq!(w, g),
            (Expected::Err(kind), Err(e)) => {
                prop_assert_eq!(*kind, e.kind, "{}", e);
            }
            (want, got) => {
                return Err(TestCaseError::fail(format!(
                    "expected {want:?}, got {got:?}"
                )));
            }
        }
        if let Err(e) = &got {
            check_error(op, &case, PROPERTY_LIMIT, e)?;
        }
        Ok(())
    });
    eprintln!(
        "{op:?}: {CASES_PER_OPERATION} cases in {:?}, outcomes {:?}",
        started.elapsed(),
        tally.lock().unwrap()
    );
    if let Err(e) = outcome {
        panic!("{op:?}: {e}");
    }
}

macro_rules! properties {
    ($($name:ident => $op:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                property(Op::$op);
            }
        )*
    };
}

properties! {
    any_answer_to_list_contact_centers => ListContactCenters,
    any_answer_to_list_settings => ListSettings,
    any_answer_to_upsert_setting => UpsertSetting,
    any_answer_to_list_clients => ListClients,
    any_answer_to_get_client => GetClient,
    any_answer_to_create_client => CreateClient,
    any_answer_to_update_client => UpdateClient,
    any_answer_to_delete_client => DeleteClient,
    any_answer_to_token_client_credentials => TokenClientCredentials,
    any_answer_to_token_password => TokenPassword,
    any_answer_to_token_refresh => TokenRefresh,
    any_answer_to_register_ucs => RegisterUcs,
    any_answer_to_delete_ucs => DeleteUcs,
    any_answer_to_create_tenant => CreateTenant,
    any_answer_to_get_tenant => GetTenant,
    any_answer_to_update_tenant => UpdateTenant,
    any_answer_to_delete_tenant => DeleteTenant,
}

// ---------------------------------------------------------------------------------------
// Explicit cases: huge and endless bodies with their memory, truncated JSON, HTML.

/// Counts the heap: bytes held now, and the most held since the last reset (a reallocation
/// counted as a copy: old and new both held for a moment). Exact where VmHWM is not: glibc
/// keeps freed pages resident, so after an earlier peak a later one can reuse them without
/// the resident size moving.
#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// What one call cost.
struct Measure {
    result: Result<Summary, UpstreamError>,
    /// How far the process's peak resident memory (VmHWM) rose above its resident size
    /// before the call, in KiB. The peak is reset first (`/proc/self/clear_refs`). Freed pages
    /// glibc keeps resident can hide part of a rise (giving them back takes `malloc_trim`,
    /// unsafe code): the heap figure is the exact one.
    rss_kib: u64,
    /// How far the heap's peak rose above what it held before the call, in KiB.
    heap_kib: u64,
    /// Body bytes the upstream managed to write before the client hung up.
    written: u64,
    elapsed: Duration,
}

impl Measure {
    /// The larger of the two figures.
    fn growth_kib(&self) -> u64 {
        self.rss_kib.max(self.heap_kib)
    }

    fn figures(&self) -> String {
        format!(
            "VmHWM +{} KiB, heap peak +{} KiB, upstream wrote {} KiB, {:?}",
            self.rss_kib,
            self.heap_kib,
            self.written / 1024,
            self.elapsed
        )
    }
}

const MIB: u64 = 1 << 20;
/// Far less than the 50 MiB the upstream offers.
const MEMORY_BOUND_KIB: u64 = 16 * 1024;

/// The default limit, short timeouts, no retry delays.
fn default_config() -> HttpConfig {
    HttpConfig {
        retry: RetryPolicy {
            attempts: 1,
            ..common::fast_retry()
        },
        ..common::http_config()
    }
}

/// One call of `op` against `reply`, alone in the process, with what it cost.
fn measured(op: Op, config: &HttpConfig, reply: Reply) -> Measure {
    let _exclusive = MEMORY.write().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    let upstream = rt.block_on(Upstream::start());
    let clients = Clients::new(&upstream.url(), config);
    upstream.set(reply);
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = status_kib("VmHWM:").max(status_kib("VmRSS:"));
    HEAP.reset_peak_usage();
    let heap_before = HEAP.current_usage();
    let started = Instant::now();
    let result = rt.block_on(clients.run(op));
    let elapsed = started.elapsed();
    let rss_kib = status_kib("VmHWM:").saturating_sub(rss_before);
    let heap_kib = (HEAP.peak_usage().saturating_sub(heap_before) / 1024) as u64;
    // Let the server notice the closed connection.
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    Measure {
        result,
        rss_kib,
        heap_kib,
        written: upstream.written(),
        elapsed,
    }
}

fn stream(total: Option<u64>, framing: Framing) -> Reply {
    Reply {
        status: 200,
        content_type: "application/json",
        body: Body::Stream {
            total,
            framing,
            piece: 64 * 1024,
            pause: None,
        },
    }
}

#[test]
fn a_50_mib_answer_is_refused_without_being_held() {
    let limit = DEFAULT_MAX_BODY_BYTES;
    for (op, framing) in [
        (Op::ListContactCenters, Framing::Length),
        (Op::ListContactCenters, Framing::Chunked),
        (Op::CreateTenant, Framing::Chunked),
        (Op::UpsertSetting, Framing::Close),
    ] {
        let m = measured(
            op,
            &default_config(),
            stream(Some(50 * MIB), framing.clone()),
        );
        eprintln!("50 MiB answer, {op:?} {framing:?}: {}", m.figures());
        let error = m.result.as_ref().expect_err("a 50 MiB answer is refused");
        assert_eq!(error.kind, ErrorKind::InvalidAnswer, "{error}");
        assert!(
            error
                .to_string()
                .contains(&format!("larger than {limit} bytes")),
            "{error}"
        );
        assert!(!error.to_string().contains("xxxx"), "{error}");
        assert!(
            m.growth_kib() < MEMORY_BOUND_KIB,
            "{op:?} {framing:?}: {}",
            m.figures()
        );
        assert!(
            m.written < 16 * MIB,
            "the client kept reading: {}",
            m.figures()
        );
    }
}

#[test]
fn a_50_mib_error_answer_is_classified_by_its_status() {
    let mut reply = stream(Some(50 * MIB), Framing::Chunked);
    reply.status = 503;
    let m = measured(Op::ListClients, &default_config(), reply);
    eprintln!("50 MiB answer, HTTP 503: {}", m.figures());
    let error = m.result.as_ref().unwrap_err();
    assert_eq!(error.kind, ErrorKind::Transient, "{error}");
    assert_eq!(error.status, Some(503));
    assert_eq!(error.detail, "HTTP 503: Service Unavailable");
    assert!(m.growth_kib() < MEMORY_BOUND_KIB, "{}", m.figures());
    assert!(
        m.written < 16 * MIB,
        "the client kept reading: {}",
        m.figures()
    );
}

#[test]
fn an_endless_answer_is_cut_off_at_the_limit() {
    for framing in [Framing::Chunked, Framing::Close] {
        let m = measured(
            Op::GetTenant,
            &default_config(),
            stream(None, framing.clone()),
        );
        eprintln!("endless answer, {framing:?}: {}", m.figures());
        let error = m.result.as_ref().unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidAnswer, "{error}");
        assert!(error.to_string().contains("larger than"), "{error}");
        assert!(m.growth_kib() < MEMORY_BOUND_KIB, "{}", m.figures());
        assert!(
            m.written < 16 * MIB,
            "the client kept reading: {}",
            m.figures()
        );
        assert!(m.elapsed < Duration::from_secs(1), "{}", m.figures());
    }
}

#[test]
fn an_endless_slow_answer_ends_by_the_request_timeout() {
    let timeout = Duration::from_millis(800);
    let config = HttpConfig {
        timeout,
        ..default_config()
    };
    for status in [200, 503] {
        let reply = Reply {
            status,
            content_type: "application/json",
            body: Body::Stream {
                total: None,
                framing: Framing::Chunked,
                piece: 16,
                pause: Some(Duration::from_millis(20)),
            },
        };
        let m = measured(Op::ListSettings, &config, reply);
        eprintln!("endless slow answer, HTTP {status}: {}", m.figures());
        let error = m.result.as_ref().unwrap_err();
        assert_eq!(error.kind, ErrorKind::Transient, "{error}");
        if status == 200 {
            assert!(error.detail.contains("timed out"), "{error}");
            assert_eq!(error.metric_code(), "timeout");
        } else {
            assert_eq!(error.status, Some(503), "{error}");
        }
        assert!(
            m.elapsed >= timeout && m.elapsed < timeout + Duration::from_secs(2),
            "{}",
            m.figures()
        );
    }
}

fn once(op: Op, reply: Reply) -> Result<Summary, UpstreamError> {
    let _shared = MEMORY.read().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    let upstream = rt.block_on(Upstream::start());
    let clients = Clients::new(&upstream.url(), &default_config());
    upstream.set(reply);
    rt.block_on(clients.run(op))
}

#[test]
fn truncated_json_is_an_invalid_answer() {
    let truncated = format!(r#"{{"data": {{"contactCenters": [{{"id": "{CC}", "domains": ["t1"#);
    let error = once(Op::ListContactCenters, Reply::new(200, truncated)).unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidAnswer, "{error}");
    assert!(error.detail.contains("not JSON"), "{error}");
    assert!(
        !error.detail.contains(CC),
        "the body is not quoted: {error}"
    );

    let token =
        r#"{"access_token": "SECRET-abcdef0123", "expires_in": "SECRET-in-the-wrong-place"}"#;
    let error = once(Op::TokenPassword, Reply::new(200, token)).unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidAnswer, "{error}");
    assert!(!error.to_string().contains(SECRET_MARK), "{error}");
    assert!(error.detail.contains("expected u64"), "{error}");
}

#[test]
fn an_html_502_page_is_transient_and_not_quoted() {
    let page = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>";
    let mut reply = Reply::new(502, page);
    reply.content_type = "text/html";
    let error = once(Op::CreateTenant, reply.clone()).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Transient, "{error}");
    assert_eq!(error.status, Some(502));
    assert_eq!(error.detail, "HTTP 502: Bad Gateway");

    // The same page with a 200, as a proxy's login page might come: not an answer.
    reply.status = 200;
    for op in [Op::ListClients, Op::UpdateClient, Op::DeleteTenant] {
        let error = once(op, reply.clone()).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidAnswer, "{op:?}: {error}");
        assert!(!error.detail.contains("<html"), "{error}");
    }
}

#[test]
fn an_answer_the_connection_breaks_off_is_transient() {
    let reply = Reply {
        status: 200,
        content_type: "application/json",
        body: Body::Bytes(
            br#"{"data": {"contactCenters": []"#.to_vec(),
            Framing::Short(40),
        ),
    };
    let error = once(Op::ListContactCenters, reply).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Transient, "{error}");
}

/// The worst a body within the limit can cost once decoded. Decoding costs per object or
/// array (a 7-byte `{"a":0}` becomes a map node of some 650 bytes), so the client caps their
/// number; scalars cost at most a few times their text (`0,` becomes a 32-byte value).
/// Each shape is tried at the most the cap lets through, and as a whole body of it.
/// Stated in the README; bounded here.
#[test]
fn the_costliest_acceptable_answers_stay_bounded() {
    let limit = DEFAULT_MAX_BODY_BYTES;
    let cap = max_json_containers(limit);
    let body = |prefix: &str, item: &str, n: usize, suffix: &str| {
        let mut body = String::with_capacity(limit);
        body.push_str(prefix);
        body.push_str(&vec![item; n].join(","));
        body.push_str(suffix);
        body.into_bytes()
    };
    let settings = r#"{"data":{"settings":[{"name":"n","value":["#;
    // (operation, prefix, item, suffix, objects and arrays around the items, in each item)
    let shapes = [
        (Op::ListClients, r#"{"data":["#, "{}", "]}", 2, 1),
        (
            Op::ListContactCenters,
            r#"{"data":{"contactCenters":["#,
            r#"{"id":""}"#,
            "]}}",
            3,
            1,
        ),
        (Op::ListSettings, settings, r#"{"a":0}"#, "]}]}}", 5, 1),
        (Op::ListSettings, settings, "0", "]}]}}", 5, 0),
        (Op::GetClient, r#"{"data":{"scope":["#, r#""""#, "]}}", 3, 0),
    ];
    let mut worst = 0;
    for (op, prefix, item, suffix, wrapper, per_item) in shapes {
        let fits = (limit - prefix.len() - suffix.len()) / (item.len() + 1);
        let allowed = match per_item {
            0 => fits,
            _ => ((cap - wrapper) / per_item).min(fits),
        };
        let accepted = body(prefix, item, allowed, suffix);
        assert!(accepted.len() <= limit);
        let bytes = accepted.len();
        let m = measured(op, &default_config(), Reply::new(200, accepted));
        eprintln!(
            "{op:?}: {bytes} bytes of {allowed} x {item}, accepted: {}",
            m.figures()
        );
        let summary = m
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("{op:?} {item}: {e}"));
        if op == Op::ListClients || op == Op::ListContactCenters {
            assert_eq!(summary, &Summary::Count(allowed));
        }
        worst = worst.max(m.growth_kib());
        if per_item > 0 && fits > allowed {
            let refused = body(prefix, item, fits, suffix);
            let bytes = refused.len();
            let m = measured(op, &default_config(), Reply::new(200, refused));
            eprintln!(
                "{op:?}: {bytes} bytes of {fits} x {item}, refused: {}",
                m.figures()
            );
            let error = m.result.as_ref().unwrap_err();
            assert_eq!(error.kind, ErrorKind::InvalidAnswer, "{error}");
            assert!(
                error
                    .detail
                    .contains(&format!("more than {cap} objects and arrays")),
                "{error}"
            );
            assert!(m.growth_kib() < MEMORY_BOUND_KIB, "{op:?}: {}", m.figures());
        }
    }
    eprintln!("costliest acceptable answer: +{worst} KiB");
    assert!(
        worst < 48 * 1024,
        "an acceptable answer cost {worst} KiB: the pod's limit is 256 MiB"
    );
}
