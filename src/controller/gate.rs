//! The gate of a pass: what holds it back before any upstream call, decided from what the
//! pass dereferenced. Pure, and the same for both kinds; a table test covers every branch.
//!
//! ```text
//! dereference (I/O)  →  gate (pure)  →  Proceed: run the steps → record in status
//!                                    ↘  any other verdict: `hold` says what status and
//!                                       what next action it gets, nothing upstream is called
//! ```

use std::time::Duration;

use kube::runtime::controller::Action;

use super::conditions::{conflict, invalid_spec, types};
use crate::api::ManagementPolicy;
use crate::api::conditions::{Condition, ConditionStatus, find};

/// What a pass has looked up before it decides whether to go on.
#[derive(Debug)]
pub struct Facts<E> {
    pub suspended: bool,
    /// What is wrong with the spec, in words; empty when it is valid.
    pub problems: Vec<String>,
    /// What the pass needs besides its own resource: a tenant's environment, read with its
    /// Secrets; `()` for an environment, which needs nothing else.
    pub dependency: Dependency<E>,
    /// Whether both kinds' caches are listed: before, a rival could go unseen.
    pub caches_listed: bool,
    /// Another resource that claims the same upstream thing, in words.
    pub rival: Option<String>,
}

/// The state of what a pass depends on.
#[derive(Debug)]
pub enum Dependency<E> {
    Usable(E),
    /// Not looked up: an earlier fact (suspension, an invalid spec) decides the pass.
    NotLookedUp,
    /// Working on an edit of its own; its status change wakes the dependents, and until then
    /// there is nothing to tell them (an edit must not make every tenant flap).
    CatchingUp,
    /// Not usable: why, in words, and whether only a retry can end it (a read that failed
    /// changes nothing that is watched).
    Failing {
        why: String,
        retry: bool,
    },
}

/// The gate's verdict.
#[derive(Debug, PartialEq)]
pub enum Gate<E> {
    Suspended,
    Invalid(Vec<String>),
    Waiting(Wait),
    Conflict(String),
    Proceed(E),
}

/// Why a pass waits.
#[derive(Debug, PartialEq)]
pub enum Wait {
    /// The caches are not listed yet.
    Caches,
    /// Nothing to say: the dependency's change wakes the pass.
    Quiet,
    /// The dependency fails.
    Dependency { why: String, retry: bool },
}

/// The verdict, first fact first: suspension wins over everything, a spec that is wrong
/// over what it depends on, and a rival is looked for only once everything else holds.
pub fn gate<E>(facts: Facts<E>) -> Gate<E> {
    if facts.suspended {
        return Gate::Suspended;
    }
    if !facts.problems.is_empty() {
        return Gate::Invalid(facts.problems);
    }
    let usable = match facts.dependency {
        Dependency::Usable(usable) => usable,
        Dependency::NotLookedUp | Dependency::CatchingUp => return Gate::Waiting(Wait::Quiet),
        Dependency::Failing { why, retry } => {
            return Gate::Waiting(Wait::Dependency { why, retry });
        }
    };
    if !facts.caches_listed {
        return Gate::Waiting(Wait::Caches);
    }
    match facts.rival {
        Some(why) => Gate::Conflict(why),
        None => Gate::Proceed(usable),
    }
}

/// How a pass the gate held ends, where that is the same for both kinds.
#[derive(Debug, PartialEq)]
pub struct Hold {
    /// The conditions to write; `None` writes nothing.
    pub conditions: Option<Vec<Condition>>,
    /// Whether the resource now counts as not Ready.
    pub not_ready: bool,
    pub action: Action,
    /// When `action` retries a failure: its wait, for `status.nextRetryAt`.
    pub retry_in: Option<Duration>,
}

/// How long a pass waits for the caches before it looks again.
pub const CACHES_RETRY: Duration = Duration::from_secs(5);

