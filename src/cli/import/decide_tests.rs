use super::*;

const CC1: &str = "578ec98e-f07c-46ad-9675-f36c22f3ba9f";
const CC2: &str = "9c1f5d2a-3b7e-4c8d-a6f0-2e4b8d9c7a15";

#[test]
fn a_tenant_name_becomes_a_dns_label() {
    let long = "a".repeat(70);
    let cut = "a".repeat(MAX_NAME);
    // (Nexus tenant name, resource name, cut short)
    for (name, expected, cut_short) in [
        ("t100", Some("t100"), false),
        ("T100", Some("t100"), false),
        ("Tenant_100 (prod)", Some("tenant-100-prod"), false),
        ("--t.100--", Some("t-100"), false),
        ("Zürich", Some("z-rich"), false),
        (long.as_str(), Some(cut.as_str()), true),
        ("___", None, false),
        ("", None, false),
    ] {
        match sanitise(name) {
            Ok((made, remark)) => {
                assert_eq!(Some(made.as_str()), expected, "{name:?}");
                assert_eq!(remark.is_some(), cut_short, "{name:?}");
                assert!(made.len() <= MAX_NAME);
                let label = regex_like_dns_label(&made);
                assert!(label, "{made:?} is not a DNS label");
            }
            Err(why) => assert_eq!(expected, None, "{name:?}: {why}"),
        }
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn regex_like_dns_label(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.chars().all(|c| ok(c) || c == '-') && s.starts_with(ok) && s.ends_with(ok)
}

fn center(id: &str) -> ContactCenter {
    ContactCenter {
        id: id.to_string(),
        environment_id: None,
        domains: vec![],
    }
}

fn row(name: &str, cc: Option<&str>) -> ApiKeyName {
    ApiKeyName {
        name: name.to_string(),
        tenant_id: cc.map(str::to_string),
    }
}

fn tenant_there(name: &str) -> NexusLook {
    NexusLook::Tenant(Some(name.to_string()))
}

fn not_read() -> NexusLook {
    NexusLook::NotRead("no --tenant-user-secret given".to_string())
}

/// (resource name, tenant name, contact center) of each tenant written, and the first words
/// of what was not decided.
fn outcome(d: &Decision) -> (Vec<(String, String, String)>, Vec<String>) {
    let tenants = d
        .tenants
        .iter()
        .map(|t| {
            (
                t.resource_name.clone(),
                t.tenant_name.clone(),
                t.contact_center_id.clone(),
            )
        })
        .collect();
    let undecided = d
        .undecided
        .iter()
        .map(|u| u.split(':').next().unwrap_or_default().to_string())
        .collect();
    (tenants, undecided)
}

/// (Nexus look at CC1, key rows, tenants written, undecided)
type Row = (
    NexusLook,
    Vec<ApiKeyName>,
    Vec<(String, String, String)>,
    Vec<String>,
);

#[test]
#[allow(clippy::too_many_lines)] // one table
fn a_tenant_is_written_only_when_it_is_certain() {
    let t =
        |name: &str, tenant: &str, cc: &str| (name.to_string(), tenant.to_string(), cc.to_string());
    let rows = |names: &[&str], cc: &str| -> Vec<ApiKeyName> {
        names.iter().map(|n| row(n, Some(cc))).collect()
    };
    let nexus_rows = ["t100", "t100-Designer", "t100-iWD"];
    let table: Vec<Row> = vec![
        // Nexus and nex_apikeys agree.
        (tenant_there("t100"), rows(&nexus_rows, CC1), vec![t("t100", "t100", CC1)], vec![]),
        // Not read in Nexus: the tenant's own row decides.
        (not_read(), rows(&nexus_rows, CC1), vec![t("t100", "t100", CC1)], vec![]),
        // The row's contact center in another case.
        (not_read(), rows(&["t100"], &CC1.to_uppercase()), vec![t("t100", "t100", CC1)], vec![]),
        // A Nexus name that is no DNS label: the resource name made of it, tenantName as is.
        (tenant_there("Tenant_100"), rows(&["Tenant_100"], CC1), vec![t("tenant-100", "Tenant_100", CC1)], vec![]),
        // In Nexus with no key row: written (it exists), its comment says the key is missing.
        (tenant_there("t100"), vec![], vec![t("t100", "t100", CC1)], vec![]),
        // No tenant, no row: nothing to say.
        (NexusLook::Absent, vec![], vec![], vec![]),
        (not_read(), vec![], vec![], vec![]),
        // Key rows but no Nexus tenant.
        (NexusLook::Absent, rows(&nexus_rows, CC1), vec![], vec![format!("contact center {CC1} has key rows in nex_apikeys (t100) but Nexus has no tenant there")]),
        // Only the extra keys, or the keys of several tenants: not chosen.
        (not_read(), rows(&["t100-Designer"], CC1), vec![], vec![format!("contact center {CC1} has only the extra keys of t100 in nex_apikeys, not its own row")]),
        (not_read(), rows(&["t100", "t101"], CC1), vec![], vec![format!("contact center {CC1} has the keys of several tenants in nex_apikeys (t100, t101)")]),
        // A tenant that shows no name, and no row to name it.
        (NexusLook::Tenant(None), vec![], vec![], vec![format!("contact center {CC1} has a Nexus tenant that shows no name, and nex_apikeys no row for it")]),
        // Rows of a contact center the Environment API does not list.
        (NexusLook::Absent, rows(&["t900"], "00000000-0000-4000-8000-000000000000"), vec![], vec!["nex_apikeys has keys (t900) for contact center 00000000-0000-4000-8000-000000000000, which the Environment API does not list".to_string()]),
        // No tenantid column: a row is placed by the Nexus tenant's name, else said.
        (tenant_there("t100"), vec![row("t100", None)], vec![t("t100", "t100", CC1)], vec![]),
        (not_read(), vec![row("t100", None)], vec![], vec!["nex_apikeys rows with no contact center (the table has no tenantid column) match no Nexus tenant read".to_string()]),
    ];
    for (look, key_rows, tenants, undecided) in table {
        let found = Found {
            contact_centers: vec![center(CC1)],
            nexus: [(CC1.to_string(), look.clone())].into(),
            key_rows: key_rows.clone(),
            ..Found::default()
        };
        let decision = decide(&found);
        let undecided: Vec<String> = undecided
            .iter()
            .map(|u| u.split(':').next().unwrap().to_string())
            .collect();
        assert_eq!(
            outcome(&decision),
            (tenants, undecided),
            "{look:?} {key_rows:?}"
        );
    }
}

#[test]
fn names_that_collide_or_are_taken_are_not_written_and_existing_tenants_are_left_out() {
    let found = Found {
        contact_centers: vec![center(CC1), center(CC2)],
        nexus: [
            (CC1.to_string(), tenant_there("T_100")),
            (CC2.to_string(), tenant_there("t-100")),
        ]
        .into(),
        key_rows: vec![row("T_100", Some(CC1)), row("t-100", Some(CC2))],
        ..Found::default()
    };
    let decision = decide(&found);
    assert_eq!(decision.tenants, vec![]);
    assert_eq!(decision.undecided.len(), 1, "{:?}", decision.undecided);
    assert!(decision.undecided[0].contains("all make the resource name t-100"));

    // One of them managed already: left out, and the other is free to take its name... unless
    // that name is a resource's already.
    let mut managed = found.clone();
    managed.existing = [(CC1.to_string(), "old".to_string())].into();
    let decision = decide(&managed);
    assert_eq!(
        outcome(&decision).0,
        vec![("t-100".into(), "t-100".into(), CC2.into())]
    );
    assert_eq!(decision.notes.len(), 1);
    managed.taken_names = vec!["t-100".to_string()];
    let decision = decide(&managed);
    assert_eq!(decision.tenants, vec![]);
    assert!(decision.undecided[0].contains("which a DigitalChannelsTenant has already"));
}
