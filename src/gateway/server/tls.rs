//! TLS on the gateway's own listener (`--tls-cert`, `--tls-key`).

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::gateway::upstream::tls::provider;

/// A server configuration from PEM text (certificate chain, private key).
pub fn server_config_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ServerConfig>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(cert_pem).collect();
    let certs = certs.map_err(|e| format!("the certificate is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("the certificate file holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("the key file holds no usable private key: {e}"))?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key do not make a usable pair: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A server configuration from PEM files (`--tls-cert`, `--tls-key`).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let c = std::fs::read(cert)
        .map_err(|e| format!("cannot read --tls-cert {}: {e}", cert.display()))?;
    let k =
        std::fs::read(key).map_err(|e| format!("cannot read --tls-key {}: {e}", key.display()))?;
    server_config_from_pem(&c, &k).map_err(|e| format!("--tls-cert/--tls-key: {e}"))
}
