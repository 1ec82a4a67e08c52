//! GWS Environment API: contact centers and their settings, ops Basic auth.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::{App, SharedApp};
use super::reply::{ApiError, Envelope, parse_json, required};
use super::seed::Seed;
use super::state::Setting;

pub(crate) fn routes() -> Router<SharedApp> {
    Router::new()
        .route("/environment/v3/contact-centers", get(list_contact_centers))
        .route(
            "/environment/v3/contact-centers/{cc_id}/settings",
            get(list_settings).post(upsert_setting),
        )
}

/// Settings every seeded contact center starts with. Their `shared` travels as a string, the
/// other form GWS is seen to use, so that clients prove they accept both.
pub(crate) fn seeded_settings(seed: &Seed) -> BTreeMap<String, BTreeMap<String, Setting>> {
    seed.contact_centers
        .iter()
        .map(|cc| {
            let setting = Setting {
                name: "default-locale".to_owned(),
                location: "/".to_owned(),
                value: Value::String("en-US".to_owned()),
                shared: true,
                shared_as_string: true,
            };
            (
                cc.id.clone(),
                BTreeMap::from([(setting.name.clone(), setting)]),
            )
        })
        .collect()
}

async fn list_contact_centers(State(app): State<SharedApp>, headers: HeaderMap) -> Response {
    app.run("environment.list_contact_centers", async {
        app.require_ops(&headers)?;
        let centers: Vec<Value> = app
            .config
            .seed
            .contact_centers
            .iter()
            .map(|cc| {
                json!({
                    "id": cc.id,
                    "environmentId": cc.environment_id,
                    "domains": cc.domains,
                    "auth": "configServer",
                })
            })
            .collect();
        Ok(Envelope::ok()
            .data(json!({"contactCenters": centers}))
            .into_response())
    })
    .await
}

async fn list_settings(
    State(app): State<SharedApp>,
    Path(cc_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    app.run("environment.list_settings", async {
        app.require_ops(&headers)?;
        known_contact_center(&app, &cc_id)?;
        let settings: Vec<Value> = app
            .state()
            .settings
            .get(&cc_id)
            .map(|s| s.values().map(Setting::to_wire).collect())
            .unwrap_or_default();
        Ok(Envelope::ok()
            .data(json!({"settings": settings}))
            .into_response())
    })
    .await
}

#[derive(Deserialize)]
struct SettingBody {
    data: Option<SettingFields>,
}

#[derive(Deserialize)]
struct SettingFields {
    name: Option<String>,
    location: Option<String>,
    value: Option<Value>,
    shared: Option<SharedFlag>,
}

/// `shared` as a boolean or as the string "true"/"false"; the answer keeps the form posted.
#[derive(Deserialize)]
#[serde(untagged)]
enum SharedFlag {
    Bool(bool),
    Text(String),
}

impl SettingFields {
    fn into_setting(self) -> Result<Setting, ApiError> {
        let name = required(&self.name, "data.name")?.to_owned();
        let value = self
            .value
            .filter(|v| !v.is_null())
            .ok_or_else(|| ApiError::bad_request("data.value is required"))?;
        let (shared, shared_as_string) = match self.shared {
            None => (false, false),
            Some(SharedFlag::Bool(b)) => (b, false),
            Some(SharedFlag::Text(t)) => match t.as_str() {
                "true" => (true, true),
                "false" => (false, true),
                _ => return Err(ApiError::bad_request("data.shared must be true or false")),
            },
        };
        Ok(Setting {
            name,
            // [assumed] A missing location means the root, as in every documented example.
            location: self.location.unwrap_or_else(|| "/".to_owned()),
            value,
            shared,
            shared_as_string,
        })
    }
}

/// Creates the setting, or overwrites the one with the same name (as the runbook documents).
async fn upsert_setting(
    State(app): State<SharedApp>,
    Path(cc_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const OP: &str = "environment.upsert_setting";
    app.run(OP, async {
        app.require_ops(&headers)?;
        known_contact_center(&app, &cc_id)?;
        let setting = parse_json::<SettingBody>(&body)?
            .data
            .ok_or_else(|| ApiError::bad_request("body must be {\"data\": {...}}"))?
            .into_setting()?;
        let name = setting.name.clone();
        let wire = setting.to_wire();
        let mut state = app.state();
        let previous = state
            .settings
            .entry(cc_id.clone())
            .or_default()
            .insert(name.clone(), setting);
        state.count_upsert(OP, previous.is_some());
        Ok(Envelope::ok()
            .data(wire)
            .path(format!("/contact-centers/{cc_id}/settings/{name}"))
            .into_response())
    })
    .await
}

fn known_contact_center(app: &App, cc_id: &str) -> Result<(), ApiError> {
    app.config
        .seed
        .contact_center(cc_id)
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found(format!("contact center '{cc_id}' not found")))
}
