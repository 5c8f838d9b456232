//! The IMAP pre-login session (RFC 9051 / 3501 not-authenticated state):
//! greeting, `CAPABILITY`, `NOOP`, `ID`, `STARTTLS`, `LOGIN`,
//! `AUTHENTICATE PLAIN` and `LOGIN` (RFC 4959 SASL-IR), `LOGOUT`.
//!
//! Where the listener requires TLS, `LOGINDISABLED` is advertised and every
//! login is refused with `NO [PRIVACYREQUIRED]` until `STARTTLS`.

use std::collections::VecDeque;

use mailgw_plan::TlsMode;

use super::imap_syntax::{parse, Arg, CommandReader, Read};
use super::{LoginFailure, LoginRequest, PreLogin, PreLoginLimits, Step, MAX_BAD_COMMANDS};
use crate::smtp::auth::{decode_field, decode_plain, SaslError};
use crate::smtp::Password;

/// Longest command line before login.
pub const MAX_LINE: usize = 8 * 1024;
/// Largest literal before login (`LITERAL-`, RFC 7888).
pub const MAX_LITERAL: usize = 4096;
/// Largest whole command before login.
pub const MAX_COMMAND: usize = 16 * 1024;

/// An `AUTHENTICATE` waiting for the client's next response line.
#[derive(Debug)]
enum Sasl {
    Plain { tag: String },
    LoginUser { tag: String },
    LoginPassword { tag: String, user: String },
}

/// The session before login.
#[derive(Debug)]
pub struct ImapSession {
    tls_mode: TlsMode,
    tls_active: bool,
    limits: PreLoginLimits,
    reader: CommandReader,
    queue: VecDeque<Step>,
    sasl: Option<Sasl>,
    /// The tag of the login in progress.
    login_tag: Option<String>,
    failures: u32,
    bad_commands: u32,
    closing: bool,
}

impl ImapSession {
    /// A session for a listener with `tls_mode`; `tls_active` when the
    /// connection is already TLS (implicit). The greeting
    /// ([`PreLogin::greeting`]) is the driver's to send.
    pub fn new(tls_mode: TlsMode, tls_active: bool, limits: PreLoginLimits) -> ImapSession {
        ImapSession {
            tls_mode,
            tls_active,
            limits,
            reader: CommandReader::new(MAX_LINE, MAX_LITERAL, MAX_COMMAND),
            queue: VecDeque::new(),
            sasl: None,
            login_tag: None,
            failures: 0,
            bad_commands: 0,
            closing: false,
        }
    }

    fn login_allowed(&self) -> bool {
        login_allowed(self.tls_mode, self.tls_active)
    }

    fn starttls_offered(&self) -> bool {
        starttls_offered(self.tls_mode, self.tls_active)
    }

    fn capabilities(&self) -> String {
        capabilities(self.tls_mode, self.tls_active)
    }

    fn say(&mut self, text: String) {
        self.queue.push_back(Step::Reply(text.into_bytes()));
    }

    fn close(&mut self) {
        self.closing = true;
        self.queue.push_back(Step::Close);
    }

    fn bad(&mut self, tag: &str, text: &str) {
        self.bad_commands += 1;
        self.say(format!("{tag} BAD {text}\r\n"));
        if self.bad_commands >= MAX_BAD_COMMANDS {
            self.say("* BYE Too many invalid commands.\r\n".to_owned());
            self.close();
        }
    }

