//! The kstatus conditions beside `Ready`: `Reconciling` (True while the operator works toward
//! Ready or retries a transient failure) and `Stalled` (True when nothing will change without
//! a change: the spec, a Secret, an upstream, a person). `kubectl wait`, Flux, Argo CD and
//! every kstatus reader tell a resource in progress from a failed one and a current one by
//! them (kstatus: abnormal-true conditions, both False or absent when current).
//!
//! Both are derived from `Ready` (its status and reason) and `Suspended`, in one pure
//! function, and written by the one status writer with the rest of status: no write of
//! their own, and they change only when `Ready` or `Suspended` does.

use crate::api::conditions::{Condition, ConditionStatus, find, merge_conditions};
use crate::api::{EnvironmentStatus, TenantStatus};
use crate::runbook::Reason;

pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
const READY: &str = "Ready";
const SUSPENDED: &str = "Suspended";

/// What a kstatus reader concludes from a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// `Ready` is True: `Reconciling` and `Stalled` False.
    Current,
    /// On the way to Ready, or retrying a transient failure: `Reconciling` True.
    InProgress,
    /// Nothing will change without a change somewhere: `Stalled` True.
    Stalled,
    /// `spec.suspend` is true, so nothing is reconciled: neither reconciling nor stalled (kstatus).
    Suspended,
}

/// Where a `Ready` that is not True with this reason stands. Exhaustive on purpose: a new
/// reason must be placed here.
pub fn health_of(reason: Reason) -> Health {
    match reason {
        // On the way to Ready, as planned (see `Reason::is_progress`).
        Reason::Pending | Reason::RollingOut | Reason::WaitingForEnvironment => Health::InProgress,
        // A connect error, a timeout, a 429 or a 5xx: retried on the backoff, and nothing
        // needs to change for it to pass.
        Reason::UpstreamUnavailable => Health::InProgress,
        Reason::Suspended => Health::Suspended,
        // A step's own words on a Ready that is not True: not written today; nothing failed,
        // so the next pass is waited for.
        Reason::Provisioned
        | Reason::Verified
        | Reason::Resolved
        | Reason::Acknowledged
        | Reason::UpToDate
        | Reason::RolledOut
        | Reason::InSync
        | Reason::NotObservable => Health::InProgress,
        // Observe: what differs stays so until a person fixes it upstream or switches the
        // resource to Manage.
        Reason::Drifted | Reason::Missing => Health::Stalled,
        // A person must act first.
        Reason::ManualStepRequired => Health::Stalled,
        // Fixed in the cluster: the spec or a Secret.
        Reason::InvalidSpec
        | Reason::SecretNotFound
        | Reason::SecretKeyMissing
        | Reason::InvalidSecret
        | Reason::ClientExists => Health::Stalled,
        // Fixed outside the cluster, or by a person deciding: the operator retries them on its
        // backoff, but a retry alone does not help.
        Reason::Unauthorized
        | Reason::UpstreamRejected
        | Reason::InvalidAnswer
        | Reason::Conflict
        | Reason::ContactCenterNotFound
        | Reason::AmbiguousContactCenter
        | Reason::TenantUpdateUnsupported
        | Reason::TenantMissing
        | Reason::ClientManagedElsewhere
        | Reason::RestartFailed
        | Reason::RolloutStuck
        // Tenants still use the environment, or a cleanup failed: the message says what to
        // change (or to set deletionPolicy: Retain).
        | Reason::DeletionBlocked => Health::Stalled,
    }
}

/// The health the conditions show: `Suspended` True first, then `Ready`. A Ready not yet
/// written, or with a reason this version does not know, is in progress: the next pass
/// rewrites it.
pub fn health(conditions: &[Condition]) -> Health {
    if find(conditions, SUSPENDED).is_some_and(|c| c.status == ConditionStatus::True) {
        return Health::Suspended;
    }
    match find(conditions, READY) {
        Some(c) if c.status == ConditionStatus::True => Health::Current,
        Some(c) => Reason::parse(&c.reason).map_or(Health::InProgress, health_of),
        None => Health::InProgress,
    }
}

/// `Reconciling` and `Stalled` for these conditions: the True one carries Ready's reason and
/// message (what to wait for, or what to fix); a False one Ready's reason, and says why
/// only when suspended.
pub fn kstatus_conditions(conditions: &[Condition]) -> [Condition; 2] {
    let ready = find(conditions, READY);
    let reason = ready.map_or(Reason::Pending.as_str(), |c| c.reason.as_str());
    let message = ready.map_or("No pass has finished yet.", |c| c.message.as_str());
    let (t, f) = (ConditionStatus::True, ConditionStatus::False);
    let make =
        |type_, status, reason: &str, message: &str| Condition::new(type_, status, reason, message);
    match health(conditions) {
        Health::Current => [
            make(RECONCILING, f, reason, ""),
            make(STALLED, f, reason, ""),
        ],
        Health::InProgress => [
            make(RECONCILING, t, reason, message),
            make(STALLED, f, reason, ""),
        ],
        Health::Stalled => [
            make(RECONCILING, f, reason, ""),
            make(STALLED, t, reason, message),
        ],
        Health::Suspended => {
            let why = "spec.suspend is true: no external calls are made until it is false.";
            let suspended = Reason::Suspended.as_str();
            [
                make(RECONCILING, f, suspended, why),
                make(STALLED, f, suspended, why),
            ]
        }
    }
}

