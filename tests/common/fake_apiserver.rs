//! An in-memory fake of the Kubernetes API server, for testing controllers without a cluster.
//!
//! It serves the REST API over plain HTTP on 127.0.0.1, so an unmodified `kube::Client`, and
//! kube-runtime's `watcher`, `Controller`, `finalizer` helper and event `Recorder`, run against
//! it. It knows no schemas: objects are JSON values keyed by (group, plural, namespace, name),
//! and any resource path works. What tests can observe follows the real server:
//!
//! - one global resourceVersion counter; every change emits exactly one watch event, and a
//!   write that changes nothing neither bumps the resourceVersion nor emits an event;
//! - `metadata.generation` counts changes outside `metadata` and `status`;
//! - optimistic concurrency (409 Conflict) on a stale `metadata.resourceVersion`;
//! - the status subresource split for CRD-like groups (and a few built-ins such as
//!   deployments): the main resource ignores `status`, `/status` changes only `status`;
//! - merge, strategic-merge (as merge), JSON (RFC 6902, a failed `test` is 422) and
//!   server-side apply patches (approximated as a merge patch that creates when absent; on
//!   the status subresource the applied `status` replaces the stored one, as for a single
//!   manager of status);
//! - finalizers and `deletionTimestamp`;
//! - watches replay the last [`HISTORY_LIMIT`] events from a resourceVersion, answer a
//!   compacted one with an `ERROR` 410 event, end after `timeoutSeconds`, and support
//!   bookmarks and `sendInitialEvents` streaming lists;
//! - metadata-only requests (`as=PartialObjectMetadata` in `Accept`).
//!
//! Not modelled, because `tests/e2e/` proves it on a real API server: RBAC, admission and
//! validation, `managedFields` and apply field ownership, garbage collection by owner
//! reference, deleting a namespace's contents with it. Nor discovery, defaulting, or list
//! `resourceVersion` semantics (lists always serve the latest state).
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

/// How many change events are kept for watches resuming from an older resourceVersion.
pub const HISTORY_LIMIT: usize = 10_000;

/// Watch duration when the client sends no `timeoutSeconds` (the real server picks 30–60 min).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// An API resource: group (empty for core), version and plural name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    pub group: String,
    pub version: String,
    pub plural: String,
}

impl ResourceKey {
    /// `ResourceKey::new("", "v1", "secrets")`.
    pub fn new(group: &str, version: &str, plural: &str) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: plural.to_owned(),
        }
    }

    /// The resource of a static kube type, e.g. `ResourceKey::of::<Secret>()`.
    pub fn of<K: kube::Resource<DynamicType = ()>>() -> Self {
        Self::new(&K::group(&()), &K::version(&()), &K::plural(&()))
    }

    /// `v1` for core, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The key of learned kinds: versions share one.
    fn kind_key(&self) -> (String, String) {
        (self.group.clone(), self.plural.clone())
    }

    /// `plural` for core, `plural.group` otherwise, as in the real server's messages.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// The kind of API request, as Kubernetes RBAC names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }

    /// Whether requests with this verb are recorded by [`FakeApiServer::writes`].
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Verb::Create | Verb::Update | Verb::Patch | Verb::Delete | Verb::DeleteCollection
        )
    }
}

/// One mutating request, recorded whatever its outcome.
#[derive(Clone, Debug)]
pub struct WriteRecord {
    pub verb: Verb,
    pub group: String,
    /// The resource plural, e.g. `secrets`.
    pub resource: String,
    /// e.g. `Some("status")`.
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    /// From the path, or for a create the name of the created object.
    pub name: Option<String>,
    /// The request's `Content-Type` without parameters (tells patch kinds apart).
    pub content_type: Option<String>,
    /// The `fieldManager` query parameter.
    pub field_manager: Option<String>,
    /// The `force` query parameter (server-side apply).
    pub force: bool,
    /// The request body parsed as JSON (or YAML for apply), if it parsed.
    pub body: Option<Value>,
    /// The HTTP status code of the response.
    pub status: u16,
    /// Whether the request changed stored state (false for no-op writes and failures).
    pub changed: bool,
}

/// The fake API server. Dropping it ends open watches and stops accepting connections.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    client: kube::Client,
    task: tokio::task::JoinHandle<()>,
}

