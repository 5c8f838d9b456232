//! Reading IMAP commands before login (RFC 9051 2.2, 4.3; RFC 7888):
//! assembling a command from its lines and literals under strict limits,
//! then splitting it into a tag, a name and arguments.
//!
//! Only what the pre-login commands need is understood: atoms, quoted
//! strings with `\"` and `\\` escapes, literals `{n}` and `{n+}`,
//! parenthesized lists and `NIL`. Lines may end in CRLF or a bare LF, as
//! Dovecot accepts; a bare CR inside a line makes the command malformed.

/// What the reader found in its input.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// A whole command, lines and literals included.
    Command(Vec<u8>),
    /// A synchronizing literal `{n}` was announced: the client waits for a
    /// continuation request before it sends the octets.
    Continue,
    /// A synchronizing literal over the limit was announced; the command is
    /// dropped (the client sends no octets before the continuation) and is
    /// answered `BAD [TOOBIG]` with this tag.
    LiteralRefused(String),
    /// A line or a non-synchronizing literal over the limit: the rest of
    /// the input cannot be framed, the session must end.
    TooBig,
}

/// Frames commands out of a byte stream.
#[derive(Debug)]
pub struct CommandReader {
    /// Bytes received and not yet returned as part of a command.
    buf: Vec<u8>,
    /// How far `buf` has been checked: the current command's complete
    /// lines and literals end here.
    scanned: usize,
    /// When inside a literal: the offset in `buf` where it ends.
    literal_end: Option<usize>,
    /// Longest line.
    max_line: usize,
    /// Largest literal.
    max_literal: usize,
    /// Largest whole command.
    max_command: usize,
}

impl CommandReader {
    /// A reader with these limits (octets).
    pub fn new(max_line: usize, max_literal: usize, max_command: usize) -> CommandReader {
        CommandReader {
            buf: Vec::new(),
            scanned: 0,
            literal_end: None,
            max_line,
            max_literal,
            max_command,
        }
    }

    /// Adds received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not part of any command returned so far.
    pub fn take_rest(&mut self) -> Vec<u8> {
        self.scanned = 0;
        self.literal_end = None;
        std::mem::take(&mut self.buf)
    }

    /// Drops everything buffered (after `STARTTLS`: nothing sent in
    /// cleartext may be read as if it came through TLS).
    pub fn clear(&mut self) {
        self.take_rest();
    }

    /// Whether bytes are buffered.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next event, or `None` when more input is needed.
    pub fn next_read(&mut self) -> Option<Read> {
        loop {
            if let Some(end) = self.literal_end {
                if self.buf.len() < end {
                    return None;
                }
                self.scanned = end;
                self.literal_end = None;
            }
            let rest = &self.buf[self.scanned..];
            let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
                if rest.len() > self.max_line || self.buf.len() > self.max_command {
                    return Some(Read::TooBig);
                }
                return None;
            };
            if lf > self.max_line {
                return Some(Read::TooBig);
            }
            let line_end = self.scanned + lf + 1;
            let line = strip_eol(&rest[..=lf]);
            match literal_announced(line) {
                Some((n, synchronizing)) => {
                    if n > self.max_literal || line_end + n > self.max_command {
                        if synchronizing {
                            let tag = tag_of(&self.buf);
                            self.buf.drain(..line_end);
                            self.scanned = 0;
                            return Some(Read::LiteralRefused(tag));
                        }
                        return Some(Read::TooBig);
                    }
                    self.scanned = line_end;
                    self.literal_end = Some(line_end + n);
                    if synchronizing {
                        return Some(Read::Continue);
                    }
                }
                None => {
                    let command: Vec<u8> = self.buf.drain(..line_end).collect();
                    self.scanned = 0;
                    return Some(Read::Command(command));
                }
            }
        }
    }
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The `{n}` or `{n+}` a line ends with: the length and whether it is
/// synchronizing.
fn literal_announced(line: &[u8]) -> Option<(usize, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let spec = &inner[open + 1..];
    let (digits, synchronizing) = match spec.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (spec, true),
    };
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((n, synchronizing))
}

/// The tag at the start of `bytes`, or `*` when there is none.
pub fn tag_of(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .position(|&b| !is_tag_char(b))
        .unwrap_or(bytes.len());
    if end == 0 {
        "*".to_owned()
    } else {
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    }
}

