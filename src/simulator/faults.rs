//! Fault injection: make chosen operations fail, hang, drop their connection or take the whole
//! simulator off the network, so that retries, timeouts and error conditions of the operator
//! can be tested against the simulator.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;

/// Every operation name the simulator counts and accepts faults for.
pub const OPERATIONS: &[&str] = &[
    "auth.list_clients",
    "auth.get_client",
    "auth.create_client",
    "auth.update_client",
    "auth.delete_client",
    "auth.token",
    "environment.list_contact_centers",
    "environment.list_settings",
    "environment.upsert_setting",
    "nexus.register_ucs",
    "nexus.delete_ucs",
    "nexus.create_tenant",
    "nexus.get_tenant",
    "nexus.update_tenant",
    "nexus.delete_tenant",
];

/// Narrower names that accept faults without being counted apart in
/// [`super::StateView::calls`]: one grant of the token endpoint (`auth.token` counts them
/// all). A fault of `auth.token` itself hits any grant; a grant's own fault comes first.
pub const GRANT_TARGETS: &[&str] = &[
    "auth.token.client_credentials",
    "auth.token.password",
    "auth.token.refresh_token",
];

/// The `Retry-After` header of an injected failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RetryAfter {
    /// As the simulator always answers: `Retry-After: 1` on a 429 or 503, none otherwise.
    #[default]
    Usual,
    /// No `Retry-After` header, whatever the status.
    Absent,
    /// `Retry-After: <n>` (RFC 9110 delay-seconds).
    Seconds(u64),
    /// `Retry-After: <HTTP-date>`, the date `n` seconds after the answer is made (RFC 9110
    /// IMF-fixdate, whole seconds: the delay a client computes is between `n - 1` and `n`).
    HttpDateIn(u64),
}

/// What an injected fault does to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer with this HTTP status and an error envelope, and this `Retry-After`.
    Fail(u16, RetryAfter),
    /// Hang longer than any client timeout, so that the client gives up.
    Timeout,
    /// Do the work, then answer this status instead of the result: the effect happened but
    /// the client cannot know it (a reply lost on the way, a proxy timing out).
    LoseAnswer(u16),
    /// Do the work, then hang instead of answering: a slow upstream, whose client gives up
    /// before the effect it asked for is reported.
    TimeoutAfterEffect,
    /// Hold the request this long, then handle it and answer as usual.
    Delay(Duration),
    /// Close the connection without an answer (a TCP reset), the request not handled.
    Reset,
    /// Do the work, then close the connection without an answer.
    ResetAfterEffect,
    /// The upstream goes down as this request arrives: its connection is reset without an
    /// answer, the port is closed (every connection attempt is refused) for this long, then
    /// the simulator listens again on the same port.
    GoDown(Duration),
}

/// The fault rules, shared by the handle and the server. Cloning shares the same rules.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    inner: Arc<Mutex<Rules>>,
}

#[derive(Debug, Default)]
struct Rules {
    /// One-shot faults per operation, consumed in order.
    next: HashMap<String, VecDeque<Fault>>,
    /// Per operation: the fraction of requests that fail, with which status and `Retry-After`.
    fraction: HashMap<String, (f64, u16, RetryAfter)>,
}

impl Faults {
    /// The next `n` requests of `op` answer `status` (429 and 503 carry `Retry-After: 1`).
    pub fn fail_next(&self, op: &str, n: u32, status: u16) {
        self.fail_next_with(op, n, status, RetryAfter::Usual);
    }

    /// The next `n` requests of `op` answer `status` with this `Retry-After`.
    pub fn fail_next_with(&self, op: &str, n: u32, status: u16, retry_after: RetryAfter) {
        self.push(op, n, Fault::Fail(status, retry_after));
    }

    /// The next `n` requests of `op` hang (about 300 s, or until shutdown).
    pub fn timeout_next(&self, op: &str, n: u32) {
        self.push(op, n, Fault::Timeout);
    }

