//! The leader fence (issue 15, defect 7): once a replica's Lease is lost, or its renewal is
//! overdue, no request leaves the process: not to the Genesys services, not to the Nexus
//! database, not to Kubernetes except the Lease itself. And the elector's renewal survives a
//! conflict (defect 13), and the connector keeps one pool per database (defect 13).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::fake_apiserver::{FakeApiServer, Verb};
use common::{Sim, http_config};
use digital_channels_operator::controller::kube_client::FenceLayer;
use digital_channels_operator::controller::leader::{LEASE_NAME, LeaderElector, LeaseTiming};
use digital_channels_operator::fence::LeaderFence;
use digital_channels_operator::runbook::{Connector, RealConnector};
use digital_channels_operator::secret::SecretString;
use digital_channels_operator::upstream::http::{Call, HttpConfig};
use digital_channels_operator::upstream::{ErrorKind, HttpClient, NexusDb, PgNexusDb, System};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;

/// A TCP listener that counts the connections made to it, and holds them open.
async fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (addr.to_string(), count)
}

/// Fences in each closed state: never led, renewal overdue, lost.
fn closed_fences() -> Vec<(&'static str, LeaderFence)> {
    let never = LeaderFence::elected();
    let overdue = LeaderFence::elected();
    overdue.renewed(Instant::now());
    let lost = LeaderFence::elected();
    lost.renewed(Instant::now() + Duration::from_secs(60));
    lost.lose();
    vec![("never led", never), ("overdue", overdue), ("lost", lost)]
}

fn get_call(url: String) -> Call<'static> {
    Call {
        system: System::Nexus,
        operation: "get_tenant",
        method: reqwest::Method::GET,
        url,
        build: Box::new(|r| r),
        sensitive: Vec::new(),
        at_most_once: false,
    }
}

fn client(fence: &LeaderFence, instance: Option<&str>) -> HttpClient {
    digital_channels_operator::upstream::http::install_crypto_provider();
    HttpClient::new(&HttpConfig {
        fence: fence.clone(),
        instance: instance.map(str::to_owned),
        ..http_config()
    })
    .unwrap()
}

#[tokio::test]
async fn a_closed_fence_lets_no_http_request_leave_and_is_not_retried() {
    let (addr, connections) = counting_listener().await;
    for (state, fence) in closed_fences() {
        let started = Instant::now();
        let error = client(&fence, None)
            .send(&get_call(format!("http://{addr}/nexus/v3/x")))
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Fenced, "{state}: {error}");
        assert!(
            !error.is_transient(),
            "{state}: a fenced request is not retried"
        );
        assert!(error.status.is_none(), "{state}: not an upstream answer");
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "{state}: no backoff"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0, "no connection made");

    // The same request through an open fence does connect: the listener can see one.
    let open = LeaderFence::elected();
    open.renewed(Instant::now() + Duration::from_secs(60));
    let mut config = http_config();
    config.fence = open;
    config.timeout = Duration::from_millis(200);
    config.retry.attempts = 1;
    let _ = HttpClient::new(&config)
        .unwrap()
        .send(&get_call(format!("http://{addr}/nexus/v3/x")))
        .await;
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_fence_that_closes_between_retries_stops_the_next_attempt() {
    let sim = Sim::start().await;
    // A 503 with `Retry-After: 1`: the retry comes a second later.
    sim.handle.faults().fail_next("nexus.get_tenant", 3, 503);
    let fence = LeaderFence::elected();
    let http = client(&fence, Some("replica-a"));
    // Open for the first attempt only.
    fence.renewed(Instant::now() + Duration::from_millis(300));
    let error = http
        .send(&get_call(format!(
            "{}/nexus/v3/provisioning/tenants/00000000-0000-0000-0000-000000000001",
            sim.url()
        )))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Fenced, "{error}");
    let sent = sim.handle.requests();
    assert_eq!(sent.len(), 1, "only the attempt made while open: {sent:?}");
    assert_eq!(sent[0].instance.as_deref(), Some("replica-a"));
    assert_eq!(sent[0].method, "GET");
    assert!(sent[0].path.starts_with("/nexus/v3/provisioning/tenants/"));
}

