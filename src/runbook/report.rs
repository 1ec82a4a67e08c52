//! What a step did, in words a person and a condition can use.

use std::fmt;
use std::time::Duration;

use crate::upstream::{ErrorKind, UpstreamError};

/// The runbook steps, in the order they run (the order of reports: `Ord`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    // Environment.
    Credentials,
    ClientSecret,
    ClientRegistered,
    ClientVerified,
    GapiRegistered,
    // Tenant.
    ContactCenterResolved,
    ChatServiceRegistered,
    TenantToken,
    UcsRegistered,
    TenantProvisioned,
    OutputSecret,
    DesignerEnvConfigured,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Credentials => "Credentials",
            Step::ClientSecret => "ClientSecret",
            Step::ClientRegistered => "ClientRegistered",
            Step::ClientVerified => "ClientVerified",
            Step::GapiRegistered => "GapiRegistered",
            Step::ContactCenterResolved => "ContactCenterResolved",
            Step::ChatServiceRegistered => "ChatServiceRegistered",
            Step::TenantToken => "TenantToken",
            Step::UcsRegistered => "UcsRegistered",
            Step::TenantProvisioned => "TenantProvisioned",
            Step::OutputSecret => "OutputSecret",
            Step::DesignerEnvConfigured => "DesignerEnvConfigured",
        }
    }

    /// What the step does, for the console.
    pub fn description(self) -> &'static str {
        match self {
            Step::Credentials => "read the credentials from their Secrets",
            Step::ClientSecret => "resolve or generate the client secret",
            Step::ClientRegistered => "register the OAuth client in GWS Auth",
            Step::ClientVerified => "verify the client with a client_credentials token",
            Step::GapiRegistered => "register GWS in the nex_gapis table",
            Step::ContactCenterResolved => "resolve the contact center",
            Step::ChatServiceRegistered => "register the chatservice-uri setting",
            Step::TenantToken => "get the tenant token (password grant)",
            Step::UcsRegistered => "register the PlatformUCS service",
            Step::TenantProvisioned => "provision the tenant in Nexus",
            Step::OutputSecret => "write the output Secret",
            Step::DesignerEnvConfigured => "DesignerEnv transaction (manual)",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a step that holds did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    AlreadyRight,
    /// The object existed but its record was lost; it was found again.
    Recovered,
    /// The check passed (a token for the client, a contact center found).
    Verified,
    /// A fresh value was fetched (a token); nothing external changed.
    Obtained,
    /// A cached value was reused (a token).
    Reused,
    /// A person must act; the report's detail says what.
    ManualStepRequired,
    /// Observe: it exists but differs; says what differs and what Manage would do.
    Drifted(String),
    /// Observe: it does not exist; says what Manage would create.
    Missing(String),
    /// Observe: no read is known (PlatformUCS); says what Manage would do.
    NotObservable(String),
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::AlreadyRight => "already right",
            Outcome::Recovered => "recovered",
            Outcome::Verified => "verified",
            Outcome::Obtained => "obtained",
            Outcome::Reused => "reused",
            Outcome::ManualStepRequired => "manual step required",
            Outcome::Drifted(_) => "drifted",
            Outcome::Missing(_) => "missing",
            Outcome::NotObservable(_) => "not observable",
        }
    }

    /// What an observation found that differs from the spec (Observe only), in words.
    pub fn observed_difference(&self) -> Option<&str> {
        match self {
            Outcome::Drifted(m) | Outcome::Missing(m) | Outcome::NotObservable(m) => Some(m),
            _ => None,
        }
    }

    /// False when an observation found something Manage would change. One that could not
    /// look (PlatformUCS) does not count: it cannot tell, and must not hold Ready back.
    pub fn in_sync(&self) -> bool {
        !matches!(self, Outcome::Drifted(_) | Outcome::Missing(_))
    }

    /// True when the step wrote something external.
    pub fn changed(&self) -> bool {
        matches!(self, Outcome::Created | Outcome::Updated)
    }
}