    /// The next `n` requests of `op` are held `delay` in flight, then handled as usual.
    pub fn delay_next(&self, op: &str, n: u32, delay: Duration) {
        self.push(op, n, Fault::Delay(delay));
    }

    /// The next `n` requests of `op` take effect, then hang instead of answering.
    pub fn timeout_after_effect_next(&self, op: &str, n: u32) {
        self.push(op, n, Fault::TimeoutAfterEffect);
    }

    /// The next `n` requests of `op` take effect, then their connection is reset without
    /// an answer.
    pub fn reset_after_effect_next(&self, op: &str, n: u32) {
        self.push(op, n, Fault::ResetAfterEffect);
    }

    /// The next `n` requests of `op` take effect, but their answer is replaced by `status`.
    pub fn lose_answer_next(&self, op: &str, n: u32, status: u16) {
        self.push(op, n, Fault::LoseAnswer(status));
    }

    /// The next `n` requests of `op` have their connection reset, without an answer and
    /// without taking effect.
    pub fn reset_next(&self, op: &str, n: u32) {
        self.push(op, n, Fault::Reset);
    }

    /// The next request of `op` takes the simulator off the network for `down_for`: that
    /// request's connection, and every other open one, is reset without an answer, and
    /// connection attempts are refused until the simulator listens again on the same port.
    /// With `n` > 1 the next requests of `op` after that do the same.
    pub fn refuse_next(&self, op: &str, n: u32, down_for: Duration) {
        self.push(op, n, Fault::GoDown(down_for));
    }

    /// From now on a `fraction` (0.0..=1.0) of the requests of `op` answer `status`.
    pub fn fail_fraction(&self, op: &str, fraction: f64, status: u16) {
        self.fail_fraction_with(op, fraction, status, RetryAfter::Usual);
    }

    /// As [`Faults::fail_fraction`], with this `Retry-After`.
    pub fn fail_fraction_with(
        &self,
        op: &str,
        fraction: f64,
        status: u16,
        retry_after: RetryAfter,
    ) {
        self.rules().fraction.insert(
            op.to_owned(),
            (fraction.clamp(0.0, 1.0), status, retry_after),
        );
    }

    /// How many one-shot faults of `op` are still to come: 0 once every injected one hit.
    pub fn remaining(&self, op: &str) -> usize {
        self.rules().next.get(op).map_or(0, VecDeque::len)
    }

    /// Removes every rule.
    pub fn clear(&self) {
        let mut rules = self.rules();
        rules.next.clear();
        rules.fraction.clear();
    }

    /// The fault, if any, for a request that any of `targets` names, the first with a rule
    /// winning, a one-shot rule (consumed) before a fraction.
    pub(crate) fn take_first(&self, targets: &[&str]) -> Option<Fault> {
        let mut rules = self.rules();
        for target in targets {
            if let Some(fault) = rules.next.get_mut(*target).and_then(VecDeque::pop_front) {
                return Some(fault);
            }
        }
        let (fraction, status, retry_after) = targets
            .iter()
            .find_map(|target| rules.fraction.get(*target).copied())?;
        (rand::random::<f64>() < fraction).then_some(Fault::Fail(status, retry_after))
    }

    fn push(&self, op: &str, n: u32, fault: Fault) {
        let mut rules = self.rules();
        let queue = rules.next.entry(op.to_owned()).or_default();
        queue.extend(std::iter::repeat_n(fault, n as usize));
    }