impl FakeApiServer {
    /// Binds 127.0.0.1 on a free port and serves in a background tokio task.
    pub async fn start() -> FakeApiServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the fake API server");
        let addr = listener
            .local_addr()
            .expect("local address of the fake API server");
        let shared = Arc::new(Shared::new());
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!("fake API server stopped: {e}");
            }
        });
        let uri: http::Uri = format!("http://{addr}")
            .parse()
            .expect("fake API server URL");
        let client = kube::Client::try_from(kube::Config::new(uri))
            .expect("kube client for the fake API server");
        FakeApiServer {
            shared,
            addr,
            client,
            task,
        }
    }

    /// A client for this server, with default namespace `default`.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A kubeconfig for this server (no credentials: it asks for none), written into `dir`.
    pub fn write_kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        let server = self.url();
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster: {{server: \"{server}\"}}\n\
                 contexts:\n- name: fake\n  context: {{cluster: fake, user: fake, namespace: default}}\nusers:\n- name: fake\n  user: {{}}\n"
            ),
        )
        .expect("write kubeconfig");
        path
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.store).rv
    }

    /// A stored object; `namespace` is `""` for cluster-scoped objects.
    pub fn object(&self, resource: &ResourceKey, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.shared.store)
            .objects
            .get(&ObjKey::new(resource, namespace, name))
            .cloned()
    }

    /// Stored objects of a resource, in one namespace or (with `None`) all, sorted by
    /// namespace and name.
    pub fn objects(&self, resource: &ResourceKey, namespace: Option<&str>) -> Vec<Value> {
        let store = lock(&self.shared.store);
        store
            .objects
            .iter()
            .filter(|(k, _)| k.is_of(resource) && namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A stored object as a typed value. Panics if it doesn't deserialize as `K`.
    pub fn get_as<K>(&self, namespace: &str, name: &str) -> Option<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        let value = self.object(&ResourceKey::of::<K>(), namespace, name)?;
        Some(from_value(value))
    }

    /// Stored objects as typed values (see [`FakeApiServer::objects`]).
    pub fn list_as<K>(&self, namespace: Option<&str>) -> Vec<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        self.objects(&ResourceKey::of::<K>(), namespace)
            .into_iter()
            .map(from_value)
            .collect()
    }

    /// Creates or replaces an object directly, status included, bypassing the API rules (no
    /// conflict check, no status split, no finalizer checks): fills uid, creationTimestamp,
    /// resourceVersion and generation and emits one watch event (none if unchanged). A
    /// deleting object left without finalizers is removed. The namespace comes from
    /// `metadata.namespace` (none: cluster-scoped). Not recorded in [`FakeApiServer::writes`].
    /// Panics on an object without `metadata.name`.
    pub fn insert(&self, resource: &ResourceKey, object: Value) -> Value {
        self.shared
            .mutate(false, |store| store.upsert(resource, object, false))
            .0
            .unwrap_or_else(|e| panic!("FakeApiServer::insert: {}", e.message))
    }

    /// Like [`FakeApiServer::insert`] for a typed object, but merged into the stored one (JSON
    /// merge patch): fields the object leaves unset (`None`), such as the finalizers or the
    /// status a controller wrote, are kept. Creates the object when absent.
    pub fn apply_as<K>(&self, object: &K) -> K
    where
        K: kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let value = serde_json::to_value(object).expect("serialize object");
        let key = ResourceKey::of::<K>();
        let stored = self
            .shared
            .mutate(false, |store| {
                store
                    .kinds
                    .insert(key.kind_key(), K::kind(&()).into_owned());
                store.upsert(&key, value, true)
            })
            .0
            .unwrap_or_else(|e| panic!("FakeApiServer::apply_as: {}", e.message));
        from_value(stored)
    }

    /// Deletes like an API DELETE: with finalizers it only sets `deletionTimestamp`,
    /// otherwise it removes the object and garbage-collects its dependents. Returns whether
    /// the object existed.
    pub fn delete(&self, resource: &ResourceKey, namespace: &str, name: &str) -> bool {
        let key = ObjKey::new(resource, namespace, name);
        self.shared
            .mutate(false, |store| store.delete(&key))
            .0
            .is_some()
    }

    /// [`FakeApiServer::delete`] for a typed resource.
    pub fn delete_as<K: kube::Resource<DynamicType = ()>>(
        &self,
        namespace: &str,
        name: &str,
    ) -> bool {
        self.delete(&ResourceKey::of::<K>(), namespace, name)
    }

    /// Removes an object at once, ignoring finalizers and owners (emits DELETED, no garbage
    /// collection), to break state behind a controller's back.
    pub fn remove(&self, resource: &ResourceKey, namespace: &str, name: &str) -> Option<Value> {
        let key = ObjKey::new(resource, namespace, name);
        self.shared
            .mutate(false, |store| store.remove_now(&key, None))
            .0
    }

    /// Forgets the watch history, as etcd compaction does: a watch from any older
    /// resourceVersion then gets a 410 Gone `ERROR` event and watchers must re-list.
    pub fn compact_history(&self) {
        let mut store = lock(&self.shared.store);
        store.compacted = store.rv;
        store.history.clear();
    }

    /// Every mutating request so far, in order.
    pub fn writes(&self) -> Vec<WriteRecord> {
        lock(&self.shared.journal).writes.clone()
    }

    pub fn clear_writes(&self) {
        lock(&self.shared.journal).writes.clear();
    }

    /// Makes the next request with this verb on this resource plural fail with `code` (and
    /// a matching `Status`), without touching state. Several calls queue several failures.
    pub fn fail_next(&self, verb: Verb, resource: &str, code: u16) {
        lock(&self.shared.journal).faults.push(Fault {
            verb,
            resource: resource.to_owned(),
            code,
        });
    }

    /// Makes the next `count` writes (create, update, patch, delete) to `resource` (a plural)
    /// and `subresource` (`None`: the object itself, `Some("status")`: its status) fail with
    /// `code` without touching state. A 429 carries `Retry-After: 1`, as the real server's
    /// priority and fairness does. Writes of other resources or subresources pass.
    pub fn fail_writes(&self, resource: &str, subresource: Option<&str>, count: usize, code: u16) {
        self.queue_write_fault(resource, subresource, count, code, false);
    }

    /// Like [`FakeApiServer::fail_writes`], but each write takes effect before its answer is
    /// replaced by `code`: the client cannot tell whether it happened (a timeout, a connection
    /// lost after the commit).
    pub fn lose_write_answers(
        &self,
        resource: &str,
        subresource: Option<&str>,
        count: usize,
        code: u16,
    ) {
        self.queue_write_fault(resource, subresource, count, code, true);
    }

    fn queue_write_fault(
        &self,
        resource: &str,
        subresource: Option<&str>,
        count: usize,
        code: u16,
        lose_answer: bool,
    ) {
        lock(&self.shared.journal).write_faults.push(WriteFault {
            resource: resource.to_owned(),
            subresource: subresource.map(str::to_owned),
            remaining: count,
            code,
            lose_answer,
        });
    }

    /// Write faults queued but not yet met.
    pub fn pending_write_faults(&self) -> usize {
        lock(&self.shared.journal)
            .write_faults
            .iter()
            .map(|f| f.remaining)
            .sum()
    }

    /// Breaks every open watch now, as a restarted API server or a dropped connection does:
    /// each stream ends with an error mid-body. Watches opened after the call are served.
    pub fn drop_watches(&self) {
        self.shared.cut_watches.send_modify(|epoch| *epoch += 1);
    }

    /// Holds back every watch event of `plural` (watchers' caches stop where they are) until
    /// [`FakeApiServer::release_watch_events`], which sends what was held, in order.
    pub fn hold_watch_events(&self, plural: &str) {
        lock(&self.shared.held).push(plural.to_string());
    }

    pub fn release_watch_events(&self, plural: &str) {
        lock(&self.shared.held).retain(|p| p != plural);
        let rv = lock(&self.shared.store).rv;
        self.shared.changes.send_replace(rv);
    }

    /// Watch requests served so far (each reconnect of a watcher is one).
    pub fn watch_requests(&self) -> usize {
        lock(&self.shared.journal).watch_requests
    }

    /// Requests with `verb` of `plural` so far (each list or relist of a watcher is one
    /// `List`).
    pub fn requests_of(&self, verb: Verb, plural: &str) -> usize {
        let journal = lock(&self.shared.journal);
        let key = (verb, plural.to_string());
        journal.by_verb.get(&key).copied().unwrap_or(0)
    }

    /// Requests of any kind received so far (failed ones included).
    pub fn requests(&self) -> usize {
        lock(&self.shared.journal).requests
    }

    /// Evaluates `check` after every stored change (and at least every 20 ms) until it returns
    /// `Some`, or `timeout` passes (then `None`).
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&Self) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.shared.changes.subscribe();
        loop {
            changes.borrow_and_update();
            if let Some(found) = check(self) {
                return Some(found);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
        self.task.abort();
    }
}

