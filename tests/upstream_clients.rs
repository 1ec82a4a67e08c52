//! The real reqwest and sqlx clients against the simulator over loopback: every
//! operation, and the error answers they must classify.

mod common;

use std::time::Duration;

use common::{Sim, http_config};
use digital_channels_operator::secret::{Credentials, SecretString};
use digital_channels_operator::simulator::{DEMO_CC_T100, DEMO_CC_T200};
use digital_channels_operator::upstream::environment::Setting;
use digital_channels_operator::upstream::gws_auth::{ClientRegistration, Grant};
use digital_channels_operator::upstream::nexus::TenantRequest;
use digital_channels_operator::upstream::{
    EnvironmentApi, EnvironmentClient, ErrorKind, GwsAuthApi, GwsAuthClient, HttpClient, NexusApi,
    NexusClient, NexusDb, PgNexusDb, System,
};

fn ops() -> Credentials {
    Credentials {
        username: "ops".into(),
        password: SecretString::new("ops"),
    }
}

fn http() -> HttpClient {
    digital_channels_operator::upstream::http::install_crypto_provider();
    HttpClient::new(&http_config()).unwrap()
}

fn registration(secret: &str, nexus_url: &str) -> ClientRegistration {
    ClientRegistration {
        client_id: "nexus_client".into(),
        description: "managed by dc-operator provision".into(),
        secret: SecretString::new(secret),
        redirect_uri: nexus_url.into(),
        previous_redirect_uri: None,
        access_token_expiration_timeout: 43200,
        refresh_token_expiration_timeout: 2_592_000,
    }
}

#[tokio::test]
async fn gws_auth_clients_and_tokens() {
    let sim = Sim::start().await;
    let auth = GwsAuthClient::new(http(), &sim.url());
    let secret = SecretString::new("client-secret-0123456789abcdef");

    assert!(
        auth.get_client(&ops(), "nexus_client")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        auth.list_clients(&ops())
            .await
            .unwrap()
            .iter()
            .all(|c| c.client_id != "nexus_client")
    );
    let reg = registration(secret.expose(), "https://nexus.example.com");
    let created = auth.create_client(&ops(), &reg).await.unwrap();
    assert_eq!(created.client_id, "nexus_client");
    // The server may add grant types: our comparison is "contains".
    let fetched = auth
        .get_client(&ops(), "nexus_client")
        .await
        .unwrap()
        .unwrap();
    assert!(
        reg.differences(&fetched).is_empty(),
        "{:?}",
        reg.differences(&fetched)
    );
    assert!(
        auth.list_clients(&ops())
            .await
            .unwrap()
            .iter()
            .any(|c| c.client_id == "nexus_client")
    );

    let duplicate = auth.create_client(&ops(), &reg).await.unwrap_err();
    assert_eq!(duplicate.kind, ErrorKind::Conflict);
    assert_eq!(duplicate.system, System::GwsAuth);

    // Update only what differs.
    let moved = registration(secret.expose(), "https://nexus2.example.com");
    assert_eq!(moved.differences(&fetched), vec!["redirectURIs"]);
    auth.update_client(&ops(), "nexus_client", &moved.update_body(&fetched, false))
        .await
        .unwrap();
    let after = auth
        .get_client(&ops(), "nexus_client")
        .await
        .unwrap()
        .unwrap();
    assert!(moved.differences(&after).is_empty());

    // Tokens: client credentials, password (ccId\user), refresh.
    let cc = auth
        .token("nexus_client", &secret, &Grant::ClientCredentials)
        .await
        .unwrap();
    assert!(cc.expires_in > 40000 && cc.expires_in <= 43200);
    let grant = Grant::Password {
        username: format!("{DEMO_CC_T100}\\nexus"),
        password: SecretString::new("nexus_password"),
    };
    let user = auth.token("nexus_client", &secret, &grant).await.unwrap();
    let refresh = user
        .refresh_token
        .clone()
        .expect("password grant hands a refresh token");
    let refreshed = auth
        .token("nexus_client", &secret, &Grant::RefreshToken(refresh))
        .await
        .unwrap();
    assert!(!refreshed.access_token.is_empty());

    // Error answers.
    let wrong_secret = auth
        .token(
            "nexus_client",
            &SecretString::new("nope"),
            &Grant::ClientCredentials,
        )
        .await
        .unwrap_err();
    assert_eq!(wrong_secret.kind, ErrorKind::Unauthorized);
    let bad_user = Grant::Password {
        username: format!("{DEMO_CC_T100}\\nexus"),
        password: SecretString::new("wrong"),
    };
    let refused = auth
        .token("nexus_client", &secret, &bad_user)
        .await
        .unwrap_err();
    assert!(
        matches!(refused.kind, ErrorKind::Unauthorized | ErrorKind::Rejected),
        "{refused}"
    );
    assert!(!refused.to_string().contains("wrong"), "{refused}");
    let bad_ops = Credentials {
        username: "ops".into(),
        password: SecretString::new("bad"),
    };
    assert_eq!(
        auth.get_client(&bad_ops, "nexus_client")
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Unauthorized
    );

    assert!(auth.delete_client(&ops(), "nexus_client").await.unwrap());
    assert!(
        !auth.delete_client(&ops(), "nexus_client").await.unwrap(),
        "already gone is false, not an error"
    );
}

