//! The runbook done by hand, as teams enabled their tenants before the operator: each call
//! of `reference/genesys-apis.md` once, in the runbook's order, and the `nex_gapis` row
//! inserted as with psql. What an estate to take over looks like: a client whose description
//! names no operator, a secret chosen by a person, settings, PlatformUCS, tenants and the
//! `nex_apikeys` rows Nexus wrote for them; nothing in Kubernetes.

use digital_channels_operator::runbook::Runbook;
use digital_channels_operator::runbook::tenant::CHAT_SERVICE_SETTING;
use digital_channels_operator::secret::{Credentials, SecretString};
use digital_channels_operator::upstream::environment::Setting;
use digital_channels_operator::upstream::gws_auth::{ClientRegistration, Grant};
use digital_channels_operator::upstream::nexus::TenantRequest;

/// The secret the person chose for `nexus_client` (and kept, as the runbook asks).
pub const HAND_SECRET: &str = "secret-chosen-by-a-person";
/// The description the person gave the client.
pub const HAND_DESCRIPTION: &str = "Digital Channels (Nexus) client";
/// The PlatformUCS URL registered by hand.
pub const HAND_UCS: &str = "https://ucs.example.com";

/// A tenant enabled by hand: its name (also the `nex_apikeys` row's), its contact center,
/// and whether PlatformUCS was registered for it.
pub struct HandTenant {
    pub name: &'static str,
    pub contact_center_id: &'static str,
    pub ucs: bool,
}

/// Where the runbook was run: the simulator's address (GWS Auth, Environment API and Nexus),
/// the GWS entry point written to `nex_gapis` and sent as `backendurl`, and the database.
pub struct HandPlace<'a> {
    pub base_url: &'a str,
    pub gws_url: &'a str,
    pub database_url: &'a str,
}

/// Enables every tenant by hand: gives each tenant's API key, as the create answered it once.
pub async fn enable_by_hand(
    rb: &Runbook,
    place: &HandPlace<'_>,
    tenants: &[HandTenant],
) -> Vec<SecretString> {
    let (base_url, database_url) = (place.base_url, place.database_url);
    let ops = Credentials {
        username: "ops".into(),
        password: SecretString::new("ops"),
    };
    let secret = SecretString::new(HAND_SECRET);
    let connector = &rb.connector;
    let auth = connector.gws_auth(base_url, None).unwrap();
    let client = ClientRegistration {
        client_id: "nexus_client".into(),
        secret: secret.clone(),
        description: HAND_DESCRIPTION.into(),
        redirect_uri: base_url.into(),
        previous_redirect_uri: None,
        access_token_expiration_timeout: 43_200,
        refresh_token_expiration_timeout: 2_592_000,
    };
    auth.create_client(&ops, &client).await.unwrap();
    let gws_url = place.gws_url.to_string();
    let db = connector
        .nexus_db(&SecretString::new(database_url))
        .unwrap();
    db.insert_gapi(&gws_url, "nexus_client", &secret)
        .await
        .unwrap();

    let environment = connector.environment(base_url, None).unwrap();
    let nexus = connector.nexus(base_url, None).unwrap();
    let mut keys = Vec::new();
    for t in tenants {
        let cc = t.contact_center_id;
        let setting = Setting {
            name: CHAT_SERVICE_SETTING.into(),
            location: "/".into(),
            value: serde_json::json!(base_url),
            shared: false,
        };
        environment
            .upsert_setting(&ops, cc, &setting)
            .await
            .unwrap();
        let password = SecretString::new("nexus_password");
        let grant = Grant::Password {
            username: format!("{cc}\\nexus"),
            password: password.clone(),
        };
        let token = auth.token("nexus_client", &secret, &grant).await.unwrap();
        if t.ucs {
            let key = &token.access_token;
            nexus.register_ucs(key, cc, HAND_UCS).await.unwrap();
        }
        let request = TenantRequest {
            contact_center_id: cc.into(),
            name: t.name.into(),
            type_: "PureEngage".into(),
            backend_url: gws_url.clone(),
            username: "nexus".into(),
            password,
            genesys_tenant_id: 1,
        };
        let created = nexus.create_tenant(&token.access_token, &request).await;
        keys.push(created.unwrap().api_key);
    }
    keys
}