fn from_value<K: DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value)
        .unwrap_or_else(|e| panic!("stored object does not deserialize: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------------------------

/// State shared by the request handlers and the test-facing handle.
struct Shared {
    store: Mutex<Store>,
    journal: Mutex<Journal>,
    /// Carries the latest resourceVersion; watches wake on every change.
    changes: watch::Sender<u64>,
    /// Set when the server is dropped, so open watch streams end.
    shutdown: watch::Sender<bool>,
    /// Bumped by [`FakeApiServer::drop_watches`]: open watch streams break.
    cut_watches: watch::Sender<u64>,
    /// Resources (plural) whose watch events are held back by
    /// [`FakeApiServer::hold_watch_events`]: a watcher's cache lags behind the store.
    held: Mutex<Vec<String>>,
}

impl Shared {
    fn new() -> Self {
        Self {
            store: Mutex::new(Store::default()),
            journal: Mutex::new(Journal::default()),
            changes: watch::channel(0).0,
            shutdown: watch::channel(false).0,
            cut_watches: watch::channel(0).0,
            held: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on the store (on a scratch copy for a dry run), then wakes watchers if it
    /// changed anything. Returns the result and whether state changed.
    fn mutate<T>(&self, dry_run: bool, f: impl FnOnce(&mut Store) -> T) -> (T, bool) {
        let mut store = lock(&self.store);
        if dry_run {
            let mut scratch = store.clone();
            return (f(&mut scratch), false);
        }
        let before = store.rv;
        let out = f(&mut store);
        let changed = store.rv != before;
        if changed {
            self.changes.send_replace(store.rv);
        }
        (out, changed)
    }

    fn take_fault(&self, verb: Verb, resource: &str) -> Option<u16> {
        let mut journal = lock(&self.journal);
        let index = journal
            .faults
            .iter()
            .position(|f| f.verb == verb && f.resource == resource)?;
        Some(journal.faults.remove(index).code)
    }

    /// The first queued write fault for this write, used up by one.
    fn take_write_fault(&self, route: &Route) -> Option<(u16, bool)> {
        let mut journal = lock(&self.journal);
        let index = journal.write_faults.iter().position(|f| {
            f.remaining > 0
                && f.resource == route.resource.plural
                && f.subresource == route.subresource
        })?;
        let fault = &mut journal.write_faults[index];
        fault.remaining -= 1;
        let found = (fault.code, fault.lose_answer);
        if fault.remaining == 0 {
            journal.write_faults.remove(index);
        }
        Some(found)
    }
}

#[derive(Default)]
struct Journal {
    writes: Vec<WriteRecord>,
    faults: Vec<Fault>,
    write_faults: Vec<WriteFault>,
    watch_requests: usize,
    /// Requests by verb and resource plural.
    by_verb: HashMap<(Verb, String), usize>,
    requests: usize,
}

/// See [`FakeApiServer::fail_writes`] and [`FakeApiServer::lose_write_answers`].
struct WriteFault {
    resource: String,
    subresource: Option<String>,
    remaining: usize,
    code: u16,
    lose_answer: bool,
}

struct Fault {
    verb: Verb,
    resource: String,
    code: u16,
}

/// Objects are keyed without the version: versions are views of one stored resource.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct ObjKey {
    group: String,
    plural: String,
    namespace: String,
    name: String,
}

impl ObjKey {
    fn new(resource: &ResourceKey, namespace: &str, name: &str) -> Self {
        Self {
            group: resource.group.clone(),
            plural: resource.plural.clone(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    fn is_of(&self, resource: &ResourceKey) -> bool {
        self.group == resource.group && self.plural == resource.plural
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One entry of the watch history.
#[derive(Clone)]
struct Change {
    rv: u64,
    key: ObjKey,
    kind: ChangeKind,
    object: Arc<Value>,
    /// The state before the change (for selector transitions).
    previous: Option<Arc<Value>>,
}

#[derive(Clone, Default)]
struct Store {
    rv: u64,
    objects: BTreeMap<ObjKey, Value>,
    history: VecDeque<Change>,
    /// Events up to this resourceVersion can no longer be replayed.
    compacted: u64,
    /// Kinds learned from created objects, by (group, plural).
    kinds: HashMap<(String, String), String>,
}

enum Deletion {
    /// Finalizers remain: the object now carries a deletionTimestamp.
    Pending(Value),
    /// The object is gone (its final state).
    Removed(Value),
}

impl Store {
    fn kind_of(&self, resource: &ResourceKey) -> String {
        self.kinds
            .get(&resource.kind_key())
            .cloned()
            .unwrap_or_else(|| kind_for_plural(&resource.plural))
    }

    /// Stores `object` under a new resourceVersion and records the change.
    fn put(&mut self, key: ObjKey, mut object: Value, kind: ChangeKind) -> Value {
        self.rv += 1;
        meta_mut(&mut object).insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        let previous = self.objects.insert(key.clone(), object.clone());
        self.record(key, kind, object.clone(), previous);
        object
    }

    fn record(&mut self, key: ObjKey, kind: ChangeKind, object: Value, previous: Option<Value>) {
        self.history.push_back(Change {
            rv: self.rv,
            key,
            kind,
            object: Arc::new(object),
            previous: previous.map(Arc::new),
        });
        while self.history.len() > HISTORY_LIMIT {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.rv;
            }
        }
    }

    /// Removes an object now (DELETED event carrying `final_state` or the stored object).
    fn remove_now(&mut self, key: &ObjKey, final_state: Option<Value>) -> Option<Value> {
        let previous = self.objects.remove(key)?;
        let mut object = final_state.unwrap_or_else(|| previous.clone());
        self.rv += 1;
        meta_mut(&mut object).insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        self.record(
            key.clone(),
            ChangeKind::Deleted,
            object.clone(),
            Some(previous),
        );
        Some(object)
    }

    /// API DELETE semantics (finalizers, then garbage collection).
    fn delete(&mut self, key: &ObjKey) -> Option<Deletion> {
        let object = self.objects.get(key)?.clone();
        if finalizers(&object).is_empty() {
            return self.remove_now(key, None).map(Deletion::Removed);
        }
        if meta_str(&object, "deletionTimestamp").is_some() {
            return Some(Deletion::Pending(object));
        }
        let mut marked = object;
        let meta = meta_mut(&mut marked);
        meta.insert("deletionTimestamp".into(), Value::String(now_rfc3339()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        Some(Deletion::Pending(self.put(
            key.clone(),
            marked,
            ChangeKind::Modified,
        )))
    }

    /// Creates an object; `namespace` is authoritative ("" for cluster-scoped).
    fn create(
        &mut self,
        resource: &ResourceKey,
        namespace: &str,
        mut object: Value,
        keep_status: bool,
    ) -> Result<Value, ApiError> {
        if !object.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        if let Some(body_ns) = meta_str(&object, "namespace")
            && !namespace.is_empty()
            && body_ns != namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let name = match (meta_str(&object, "name"), meta_str(&object, "generateName")) {
            (Some(name), _) if !name.is_empty() => name.to_owned(),
            (_, Some(prefix)) if !prefix.is_empty() => format!("{prefix}{}", random_suffix()),
            _ => {
                return Err(ApiError::invalid(
                    resource,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
        };
        let key = ObjKey::new(resource, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(resource, &name));
        }
        self.learn_kind(resource, &object);
        let kind = self.kind_of(resource);
        let map = object_mut(&mut object);
        map.entry("apiVersion")
            .or_insert_with(|| Value::String(resource.api_version()));
        map.entry("kind").or_insert_with(|| Value::String(kind));
        if !keep_status && has_status_subresource(resource) {
            map.remove("status");
        }
        let meta = meta_mut(&mut object);
        meta.insert("name".into(), Value::String(name));
        if namespace.is_empty() {
            meta.remove("namespace");
        } else {
            meta.insert("namespace".into(), Value::String(namespace.to_owned()));
        }
        meta.insert(
            "uid".into(),
            Value::String(uuid::Uuid::new_v4().to_string()),
        );
        meta.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
        meta.insert("generation".into(), json!(1));
        if !keep_status {
            meta.remove("deletionTimestamp");
            meta.remove("deletionGracePeriodSeconds");
        }
        normalize(&mut object);
        Ok(self.put(key, object, ChangeKind::Added))
    }

    /// Applies an update (PUT, or a patch's result) to an existing object: the status split,
    /// server-owned metadata, the generation rule, no-op detection and finalizer completion.
    fn write_existing(
        &mut self,
        resource: &ResourceKey,
        key: &ObjKey,
        status_only: bool,
        old: Value,
        candidate: Value,
    ) -> Result<Value, ApiError> {
        if !candidate.is_object() {
            return Err(ApiError::bad_request("the object must be a JSON object"));
        }
        if let Some(name) = meta_str(&candidate, "name")
            && name != key.name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                key.name
            )));
        }
        if let Some(ns) = meta_str(&candidate, "namespace")
            && !key.namespace.is_empty()
            && ns != key.namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let stored_rv = meta_str(&old, "resourceVersion").unwrap_or_default();
        if let Some(rv) = meta_str(&candidate, "resourceVersion")
            && !rv.is_empty()
            && rv != stored_rv
        {
            return Err(ApiError::conflict(resource, &key.name));
        }

        let mut new = if status_only {
            let mut new = old.clone();
            set_or_remove(&mut new, "status", candidate.get("status"));
            new
        } else if has_status_subresource(resource) {
            let mut new = candidate;
            set_or_remove(&mut new, "status", old.get("status"));
            new
        } else {
            candidate
        };
        for field in ["apiVersion", "kind"] {
            if new.get(field).is_none()
                && let Some(value) = old.get(field)
            {
                object_mut(&mut new).insert(field.into(), value.clone());
            }
        }
        // Server-owned metadata can't be changed by clients.
        let old_meta = old
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let meta = meta_mut(&mut new);
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match old_meta.get(field) {
                Some(value) => meta.insert(field.into(), value.clone()),
                None => meta.remove(field),
            };
        }
        normalize(&mut new);

        let deleting = meta_str(&old, "deletionTimestamp").is_some();
        if deleting {
            let old_finalizers = finalizers(&old);
            if finalizers(&new).iter().any(|f| !old_finalizers.contains(f)) {
                return Err(ApiError::invalid(
                    resource,
                    &key.name,
                    "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
                ));
            }
        }
        if content_without_meta_and_status(&new) != content_without_meta_and_status(&old) {
            let generation = old_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            meta_mut(&mut new).insert("generation".into(), json!(generation));
        }
        if new == old {
            // The real server skips no-op updates: same resourceVersion, no event.
            return Ok(old);
        }
        if deleting && finalizers(&new).is_empty() {
            // The last finalizer is gone: the object is removed (one DELETED event).
            return self
                .remove_now(key, Some(new))
                .ok_or_else(|| ApiError::not_found(resource, &key.name));
        }
        Ok(self.put(key.clone(), new, ChangeKind::Modified))
    }

    /// Insert-or-replace (or merge) for tests: see [`FakeApiServer::insert`] and
    /// [`FakeApiServer::apply_as`].
    fn upsert(
        &mut self,
        resource: &ResourceKey,
        object: Value,
        merge: bool,
    ) -> Result<Value, ApiError> {
        let name = meta_str(&object, "name").unwrap_or_default().to_owned();
        if name.is_empty() {
            return Err(ApiError::bad_request("the object has no metadata.name"));
        }
        let namespace = meta_str(&object, "namespace")
            .unwrap_or_default()
            .to_owned();
        let key = ObjKey::new(resource, &namespace, &name);
        let Some(old) = self.objects.get(&key).cloned() else {
            return self.create(resource, &namespace, object, true);
        };
        let mut new = if merge {
            let mut merged = old.clone();
            json_patch::merge(&mut merged, &object);
            merged
        } else {
            object
        };
        let old_meta = old
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let meta = meta_mut(&mut new);
        for field in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
            if let Some(value) = old_meta.get(field) {
                meta.insert(field.into(), value.clone());
            }
        }
        for field in ["apiVersion", "kind"] {
            if new.get(field).is_none()
                && let Some(value) = old.get(field)
            {
                object_mut(&mut new).insert(field.into(), value.clone());
            }
        }
        normalize(&mut new);
        if content_without_meta_and_status(&new) != content_without_meta_and_status(&old) {
            let generation = old_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            meta_mut(&mut new).insert("generation".into(), json!(generation));
        }
        if new == old {
            return Ok(old);
        }
        if meta_str(&new, "deletionTimestamp").is_some() && finalizers(&new).is_empty() {
            return self
                .remove_now(&key, Some(new))
                .ok_or_else(|| ApiError::not_found(resource, &name));
        }
        Ok(self.put(key, new, ChangeKind::Modified))
    }

    fn learn_kind(&mut self, resource: &ResourceKey, object: &Value) {
        if let Some(kind) = object.get("kind").and_then(Value::as_str)
            && !kind.is_empty()
        {
            self.kinds.insert(resource.kind_key(), kind.to_owned());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

/// A parsed API path.
#[derive(Clone, Debug)]
struct Route {
    resource: ResourceKey,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

impl Route {
    /// Parses `/api/v1/...` and `/apis/{group}/{version}/...` paths.
    fn parse(path: &str) -> Option<Route> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return None;
        }
        let (group, version, rest) = match segments.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return None,
        };
        let owned = |s: &&str| Some((*s).to_owned());
        let (namespace, plural, name, subresource) = match rest {
            [plural] => (None, *plural, None, None),
            [plural, name] => (None, *plural, owned(name), None),
            // `namespaces/{name}/status` is the Namespace's own subresource.
            ["namespaces", name, sub @ ("status" | "finalize")] => {
                (None, "namespaces", owned(name), owned(sub))
            }
            ["namespaces", ns, plural] => (owned(ns), *plural, None, None),
            [plural, name, sub] => (None, *plural, owned(name), owned(sub)),
            ["namespaces", ns, plural, name] => (owned(ns), *plural, owned(name), None),
            ["namespaces", ns, plural, name, sub] => (owned(ns), *plural, owned(name), owned(sub)),
            _ => return None,
        };
        Some(Route {
            resource: ResourceKey::new(group, version, plural),
            namespace,
            name,
            subresource,
        })
    }

    fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    fn key(&self) -> ObjKey {
        ObjKey::new(&self.resource, self.namespace(), self.name())
    }
}

/// Query parameters (kube sends `?&watch=true...`; empty pairs are skipped).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(uri: &Uri) -> Result<Params, ApiError> {
        Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|Query(pairs)| Params(pairs))
            .map_err(|e| ApiError::bad_request(format!("malformed query: {e}")))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

fn classify(method: &Method, route: &Route, params: &Params) -> Option<Verb> {
    let named = route.name.is_some();
    Some(match *method {
        Method::GET if params.flag("watch") => Verb::Watch,
        Method::GET if named => Verb::Get,
        Method::GET => Verb::List,
        Method::POST if !named => Verb::Create,
        Method::PUT if named => Verb::Update,
        Method::PATCH if named => Verb::Patch,
        Method::DELETE if named => Verb::Delete,
        Method::DELETE => Verb::DeleteCollection,
        _ => return None,
    })
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = route_request(shared, &method, &uri, &headers, &body);
    tracing::debug!(%method, %uri, status = response.status().as_u16(), "fake API server");
    response
}

fn route_request(
    shared: Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    if uri.path() == "/version" {
        return json_response(StatusCode::OK, &version_info());
    }
    let Some(route) = Route::parse(uri.path()) else {
        return ApiError::no_route().into_response();
    };
    let params = match Params::parse(uri) {
        Ok(params) => params,
        Err(e) => return e.into_response(),
    };
    let Some(verb) = classify(method, &route, &params) else {
        return ApiError::method_not_allowed(method).into_response();
    };
    let metadata_only = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("as=PartialObjectMetadata"));
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });

    {
        let mut journal = lock(&shared.journal);
        journal.requests += 1;
        if verb == Verb::Watch {
            journal.watch_requests += 1;
        }
        let key = (verb, route.resource.plural.clone());
        *journal.by_verb.entry(key).or_default() += 1;
    }
    let fault = shared.take_fault(verb, &route.resource.plural);
    // A `fail_next` fault comes first; a write fault is used up only when none did.
    let write_fault = match fault {
        None if verb.is_write() => shared.take_write_fault(&route),
        _ => None,
    };
    let (result, changed) = match fault {
        Some(code) => (Err(ApiError::injected(code)), false),
        None if matches!(write_fault, Some((_, false))) => {
            let code = write_fault.map_or(500, |(code, _)| code);
            (Err(ApiError::injected(code)), false)
        }
        None if verb == Verb::Watch => {
            return match start_watch(shared, &route, &params, metadata_only) {
                Ok(response) => response,
                Err(e) => e.into_response(),
            };
        }
        None => {
            let dry_run =
                params.get("dryRun") == Some("All") || (verb == Verb::Delete && body_dry_run(body));
            let (result, changed) = shared.mutate(dry_run, |store| {
                dispatch(store, verb, &route, &params, content_type.as_deref(), body)
            });
            match write_fault {
                // Done, but the answer is lost.
                Some((code, _)) => (Err(ApiError::injected(code)), changed),
                None => (result, changed),
            }
        }
    };
    let (status, value) = match result {
        Ok(reply) => (reply.code, reply.render(metadata_only)),
        Err(e) => (e.code, e.to_status()),
    };
    if verb.is_write() {
        let created_name = (verb == Verb::Create && status.is_success())
            .then(|| {
                value
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .flatten();
        lock(&shared.journal).writes.push(WriteRecord {
            verb,
            group: route.resource.group.clone(),
            resource: route.resource.plural.clone(),
            subresource: route.subresource.clone(),
            namespace: route.namespace.clone(),
            name: route.name.clone().or(created_name),
            content_type,
            field_manager: params.get("fieldManager").map(str::to_owned),
            force: params.flag("force"),
            body: parse_json_or_yaml(body),
            status: status.as_u16(),
            changed,
        });
    }
    let mut response = json_response(status, &value);
    if status == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

/// A successful answer before rendering (metadata-only clients get a reduced form).
struct Reply {
    code: StatusCode,
    body: Value,
    shape: Shape,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Object,
    List,
    Status,
}

impl Reply {
    fn object(code: StatusCode, body: Value) -> Reply {
        Reply {
            code,
            body,
            shape: Shape::Object,
        }
    }

    fn render(self, metadata_only: bool) -> Value {
        match (metadata_only, self.shape) {
            (true, Shape::Object) => partial_metadata(&self.body),
            (true, Shape::List) => {
                let items: Vec<Value> = self
                    .body
                    .get("items")
                    .and_then(Value::as_array)
                    .map(|items| items.iter().map(partial_metadata).collect())
                    .unwrap_or_default();
                json!({
                    "apiVersion": "meta.k8s.io/v1",
                    "kind": "PartialObjectMetadataList",
                    "metadata": self.body.get("metadata").cloned().unwrap_or_else(|| json!({})),
                    "items": items,
                })
            }
            _ => self.body,
        }
    }
}

fn dispatch(
    store: &mut Store,
    verb: Verb,
    route: &Route,
    params: &Params,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let status_only = match route.subresource.as_deref() {
        None => false,
        Some("status") if has_status_subresource(&route.resource) => true,
        Some(_) => return Err(ApiError::no_route()),
    };
    if status_only && !matches!(verb, Verb::Get | Verb::Update | Verb::Patch) {
        return Err(ApiError::method_not_allowed(&Method::POST));
    }
    match verb {
        Verb::Get => get(store, route),
        Verb::List => list(store, route, params),
        Verb::Create => create(store, route, body),
        Verb::Update => update(store, route, status_only, body),
        Verb::Patch => patch(store, route, status_only, params, content_type, body),
        Verb::Delete => delete(store, route, body),
        Verb::DeleteCollection => delete_collection(store, route, params),
        Verb::Watch => Err(ApiError::bad_request("watch is served as a stream")),
    }
}

fn get(store: &Store, route: &Route) -> Result<Reply, ApiError> {
    store
        .objects
        .get(&route.key())
        .map(|object| Reply::object(StatusCode::OK, object.clone()))
        .ok_or_else(|| ApiError::not_found(&route.resource, route.name()))
}

fn list(store: &Store, route: &Route, params: &Params) -> Result<Reply, ApiError> {
    let selector = Selector::from_params(params, None)?;
    let matching: Vec<&Value> = matching_objects(store, route, &selector).collect();
    // Continue tokens are "{list resourceVersion}-{offset}".
    let (list_rv, offset) = match params.get("continue").filter(|c| !c.is_empty()) {
        None => (store.rv, 0),
        Some(token) => token
            .split_once('-')
            .and_then(|(rv, offset)| Some((rv.parse().ok()?, offset.parse().ok()?)))
            .ok_or_else(|| ApiError::bad_request(format!("invalid continue token {token:?}")))?,
    };
    let limit = match params.get("limit") {
        None | Some("0") => usize::MAX,
        Some(raw) => raw
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {raw:?}")))?,
    };
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|v| (*v).clone())
        .collect();
    let next = offset.saturating_add(page.len());
    let mut metadata = json!({ "resourceVersion": list_rv.to_string() });
    if next < matching.len() {
        metadata["continue"] = Value::String(format!("{list_rv}-{next}"));
        metadata["remainingItemCount"] = json!(matching.len() - next);
    }
    Ok(Reply {
        code: StatusCode::OK,
        body: json!({
            "apiVersion": route.resource.api_version(),
            "kind": format!("{}List", store.kind_of(&route.resource)),
            "metadata": metadata,
            "items": page,
        }),
        shape: Shape::List,
    })
}

fn matching_objects<'a>(
    store: &'a Store,
    route: &'a Route,
    selector: &'a Selector,
) -> impl Iterator<Item = &'a Value> {
    store
        .objects
        .iter()
        .filter(move |(k, _)| {
            k.is_of(&route.resource) && route.namespace.as_ref().is_none_or(|ns| &k.namespace == ns)
        })
        .map(|(_, v)| v)
        .filter(move |v| selector.matches(v))
}

fn create(store: &mut Store, route: &Route, body: &[u8]) -> Result<Reply, ApiError> {
    let object = parse_json_object(body)?;
    let created = store.create(&route.resource, route.namespace(), object, false)?;
    Ok(Reply::object(StatusCode::CREATED, created))
}

fn update(
    store: &mut Store,
    route: &Route,
    status_only: bool,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let candidate = parse_json_object(body)?;
    if let Some(name) = meta_str(&candidate, "name")
        && name != route.name()
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            route.name()
        )));
    }
    let key = route.key();
    let old = store
        .objects
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&route.resource, route.name()))?;
    let written = store.write_existing(&route.resource, &key, status_only, old, candidate)?;
    Ok(Reply::object(StatusCode::OK, written))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PatchKind {
    /// RFC 7386; strategic merge patches are treated the same way.
    Merge,
    /// RFC 6902.
    Json,
    /// Server-side apply, approximated as a merge patch that creates when absent.
    Apply,
}