#[tokio::test]
async fn the_simulator_records_which_instance_sent_each_request_and_serves_the_record() {
    let sim = Sim::start().await;
    let url = format!("{}/nexus/v3/provisioning/tenants/x", sim.url());
    for instance in [Some("replica-a"), None] {
        let _ = client(&LeaderFence::unelected(), instance)
            .send(&get_call(url.clone()))
            .await;
    }
    let record: serde_json::Value = reqwest::get(format!("{}/_sim/requests", sim.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let record = record.as_array().unwrap();
    assert_eq!(record.len(), 2, "{record:?}");
    assert_eq!(record[0]["instance"], "replica-a");
    assert_eq!(record[0]["method"], "GET");
    assert_eq!(record[0]["path"], "/nexus/v3/provisioning/tenants/x");
    assert!(record[0]["unixMicros"].as_u64().unwrap() > 0);
    assert!(record[1]["instance"].is_null());
}

#[tokio::test]
async fn a_closed_fence_sends_no_database_statement() {
    let (addr, connections) = counting_listener().await;
    let url = SecretString::new(format!("postgres://nexus:pw@{addr}/nexus"));
    for (state, fence) in closed_fences() {
        let db = PgNexusDb::connect_lazy(&url).unwrap().with_fence(fence);
        let error = db
            .find_gapis("https://gws", "nexus_client")
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Fenced, "{state}: {error}");
        let error = db
            .insert_gapi("https://gws", "nexus_client", &SecretString::new("s"))
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Fenced, "{state}: {error}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0, "no connection made");

    // Open, the same statement does try to connect.
    let db = PgNexusDb::connect_lazy(&url).unwrap();
    let _ = tokio::time::timeout(
        Duration::from_millis(500),
        db.find_gapis("https://gws", "nexus_client"),
    )
    .await;
    assert!(connections.load(Ordering::SeqCst) >= 1);
}

fn fast_timing() -> LeaseTiming {
    LeaseTiming {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1200),
        retry_period: Duration::from_millis(200),
    }
}

fn secret(name: &str) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn a_fenced_kubernetes_client_sends_only_lease_requests_and_reads_while_standing_by() {
    let api = FakeApiServer::start().await;
    let fence = LeaderFence::elected();
    let config = kube::Config::new(api.url().parse().unwrap());
    let client = kube::client::ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(&FenceLayer::new(fence.clone()))
        .build();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "dc");
    let elector = LeaderElector::new(client, "dc-system", "a".into(), fast_timing())
        .with_fence(fence.clone());
    let writes = |api: &FakeApiServer| {
        api.writes()
            .iter()
            .filter(|w| w.resource == "secrets")
            .count()
    };

    // Standing by: reads pass (the CRD check), writes do not.
    secrets.get_opt("s").await.expect("a standby may read");
    let error = secrets
        .create(&PostParams::default(), &secret("s"))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("does not hold the leader lease"),
        "{error}"
    );
    assert_eq!(writes(&api), 0);

    // Leading: everything passes.
    assert!(elector.try_acquire().await.unwrap());
    secrets
        .create(&PostParams::default(), &secret("s"))
        .await
        .expect("the leader writes");
    assert_eq!(writes(&api), 1);

    // Lost: nothing but the Lease.
    fence.lose();
    let before = api.requests();
    assert!(secrets.get_opt("s").await.is_err(), "no read after a loss");
    assert!(
        secrets
            .create(&PostParams::default(), &secret("t"))
            .await
            .is_err()
    );
    assert_eq!(api.requests(), before, "nothing reached the API server");
    elector.release().await;
    assert!(api.requests() > before, "the Lease's own requests pass");
    let holder = api
        .get_as::<Lease>("dc-system", LEASE_NAME)
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_eq!(holder, None, "released");
}

