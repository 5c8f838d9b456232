//! Parsing one SMTP command line into a typed [`Command`].
//!
//! The input is one line without its CRLF, already checked by the line
//! reader to be UTF-8 without control characters other than tab. Verbs and
//! parameter keywords are case-insensitive. Every error maps to the reply
//! RFC 5321, RFC 1869 and RFC 3463 give it ([`CommandError::reply`]).

use mailgw_plan::address::{parse_path, Address, AddressError};

use super::reply::{Enhanced, Reply};

/// A parsed SMTP command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `EHLO domain`.
    Ehlo(String),
    /// `HELO domain`.
    Helo(String),
    /// `MAIL FROM:<path> [params]`; `sender` is `None` for the null path.
    Mail {
        /// The reverse path.
        sender: Option<Address>,
        /// ESMTP parameters.
        params: MailParams,
    },
    /// `RCPT TO:<path> [params]`.
    Rcpt {
        /// The forward path.
        recipient: RcptPath,
        /// ESMTP parameters.
        params: RcptParams,
    },
    /// `DATA`.
    Data,
    /// `BDAT size [LAST]` (RFC 3030).
    Bdat {
        /// Octets in the chunk that follows the command line.
        size: u64,
        /// Whether this is the last chunk.
        last: Last,
    },
    /// `RSET`.
    Rset,
    /// `NOOP [text]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY text`: always answered 252.
    Vrfy,
    /// `HELP [topic]`.
    Help,
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954).
    Auth {
        /// The SASL mechanism.
        mechanism: Mechanism,
        /// The initial response, still base64 (`=` stands for empty).
        initial: Option<String>,
    },
    /// `ETRN [@|#]node` (RFC 1985), the argument as given.
    Etrn(String),
    /// A command this server knows but does not implement (`EXPN`, `TURN`,
    /// …): `502 5.5.1`.
    NotImplemented,
}

/// Whether a `BDAT` chunk is the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Last {
    /// More chunks follow.
    No,
    /// `LAST`: the message ends with this chunk.
    Yes,
}

/// The forward path of `RCPT TO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptPath {
    /// A mailbox.
    Address(Address),
    /// `<Postmaster>` without a domain (RFC 5321 4.5.1): the gateway's
    /// postmaster.
    Postmaster,
}

/// A SASL mechanism offered by this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `PLAIN` (RFC 4616).
    Plain,
    /// `LOGIN` (the de facto two-prompt mechanism).
    Login,
}

impl Mechanism {
    /// The mechanism name as advertised.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// The `BODY=` parameter (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Body {
    /// `7BIT`, or no parameter.
    #[default]
    SevenBit,
    /// `8BITMIME`.
    EightBitMime,
}

/// Whether the message uses SMTPUTF8 (RFC 6531).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Utf8 {
    /// ASCII addresses and headers only.
    #[default]
    No,
    /// `SMTPUTF8` was given.
    Yes,
}

/// The DSN `RET=` parameter (RFC 3461 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// Return the full message in a failure DSN.
    Full,
    /// Return only the headers.
    Headers,
}

/// The DSN `NOTIFY=` parameter (RFC 3461 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// `NEVER`.
    Never,
    /// A non-empty combination of `SUCCESS`, `FAILURE` and `DELAY`.
    On {
        /// `SUCCESS`.
        success: bool,
        /// `FAILURE`.
        failure: bool,
        /// `DELAY`.
        delay: bool,
    },
}

/// The DSN `ORCPT=` parameter (RFC 3461 4.2), xtext decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orcpt {
    /// The address type, usually `rfc822`.
    pub addr_type: String,
    /// The original recipient as the client gave it.
    pub address: String,
}

/// Parameters of `MAIL FROM`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailParams {
    /// `SIZE=` (RFC 1870), the declared message size.
    pub size: Option<u64>,
    /// `BODY=` (RFC 6152).
    pub body: Body,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: Utf8,
    /// DSN `RET=`.
    pub ret: Option<Ret>,
    /// DSN `ENVID=`, xtext decoded.
    pub envid: Option<String>,
}

