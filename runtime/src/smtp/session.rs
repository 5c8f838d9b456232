//! The SMTP server session: an I/O-free state machine.
//!
//! The I/O layer owns the socket and drives the session:
//!
//! ```text
//! write(session.greeting())
//! loop {
//!     match session.step() {
//!         Step::Reply(r)        => buffer r (flush before blocking on a read)
//!         Step::NeedInput       => flush; read; session.feed(bytes) (EOF: session.eof(), stop)
//!         Step::Delay(d)        => flush; sleep d
//!         Step::StartTls(r)     => write r; flush; handshake; session.tls_established()
//!         Step::Authenticate(c) => verify c; session.auth_result(outcome)
//!         Step::Deliver(d)      => spool d; session.spooled(result)
//!         Step::Close           => flush; close
//!     }
//! }
//! ```
//!
//! Replies come out in command order, so PIPELINING (RFC 2920) needs nothing
//! more than flushing when the session asks for input. The session keeps
//! the only input buffer: at STARTTLS it drops every byte received after the
//! command (RFC 3207 5), so nothing sent in cleartext survives the upgrade.
//! While it waits for a callback ([`Step::StartTls`], [`Step::Authenticate`],
//! [`Step::Deliver`]) it processes no input.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mailgw_plan::{
    normalize_domain, parse_mailbox, Address, AuthMode, Domain, Listener, Plan, RelayQuery,
    RelayVerdict, Resolution, TlsMode, UnknownRecipients,
};

use super::auth::{decode_plain, decode_text, encode_base64, Credentials, Password, SaslError};
use super::command::{
    parse_command, Command, Last, MailParams, Mechanism, RcptParams, RcptPath, Utf8,
};
use super::data::{Content, DataDecoder, Progress};
use super::envelope::{Disposition, Envelope, Greeting, RecipientEntry, TlsState};
use super::line::{Input, LineError, LineReader};
use super::reply::{Enhanced, Reply};

/// Settings of one session, taken from the plan and the connection.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Session id for logs and `Received:` ids; unique per process.
    pub id: String,
    /// The name in the greeting, `EHLO` reply and `Received:` header.
    pub hostname: String,
    /// The listener's TLS mode.
    pub tls_mode: TlsMode,
    /// The listener's authentication mode.
    pub auth_mode: AuthMode,
    /// The client's IP address.
    pub client: IpAddr,
    /// Largest accepted message, in octets (advertised as `SIZE`).
    pub max_message_size: u64,
    /// Most `Received:` fields a message may carry.
    pub max_hops: u32,
    /// Most recipients per message (`452 4.5.3` beyond).
    pub max_recipients: usize,
    /// Longest command line, CRLF not counted.
    pub max_command_line: usize,
    /// Longest message line, CRLF not counted.
    pub max_data_line: usize,
    /// Failed AUTH attempts after which the client is disconnected.
    pub auth_max_failures: u32,
    /// Delay after the first failed AUTH; doubled with each further one.
    pub auth_failure_delay: Duration,
    /// Failures this client already had in earlier sessions (the I/O layer
    /// keeps the per-client count), so the limit spans reconnections.
    pub previous_auth_failures: u32,
    /// Bad commands after which the client is disconnected.
    pub max_errors: u32,
    /// The clock, replaceable in tests.
    pub clock: fn() -> SystemTime,
}

impl SessionConfig {
    /// Default most recipients per message.
    pub const DEFAULT_MAX_RECIPIENTS: usize = 1000;
    /// Default longest command line: RFC 5321's 512 plus room for the
    /// ESMTP parameters of RFC 1869 and RFC 3461, and AUTH responses.
    pub const DEFAULT_MAX_COMMAND_LINE: usize = 4096;
    /// Default longest message line. RFC 5322 allows 998; real mail is
    /// sometimes longer, so the default is lenient but bounded.
    pub const DEFAULT_MAX_DATA_LINE: usize = 8192;
    /// Default bad commands before disconnecting.
    pub const DEFAULT_MAX_ERRORS: u32 = 20;

    /// The settings for a client of `listener` in `plan`.
    pub fn new(plan: &Plan, listener: &Listener, client: IpAddr, id: String) -> SessionConfig {
        SessionConfig {
            id,
            hostname: plan.gateway.hostname.clone(),
            tls_mode: listener.tls.mode,
            auth_mode: listener.auth,
            client,
            max_message_size: plan.gateway.max_message_size,
            max_hops: plan.gateway.max_hops,
            max_recipients: Self::DEFAULT_MAX_RECIPIENTS,
            max_command_line: Self::DEFAULT_MAX_COMMAND_LINE,
            max_data_line: Self::DEFAULT_MAX_DATA_LINE,
            auth_max_failures: plan.auth.max_failures.max(1),
            auth_failure_delay: Duration::from_millis(plan.auth.failure_delay_ms),
            previous_auth_failures: 0,
            max_errors: Self::DEFAULT_MAX_ERRORS,
            clock: SystemTime::now,
        }
    }
}

