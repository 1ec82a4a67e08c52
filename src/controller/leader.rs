//! Leader election with a coordination.k8s.io Lease, so two replicas never reconcile at
//! once. It follows client-go's `leaderelection` semantics:
//!
//! - a lease held by another replica expires `leaseDurationSeconds` after *this* replica last
//!   saw its record change, on this replica's monotonic clock: the holder's `renewTime` is
//!   never compared with the local clock, so clock skew between nodes cannot make a live lease
//!   look expired;
//! - the holder renews every retry period; a renewal that has not succeeded within the renew
//!   deadline (each attempt bounded by a timeout, so a throttled or hung API server cannot
//!   stretch it) means the lease is lost;
//! - the renew deadline is shorter than the lease duration, so the holder gives up before any
//!   other replica can consider the lease expired. The caller must then stop writing at once;
//! - a renewal refused with a conflict (409: another writer changed the object meanwhile) is
//!   retried, reading the lease again, until the renew deadline: only a lease positively held
//!   by another identity ends leadership at once;
//! - every success opens the [`LeaderFence`] until the time the attempt was sent plus the
//!   renew deadline, and a loss (or a release) closes it for ever: every request that leaves
//!   the process is checked against it.
//!
//! Why not a crate: kube-leader-election targets kube 4, and kube-lease-manager computes expiry
//! from the holder's `renewTime` against the local clock (with a skew allowance), which is the
//! behaviour this module exists to avoid.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use tokio::time::Instant;

use crate::fence::{FenceState, LeaderFence};

/// Name of the Lease, in the operator's namespace.
pub const LEASE_NAME: &str = "digital-channels-operator";

/// This process's name in the Lease and in the requests it sends: the pod's name
/// (`run --pod-name`, env `POD_NAME`), or a random one outside a pod.
pub fn instance_identity(pod_name: Option<String>) -> String {
    pod_name.unwrap_or_else(|| format!("dc-operator-{}", uuid::Uuid::new_v4()))
}

/// client-go's and controller-runtime's defaults.
#[derive(Clone, Copy, Debug)]
pub struct LeaseTiming {
    /// How long a lease stays valid after its record last changed.
    pub lease_duration: Duration,
    /// How long the holder keeps trying to renew before it gives up; < `lease_duration`.
    pub renew_deadline: Duration,
    /// How often the holder renews and a standby looks.
    pub retry_period: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// The lease record as last seen, and when (on this replica's clock) it was first seen so.
struct Observed {
    holder: String,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
    duration: Duration,
    at: Instant,
}

/// The longest lease another replica's record is trusted for: an hour, far past the
/// operator's own 15 s. A larger `leaseDurationSeconds` (up to `i32::MAX`, 68 years) from a
/// broken or hostile record would keep this replica standing by long after its holder died.
const MAX_OBSERVED_LEASE_DURATION: Duration = Duration::from_secs(3600);

/// How long another replica's lease stays valid: its `leaseDurationSeconds` (none or a
/// negative one being none at all), at most [`MAX_OBSERVED_LEASE_DURATION`].
fn observed_lease_duration(seconds: Option<i32>) -> Duration {
    Duration::from_secs(seconds.unwrap_or(0).max(0) as u64).min(MAX_OBSERVED_LEASE_DURATION)
}

pub struct LeaderElector {
    api: Api<Lease>,
    identity: String,
    timing: LeaseTiming,
    observed: Mutex<Option<Observed>>,
    fence: LeaderFence,
}

/// What one attempt to take or renew the lease found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// We hold it now.
    Held,
    /// Another identity holds a lease that is still valid by our observation.
    HeldByAnother,
    /// Our write lost a race (409): read it again to know who holds it.
    Conflict,
}

/// How a renewal attempt ended, as [`leadership_ends`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    Done(Attempt),
    /// The API server refused or could not be reached.
    Failed,
    /// The attempt ran into the renew deadline.
    TimedOut,
}

/// Whether leadership ends after a renewal: at once when another identity holds the lease,
/// else only once the fence has closed (no renewal within the renew deadline); a conflict or
/// an error before then is retried, as client-go does.
pub fn leadership_ends(renewal: Renewal, fence_open: bool) -> bool {
    renewal == Renewal::Done(Attempt::HeldByAnother) || !fence_open
}