/// Parameters of `RCPT TO`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RcptParams {
    /// DSN `NOTIFY=`.
    pub notify: Option<Notify>,
    /// DSN `ORCPT=`.
    pub orcpt: Option<Orcpt>,
}

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// An unknown verb.
    Unrecognized,
    /// The line does not follow the command's syntax.
    Syntax(&'static str),
    /// A known parameter with a bad value, a duplicate, or arguments where
    /// none belong.
    BadParameter(&'static str),
    /// A parameter this server does not know.
    UnknownParameter,
    /// The reverse path is not a valid address.
    BadSender(AddressError),
    /// The forward path is not a valid address.
    BadRecipient(AddressError),
}

impl CommandError {
    /// The reply for this error. Address errors are described in words the
    /// parser chose, never by echoing the client's bytes.
    pub fn reply(&self) -> Reply {
        match self {
            CommandError::Unrecognized => {
                Reply::new(500, Enhanced(5, 5, 1), "Command unrecognized")
            }
            CommandError::Syntax(what) => Reply::new(500, Enhanced(5, 5, 2), *what),
            CommandError::BadParameter(what) => Reply::new(501, Enhanced(5, 5, 4), *what),
            CommandError::UnknownParameter => {
                Reply::new(555, Enhanced(5, 5, 4), "Unsupported parameter")
            }
            CommandError::BadSender(e) => {
                Reply::new(501, Enhanced(5, 1, 7), format!("Bad sender address: {e}"))
            }
            CommandError::BadRecipient(e) => Reply::new(
                501,
                Enhanced(5, 1, 3),
                format!("Bad recipient address: {e}"),
            ),
        }
    }
}

/// Longest `ENVID` value, decoded (RFC 3461 4.4).
const MAX_ENVID: usize = 100;

/// Parses one command line (without CRLF).
pub fn parse_command(line: &str) -> Result<Command, CommandError> {
    let (verb, args) = match line.split_once(' ') {
        Some((verb, args)) => (verb, args),
        None => (line, ""),
    };
    let no_args = |command: Command| {
        if args.trim().is_empty() {
            Ok(command)
        } else {
            Err(CommandError::BadParameter(
                "This command takes no arguments",
            ))
        }
    };
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" => Ok(Command::Ehlo(parse_helo(args)?)),
        "HELO" => Ok(Command::Helo(parse_helo(args)?)),
        "MAIL" => parse_mail(args),
        "RCPT" => parse_rcpt(args),
        "DATA" => no_args(Command::Data),
        "BDAT" => parse_bdat(args),
        "RSET" => no_args(Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(Command::Quit),
        "VRFY" => {
            if args.trim().is_empty() {
                Err(CommandError::Syntax("VRFY needs an argument"))
            } else {
                Ok(Command::Vrfy)
            }
        }
        "HELP" => Ok(Command::Help),
        "STARTTLS" => no_args(Command::StartTls),
        "AUTH" => parse_auth(args),
        "ETRN" => match args.trim() {
            "" => Err(CommandError::BadParameter("ETRN needs a domain")),
            node if node.contains(' ') => Err(CommandError::BadParameter("ETRN takes one domain")),
            node => Ok(Command::Etrn(node.to_owned())),
        },
        "EXPN" | "TURN" | "ATRN" | "SEND" | "SOML" | "SAML" => Ok(Command::NotImplemented),
        _ => Err(CommandError::Unrecognized),
    }
}

/// The `EHLO`/`HELO` argument: one token of printable characters, kept only
/// for the `Received:` header.
fn parse_helo(args: &str) -> Result<String, CommandError> {
    let name = args.trim();
    if name.is_empty() {
        return Err(CommandError::BadParameter("A domain name is required"));
    }
    if name.contains([' ', '\t']) || name.len() > 255 {
        return Err(CommandError::BadParameter("Invalid domain name"));
    }
    Ok(name.to_owned())
}

/// Splits `PREFIX:<path> params`: the path ends at the first `>` outside a
/// quoted string. Spaces after the colon are tolerated (many clients send
/// them); anything else is a syntax error.
fn split_path<'a>(args: &'a str, prefix: &str) -> Result<(&'a str, &'a str), CommandError> {
    let head = args
        .get(..prefix.len())
        .filter(|head| head.eq_ignore_ascii_case(prefix))
        .ok_or(CommandError::Syntax("Syntax error in parameters"))?;
    let rest = args[head.len()..].trim_start_matches(' ');
    if !rest.starts_with('<') {
        return Err(CommandError::Syntax(
            "Syntax error: the path must be in angle brackets",
        ));
    }
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => {
                let (path, params) = rest.split_at(i + 1);
                return match params.strip_prefix(' ') {
                    Some(params) => Ok((path, params)),
                    None if params.is_empty() => Ok((path, params)),
                    None => Err(CommandError::Syntax("Syntax error after the path")),
                };
            }
            _ => {}
        }
    }
    Err(CommandError::Syntax(
        "Syntax error: the path must be in angle brackets",
    ))
}

