//! The fake API server against an unmodified `kube::Client` and kube-runtime.

#[path = "common/fake_apiserver.rs"]
mod fake_apiserver;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fake_apiserver::{FakeApiServer, ResourceKey, Verb};
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as RecordedEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::{Controller, watcher};
use kube::{CustomResource, Resource, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Upper bound for anything asynchronous; tests finish far sooner.
const WAIT: Duration = Duration::from_secs(5);

#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "fake.digitalchannels.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    schema = "disabled",
    derive = "PartialEq"
)]
pub struct WidgetSpec {
    pub size: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub ready: bool,
}

fn widget(name: &str, size: i64) -> Widget {
    let mut widget = Widget::new(name, WidgetSpec { size });
    widget.metadata.namespace = Some("default".into());
    widget
}

fn secret(name: &str, labels: &[(&str, &str)]) -> Secret {
    let mut secret = Secret::default();
    secret.metadata.name = Some(name.into());
    secret.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
    );
    secret.data = Some([("key".to_owned(), ByteString(b"value".to_vec()))].into());
    secret
}

/// The HTTP code and reason of an API error.
fn api_error<T: std::fmt::Debug>(result: kube::Result<T>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn names<K: ResourceExt>(items: impl IntoIterator<Item = K>) -> Vec<String> {
    items.into_iter().map(|o| o.name_any()).collect()
}

async fn next_event<S: futures::Stream + Unpin>(stream: &mut S) -> S::Item {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a watch event in time")
        .expect("the stream goes on")
}

#[tokio::test]
async fn create_get_list_and_not_found() {
    let server = FakeApiServer::start().await;
    let secrets: Api<Secret> = Api::default_namespaced(server.client());

    let created = secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    assert_eq!(
        meta.resource_version,
        Some(server.resource_version().to_string())
    );
    assert_eq!(secrets.get("a").await.unwrap(), created);
    assert_eq!(server.get_as::<Secret>("default", "a"), Some(created));

    assert_eq!(
        api_error(
            secrets
                .create(&PostParams::default(), &secret("a", &[]))
                .await
        ),
        (409, "AlreadyExists".into())
    );
    assert_eq!(
        api_error(secrets.get("missing").await),
        (404, "NotFound".into())
    );

    let mut generated = secret("", &[]);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let generated = secrets
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    assert!(generated.name_any().starts_with("gen-") && generated.name_any().len() == 9);

    // A dry run answers without storing.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let rv = server.resource_version();
    secrets.create(&dry, &secret("dry", &[])).await.unwrap();
    assert_eq!(server.resource_version(), rv);
    assert!(server.get_as::<Secret>("default", "dry").is_none());

    let list = secrets.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(list.items), ["a", generated.name_any().as_str()]);
    assert_eq!(
        list.metadata.resource_version,
        Some(server.resource_version().to_string())
    );

    // Pagination, as the watcher's initial list asks for it.
    let page = secrets.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(names(page.items), ["a"]);
    let token = page.metadata.continue_.expect("a continue token");
    let rest = secrets
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(rest.items), [generated.name_any()]);
    assert_eq!(rest.metadata.continue_, None);

    let writes = server.writes();
    let summary: Vec<_> = writes
        .iter()
        .map(|w| (w.verb, w.name.clone(), w.status, w.changed))
        .collect();
    assert_eq!(
        summary,
        [
            (Verb::Create, Some("a".into()), 201, true),
            (Verb::Create, None, 409, false),
            (Verb::Create, Some(generated.name_any()), 201, true),
            (Verb::Create, Some("dry".into()), 201, false),
        ]
    );
    server.clear_writes();
    assert!(server.writes().is_empty());
}

