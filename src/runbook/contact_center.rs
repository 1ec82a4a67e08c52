//! Picking the contact center: a pure decision, tested with a table.

use super::report::{Reason, StepError};
use crate::upstream::environment::ContactCenter;

/// The contact center to use: the given id (which must exist), else the one whose
/// domains contain `domain`, else the only one. None or several is an error naming the
/// candidates.
pub fn choose<'a>(
    centers: &'a [ContactCenter],
    id: Option<&str>,
    domain: Option<&str>,
) -> Result<&'a ContactCenter, StepError> {
    let describe = |c: &ContactCenter| format!("{} (domains: {})", c.id, c.domains.join(", "));
    let candidates = || centers.iter().map(describe).collect::<Vec<_>>().join("; ");
    if let Some(id) = id {
        return centers
            .iter()
            .find(|c| c.id.eq_ignore_ascii_case(id))
            .ok_or_else(|| {
                StepError::permanent(
                    Reason::ContactCenterNotFound,
                    format!(
                        "contact center {id} does not exist in GWS; known: {}",
                        or_none(candidates())
                    ),
                )
            });
    }
    let matching: Vec<&ContactCenter> = match domain {
        Some(d) => centers
            .iter()
            .filter(|c| c.domains.iter().any(|x| x.eq_ignore_ascii_case(d)))
            .collect(),
        None => centers.iter().collect(),
    };
    match (matching.as_slice(), domain) {
        ([one], _) => Ok(one),
        ([], Some(d)) => Err(StepError::permanent(
            Reason::ContactCenterNotFound,
            format!(
                "no contact center has domain {d}; known: {}",
                or_none(candidates())
            ),
        )),
        ([], None) => Err(StepError::permanent(
            Reason::ContactCenterNotFound,
            "GWS has no contact center; provision the tenant in GWS first",
        )),
        (several, Some(d)) => Err(StepError::permanent(
            Reason::AmbiguousContactCenter,
            format!(
                "{} contact centers have domain {d}: {}; set spec.contactCenterId",
                several.len(),
                several
                    .iter()
                    .map(|c| describe(c))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )),
        (several, None) => Err(StepError::permanent(
            Reason::AmbiguousContactCenter,
            format!(
                "GWS has {} contact centers: {}; set spec.contactCenterId or spec.contactCenterDomain",
                several.len(),
                candidates()
            ),
        )),
    }
}

fn or_none(list: String) -> String {
    if list.is_empty() {
        "none".to_string()
    } else {
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(id: &str, domains: &[&str]) -> ContactCenter {
        ContactCenter {
            id: id.to_string(),
            environment_id: None,
            domains: domains.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn table() {
        let two = vec![cc("a", &["t100"]), cc("b", &["t200", "shared"])];
        let dup = vec![cc("a", &["x"]), cc("b", &["x"])];
        let one = vec![cc("only", &[])];
        struct Case<'a> {
            centers: &'a [ContactCenter],
            id: Option<&'a str>,
            domain: Option<&'a str>,
            expect: Result<&'a str, Reason>,
        }
        let cases = [
            Case {
                centers: &two,
                id: Some("b"),
                domain: None,
                expect: Ok("b"),
            },
            Case {
                centers: &two,
                id: Some("B"),
                domain: None,
                expect: Ok("b"),
            },
            Case {
                centers: &two,
                id: Some("zzz"),
                domain: None,
                expect: Err(Reason::ContactCenterNotFound),
            },
            Case {
                centers: &two,
                id: None,
                domain: Some("t100"),
                expect: Ok("a"),
            },
            Case {
                centers: &two,
                id: None,
                domain: Some("t999"),
                expect: Err(Reason::ContactCenterNotFound),
            },
            Case {
                centers: &two,
                id: None,
                domain: None,
                expect: Err(Reason::AmbiguousContactCenter),
            },
            Case {
                centers: &dup,
                id: None,
                domain: Some("x"),
                expect: Err(Reason::AmbiguousContactCenter),
            },
            Case {
                centers: &one,
                id: None,
                domain: None,
                expect: Ok("only"),
            },
            Case {
                centers: &[],
                id: None,
                domain: None,
                expect: Err(Reason::ContactCenterNotFound),
            },
        ];
        for (i, case) in cases.iter().enumerate() {
            let got = choose(case.centers, case.id, case.domain)
                .map(|c| c.id.as_str())
                .map_err(|e| e.reason);
            assert_eq!(got, case.expect, "case {i}");
        }
    }

    #[test]
    fn errors_name_the_candidates() {
        let two = vec![cc("a", &["t100"]), cc("b", &["t200"])];
        let err = choose(&two, None, None).unwrap_err();
        assert!(
            err.message.contains("a (domains: t100)") && err.message.contains("b (domains: t200)"),
            "{}",
            err.message
        );
    }
}
