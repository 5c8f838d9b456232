//! Directory files: thousands of mailboxes and groups in TOML.
//!
//! A directory means exactly what the same `mailbox` and `group` statements
//! would mean in a `.mailgw` file. Errors point into the TOML file itself.
//!
//! ```toml
//! [[mailbox]]
//! name = "alice"
//! backend = "mbx1"
//! addresses = ["alice@example.com", "a.smith@example.com"]
//! password = "$argon2id$v=19$..."     # optional
//!
//! [[group]]
//! name = "sales"
//! addresses = ["sales@example.com"]
//! members = ["alice", "bob@example.org"]
//! ```

use std::borrow::Cow;

use crate::ast::{Config, Group, Mailbox};
use crate::diagnostic::{Code, Diagnostic, Diagnostics, Label};
use crate::literal;
use crate::source::{FileId, SourceDb, Span, Spanned, Text};
use crate::suggest;

mod events;
mod scan;

/// The entries read so far: the configuration's lists, which a directory's
/// mailboxes and groups are appended to.
#[derive(Default)]
struct Entries {
    mailboxes: Vec<Mailbox>,
    groups: Vec<Group>,
    /// Addresses that are not valid, found while reading.
    diagnostics: Vec<Diagnostic>,
}

/// How many entries of each kind there are, to go back to.
#[derive(Clone, Copy)]
struct Lengths {
    mailboxes: usize,
    groups: usize,
    diagnostics: usize,
}

impl Entries {
    /// Appends the entries of the next piece of the file.
    fn append(&mut self, mut next: Entries) {
        self.mailboxes.append(&mut next.mailboxes);
        self.groups.append(&mut next.groups);
        self.diagnostics.append(&mut next.diagnostics);
    }

    fn lengths(&self) -> Lengths {
        Lengths {
            mailboxes: self.mailboxes.len(),
            groups: self.groups.len(),
            diagnostics: self.diagnostics.len(),
        }
    }

    /// Drops what was added since `lengths` were taken.
    fn truncate(&mut self, lengths: Lengths) {
        self.mailboxes.truncate(lengths.mailboxes);
        self.groups.truncate(lengths.groups);
        self.diagnostics.truncate(lengths.diagnostics);
    }
}

/// The address in normal form, or `None` with its diagnostic recorded;
/// `file_text` is the text of the directory file. An address already in
/// normal form, as nearly every one is, is kept as it came.
fn checked_address(
    raw: Spanned<Text>,
    file_text: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Spanned<Text>> {
    let normal = match literal::address_cow(raw.text_in(file_text)) {
        Ok(Cow::Borrowed(_)) => None,
        Ok(Cow::Owned(normal)) => Some(normal),
        Err(message) => {
            diagnostics.push(Diagnostic::error(
                Code::Value,
                message,
                Label::new(raw.span, "invalid address"),
            ));
            return None;
        }
    };
    Some(match normal {
        None => raw,
        Some(normal) => Spanned::new(normal.into(), raw.span),
    })
}

const FIELDS: &[&str] = &[
    "mailbox",
    "group",
    "name",
    "backend",
    "addresses",
    "password",
    "members",
];

/// Reads directory file `file` into `config`'s mailboxes and groups.
///
/// Directories are large (hundreds of thousands of mailboxes), so the
/// common shape — `[[mailbox]]`/`[[group]]` tables of strings and string
/// arrays — is read straight from the TOML parser's events, or from a
/// scanner of its plainest form (`scan`) that sends the same. Anything else,
/// valid or not, goes through the `toml` crate's full deserializer, which
/// also gives the exact error for a broken file; both readers give the same
/// entries for the files the fast one accepts (tested).
pub fn read(db: &SourceDb, file: FileId, diagnostics: &mut Diagnostics, config: &mut Config) {
    let text = &db.file(file).text;
    let mut entries = Entries {
        mailboxes: std::mem::take(&mut config.mailboxes),
        groups: std::mem::take(&mut config.groups),
        diagnostics: Vec::new(),
    };
    if !events::read(file, text, &mut entries) {
        if let Err(error) = serde_read(file, text, &mut entries) {
            diagnostics.push(toml_error(file, text, &error));
        }
    }
    diagnostics.extend(entries.diagnostics);
    config.mailboxes = entries.mailboxes;
    config.groups = entries.groups;
}

mod serde_form {
    use serde::Deserialize;
    use toml::Spanned;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct File {
        #[serde(default)]
        pub mailbox: Vec<Mailbox>,
        #[serde(default)]
        pub group: Vec<Group>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Mailbox {
        pub name: Spanned<String>,
        pub backend: Spanned<String>,
        #[serde(default)]
        pub addresses: Vec<Spanned<String>>,
        pub password: Option<Spanned<String>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Group {
        pub name: Spanned<String>,
        #[serde(default)]
        pub addresses: Vec<Spanned<String>>,
        #[serde(default)]
        pub members: Vec<Spanned<String>>,
    }
}

/// The full `toml` deserializer: every valid TOML form, exact errors.
/// Appends to `entries` only when the whole file reads.
fn serde_read(file: FileId, text: &str, entries: &mut Entries) -> Result<(), toml::de::Error> {
    let parsed: serde_form::File = toml::from_str(text)?;
    let spanned = |s: toml::Spanned<String>| {
        let range = s.span();
        Spanned::new(
            Text::from(s.into_inner()),
            Span::new(file, range.start, range.end),
        )
    };
    let addresses = |list: Vec<toml::Spanned<String>>, diagnostics: &mut Vec<Diagnostic>| {
        list.into_iter()
            .filter_map(|a| checked_address(spanned(a), text, diagnostics))
            .collect()
    };
    for m in parsed.mailbox {
        let addresses = addresses(m.addresses, &mut entries.diagnostics);
        let name = spanned(m.name);
        entries.mailboxes.push(Mailbox {
            span: name.span,
            name,
            backend: spanned(m.backend),
            addresses,
            password: m.password.map(spanned),
        });
    }
    for g in parsed.group {
        let addresses = addresses(g.addresses, &mut entries.diagnostics);
        let name = spanned(g.name);
        entries.groups.push(Group {
            span: name.span,
            name,
            addresses,
            members: g.members.into_iter().map(spanned).collect(),
        });
    }
    Ok(())
}

fn toml_error(file: FileId, text: &str, error: &toml::de::Error) -> Diagnostic {
    let range = error.span().unwrap_or(0..0);
    let end = if range.is_empty() {
        (range.start + 1).min(text.len())
    } else {
        range.end
    };
    let message = error.message().trim().to_owned();
    let first_line = message.lines().next().unwrap_or("invalid TOML").to_owned();
    let mut diagnostic = Diagnostic::error(
        Code::Directory,
        format!("this directory file is not valid: {first_line}"),
        Label::new(Span::new(file, range.start, end), "here"),
    );
    let unknown = first_line
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next());
    diagnostic = match unknown.and_then(|field| suggest::closest(field, FIELDS.iter().copied())) {
        Some(s) => diagnostic.with_help(format!("did you mean `{s}`?")),
        None => diagnostic.with_help(
            "a directory has `[[mailbox]]` tables (name, backend, addresses, password) and `[[group]]` tables (name, addresses, members)",
        ),
    };
    diagnostic
}