/// The conditions with `Reconciling` and `Stalled` derived anew (last, in that order), each
/// keeping its `lastTransitionTime` from `previous` unless its status flipped.
pub fn with_kstatus(
    conditions: &[Condition],
    previous: &[Condition],
    generation: Option<i64>,
    now: &str,
) -> Vec<Condition> {
    let derived = kstatus_conditions(conditions);
    let mut all: Vec<Condition> = conditions
        .iter()
        .filter(|c| c.type_ != RECONCILING && c.type_ != STALLED)
        .cloned()
        .collect();
    all.extend(merge_conditions(previous, derived.into(), generation, now));
    all
}

/// A status with conditions (both kinds'), for the status writer to add the kstatus ones.
pub(crate) trait WithConditions: Clone {
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;

    /// This status with `Reconciling` and `Stalled` derived from its conditions.
    fn with_kstatus(&self, previous: &[Condition], generation: Option<i64>, now: &str) -> Self {
        let mut status = self.clone();
        let conditions = status.conditions_mut();
        *conditions = with_kstatus(conditions, previous, generation, now);
        status
    }
}

impl WithConditions for TenantStatus {
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
}

impl WithConditions for EnvironmentStatus {
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(status: ConditionStatus, reason: &str) -> Condition {
        Condition::new(READY, status, reason, format!("{reason}: what to do."))
    }

    fn statuses(conditions: &[Condition]) -> (ConditionStatus, ConditionStatus) {
        let [reconciling, stalled] = kstatus_conditions(conditions);
        assert_eq!(
            (reconciling.type_.as_str(), stalled.type_.as_str()),
            (RECONCILING, STALLED)
        );
        (reconciling.status, stalled.status)
    }

    #[test]
    fn every_reason_on_a_ready_that_is_not_true_has_its_place() {
        use Health::*;
        // Every reason, in the order of Reason::ALL: where a Ready=False with it stands.
        let table: &[(Reason, Health)] = &[
            (Reason::Provisioned, InProgress),
            (Reason::Verified, InProgress),
            (Reason::Resolved, InProgress),
            (Reason::Acknowledged, InProgress),
            (Reason::InSync, InProgress),
            (Reason::NotObservable, InProgress),
            (Reason::UpToDate, InProgress),
            (Reason::RolledOut, InProgress),
            (Reason::Pending, InProgress),
            (Reason::RollingOut, InProgress),
            (Reason::WaitingForEnvironment, InProgress),
            (Reason::ManualStepRequired, Stalled),
            (Reason::Suspended, Suspended),
            (Reason::Drifted, Stalled),
            (Reason::Missing, Stalled),
            (Reason::InvalidSpec, Stalled),
            (Reason::SecretNotFound, Stalled),
            (Reason::SecretKeyMissing, Stalled),
            (Reason::InvalidSecret, Stalled),
            (Reason::Unauthorized, Stalled),
            (Reason::UpstreamUnavailable, InProgress),
            (Reason::UpstreamRejected, Stalled),
            (Reason::InvalidAnswer, Stalled),
            (Reason::Conflict, Stalled),
            (Reason::ContactCenterNotFound, Stalled),
            (Reason::AmbiguousContactCenter, Stalled),
            (Reason::TenantUpdateUnsupported, Stalled),
            (Reason::TenantMissing, Stalled),
            (Reason::ClientExists, Stalled),
            (Reason::ClientManagedElsewhere, Stalled),
            (Reason::RestartFailed, Stalled),
            (Reason::RolloutStuck, Stalled),
            (Reason::DeletionBlocked, Stalled),
        ];
        let reasons: Vec<Reason> = table.iter().map(|(r, _)| *r).collect();
        assert_eq!(reasons, Reason::ALL, "the table covers every reason");
        for (reason, want) in table {
            let conditions = [ready(ConditionStatus::False, reason.as_str())];
            assert_eq!(health(&conditions), *want, "{reason:?}");
            let expected = match want {
                InProgress => (ConditionStatus::True, ConditionStatus::False),
                Stalled => (ConditionStatus::False, ConditionStatus::True),
                Current | Suspended => (ConditionStatus::False, ConditionStatus::False),
            };
            assert_eq!(statuses(&conditions), expected, "{reason:?}");
            // Progress never stalls; a warning stalls unless a retry alone can fix it.
            if reason.is_progress() {
                assert_eq!(*want, InProgress, "{reason:?}");
            }
            if reason.is_warning() && *reason != Reason::UpstreamUnavailable {
                assert_eq!(*want, Stalled, "{reason:?}");
            }
        }
    }

