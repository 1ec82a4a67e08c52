//! The configuration reference (`docs/configuration.md`): every field of both CRDs, written
//! from the same schemas [`crds`] gives `dc-operator crds`, so the page cannot drift from what
//! the API server enforces. `dc-operator crds --format markdown` prints it.

use super::crds;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;
use std::fmt::Write as _;

const HEADER: &str = "\
<!-- Generated from the CRD schemas by `dc-operator crds --format markdown` (scripts/update-crds).
     Do not edit: change the Rust types in src/api/ and run scripts/update-crds. -->
# Configuration reference

Every field of both kinds, as the CustomResourceDefinitions the operator ships declare it
(`dc-operator crds` prints them; `crds/` holds them): its type, whether it is required, its
default, and what the API server checks at `kubectl apply` time. What each field is for, with
examples: [The two resources](resources.md). What the schema cannot check is reported as
`Ready=False`, reason `InvalidSpec` ([Conditions and what to do](conditions.md)).

Paths are written from the object's root; `[]` stands for every item of a list. \"CEL\" rules are
checked by the API server on create and update (the immutable fields compare the new value with
the old one); their messages are what `kubectl` prints when one is broken.
";

/// The whole page, both kinds, in the order of [`crds`].
pub fn configuration_reference() -> String {
    let mut page = HEADER.to_string();
    for crd in crds() {
        kind_section(&crd, &mut page);
    }
    page
}

/// One kind: its names, `kubectl get` columns, whole-object rules, then a table for spec and
/// one for status.
fn kind_section(crd: &CustomResourceDefinition, page: &mut String) {
    let names = &crd.spec.names;
    let version = &crd.spec.versions[0];
    let schema = serde_json::to_value(
        version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("a generated CRD has a schema"),
    )
    .expect("a schema always serializes");
    let short = names.short_names.clone().unwrap_or_default().join("`, `");
    let _ = write!(
        page,
        "\n## {kind}\n\n`apiVersion: {group}/{v}`, `kind: {kind}`, {scope}, short name `{short}`. {description}\n",
        kind = names.kind,
        group = crd.spec.group,
        v = version.name,
        scope = crd.spec.scope.to_lowercase(),
        description = cell(text(&schema, "description")),
    );
    let columns: Vec<String> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| format!("`{}` (`{}`)", c.name.to_uppercase(), code(&c.json_path)))
        .collect();
    let _ = writeln!(page, "\n`kubectl get` shows: {}.", columns.join(", "));
    let rules = rule_messages(&schema);
    if !rules.is_empty() {
        let _ = writeln!(
            page,
            "\nRules on the whole object (CEL), with their messages:\n"
        );
    }
    for message in rules {
        let _ = writeln!(page, "- {}", cell(&message));
    }
    for part in ["spec", "status"] {
        if let Some(node) = schema.pointer(&format!("/properties/{part}")) {
            part_table(part, node, required_names(&schema).contains(&part), page);
        }
    }
}

/// The table of `spec` or `status`: the part's own row, then every field below it.
fn part_table(part: &str, node: &Value, required: bool, page: &mut String) {
    let _ = write!(
        page,
        "\n### {part}\n\n| field | type | required | default | validation | description |\n\
         | --- | --- | --- | --- | --- | --- |\n"
    );
    field_rows(part, node, required, page);
}

/// The row of the field at `path`, then the rows of its properties and list items, depth first
/// in the schema's (alphabetical) order.
fn field_rows(path: &str, node: &Value, required: bool, page: &mut String) {
    let _ = writeln!(
        page,
        "| `{path}` | {} | {} | {} | {} | {} |",
        type_of(node),
        if required { "yes" } else { "" },
        node.get("default").map(default_of).unwrap_or_default(),
        validation_of(node),
        cell(text(node, "description")),
    );
    if let Some(Value::Object(properties)) = node.get("properties") {
        let required = required_names(node);
        for (name, child) in properties {
            field_rows(
                &format!("{path}.{name}"),
                child,
                required.contains(&name.as_str()),
                page,
            );
        }
    }
    if let Some(items @ Value::Object(_)) = node.get("items")
        && items.get("properties").is_some()
    {
        field_rows(&format!("{path}[]"), items, false, page);
    }
}

/// `string`, `integer (int64)`, `array of object`, `map of string`.
fn type_of(node: &Value) -> String {
    let base = text(node, "type");
    let format = node
        .get("format")
        .and_then(Value::as_str)
        .map(|f| format!(" ({f})"))
        .unwrap_or_default();
    match base {
        "array" => format!("array of {}", type_of(&node["items"])),
        "object" => match node.get("additionalProperties") {
            Some(values @ Value::Object(_)) => format!("map of {}", type_of(values)),
            _ => "object".to_string(),
        },
        "" => "any".to_string(),
        other => format!("{other}{format}"),
    }
}