    fn handle(&mut self, bytes: &[u8]) {
        if let Some(sasl) = self.sasl.take() {
            self.sasl_response(sasl, bytes);
            return;
        }
        let command = match parse(bytes) {
            Ok(c) => c,
            Err(m) => {
                let tag = m.tag;
                self.bad(&tag, "Error in IMAP command: malformed.");
                return;
            }
        };
        let tag = command.tag;
        let args = command.args;
        match command.name.as_str() {
            "CAPABILITY" if args.is_empty() => {
                let caps = self.capabilities();
                self.say(format!(
                    "* CAPABILITY {caps}\r\n{tag} OK Pre-login capabilities listed, post-login capabilities have more.\r\n"
                ));
            }
            "NOOP" if args.is_empty() => self.say(format!("{tag} OK NOOP completed.\r\n")),
            "LOGOUT" if args.is_empty() => {
                self.say(format!(
                    "* BYE Logging out.\r\n{tag} OK Logout completed.\r\n"
                ));
                self.close();
            }
            "ID" if matches!(args.as_slice(), [Arg::Nil] | [Arg::List(_)]) => {
                self.say(format!(
                    "* ID (\"name\" \"mailgw\")\r\n{tag} OK ID completed.\r\n"
                ));
            }
            "STARTTLS" if args.is_empty() => {
                if self.tls_active {
                    self.bad(&tag, "TLS is already active.");
                } else if !self.starttls_offered() {
                    self.bad(&tag, "STARTTLS is not available.");
                } else {
                    self.say(format!("{tag} OK Begin TLS negotiation now.\r\n"));
                    self.reader.clear();
                    self.queue.push_back(Step::StartTls);
                }
            }
            "LOGIN" => self.login(tag, &args),
            "AUTHENTICATE" => self.authenticate(tag, &args),
            "CAPABILITY" | "NOOP" | "LOGOUT" | "ID" | "STARTTLS" => {
                self.bad(&tag, "Error in IMAP command: wrong arguments.");
            }
            _ => self.bad(&tag, "Command not valid before login."),
        }
    }

    fn privacy_required(&mut self, tag: &str) -> bool {
        if self.login_allowed() {
            return false;
        }
        self.say(format!(
            "{tag} NO [PRIVACYREQUIRED] Log in only after STARTTLS.\r\n"
        ));
        true
    }

    fn login(&mut self, tag: String, args: &[Arg]) {
        let [user, password] = args else {
            self.bad(&tag, "LOGIN needs a user name and a password.");
            return;
        };
        if self.privacy_required(&tag) {
            return;
        }
        let (Some(user), Some(password)) = (user.astring(), password.astring()) else {
            self.bad(&tag, "LOGIN needs a user name and a password.");
            return;
        };
        match (std::str::from_utf8(user), std::str::from_utf8(password)) {
            (Ok(user), Ok(password)) => {
                self.request(tag, user.to_owned(), password.to_owned(), "LOGIN")
            }
            _ => self.bad(&tag, "User name and password must be UTF-8."),
        }
    }

    fn authenticate(&mut self, tag: String, args: &[Arg]) {
        let (mechanism, initial) = match args {
            [Arg::Atom(m)] => (m, None),
            [Arg::Atom(m), Arg::Atom(ir)] => (m, Some(ir.as_str())),
            _ => {
                self.bad(&tag, "AUTHENTICATE needs a mechanism.");
                return;
            }
        };
        if self.privacy_required(&tag) {
            return;
        }
        let mechanism = mechanism.to_ascii_uppercase();
        match (mechanism.as_str(), initial) {
            ("PLAIN", None) => {
                self.say("+ \r\n".to_owned());
                self.sasl = Some(Sasl::Plain { tag });
            }
            ("PLAIN", Some(ir)) => self.sasl_response(Sasl::Plain { tag }, ir.as_bytes()),
            ("LOGIN", None) => {
                self.say("+ VXNlcm5hbWU6\r\n".to_owned());
                self.sasl = Some(Sasl::LoginUser { tag });
            }
            ("LOGIN", Some(ir)) => self.sasl_response(Sasl::LoginUser { tag }, ir.as_bytes()),
            _ => self.say(format!(
                "{tag} NO Unsupported authentication mechanism.\r\n"
            )),
        }
    }

    /// A client response line during `AUTHENTICATE` (or an initial
    /// response; `=` is the empty one).
    fn sasl_response(&mut self, sasl: Sasl, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let tag = match &sasl {
            Sasl::Plain { tag } | Sasl::LoginUser { tag } | Sasl::LoginPassword { tag, .. } => {
                tag.clone()
            }
        };
        if line == b"*" {
            self.bad(&tag, "Authentication aborted.");
            return;
        }
        let Ok(text) = std::str::from_utf8(line) else {
            self.bad(&tag, "Invalid base64 data.");
            return;
        };
        let text = if text == "=" { "" } else { text };
        match sasl {
            Sasl::Plain { tag } => match decode_plain(text) {
                Ok(c) => self.request(
                    tag,
                    c.username,
                    c.password.expose().to_owned(),
                    "AUTHENTICATE PLAIN",
                ),
                Err(SaslError::ForeignAuthzid) => self.failed_now(tag),
                Err(SaslError::Malformed) => self.bad(&tag, "Invalid base64 data."),
            },
            Sasl::LoginUser { tag } => match decode_field(text).ok() {
                Some(user) => {
                    self.say("+ UGFzc3dvcmQ6\r\n".to_owned());
                    self.sasl = Some(Sasl::LoginPassword { tag, user });
                }
                None => self.bad(&tag, "Invalid base64 data."),
            },
            Sasl::LoginPassword { tag, user } => match decode_field(text).ok() {
                Some(password) => self.request(tag, user, password, "AUTHENTICATE LOGIN"),
                None => self.bad(&tag, "Invalid base64 data."),
            },
        }
    }