    /// The rules stay usable even if a thread panicked while holding the lock: they are plain data.
    fn rules(&self) -> MutexGuard<'_, Rules> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Body of `POST /_sim/faults`.
#[derive(Debug, Deserialize)]
pub(crate) struct FaultRequest {
    pub operation: String,
    pub mode: FaultMode,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default = "service_unavailable")]
    pub status: u16,
    #[serde(default)]
    pub fraction: f64,
    /// `"none"`, `{"seconds": n}` or `{"http_date": n}` (a date n seconds ahead); absent: as
    /// usual (`Retry-After: 1` on a 429 or 503).
    #[serde(default)]
    pub retry_after: Option<RetryAfterRequest>,
    /// For `refuse`: how long the port stays closed, in milliseconds (default 1000).
    #[serde(default = "one_second_ms")]
    pub down_ms: u64,
    /// For `delay`: how long each request is held before it is handled, in milliseconds
    /// (default 1000).
    #[serde(default = "one_second_ms")]
    pub delay_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FaultMode {
    Fail,
    Timeout,
    Fraction,
    #[serde(rename = "lose_answer")]
    LoseAnswer,
    Reset,
    Refuse,
    #[serde(rename = "timeout_after_effect")]
    TimeoutAfterEffect,
    #[serde(rename = "reset_after_effect")]
    ResetAfterEffect,
    Delay,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum RetryAfterRequest {
    None,
    Seconds(u64),
    HttpDate(u64),
}

impl From<&RetryAfterRequest> for RetryAfter {
    fn from(request: &RetryAfterRequest) -> Self {
        match request {
            RetryAfterRequest::None => RetryAfter::Absent,
            RetryAfterRequest::Seconds(n) => RetryAfter::Seconds(*n),
            RetryAfterRequest::HttpDate(n) => RetryAfter::HttpDateIn(*n),
        }
    }
}

fn one() -> u32 {
    1
}

fn service_unavailable() -> u16 {
    503
}

fn one_second_ms() -> u64 {
    1000
}

/// Longest `down_ms` accepted: an admin request cannot take the simulator away for good.
const MAX_DOWN: Duration = Duration::from_secs(600);

impl FaultRequest {
    /// Installs the rule in `faults`; unknown operations are refused so that typos show.
    pub(crate) fn apply(&self, faults: &Faults) -> Result<(), String> {
        let op = self.operation.as_str();
        if !OPERATIONS.contains(&op) && !GRANT_TARGETS.contains(&op) {
            return Err(format!(
                "unknown operation '{}'; known: {}, {}",
                self.operation,
                OPERATIONS.join(", "),
                GRANT_TARGETS.join(", ")
            ));
        }
        if !(100..=599).contains(&self.status) {
            return Err(format!("status {} is not an HTTP status", self.status));
        }
        let retry_after = self
            .retry_after
            .as_ref()
            .map(RetryAfter::from)
            .unwrap_or_default();
        match self.mode {
            FaultMode::Fail => faults.fail_next_with(op, self.count, self.status, retry_after),
            FaultMode::Timeout => faults.timeout_next(op, self.count),
            FaultMode::LoseAnswer => faults.lose_answer_next(op, self.count, self.status),
            FaultMode::Reset => faults.reset_next(op, self.count),
            FaultMode::TimeoutAfterEffect => faults.timeout_after_effect_next(op, self.count),
            FaultMode::ResetAfterEffect => faults.reset_after_effect_next(op, self.count),
            FaultMode::Delay => {
                let delay = Duration::from_millis(self.delay_ms);
                if delay > MAX_DOWN {
                    return Err(format!("delay_ms must be at most {}", MAX_DOWN.as_millis()));
                }
                faults.delay_next(op, self.count, delay);
            }
            FaultMode::Refuse => {
                let down = Duration::from_millis(self.down_ms);
                if down > MAX_DOWN {
                    return Err(format!("down_ms must be at most {}", MAX_DOWN.as_millis()));
                }
                faults.refuse_next(op, self.count, down);
            }
            FaultMode::Fraction => {
                if !(0.0..=1.0).contains(&self.fraction) {
                    return Err("fraction must be between 0 and 1".to_owned());
                }
                faults.fail_fraction_with(op, self.fraction, self.status, retry_after);
            }
        }
        Ok(())
    }
}
