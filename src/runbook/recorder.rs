//! Runs steps and records what each did, how long it took and what it says, in one place.
//! Steps may run side by side; the report still lists them in run order.

use std::future::Future;
use std::sync::Mutex;
use std::time::Instant;

use super::report::{Outcome, RunReport, Step, StepError, StepReport};

/// The steps of one pass, as they finish.
#[derive(Default)]
pub struct StepRecorder {
    steps: Mutex<Vec<StepReport>>,
}

impl StepRecorder {
    /// Runs a step's work and records its outcome with `detail`. Gives the work's value when
    /// it held; `None` tells the caller that the steps depending on it cannot run.
    pub async fn run<T>(
        &self,
        step: Step,
        detail: impl Into<String>,
        work: impl Future<Output = Result<(Outcome, T), StepError>>,
    ) -> Option<T> {
        let detail = detail.into();
        self.run_detailed(step, move |_| detail, work).await
    }

    /// [`run`](Self::run), with the detail taken from the value (an id found by the step).
    pub async fn run_detailed<T>(
        &self,
        step: Step,
        detail: impl FnOnce(Option<&T>) -> String,
        work: impl Future<Output = Result<(Outcome, T), StepError>>,
    ) -> Option<T> {
        let started = Instant::now();
        match work.await {
            Ok((outcome, value)) => {
                self.record(step, started, Ok(outcome), detail(Some(&value)));
                Some(value)
            }
            Err(e) => {
                self.record(step, started, Err(e), detail(None));
                None
            }
        }
    }

    /// A precondition of `step`, recorded only when it fails (the step itself is recorded
    /// later, when it runs).
    pub async fn require<T>(
        &self,
        step: Step,
        detail: impl Into<String>,
        work: impl Future<Output = Result<T, StepError>>,
    ) -> Option<T> {
        let started = Instant::now();
        match work.await {
            Ok(value) => Some(value),
            Err(e) => {
                self.record(step, started, Err(e), detail.into());
                None
            }
        }
    }

    pub fn record(
        &self,
        step: Step,
        started: Instant,
        result: Result<Outcome, StepError>,
        detail: String,
    ) {
        self.steps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(StepReport {
                step,
                result,
                detail,
                duration: started.elapsed(),
            });
    }

    /// The report, in run order (the order of [`Step`]) whatever order the steps ended in.
    pub fn into_report(self) -> RunReport {
        let mut steps = self.steps.into_inner().unwrap_or_else(|e| e.into_inner());
        steps.sort_by_key(|s| s.step);
        RunReport {
            steps,
            ..RunReport::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::report::Reason;

    #[tokio::test]
    async fn steps_that_end_out_of_order_are_reported_in_run_order() {
        let steps = StepRecorder::default();
        let slow = steps.run(Step::ChatServiceRegistered, "", async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok((Outcome::Created, ()))
        });
        let fast = steps.run(Step::TenantToken, "", async {
            Err::<(Outcome, ()), _>(StepError::permanent(Reason::Unauthorized, "no"))
        });
        let (slow, fast) = tokio::join!(slow, fast);
        assert_eq!((slow, fast), (Some(()), None));
        let report = steps.into_report();
        let order: Vec<Step> = report.steps.iter().map(|s| s.step).collect();
        assert_eq!(order, [Step::ChatServiceRegistered, Step::TenantToken]);
        assert_eq!(
            report.failure().map(|(s, _)| s.step),
            Some(Step::TenantToken)
        );
    }
}
