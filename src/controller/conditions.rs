//! From a runbook report to status conditions: a pure function, tested with tables.

use crate::api::conditions::{Condition, ConditionStatus, find, without};
use crate::runbook::report::{Outcome, Reason, RunReport, Step, StepError};

pub mod types {
    pub const READY: &str = "Ready";
    pub const SUSPENDED: &str = "Suspended";
    pub const CLIENT_REGISTERED: &str = "ClientRegistered";
    pub const CLIENT_VERIFIED: &str = "ClientVerified";
    pub const GAPI_REGISTERED: &str = "GapiRegistered";
    pub const NEXUS_RESTARTED: &str = "NexusRestarted";
    pub const CONTACT_CENTER_RESOLVED: &str = "ContactCenterResolved";
    pub const CHAT_SERVICE_REGISTERED: &str = "ChatServiceRegistered";
    pub const UCS_REGISTERED: &str = "UcsRegistered";
    pub const TENANT_PROVISIONED: &str = "TenantProvisioned";
    pub const DESIGNER_ENV_CONFIGURED: &str = "DesignerEnvConfigured";
    /// On a tenant: whether its environment is usable (not part of the tenant's Ready).
    pub const ENVIRONMENT_READY: &str = "EnvironmentReady";
}

/// A condition type, the steps whose outcome decides it, and its reason when True.
pub struct ConditionRule {
    pub type_: &'static str,
    pub steps: &'static [Step],
    pub true_reason: Reason,
}

/// The environment's step conditions. Secret reading belongs to the first.
pub const ENVIRONMENT_RULES: &[ConditionRule] = &[
    ConditionRule {
        type_: types::CLIENT_REGISTERED,
        steps: &[
            Step::Credentials,
            Step::ClientSecret,
            Step::ClientRegistered,
        ],
        true_reason: Reason::Provisioned,
    },
    ConditionRule {
        type_: types::CLIENT_VERIFIED,
        steps: &[Step::ClientVerified],
        true_reason: Reason::Verified,
    },
    ConditionRule {
        type_: types::GAPI_REGISTERED,
        steps: &[Step::GapiRegistered],
        true_reason: Reason::Provisioned,
    },
];

/// The tenant's automated step conditions.
pub const TENANT_RULES: &[ConditionRule] = &[
    ConditionRule {
        type_: types::CONTACT_CENTER_RESOLVED,
        steps: &[Step::ContactCenterResolved],
        true_reason: Reason::Resolved,
    },
    ConditionRule {
        type_: types::CHAT_SERVICE_REGISTERED,
        steps: &[Step::ChatServiceRegistered],
        true_reason: Reason::Provisioned,
    },
    ConditionRule {
        type_: types::UCS_REGISTERED,
        steps: &[Step::UcsRegistered],
        true_reason: Reason::Provisioned,
    },
    ConditionRule {
        type_: types::TENANT_PROVISIONED,
        steps: &[
            Step::TenantToken,
            Step::TenantProvisioned,
            Step::OutputSecret,
        ],
        true_reason: Reason::Provisioned,
    },
];

/// The condition a step's outcome shows on: the user's name for that step, also used for it
/// in events and in `step_failures_total`.
pub fn condition_of(rules: &[ConditionRule], step: Step) -> &'static str {
    rules
        .iter()
        .find(|r| r.steps.contains(&step))
        .map(|r| r.type_)
        .unwrap_or_else(|| step.as_str())
}

/// One condition per rule: False with the step's reason when one of its steps failed,
/// False with `Drifted` or `Missing` when one observed a difference (Observe), Unknown with
/// `NotObservable` when one could not look, True when all its steps that ran held (reason
/// `InSync` under Observe), the last observed True or False when none of its steps ran this
/// pass (a step it needs failed), else Unknown, naming the condition that holds it up.
pub fn step_conditions(
    rules: &[ConditionRule],
    report: &RunReport,
    previous: &[Condition],
) -> Vec<Condition> {
    let failed_condition = report.failure().map(|(s, _)| condition_of(rules, s.step));
    rules
        .iter()
        .map(|rule| {
            let ran: Vec<&Result<Outcome, StepError>> = rule
                .steps
                .iter()
                .filter_map(|s| report.outcome_of(*s))
                .collect();
            if let Some(error) = ran.iter().find_map(|r| r.as_ref().err()) {
                return Condition::new(
                    rule.type_,
                    ConditionStatus::False,
                    error.reason.as_str(),
                    &error.message,
                );
            }
            if let Some(observed) = observed_condition(rule.type_, &ran) {
                return observed;
            }
            let last_step = *rule.steps.last().expect("rules name steps");
            if report.outcome_of(last_step).is_some() {
                let reason = match report.policy.observes() {
                    true => Reason::InSync,
                    false => rule.true_reason,
                };
                return Condition::new(rule.type_, ConditionStatus::True, reason.as_str(), "");
            }
            // Not reached this pass: keep what was observed; a pending one says anew what it
            // waits for.
            if let Some(old) = find(previous, rule.type_)
                && old.status != ConditionStatus::Unknown
            {
                return old.clone();
            }
            let waiting_for = failed_condition.unwrap_or("an earlier step");
            Condition::new(
                rule.type_,
                ConditionStatus::Unknown,
                Reason::Pending.as_str(),
                format!("Not checked yet: waiting for {waiting_for}."),
            )
        })
        .collect()
}