/// What the I/O layer must do next.
#[derive(Debug)]
pub enum Step {
    /// Send this reply (buffered; flush before reading or sleeping).
    Reply(Reply),
    /// All input is processed: flush the replies, read, call
    /// [`Session::feed`].
    NeedInput,
    /// Wait this long before going on (after a failed AUTH).
    Delay(Duration),
    /// Send this `220` reply, flush, run the TLS handshake, then call
    /// [`Session::tls_established`]. Nothing read before the handshake may
    /// be given to the session.
    StartTls(Reply),
    /// Verify the credentials, then call [`Session::auth_result`].
    Authenticate(Credentials),
    /// Store the message durably, then call [`Session::spooled`].
    Deliver(Box<Delivery>),
    /// Start delivery of the mail queued for this domain (`ETRN`, RFC
    /// 1985), then call [`Session::etrn_result`].
    Etrn(String),
    /// Close the connection (after sending the replies so far).
    Close,
}

/// A message to spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The envelope.
    pub envelope: Envelope,
    /// The message: this gateway's `Received:` header, then the client's
    /// octets, dot-unstuffed, with CRLF line ends.
    pub message: Vec<u8>,
}

/// The outcome of verifying credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The password is right.
    Success,
    /// The user or password is wrong.
    Failure,
    /// The verifier could not decide (backend unreachable).
    Unavailable,
}

/// The outcome of spooling a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpoolResult {
    /// Durably stored under this queue id.
    Queued(String),
    /// No space left: `452 4.3.1`.
    DiskFull,
    /// Another local error: `451 4.3.0`.
    Failed,
}

/// Which timeout applies while the I/O layer waits for input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// A command (or an AUTH response).
    Command,
    /// Message data (`DATA` or a `BDAT` chunk).
    Data,
}

/// What the session is doing with input.
#[derive(Debug)]
enum Mode {
    Command,
    AuthPlain,
    AuthLoginUser,
    AuthLoginPassword { username: String },
    AwaitAuth { username: String },
    Data(DataDecoder),
    Bdat { remaining: u64, last: Last },
    BdatSkip { remaining: u64, reply: Reply },
    AwaitSpool,
    AwaitTls,
    AwaitEtrn(String),
    Closed,
}

/// Which data command a transaction uses; they cannot be mixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataKind {
    None,
    Bdat,
}

/// A transaction after `MAIL`.
#[derive(Debug)]
struct Transaction {
    sender: Option<Address>,
    params: MailParams,
    recipients: Vec<RecipientEntry>,
    kind: DataKind,
    /// The envelope and content, once message data started.
    message: Option<(Envelope, Content)>,
}

/// Who the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Identity {
    Anonymous,
    User(String),
}

/// Whether the client said EHLO or HELO, and the name it gave.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hello {
    None,
    Said(Greeting, String),
}

/// One SMTP server session.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    plan: Arc<Plan>,
    input: Input,
    lines: LineReader,
    queue: VecDeque<Step>,
    mode: Mode,
    tls: TlsState,
    hello: Hello,
    identity: Identity,
    auth_failures: u32,
    errors: u32,
    transaction: Option<Transaction>,
    transactions: u32,
}

fn reply(code: u16, enhanced: (u8, u16, u16), text: &str) -> Reply {
    Reply::new(code, Enhanced(enhanced.0, enhanced.1, enhanced.2), text)
}