#[tokio::test]
async fn environment_contact_centers_and_settings() {
    let sim = Sim::start().await;
    let env = EnvironmentClient::new(http(), &sim.url());
    let centers = env.list_contact_centers(&ops()).await.unwrap();
    let ids: Vec<_> = centers.iter().map(|c| c.id.as_str()).collect();
    assert!(ids.contains(&DEMO_CC_T100) && ids.contains(&DEMO_CC_T200));
    assert!(
        centers
            .iter()
            .any(|c| c.domains.contains(&"t100".to_string()))
    );

    let setting = Setting {
        name: "chatservice-uri".into(),
        location: "/".into(),
        value: "https://nexus.example.com".into(),
        shared: false,
    };
    env.upsert_setting(&ops(), DEMO_CC_T100, &setting)
        .await
        .unwrap();
    let settings = env.list_settings(&ops(), DEMO_CC_T100).await.unwrap();
    let found = settings
        .iter()
        .find(|s| s.name == "chatservice-uri")
        .unwrap();
    assert_eq!(found.value, "https://nexus.example.com");
    assert!(!found.shared);
    // Posting the same name overwrites.
    let changed = Setting {
        value: "https://other.example.com".into(),
        ..setting
    };
    env.upsert_setting(&ops(), DEMO_CC_T100, &changed)
        .await
        .unwrap();
    let settings = env.list_settings(&ops(), DEMO_CC_T100).await.unwrap();
    assert_eq!(
        settings
            .iter()
            .filter(|s| s.name == "chatservice-uri")
            .count(),
        1
    );

    let unknown = env
        .list_settings(&ops(), "00000000-0000-4000-8000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(unknown.kind, ErrorKind::NotFound);
    assert_eq!(unknown.system, System::Environment);
}

async fn tenant_token(sim: &Sim, secret: &SecretString) -> SecretString {
    let auth = GwsAuthClient::new(http(), &sim.url());
    let grant = Grant::Password {
        username: format!("{DEMO_CC_T100}\\nexus"),
        password: SecretString::new("nexus_password"),
    };
    auth.token("nexus_client", secret, &grant)
        .await
        .unwrap()
        .access_token
}

#[tokio::test]
async fn nexus_provisioning_and_the_database() {
    let sim = Sim::start().await;
    let secret = SecretString::new("client-secret-0123456789abcdef");
    let auth = GwsAuthClient::new(http(), &sim.url());
    auth.create_client(&ops(), &registration(secret.expose(), &sim.url()))
        .await
        .unwrap();
    let token = tenant_token(&sim, &secret).await;
    let nexus = NexusClient::new(http(), &sim.url());
    let db = PgNexusDb::from_pool(sim.db.pool.clone());
    let gws = format!("{}/gws", sim.url());
    let request = TenantRequest {
        contact_center_id: DEMO_CC_T100.into(),
        name: "t100".into(),
        type_: "PureEngage".into(),
        backend_url: gws.clone(),
        username: "nexus".into(),
        password: SecretString::new("nexus_password"),
        genesys_tenant_id: 1,
    };

    // Without the nex_gapis row, Nexus refuses the tenant.
    let refused = nexus.create_tenant(&token, &request).await.unwrap_err();
    assert!(!refused.is_transient(), "{refused}");

    assert!(
        db.find_gapis(&gws, "nexus_client")
            .await
            .unwrap()
            .is_empty()
    );
    db.insert_gapi(&gws, "nexus_client", &SecretString::new("stale"))
        .await
        .unwrap();
    assert_eq!(
        db.update_gapi_secret(&gws, "nexus_client", &secret)
            .await
            .unwrap(),
        1
    );
    let rows = db.find_gapis(&gws, "nexus_client").await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].client_secret, secret);

    assert!(
        nexus
            .get_tenant(&token, DEMO_CC_T100)
            .await
            .unwrap()
            .is_none()
    );
    let created = nexus.create_tenant(&token, &request).await.unwrap();
    assert!(!created.api_key.is_empty());
    assert!(created.operation_id.is_some());
    let shown = nexus
        .get_tenant(&token, DEMO_CC_T100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shown.name.as_deref(), Some("t100"));
    assert_eq!(
        nexus
            .create_tenant(&token, &request)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Conflict
    );
    assert_eq!(
        db.find_api_keys(DEMO_CC_T100, "t100").await.unwrap(),
        vec![created.api_key.clone()]
    );
    assert_eq!(
        db.find_api_keys(DEMO_CC_T200, "t100").await.unwrap(),
        vec![],
        "another contact center's tenant of the same name"
    );
    assert_eq!(
        db.find_api_keys(DEMO_CC_T100, "nobody").await.unwrap(),
        vec![]
    );
    nexus.update_tenant(&token, &request).await.unwrap();

    nexus
        .register_ucs(&token, DEMO_CC_T100, "https://ucs.example.com")
        .await
        .unwrap();
    nexus
        .register_ucs(&token, DEMO_CC_T100, "https://ucs2.example.com")
        .await
        .unwrap();
    assert_eq!(
        sim.handle.snapshot().ucs_services[DEMO_CC_T100],
        "https://ucs2.example.com"
    );
    assert_eq!(
        nexus
            .register_ucs(
                &SecretString::new("not-a-key"),
                DEMO_CC_T100,
                "https://u.example.com"
            )
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Unauthorized
    );
    assert!(nexus.delete_ucs(&token, DEMO_CC_T100).await.unwrap());
    assert!(!nexus.delete_ucs(&token, DEMO_CC_T100).await.unwrap());

    let bad_bearer = nexus
        .create_tenant(&SecretString::new("forged"), &request)
        .await
        .unwrap_err();
    assert_eq!(bad_bearer.kind, ErrorKind::Unauthorized);

    assert!(nexus.delete_tenant(&token, DEMO_CC_T100).await.unwrap());
    assert!(!nexus.delete_tenant(&token, DEMO_CC_T100).await.unwrap());
    assert_eq!(db.delete_gapis(&gws, "nexus_client").await.unwrap(), 1);
}

