//! Whether a test may touch the cluster of the kubeconfig. Only when asked (`DC_E2E=1`) and
//! only the cluster named (`DC_E2E_CONTEXT` is the kubeconfig's current context): the e2e
//! suite and the benchmark apply CRDs and create namespaces, so `scripts/test` run with a
//! developer's `KUBECONFIG` (a production context, say) must leave that cluster alone.
//! `.ci/run` sets both for `../shared/k8s`.
//!
//! Included by path (not through `common/mod.rs`) by `tests/e2e` and `benches/scale.rs` only;
//! its table test is `tests/e2e/cluster_opt_in.rs`.

/// What the environment and the kubeconfig say, read once.
#[derive(Debug)]
pub struct Settings<'a> {
    /// `DC_E2E`: the suite runs against a cluster only when it is `1`.
    pub e2e: Option<&'a str>,
    /// `DC_E2E_CONTEXT`: the only kubeconfig context the suite may use.
    pub wanted_context: Option<&'a str>,
    /// The kubeconfig's current context (`KUBECONFIG`, else `~/.kube/config`), or why it
    /// cannot be read.
    pub current_context: Result<Option<&'a str>, &'a str>,
}

/// `Ok` when the cluster may be used; otherwise why not, for the line that says it skipped.
pub fn decide(settings: &Settings) -> Result<(), String> {
    const HOW: &str = "set DC_E2E=1 and DC_E2E_CONTEXT to the kubeconfig context to test against";
    if settings.e2e != Some("1") {
        return Err(format!("DC_E2E is not 1; {HOW}"));
    }
    let wanted = match settings.wanted_context {
        Some(wanted) if !wanted.is_empty() => wanted,
        _ => return Err(format!("DC_E2E_CONTEXT is not set; {HOW}")),
    };
    match settings.current_context {
        Err(error) => Err(format!("cannot read the kubeconfig: {error}")),
        Ok(None) => Err(format!(
            "the kubeconfig has no current context, and DC_E2E_CONTEXT is {wanted:?}"
        )),
        Ok(Some(current)) if current != wanted => Err(format!(
            "the kubeconfig's current context is {current:?}, not DC_E2E_CONTEXT {wanted:?}"
        )),
        Ok(Some(_)) => Ok(()),
    }
}

/// [`decide`] on this process's environment and kubeconfig.
pub fn opt_in() -> Result<(), String> {
    let e2e = std::env::var("DC_E2E").ok();
    let wanted = std::env::var("DC_E2E_CONTEXT").ok();
    // Read only once asked: without DC_E2E=1 the kubeconfig is not even opened.
    let kubeconfig = (e2e.as_deref() == Some("1"))
        .then(kube::config::Kubeconfig::read)
        .map(|read| read.map_err(|e| e.to_string()));
    let current_context = match &kubeconfig {
        None => Ok(None),
        Some(Ok(config)) => Ok(config.current_context.as_deref()),
        Some(Err(error)) => Err(error.as_str()),
    };
    decide(&Settings {
        e2e: e2e.as_deref(),
        wanted_context: wanted.as_deref(),
        current_context,
    })
}

/// Whether `what` may use the cluster; prints why not. With `DC_E2E_REQUIRED=1` (CI) a skip
/// fails instead.
pub fn allowed(what: &str) -> bool {
    match opt_in() {
        Ok(()) => true,
        Err(reason) => {
            assert!(
                std::env::var("DC_E2E_REQUIRED").as_deref() != Ok("1"),
                "{what}: DC_E2E_REQUIRED=1 but the cluster cannot be used: {reason}"
            );
            println!(
                "{what}: skipped, no cluster used ({reason}; see docs/testing.md, 'End-to-end tests')"
            );
            false
        }
    }
}
