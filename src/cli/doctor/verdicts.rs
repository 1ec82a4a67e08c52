//! From a probe's result to a verdict with its fix: pure functions, each tested with a table.
//! The probes (src/cli/doctor/probe.rs) only gather what these decide on.

use std::net::{IpAddr, SocketAddr};

use super::check::Verdict;
use crate::api::ManagementPolicy;
use crate::api::environment::TAKE_OVER_CLIENT_ANNOTATION;
use crate::runbook::secrets::SecretError;
use crate::upstream::gws_auth::OAuthClient;
use crate::upstream::{ErrorKind, UpstreamError};

/// Where a name was looked up: the spec fields that use it.
pub fn dns(fields: &[&str], result: &Result<Vec<IpAddr>, String>) -> Verdict {
    let used_by = fields.join(", ");
    match result {
        Ok(addresses) if addresses.is_empty() => Verdict::failure(
            format!("resolves to no address ({used_by})"),
            format!("add an A or AAAA record, or fix the host in {used_by}"),
        ),
        Ok(addresses) => {
            let mut shown: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
            shown.dedup();
            Verdict::ok(format!("{} ({used_by})", shown.join(", ")))
        }
        Err(e) => Verdict::failure(
            format!("does not resolve: {e} ({used_by})"),
            format!(
                "fix the host name in {used_by}, or the DNS of this machine; the operator \
                 resolves it from its pod, so run doctor where the operator runs to be sure"
            ),
        ),
    }
}

/// Why a TCP connection was not made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpFailure {
    Refused,
    TimedOut,
    Other(String),
}

pub fn tcp(target: &str, field: &str, result: &Result<SocketAddr, TcpFailure>) -> Verdict {
    match result {
        Ok(peer) => Verdict::ok(format!("{target} accepts connections ({peer})")),
        Err(TcpFailure::Refused) => Verdict::failure(
            format!("connection refused by {target}"),
            format!("nothing listens there: check the port in {field} and that the service runs"),
        ),
        Err(TcpFailure::TimedOut) => Verdict::failure(
            format!("no answer from {target}"),
            format!(
                "a firewall or NetworkPolicy drops the connection, or the host is down: allow \
                 the operator to reach {target}"
            ),
        ),
        Err(TcpFailure::Other(e)) => Verdict::failure(
            format!("cannot connect to {target}: {e}"),
            format!("check the host and port in {field} and the route to it"),
        ),
    }
}

/// The CA in use for the Genesys services: `spec.tls.caSecret` (its name), `--extra-ca-file`,
/// and always the system roots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaInUse {
    pub ca_secret: Option<String>,
    pub extra_ca_file: bool,
}

impl CaInUse {
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(name) = &self.ca_secret {
            parts.push(format!("spec.tls.caSecret {name}"));
        }
        if self.extra_ca_file {
            parts.push("--extra-ca-file".to_string());
        }
        parts.push("the system roots".to_string());
        parts.join(" + ")
    }
}

/// What a TLS handshake ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsOutcome {
    /// An `http://` URL: no TLS at all.
    Plain,
    Trusted {
        issuer: Option<String>,
    },
    Untrusted {
        issuer: Option<String>,
    },
    WrongName {
        issuer: Option<String>,
    },
    Expired,
    Failed(String),
}

pub fn tls(host: &str, field: &str, outcome: &TlsOutcome, ca: &CaInUse) -> Verdict {
    let by = |issuer: &Option<String>| issuer.clone().unwrap_or_else(|| "an unnamed CA".into());
    match outcome {
        TlsOutcome::Plain => Verdict::warning(
            "plain http: credentials and tokens cross the network unencrypted",
            format!("use an https:// URL in {field}"),
        ),
        TlsOutcome::Trusted { issuer } => Verdict::ok(format!(
            "certificate issued by {} trusted ({})",
            by(issuer),
            ca.describe()
        )),
        TlsOutcome::Untrusted { issuer } => {
            let fix = match &ca.ca_secret {
                None => format!(
                    "put the CA certificate of {} (PEM) in a Secret and name it in spec.tls.caSecret",
                    by(issuer)
                ),
                Some(name) => format!(
                    "Secret {name} (spec.tls.caSecret) does not hold the CA that issued this certificate ({}): add it there",
                    by(issuer)
                ),
            };
            Verdict::failure(format!("certificate not trusted: {}", by(issuer)), fix)
        }
        TlsOutcome::WrongName { issuer } => Verdict::failure(
            format!(
                "certificate (issued by {}) is not valid for {host}",
                by(issuer)
            ),
            format!("use in {field} a host name the certificate names, or reissue it for {host}"),
        ),
        TlsOutcome::Expired => Verdict::failure(
            "certificate expired or not yet valid",
            format!("renew the certificate of {host} (or check this machine's clock)"),
        ),
        TlsOutcome::Failed(e) => Verdict::failure(
            format!("TLS handshake failed: {e}"),
            format!("check that {host} speaks TLS on that port (an http:// URL for a plain one)"),
        ),
    }
}

