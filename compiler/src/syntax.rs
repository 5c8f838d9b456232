//! The generic syntax tree: statements with values and blocks, straight from pest.
//!
//! pest stops at the first syntax error; this module turns that error into a
//! [`Diagnostic`] with a span and readable names. Everything after the syntax
//! (which keywords exist, what values mean) is the reader's job.

use pest::iterators::Pair;
use pest::Parser as _;

use crate::diagnostic::{Code, Diagnostic, Label};
use crate::source::{FileId, Span, Spanned};
use grammar::{Grammar, Rule};

mod grammar {
    #![allow(missing_docs)]
    use pest_derive::Parser;

    /// The pest parser generated from `grammar/mailgw.pest`.
    #[derive(Parser)]
    #[grammar = "../../grammar/mailgw.pest"]
    pub struct Grammar;
}

/// A statement: `keyword value value, value { ... }`.
#[derive(Clone, Debug)]
pub struct Statement {
    /// The first word.
    pub keyword: Spanned<String>,
    /// The values after it, commas included, in order.
    pub args: Vec<Arg>,
    /// The `{ ... }` block, if any.
    pub block: Option<Block>,
    /// The whole statement.
    pub span: Span,
}

impl Statement {
    /// The span of the keyword and its values, without the block: the
    /// "head" shown when a diagnostic is about the whole statement.
    pub fn head(&self) -> Span {
        self.args
            .last()
            .map_or(self.keyword.span, |a| self.keyword.span.to(a.span))
    }
}

/// A `{ ... }` block.
#[derive(Clone, Debug)]
pub struct Block {
    /// The statements inside.
    pub statements: Vec<Statement>,
    /// From `{` to `}`.
    pub span: Span,
}

/// One value (or comma) in a statement.
#[derive(Clone, Debug)]
pub struct Arg {
    /// What was written.
    pub kind: ArgKind,
    /// Where.
    pub span: Span,
}

/// The lexical kind of a value, with its parts as written.
#[derive(Clone, Debug, PartialEq)]
pub enum ArgKind {
    /// `,` separating list items.
    Comma,
    /// `"text"`, escapes decoded.
    String(String),
    /// `"host":port`.
    StringHostPort(String, String),
    /// `[ipv6]:port`.
    SocketV6(String, String),
    /// `ipv6/prefix`.
    NetworkV6(String, String),
    /// `a.b.c.d/prefix`.
    NetworkV4(String, String),
    /// `a.b.c.d:port`.
    SocketV4(String, String),
    /// `a.b.c.d`.
    IpV4(String),
    /// A bare IPv6 address.
    IpV6(String),
    /// Digits and a size unit: `25MB`.
    Size(String, String),
    /// Digits and a time unit: `30s`.
    Duration(String, String),
    /// Digits.
    Number(String),
    /// `host.name:port`.
    HostPort(String, String),
    /// A bare word: `smtp`, `require`, `mail.example.com`.
    Word(String),
}

impl ArgKind {
    /// What kind of value this is, for "expected X, found Y" messages.
    pub fn describe(&self) -> &'static str {
        match self {
            ArgKind::Comma => "a comma",
            ArgKind::String(_) => "a string",
            ArgKind::StringHostPort(..) | ArgKind::HostPort(..) => "a host and port",
            ArgKind::SocketV6(..) | ArgKind::SocketV4(..) => "a socket address",
            ArgKind::NetworkV6(..) | ArgKind::NetworkV4(..) => "a network",
            ArgKind::IpV4(_) | ArgKind::IpV6(_) => "an IP address",
            ArgKind::Size(..) => "a size",
            ArgKind::Duration(..) => "a duration",
            ArgKind::Number(_) => "a number",
            ArgKind::Word(_) => "a word",
        }
    }
}

/// Parses one file into statements, or gives the syntax error.
pub fn parse(file: FileId, text: &str) -> Result<Vec<Statement>, Diagnostic> {
    let mut pairs = Grammar::parse(Rule::file, text).map_err(|e| syntax_error(file, text, &e))?;
    let Some(root) = pairs.next() else {
        return Ok(Vec::new());
    };
    Ok(root
        .into_inner()
        .filter(|p| p.as_rule() == Rule::statement)
        .map(|p| statement(file, p))
        .collect())
}

fn span(file: FileId, pair: &Pair<'_, Rule>) -> Span {
    let s = pair.as_span();
    Span::new(file, s.start(), s.end())
}

fn statement(file: FileId, pair: Pair<'_, Rule>) -> Statement {
    let whole = span(file, &pair);
    let mut keyword = None;
    let mut args = Vec::new();
    let mut block = None;
    for part in pair.into_inner() {
        match part.as_rule() {
            Rule::keyword => {
                keyword = Some(Spanned::new(part.as_str().to_owned(), span(file, &part)));
            }
            Rule::block => {
                let block_span = span(file, &part);
                let statements = part
                    .into_inner()
                    .filter(|p| p.as_rule() == Rule::statement)
                    .map(|p| statement(file, p))
                    .collect();
                block = Some(Block {
                    statements,
                    span: block_span,
                });
            }
            _ => args.push(arg(file, part)),
        }
    }
    Statement {
        keyword: keyword.unwrap_or_else(|| Spanned::new(String::new(), whole)),
        args,
        block,
        span: whole,
    }
}

