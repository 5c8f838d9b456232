//! Where a message goes: a smarthost, the MX hosts of a domain, or a
//! backend's LMTP port, and how to secure and authenticate the connection.

use std::fmt;
use std::path::PathBuf;

use mailgw_plan::{Backend, Connector, Deliver, Endpoint, TlsPolicy};

use crate::smtp::Password;

/// The next hop of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    /// Outbound SMTP through a connector.
    Smtp(SmtpHop),
    /// LMTP (RFC 2033) to a mailbox backend.
    Lmtp(LmtpHop),
}

/// Outbound SMTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpHop {
    /// The hosts to try.
    pub target: Target,
    /// STARTTLS policy.
    pub tls: TlsPolicy,
    /// The login at the smarthost; only ever sent over TLS.
    pub credentials: Option<SmtpCredentials>,
    /// The CA certificates (PEM) a `require`d certificate must chain to;
    /// `None` means the webpki roots.
    pub ca: Option<PathBuf>,
}

/// The hosts an SMTP hop tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One host by name or address.
    Host {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// The MX hosts of `domain` by preference, or its address records when
    /// it has no MX.
    Mx {
        /// The recipient domain.
        domain: String,
        /// TCP port on every MX host.
        port: u16,
    },
}

/// LMTP to a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmtpHop {
    /// Host name or IP address.
    pub host: String,
    /// Port and TLS mode (`starttls` and `implicit` verify the certificate).
    pub endpoint: Endpoint,
    /// The CA certificates (PEM) the backend's certificate must chain to;
    /// `None` means the webpki roots.
    pub ca: Option<PathBuf>,
}

/// A user name and password for `AUTH` at a smarthost.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpCredentials {
    /// The user name.
    pub user: String,
    /// The password; its `Debug` output is redacted.
    pub password: Password,
}

impl fmt::Debug for SmtpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpCredentials")
            .field("user", &self.user)
            .field("password", &self.password)
            .finish()
    }
}

impl SmtpCredentials {
    /// Reads a connector's credentials file: TOML with `user` and
    /// `password` strings. The error names the file, never its content.
    pub fn load(path: &str) -> Result<SmtpCredentials, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let table: toml::Table = text
            .parse()
            .map_err(|_| format!("{path} is not valid TOML"))?;
        let field = |name: &str| {
            table
                .get(name)
                .and_then(toml::Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("{path} has no string `{name}`"))
        };
        Ok(SmtpCredentials {
            user: field("user")?,
            password: Password::new(field("password")?),
        })
    }
}

impl NextHop {
    /// The hop of `connector` for mail to `domain` (used by `deliver mx`),
    /// with its credentials file read.
    pub fn connector(connector: &Connector, domain: &str) -> Result<NextHop, String> {
        let target = match &connector.deliver {
            Deliver::Smarthost { host, port } => Target::Host {
                host: host.clone(),
                port: *port,
            },
            Deliver::Mx { port } => Target::Mx {
                domain: domain.to_owned(),
                port: *port,
            },
        };
        let credentials = connector
            .credentials
            .as_deref()
            .map(SmtpCredentials::load)
            .transpose()?;
        Ok(NextHop::Smtp(SmtpHop {
            target,
            tls: connector.tls,
            credentials,
            ca: connector.ca.as_ref().map(PathBuf::from),
        }))
    }

    /// The LMTP hop of `backend`; `None` when it has no LMTP endpoint.
    pub fn backend(backend: &Backend) -> Option<NextHop> {
        let endpoint = backend.lmtp?;
        Some(NextHop::Lmtp(LmtpHop {
            host: backend.host.clone(),
            endpoint,
            ca: backend.ca.as_ref().map(PathBuf::from),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use mailgw_plan::{EndpointTls, SourceRef};

    use super::*;

    fn connector(deliver: Deliver, credentials: Option<String>) -> Connector {
        Connector {
            name: "out".into(),
            address_spaces: Vec::new(),
            deliver,
            tls: TlsPolicy::Require,
            credentials,
            ca: Some("/etc/mailgw/isp-ca.pem".into()),
            accept_from: Vec::new(),
            reject_from: Vec::new(),
            source: SourceRef::new(0, 1),
        }
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temporary file");
        file.write_all(text.as_bytes()).expect("write");
        file
    }

    #[test]
    fn connector_hops_read_the_credentials_file() {
        let secrets = file("user = \"gw\"\npassword = \"p4ss\"\n");
        let path = secrets.path().to_string_lossy().into_owned();
        let smarthost = Deliver::Smarthost {
            host: "relay.example".into(),
            port: 587,
        };
        let hop = NextHop::connector(&connector(smarthost, Some(path)), "x.test").expect("hop");
        let NextHop::Smtp(smtp) = &hop else {
            panic!("{hop:?}");
        };
        assert_eq!(
            smtp.target,
            Target::Host {
                host: "relay.example".into(),
                port: 587
            }
        );
        assert_eq!(smtp.tls, TlsPolicy::Require);
        assert_eq!(
            smtp.ca.as_deref(),
            Some(std::path::Path::new("/etc/mailgw/isp-ca.pem"))
        );
        let credentials = smtp.credentials.as_ref().expect("credentials");
        assert_eq!(
            (credentials.user.as_str(), credentials.password.expose()),
            ("gw", "p4ss")
        );
        assert!(!format!("{hop:?}").contains("p4ss"));

        let hop = NextHop::connector(&connector(Deliver::Mx { port: 26 }, None), "x.test");
        let Ok(NextHop::Smtp(smtp)) = hop else {
            panic!("{hop:?}");
        };
        assert_eq!(
            smtp.target,
            Target::Mx {
                domain: "x.test".into(),
                port: 26
            }
        );
    }

    #[test]
    fn a_bad_credentials_file_is_an_error_that_hides_its_content() {
        for text in [
            "user = \"gw\"\n",
            "user = \"gw\"\npassword = \"p4ss\" oops\n",
        ] {
            let secrets = file(text);
            let path = secrets.path().to_string_lossy().into_owned();
            let error = SmtpCredentials::load(&path).expect_err("invalid");
            assert!(error.contains(&path) && !error.contains("p4ss"), "{error}");
        }
    }

    #[test]
    fn backend_hops_use_the_lmtp_endpoint() {
        let mut backend = Backend {
            name: "mbx".into(),
            host: "10.0.0.5".into(),
            imap: None,
            pop3: None,
            lmtp: None,
            smtp: None,
            forward_client: false,
            ca: Some("/etc/ca.pem".into()),
            source: SourceRef::new(0, 1),
        };
        assert_eq!(NextHop::backend(&backend), None);
        let endpoint = Endpoint {
            port: 24,
            tls: EndpointTls::StartTls,
        };
        backend.lmtp = Some(endpoint);
        assert_eq!(
            NextHop::backend(&backend),
            Some(NextHop::Lmtp(LmtpHop {
                host: "10.0.0.5".into(),
                endpoint,
                ca: Some(PathBuf::from("/etc/ca.pem")),
            }))
        );
    }
}