fn patch(
    store: &mut Store,
    route: &Route,
    status_only: bool,
    params: &Params,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let kind = match content_type {
        Some("application/merge-patch+json" | "application/strategic-merge-patch+json") => {
            PatchKind::Merge
        }
        Some("application/json-patch+json") => PatchKind::Json,
        Some("application/apply-patch+yaml") => PatchKind::Apply,
        other => return Err(ApiError::unsupported_media_type(other.unwrap_or("none"))),
    };
    if kind == PatchKind::Apply && params.get("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    let key = route.key();
    let Some(old) = store.objects.get(&key).cloned() else {
        if kind == PatchKind::Apply && !status_only {
            let mut object = json!({});
            json_patch::merge(&mut object, &parse_json_or_yaml_object(body)?);
            if meta_str(&object, "name").is_some_and(|n| n != route.name()) {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
            meta_mut(&mut object).insert("name".into(), Value::String(route.name().to_owned()));
            let created = store.create(&route.resource, route.namespace(), object, false)?;
            return Ok(Reply::object(StatusCode::CREATED, created));
        }
        return Err(ApiError::not_found(&route.resource, route.name()));
    };
    let mut candidate = old.clone();
    match kind {
        PatchKind::Merge => json_patch::merge(&mut candidate, &parse_json(body)?),
        PatchKind::Apply => {
            let applied = parse_json_or_yaml_object(body)?;
            json_patch::merge(&mut candidate, &applied);
            // On the status subresource the one manager that applies status owns all of it
            // (the operator): a field it no longer sends is removed, as the real server does.
            if status_only && let Some(status) = applied.get("status") {
                candidate["status"] = status.clone();
            }
        }
        PatchKind::Json => {
            let operations: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            apply_json_patch(&mut candidate, &operations)
                .map_err(|e| ApiError::invalid(&route.resource, route.name(), &e))?;
        }
    }
    let written = store.write_existing(&route.resource, &key, status_only, old, candidate)?;
    Ok(Reply::object(StatusCode::OK, written))
}

/// RFC 6902 as the real server (evanphx/json-patch) applies it: a `test` for `null` also
/// passes when the path is absent, which kube's finalizer helper relies on for the first
/// finalizer. A failed `test` is 422, which makes that helper retry. `doc` is a scratch copy,
/// so a failure part-way leaves nothing applied.
fn apply_json_patch(
    doc: &mut Value,
    operations: &[json_patch::PatchOperation],
) -> Result<(), String> {
    for operation in operations {
        if let json_patch::PatchOperation::Test(test) = operation
            && test.value.is_null()
            && doc.pointer(test.path.as_str()).is_none_or(Value::is_null)
        {
            continue;
        }
        json_patch::patch_unsafe(doc, std::slice::from_ref(operation))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn delete(store: &mut Store, route: &Route, body: &[u8]) -> Result<Reply, ApiError> {
    let options = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_json_object(body)?
    };
    let key = route.key();
    let object = store
        .objects
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&route.resource, route.name()))?;
    for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        if let Some(expected) = options
            .pointer(&format!("/preconditions/{field}"))
            .and_then(Value::as_str)
        {
            let actual = meta_str(object, field).unwrap_or_default();
            if expected != actual {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!(
                        "Precondition failed: {label} in precondition: {expected}, {label} in object meta: {actual}"
                    ),
                    Some(status_details(&route.resource, route.name())),
                ));
            }
        }
    }
    match store.delete(&key) {
        Some(Deletion::Pending(object)) => Ok(Reply::object(StatusCode::OK, object)),
        Some(Deletion::Removed(object)) => {
            let mut details = status_details(&route.resource, route.name());
            if let Some(uid) = meta_str(&object, "uid") {
                details["uid"] = Value::String(uid.to_owned());
            }
            Ok(Reply {
                code: StatusCode::OK,
                body: json!({
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": details,
                    "code": 200,
                }),
                shape: Shape::Status,
            })
        }
        None => Err(ApiError::not_found(&route.resource, route.name())),
    }
}

