//! A plan for a person (as `terraform plan` shows one) and for a program (`-o json`).

use std::io::Write;

use serde_json::json;

use super::{Action, Change, Counts, Field, Plan, ResourcePlan};

/// The plan in words: per resource, each change with why and its fields, then the summary.
pub fn text(plan: &Plan, out: &mut dyn Write) {
    let _ = writeln!(
        out,
        "dc-operator plan: what a pass would do; nothing was written.\n\
         Changes are marked: + create, ~ update, - delete.\n"
    );
    for r in &plan.resources {
        resource(r, out);
    }
    summary(plan, out);
}

fn resource(r: &ResourcePlan, out: &mut dyn Write) {
    let deleting = if r.deleting { ", being deleted" } else { "" };
    let quiet = r.changes.is_empty() && r.errors.is_empty();
    let _ = writeln!(
        out,
        "{} {} ({:?}{deleting}){}",
        r.kind,
        r.id(),
        r.management_policy,
        if quiet { ": no changes" } else { "" }
    );
    if r.changes.iter().any(|c| !c.applies) {
        let _ = writeln!(
            out,
            "  (managementPolicy Observe: the upstream changes below are what switching to Manage would make; a pass makes none)"
        );
    }
    for c in &r.changes {
        change(c, out);
    }
    for e in &r.errors {
        let _ = writeln!(out, "  ✗ {e}");
    }
    for n in &r.notes {
        let _ = writeln!(out, "  ! {n}");
    }
    let _ = writeln!(out);
}

fn change(c: &Change, out: &mut dyn Write) {
    let _ = writeln!(out, "  # {}", c.why);
    let switch = if c.applies {
        ""
    } else {
        " [on switching to Manage]"
    };
    let _ = writeln!(
        out,
        "  {} {} ({}){switch}",
        c.action.symbol(),
        c.object,
        c.system
    );
    for f in &c.fields {
        let _ = writeln!(out, "      {}", field(f, c.action));
    }
}

/// One field: `name = value` set, `name: old → new` changed; a secret never shows a value.
pub fn field(f: &Field, action: Action) -> String {
    match (f.secret, &f.from, &f.to, action) {
        (true, _, _, Action::Create) => format!("{} = (secret)", f.name),
        (true, _, _, _) => format!("{}: (secret) differs", f.name),
        (false, Some(from), Some(to), _) => format!("{}: {from} → {to}", f.name),
        (false, None, Some(to), _) => format!("{} = {to}", f.name),
        (false, Some(from), None, _) => format!("{}: {from} → (none)", f.name),
        (false, None, None, _) => f.name.clone(),
    }
}

fn counted(c: Counts) -> String {
    format!(
        "{} to create, {} to update, {} to delete",
        c.create, c.update, c.delete
    )
}

fn summary(plan: &Plan, out: &mut dyn Write) {
    let (pass, switch) = plan.counts();
    if plan.has_errors() {
        let failed = plan
            .resources
            .iter()
            .filter(|r| !r.errors.is_empty())
            .count();
        let _ = writeln!(
            out,
            "Error: {failed} resource(s) could not be looked at in full (✗ above): the plan is incomplete."
        );
    }
    match pass.total() {
        0 if !plan.has_errors() => {
            let _ = writeln!(out, "No changes: a pass would change nothing.");
        }
        _ => {
            let _ = writeln!(out, "Plan: {}.", counted(pass));
        }
    }
    if switch.total() > 0 {
        let _ = writeln!(
            out,
            "Observed: {} on switching those resources to Manage (not made while they are observed).",
            counted(switch)
        );
    }
}

/// The plan as data, with its summary and exit code.
pub fn json(plan: &Plan) -> serde_json::Value {
    let (pass, switch) = plan.counts();
    json!({
        "resources": plan.resources,
        "summary": pass,
        "onSwitchToManage": switch,
        "exitCode": plan.exit_code(),
    })
}
