//! TLS server configurations from the plan's TLS profiles.
//!
//! Each profile becomes one rustls [`ServerConfig`]: TLS 1.2 and 1.3 only,
//! the `ring` provider, rustls' default cipher suites. Certificates come
//! from PEM files named by the plan or, for `self-signed`, are made here
//! with rcgen when the plan is loaded (at start and on every reload).

pub mod client;

use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

use mailgw_plan::{Plan, TlsProfile, TlsSource};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

/// Why a TLS profile could not be loaded.
#[derive(Debug)]
pub struct TlsError {
    /// The profile's name.
    pub profile: String,
    /// What went wrong.
    pub reason: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS profile \"{}\": {}", self.profile, self.reason)
    }
}

impl std::error::Error for TlsError {}

/// The server configuration of every TLS profile of `plan`, by index into
/// [`Plan::tls`].
pub fn load_profiles(plan: &Plan) -> Result<Vec<Arc<ServerConfig>>, TlsError> {
    plan.tls
        .iter()
        .map(|profile| load_profile(plan, profile))
        .collect()
}

/// One profile's server configuration.
pub fn load_profile(plan: &Plan, profile: &TlsProfile) -> Result<Arc<ServerConfig>, TlsError> {
    let fail = |reason: String| TlsError {
        profile: profile.name.clone(),
        reason,
    };
    let (chain, key) = match &profile.certificate {
        TlsSource::Files { certificate, key } => {
            let chain = read_chain(certificate).map_err(fail)?;
            let key = read_key(key).map_err(fail)?;
            (chain, key)
        }
        TlsSource::SelfSigned { hostnames } => self_signed(plan, hostnames).map_err(fail)?,
    };
    server_config(chain, key).map_err(fail)
}

/// A rustls configuration for this certificate chain and key: TLS 1.2+,
/// no client certificates.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("certificate and key do not fit: {e}"))?;
    Ok(Arc::new(config))
}

/// A self-signed certificate for the gateway host name, `localhost`,
/// `127.0.0.1`, `::1` and the profile's names.
pub fn self_signed(
    plan: &Plan,
    hostnames: &[String],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let mut names: Vec<String> = Vec::new();
    let wanted = std::iter::once(plan.gateway.hostname.as_str())
        .chain(hostnames.iter().map(String::as_str))
        .chain(["localhost", "127.0.0.1", "::1"]);
    for name in wanted {
        if !name.is_empty() && !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            names.push(name.to_owned());
        }
    }
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("cannot make a self-signed certificate: {e}"))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    Ok((vec![certified.cert.der().clone()], key))
}

fn read_chain(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let file = File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    let chain = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    if chain.is_empty() {
        return Err(format!("{path} holds no PEM certificate"));
    }
    Ok(chain)
}

fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let file = File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|e| format!("cannot read {path}: {e}"))?
        .ok_or_else(|| format!("{path} holds no PEM private key"))
}
