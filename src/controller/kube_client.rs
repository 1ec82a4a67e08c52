//! The operator's Kubernetes client: kube's, with every request counted by RBAC verb and
//! resource (`dc_operator_kubernetes_requests_total`), so what the operator costs the API
//! server can be read off its metrics, and the benchmark can count writes per tenant; and
//! every request held to the leader fence (see [`crate::fence`]).

use std::time::Instant;

use http::{Method, Request, Uri};

use crate::fence::{FenceState, Fenced, Gate, GatedLayer, LeaderFence};
use crate::telemetry::metrics::{KubernetesRequest, metrics};

/// The client of the in-cluster config or `KUBECONFIG`, counting its requests and held to
/// `fence`.
pub async fn counting_client(fence: LeaderFence) -> Result<kube::Client, String> {
    let config = kube::Config::infer().await.map_err(|e| e.to_string())?;
    let builder = kube::client::ClientBuilder::try_from(config).map_err(|e| e.to_string())?;
    Ok(builder
        .with_layer(&TimedLayer)
        .with_layer(&FenceLayer::new(fence))
        .build())
}

/// Counts each request (`dc_operator_kubernetes_requests_total`) and times it to its answer
/// (`dc_operator_kubernetes_request_duration_seconds`): the Kubernetes part of a pass.
#[derive(Clone, Copy, Debug)]
pub struct TimedLayer;

impl<S> tower::Layer<S> for TimedLayer {
    type Service = Timed<S>;

    fn layer(&self, inner: S) -> Timed<S> {
        Timed(inner)
    }
}

/// See [`TimedLayer`].
#[derive(Clone, Debug)]
pub struct Timed<S>(S);

impl<S, B> tower::Service<Request<B>> for Timed<S>
where
    S: tower::Service<Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (verb, resource) = describe(request.method(), request.uri());
        let labels = KubernetesRequest {
            verb: verb.to_string(),
            resource,
        };
        metrics()
            .kubernetes_requests_total
            .get_or_create(&labels)
            .inc();
        let answer = self.0.call(request);
        let started = Instant::now();
        Box::pin(async move {
            let result = answer.await;
            metrics()
                .kubernetes_request_duration_seconds
                .get_or_create(&labels)
                .observe(started.elapsed().as_secs_f64());
            result
        })
    }
}

/// Whether a Kubernetes request may leave: the Lease's own requests always (the elector
/// must renew and observe it), anything while the fence is open, and reads while standing
/// by (the CRD check and readiness of a replica that waits for the Lease). Nothing else
/// after the Lease was lost, or while a renewal is overdue.
pub fn may_leave(state: FenceState, now: Instant, lease: bool, read: bool) -> bool {
    lease || state.is_open_at(now) || (read && matches!(state, FenceState::ValidUntil(None)))
}

/// A request of a Lease, as leader election makes them (any namespace, any verb).
fn is_lease_request(method: &Method, uri: &Uri) -> bool {
    uri.path().starts_with("/apis/coordination.k8s.io/") && describe(method, uri).1 == "leases"
}

/// See [`may_leave`]: a refused request fails with [`Fenced`] and never reaches the API
/// server, and is not counted.
#[derive(Clone, Debug)]
pub struct KubeGate;

impl<B> Gate<Request<B>> for KubeGate {
    fn before(fence: &LeaderFence, request: &Request<B>) -> Result<(), Fenced> {
        let lease = is_lease_request(request.method(), request.uri());
        let read = request.method() == Method::GET;
        if may_leave(fence.state(), Instant::now(), lease, read) {
            Ok(())
        } else {
            Err(Fenced)
        }
    }
}

/// The Kubernetes client's fence ([`KubeGate`]): outermost, so it is checked before any
/// other layer.
pub type FenceLayer = GatedLayer<KubeGate>;

/// The RBAC verb and resource of a request: `GET /api/v1/namespaces/dc/secrets/a` is
/// (`get`, `secrets`), `PATCH …/digitalchannelstenants/t/status` is
/// (`patch`, `digitalchannelstenants/status`).
pub fn describe(method: &Method, uri: &Uri) -> (&'static str, String) {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // Past `api/v1` or `apis/<group>/<version>`.
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    }
    .unwrap_or_default();
    // Past `namespaces/<ns>` when a namespaced resource follows.
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, named) = match rest {
        [] => ("", false),
        [resource] => (*resource, false),
        [resource, _name] => (*resource, true),
        [resource, _name, sub, ..] => {
            return (verb(method, uri, true), format!("{resource}/{sub}"));
        }
    };
    (verb(method, uri, named), resource.to_string())
}

