//! The cluster side of `status`: list both kinds (one namespace or all), and with `--watch`
//! list again on each change of either kind until Ctrl-C. Reads only.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client};

use super::model::{Estate, Selection, estate};
use super::render::render;
use super::{Format, Frames};
use crate::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use crate::cli::StatusArgs;

/// Where to look: one namespace, or all (`-A`).
#[derive(Clone, Debug)]
pub struct Scope {
    pub namespace: Option<String>,
}

impl Scope {
    fn api<K>(&self, client: &Client) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }

    fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("in namespace {ns}"),
            None => "in any namespace".to_string(),
        }
    }
}

/// `status`: whether everything shown is Ready. A cluster that cannot be read, or a NAME
/// that selects nothing, is said on stderr and is not Ready (exit code 1).
pub async fn status(args: &StatusArgs) -> Result<bool, String> {
    let (client, scope) = match connect(args).await {
        Ok(connected) => connected,
        Err(e) => return Ok(failed(&e)),
    };
    let selection = Selection {
        name: args.name.clone(),
    };
    if args.watch {
        let frames = Frames::new(
            std::io::stdout(),
            args.output,
            std::io::stdout().is_terminal(),
        );
        return watch(&client, &scope, &selection, args.all_namespaces, frames).await;
    }
    match view(
        &client,
        &scope,
        &selection,
        args.output,
        args.all_namespaces,
    )
    .await
    {
        Ok((text, ready)) => {
            print!("{text}");
            std::io::stdout().flush().map_err(|e| e.to_string())?;
            Ok(ready)
        }
        Err(e) => Ok(failed(&e)),
    }
}

fn failed(message: &str) -> bool {
    eprintln!("error: {message}");
    false
}

/// The client of the in-cluster config or KUBECONFIG (as `run`), and the namespace: `-n`,
/// else the kubeconfig context's, else `default`; none with `-A`.
async fn connect(args: &StatusArgs) -> Result<(Client, Scope), String> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| format!("cannot reach Kubernetes (in-cluster config or KUBECONFIG): {e}"))?;
    let namespace = match args.all_namespaces {
        true => None,
        false => Some(
            args.namespace
                .clone()
                .unwrap_or_else(|| config.default_namespace.clone()),
        ),
    };
    let client = Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"))?;
    Ok((client, Scope { namespace }))
}

/// Both kinds as listed now.
pub async fn read(
    client: &Client,
    scope: &Scope,
) -> Result<(Vec<DigitalChannelsEnvironment>, Vec<DigitalChannelsTenant>), String> {
    let params = kube::api::ListParams::default();
    let envs = scope
        .api::<DigitalChannelsEnvironment>(client)
        .list(&params)
        .await
        .map_err(|e| list_error("digitalchannelsenvironments", &e))?;
    let tenants = scope
        .api::<DigitalChannelsTenant>(client)
        .list(&params)
        .await
        .map_err(|e| list_error("digitalchannelstenants", &e))?;
    Ok((envs.items, tenants.items))
}

fn list_error(plural: &str, e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 404 => format!(
            "the API server does not serve {plural}.digitalchannels.dev: the CRDs are not \
             installed (kubectl apply --server-side -f crds/, or install the chart)"
        ),
        kube::Error::Api(s) => format!("listing {plural}: {} ({})", s.message, s.code),
        other => format!("listing {plural}: {other}"),
    }
}

/// The view of what is there now, and whether all of it is Ready.
async fn view(
    client: &Client,
    scope: &Scope,
    selection: &Selection,
    format: Format,
    all_namespaces: bool,
) -> Result<(String, bool), String> {
    let (envs, tenants) = read(client, scope).await?;
    let estate = estate(&envs, &tenants, selection).ok_or_else(|| {
        format!(
            "no DigitalChannelsEnvironment or DigitalChannelsTenant named {} {}",
            selection.name.as_deref().unwrap_or_default(),
            scope.describe()
        )
    })?;
    Ok((shown(&estate, format, scope, all_namespaces), estate.ready))
}

/// The estate rendered now; for a person, an empty one says so.
fn shown(estate: &Estate, format: Format, scope: &Scope, all_namespaces: bool) -> String {
    let empty = estate.environments.is_empty();
    match (empty, format) {
        (true, Format::Text | Format::Wide) => format!(
            "No DigitalChannelsEnvironments or DigitalChannelsTenants found {}.\n",
            scope.describe()
        ),
        _ => render(estate, format, jiff::Timestamp::now(), all_namespaces),
    }
}

/// `--watch`: the view, then again on each change of either kind (a burst of changes
/// drawn once), until Ctrl-C. Whether the last view was all Ready.
async fn watch<W: Write>(
    client: &Client,
    scope: &Scope,
    selection: &Selection,
    all_namespaces: bool,
    mut frames: Frames<W>,
) -> Result<bool, String> {
    let config = watcher::Config::default();
    let envs = watcher(
        scope.api::<DigitalChannelsEnvironment>(client),
        config.clone(),
    )
    .default_backoff()
    .map(|e| e.map(|_| ()));
    let tenants = watcher(scope.api::<DigitalChannelsTenant>(client), config)
        .default_backoff()
        .map(|e| e.map(|_| ()));
    let mut changes = futures::stream::select(envs, tenants).boxed();
    let mut ready = false;
    // Listening from here on: a Ctrl-C while a view is drawn is not lost.
    let mut interrupted = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| format!("cannot listen for Ctrl-C: {e}"))?;
    loop {
        match view(client, scope, selection, frames.format, all_namespaces).await {
            Ok((text, all_ready)) => {
                ready = all_ready;
                frames.show(&text).map_err(|e| e.to_string())?;
            }
            Err(e) => eprintln!("error: {e}"),
        }
        tokio::select! {
            _ = interrupted.recv() => return Ok(ready),
            change = changes.next() => match change {
                Some(Err(e)) => eprintln!("warning: watch failed ({e}); retrying"),
                None => return Ok(ready),
                Some(Ok(())) => {}
            },
        }
        // A pass writes several objects in a row: draw them once.
        tokio::time::sleep(Duration::from_millis(200)).await;
        while let Some(Some(_)) = futures::FutureExt::now_or_never(changes.next()) {}
    }
}
