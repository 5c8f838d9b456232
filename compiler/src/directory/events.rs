//! The fast directory reader: `[[mailbox]]` and `[[group]]` tables read
//! straight from `toml_parser`'s events, without building a TOML document.
//! Each piece of the file is first given to [`super::scan`], which sends
//! the same events for the plain shape without `toml_parser`'s tokenizer.
//!
//! It accepts only the plain shape directories have in practice: array-table
//! headers with one key, `key = "string"` and `key = ["string", ...]` with
//! the known keys, each at most once per table. On anything else — another
//! kind of table or value, a dotted key, an unknown or repeated key, any
//! syntax error — it gives up and the caller uses the full deserializer,
//! which reads every valid TOML form and words the errors. Giving up is
//! never wrong, only slower.
//!
//! A one-line string without escapes is its own value: it is kept as
//! [`Text::Quoted`], its span into the file, and nothing is copied.

use toml_parser::decoder::{Encoding, ScalarKind};
use toml_parser::parser::EventReceiver;
use toml_parser::{ErrorSink, ParseError, Raw, Source};

use super::{checked_address, scan, Entries};
use crate::ast::{Group, Mailbox};
use crate::source::{FileId, Span, Spanned, Text};

/// Reads the entries of `text` into `entries`; `false`, with `entries` as
/// they were, when the fast path does not apply.
///
/// The text is read in pieces cut before a line that starts with `[[`, on
/// all cores: this thread reads the first group of pieces straight into
/// `entries`, sized for the whole file, and the others' entries are appended
/// in file order. A cut inside a multi-line string or array leaves the piece
/// before it unterminated, which is a parse error, so the whole file falls
/// back to the full reader: cutting never changes a result.
pub(super) fn read(file: FileId, text: &str, entries: &mut Entries) -> bool {
    let before = entries.lengths();
    let pieces = pieces(text, PIECE_SIZE);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(pieces.len())
        .max(1);
    let mut groups = pieces.chunks(pieces.len().div_ceil(threads).max(1));
    let first = groups.next().unwrap_or_default();
    let read = std::thread::scope(|scope| {
        let workers: Vec<_> = groups
            .map(|group| {
                scope.spawn(move || {
                    let mut entries = Entries::default();
                    entries.mailboxes.reserve(mailboxes_in(text, group));
                    read_group(file, text, group, &mut entries).map(|()| entries)
                })
            })
            .collect();
        // Sized once: growing a list of 100,000 entries by doubling, or
        // copying it, costs more than counting the headers.
        entries.mailboxes.reserve(mailboxes_in(text, &pieces));
        let mut read = read_group(file, text, first, entries);
        for worker in workers {
            match worker.join().ok().flatten() {
                Some(next) if read.is_some() => entries.append(next),
                _ => read = None,
            }
        }
        read.is_some()
    });
    if !read {
        entries.truncate(before);
    }
    read
}

/// About how many bytes one piece holds.
const PIECE_SIZE: usize = 64 * 1024;

/// Byte ranges covering `text`, each cut just before a line starting `[[`.
fn pieces(text: &str, size: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let target = start + size;
        let cut = text
            .get(target..)
            .and_then(|rest| rest.find("\n[[").map(|i| target + i + 1))
            .unwrap_or(text.len());
        out.push((start, cut));
        start = cut;
    }
    out
}

/// At least the number of mailboxes in consecutive `pieces` of `text`.
fn mailboxes_in(text: &str, pieces: &[(usize, usize)]) -> usize {
    match (pieces.first(), pieces.last()) {
        (Some(first), Some(last)) => {
            memchr::memmem::find_iter(&text.as_bytes()[first.0..last.1], "[[mailbox]]").count()
        }
        _ => 0,
    }
}

