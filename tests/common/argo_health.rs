//! Argo CD's health check of `integrations/argocd/`, run as Argo CD runs it, by a real Lua 5.1
//! (Argo CD's gopher-lua is 5.1): for the suites that feed it statuses.

use std::path::PathBuf;

use serde_json::Value;

/// The kind's folder in Argo CD's resource-customization layout.
pub fn customizations(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("integrations/argocd/resource_customizations/digitalchannels.dev")
        .join(kind)
}

/// What the health script returns.
#[derive(Debug, PartialEq)]
pub struct ArgoHealth {
    pub status: String,
    pub message: String,
}

/// A JSON value as Argo CD hands it to Lua: objects and arrays as tables, numbers as Lua
/// numbers, null as nil.
fn to_lua(lua: &mlua::Lua, value: &Value) -> mlua::Value {
    match value {
        Value::Null => mlua::Value::Nil,
        Value::Bool(b) => mlua::Value::Boolean(*b),
        Value::Number(n) => mlua::Value::Number(n.as_f64().expect("a number")),
        Value::String(s) => mlua::Value::String(lua.create_string(s).unwrap()),
        Value::Array(items) => {
            let t = lua.create_table().unwrap();
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)).unwrap();
            }
            mlua::Value::Table(t)
        }
        Value::Object(fields) => {
            let t = lua.create_table().unwrap();
            for (k, v) in fields {
                t.raw_set(k.as_str(), to_lua(lua, v)).unwrap();
            }
            mlua::Value::Table(t)
        }
    }
}

/// Runs the kind's `health.lua` on `object` as Argo CD does: the object in the global `obj`,
/// the chunk returning `{status, message}`.
pub fn argo_health(kind: &str, object: &Value) -> ArgoHealth {
    let path = customizations(kind).join("health.lua");
    let script =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lua = mlua::Lua::new();
    lua.globals().set("obj", to_lua(&lua, object)).unwrap();
    let hs: mlua::Table = lua
        .load(&script)
        .set_name(format!("{kind}/health.lua"))
        .eval()
        .unwrap_or_else(|e| panic!("{kind}/health.lua: {e}"));
    ArgoHealth {
        status: hs.get("status").unwrap(),
        message: hs
            .get::<Option<String>>("message")
            .unwrap()
            .unwrap_or_default(),
    }
}
