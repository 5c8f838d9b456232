//! A cursor over a statement's values, with typed accessors that explain
//! what was expected when the value is not there or not of that kind.

use std::net::{IpAddr, SocketAddr};

use crate::ast::ipnet::Network;
use crate::diagnostic::{Code, Diagnostic, Label};
use crate::literal;
use crate::source::{Span, Spanned};
use crate::suggest;
use crate::syntax::{join_or, Arg, ArgKind, Statement};

/// The result of reading one statement: the first problem stops that statement only.
pub type Read<T> = Result<T, Diagnostic>;

/// Reads a statement's values left to right.
pub struct Args<'s> {
    stmt: &'s Statement,
    pos: usize,
}

impl<'s> Args<'s> {
    /// A cursor at the first value of `stmt`.
    pub fn new(stmt: &'s Statement) -> Args<'s> {
        Args { stmt, pos: 0 }
    }

    /// The statement being read.
    pub fn statement(&self) -> &'s Statement {
        self.stmt
    }

    /// The next value without consuming it.
    pub fn peek(&self) -> Option<&'s Arg> {
        self.stmt.args.get(self.pos)
    }

    /// The next value as a bare word, if it is one.
    pub fn peek_word(&self) -> Option<&'s str> {
        match self.peek().map(|a| &a.kind) {
            Some(ArgKind::Word(w)) => Some(w),
            _ => None,
        }
    }

    /// True when every value has been read.
    pub fn is_done(&self) -> bool {
        self.pos >= self.stmt.args.len()
    }

    fn take(&mut self) -> Option<&'s Arg> {
        let arg = self.stmt.args.get(self.pos);
        if arg.is_some() {
            self.pos += 1;
        }
        arg
    }

    /// The error for a missing or wrong value where `what` was expected.
    pub fn expected(&self, what: &str) -> Diagnostic {
        match self.peek() {
            Some(arg) => Diagnostic::error(
                Code::Arguments,
                format!(
                    "`{}` expects {what} here, not {}",
                    self.stmt.keyword.value,
                    arg.kind.describe()
                ),
                Label::new(arg.span, format!("expected {what}")),
            )
            .with_help(self.takes()),
            None => {
                let end = self.stmt.head();
                let at = Span {
                    start: end.end,
                    ..end
                };
                Diagnostic::error(
                    Code::Arguments,
                    format!("`{}` needs {what}", self.stmt.keyword.value),
                    Label::new(at, format!("{what} missing here")),
                )
                .with_help(self.takes())
            }
        }
    }

    /// The help for a wrong or missing value: where the statement's form
    /// is described.
    fn takes(&self) -> String {
        format!(
            "see `{}` in docs/language.md for the values it takes",
            self.stmt.keyword.value
        )
    }

    /// Consumes the exact word `word` if it is next.
    pub fn eat(&mut self, word: &str) -> Option<Span> {
        match self.peek() {
            Some(Arg {
                kind: ArgKind::Word(w),
                span,
            }) if w == word => {
                self.pos += 1;
                Some(*span)
            }
            _ => None,
        }
    }

    /// Requires the exact word `word`.
    pub fn expect(&mut self, word: &str) -> Read<Span> {
        if let Some(span) = self.eat(word) {
            return Ok(span);
        }
        let mut diagnostic = self.expected(&format!("`{word}`"));
        if let Some(w) = self.peek_word() {
            if suggest::closest(w, [word]).is_some() {
                diagnostic = diagnostic.with_help(format!("did you mean `{word}`?"));
            }
        }
        Err(diagnostic)
    }

    /// One of a fixed set of words; `what` names the set for messages.
    pub fn choice(&mut self, what: &str, options: &[&'static str]) -> Read<Spanned<&'static str>> {
        let quoted: Vec<String> = options.iter().map(|o| format!("`{o}`")).collect();
        let quoted: Vec<&str> = quoted.iter().map(String::as_str).collect();
        let label = format!("{what} ({})", join_or(&quoted));
        let Some(arg) = self.peek() else {
            return Err(self.expected(&label));
        };
        let text = match &arg.kind {
            ArgKind::Word(w) | ArgKind::String(w) => w.as_str(),
            _ => return Err(self.expected(&label)),
        };
        if let Some(found) = options.iter().find(|o| **o == text) {
            self.pos += 1;
            return Ok(Spanned::new(*found, arg.span));
        }
        let mut diagnostic = Diagnostic::error(
            Code::Arguments,
            format!(
                "`{text}` is not {what}: `{}` takes {}",
                self.stmt.keyword.value,
                join_or(&quoted)
            ),
            Label::new(arg.span, format!("not {what}")),
        );
        if let Some(s) = suggest::closest(text, options.iter().copied()) {
            diagnostic = diagnostic.with_help(format!("did you mean `{s}`?"));
        }
        Err(diagnostic)
    }

    /// A string, or a bare word standing for one (`hostname mail.example.com`).
    pub fn text(&mut self, what: &str) -> Read<Spanned<String>> {
        match self.peek() {
            Some(Arg {
                kind: ArgKind::String(s) | ArgKind::Word(s),
                span,
            }) => {
                self.pos += 1;
                Ok(Spanned::new(s.clone(), *span))
            }
            _ => Err(self.expected(what)),
        }
    }

    /// A quoted string (names and free text are always quoted).
    pub fn string(&mut self, what: &str) -> Read<Spanned<String>> {
        match self.peek() {
            Some(Arg {
                kind: ArgKind::String(s),
                span,
            }) => {
                self.pos += 1;
                Ok(Spanned::new(s.clone(), *span))
            }
            Some(Arg {
                kind: ArgKind::Word(w),
                ..
            }) => Err(self
                .expected(what)
                .with_help(format!("write it in double quotes: \"{w}\""))),
            _ => Err(self.expected(what)),
        }
    }

    /// A checked value: the closure turns the text into the value or says why not.
    fn checked<T>(
        &mut self,
        what: &str,
        convert: impl FnOnce(&ArgKind) -> Option<Result<T, String>>,
    ) -> Read<Spanned<T>> {
        let Some(arg) = self.peek() else {
            return Err(self.expected(what));
        };
        match convert(&arg.kind) {
            Some(Ok(value)) => {
                self.pos += 1;
                Ok(Spanned::new(value, arg.span))
            }
            Some(Err(message)) => Err(Diagnostic::error(
                Code::Value,
                message,
                Label::new(arg.span, format!("expected {what}")),
            )
            .with_help(format!("write {what}"))),
            None => Err(self.expected(what)),
        }
    }

    /// A non-negative integer.
    pub fn number(&mut self, what: &str) -> Read<Spanned<u32>> {
        self.checked(what, |kind| match kind {
            ArgKind::Number(n) => Some(
                n.parse::<u32>()
                    .map_err(|_| format!("{n} is too large for {what}")),
            ),
            _ => None,
        })
    }

    /// A port number.
    pub fn port(&mut self) -> Read<Spanned<u16>> {
        self.checked("a port", |kind| match kind {
            ArgKind::Number(n) => Some(literal::port(n)),
            _ => None,
        })
    }

    /// A size such as `25MB`.
    pub fn size(&mut self) -> Read<Spanned<u64>> {
        self.checked("a size like `25MB`", |kind| match kind {
            ArgKind::Size(n, u) => Some(literal::size(n, u)),
            ArgKind::Number(n) => Some(Err(format!(
                "`{n}` has no unit: write the size with one, like `{n}MB` or `{n}KiB`"
            ))),
            _ => None,
        })
    }

    /// A duration such as `30s`, in milliseconds.
    pub fn duration_ms(&mut self) -> Read<Spanned<u64>> {
        self.checked("a duration like `30s`", |kind| match kind {
            ArgKind::Duration(n, u) => Some(literal::duration_ms(n, u)),
            ArgKind::Number(n) => Some(Err(format!(
                "`{n}` has no unit: write the duration with one, like `{n}s` or `{n}m`"
            ))),
            _ => None,
        })
    }

    /// A duration in whole seconds.
    pub fn duration_s(&mut self) -> Read<Spanned<u64>> {
        let ms = self.duration_ms()?;
        if ms.value % 1000 != 0 {
            return Err(Diagnostic::error(
                Code::Value,
                "this duration must be a whole number of seconds",
                Label::new(ms.span, "not whole seconds"),
            ));
        }
        Ok(Spanned::new(ms.value / 1000, ms.span))
    }

    /// A socket address: `0.0.0.0:25`, `[::]:993`.
    pub fn socket(&mut self) -> Read<Spanned<SocketAddr>> {
        self.checked("a socket address like `0.0.0.0:25`", |kind| match kind {
            ArgKind::SocketV4(ip, port) => {
                Some(literal::ipv4(ip).and_then(|a| literal::socket(IpAddr::V4(a), port)))
            }
            ArgKind::SocketV6(ip, port) => {
                Some(literal::ipv6(ip).and_then(|a| literal::socket(IpAddr::V6(a), port)))
            }
            ArgKind::Number(n) => Some(Err(format!(
                "`{n}` is only a port: write the address too, like `0.0.0.0:{n}` or `[::]:{n}`"
            ))),
            _ => None,
        })
    }

    /// A host and port: `relay.isp.example:587`, `"10.0.0.11":24`, `10.0.0.11:24`.
    pub fn host_port(&mut self) -> Read<Spanned<(String, u16)>> {
        self.checked(
            "a host and port like `relay.example:25`",
            |kind| match kind {
                ArgKind::HostPort(host, port) => {
                    Some(literal::domain(host).and_then(|h| Ok((h, literal::port(port)?))))
                }
                ArgKind::StringHostPort(host, port) => {
                    Some(literal::port(port).map(|p| (host.clone(), p)))
                }
                ArgKind::SocketV4(ip, port) => {
                    Some(literal::ipv4(ip).and_then(|a| Ok((a.to_string(), literal::port(port)?))))
                }
                ArgKind::SocketV6(ip, port) => {
                    Some(literal::ipv6(ip).and_then(|a| Ok((a.to_string(), literal::port(port)?))))
                }
                _ => None,
            },
        )
    }

    /// A network `10.0.0.0/8`, or one address standing for a /32 or /128.
    pub fn network(&mut self) -> Read<Spanned<Network>> {
        self.checked("a network like `10.0.0.0/8`", |kind| match kind {
            ArgKind::NetworkV4(ip, prefix) => {
                Some(literal::ipv4(ip).and_then(|a| literal::network(IpAddr::V4(a), prefix)))
            }
            ArgKind::NetworkV6(ip, prefix) => {
                Some(literal::ipv6(ip).and_then(|a| literal::network(IpAddr::V6(a), prefix)))
            }
            ArgKind::IpV4(ip) => Some(literal::ipv4(ip).map(|a| Network {
                addr: IpAddr::V4(a),
                prefix: 32,
            })),
            ArgKind::IpV6(ip) => Some(literal::ipv6(ip).map(|a| Network {
                addr: IpAddr::V6(a),
                prefix: 128,
            })),
            _ => None,
        })
    }

    /// `on` or `off`.
    pub fn switch(&mut self) -> Read<Spanned<bool>> {
        let word = self.choice("a switch", &["on", "off"])?;
        Ok(Spanned::new(word.value == "on", word.span))
    }

    /// An address pattern in quotes: `"*"`, `"*.example"`, `"a@example.com"`.
    pub fn pattern(&mut self) -> Read<Spanned<String>> {
        let raw = self.string("an address pattern like \"*.example.com\"")?;
        literal::pattern(&raw.value)
            .map(|p| Spanned::new(p, raw.span))
            .map_err(|m| {
                Diagnostic::error(Code::Value, m, Label::new(raw.span, "invalid pattern"))
                    .with_help("write a pattern like \"*.example.com\", \"*@example.com\" or \"alice@example.com\"")
            })
    }

    /// An SMTP address in quotes, domain normalised.
    pub fn address(&mut self) -> Read<Spanned<String>> {
        let raw = self.string("an address like \"alice@example.com\"")?;
        literal::address(&raw.value)
            .map(|a| Spanned::new(a, raw.span))
            .map_err(|m| {
                Diagnostic::error(Code::Value, m, Label::new(raw.span, "invalid address"))
                    .with_help("write an address like \"alice@example.com\"")
            })
    }

    /// A comma-separated list of at least one item.
    pub fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Read<T>) -> Read<Vec<T>> {
        let mut items = vec![item(self)?];
        while matches!(self.peek().map(|a| &a.kind), Some(ArgKind::Comma)) {
            self.pos += 1;
            items.push(item(self)?);
        }
        Ok(items)
    }

    /// Requires that nothing is left.
    pub fn end(&mut self) -> Read<()> {
        match self.take() {
            None => Ok(()),
            Some(arg) => {
                let message = if arg.kind == ArgKind::Comma {
                    format!("`{}` takes one value, not a list", self.stmt.keyword.value)
                } else {
                    format!(
                        "`{}` has {} too many here",
                        self.stmt.keyword.value,
                        arg.kind.describe()
                    )
                };
                Err(Diagnostic::error(
                    Code::Arguments,
                    message,
                    Label::new(arg.span, "unexpected"),
                )
                .with_help("see the statement's form in docs/language.md; `;` separates two statements on one line"))
            }
        }
    }
}
