//! `dc-operator demo`: the whole runbook against the in-process simulator, twice, to show
//! each step and that the second run changes nothing.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

use super::DemoArgs;
use super::manifests::Bundle;
use super::provision::{print_summary, provision};
use crate::local_postgres::LocalPostgres;
use crate::runbook::{RealConnector, Runbook};
use crate::simulator::{Simulator, SimulatorConfig};
use crate::upstream::http::HttpConfig;

/// The sample manifests, as a user would write them.
fn sample_manifests(base_url: &str, database_url: &str) -> String {
    format!(
        r#"apiVersion: digitalchannels.dev/v1alpha1
kind: DigitalChannelsEnvironment
metadata: {{name: demo, namespace: digital-channels}}
spec:
  authUrl: {base_url}
  gwsUrl: {base_url}
  nexusUrl: {base_url}
  opsCredentialsSecret: {{name: gws-ops}}
  database:
    urlSecret: {{name: nexus-db, key: url}}
---
apiVersion: digitalchannels.dev/v1alpha1
kind: DigitalChannelsTenant
metadata: {{name: t100, namespace: digital-channels}}
spec:
  environmentRef: {{name: demo}}
  contactCenterDomain: t100
  tenantName: t100
  credentialsSecret: {{name: t100-nexus-user}}
  ucs:
    url: https://ucs.example.com
---
apiVersion: v1
kind: Secret
metadata: {{name: gws-ops, namespace: digital-channels}}
stringData: {{username: ops, password: ops}}
---
apiVersion: v1
kind: Secret
metadata: {{name: t100-nexus-user, namespace: digital-channels}}
stringData: {{username: nexus, password: nexus_password}}
---
apiVersion: v1
kind: Secret
metadata: {{name: nexus-db, namespace: digital-channels}}
stringData: {{url: "{database_url}"}}
"#
    )
}

/// Returns whether every step held in both runs.
pub async fn demo(args: DemoArgs) -> Result<bool, String> {
    let mut out = std::io::stdout();
    let server = LocalPostgres::find_or_start()?;
    let database = format!("dc_demo_{}", rand::random::<u32>());
    let database_url = server.create_database(&database).await.map_err(|e| {
        match e.starts_with("cannot create database") {
            true => format!(
                "{e} (the demo works in a database of its own: the PostgreSQL user needs the CREATEDB right)"
            ),
            false => e,
        }
    })?;
    let _ = writeln!(
        out,
        "PostgreSQL: {} ({}); database {database} is dropped at exit.",
        server.display_address(),
        if server.is_throwaway() {
            "throwaway server started for the demo"
        } else {
            "existing server"
        }
    );
    if let Some(named) = std::env::var("DATABASE_URL")
        .ok()
        .as_deref()
        .and_then(named_database)
    {
        let _ = writeln!(out, "{}", not_the_named_database(&named, &database));
    }
    let result = run(&args, &database_url, &mut out).await;
    if let Err(e) = server.drop_database(&database).await {
        let _ = writeln!(out, "warning: {e}");
    }
    result
}

/// The database a URL names, if any (`postgres://host/name` → `name`).
fn named_database(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let name = parsed.path().trim_start_matches('/');
    (!name.is_empty()).then(|| name.to_string())
}

/// Why the demo does not use the database `DATABASE_URL` names: that URL may be a real Nexus
/// database, and the demo writes `nex_gapis` and `nex_apikeys` rows for its simulator.
fn not_the_named_database(named: &str, own: &str) -> String {
    format!(
        "DATABASE_URL names database {named}: the demo uses its server, not the database, and \
         works in {own} of its own, since it writes Nexus rows for its simulator and never \
         writes into a database it did not create."
    )
}

async fn run(args: &DemoArgs, database_url: &str, out: &mut dyn Write) -> Result<bool, String> {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect(database_url)
        .await
        .map_err(|e| format!("cannot connect to the demo database: {e}"))?;
    let simulator = Simulator::start(
        SimulatorConfig::default(),
        pool.clone(),
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .map_err(|e| format!("cannot start the simulator: {e}"))?;
    let _ = writeln!(
        out,
        "Simulator (GWS Auth, Environment, Nexus): {}\n",
        simulator.base_url()
    );

    let mut bundle = Bundle::default();
    bundle.add_yaml(
        &sample_manifests(&simulator.base_url(), database_url),
        "demo manifests",
    )?;
    let temp;
    let output_dir = match &args.output_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempdir()?;
            temp.0.clone()
        }
    };
    let runbook = Runbook::new(Arc::new(RealConnector::new(HttpConfig::default())));

    let _ = writeln!(out, "== First run ==");
    let first = provision(&runbook, &bundle, &output_dir, out).await?;
    print_summary(&first, out);
    let _ = writeln!(
        out,
        "\n== Second run: every step should be already right =="
    );
    let second = provision(&runbook, &bundle, &output_dir, out).await?;
    print_summary(&second, out);
    if args.output_dir.is_none() {
        let _ = writeln!(
            out,
            "\n(The output directory {} is removed when the demo exits: pass --output-dir DIR to keep the output Secrets.)",
            output_dir.display()
        );
    }

    simulator.shutdown().await;
    pool.close().await;
    Ok(first.all_hold && second.all_hold && second.changes == 0)
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> Result<TempDir, String> {
    let dir = std::env::temp_dir().join(format!("dc-demo-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(TempDir(dir))
}

#[cfg(test)]
mod tests {
    use super::named_database;

    #[test]
    fn the_database_a_url_names() {
        let cases = [
            ("postgres://u:p@h:5432/nexus?sslmode=require", Some("nexus")),
            ("postgres://u@h:5432", None),
            ("postgres://u@h:5432/", None),
            ("not a url", None),
        ];
        for (url, want) in cases {
            assert_eq!(named_database(url).as_deref(), want, "{url}");
        }
    }
}
