//! The leader fence: whether this process may still act, checked right before every request
//! leaves it (HTTP to the Genesys services, SQL to the Nexus database, Kubernetes writes).
//!
//! A replica that holds the leader Lease may act until the renew deadline after it *sent*
//! its last successful renewal, on the monotonic clock: the same rule client-go's elector
//! keeps, so the holder stops before any other replica can consider the Lease expired (the
//! renew deadline is shorter than the lease duration). The clock is `CLOCK_MONOTONIC`, which
//! keeps running while the process is stopped (SIGSTOP, a paused VM's guest excepted), so a
//! process frozen past its Lease and resumed finds its fence closed before it sends anything.
//! Once the Lease is lost the fence stays closed for ever: the process exits.
//!
//! Without leader election (`--leader-election=false`, `provision`, `demo`, tests) the fence
//! is always open.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Cheap to clone; every clone sees the same state.
#[derive(Clone, Debug)]
pub struct LeaderFence {
    state: Arc<Mutex<FenceState>>,
}

/// What the fence knows. A pure value, so the rule is a function of it and the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceState {
    /// No leader election: always open.
    Unelected,
    /// Elected: open until this instant (`None`: not leading yet).
    ValidUntil(Option<Instant>),
    /// The Lease was lost or given up: closed for ever.
    Lost,
}

impl FenceState {
    /// The rule: open without election, or while leading and before the end of validity.
    pub fn is_open_at(self, now: Instant) -> bool {
        match self {
            FenceState::Unelected => true,
            FenceState::ValidUntil(Some(until)) => now < until,
            FenceState::ValidUntil(None) | FenceState::Lost => false,
        }
    }

    /// After a successful renewal valid until `until`: validity only ever grows (an older
    /// renewal's answer arriving late cannot shorten it), and a lost Lease stays lost.
    pub fn renewed(self, until: Instant) -> FenceState {
        match self {
            FenceState::ValidUntil(Some(current)) => {
                FenceState::ValidUntil(Some(current.max(until)))
            }
            FenceState::ValidUntil(None) => FenceState::ValidUntil(Some(until)),
            other => other,
        }
    }
}

/// A request refused because this process no longer holds (or never held) the Lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "not sent: this replica does not hold the leader lease (it lost it, or its renewal is overdue)"
)]
pub struct Fenced;

impl LeaderFence {
    /// Always open: for a process without leader election.
    pub fn unelected() -> Self {
        Self::with(FenceState::Unelected)
    }

    /// The fence of a process with leader election (`elected`) or without.
    pub fn for_election(enabled: bool) -> Self {
        if enabled {
            Self::elected()
        } else {
            Self::unelected()
        }
    }

    /// Closed until the elector records a first successful acquisition.
    pub fn elected() -> Self {
        Self::with(FenceState::ValidUntil(None))
    }

    fn with(state: FenceState) -> Self {
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FenceState> {
        // Every update is a single assignment: a poisoned lock still holds a whole state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> FenceState {
        *self.lock()
    }

    /// Whether a request may leave now.
    pub fn is_open(&self) -> bool {
        self.state().is_open_at(Instant::now())
    }

    /// `Ok` when a request may leave now, else [`Fenced`].
    pub fn check(&self) -> Result<(), Fenced> {
        if self.is_open() { Ok(()) } else { Err(Fenced) }
    }

    /// Whether this fence follows an elector (false: always open).
    pub fn is_elected(&self) -> bool {
        self.state() != FenceState::Unelected
    }

    /// A renewal succeeded: valid until `until` (its send time plus the renew deadline).
    pub fn renewed(&self, until: Instant) {
        let mut state = self.lock();
        *state = state.renewed(until);
    }

    /// The Lease is lost or released: no request leaves this process any more.
    pub fn lose(&self) {
        let mut state = self.lock();
        if *state != FenceState::Unelected {
            *state = FenceState::Lost;
        }
    }

    /// Until when requests may leave (`None` without a renewal, after a loss, or unelected).
    pub fn valid_until(&self) -> Option<Instant> {
        match self.state() {
            FenceState::ValidUntil(until) => until,
            _ => None,
        }
    }
}

impl Default for LeaderFence {
    fn default() -> Self {
        Self::unelected()
    }
}

/// Where a [`Gated`] service checks the fence for a request of type `R`: before handing it
/// on, once the inner service answered, or both.
pub trait Gate<R> {
    /// `Err`: the request is refused and never reaches the inner service.
    fn before(_fence: &LeaderFence, _request: &R) -> Result<(), Fenced> {
        Ok(())
    }

