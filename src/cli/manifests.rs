//! Reading manifests from files: a DigitalChannelsEnvironment, tenants, and Secrets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use crate::api::{DigitalChannelsEnvironment, DigitalChannelsTenant};
use crate::secret::SecretString;

/// A Secret manifest's values, decoded.
#[derive(Clone, Debug, Default)]
pub struct SecretManifest {
    pub name: String,
    pub data: BTreeMap<String, SecretString>,
    pub annotations: BTreeMap<String, String>,
}

/// What a set of files holds.
#[derive(Debug, Default)]
pub struct Bundle {
    pub environments: Vec<DigitalChannelsEnvironment>,
    pub tenants: Vec<DigitalChannelsTenant>,
    pub secrets: Vec<SecretManifest>,
}

#[derive(Deserialize)]
struct RawSecret {
    metadata: RawMeta,
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default, rename = "stringData")]
    string_data: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawMeta {
    name: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

impl Bundle {
    /// Adds every document of a YAML text. Unknown kinds are an error: a typo should not
    /// be skipped silently. Error messages name the document, never a value.
    pub fn add_yaml(&mut self, text: &str, origin: &str) -> Result<(), String> {
        for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let value = serde_yaml_ng::Value::deserialize(document)
                .map_err(|e| format!("{origin}: document {}: not YAML: {e}", index + 1))?;
            if value.is_null() {
                continue;
            }
            let kind = value
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or_default()
                .to_string();
            let what = format!("{origin}: document {} ({kind})", index + 1);
            match kind.as_str() {
                "DigitalChannelsEnvironment" => self
                    .environments
                    .push(serde_yaml_ng::from_value(value).map_err(|e| format!("{what}: {e}"))?),
                "DigitalChannelsTenant" => self
                    .tenants
                    .push(serde_yaml_ng::from_value(value).map_err(|e| format!("{what}: {e}"))?),
                "Secret" => {
                    // Decoding errors would quote the value: report the key only.
                    let raw: RawSecret = serde_yaml_ng::from_value(value).map_err(|_| {
                        format!("{what}: not a valid Secret (metadata.name, data, stringData)")
                    })?;
                    let mut data = BTreeMap::new();
                    for (key, encoded) in raw.data {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(encoded.trim())
                            .map_err(|_| format!("{what}: data.{key} is not base64"))?;
                        let text = String::from_utf8(bytes)
                            .map_err(|_| format!("{what}: data.{key} is not UTF-8"))?;
                        data.insert(key, SecretString::new(text));
                    }
                    for (key, text) in raw.string_data {
                        data.insert(key, SecretString::new(text));
                    }
                    self.secrets.push(SecretManifest {
                        name: raw.metadata.name,
                        data,
                        annotations: raw.metadata.annotations,
                    });
                }
                "" => return Err(format!("{what}: has no kind")),
                other => {
                    return Err(format!(
                        "{origin}: document {}: kind {other} is not used by provision",
                        index + 1
                    ));
                }
            }
        }
        Ok(())
    }

    /// The manifests of `-f` arguments: files, and directories as kubectl reads them.
    pub fn from_paths(paths: &[PathBuf]) -> Result<Self, String> {
        let mut bundle = Self::default();
        for path in paths {
            if path.is_dir() {
                for file in manifest_files(path)? {
                    bundle.add_file(&file)?;
                }
            } else {
                bundle.add_file(path)?;
            }
        }
        Ok(bundle)
    }

    pub fn add_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        self.add_yaml(&text, &path.display().to_string())
    }
}

/// As kubectl's `-f DIR` without `-R`: the directory's files named .yaml, .yml or .json, in
/// name order; other files and subdirectories are not read.
fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .filter(|path| {
            path.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["yaml", "yml", "json"].contains(&e))
        })
        .collect();
    if files.is_empty() {
        return Err(format!(
            "{}: the directory holds no .yaml, .yml or .json file",
            dir.display()
        ));
    }
    files.sort();
    Ok(files)
}

/// A Secret manifest with base64 `data`, labelled as the operator's.
pub fn secret_manifest(
    name: &str,
    namespace: Option<&str>,
    data: &BTreeMap<String, SecretString>,
    annotations: &BTreeMap<String, String>,
) -> String {
    let mut metadata = serde_json::json!({"name": name, "labels": crate::api::managed_labels()});
    if let Some(ns) = namespace {
        metadata["namespace"] = ns.into();
    }
    if !annotations.is_empty() {
        metadata["annotations"] = serde_json::to_value(annotations).expect("strings serialize");
    }
    let encoded: BTreeMap<&String, String> = data
        .iter()
        .map(|(k, v)| {
            (
                k,
                base64::engine::general_purpose::STANDARD.encode(v.expose()),
            )
        })
        .collect();
    let manifest = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": encoded,
    });
    serde_yaml_ng::to_string(&manifest).expect("JSON values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_data_and_string_data_without_quoting_values() {
        let mut b = Bundle::default();
        b.add_yaml(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: aGVsbG8=}\nstringData: {b: world}\n",
            "x.yaml",
        )
        .unwrap();
        assert_eq!(b.secrets[0].data["a"].expose(), "hello");
        assert_eq!(b.secrets[0].data["b"].expose(), "world");
        let err = b
            .add_yaml(
                "kind: Secret\nmetadata: {name: s}\ndata: {a: 'not base64 super-secret!'}\n",
                "y.yaml",
            )
            .unwrap_err();
        assert!(!err.contains("super-secret"), "{err}");
    }

    /// As kubectl's `-f DIR`: the directory's .yaml, .yml and .json files in name order,
    /// not its other files nor its subdirectories.
    #[test]
    fn a_directory_gives_its_manifest_files_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let tenant = |name: &str| {
            format!(
                "kind: DigitalChannelsTenant\nmetadata: {{name: {name}}}\nspec: {{environmentRef: {{name: e}}, tenantName: {name}, credentialsSecret: {{name: u}}}}\n"
            )
        };
        let write = |file: &str, text: &str| std::fs::write(dir.path().join(file), text).unwrap();
        write("20-second.yml", &tenant("second"));
        write("10-first.yaml", &tenant("first"));
        write(
            "30-third.json",
            r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "third"}, "stringData": {"k": "v"}}"#,
        );
        write("README.md", "not a manifest");
        write("notes.txt", "kind: Nonsense");
        std::fs::create_dir(dir.path().join("nested.yaml")).unwrap();
        std::fs::write(dir.path().join("nested.yaml/x.yaml"), "kind: Nonsense").unwrap();

        let bundle = Bundle::from_paths(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<_> = bundle
            .tenants
            .iter()
            .map(|t| t.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["first", "second"]);
        assert_eq!(bundle.secrets[0].name, "third");

        let empty = tempfile::tempdir().unwrap();
        let err = Bundle::from_paths(&[empty.path().to_path_buf()]).unwrap_err();
        assert!(err.contains(".yaml, .yml or .json"), "{err}");
    }

    #[test]
    fn unknown_kinds_are_refused() {
        let mut b = Bundle::default();
        assert!(
            b.add_yaml("kind: ConfigMap\nmetadata: {name: x}\n", "z.yaml")
                .is_err()
        );
    }
}