fn delete_collection(store: &mut Store, route: &Route, params: &Params) -> Result<Reply, ApiError> {
    let selector = Selector::from_params(params, None)?;
    let keys: Vec<ObjKey> = store
        .objects
        .iter()
        .filter(|(k, v)| {
            k.is_of(&route.resource)
                && route.namespace.as_ref().is_none_or(|ns| &k.namespace == ns)
                && selector.matches(v)
        })
        .map(|(k, _)| k.clone())
        .collect();
    let items: Vec<Value> = keys
        .iter()
        .filter_map(|key| match store.delete(key)? {
            Deletion::Pending(object) | Deletion::Removed(object) => Some(object),
        })
        .collect();
    Ok(Reply {
        code: StatusCode::OK,
        body: json!({
            "apiVersion": route.resource.api_version(),
            "kind": format!("{}List", store.kind_of(&route.resource)),
            "metadata": { "resourceVersion": store.rv.to_string() },
            "items": items,
        }),
        shape: Shape::List,
    })
}

// ---------------------------------------------------------------------------------------------
// Watch
// ---------------------------------------------------------------------------------------------

/// Which changes a watch stream reports.
struct WatchFilter {
    resource: ResourceKey,
    namespace: Option<String>,
    selector: Selector,
}

impl WatchFilter {
    /// The watch event a change produces for this watch, if any. Like the real server,
    /// an object that starts matching the selector is ADDED and one that stops is DELETED.
    fn event_for(&self, change: &Change) -> Option<&'static str> {
        if !change.key.is_of(&self.resource)
            || self
                .namespace
                .as_ref()
                .is_some_and(|ns| *ns != change.key.namespace)
        {
            return None;
        }
        let now = self.selector.matches(&change.object);
        let before = change
            .previous
            .as_ref()
            .is_some_and(|p| self.selector.matches(p));
        Some(match (change.kind, before, now) {
            (ChangeKind::Deleted, true, _) | (ChangeKind::Deleted, _, true) => "DELETED",
            (ChangeKind::Added, _, true) | (ChangeKind::Modified, false, true) => "ADDED",
            (ChangeKind::Modified, true, true) => "MODIFIED",
            (ChangeKind::Modified, true, false) => "DELETED",
            _ => return None,
        })
    }
}

