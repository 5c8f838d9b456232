//! Verifying a password by logging in to the user's backend over IMAP.
//!
//! The user name and password travel as synchronizing literals
//! (RFC 9051 4.3: `{n}`, wait for `+`, then the octets), never as quoted
//! strings, so no quote, backslash or CRLF in them can end the command
//! early and inject another. STARTTLS and implicit TLS use rustls with the
//! backend's `ca` file, or the webpki roots when it has none. When the
//! backend has `forward_client`, an `ID` command (RFC 2971) first tells it
//! the client's address (`x-originating-ip`, which Dovecot honours from its
//! `login_trusted_networks`), so its logs and failure penalties name the
//! client rather than the gateway.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use mailgw_plan::{Backend, Endpoint, EndpointTls};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::tls::client;

/// The whole login, connection to `LOGOUT`, must finish within this.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// Longest response line read from the backend.
const MAX_LINE: usize = 8192;

/// What the backend said about the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Login {
    /// Tagged `OK`.
    Ok,
    /// Tagged `NO`.
    No,
}

/// Why the backend gave no answer.
#[derive(Debug)]
pub(crate) enum LoginError {
    /// Connecting, reading or writing failed.
    Io(io::Error),
    /// TLS could not be set up (bad `ca` file, bad name, handshake).
    Tls(String),
    /// The backend said something this client does not expect.
    Protocol(String),
    /// [`TIMEOUT`] passed.
    Timeout,
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginError::Io(e) => write!(f, "I/O error: {e}"),
            LoginError::Tls(e) => write!(f, "TLS: {e}"),
            LoginError::Protocol(e) => write!(f, "protocol: {e}"),
            LoginError::Timeout => write!(f, "no answer within {}s", TIMEOUT.as_secs()),
        }
    }
}

impl From<io::Error> for LoginError {
    fn from(e: io::Error) -> LoginError {
        LoginError::Io(e)
    }
}

/// The credentials and who presents them.
pub(crate) struct Attempt<'a> {
    /// The backend's login name for the mailbox.
    pub(crate) user: &'a str,
    /// The password as the client sent it.
    pub(crate) password: &'a str,
    /// The client, told to the backend when it has `forward_client`.
    pub(crate) client: IpAddr,
}

/// Logs in to `backend`'s IMAP `endpoint`.
pub(crate) async fn login(
    backend: &Backend,
    endpoint: Endpoint,
    attempt: &Attempt<'_>,
) -> Result<Login, LoginError> {
    match tokio::time::timeout(TIMEOUT, login_inner(backend, endpoint, attempt)).await {
        Ok(result) => result,
        Err(_) => Err(LoginError::Timeout),
    }
}

async fn login_inner(
    backend: &Backend,
    endpoint: Endpoint,
    attempt: &Attempt<'_>,
) -> Result<Login, LoginError> {
    let forward = backend.forward_client.then_some(attempt.client);
    let (user, password) = (attempt.user, attempt.password);
    let tcp = TcpStream::connect((backend.host.as_str(), endpoint.port)).await?;
    match endpoint.tls {
        EndpointTls::None => {
            let mut conn = Conn::new(tcp);
            conn.greeting().await?;
            conn.login(forward, user, password).await
        }
        EndpointTls::Implicit => {
            let tls = connector(backend)?;
            let stream = tls
                .connect(server_name(&backend.host)?, tcp)
                .await
                .map_err(|e| LoginError::Tls(e.to_string()))?;
            let mut conn = Conn::new(stream);
            conn.greeting().await?;
            conn.login(forward, user, password).await
        }
        EndpointTls::StartTls => {
            let tls = connector(backend)?;
            let mut plain = Conn::new(tcp);
            plain.greeting().await?;
            plain.send(b"s STARTTLS\r\n").await?;
            match plain.tagged(b"s").await? {
                Login::Ok => {}
                Login::No => return Err(LoginError::Protocol("STARTTLS refused".into())),
            }
            // Anything the backend sent after its OK arrived in cleartext and
            // must not be read as if it came through TLS.
            let tcp = plain.into_inner()?;
            let stream = tls
                .connect(server_name(&backend.host)?, tcp)
                .await
                .map_err(|e| LoginError::Tls(e.to_string()))?;
            let mut conn = Conn::new(stream);
            conn.login(forward, user, password).await
        }
    }
}

