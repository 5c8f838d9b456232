//! The POP3 and IMAP front end: the gateway's own pre-login phase, then the
//! session proxied to the backend that holds the user's mailbox.
//!
//! - [`imap_syntax`] frames and splits IMAP commands (literals, quoting);
//! - [`imap_session`] and [`pop3_session`] are I/O-free pre-login
//!   sessions: bytes in, [`Step`]s out, like the SMTP [`crate::smtp`]
//!   session;
//! - [`backend`] connects to a backend (TLS modes), forwards the client's
//!   address and logs in there, following login referrals;
//! - [`login`] decides who the user is and which backend holds the mailbox;
//! - [`splice`] copies bytes both ways once logged in;
//! - [`waiting_room`] holds connections until the client's first bytes;
//! - [`driver`] runs it all over a socket.
//!
//! Invariant: nothing the client sends before a successful login reaches a
//! backend, except the login itself, re-encoded by the gateway.

pub mod backend;
pub mod driver;
pub mod imap_session;
pub mod imap_syntax;
pub mod login;
pub mod pop3_session;
pub mod splice;
pub mod waiting_room;

use std::time::Duration;

use mailgw_plan::TlsMode;

use crate::smtp::Password;

/// What a pre-login session wants next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes.
    Reply(Vec<u8>),
    /// Read more input.
    NeedInput,
    /// Wait this long before going on (after a failed login).
    Delay(Duration),
    /// Do the TLS handshake now (the go-ahead was the last reply); input
    /// buffered so far has been dropped.
    StartTls,
    /// Check these credentials and log in at the backend; answer with
    /// [`PreLogin::login_failed`] or, on success, take over the connection.
    Login(LoginRequest),
    /// Close the connection (after the replies before this).
    Close,
}

/// A login a client asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct LoginRequest {
    /// The login name as the client sent it: a mailbox name or an address.
    pub user: String,
    /// The password.
    pub password: Password,
    /// The command's tag (IMAP), to answer the client with.
    pub tag: Option<String>,
    /// How the client logged in (`LOGIN`, `AUTHENTICATE PLAIN`, `USER`…),
    /// for the log.
    pub method: &'static str,
}

/// Why a login did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Unknown user or wrong password: the two are never told apart.
    Rejected,
    /// The backend could not be reached or answered nonsense.
    Unavailable,
}

/// The protocol-specific side of a pre-login session, driven by
/// [`driver`].
pub trait PreLogin {
    /// The first words on a connection of a listener with `tls_mode`;
    /// `tls_active` when it is TLS from the start. The driver sends them
    /// before the session sees any input, possibly before the session
    /// exists.
    fn greeting(hostname: &str, tls_mode: TlsMode, tls_active: bool) -> Vec<u8>
    where
        Self: Sized;
    /// Adds bytes received from the client.
    fn feed(&mut self, bytes: &[u8]);
    /// The client closed its side.
    fn eof(&mut self);
    /// The next thing to do.
    fn step(&mut self) -> Step;
    /// The TLS handshake after [`Step::StartTls`] succeeded.
    fn tls_established(&mut self);
    /// The login of the last [`Step::Login`] failed.
    fn login_failed(&mut self, failure: LoginFailure);
    /// Bytes the client sent after the login command (pipelined commands),
    /// forwarded to the backend once logged in.
    fn take_pending(&mut self) -> Vec<u8>;
    /// The last words when the pre-login timeout passes.
    fn timeout_reply(&self) -> &'static [u8];
    /// The last words at a graceful shutdown.
    fn shutdown_reply(&self) -> &'static [u8];
}

/// Pre-login limits shared by both protocols.
#[derive(Debug, Clone, Copy)]
pub struct PreLoginLimits {
    /// Failed logins before the session is closed.
    pub max_failures: u32,
    /// The delay after the first failed login; it doubles with each
    /// further failure (at most 64 times).
    pub failure_delay: Duration,
    /// Failures this client had recently, elsewhere: the delay starts
    /// there.
    pub previous_failures: u32,
}

impl PreLoginLimits {
    /// The delay after the `n`th failure (1-based).
    pub fn delay_after(&self, n: u32) -> Duration {
        let n = n.saturating_add(self.previous_failures);
        self.failure_delay
            .saturating_mul(1u32 << n.saturating_sub(1).min(6))
    }
}

/// Most invalid commands before a session is closed.
pub const MAX_BAD_COMMANDS: u32 = 10;