/// Reads consecutive pieces of `text` into `entries`, with one token buffer.
fn read_group(
    file: FileId,
    text: &str,
    group: &[(usize, usize)],
    entries: &mut Entries,
) -> Option<()> {
    let mut tokens = Vec::new();
    let mut scratch = String::new();
    for &(start, end) in group {
        let piece = Piece {
            file,
            file_text: text,
            base: start,
            text: &text[start..end],
        };
        read_piece(piece, &mut tokens, &mut scratch, entries)?;
    }
    Some(())
}

/// A piece of a directory file.
#[derive(Clone, Copy)]
struct Piece<'i> {
    file: FileId,
    /// The whole file.
    file_text: &'i str,
    /// Where the piece starts in the file.
    base: usize,
    /// The piece.
    text: &'i str,
}

/// Reads one piece into `entries`: with the scanner of the plain shape,
/// else with `toml_parser`. `tokens` and `scratch` are buffers reused from
/// piece to piece.
fn read_piece(
    piece: Piece<'_>,
    tokens: &mut Vec<toml_parser::lexer::Token>,
    scratch: &mut String,
    entries: &mut Entries,
) -> Option<()> {
    let before = entries.lengths();
    let mut collector = Collector::new(piece, entries, scratch);
    if scan::scan(piece.text, &mut collector) {
        return collector.finish();
    }
    // Not the plain shape: what the scanner read goes, toml_parser reads it all.
    entries.truncate(before);
    let mut collector = Collector::new(piece, entries, scratch);
    tokens.clear();
    tokens.extend(collector.source.lex());
    let mut errors = Failed(false);
    toml_parser::parser::parse_document(tokens, &mut collector, &mut errors);
    if errors.0 {
        return None;
    }
    collector.finish()
}

/// Records whether the parser reported any error.
struct Failed(bool);

impl ErrorSink for Failed {
    fn report_error(&mut self, _error: ParseError) {
        self.0 = true;
    }
}

/// Where the parser is with respect to an array-table header.
#[derive(PartialEq)]
enum Header {
    /// In a table's body (or before the first table).
    Outside,
    /// Inside `[[`, no key yet.
    Open,
    /// Inside `[[`, the key read.
    Named(Kind),
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Mailbox,
    Group,
}

/// The keys a directory table may have.
#[derive(Clone, Copy, PartialEq)]
enum Field {
    Name,
    Backend,
    Addresses,
    Password,
    Members,
}

impl Field {
    fn is_list(self) -> bool {
        matches!(self, Field::Addresses | Field::Members)
    }
}

/// A key: of an array-table header or of a table's field.
enum Key {
    Kind(Kind),
    Field(Field),
}

impl Key {
    fn of(key: &str) -> Option<Key> {
        Some(match key {
            "mailbox" => Key::Kind(Kind::Mailbox),
            "group" => Key::Kind(Kind::Group),
            "name" => Key::Field(Field::Name),
            "backend" => Key::Field(Field::Backend),
            "addresses" => Key::Field(Field::Addresses),
            "password" => Key::Field(Field::Password),
            "members" => Key::Field(Field::Members),
            _ => return None,
        })
    }
}

/// The table being filled.
#[derive(Default)]
struct Table {
    kind: Option<Kind>,
    name: Option<Spanned<Text>>,
    backend: Option<Spanned<Text>>,
    password: Option<Spanned<Text>>,
    addresses: Option<Vec<Spanned<Text>>>,
    members: Option<Vec<Spanned<Text>>>,
}

struct Collector<'i, 'e> {
    source: Source<'i>,
    piece: Piece<'i>,
    entries: &'e mut Entries,
    /// Where quoted keys are decoded.
    scratch: &'e mut String,
    table: Option<Table>,
    header: Header,
    /// The key whose value comes next.
    field: Option<Field>,
    in_array: bool,
    failed: bool,
}

impl<'i, 'e> Collector<'i, 'e> {
    fn new(piece: Piece<'i>, entries: &'e mut Entries, scratch: &'e mut String) -> Self {
        Collector {
            source: Source::new(piece.text),
            piece,
            entries,
            scratch,
            table: None,
            header: Header::Outside,
            field: None,
            in_array: false,
            failed: false,
        }
    }