struct WatchStream {
    shared: Arc<Shared>,
    changes: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    cut: watch::Receiver<u64>,
    filter: WatchFilter,
    /// Changes up to this resourceVersion have been considered.
    cursor: u64,
    deadline: tokio::time::Instant,
    bookmarks: bool,
    metadata_only: bool,
    kind: String,
    pending: VecDeque<Value>,
    done: bool,
}

fn start_watch(
    shared: Arc<Shared>,
    route: &Route,
    params: &Params,
    metadata_only: bool,
) -> Result<Response, ApiError> {
    // A watch on a named path (the legacy form) watches that one object.
    let selector = Selector::from_params(params, route.name.as_deref())?;
    let timeout = match params.get("timeoutSeconds") {
        None => DEFAULT_WATCH_TIMEOUT,
        Some(raw) => Duration::from_secs(
            raw.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {raw:?}")))?,
        ),
    };
    let requested_rv = params.get("resourceVersion").unwrap_or_default();
    let send_initial = params.flag("sendInitialEvents");
    let bookmarks = params.flag("allowWatchBookmarks");
    let start_rv: Option<u64> = match requested_rv {
        "" | "0" => None,
        raw => Some(
            raw.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {raw:?}")))?,
        ),
    };

    let mut stream = {
        let store = lock(&shared.store);
        let kind = store.kind_of(&route.resource);
        let mut stream = WatchStream {
            changes: shared.changes.subscribe(),
            shutdown: shared.shutdown.subscribe(),
            cut: shared.cut_watches.subscribe(),
            filter: WatchFilter {
                resource: route.resource.clone(),
                namespace: route.namespace.clone(),
                selector,
            },
            cursor: store.rv,
            deadline: tokio::time::Instant::now() + timeout,
            bookmarks,
            metadata_only,
            kind,
            pending: VecDeque::new(),
            done: false,
            shared: shared.clone(),
        };
        match start_rv {
            Some(rv) if !send_initial => stream.cursor = rv,
            // No resourceVersion ("0" or none) or a streaming list: the current state first,
            // as synthetic ADDED events.
            _ => {
                let objects: Vec<Value> = matching_objects(&store, route, &stream.filter.selector)
                    .cloned()
                    .collect();
                for object in objects {
                    stream.push_event("ADDED", &object);
                }
                if send_initial && bookmarks {
                    let mut bookmark = stream.bookmark();
                    bookmark["metadata"]["annotations"] =
                        json!({ "k8s.io/initial-events-end": "true" });
                    stream
                        .pending
                        .push_back(json!({ "type": "BOOKMARK", "object": bookmark }));
                }
            }
        }
        stream
    };
    // Mark the current value seen: later changes wake the stream, earlier ones are read
    // from the history by cursor.
    stream.changes.borrow_and_update();
    let body = Body::from_stream(futures::stream::unfold(stream, next_watch_line));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

impl WatchStream {
    fn push_event(&mut self, kind: &str, object: &Value) {
        let object = if self.metadata_only {
            partial_metadata(object)
        } else {
            object.clone()
        };
        self.pending
            .push_back(json!({ "type": kind, "object": object }));
    }

    fn bookmark(&self) -> Value {
        let (api_version, kind) = if self.metadata_only {
            (
                "meta.k8s.io/v1".to_owned(),
                "PartialObjectMetadata".to_owned(),
            )
        } else {
            (self.filter.resource.api_version(), self.kind.clone())
        };
        json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": { "resourceVersion": self.cursor.to_string() },
        })
    }

    /// Queues the events of changes after the cursor (or a 410 if they were compacted).
    fn collect(&mut self) {
        let shared = self.shared.clone();
        if lock(&shared.held).contains(&self.filter.resource.plural) {
            return;
        }
        let store = lock(&shared.store);
        if self.cursor < store.compacted {
            let status = ApiError::new(
                StatusCode::GONE,
                "Expired",
                format!(
                    "too old resource version: {} ({})",
                    self.cursor,
                    store.compacted + 1
                ),
                None,
            )
            .to_status();
            self.pending
                .push_back(json!({ "type": "ERROR", "object": status }));
            self.done = true;
            return;
        }
        let start = store.history.partition_point(|c| c.rv <= self.cursor);
        for change in store.history.range(start..) {
            if let Some(kind) = self.filter.event_for(change) {
                self.push_event(kind, &change.object);
            }
        }
        self.cursor = self.cursor.max(store.rv);
    }
}

