//! What the operator's ServiceAccount must be allowed to do: the chart's RBAC
//! (charts/digital-channels-operator/templates/rbac.yaml, docs/install.md) as one list, asked
//! of the API server one SubjectAccessReview per verb. tests/cli_doctor.rs checks that this
//! list and the rendered chart grant exactly the same.

/// Where a right applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The namespace of the resources (a watched namespace).
    Watched,
    /// The watched namespace itself, a cluster-scoped object, by name.
    WatchedNamespaceObject,
    /// The operator's own namespace (the leader Lease's).
    Operator,
    /// The Deployment of an environment's `spec.nexusDeployment`, by name, in its namespace.
    NexusDeployment,
}

/// One rule: (API group, resource with any subresource after a slash, verbs, one name, place).
#[derive(Clone, Copy, Debug)]
pub struct Right {
    pub group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    pub name: Option<&'static str>,
    pub place: Place,
}

const fn right(
    group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
    place: Place,
) -> Right {
    Right {
        group,
        resource,
        verbs,
        name: None,
        place,
    }
}

const DC: &str = "digitalchannels.dev";
const OWN: &[&str] = &["get", "list", "watch", "patch", "update"];
const STATUS: &[&str] = &["get", "patch", "update"];

/// The rights the chart grants and the operator uses.
pub const RIGHTS: &[Right] = &[
    right(DC, "digitalchannelsenvironments", OWN, Place::Watched),
    right(DC, "digitalchannelstenants", OWN, Place::Watched),
    right(
        DC,
        "digitalchannelsenvironments/status",
        STATUS,
        Place::Watched,
    ),
    right(DC, "digitalchannelstenants/status", STATUS, Place::Watched),
    right(
        DC,
        "digitalchannelsenvironments/finalizers",
        &["update"],
        Place::Watched,
    ),
    right(
        DC,
        "digitalchannelstenants/finalizers",
        &["update"],
        Place::Watched,
    ),
    right("", "namespaces", &["get"], Place::WatchedNamespaceObject),
    right(
        "",
        "secrets",
        &["get", "list", "watch", "create", "update", "patch"],
        Place::Watched,
    ),
    right(
        "events.k8s.io",
        "events",
        &["create", "patch"],
        Place::Watched,
    ),
    right(
        "coordination.k8s.io",
        "leases",
        &["create"],
        Place::Operator,
    ),
    Right {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "update"],
        name: Some(crate::controller::leader::LEASE_NAME),
        place: Place::Operator,
    },
    right(
        "apps",
        "deployments",
        &["get", "patch"],
        Place::NexusDeployment,
    ),
];

/// One question for the API server: may the ServiceAccount do `verb` on this?
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub verb: String,
    /// Empty for a cluster-scoped object.
    pub namespace: String,
    pub name: String,
}

impl Ask {
    /// As `kubectl auth can-i` takes it: `update leases.coordination.k8s.io/NAME -n NS`.
    pub fn describe(&self) -> String {
        let mut what = self.resource.clone();
        if !self.group.is_empty() {
            what = format!("{what}.{}", self.group);
        }
        if !self.subresource.is_empty() {
            what = format!("{what}/{}", self.subresource);
        } else if !self.name.is_empty() {
            what = format!("{what}/{}", self.name);
        }
        if self.namespace.is_empty() {
            format!("{} {what}", self.verb)
        } else {
            format!("{} {what} -n {}", self.verb, self.namespace)
        }
    }
}

/// Every question for resources in `watched`, an operator in `operator_ns`, and the Nexus
/// Deployments `(namespace, name)` of the environments there.
pub fn asks(watched: &str, operator_ns: &str, nexus: &[(String, String)]) -> Vec<Ask> {
    let mut out = Vec::new();
    for r in RIGHTS {
        let (resource, subresource) = r.resource.split_once('/').unwrap_or((r.resource, ""));
        let places: Vec<(String, String)> = match r.place {
            Place::Watched => vec![(watched.to_string(), r.name.unwrap_or("").to_string())],
            Place::WatchedNamespaceObject => vec![(String::new(), watched.to_string())],
            Place::Operator => vec![(operator_ns.to_string(), r.name.unwrap_or("").to_string())],
            Place::NexusDeployment => nexus.to_vec(),
        };
        for (namespace, name) in places {
            for verb in r.verbs {
                out.push(Ask {
                    group: r.group.to_string(),
                    resource: resource.to_string(),
                    subresource: subresource.to_string(),
                    verb: verb.to_string(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_name_their_place() {
        let all = asks("dc", "dc-op", &[("nexus".into(), "nexus".into())]);
        let described: Vec<String> = all.iter().map(Ask::describe).collect();
        for want in [
            "list digitalchannelstenants.digitalchannels.dev -n dc",
            "patch digitalchannelsenvironments.digitalchannels.dev/status -n dc",
            "get namespaces/dc",
            "watch secrets -n dc",
            "create events.events.k8s.io -n dc",
            "create leases.coordination.k8s.io -n dc-op",
            "update leases.coordination.k8s.io/digital-channels-operator -n dc-op",
            "patch deployments.apps/nexus -n nexus",
        ] {
            assert!(
                described.iter().any(|d| d == want),
                "{want} in {described:#?}"
            );
        }
        assert_eq!(asks("dc", "op", &[]).len() + 2, all.len());
    }
}
