//! Without `spec.nexusDeployment`, the operator cannot restart Nexus, which reads `nex_gapis`
//! only at start-up: when the row changes, the environment says so (a condition and an
//! event) until the user says Nexus was restarted, with an annotation naming that row.

use crate::api::conditions::{Condition, ConditionStatus};
use crate::runbook::Reason;

use super::conditions::types;

/// The annotation by which a user says Nexus was restarted for the row it names.
pub const NEXUS_RESTARTED_FOR_ANNOTATION: &str = "digitalchannels.dev/nexus-restarted-for";

/// How a row is named to the user: the start of its digest (never the secret it covers).
pub fn row_name(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// Which `nex_gapis` row the running Nexus has loaded, and which one a restart is owed or in
/// flight for (both as `ResolvedEnvironment::gapi_digest`). Compared with the row on every
/// pass, so that a restart owed is never forgotten, whatever write failed in between.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NexusRecord {
    pub loaded: Option<String>,
    pub restart_for: Option<String>,
}

/// The pass's view of the row.
pub struct Row<'a> {
    /// The row's digest as it is now; `None` when its step failed this pass.
    pub digest: Option<&'a str>,
    /// Whether this pass inserted or changed it.
    pub written: bool,
}

/// The record after this pass, and the condition to show while a restart is owed.
pub fn manual_restart(
    record: &NexusRecord,
    row: Row<'_>,
    acknowledged: Option<&str>,
    (namespace, name): (&str, &str),
) -> (NexusRecord, Option<Condition>) {
    let Some(digest) = row.digest else {
        return (record.clone(), None);
    };
    let loaded = NexusRecord {
        loaded: Some(digest.to_string()),
        restart_for: None,
    };
    // A row this operator never wrote, met with no record (an upgrade, a row made by hand
    // before the operator came): the Nexus that runs is taken to have loaded it.
    let first_sight = record.loaded.is_none() && record.restart_for.is_none() && !row.written;
    if record.loaded.as_deref() == Some(digest)
        || first_sight
        || acknowledged == Some(row_name(digest))
    {
        return (loaded, None);
    }
    let message = format!(
        "nex_gapis changed, and Nexus reads it only at start-up: restart Nexus (for example \
         kubectl rollout restart deployment/<nexus>), then run kubectl annotate -n {namespace} \
         digitalchannelsenvironment {name} {NEXUS_RESTARTED_FOR_ANNOTATION}={} --overwrite. \
         Or set spec.nexusDeployment and the operator restarts it.",
        row_name(digest)
    );
    let owed = NexusRecord {
        loaded: record.loaded.clone(),
        restart_for: Some(digest.to_string()),
    };
    let condition = Condition::new(
        types::NEXUS_RESTARTED,
        ConditionStatus::False,
        Reason::ManualStepRequired.as_str(),
        message,
    );
    (owed, Some(condition))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: (&str, &str) = ("ns", "prod");
    const ROW: &str = "0123456789abcdef0123";
    const OLD: &str = "fedcba9876543210fedc";

    fn record(loaded: Option<&str>, restart_for: Option<&str>) -> NexusRecord {
        NexusRecord {
            loaded: loaded.map(str::to_string),
            restart_for: restart_for.map(str::to_string),
        }
    }

    type Case = (
        &'static str,
        NexusRecord,
        Option<&'static str>,
        bool,
        Option<&'static str>,
    );

    /// Each case: what was recorded, the row now, whether this pass wrote it, the
    /// acknowledgement; then the record and whether a restart is said.
    fn check(cases: Vec<(Case, NexusRecord, bool)>) {
        for ((name, before, digest, written, ack), want, said) in cases {
            let (after, condition) = manual_restart(&before, Row { digest, written }, ack, AT);
            assert_eq!(after, want, "{name}");
            assert_eq!(condition.is_some(), said, "{name}");
        }
    }

    #[test]
    fn nothing_is_said_for_a_row_nexus_has_or_is_taken_to_have() {
        check(vec![
            (
                (
                    "loaded already",
                    record(Some(ROW), None),
                    Some(ROW),
                    false,
                    None,
                ),
                record(Some(ROW), None),
                false,
            ),
            (
                (
                    "first sight of a row not written: adopted",
                    record(None, None),
                    Some(ROW),
                    false,
                    None,
                ),
                record(Some(ROW), None),
                false,
            ),
            (
                (
                    "acknowledged for this row",
                    record(Some(OLD), Some(ROW)),
                    Some(ROW),
                    false,
                    Some("0123456789ab"),
                ),
                record(Some(ROW), None),
                false,
            ),
            (
                (
                    "the row step failed: nothing to compare",
                    record(Some(OLD), Some(ROW)),
                    None,
                    false,
                    None,
                ),
                record(Some(OLD), Some(ROW)),
                false,
            ),
        ]);
    }

    #[test]
    fn a_restart_is_owed_for_a_changed_row_until_acknowledged() {
        check(vec![
            (
                (
                    "inserted by this pass",
                    record(None, None),
                    Some(ROW),
                    true,
                    None,
                ),
                record(None, Some(ROW)),
                true,
            ),
            (
                (
                    "changed by this pass",
                    record(Some(OLD), None),
                    Some(ROW),
                    true,
                    None,
                ),
                record(Some(OLD), Some(ROW)),
                true,
            ),
            (
                (
                    "changed by hand",
                    record(Some(OLD), None),
                    Some(ROW),
                    false,
                    None,
                ),
                record(Some(OLD), Some(ROW)),
                true,
            ),
            (
                (
                    "still owed on the next pass",
                    record(Some(OLD), Some(ROW)),
                    Some(ROW),
                    false,
                    None,
                ),
                record(Some(OLD), Some(ROW)),
                true,
            ),
            (
                (
                    "an old acknowledgement does not count",
                    record(Some(OLD), Some(ROW)),
                    Some(ROW),
                    false,
                    Some("fedcba987654"),
                ),
                record(Some(OLD), Some(ROW)),
                true,
            ),
        ]);
    }

    #[test]
    fn the_message_names_the_row_and_the_command_but_no_secret() {
        let (_, c) = manual_restart(
            &record(None, None),
            Row {
                digest: Some(ROW),
                written: true,
            },
            None,
            AT,
        );
        let c = c.expect("owed");
        assert_eq!(c.reason, "ManualStepRequired");
        assert!(
            c.message
                .contains("digitalchannels.dev/nexus-restarted-for=0123456789ab"),
            "{}",
            c.message
        );
        assert!(!c.message.contains(ROW), "the whole digest is not needed");
    }
}