async fn next_watch_line(
    mut stream: WatchStream,
) -> Option<(Result<Bytes, std::io::Error>, WatchStream)> {
    loop {
        if stream.cut.has_changed().unwrap_or(false) {
            stream.cut.borrow_and_update();
            return Some(break_watch(stream));
        }
        if let Some(event) = stream.pending.pop_front() {
            let mut line = event.to_string().into_bytes();
            line.push(b'\n');
            return Some((Ok(Bytes::from(line)), stream));
        }
        if stream.done {
            return None;
        }
        stream.changes.borrow_and_update();
        stream.collect();
        if !stream.pending.is_empty() || stream.done {
            continue;
        }
        let mut cut = false;
        tokio::select! {
            changed = stream.changes.changed() => stream.done = changed.is_err(),
            _ = stream.shutdown.changed() => stream.done = true,
            _ = stream.cut.changed() => cut = true,
            _ = tokio::time::sleep_until(stream.deadline) => {
                // A closing bookmark lets the client resume from the newest resourceVersion.
                if stream.bookmarks {
                    let bookmark = stream.bookmark();
                    stream.pending.push_back(json!({ "type": "BOOKMARK", "object": bookmark }));
                }
                stream.done = true;
            }
        }
        if cut {
            return Some(break_watch(stream));
        }
    }
}

/// Ends a watch stream with an error mid-body: the connection breaks without the end of
/// the chunked body, as when the API server restarts.
fn break_watch(mut stream: WatchStream) -> (Result<Bytes, std::io::Error>, WatchStream) {
    stream.done = true;
    stream.pending.clear();
    let error = std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "watch dropped by the test",
    );
    (Err(error), stream)
}

// ---------------------------------------------------------------------------------------------
// Selectors
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Clone, Debug)]
struct FieldRequirement {
    path: String,
    value: String,
    equals: bool,
}

/// A label selector plus a field selector.
#[derive(Clone, Debug, Default)]
struct Selector {
    labels: Vec<LabelRequirement>,
    fields: Vec<FieldRequirement>,
}

impl Selector {
    fn from_params(params: &Params, name: Option<&str>) -> Result<Selector, ApiError> {
        let mut selector = Selector {
            labels: parse_label_selector(params.get("labelSelector").unwrap_or_default())?,
            fields: parse_field_selector(params.get("fieldSelector").unwrap_or_default())?,
        };
        if let Some(name) = name {
            selector.fields.push(FieldRequirement {
                path: "metadata.name".into(),
                value: name.to_owned(),
                equals: true,
            });
        }
        Ok(selector)
    }

    fn matches(&self, object: &Value) -> bool {
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        let labels_match = self.labels.iter().all(|req| match req {
            LabelRequirement::Equals(k, v) => label(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            LabelRequirement::Exists(k) => label(k).is_some(),
            LabelRequirement::NotExists(k) => label(k).is_none(),
        });
        labels_match
            && self.fields.iter().all(|req| {
                // Any dotted path works; a missing field compares as "".
                let pointer = format!("/{}", req.path.replace('.', "/"));
                let actual = match object.pointer(&pointer) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                };
                (actual == req.value) == req.equals
            })
    }
}

