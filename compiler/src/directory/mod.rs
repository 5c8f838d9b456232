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

use serde::Deserialize;
use toml::Spanned as TomlSpanned;

use crate::ast::{Config, Group, Mailbox};
use crate::diagnostic::{Code, Diagnostic, Diagnostics, Label};
use crate::literal;
use crate::source::{FileId, SourceDb, Span, Spanned};
use crate::suggest;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    mailbox: Vec<MailboxEntry>,
    #[serde(default)]
    group: Vec<GroupEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MailboxEntry {
    name: TomlSpanned<String>,
    backend: TomlSpanned<String>,
    #[serde(default)]
    addresses: Vec<TomlSpanned<String>>,
    password: Option<TomlSpanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupEntry {
    name: TomlSpanned<String>,
    #[serde(default)]
    addresses: Vec<TomlSpanned<String>>,
    #[serde(default)]
    members: Vec<TomlSpanned<String>>,
}

const FIELDS: &[&str] = &["mailbox", "group", "name", "backend", "addresses", "password", "members"];

/// Reads directory file `file` into `config`'s mailboxes and groups.
pub fn read(db: &SourceDb, file: FileId, diagnostics: &mut Diagnostics, config: &mut Config) {
    let text = &db.file(file).text;
    let parsed: File = match toml::from_str(text) {
        Ok(parsed) => parsed,
        Err(error) => {
            diagnostics.push(toml_error(file, text, &error));
            return;
        }
    };
    let spanned = |s: TomlSpanned<String>| {
        let range = s.span();
        Spanned::new(s.into_inner(), Span::new(file, range.start, range.end))
    };
    let addresses = |list: Vec<TomlSpanned<String>>, diagnostics: &mut Diagnostics| {
        let mut out = Vec::with_capacity(list.len());
        for raw in list {
            let raw = spanned(raw);
            match literal::address(&raw.value) {
                Ok(address) => out.push(Spanned::new(address, raw.span)),
                Err(message) => diagnostics.push(Diagnostic::error(
                    Code::Value,
                    message,
                    Label::new(raw.span, "invalid address"),
                )),
            }
        }
        out
    };
    config.mailboxes.reserve(parsed.mailbox.len());
    for entry in parsed.mailbox {
        let name = spanned(entry.name);
        let span = name.span;
        config.mailboxes.push(Mailbox {
            addresses: addresses(entry.addresses, diagnostics),
            backend: spanned(entry.backend),
            password: entry.password.map(spanned),
            name,
            span,
        });
    }
    for entry in parsed.group {
        let name = spanned(entry.name);
        let span = name.span;
        config.groups.push(Group {
            addresses: addresses(entry.addresses, diagnostics),
            members: entry.members.into_iter().map(spanned).collect(),
            name,
            span,
        });
    }
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
