//! The rule of `tests/common/cluster_gate.rs`: a cluster is used only when asked
//! (`DC_E2E=1`) and only the context named (`DC_E2E_CONTEXT`), whatever `KUBECONFIG` names.

use crate::cluster_gate::{Settings, decide};

#[test]
fn a_cluster_is_used_only_when_asked_and_only_the_named_context() {
    let ok: Result<Option<&str>, &str> = Ok(Some("k8s-local"));
    for (e2e, wanted, current, verdict) in [
        (Some("1"), Some("k8s-local"), ok, Ok(())),
        (None, Some("k8s-local"), ok, Err("DC_E2E is not 1")),
        (Some("0"), Some("k8s-local"), ok, Err("DC_E2E is not 1")),
        (Some("true"), Some("k8s-local"), ok, Err("DC_E2E is not 1")),
        (Some("1"), None, ok, Err("DC_E2E_CONTEXT is not set")),
        (Some("1"), Some(""), ok, Err("DC_E2E_CONTEXT is not set")),
        (
            Some("1"),
            Some("k8s-local"),
            Ok(Some("prod-eu")),
            Err("current context is \"prod-eu\", not DC_E2E_CONTEXT \"k8s-local\""),
        ),
        (
            Some("1"),
            Some("k8s-local"),
            Ok(None),
            Err("the kubeconfig has no current context"),
        ),
        (
            Some("1"),
            Some("k8s-local"),
            Err("no such file"),
            Err("cannot read the kubeconfig: no such file"),
        ),
    ] {
        let settings = Settings {
            e2e,
            wanted_context: wanted,
            current_context: current,
        };
        let got = decide(&settings);
        match verdict {
            Ok(()) => assert_eq!(got, Ok(()), "{settings:?}"),
            Err(part) => {
                let reason = got.expect_err(&format!("{settings:?} must skip"));
                assert!(reason.contains(part), "{settings:?}: {reason}");
            }
        }
    }
}
