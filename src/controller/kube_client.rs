//! The operator's Kubernetes client: kube's, with every request counted by RBAC verb and
//! resource (`dc_operator_kubernetes_requests_total`), so what the operator costs the API
//! server can be read off its metrics, and the benchmark can count writes per tenant.

use http::{Method, Request, Uri};

use crate::telemetry::metrics::{KubernetesRequest, metrics};

/// The client of the in-cluster config or `KUBECONFIG`, counting its requests.
pub async fn counting_client() -> Result<kube::Client, String> {
    let config = kube::Config::infer().await.map_err(|e| e.to_string())?;
    let builder = kube::client::ClientBuilder::try_from(config).map_err(|e| e.to_string())?;
    Ok(builder
        .with_layer(&tower::util::MapRequestLayer::new(count))
        .build())
}

fn count<B>(request: Request<B>) -> Request<B> {
    let (verb, resource) = describe(request.method(), request.uri());
    metrics()
        .kubernetes_requests_total
        .get_or_create(&KubernetesRequest {
            verb: verb.to_string(),
            resource,
        })
        .inc();
    request
}

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
