//! Strict RFC 5321 parsing of mailboxes and paths (with RFC 6531 UTF-8).
//!
//! Used for `MAIL FROM:<…>` / `RCPT TO:<…>` arguments and for addresses an
//! administrator types. The parser is deliberately strict because the relay
//! decision depends on the domain it returns: `%` and `!` stay part of the
//! local part and are never reinterpreted as routing, a quoted `@` stays in
//! the local part, and source routes (`@a,@b:user@c`) are accepted and
//! ignored as RFC 5321 4.1.2 and appendix C require, so the domain is `c`.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest local part, in octets (RFC 5321 4.5.3.1.1).
pub const MAX_LOCAL: usize = 64;
/// Longest domain, in octets (RFC 5321 4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;
/// Longest path including the angle brackets (RFC 5321 4.5.3.1.3).
pub const MAX_PATH: usize = 256;
/// Longest domain label, in octets.
const MAX_LABEL: usize = 63;

/// A mailbox: local part and domain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    /// The local part in canonical form: as written (case kept), except that
    /// a quoted string whose content is a plain dot-atom loses its quotes and
    /// any other quoted string is re-quoted with the minimum of escapes.
    pub local: String,
    /// The domain.
    pub domain: Domain,
}

/// The domain of an address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Domain {
    /// A domain name, lowercased, without trailing dot.
    Name(String),
    /// An IPv4 address literal, `[192.0.2.1]`.
    Ipv4(Ipv4Addr),
    /// An IPv6 address literal, `[IPv6:2001:db8::1]`.
    Ipv6(Ipv6Addr),
}

impl Domain {
    /// The domain name, if this is not an address literal.
    pub fn name(&self) -> Option<&str> {
        match self {
            Domain::Name(name) => Some(name),
            Domain::Ipv4(_) | Domain::Ipv6(_) => None,
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Name(name) => f.write_str(name),
            Domain::Ipv4(ip) => write!(f, "[{ip}]"),
            Domain::Ipv6(ip) => write!(f, "[IPv6:{ip}]"),
        }
    }
}