    /// docs/gitops-health.md lists each reason in the row of what it means.
    #[test]
    fn the_docs_place_every_reason_as_the_code_does() {
        let docs = include_str!("../../docs/gitops-health.md");
        let row = |start: &str| {
            docs.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("docs/gitops-health.md: no row {start}"))
        };
        let rows = [
            (Health::InProgress, row("| `Reconciling` is True |")),
            (Health::Stalled, row("| `Stalled` is True |")),
            (Health::Suspended, row("| neither |")),
        ];
        for reason in Reason::ALL {
            let word = format!("`{}`", reason.as_str());
            for (health, line) in rows {
                assert_eq!(
                    line.contains(&word),
                    health_of(*reason) == health,
                    "{reason:?} in the row of {health:?}"
                );
            }
        }
    }

    #[test]
    fn ready_true_is_current_and_suspended_is_neither_whatever_ready_says() {
        let f = ConditionStatus::False;
        let current = [ready(ConditionStatus::True, "Provisioned")];
        assert_eq!(health(&current), Health::Current);
        assert_eq!(statuses(&current), (f, f));
        let suspended = Condition::new(SUSPENDED, ConditionStatus::True, "Suspended", "");
        for before in ["Provisioned", "UpstreamUnavailable", "InvalidSpec"] {
            let status = if before == "Provisioned" {
                ConditionStatus::True
            } else {
                f
            };
            let conditions = [ready(status, before), suspended.clone()];
            assert_eq!(health(&conditions), Health::Suspended, "{before}");
            let [r, s] = kstatus_conditions(&conditions);
            assert_eq!((r.status, s.status), (f, f), "{before}");
            assert_eq!(r.reason, "Suspended");
            assert!(s.message.contains("spec.suspend"));
        }
        // Resumed: Suspended False (or gone) no longer counts.
        let resumed = Condition::new(SUSPENDED, f, "Resumed", "");
        let conditions = [ready(f, "InvalidSpec"), resumed];
        assert_eq!(health(&conditions), Health::Stalled);
    }

    #[test]
    fn no_ready_yet_or_an_unknown_reason_is_in_progress() {
        assert_eq!(health(&[]), Health::InProgress);
        let [r, _] = kstatus_conditions(&[]);
        assert_eq!(
            (r.status, r.reason.as_str()),
            (ConditionStatus::True, "Pending")
        );
        let unknown = [ready(ConditionStatus::Unknown, "SomethingNew")];
        assert_eq!(health(&unknown), Health::InProgress);
    }

    #[test]
    fn the_true_condition_carries_readys_reason_and_message() {
        let conditions = [ready(ConditionStatus::False, "SecretNotFound")];
        let [r, s] = kstatus_conditions(&conditions);
        assert_eq!(s.reason, "SecretNotFound");
        assert_eq!(s.message, "SecretNotFound: what to do.");
        assert_eq!(r.reason, "SecretNotFound");
        assert_eq!(r.message, "");
        let conditions = [ready(ConditionStatus::False, "UpstreamUnavailable")];
        let [r, _] = kstatus_conditions(&conditions);
        assert_eq!(r.message, "UpstreamUnavailable: what to do.");
    }

    #[test]
    fn derived_anew_each_time_keeping_transition_times_until_a_flip() {
        let stalled = [ready(ConditionStatus::False, "SecretNotFound")];
        let first = with_kstatus(&stalled, &[], Some(1), "t1");
        let types: Vec<&str> = first.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [READY, RECONCILING, STALLED]);
        assert!(first[1..].iter().all(|c| c.observed_generation == Some(1)));
        assert!(
            first[1..]
                .iter()
                .all(|c| c.last_transition_time.as_deref() == Some("t1"))
        );

        // Another stalled reason, kept conditions passed back in: no flip, no new time, no
        // duplicate.
        let mut again: Vec<Condition> = first.clone();
        again[0] = ready(ConditionStatus::False, "SecretKeyMissing");
        let second = with_kstatus(&again, &first, Some(2), "t2");
        assert_eq!(second.len(), 3);
        let stalled = find(&second, STALLED).unwrap();
        assert_eq!(stalled.last_transition_time.as_deref(), Some("t1"));
        assert_eq!(stalled.reason, "SecretKeyMissing");
        assert_eq!(stalled.observed_generation, Some(2));

        // Ready: Stalled flips, Reconciling does not.
        let current = [ready(ConditionStatus::True, "Provisioned")];
        let third = with_kstatus(&current, &second, Some(2), "t3");
        let time = |type_| find(&third, type_).unwrap().last_transition_time.clone();
        assert_eq!(time(STALLED).as_deref(), Some("t3"));
        assert_eq!(time(RECONCILING).as_deref(), Some("t1"));
    }
}