    /// After the last event: the last table added, or `None` if the piece
    /// is not a directory's plain shape.
    fn finish(mut self) -> Option<()> {
        if self.failed {
            return None;
        }
        self.finish_table();
        (!self.failed).then_some(())
    }

    fn fail(&mut self) {
        self.failed = true;
    }

    fn span(&self, span: toml_parser::Span) -> Span {
        let base = self.piece.base;
        Span::new(self.piece.file, base + span.start(), base + span.end())
    }

    fn finish_table(&mut self) {
        let Some(table) = self.table.take() else {
            return;
        };
        match (table.kind, table.name) {
            (Some(Kind::Mailbox), Some(name)) if table.members.is_none() => {
                let Some(backend) = table.backend else {
                    return self.fail();
                };
                self.entries.mailboxes.push(Mailbox {
                    span: name.span,
                    name,
                    backend,
                    addresses: table.addresses.unwrap_or_default(),
                    password: table.password,
                });
            }
            (Some(Kind::Group), Some(name))
                if table.backend.is_none() && table.password.is_none() =>
            {
                self.entries.groups.push(Group {
                    span: name.span,
                    name,
                    addresses: table.addresses.unwrap_or_default(),
                    members: table.members.unwrap_or_default(),
                });
            }
            _ => self.fail(),
        }
    }

    /// The key at `span`, or `None` if it is none of a directory's. A bare
    /// key is its text; a quoted one is decoded into the scratch buffer.
    fn key(&mut self, span: toml_parser::Span, encoding: Option<Encoding>) -> Option<Key> {
        let text = self.source.get(span)?.as_str();
        if encoding.is_none() {
            return Key::of(text);
        }
        let mut errors = Failed(false);
        Raw::new_unchecked(text, encoding, span).decode_key(self.scratch, &mut errors);
        if errors.0 {
            return None;
        }
        Key::of(self.scratch)
    }

    /// The string at `span`, or `None` if it is not a string: its span
    /// alone when it is plain, else decoded.
    fn string(&self, span: toml_parser::Span, encoding: Option<Encoding>) -> Option<Spanned<Text>> {
        let text = self.source.get(span)?.as_str();
        if is_plain(text, encoding) {
            return Some(Spanned::new(Text::Quoted, self.span(span)));
        }
        let raw = Raw::new_unchecked(text, encoding, span);
        let mut out = String::new();
        let mut errors = Failed(false);
        if raw.decode_scalar(&mut out, &mut errors) != ScalarKind::String || errors.0 {
            return None;
        }
        Some(Spanned::new(out.into(), self.span(span)))
    }
}

/// Whether the string token `raw` (quotes included) is its own value: a
/// one-line basic string without escapes, or a one-line literal string,
/// holding no character TOML forbids there.
fn is_plain(raw: &str, encoding: Option<Encoding>) -> bool {
    let (quote, escape) = match encoding {
        Some(Encoding::BasicString) => (b'"', b'\\'),
        Some(Encoding::LiteralString) => (b'\'', b'\''),
        _ => return false,
    };
    let [first, inner @ .., last] = raw.as_bytes() else {
        return false;
    };
    *first == quote
        && *last == quote
        && inner
            .iter()
            .all(|&b| (b >= 0x20 || b == b'\t') && b != 0x7f && b != quote && b != escape)
}

impl EventReceiver for Collector<'_, '_> {
    fn std_table_open(&mut self, _span: toml_parser::Span, _error: &mut dyn ErrorSink) {
        self.fail();
    }

    fn array_table_open(&mut self, _span: toml_parser::Span, _error: &mut dyn ErrorSink) {
        self.finish_table();
        self.header = Header::Open;
    }

