//! Status conditions in the standard Kubernetes shape, with the rule that
//! `lastTransitionTime` moves only when `status` flips.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// True, False or Unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// One observation of the resource's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready` or `ClientRegistered`.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// CamelCase reason, e.g. `Provisioned` or `SecretNotFound`.
    pub reason: String,
    /// What happened and what to do about it; never a secret value.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The `metadata.generation` this condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Longest message a condition carries (the contract's 1 KiB).
pub const MAX_MESSAGE_BYTES: usize = 1024;

impl Condition {
    pub fn new(
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message: truncate_message(message.into()),
            last_transition_time: None,
            observed_generation: None,
        }
    }
}

fn truncate_message(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut cut = MAX_MESSAGE_BYTES - 3;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("...");
    }
    message
}

/// Merges freshly computed conditions into the previous list: a condition keeps its
/// old `lastTransitionTime` unless its status changed. Conditions whose type is not in
/// `fresh` are dropped (e.g. `Suspended` after resuming).
pub fn merge_conditions(
    previous: &[Condition],
    fresh: Vec<Condition>,
    generation: Option<i64>,
    now: &str,
) -> Vec<Condition> {
    fresh
        .into_iter()
        .map(|mut condition| {
            let old = previous.iter().find(|c| c.type_ == condition.type_);
            condition.last_transition_time = match old {
                Some(old) if old.status == condition.status => old.last_transition_time.clone(),
                _ => Some(now.to_string()),
            };
            condition.observed_generation = generation;
            condition
        })
        .collect()
}

/// The conditions except one type: the others keep their values and transition times.
pub fn without(conditions: &[Condition], type_: &str) -> Vec<Condition> {
    conditions
        .iter()
        .filter(|c| c.type_ != type_)
        .cloned()
        .collect()
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Schema for a `conditions` list: a list-map keyed by `type`, so server-side apply merges per type.
pub fn conditions_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_on_status_flip() {
        let first = merge_conditions(
            &[],
            vec![Condition::new(
                "Ready",
                ConditionStatus::False,
                "Pending",
                "",
            )],
            Some(1),
            "t1",
        );
        assert_eq!(first[0].last_transition_time.as_deref(), Some("t1"));

        let same = merge_conditions(
            &first,
            vec![Condition::new(
                "Ready",
                ConditionStatus::False,
                "Other",
                "changed message",
            )],
            Some(2),
            "t2",
        );
        assert_eq!(same[0].last_transition_time.as_deref(), Some("t1"));
        assert_eq!(same[0].observed_generation, Some(2));

        let flipped = merge_conditions(
            &same,
            vec![Condition::new(
                "Ready",
                ConditionStatus::True,
                "Provisioned",
                "",
            )],
            Some(2),
            "t3",
        );
        assert_eq!(flipped[0].last_transition_time.as_deref(), Some("t3"));
    }

    #[test]
    fn long_messages_are_cut_to_one_kib() {
        let c = Condition::new("Ready", ConditionStatus::False, "X", "é".repeat(2000));
        assert!(c.message.len() <= MAX_MESSAGE_BYTES);
        assert!(c.message.ends_with("..."));
    }
}
