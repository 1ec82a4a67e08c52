//! Fault injection: make chosen operations fail or hang so that retries, timeouts and error
//! conditions of the operator can be tested against the simulator.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

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

/// What an injected fault does to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer with this HTTP status and an error envelope.
    Fail(u16),
    /// Hang longer than any client timeout, so that the client gives up.
    Timeout,
    /// Do the work, then answer this status instead of the result: the effect happened but
    /// the client cannot know it (a reply lost on the way, a proxy timing out).
    LoseAnswer(u16),
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
    /// Per operation: the fraction of requests that fail, and with which status.
    fraction: HashMap<String, (f64, u16)>,
}

impl Faults {
    /// The next `n` requests of `op` answer `status` (429 and 503 carry `Retry-After: 1`).
    pub fn fail_next(&self, op: &str, n: u32, status: u16) {
        self.push(op, n, Fault::Fail(status));
    }

    /// The next `n` requests of `op` hang (about 300 s, or until shutdown).
    pub fn timeout_next(&self, op: &str, n: u32) {
        self.push(op, n, Fault::Timeout);
    }

    /// The next `n` requests of `op` take effect, but their answer is replaced by `status`.
    pub fn lose_answer_next(&self, op: &str, n: u32, status: u16) {
        self.push(op, n, Fault::LoseAnswer(status));
    }

    /// From now on a `fraction` (0.0..=1.0) of the requests of `op` answer `status`.
    pub fn fail_fraction(&self, op: &str, fraction: f64, status: u16) {
        self.rules()
            .fraction
            .insert(op.to_owned(), (fraction.clamp(0.0, 1.0), status));
    }

    /// Removes every rule.
    pub fn clear(&self) {
        let mut rules = self.rules();
        rules.next.clear();
        rules.fraction.clear();
    }

    /// The fault, if any, for one request of `op`; consumes a one-shot rule.
    pub(crate) fn take(&self, op: &str) -> Option<Fault> {
        let mut rules = self.rules();
        if let Some(fault) = rules.next.get_mut(op).and_then(VecDeque::pop_front) {
            return Some(fault);
        }
        let (fraction, status) = *rules.fraction.get(op)?;
        (rand::random::<f64>() < fraction).then_some(Fault::Fail(status))
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
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FaultMode {
    Fail,
    Timeout,
    Fraction,
    #[serde(rename = "lose_answer")]
    LoseAnswer,
}

fn one() -> u32 {
    1
}

fn service_unavailable() -> u16 {
    503
}

impl FaultRequest {
    /// Installs the rule in `faults`; unknown operations are refused so that typos show.
    pub(crate) fn apply(&self, faults: &Faults) -> Result<(), String> {
        if !OPERATIONS.contains(&self.operation.as_str()) {
            return Err(format!(
                "unknown operation '{}'; known: {}",
                self.operation,
                OPERATIONS.join(", ")
            ));
        }
        if !(100..=599).contains(&self.status) {
            return Err(format!("status {} is not an HTTP status", self.status));
        }
        match self.mode {
            FaultMode::Fail => faults.fail_next(&self.operation, self.count, self.status),
            FaultMode::Timeout => faults.timeout_next(&self.operation, self.count),
            FaultMode::LoseAnswer => {
                faults.lose_answer_next(&self.operation, self.count, self.status)
            }
            FaultMode::Fraction => {
                if !(0.0..=1.0).contains(&self.fraction) {
                    return Err("fraction must be between 0 and 1".to_owned());
                }
                faults.fail_fraction(&self.operation, self.fraction, self.status);
            }
        }
        Ok(())
    }
}
