//! Annotations a user sets to `"true"` to say yes: the tenant's
//! [`DESIGNER_ENV_ANNOTATION`](super::DESIGNER_ENV_ANNOTATION) and the environment's
//! [`TAKE_OVER_CLIENT_ANNOTATION`](super::environment::TAKE_OVER_CLIENT_ANNOTATION). Any
//! other value is reported as not understood rather than taken silently for no.

use kube::api::ObjectMeta;

/// What one such annotation says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Switch {
    /// Not set.
    Absent,
    /// Set to `"true"`.
    On,
    /// Set to anything else; the sentence that says so.
    NotUnderstood(String),
}

impl Switch {
    /// The annotation `name` of `meta`.
    pub fn of(meta: &ObjectMeta, name: &str) -> Self {
        match meta.annotations.as_ref().and_then(|a| a.get(name)) {
            None => Switch::Absent,
            Some(v) if v == "true" => Switch::On,
            Some(v) => Switch::NotUnderstood(not_understood(name, v)),
        }
    }

    pub fn is_on(&self) -> bool {
        *self == Switch::On
    }
}

/// The longest value quoted back: an annotation may hold up to 256 KiB.
const QUOTED_MAX: usize = 64;

fn not_understood(name: &str, value: &str) -> String {
    let quoted: String = value.chars().take(QUOTED_MAX).collect();
    let cut = if quoted.len() < value.len() {
        "…"
    } else {
        ""
    };
    format!("The annotation {name} is {quoted:?}{cut}, which is not understood: only \"true\" is.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_true_is_understood_and_anything_else_is_said() {
        let meta = |value: Option<&str>| ObjectMeta {
            annotations: value.map(|v| [("a/b".to_string(), v.to_string())].into()),
            ..ObjectMeta::default()
        };
        let said = |v: &str| {
            format!("The annotation a/b is {v}, which is not understood: only \"true\" is.")
        };
        let long = "x".repeat(300);
        let cases = [
            (None, Switch::Absent),
            (Some("true"), Switch::On),
            (Some("True"), Switch::NotUnderstood(said("\"True\""))),
            (Some("yes"), Switch::NotUnderstood(said("\"yes\""))),
            (Some(""), Switch::NotUnderstood(said("\"\""))),
            (Some("a\nb"), Switch::NotUnderstood(said("\"a\\nb\""))),
            (
                Some(long.as_str()),
                Switch::NotUnderstood(said(&format!("\"{}\"…", "x".repeat(64)))),
            ),
        ];
        for (value, want) in cases {
            assert_eq!(Switch::of(&meta(value), "a/b"), want, "{value:?}");
        }
    }
}