impl Address {
    /// The normalized form used as recipient table key: `local@domain`.
    pub fn key(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressError {
    /// Nothing was given.
    Empty,
    /// A path without its angle brackets.
    MissingAngleBrackets,
    /// Text after the closing `>`.
    TrailingText,
    /// No `@` between local part and domain.
    MissingAt,
    /// Nothing before the `@`.
    EmptyLocalPart,
    /// Nothing after the `@`.
    EmptyDomain,
    /// A second `@` outside a quoted local part.
    ExtraAt,
    /// A control character (including tab, CR, LF, NUL, DEL).
    ControlCharacter,
    /// A character not allowed in an unquoted local part.
    InvalidLocalChar(char),
    /// A dot at the start or end of the local part, or two in a row.
    MisplacedDot,
    /// A quoted local part without its closing quote.
    UnterminatedQuote,
    /// A backslash that does not escape a printable character.
    InvalidEscape,
    /// The quoted local part is not followed by `@`.
    TextAfterQuote,
    /// Local part over 64 octets.
    LocalPartTooLong(usize),
    /// Domain over 255 octets.
    DomainTooLong(usize),
    /// Path over 256 octets.
    PathTooLong(usize),
    /// A domain label that is empty, too long, starts or ends with `-`, or
    /// holds a character other than letters, digits, `-` and UTF-8.
    InvalidLabel(String),
    /// An address literal that is not `[IPv4]` or `[IPv6:…]`.
    InvalidLiteral(String),
    /// A malformed source route (`@a,@b:`).
    InvalidSourceRoute,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressError::Empty => f.write_str("the address is empty"),
            AddressError::MissingAngleBrackets => {
                f.write_str("the path must be enclosed in angle brackets, as in <user@example.com>")
            }
            AddressError::TrailingText => f.write_str("there is text after the closing '>'"),
            AddressError::MissingAt => f.write_str("the address has no '@' before its domain"),
            AddressError::EmptyLocalPart => f.write_str("the local part before '@' is empty"),
            AddressError::EmptyDomain => f.write_str("the domain after '@' is empty"),
            AddressError::ExtraAt => {
                f.write_str("the address has a second '@'; quote the local part if it is meant")
            }
            AddressError::ControlCharacter => f.write_str("the address holds a control character"),
            AddressError::InvalidLocalChar(c) => {
                write!(
                    f,
                    "the character {c:?} is not allowed in an unquoted local part"
                )
            }
            AddressError::MisplacedDot => f.write_str(
                "a dot in the local part may not come first, last or twice in a row unless quoted",
            ),
            AddressError::UnterminatedQuote => f.write_str("the quoted local part is not closed"),
            AddressError::InvalidEscape => {
                f.write_str("a backslash in a quoted local part must escape a printable character")
            }
            AddressError::TextAfterQuote => {
                f.write_str("the quoted local part must be followed by '@'")
            }
            AddressError::LocalPartTooLong(n) => {
                write!(
                    f,
                    "the local part is {n} octets long; at most {MAX_LOCAL} are allowed"
                )
            }
            AddressError::DomainTooLong(n) => {
                write!(
                    f,
                    "the domain is {n} octets long; at most {MAX_DOMAIN} are allowed"
                )
            }
            AddressError::PathTooLong(n) => {
                write!(
                    f,
                    "the path is {n} octets long; at most {MAX_PATH} are allowed"
                )
            }
            AddressError::InvalidLabel(label) => write!(f, "{label:?} is not a valid domain label"),
            AddressError::InvalidLiteral(lit) => {
                write!(f, "{lit:?} is not an IPv4 or [IPv6:…] address literal")
            }
            AddressError::InvalidSourceRoute => {
                f.write_str("the source route is malformed; expected @host,@host:user@domain")
            }
        }
    }
}

impl std::error::Error for AddressError {}

/// Parses a path as in `MAIL FROM:<…>` and `RCPT TO:<…>`: angle brackets
/// required, a source route accepted and ignored. The null path `<>` gives
/// `None`.
pub fn parse_path(text: &str) -> Result<Option<Address>, AddressError> {
    if text.is_empty() {
        return Err(AddressError::Empty);
    }
    if text.len() > MAX_PATH {
        return Err(AddressError::PathTooLong(text.len()));
    }
    let inner = text
        .strip_prefix('<')
        .ok_or(AddressError::MissingAngleBrackets)?;
    let inner = match inner.strip_suffix('>') {
        Some(inner) => inner,
        None if inner.contains('>') => return Err(AddressError::TrailingText),
        None => return Err(AddressError::MissingAngleBrackets),
    };
    if inner.is_empty() {
        return Ok(None);
    }
    let mailbox = strip_source_route(inner)?;
    parse_mailbox_inner(mailbox).map(Some)
}

/// Parses a bare mailbox (`alice@example.com`), as an administrator types
/// it. No angle brackets, no source route.
pub fn parse_mailbox(text: &str) -> Result<Address, AddressError> {
    if text.is_empty() {
        return Err(AddressError::Empty);
    }
    if text.len() + 2 > MAX_PATH {
        return Err(AddressError::PathTooLong(text.len() + 2));
    }
    parse_mailbox_inner(text)
}

/// Removes `@a,@b:` from the front of a path, checking each host.
fn strip_source_route(text: &str) -> Result<&str, AddressError> {
    if !text.starts_with('@') {
        return Ok(text);
    }
    let (route, rest) = text
        .split_once(':')
        .ok_or(AddressError::InvalidSourceRoute)?;
    for hop in route.split(',') {
        let host = hop
            .strip_prefix('@')
            .ok_or(AddressError::InvalidSourceRoute)?;
        if host.is_empty() {
            return Err(AddressError::InvalidSourceRoute);
        }
        parse_domain(host)?;
    }
    Ok(rest)
}