    fn array_table_close(&mut self, _span: toml_parser::Span, _error: &mut dyn ErrorSink) {
        let Header::Named(kind) = self.header else {
            return self.fail();
        };
        self.header = Header::Outside;
        self.table = Some(Table {
            kind: Some(kind),
            ..Table::default()
        });
    }

    fn inline_table_open(&mut self, _span: toml_parser::Span, _error: &mut dyn ErrorSink) -> bool {
        self.fail();
        true
    }

    fn array_open(&mut self, _span: toml_parser::Span, _error: &mut dyn ErrorSink) -> bool {
        if self.in_array || !self.field.is_some_and(Field::is_list) {
            self.fail();
        }
        self.in_array = true;
        // The list exists from its `[` on, so a repeated key is caught even
        // after an empty list; most mailboxes have one or two addresses.
        if let Some(table) = self.table.as_mut() {
            match self.field {
                Some(Field::Members) => table.members = Some(Vec::new()),
                Some(Field::Addresses) => table.addresses = Some(Vec::with_capacity(2)),
                _ => {}
            }
        }
        true
    }

    fn array_close(&mut self, _span: toml_parser::Span, _error: &mut dyn ErrorSink) {
        self.in_array = false;
        self.field = None;
    }

    fn simple_key(
        &mut self,
        span: toml_parser::Span,
        encoding: Option<Encoding>,
        _error: &mut dyn ErrorSink,
    ) {
        let Some(key) = self.key(span, encoding) else {
            return self.fail();
        };
        if self.header == Header::Open {
            let Key::Kind(kind) = key else {
                return self.fail();
            };
            self.header = Header::Named(kind);
            return;
        }
        if self.header != Header::Outside || self.field.is_some() {
            return self.fail();
        }
        let (Key::Field(field), Some(table)) = (key, &self.table) else {
            return self.fail();
        };
        let repeated = match field {
            Field::Name => table.name.is_some(),
            Field::Backend => table.backend.is_some(),
            Field::Password => table.password.is_some(),
            Field::Addresses => table.addresses.is_some(),
            Field::Members => table.members.is_some(),
        };
        if repeated {
            return self.fail();
        }
        self.field = Some(field);
    }

    fn key_sep(&mut self, _span: toml_parser::Span, _error: &mut dyn ErrorSink) {
        self.fail();
    }

    fn scalar(
        &mut self,
        span: toml_parser::Span,
        encoding: Option<Encoding>,
        _error: &mut dyn ErrorSink,
    ) {
        let (Some(field), Some(value)) = (self.field, self.string(span, encoding)) else {
            return self.fail();
        };
        let in_array = self.in_array;
        let Some(table) = self.table.as_mut() else {
            return self.fail();
        };
        if in_array {
            if field == Field::Members {
                table.members.get_or_insert_with(Vec::new).push(value);
            } else {
                // Checked here, on the reading thread, while the value is hot.
                let checked =
                    checked_address(value, self.piece.file_text, &mut self.entries.diagnostics);
                table.addresses.get_or_insert_with(Vec::new).extend(checked);
            }
            return;
        }
        match field {
            Field::Name => table.name = Some(value),
            Field::Backend => table.backend = Some(value),
            Field::Password => table.password = Some(value),
            Field::Addresses | Field::Members => return self.fail(),
        }
        self.field = None;
    }

    fn error(&mut self, _span: toml_parser::Span, _error: &mut dyn ErrorSink) {
        self.fail();
    }
}

#[cfg(test)]
mod tests {
    use super::super::serde_read;
    use super::*;

    /// The entries of `text` from the fast reader, if it reads it.
    fn fast(text: &str) -> Option<Entries> {
        let mut entries = Entries::default();
        read(FileId(0), text, &mut entries).then_some(entries)
    }

    /// The entries of `text` from the full deserializer.
    fn full(text: &str) -> Option<Entries> {
        let mut entries = Entries::default();
        serde_read(FileId(0), text, &mut entries)
            .ok()
            .map(|()| entries)
    }

