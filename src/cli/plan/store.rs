//! The Secrets as `plan` sees them: read from the cluster or the manifests as a pass reads
//! them, and every write kept in memory instead of made. A Secret the pass would generate or
//! write is read back from that memory by the later steps of the same pass, as it would be
//! from the real store; nothing reaches the store underneath.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::Action;
use crate::runbook::secrets::{OutputRecord, SecretError, SecretStore, WriteOutcome, key_of};
use crate::secret::SecretString;

/// Which write a Secret would get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretWrite {
    /// A Secret created with one generated key (the client secret, the fingerprint key).
    Generated { key: String },
    /// A tenant's output Secret: the keys set or that differ (values never kept here), and
    /// the bookkeeping annotations that differ, as (name, old, new).
    Output {
        keys: Vec<String>,
        annotations: Vec<(String, Option<String>, Option<String>)>,
    },
}

/// One Secret a pass would write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedSecret {
    pub name: String,
    pub action: Action,
    pub write: SecretWrite,
}

/// A [`SecretStore`] over `inner` that only reads from it.
pub struct PlanStore<'a> {
    inner: &'a dyn SecretStore,
    written: Mutex<BTreeMap<String, OutputRecord>>,
    planned: Mutex<Vec<PlannedSecret>>,
}

impl<'a> PlanStore<'a> {
    pub fn new(inner: &'a dyn SecretStore) -> Self {
        Self {
            inner,
            written: Mutex::default(),
            planned: Mutex::default(),
        }
    }

    /// The Secrets the pass would write, one entry each, in the order first written.
    pub fn planned(&self) -> Vec<PlannedSecret> {
        self.planned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn written(&self, name: &str) -> Option<OutputRecord> {
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.get(name).cloned()
    }

    fn keep(&self, name: &str, record: OutputRecord, planned: PlannedSecret) {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), record);
        let mut all = self.planned.lock().unwrap_or_else(|e| e.into_inner());
        match all.iter_mut().find(|p| p.name == planned.name) {
            // A second write of one Secret in a pass (PlatformUCS's record after the key):
            // one change, a create staying a create.
            Some(earlier) => {
                let action = earlier.action;
                *earlier = merge(earlier.clone(), planned);
                earlier.action = action;
            }
            None => all.push(planned),
        }
    }
}

/// Two writes of one output Secret as one: the keys and annotations of both.
fn merge(earlier: PlannedSecret, later: PlannedSecret) -> PlannedSecret {
    match (earlier.write, later.write) {
        (
            SecretWrite::Output {
                mut keys,
                mut annotations,
            },
            SecretWrite::Output {
                keys: more_keys,
                annotations: more,
            },
        ) => {
            keys.extend(more_keys);
            keys.sort();
            keys.dedup();
            for (name, old, new) in more {
                match annotations.iter_mut().find(|(n, _, _)| *n == name) {
                    Some(entry) => entry.2 = new,
                    None => annotations.push((name, old, new)),
                }
            }
            PlannedSecret {
                write: SecretWrite::Output { keys, annotations },
                ..later
            }
        }
        (_, write) => PlannedSecret { write, ..later },
    }
}