fn parse_mailbox_inner(text: &str) -> Result<Address, AddressError> {
    if text.chars().any(char::is_control) {
        return Err(AddressError::ControlCharacter);
    }
    let (local, domain) = if text.starts_with('"') {
        let (local, rest) = parse_quoted(text)?;
        let domain = rest.strip_prefix('@').ok_or(AddressError::TextAfterQuote)?;
        (local, domain)
    } else {
        let (local, domain) = text.split_once('@').ok_or(AddressError::MissingAt)?;
        if local.is_empty() {
            return Err(AddressError::EmptyLocalPart);
        }
        check_dot_atom(local)?;
        (local.to_owned(), domain)
    };
    if local.len() > MAX_LOCAL {
        return Err(AddressError::LocalPartTooLong(local.len()));
    }
    if domain.contains('@') {
        return Err(AddressError::ExtraAt);
    }
    Ok(Address {
        local,
        domain: parse_domain(domain)?,
    })
}

/// Whether `c` is `atext` (RFC 5322 3.2.3, with UTF-8 from RFC 6531).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn check_dot_atom(local: &str) -> Result<(), AddressError> {
    for atom in local.split('.') {
        if atom.is_empty() {
            return Err(AddressError::MisplacedDot);
        }
        if let Some(c) = atom.chars().find(|&c| !is_atext(c)) {
            return Err(if c == '@' {
                AddressError::ExtraAt
            } else {
                AddressError::InvalidLocalChar(c)
            });
        }
    }
    Ok(())
}

/// Parses a quoted string at the start of `text`; returns the canonical local
/// part and the rest after the closing quote.
fn parse_quoted(text: &str) -> Result<(String, &str), AddressError> {
    let mut content = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                let written = i + 1;
                if written > MAX_LOCAL {
                    return Err(AddressError::LocalPartTooLong(written));
                }
                if content.is_empty() {
                    return Err(AddressError::EmptyLocalPart);
                }
                return Ok((canonical_local(&content), &text[written..]));
            }
            '\\' => match chars.next() {
                Some((_, e)) if (' '..='~').contains(&e) => content.push(e),
                _ => return Err(AddressError::InvalidEscape),
            },
            c => content.push(c),
        }
    }
    Err(AddressError::UnterminatedQuote)
}

/// The shortest way to write a local part whose unquoted content is `content`.
fn canonical_local(content: &str) -> String {
    if check_dot_atom(content).is_ok() {
        return content.to_owned();
    }
    let mut out = String::with_capacity(content.len() + 2);
    out.push('"');
    for c in content.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Parses a domain name or address literal; names are lowercased and lose a
/// trailing dot.
fn parse_domain(text: &str) -> Result<Domain, AddressError> {
    if text.is_empty() {
        return Err(AddressError::EmptyDomain);
    }
    if text.len() > MAX_DOMAIN {
        return Err(AddressError::DomainTooLong(text.len()));
    }
    if let Some(literal) = text.strip_prefix('[') {
        let bad = || AddressError::InvalidLiteral(text.to_owned());
        let literal = literal.strip_suffix(']').ok_or_else(bad)?;
        let tag = literal
            .get(..5)
            .filter(|tag| tag.eq_ignore_ascii_case("IPv6:"));
        return match tag {
            Some(_) => literal[5..].parse().map(Domain::Ipv6).map_err(|_| bad()),
            None => literal.parse().map(Domain::Ipv4).map_err(|_| bad()),
        };
    }
    let name = text.strip_suffix('.').unwrap_or(text);
    for label in name.split('.') {
        let valid = !label.is_empty()
            && label.len() <= MAX_LABEL
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii());
        if !valid {
            return Err(AddressError::InvalidLabel(label.to_owned()));
        }
    }
    Ok(Domain::Name(name.to_lowercase()))
}

