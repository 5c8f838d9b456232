//! The gateway as a client of a backend: connect with the endpoint's TLS
//! mode, tell the backend who the real client is, log in.
//!
//! - TLS: `implicit` from the first byte; `starttls` required — a refusal
//!   fails the login, never falls back, and anything the backend sent
//!   after its go-ahead is discarded, not read as if it came through TLS.
//!   Certificates are checked against the backend's `ca` file or the
//!   webpki roots.
//! - The client's address: IMAP `ID ("x-originating-ip" … "x-originating-port" …)`
//!   (RFC 2971), POP3 `XCLIENT ADDR=… PORT=…`, both as Dovecot accepts
//!   them from its `login_trusted_networks`; only for backends with
//!   `forward-client`.
//! - Credentials: IMAP `LOGIN` with both strings as literals, so no quote,
//!   backslash, CR/LF or non-ASCII octet can end the command early —
//!   non-synchronizing (RFC 7888) where the backend's greeting announced
//!   `LITERAL+` (or `LITERAL-`, for strings up to 4,096 octets), so the
//!   `ID` and the `LOGIN` go in one write and cost one round trip, else
//!   synchronizing; POP3 `AUTH PLAIN` with the initial response in base64.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use mailgw_plan::{Backend, Endpoint, EndpointTls};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::smtp::auth::encode_base64;
use crate::tls::client::{backend_connector, server_name};

/// The whole backend login, connection included, must finish within this.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest response line read before login.
const MAX_LINE: usize = 16 * 1024;

/// A connection to a backend, cleartext or TLS.
pub enum BackendStream {
    /// Cleartext TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for BackendStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BackendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_flush(cx),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why the backend gave no usable answer; logged with `side = "backend"`.
#[derive(Debug)]
pub enum BackendError {
    /// Connecting, reading or writing failed.
    Io(io::Error),
    /// TLS could not be set up (CA file, name, handshake, STARTTLS refused).
    Tls(String),
    /// The backend said something this client does not expect.
    Protocol(String),
    /// [`LOGIN_TIMEOUT`] passed.
    Timeout,
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendError::Io(e) => write!(f, "I/O error: {e}"),
            BackendError::Tls(e) => write!(f, "TLS: {e}"),
            BackendError::Protocol(e) => write!(f, "protocol: {e}"),
            BackendError::Timeout => write!(f, "no answer within {}s", LOGIN_TIMEOUT.as_secs()),
        }
    }
}

impl From<io::Error> for BackendError {
    fn from(e: io::Error) -> BackendError {
        BackendError::Io(e)
    }
}

/// A connection being logged in, with a bounded line buffer.
pub struct BackendConn {
    stream: BackendStream,
    buf: Vec<u8>,
    /// Which literals the backend takes without a continuation request.
    literals: Literals,
}

/// The non-synchronizing literals a backend accepts (RFC 7888), as its
/// IMAP greeting announced them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Literals {
    /// None: every literal waits for the backend's `+`.
    Synchronizing,
    /// `LITERAL-`: those of at most 4,096 octets.
    Minus,
    /// `LITERAL+`: all.
    Plus,
}

impl Literals {
    /// What the `CAPABILITY` response code of an IMAP greeting announces.
    fn announced(greeting: &[u8]) -> Literals {
        let text = String::from_utf8_lossy(greeting).to_ascii_uppercase();
        let Some(start) = text.find("[CAPABILITY ") else {
            return Literals::Synchronizing;
        };
        let caps = text[start + "[CAPABILITY ".len()..]
            .split(']')
            .next()
            .unwrap_or_default();
        let has = |cap: &str| caps.split_ascii_whitespace().any(|c| c == cap);
        if has("LITERAL+") {
            Literals::Plus
        } else if has("LITERAL-") {
            Literals::Minus
        } else {
            Literals::Synchronizing
        }
    }

    /// Whether a literal of `len` octets may be sent without waiting.
    fn non_synchronizing(self, len: usize) -> bool {
        match self {
            Literals::Synchronizing => false,
            Literals::Minus => len <= 4096,
            Literals::Plus => true,
        }
    }
}

