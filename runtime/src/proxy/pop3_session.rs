//! The POP3 pre-login session (RFC 1939 AUTHORIZATION state, RFC 2449
//! `CAPA`, RFC 2595 `STLS`, RFC 5034 `AUTH`): `USER`/`PASS`,
//! `AUTH PLAIN` and `AUTH LOGIN` (with or without an initial response),
//! `CAPA`, `STLS`, `QUIT`.
//!
//! Where the listener requires TLS, `USER` and `SASL` are not advertised
//! and logins are refused until `STLS`.

use std::collections::VecDeque;

use mailgw_plan::TlsMode;

use super::{LoginFailure, LoginRequest, PreLogin, PreLoginLimits, Step, MAX_BAD_COMMANDS};
use crate::smtp::auth::{decode_field, decode_plain, SaslError};
use crate::smtp::Password;

/// Longest line before login (RFC 2449 allows 255 octets for a command;
/// an `AUTH PLAIN` initial response needs more).
pub const MAX_LINE: usize = 2048;

/// An `AUTH` waiting for the client's next response line.
#[derive(Debug)]
enum Sasl {
    Plain,
    LoginUser,
    LoginPassword { user: String },
}

/// The session before login.
#[derive(Debug)]
pub struct Pop3Session {
    tls_mode: TlsMode,
    tls_active: bool,
    limits: PreLoginLimits,
    buf: Vec<u8>,
    queue: VecDeque<Step>,
    user: Option<String>,
    sasl: Option<Sasl>,
    failures: u32,
    bad_commands: u32,
    closing: bool,
}

impl Pop3Session {
    /// A session for a listener with `tls_mode`; `tls_active` when the
    /// connection is already TLS. The greeting ([`PreLogin::greeting`]) is
    /// the driver's to send.
    pub fn new(tls_mode: TlsMode, tls_active: bool, limits: PreLoginLimits) -> Pop3Session {
        Pop3Session {
            tls_mode,
            tls_active,
            limits,
            buf: Vec::new(),
            queue: VecDeque::new(),
            user: None,
            sasl: None,
            failures: 0,
            bad_commands: 0,
            closing: false,
        }
    }

    fn login_allowed(&self) -> bool {
        self.tls_active || self.tls_mode != TlsMode::StartTlsRequire
    }

    fn stls_offered(&self) -> bool {
        !self.tls_active
            && matches!(
                self.tls_mode,
                TlsMode::StartTlsOffer | TlsMode::StartTlsRequire
            )
    }

    fn say(&mut self, text: String) {
        self.queue.push_back(Step::Reply(text.into_bytes()));
    }

    fn ok(&mut self, text: &str) {
        self.say(format!("+OK {text}\r\n"));
    }

    fn err(&mut self, text: &str) {
        self.bad_commands += 1;
        self.say(format!("-ERR {text}\r\n"));
        if self.bad_commands >= MAX_BAD_COMMANDS {
            self.say("-ERR Too many invalid commands.\r\n".to_owned());
            self.close();
        }
    }

    fn close(&mut self) {
        self.closing = true;
        self.queue.push_back(Step::Close);
    }

