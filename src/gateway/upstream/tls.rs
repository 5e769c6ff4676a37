//! TLS to upstreams: system roots plus optional extra CA files, real
//! certificate verification. (The listener's TLS is `server::tls`.)
//!
//! One crypto provider is compiled, aws-lc-rs (reqwest's rustls uses it
//! too; Cargo.toml enables no other). It is named explicitly anyway, so a
//! second provider showing up in the tree cannot make rustls refuse to
//! pick one at run time.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The crypto provider of every TLS config the gateway makes (upstreams
/// and the listener).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// The operating system's trust store, loaded once per process.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut store = RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!("reading the system's CA certificates: {e}");
        }
        let (added, ignored) = store.add_parsable_certificates(found.certs);
        tracing::debug!("system roots: {added} added, {ignored} ignored");
        store
    })
}

/// Read every certificate of a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?
        .collect();
    let certs = certs.map_err(|e| format!("CA file {} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("CA file {} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// A client configuration trusting the system roots plus every
/// certificate in `extra_ca_files`.
pub fn client_config(extra_ca_files: &[&Path]) -> Result<Arc<ClientConfig>, String> {
    let mut roots = system_roots().clone();
    for path in extra_ca_files {
        for cert in read_certs(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("CA file {}: unusable certificate: {e}", path.display()))?;
        }
    }
    // No ALPN here: the connector sets it (HTTP/1.1).
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}
