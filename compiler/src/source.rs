//! Source files and spans: every diagnostic and every plan entry points back here.

use std::fmt;
use std::path::{Path, PathBuf};

/// Index of a file in a [`SourceDb`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u32);

/// A byte range in one source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// The file the range is in.
    pub file: FileId,
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// A span from byte offsets.
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span {
            file,
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }

    /// The smallest span covering both (same file assumed; else `self`).
    pub fn to(self, other: Span) -> Span {
        if self.file != other.file {
            return self;
        }
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// Length in bytes.
    pub fn len(self) -> usize {
        self.end.saturating_sub(self.start) as usize
    }

    /// True for an empty span.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// A value together with the span it was written at.
#[derive(Clone, Debug)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Pairs a value with its span.
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

impl<T: PartialEq> PartialEq for Spanned<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

/// A string value of a mailbox or group, read with [`SourceDb::text`].
///
/// A directory holds hundreds of thousands of them, and nearly every one is
/// a plain quoted string whose value is its source text: that value is not
/// copied out of the file, only its span is kept. Deliberately not
/// `PartialEq`: two [`Text::Quoted`] are equal only through their spans'
/// text, so compare the `&str`s that [`SourceDb::text`] gives.
#[derive(Clone, Debug)]
pub enum Text {
    /// The text inside the span's one-character quotes, unchanged.
    Quoted,
    /// A value that differs from its source text (escapes decoded, an
    /// address normalized) or was not read from a quoted string.
    Owned(Box<str>),
}

impl From<String> for Text {
    fn from(value: String) -> Text {
        Text::Owned(value.into_boxed_str())
    }
}

impl From<Spanned<String>> for Spanned<Text> {
    fn from(value: Spanned<String>) -> Spanned<Text> {
        Spanned::new(Text::from(value.value), value.span)
    }
}

impl Spanned<Text> {
    /// The value, given the whole text of the file the span is in;
    /// [`SourceDb::text`] finds the file itself.
    pub fn text_in<'a>(&'a self, file_text: &'a str) -> &'a str {
        match &self.value {
            Text::Owned(text) => text,
            Text::Quoted => file_text
                .get(self.span.start as usize + 1..(self.span.end as usize).saturating_sub(1))
                .unwrap_or(""),
        }
    }
}

/// What kind of file a source is, which decides how it is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// A `.mailgw` configuration file.
    Config,
    /// A TOML directory of mailboxes and groups.
    Directory,
}

/// One loaded source file.
#[derive(Debug)]
pub struct SourceFile {
    /// The path as it was opened.
    pub path: PathBuf,
    /// The path as shown to the user (relative where it can be).
    pub name: String,
    /// The whole text.
    pub text: String,
    /// Byte offset of the start of each line.
    line_starts: Vec<u32>,
    /// How the file is read.
    pub kind: SourceKind,
}

impl SourceFile {
    /// 0-based line of a byte offset, looked for from line `near` on: a
    /// caller going through a file in order (lowering, 100,000 directory
    /// entries) finds the next line a few steps on, without a search.
    pub fn line_near(&self, offset: u32, near: usize) -> usize {
        let starts = &self.line_starts;
        if starts.get(near).is_some_and(|&start| start <= offset) {
            for line in near..near.saturating_add(16) {
                if starts.get(line + 1).is_none_or(|&next| next > offset) {
                    return line;
                }
            }
        }
        self.line_index(offset)
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: u32) -> (u32, u32) {
        let line = self.line_index(offset);
        let start = self.line_starts.get(line).copied().unwrap_or(0) as usize;
        let end = (offset as usize).min(self.text.len());
        let column = self
            .text
            .get(start..end)
            .map_or(end - start, |s| s.chars().count());
        (line as u32 + 1, column as u32 + 1)
    }

    /// 0-based line of a byte offset.
    fn line_index(&self, offset: u32) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        }
    }
}

/// All files read during one compilation, in the order they were read.
#[derive(Debug, Default)]
pub struct SourceDb {
    files: Vec<SourceFile>,
}

impl SourceDb {
    /// An empty database.
    pub fn new() -> SourceDb {
        SourceDb::default()
    }

    /// Adds a file's text and returns its id.
    pub fn add(&mut self, path: &Path, name: String, text: String, kind: SourceKind) -> FileId {
        // Counted first: a directory has hundreds of thousands of lines,
        // and growing the vector by doubling copies it over and over.
        let mut line_starts = Vec::with_capacity(1 + text.bytes().filter(|&b| b == b'\n').count());
        line_starts.push(0);
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i as u32 + 1));
        self.files.push(SourceFile {
            path: path.to_path_buf(),
            name,
            text,
            line_starts,
            kind,
        });
        FileId(self.files.len() as u32 - 1)
    }

    /// The file behind an id.
    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// The id of a file already loaded from `path`, if any.
    pub fn find(&self, path: &Path) -> Option<FileId> {
        self.files
            .iter()
            .position(|f| f.path == path)
            .map(|i| FileId(i as u32))
    }

    /// All files, in load order.
    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }

    /// The value of a mailbox's or group's string.
    pub fn text<'a>(&'a self, value: &'a Spanned<Text>) -> &'a str {
        value.text_in(&self.file(value.span.file).text)
    }

    /// The text a span covers.
    pub fn slice(&self, span: Span) -> &str {
        self.file(span.file)
            .text
            .get(span.start as usize..span.end as usize)
            .unwrap_or("")
    }

    /// `file:line:column` of a span's start.
    pub fn locate(&self, span: Span) -> Location<'_> {
        let file = self.file(span.file);
        let (line, column) = file.line_col(span.start);
        Location {
            file: &file.name,
            line,
            column,
        }
    }
}

/// A human position: file name, 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location<'a> {
    /// The file's display name.
    pub file: &'a str,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_near_any_hint_is_the_line() {
        let mut db = SourceDb::new();
        let text = "a\nbc\n\n".to_owned() + &"x\n".repeat(40) + "end";
        let id = db.add(Path::new("t"), "t".into(), text.clone(), SourceKind::Config);
        let file = db.file(id);
        for offset in 0..=text.len() as u32 {
            let line = file.line_col(offset).0 as usize - 1;
            for near in [0, 1, 3, 20, 44, 45, 1000] {
                assert_eq!(file.line_near(offset, near), line, "{offset} from {near}");
            }
        }
    }

    #[test]
    fn quoted_text_is_read_from_the_file() {
        let mut db = SourceDb::new();
        let id = db.add(
            Path::new("t"),
            "t".into(),
            "k = \"alice\"".into(),
            SourceKind::Directory,
        );
        let quoted = Spanned::new(Text::Quoted, Span::new(id, 4, 11));
        let owned = Spanned::new(Text::from("bob".to_owned()), Span::new(id, 4, 11));
        assert_eq!((db.text(&quoted), db.text(&owned)), ("alice", "bob"));
    }
}
