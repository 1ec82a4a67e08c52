//! The two controllers, one per kind, in one process: `dc-operator run`.

pub mod conditions;
pub mod context;
pub mod environment;
pub mod gate;
pub mod identity;
pub mod keys;
pub mod kstatus;
pub mod kube_client;
pub mod leader;
pub mod manual_restart;
pub mod nexus_restart;
pub mod own_writes;
pub mod panics;
pub mod pass;
pub mod resolved;
pub mod secret_versions;
pub mod secrets;
pub mod startup;
pub mod status;
pub mod tap;
pub mod tenant;
pub mod watches;

pub use context::{Context, ControllerConfig};
pub(crate) use pass::{cleanup_can_never_succeed, current, new_reconcile_request, reconcile_pass};
pub use startup::{RunSettings, check_crds, run, watch_scopes};
pub use watches::{environment_secret_names, run_scope, tenant_secret_names};

pub const KIND_ENVIRONMENT: &str = "DigitalChannelsEnvironment";
pub const KIND_TENANT: &str = "DigitalChannelsTenant";

/// Errors that end a reconcile early: the Kubernetes API, or a panic inside the pass.
/// Upstream failures are conditions, not errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {}", kube_message(.0))]
    Kube(#[from] kube::Error),
    /// Where the pass panicked (see [`panics::contained`]); never the panic's message.
    #[error("the pass panicked at {0} (an operator bug); it is retried on the backoff")]
    Panicked(String),
}

/// A Kubernetes error in words: kube's own Display of an API error appends a `Debug` dump
/// of the whole `Status`.
pub(crate) fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    }
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubernetes_error_reads_as_words_not_as_a_debug_dump() {
        let status =
            kube::core::Status::failure("tenants \"t\" is forbidden", "Forbidden").with_code(403);
        let error = Error::Kube(kube::Error::Api(Box::new(status)));
        let text = error.to_string();
        assert_eq!(
            text,
            "Kubernetes API: tenants \"t\" is forbidden (403 Forbidden)"
        );
    }
}