/// An argument of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// An atom (command names, mechanism names).
    Atom(String),
    /// A quoted string or a literal, unescaped.
    String(Vec<u8>),
    /// `NIL`.
    Nil,
    /// A parenthesized list.
    List(Vec<Arg>),
}

impl Arg {
    /// The octets of a string or an atom (`LOGIN` accepts both).
    pub fn astring(&self) -> Option<&[u8]> {
        match self {
            Arg::Atom(a) => Some(a.as_bytes()),
            Arg::String(s) => Some(s),
            Arg::Nil | Arg::List(_) => None,
        }
    }
}

/// A command split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The client's tag.
    pub tag: String,
    /// The command name, upper-cased.
    pub name: String,
    /// The arguments.
    pub args: Vec<Arg>,
}

/// Why a command could not be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// The tag when one could be read, else `*`.
    pub tag: String,
}

/// Splits a framed command.
pub fn parse(command: &[u8]) -> Result<Command, Malformed> {
    let tag = tag_of(command);
    let bad = || Malformed { tag: tag.clone() };
    let mut p = Parser {
        input: strip_eol(command),
        pos: 0,
    };
    let parsed_tag = p.atom(is_tag_char).ok_or_else(bad)?;
    p.space().ok_or_else(bad)?;
    let name = p.atom(is_atom_char).ok_or_else(bad)?.to_ascii_uppercase();
    let mut args = Vec::new();
    while p.pos < p.input.len() {
        p.space().ok_or_else(bad)?;
        args.push(p.arg(0).ok_or_else(bad)?);
    }
    Ok(Command {
        tag: parsed_tag,
        name,
        args,
    })
}

/// Deepest list nesting accepted (ID's argument is one level).
const MAX_DEPTH: usize = 4;

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn space(&mut self) -> Option<()> {
        (self.peek()? == b' ').then(|| self.pos += 1)
    }

    fn atom(&mut self, allowed: fn(u8) -> bool) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(allowed) {
            self.pos += 1;
        }
        (self.pos > start)
            .then(|| String::from_utf8_lossy(&self.input[start..self.pos]).into_owned())
    }

    fn arg(&mut self, depth: usize) -> Option<Arg> {
        match self.peek()? {
            b'"' => self.quoted().map(Arg::String),
            b'{' => self.literal().map(Arg::String),
            b'(' if depth < MAX_DEPTH => {
                self.pos += 1;
                let mut items = Vec::new();
                if self.peek()? == b')' {
                    self.pos += 1;
                    return Some(Arg::List(items));
                }
                loop {
                    items.push(self.arg(depth + 1)?);
                    match self.peek()? {
                        b' ' => self.pos += 1,
                        b')' => {
                            self.pos += 1;
                            return Some(Arg::List(items));
                        }
                        _ => return None,
                    }
                }
            }
            _ => {
                let atom = self.atom(is_astring_char)?;
                Some(if atom.eq_ignore_ascii_case("NIL") {
                    Arg::Nil
                } else {
                    Arg::Atom(atom)
                })
            }
        }
    }

    fn quoted(&mut self) -> Option<Vec<u8>> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let b = self.peek()?;
            self.pos += 1;
            match b {
                b'"' => return Some(out),
                b'\\' => {
                    let escaped = self.peek()?;
                    if escaped != b'"' && escaped != b'\\' {
                        return None;
                    }
                    out.push(escaped);
                    self.pos += 1;
                }
                b'\r' | b'\n' | 0 => return None,
                _ => out.push(b),
            }
        }
    }

    /// `{n}` or `{n+}`, the line end, then n octets.
    fn literal(&mut self) -> Option<Vec<u8>> {
        let close = self.input[self.pos..].iter().position(|&b| b == b'}')? + self.pos;
        let spec = &self.input[self.pos + 1..close];
        let digits = spec.strip_suffix(b"+").unwrap_or(spec);
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
        let mut pos = close + 1;
        match self.input.get(pos..pos + 2) {
            Some(b"\r\n") => pos += 2,
            _ if self.input.get(pos) == Some(&b'\n') => pos += 1,
            _ => return None,
        }
        let octets = self.input.get(pos..pos + n)?.to_vec();
        if octets.contains(&0) {
            return None;
        }
        self.pos = pos + n;
        Some(octets)
    }
}

