//! Replies of the next hop: a three-digit code, an optional enhanced status
//! code (RFC 3463), and the text of one or more lines.

use std::fmt;

/// An enhanced status code `class.subject.detail` (RFC 3463).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// 2 (success), 4 (persistent transient) or 5 (permanent).
    pub class: u8,
    /// The subject, 0 to 999.
    pub subject: u16,
    /// The detail, 0 to 999.
    pub detail: u16,
}

impl Status {
    /// `class.subject.detail`.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Status {
        Status {
            class,
            subject,
            detail,
        }
    }

    /// Parses `x.y.z` at the start of `text`, followed by a space or the end.
    fn parse_prefix(text: &str) -> Option<Status> {
        let word = text.split(' ').next()?;
        let mut parts = word.split('.');
        let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let number = |s: &str, max: usize| {
            (!s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u16>().ok())
                .flatten()
        };
        let class = number(class, 1)?;
        if !matches!(class, 2 | 4 | 5) {
            return None;
        }
        Some(Status::new(
            class as u8,
            number(subject, 3)?,
            number(detail, 3)?,
        ))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// A complete reply, all its lines read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The enhanced status code at the start of the first line, when the
    /// reply carries one whose class matches the code.
    pub status: Option<Status>,
    /// The text of each line after the code and separator (and after the
    /// enhanced status code on every line that repeats it), as UTF-8 with
    /// anything else replaced.
    pub lines: Vec<String>,
}

impl Reply {
    /// Whether the code is 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// Whether the code is 4xx.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// Whether the code is 5xx.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The enhanced status code, or the generic `x.0.0` of the reply's
    /// class when the peer sent none.
    pub fn status_or_generic(&self) -> Status {
        self.status
            .unwrap_or(Status::new((self.code / 100) as u8, 0, 0))
    }
}

impl fmt::Display for Reply {
    /// `code [status ]text`, the lines joined by a space: the form of a
    /// DSN's `Diagnostic-Code: smtp; ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(status) = self.status {
            write!(f, " {status}")?;
        }
        for line in self.lines.iter().filter(|l| !l.is_empty()) {
            write!(f, " {line}")?;
        }
        Ok(())
    }
}

/// Why a reply line could not be read as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadReply(pub(crate) String);

/// Collects the lines of one reply.
#[derive(Debug, Default)]
pub(crate) struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
}

/// At most this many lines in one reply.
const MAX_LINES: usize = 200;

impl ReplyParser {
    /// Feeds one line without its line ending. `Some` when it was the last
    /// line of the reply.
    pub(crate) fn line(&mut self, line: &[u8]) -> Result<Option<Reply>, BadReply> {
        let bad = || {
            BadReply(format!(
                "malformed reply line {:?}",
                String::from_utf8_lossy(&line[..line.len().min(80)])
            ))
        };
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        let code = u16::from(line[0] - b'0') * 100
            + u16::from(line[1] - b'0') * 10
            + u16::from(line[2] - b'0');
        if !(200..600).contains(&code) && !(100..200).contains(&code) {
            return Err(bad());
        }
        if self.code.is_some_and(|c| c != code) {
            return Err(BadReply(format!(
                "reply lines with different codes {} and {code}",
                self.code.unwrap_or_default()
            )));
        }
        self.code = Some(code);
        let (last, text) = match line.get(3) {
            None => (true, &[][..]),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return Err(bad()),
        };
        if self.lines.len() >= MAX_LINES {
            return Err(BadReply(format!("reply longer than {MAX_LINES} lines")));
        }
        self.lines
            .push(String::from_utf8_lossy(text).trim_end().to_owned());
        if !last {
            return Ok(None);
        }
        let lines = std::mem::take(&mut self.lines);
        Ok(Some(finish(code, lines)))
    }
}

/// Separates the enhanced status code from the text of each line.
fn finish(code: u16, mut lines: Vec<String>) -> Reply {
    let status = lines
        .first()
        .and_then(|l| Status::parse_prefix(l))
        .filter(|s| u16::from(s.class) == code / 100);
    if let Some(status) = status {
        let prefix = status.to_string();
        for line in &mut lines {
            if let Some(rest) = line.strip_prefix(prefix.as_str()) {
                *line = rest.trim_start().to_owned();
            }
        }
    }
    Reply {
        code,
        status,
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Result<Reply, BadReply> {
        let mut parser = ReplyParser::default();
        for (i, line) in lines.iter().enumerate() {
            match parser.line(line.as_bytes())? {
                Some(reply) => {
                    assert_eq!(i, lines.len() - 1, "reply ended early");
                    return Ok(reply);
                }
                None => continue,
            }
        }
        Err(BadReply("unfinished".into()))
    }

    #[test]
    fn multi_line_with_enhanced_codes() {
        let reply = parse(&["250-mx.example", "250-PIPELINING", "250 SIZE 1000"]).expect("ok");
        assert_eq!(reply.code, 250);
        assert_eq!(reply.lines, ["mx.example", "PIPELINING", "SIZE 1000"]);
        assert_eq!(reply.status, None);

        let reply = parse(&["550-5.1.1 no such user", "550 5.1.1 here"]).expect("ok");
        assert_eq!(reply.status, Some(Status::new(5, 1, 1)));
        assert_eq!(reply.lines, ["no such user", "here"]);
        assert_eq!(reply.to_string(), "550 5.1.1 no such user here");
        assert_eq!(parse(&["250"]).expect("bare code").lines, [""]);
    }

    #[test]
    fn status_of_another_class_is_text() {
        let reply = parse(&["450 5.1.1 odd"]).expect("ok");
        assert_eq!(reply.status, None);
        assert_eq!(reply.status_or_generic(), Status::new(4, 0, 0));
        assert_eq!(parse(&["250 2.0.0.1 x"]).expect("ok").status, None);
    }

    #[test]
    fn malformed() {
        for bad in [
            &["25"][..],
            &["abc hello"],
            &["250x"],
            &["250-a", "251 b"],
            &["700 x"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