/// What the backend said to the login.
pub enum Answer {
    /// Logged in. `reply` is what the client gets: for IMAP the untagged
    /// lines and the tagged `OK` text (after the tag), for POP3 the `+OK`
    /// line.
    Ok {
        /// The connection, ready to splice.
        conn: BackendConn,
        /// Untagged lines (IMAP), each with its CRLF.
        untagged: Vec<u8>,
        /// The final line without the tag and CRLF.
        text: String,
    },
    /// Credentials refused.
    No {
        /// A login referral (RFC 2221) the backend gave, if any.
        referral: Option<String>,
    },
}

/// The login to perform.
pub struct Credentials<'a> {
    /// The backend's login name for the mailbox.
    pub user: &'a str,
    /// The client's password.
    pub password: &'a str,
    /// The client, told to the backend when it has `forward_client`.
    pub client: SocketAddr,
}

impl BackendConn {
    /// Connects to `endpoint` of `backend`; for STARTTLS, `starttls` is the
    /// protocol's command and the greeting has been read before it.
    async fn connect(
        backend: &Backend,
        endpoint: Endpoint,
        imap: bool,
    ) -> Result<BackendConn, BackendError> {
        let tcp = TcpStream::connect((backend.host.as_str(), endpoint.port)).await?;
        let _ = tcp.set_nodelay(true);
        let tls = |stream: TcpStream| async move {
            let connector = backend_connector(backend).map_err(BackendError::Tls)?;
            let name = server_name(&backend.host).map_err(BackendError::Tls)?;
            connector
                .connect(name, stream)
                .await
                .map(|s| BackendStream::Tls(Box::new(s)))
                .map_err(|e| BackendError::Tls(e.to_string()))
        };
        match endpoint.tls {
            EndpointTls::None => {
                let mut conn = BackendConn::new(BackendStream::Plain(tcp));
                conn.greeting(imap).await?;
                Ok(conn)
            }
            EndpointTls::Implicit => {
                let mut conn = BackendConn::new(tls(tcp).await?);
                conn.greeting(imap).await?;
                Ok(conn)
            }
            EndpointTls::StartTls => {
                let mut plain = BackendConn::new(BackendStream::Plain(tcp));
                plain.greeting(imap).await?;
                let accepted = if imap {
                    plain.send(b"s STARTTLS\r\n").await?;
                    let line = plain.tagged(b"s").await?.1;
                    starts_with_ci(&line, b"OK")
                } else {
                    plain.send(b"STLS\r\n").await?;
                    plain.line().await?.starts_with(b"+OK")
                };
                if !accepted {
                    return Err(BackendError::Tls("STARTTLS refused".into()));
                }
                // Whatever came after the go-ahead was sent in cleartext,
                // and the capabilities it announced may change with TLS
                // (RFC 9051 6.2.1): the new connection assumes none.
                let BackendStream::Plain(tcp) = plain.stream else {
                    return Err(BackendError::Tls("STARTTLS over TLS".into()));
                };
                Ok(BackendConn::new(tls(tcp).await?))
            }
        }
    }

    fn new(stream: BackendStream) -> BackendConn {
        BackendConn {
            stream,
            buf: Vec::new(),
            literals: Literals::Synchronizing,
        }
    }

    /// The stream and the bytes read from it but not consumed.
    pub fn into_parts(self) -> (BackendStream, Vec<u8>) {
        (self.stream, self.buf)
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// One line without its CRLF.
    async fn line(&mut self) -> Result<Vec<u8>, BackendError> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE {
                return Err(BackendError::Protocol("response line too long".into()));
            }
            self.buf.reserve(4096);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(BackendError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// Reads the greeting; an IMAP one also tells which literals the
    /// backend accepts.
    async fn greeting(&mut self, imap: bool) -> Result<(), BackendError> {
        let line = self.line().await?;
        let ok = if imap {
            starts_with_ci(&line, b"* OK")
        } else {
            line.starts_with(b"+OK")
        };
        if ok {
            if imap {
                self.literals = Literals::announced(&line);
            }
            Ok(())
        } else {
            Err(BackendError::Protocol(format!(
                "greeting {:?}",
                String::from_utf8_lossy(&line)
            )))
        }
    }

    /// Untagged lines (collected) up to the response tagged `tag`; returns
    /// them and the tagged line's text after the tag.
    async fn tagged(&mut self, tag: &[u8]) -> Result<(Vec<u8>, Vec<u8>), BackendError> {
        let mut untagged = Vec::new();
        loop {
            let line = self.line().await?;
            if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(b" ")) {
                return Ok((untagged, rest.to_vec()));
            }
            if line.starts_with(b"* ") {
                untagged.extend_from_slice(&line);
                untagged.extend_from_slice(b"\r\n");
                continue;
            }
            return Err(BackendError::Protocol(format!(
                "unexpected {:?}",
                String::from_utf8_lossy(&line)
            )));
        }
    }

    /// Waits for `+` after a literal's length; `None` when the command was
    /// answered instead (the answer's text).
    async fn continuation(&mut self, tag: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        loop {
            let line = self.line().await?;
            if line.starts_with(b"+") {
                return Ok(None);
            }
            if line.starts_with(b"* ") {
                continue;
            }
            if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(b" ")) {
                return Ok(Some(rest.to_vec()));
            }
            return Err(BackendError::Protocol(format!(
                "instead of a continuation: {:?}",
                String::from_utf8_lossy(&line)
            )));
        }
    }
}