/// A Secret (or one key of it) the environment or a tenant reads.
pub fn secret(
    name: &str,
    purpose: &str,
    keys: &[&str],
    namespace: Option<&str>,
    result: &Result<(), SecretError>,
) -> Verdict {
    let place = namespace
        .map(|ns| format!(" in namespace {ns}"))
        .unwrap_or_default();
    match result {
        Ok(()) => Verdict::ok(format!("{purpose}: keys {}", keys.join(", "))),
        Err(SecretError::NotFound { .. }) => Verdict::failure(
            format!("does not exist ({purpose})"),
            format!("create Secret {name}{place} with keys {}", keys.join(", ")),
        ),
        Err(SecretError::KeyMissing { key, .. }) => Verdict::failure(
            format!("has no key {key} ({purpose})"),
            format!("add the key {key} to Secret {name}, or name the right key in the spec"),
        ),
        Err(e) => Verdict::failure(
            format!("cannot be read: {e}"),
            "check your access to Secrets in this namespace",
        ),
    }
}

/// The client secret's Secret: one that does not exist is generated under Manage.
pub fn client_secret(
    name: &str,
    key: &str,
    policy: ManagementPolicy,
    result: &Result<(), SecretError>,
) -> Verdict {
    match (result, policy) {
        (Err(SecretError::NotFound { .. }), ManagementPolicy::Manage) => Verdict::warning(
            "does not exist (OAuth client secret)",
            "nothing to do: Manage generates it and sets it on the OAuth client",
        ),
        (Err(SecretError::NotFound { .. }), ManagementPolicy::Observe) => Verdict::failure(
            "does not exist (OAuth client secret); Observe generates nothing",
            format!(
                "create Secret {name} with key {key} holding the OAuth client's current secret"
            ),
        ),
        _ => secret(name, "OAuth client secret", &[key], None, result),
    }
}

/// What an upstream error is, for a person: refused credentials or anything else.
fn answered(e: &UpstreamError) -> String {
    e.detail.clone()
}

/// The ops user on GWS Auth (HTTP Basic on the ops API).
pub fn ops(
    user: &str,
    secret_name: &str,
    result: &Result<Option<OAuthClient>, UpstreamError>,
) -> Verdict {
    match result {
        Ok(_) => Verdict::ok(format!("user {user} accepted by GWS Auth (ops API)")),
        Err(e) if e.kind == ErrorKind::Unauthorized => Verdict::failure(
            format!("GWS Auth refused user {user}: {}", answered(e)),
            format!(
                "put the GWS Auth admin (ops) user's username and password in Secret {secret_name}"
            ),
        ),
        Err(e) => Verdict::failure(
            format!("GWS Auth ops API: {}", answered(e)),
            "check that spec.authUrl is the base URL of GWS Auth (the operator adds /auth/v3)",
        ),
    }
}

/// Whether the OAuth client exists, from the same look as [`ops`].
pub fn client(
    client_id: &str,
    policy: ManagementPolicy,
    result: &Result<Option<OAuthClient>, UpstreamError>,
) -> Verdict {
    match result {
        Ok(Some(found)) => {
            let by = found
                .description
                .as_deref()
                .filter(|d| !d.is_empty())
                .map(|d| format!(" ({})", d.chars().take(120).collect::<String>()))
                .unwrap_or_default();
            Verdict::ok(format!("{client_id} exists{by}"))
        }
        Ok(None) if policy.observes() => Verdict::failure(
            format!("{client_id} does not exist; Observe creates nothing"),
            "create the client by hand, or set managementPolicy: Manage",
        ),
        Ok(None) => Verdict::warning(
            format!("{client_id} does not exist"),
            "nothing to do: Manage creates it",
        ),
        Err(e) => Verdict::failure(format!("cannot look: {}", answered(e)), "see the ops check"),
    }
}

