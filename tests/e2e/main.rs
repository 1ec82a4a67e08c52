//! End to end against a real Kubernetes API server: the kubeconfig's current context, only when
//! `DC_E2E=1` and `DC_E2E_CONTEXT` names that context (CI starts `../shared/k8s` and sets both).
//! Otherwise every scenario prints that it skipped and why, touching no cluster; with
//! `DC_E2E_REQUIRED=1` it fails instead.
//!
//! Every scenario runs `dc-operator run` on this machine, logged in as the ServiceAccount that
//! `helm template` renders, with exactly the chart's RBAC applied to the cluster, against its own
//! `dc-operator simulate` and database. Any Forbidden answer fails the scenario and names it.

mod adoption;
#[path = "../common/argo_health.rs"]
mod argo_health;
mod bad_input;
#[path = "../common/by_hand.rs"]
mod by_hand;
mod cli_doctor;
mod cli_plan;
mod cli_status;
#[path = "../common/cluster_gate.rs"]
mod cluster_gate;
mod cluster_opt_in;
mod edges;
mod environment_edges;
mod harness;
mod health;
mod leader;
mod namespace_deletion;
mod output_secret;
mod pod_security;
mod provisioning;
mod rbac;
mod resources;
mod rotation;
mod schema;
#[path = "../common/status_estates.rs"]
mod status_estates;
mod walkthrough;
