//! TLS client configurations towards next hops.
//!
//! Where TLS is required (`tls require`, a backend's `starttls` or
//! `implicit`), the certificate must chain to the given CA file or, without
//! one, to the webpki roots, and name the host. Opportunistic TLS (RFC
//! 7435) encrypts against passive listeners and checks nothing about the
//! certificate, as MTAs do: a check that fails would only push the mail
//! back to clear text. When an opportunistic handshake fails all the same,
//! the host is tried once more in clear text (`Client::deliver`).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::connection::ConnError;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A configuration that verifies the peer against the PEM certificates in
/// `ca`, or the webpki roots when `ca` is `None`.
pub(crate) fn verifying(ca: Option<&Path>) -> Result<Arc<ClientConfig>, ConnError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let shown = path.display();
            let pem = std::fs::read(path)
                .map_err(|e| ConnError::Tls(format!("cannot read CA file {shown}: {e}")))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| ConnError::Tls(format!("bad CA file {shown}: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| ConnError::Tls(format!("bad CA file {shown}: {e}")))?;
            }
            if roots.is_empty() {
                return Err(ConnError::Tls(format!(
                    "CA file {shown} holds no certificate"
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A configuration for opportunistic TLS: any certificate is taken, the
/// handshake signatures are still checked.
pub(crate) fn opportunistic() -> Result<Arc<ClientConfig>, ConnError> {
    let provider = provider();
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Runs the client handshake over `stream` for `host`.
pub(crate) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<ClientConfig>,
    host: &str,
    stream: S,
) -> Result<TlsStream<S>, ConnError> {
    let name = ServerName::try_from(host.trim_end_matches('.').to_owned())
        .map_err(|e| ConnError::Tls(format!("bad server name {host:?}: {e}")))?;
    TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| ConnError::Tls(e.to_string()))
}

/// Takes every certificate; checks the handshake signatures made with it.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