/// Splits at commas outside parentheses (`a in (x,y),b`).
fn split_terms(selector: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_label_selector(selector: &str) -> Result<Vec<LabelRequirement>, ApiError> {
    let invalid =
        |term: &str| ApiError::bad_request(format!("unable to parse requirement: {term:?}"));
    let key = |k: &str, term: &str| {
        let k = k.trim();
        if k.is_empty() || k.contains(char::is_whitespace) || k.contains(['(', ')', '=', '!']) {
            Err(invalid(term))
        } else {
            Ok(k.to_owned())
        }
    };
    let set = |values: &str, term: &str| -> Result<Vec<String>, ApiError> {
        let inner = values
            .trim()
            .strip_prefix('(')
            .and_then(|v| v.strip_suffix(')'))
            .ok_or_else(|| invalid(term))?;
        Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
    };
    split_terms(selector)
        .into_iter()
        .map(|term| {
            Ok(if let Some(k) = term.strip_prefix('!') {
                LabelRequirement::NotExists(key(k, term)?)
            } else if let Some((k, values)) = term.split_once(" notin ") {
                LabelRequirement::NotIn(key(k, term)?, set(values, term)?)
            } else if let Some((k, values)) = term.split_once(" in ") {
                LabelRequirement::In(key(k, term)?, set(values, term)?)
            } else if let Some((k, v)) = term.split_once("!=") {
                LabelRequirement::NotEquals(key(k, term)?, v.trim().to_owned())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                LabelRequirement::Equals(key(k, term)?, v.trim().to_owned())
            } else {
                LabelRequirement::Exists(key(term, term)?)
            })
        })
        .collect()
}

fn parse_field_selector(selector: &str) -> Result<Vec<FieldRequirement>, ApiError> {
    split_terms(selector)
        .into_iter()
        .map(|term| {
            let (path, value, equals) = if let Some((p, v)) = term.split_once("!=") {
                (p, v, false)
            } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (p, v, true)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: {term:?}"
                )));
            };
            Ok(FieldRequirement {
                path: path.trim().to_owned(),
                value: value.trim().to_owned(),
                equals,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Errors and responses
// ---------------------------------------------------------------------------------------------

/// A failure answered as a `Status` object, as the real server does.
#[derive(Debug)]
struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
    details: Option<Value>,
}

impl ApiError {
    fn new(
        code: StatusCode,
        reason: &'static str,
        message: String,
        details: Option<Value>,
    ) -> Self {
        Self {
            code,
            reason,
            message,
            details,
        }
    }

    fn no_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource".into(),
            None,
        )
    }

    fn not_found(resource: &ResourceKey, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{name}\" not found", resource.qualified()),
            Some(status_details(resource, name)),
        )
    }

    fn already_exists(resource: &ResourceKey, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", resource.qualified()),
            Some(status_details(resource, name)),
        )
    }

    fn conflict(resource: &ResourceKey, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                resource.qualified()
            ),
            Some(status_details(resource, name)),
        )
    }

    fn invalid(resource: &ResourceKey, name: &str, message: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{} \"{name}\" is invalid: {message}", resource.qualified()),
            Some(status_details(resource, name)),
        )
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message.into(), None)
    }

    fn method_not_allowed(method: &Method) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
            None,
        )
    }

    fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, \
                 application/strategic-merge-patch+json, application/apply-patch+yaml \
                 (got {content_type})"
            ),
            None,
        )
    }

    fn injected(code: u16) -> Self {
        let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let reason = match code {
            StatusCode::CONFLICT => "Conflict",
            StatusCode::NOT_FOUND => "NotFound",
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::UNPROCESSABLE_ENTITY => "Invalid",
            StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
            StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
            StatusCode::GONE => "Expired",
            _ => "InternalError",
        };
        Self::new(code, reason, format!("injected failure ({code})"), None)
    }

    fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.code, &self.to_status())
    }
}

/// `details` as the real server fills it: `kind` holds the resource plural.
fn status_details(resource: &ResourceKey, name: &str) -> Value {
    let mut details = json!({ "name": name, "kind": resource.plural });
    if !resource.group.is_empty() {
        details["group"] = Value::String(resource.group.clone());
    }
    details
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-fake",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

// ---------------------------------------------------------------------------------------------
// JSON helpers
// ---------------------------------------------------------------------------------------------

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not wedge the server for the others.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
}

fn parse_json_object(body: &[u8]) -> Result<Value, ApiError> {
    let value = parse_json(body)?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ))
    }
}

fn parse_json_or_yaml(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body)
        .ok()
        .or_else(|| serde_yaml_ng::from_slice(body).ok())
}

fn parse_json_or_yaml_object(body: &[u8]) -> Result<Value, ApiError> {
    match parse_json_or_yaml(body) {
        Some(value @ Value::Object(_)) => Ok(value),
        _ => Err(ApiError::bad_request(
            "the apply body must be a JSON or YAML object",
        )),
    }
}

fn body_dry_run(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|options| options.get("dryRun").cloned())
        .and_then(|dry_run| dry_run.as_array().cloned())
        .is_some_and(|modes| modes.iter().any(|m| m == "All"))
}

fn object_mut(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("replaced by an object above"),
    }
}

fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    object_mut(object_mut(object).entry("metadata").or_insert(Value::Null))
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

fn finalizers(object: &Value) -> Vec<&str> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn owner_uids(object: &Value) -> Vec<&str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| refs.iter().filter_map(|r| r.get("uid")?.as_str()).collect())
        .unwrap_or_default()
}

fn set_or_remove(object: &mut Value, field: &str, value: Option<&Value>) {
    let map = object_mut(object);
    match value {
        Some(value) if !value.is_null() => map.insert(field.to_owned(), value.clone()),
        _ => map.remove(field),
    };
}

/// Drops nulls and empty collections from the top level and `metadata`, as the real server's
/// `omitempty` serialization does, so `finalizers: []` and an absent list compare equal.
fn normalize(object: &mut Value) {
    let map = object_mut(object);
    map.retain(|_, v| !v.is_null());
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        meta.retain(|_, v| match v {
            Value::Null => false,
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => true,
        });
    }
}

/// What `metadata.generation` tracks: everything but `metadata` and `status`.
fn content_without_meta_and_status(object: &Value) -> Vec<(&String, &Value)> {
    object
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| *k != "metadata" && *k != "status")
                .collect()
        })
        .unwrap_or_default()
}

fn partial_metadata(object: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Five characters from the alphabet the real server uses for `generateName`.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

/// Resources that have a status subresource: CRD-like groups (treated as all having one)
/// and the built-ins among those the operator touches.
fn has_status_subresource(resource: &ResourceKey) -> bool {
    let builtin_group = resource.group.is_empty()
        || !resource.group.contains('.')
        || resource.group.ends_with(".k8s.io");
    !builtin_group
        || matches!(
            resource.plural.as_str(),
            "deployments"
                | "statefulsets"
                | "replicasets"
                | "daemonsets"
                | "jobs"
                | "pods"
                | "services"
                | "namespaces"
        )
}

/// Kinds of the resources the operator uses; others are derived from the plural.
fn kind_for_plural(plural: &str) -> String {
    let known = match plural {
        "digitalchannelsenvironments" => Some("DigitalChannelsEnvironment"),
        "digitalchannelstenants" => Some("DigitalChannelsTenant"),
        "secrets" => Some("Secret"),
        "configmaps" => Some("ConfigMap"),
        "events" => Some("Event"),
        "leases" => Some("Lease"),
        "deployments" => Some("Deployment"),
        "namespaces" => Some("Namespace"),
        "pods" => Some("Pod"),
        "services" => Some("Service"),
        "serviceaccounts" => Some("ServiceAccount"),
        "customresourcedefinitions" => Some("CustomResourceDefinition"),
        _ => None,
    };
    if let Some(kind) = known {
        return kind.to_owned();
    }
    let singular = if let Some(stem) = plural.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = plural
        .strip_suffix("sses")
        .or_else(|| plural.strip_suffix("xes"))
    {
        format!(
            "{stem}{}",
            if plural.ends_with("sses") { "ss" } else { "x" }
        )
    } else {
        plural.strip_suffix('s').unwrap_or(plural).to_owned()
    };
    let mut chars = singular.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