#[tokio::test]
async fn selectors_filter_lists() {
    let server = FakeApiServer::start().await;
    let client = server.client();
    let default: Api<Secret> = Api::default_namespaced(client.clone());
    let other: Api<Secret> = Api::namespaced(client.clone(), "other");
    let pp = PostParams::default();
    default
        .create(&pp, &secret("a", &[("app", "x"), ("tier", "db")]))
        .await
        .unwrap();
    default
        .create(&pp, &secret("b", &[("app", "y")]))
        .await
        .unwrap();
    default.create(&pp, &secret("c", &[])).await.unwrap();
    other
        .create(&pp, &secret("d", &[("app", "x")]))
        .await
        .unwrap();

    let by_labels = |selector: &'static str| {
        let default = default.clone();
        async move {
            names(
                default
                    .list(&ListParams::default().labels(selector))
                    .await
                    .unwrap(),
            )
        }
    };
    assert_eq!(by_labels("app=x").await, ["a"]);
    assert_eq!(by_labels("app==y").await, ["b"]);
    assert_eq!(by_labels("app!=x").await, ["b", "c"]);
    assert_eq!(by_labels("tier").await, ["a"]);
    assert_eq!(by_labels("!tier").await, ["b", "c"]);
    assert_eq!(
        by_labels("app in (x, y),tier notin (web)").await,
        ["a", "b"]
    );
    assert_eq!(by_labels("app,!tier").await, ["b"]);

    let all: Api<Secret> = Api::all(client);
    assert_eq!(
        names(all.list(&ListParams::default()).await.unwrap()),
        ["a", "b", "c", "d"]
    );
    let by_fields = |selector: &'static str| {
        let all = all.clone();
        async move {
            names(
                all.list(&ListParams::default().fields(selector))
                    .await
                    .unwrap(),
            )
        }
    };
    assert_eq!(by_fields("metadata.name=b").await, ["b"]);
    assert_eq!(by_fields("metadata.namespace=other").await, ["d"]);
    assert_eq!(
        by_fields("metadata.namespace!=other,metadata.name!=a").await,
        ["b", "c"]
    );

    assert_eq!(
        api_error(
            default
                .list(&ListParams::default().labels("app in x"))
                .await
        ),
        (400, "BadRequest".into())
    );
}

#[tokio::test]
async fn replace_checks_resource_version_and_counts_generations() {
    let server = FakeApiServer::start().await;
    let widgets: Api<Widget> = Api::default_namespaced(server.client());
    let first = widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    assert_eq!(first.metadata.generation, Some(1));

    // Unchanged content: no new resourceVersion, recorded as a write that changed nothing.
    let same = widgets
        .replace("w", &PostParams::default(), &first)
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version,
        first.metadata.resource_version
    );
    assert!(!server.writes().last().unwrap().changed);

    let mut bigger = first.clone();
    bigger.spec.size = 2;
    let bigger = widgets
        .replace("w", &PostParams::default(), &bigger)
        .await
        .unwrap();
    assert_eq!(bigger.metadata.generation, Some(2));
    assert_ne!(
        bigger.metadata.resource_version,
        first.metadata.resource_version
    );

    // `first` now carries a stale resourceVersion.
    let mut stale = first.clone();
    stale.spec.size = 3;
    assert_eq!(
        api_error(widgets.replace("w", &PostParams::default(), &stale).await),
        (409, "Conflict".into())
    );

    // Metadata-only changes keep the generation.
    let mut labelled = bigger.clone();
    labelled.labels_mut().insert("team".into(), "a".into());
    let labelled = widgets
        .replace("w", &PostParams::default(), &labelled)
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(2));
    assert_eq!(labelled.labels().get("team").map(String::as_str), Some("a"));

    // Secrets: `data` counts as content.
    let secrets: Api<Secret> = Api::default_namespaced(server.client());
    let mut s = secrets
        .create(&PostParams::default(), &secret("s", &[]))
        .await
        .unwrap();
    s.data = Some([("key".to_owned(), ByteString(b"other".to_vec()))].into());
    assert_eq!(
        secrets
            .replace("s", &PostParams::default(), &s)
            .await
            .unwrap()
            .metadata
            .generation,
        Some(2)
    );

    // Leases (leader election) use the same optimistic concurrency.
    let leases: Api<Lease> = Api::default_namespaced(server.client());
    let mut lease = Lease::default();
    lease.metadata.name = Some("leader".into());
    lease.spec = Some(LeaseSpec {
        holder_identity: Some("one".into()),
        ..Default::default()
    });
    let lease = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut taken = lease.clone();
    taken.spec.as_mut().unwrap().holder_identity = Some("two".into());
    leases
        .replace("leader", &PostParams::default(), &taken)
        .await
        .unwrap();
    let mut late = lease;
    late.spec.as_mut().unwrap().holder_identity = Some("three".into());
    assert_eq!(
        api_error(
            leases
                .replace("leader", &PostParams::default(), &late)
                .await
        )
        .0,
        409
    );
    assert_eq!(
        api_error(
            leases
                .replace("missing", &PostParams::default(), &late)
                .await
        )
        .0,
        400, // the name in the body differs from the URL
    );
}