impl Session {
    /// A session for one connection, using `plan` throughout (a reload does
    /// not change sessions in flight).
    pub fn new(config: SessionConfig, plan: Arc<Plan>) -> Session {
        let tls = match config.tls_mode {
            TlsMode::Implicit => TlsState::Active,
            TlsMode::None | TlsMode::StartTlsOffer | TlsMode::StartTlsRequire => TlsState::Plain,
        };
        Session {
            lines: LineReader::new(config.max_command_line),
            auth_failures: config.previous_auth_failures,
            config,
            plan,
            input: Input::default(),
            queue: VecDeque::new(),
            mode: Mode::Command,
            tls,
            hello: Hello::None,
            identity: Identity::Anonymous,
            errors: 0,
            transaction: None,
            transactions: 0,
        }
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// The `220` greeting.
    pub fn greeting(&self) -> Reply {
        Reply::plain(220, vec![format!("{} ESMTP mailgw", self.config.hostname)])
    }

    /// The reply before closing at shutdown (`421 4.3.0`).
    pub fn shutdown_reply(&self) -> Reply {
        reply(421, (4, 3, 0), "Service shutting down, closing connection")
    }

    /// The reply before closing on a timeout (`421 4.4.2`).
    pub fn timeout_reply(&self) -> Reply {
        reply(421, (4, 4, 2), "Timeout, closing connection")
    }

    /// Which timeout applies to the next read.
    pub fn waiting(&self) -> Waiting {
        match self.mode {
            Mode::Data(_) | Mode::Bdat { .. } | Mode::BdatSkip { .. } => Waiting::Data,
            _ => Waiting::Command,
        }
    }

    /// Whether a transaction is open (for a graceful shutdown: idle
    /// sessions get [`Self::shutdown_reply`] at once).
    pub fn in_transaction(&self) -> bool {
        self.transaction.is_some()
    }

    /// Gives the session bytes read from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.input.push(bytes);
    }

    /// The client closed the connection.
    pub fn eof(&mut self) {
        if self.transaction.is_some() {
            tracing::info!(session = %self.config.id, "client closed the connection mid-transaction");
        }
        self.transaction = None;
        self.mode = Mode::Closed;
    }

    /// The next thing for the I/O layer to do.
    pub fn step(&mut self) -> Step {
        loop {
            if let Some(step) = self.queue.pop_front() {
                return step;
            }
            match &mut self.mode {
                Mode::Closed => return Step::Close,
                Mode::AwaitAuth { .. } | Mode::AwaitSpool | Mode::AwaitTls | Mode::AwaitEtrn(_) => {
                    tracing::error!(
                        session = %self.config.id,
                        "step() called before the pending callback; closing"
                    );
                    self.close_with(reply(421, (4, 3, 0), "Local error, closing connection"));
                }
                Mode::Data(decoder) => {
                    let Some((_, content)) =
                        self.transaction.as_mut().and_then(|t| t.message.as_mut())
                    else {
                        self.mode = Mode::Command;
                        continue;
                    };
                    let (used, progress) = decoder.feed(self.input.pending(), content);
                    self.input.consume(used);
                    match progress {
                        Progress::More => return Step::NeedInput,
                        Progress::End => self.finish_message(),
                    }
                }
                Mode::Bdat { remaining, last } => {
                    let last = *last;
                    let Some((_, content)) =
                        self.transaction.as_mut().and_then(|t| t.message.as_mut())
                    else {
                        self.mode = Mode::Command;
                        continue;
                    };
                    let pending = self.input.pending();
                    let take = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(pending.len());
                    content.push(&pending[..take]);
                    self.input.consume(take);
                    *remaining -= take as u64;
                    if *remaining > 0 {
                        return Step::NeedInput;
                    }
                    match last {
                        Last::Yes => self.finish_message(),
                        Last::No => {
                            let total = content.received();
                            self.mode = Mode::Command;
                            self.say(Reply::new(
                                250,
                                Enhanced(2, 0, 0),
                                format!("{total} octets received"),
                            ));
                        }
                    }
                }
                Mode::BdatSkip { remaining, .. } => {
                    let take = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(self.input.pending().len());
                    self.input.consume(take);
                    *remaining -= take as u64;
                    if *remaining > 0 {
                        return Step::NeedInput;
                    }
                    if let Mode::BdatSkip { reply, .. } =
                        std::mem::replace(&mut self.mode, Mode::Command)
                    {
                        self.say(reply);
                    }
                }
                Mode::Command
                | Mode::AuthPlain
                | Mode::AuthLoginUser
                | Mode::AuthLoginPassword { .. } => match self.lines.next_line(&mut self.input) {
                    None => return Step::NeedInput,
                    Some(Ok(line)) => self.line(line),
                    Some(Err(e)) => self.bad_line(e),
                },
            }
        }
    }

    /// The TLS handshake after [`Step::StartTls`] succeeded. The session
    /// starts over as RFC 3207 4.2 requires: the client must say EHLO again.
    pub fn tls_established(&mut self) {
        if !matches!(self.mode, Mode::AwaitTls) {
            return;
        }
        self.tls = TlsState::Active;
        self.hello = Hello::None;
        self.identity = Identity::Anonymous;
        self.transaction = None;
        self.lines.reset();
        self.input.discard();
        self.mode = Mode::Command;
    }

