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
    let database_url = server.create_database(&database).await?;
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
    let result = run(&args, &database_url, &mut out).await;
    if let Err(e) = server.drop_database(&database).await {
        let _ = writeln!(out, "warning: {e}");
    }
    result
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
