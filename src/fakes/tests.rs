//! The fakes answer as the real services do (`reference/genesys-apis.md`): what the runbook's
//! tests rely on.

use super::samples::{self, CLIENT_SECRET, CONTACT_CENTER, USER_PASSWORD};
use super::*;
use crate::secret::SecretString;
use crate::upstream::gws_auth::Grant;
use crate::upstream::nexus::TenantRequest;
use crate::upstream::{GwsAuthApi, NexusApi, NexusDb};

fn password(user: &str, password: &str) -> Grant {
    Grant::Password {
        username: format!("{CONTACT_CENTER}\\{user}"),
        password: password.into(),
    }
}

#[tokio::test]
async fn a_token_grant_checks_the_client_secret_and_the_users_password() {
    let upstream = samples::connector(true);
    let auth = &upstream.auth;
    let secret = SecretString::new(CLIENT_SECRET);
    let kind = |r: crate::upstream::error::Result<_>| r.map(drop).map_err(|e| e.kind);
    for (client_secret, grant, expected) in [
        (CLIENT_SECRET, Grant::ClientCredentials, Ok(())),
        (
            "wrong",
            Grant::ClientCredentials,
            Err(ErrorKind::Unauthorized),
        ),
        (CLIENT_SECRET, password("nexus", USER_PASSWORD), Ok(())),
        (
            CLIENT_SECRET,
            password("nexus", "wrong"),
            Err(ErrorKind::Rejected),
        ),
        (
            CLIENT_SECRET,
            password("nobody", USER_PASSWORD),
            Err(ErrorKind::Rejected),
        ),
        (
            "wrong",
            password("nexus", USER_PASSWORD),
            Err(ErrorKind::Unauthorized),
        ),
    ] {
        let got = auth
            .token("nexus_client", &client_secret.into(), &grant)
            .await;
        assert_eq!(kind(got), expected, "{client_secret} {grant:?}");
    }
    // A refresh token serves once.
    let grant = password("nexus", USER_PASSWORD);
    let token = auth.token("nexus_client", &secret, &grant).await.unwrap();
    let refresh = Grant::RefreshToken(token.refresh_token.unwrap());
    assert_eq!(
        kind(auth.token("nexus_client", &secret, &refresh).await),
        Ok(())
    );
    let again = auth.token("nexus_client", &secret, &refresh).await;
    assert_eq!(kind(again), Err(ErrorKind::Rejected));
    assert_eq!(upstream.log.count("token"), 9);
}

#[tokio::test]
async fn a_tenant_create_answers_a_key_once_and_writes_its_row() {
    let upstream = samples::connector(true);
    let secret = SecretString::new(CLIENT_SECRET);
    let grant = password("nexus", USER_PASSWORD);
    let token = upstream.auth.token("nexus_client", &secret, &grant).await;
    let bearer = token.unwrap().access_token;
    let request = TenantRequest {
        contact_center_id: CONTACT_CENTER.into(),
        name: "t100".into(),
        type_: "PureEngage".into(),
        backend_url: samples::GWS_URL.into(),
        username: "nexus".into(),
        password: USER_PASSWORD.into(),
        genesys_tenant_id: 1,
    };
    let created = upstream
        .nexus
        .create_tenant(&bearer, &request)
        .await
        .unwrap();
    let rows = upstream
        .db
        .find_api_keys(CONTACT_CENTER, "t100")
        .await
        .unwrap();
    assert_eq!(rows, [created.api_key]);
    let again = upstream.nexus.create_tenant(&bearer, &request).await;
    assert_eq!(again.map(drop).map_err(|e| e.status), Err(Some(409)));
    let stranger = upstream
        .nexus
        .get_tenant(&"forged".into(), CONTACT_CENTER)
        .await;
    assert_eq!(
        stranger.map(drop).map_err(|e| e.kind),
        Err(ErrorKind::Unauthorized)
    );
    assert_eq!(upstream.log.writes(), ["create_tenant", "create_tenant"]);
}

#[tokio::test]
async fn a_lost_answer_takes_effect_and_a_failure_does_not() {
    let db = FakeNexusDb::default();
    let secret = SecretString::new("s");
    let away = || error(System::NexusDb, "insert_gapi", ErrorKind::Transient);
    db.script.fail_next("insert_gapi", away());
    db.script.lose_next("insert_gapi", away());
    for _ in 0..3 {
        let _ = db.insert_gapi("https://gws", "nexus_client", &secret).await;
    }
    assert_eq!(db.gapis().len(), 2, "the lost one and the plain one");
    assert_eq!(db.log.count("insert_gapi"), 3);
}
