//! The plain shape of a directory, scanned byte by byte.
//!
//! Nearly every directory is `[[mailbox]]` and `[[group]]` headers, bare
//! keys, one-line strings without escapes, arrays of them, blank lines and
//! comments. This scanner reads exactly that, several times faster than
//! `toml_parser`'s tokenizer and parser, and sends a receiver the events
//! `toml_parser` would send for it (those that carry meaning: headers, keys,
//! `=`, strings, arrays and their commas). At the first thing outside that
//! shape — a quoted key, an escape, a literal string, a number, a dotted key,
//! a character TOML forbids — it stops, and the caller reads the text again
//! with `toml_parser`. Whatever it accepts is valid TOML (tested against
//! `toml_parser`).

use toml_parser::decoder::Encoding;
use toml_parser::parser::EventReceiver;
use toml_parser::{ErrorSink, ParseError, Span};

/// Sends `receiver` the events of `text`; `false` when the text is not all
/// of the plain shape, the events sent so far then being of no use.
pub(super) fn scan(text: &str, receiver: &mut impl EventReceiver) -> bool {
    let mut scanner = Scanner {
        bytes: text.as_bytes(),
        at: 0,
        receiver,
        errors: NoErrors,
    };
    scanner.document().is_some()
}

/// The scanner never reports an error: it stops instead.
struct NoErrors;

impl ErrorSink for NoErrors {
    fn report_error(&mut self, _error: ParseError) {}
}

struct Scanner<'t, 'r, R> {
    bytes: &'t [u8],
    at: usize,
    receiver: &'r mut R,
    errors: NoErrors,
}

/// Whether a byte may stand in a comment or a basic string: TOML forbids
/// the control characters but tab. Bytes of multi-byte characters are all
/// at least 0x80, and the text is UTF-8.
fn is_text(b: u8) -> bool {
    (b >= 0x20 || b == b'\t') && b != 0x7f
}