/// What an observation of the rule's steps found that Manage would change (False), or could
/// not look at (Unknown); `None` when all its steps that ran are in sync.
fn observed_condition(type_: &str, ran: &[&Result<Outcome, StepError>]) -> Option<Condition> {
    let outcomes = || ran.iter().filter_map(|r| r.as_ref().ok());
    let (status, reason, message) = match outcomes().find(|o| !o.in_sync()) {
        Some(Outcome::Drifted(m)) => (ConditionStatus::False, Reason::Drifted, m),
        Some(Outcome::Missing(m)) => (ConditionStatus::False, Reason::Missing, m),
        _ => match outcomes().find_map(|o| match o {
            Outcome::NotObservable(m) => Some(m),
            _ => None,
        }) {
            Some(m) => (ConditionStatus::Unknown, Reason::NotObservable, m),
            None => return None,
        },
    };
    Some(Condition::new(type_, status, reason.as_str(), message))
}

/// What Ready says of an observed resource in sync.
pub const OBSERVED_IN_SYNC: &str = "managementPolicy is Observe: everything observed is in sync, \
     and nothing was written upstream.";

/// `Ready`: True when every given condition is True, else False with the reason and
/// message of the first that is not. A step that cannot be observed (`NotObservable`) does
/// not hold it back: nothing can tell, and Manage registers it once. Under Observe (its step
/// conditions say `InSync`) a True Ready says `InSync` too.
pub fn ready(conditions: &[Condition], ready_message: &str) -> Condition {
    let unobservable = |c: &Condition| {
        c.status == ConditionStatus::Unknown && c.reason == Reason::NotObservable.as_str()
    };
    // A False condition says more than an Unknown one that merely waits behind it.
    let blocking = conditions
        .iter()
        .find(|c| c.status == ConditionStatus::False)
        .or_else(|| {
            conditions
                .iter()
                .find(|c| c.status != ConditionStatus::True && !unobservable(c))
        });
    let observed = conditions
        .iter()
        .any(|c| c.reason == Reason::InSync.as_str() || unobservable(c));
    match blocking {
        None if observed => Condition::new(
            types::READY,
            ConditionStatus::True,
            Reason::InSync.as_str(),
            OBSERVED_IN_SYNC,
        ),
        None => Condition::new(
            types::READY,
            ConditionStatus::True,
            Reason::Provisioned.as_str(),
            ready_message,
        ),
        Some(c) => Condition::new(
            types::READY,
            ConditionStatus::False,
            &c.reason,
            format!(
                "{}: {}",
                c.type_,
                if c.message.is_empty() {
                    &c.reason
                } else {
                    &c.message
                }
            ),
        ),
    }
}

/// The conditions while `spec.suspend` is true: all as they were, plus `Suspended`.
pub fn suspended(previous: &[Condition]) -> Vec<Condition> {
    let mut fresh = without(previous, types::SUSPENDED);
    fresh.push(Condition::new(
        types::SUSPENDED,
        ConditionStatus::True,
        Reason::Suspended.as_str(),
        "spec.suspend is true: no external calls are made until it is false.",
    ));
    fresh
}

/// The conditions of a spec the schema could not refuse: all as they were, and Ready
/// False with what is wrong.
pub fn invalid_spec(previous: &[Condition], problems: &[String]) -> Vec<Condition> {
    let mut fresh = without(previous, types::READY);
    fresh.push(Condition::new(
        types::READY,
        ConditionStatus::False,
        Reason::InvalidSpec.as_str(),
        problems.join("; "),
    ));
    fresh
}

