//! Wire helpers shared by every simulated API: the GWS/Nexus v3 envelope, RFC 6749 errors,
//! body parsing that answers 400 instead of panicking, and credential headers.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// A failed request. Renders as the v3 envelope `{"status":{"code":<HTTP status>,"message":..}}`,
/// or, for the token endpoint, as RFC 6749 `{"error":..,"error_description":..}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    /// The RFC 6749 `error` code; `None` for the envelope shape.
    oauth_error: Option<&'static str>,
    /// `WWW-Authenticate` value for 401 answers.
    challenge: Option<&'static str>,
}

/// `WWW-Authenticate` of the endpoints protected by the ops user or client Basic auth.
pub(crate) const BASIC_CHALLENGE: &str = "Basic realm=\"GWS\"";
/// `WWW-Authenticate` of the Nexus endpoints protected by a bearer token.
pub(crate) const BEARER_CHALLENGE: &str = "Bearer realm=\"Nexus\"";

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            oauth_error: None,
            challenge: None,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    pub(crate) fn unauthorized(message: impl Into<String>, challenge: &'static str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message).with_challenge(challenge)
    }

    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// An RFC 6749 error of the token endpoint; `invalid_client` is a 401, the rest 400.
    pub(crate) fn oauth(error: &'static str, description: impl Into<String>) -> ApiError {
        let mut e = if error == "invalid_client" {
            ApiError::unauthorized(description, BASIC_CHALLENGE)
        } else {
            ApiError::bad_request(description)
        };
        e.oauth_error = Some(error);
        e
    }

    pub(crate) fn with_challenge(mut self, challenge: &'static str) -> ApiError {
        self.challenge = Some(challenge);
        self
    }

    /// A database failure; the message stays generic because driver errors may quote values.
    pub(crate) fn database(err: &sqlx::Error) -> ApiError {
        tracing::warn!(error.kind = db_error_kind(err), "simulator database error");
        ApiError::internal("database error")
    }
}

fn db_error_kind(err: &sqlx::Error) -> &'static str {
    match err {
        sqlx::Error::Database(_) => "database",
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => "io",
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => "pool",
        _ => "other",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.oauth_error {
            Some(error) => json!({"error": error, "error_description": self.message}),
            None => json!({"status": {"code": self.status.as_u16(), "message": self.message}}),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(challenge) = self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A successful v3 answer: `{"status":{"code":0}}` plus `data`, `path` and `operationId` when set.
#[derive(Debug, Default)]
pub(crate) struct Envelope {
    body: Map<String, Value>,
}

impl Envelope {
    pub(crate) fn ok() -> Envelope {
        let mut body = Map::new();
        body.insert("status".to_owned(), json!({"code": 0}));
        Envelope { body }
    }

    pub(crate) fn data(self, data: Value) -> Envelope {
        self.with("data", data)
    }

    pub(crate) fn path(self, path: String) -> Envelope {
        self.with("path", Value::String(path))
    }

    /// Nexus tags every provisioning answer with a fresh operation id.
    pub(crate) fn operation_id(self, id: &str) -> Envelope {
        self.with("operationId", Value::String(id.to_owned()))
    }

    fn with(mut self, key: &str, value: Value) -> Envelope {
        self.body.insert(key.to_owned(), value);
        self
    }
}

impl IntoResponse for Envelope {
    fn into_response(self) -> Response {
        (StatusCode::OK, axum::Json(Value::Object(self.body))).into_response()
    }
}

/// Parses a JSON body; anything malformed is a 400 with serde's explanation.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
}

/// A required, non-empty string field.
pub(crate) fn required<'a>(value: &'a Option<String>, field: &str) -> Result<&'a str, ApiError> {
    match value.as_deref() {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ApiError::bad_request(format!("{field} is required"))),
    }
}

/// The `user:password` of an `Authorization: Basic` header; `None` when absent or unreadable.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = auth_param(headers, "basic")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The token of an `Authorization: Bearer` header.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    auth_param(headers, "bearer")
}

/// A header's value as text, if present and readable.
pub(crate) fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The parameter of an `Authorization` header with the given scheme (case-insensitive).
fn auth_param<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = header_text(headers, header::AUTHORIZATION.as_str())?;
    let (given, param) = value.split_once(' ')?;
    given
        .eq_ignore_ascii_case(scheme)
        .then(|| param.trim())
        .filter(|p| !p.is_empty())
}