impl<R: EventReceiver> Scanner<'_, '_, R> {
    fn document(&mut self) -> Option<()> {
        loop {
            self.blank_lines()?;
            match self.peek() {
                None => return Some(()),
                Some(b'[') => self.header()?,
                Some(_) => self.key_value()?,
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// The span from `start` to here.
    fn span(&self, start: usize) -> Span {
        Span::new_unchecked(start, self.at)
    }

    /// Consumes `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        self.at += usize::from(next);
        next
    }

    /// Consumes `byte`, which must come next.
    fn expect(&mut self, byte: u8) -> Option<Span> {
        let start = self.at;
        self.eat(byte).then(|| self.span(start))
    }

    fn spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    /// A comment, if one starts here, up to its line's end.
    fn comment(&mut self) -> Option<()> {
        if self.eat(b'#') {
            while let Some(b) = self.peek().filter(|&b| b != b'\n' && b != b'\r') {
                if !is_text(b) {
                    return None;
                }
                self.at += 1;
            }
        }
        Some(())
    }

    /// A line break, if one comes next: `Some(false)` when none does.
    fn newline(&mut self) -> Option<bool> {
        if self.eat(b'\n') {
            return Some(true);
        }
        if self.eat(b'\r') {
            return self.eat(b'\n').then_some(true);
        }
        Some(false)
    }

    /// Spaces, a comment and a line break, as many times as they come.
    fn blank_lines(&mut self) -> Option<()> {
        loop {
            self.spaces();
            self.comment()?;
            if !self.newline()? {
                return Some(());
            }
        }
    }

    /// The rest of a line after a header or a value: spaces, a comment,
    /// then a line break or the end of the text.
    fn end_of_line(&mut self) -> Option<()> {
        self.spaces();
        self.comment()?;
        (self.newline()? || self.peek().is_none()).then_some(())
    }

    fn bare_key(&mut self) -> Option<Span> {
        let start = self.at;
        while matches!(
            self.peek(),
            Some(b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-')
        ) {
            self.at += 1;
        }
        (self.at > start).then(|| self.span(start))
    }

    /// `[[key]]`, with spaces around the key.
    fn header(&mut self) -> Option<()> {
        let start = self.at;
        self.expect(b'[')?;
        self.expect(b'[')?;
        let open = self.span(start);
        self.receiver.array_table_open(open, &mut self.errors);
        self.spaces();
        let key = self.bare_key()?;
        self.receiver.simple_key(key, None, &mut self.errors);
        self.spaces();
        let start = self.at;
        self.expect(b']')?;
        self.expect(b']')?;
        let close = self.span(start);
        self.receiver.array_table_close(close, &mut self.errors);
        self.end_of_line()
    }

    /// `key = "string"` or `key = ["string", ...]`.
    fn key_value(&mut self) -> Option<()> {
        let key = self.bare_key()?;
        self.receiver.simple_key(key, None, &mut self.errors);
        self.spaces();
        let equals = self.expect(b'=')?;
        self.receiver.key_val_sep(equals, &mut self.errors);
        self.spaces();
        match self.peek() {
            Some(b'"') => self.string()?,
            Some(b'[') => self.array()?,
            _ => return None,
        }
        self.end_of_line()
    }

    /// A basic string on one line, without escapes.
    fn string(&mut self) -> Option<()> {
        let start = self.at;
        self.expect(b'"')?;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => return None,
                b if is_text(b) => self.at += 1,
                _ => return None,
            }
        }
        self.at += 1;
        let span = self.span(start);
        self.receiver
            .scalar(span, Some(Encoding::BasicString), &mut self.errors);
        Some(())
    }

    /// `[` strings separated by commas, a trailing comma allowed, `]`.
    fn array(&mut self) -> Option<()> {
        let open = self.expect(b'[')?;
        if !self.receiver.array_open(open, &mut self.errors) {
            return None;
        }
        loop {
            self.blank_lines()?;
            if self.peek() == Some(b']') {
                break;
            }
            self.string()?;
            self.blank_lines()?;
            let start = self.at;
            if !self.eat(b',') {
                break;
            }
            let comma = self.span(start);
            self.receiver.value_sep(comma, &mut self.errors);
        }
        let close = self.expect(b']')?;
        self.receiver.array_close(close, &mut self.errors);
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The events that carry meaning, as text.
    #[derive(Default)]
    struct Recorder(Vec<String>);

    impl Recorder {
        fn push(&mut self, what: &str, span: Span) {
            self.0
                .push(format!("{what} {}..{}", span.start(), span.end()));
        }
    }

    impl EventReceiver for Recorder {
        fn std_table_open(&mut self, span: Span, _: &mut dyn ErrorSink) {
            self.push("std_table_open", span);
        }
        fn array_table_open(&mut self, span: Span, _: &mut dyn ErrorSink) {
            self.push("array_table_open", span);
        }
        fn array_table_close(&mut self, span: Span, _: &mut dyn ErrorSink) {
            self.push("array_table_close", span);
        }
        fn inline_table_open(&mut self, span: Span, _: &mut dyn ErrorSink) -> bool {
            self.push("inline_table_open", span);
            true
        }
        fn array_open(&mut self, span: Span, _: &mut dyn ErrorSink) -> bool {
            self.push("array_open", span);
            true
        }
        fn array_close(&mut self, span: Span, _: &mut dyn ErrorSink) {
            self.push("array_close", span);
        }
        fn simple_key(&mut self, span: Span, kind: Option<Encoding>, _: &mut dyn ErrorSink) {
            self.push(&format!("simple_key {kind:?}"), span);
        }
        fn key_sep(&mut self, span: Span, _: &mut dyn ErrorSink) {
            self.push("key_sep", span);
        }
        fn key_val_sep(&mut self, span: Span, _: &mut dyn ErrorSink) {
            self.push("key_val_sep", span);
        }
        fn scalar(&mut self, span: Span, kind: Option<Encoding>, _: &mut dyn ErrorSink) {
            self.push(&format!("scalar {kind:?}"), span);
        }
        fn value_sep(&mut self, span: Span, _: &mut dyn ErrorSink) {
            self.push("value_sep", span);
        }
        fn error(&mut self, span: Span, _: &mut dyn ErrorSink) {
            self.push("error", span);
        }
    }

    /// Whether `toml_parser` reports an error.
    #[derive(Default)]
    struct Errors(bool);

    impl ErrorSink for Errors {
        fn report_error(&mut self, _error: ParseError) {
            self.0 = true;
        }
    }

    /// The scanner's events, if it reads `text`.
    fn scanned(text: &str) -> Option<Vec<String>> {
        let mut recorder = Recorder::default();
        scan(text, &mut recorder).then_some(recorder.0)
    }

    /// What `toml_parser` makes of `text`: its events, or `None` on an error.
    fn parsed(text: &str) -> Option<Vec<String>> {
        let source = toml_parser::Source::new(text);
        let tokens: Vec<_> = source.lex().collect();
        let mut recorder = Recorder::default();
        let mut errors = Errors::default();
        toml_parser::parser::parse_document(&tokens, &mut recorder, &mut errors);
        (!errors.0).then_some(recorder.0)
    }

    /// Whatever the scanner reads, `toml_parser` reads alike.
    fn agrees(text: &str) -> bool {
        match scanned(text) {
            Some(events) => parsed(text) == Some(events),
            None => true,
        }
    }

    #[test]
    fn reads_the_plain_shape_as_toml_parser_does() {
        for text in [
            "",
            "# only a comment",
            "\n\n[[mailbox]]\nname = \"a\"\nbackend = \"b\"\naddresses = [\"a@x.example\", \"b@x.example\"]\n",
            "[[mailbox]] # header comment\r\n  name=\"a\"\t# value comment\r\nbackend = \"b\"\naddresses = [\r\n  \"a@x\", # first\n\n  \"b@x\",\n]\n",
            "[[ group ]]\nname = \"g é\"\nmembers = []\naddresses = [ ]",
            "[[mailbox]]\npassword = \"$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA\"\n",
            "[[mailbox]]\nname = \"tab\there\"\n",
            "[[mailbox]]\nname = \"a\"",
        ] {
            assert!(scanned(text).is_some(), "should read:\n{text}");
            assert_eq!(scanned(text), parsed(text), "for:\n{text}");
        }
    }

    #[test]
    fn stops_at_anything_else() {
        for text in [
            "[mailbox]\n",
            "[[mailbox]]\n\"name\" = \"a\"\n",
            "[[mailbox]]\nname = 'a'\n",
            "[[mailbox]]\nname = \"a\\\"b\"\n",
            "[[mailbox]]\nname = \"\"\"a\"\"\"\n",
            "[[mailbox]]\nname.first = \"a\"\n",
            "[[mailbox]]\nname = 1\n",
            "[[mailbox]]\nname = \"a\" backend = \"b\"\n",
            "[[mailbox]]\nname = \"a\nb\"\n",
            "[[mailbox]]\naddresses = [\"a\",,]\n",
            "[[mailbox]]\naddresses = [\"a\" \"b\"]\n",
            "[[mailbox]]\naddresses = [[\"a\"]]\n",
            "[[mailbox]]\nname = { a = \"b\" }\n",
            "[[mailbox]]\rname = \"a\"\n",
            "[[mailbox]]\n# bell \u{7}\n",
            "[[mailbox]]\nname = \"del \u{7f}\"\n",
            "\u{feff}[[mailbox]]\n",
            "[[mailbox]]\nname = \"unterminated\n",
            "[[mailbox",
        ] {
            assert_eq!(scanned(text), None, "should stop at:\n{text}");
        }
    }

    /// Pieces of directories, plain and not.
    fn part() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "[[mailbox]]",
            "[[group]]",
            "[[ mailbox ]]",
            "[mailbox]",
            "name",
            "backend",
            "addresses",
            "members",
            " = ",
            "=",
            "\"alice\"",
            "\"a@x.example\"",
            "\"é\"",
            "\"\"",
            "\"a\\\"b\"",
            "'lit'",
            "[",
            "]",
            ", ",
            ",",
            "\n",
            "\r\n",
            "\r",
            " ",
            "\t",
            "# note",
            "#",
            "\u{7}",
            "1",
            ".",
            "{",
            "}",
            "\"",
            "é",
        ])
    }

    /// Blank space where TOML allows it: spaces, tabs, a comment, line breaks.
    fn gap(line_breaks: bool) -> impl Strategy<Value = String> {
        let parts: Vec<&'static str> = if line_breaks {
            vec!["", " ", "\t", "\n", "\r\n", " # c\n", "\n\n"]
        } else {
            vec!["", " ", "\t ", "  "]
        };
        prop::collection::vec(prop::sample::select(parts), 0..3).prop_map(|p| p.concat())
    }

    /// A plain string: text without quotes, escapes or control characters.
    fn plain() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9@.$=,#\\[\\] é\t-]{0,12}".prop_map(|s| format!("\"{s}\""))
    }

    /// One `key = value` line of the plain shape.
    fn key_value() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec!["name", "backend", "password", "addresses", "x-y_1"]);
        let array =
            prop::collection::vec((gap(true), plain(), gap(true)), 0..4).prop_flat_map(|items| {
                let trailing = prop::sample::select(vec!["", ",", ", # c\n"]);
                (Just(items), trailing, gap(true)).prop_map(|(items, trailing, end)| {
                    let values: Vec<String> = items
                        .iter()
                        .map(|(before, value, after)| format!("{before}{value}{after}"))
                        .collect();
                    let trailing = if values.is_empty() { "" } else { trailing };
                    format!("[{}{trailing}{end}]", values.join(","))
                })
            });
        let value = prop_oneof![plain(), array];
        (key, gap(false), gap(false), value, gap(false))
            .prop_map(|(k, a, b, v, c)| format!("{k}{a}={b}{v}{c}"))
    }

    /// A document of the plain shape.
    fn document() -> impl Strategy<Value = String> {
        let header = prop::sample::select(vec!["[[mailbox]]", "[[group]]", "[[ mailbox\t]]"]);
        let table = (gap(true), header, prop::collection::vec(key_value(), 0..5));
        prop::collection::vec(table, 0..4).prop_map(|tables| {
            let mut text = String::new();
            for (before, header, lines) in tables {
                text.push_str(&before);
                text.push_str(header);
                text.push('\n');
                for line in lines {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
            text
        })
    }

    proptest! {
        #[test]
        fn whatever_it_reads_toml_parser_reads_alike(parts in prop::collection::vec(part(), 0..40)) {
            let text: String = parts.concat();
            prop_assert!(agrees(&text), "for {text:?}: {:?} against {:?}", scanned(&text), parsed(&text));
        }

        #[test]
        fn reads_every_plain_document_as_toml_parser_does(text in document()) {
            prop_assert!(scanned(&text).is_some(), "should read {text:?}");
            prop_assert_eq!(scanned(&text), parsed(&text), "for {:?}", text);
        }
    }
}
