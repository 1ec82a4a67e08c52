//! The simulator over real HTTP (plain reqwest) and a real PostgreSQL database, checked against
//! `reference/genesys-apis.md`: credentials, clients, tokens, contact centers, settings, PlatformUCS,
//! tenants with `nex_gapis` / `nex_apikeys`, the `nex_gapis` cache, faults and counts.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use digital_channels_operator::simulator::{
    DEMO_CC_T100, DEMO_CC_T200, Simulator, SimulatorConfig, SimulatorHandle,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

// ---------------------------------------------------------------------------------------------
// Database per test (kept in one place so that a shared throwaway-PostgreSQL helper can replace it)

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database created for one test, dropped by [`TestDb::drop_db`] or, when a test panics
/// before that, by `Drop`.
struct TestDb {
    admin: PgConnectOptions,
    name: String,
    pool: PgPool,
    dropped: bool,
}

async fn test_db() -> TestDb {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    let admin = PgConnectOptions::from_str(&url).expect("DATABASE_URL is a postgres URL");
    let name = format!("sim_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .expect("PostgreSQL reachable (set DATABASE_URL)");
    // The name is generated above, never user input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    conn.close().await.ok();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(admin.clone().database(&name))
        .await
        .expect("connect to test database");
    TestDb {
        admin,
        name,
        pool,
        dropped: false,
    }
}

async fn drop_database(admin: &PgConnectOptions, name: &str) {
    if let Ok(mut conn) = PgConnection::connect_with(admin).await {
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .ok();
        conn.close().await.ok();
    }
}

impl TestDb {
    async fn drop_db(mut self) {
        self.pool.close().await;
        drop_database(&self.admin, &self.name).await;
        self.dropped = true;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // A failed test unwinds inside its runtime, so the cleanup gets a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_database(&admin, &name));
            }
        });
        let _ = cleanup.join();
    }
}

// ---------------------------------------------------------------------------------------------
// Harness

const CLIENT_ID: &str = "nexus_client";
const CLIENT_SECRET: &str = "s3cret-Client-Value-0123456789abcdef";
const NEXUS_URL: &str = "https://nexus.example.com";
const GWS_URL: &str = "https://gws.example.com";

struct Harness {
    sim: SimulatorHandle,
    db: TestDb,
    http: reqwest::Client,
    base: String,
}

async fn start(config: SimulatorConfig) -> Harness {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = test_db().await;
    let bind: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let sim = Simulator::start(config, db.pool.clone(), bind)
        .await
        .expect("simulator starts");
    let base = sim.base_url();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client");
    Harness {
        sim,
        db,
        http,
        base,
    }
}

async fn start_default() -> Harness {
    start(SimulatorConfig::default()).await
}

impl Harness {
    async fn finish(self) {
        self.sim.shutdown().await;
        self.db.drop_db().await;
    }

    fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    fn ops(&self, method: Method, path: &str) -> RequestBuilder {
        self.req(method, path).basic_auth("ops", Some("ops"))
    }

    fn client_body(&self) -> Value {
        json!({"data": {
            "internalClient": true,
            "name": CLIENT_ID,
            "description": CLIENT_ID,
            "clientType": "CONFIDENTIAL",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "authorities": ["ROLE_INTERNAL_CLIENT"],
            "scope": ["*"],
            "authorizedGrantTypes": ["refresh_token", "password", "client_credentials", "authorization_code"],
            "redirectURIs": [NEXUS_URL],
            "accessTokenExpirationTimeout": 43200,
            "refreshTokenExpirationTimeout": 2592000
        }})
    }