/// Splits ESMTP parameters into `(KEYWORD uppercased, value)`.
fn parameters(text: &str) -> Result<Vec<(String, Option<&str>)>, CommandError> {
    let mut out: Vec<(String, Option<&str>)> = Vec::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let (key, value) = match word.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (word, None),
        };
        let valid_key = !key.is_empty()
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && key
                .as_bytes()
                .first()
                .is_some_and(u8::is_ascii_alphanumeric);
        if !valid_key || value.is_some_and(|v| v.is_empty() || v.contains('=')) {
            return Err(CommandError::Syntax("Syntax error in parameters"));
        }
        let key = key.to_ascii_uppercase();
        if out.iter().any(|(k, _)| *k == key) {
            return Err(CommandError::BadParameter("Duplicate parameter"));
        }
        out.push((key, value));
    }
    Ok(out)
}

fn parse_mail(args: &str) -> Result<Command, CommandError> {
    let (path, rest) = split_path(args, "FROM:")?;
    let sender = parse_path(path).map_err(CommandError::BadSender)?;
    let mut params = MailParams::default();
    for (key, value) in parameters(rest)? {
        match (key.as_str(), value) {
            ("SIZE", Some(v)) => {
                if !v.bytes().all(|b| b.is_ascii_digit()) || v.len() > 20 {
                    return Err(CommandError::BadParameter("Invalid SIZE value"));
                }
                // A value beyond u64 is surely too big; saturate rather
                // than refuse the syntax.
                params.size = Some(v.parse().unwrap_or(u64::MAX));
            }
            ("BODY", Some(v)) => {
                params.body = if v.eq_ignore_ascii_case("7BIT") {
                    Body::SevenBit
                } else if v.eq_ignore_ascii_case("8BITMIME") {
                    Body::EightBitMime
                } else {
                    return Err(CommandError::BadParameter("Unsupported BODY type"));
                };
            }
            ("SMTPUTF8", None) => params.smtputf8 = Utf8::Yes,
            ("RET", Some(v)) => {
                params.ret = Some(if v.eq_ignore_ascii_case("FULL") {
                    Ret::Full
                } else if v.eq_ignore_ascii_case("HDRS") {
                    Ret::Headers
                } else {
                    return Err(CommandError::BadParameter("Invalid RET value"));
                });
            }
            ("ENVID", Some(v)) => {
                let envid =
                    decode_xtext(v).ok_or(CommandError::BadParameter("Invalid ENVID value"))?;
                if envid.len() > MAX_ENVID {
                    return Err(CommandError::BadParameter("ENVID is too long"));
                }
                params.envid = Some(envid);
            }
            // RFC 4954 5: the AUTH parameter is accepted and, since this
            // server trusts no other server's authentication, ignored.
            ("AUTH", Some(v)) => {
                if v != "<>" && decode_xtext(v).is_none() {
                    return Err(CommandError::BadParameter("Invalid AUTH value"));
                }
            }
            ("SIZE" | "BODY" | "RET" | "ENVID" | "AUTH", None) | ("SMTPUTF8", Some(_)) => {
                return Err(CommandError::BadParameter("Invalid parameter value"));
            }
            _ => return Err(CommandError::UnknownParameter),
        }
    }
    Ok(Command::Mail { sender, params })
}