/// Every reason a condition can carry, failures and the rest: the condition reasons of the
/// contract, one place for their words, whether they mean progress, and where their fix is
/// made. A step's failure is one of them ([`StepError::reason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    // A step or the whole resource holds.
    Provisioned,
    Verified,
    Resolved,
    /// The DesignerEnv step, acknowledged by the user's annotation.
    Acknowledged,
    /// Observe: what the step would manage is as the spec wants it.
    InSync,
    /// Observe: no read of it is known, so it is not looked at (PlatformUCS).
    NotObservable,
    /// Nexus has loaded the current `nex_gapis` row.
    UpToDate,
    RolledOut,
    // On the way, as planned.
    /// Not checked yet: an earlier step holds it up this pass.
    Pending,
    RollingOut,
    WaitingForEnvironment,
    // Nothing wrong, but a person has something to do or said so.
    ManualStepRequired,
    Suspended,
    // Observe: what Manage would change, shown for a person to decide.
    /// It exists but differs from the spec.
    Drifted,
    /// It does not exist.
    Missing,
    // Failures.
    InvalidSpec,
    SecretNotFound,
    SecretKeyMissing,
    /// A Secret's value cannot be used (a CA bundle that is not PEM, a database URL that is
    /// not PostgreSQL's): found before any upstream sees it.
    InvalidSecret,
    Unauthorized,
    UpstreamUnavailable,
    UpstreamRejected,
    InvalidAnswer,
    Conflict,
    ContactCenterNotFound,
    AmbiguousContactCenter,
    TenantUpdateUnsupported,
    /// Nexus no longer has a tenant the operator provisioned, while its key row remains.
    TenantMissing,
    /// An OAuth client met for the first time, made by hand (or by an older operator) and
    /// holding another secret than ours: adopting it must be asked for.
    ClientExists,
    /// An OAuth client whose description names another manager (another environment, or
    /// `dc-operator provision`): taking it over must be asked for.
    ClientManagedElsewhere,
    RestartFailed,
    RolloutStuck,
    DeletionBlocked,
}

/// Where the fix of a failure is made, which decides how it is waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixedIn {
    /// Not a failure: nothing to fix.
    Nothing,
    /// A change in the cluster (a Secret, the environment, the spec), which the watches see.
    Kubernetes,
    /// An upstream or a person outside the cluster, which nothing announces: retried.
    Upstream,
}