    /// Every value with its span, as text.
    fn flat(entries: &Entries, text: &str) -> Vec<String> {
        let show =
            |s: &Spanned<Text>| format!("{}@{}..{}", s.text_in(text), s.span.start, s.span.end);
        let mut out = Vec::new();
        for m in &entries.mailboxes {
            out.push(format!(
                "mailbox {} {} {:?} {:?}",
                show(&m.name),
                show(&m.backend),
                m.addresses.iter().map(show).collect::<Vec<_>>(),
                m.password.as_ref().map(show)
            ));
        }
        for g in &entries.groups {
            out.push(format!(
                "group {} {:?} {:?}",
                show(&g.name),
                g.addresses.iter().map(show).collect::<Vec<_>>(),
                g.members.iter().map(show).collect::<Vec<_>>()
            ));
        }
        out
    }

    /// The fast reader must give exactly what the full deserializer gives.
    fn same_as_serde(text: &str) {
        let fast = fast(text).map(|e| flat(&e, text));
        let full = full(text).map(|e| flat(&e, text));
        assert!(fast.is_some(), "fast path should accept:\n{text}");
        assert_eq!(fast, full, "for:\n{text}");
    }

    #[test]
    fn reads_the_common_shape_like_serde() {
        same_as_serde(
            "# users\n[[mailbox]]\nname = \"alice\"\nbackend = 'mbx1'\naddresses = [\"alice@example.com\", # primary\n  \"a.smith@example.com\",\n]\npassword = \"$argon2id$v=19$x\"\n\n[[group]]\nname = \"sales\"\nmembers = [\"alice\", \"bob@example.org\"]\naddresses = [\"sales@example.com\"]\n",
        );
        same_as_serde("[[mailbox]]\nname = \"esc\\\"aped\\u00e9\"\nbackend = \"b\"\n");
        same_as_serde("");
    }

    #[test]
    fn pieces_cut_before_headers_and_cover_everything() {
        let text = "[[mailbox]]\nname = \"a\"\nbackend = \"b\"\n[[mailbox]]\nname = \"c\"\nbackend = \"b\"\n";
        let cuts = pieces(text, 5);
        assert_eq!(cuts.first().map(|c| c.0), Some(0));
        assert_eq!(cuts.last().map(|c| c.1), Some(text.len()));
        assert!(cuts.iter().all(|&(s, _)| text[s..].starts_with("[[")));
        assert!(cuts.windows(2).all(|w| w[0].1 == w[1].0));
    }