/// Logs in to `backend`'s IMAP `endpoint`.
pub async fn imap_login(
    backend: &Backend,
    endpoint: Endpoint,
    creds: &Credentials<'_>,
) -> Result<Answer, BackendError> {
    tokio::time::timeout(LOGIN_TIMEOUT, imap_login_inner(backend, endpoint, creds))
        .await
        .unwrap_or(Err(BackendError::Timeout))
}

async fn imap_login_inner(
    backend: &Backend,
    endpoint: Endpoint,
    creds: &Credentials<'_>,
) -> Result<Answer, BackendError> {
    let mut conn = BackendConn::connect(backend, endpoint, true).await?;
    // What is not yet sent; the ID and the LOGIN are pipelined.
    let mut out = Vec::with_capacity(128 + creds.user.len() + creds.password.len());
    // Whether the ID's answer is still to be read.
    let mut id_answer = backend.forward_client;
    if backend.forward_client {
        // Digits, dots and colons: safe in quoted strings.
        out.extend_from_slice(
            format!(
                "i ID (\"x-originating-ip\" \"{}\" \"x-originating-port\" \"{}\")\r\n",
                creds.client.ip(),
                creds.client.port()
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(b"a LOGIN ");
    for (i, string) in [creds.user, creds.password].into_iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        let len = string.len();
        if conn.literals.non_synchronizing(len) {
            out.extend_from_slice(format!("{{{len}+}}\r\n").as_bytes());
        } else {
            out.extend_from_slice(format!("{{{len}}}\r\n").as_bytes());
            conn.send(&out).await?;
            out.clear();
            if std::mem::take(&mut id_answer) {
                // A backend without ID answers BAD; the login goes on.
                conn.tagged(b"i").await?;
            }
            if let Some(answer) = conn.continuation(b"a").await? {
                return Ok(refused(&answer));
            }
        }
        out.extend_from_slice(string.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    conn.send(&out).await?;
    if id_answer {
        conn.tagged(b"i").await?;
    }
    let (untagged, answer) = conn.tagged(b"a").await?;
    if starts_with_ci(&answer, b"OK") {
        let text = String::from_utf8_lossy(&answer).into_owned();
        Ok(Answer::Ok {
            conn,
            untagged,
            text,
        })
    } else if starts_with_ci(&answer, b"NO") {
        Ok(refused(&answer))
    } else {
        Err(BackendError::Protocol(format!(
            "answer to LOGIN: {:?}",
            String::from_utf8_lossy(&answer)
        )))
    }
}

/// A refusal, with the referral URL when the text carries one.
fn refused(answer: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(answer);
    let referral = text
        .find("[REFERRAL ")
        .map(|i| &text[i + "[REFERRAL ".len()..])
        .and_then(|rest| rest.split(']').next())
        .map(str::to_owned);
    Answer::No { referral }
}

/// Logs in to `backend`'s POP3 `endpoint`.
pub async fn pop3_login(
    backend: &Backend,
    endpoint: Endpoint,
    creds: &Credentials<'_>,
) -> Result<Answer, BackendError> {
    tokio::time::timeout(LOGIN_TIMEOUT, pop3_login_inner(backend, endpoint, creds))
        .await
        .unwrap_or(Err(BackendError::Timeout))
}

async fn pop3_login_inner(
    backend: &Backend,
    endpoint: Endpoint,
    creds: &Credentials<'_>,
) -> Result<Answer, BackendError> {
    let mut conn = BackendConn::connect(backend, endpoint, false).await?;
    if backend.forward_client {
        let xclient = format!(
            "XCLIENT ADDR={} PORT={}\r\n",
            creds.client.ip(),
            creds.client.port()
        );
        conn.send(xclient.as_bytes()).await?;
        // A backend that does not trust us answers -ERR; go on.
        conn.line().await?;
    }
    let mut plain = Vec::with_capacity(creds.user.len() + creds.password.len() + 2);
    plain.push(0);
    plain.extend_from_slice(creds.user.as_bytes());
    plain.push(0);
    plain.extend_from_slice(creds.password.as_bytes());
    conn.send(format!("AUTH PLAIN {}\r\n", encode_base64(&plain)).as_bytes())
        .await?;
    let answer = conn.line().await?;
    if answer.starts_with(b"+OK") {
        let text = String::from_utf8_lossy(&answer).into_owned();
        Ok(Answer::Ok {
            conn,
            untagged: Vec::new(),
            text,
        })
    } else if answer.starts_with(b"-ERR") {
        Ok(Answer::No { referral: None })
    } else {
        Err(BackendError::Protocol(format!(
            "answer to AUTH: {:?}",
            String::from_utf8_lossy(&answer)
        )))
    }
}

/// The host and port of an `imap://` login referral (RFC 2221, RFC 5092):
/// `imap://[user[;AUTH=…]@]host[:port]/…`, and the user it names, if any.
pub fn parse_referral(url: &str) -> Option<(String, u16, Option<String>)> {
    let rest = url
        .strip_prefix("imap://")
        .or_else(|| url.strip_prefix("IMAP://"))?;
    let authority = rest.split('/').next()?;
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let user = userinfo.split(';').next().unwrap_or_default();
            (Some(percent_decode(user)?), hostport)
        }
        None => (None, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 143,
            None => return None,
        };
        (host.to_owned(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().ok()?),
            None => (hostport.to_owned(), 143),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some((host, port, user.filter(|u| !u.is_empty())))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn starts_with_ci(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrals() {
        assert_eq!(
            parse_referral("imap://mbx2.example:1143/"),
            Some(("mbx2.example".into(), 1143, None))
        );
        assert_eq!(
            parse_referral("imap://j%20doe;AUTH=*@127.0.0.1/"),
            Some(("127.0.0.1".into(), 143, Some("j doe".into())))
        );
        assert_eq!(
            parse_referral("imap://[::1]:2143/INBOX"),
            Some(("::1".into(), 2143, None))
        );
        for bad in ["pop://h/", "imap://:143/", "imap://h:x/", "imap://u%zz@h/"] {
            assert_eq!(parse_referral(bad), None, "{bad}");
        }
    }

    #[test]
    fn literals_announced_in_the_greeting() {
        let dovecot = b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN] Dovecot ready.";
        assert_eq!(Literals::announced(dovecot), Literals::Plus);
        assert_eq!(
            Literals::announced(b"* ok [capability imap4rev2 literal-] hi"),
            Literals::Minus
        );
        for none in [
            &b"* OK ready"[..],
            b"* OK [CAPABILITY IMAP4rev1 LITERAL+X] x",
            b"* OK [ALERT] LITERAL+ [CAPABILITY IMAP4rev1] x",
        ] {
            assert_eq!(Literals::announced(none), Literals::Synchronizing);
        }
        assert!(Literals::Plus.non_synchronizing(1 << 20));
        assert!(Literals::Minus.non_synchronizing(4096));
        assert!(!Literals::Minus.non_synchronizing(4097));
        assert!(!Literals::Synchronizing.non_synchronizing(1));
    }

    #[test]
    fn refusal_carries_the_referral() {
        let Answer::No { referral } = refused(b"NO [REFERRAL imap://h:2/] Try there") else {
            panic!("not a refusal");
        };
        assert_eq!(referral.as_deref(), Some("imap://h:2/"));
        let Answer::No { referral } = refused(b"NO [AUTHENTICATIONFAILED] Nope") else {
            panic!("not a refusal");
        };
        assert_eq!(referral, None);
    }
}
