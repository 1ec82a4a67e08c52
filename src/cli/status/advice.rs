//! The one thing to do about a condition: the table of docs/conditions.md, as a
//! pure function of the reason (its test holds the two equal).

use crate::runbook::Reason;

/// What to do about a condition with this reason; `None` when it holds and there is nothing
/// to do. The words are docs/conditions.md's, so that the command and the page never disagree.
pub fn advice(reason: Reason) -> Option<&'static str> {
    use Reason::*;
    Some(match reason {
        Provisioned | Verified | Resolved | RolledOut | UpToDate | Acknowledged | InSync
        | NotObservable => return None,
        Pending => "look at the condition its message names",
        Drifted | Missing => "fix it by hand, or switch to Manage to have exactly that done",
        WaitingForEnvironment => {
            "fix the environment; the tenant proceeds at once when it turns Ready"
        }
        SecretNotFound => "create the Secret in the resource's namespace; picked up within seconds",
        SecretKeyMissing => "add the key or fix *Key in the spec",
        InvalidSecret => "put the right value there, as the message says",
        InvalidSpec => "fix the spec as the message says",
        Unauthorized => "fix the Secret named in the message (ops user, tenant user, database URL)",
        UpstreamUnavailable => {
            "nothing: retried with backoff (5 s doubling to --max-backoff), Retry-After honoured"
        }
        UpstreamRejected => {
            "read the message; often a wrong URL or a missing prerequisite (e.g. no nex_gapis row for gwsUrl)"
        }
        InvalidAnswer => "check the URL points at the right service",
        Conflict => {
            "put the key into the output Secret under xapikey, or remove the tenant from Nexus; \
             or choose another outputSecretName; or delete one of the two resources"
        }
        ContactCenterNotFound => {
            "fix contactCenterId / contactCenterDomain, or provision the tenant in GWS"
        }
        AmbiguousContactCenter => "set contactCenterId",
        TenantUpdateUnsupported => {
            "update the tenant's token in Nexus by hand; the operator never deletes and \
             re-creates a tenant (its key would change)"
        }
        TenantMissing => {
            "restore the tenant in Nexus, or delete its nex_apikeys row and the output Secret \
             to provision it again with a new key"
        }
        ClientExists => {
            "put the client's current secret in the client-secret Secret, or annotate the \
             environment digitalchannels.dev/take-over-client: \"true\""
        }
        ClientManagedElsewhere => {
            "leave the client to its manager, or annotate the environment \
             digitalchannels.dev/take-over-client: \"true\" to take it over"
        }
        RollingOut => "wait",
        RolloutStuck => "check the Nexus pods",
        RestartFailed => "enable the chart's nexusRestart RBAC or fix nexusDeployment",
        ManualStepRequired => {
            "set it as the message says, then annotate the tenant; or restart Nexus and \
             annotate the environment as the message says"
        }
        Suspended => "set spec.suspend to false",
        DeletionBlocked => "delete the tenants / fix access, or set deletionPolicy: Retain",
    })
}

/// [`advice`] for a condition of this type: where one reason covers two conditions, only
/// the half about this one.
pub fn advice_for(type_: &str, reason: Reason) -> Option<&'static str> {
    let whole = advice(reason)?;
    Some(match (reason, whole.split_once("; or ")) {
        (Reason::ManualStepRequired, Some((designer, _))) if type_ == "DesignerEnvConfigured" => {
            designer
        }
        (Reason::ManualStepRequired, Some((_, nexus))) if type_ == "NexusRestarted" => nexus,
        _ => whole,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/conditions.md's "what to do" cell for `reason`, in plain words: no backticks, no
    /// links.
    fn documented_advice(page: &str, reason: Reason) -> Option<String> {
        let table = page
            .split("\n\n")
            .find(|block| block.starts_with("| reason |"))
            .expect("docs/conditions.md has the table of reasons");
        let named = format!("`{}`", reason.as_str());
        let row = table.lines().find(|line| {
            let first = line.split('|').nth(1).unwrap_or_default();
            first.split(',').any(|r| r.trim() == named)
        })?;
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let reasons: Vec<&str> = cells[1].split(',').map(str::trim).collect();
        let position = reasons.iter().position(|r| *r == named)?;
        // A row for several reasons splits its advice with " / " in their order.
        let todo = plain(cells[3]);
        let parts: Vec<&str> = todo.split(" / ").collect();
        let todo = match (reasons.len() > 1, parts.len() == reasons.len()) {
            (true, true) => parts[position].to_string(),
            _ => todo.clone(),
        };
        Some(todo)
    }

    /// Markdown to plain words: backticks gone, `([details](url))` gone, `[text](url)` → text.
    fn plain(cell: &str) -> String {
        let mut text = cell.replace('`', "");
        while let Some(start) = text.find(" ([") {
            let Some(end) = text[start..].find("))") else {
                break;
            };
            text.replace_range(start..start + end + 2, "");
        }
        text
    }

    #[test]
    fn every_reason_has_the_documented_advice() {
        let page = include_str!("../../../docs/conditions.md");
        for &reason in Reason::ALL {
            let documented = documented_advice(page, reason)
                .unwrap_or_else(|| panic!("docs/conditions.md has no row for {reason:?}"));
            match advice(reason) {
                None => assert_eq!(documented, "nothing", "{reason:?}"),
                Some(words) => assert_eq!(words, documented, "{reason:?}"),
            }
        }
    }

    #[test]
    fn a_reason_for_two_conditions_advises_on_the_one_at_hand() {
        let manual = Reason::ManualStepRequired;
        for (type_, expected) in [
            (
                "DesignerEnvConfigured",
                "set it as the message says, then annotate the tenant",
            ),
            (
                "NexusRestarted",
                "restart Nexus and annotate the environment as the message says",
            ),
        ] {
            assert_eq!(advice_for(type_, manual), Some(expected));
        }
        for &reason in Reason::ALL {
            if reason != manual {
                assert_eq!(advice_for("Ready", reason), advice(reason), "{reason:?}");
            }
        }
    }
}