impl Reason {
    /// Every reason, for the tables of tests and docs.
    pub const ALL: &'static [Reason] = &[
        Reason::Provisioned,
        Reason::Verified,
        Reason::Resolved,
        Reason::Acknowledged,
        Reason::InSync,
        Reason::NotObservable,
        Reason::UpToDate,
        Reason::RolledOut,
        Reason::Pending,
        Reason::RollingOut,
        Reason::WaitingForEnvironment,
        Reason::ManualStepRequired,
        Reason::Suspended,
        Reason::Drifted,
        Reason::Missing,
        Reason::InvalidSpec,
        Reason::SecretNotFound,
        Reason::SecretKeyMissing,
        Reason::InvalidSecret,
        Reason::Unauthorized,
        Reason::UpstreamUnavailable,
        Reason::UpstreamRejected,
        Reason::InvalidAnswer,
        Reason::Conflict,
        Reason::ContactCenterNotFound,
        Reason::AmbiguousContactCenter,
        Reason::TenantUpdateUnsupported,
        Reason::TenantMissing,
        Reason::ClientExists,
        Reason::ClientManagedElsewhere,
        Reason::RestartFailed,
        Reason::RolloutStuck,
        Reason::DeletionBlocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Provisioned => "Provisioned",
            Reason::Verified => "Verified",
            Reason::Resolved => "Resolved",
            Reason::Acknowledged => "Acknowledged",
            Reason::InSync => "InSync",
            Reason::NotObservable => "NotObservable",
            Reason::Drifted => "Drifted",
            Reason::Missing => "Missing",
            Reason::UpToDate => "UpToDate",
            Reason::RolledOut => "RolledOut",
            Reason::Pending => "Pending",
            Reason::RollingOut => "RollingOut",
            Reason::WaitingForEnvironment => "WaitingForEnvironment",
            Reason::ManualStepRequired => "ManualStepRequired",
            Reason::Suspended => "Suspended",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::SecretNotFound => "SecretNotFound",
            Reason::SecretKeyMissing => "SecretKeyMissing",
            Reason::InvalidSecret => "InvalidSecret",
            Reason::Unauthorized => "Unauthorized",
            Reason::UpstreamUnavailable => "UpstreamUnavailable",
            Reason::UpstreamRejected => "UpstreamRejected",
            Reason::InvalidAnswer => "InvalidAnswer",
            Reason::Conflict => "Conflict",
            Reason::ContactCenterNotFound => "ContactCenterNotFound",
            Reason::AmbiguousContactCenter => "AmbiguousContactCenter",
            Reason::TenantUpdateUnsupported => "TenantUpdateUnsupported",
            Reason::TenantMissing => "TenantMissing",
            Reason::ClientExists => "ClientExists",
            Reason::ClientManagedElsewhere => "ClientManagedElsewhere",
            Reason::RestartFailed => "RestartFailed",
            Reason::RolloutStuck => "RolloutStuck",
            Reason::DeletionBlocked => "DeletionBlocked",
        }
    }

    /// The reason a condition carries, as written in status.
    pub fn parse(text: &str) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.as_str() == text)
    }

    /// A Ready that is False on the way to True, as planned (a Nexus rollout, a first pass
    /// still pending, an environment not Ready yet): Normal events and INFO logs.
    pub fn is_progress(self) -> bool {
        matches!(
            self,
            Reason::Pending | Reason::RollingOut | Reason::WaitingForEnvironment
        )
    }

    /// Something holds, or a person said so: no failure.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Reason::Provisioned
                | Reason::Verified
                | Reason::Resolved
                | Reason::Acknowledged
                | Reason::InSync
                | Reason::NotObservable
                | Reason::UpToDate
                | Reason::RolledOut
                | Reason::ManualStepRequired
                | Reason::Suspended
        )
    }

    /// A failure a person should see: Warning events and WARN logs.
    pub fn is_warning(self) -> bool {
        !self.is_success() && !self.is_progress()
    }

    /// Where a failure with this reason is fixed.
    pub fn fixed_in(self) -> FixedIn {
        match self {
            r if !r.is_warning() && r != Reason::WaitingForEnvironment => FixedIn::Nothing,
            Reason::InvalidSpec
            | Reason::SecretNotFound
            | Reason::SecretKeyMissing
            | Reason::InvalidSecret
            | Reason::WaitingForEnvironment
            | Reason::ClientExists
            // Observe: fixed by hand upstream (the resync looks again) or by switching to
            // Manage, a change the watches see.
            | Reason::Drifted
            | Reason::Missing => FixedIn::Kubernetes,
            _ => FixedIn::Upstream,
        }
    }

    /// Whether the fix of such a failure is a change in the cluster (a Secret, the
    /// environment, the spec), which the controllers' watches see; else it may be made in an
    /// upstream, which nothing announces.
    pub fn fixed_in_kubernetes(self) -> bool {
        self.fixed_in() == FixedIn::Kubernetes
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed step: the reason, a message a person can act on, and whether a retry can help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepError {
    pub reason: Reason,
    pub message: String,
    pub transient: bool,
    pub retry_after: Option<Duration>,
}

impl StepError {
    pub fn permanent(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            transient: false,
            retry_after: None,
        }
    }

    pub fn transient(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            transient: true,
            ..Self::permanent(reason, message)
        }
    }

    /// Maps an upstream failure, with what to do about it.
    pub fn from_upstream(error: &UpstreamError, hint: &str) -> Self {
        let reason = match error.kind {
            ErrorKind::Transient => Reason::UpstreamUnavailable,
            ErrorKind::Unauthorized => Reason::Unauthorized,
            ErrorKind::Conflict => Reason::Conflict,
            ErrorKind::NotFound | ErrorKind::Rejected => Reason::UpstreamRejected,
            ErrorKind::InvalidAnswer => Reason::InvalidAnswer,
            // The process stops acting (it lost the Lease): nothing was asked upstream.
            ErrorKind::Fenced => Reason::UpstreamUnavailable,
        };
        let mut message = error.to_string();
        if !hint.is_empty() {
            message.push_str(". ");
            message.push_str(hint);
        }
        Self {
            reason,
            message,
            transient: error.is_transient(),
            retry_after: error.retry_after,
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

/// One step's result.
#[derive(Clone, Debug)]
pub struct StepReport {
    pub step: Step,
    pub result: Result<Outcome, StepError>,
    /// Extra words for the console (never a secret).
    pub detail: String,
    pub duration: Duration,
}

/// The steps of one run, in order, and whether they only looked.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    pub steps: Vec<StepReport>,
    /// The policy the steps ran under: under Observe a step that holds is in sync.
    pub policy: crate::api::ManagementPolicy,
}

impl RunReport {
    pub fn push(
        &mut self,
        step: Step,
        started: std::time::Instant,
        result: Result<Outcome, StepError>,
        detail: impl Into<String>,
    ) {
        self.steps.push(StepReport {
            step,
            result,
            detail: detail.into(),
            duration: started.elapsed(),
        });
    }

    /// The first failed step, if any.
    pub fn failure(&self) -> Option<(&StepReport, &StepError)> {
        self.steps
            .iter()
            .find_map(|s| s.result.as_ref().err().map(|e| (s, e)))
    }

    pub fn succeeded(&self) -> bool {
        self.failure().is_none()
    }

    pub fn outcome_of(&self, step: Step) -> Option<&Result<Outcome, StepError>> {
        self.steps
            .iter()
            .find(|s| s.step == step)
            .map(|s| &s.result)
    }

    /// True when no step failed and none observed a difference (Observe).
    pub fn in_sync(&self) -> bool {
        self.steps
            .iter()
            .all(|s| matches!(&s.result, Ok(o) if o.in_sync()))
    }

    /// True when any step wrote something external.
    pub fn changed_anything(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(&s.result, Ok(o) if o.changed()))
    }
}

