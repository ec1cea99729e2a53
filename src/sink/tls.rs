//! The certificates a TLS connection to S3 is checked against.
//!
//! Mozilla's root set, bundled in the binary (`webpki-root-certs`), rather than the SDK's default
//! scan of the system store: that scan opened and parsed some 150 files during init, 3.7 ms of a
//! 7.4 ms cold start on the emulator, and Lambda's store holds the same public roots. A private CA
//! (an S3-compatible endpoint behind a corporate CA) is added with `AWS_CA_BUNDLE`, the variable the
//! AWS CLI and the other SDKs read: a PEM file, checked at init, since the SDK panics on a
//! certificate it cannot parse.

use aws_smithy_http_client::tls::TrustStore;
use base64::Engine;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The bundled roots plus `extra_pem` (already checked by [`check_ca_bundle`]).
pub fn trust_store(extra_pem: Option<&[u8]>) -> TrustStore {
    let store = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(bundled_pem());
    match extra_pem {
        Some(pem) => store.with_pem_certificate(pem),
        None => store,
    }
}

/// The bundled roots in the PEM form the SDK's trust store takes.
fn bundled_pem() -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut pem = Vec::with_capacity(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() * 2048);
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        let encoded = b64.encode(cert.as_ref());
        for line in encoded.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem
}

/// Checks that `pem` holds at least one certificate usable as a root, and says which is not.
pub fn check_ca_bundle(pem: &[u8]) -> Result<usize, String> {
    let mut count = 0;
    for (i, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let cert = cert.map_err(|e| format!("certificate {} is not valid PEM: {e:?}", i + 1))?;
        webpki::anchor_from_trusted_cert(&cert)
            .map_err(|e| format!("certificate {} cannot be a root: {e}", i + 1))?;
        count += 1;
    }
    if count == 0 {
        return Err("holds no PEM certificate".into());
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_roots_round_trip_through_pem() {
        let n = check_ca_bundle(&bundled_pem()).expect("bundled roots");
        assert_eq!(n, webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert!(n > 100, "{n} roots");
    }

    #[test]
    fn a_bad_bundle_says_what_is_wrong() {
        assert_eq!(
            check_ca_bundle(b"not a certificate"),
            Err("holds no PEM certificate".to_string())
        );
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = check_ca_bundle(garbage).expect_err("not a certificate");
        assert!(e.starts_with("certificate 1 cannot be a root"), "{e}");
        let one = &bundled_pem()[..];
        let end = b"-----END CERTIFICATE-----\n";
        let first = one
            .windows(end.len())
            .position(|w| w == end)
            .expect("one certificate")
            + end.len();
        assert_eq!(check_ca_bundle(&one[..first]), Ok(1));
    }
}
