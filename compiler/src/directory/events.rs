//! The fast directory reader: `[[mailbox]]` and `[[group]]` tables read
//! straight from `toml_parser`'s events, without building a TOML document.
//!
//! It accepts only the plain shape directories have in practice: array-table
//! headers with one key, `key = "string"` and `key = ["string", ...]` with
//! the known keys, each at most once per table. On anything else — another
//! kind of table or value, a dotted key, an unknown or repeated key, any
//! syntax error — it gives up and the caller uses the full deserializer,
//! which reads every valid TOML form and words the errors. Giving up is
//! never wrong, only slower.

use toml_parser::decoder::{Encoding, ScalarKind};
use toml_parser::parser::EventReceiver;
use toml_parser::{ErrorSink, ParseError, Raw, Source};

use super::{checked_address, Entries};
use crate::ast::{Group, Mailbox};
use crate::source::{FileId, Span, Spanned};

/// The entries of `text`, or `None` when the fast path does not apply.
///
/// The text is read in pieces cut before a line that starts with `[[`, each
/// with its own token buffer, so memory stays small and the pieces can be
/// read on all cores. A cut inside a multi-line string or array leaves the
/// piece before it unterminated, which is a parse error, so the whole file
/// falls back to the full reader: cutting never changes a result.
pub(super) fn read(file: FileId, text: &str) -> Option<Entries> {
    let pieces = pieces(text, PIECE_SIZE);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(pieces.len())
        .max(1);
    let per_thread = pieces.len().div_ceil(threads);
    let results: Vec<Option<Entries>> = std::thread::scope(|scope| {
        let workers: Vec<_> = pieces
            .chunks(per_thread.max(1))
            .map(|group| {
                scope.spawn(move || {
                    let mut entries = Entries::default();
                    // Sized once: growing a vector of 100,000 entries by
                    // doubling costs more than counting the headers.
                    if let (Some(first), Some(last)) = (group.first(), group.last()) {
                        let range = &text[first.0..last.1];
                        entries
                            .mailboxes
                            .reserve(range.matches("[[mailbox]]").count());
                    }
                    // One token buffer per thread, reused for every piece.
                    let mut tokens = Vec::new();
                    for &(start, end) in group {
                        read_piece(file, &text[start..end], start, &mut tokens, &mut entries)?;
                    }
                    Some(entries)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().ok().flatten())
            .collect()
    });
    let mut entries = Entries::default();
    entries
        .mailboxes
        .reserve(results.iter().flatten().map(|r| r.mailboxes.len()).sum());
    for result in results {
        entries.append(result?);
    }
    Some(entries)
}

/// About how many bytes one piece holds.
const PIECE_SIZE: usize = 256 * 1024;

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

/// Reads one piece whose first byte is at `base` in the file into `entries`.
fn read_piece(
    file: FileId,
    text: &str,
    base: usize,
    tokens: &mut Vec<toml_parser::lexer::Token>,
    entries: &mut Entries,
) -> Option<()> {
    let source = Source::new(text);
    tokens.clear();
    tokens.extend(source.lex());
    let mut collector = Collector {
        source,
        file,
        base,
        entries,
        table: None,
        header: Header::Outside,
        field: None,
        in_array: false,
        failed: false,
    };
    let mut errors = Failed(false);
    toml_parser::parser::parse_document(tokens, &mut collector, &mut errors);
    if errors.0 || collector.failed {
        return None;
    }
    collector.finish_table();
    (!collector.failed).then_some(())
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

/// The table being filled.
#[derive(Default)]
struct Table {
    kind: Option<Kind>,
    name: Option<Spanned<String>>,
    backend: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    addresses: Option<Vec<Spanned<String>>>,
    members: Option<Vec<Spanned<String>>>,
}

struct Collector<'i, 'e> {
    source: Source<'i>,
    file: FileId,
    /// Where the piece starts in the file.
    base: usize,
    entries: &'e mut Entries,
    table: Option<Table>,
    header: Header,
    /// The key whose value comes next.
    field: Option<Field>,
    in_array: bool,
    failed: bool,
}

impl Collector<'_, '_> {
    fn fail(&mut self) {
        self.failed = true;
    }

    fn span(&self, span: toml_parser::Span) -> Span {
        Span::new(self.file, self.base + span.start(), self.base + span.end())
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

    /// Decodes the string at `span`, or `None` if it is not a string.
    fn string(
        &self,
        span: toml_parser::Span,
        encoding: Option<Encoding>,
        key: bool,
    ) -> Option<String> {
        let text = self.source.get(span)?.as_str();
        let raw = Raw::new_unchecked(text, encoding, span);
        let mut out = String::new();
        let mut errors = Failed(false);
        if key {
            raw.decode_key(&mut out, &mut errors);
        } else if raw.decode_scalar(&mut out, &mut errors) != ScalarKind::String {
            return None;
        }
        (!errors.0).then_some(out)
    }
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
        let Some(key) = self.string(span, encoding, true) else {
            return self.fail();
        };
        if self.header == Header::Open {
            self.header = Header::Named(match key.as_str() {
                "mailbox" => Kind::Mailbox,
                "group" => Kind::Group,
                _ => return self.fail(),
            });
            return;
        }
        if self.header != Header::Outside || self.field.is_some() {
            return self.fail();
        }
        let field = match key.as_str() {
            "name" => Field::Name,
            "backend" => Field::Backend,
            "addresses" => Field::Addresses,
            "password" => Field::Password,
            "members" => Field::Members,
            _ => return self.fail(),
        };
        let Some(table) = &self.table else {
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
        let (Some(field), Some(value)) = (self.field, self.string(span, encoding, false)) else {
            return self.fail();
        };
        let value = Spanned::new(value, self.span(span));
        let in_array = self.in_array;
        let Some(table) = self.table.as_mut() else {
            return self.fail();
        };
        if in_array {
            if field == Field::Members {
                table.members.get_or_insert_with(Vec::new).push(value);
            } else {
                // Checked here, on the reading thread, while the value is hot.
                let checked = checked_address(value, &mut self.entries.diagnostics);
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

    fn flat(entries: &Entries) -> Vec<String> {
        let show = |s: &Spanned<String>| format!("{}@{}..{}", s.value, s.span.start, s.span.end);
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
        let fast = read(FileId(0), text).map(|e| flat(&e));
        let full = serde_read(FileId(0), text).map(|e| flat(&e));
        assert!(fast.is_some(), "fast path should accept:\n{text}");
        assert_eq!(fast, full.ok(), "for:\n{text}");
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
        let fast = read(FileId(0), &text).map(|e| (e.mailboxes.len(), e.groups.len()));
        assert_eq!(fast, Some((20_000, 1)));
    }

    #[test]
    fn a_cut_inside_a_multiline_string_falls_back() {
        let filler = "x".repeat(PIECE_SIZE);
        let text = format!(
            "[[mailbox]]\nname = \"a\"\nbackend = \"b\"\npassword = \"\"\"{filler}\n[[mailbox]]\nstill the password\"\"\"\n"
        );
        assert!(read(FileId(0), &text).is_none());
        assert_eq!(
            serde_read(FileId(0), &text).map(|e| e.mailboxes.len()).ok(),
            Some(1)
        );
    }

    #[test]
    fn invalid_addresses_are_reported_at_their_place_by_both_readers() {
        let text = "[[mailbox]]\nname = \"a\"\nbackend = \"b\"\naddresses = [\"a@X.example\", \"no-at-sign\"]\n";
        let fast = read(FileId(0), text).expect("plain shape");
        let full = serde_read(FileId(0), text).expect("valid TOML");
        for entries in [&fast, &full] {
            let kept: Vec<&str> = entries.mailboxes[0]
                .addresses
                .iter()
                .map(|a| a.value.as_str())
                .collect();
            assert_eq!(kept, ["a@x.example"]);
            let at: Vec<&str> = entries
                .diagnostics
                .iter()
                .filter_map(|d| d.primary.as_ref())
                .map(|l| &text[l.span.start as usize..l.span.end as usize])
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
            assert!(
                read(FileId(0), text).is_none(),
                "should give up on:\n{text}"
            );
        }
    }

    #[test]
    fn inline_form_still_reads_through_serde() {
        let text = "mailbox = [{ name = \"a\", backend = \"b\", addresses = [\"a@x.example\"] }]\n";
        let entries = serde_read(FileId(0), text).ok().map(|e| flat(&e));
        assert_eq!(entries.map(|e| e.len()), Some(1));
    }
}