#[cfg(test)]
mod reason_tests {
    use super::*;

    #[test]
    fn every_reason_reads_back_from_its_words() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(*r), "{r:?}");
        }
        assert_eq!(Reason::parse("NoSuchReason"), None);
    }

    #[test]
    fn each_reason_is_progress_success_or_a_warning_with_its_fix() {
        use FixedIn::*;
        // (reason, progress, warning, fixed in)
        let table = [
            (Reason::Provisioned, false, false, Nothing),
            (Reason::ManualStepRequired, false, false, Nothing),
            (Reason::Suspended, false, false, Nothing),
            (Reason::Pending, true, false, Nothing),
            (Reason::RollingOut, true, false, Nothing),
            (Reason::WaitingForEnvironment, true, false, Kubernetes),
            (Reason::SecretNotFound, false, true, Kubernetes),
            (Reason::InvalidSpec, false, true, Kubernetes),
            (Reason::ClientExists, false, true, Kubernetes),
            (Reason::Unauthorized, false, true, Upstream),
            (Reason::Conflict, false, true, Upstream),
            (Reason::TenantMissing, false, true, Upstream),
            (Reason::RestartFailed, false, true, Upstream),
            (Reason::InSync, false, false, Nothing),
            (Reason::NotObservable, false, false, Nothing),
            (Reason::Drifted, false, true, Kubernetes),
            (Reason::Missing, false, true, Kubernetes),
        ];
        for (reason, progress, warning, fixed) in table {
            assert_eq!(reason.is_progress(), progress, "{reason:?}");
            assert_eq!(reason.is_warning(), warning, "{reason:?}");
            assert_eq!(reason.fixed_in(), fixed, "{reason:?}");
        }
        // Exactly one of the three for every reason.
        for r in Reason::ALL {
            let kinds = [r.is_progress(), r.is_success(), r.is_warning()];
            assert_eq!(kinds.iter().filter(|k| **k).count(), 1, "{r:?}");
        }
    }
}
