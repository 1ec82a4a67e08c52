//! What `doctor` reports: checks in order, each ok, warning, failure or skipped, with the fix;
//! a check skipped when one it needs failed or was itself skipped; the person's list and JSON.

use std::time::Duration;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Failure,
    Skipped,
}

impl Status {
    /// The mark of the person's list.
    pub fn mark(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Warning => "!",
            Status::Failure => "✗",
            Status::Skipped => "-",
        }
    }
}

/// What a check found: the pure part, decided from a probe's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    pub message: String,
    pub fix: Option<String>,
}

impl Verdict {
    pub fn ok(message: impl Into<String>) -> Self {
        Self {
            status: Status::Ok,
            message: message.into(),
            fix: None,
        }
    }

    pub fn warning(message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            status: Status::Warning,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn failure(message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            status: Status::Failure,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    /// Not run, and why: a check it needs did not pass, or there is nothing to look at.
    pub fn skipped(why: impl Into<String>) -> Self {
        Self {
            status: Status::Skipped,
            message: why.into(),
            fix: None,
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// What the check is about: "cluster", "environment NS/NAME", "tenant NS/NAME".
    pub group: String,
    /// Stable name, for `needs` and for scripts reading `-o json`.
    pub id: String,
    pub title: String,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// Why a check that needs `needs` cannot run after `done`: the first of them that failed or
/// was skipped, named. `None`: it can run. A need not in `done` (no such check was made, as
/// for a system that is not used) does not block.
pub fn gate(needs: &[&str], done: &[Check]) -> Option<String> {
    needs.iter().find_map(|need| {
        let blocking = done
            .iter()
            .find(|c| c.id == *need && matches!(c.status, Status::Failure | Status::Skipped))?;
        let what = match blocking.status {
            Status::Failure => "failed",
            _ => "was skipped",
        };
        Some(format!(
            "skipped: needs \"{}\", which {what}",
            blocking.title
        ))
    })
}

/// The checks of one run, in order.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

/// Counts by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub warning: usize,
    pub failure: usize,
    pub skipped: usize,
}

impl Report {
    /// Records a check whose verdict is known.
    pub fn push(&mut self, group: &str, id: &str, title: &str, verdict: Verdict) {
        self.push_timed(group, id, title, verdict, None);
    }

    pub fn push_timed(
        &mut self,
        group: &str,
        id: &str,
        title: &str,
        verdict: Verdict,
        took: Option<Duration>,
    ) {
        self.checks.push(Check {
            group: group.to_string(),
            id: id.to_string(),
            title: title.to_string(),
            status: verdict.status,
            message: verdict.message,
            fix: verdict.fix,
            duration_ms: took.map(|d| d.as_millis() as u64),
        });
    }

    /// Why a check needing `needs` is skipped, if it is (see [`gate`]).
    pub fn blocked(&self, needs: &[&str]) -> Option<String> {
        gate(needs, &self.checks)
    }

    /// The verdict of check `id`, if it was made.
    pub fn status_of(&self, id: &str) -> Option<Status> {
        self.checks.iter().find(|c| c.id == id).map(|c| c.status)
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.checks {
            match c.status {
                Status::Ok => s.ok += 1,
                Status::Warning => s.warning += 1,
                Status::Failure => s.failure += 1,
                Status::Skipped => s.skipped += 1,
            }
        }
        s
    }

    /// Exit code 0 (`true`) unless something failed; warnings are allowed.
    pub fn passed(&self) -> bool {
        self.summary().failure == 0
    }

    /// The person's list: a heading per group, a line per check with its mark, title and
    /// message, the fix under a warning or failure, and the counts.
    pub fn text(&self) -> String {
        let mut out = String::new();
        // Titles line up within a group: one long title elsewhere does not push them all.
        let width = |group: &str| {
            self.checks
                .iter()
                .filter(|c| c.group == group)
                .map(|c| c.title.chars().count())
                .max()
                .unwrap_or(0)
        };
        let mut group = None;
        for c in &self.checks {
            let width = width(&c.group);
            if group != Some(&c.group) {
                if group.is_some() {
                    out.push('\n');
                }
                out.push_str(&c.group);
                out.push('\n');
                group = Some(&c.group);
            }
            let took = c
                .duration_ms
                .map(|ms| format!(" ({ms}ms)"))
                .unwrap_or_default();
            let pad = width - c.title.chars().count();
            out.push_str(&format!(
                "  {} {}{}  {}{took}\n",
                c.status.mark(),
                c.title,
                " ".repeat(pad),
                c.message
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("      fix: {fix}\n"));
            }
        }
        let s = self.summary();
        out.push_str(&format!(
            "\n{} ok, {} warning{}, {} failure{}, {} skipped\n",
            s.ok,
            s.warning,
            plural(s.warning),
            s.failure,
            plural(s.failure),
            s.skipped
        ));
        out
    }

    pub fn json(&self) -> String {
        let value = serde_json::json!({
            "checks": self.checks,
            "summary": self.summary(),
            "passed": self.passed(),
        });
        serde_json::to_string_pretty(&value).expect("plain data serializes") + "\n"
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str, status: Status) -> Check {
        Check {
            group: "g".into(),
            id: id.into(),
            title: format!("title {id}"),
            status,
            message: String::new(),
            fix: None,
            duration_ms: None,
        }
    }

    #[test]
    fn a_check_runs_only_when_what_it_needs_held() {
        let done = [
            check("ok", Status::Ok),
            check("warn", Status::Warning),
            check("fail", Status::Failure),
            check("skip", Status::Skipped),
        ];
        let cases: &[(&[&str], Option<&str>)] = &[
            (&[], None),
            (&["ok", "warn"], None),
            (&["absent"], None),
            (
                &["ok", "fail"],
                Some("skipped: needs \"title fail\", which failed"),
            ),
            (
                &["skip", "fail"],
                Some("skipped: needs \"title skip\", which was skipped"),
            ),
        ];
        for (needs, want) in cases {
            assert_eq!(gate(needs, &done).as_deref(), *want, "{needs:?}");
        }
    }

    #[test]
    fn warnings_pass_and_failures_do_not() {
        let mut r = Report::default();
        r.push("g", "a", "A", Verdict::ok("fine"));
        r.push("g", "b", "B", Verdict::warning("hm", "do this"));
        assert!(r.passed());
        r.push("g", "c", "C", Verdict::failure("bad", "do that"));
        assert!(!r.passed());
        assert_eq!(
            r.summary(),
            Summary {
                ok: 1,
                warning: 1,
                failure: 1,
                skipped: 0
            }
        );
        assert_eq!(
            r.text(),
            "g\n  ✓ A  fine\n  ! B  hm\n      fix: do this\n  ✗ C  bad\n      fix: do that\n\n\
             1 ok, 1 warning, 1 failure, 0 skipped\n"
        );
    }
}