fn parse_rcpt(args: &str) -> Result<Command, CommandError> {
    let (path, rest) = split_path(args, "TO:")?;
    let recipient = if path.eq_ignore_ascii_case("<postmaster>") {
        RcptPath::Postmaster
    } else {
        match parse_path(path) {
            Ok(Some(address)) => RcptPath::Address(address),
            Ok(None) => return Err(CommandError::BadRecipient(AddressError::Empty)),
            Err(e) => return Err(CommandError::BadRecipient(e)),
        }
    };
    let mut params = RcptParams::default();
    for (key, value) in parameters(rest)? {
        match (key.as_str(), value) {
            ("NOTIFY", Some(v)) => params.notify = Some(parse_notify(v)?),
            ("ORCPT", Some(v)) => {
                let (addr_type, xtext) = v
                    .split_once(';')
                    .ok_or(CommandError::BadParameter("Invalid ORCPT value"))?;
                let valid_type = !addr_type.is_empty()
                    && addr_type
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-');
                let address = decode_xtext(xtext)
                    .filter(|a| valid_type && !a.is_empty() && a.len() <= 500)
                    .ok_or(CommandError::BadParameter("Invalid ORCPT value"))?;
                params.orcpt = Some(Orcpt {
                    addr_type: addr_type.to_owned(),
                    address,
                });
            }
            ("NOTIFY" | "ORCPT", None) => {
                return Err(CommandError::BadParameter("Invalid parameter value"));
            }
            _ => return Err(CommandError::UnknownParameter),
        }
    }
    Ok(Command::Rcpt { recipient, params })
}

fn parse_notify(value: &str) -> Result<Notify, CommandError> {
    let bad = CommandError::BadParameter("Invalid NOTIFY value");
    if value.eq_ignore_ascii_case("NEVER") {
        return Ok(Notify::Never);
    }
    let (mut success, mut failure, mut delay) = (false, false, false);
    for word in value.split(',') {
        let flag = if word.eq_ignore_ascii_case("SUCCESS") {
            &mut success
        } else if word.eq_ignore_ascii_case("FAILURE") {
            &mut failure
        } else if word.eq_ignore_ascii_case("DELAY") {
            &mut delay
        } else {
            return Err(bad);
        };
        if *flag {
            return Err(bad);
        }
        *flag = true;
    }
    Ok(Notify::On {
        success,
        failure,
        delay,
    })
}

