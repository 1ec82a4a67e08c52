//! `dc-operator provision`: the runbook once, without a cluster, through the same step
//! code the controllers use.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::file_store::FileStore;
use super::manifests::Bundle;
use crate::api::DigitalChannelsEnvironment;
use crate::api::validation::{environment_problems, tenant_problems};
use crate::runbook::Runbook;
use crate::runbook::environment::{ClientManager, Management, run_environment_managed};
use crate::runbook::report::{Outcome, RunReport};
use crate::runbook::tenant::run_tenant;

/// What a provision run ended with.
#[derive(Debug, Default)]
pub struct ProvisionSummary {
    pub all_hold: bool,
    /// Per tenant: (resource name, contact center id, masked key, output file).
    pub tenants: Vec<TenantSummary>,
    /// Steps that wrote something, over all resources.
    pub changes: usize,
}

#[derive(Debug)]
pub struct TenantSummary {
    pub name: String,
    pub contact_center_id: Option<String>,
    pub masked_key: Option<String>,
    pub output_file: PathBuf,
}

/// Runs the environment, then each tenant, printing every step to `out`. An OAuth client
/// another manager's (see [`crate::runbook::environment::claim_of`]) is left untouched.
pub async fn provision(
    runbook: &Runbook,
    bundle: &Bundle,
    output_dir: &Path,
    out: &mut dyn Write,
) -> Result<ProvisionSummary, String> {
    provision_as(runbook, bundle, output_dir, false, out).await
}

/// [`provision`]; with `take_over` (`--take-over`), an OAuth client that the operator (or
/// someone by hand) manages is taken over: its description then names `provision`, and its
/// secret becomes the one in the manifests.
pub async fn provision_as(
    runbook: &Runbook,
    bundle: &Bundle,
    output_dir: &Path,
    take_over: bool,
    out: &mut dyn Write,
) -> Result<ProvisionSummary, String> {
    let env = checked_environment(bundle)?;
    let env_name = env.metadata.name.clone().unwrap_or_default();
    let store = FileStore::new(&bundle.secrets, output_dir, env.metadata.namespace.clone())?;
    let missing = super::provision_inputs::missing_secrets(bundle, &store);
    if !missing.is_empty() {
        return Err(missing.join("; "));
    }
    let mut summary = ProvisionSummary {
        all_hold: true,
        ..Default::default()
    };

    let _ = writeln!(out, "Environment {env_name}");
    let management = Management {
        manager: ClientManager::Provision,
        take_over,
    };
    let env_run = run_environment_managed(runbook, env, &store, &management).await;
    print_report(&env_run.report, out);
    summary.changes += count_changes(&env_run.report);
    summary.all_hold &= env_run.report.in_sync();
    // Observed, a client that is not verified cannot give the tenants a token.
    let verified = matches!(
        env_run.report.outcome_of(crate::runbook::Step::ClientVerified),
        Some(Ok(o)) if o.in_sync()
    );
    let Some(resolved) = env_run
        .resolved
        .filter(|_| env_run.report.succeeded() && verified)
    else {
        summary.all_hold = false;
        if !bundle.tenants.is_empty() {
            let _ = writeln!(out, "Tenants not started: the environment is not ready.");
        }
        return Ok(summary);
    };

    for tenant in &bundle.tenants {
        let name = tenant.metadata.name.clone().unwrap_or_default();
        let _ = writeln!(out, "Tenant {name}");
        let run = run_tenant(runbook, tenant, &resolved, &store).await;
        print_report(&run.report, out);
        summary.changes += count_changes(&run.report);
        summary.all_hold &= run.report.in_sync();
        summary.tenants.push(TenantSummary {
            name,
            contact_center_id: run.contact_center_id.clone(),
            masked_key: run.api_key.as_ref().map(|k| k.masked()),
            output_file: store.path_of(&run.output_secret_name),
        });
    }
    Ok(summary)
}

/// The bundle's one environment, once every resource in it is valid; else what is wrong.
pub(crate) fn checked_environment(bundle: &Bundle) -> Result<&DigitalChannelsEnvironment, String> {
    let env = match bundle.environments.as_slice() {
        [one] => one,
        [] => return Err("the files hold no DigitalChannelsEnvironment".to_string()),
        several => {
            return Err(format!(
                "the files hold {} DigitalChannelsEnvironments; provision takes one",
                several.len()
            ));
        }
    };
    let env_name = env.metadata.name.clone().unwrap_or_default();
    let mut problems = environment_problems(&env.spec);
    for t in &bundle.tenants {
        let name = t.metadata.name.clone().unwrap_or_default();
        problems.extend(
            tenant_problems(&t.spec)
                .into_iter()
                .map(|p| format!("tenant {name}: {p}")),
        );
        if t.spec.environment_ref.name != env_name {
            problems.push(format!(
                "tenant {name}: spec.environmentRef.name is {} but the environment is {env_name}",
                t.spec.environment_ref.name
            ));
        }
    }
    if !problems.is_empty() {
        return Err(format!("InvalidSpec: {}", problems.join("; ")));
    }
    Ok(env)
}

fn count_changes(report: &RunReport) -> usize {
    report
        .steps
        .iter()
        .filter(|s| matches!(&s.result, Ok(o) if o.changed()))
        .count()
}

/// One line a step: mark, name, outcome, duration, detail.
pub fn print_report(report: &RunReport, out: &mut dyn Write) {
    for s in &report.steps {
        let millis = s.duration.as_secs_f64() * 1000.0;
        let (mark, outcome, detail) = match &s.result {
            Ok(Outcome::ManualStepRequired) => {
                ("!", "manual step required".to_string(), s.detail.clone())
            }
            // Observed: what Manage would change, or could not look at.
            Ok(o) if o.observed_difference().is_some() => {
                let mark = if o.in_sync() { "?" } else { "≠" };
                let said = o.observed_difference().unwrap_or_default().to_string();
                (mark, o.as_str().to_string(), said)
            }
            Ok(o) => ("✓", o.as_str().to_string(), s.detail.clone()),
            Err(e) => (
                "✗",
                format!("failed ({})", e.reason),
                format!(
                    "{}{}",
                    e.message,
                    if e.transient { " [transient]" } else { "" }
                ),
            ),
        };
        let _ = writeln!(
            out,
            "  {mark} {:<22} {:<28} {:>8.1} ms  {detail}",
            s.step.as_str(),
            outcome,
            millis
        );
    }
}

/// Prints the outcome per tenant. The key only ever appears masked.
pub fn print_summary(summary: &ProvisionSummary, out: &mut dyn Write) {
    for t in &summary.tenants {
        match (&t.contact_center_id, &t.masked_key) {
            (Some(cc), Some(key)) => {
                let _ = writeln!(
                    out,
                    "Tenant {}: contact center {cc}, API key {key} (written to {})",
                    t.name,
                    t.output_file.display()
                );
            }
            _ => {
                let _ = writeln!(out, "Tenant {}: not provisioned", t.name);
            }
        }
    }
    let verdict = if summary.all_hold {
        "every step holds"
    } else {
        "some steps failed or are not in sync"
    };
    let _ = writeln!(
        out,
        "Result: {verdict}; {} change(s) made.",
        summary.changes
    );
}
