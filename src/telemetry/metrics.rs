//! The Prometheus metrics of the contract (prefix `dc_operator_`), in one process-wide registry.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindResult {
    pub kind: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExternalRequest {
    pub system: String,
    pub operation: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExternalOperation {
    pub system: String,
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepFailure {
    pub kind: String,
    pub step: String,
    pub reason: String,
}

/// A request to the Kubernetes API: its RBAC verb and resource (`secrets`,
/// `digitalchannelstenants/status`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KubernetesRequest {
    pub verb: String,
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindReady {
    pub kind: String,
    pub ready: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the operator exports.
pub struct Metrics {
    pub registry: Registry,
    pub reconcile_total: Family<KindResult, Counter>,
    pub reconcile_duration_seconds: HistogramFamily<KindLabel>,
    pub external_requests_total: Family<ExternalRequest, Counter>,
    pub external_request_duration_seconds: HistogramFamily<ExternalOperation>,
    pub step_failures_total: Family<StepFailure, Counter>,
    pub time_to_ready_seconds: HistogramFamily<KindLabel>,
    pub resources: Family<KindReady, Gauge>,
    pub kubernetes_requests_total: Family<KubernetesRequest, Counter>,
    pub kubernetes_request_duration_seconds: HistogramFamily<KubernetesRequest>,
}

fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

fn ready_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 14))
}

impl Metrics {
    fn new() -> Self {
        let metrics = Self {
            registry: Registry::with_prefix("dc_operator"),
            reconcile_total: Family::default(),
            reconcile_duration_seconds: Family::new_with_constructor(request_buckets),
            external_requests_total: Family::default(),
            external_request_duration_seconds: Family::new_with_constructor(request_buckets),
            step_failures_total: Family::default(),
            time_to_ready_seconds: Family::new_with_constructor(ready_buckets),
            resources: Family::default(),
            kubernetes_requests_total: Family::default(),
            kubernetes_request_duration_seconds: Family::new_with_constructor(request_buckets),
        };
        metrics.registered()
    }

    /// Registers every family with its help text (the registry holds clones that share
    /// the counts).
    fn registered(mut self) -> Self {
        let Self {
            registry,
            reconcile_total,
            reconcile_duration_seconds,
            external_requests_total,
            external_request_duration_seconds,
            step_failures_total,
            time_to_ready_seconds,
            resources,
            kubernetes_requests_total,
            kubernetes_request_duration_seconds,
        } = &mut self;
        registry.register(
            "reconcile",
            "Reconciliations by kind and result",
            reconcile_total.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconciliation took",
            reconcile_duration_seconds.clone(),
        );
        registry.register(
            "external_requests",
            "Requests to Genesys services and the Nexus database by outcome code",
            external_requests_total.clone(),
        );
        registry.register(
            "external_request_duration_seconds",
            "Latency of requests to external systems",
            external_request_duration_seconds.clone(),
        );
        registry.register(
            "step_failures",
            "Runbook step failures by reason",
            step_failures_total.clone(),
        );
        registry.register(
            "time_to_ready_seconds",
            "Time to each transition into Ready, from creation or from when Ready last turned False",
            time_to_ready_seconds.clone(),
        );
        registry.register(
            "resources",
            "Resources by kind and readiness",
            resources.clone(),
        );
        registry.register(
            "kubernetes_requests",
            "Requests to the Kubernetes API by verb and resource",
            kubernetes_requests_total.clone(),
        );
        registry.register(
            "kubernetes_request_duration_seconds",
            "Time to the answer's headers of requests to the Kubernetes API (watches: to their start)",
            kubernetes_request_duration_seconds.clone(),
        );
        self
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn record_external(&self, system: &str, operation: &str, code: &str, seconds: f64) {
        self.external_requests_total
            .get_or_create(&ExternalRequest {
                system: system.to_string(),
                operation: operation.to_string(),
                code: code.to_string(),
            })
            .inc();
        self.external_request_duration_seconds
            .get_or_create(&ExternalOperation {
                system: system.to_string(),
                operation: operation.to_string(),
            })
            .observe(seconds);
    }

    pub fn record_step_failure(&self, kind: &str, step: &str, reason: &str) {
        self.step_failures_total
            .get_or_create(&StepFailure {
                kind: kind.to_string(),
                step: step.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}