#[tokio::test]
async fn transient_errors_are_retried_and_permanent_ones_are_not() {
    let sim = Sim::start().await;
    let env = EnvironmentClient::new(http(), &sim.url());

    sim.handle
        .faults()
        .fail_next("environment.list_contact_centers", 2, 503);
    env.list_contact_centers(&ops()).await.unwrap();
    assert_eq!(
        sim.handle
            .snapshot()
            .calls("environment.list_contact_centers"),
        3
    );

    sim.handle
        .faults()
        .fail_next("environment.list_contact_centers", 10, 500);
    let exhausted = env.list_contact_centers(&ops()).await.unwrap_err();
    assert!(exhausted.is_transient());
    assert_eq!(exhausted.status, Some(500));
    assert_eq!(
        sim.handle
            .snapshot()
            .calls("environment.list_contact_centers"),
        3 + 4,
        "4 attempts in all"
    );
    sim.handle.faults().clear();

    sim.handle
        .faults()
        .fail_next("environment.list_contact_centers", 1, 400);
    let rejected = env.list_contact_centers(&ops()).await.unwrap_err();
    assert_eq!(rejected.kind, ErrorKind::Rejected);
    assert_eq!(
        sim.handle
            .snapshot()
            .calls("environment.list_contact_centers"),
        8,
        "no retry of a 400"
    );

    // 429 with Retry-After: honoured, then success.
    sim.handle
        .faults()
        .fail_next("environment.list_contact_centers", 1, 429);
    let started = std::time::Instant::now();
    env.list_contact_centers(&ops()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1 was honoured"
    );

    // A timeout is transient.
    sim.handle
        .faults()
        .timeout_next("environment.list_contact_centers", 1);
    env.list_contact_centers(&ops()).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_service_is_transient_and_names_the_host_only() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let env = EnvironmentClient::new(http(), &format!("http://user:pw-in-url@127.0.0.1:{port}"));
    let error = env.list_contact_centers(&ops()).await.unwrap_err();
    assert!(error.is_transient());
    assert!(!error.to_string().contains("pw-in-url"), "{error}");
}