/// A default as a user writes it in YAML (`""` for the empty string).
fn default_of(value: &Value) -> String {
    match value {
        Value::String(s) if s.is_empty() => "`\"\"`".to_string(),
        Value::String(s) => format!("`{}`", code(s)),
        other => format!("`{}`", code(&other.to_string())),
    }
}

/// Everything the API server checks on this field, in words.
fn validation_of(node: &Value) -> String {
    let mut checks = Vec::new();
    if let Some(Value::Array(values)) = node.get("enum") {
        let values: Vec<String> = values.iter().map(default_of).collect();
        checks.push(format!("one of {}", values.join(", ")));
    }
    let bound = |key: &str| node.get(key).and_then(Value::as_f64).map(number);
    match (bound("minimum"), bound("maximum")) {
        (Some(min), Some(max)) => checks.push(format!("{min} to {max}")),
        (Some(min), None) => checks.push(format!("at least {min}")),
        (None, Some(max)) => checks.push(format!("at most {max}")),
        (None, None) => {}
    }
    let length = |key: &str| node.get(key).and_then(Value::as_u64);
    match (length("minLength"), length("maxLength")) {
        (Some(min), Some(max)) => checks.push(format!("{min} to {max} characters")),
        (Some(min), None) => checks.push(format!("at least {min} characters")),
        (None, Some(max)) => checks.push(format!("at most {max} characters")),
        (None, None) => {}
    }
    if let Some(pattern) = node.get("pattern").and_then(Value::as_str) {
        checks.push(format!("matches `{}`", code(pattern)));
    }
    if let Some(keys) = node
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
    {
        let keys: Vec<String> = keys.iter().map(default_of).collect();
        checks.push(format!("one item per {}", keys.join(", ")));
    }
    for message in rule_messages(node) {
        checks.push(format!("CEL: {}", cell(&message)));
    }
    checks.join("; ")
}

/// The messages of a node's CEL rules (`x-kubernetes-validations`).
fn rule_messages(node: &Value) -> Vec<String> {
    node.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|rule| text(rule, "message").to_string())
        .collect()
}

fn required_names(node: &Value) -> Vec<&str> {
    node.get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn text<'a>(node: &'a Value, key: &str) -> &'a str {
    node.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// `2147483647.0` as `2147483647`; a fraction as it is.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        value.to_string()
    }
}

/// Text inside a code span of a table cell: only `|` needs escaping there.
fn code(text: &str) -> String {
    text.replace('|', "\\|")
}

/// Prose in a table cell: one line, `|` escaped, and `<` outside code spans escaped so that
/// `<metadata.name>` is not taken for an HTML tag.
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    for c in text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
    {
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '|' => out.push_str("\\|"),
            '<' if !in_code => out.push_str("&lt;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_of<'a>(page: &'a str, path: &str) -> &'a str {
        let start = format!("| `{path}` |");
        page.lines()
            .find(|line| line.starts_with(&start))
            .unwrap_or_else(|| panic!("no row for {path}"))
    }

    #[test]
    fn every_field_has_its_row_with_what_the_schema_says() {
        let page = configuration_reference();
        let row = row_of(&page, "spec.deletionPolicy");
        assert!(row.contains("| `Retain` |"), "{row}");
        assert!(row.contains("one of `Retain`, `Delete`"), "{row}");
        let row = row_of(&page, "spec.genesysTenantId");
        assert!(row.contains("integer (int64)"), "{row}");
        assert!(row.contains("0 to 2147483647"), "{row}");
        let row = row_of(&page, "spec.tenantName");
        assert!(row.contains("| yes |"), "{row}");
        assert!(row.contains("1 to 128 characters"), "{row}");
        assert!(row.contains("CEL: tenantName cannot be changed"), "{row}");
        for path in [
            "spec.authUrl",
            "spec.client.secret.name",
            "status.conditions[].type",
            "spec.ucs.apiKeySecret.key",
        ] {
            row_of(&page, path);
        }
    }

    #[test]
    fn cells_stay_on_one_line_and_inside_their_column() {
        assert_eq!(cell("a\n  b | c"), "a b \\| c");
        assert_eq!(cell("`<x>` <y>"), "`<x>` &lt;y>");
        assert_eq!(number(2147483647.0), "2147483647");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(default_of(&Value::String(String::new())), "`\"\"`");
        assert_eq!(default_of(&serde_json::json!("a|b")), "`a\\|b`");
    }
}