    async fn create_client(&self) {
        let resp = self
            .ops(Method::POST, "/auth/v3/ops/clients")
            .json(&self.client_body())
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::OK);
    }

    /// The runbook's "Get the authentication token": a form-encoded password grant.
    async fn password_grant(&self, cc_id: &str, password: &str) -> Response {
        self.req(Method::POST, "/auth/v3/oauth/token")
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("username", format!("{cc_id}\\nexus").as_str()),
                ("client_id", CLIENT_ID),
                ("grant_type", "password"),
                ("password", password),
            ])
            .send()
            .await
            .expect("send")
    }

    async fn tenant_token(&self, cc_id: &str) -> String {
        let resp = self.password_grant(cc_id, "nexus_password").await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.expect("json");
        body["access_token"].as_str().expect("token").to_owned()
    }

    async fn client_credentials_token(&self) -> String {
        let resp = self
            .req(Method::POST, "/auth/v3/oauth/token")
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .query(&[("grant_type", "client_credentials"), ("scope", "*")])
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.expect("json");
        body["access_token"].as_str().expect("token").to_owned()
    }

    async fn insert_gapi(&self, secret: &str) {
        sqlx::query(
            "INSERT INTO nex_gapis (url, clientid, apikey, clientsecret, created) \
             VALUES ($1, $2, 'NA', $3, now())",
        )
        .bind(GWS_URL)
        .bind(CLIENT_ID)
        .bind(secret)
        .execute(&self.db.pool)
        .await
        .expect("insert nex_gapis");
    }

    fn tenant_body(cc_id: &str, name: &str) -> Value {
        json!({
            "id": cc_id,
            "name": name,
            "type": "PureEngage",
            "backendurl": GWS_URL,
            "username": "nexus",
            "token": "nexus_password",
            "genesystemenantid": 1
        })
    }

    async fn post_tenant(&self, token: &str, body: &Value) -> Response {
        self.req(Method::POST, "/nexus/v3/provisioning/tenants")
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("send")
    }

    fn ucs(&self, method: Method, cc_id: &str, key: &str) -> RequestBuilder {
        self.req(
            method,
            &format!("/nexus/v3/provisioning/services/{cc_id}/PlatformUCS"),
        )
        .header("x-api-key", key)
        .header("x-ccid", cc_id)
    }
}