    fn request(&mut self, tag: String, user: String, password: String, method: &'static str) {
        if user.is_empty() || user.contains(['\r', '\n', '\0']) {
            self.failed_now(tag);
            return;
        }
        self.login_tag = Some(tag.clone());
        self.queue.push_back(Step::Login(LoginRequest {
            user,
            password: Password::new(password),
            tag: Some(tag),
            method,
        }));
    }

    /// A login refused before any check (PLAIN for someone else): the same
    /// answer and delay as a wrong password.
    fn failed_now(&mut self, tag: String) {
        self.login_tag = Some(tag);
        self.login_failed(LoginFailure::Rejected);
    }
}

fn login_allowed(tls_mode: TlsMode, tls_active: bool) -> bool {
    tls_active || tls_mode != TlsMode::StartTlsRequire
}

fn starttls_offered(tls_mode: TlsMode, tls_active: bool) -> bool {
    !tls_active && matches!(tls_mode, TlsMode::StartTlsOffer | TlsMode::StartTlsRequire)
}

fn capabilities(tls_mode: TlsMode, tls_active: bool) -> String {
    let mut caps = vec!["IMAP4rev1", "SASL-IR", "LITERAL-", "ID"];
    if starttls_offered(tls_mode, tls_active) {
        caps.push("STARTTLS");
    }
    if login_allowed(tls_mode, tls_active) {
        caps.extend(["AUTH=PLAIN", "AUTH=LOGIN"]);
    } else {
        caps.push("LOGINDISABLED");
    }
    caps.join(" ")
}

impl PreLogin for ImapSession {
    fn greeting(hostname: &str, tls_mode: TlsMode, tls_active: bool) -> Vec<u8> {
        format!(
            "* OK [CAPABILITY {}] {hostname} ready.\r\n",
            capabilities(tls_mode, tls_active)
        )
        .into_bytes()
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.reader.feed(bytes);
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
            match self.reader.next_read() {
                None => return Step::NeedInput,
                Some(Read::Continue) => {
                    if self.sasl.is_some() {
                        // A response line of AUTHENTICATE looks like a
                        // literal announcement only when malformed.
                        self.sasl = None;
                    }
                    self.say("+ Ready for literal data\r\n".to_owned());
                }
                Some(Read::LiteralRefused(tag)) => {
                    self.sasl = None;
                    self.say(format!("{tag} BAD [TOOBIG] Literal too large.\r\n"));
                }
                Some(Read::TooBig) => {
                    self.reader.clear();
                    self.say("* BYE [TOOBIG] Command too long.\r\n".to_owned());
                    self.close();
                }
                Some(Read::Command(bytes)) => self.handle(&bytes),
            }
        }
    }

    fn tls_established(&mut self) {
        self.tls_active = true;
    }

    fn login_failed(&mut self, failure: LoginFailure) {
        let tag = self.login_tag.take().unwrap_or_else(|| "*".to_owned());
        match failure {
            LoginFailure::Rejected => {
                self.failures += 1;
                self.queue
                    .push_back(Step::Delay(self.limits.delay_after(self.failures)));
                self.say(format!(
                    "{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
                ));
                if self.failures >= self.limits.max_failures.max(1) {
                    self.say("* BYE Too many failed logins.\r\n".to_owned());
                    self.close();
                }
            }
            LoginFailure::Unavailable => self.say(format!(
                "{tag} NO [UNAVAILABLE] The mailbox server is not available, try again later.\r\n"
            )),
        }
    }

    fn take_pending(&mut self) -> Vec<u8> {
        self.reader.take_rest()
    }

    fn timeout_reply(&self) -> &'static [u8] {
        b"* BYE Disconnected for inactivity.\r\n"
    }

    fn shutdown_reply(&self) -> &'static [u8] {
        b"* BYE [UNAVAILABLE] Server shutting down.\r\n"
    }
}
