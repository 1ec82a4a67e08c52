//! Which tenants an environment's upstreams hold, from what was read: pure, so that every
//! case is a row of a table. A tenant is written only when it is certain; everything else is
//! said, with what a person can do about it.

use std::collections::BTreeMap;

use crate::upstream::environment::ContactCenter;
use crate::upstream::nexus_db::ApiKeyName;

/// The longest resource name written: a DNS label, so that every name made from it (the
/// output Secret `<name>-digital-channels`, the user Secret `<name>-nexus-user`) stays
/// within Kubernetes' limits.
pub const MAX_NAME: usize = 63;

/// The suffixes of the extra keys Nexus makes for a tenant besides its own.
pub const EXTRA_KEY_SUFFIXES: [&str; 2] = ["-Designer", "-iWD"];

/// What the Nexus tenant GET said at a contact center.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NexusLook {
    /// A tenant, with the name it shows (if any).
    Tenant(Option<String>),
    /// No tenant there.
    Absent,
    /// Not read, and why (no tenant user given, the user refused, the GET refused).
    NotRead(String),
}

/// Everything read from the environment's upstreams and the cluster.
#[derive(Clone, Debug, Default)]
pub struct Found {
    pub contact_centers: Vec<ContactCenter>,
    /// By contact center id.
    pub nexus: BTreeMap<String, NexusLook>,
    pub key_rows: Vec<ApiKeyName>,
    /// Contact centers (in lower case) that a DigitalChannelsTenant already names, with its
    /// name.
    pub existing: BTreeMap<String, String>,
    /// Names of the DigitalChannelsTenants that exist.
    pub taken_names: Vec<String>,
}

/// A tenant to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// `metadata.name`: the tenant name as a DNS label.
    pub resource_name: String,
    /// `spec.tenantName`: the Nexus tenant name as it is (its key row is found by it).
    pub tenant_name: String,
    pub contact_center_id: String,
    /// What the manifest's comment says of it.
    pub remarks: Vec<String>,
}

/// What import writes, and what it could not decide.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub tenants: Vec<Imported>,
    /// Not written: why, and what to do.
    pub undecided: Vec<String>,
    /// Written or left alone, and worth knowing (a name cut short, a tenant already there).
    pub notes: Vec<String>,
}

/// A tenant name as a DNS label (RFC 1123, at most [`MAX_NAME`]): lower case, every other
/// character a `-`, runs of them one, none at either end. With a remark when it had to be
/// cut; `Err` when nothing is left.
pub fn sanitise(name: &str) -> Result<(String, Option<String>), String> {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    let full = out.trim_end_matches('-').to_string();
    if full.is_empty() {
        return Err(format!(
            "the Nexus tenant name {name:?} has no letter or digit to make a resource name of"
        ));
    }
    if full.len() <= MAX_NAME {
        return Ok((full, None));
    }
    let cut = full[..MAX_NAME].trim_end_matches('-').to_string();
    let remark = format!(
        "the name made of {name:?} was cut to {MAX_NAME} characters ({} before): check that it still says which tenant it is",
        full.len()
    );
    Ok((cut, Some(remark)))
}

