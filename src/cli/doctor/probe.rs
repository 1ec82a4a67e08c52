//! The thin layer that touches the network: names, TCP, TLS. What it finds is decided on by
//! the pure functions of `verdicts`.

use std::error::Error;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::verdicts::{TcpFailure, TlsOutcome};

/// Every address `host` resolves to (an IP literal is itself).
pub async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<IpAddr>, String> {
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(timeout, lookup).await {
        Ok(Ok(found)) => {
            let mut addresses: Vec<IpAddr> = found.map(|a| a.ip()).collect();
            // IPv4 first, then IPv6, each in order: the same text for the same answer.
            addresses.sort_by_key(|a| (a.is_ipv6(), *a));
            addresses.dedup();
            Ok(addresses)
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", timeout.as_secs())),
    }
}

/// A TCP connection to `host:port`, closed at once.
pub async fn connect(host: &str, port: u16, timeout: Duration) -> Result<SocketAddr, TcpFailure> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(stream)) => stream
            .peer_addr()
            .map_err(|e| TcpFailure::Other(e.to_string())),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(TcpFailure::Refused),
        Ok(Err(e)) => Err(TcpFailure::Other(e.to_string())),
        Err(_) => Err(TcpFailure::TimedOut),
    }
}

/// The rustls error somewhere in a chain of causes. `io::Error` hides its inner error from
/// `source()`, so it is opened with `get_ref()`.
fn rustls_error<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            let inner: &(dyn Error + 'static) = inner;
            if let Some(found) = rustls_error(inner) {
                return Some(found);
            }
        }
        cause = e.source();
    }
    None
}

/// Whether a chain of causes says the certificate's issuer is not trusted.
pub fn untrusted_in_chain(error: &(dyn Error + 'static)) -> bool {
    matches!(
        rustls_error(error),
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        ))
    )
}

/// What a failed handshake says about the certificate; the issuer is filled in later.
pub fn tls_failure(error: &(dyn Error + 'static)) -> Option<TlsOutcome> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(problem) = rustls_error(error)? else {
        return rustls_error(error).map(|e| TlsOutcome::Failed(e.to_string()));
    };
    Some(match problem {
        C::UnknownIssuer | C::BadSignature => TlsOutcome::Untrusted { issuer: None },
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            TlsOutcome::WrongName { issuer: None }
        }
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            TlsOutcome::Expired
        }
        other => TlsOutcome::Failed(format!("invalid peer certificate: {other:?}")),
    })
}

/// A reqwest client as the operator's (no redirects, the extra CA on top of the system
/// roots) that keeps the peer's certificate; with `accept_any`, one that trusts anything,
/// only to read who issued a certificate that was refused.
fn client(
    ca_pem: Option<&[u8]>,
    accept_any: bool,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    crate::upstream::http::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .tls_info(true)
        .tls_danger_accept_invalid_certs(accept_any);
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("the CA bundle is not valid PEM: {e}"))?;
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| format!("the CA bundle is not usable: {e}"))
}

/// The issuer of the certificate an answer came with.
fn issuer_of(response: &reqwest::Response) -> Option<String> {
    let info = response.extensions().get::<reqwest::tls::TlsInfo>()?;
    super::x509::issuer(info.peer_certificate()?)
}

/// A TLS handshake with `origin` (`https://host:port`), trusting what the operator would:
/// any HTTP answer means the handshake held.
pub async fn tls(origin: &str, ca_pem: Option<&[u8]>, timeout: Duration) -> TlsOutcome {
    let verifying = match client(ca_pem, false, timeout) {
        Ok(c) => c,
        Err(e) => return TlsOutcome::Failed(e),
    };
    let error = match verifying.get(origin).send().await {
        Ok(response) => {
            return TlsOutcome::Trusted {
                issuer: issuer_of(&response),
            };
        }
        Err(e) => e,
    };
    let Some(outcome) = tls_failure(&error) else {
        return TlsOutcome::Failed(causes(error));
    };
    let issuer = match client(None, true, timeout) {
        Ok(any) => any
            .get(origin)
            .send()
            .await
            .ok()
            .and_then(|r| issuer_of(&r)),
        Err(_) => None,
    };
    match outcome {
        TlsOutcome::Untrusted { .. } => TlsOutcome::Untrusted { issuer },
        TlsOutcome::WrongName { .. } => TlsOutcome::WrongName { issuer },
        other => other,
    }
}

/// A transport error's text and causes, without its URL.
fn causes(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(&format!(": {e}"));
        cause = e.source();
    }
    text
}
