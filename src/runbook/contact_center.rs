//! The contact center: GWS's list, shared by the tenants of an environment, and the choice
//! of one, a pure decision tested with a table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::report::{Reason, StepError};
use crate::secret::Credentials;
use crate::upstream::EnvironmentApi;
use crate::upstream::UpstreamError;
use crate::upstream::environment::ContactCenter;

/// How long one contact-center list serves the tenants of its environment. The list belongs
/// to the environment, not to a tenant: tenants reconciled together (a wave of new tenants, a
/// resync) share one request instead of making one each.
pub const LIST_LIFETIME: Duration = Duration::from_secs(10);

/// GWS's contact-center lists, one per environment URL and ops user, shared for
/// [`LIST_LIFETIME`]. Concurrent askers wait for one request; a failure is not kept, so the
/// next asker tries again. Cheap to clone; clones share the lists.
#[derive(Clone)]
pub struct ContactCenterLists {
    lifetime: Duration,
    lists: Arc<Mutex<HashMap<String, Arc<Shared>>>>,
}

/// One list, fetched at most once.
#[derive(Default)]
struct Shared {
    fetched: OnceCell<(Instant, Arc<Vec<ContactCenter>>)>,
}

impl Default for ContactCenterLists {
    fn default() -> Self {
        Self::with_lifetime(LIST_LIFETIME)
    }
}

impl ContactCenterLists {
    pub fn with_lifetime(lifetime: Duration) -> Self {
        Self {
            lifetime,
            lists: Arc::default(),
        }
    }

    /// The list of the environment at `environment_url` as `ops` sees it.
    pub async fn get(
        &self,
        api: &dyn EnvironmentApi,
        environment_url: &str,
        ops: &Credentials,
    ) -> Result<Arc<Vec<ContactCenter>>, UpstreamError> {
        // Keyed by the password's digest too: a rotated ops password asks again, at once.
        let password =
            ring::digest::digest(&ring::digest::SHA256, ops.password.expose().as_bytes());
        let key = format!(
            "{}|{}|{:02x?}",
            crate::api::common::normal_url(environment_url),
            ops.username,
            password.as_ref()
        );
        let shared = {
            let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
            let lifetime = self.lifetime;
            lists.retain(|_, s| {
                s.fetched
                    .get()
                    .is_none_or(|(at, _)| at.elapsed() < lifetime)
            });
            lists.entry(key).or_default().clone()
        };
        let (_, list) = shared
            .fetched
            .get_or_try_init(|| async {
                let list = api.list_contact_centers(ops).await?;
                Ok::<_, UpstreamError>((Instant::now(), Arc::new(list)))
            })
            .await?;
        Ok(list.clone())
    }
}

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
    // A table: one row a line reads better than rows spread over functions.
    #[allow(clippy::too_many_lines)]
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

#[cfg(test)]
#[path = "contact_center_tests.rs"]
mod list_tests;