fn parse_bdat(args: &str) -> Result<Command, CommandError> {
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    let size = words
        .next()
        .filter(|s| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(CommandError::Syntax("BDAT needs a chunk size"))?;
    let size = size.parse().unwrap_or(u64::MAX);
    let last = match words.next() {
        None => Last::No,
        Some(w) if w.eq_ignore_ascii_case("LAST") => Last::Yes,
        Some(_) => return Err(CommandError::Syntax("Syntax error in BDAT parameters")),
    };
    if words.next().is_some() {
        return Err(CommandError::Syntax("Syntax error in BDAT parameters"));
    }
    Ok(Command::Bdat { size, last })
}

fn parse_auth(args: &str) -> Result<Command, CommandError> {
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    let mechanism = match words.next() {
        Some(m) if m.eq_ignore_ascii_case("PLAIN") => Mechanism::Plain,
        Some(m) if m.eq_ignore_ascii_case("LOGIN") => Mechanism::Login,
        Some(_) => {
            return Err(CommandError::BadParameter(
                "Unsupported authentication mechanism",
            ))
        }
        None => return Err(CommandError::Syntax("AUTH needs a mechanism")),
    };
    let initial = words.next().map(str::to_owned);
    if words.next().is_some() {
        return Err(CommandError::Syntax("Syntax error in AUTH parameters"));
    }
    Ok(Command::Auth { mechanism, initial })
}

/// Decodes RFC 3461 xtext: printable ASCII except `+` and `=`, and `+HH`
/// with two upper-case hex digits. `None` when malformed or when the result
/// is not UTF-8.
pub fn decode_xtext(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => {
                let hex = |d: u8| match d {
                    b'0'..=b'9' => Some(d - b'0'),
                    b'A'..=b'F' => Some(d - b'A' + 10),
                    _ => None,
                };
                let hi = hex(*bytes.get(i + 1)?)?;
                let lo = hex(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'!'..=b'~' if b != b'=' => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Address {
        mailgw_plan::parse_mailbox(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(
            parse_command("ehlo client.example"),
            Ok(Command::Ehlo("client.example".into()))
        );
        assert_eq!(parse_command("QuIt"), Ok(Command::Quit));
        assert_eq!(parse_command("noop whatever"), Ok(Command::Noop));
        assert_eq!(parse_command("FOO"), Err(CommandError::Unrecognized));
        assert_eq!(parse_command("EXPN x"), Ok(Command::NotImplemented));
    }

    #[test]
    fn mail_with_parameters() {
        let c = parse_command(
            "MAIL FROM:<a@example.com> size=1000 BODY=8bitmime SMTPUTF8 RET=HDRS ENVID=QQ+2B1",
        );
        assert_eq!(
            c,
            Ok(Command::Mail {
                sender: Some(addr("a@example.com")),
                params: MailParams {
                    size: Some(1000),
                    body: Body::EightBitMime,
                    smtputf8: Utf8::Yes,
                    ret: Some(Ret::Headers),
                    envid: Some("QQ+1".into()),
                },
            })
        );
        assert!(matches!(
            parse_command("MAIL FROM: <>"),
            Ok(Command::Mail { sender: None, .. })
        ));
        assert!(matches!(
            parse_command("MAIL FROM:<\"a b>c\"@example.com> SIZE=1"),
            Ok(Command::Mail {
                sender: Some(_),
                ..
            })
        ));
    }

    #[test]
    fn mail_errors_map_to_replies() {
        let code = |line: &str| match parse_command(line) {
            Err(e) => {
                let r = e.reply();
                format!(
                    "{} {}",
                    r.code,
                    r.enhanced.map(|e| e.to_string()).unwrap_or_default()
                )
            }
            Ok(c) => format!("ok {c:?}"),
        };
        assert_eq!(code("MAIL FROM:a@example.com"), "500 5.5.2");
        assert_eq!(code("MAIL TO:<a@example.com>"), "500 5.5.2");
        assert_eq!(code("MAIL FROM:<a@@example.com>"), "501 5.1.7");
        assert_eq!(code("RCPT TO:<a@>"), "501 5.1.3");
        assert_eq!(code("RCPT TO:<>"), "501 5.1.3");
        assert_eq!(code("MAIL FROM:<a@example.com> FOO=1"), "555 5.5.4");
        assert_eq!(code("MAIL FROM:<a@example.com> SIZE=x"), "501 5.5.4");
        assert_eq!(code("MAIL FROM:<a@example.com> SIZE=1 SIZE=2"), "501 5.5.4");
        assert_eq!(
            code("MAIL FROM:<a@example.com> BODY=BINARYMIME"),
            "501 5.5.4"
        );
        assert_eq!(code("MAIL FROM:<a@example.com> ENVID=a+2"), "501 5.5.4");
        assert_eq!(code("MAIL FROM:<a@example.com>x"), "500 5.5.2");
        assert_eq!(
            code("RCPT TO:<a@example.com> NOTIFY=NEVER,SUCCESS"),
            "501 5.5.4"
        );
        assert_eq!(code("DATA x"), "501 5.5.4");
        assert_eq!(code("AUTH CRAM-MD5"), "501 5.5.4");
        assert_eq!(code("BDAT x"), "500 5.5.2");
    }

    #[test]
    fn rcpt_with_dsn_parameters() {
        let c = parse_command(
            "RCPT TO:<b@example.com> NOTIFY=failure,DELAY ORCPT=rfc822;b+40example.com",
        );
        assert_eq!(
            c,
            Ok(Command::Rcpt {
                recipient: RcptPath::Address(addr("b@example.com")),
                params: RcptParams {
                    notify: Some(Notify::On {
                        success: false,
                        failure: true,
                        delay: true
                    }),
                    orcpt: Some(Orcpt {
                        addr_type: "rfc822".into(),
                        address: "b@example.com".into()
                    }),
                },
            })
        );
        assert!(matches!(
            parse_command("RCPT TO:<PostMaster>"),
            Ok(Command::Rcpt {
                recipient: RcptPath::Postmaster,
                ..
            })
        ));
    }

    #[test]
    fn bdat_and_auth() {
        assert_eq!(
            parse_command("BDAT 100 last"),
            Ok(Command::Bdat {
                size: 100,
                last: Last::Yes
            })
        );
        assert_eq!(
            parse_command("AUTH plain AGEAYg=="),
            Ok(Command::Auth {
                mechanism: Mechanism::Plain,
                initial: Some("AGEAYg==".into())
            })
        );
    }

    #[test]
    fn xtext() {
        assert_eq!(decode_xtext("a+2Bb+3D"), Some("a+b=".into()));
        assert_eq!(decode_xtext("a+2b"), None);
        assert_eq!(decode_xtext("a b"), None);
        assert_eq!(decode_xtext("+C3+A9"), Some("é".into()));
        assert_eq!(decode_xtext("+FF"), None);
    }
}
