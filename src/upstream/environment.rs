//! The GWS Environment API: contact centers and their settings.

use async_trait::async_trait;
use reqwest::Method;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;

use super::error::{Result, System};
use super::gws_auth::urlencode;
use super::http::{Call, HttpClient};
use super::json::{Obj, null_as_default, objects};
use crate::api::common::normal_url;
use crate::secret::Credentials;

/// A contact center (a tenant, in private edition).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactCenter {
    pub id: String,
    #[serde(default)]
    pub environment_id: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub domains: Vec<String>,
}

/// A contact center setting.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Setting {
    pub name: String,
    #[serde(default = "root_location", deserialize_with = "null_as_root")]
    pub location: String,
    #[serde(default)]
    pub value: serde_json::Value,
    /// GWS sends a boolean or the string "true"/"false".
    #[serde(default, deserialize_with = "bool_or_string")]
    pub shared: bool,
}

fn root_location() -> String {
    "/".to_string()
}

fn null_as_root<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_else(root_location))
}

/// A boolean, the string "true" (any case; any other string is false), or null (false).
/// A visitor rather than an untagged enum, which would buffer the value to try each form.
fn bool_or_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<bool, D::Error> {
    struct Flexible;
    impl<'de> Visitor<'de> for Flexible {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a boolean or \"true\"/\"false\"")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<bool, E> {
            Ok(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<bool, E> {
            Ok(v.eq_ignore_ascii_case("true"))
        }
        fn visit_unit<E: de::Error>(self) -> std::result::Result<bool, E> {
            Ok(false)
        }
        fn visit_none<E: de::Error>(self) -> std::result::Result<bool, E> {
            Ok(false)
        }
    }
    deserializer.deserialize_any(Flexible)
}

/// The Environment API operations the runbook uses.
#[async_trait]
pub trait EnvironmentApi: Send + Sync {
    async fn list_contact_centers(&self, ops: &Credentials) -> Result<Vec<ContactCenter>>;
    async fn list_settings(
        &self,
        ops: &Credentials,
        contact_center_id: &str,
    ) -> Result<Vec<Setting>>;
    /// Creates or overwrites (by name) a setting.
    async fn upsert_setting(
        &self,
        ops: &Credentials,
        contact_center_id: &str,
        setting: &Setting,
    ) -> Result<()>;
}

/// The reqwest implementation.
pub struct EnvironmentClient {
    http: HttpClient,
    base: String,
}

impl EnvironmentClient {
    pub fn new(http: HttpClient, environment_url: &str) -> Self {
        Self {
            http,
            base: format!("{}/environment/v3", normal_url(environment_url)),
        }
    }

    fn settings_url(&self, contact_center_id: &str) -> String {
        format!(
            "{}/contact-centers/{}/settings",
            self.base,
            urlencode(contact_center_id)
        )
    }
}

#[derive(Deserialize)]
struct ContactCentersAnswer {
    data: Obj<ContactCentersData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContactCentersData {
    #[serde(default, deserialize_with = "null_as_default")]
    contact_centers: Vec<Obj<ContactCenter>>,
}

#[derive(Deserialize)]
struct SettingsAnswer {
    /// Absent or null: no settings.
    #[serde(default)]
    data: Option<Obj<SettingsData>>,
}

#[derive(Deserialize)]
struct SettingsData {
    #[serde(default, deserialize_with = "null_as_default")]
    settings: Vec<Obj<Setting>>,
}

#[async_trait]
impl EnvironmentApi for EnvironmentClient {
    async fn list_contact_centers(&self, ops: &Credentials) -> Result<Vec<ContactCenter>> {
        let call = Call {
            system: System::Environment,
            operation: "list_contact_centers",
            method: Method::GET,
            url: format!("{}/contact-centers", self.base),
            build: Box::new(|r| r.basic_auth(&ops.username, Some(ops.password.expose()))),
            at_most_once: false,
            sensitive: vec![ops.password.clone()],
        };
        Ok(objects(
            self.http
                .send_json::<ContactCentersAnswer>(&call)
                .await?
                .data
                .0
                .contact_centers,
        ))
    }

    async fn list_settings(
        &self,
        ops: &Credentials,
        contact_center_id: &str,
    ) -> Result<Vec<Setting>> {
        let call = Call {
            system: System::Environment,
            operation: "list_settings",
            method: Method::GET,
            url: self.settings_url(contact_center_id),
            build: Box::new(|r| r.basic_auth(&ops.username, Some(ops.password.expose()))),
            at_most_once: false,
            sensitive: vec![ops.password.clone()],
        };
        let answer = self.http.send_json::<SettingsAnswer>(&call).await?;
        Ok(answer.data.map_or_else(Vec::new, |d| objects(d.0.settings)))
    }

    async fn upsert_setting(
        &self,
        ops: &Credentials,
        contact_center_id: &str,
        setting: &Setting,
    ) -> Result<()> {
        let body = json!({"data": {
            "name": setting.name,
            "location": setting.location,
            "value": setting.value,
            "shared": setting.shared,
        }});
        let call = Call {
            system: System::Environment,
            operation: "upsert_setting",
            method: Method::POST,
            url: self.settings_url(contact_center_id),
            build: Box::new(move |r| {
                r.basic_auth(&ops.username, Some(ops.password.expose()))
                    .json(&body)
            }),
            at_most_once: false,
            sensitive: vec![ops.password.clone()],
        };
        self.http.send_unit(&call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_reads_as_bool_or_string() {
        let s: Setting =
            serde_json::from_str(r#"{"name":"a","location":"/","value":"x","shared":"true"}"#)
                .unwrap();
        assert!(s.shared);
        let s: Setting =
            serde_json::from_str(r#"{"name":"a","value":"x","shared":false}"#).unwrap();
        assert!(!s.shared);
        assert_eq!(s.location, "/");
    }
}
