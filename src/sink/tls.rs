//! The certificates a TLS connection to S3 is checked against.
//!
//! The Amazon Trust Services roots, bundled in the binary (`amazon-trust-services.pem`): every
//! default S3 endpoint has served a certificate from this CA since June 2022. Not the SDK's default,
//! a scan of the system store, which opened and parsed some 150 files during init (3.7 ms of a
//! 7.4 ms cold start on the emulator); nor all of Mozilla's 150 roots, which cost 0.2 ms and about
//! 0.6 MB of memory (the SDK keeps the PEM text) to trust CAs no S3 endpoint uses. An endpoint with
//! another CA (an S3-compatible store, a corporate proxy) is added with `AWS_CA_BUNDLE`, the
//! variable the AWS CLI and the other SDKs read: a PEM file, checked at init, since the SDK panics on
//! a certificate it cannot parse.

use aws_smithy_http_client::tls::TrustStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Amazon Root CA 1 to 4 and Starfield Services Root Certificate Authority - G2.
pub const AMAZON_TRUST_SERVICES: &[u8] = include_bytes!("amazon-trust-services.pem");

/// The bundled roots plus `extra_pem` (already checked by [`check_ca_bundle`]).
pub fn trust_store(extra_pem: Option<&[u8]>) -> TrustStore {
    let store = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_TRUST_SERVICES);
    match extra_pem {
        Some(pem) => store.with_pem_certificate(pem),
        None => store,
    }
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
    fn the_five_amazon_trust_services_roots_are_bundled() {
        assert_eq!(check_ca_bundle(AMAZON_TRUST_SERVICES), Ok(5));
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
    }
}