/// Ready=False with reason Conflict: another resource holds what this one would take.
pub fn conflict(previous: &[Condition], why: &str) -> Vec<Condition> {
    let mut fresh = without(previous, types::READY);
    fresh.push(Condition::new(
        types::READY,
        ConditionStatus::False,
        Reason::Conflict.as_str(),
        why,
    ));
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::report::Reason;
    use std::time::Instant;

    fn report(steps: &[(Step, Result<Outcome, StepError>)]) -> RunReport {
        let mut r = RunReport::default();
        for (s, o) in steps {
            r.push(*s, Instant::now(), o.clone(), "");
        }
        r
    }

    #[test]
    fn environment_table() {
        let unauthorized =
            StepError::permanent(Reason::Unauthorized, "GWS Auth get_client failed: HTTP 401");
        let cases: Vec<(RunReport, [ConditionStatus; 3], &str)> = vec![
            (
                report(&[
                    (Step::Credentials, Ok(Outcome::AlreadyRight)),
                    (Step::ClientSecret, Ok(Outcome::AlreadyRight)),
                    (Step::ClientRegistered, Ok(Outcome::Created)),
                    (Step::ClientVerified, Ok(Outcome::Verified)),
                    (Step::GapiRegistered, Ok(Outcome::Created)),
                ]),
                [ConditionStatus::True; 3],
                "Provisioned",
            ),
            (
                report(&[
                    (Step::Credentials, Ok(Outcome::AlreadyRight)),
                    (Step::ClientSecret, Ok(Outcome::AlreadyRight)),
                    (Step::ClientRegistered, Err(unauthorized.clone())),
                ]),
                [
                    ConditionStatus::False,
                    ConditionStatus::Unknown,
                    ConditionStatus::Unknown,
                ],
                "Unauthorized",
            ),
            (
                report(&[(
                    Step::Credentials,
                    Err(StepError::permanent(
                        Reason::SecretNotFound,
                        "Secret gws-ops does not exist",
                    )),
                )]),
                [
                    ConditionStatus::False,
                    ConditionStatus::Unknown,
                    ConditionStatus::Unknown,
                ],
                "SecretNotFound",
            ),
        ];
        for (i, (r, statuses, ready_reason)) in cases.iter().enumerate() {
            let conditions = step_conditions(ENVIRONMENT_RULES, r, &[]);
            let got: Vec<ConditionStatus> = conditions.iter().map(|c| c.status).collect();
            assert_eq!(got, statuses.to_vec(), "case {i}");
            assert_eq!(ready(&conditions, "").reason, *ready_reason, "case {i}");
        }
    }

    type Ran = (Step, Result<Outcome, StepError>);
    /// Outcomes; per tenant condition its status and reason; Ready's status and reason.
    type ObservedCase = (
        Vec<Ran>,
        [(ConditionStatus, &'static str); 4],
        ConditionStatus,
        &'static str,
    );

    #[test]
    #[allow(clippy::too_many_lines)] // one table
    fn observed_outcomes_are_in_sync_drifted_missing_or_not_observable() {
        use crate::api::ManagementPolicy;
        let drifted = || Ok(Outcome::Drifted("chatservice-uri differs".into()));
        let missing = || Ok(Outcome::Missing("no tenant".into()));
        let unobservable = || Ok(Outcome::NotObservable("no read".into()));
        let (t, f, u) = (
            ConditionStatus::True,
            ConditionStatus::False,
            ConditionStatus::Unknown,
        );
        // (outcomes, [ContactCenter, ChatService, Ucs, TenantProvisioned], Ready, its reason)
        let table: Vec<ObservedCase> = vec![
            (
                vec![
                    (Step::ContactCenterResolved, Ok(Outcome::Verified)),
                    (Step::ChatServiceRegistered, Ok(Outcome::AlreadyRight)),
                    (Step::TenantToken, Ok(Outcome::Obtained)),
                    (Step::UcsRegistered, unobservable()),
                    (Step::TenantProvisioned, Ok(Outcome::Recovered)),
                    (Step::OutputSecret, Ok(Outcome::Created)),
                ],
                [
                    (t, "InSync"),
                    (t, "InSync"),
                    (u, "NotObservable"),
                    (t, "InSync"),
                ],
                t,
                "InSync",
            ),
            (
                vec![
                    (Step::ContactCenterResolved, Ok(Outcome::Verified)),
                    (Step::ChatServiceRegistered, drifted()),
                    (Step::TenantToken, Ok(Outcome::Obtained)),
                    (Step::UcsRegistered, Ok(Outcome::AlreadyRight)),
                    (Step::TenantProvisioned, missing()),
                ],
                [(t, "InSync"), (f, "Drifted"), (t, "InSync"), (f, "Missing")],
                f,
                "Drifted",
            ),
            (
                vec![
                    (Step::ContactCenterResolved, Ok(Outcome::Verified)),
                    (Step::ChatServiceRegistered, Ok(Outcome::AlreadyRight)),
                    (Step::TenantToken, Ok(Outcome::Obtained)),
                    (Step::UcsRegistered, Ok(Outcome::AlreadyRight)),
                    (Step::TenantProvisioned, missing()),
                ],
                [(t, "InSync"), (t, "InSync"), (t, "InSync"), (f, "Missing")],
                f,
                "Missing",
            ),
        ];
        for (i, (steps, expected, ready_status, ready_reason)) in table.into_iter().enumerate() {
            let mut r = report(&steps);
            r.policy = ManagementPolicy::Observe;
            let conditions = step_conditions(TENANT_RULES, &r, &[]);
            let got: Vec<(ConditionStatus, &str)> = conditions
                .iter()
                .map(|c| (c.status, c.reason.as_str()))
                .collect();
            assert_eq!(got, expected.to_vec(), "case {i}");
            let drift = conditions.iter().find(|c| c.reason == "Drifted");
            assert!(drift.is_none_or(|c| c.message == "chatservice-uri differs"));
            let ready = ready(&conditions, "provisioned");
            assert_eq!(
                (ready.status, ready.reason.as_str()),
                (ready_status, ready_reason),
                "case {i}"
            );
            if ready_status == t {
                assert_eq!(ready.message, OBSERVED_IN_SYNC);
            }
        }
        // The same outcomes under Manage hold with the rules' own reasons.
        let r = report(&[(Step::ContactCenterResolved, Ok(Outcome::Verified))]);
        assert_eq!(step_conditions(TENANT_RULES, &r, &[])[0].reason, "Resolved");
    }

    #[test]
    fn a_pending_condition_names_the_condition_it_waits_for_as_of_this_pass() {
        let stale = Condition::new(
            types::TENANT_PROVISIONED,
            ConditionStatus::Unknown,
            "Pending",
            "Not checked yet: waiting for Credentials.",
        );
        let r = report(&[(
            Step::ContactCenterResolved,
            Err(StepError::permanent(
                Reason::ContactCenterNotFound,
                "no contact center",
            )),
        )]);
        let conditions = step_conditions(TENANT_RULES, &r, &[stale]);
        let provisioned = find(&conditions, types::TENANT_PROVISIONED).unwrap();
        assert_eq!(provisioned.status, ConditionStatus::Unknown);
        assert_eq!(
            provisioned.message,
            "Not checked yet: waiting for ContactCenterResolved."
        );
    }

    #[test]
    fn a_step_is_named_by_the_condition_it_shows_on() {
        assert_eq!(
            condition_of(TENANT_RULES, Step::TenantToken),
            types::TENANT_PROVISIONED
        );
        assert_eq!(
            condition_of(TENANT_RULES, Step::OutputSecret),
            types::TENANT_PROVISIONED
        );
        assert_eq!(
            condition_of(ENVIRONMENT_RULES, Step::ClientSecret),
            types::CLIENT_REGISTERED
        );
        assert_eq!(
            condition_of(ENVIRONMENT_RULES, Step::GapiRegistered),
            types::GAPI_REGISTERED
        );
    }

    #[test]
    fn conditions_not_reached_keep_their_previous_value() {
        let previous = vec![Condition::new(
            types::GAPI_REGISTERED,
            ConditionStatus::True,
            "Provisioned",
            "",
        )];
        let r = report(&[(
            Step::Credentials,
            Err(StepError::permanent(
                Reason::SecretKeyMissing,
                "Secret x has no key y",
            )),
        )]);
        let conditions = step_conditions(ENVIRONMENT_RULES, &r, &previous);
        assert_eq!(conditions[2].status, ConditionStatus::True);
        let ready = ready(&conditions, "");
        assert_eq!(ready.reason, "SecretKeyMissing");
        assert!(ready.message.contains("Secret x has no key y"));
    }
}