#[tokio::test]
async fn database_errors_are_classified() {
    let db = PgNexusDb::connect_lazy(&SecretString::new("postgres://nobody:pw@127.0.0.1:1/nexus"))
        .unwrap();
    let error = db.find_gapis("x", "y").await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(!error.to_string().contains("pw@"), "{error}");
    assert!(
        error.detail.contains("refused"),
        "a refused port says so, not that the pool timed out: {}",
        error.detail
    );

    // Without a scheme sqlx would fall back to a local default server: refused up front.
    for url in [
        "nexus-postgres.nexus.svc:5432/nexus",
        "mysql://user:secret-y@host/nexus",
        "http://host/nexus",
    ] {
        let Err(e) = PgNexusDb::connect_lazy(&SecretString::new(url)) else {
            panic!("{url} was accepted");
        };
        assert_eq!(e.kind, ErrorKind::Rejected, "{url}");
        assert!(e.detail.contains("postgres://"), "{url}: {}", e.detail);
        assert!(!e.to_string().contains("secret-y"), "{e}");
    }
    assert!(PgNexusDb::connect_lazy(&SecretString::new("postgresql://u@h:5432/nexus")).is_ok());

    let sim_less = common::TestDb::new().await;
    let empty = PgNexusDb::from_pool(sim_less.pool.clone());
    let missing = empty.find_gapis("x", "y").await.unwrap_err();
    assert_eq!(missing.kind, ErrorKind::Rejected);
    assert!(
        missing.detail.contains("Nexus creates this table"),
        "{}",
        missing.detail
    );

    assert!(
        PgNexusDb::connect_lazy(&SecretString::new("not a url with secret-x"))
            .is_err_and(|e| !e.to_string().contains("secret-x"))
    );
}

#[test]
fn a_broken_ca_bundle_is_a_clear_error() {
    digital_channels_operator::upstream::http::install_crypto_provider();
    let config = digital_channels_operator::upstream::HttpConfig {
        ca_bundle_pem: Some(
            b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n".to_vec(),
        ),
        ..Default::default()
    };
    let error = HttpClient::new(&config).unwrap_err();
    assert!(error.contains("CA bundle"), "{error}");
    let empty = digital_channels_operator::upstream::HttpConfig {
        ca_bundle_pem: Some(b"no certificate here".to_vec()),
        ..Default::default()
    };
    assert!(
        HttpClient::new(&empty)
            .unwrap_err()
            .contains("no certificate")
    );
}

/// A redirect is never followed: a 307 or 308 would send the body (the tenant password of a
/// password grant, a client secret) again, to whatever host it names, past the leader fence.
#[tokio::test]
async fn a_redirect_is_never_followed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}/stolen", elsewhere.local_addr().unwrap());
    let redirecting = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let auth_url = format!("http://{}", redirecting.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut c, _)) = redirecting.accept().await {
            let mut buf = vec![0; 65536];
            let _ = c.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: {target}\r\ncontent-length: 0\r\n\r\n"
            );
            let _ = c.write_all(answer.as_bytes()).await;
        }
    });
    let auth = GwsAuthClient::new(http(), &auth_url);
    let grant = Grant::Password {
        username: format!("{DEMO_CC_T100}\\nexus"),
        password: SecretString::new("nexus_password"),
    };
    let result = auth
        .token("nexus_client", &SecretString::new("secret"), &grant)
        .await;
    assert!(result.is_err(), "a redirect is not an answer");
    let followed = tokio::time::timeout(Duration::from_millis(500), elsewhere.accept()).await;
    assert!(followed.is_err(), "the redirect was followed");
}