/// The client's verification: a client_credentials grant with the secret of its Secret.
pub fn verification(
    client_id: &str,
    secret_name: &str,
    policy: ManagementPolicy,
    result: &Result<(), UpstreamError>,
) -> Verdict {
    match result {
        Ok(()) => Verdict::ok(format!(
            "{client_id} accepted the secret of Secret {secret_name} (client_credentials grant)"
        )),
        Err(e) if e.kind == ErrorKind::Unauthorized => {
            let fix = if policy.observes() {
                format!("put the client's current secret in Secret {secret_name}")
            } else {
                format!(
                    "Manage sets the secret of Secret {secret_name} on a client it manages; for a \
                     client made by hand or by another manager, put its secret in the Secret, or \
                     let the operator take it over (annotation {TAKE_OVER_CLIENT_ANNOTATION}: \"true\")"
                )
            };
            Verdict::failure(
                format!(
                    "GWS Auth refused {client_id} with the secret of Secret {secret_name}: {}",
                    answered(e)
                ),
                fix,
            )
        }
        Err(e) => Verdict::failure(
            format!("token grant failed: {}", answered(e)),
            "check that spec.authUrl is the base URL of GWS Auth",
        ),
    }
}

/// The ops user on the Environment API: the contact centers the tenants are chosen from.
pub fn contact_centers(
    user: &str,
    secret_name: &str,
    result: &Result<usize, UpstreamError>,
) -> Verdict {
    match result {
        Ok(n) => Verdict::ok(format!("{n} contact center(s) listed as {user}")),
        Err(e) if e.kind == ErrorKind::Unauthorized => Verdict::failure(
            format!("the Environment API refused user {user}: {}", answered(e)),
            format!("put an ops user the Environment API accepts in Secret {secret_name}"),
        ),
        Err(e) => Verdict::failure(
            format!("Environment API: {}", answered(e)),
            "check spec.environmentUrl (default spec.authUrl): the operator adds /environment/v3",
        ),
    }
}