fn arg(file: FileId, pair: Pair<'_, Rule>) -> Arg {
    let arg_span = span(file, &pair);
    let rule = pair.as_rule();
    let text = pair.as_str();
    let parts: Vec<Pair<'_, Rule>> = pair.into_inner().collect();
    let part = |i: usize| parts.get(i).map_or("", |p| p.as_str()).to_owned();
    let kind = match rule {
        Rule::comma => ArgKind::Comma,
        Rule::string => ArgKind::String(unescape(&part(0))),
        Rule::string_host_port => {
            let host = parts
                .first()
                .and_then(|s| s.clone().into_inner().next())
                .map_or(String::new(), |inner| unescape(inner.as_str()));
            ArgKind::StringHostPort(host, part(1))
        }
        Rule::socket_v6 => ArgKind::SocketV6(part(0), part(1)),
        Rule::network_v6 => ArgKind::NetworkV6(part(0), part(1)),
        Rule::network_v4 => ArgKind::NetworkV4(part(0), part(1)),
        Rule::socket_v4 => ArgKind::SocketV4(part(0), part(1)),
        Rule::ip_v4 => ArgKind::IpV4(part(0)),
        Rule::ip_v6 => ArgKind::IpV6(part(0)),
        Rule::size => ArgKind::Size(part(0), part(1)),
        Rule::duration => ArgKind::Duration(part(0), part(1)),
        Rule::number => ArgKind::Number(text.to_owned()),
        Rule::host_port => ArgKind::HostPort(part(0), part(1)),
        _ => ArgKind::Word(text.to_owned()),
    };
    Arg {
        kind,
        span: arg_span,
    }
}

/// Decodes `\"`, `\\`, `\n` and `\t`; any other escaped character stands for itself.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn rule_name(rule: &Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of file",
        Rule::statement | Rule::keyword => "a statement",
        Rule::block => "`{`",
        Rule::comma => "`,`",
        Rule::string | Rule::string_inner => "a string",
        Rule::escape => "an escape",
        Rule::port => "a port number",
        Rule::prefix => "a prefix length",
        Rule::size_unit => "a size unit",
        Rule::time_unit => "a time unit",
        _ => "a value",
    }
}

fn syntax_error(file: FileId, text: &str, error: &pest::error::Error<Rule>) -> Diagnostic {
    let pos = match error.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let found = text.get(pos..).and_then(|rest| rest.chars().next());
    let end = pos + found.map_or(0, char::len_utf8);
    let at = Span::new(file, pos, end);

    if let Some(quote) = unterminated_string(text, pos) {
        return Diagnostic::error(
            Code::Syntax,
            "this string is never closed",
            Label::new(Span::new(file, quote, quote + 1), "string starts here"),
        )
        .with_help("close the string with `\"` on the same line");
    }

    let mut expected: Vec<&str> = match &error.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            positives.iter().map(rule_name).collect()
        }
        pest::error::ErrorVariant::CustomError { .. } => Vec::new(),
    };
    expected.sort_unstable();
    expected.dedup();
    let found_text = match found {
        None => "the end of the file".to_owned(),
        Some('\n') | Some('\r') => "the end of the line".to_owned(),
        Some('}') => "`}` with no block open".to_owned(),
        Some(c) if c.is_control() => format!("the control character U+{:04X}", c as u32),
        Some(c) => format!("`{c}`"),
    };
    if found.is_none() {
        if let Some(open) = unclosed_brace(&text[..pos]) {
            return Diagnostic::error(
                Code::Syntax,
                "a block is never closed: the file ends before its `}`",
                Label::new(
                    Span::new(file, open, open + 1),
                    "this block is never closed",
                ),
            )
            .with_help("close the block with `}` after its last statement");
        }
    }
    let message = format!("unexpected {found_text}");
    let help = match found {
        Some('}') => "remove this `}` or open the block it closes".to_owned(),
        Some('\'') => "strings are written with double quotes: \"...\"".to_owned(),
        Some('=') => "statements are written `keyword value`, without `=`".to_owned(),
        _ if !expected.is_empty() => format!("expected {}", join_or(&expected)),
        _ => "check the statement's form in docs/language.md".to_owned(),
    };
    Diagnostic::error(Code::Syntax, message, Label::new(at, "here")).with_help(help)
}

/// The offset of the last `{` in `text` that no `}` closes, outside strings
/// and comments.
fn unclosed_brace(text: &str) -> Option<usize> {
    let mut open = Vec::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '#' => {
                chars.by_ref().find(|&(_, c)| c == '\n');
            }
            '"' => {
                let mut escaped = false;
                for (_, c) in chars.by_ref() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '"' | '\n' if !escaped => break,
                        _ => escaped = false,
                    }
                }
            }
            '{' => open.push(i),
            '}' => {
                open.pop();
            }
            _ => {}
        }
    }
    open.pop()
}

/// If `pos` is inside a string that is never closed on its line, the offset of its quote.
fn unterminated_string(text: &str, pos: usize) -> Option<usize> {
    let line_start = text[..pos.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let line = &text[line_start..line_end];
    let mut open = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            '#' if open.is_none() => break,
            '\\' if open.is_some() && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => {
                open = if open.is_some() {
                    None
                } else {
                    Some(line_start + i)
                }
            }
            _ => {}
        }
        escaped = false;
    }
    open
}

/// `a`, `a or b`, `a, b or c`.
pub fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

#[cfg(test)]
mod tests {
    use super::unclosed_brace;

    #[test]
    fn the_unclosed_brace_is_found_outside_strings_and_comments() {
        assert_eq!(unclosed_brace("a { b }"), None);
        let text = "a { b }\nc \"{\" { # {\n d \"\\\"}\" ";
        assert_eq!(unclosed_brace(text), text.find("\" {").map(|i| i + 2));
        assert_eq!(unclosed_brace("x { y { z } "), Some(2));
    }
}