/// ATOM-CHAR (RFC 9051 9): any CHAR except atom-specials.
fn is_atom_char(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// ASTRING-CHAR: ATOM-CHAR or `]`.
fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

/// Tag characters: ASTRING-CHAR except `+`.
fn is_tag_char(b: u8) -> bool {
    is_astring_char(b) && b != b'+'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> CommandReader {
        CommandReader::new(100, 50, 200)
    }

    fn drain(r: &mut CommandReader) -> Vec<Read> {
        std::iter::from_fn(|| r.next_read()).collect()
    }

    #[test]
    fn frames_lines_and_literals() {
        let mut r = reader();
        r.feed(b"a1 NOOP\r\na2 LOGIN {5}\r\n");
        assert_eq!(
            drain(&mut r),
            vec![Read::Command(b"a1 NOOP\r\n".to_vec()), Read::Continue]
        );
        r.feed(b"al\"ce {3+}\r\np w\r\nx");
        assert_eq!(
            drain(&mut r),
            vec![Read::Command(
                b"a2 LOGIN {5}\r\nal\"ce {3+}\r\np w\r\n".to_vec()
            )]
        );
        assert_eq!(r.take_rest(), b"x");
    }

    #[test]
    fn a_literal_may_hold_a_line_end() {
        let mut r = reader();
        r.feed(b"a LOGIN {4+}\r\na\r\nb \"p\"\r\n");
        let Some(Read::Command(c)) = r.next_read() else {
            panic!("no command")
        };
        let parsed = parse(&c).expect("parse");
        assert_eq!(
            parsed.args,
            vec![Arg::String(b"a\r\nb".to_vec()), Arg::String(b"p".to_vec())]
        );
    }

    #[test]
    fn limits() {
        let mut r = reader();
        r.feed(b"a LOGIN {51}\r\n");
        assert_eq!(r.next_read(), Some(Read::LiteralRefused("a".into())));
        assert!(r.is_empty());
        r.feed(b"b LOGIN {51+}\r\n");
        assert_eq!(r.next_read(), Some(Read::TooBig));
        let mut r = reader();
        r.feed(&[b'x'; 101]);
        assert_eq!(r.next_read(), Some(Read::TooBig));
        let mut r = reader();
        r.feed(b"a LOGIN {50+}\r\n");
        r.feed(&[b'y'; 50]);
        r.feed(b" {50+}\r\n");
        r.feed(&[b'z'; 50]);
        r.feed(b" {50+}\r\n");
        r.feed(&[b'w'; 50]);
        r.feed(b" {20+}\r\n");
        assert_eq!(r.next_read(), Some(Read::TooBig), "whole command over 200");
    }

    #[test]
    fn splits_arguments() {
        let c = parse(b"A01 login \"a\\\\b\\\"c\" pass]word\r\n").expect("parse");
        assert_eq!(c.tag, "A01");
        assert_eq!(c.name, "LOGIN");
        assert_eq!(
            c.args,
            vec![
                Arg::String(b"a\\b\"c".to_vec()),
                Arg::Atom("pass]word".into())
            ]
        );
        let c = parse(b"x ID (\"name\" \"mutt\" \"version\" NIL)\n").expect("parse");
        assert_eq!(
            c.args,
            vec![Arg::List(vec![
                Arg::String(b"name".to_vec()),
                Arg::String(b"mutt".to_vec()),
                Arg::String(b"version".to_vec()),
                Arg::Nil,
            ])]
        );
        assert_eq!(
            parse(b"x ID ()\r\n").expect("parse").args,
            vec![Arg::List(vec![])]
        );
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            &b"\r\n"[..],
            b"a\r\n",
            b"a  NOOP\r\n",
            b"a LOGIN \"open\r\n",
            b"a LOGIN \"bad\\escape\" x\r\n",
            b"a LOGIN (((((x)))))\r\n",
            b"a LOGIN {5}\r\nab\r\n",
            b"a LOGIN x\ry z\r\n",
            b"a+ NOOP\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse(b"t1 (\r\n").expect_err("malformed").tag, "t1");
    }
}