    fn handle(&mut self, line: &[u8]) {
        if let Some(sasl) = self.sasl.take() {
            self.sasl_response(sasl, line);
            return;
        }
        let Ok(line) = std::str::from_utf8(line) else {
            self.err("Invalid characters in command.");
            return;
        };
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v, Some(a)),
            None => (line, None),
        };
        match (verb.to_ascii_uppercase().as_str(), arg) {
            ("CAPA", None) => self.capa(),
            ("QUIT", None) => {
                self.ok("Logging out.");
                self.close();
            }
            ("STLS", None) => {
                if !self.stls_offered() {
                    self.err("STLS is not available.");
                } else {
                    self.ok("Begin TLS negotiation now.");
                    self.buf.clear();
                    self.queue.push_back(Step::StartTls);
                }
            }
            ("USER", Some(user)) if !user.is_empty() => {
                if self.privacy_required() {
                    return;
                }
                self.user = Some(user.to_owned());
                self.ok("Send your password.");
            }
            ("PASS", Some(password)) => {
                if self.privacy_required() {
                    return;
                }
                match self.user.take() {
                    Some(user) => self.request(user, password.to_owned(), "USER/PASS"),
                    None => self.err("No user name given."),
                }
            }
            ("AUTH", None) => self.say("+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n".to_owned()),
            ("AUTH", Some(arg)) => self.auth(arg),
            _ => self.err("Unknown command or not valid before login."),
        }
    }

    fn capa(&mut self) {
        let mut lines = vec!["+OK Capability list follows"];
        if self.login_allowed() {
            lines.extend(["USER", "SASL PLAIN LOGIN"]);
        }
        if self.stls_offered() {
            lines.push("STLS");
        }
        lines.extend(["RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "."]);
        let mut text = lines.join("\r\n");
        text.push_str("\r\n");
        self.say(text);
    }

    fn privacy_required(&mut self) -> bool {
        if self.login_allowed() {
            return false;
        }
        self.say("-ERR [AUTH] Log in only after STLS.\r\n".to_owned());
        true
    }

    fn auth(&mut self, arg: &str) {
        let (mechanism, initial) = match arg.split_once(' ') {
            Some((m, ir)) => (m, Some(ir)),
            None => (arg, None),
        };
        if self.privacy_required() {
            return;
        }
        match (mechanism.to_ascii_uppercase().as_str(), initial) {
            ("PLAIN", None) => {
                self.say("+ \r\n".to_owned());
                self.sasl = Some(Sasl::Plain);
            }
            ("PLAIN", Some(ir)) => self.sasl_response(Sasl::Plain, ir.as_bytes()),
            ("LOGIN", None) => {
                self.say("+ VXNlcm5hbWU6\r\n".to_owned());
                self.sasl = Some(Sasl::LoginUser);
            }
            ("LOGIN", Some(ir)) => self.sasl_response(Sasl::LoginUser, ir.as_bytes()),
            _ => self.err("Unsupported authentication mechanism."),
        }
    }

    fn sasl_response(&mut self, sasl: Sasl, line: &[u8]) {
        if line == b"*" {
            self.err("Authentication aborted.");
            return;
        }
        let Ok(text) = std::str::from_utf8(line) else {
            self.err("Invalid base64 data.");
            return;
        };
        let text = if text == "=" { "" } else { text };
        match sasl {
            Sasl::Plain => match decode_plain(text) {
                Ok(c) => self.request(c.username, c.password.expose().to_owned(), "AUTH PLAIN"),
                Err(SaslError::ForeignAuthzid) => self.login_failed(LoginFailure::Rejected),
                Err(SaslError::Malformed) => self.err("Invalid base64 data."),
            },
            Sasl::LoginUser => match decode_field(text).ok() {
                Some(user) => {
                    self.say("+ UGFzc3dvcmQ6\r\n".to_owned());
                    self.sasl = Some(Sasl::LoginPassword { user });
                }
                None => self.err("Invalid base64 data."),
            },
            Sasl::LoginPassword { user } => match decode_field(text).ok() {
                Some(password) => self.request(user, password, "AUTH LOGIN"),
                None => self.err("Invalid base64 data."),
            },
        }
    }

    fn request(&mut self, user: String, password: String, method: &'static str) {
        if user.is_empty() || user.contains(['\r', '\n', '\0']) || password.contains('\0') {
            self.login_failed(LoginFailure::Rejected);
            return;
        }
        self.queue.push_back(Step::Login(LoginRequest {
            user,
            password: Password::new(password),
            tag: None,
            method,
        }));
    }
}

impl PreLogin for Pop3Session {
    fn greeting(hostname: &str, _tls_mode: TlsMode, _tls_active: bool) -> Vec<u8> {
        format!("+OK {hostname} ready.\r\n").into_bytes()
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn eof(&mut self) {
        if !self.closing {
            self.close();
        }
    }

    fn step(&mut self) -> Step {
        loop {
            if let Some(step) = self.queue.pop_front() {
                return step;
            }
            if self.closing {
                return Step::Close;
            }
            let Some(lf) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > MAX_LINE {
                    self.buf.clear();
                    self.say("-ERR Line too long.\r\n".to_owned());
                    self.close();
                    continue;
                }
                return Step::NeedInput;
            };
            if lf > MAX_LINE {
                self.buf.clear();
                self.say("-ERR Line too long.\r\n".to_owned());
                self.close();
                continue;
            }
            let line: Vec<u8> = self.buf.drain(..=lf).collect();
            let line = &line[..lf];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.contains(&b'\r') || line.contains(&0) {
                self.err("Invalid characters in command.");
                continue;
            }
            self.handle(line);
        }
    }

    fn tls_established(&mut self) {
        self.tls_active = true;
    }

    fn login_failed(&mut self, failure: LoginFailure) {
        match failure {
            LoginFailure::Rejected => {
                self.failures += 1;
                self.queue
                    .push_back(Step::Delay(self.limits.delay_after(self.failures)));
                self.say("-ERR [AUTH] Authentication failed.\r\n".to_owned());
                if self.failures >= self.limits.max_failures.max(1) {
                    self.close();
                }
            }
            LoginFailure::Unavailable => self.say(
                "-ERR [SYS/TEMP] The mailbox server is not available, try again later.\r\n"
                    .to_owned(),
            ),
        }
    }

    fn take_pending(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    fn timeout_reply(&self) -> &'static [u8] {
        b"-ERR Disconnected for inactivity.\r\n"
    }

    fn shutdown_reply(&self) -> &'static [u8] {
        b"-ERR [SYS/TEMP] Server shutting down.\r\n"
    }
}