fn verb(method: &Method, uri: &Uri, named: bool) -> &'static str {
    let watch = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    match *method {
        Method::GET if watch => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_lease_requests_leave_a_replica_that_lost_or_overran_its_lease() {
        let now = Instant::now();
        let valid = FenceState::ValidUntil(Some(now + Duration::from_secs(5)));
        let overdue = FenceState::ValidUntil(Some(now - Duration::from_millis(1)));
        let standby = FenceState::ValidUntil(None);
        // (state, lease request, read, may leave)
        let cases = [
            (FenceState::Unelected, false, false, true),
            (valid, false, false, true),
            (valid, false, true, true),
            (standby, false, true, true),
            (standby, false, false, false),
            (standby, true, false, true),
            (overdue, false, false, false),
            (overdue, false, true, false),
            (overdue, true, false, true),
            (FenceState::Lost, false, true, false),
            (FenceState::Lost, false, false, false),
            (FenceState::Lost, true, false, true),
        ];
        for (state, lease, read, leaves) in cases {
            assert_eq!(
                may_leave(state, now, lease, read),
                leaves,
                "{state:?} lease={lease} read={read}"
            );
        }
        let lease: Uri = "/apis/coordination.k8s.io/v1/namespaces/op/leases/l"
            .parse()
            .unwrap();
        let secret: Uri = "/api/v1/namespaces/op/secrets/leases".parse().unwrap();
        assert!(is_lease_request(&Method::PUT, &lease));
        assert!(!is_lease_request(&Method::GET, &secret));
    }

    #[tokio::test]
    async fn each_request_is_counted_and_timed_to_its_answer() {
        use tower::{Layer, ServiceExt};
        let slow = tower::service_fn(|_: Request<()>| async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            Ok::<_, std::convert::Infallible>(())
        });
        let request = Request::get("/api/v1/namespaces/dc/timedthings/a")
            .body(())
            .unwrap();
        TimedLayer.layer(slow).oneshot(request).await.unwrap();
        let text = crate::telemetry::metrics::metrics().encode();
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name) && l.contains("resource=\"timedthings\""))
                .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
                .unwrap_or_else(|| panic!("no {name} for timedthings in {text}"))
        };
        assert_eq!(line("dc_operator_kubernetes_requests_total"), 1.0);
        assert_eq!(
            line("dc_operator_kubernetes_request_duration_seconds_count"),
            1.0
        );
        let took = line("dc_operator_kubernetes_request_duration_seconds_sum");
        assert!((0.03..1.0).contains(&took), "{took} s");
    }

    #[test]
    fn requests_are_named_as_rbac_names_them() {
        let cases = [
            ("GET", "/api/v1/namespaces/dc/secrets/a", "get", "secrets"),
            (
                "GET",
                "/api/v1/namespaces/dc/secrets?limit=500",
                "list",
                "secrets",
            ),
            (
                "GET",
                "/api/v1/namespaces/dc/secrets?watch=true&resourceVersion=1",
                "watch",
                "secrets",
            ),
            ("GET", "/api/v1/namespaces/dc", "get", "namespaces"),
            (
                "PATCH",
                "/apis/digitalchannels.dev/v1alpha1/namespaces/dc/digitalchannelstenants/t/status",
                "patch",
                "digitalchannelstenants/status",
            ),
            (
                "POST",
                "/apis/events.k8s.io/v1/namespaces/dc/events",
                "create",
                "events",
            ),
            (
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/op/leases/l",
                "update",
                "leases",
            ),
            (
                "DELETE",
                "/api/v1/namespaces/dc/secrets/a",
                "delete",
                "secrets",
            ),
            (
                "GET",
                "/apis/digitalchannels.dev/v1alpha1/digitalchannelstenants",
                "list",
                "digitalchannelstenants",
            ),
        ];
        for (method, uri, verb, resource) in cases {
            let method: Method = method.parse().unwrap();
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(
                describe(&method, &uri),
                (verb, resource.to_string()),
                "{uri}"
            );
        }
    }
}
