//! The issuer of a certificate, read from its DER: what "certificate not trusted" names, so
//! that a person knows which CA to put in `spec.tls.caSecret`. Only the few attributes a person
//! recognises are read; anything malformed is `None`, never a panic.

/// One DER element: its tag, its content, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let bytes = input.get(2..2 + count)?;
        let len = bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
        (len, 2 + count)
    };
    let content = input.get(header..header.checked_add(len)?)?;
    Some((tag, content, &input[header + len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// Short names of the attributes shown, by their OID's content bytes (2.5.4.x).
fn attribute_name(oid: &[u8]) -> Option<&'static str> {
    match oid {
        [0x55, 0x04, 0x03] => Some("CN"),
        [0x55, 0x04, 0x0a] => Some("O"),
        [0x55, 0x04, 0x0b] => Some("OU"),
        [0x55, 0x04, 0x06] => Some("C"),
        _ => None,
    }
}

/// The issuer of a DER certificate as `CN=..., O=...` (most specific first, as OpenSSL's
/// `-nameopt RFC2253` shows it).
pub fn issuer(der: &[u8]) -> Option<String> {
    let (tag, certificate, _) = element(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (_, tbs, _) = element(certificate)?;
    let mut rest = tbs;
    // [0] version, when present; then serialNumber and signature, then the issuer.
    let (tag, _, after) = element(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    let (_, _, after_serial) = element(rest)?;
    let (_, _, after_signature) = element(after_serial)?;
    let (tag, name, _) = element(after_signature)?;
    if tag != SEQUENCE {
        return None;
    }
    let parts = name_parts(name)?;
    (!parts.is_empty()).then(|| parts.into_iter().rev().collect::<Vec<_>>().join(", "))
}

/// `TYPE=value` of each known attribute of a Name, in the certificate's order.
fn name_parts(mut name: &[u8]) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    while !name.is_empty() {
        let (tag, set, rest) = element(name)?;
        name = rest;
        if tag != SET {
            return None;
        }
        let (_, pair, _) = element(set)?;
        let (tag, oid, value) = element(pair)?;
        if tag != OID {
            return None;
        }
        let (_, text, _) = element(value)?;
        if let Some(label) = attribute_name(oid) {
            let text: String = String::from_utf8_lossy(text)
                .chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect();
            parts.push(format!("{label}={text}"));
        }
    }
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    /// `openssl req -x509 -newkey ec ... -subj "/O=Example Corp/CN=dc-test-ca"`, self-signed:
    /// its issuer is its subject.
    const CERT: &str = "\
MIIBrTCCAVOgAwIBAgIUZ9duB+1UIlpJdIZ8W8l3v5mqk88wCgYIKoZIzj0EAwIw
LDEVMBMGA1UECgwMRXhhbXBsZSBDb3JwMRMwEQYDVQQDDApkYy10ZXN0LWNhMB4X
DTI2MTIwNTA0NDM0OFoXDTM2MTIwMjA0NDM0OFowLDEVMBMGA1UECgwMRXhhbXBs
ZSBDb3JwMRMwEQYDVQQDDApkYy10ZXN0LWNhMFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAEI45SBAWrthYH1eSh9maPPGXUp8Hpws2wtddmMJ3ZQ9X/eRwj76ANu8yN
Z8cvlktFv/6hZ+Lz4KqZGKS5+WN2LaNTMFEwHQYDVR0OBBYEFJclQGaxeT7qD9ff
oKlTeRIKSQdCMB8GA1UdIwQYMBaAFJclQGaxeT7qD9ffoKlTeRIKSQdCMA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAJdnzIRUiEG2oVXggbtzAlOu
Zoys4li/4glGQFUPfj7gAiAFAvuKuOy04SLJo+jhKOQAIqopFPMpbpXIPU5iQBm3
BA==";

    fn der() -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(CERT.replace('\n', ""))
            .unwrap()
    }

    #[test]
    fn the_issuer_is_named_most_specific_first() {
        assert_eq!(
            issuer(&der()).as_deref(),
            Some("CN=dc-test-ca, O=Example Corp")
        );
    }

    #[test]
    fn anything_malformed_is_none() {
        let der = der();
        for cut in [0, 1, 2, 5, 20, 40, 60] {
            assert_eq!(issuer(&der[..cut]), None, "cut at {cut}");
        }
        assert_eq!(issuer(b"not DER at all"), None);
        assert_eq!(issuer(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