#[tokio::test]
async fn a_conflict_on_renewal_is_retried_until_the_renew_deadline() {
    let api = FakeApiServer::start().await;
    let timing = fast_timing();
    let elector = LeaderElector::new(api.client(), "dc-system", "a".into(), timing);
    assert!(elector.try_acquire().await.unwrap());
    // Another writer changed the Lease twice meanwhile (a label, a tool): two renewals meet
    // a 409, the third succeeds, all within the renew deadline.
    api.fail_next(Verb::Update, "leases", 409);
    api.fail_next(Verb::Update, "leases", 409);
    let kept = tokio::time::timeout(timing.renew_deadline * 3, elector.keep_leadership()).await;
    assert!(kept.is_err(), "a conflict must not end leadership");
    assert!(elector.fence().is_open());
    let holder = api
        .get_as::<Lease>("dc-system", LEASE_NAME)
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_eq!(holder.as_deref(), Some("a"));

    // Conflicts past the renew deadline do end it, and close the fence.
    for _ in 0..100 {
        api.fail_next(Verb::Update, "leases", 409);
    }
    let started = Instant::now();
    tokio::time::timeout(timing.renew_deadline * 3, elector.keep_leadership())
        .await
        .expect("gives up at the renew deadline");
    assert!(
        started.elapsed() <= timing.renew_deadline + timing.retry_period,
        "{:?}",
        started.elapsed()
    );
    assert!(!elector.fence().is_open());
}

/// Backends of this database connected with this application name.
async fn backends(sim: &Sim, application: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
    )
    .bind(&sim.db.name)
    .bind(application)
    .fetch_one(&sim.db.pool)
    .await
    .unwrap();
    n
}

#[tokio::test]
async fn rotating_the_database_password_keeps_one_pool_and_closes_the_old_ones() {
    let sim = Sim::start().await;
    let connector = RealConnector::new(http_config());
    let application = format!("rotation-{}", rand::random::<u32>());
    let url_with = |password: &str| {
        let mut url = url::Url::parse(&sim.db.url).unwrap();
        // Trust authentication here: any password connects, as after a rotation.
        url.set_password(Some(password)).unwrap();
        url.query_pairs_mut()
            .append_pair("application_name", &application);
        SecretString::new(url.to_string())
    };
    let mut old = Vec::new();
    for i in 0..5 {
        let url = url_with(&format!("password-{i}"));
        let db = connector.nexus_db(&url).unwrap();
        db.find_gapis("https://gws", "nexus_client").await.unwrap();
        // The same URL again: the same pool.
        connector.nexus_db(&url).unwrap();
        assert_eq!(connector.pool_count(), 1, "rotation {i}");
        old.push(connector.pg_nexus_db(&url).unwrap());
    }
    let current = old.pop().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while old.iter().any(|db| !db.is_closed()) || backends(&sim, &application).await > 1 {
        assert!(
            Instant::now() < deadline,
            "old pools still open: {} backends",
            backends(&sim, &application).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!current.is_closed());
    assert_eq!(backends(&sim, &application).await, 1);
}

/// A listener whose accept queue is full: a new connection's SYN is dropped and retried by
/// the kernel a second later, so connecting takes about a second once the queue is drained.
async fn slow_to_connect() -> (
    std::net::SocketAddr,
    tokio::net::TcpListener,
    Vec<tokio::net::TcpStream>,
) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    while let Ok(Ok(stream)) = tokio::time::timeout(
        Duration::from_millis(100),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    {
        queued.push(stream);
    }
    (addr, listener, queued)
}

#[tokio::test]
async fn a_connection_made_after_the_fence_closed_carries_no_request() {
    let (addr, listener, queued) = slow_to_connect().await;
    assert!(!queued.is_empty(), "the accept queue fills");
    let fence = LeaderFence::elected();
    let mut config = http_config();
    config.fence = fence.clone();
    config.retry.attempts = 1;
    config.connect_timeout = Duration::from_secs(5);
    config.timeout = Duration::from_secs(5);
    let http = HttpClient::new(&config).unwrap();
    // Open when the request is handed over; closed long before its connection is made.
    fence.renewed(Instant::now() + Duration::from_millis(200));
    let sending = tokio::spawn(async move {
        http.send(&get_call(format!("http://{addr}/nexus/v3/x")))
            .await
            .unwrap_err()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Drain the queue: the kernel's retried SYN now gets through.
    let mut accepted = Vec::new();
    for _ in 0..queued.len() {
        accepted.push(listener.accept().await.unwrap().0);
    }
    let late = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("the request's connection is made")
        .unwrap()
        .0;
    let error = sending.await.unwrap();
    assert_eq!(error.kind, ErrorKind::Fenced, "{error}");
    // Nothing was written on it: it is closed without a byte.
    let mut buffer = [0u8; 1024];
    late.readable().await.unwrap();
    let read = late.try_read(&mut buffer).unwrap_or(0);
    assert_eq!(read, 0, "{:?}", String::from_utf8_lossy(&buffer[..read]));
}