/// A tenant user's password grant as `<ccId>\<user>`.
pub fn tenant_user(login: &str, secret_name: &str, result: &Result<(), UpstreamError>) -> Verdict {
    match result {
        Ok(()) => Verdict::ok(format!("{login} accepted (password grant)")),
        Err(e) if e.kind == ErrorKind::Unauthorized => Verdict::failure(
            format!("GWS Auth refused {login} (password grant): {}", answered(e)),
            format!(
                "put the username and password of a Person of that contact center in Secret {secret_name}"
            ),
        ),
        Err(e) => Verdict::failure(
            format!("password grant failed: {}", answered(e)),
            "check that spec.authUrl is the base URL of GWS Auth",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::check::Status::{self, Failure, Ok as Good, Warning};
    use super::*;
    use crate::api::ManagementPolicy::{Manage, Observe};
    use crate::api::common::ManagementPolicy;
    use crate::upstream::System;

    fn err(kind: ErrorKind) -> UpstreamError {
        UpstreamError::new(System::GwsAuth, "op", kind, "HTTP 401: Bad credentials")
    }

    fn status_and_fix(v: &Verdict) -> (Status, String) {
        (v.status, v.fix.clone().unwrap_or_default())
    }

    #[test]
    fn names() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let dns_cases = [
            (
                Ok(vec![ip("10.0.0.1"), ip("::1")]),
                Good,
                "10.0.0.1, ::1 (spec.authUrl)",
            ),
            (Ok(vec![]), Failure, "resolves to no address (spec.authUrl)"),
            (
                Err("NXDOMAIN".into()),
                Failure,
                "does not resolve: NXDOMAIN (spec.authUrl)",
            ),
        ];
        for (result, status, message) in dns_cases {
            let v = dns(&["spec.authUrl"], &result);
            assert_eq!((v.status, v.message.as_str()), (status, message));
        }
    }

    #[test]
    fn connections() {
        let peer: SocketAddr = "127.0.0.1:443".parse().unwrap();
        for (result, status, fix) in [
            (Ok(peer), Good, ""),
            (
                Err(TcpFailure::Refused),
                Failure,
                "nothing listens there: check the port in spec.nexusUrl and that the service runs",
            ),
            (
                Err(TcpFailure::TimedOut),
                Failure,
                "a firewall or NetworkPolicy drops the connection, or the host is down: allow the operator to reach h:443",
            ),
        ] {
            assert_eq!(
                status_and_fix(&tcp("h:443", "spec.nexusUrl", &result)),
                (status, fix.to_string())
            );
        }
    }

    #[test]
    fn certificates() {
        let issuer = Some("CN=corp-ca".to_string());
        let none = CaInUse::default();
        let with_secret = CaInUse {
            ca_secret: Some("genesys-ca".into()),
            extra_ca_file: false,
        };
        let tls_cases = [
            (
                TlsOutcome::Plain,
                &none,
                Warning,
                "plain http: credentials and tokens cross the network unencrypted",
            ),
            (
                TlsOutcome::Trusted {
                    issuer: issuer.clone(),
                },
                &with_secret,
                Good,
                "certificate issued by CN=corp-ca trusted (spec.tls.caSecret genesys-ca + the system roots)",
            ),
            (
                TlsOutcome::Untrusted {
                    issuer: issuer.clone(),
                },
                &none,
                Failure,
                "certificate not trusted: CN=corp-ca",
            ),
            (
                TlsOutcome::WrongName { issuer: None },
                &none,
                Failure,
                "certificate (issued by an unnamed CA) is not valid for h",
            ),
            (
                TlsOutcome::Expired,
                &none,
                Failure,
                "certificate expired or not yet valid",
            ),
        ];
        for (outcome, ca, status, message) in tls_cases {
            let v = tls("h", "spec.authUrl", &outcome, ca);
            assert_eq!(
                (v.status, v.message.as_str()),
                (status, message),
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn an_untrusted_certificate_names_its_issuer_and_the_ca_secret() {
        let untrusted = TlsOutcome::Untrusted {
            issuer: Some("CN=corp-ca".to_string()),
        };
        let fix = |ca: &CaInUse| tls("h", "f", &untrusted, ca).fix.unwrap();
        assert_eq!(
            fix(&CaInUse::default()),
            "put the CA certificate of CN=corp-ca (PEM) in a Secret and name it in spec.tls.caSecret"
        );
        let with_secret = CaInUse {
            ca_secret: Some("genesys-ca".into()),
            extra_ca_file: false,
        };
        assert!(
            fix(&with_secret).starts_with("Secret genesys-ca (spec.tls.caSecret) does not hold")
        );
    }

    #[test]
    fn secrets_and_the_client_secret_by_policy() {
        let missing = Err(SecretError::NotFound {
            name: "s".into(),
            in_files: false,
        });
        let no_key = Err(SecretError::KeyMissing {
            name: "s".into(),
            key: "password".into(),
        });
        let cases: [(Result<(), SecretError>, ManagementPolicy, Status); 5] = [
            (Ok(()), Manage, Good),
            (missing.clone(), Manage, Warning),
            (missing.clone(), Observe, Failure),
            (no_key.clone(), Manage, Failure),
            (no_key, Observe, Failure),
        ];
        for (result, policy, status) in cases {
            assert_eq!(
                client_secret("s", "client-secret", policy, &result).status,
                status,
                "{result:?} {policy:?}"
            );
        }
        assert_eq!(
            secret(
                "gws-ops",
                "ops credentials",
                &["username", "password"],
                Some("dc"),
                &missing
            )
            .fix
            .as_deref(),
            Some("create Secret gws-ops in namespace dc with keys username, password")
        );
    }

    #[test]
    fn gws_answers() {
        let found = Ok(Some(OAuthClient {
            description: Some("managed by dc-operator provision".into()),
            ..OAuthClient::default()
        }));
        let absent: Result<Option<OAuthClient>, UpstreamError> = Ok(None);
        let refused: Result<Option<OAuthClient>, UpstreamError> = Err(err(ErrorKind::Unauthorized));
        assert_eq!(ops("ops", "gws-ops", &found).status, Good);
        let v = ops("ops", "gws-ops", &refused);
        assert_eq!(
            v.message,
            "GWS Auth refused user ops: HTTP 401: Bad credentials"
        );
        assert_eq!(v.status, Failure);
        for (result, policy, status, message) in [
            (
                &found,
                Manage,
                Good,
                "nexus_client exists (managed by dc-operator provision)",
            ),
            (&absent, Manage, Warning, "nexus_client does not exist"),
            (
                &absent,
                Observe,
                Failure,
                "nexus_client does not exist; Observe creates nothing",
            ),
        ] {
            let v = client("nexus_client", policy, result);
            assert_eq!((v.status, v.message.as_str()), (status, message));
        }
        let refused_grant = Err(err(ErrorKind::Unauthorized));
        for (result, status) in [
            (Ok(()), Good),
            (refused_grant.clone(), Failure),
            (Err(err(ErrorKind::Transient)), Failure),
        ] {
            assert_eq!(verification("c", "s", Manage, &result).status, status);
            assert_eq!(tenant_user("cc\\u", "s", &result).status, status);
        }
        assert!(
            verification("c", "s", Manage, &refused_grant)
                .fix
                .unwrap()
                .contains(TAKE_OVER_CLIENT_ANNOTATION)
        );
        assert_eq!(
            verification("c", "s", Observe, &refused_grant).fix.unwrap(),
            "put the client's current secret in Secret s"
        );
        assert_eq!(
            contact_centers("ops", "gws-ops", &Ok(2)).message,
            "2 contact center(s) listed as ops"
        );
    }
}