/// What writing `record` over `current` changes: the keys set or that differ, the
/// annotations that differ; `None` when nothing does.
pub fn output_write(
    current: Option<&OutputRecord>,
    record: &OutputRecord,
) -> Option<PlannedSecret> {
    let empty = OutputRecord::default();
    let old = current.unwrap_or(&empty);
    let keys: Vec<String> = record
        .data
        .iter()
        .filter(|(k, v)| old.data.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect();
    let mut names: Vec<&String> = record
        .annotations
        .keys()
        .chain(old.annotations.keys())
        .collect();
    names.sort();
    names.dedup();
    let annotations: Vec<(String, Option<String>, Option<String>)> = names
        .into_iter()
        .filter(|n| old.annotations.get(*n) != record.annotations.get(*n))
        .map(|n| {
            let (was, will) = (old.annotations.get(n), record.annotations.get(n));
            (n.clone(), was.cloned(), will.cloned())
        })
        .collect();
    if current.is_some() && keys.is_empty() && annotations.is_empty() {
        return None;
    }
    Some(PlannedSecret {
        name: String::new(),
        action: if current.is_some() {
            Action::Update
        } else {
            Action::Create
        },
        write: SecretWrite::Output { keys, annotations },
    })
}

#[async_trait]
impl SecretStore for PlanStore<'_> {
    async fn read(&self, name: &str, key: &str) -> Result<SecretString, SecretError> {
        match self.written(name) {
            Some(record) => key_of(name, key, Some(&record.data)),
            None => self.inner.read(name, key).await,
        }
    }

    /// What the store would hold after the create: the value there if there is one (as a
    /// create that conflicts reads it back), else this one, kept for the later reads.
    async fn create_generated(
        &self,
        name: &str,
        key: &str,
        value: &SecretString,
    ) -> Result<SecretString, SecretError> {
        match self.read(name, key).await {
            Ok(there) => return Ok(there),
            Err(SecretError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut record = OutputRecord::default();
        record.data.insert(key.to_string(), value.clone());
        let planned = PlannedSecret {
            name: name.to_string(),
            action: Action::Create,
            write: SecretWrite::Generated {
                key: key.to_string(),
            },
        };
        self.keep(name, record, planned);
        Ok(value.clone())
    }

    async fn read_output(&self, name: &str) -> Result<Option<OutputRecord>, SecretError> {
        match self.written(name) {
            Some(record) => Ok(Some(record)),
            None => self.inner.read_output(name).await,
        }
    }

    async fn check_output(&self, name: &str) -> Result<(), SecretError> {
        self.inner.check_output(name).await
    }

    async fn write_output(
        &self,
        name: &str,
        record: &OutputRecord,
    ) -> Result<WriteOutcome, SecretError> {
        let current = self.read_output(name).await?;
        let Some(mut planned) = output_write(current.as_ref(), record) else {
            return Ok(WriteOutcome::Unchanged);
        };
        planned.name = name.to_string();
        let outcome = match planned.action {
            Action::Create => WriteOutcome::Created,
            _ => WriteOutcome::Updated,
        };
        self.keep(name, record.clone(), planned);
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeSecretStore;

    fn record(pairs: &[(&str, &str)], annotations: &[(&str, &str)]) -> OutputRecord {
        OutputRecord {
            data: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), SecretString::new(*v)))
                .collect(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn an_output_write_names_what_differs_and_never_a_value() {
        let old = record(&[("xapikey", "k1"), ("tenantName", "t100")], &[("a", "1")]);
        // (current, wanted) -> (action, keys, annotations)
        let same = output_write(Some(&old), &old.clone());
        assert_eq!(same, None);
        let new_key = record(&[("xapikey", "k2"), ("tenantName", "t100")], &[("a", "1")]);
        let update = output_write(Some(&old), &new_key).unwrap();
        assert_eq!(update.action, Action::Update);
        let expected = SecretWrite::Output {
            keys: vec!["xapikey".into()],
            annotations: vec![],
        };
        assert_eq!(update.write, expected);
        let annotated = record(&[("xapikey", "k1"), ("tenantName", "t100")], &[("b", "2")]);
        let update = output_write(Some(&old), &annotated).unwrap();
        let expected = SecretWrite::Output {
            keys: vec![],
            annotations: vec![
                ("a".into(), Some("1".into()), None),
                ("b".into(), None, Some("2".into())),
            ],
        };
        assert_eq!(update.write, expected);
        let create = output_write(None, &old).unwrap();
        assert_eq!(create.action, Action::Create);
        assert!(!format!("{create:?}").contains("k1"));
    }

    #[tokio::test]
    async fn nothing_is_written_below_and_the_pass_reads_back_what_it_would_write() {
        let inner = FakeSecretStore::default();
        inner.put("there", &[("key", "old")]);
        let store = PlanStore::new(&inner);
        let there = store
            .create_generated("there", "key", &SecretString::new("new"))
            .await
            .unwrap();
        assert_eq!(there.expose(), "old", "an existing value stands");
        let made = store
            .create_generated("made", "key", &SecretString::new("generated"))
            .await
            .unwrap();
        assert_eq!(made.expose(), "generated");
        assert_eq!(
            store.read("made", "key").await.unwrap().expose(),
            "generated"
        );
        let out = record(&[("xapikey", "k")], &[]);
        let first = store.write_output("out", &out).await.unwrap();
        assert_eq!(first, WriteOutcome::Created);
        let again = store.write_output("out", &out).await.unwrap();
        assert_eq!(again, WriteOutcome::Unchanged);
        let with_ucs = record(&[("xapikey", "k")], &[("ucs", "u")]);
        store.write_output("out", &with_ucs).await.unwrap();
        assert_eq!(inner.record("made"), None);
        assert_eq!(inner.record("out"), None);
        let planned = store.planned();
        let names: Vec<(&str, Action)> = planned
            .iter()
            .map(|p| (p.name.as_str(), p.action))
            .collect();
        assert_eq!(names, [("made", Action::Create), ("out", Action::Create)]);
    }
}