fn connector(backend: &Backend) -> Result<TlsConnector, LoginError> {
    client::backend_connector(backend).map_err(LoginError::Tls)
}

fn server_name(host: &str) -> Result<ServerName<'static>, LoginError> {
    client::server_name(host).map_err(LoginError::Tls)
}

/// One IMAP client connection with a bounded line buffer.
struct Conn<S> {
    stream: S,
    /// Bytes read but not yet consumed.
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(stream: S) -> Conn<S> {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// The stream, for a TLS upgrade; an error when bytes are buffered.
    fn into_inner(self) -> Result<S, LoginError> {
        if self.buf.is_empty() {
            Ok(self.stream)
        } else {
            Err(LoginError::Protocol("data after STARTTLS OK".into()))
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), LoginError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// One line without its CRLF.
    async fn line(&mut self) -> Result<Vec<u8>, LoginError> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..end].to_vec();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE {
                return Err(LoginError::Protocol("response line too long".into()));
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(LoginError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads the greeting: `* OK` goes on, anything else (`* BYE`,
    /// `* PREAUTH`) is an error.
    async fn greeting(&mut self) -> Result<(), LoginError> {
        let line = self.line().await?;
        if starts_with_ci(&line, b"* OK") {
            Ok(())
        } else {
            Err(LoginError::Protocol(format!(
                "greeting {:?}",
                String::from_utf8_lossy(&line)
            )))
        }
    }

    /// Skips untagged lines up to the response tagged `tag`: `OK` or `NO`;
    /// `BAD` and anything else are protocol errors.
    async fn tagged(&mut self, tag: &[u8]) -> Result<Login, LoginError> {
        loop {
            let line = self.line().await?;
            let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(b" ")) else {
                if line.starts_with(b"* ") || line.starts_with(b"+") {
                    continue;
                }
                return Err(LoginError::Protocol(format!(
                    "unexpected {:?}",
                    String::from_utf8_lossy(&line)
                )));
            };
            return if starts_with_ci(rest, b"OK") {
                Ok(Login::Ok)
            } else if starts_with_ci(rest, b"NO") {
                Ok(Login::No)
            } else {
                Err(LoginError::Protocol(format!(
                    "{:?}",
                    String::from_utf8_lossy(&line)
                )))
            };
        }
    }

    /// Tells the backend the client's address with `ID` when `forward` is
    /// set, sends `a LOGIN {user} {password}` as two synchronizing literals,
    /// then `LOGOUT` (best effort).
    async fn login(
        &mut self,
        forward: Option<IpAddr>,
        user: &str,
        password: &str,
    ) -> Result<Login, LoginError> {
        if let Some(client) = forward {
            // An address prints as digits, dots and colons: safe quoted.
            self.send(format!("i ID (\"x-originating-ip\" \"{client}\")\r\n").as_bytes())
                .await?;
            // A backend without ID answers BAD; the login goes on anyway.
            match self.tagged(b"i").await {
                Ok(_) | Err(LoginError::Protocol(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.send(format!("a LOGIN {{{}}}\r\n", user.len()).as_bytes())
            .await?;
        if !self.continuation(b"a").await? {
            return Ok(Login::No);
        }
        self.stream.write_all(user.as_bytes()).await?;
        self.send(format!(" {{{}}}\r\n", password.len()).as_bytes())
            .await?;
        if !self.continuation(b"a").await? {
            return Ok(Login::No);
        }
        self.stream.write_all(password.as_bytes()).await?;
        self.send(b"\r\n").await?;
        let answer = self.tagged(b"a").await?;
        // The answer is known; the logout only tidies up.
        if self.send(b"b LOGOUT\r\n").await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.tagged(b"b")).await;
        }
        Ok(answer)
    }

    /// Waits for `+` after a literal's length. `false` when the server
    /// answered the command with a tagged `NO` instead.
    async fn continuation(&mut self, tag: &[u8]) -> Result<bool, LoginError> {
        loop {
            let line = self.line().await?;
            if line.starts_with(b"+") {
                return Ok(true);
            }
            if line.starts_with(b"* ") {
                continue;
            }
            if line.starts_with(tag) {
                let rest = &line[tag.len()..];
                if starts_with_ci(rest, b" NO") {
                    return Ok(false);
                }
            }
            return Err(LoginError::Protocol(format!(
                "instead of a continuation: {:?}",
                String::from_utf8_lossy(&line)
            )));
        }
    }
}

fn starts_with_ci(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}