impl LeaderElector {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        identity: String,
        timing: LeaseTiming,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            identity,
            timing,
            observed: Mutex::new(None),
            fence: LeaderFence::elected(),
        }
    }

    /// Drives `fence` (made with [`LeaderFence::elected`]) instead of a fence of its own.
    pub fn with_fence(mut self, fence: LeaderFence) -> Self {
        self.fence = fence;
        self
    }

    /// Open while this replica may act as the leader.
    pub fn fence(&self) -> &LeaderFence {
        &self.fence
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Records `spec` as seen now, unless it is the record already seen (then the time of
    /// that first sighting stands). Returns when the record was first seen.
    fn observe(&self, spec: &LeaseSpec) -> Instant {
        let mut observed = self.observed.lock().unwrap_or_else(|e| e.into_inner());
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let same = observed.as_ref().is_some_and(|o| {
            o.holder == holder
                && o.renew_time == spec.renew_time
                && o.transitions == spec.lease_transitions
        });
        if !same {
            *observed = Some(Observed {
                holder,
                renew_time: spec.renew_time.clone(),
                transitions: spec.lease_transitions,
                duration: observed_lease_duration(spec.lease_duration_seconds),
                at: Instant::now(),
            });
        }
        observed.as_ref().map_or_else(Instant::now, |o| o.at)
    }

    /// Whether another replica's lease is still valid, by this replica's observation.
    fn held_by_another(&self, spec: &LeaseSpec) -> bool {
        let first_seen = self.observe(spec);
        let holder = spec.holder_identity.as_deref().unwrap_or_default();
        let duration = self
            .observed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(Duration::ZERO, |o| o.duration);
        !holder.is_empty() && holder != self.identity && first_seen.elapsed() < duration
    }

    /// Takes the lease when it is free or expired, renews it when it is ours. Returns
    /// whether we hold it now. Concurrent attempts are settled by resourceVersion: only
    /// one replace succeeds.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        Ok(self.acquire().await? == Attempt::Held)
    }

    /// [`Self::try_acquire`], saying why not, and opening the fence on success until the
    /// renew deadline counted from when the attempt started: another replica may have seen
    /// the write stored long before its answer reached us.
    pub async fn acquire(&self) -> Result<Attempt, kube::Error> {
        let sent = std::time::Instant::now();
        let attempt = self.write_lease().await?;
        if attempt == Attempt::Held {
            self.fence.renewed(sent + self.timing.renew_deadline);
        }
        Ok(attempt)
    }

    async fn write_lease(&self) -> Result<Attempt, kube::Error> {
        let now = jiff::Timestamp::now();
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else {
            let spec = self.spec(now, now, 0);
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.to_string()),
                    labels: Some(crate::api::managed_labels()),
                    ..Default::default()
                },
                spec: Some(spec.clone()),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.observe(&spec);
                    Ok(Attempt::Held)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Conflict),
                Err(e) => Err(e),
            };
        };
        let current = lease.spec.clone().unwrap_or_default();
        if self.held_by_another(&current) {
            return Ok(Attempt::HeldByAnother);
        }
        let ours = current.holder_identity.as_deref() == Some(self.identity.as_str());
        let transitions = current
            .lease_transitions
            .unwrap_or(0)
            .saturating_add(i32::from(!ours));
        let acquired = match (&current.acquire_time, ours) {
            (Some(t), true) => t.0,
            _ => now,
        };
        let spec = self.spec(acquired, now, transitions);
        lease.spec = Some(spec.clone());
        match self
            .api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.observe(&spec);
                Ok(Attempt::Held)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Conflict),
            Err(e) => Err(e),
        }
    }

    fn spec(
        &self,
        acquired: jiff::Timestamp,
        renewed: jiff::Timestamp,
        transitions: i32,
    ) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.timing.lease_duration.as_secs() as i32),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Gives the lease up (on SIGTERM), so the next replica need not wait for it to expire.
    /// Nothing leaves the process after this but the release itself.
    pub async fn release(&self) {
        self.fence.lose();
        let Ok(Some(mut lease)) = self.api.get_opt(LEASE_NAME).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        if let Err(e) = self
            .api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(error = %e, "cannot release the leader lease");
        } else {
            tracing::info!("released the leader lease");
        }
    }

    /// Waits until this replica holds the lease, looking every retry period.
    pub async fn wait_for_leadership(&self) {
        let mut logged = false;
        loop {
            match tokio::time::timeout(self.timing.retry_period * 2, self.try_acquire()).await {
                Ok(Ok(true)) => {
                    tracing::info!(identity = %self.identity, "acquired the leader lease");
                    return;
                }
                Ok(Ok(false)) if !logged => {
                    tracing::info!(identity = %self.identity, "another replica leads; standing by");
                    logged = true;
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot read or take the leader lease"),
                Err(_) => tracing::warn!("reading the leader lease timed out"),
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Renews the lease every retry period and returns as soon as it is lost: taken by
    /// another replica, or not renewed within the renew deadline (every attempt is cut off
    /// at that deadline). The fence is closed for ever when it returns; the caller must stop
    /// at once.
    pub async fn keep_leadership(&self) {
        // Without a renewal recorded yet (a caller that took the lease some other way), the
        // deadline runs from now; the fence stays closed until a renewal succeeds.
        let started = Instant::now();
        // `None` once released.
        while let Some(deadline) = self.renew_deadline(started) {
            tokio::time::sleep_until((Instant::now() + self.timing.retry_period).min(deadline))
                .await;
            let renewal = match tokio::time::timeout_at(deadline, self.acquire()).await {
                Ok(Ok(attempt)) => Renewal::Done(attempt),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot renew the leader lease");
                    Renewal::Failed
                }
                Err(_) => Renewal::TimedOut,
            };
            if renewal == Renewal::Done(Attempt::Conflict) {
                tracing::warn!("renewing the leader lease conflicted; reading it again");
            }
            let open = self
                .renew_deadline(started)
                .is_some_and(|deadline| Instant::now() < deadline);
            if leadership_ends(renewal, open) {
                self.log_loss(renewal);
                break;
            }
        }
        self.fence.lose();
    }

    /// Until when the last successful renewal lets this replica act: as the fence holds it,
    /// or `started` plus the renew deadline before any; `None` once lost.
    fn renew_deadline(&self, started: Instant) -> Option<Instant> {
        match self.fence.state() {
            FenceState::ValidUntil(Some(until)) => Some(Instant::from_std(until)),
            FenceState::ValidUntil(None) => Some(started + self.timing.renew_deadline),
            FenceState::Lost | FenceState::Unelected => None,
        }
    }

    fn log_loss(&self, renewal: Renewal) {
        if renewal == Renewal::Done(Attempt::HeldByAnother) {
            tracing::error!("the leader lease was taken by another replica");
        } else {
            tracing::error!(
                renew_deadline = ?self.timing.renew_deadline,
                "could not renew the leader lease within the renew deadline"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_another_holder_or_an_overrun_deadline_ends_leadership() {
        use Attempt::*;
        // (renewal, fence still open, ends)
        let cases = [
            (Renewal::Done(Held), true, false),
            (Renewal::Done(Conflict), true, false),
            (Renewal::Failed, true, false),
            (Renewal::TimedOut, true, false),
            (Renewal::Done(HeldByAnother), true, true),
            (Renewal::Done(Conflict), false, true),
            (Renewal::Failed, false, true),
            (Renewal::TimedOut, false, true),
            (Renewal::Done(Held), false, true),
        ];
        for (renewal, open, ends) in cases {
            assert_eq!(
                leadership_ends(renewal, open),
                ends,
                "{renewal:?} open={open}"
            );
        }
    }

    #[test]
    fn another_replicas_lease_duration_is_read_within_bounds() {
        for (seconds, duration) in [
            (None, Duration::ZERO),
            (Some(i32::MIN), Duration::ZERO),
            (Some(-1), Duration::ZERO),
            (Some(0), Duration::ZERO),
            (Some(15), Duration::from_secs(15)),
            (Some(3600), MAX_OBSERVED_LEASE_DURATION),
            (Some(3601), MAX_OBSERVED_LEASE_DURATION),
            (Some(i32::MAX), MAX_OBSERVED_LEASE_DURATION),
        ] {
            assert_eq!(observed_lease_duration(seconds), duration, "{seconds:?}");
        }
    }
}