    /// The verdict on the credentials of [`Step::Authenticate`].
    pub fn auth_result(&mut self, outcome: AuthOutcome) {
        let Mode::AwaitAuth { username } = std::mem::replace(&mut self.mode, Mode::Command) else {
            return;
        };
        match outcome {
            AuthOutcome::Success => {
                tracing::info!(session = %self.config.id, user = %username, "authenticated");
                self.identity = Identity::User(username);
                self.say(reply(235, (2, 7, 0), "Authentication successful"));
            }
            AuthOutcome::Unavailable => {
                tracing::warn!(session = %self.config.id, user = %username, "authentication unavailable");
                self.say(reply(454, (4, 7, 0), "Temporary authentication failure"));
            }
            AuthOutcome::Failure => {
                tracing::info!(session = %self.config.id, user = %username, "authentication failed");
                self.auth_failed();
            }
        }
    }

    /// The result of [`Step::Etrn`]: how many messages were started, or
    /// `None` when the queue could not be asked.
    pub fn etrn_result(&mut self, started: Option<usize>) {
        let Mode::AwaitEtrn(node) = std::mem::replace(&mut self.mode, Mode::Command) else {
            return;
        };
        tracing::info!(session = %self.config.id, client = %self.config.client, %node, ?started, "ETRN");
        self.say(match started {
            Some(0) => reply(
                251,
                (2, 0, 0),
                &format!("OK, no messages waiting for node {node}"),
            ),
            Some(n) => reply(
                253,
                (2, 0, 0),
                &format!("OK, {n} pending messages for node {node} started"),
            ),
            None => reply(
                458,
                (4, 3, 0),
                &format!("Unable to queue messages for node {node}"),
            ),
        });
    }

    /// The result of spooling the message of [`Step::Deliver`].
    pub fn spooled(&mut self, result: SpoolResult) {
        if !matches!(self.mode, Mode::AwaitSpool) {
            return;
        }
        self.mode = Mode::Command;
        self.transaction = None;
        let r = match result {
            SpoolResult::Queued(id) => {
                Reply::new(250, Enhanced(2, 0, 0), format!("Ok: queued as {id}"))
            }
            SpoolResult::DiskFull => reply(452, (4, 3, 1), "Insufficient system storage"),
            SpoolResult::Failed => reply(451, (4, 3, 0), "Local error in processing"),
        };
        self.say(r);
    }

    fn say(&mut self, reply: Reply) {
        self.queue.push_back(Step::Reply(reply));
    }

    fn close_with(&mut self, reply: Reply) {
        self.say(reply);
        self.queue.push_back(Step::Close);
        self.transaction = None;
        self.mode = Mode::Closed;
        self.input.discard();
    }