/// Parses a domain name as an administrator types it (`Example.COM.`) into
/// its normalized form (`example.com`).
pub fn normalize_domain(text: &str) -> Result<String, AddressError> {
    match parse_domain(text)? {
        Domain::Name(name) => Ok(name),
        Domain::Ipv4(_) | Domain::Ipv6(_) => Err(AddressError::InvalidLabel(text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> String {
        match parse_path(text) {
            Ok(Some(a)) => a.to_string(),
            Ok(None) => "<>".to_owned(),
            Err(e) => panic!("{text} refused: {e}"),
        }
    }

    #[test]
    fn accepts() {
        let table = [
            ("<alice@example.com>", "alice@example.com"),
            ("<Alice@EXAMPLE.com.>", "Alice@example.com"),
            ("<>", "<>"),
            ("<a.b+tag@sub.example.org>", "a.b+tag@sub.example.org"),
            ("<\"alice\"@example.com>", "alice@example.com"),
            ("<\"a b\"@x.example>", "\"a b\"@x.example"),
            ("<\"a\\\"b\"@x.example>", "\"a\\\"b\"@x.example"),
            ("<\"a..b\"@x.example>", "\"a..b\"@x.example"),
            ("<@a.example,@b.example:user@c.example>", "user@c.example"),
            ("<user@[192.0.2.1]>", "user@[192.0.2.1]"),
            ("<user@[ipv6:2001:DB8::1]>", "user@[IPv6:2001:db8::1]"),
            (
                "<user%foreign.example@local.example>",
                "user%foreign.example@local.example",
            ),
            (
                "<foreign.example!user@local.example>",
                "foreign.example!user@local.example",
            ),
            (
                "<\"user@foreign.example\"@local.example>",
                "\"user@foreign.example\"@local.example",
            ),
            ("<jürgen@bücher.example>", "jürgen@bücher.example"),
            ("<用户@例子.广告>", "用户@例子.广告"),
            ("<postmaster@localhost>", "postmaster@localhost"),
            ("<a@xn--bcher-kva.example>", "a@xn--bcher-kva.example"),
        ];
        for (input, want) in table {
            assert_eq!(ok(input), want, "{input}");
        }
    }

    #[test]
    fn rejects() {
        let long_local = format!("<{}@x.example>", "a".repeat(65));
        let long_label = format!("<a@{}.example>", "b".repeat(64));
        let long_path = format!("<a@{}example>", "abcdefghi.".repeat(26));
        let table: Vec<(&str, AddressError)> = vec![
            ("", AddressError::Empty),
            ("alice@example.com", AddressError::MissingAngleBrackets),
            ("<alice@example.com", AddressError::MissingAngleBrackets),
            ("<alice@example.com> x", AddressError::TrailingText),
            ("<alice>", AddressError::MissingAt),
            ("<@>", AddressError::InvalidSourceRoute),
            ("<@example.com>", AddressError::InvalidSourceRoute),
            ("<alice@>", AddressError::EmptyDomain),
            ("<a@b@example.com>", AddressError::ExtraAt),
            ("<a\r\nb@example.com>", AddressError::ControlCharacter),
            ("<a\0@example.com>", AddressError::ControlCharacter),
            ("<a b@example.com>", AddressError::InvalidLocalChar(' ')),
            ("<a(b)@example.com>", AddressError::InvalidLocalChar('(')),
            ("<.a@example.com>", AddressError::MisplacedDot),
            ("<a.@example.com>", AddressError::MisplacedDot),
            ("<a..b@example.com>", AddressError::MisplacedDot),
            ("<\"ab@example.com>", AddressError::UnterminatedQuote),
            ("<\"a\"b@example.com>", AddressError::TextAfterQuote),
            ("<\"\"@example.com>", AddressError::EmptyLocalPart),
            ("<a@-x.example>", AddressError::InvalidLabel("-x".into())),
            ("<a@x-.example>", AddressError::InvalidLabel("x-".into())),
            ("<a@x..example>", AddressError::InvalidLabel("".into())),
            ("<a@x_y.example>", AddressError::InvalidLabel("x_y".into())),
            (
                "<a@[300.1.1.1]>",
                AddressError::InvalidLiteral("[300.1.1.1]".into()),
            ),
            (
                "<a@[IPv6:zz]>",
                AddressError::InvalidLiteral("[IPv6:zz]".into()),
            ),
            (
                "<a@[1.2.3.4>",
                AddressError::InvalidLiteral("[1.2.3.4".into()),
            ),
            ("<@a.example:>", AddressError::Empty),
            (
                "<@a.example,b.example:u@c.example>",
                AddressError::InvalidSourceRoute,
            ),
            (
                "<@a_b:u@c.example>",
                AddressError::InvalidLabel("a_b".into()),
            ),
            (&long_local, AddressError::LocalPartTooLong(65)),
            (&long_label, AddressError::InvalidLabel("b".repeat(64))),
        ];
        for (input, want) in table {
            let got = parse_path(input);
            // `<@a.example:>` leaves an empty mailbox; accept any refusal there.
            if input == "<@a.example:>" {
                assert!(got.is_err(), "{input}");
                continue;
            }
            assert_eq!(got, Err(want), "{input}");
        }
        assert!(matches!(
            parse_path(&long_path),
            Err(AddressError::PathTooLong(_))
        ));
        let long_domain = format!("a@{}", "abcdefghi.".repeat(26));
        assert!(matches!(
            parse_mailbox_inner(&long_domain),
            Err(AddressError::DomainTooLong(_))
        ));
    }

    #[test]
    fn open_relay_tricks_keep_the_local_domain() {
        let a = parse_mailbox("user%foreign.example@local.example").expect("valid");
        assert_eq!(a.local, "user%foreign.example");
        assert_eq!(a.domain, Domain::Name("local.example".into()));
        let a = parse_mailbox("foreign.example!user@local.example").expect("valid");
        assert_eq!(a.local, "foreign.example!user");
        assert_eq!(a.domain.name(), Some("local.example"));
        let a = parse_mailbox("\"user@foreign.example\"@local.example").expect("valid");
        assert_eq!(a.local, "\"user@foreign.example\"");
        assert_eq!(a.domain.name(), Some("local.example"));
        let a = parse_path("<@local.example:user@foreign.example>")
            .expect("valid")
            .expect("not null");
        assert_eq!(a.local, "user");
        assert_eq!(a.domain.name(), Some("foreign.example"));
        // A bare mailbox typed by an admin has no source route.
        assert!(parse_mailbox("@local.example:user@foreign.example").is_err());
    }

    #[test]
    fn errors_read_as_sentences() {
        let e = parse_path("<a@b@c>").expect_err("refused");
        assert_eq!(
            e.to_string(),
            "the address has a second '@'; quote the local part if it is meant"
        );
        assert_eq!(
            AddressError::LocalPartTooLong(70).to_string(),
            "the local part is 70 octets long; at most 64 are allowed"
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,80}", bracket in proptest::bool::ANY) {
            let input = if bracket { format!("<{text}>") } else { text.clone() };
            if let Ok(Some(address)) = parse_path(&input) {
                // Whatever is accepted prints back to something accepted as itself.
                let again = parse_mailbox(&address.to_string());
                proptest::prop_assert_eq!(again, Ok(address));
            }
            let _ = parse_mailbox(&text);
        }

        #[test]
        fn address_shaped_text_never_panics(text in "[\"@<>:,.\\\\a-z\\[\\] é-]{0,40}") {
            let _ = parse_path(&format!("<{text}>"));
            let _ = parse_mailbox(&text);
        }
    }

    #[test]
    fn normalize_domain_lowercases() {
        assert_eq!(
            normalize_domain("Example.COM."),
            Ok("example.com".to_owned())
        );
        assert!(normalize_domain("[1.2.3.4]").is_err());
    }
}
