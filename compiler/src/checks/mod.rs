//! Semantic checks: one check, one file, each with its doc comment and tests.
//!
//! Every check reads the whole [`Config`] and reports every problem it finds;
//! none stops the others. A check never panics on a configuration the reader
//! accepted, however wrong: missing parts are simply skipped.

use crate::ast::Config;
use crate::diagnostic::{Diagnostic, Diagnostics};
pub use crate::name_table::NameTable;
use crate::source::SourceDb;

mod addresses;
mod auth;
mod connectors;
mod domains;
mod exposure;
mod files;
mod filter_return;
mod groups;
mod loops;
mod names;
mod ports;
mod postmaster;
mod queue;
mod relay;
mod unroutable;
mod unused;

/// What every check gets: the sources, the configuration, name tables, and
/// the list to report into.
pub struct Context<'a> {
    /// Every file read.
    pub db: &'a SourceDb,
    /// The configuration.
    pub config: &'a Config,
    /// Name → index tables, first definition wins.
    pub names: Names<'a>,
    /// Findings so far.
    pub diagnostics: Diagnostics,
}

/// Lookup tables from names to the index of their first definition.
#[derive(Default)]
pub struct Names<'a> {
    /// TLS profiles.
    pub tls: NameTable<'a>,
    /// Listeners.
    pub listeners: NameTable<'a>,
    /// Backends.
    pub backends: NameTable<'a>,
    /// Mailboxes.
    pub mailboxes: NameTable<'a>,
    /// Groups.
    pub groups: NameTable<'a>,
    /// Connectors.
    pub connectors: NameTable<'a>,
}

impl<'a> Names<'a> {
    /// Builds the tables of a configuration read into `db`.
    pub fn new(db: &'a SourceDb, config: &'a Config) -> Names<'a> {
        fn table<'a, T>(items: &'a [T], name: impl Fn(&'a T) -> &'a str) -> NameTable<'a> {
            NameTable::new(items.iter().map(name))
        }
        Names {
            tls: table(&config.tls, |t| &t.name.value),
            listeners: table(&config.listeners, |l| &l.name.value),
            backends: table(&config.backends, |b| &b.name.value),
            mailboxes: table(&config.mailboxes, |m| db.text(&m.name)),
            groups: table(&config.groups, |g| db.text(&g.name)),
            connectors: table(&config.connectors, |c| &c.name.value),
        }
    }
}

impl Context<'_> {
    /// Records a finding.
    pub fn report(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }
}

/// Runs every check and returns their findings.
pub fn run(db: &SourceDb, config: &Config) -> Diagnostics {
    let mut cx = Context {
        db,
        config,
        names: Names::new(db, config),
        diagnostics: Diagnostics::new(),
    };
    names::check(&mut cx);
    addresses::check(&mut cx);
    ports::check(&mut cx);
    relay::check(&mut cx);
    auth::check(&mut cx);
    exposure::check(&mut cx);
    filter_return::check(&mut cx);
    loops::check(&mut cx);
    connectors::check(&mut cx);
    unroutable::check(&mut cx);
    postmaster::check(&mut cx);
    files::check(&mut cx);
    queue::check(&mut cx);
    unused::check(&mut cx);
    groups::check(&mut cx);
    domains::check(&mut cx);
    cx.diagnostics
}

/// Test support: the findings of a configuration given as text, and the
/// codes among them.
#[cfg(test)]
pub mod testing {
    use crate::diagnostic::{Code, Diagnostic};

    /// Every finding for `text`, read as `test.mailgw` in the current directory.
    pub fn findings(text: &str) -> Vec<Diagnostic> {
        crate::check_text(std::path::Path::new("test.mailgw"), text).diagnostics
    }

    /// The source text under a finding's primary label.
    pub fn at(text: &str, d: &Diagnostic) -> String {
        let span = d.primary.span;
        text[span.start as usize..span.end as usize].to_owned()
    }

    /// The source text under a finding's first secondary label.
    pub fn second(text: &str, d: &Diagnostic) -> String {
        let span = d
            .secondary
            .first()
            .map(|l| l.span)
            .expect("a secondary label");
        text[span.start as usize..span.end as usize].to_owned()
    }

    /// The findings for `text` that carry `code`.
    pub fn with_code(text: &str, code: Code) -> Vec<Diagnostic> {
        findings(text)
            .into_iter()
            .filter(|d| d.code == code)
            .collect()
    }
}
