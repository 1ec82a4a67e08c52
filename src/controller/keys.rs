//! How the process's maps (backoff, readiness) name a resource: an object reference, not a
//! formatted string.

use std::fmt;

use kube::Resource;

use super::{KIND_ENVIRONMENT, KIND_TENANT};

/// A resource by kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: &'static str, namespace: &str, name: &str) -> Self {
        Self {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// The key of one of the operator's two kinds.
    pub fn of<K: Resource<DynamicType = ()>>(object: &K) -> Self {
        let meta = object.meta();
        Self::new(
            kind_of::<K>(),
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
        )
    }
}

/// `Kind/namespace/name`, for logs.
impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// The kind's name, as the readiness gauge and the backoff know it.
pub fn kind_of<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        KIND_TENANT => KIND_TENANT,
        _ => KIND_ENVIRONMENT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DigitalChannelsTenant;

    /// A string key made `a/b` + `c` and `a` + `b/c` one resource; a reference cannot.
    #[test]
    fn names_with_slashes_do_not_collide() {
        let one = ObjectKey::new(KIND_TENANT, "a/b", "c");
        let other = ObjectKey::new(KIND_TENANT, "a", "b/c");
        assert_eq!(one.to_string(), other.to_string());
        assert_ne!(one, other);
    }

    #[test]
    fn a_tenant_keys_by_its_kind_namespace_and_name() {
        let mut t = DigitalChannelsTenant::new(
            "t1",
            serde_json::from_value(serde_json::json!({
            "environmentRef": {"name": "prod"}, "tenantName": "t1",
            "credentialsSecret": {"name": "c"}}))
            .expect("a spec"),
        );
        t.metadata.namespace = Some("ns".into());
        assert_eq!(ObjectKey::of(&t), ObjectKey::new(KIND_TENANT, "ns", "t1"));
    }
}