    /// Counts a bad command; too many close the session.
    fn error(&mut self, reply: Reply) {
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            tracing::info!(session = %self.config.id, "too many errors");
            self.close_with(reply_421_errors());
        } else {
            self.say(reply);
        }
    }

    fn bad_line(&mut self, error: LineError) {
        if !matches!(self.mode, Mode::Command) {
            // A broken SASL response ends the exchange.
            self.mode = Mode::Command;
        }
        let r = match error {
            LineError::TooLong => reply(500, (5, 5, 6), "Line too long"),
            LineError::BareLf | LineError::BareCr => reply(
                500,
                (5, 5, 2),
                "Syntax error: bare CR or LF; lines must end with CRLF",
            ),
            LineError::Nul | LineError::Control => {
                reply(500, (5, 5, 2), "Syntax error: control character")
            }
            LineError::NotUtf8 => reply(500, (5, 5, 2), "Syntax error: invalid UTF-8"),
        };
        self.error(r);
    }

    fn line(&mut self, line: String) {
        match std::mem::replace(&mut self.mode, Mode::Command) {
            Mode::AuthPlain => self.sasl_plain(&line),
            Mode::AuthLoginUser => self.sasl_login_user(&line),
            Mode::AuthLoginPassword { username } => self.sasl_login_password(username, &line),
            _ => match parse_command(&line) {
                Ok(command) => self.command(command),
                Err(e) => self.error(e.reply()),
            },
        }
    }

    fn auth_allowed(&self) -> bool {
        self.config.auth_mode != AuthMode::Off && self.tls == TlsState::Active
    }

    fn starttls_offered(&self) -> bool {
        self.tls == TlsState::Plain
            && matches!(
                self.config.tls_mode,
                TlsMode::StartTlsOffer | TlsMode::StartTlsRequire
            )
    }

    fn command(&mut self, command: Command) {
        // STARTTLS require: only these commands before the upgrade.
        let before_tls = self.tls == TlsState::Plain
            && self.config.tls_mode == TlsMode::StartTlsRequire
            && !matches!(
                command,
                Command::Ehlo(_)
                    | Command::Helo(_)
                    | Command::StartTls
                    | Command::Noop
                    | Command::Rset
                    | Command::Quit
                    | Command::Help
            );
        if before_tls {
            self.say(reply(530, (5, 7, 0), "Must issue a STARTTLS command first"));
            return;
        }
        match command {
            Command::Ehlo(name) => self.ehlo(name),
            Command::Helo(name) => {
                self.transaction = None;
                self.hello = Hello::Said(Greeting::Helo, name);
                self.say(Reply::plain(250, vec![self.config.hostname.clone()]));
            }
            Command::Mail { sender, params } => self.mail(sender, params),
            Command::Rcpt { recipient, params } => self.rcpt(recipient, params),
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset => {
                self.transaction = None;
                self.say(reply(250, (2, 0, 0), "Ok"));
            }
            Command::Noop => self.say(reply(250, (2, 0, 0), "Ok")),
            Command::Quit => {
                self.say(reply(221, (2, 0, 0), "Bye"));
                self.queue.push_back(Step::Close);
                self.transaction = None;
                self.mode = Mode::Closed;
            }
            Command::Vrfy => self.say(reply(
                252,
                (2, 5, 0),
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Command::Help => self.say(reply(
                214,
                (2, 0, 0),
                "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
            )),
            Command::StartTls => self.starttls(),
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial),
            Command::Etrn(node) => self.etrn(&node),
            Command::NotImplemented => self.error(reply(502, (5, 5, 1), "Command not implemented")),
        }
    }

    fn ehlo(&mut self, name: String) {
        self.transaction = None;
        self.hello = Hello::Said(Greeting::Ehlo, name);
        let mut lines = vec![
            self.config.hostname.clone(),
            "PIPELINING".to_owned(),
            format!("SIZE {}", self.config.max_message_size),
            "8BITMIME".to_owned(),
            "ENHANCEDSTATUSCODES".to_owned(),
            "SMTPUTF8".to_owned(),
            "DSN".to_owned(),
            "CHUNKING".to_owned(),
        ];
        if self.starttls_offered() {
            lines.push("STARTTLS".to_owned());
        }
        if self.auth_allowed() && self.identity == Identity::Anonymous {
            lines.push("AUTH PLAIN LOGIN".to_owned());
        }
        if !self.plan.etrn.is_empty() {
            lines.push("ETRN".to_owned());
        }
        lines.push("HELP".to_owned());
        self.say(Reply::plain(250, lines));
    }

    /// `ETRN`: allowed by an `etrn` line for this client and domain, the
    /// queue is asked to try that domain's mail now.
    fn etrn(&mut self, node: &str) {
        if self.plan.etrn.is_empty() {
            self.error(reply(502, (5, 5, 1), "Command not implemented"));
            return;
        }
        if node.starts_with('#') {
            self.say(reply(
                458,
                (4, 5, 0),
                &format!("Unable to queue messages for node {node}: no such queue"),
            ));
            return;
        }
        let domain = match normalize_domain(node.strip_prefix('@').unwrap_or(node)) {
            Ok(d) => d,
            Err(_) => {
                self.error(reply(501, (5, 5, 4), "Syntax: ETRN domain"));
                return;
            }
        };
        if self
            .plan
            .etrn_allows(self.config.client, &Domain::Name(domain.clone()))
            .is_none()
        {
            tracing::info!(session = %self.config.id, client = %self.config.client, %domain, "ETRN not allowed");
            self.say(reply(
                459,
                (4, 7, 1),
                &format!("Node {domain} not allowed: no etrn rule for this client"),
            ));
            return;
        }
        self.mode = Mode::AwaitEtrn(domain.clone());
        self.queue.push_back(Step::Etrn(domain));
    }

    fn starttls(&mut self) {
        if !self.starttls_offered() {
            let r = if self.tls == TlsState::Active {
                reply(503, (5, 5, 1), "TLS already active")
            } else {
                reply(502, (5, 5, 1), "STARTTLS not available")
            };
            self.error(r);
            return;
        }
        if self.transaction.is_some() {
            self.error(reply(
                503,
                (5, 5, 1),
                "STARTTLS not allowed in a transaction",
            ));
            return;
        }
        let dropped = self.input.discard();
        if dropped > 0 {
            tracing::warn!(
                session = %self.config.id,
                client = %self.config.client,
                octets = dropped,
                "input pipelined after STARTTLS discarded"
            );
        }
        self.mode = Mode::AwaitTls;
        self.queue
            .push_back(Step::StartTls(reply(220, (2, 0, 0), "Ready to start TLS")));
    }

    fn auth(&mut self, mechanism: Mechanism, initial: Option<String>) {
        if !self.auth_allowed() {
            let r = if self.config.auth_mode == AuthMode::Off {
                reply(502, (5, 5, 1), "Authentication not available")
            } else {
                reply(
                    538,
                    (5, 7, 11),
                    "Encryption required for requested authentication mechanism",
                )
            };
            self.error(r);
            return;
        }
        if self.hello == Hello::None {
            self.error(reply(503, (5, 5, 1), "Send EHLO first"));
            return;
        }
        if self.identity != Identity::Anonymous {
            self.error(reply(503, (5, 5, 1), "Already authenticated"));
            return;
        }
        if self.transaction.is_some() {
            self.error(reply(503, (5, 5, 1), "AUTH not allowed in a transaction"));
            return;
        }
        // A client at the limit from earlier sessions gets no new guess.
        if self.auth_failures >= self.config.auth_max_failures {
            self.too_many_auth_failures();
            return;
        }
        match (mechanism, initial) {
            (Mechanism::Plain, None) => {
                self.mode = Mode::AuthPlain;
                self.say(Reply::plain(334, Vec::new()));
            }
            (Mechanism::Plain, Some(response)) => self.sasl_plain(&response),
            (Mechanism::Login, None) => {
                self.mode = Mode::AuthLoginUser;
                self.say(Reply::plain(334, vec![encode_base64(b"Username:")]));
            }
            (Mechanism::Login, Some(response)) => self.sasl_login_user(&response),
        }
    }

    /// `*` cancels any SASL exchange (RFC 4954 4).
    fn sasl_cancelled(&mut self, line: &str) -> bool {
        if line == "*" {
            self.say(reply(501, (5, 0, 0), "Authentication cancelled"));
            true
        } else {
            false
        }
    }

    fn sasl_malformed(&mut self) {
        self.error(reply(501, (5, 5, 2), "Malformed authentication response"));
    }

    fn sasl_plain(&mut self, line: &str) {
        if self.sasl_cancelled(line) {
            return;
        }
        match decode_plain(line) {
            Ok(credentials) => self.authenticate(credentials),
            Err(SaslError::Malformed) => self.sasl_malformed(),
            Err(SaslError::ForeignAuthzid) => {
                tracing::info!(session = %self.config.id, "AUTH PLAIN with a foreign authorization identity");
                self.auth_failed();
            }
        }
    }

    fn sasl_login_user(&mut self, line: &str) {
        if self.sasl_cancelled(line) {
            return;
        }
        match decode_text(line) {
            Ok(username) if !username.is_empty() => {
                self.mode = Mode::AuthLoginPassword { username };
                self.say(Reply::plain(334, vec![encode_base64(b"Password:")]));
            }
            _ => self.sasl_malformed(),
        }
    }

    fn sasl_login_password(&mut self, username: String, line: &str) {
        if self.sasl_cancelled(line) {
            return;
        }
        match decode_text(line) {
            Ok(password) if !password.is_empty() => self.authenticate(Credentials {
                mechanism: Mechanism::Login,
                username,
                password: Password::new(password),
            }),
            _ => self.sasl_malformed(),
        }
    }

    /// The client reached the failure limit: `421`, and the session ends.
    fn too_many_auth_failures(&mut self) {
        tracing::info!(
            session = %self.config.id,
            client = %self.config.client,
            failures = self.auth_failures,
            "too many failed authentications; closing"
        );
        self.close_with(reply(
            421,
            (4, 7, 0),
            "Too many failed authentication attempts",
        ));
    }

    fn authenticate(&mut self, credentials: Credentials) {
        self.mode = Mode::AwaitAuth {
            username: credentials.username.clone(),
        };
        self.queue.push_back(Step::Authenticate(credentials));
    }

    fn auth_failed(&mut self) {
        self.auth_failures = self.auth_failures.saturating_add(1);
        if self.auth_failures >= self.config.auth_max_failures {
            self.too_many_auth_failures();
            return;
        }
        let factor = 1u32 << self.auth_failures.saturating_sub(1).min(6);
        let delay = self.config.auth_failure_delay.saturating_mul(factor);
        self.queue.push_back(Step::Delay(delay));
        self.say(reply(535, (5, 7, 8), "Authentication credentials invalid"));
    }

    fn mail(&mut self, sender: Option<Address>, params: MailParams) {
        let greeting = match &self.hello {
            Hello::None => {
                self.error(reply(503, (5, 5, 1), "Send EHLO/HELO first"));
                return;
            }
            Hello::Said(greeting, _) => *greeting,
        };
        if self.config.auth_mode == AuthMode::Require && self.identity == Identity::Anonymous {
            self.say(reply(530, (5, 7, 0), "Authentication required"));
            return;
        }
        if self.transaction.is_some() {
            self.error(reply(503, (5, 5, 1), "Nested MAIL command"));
            return;
        }
        if greeting == Greeting::Helo && params != MailParams::default() {
            self.error(reply(555, (5, 5, 4), "Parameters need EHLO"));
            return;
        }
        if params
            .size
            .is_some_and(|size| size > self.config.max_message_size)
        {
            self.say(reply(
                552,
                (5, 3, 4),
                "Message size exceeds fixed maximum message size",
            ));
            return;
        }
        if params.smtputf8 == Utf8::No && sender.as_ref().is_some_and(|s| !is_ascii(s)) {
            self.say(reply(553, (5, 6, 7), "Non-ASCII address without SMTPUTF8"));
            return;
        }
        self.transaction = Some(Transaction {
            sender,
            params,
            recipients: Vec::new(),
            kind: DataKind::None,
            message: None,
        });
        self.say(reply(250, (2, 1, 0), "Sender OK"));
    }

    fn rcpt(&mut self, path: RcptPath, params: RcptParams) {
        let Some(transaction) = &self.transaction else {
            self.error(reply(503, (5, 5, 1), "Need MAIL command"));
            return;
        };
        if transaction.message.is_some() {
            self.error(reply(503, (5, 5, 1), "RCPT not allowed after message data"));
            return;
        }
        if transaction.recipients.len() >= self.config.max_recipients {
            self.say(reply(452, (4, 5, 3), "Too many recipients"));
            return;
        }
        let address = match path {
            RcptPath::Address(address) => address,
            RcptPath::Postmaster => match self.postmaster() {
                Some(address) => address,
                None => {
                    self.say(reply(550, (5, 1, 1), "Recipient address rejected"));
                    return;
                }
            },
        };
        if transaction.params.smtputf8 == Utf8::No && !is_ascii(&address) {
            self.say(reply(553, (5, 6, 7), "Non-ASCII address without SMTPUTF8"));
            return;
        }
        let disposition = match self.decide(&address) {
            Ok(disposition) => disposition,
            Err(r) => {
                self.say(r);
                return;
            }
        };
        let Some(transaction) = &mut self.transaction else {
            return;
        };
        if !transaction.recipients.iter().any(|r| r.address == address) {
            transaction.recipients.push(RecipientEntry {
                address,
                orcpt: params.orcpt,
                notify: params.notify,
                disposition,
            });
        }
        self.say(reply(250, (2, 1, 5), "Recipient OK"));
    }

    /// The gateway's postmaster, for `RCPT TO:<Postmaster>`: the plan's
    /// postmaster address, else postmaster at the first local domain.
    fn postmaster(&self) -> Option<Address> {
        parse_mailbox(&self.plan.postmaster()).ok()
    }

    /// The plan's decision on one recipient: relay check, then resolution.
    /// The log names the deciding line; the reply names no internals.
    fn decide(&self, address: &Address) -> Result<Disposition, Reply> {
        let sender = self.transaction.as_ref().and_then(|t| t.sender.as_ref());
        let authenticated = match &self.identity {
            Identity::User(user) => Some(user.as_str()),
            Identity::Anonymous => None,
        };
        let verdict = self.plan.relay(&RelayQuery {
            client: self.config.client,
            authenticated,
            sender,
            recipient: address,
        });
        let sources = &self.plan.sources;
        let id = &self.config.id;
        let client = self.config.client;
        match verdict {
            RelayVerdict::Denied { rule } => {
                let rule = rule.map_or_else(|| "default deny".to_owned(), |r| sources.describe(r));
                tracing::info!(session = %id, %client, rcpt = %address, %rule, "relay denied");
                return Err(reply(554, (5, 7, 1), "Relay access denied"));
            }
            RelayVerdict::Allowed { rule } => {
                tracing::info!(session = %id, %client, rcpt = %address, rule = %sources.describe(rule), "relay allowed");
            }
            RelayVerdict::NotRelay { .. } => {}
        }
        match self.plan.resolve(address) {
            Resolution::Mailbox {
                mailbox, source, ..
            } => {
                tracing::info!(session = %id, rcpt = %address, rule = %sources.describe(source), "local mailbox");
                Ok(Disposition::Mailbox(mailbox))
            }
            Resolution::Group { group, source, .. } => {
                tracing::info!(session = %id, rcpt = %address, rule = %sources.describe(source), "local group");
                Ok(Disposition::Group(group))
            }
            Resolution::UnknownLocal { domain, action } => match action {
                UnknownRecipients::Reject => {
                    tracing::info!(session = %id, rcpt = %address, rule = %sources.describe(domain), "unknown local recipient");
                    Err(reply(
                        550,
                        (5, 1, 1),
                        "Recipient address rejected: user unknown",
                    ))
                }
                UnknownRecipients::Forward { host, port } => {
                    tracing::info!(session = %id, rcpt = %address, %host, port, "unknown local recipient forwarded");
                    Ok(Disposition::ForwardUnknown { host, port })
                }
            },
            Resolution::Remote { .. } => Ok(Disposition::Relay),
            Resolution::Unroutable => {
                tracing::info!(session = %id, rcpt = %address, "no connector for the domain");
                Err(reply(550, (5, 4, 4), "Unable to route"))
            }
        }
    }

    /// Checks that message data may start; on success the transaction gets
    /// its envelope and content.
    fn start_message(&mut self, kind: DataKind) -> Result<(), Reply> {
        let Hello::Said(greeting, helo) = &self.hello else {
            return Err(reply(503, (5, 5, 1), "Send EHLO/HELO first"));
        };
        let Some(transaction) = &mut self.transaction else {
            return Err(reply(503, (5, 5, 1), "Need MAIL command"));
        };
        if transaction.message.is_some() {
            if transaction.kind == kind && kind == DataKind::Bdat {
                return Ok(());
            }
            return Err(reply(503, (5, 5, 1), "DATA and BDAT cannot be mixed"));
        }
        if transaction.recipients.is_empty() {
            return Err(reply(554, (5, 5, 1), "No valid recipients"));
        }
        self.transactions += 1;
        let envelope = Envelope {
            id: format!("{}.{}", self.config.id, self.transactions),
            sender: transaction.sender.clone(),
            recipients: transaction.recipients.clone(),
            body: transaction.params.body,
            smtputf8: transaction.params.smtputf8,
            ret: transaction.params.ret,
            envid: transaction.params.envid.clone(),
            client: self.config.client,
            helo: helo.clone(),
            authenticated: match &self.identity {
                Identity::User(user) => Some(user.clone()),
                Identity::Anonymous => None,
            },
            tls: self.tls,
            received_at: (self.config.clock)(),
        };
        let header = envelope.received_header(&self.config.hostname, *greeting);
        let content = Content::new(
            header.into_bytes(),
            self.config.max_message_size,
            self.config.max_data_line,
        );
        transaction.kind = kind;
        transaction.message = Some((envelope, content));
        Ok(())
    }

    fn data(&mut self) {
        if self
            .transaction
            .as_ref()
            .is_some_and(|t| t.kind == DataKind::Bdat)
        {
            self.error(reply(503, (5, 5, 1), "DATA and BDAT cannot be mixed"));
            return;
        }
        match self.start_message(DataKind::None) {
            Ok(()) => {
                self.mode = Mode::Data(DataDecoder::default());
                self.say(Reply::new(
                    354,
                    Enhanced(2, 0, 0),
                    "End data with <CR><LF>.<CR><LF>",
                ));
            }
            Err(r) => self.error(r),
        }
    }

    fn bdat(&mut self, size: u64, last: Last) {
        match self.start_message(DataKind::Bdat) {
            Ok(()) => {
                self.mode = Mode::Bdat {
                    remaining: size,
                    last,
                }
            }
            Err(r) => {
                // RFC 3030 2: the chunk is read even when the command fails.
                self.errors += 1;
                self.mode = Mode::BdatSkip {
                    remaining: size,
                    reply: r,
                };
            }
        }
    }

    fn finish_message(&mut self) {
        self.mode = Mode::Command;
        let Some((envelope, content)) = self.transaction.as_mut().and_then(|t| t.message.take())
        else {
            return;
        };
        let size = content.received();
        match content.finish(self.config.max_hops) {
            Ok(message) => {
                tracing::info!(
                    session = %self.config.id,
                    id = %envelope.id,
                    size,
                    recipients = envelope.recipients.len(),
                    "message received"
                );
                self.mode = Mode::AwaitSpool;
                self.queue
                    .push_back(Step::Deliver(Box::new(Delivery { envelope, message })));
            }
            Err(refused) => {
                tracing::info!(
                    session = %self.config.id,
                    id = %envelope.id,
                    size,
                    reason = ?refused,
                    "message refused"
                );
                self.transaction = None;
                self.say(refused.reply());
            }
        }
    }
}

fn reply_421_errors() -> Reply {
    reply(421, (4, 7, 0), "Too many errors, closing connection")
}

fn is_ascii(address: &Address) -> bool {
    address.local.is_ascii() && address.domain.to_string().is_ascii()
}