/// Reads an answer's status and JSON body.
async fn answer(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Asserts the v3 error envelope with a non-zero code and a message.
fn assert_envelope_error(body: &Value) {
    assert_ne!(body["status"]["code"].as_i64(), Some(0), "{body}");
    assert!(body["status"]["code"].is_i64(), "{body}");
    assert!(body["status"]["message"].is_string(), "{body}");
}

// ---------------------------------------------------------------------------------------------
// Credentials

#[tokio::test]
async fn ops_endpoints_require_ops_basic_auth() {
    let h = start_default().await;
    let cc_settings = format!("/environment/v3/contact-centers/{DEMO_CC_T100}/settings");
    for path in [
        "/auth/v3/ops/clients",
        "/auth/v3/ops/clients/nexus_client",
        "/environment/v3/contact-centers",
        cc_settings.as_str(),
    ] {
        let resp = h.req(Method::GET, path).send().await.expect("send");
        assert!(resp.headers().contains_key("www-authenticate"));
        let (status, body) = answer(resp).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_envelope_error(&body);

        let resp = h
            .req(Method::GET, path)
            .basic_auth("ops", Some("wrong"))
            .send()
            .await
            .expect("send");
        let (status, body) = answer(resp).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_envelope_error(&body);
    }
    let snapshot = h.sim.snapshot();
    assert_eq!(snapshot.calls("environment.list_contact_centers"), 2);
    assert_eq!(snapshot.calls("auth.list_clients"), 2);
    h.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Clients

#[tokio::test]
async fn client_create_duplicate_get_update_delete() {
    let h = start_default().await;
    let resp = h
        .ops(Method::POST, "/auth/v3/ops/clients")
        .json(&h.client_body())
        .send()
        .await
        .expect("send");
    let (status, body) = answer(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"]["code"], 0);
    let echoed = &body["data"];
    assert_eq!(echoed["client_id"], CLIENT_ID);
    let echoed_secret = echoed["client_secret"].as_str().expect("secret echoed");
    assert_ne!(
        echoed_secret, CLIENT_SECRET,
        "the echo is not the plaintext"
    );
    let grants: Vec<&str> = echoed["authorizedGrantTypes"]
        .as_array()
        .expect("grants")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for g in [
        "refresh_token",
        "password",
        "client_credentials",
        "authorization_code",
    ] {
        assert!(grants.contains(&g), "{g} kept");
    }
    assert!(grants.len() > 4, "the server adds a grant type of its own");

    let resp = h
        .ops(Method::POST, "/auth/v3/ops/clients")
        .json(&h.client_body())
        .send()
        .await
        .expect("send");
    let (status, body) = answer(resp).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_envelope_error(&body);

    let (status, body) = answer(
        h.ops(Method::GET, "/auth/v3/ops/clients/nexus_client")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["data"].is_object());
    assert!(
        body["data"].get("client_secret").is_none(),
        "GET hides secrets"
    );
    assert_eq!(body["data"]["redirectURIs"], json!([NEXUS_URL]));
    assert_eq!(body["data"]["accessTokenExpirationTimeout"], 43200);

    let (status, body) = answer(
        h.ops(Method::GET, "/auth/v3/ops/clients")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1));

    // PUT changes only the given fields.
    let (status, body) = answer(
        h.ops(Method::PUT, "/auth/v3/ops/clients/nexus_client")
            .json(&json!({"data": {"redirectURIs": ["https://other.example.com"]}}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"]["redirectURIs"],
        json!(["https://other.example.com"])
    );
    assert_eq!(body["data"]["name"], CLIENT_ID);
    let view = h.sim.snapshot();
    let client = &view.clients[CLIENT_ID];
    assert!(client.secret_matches(CLIENT_SECRET));
    assert_eq!(client.scope, vec!["*".to_owned()]);

    // PUT of a new secret: the old one stops working at the token endpoint.
    let (status, _) = answer(
        h.ops(Method::PUT, "/auth/v3/ops/clients/nexus_client")
            .json(&json!({"data": {"client_secret": "rotated"}}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.sim.snapshot().clients[CLIENT_ID].secret_matches("rotated"));
    let resp = h
        .req(Method::POST, "/auth/v3/oauth/token")
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .query(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let (status, _) = answer(
        h.ops(Method::PUT, "/auth/v3/ops/clients/unknown")
            .json(&json!({"data": {"name": "x"}}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = answer(
        h.ops(Method::DELETE, "/auth/v3/ops/clients/nexus_client")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"]["code"], 0);
    for method in [Method::GET, Method::DELETE] {
        let (status, body) = answer(
            h.ops(method, "/auth/v3/ops/clients/nexus_client")
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_envelope_error(&body);
    }

    let view = h.sim.snapshot();
    assert_eq!(view.creates("auth.create_client"), 1);
    assert_eq!(view.calls("auth.create_client"), 2);
    assert_eq!(view.updates("auth.update_client"), 2);
    assert_eq!(view.deletes("auth.delete_client"), 1);
    assert!(view.clients.is_empty());
    let state_json = serde_json::to_string(&view).expect("serializes");
    assert!(!state_json.contains("rotated") && !state_json.contains(CLIENT_SECRET));
    h.finish().await;
}

#[tokio::test]
async fn client_create_rejects_malformed_bodies() {
    let h = start_default().await;
    let mut missing_secret = h.client_body();
    missing_secret["data"]
        .as_object_mut()
        .expect("object")
        .remove("client_secret");
    let mut no_grants = h.client_body();
    no_grants["data"]["authorizedGrantTypes"] = json!([]);
    let mut scope_string = h.client_body();
    scope_string["data"]["scope"] = json!("*");
    let cases = [
        ("{not json".to_owned(), "malformed JSON"),
        (json!({"client_id": "x"}).to_string(), "data"),
        (missing_secret.to_string(), "client_secret"),
        (no_grants.to_string(), "authorizedGrantTypes"),
        (scope_string.to_string(), "malformed JSON"),
        (String::new(), "malformed JSON"),
    ];
    for (body, expected) in cases {
        let resp = h
            .ops(Method::POST, "/auth/v3/ops/clients")
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("send");
        let (status, answer_body) = answer(resp).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_envelope_error(&answer_body);
        let message = answer_body["status"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(
            message.contains(expected),
            "{message} should mention {expected}"
        );
    }
    assert!(h.sim.snapshot().clients.is_empty());
    h.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[tokio::test]
async fn token_grants_follow_the_runbook() {
    let h = start_default().await;
    h.create_client().await;

    // "Verify client": client_credentials as a query string.
    let resp = h
        .req(Method::POST, "/auth/v3/oauth/token")
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .query(&[
            ("grant_type", "client_credentials"),
            ("scope", "*"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .expect("send");
    let (status, body) = answer(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 43199);
    assert_eq!(body["scope"], "*");
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body.get("refresh_token").is_none());

    // The same grant as a form body.
    let resp = h
        .req(Method::POST, "/auth/v3/oauth/token")
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);

    // `curl --user nexus_client:` with the secret among the parameters, as the runbook shows it.
    let resp = h
        .req(Method::POST, "/auth/v3/oauth/token")
        .basic_auth(CLIENT_ID, Some(""))
        .query(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);

    // Wrong client secret.
    let resp = h
        .req(Method::POST, "/auth/v3/oauth/token")
        .basic_auth(CLIENT_ID, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    let (status, body) = answer(resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"].is_string());

    // Only `*` is a valid scope; unknown grants are refused.
    for (params, expected) in [
        (
            vec![("grant_type", "client_credentials"), ("scope", "openid")],
            "invalid_scope",
        ),
        (vec![("grant_type", "magic")], "unsupported_grant_type"),
        (vec![], "invalid_request"),
    ] {
        let resp = h
            .req(Method::POST, "/auth/v3/oauth/token")
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&params)
            .send()
            .await
            .expect("send");
        let (status, body) = answer(resp).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{params:?}");
        assert_eq!(body["error"], expected);
    }

    // "Get the authentication token": password grant with <ccId>\<user>.
    let (status, body) = answer(h.password_grant(DEMO_CC_T100, "nexus_password").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["expires_in"], 43199);
    let refresh = body["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();

    for (cc, password) in [(DEMO_CC_T100, "wrong"), ("unknown-cc", "nexus_password")] {
        let (status, body) = answer(h.password_grant(cc, password).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant");
    }
    let resp = h
        .req(Method::POST, "/auth/v3/oauth/token")
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "password"),
            ("username", "nexus"),
            ("password", "nexus_password"),
        ])
        .send()
        .await
        .expect("send");
    let (status, body) = answer(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "username without ccId");
    assert_eq!(body["error"], "invalid_grant");

    // Refresh.
    let resp = h
        .req(Method::POST, "/auth/v3/oauth/token")
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .send()
        .await
        .expect("send");
    let (status, body) = answer(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["access_token"].is_string());
    let resp = h
        .req(Method::POST, "/auth/v3/oauth/token")
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "nope")])
        .send()
        .await
        .expect("send");
    let (status, body) = answer(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    // A client without the password grant cannot use it.
    let (status, _) = answer(
        h.ops(Method::PUT, "/auth/v3/ops/clients/nexus_client")
            .json(&json!({"data": {"authorizedGrantTypes": ["client_credentials"]}}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = answer(h.password_grant(DEMO_CC_T100, "nexus_password").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unauthorized_client");

    let view = h.sim.snapshot();
    assert_eq!(view.tokens_issued, 5);
    assert_eq!(view.calls("auth.token"), 14);
    h.finish().await;
}

#[tokio::test]
async fn tokens_expire_after_token_lifetime() {
    let h = start(SimulatorConfig {
        token_lifetime: Duration::from_secs(2),
        ..SimulatorConfig::default()
    })
    .await;
    h.create_client().await;
    let (status, body) = answer(h.password_grant(DEMO_CC_T100, "nexus_password").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["expires_in"], 1, "whole seconds left, rounded down");
    let token = body["access_token"].as_str().expect("token").to_owned();
    let path = format!("/nexus/v3/provisioning/tenants/{DEMO_CC_T100}");
    let resp = h
        .req(Method::GET, &path)
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(
        resp.status(),
        StatusCode::NOT_FOUND,
        "valid token, no tenant yet"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let resp = h
        .req(Method::GET, &path)
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "expired token");
    h.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Environment

#[tokio::test]
async fn contact_centers_are_listed_with_domains() {
    let h = start_default().await;
    let (status, body) = answer(
        h.ops(Method::GET, "/environment/v3/contact-centers")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"]["code"], 0);
    let centers = body["data"]["contactCenters"].as_array().expect("array");
    assert_eq!(centers.len(), 2);
    let t100 = centers
        .iter()
        .find(|c| c["domains"] == json!(["t100"]))
        .expect("t100");
    assert_eq!(t100["id"], DEMO_CC_T100);
    assert_eq!(t100["auth"], "configServer");
    assert!(t100["environmentId"].is_string());
    assert!(centers.iter().any(|c| c["id"] == DEMO_CC_T200));
    h.finish().await;
}

#[tokio::test]
async fn settings_upsert_overwrite_and_shared_forms() {
    let h = start_default().await;
    let path = format!("/environment/v3/contact-centers/{DEMO_CC_T100}/settings");
    let list = || async {
        let (status, body) = answer(h.ops(Method::GET, &path).send().await.expect("send")).await;
        assert_eq!(status, StatusCode::OK);
        body["data"]["settings"]
            .as_array()
            .expect("settings")
            .clone()
    };
    let seeded = list().await;
    assert!(
        seeded.iter().any(|s| s["shared"] == "true"),
        "seeded settings carry shared as a string: {seeded:?}"
    );

    let setting = |value: &str| json!({"data": {"name": "chatservice-uri", "location": "/", "value": value, "shared": false}});
    for value in [NEXUS_URL, "https://nexus2.example.com"] {
        let (status, body) = answer(
            h.ops(Method::POST, &path)
                .json(&setting(value))
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"]["code"], 0);
    }
    let settings = list().await;
    let chat: Vec<&Value> = settings
        .iter()
        .filter(|s| s["name"] == "chatservice-uri")
        .collect();
    assert_eq!(chat.len(), 1, "overwritten, not duplicated");
    assert_eq!(chat[0]["value"], "https://nexus2.example.com");
    assert_eq!(chat[0]["shared"], false);
    assert_eq!(chat[0]["location"], "/");

    // `shared` as a string is accepted and answered in the same form.
    let (status, _) = answer(
        h.ops(Method::POST, &path)
            .json(&json!({"data": {"name": "other", "location": "/", "value": "x", "shared": "true"}}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let settings = list().await;
    let other = settings
        .iter()
        .find(|s| s["name"] == "other")
        .expect("other");
    assert_eq!(other["shared"], "true");

    for body in [
        json!({"data": {"name": "x"}}).to_string(),
        json!({"data": {"value": "x"}}).to_string(),
        json!({"data": {"name": "x", "value": "y", "shared": "maybe"}}).to_string(),
        "[1,".to_owned(),
    ] {
        let resp = h
            .ops(Method::POST, &path)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("send");
        let (status, answer_body) = answer(resp).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_envelope_error(&answer_body);
    }
    let (status, body) = answer(
        h.ops(
            Method::POST,
            "/environment/v3/contact-centers/unknown/settings",
        )
        .json(&setting(NEXUS_URL))
        .send()
        .await
        .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope_error(&body);

    let view = h.sim.snapshot();
    assert_eq!(view.creates("environment.upsert_setting"), 2);
    assert_eq!(view.updates("environment.upsert_setting"), 1);
    assert_eq!(
        view.settings[DEMO_CC_T100]["chatservice-uri"].value,
        "https://nexus2.example.com"
    );
    assert!(!view.settings[DEMO_CC_T100]["chatservice-uri"].shared);
    h.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Tenants

#[tokio::test]
async fn tenant_provisioning_needs_the_gapis_row_and_writes_apikeys() {
    let h = start_default().await;
    h.create_client().await;
    let token = h.tenant_token(DEMO_CC_T100).await;
    let body = Harness::tenant_body(DEMO_CC_T100, "t100");

    // No nex_gapis row yet.
    let (status, answer_body) = answer(h.post_tenant(&token, &body).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = answer_body["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("nex_gapis") && message.contains(GWS_URL),
        "{message}"
    );

    // A row with a stale secret does not do either.
    h.insert_gapi("stale-secret").await;
    let (status, answer_body) = answer(h.post_tenant(&token, &body).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_envelope_error(&answer_body);

    h.insert_gapi(CLIENT_SECRET).await;
    let (status, answer_body) = answer(h.post_tenant(&token, &body).await).await;
    assert_eq!(status, StatusCode::OK, "{answer_body}");
    assert_eq!(answer_body["status"]["code"], 0);
    let xapikey = answer_body["data"]["xapikey"]
        .as_str()
        .expect("xapikey")
        .to_owned();
    assert!(uuid::Uuid::parse_str(&xapikey).is_ok());
    assert!(
        answer_body["operationId"]
            .as_str()
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
    );

    let keys = h.sim.apikey_rows().await.expect("rows");
    let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names.len(), 3);
    for name in ["t100", "t100-Designer", "t100-iWD"] {
        assert!(names.contains(&name), "{names:?}");
    }
    let own = keys.iter().find(|k| k.name == "t100").expect("own key");
    assert_eq!(own.id, xapikey);
    assert_eq!(own.tenantid.as_deref(), Some(DEMO_CC_T100));
    assert_eq!(h.sim.gapis_rows().await.expect("rows").len(), 2);

    // Duplicate.
    let (status, answer_body) = answer(h.post_tenant(&token, &body).await).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(answer_body["status"]["message"], "Resource already exists");

    // Assumed GET: no token, no key.
    let path = format!("/nexus/v3/provisioning/tenants/{DEMO_CC_T100}");
    let (status, got) = answer(
        h.req(Method::GET, &path)
            .bearer_auth(&token)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["data"]["name"], "t100");
    assert_eq!(got["data"]["backendurl"], GWS_URL);
    assert_eq!(got["data"]["genesystemenantid"], 1);
    assert!(got["data"].get("token").is_none() && got["data"].get("xapikey").is_none());

    // Assumed PUT: a rename keeps the keys and renames their rows.
    let (status, updated) = answer(
        h.req(Method::PUT, &path)
            .bearer_auth(&token)
            .json(&Harness::tenant_body(DEMO_CC_T100, "t100b"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert!(updated["operationId"].is_string());
    let keys = h.sim.apikey_rows().await.expect("rows");
    let own = keys
        .iter()
        .find(|k| k.name == "t100b")
        .expect("renamed key");
    assert_eq!(own.id, xapikey);
    assert!(keys.iter().any(|k| k.name == "t100b-iWD"));

    let view = h.sim.snapshot();
    assert_eq!(view.creates("nexus.create_tenant"), 1);
    assert_eq!(view.calls("nexus.create_tenant"), 4);
    assert_eq!(view.updates("nexus.update_tenant"), 1);
    let tenant = &view.tenants[DEMO_CC_T100];
    assert_eq!(tenant.name, "t100b");
    assert!(tenant.token_matches("nexus_password"));
    assert!(
        !serde_json::to_string(&view)
            .expect("json")
            .contains(&xapikey)
    );

    // Assumed DELETE: removes the tenant and its keys; then 404.
    let (status, _) = answer(
        h.req(Method::DELETE, &path)
            .bearer_auth(&token)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.sim.apikey_rows().await.expect("rows").is_empty());
    for method in [Method::GET, Method::DELETE, Method::PUT] {
        let resp = h
            .req(method.clone(), &path)
            .bearer_auth(&token)
            .json(&Harness::tenant_body(DEMO_CC_T100, "t100"))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method}");
    }
    h.finish().await;
}

#[tokio::test]
async fn tenant_endpoints_check_the_bearer_token_and_body() {
    let h = start_default().await;
    h.create_client().await;
    h.insert_gapi(CLIENT_SECRET).await;
    let body = Harness::tenant_body(DEMO_CC_T100, "t100");

    let resp = h
        .req(Method::POST, "/nexus/v3/provisioning/tenants")
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "no token");
    let (status, _) = answer(h.post_tenant("not-a-token", &body).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "unknown token");
    let client_token = h.client_credentials_token().await;
    let (status, _) = answer(h.post_tenant(&client_token, &body).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "client_credentials token");
    let other_cc = h.tenant_token(DEMO_CC_T200).await;
    let (status, _) = answer(h.post_tenant(&other_cc, &body).await).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "token of another contact center"
    );

    let token = h.tenant_token(DEMO_CC_T100).await;
    for field in ["name", "backendurl", "username", "token", "type", "id"] {
        let mut incomplete = body.clone();
        incomplete.as_object_mut().expect("object").remove(field);
        let (status, answer_body) = answer(h.post_tenant(&token, &incomplete).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "without {field}");
        assert_envelope_error(&answer_body);
    }
    let mut wrong_password = body.clone();
    wrong_password["token"] = json!("old_password");
    let (status, _) = answer(h.post_tenant(&token, &wrong_password).await).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "GWS rejects the tenant user"
    );
    let resp = h
        .req(Method::POST, "/nexus/v3/provisioning/tenants")
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"id\": ")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(h.sim.snapshot().tenants.is_empty());
    assert!(h.sim.apikey_rows().await.expect("rows").is_empty());
    h.finish().await;
}

#[tokio::test]
async fn gapis_cache_sees_new_rows_only_after_a_nexus_restart() {
    let h = start(SimulatorConfig {
        gapis_cache: true,
        ..SimulatorConfig::default()
    })
    .await;
    h.create_client().await;
    let token = h.tenant_token(DEMO_CC_T100).await;
    let body = Harness::tenant_body(DEMO_CC_T100, "t100");
    h.insert_gapi(CLIENT_SECRET).await;
    let (status, _) = answer(h.post_tenant(&token, &body).await).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "row inserted after start is invisible"
    );
    h.sim.restart_nexus().await;
    let (status, _) = answer(h.post_tenant(&token, &body).await).await;
    assert_eq!(status, StatusCode::OK);

    // The HTTP restart works the same way, for T200.
    sqlx::query("UPDATE nex_gapis SET url = 'https://moved.example.com'")
        .execute(&h.db.pool)
        .await
        .expect("update");
    let token = h.tenant_token(DEMO_CC_T200).await;
    let mut body = Harness::tenant_body(DEMO_CC_T200, "t200");
    body["backendurl"] = json!("https://moved.example.com");
    let (status, _) = answer(h.post_tenant(&token, &body).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let resp = h
        .req(Method::POST, "/_sim/nexus/restart")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, _) = answer(h.post_tenant(&token, &body).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.sim.snapshot().nexus_restarts, 2);
    h.finish().await;
}

// ---------------------------------------------------------------------------------------------
// PlatformUCS

#[tokio::test]
async fn ucs_register_update_delete() {
    let h = start_default().await;
    h.create_client().await;
    let token = h.tenant_token(DEMO_CC_T100).await;
    let body = |url: &str| json!({"url": url, "secret": {}, "data": {}});

    for url in ["https://ucs.example.com", "https://ucs2.example.com"] {
        let (status, answer_body) = answer(
            h.ucs(Method::POST, DEMO_CC_T100, &token)
                .json(&body(url))
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer_body["status"]["code"], 0);
        assert!(answer_body["operationId"].is_string());
    }
    let view = h.sim.snapshot();
    assert_eq!(view.ucs_services.len(), 1);
    assert_eq!(view.ucs_services[DEMO_CC_T100], "https://ucs2.example.com");
    assert_eq!(view.creates("nexus.register_ucs"), 1);
    assert_eq!(view.updates("nexus.register_ucs"), 1);

    // A key of nex_apikeys is accepted as x-api-key too.
    sqlx::query("INSERT INTO nex_apikeys (id, name, tenantid) VALUES ('key-1', 't200', $1)")
        .bind(DEMO_CC_T200)
        .execute(&h.db.pool)
        .await
        .expect("insert key");
    let resp = h
        .ucs(Method::POST, DEMO_CC_T200, "key-1")
        .json(&body("https://ucs.example.com"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);

    let path = format!("/nexus/v3/provisioning/services/{DEMO_CC_T100}/PlatformUCS");
    let resp = h
        .req(Method::POST, &path)
        .header("x-ccid", DEMO_CC_T100)
        .json(&body("https://x"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "no x-api-key");
    let resp = h
        .ucs(Method::POST, DEMO_CC_T100, "wrong-key")
        .json(&body("https://x"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "unknown x-api-key");
    let resp = h
        .req(Method::POST, &path)
        .header("x-api-key", &token)
        .header("x-ccid", DEMO_CC_T200)
        .json(&body("https://x"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "x-ccid mismatch");
    let resp = h
        .ucs(Method::POST, DEMO_CC_T100, &token)
        .json(&json!({"secret": {}, "data": {}}))
        .send()
        .await
        .expect("send");
    let (status, answer_body) = answer(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "url is required");
    assert_envelope_error(&answer_body);

    let resp = h
        .ucs(Method::DELETE, DEMO_CC_T100, &token)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = h
        .ucs(Method::DELETE, DEMO_CC_T100, &token)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let view = h.sim.snapshot();
    assert!(!view.ucs_services.contains_key(DEMO_CC_T100));
    assert_eq!(view.deletes("nexus.delete_ucs"), 1);
    assert_eq!(view.calls("nexus.delete_ucs"), 2);
    h.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Faults, latency, admin surface, odds and ends

#[tokio::test]
async fn injected_failures_then_success_and_timeouts() {
    let h = start_default().await;
    let list = || h.ops(Method::GET, "/environment/v3/contact-centers").send();

    h.sim
        .faults()
        .fail_next("environment.list_contact_centers", 2, 503);
    for _ in 0..2 {
        let resp = list().await.expect("send");
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()["retry-after"], "1");
        assert_envelope_error(&resp.json().await.expect("json"));
    }
    assert_eq!(list().await.expect("send").status(), StatusCode::OK);
    assert_eq!(
        h.sim.snapshot().calls("environment.list_contact_centers"),
        3
    );

    h.sim
        .faults()
        .timeout_next("environment.list_contact_centers", 1);
    let started = Instant::now();
    let err = h
        .ops(Method::GET, "/environment/v3/contact-centers")
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("the client times out");
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(list().await.expect("send").status(), StatusCode::OK);

    h.sim
        .faults()
        .fail_fraction("environment.list_contact_centers", 1.0, 500);
    assert_eq!(
        list().await.expect("send").status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    h.sim.faults().clear();
    assert_eq!(list().await.expect("send").status(), StatusCode::OK);
    h.finish().await;
}

#[tokio::test]
async fn admin_surface_changes_a_tenant_user_password() {
    let h = start_default().await;
    h.create_client().await;
    let change = |password: &str| json!({"contactCenterId": DEMO_CC_T100, "username": "nexus", "password": password});
    let resp = h
        .req(Method::POST, "/_sim/tenant-users/password")
        .json(&change("rotated-password"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    let old = h.password_grant(DEMO_CC_T100, "nexus_password").await;
    assert!(
        old.status().is_client_error(),
        "the old password no longer works"
    );
    let new = h.password_grant(DEMO_CC_T100, "rotated-password").await;
    assert_eq!(new.status(), StatusCode::OK);
    // Only T100's user changed.
    let other = h.password_grant(DEMO_CC_T200, "nexus_password").await;
    assert_eq!(other.status(), StatusCode::OK);

    let resp = h
        .req(Method::POST, "/_sim/tenant-users/password")
        .json(&json!({"contactCenterId": DEMO_CC_T100}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    h.finish().await;
}

#[tokio::test]
async fn admin_surface_state_and_faults() {
    let h = start_default().await;
    let resp = h
        .req(Method::POST, "/_sim/faults")
        .json(&json!({"operation": "auth.list_clients", "mode": "fail", "count": 1, "status": 429}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = h
        .ops(Method::GET, "/auth/v3/ops/clients")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");

    let resp = h
        .req(Method::POST, "/_sim/faults")
        .json(&json!({"operation": "auth.list_clients", "mode": "fraction", "fraction": 1.0, "status": 502}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = h
        .ops(Method::GET, "/auth/v3/ops/clients")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let resp = h
        .req(Method::DELETE, "/_sim/faults")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = h
        .ops(Method::GET, "/auth/v3/ops/clients")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);

    for bad in [
        json!({"operation": "auth.nope", "mode": "fail"}),
        json!({"operation": "auth.token", "mode": "explode"}),
    ] {
        let resp = h
            .req(Method::POST, "/_sim/faults")
            .json(&bad)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
    }

    let (status, state) = answer(
        h.req(Method::GET, "/_sim/state")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state["calls"]["auth.list_clients"], 3);
    assert!(state["settings"][DEMO_CC_T100].is_object());
    h.finish().await;
}

#[tokio::test]
async fn unknown_paths_latency_and_shared_database() {
    let h = start(SimulatorConfig {
        latency: Duration::from_millis(200),
        ..SimulatorConfig::default()
    })
    .await;
    let (status, body) = answer(
        h.ops(Method::GET, "/nexus/v3/nothing")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope_error(&body);
    let (status, body) = answer(
        h.ops(Method::PATCH, "/environment/v3/contact-centers")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_envelope_error(&body);

    let started = Instant::now();
    let resp = h
        .ops(Method::GET, "/environment/v3/contact-centers")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));

    // Two more simulators starting at once on the same database both come up.
    let bind: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let (a, b) = tokio::join!(
        Simulator::start(SimulatorConfig::default(), h.db.pool.clone(), bind),
        Simulator::start(SimulatorConfig::default(), h.db.pool.clone(), bind),
    );
    let (a, b) = (a.expect("first"), b.expect("second"));
    assert_ne!(a.addr(), b.addr());
    assert!(a.base_url().starts_with("http://127.0.0.1:"));
    a.shutdown().await;
    b.shutdown().await;
    h.finish().await;
}

#[tokio::test]
async fn concurrent_start_on_a_fresh_database() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = test_db().await;
    let bind: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let starts =
        (0..4).map(|_| Simulator::start(SimulatorConfig::default(), db.pool.clone(), bind));
    let sims = futures::future::join_all(starts).await;
    for sim in sims {
        sim.expect("starts").shutdown().await;
    }
    db.drop_db().await;
}
