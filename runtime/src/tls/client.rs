//! TLS towards backends: a rustls client configuration trusting the
//! backend's `ca` file, or the webpki roots when it has none.

use std::sync::Arc;

use mailgw_plan::Backend;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

/// A connector for `backend`; the error says what is wrong with its CA
/// file.
pub fn backend_connector(backend: &Backend) -> Result<TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &backend.ca {
        Some(path) => {
            let pem =
                std::fs::read(path).map_err(|e| format!("cannot read CA file {path}: {e}"))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| format!("bad CA file {path}: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("bad CA file {path}: {e}"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The name the backend's certificate must carry: its `host` as written.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_owned()).map_err(|e| format!("bad server name {host:?}: {e}"))
}