/// The tenant names of a contact center's key rows: each row's name without an extra key's
/// suffix, once.
fn tenant_names(rows: &[&ApiKeyName]) -> Vec<String> {
    let mut names: Vec<String> = rows
        .iter()
        .map(|r| {
            EXTRA_KEY_SUFFIXES
                .iter()
                .find_map(|s| r.name.strip_suffix(s))
                .unwrap_or(&r.name)
                .to_string()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Decides the tenants (see the module's documentation).
pub fn decide(found: &Found) -> Decision {
    let mut d = Decision::default();
    let mut unplaced: Vec<&ApiKeyName> = found
        .key_rows
        .iter()
        .filter(|r| r.tenant_id.is_none())
        .collect();
    let mut centers: Vec<&ContactCenter> = found.contact_centers.iter().collect();
    centers.sort_by(|a, b| a.id.cmp(&b.id));
    for cc in centers {
        let rows: Vec<&ApiKeyName> = found
            .key_rows
            .iter()
            .filter(|r| {
                r.tenant_id
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case(&cc.id))
            })
            .collect();
        let look = found
            .nexus
            .get(&cc.id)
            .cloned()
            .unwrap_or(NexusLook::NotRead(
                "the Nexus tenant was not read".to_string(),
            ));
        if let Some(name) = &look_name(&look) {
            // A row without a contact center (no tenantid column) of this name is this one's.
            unplaced.retain(|r| {
                r.name != *name
                    && !EXTRA_KEY_SUFFIXES
                        .iter()
                        .any(|s| r.name == format!("{name}{s}"))
            });
        }
        if let Some(existing) = found.existing.get(&cc.id.to_lowercase()) {
            let has_tenant = !rows.is_empty() || matches!(look, NexusLook::Tenant(_));
            if has_tenant {
                d.notes.push(format!(
                    "contact center {} is DigitalChannelsTenant {existing}'s already: left out",
                    cc.id
                ));
            }
            continue;
        }
        decide_center(&cc.id, &rows, &look, &mut d);
    }
    stray_rows(found, &unplaced, &mut d);
    name_tenants(found, d)
}

fn look_name(look: &NexusLook) -> Option<String> {
    match look {
        NexusLook::Tenant(Some(name)) => Some(name.clone()),
        _ => None,
    }
}

/// One contact center: its Nexus tenant, by the GET and the key rows together.
fn decide_center(cc: &str, rows: &[&ApiKeyName], look: &NexusLook, d: &mut Decision) {
    let names = tenant_names(rows);
    let listed = names.join(", ");
    let own_row = |name: &str| rows.iter().any(|r| r.name == name);
    let imported = |name: &str, remarks: Vec<String>| Imported {
        resource_name: String::new(),
        tenant_name: name.to_string(),
        contact_center_id: cc.to_string(),
        remarks,
    };
    match (look, names.as_slice()) {
        (NexusLook::Tenant(Some(name)), _) => {
            let mut remarks = vec![format!("found in Nexus (tenant GET) at contact center {cc}")];
            if !own_row(name) {
                remarks.push(format!(
                    "nex_apikeys has no row named {name} for it: the observed tenant will say Conflict until its key is put into the output Secret under xapikey"
                ));
            }
            d.tenants.push(imported(name, remarks));
        }
        (NexusLook::Absent, []) => {}
        (NexusLook::Absent, _) => d.undecided.push(format!(
            "contact center {cc} has key rows in nex_apikeys ({listed}) but Nexus has no tenant there: not written. \
             A tenant deleted with its rows left behind? Remove the rows, or restore the tenant and import again"
        )),
        (_, [name]) if own_row(name) => {
            let why = match look {
                NexusLook::NotRead(why) => format!(" (the Nexus tenant was not read: {why})"),
                _ => " (Nexus shows no name)".to_string(),
            };
            d.tenants.push(imported(name, vec![format!("found in nex_apikeys at contact center {cc}{why}")]));
        }
        (_, []) if matches!(look, NexusLook::Tenant(None)) => d.undecided.push(format!(
            "contact center {cc} has a Nexus tenant that shows no name, and nex_apikeys no row for it: not written; \
             write its manifest by hand with its tenantName"
        )),
        (_, []) => {}
        (_, [name]) => d.undecided.push(format!(
            "contact center {cc} has only the extra keys of {name} in nex_apikeys, not its own row: not written; \
             check the tenant in Nexus and write its manifest by hand"
        )),
        (_, _) => d.undecided.push(format!(
            "contact center {cc} has the keys of several tenants in nex_apikeys ({listed}): not written; \
             say which is its tenant by writing its manifest by hand"
        )),
    }
}

/// Key rows of contact centers the Environment API does not list, or of none.
fn stray_rows(found: &Found, unplaced: &[&ApiKeyName], d: &mut Decision) {
    let mut elsewhere: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &found.key_rows {
        let Some(t) = &r.tenant_id else { continue };
        if !found
            .contact_centers
            .iter()
            .any(|c| c.id.eq_ignore_ascii_case(t))
        {
            elsewhere
                .entry(t.to_lowercase())
                .or_default()
                .push(r.name.clone());
        }
    }
    for (cc, names) in elsewhere {
        d.undecided.push(format!(
            "nex_apikeys has keys ({}) for contact center {cc}, which the Environment API does not list: not written",
            names.join(", ")
        ));
    }
    let names = tenant_names(unplaced);
    if !names.is_empty() {
        d.undecided.push(format!(
            "nex_apikeys rows with no contact center (the table has no tenantid column) match no Nexus tenant read: {}; \
             give --tenant-user-secret so that each contact center's tenant is read, or write these by hand",
            names.join(", ")
        ));
    }
}

/// Gives each tenant its resource name; two that would share one, or take an existing one,
/// are not written.
fn name_tenants(found: &Found, mut d: Decision) -> Decision {
    let mut named: Vec<Imported> = Vec::new();
    for mut t in std::mem::take(&mut d.tenants) {
        match sanitise(&t.tenant_name) {
            Ok((name, remark)) => {
                t.resource_name = name;
                t.remarks.extend(remark);
                named.push(t);
            }
            Err(why) => d
                .undecided
                .push(format!("contact center {}: {why}", t.contact_center_id)),
        }
    }
    let mut by_name: BTreeMap<String, Vec<Imported>> = BTreeMap::new();
    for t in named {
        by_name.entry(t.resource_name.clone()).or_default().push(t);
    }
    for (name, group) in by_name {
        if group.len() > 1 {
            let who: Vec<String> = group
                .iter()
                .map(|t| {
                    format!(
                        "{:?} (contact center {})",
                        t.tenant_name, t.contact_center_id
                    )
                })
                .collect();
            d.undecided.push(format!(
                "Nexus tenants {} all make the resource name {name}: none written; write them by hand with names of your choice",
                who.join(" and ")
            ));
        } else if found.taken_names.contains(&name) {
            d.undecided.push(format!(
                "Nexus tenant {:?} (contact center {}) makes the name {name}, which a DigitalChannelsTenant has already: not written",
                group[0].tenant_name, group[0].contact_center_id
            ));
        } else {
            d.tenants.extend(group);
        }
    }
    d
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
