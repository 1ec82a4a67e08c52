//! `dc-operator run` from start to stop: the CRDs checked, the scopes, leadership, and both
//! controllers per scope until SIGTERM.

use std::sync::Arc;

use kube::api::ListParams;
use tokio_util::sync::CancellationToken;

use super::watches::api_for;
use super::*;
use crate::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};

/// Fails with a clear message when the CRDs are not installed.
pub async fn check_crds(client: &kube::Client, namespace: Option<&str>) -> Result<(), String> {
    let hint = "the CRDs are not installed: dc-operator crds | kubectl apply --server-side -f - (or install the Helm chart)";
    let lp = ListParams::default().limit(1);
    for result in [
        api_for::<DigitalChannelsEnvironment>(client, namespace)
            .list(&lp)
            .await
            .map(drop),
        api_for::<DigitalChannelsTenant>(client, namespace)
            .list(&lp)
            .await
            .map(drop),
    ] {
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Err(hint.to_string()),
            Err(e) => return Err(format!("cannot list the operator's kinds: {e}")),
        }
    }
    Ok(())
}

/// Where the controllers look for `--namespace` values: each namespace once (two
/// controllers on one object would race each other's writes), in the order given. Blank
/// entries (`a,,b`, an empty `DC_NAMESPACE`) name nothing and are dropped; none left means
/// every namespace, as Kubernetes reads an empty namespace.
pub fn watch_scopes(namespaces: &[String]) -> Vec<Option<String>> {
    let mut scopes: Vec<Option<String>> = Vec::new();
    for name in namespaces
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
    {
        if !scopes.iter().flatten().any(|seen| seen == name) {
            scopes.push(Some(name.to_string()));
        }
    }
    if scopes.is_empty() {
        scopes.push(None);
    }
    scopes
}

/// Settings of `dc-operator run`, parsed once from the command line.
pub struct RunSettings {
    pub namespaces: Vec<String>,
    pub concurrency: u16,
    pub leader_election: bool,
    pub leader_election_namespace: String,
    pub controller: ControllerConfig,
    /// This process's name in the Lease ([`leader::instance_identity`]).
    pub identity: String,
    /// The fence the Kubernetes client and the connector check: made with
    /// [`crate::fence::LeaderFence::for_election`] from `leader_election`; the elector
    /// drives it.
    pub fence: crate::fence::LeaderFence,
}

/// The whole `run`: check CRDs, wait for leadership, run the controllers until SIGTERM.
pub async fn run(
    client: kube::Client,
    runbook: crate::runbook::Runbook,
    settings: RunSettings,
    ready: Arc<std::sync::atomic::AtomicBool>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let scopes = watch_scopes(&settings.namespaces);
    for scope in &scopes {
        check_crds(&client, scope.as_deref()).await?;
    }
    ready.store(true, std::sync::atomic::Ordering::SeqCst);

    if settings.leader_election != settings.fence.is_elected() {
        return Err("internal error: the leader fence does not match --leader-election".into());
    }
    let elector_held = match settings.leader_election {
        true => match lead(&client, &settings, &shutdown).await {
            Some(held) => Some(held),
            // Stopped while standing by.
            None => return Ok(()),
        },
        false => None,
    };

    let ctx = Arc::new(Context::new(client, runbook, settings.controller));
    let watched = match scopes.as_slice() {
        [None] => "all namespaces".to_string(),
        named => named
            .iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
    };
    tracing::info!(namespaces = %watched, "controllers starting");
    futures::future::join_all(
        scopes
            .into_iter()
            .map(|scope| run_scope(ctx.clone(), scope, settings.concurrency, shutdown.clone())),
    )
    .await;
    if let Some((elector, renewing)) = &elector_held {
        // Stop renewing first, or the renewal could take the released lease again.
        renewing.abort();
        elector.release().await;
    }
    tracing::info!("controllers stopped");
    Ok(())
}

/// Waits for the Lease, then keeps renewing it in a task that ends the process the moment
/// it is lost (or its renewal panics). `None`: stopped while standing by.
async fn lead(
    client: &kube::Client,
    settings: &RunSettings,
    shutdown: &CancellationToken,
) -> Option<(Arc<leader::LeaderElector>, tokio::task::JoinHandle<()>)> {
    let elector = Arc::new(
        leader::LeaderElector::new(
            client.clone(),
            &settings.leader_election_namespace,
            settings.identity.clone(),
            leader::LeaseTiming::default(),
        )
        .with_fence(settings.fence.clone()),
    );
    tokio::select! {
        _ = elector.wait_for_leadership() => {}
        _ = shutdown.cancelled() => return None,
    }
    let keeper = elector.clone();
    let renewing = tokio::spawn(async move {
        // A panic in the renewal ends here too, not in a process that goes on without
        // renewing.
        use futures::FutureExt;
        let renewal = std::panic::AssertUnwindSafe(keeper.keep_leadership())
            .catch_unwind()
            .await;
        // Another replica may lead from now on: the fence, closed now, lets no request
        // leave; and no waiting for in-flight passes, even during a graceful stop.
        // Kubernetes restarts the pod as a standby.
        match renewal {
            Ok(()) => tracing::error!("lost the leader lease; exiting at once"),
            Err(_) => tracing::error!("the leader lease renewal failed; exiting at once"),
        }
        std::process::exit(1);
    });
    Some((elector, renewing))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--namespace a,a` ran two controllers on the same objects.
    #[test]
    fn each_namespace_is_watched_once_in_the_order_given() {
        let all = vec![None];
        let some = |names: &[&str]| -> Vec<Option<String>> {
            names.iter().map(|n| Some(n.to_string())).collect()
        };
        for (given, scopes) in [
            (vec![], all.clone()),
            (vec![""], all.clone()),
            (vec!["", " "], all.clone()),
            (vec!["a"], some(&["a"])),
            (vec!["a", "a"], some(&["a"])),
            (vec!["b", "a", "b", "a"], some(&["b", "a"])),
            (vec!["a", "", "b"], some(&["a", "b"])),
            (vec![" a ", "a"], some(&["a"])),
        ] {
            let given: Vec<String> = given.into_iter().map(String::from).collect();
            assert_eq!(watch_scopes(&given), scopes, "{given:?}");
        }
    }
}
