//! Which process sent each request, and when it arrived: the record behind "no request from
//! a replica after it lost the Lease". The operator names itself in the
//! `x-dc-operator-instance` header ([`crate::upstream::http::INSTANCE_HEADER`]).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;

use super::app::SharedApp;
use crate::upstream::http::INSTANCE_HEADER;

/// How many requests are kept, the newest.
const KEPT: usize = 100_000;

/// One request as it arrived, before any latency or fault.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// The sender's `x-dc-operator-instance` header, if any.
    pub instance: Option<String>,
    pub method: String,
    /// Path only: a query could carry a secret.
    pub path: String,
    /// Arrival, in microseconds since the Unix epoch.
    pub unix_micros: u64,
    #[serde(skip)]
    pub at: SystemTime,
}

#[derive(Default)]
pub(crate) struct RequestLog {
    records: Mutex<VecDeque<RequestRecord>>,
}

impl RequestLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<RequestRecord>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, record: RequestRecord) {
        let mut records = self.lock();
        if records.len() == KEPT {
            records.pop_front();
        }
        records.push_back(record);
    }

    pub(crate) fn all(&self) -> Vec<RequestRecord> {
        self.lock().iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}

/// Middleware: records every request of the simulated APIs (not `/_sim`) as it arrives.
pub(crate) async fn record(
    State(app): State<SharedApp>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    if !path.starts_with("/_sim") {
        let at = SystemTime::now();
        app.requests.push(RequestRecord {
            instance: request
                .headers()
                .get(INSTANCE_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            method: request.method().to_string(),
            path: path.to_owned(),
            unix_micros: at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
            at,
        });
    }
    next.run(request).await
}