    /// `Err`: the inner service's answer is dropped.
    fn after(_fence: &LeaderFence) -> Result<(), Fenced> {
        Ok(())
    }
}

/// A tower layer that holds a service to the fence at the points its [`Gate`] `G` names.
#[derive(Clone, Debug)]
pub struct GatedLayer<G> {
    fence: LeaderFence,
    gate: PhantomData<fn() -> G>,
}

impl<G> GatedLayer<G> {
    pub fn new(fence: LeaderFence) -> Self {
        Self {
            fence,
            gate: PhantomData,
        }
    }
}

impl<S, G> tower::Layer<S> for GatedLayer<G> {
    type Service = Gated<S, G>;

    fn layer(&self, inner: S) -> Self::Service {
        Gated {
            inner,
            fence: self.fence.clone(),
            gate: PhantomData,
        }
    }
}

/// See [`GatedLayer`].
#[derive(Clone, Debug)]
pub struct Gated<S, G> {
    inner: S,
    fence: LeaderFence,
    gate: PhantomData<fn() -> G>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, R, G> tower::Service<R> for Gated<S, G>
where
    S: tower::Service<R>,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    G: Gate<R>,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = BoxFuture<Result<S::Response, tower::BoxError>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: R) -> Self::Future {
        if let Err(fenced) = G::before(&self.fence, &request) {
            return Box::pin(std::future::ready(Err(fenced.into())));
        }
        let fence = self.fence.clone();
        let answering = self.inner.call(request);
        Box::pin(async move {
            let answer = answering.await.map_err(Into::into)?;
            G::after(&fence)?;
            Ok(answer)
        })
    }
}

/// For reqwest's connector: a connection that was made (TCP, TLS) while the fence closed is
/// dropped before a request can be written on it. Opening a connection can take seconds,
/// long after the check made before the request was handed to reqwest.
#[derive(Clone, Debug)]
pub struct AfterConnect;

impl<R> Gate<R> for AfterConnect {
    fn after(fence: &LeaderFence) -> Result<(), Fenced> {
        fence.check()
    }
}

/// The layer of reqwest's connector (see [`AfterConnect`]).
pub type FenceAfterConnectLayer = GatedLayer<AfterConnect>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_fence_is_open_only_before_the_renew_deadline_after_the_renewal_was_sent() {
        let t = Instant::now();
        let d = Duration::from_secs(10);
        let ms = Duration::from_millis;
        let renewed = FenceState::ValidUntil(None).renewed(t + d);
        // (state, now, open)
        let cases = [
            (FenceState::Unelected, t, true),
            (FenceState::Unelected, t + d * 100, true),
            (FenceState::ValidUntil(None), t, false),
            (renewed, t, true),
            (renewed, t + d - ms(1), true),
            (renewed, t + d, false),
            (renewed, t + d + ms(46), false),
            (FenceState::Lost, t, false),
            (FenceState::Lost.renewed(t + d), t, false),
            (FenceState::Unelected.renewed(t + d), t + d * 2, true),
        ];
        for (i, (state, now, open)) in cases.into_iter().enumerate() {
            assert_eq!(state.is_open_at(now), open, "case {i}: {state:?}");
        }
    }

    #[test]
    fn a_late_answer_to_an_older_renewal_does_not_shorten_validity() {
        let t = Instant::now();
        let state = FenceState::ValidUntil(None)
            .renewed(t + Duration::from_secs(12))
            .renewed(t + Duration::from_secs(10));
        assert_eq!(
            state,
            FenceState::ValidUntil(Some(t + Duration::from_secs(12)))
        );
    }

    #[test]
    fn a_lost_fence_stays_closed_for_ever_and_an_unelected_one_stays_open() {
        let fence = LeaderFence::elected();
        assert!(!fence.is_open(), "closed before the first acquisition");
        fence.renewed(Instant::now() + Duration::from_secs(60));
        assert!(fence.is_open());
        let clone = fence.clone();
        clone.lose();
        assert_eq!(fence.check(), Err(Fenced), "every clone sees the loss");
        fence.renewed(Instant::now() + Duration::from_secs(60));
        assert!(
            !fence.is_open(),
            "a renewal after a loss does not reopen it"
        );

        let unelected = LeaderFence::unelected();
        unelected.lose();
        assert!(unelected.is_open());
        assert!(!unelected.is_elected());
    }
}
