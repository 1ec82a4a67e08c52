//! The CRDs in crds/ are what the code generates, and their schemas are structural (a
//! real API server refuses a non-structural CRD).

use digital_channels_operator::api::crd_files;
use serde_json::Value;

#[test]
fn crds_folder_matches_the_code() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let generated = crd_files();
    for (file, text) in &generated {
        let on_disk = std::fs::read_to_string(root.join(file)).unwrap_or_default();
        assert!(
            on_disk == *text,
            "crds/{file} differs from the code: run `cargo run -- crds` and `scripts/update-crds`"
        );
    }
    let files: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        files.len(),
        generated.len(),
        "stray files in crds/: {files:?}"
    );
}

#[test]
fn printed_crds_are_the_files_joined() {
    let joined = crd_files()
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join("---\n");
    assert_eq!(joined, digital_channels_operator::api::crds_yaml());
}

/// The rules of a structural schema that generated code can break: every node has a
/// type, no `$ref`, and `anyOf`/`oneOf`/`allOf`/`not` carry no types of their own.
fn check_structural(schema: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(object) = schema.as_object() else {
        return;
    };
    let preserves = object.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let int_or_string = object.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if !object.contains_key("type") && !preserves && !int_or_string {
        problems.push(format!("{path}: no type"));
    }
    if object.contains_key("$ref") {
        problems.push(format!("{path}: $ref"));
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(branches)) = object.get(combinator) {
            for (i, branch) in branches.iter().enumerate() {
                if branch.get("type").is_some() || branch.get("description").is_some() {
                    problems.push(format!(
                        "{path}.{combinator}[{i}]: type or description inside a combinator"
                    ));
                }
            }
        }
    }
    if let Some(Value::Object(properties)) = object.get("properties") {
        for (name, sub) in properties {
            check_structural(sub, &format!("{path}.{name}"), problems);
        }
    }
    if let Some(items) = object.get("items") {
        check_structural(items, &format!("{path}[]"), problems);
    }
    if let Some(additional @ Value::Object(_)) = object.get("additionalProperties") {
        check_structural(additional, &format!("{path}{{}}"), problems);
    }
}

#[test]
fn schemas_are_structural_and_validate_what_they_can() {
    for (file, text) in crd_files() {
        let crd: Value = serde_yaml_ng::from_str(&text).unwrap();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut problems = Vec::new();
        check_structural(schema, "", &mut problems);
        assert!(
            problems.is_empty(),
            "{file} is not structural: {problems:#?}"
        );
        assert!(
            crd["spec"]["versions"][0]["subresources"]["status"].is_object(),
            "{file}: status subresource"
        );
        let conditions = &schema["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map", "{file}");
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"][0], "type",
            "{file}"
        );
        let columns: Vec<&str> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(
            columns.starts_with(&["Ready", "Reason"]) && columns.ends_with(&["Age"]),
            "{file}: {columns:?}"
        );
    }
}

#[test]
fn the_tenant_schema_checks_ids_urls_and_cross_field_rules() {
    let files = crd_files();
    let tenant: Value = serde_yaml_ng::from_str(&files[1].1).unwrap();
    let spec = &tenant["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert!(
        spec["properties"]["contactCenterId"]["pattern"]
            .as_str()
            .unwrap()
            .contains("[0-9a-fA-F]{8}")
    );
    assert!(spec["properties"]["ucs"]["properties"]["url"]["pattern"].is_string());
    let rules = spec["x-kubernetes-validations"].as_array().unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r["rule"].as_str().unwrap().contains("contactCenterDomain"))
    );
    assert_eq!(
        spec["properties"]["tenantName"]["x-kubernetes-validations"][0]["rule"],
        "self == oldSelf"
    );
    assert_eq!(
        spec["properties"]["deletionPolicy"]["enum"],
        serde_json::json!(["Retain", "Delete"])
    );
    let required: Vec<&str> = spec["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for field in ["environmentRef", "tenantName", "credentialsSecret"] {
        assert!(
            required.contains(&field),
            "{field} must be required: {required:?}"
        );
    }
}

/// `kubectl get dct` shows the DesignerEnv step: the step left by hand once Ready.
#[test]
fn the_tenant_table_shows_the_designer_env_step() {
    let files = crd_files();
    let tenant: Value = serde_yaml_ng::from_str(&files[1].1).unwrap();
    let columns = &tenant["spec"]["versions"][0]["additionalPrinterColumns"];
    let designer = columns
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Designer Env")
        .unwrap_or_else(|| panic!("no Designer Env column: {columns}"));
    assert_eq!(
        designer["jsonPath"],
        r#".status.conditions[?(@.type=="DesignerEnvConfigured")].reason"#
    );
}