    #[test]
    fn large_files_read_in_pieces_like_serde() {
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!(
                "[[mailbox]]\nname = \"user{i}\"\nbackend = \"mbx1\"\naddresses = [\"u{i}@example.com\", \"v{i}@example.org\"]\n\n"
            ));
        }
        text.push_str("[[group]]\nname = \"all\"\nmembers = [\"user1\"]\n");
        same_as_serde(&text);
        let read = fast(&text).map(|e| (e.mailboxes.len(), e.groups.len()));
        assert_eq!(read, Some((20_000, 1)));
    }

    #[test]
    fn a_cut_inside_a_multiline_string_falls_back() {
        let filler = "x".repeat(PIECE_SIZE);
        let text = format!(
            "[[mailbox]]\nname = \"a\"\nbackend = \"b\"\npassword = \"\"\"{filler}\n[[mailbox]]\nstill the password\"\"\"\n"
        );
        assert!(fast(&text).is_none());
        assert_eq!(full(&text).map(|e| e.mailboxes.len()), Some(1));
    }

    #[test]
    fn invalid_addresses_are_reported_at_their_place_by_both_readers() {
        let text = "[[mailbox]]\nname = \"a\"\nbackend = \"b\"\naddresses = [\"a@X.example\", \"no-at-sign\"]\n";
        let fast = fast(text).expect("plain shape");
        let full = full(text).expect("valid TOML");
        for entries in [&fast, &full] {
            let kept: Vec<&str> = entries.mailboxes[0]
                .addresses
                .iter()
                .map(|a| a.text_in(text))
                .collect();
            assert_eq!(kept, ["a@x.example"]);
            let at: Vec<&str> = entries
                .diagnostics
                .iter()
                .map(|d| &text[d.primary.span.start as usize..d.primary.span.end as usize])
                .collect();
            assert_eq!(at, ["\"no-at-sign\""]);
        }
    }

    #[test]
    fn gives_up_on_anything_else() {
        for text in [
            "[mailbox]\nname = \"a\"\n",
            "[[mailbox]]\nname = \"a\"\nbackend = \"b\"\nname = \"c\"\n",
            "[[mailbox]]\nname = \"a\"\nbackend = \"b\"\naddresses = []\naddresses = [\"a@x\"]\n",
            "[[mailbox]]\nname = \"a\"\nbackend = \"b\"\nadresses = []\n",
            "[[mailbox]]\nname = 1\nbackend = \"b\"\n",
            "[[mailbox]]\nname.x = \"a\"\nbackend = \"b\"\n",
            "[[mailbox]]\nbackend = \"b\"\n",
            "[[group]]\nname = \"g\"\nbackend = \"b\"\n",
            "name = \"top\"\n",
            "[[mailbox]]\nname = \"a\"\nbackend = \"b\"\naddresses = [[\"x\"]]\n",
            "mailbox = [{ name = \"a\", backend = \"b\" }]\n",
            "[[mailbox]]\nname = \"a\nbackend = \"b\"\n",
        ] {
            assert!(fast(text).is_none(), "should give up on:\n{text}");
        }
    }

    #[test]
    fn giving_up_leaves_the_entries_as_they_were() {
        let before = "[[mailbox]]\nname = \"a\"\nbackend = \"b\"\naddresses = [\"no-at-sign\"]\n";
        let mut entries = fast(before).expect("plain shape");
        let text = "[[mailbox]]\nname = \"c\"\nbackend = \"b\"\naddresses = [\"x\"]\n[mailbox]\n";
        assert!(!read(FileId(1), text, &mut entries));
        let lengths = entries.lengths();
        assert_eq!(
            (lengths.mailboxes, lengths.groups, lengths.diagnostics),
            (1, 0, 1)
        );
    }

    #[test]
    fn plain_strings_stay_in_the_file() {
        let text = "[[mailbox]]\n\"name\" = \"alice\"\nbackend = 'mbx1'\naddresses = [\"a@X.example\", \"b@x.example\"]\npassword = \"tab\\there\"\n";
        same_as_serde(text);
        let entries = fast(text).expect("plain shape");
        let mailbox = &entries.mailboxes[0];
        let quoted = |t: &Spanned<Text>| matches!(t.value, Text::Quoted);
        assert!(quoted(&mailbox.name) && quoted(&mailbox.backend));
        let addresses: Vec<bool> = mailbox.addresses.iter().map(quoted).collect();
        assert_eq!(addresses, [false, true], "a normalized address is its own");
        assert!(mailbox.password.as_ref().is_some_and(|p| !quoted(p)));
        assert!(is_plain("\"\"", Some(Encoding::BasicString)));
        assert!(!is_plain("\"", Some(Encoding::BasicString)));
        assert!(!is_plain("\"a\u{7f}\"", Some(Encoding::BasicString)));
        assert!(!is_plain("'a'b'", Some(Encoding::LiteralString)));
        assert!(is_plain("'a\\b'", Some(Encoding::LiteralString)));
        assert!(!is_plain("\"\"\"a\"\"\"", Some(Encoding::MlBasicString)));
    }

    #[test]
    fn inline_form_still_reads_through_serde() {
        let text = "mailbox = [{ name = \"a\", backend = \"b\", addresses = [\"a@x.example\"] }]\n";
        let entries = full(text).map(|e| flat(&e, text));
        assert_eq!(entries.map(|e| e.len()), Some(1));
    }
}