#[tokio::test]
async fn status_subresource_is_split_from_the_main_resource() {
    let server = FakeApiServer::start().await;
    let widgets: Api<Widget> = Api::default_namespaced(server.client());
    let mut with_status = widget("w", 1);
    with_status.status = Some(WidgetStatus {
        observed_generation: Some(7),
        ready: true,
    });
    let created = widgets
        .create(&PostParams::default(), &with_status)
        .await
        .unwrap();
    assert_eq!(created.status, None, "create ignores status");

    let mut replaced = created.clone();
    replaced.status = with_status.status.clone();
    let replaced = widgets
        .replace("w", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(replaced.status, None, "the main resource ignores status");
    assert_eq!(
        replaced.metadata.resource_version,
        created.metadata.resource_version
    );

    let patch = json!({ "spec": { "size": 99 }, "status": { "ready": true } });
    let patched = widgets
        .patch_status("w", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(patched.spec.size, 1, "/status ignores spec");
    assert_eq!(patched.status.as_ref().map(|s| s.ready), Some(true));
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "status changes keep the generation"
    );

    let mut status_put = patched.clone();
    status_put.status = Some(WidgetStatus {
        observed_generation: Some(1),
        ready: false,
    });
    status_put.spec.size = 42;
    let put = widgets
        .replace_status("w", &PostParams::default(), &status_put)
        .await
        .unwrap();
    assert_eq!(
        (put.spec.size, put.status.unwrap().observed_generation),
        (1, Some(1))
    );

    let main_patch = json!({ "spec": { "size": 5 }, "status": { "ready": true } });
    let main = widgets
        .patch("w", &PatchParams::default(), &Patch::Merge(&main_patch))
        .await
        .unwrap();
    assert_eq!((main.spec.size, main.status.unwrap().ready), (5, false));
    assert_eq!(main.metadata.generation, Some(2));

    let statuses: Vec<_> = server
        .writes()
        .iter()
        .map(|w| w.subresource.clone())
        .collect();
    assert_eq!(
        statuses,
        [
            None,
            None,
            Some("status".into()),
            Some("status".into()),
            None
        ]
    );

    // Built-in kinds with a status subresource behave the same.
    let deployments: Api<Deployment> = Api::default_namespaced(server.client());
    let mut deployment = Deployment::default();
    deployment.metadata.name = Some("d".into());
    deployment.status = Some(DeploymentStatus {
        replicas: Some(3),
        ..Default::default()
    });
    let created = deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    assert_eq!(created.status, None);
    let status = json!({ "status": { "replicas": 1 } });
    let patched = deployments
        .patch_status("d", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(patched.status.and_then(|s| s.replicas), Some(1));

    // Secrets have no status subresource.
    let secrets: Api<Secret> = Api::default_namespaced(server.client());
    secrets
        .create(&PostParams::default(), &secret("s", &[]))
        .await
        .unwrap();
    let result = secrets
        .patch_status("s", &PatchParams::default(), &Patch::Merge(json!({})))
        .await;
    assert_eq!(api_error(result).0, 404);
}

#[tokio::test]
async fn merge_patches_and_no_op_writes() {
    let server = FakeApiServer::start().await;
    let secrets: Api<Secret> = Api::default_namespaced(server.client());
    secrets
        .create(&PostParams::default(), &secret("a", &[("app", "x")]))
        .await
        .unwrap();
    server.clear_writes();

    let patch = json!({ "metadata": { "labels": { "app": null, "tier": "db" } } });
    let patched = secrets
        .patch("a", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(patched.labels().keys().collect::<Vec<_>>(), ["tier"]);
    let rv = server.resource_version();

    // The same patch again, and as a strategic merge patch: nothing changes.
    secrets
        .patch("a", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let strategic = secrets
        .patch("a", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    assert_eq!(server.resource_version(), rv);
    assert_eq!(strategic.metadata.resource_version, Some(rv.to_string()));

    let writes = server.writes();
    let summary: Vec<_> = writes
        .iter()
        .map(|w| (w.content_type.as_deref(), w.changed))
        .collect();
    assert_eq!(
        summary,
        [
            (Some("application/merge-patch+json"), true),
            (Some("application/merge-patch+json"), false),
            (Some("application/strategic-merge-patch+json"), false),
        ]
    );
    assert_eq!(writes[0].body.as_ref(), Some(&patch));

    // A resourceVersion in a patch is a precondition.
    let stale = json!({ "metadata": { "resourceVersion": "1", "labels": { "x": "y" } } });
    let result = secrets
        .patch("a", &PatchParams::default(), &Patch::Merge(&stale))
        .await;
    assert_eq!(api_error(result), (409, "Conflict".into()));
    let missing = secrets
        .patch("nope", &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    assert_eq!(api_error(missing).0, 404);
}

#[tokio::test]
async fn json_patch_with_failing_test_is_unprocessable() {
    let server = FakeApiServer::start().await;
    let widgets: Api<Widget> = Api::default_namespaced(server.client());
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let rv = server.resource_version();

    // A failed `test` rejects the whole patch, as kube's finalizer helper expects.
    let stale: json_patch::Patch = serde_json::from_value(json!([
        { "op": "add", "path": "/metadata/labels", "value": { "a": "b" } },
        { "op": "test", "path": "/metadata/finalizers", "value": ["other"] },
    ]))
    .unwrap();
    let result = widgets
        .patch("w", &PatchParams::default(), &Patch::Json::<()>(stale))
        .await;
    assert_eq!(api_error(result), (422, "Invalid".into()));
    assert_eq!(
        server.resource_version(),
        rv,
        "a failed patch changes nothing"
    );

    // What the helper sends for the first finalizer: `test` for null passes on an absent
    // path, as on the real server.
    let add: json_patch::Patch = serde_json::from_value(json!([
        { "op": "test", "path": "/metadata/finalizers", "value": null },
        { "op": "add", "path": "/metadata/finalizers", "value": ["f"] },
    ]))
    .unwrap();
    let added = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Json::<()>(add.clone()),
        )
        .await
        .unwrap();
    assert_eq!(added.finalizers(), ["f"]);
    let again = widgets
        .patch("w", &PatchParams::default(), &Patch::Json::<()>(add))
        .await;
    assert_eq!(api_error(again).0, 422, "the finalizers are no longer null");

    let malformed = widgets
        .patch("w", &PatchParams::default(), &Patch::Merge(json!([1])))
        .await;
    assert_eq!(
        api_error(malformed).0,
        400,
        "a merge patch must leave an object"
    );
}

#[tokio::test]
async fn server_side_apply_creates_then_updates() {
    let server = FakeApiServer::start().await;
    let widgets: Api<Widget> = Api::default_namespaced(server.client());
    let params = PatchParams::apply("dc-operator").force();
    let body = json!({
        "apiVersion": "fake.digitalchannels.dev/v1",
        "kind": "Widget",
        "metadata": { "name": "w", "labels": { "a": "1" } },
        "spec": { "size": 1 },
    });
    let created = widgets
        .patch("w", &params, &Patch::Apply(&body))
        .await
        .unwrap();
    assert_eq!(
        (created.spec.size, created.metadata.generation),
        (1, Some(1))
    );

    let mut update = body.clone();
    update["spec"]["size"] = json!(2);
    let updated = widgets
        .patch("w", &params, &Patch::Apply(&update))
        .await
        .unwrap();
    assert_eq!(
        (updated.spec.size, updated.metadata.generation),
        (2, Some(2))
    );
    assert_eq!(updated.metadata.uid, created.metadata.uid);

    let write = server.writes().last().cloned().unwrap();
    assert_eq!(
        write.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(write.field_manager.as_deref(), Some("dc-operator"));
    assert!(write.force);

    // Apply bodies may be YAML (kubectl sends YAML).
    let yaml = "apiVersion: fake.digitalchannels.dev/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: 3\n";
    let url = "/apis/fake.digitalchannels.dev/v1/namespaces/default/widgets/w?fieldManager=kubectl";
    let request = http::Request::patch(url)
        .header(http::header::CONTENT_TYPE, "application/apply-patch+yaml")
        .body(yaml.as_bytes().to_vec())
        .unwrap();
    server.client().request_text(request).await.unwrap();
    assert_eq!(
        server.get_as::<Widget>("default", "w").unwrap().spec.size,
        3
    );

    let without_manager = http::Request::patch(url.split('?').next().unwrap())
        .header(http::header::CONTENT_TYPE, "application/apply-patch+yaml")
        .body(yaml.as_bytes().to_vec())
        .unwrap();
    assert_eq!(
        api_error(server.client().request_text(without_manager).await).0,
        400
    );
}

#[tokio::test]
async fn delete_honours_finalizers() {
    let server = FakeApiServer::start().await;
    let secrets: Api<Secret> = Api::default_namespaced(server.client());
    let mut guarded = secret("guarded", &[]);
    guarded.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    secrets
        .create(&PostParams::default(), &guarded)
        .await
        .unwrap();

    let deleting = secrets
        .delete("guarded", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("a finalizer keeps the object");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    let rv = server.resource_version();
    secrets
        .delete("guarded", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        server.resource_version(),
        rv,
        "a second delete changes nothing"
    );

    let mut more = deleting.clone();
    more.metadata.finalizers = Some(vec!["example.com/keep".into(), "example.com/new".into()]);
    let result = secrets
        .replace("guarded", &PostParams::default(), &more)
        .await;
    assert_eq!(api_error(result).0, 422, "no new finalizers while deleting");

    let remove = json!({ "metadata": { "finalizers": null } });
    let last = secrets
        .patch("guarded", &PatchParams::default(), &Patch::Merge(&remove))
        .await
        .unwrap();
    assert!(last.finalizers().is_empty());
    assert_eq!(api_error(secrets.get("guarded").await).0, 404);

    secrets
        .create(&PostParams::default(), &secret("plain", &[]))
        .await
        .unwrap();
    let status = secrets
        .delete("plain", &DeleteParams::default())
        .await
        .unwrap()
        .right()
        .expect("an object without finalizers is removed at once");
    assert_eq!(
        status.status,
        Some(kube::core::response::StatusSummary::Success)
    );
    assert_eq!(
        api_error(secrets.delete("plain", &DeleteParams::default()).await).0,
        404
    );

    let mut preconditioned = secrets
        .create(&PostParams::default(), &secret("p", &[]))
        .await
        .unwrap();
    preconditioned.metadata.uid = Some("other".into());
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("other".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    assert_eq!(api_error(secrets.delete("p", &dp).await).0, 409);
}

#[tokio::test]
async fn watcher_sees_added_modified_and_deleted() {
    let server = FakeApiServer::start().await;
    let secrets: Api<Secret> = Api::default_namespaced(server.client());
    secrets
        .create(&PostParams::default(), &secret("before", &[]))
        .await
        .unwrap();

    let mut events = watcher(secrets.clone(), watcher::Config::default()).boxed();
    assert!(matches!(
        next_event(&mut events).await.unwrap(),
        watcher::Event::Init
    ));
    let watcher::Event::InitApply(listed) = next_event(&mut events).await.unwrap() else {
        panic!("the initial list");
    };
    assert_eq!(listed.name_any(), "before");
    assert!(matches!(
        next_event(&mut events).await.unwrap(),
        watcher::Event::InitDone
    ));

    secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    let label = json!({ "metadata": { "labels": { "x": "1" } } });
    secrets
        .patch("a", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    secrets
        .patch("a", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap(); // no-op
    secrets.delete("a", &DeleteParams::default()).await.unwrap();

    match next_event(&mut events).await.unwrap() {
        watcher::Event::Apply(s) => assert!(s.name_any() == "a" && s.labels().is_empty()),
        other => panic!("expected the creation, got {other:?}"),
    }
    match next_event(&mut events).await.unwrap() {
        watcher::Event::Apply(s) => assert_eq!(s.labels().get("x").map(String::as_str), Some("1")),
        other => panic!("expected the label change, got {other:?}"),
    }
    // The no-op patch produced no event: the deletion comes next.
    match next_event(&mut events).await.unwrap() {
        watcher::Event::Delete(s) => assert_eq!(s.name_any(), "a"),
        other => panic!("expected the deletion, got {other:?}"),
    }

    // Direct changes through the test handle are seen as well.
    server.remove(&ResourceKey::of::<Secret>(), "default", "before");
    assert!(matches!(
        next_event(&mut events).await.unwrap(),
        watcher::Event::Delete(_)
    ));
}

#[tokio::test]
async fn watch_replays_from_a_resource_version_then_ends() {
    let server = FakeApiServer::start().await;
    let secrets: Api<Secret> = Api::default_namespaced(server.client());
    secrets
        .create(&PostParams::default(), &secret("seed", &[]))
        .await
        .unwrap();
    let start = server.resource_version().to_string();
    secrets
        .create(&PostParams::default(), &secret("a", &[("app", "x")]))
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &secret("b", &[]))
        .await
        .unwrap();
    let relabel = json!({ "metadata": { "labels": { "app": "y" } } });
    secrets
        .patch("a", &PatchParams::default(), &Patch::Merge(&relabel))
        .await
        .unwrap();

    // Replayed from history; leaving the label selector reads as a deletion.
    let params = WatchParams::default().labels("app=x").timeout(1);
    let began = std::time::Instant::now();
    let events: Vec<_> = secrets
        .watch(&params, &start)
        .await
        .unwrap()
        .collect()
        .await;
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "the watch ends after timeoutSeconds"
    );
    let kinds: Vec<String> = events
        .into_iter()
        .map(|e| match e.unwrap() {
            WatchEvent::Added(s) => format!("added {}", s.name_any()),
            WatchEvent::Modified(s) => format!("modified {}", s.name_any()),
            WatchEvent::Deleted(s) => format!("deleted {}", s.name_any()),
            WatchEvent::Bookmark(b) => format!("bookmark {}", b.metadata.resource_version),
            WatchEvent::Error(e) => format!("error {}", e.code),
        })
        .collect();
    let rv = server.resource_version();
    assert_eq!(kinds, ["added a", "deleted a", &format!("bookmark {rv}")]);

    // Without a resourceVersion the current state comes first.
    let mut fresh = secrets
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    assert!(
        matches!(next_event(&mut fresh).await.unwrap(), WatchEvent::Added(s) if s.name_any() == "a")
    );

    // Once the history is compacted an old resourceVersion is gone.
    server.compact_history();
    let mut gone = secrets
        .watch(&WatchParams::default(), &start)
        .await
        .unwrap()
        .boxed();
    match next_event(&mut gone).await.unwrap() {
        WatchEvent::Error(status) => assert_eq!(status.code, 410),
        _ => panic!("expected 410 Gone"),
    }
}

#[tokio::test]
async fn streaming_list_watcher_works() {
    let server = FakeApiServer::start().await;
    let secrets: Api<Secret> = Api::default_namespaced(server.client());
    secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    let config = watcher::Config::default().streaming_lists();
    let mut events = watcher(secrets.clone(), config).boxed();
    assert!(matches!(
        next_event(&mut events).await.unwrap(),
        watcher::Event::Init
    ));
    assert!(matches!(
        next_event(&mut events).await.unwrap(),
        watcher::Event::InitApply(_)
    ));
    assert!(matches!(
        next_event(&mut events).await.unwrap(),
        watcher::Event::InitDone
    ));
    secrets
        .create(&PostParams::default(), &secret("b", &[]))
        .await
        .unwrap();
    assert!(
        matches!(next_event(&mut events).await.unwrap(), watcher::Event::Apply(s) if s.name_any() == "b")
    );
}

struct Context {
    widgets: Api<Widget>,
    reconciles: AtomicUsize,
    cleanups: AtomicUsize,
}

impl Context {
    fn new(widgets: Api<Widget>) -> Arc<Self> {
        Arc::new(Self {
            widgets,
            reconciles: AtomicUsize::new(0),
            cleanups: AtomicUsize::new(0),
        })
    }
}

/// Records the observed generation in the status, a typical status write.
async fn reconcile_status(widget: Arc<Widget>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    ctx.reconciles.fetch_add(1, Ordering::SeqCst);
    let status =
        json!({ "status": { "observedGeneration": widget.metadata.generation, "ready": true } });
    ctx.widgets
        .patch_status(
            &widget.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await?;
    Ok(Action::await_change())
}

fn retry_soon<E>(_: Arc<Widget>, _: &E, _: Arc<Context>) -> Action {
    Action::requeue(Duration::from_millis(50))
}

fn observed_generation(server: &FakeApiServer, name: &str) -> Option<i64> {
    server
        .get_as::<Widget>("default", name)?
        .status?
        .observed_generation
}

/// Status writes so far: (changed anything, total).
fn status_writes(server: &FakeApiServer) -> (usize, usize) {
    let writes: Vec<_> = server
        .writes()
        .into_iter()
        .filter(|w| w.subresource.as_deref() == Some("status"))
        .collect();
    (writes.iter().filter(|w| w.changed).count(), writes.len())
}

#[tokio::test]
async fn controller_reconciles_once_per_change() {
    let server = FakeApiServer::start().await;
    let widgets: Api<Widget> = Api::default_namespaced(server.client());
    let ctx = Context::new(widgets.clone());
    let controller = Controller::new(widgets.clone(), watcher::Config::default())
        .run(reconcile_status, retry_soon, ctx.clone())
        .for_each(|_| async {});
    let controller = tokio::spawn(controller);

    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    // One reconcile for the creation writes the status; one for that status change writes
    // nothing, so no further event and no further reconcile.
    server
        .wait_for(WAIT, |s| (status_writes(s) == (1, 2)).then_some(()))
        .await
        .expect("a status write, then a no-op one");
    assert_eq!(observed_generation(&server, "w"), Some(1));

    let spec = json!({ "spec": { "size": 2 } });
    widgets
        .patch("w", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .unwrap();
    server
        .wait_for(WAIT, |s| (status_writes(s) == (2, 4)).then_some(()))
        .await
        .expect("the spec change reconciled");
    assert_eq!(observed_generation(&server, "w"), Some(2));

    // Quiet once settled.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(status_writes(&server), (2, 4));
    assert_eq!(ctx.reconciles.load(Ordering::SeqCst), 4);
    controller.abort();
}

const FINALIZER: &str = "fake.digitalchannels.dev/cleanup";

async fn reconcile_with_finalizer(
    widget: Arc<Widget>,
    ctx: Arc<Context>,
) -> Result<Action, kube::runtime::finalizer::Error<kube::Error>> {
    ctx.reconciles.fetch_add(1, Ordering::SeqCst);
    let widgets = ctx.widgets.clone();
    finalizer(&widgets, FINALIZER, widget, move |event| async move {
        match event {
            FinalizerEvent::Apply(_) => Ok(Action::await_change()),
            FinalizerEvent::Cleanup(_) => {
                ctx.cleanups.fetch_add(1, Ordering::SeqCst);
                Ok(Action::await_change())
            }
        }
    })
    .await
}

#[tokio::test]
async fn finalizer_helper_adds_then_removes_its_finalizer_on_delete() {
    let server = FakeApiServer::start().await;
    let widgets: Api<Widget> = Api::default_namespaced(server.client());
    let ctx = Context::new(widgets.clone());
    let controller = Controller::new(widgets.clone(), watcher::Config::default())
        .run(reconcile_with_finalizer, retry_soon, ctx.clone())
        .for_each(|_| async {});
    let controller = tokio::spawn(controller);

    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    server
        .wait_for(WAIT, |s| {
            let w = s.get_as::<Widget>("default", "w")?;
            (w.finalizers() == [FINALIZER]).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("the finalizer added: {:#?}", server.writes()));

    let deleted = widgets.delete("w", &DeleteParams::default()).await.unwrap();
    assert!(deleted.is_left(), "the finalizer holds the object");
    server
        .wait_for(WAIT, |s| {
            s.get_as::<Widget>("default", "w").is_none().then_some(())
        })
        .await
        .expect("the object removed once cleaned up");
    assert_eq!(ctx.cleanups.load(Ordering::SeqCst), 1);

    let patches: Vec<_> = server
        .writes()
        .into_iter()
        .filter(|w| w.verb == Verb::Patch)
        .map(|w| (w.content_type.unwrap_or_default(), w.status))
        .collect();
    assert_eq!(
        patches,
        [
            ("application/json-patch+json".to_owned(), 200),
            ("application/json-patch+json".to_owned(), 200)
        ]
    );
    controller.abort();
}

#[tokio::test]
async fn recorder_creates_then_updates_events() {
    let server = FakeApiServer::start().await;
    let widgets: Api<Widget> = Api::default_namespaced(server.client());
    let w = widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let recorder = Recorder::new(server.client(), Reporter::from("fake-test"));
    let event = RecordedEvent {
        type_: EventType::Normal,
        reason: "Reconciled".into(),
        note: Some("all good".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let reference = w.object_ref(&());
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();

    let events = server.list_as::<K8sEvent>(Some("default"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(
        events[0].regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("w")
    );
    let verbs: Vec<_> = server
        .writes()
        .iter()
        .map(|w| (w.verb, w.resource.clone()))
        .collect();
    assert_eq!(
        verbs[1..],
        [
            (Verb::Create, "events".into()),
            (Verb::Patch, "events".into())
        ]
    );
}

#[tokio::test]
async fn errors_are_status_objects() {
    let server = FakeApiServer::start().await;
    let client = server.client();
    let raw = |method: http::Method, path: &str, content_type: &str, body: &str| {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body.as_bytes().to_vec())
            .unwrap()
    };
    let unknown = client
        .request_text(raw(
            http::Method::GET,
            "/nothing/here",
            "application/json",
            "",
        ))
        .await;
    assert_eq!(api_error(unknown), (404, "NotFound".into()));
    let secrets_path = "/api/v1/namespaces/default/secrets";
    let malformed = client
        .request_text(raw(
            http::Method::POST,
            secrets_path,
            "application/json",
            "{not json",
        ))
        .await;
    assert_eq!(api_error(malformed), (400, "BadRequest".into()));
    let not_object = client
        .request_text(raw(
            http::Method::POST,
            secrets_path,
            "application/json",
            "[]",
        ))
        .await;
    assert_eq!(api_error(not_object).0, 400);
    let nameless = client
        .request_text(raw(
            http::Method::POST,
            secrets_path,
            "application/json",
            "{}",
        ))
        .await;
    assert_eq!(api_error(nameless).0, 422);

    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    secrets
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    let odd_patch = raw(
        http::Method::PATCH,
        &format!("{secrets_path}/a"),
        "text/plain",
        "{}",
    );
    assert_eq!(api_error(client.request_text(odd_patch).await).0, 415);
    let bad_watch = secrets
        .watch(&WatchParams::default(), "not-a-number")
        .await
        .map(|_| ());
    assert_eq!(api_error(bad_watch).0, 400);

    // Injected failures hit the next matching request only.
    server.fail_next(Verb::Create, "secrets", 500);
    let failed = secrets
        .create(&PostParams::default(), &secret("b", &[]))
        .await;
    assert_eq!(api_error(failed), (500, "InternalError".into()));
    secrets
        .create(&PostParams::default(), &secret("b", &[]))
        .await
        .unwrap();

    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.minor, "33");
}

#[tokio::test]
async fn metadata_only_requests_and_test_helpers() {
    let server = FakeApiServer::start().await;
    let secrets: Api<Secret> = Api::default_namespaced(server.client());
    secrets
        .create(&PostParams::default(), &secret("a", &[("app", "x")]))
        .await
        .unwrap();

    let list = secrets.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].metadata.name.as_deref(), Some("a"));
    let one = secrets.get_metadata("a").await.unwrap();
    assert_eq!(one.labels().get("app").map(String::as_str), Some("x"));

    // Seeding state directly, status included, bypassing the API rules.
    let mut seeded = widget("seeded", 4);
    seeded.status = Some(WidgetStatus {
        observed_generation: Some(1),
        ready: true,
    });
    let stored = server.apply_as(&seeded);
    assert_eq!(stored.status, seeded.status);
    let widgets: Api<Widget> = Api::default_namespaced(server.client());
    assert_eq!(widgets.get("seeded").await.unwrap(), stored);
    // apply_as merges: what the object leaves unset (here the status) is kept.
    let mut relabelled = widget("seeded", 5);
    relabelled
        .labels_mut()
        .insert("team".into(), "digital".into());
    let merged = server.apply_as(&relabelled);
    assert_eq!(merged.status, seeded.status);
    assert_eq!((merged.spec.size, merged.metadata.generation), (5, Some(2)));
    assert_eq!(merged.metadata.uid, stored.metadata.uid);
    // insert replaces the whole object.
    let replaced = server.insert(
        &ResourceKey::of::<Widget>(),
        serde_json::to_value(widget("seeded", 5)).unwrap(),
    );
    assert!(replaced.get("status").is_none() && replaced.pointer("/metadata/labels").is_none());
    assert_eq!(server.apply_as(&seeded).status, seeded.status);

    let key = ResourceKey::of::<Widget>();
    assert_eq!(key.api_version(), "fake.digitalchannels.dev/v1");
    assert_eq!(server.objects(&key, None).len(), 1);
    assert!(server.object(&key, "default", "seeded").is_some());
    assert!(server.delete_as::<Widget>("default", "seeded"));
    assert!(server.get_as::<Widget>("default", "seeded").is_none());

    // Lists of an unknown resource still get a sensible kind.
    let gadgets = server
        .client()
        .request_text(
            http::Request::get("/apis/example.com/v1/namespaces/default/gadgetries")
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let gadgets: serde_json::Value = serde_json::from_str(&gadgets).unwrap();
    assert_eq!(gadgets["kind"], "GadgetryList");
    assert!(
        server.writes().iter().all(|w| w.resource == "secrets"),
        "helpers are not recorded"
    );
}