/// The end of a held pass for the verdicts both kinds treat alike; `None` for the others
/// (Suspended, a failing dependency, Proceed), which each kind handles itself.
pub fn hold<E>(verdict: &Gate<E>, previous: &[Condition], max_backoff: Duration) -> Option<Hold> {
    let quiet = |action| Hold {
        conditions: None,
        not_ready: false,
        action,
        retry_in: None,
    };
    match verdict {
        // The watches see the spec fixed.
        Gate::Invalid(problems) => Some(Hold {
            conditions: Some(invalid_spec(previous, problems)),
            not_ready: true,
            action: Action::await_change(),
            retry_in: None,
        }),
        // The other resource's deletion is not watched from here: look again later.
        Gate::Conflict(why) => Some(Hold {
            conditions: Some(conflict(previous, why)),
            not_ready: true,
            action: Action::requeue(max_backoff),
            retry_in: Some(max_backoff),
        }),
        Gate::Waiting(Wait::Caches) => Some(quiet(Action::requeue(CACHES_RETRY))),
        Gate::Waiting(Wait::Quiet) => Some(quiet(Action::await_change())),
        Gate::Suspended | Gate::Waiting(Wait::Dependency { .. }) | Gate::Proceed(_) => None,
    }
}

/// Whether an environment serves its tenants: when Ready; or, observed, when its client
/// secret is verified, its `nex_gapis` row in place and (with a Deployment) loaded. What else
/// an observed environment finds drifted (the client's description, which only Manage sets)
/// is nothing a tenant needs, and must not keep a whole estate from being observed.
pub fn environment_serves_tenants(policy: ManagementPolicy, conditions: &[Condition]) -> bool {
    let is = |type_: &str, status: ConditionStatus| {
        find(conditions, type_).is_some_and(|c| c.status == status)
    };
    is(types::READY, ConditionStatus::True)
        || (policy.observes()
            && is(types::CLIENT_VERIFIED, ConditionStatus::True)
            && is(types::GAPI_REGISTERED, ConditionStatus::True)
            && !is(types::NEXUS_RESTARTED, ConditionStatus::False))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(dependency: Dependency<&'static str>) -> Facts<&'static str> {
        Facts {
            suspended: false,
            problems: vec![],
            dependency,
            caches_listed: true,
            rival: None,
        }
    }

    fn failing() -> Dependency<&'static str> {
        Dependency::Failing {
            why: "prod is not Ready yet (Unauthorized).".into(),
            retry: false,
        }
    }

    type Case = (&'static str, Facts<&'static str>, Gate<&'static str>);

    fn with(
        f: fn(&mut Facts<&'static str>),
        dependency: Dependency<&'static str>,
    ) -> Facts<&'static str> {
        let mut facts = facts(dependency);
        f(&mut facts);
        facts
    }

    fn waiting(why: &str, retry: bool) -> Gate<&'static str> {
        Gate::Waiting(Wait::Dependency {
            why: why.into(),
            retry,
        })
    }

    /// Which fact wins when several would hold the pass.
    #[test]
    fn the_gate_table_of_precedence() {
        let invalid = || Gate::Invalid(vec!["bad".to_string()]);
        let cases: Vec<Case> = vec![
            (
                "all holds",
                facts(Dependency::Usable("env")),
                Gate::Proceed("env"),
            ),
            (
                "suspended wins over everything",
                with(
                    |f| {
                        f.suspended = true;
                        f.problems = vec!["bad".into()];
                        f.caches_listed = false;
                        f.rival = Some("t2".into());
                    },
                    Dependency::NotLookedUp,
                ),
                Gate::Suspended,
            ),
            (
                "an invalid spec wins over its dependency",
                with(|f| f.problems = vec!["bad".into()], failing()),
                invalid(),
            ),
            (
                "an invalid spec wins over a rival",
                with(
                    |f| (f.problems, f.rival) = (vec!["bad".into()], Some("t2".into())),
                    Dependency::NotLookedUp,
                ),
                invalid(),
            ),
            (
                "a dependency's failure is said before the caches are waited for",
                with(|f| f.caches_listed = false, failing()),
                waiting("prod is not Ready yet (Unauthorized).", false),
            ),
            (
                "caches not listed: no rival can be ruled out",
                with(|f| f.caches_listed = false, Dependency::Usable("env")),
                Gate::Waiting(Wait::Caches),
            ),
            (
                "a rival",
                with(|f| f.rival = Some("t2".into()), Dependency::Usable("env")),
                Gate::Conflict("t2".into()),
            ),
        ];
        for (name, facts, want) in cases {
            assert_eq!(gate(facts), want, "{name}");
        }
    }

    /// What each state of the dependency makes of a pass that nothing else holds.
    #[test]
    fn the_gate_table_of_dependencies() {
        let cases: Vec<Case> = vec![
            (
                "a failing dependency, said",
                facts(failing()),
                waiting("prod is not Ready yet (Unauthorized).", false),
            ),
            (
                "a failed read, retried",
                facts(Dependency::Failing {
                    why: "a Secret read failed".into(),
                    retry: true,
                }),
                waiting("a Secret read failed", true),
            ),
            (
                "a dependency catching up: quiet",
                facts(Dependency::CatchingUp),
                Gate::Waiting(Wait::Quiet),
            ),
            (
                "not looked up, nothing else decides: quiet",
                facts(Dependency::NotLookedUp),
                Gate::Waiting(Wait::Quiet),
            ),
        ];
        for (name, facts, want) in cases {
            assert_eq!(gate(facts), want, "{name}");
        }
    }

    #[test]
    fn the_hold_table() {
        let max = Duration::from_secs(300);
        let ready_of = |h: &Hold| {
            h.conditions
                .as_deref()
                .and_then(|c| find(c, "Ready"))
                .map(|c| (c.status, c.reason.clone()))
        };
        let invalid = hold::<()>(&Gate::Invalid(vec!["bad".into()]), &[], max).expect("held");
        assert_eq!(
            ready_of(&invalid),
            Some((ConditionStatus::False, "InvalidSpec".into()))
        );
        assert!(invalid.not_ready);
        assert_eq!(invalid.action, Action::await_change());
        assert_eq!(
            invalid.retry_in, None,
            "a fixed spec is awaited, not retried"
        );

        let rival = hold::<()>(&Gate::Conflict("t2".into()), &[], max).expect("held");
        assert_eq!(
            ready_of(&rival),
            Some((ConditionStatus::False, "Conflict".into()))
        );
        assert_eq!(rival.action, Action::requeue(max));
        assert_eq!(rival.retry_in, Some(max), "status says when it looks again");

        let caches = hold::<()>(&Gate::Waiting(Wait::Caches), &[], max).expect("held");
        assert_eq!((caches.conditions, caches.not_ready), (None, false));
        assert_eq!(caches.action, Action::requeue(CACHES_RETRY));
        assert_eq!(caches.retry_in, None, "nothing failed");

        let quiet = hold::<()>(&Gate::Waiting(Wait::Quiet), &[], max).expect("held");
        assert_eq!(
            (quiet.conditions, quiet.action),
            (None, Action::await_change())
        );

        for kind_handles_it in [
            Gate::Suspended,
            Gate::Proceed(()),
            Gate::Waiting(Wait::Dependency {
                why: "x".into(),
                retry: true,
            }),
        ] {
            assert_eq!(hold(&kind_handles_it, &[], max), None);
        }
    }

    type Given = Vec<(&'static str, ConditionStatus)>;

    /// An observed environment enabled by hand: only the client's description differs.
    const DRIFTED_DESCRIPTION: [(&str, ConditionStatus); 4] = [
        ("Ready", ConditionStatus::False),
        ("ClientRegistered", ConditionStatus::False),
        ("ClientVerified", ConditionStatus::True),
        ("GapiRegistered", ConditionStatus::True),
    ];

    #[test]
    fn which_environments_serve_their_tenants() {
        use ConditionStatus::{False, True};
        let (observe, manage) = (ManagementPolicy::Observe, ManagementPolicy::Manage);
        let drifted = DRIFTED_DESCRIPTION;
        let cases: Vec<(&str, ManagementPolicy, Given, bool)> = vec![
            ("Ready", manage, vec![("Ready", True)], true),
            ("Ready, observed", observe, vec![("Ready", True)], true),
            (
                "observed, only the description drifted",
                observe,
                drifted.to_vec(),
                true,
            ),
            (
                "managed, same conditions: Manage fixes it first",
                manage,
                drifted.to_vec(),
                false,
            ),
            (
                "observed, the secret not verified",
                observe,
                vec![
                    ("Ready", False),
                    ("ClientVerified", False),
                    ("GapiRegistered", True),
                ],
                false,
            ),
            (
                "observed, no row",
                observe,
                vec![
                    ("Ready", False),
                    ("ClientVerified", True),
                    ("GapiRegistered", False),
                ],
                false,
            ),
            (
                "observed, row not loaded by Nexus",
                observe,
                [drifted.to_vec(), vec![("NexusRestarted", False)]].concat(),
                false,
            ),
            ("no status yet", observe, vec![], false),
        ];
        for (name, policy, given, want) in cases {
            let conditions: Vec<Condition> = given
                .iter()
                .map(|(t, s)| Condition::new(t, *s, "R", ""))
                .collect();
            assert_eq!(
                environment_serves_tenants(policy, &conditions),
                want,
                "{name}"
            );
        }
    }
}
