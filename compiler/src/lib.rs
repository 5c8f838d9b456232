//! The `.mailgw` language: reading, checking and lowering a configuration into a plan.
//!
//! The phases, each in its own module:
//! [`syntax`] (pest → statements) → [`reader`] (statements → typed [`ast`]) →
//! [`checks`] (every semantic finding, all reported) → [`lower`] (→ [`mailgw_plan::Plan`]),
//! and [`explain`] answers "what happens to mail for this address" from a plan.
//! This crate does no network I/O; it reads the configuration's files only.

pub mod args;
pub mod ast;
pub mod checks;
pub mod diagnostic;
pub mod directory;
pub mod explain;
pub mod literal;
pub mod lower;
pub mod reader;
pub mod source;
pub mod suggest;
pub mod syntax;

use std::path::Path;

use diagnostic::{Diagnostic, Diagnostics};
use source::SourceDb;

/// The result of compiling one configuration.
#[derive(Debug)]
pub struct Compilation {
    /// Every file read.
    pub db: SourceDb,
    /// Every finding, errors and warnings, in a stable order.
    pub diagnostics: Vec<Diagnostic>,
    /// The plan, when there was no error and lowering was asked for.
    pub plan: Option<mailgw_plan::Plan>,
}

impl Compilation {
    /// True when at least one finding is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == diagnostic::Severity::Error)
    }
}

/// Reads and checks `main` and all it includes, without building a plan.
pub fn check(main: &Path) -> Compilation {
    run(main, false)
}

/// Reads, checks and, if there is no error, lowers `main` into a plan.
pub fn compile(main: &Path) -> Compilation {
    run(main, true)
}

/// Checks a configuration given as text, as if it were the file `name`.
/// Paths in it resolve against `name`'s directory.
pub fn check_text(name: &Path, text: &str) -> Compilation {
    let mut db = SourceDb::new();
    let mut diagnostics = Diagnostics::new();
    let config = reader::read_text(&mut db, &mut diagnostics, name, text.to_owned());
    finish(db, diagnostics, &config, false)
}

fn run(main: &Path, lower: bool) -> Compilation {
    let mut db = SourceDb::new();
    let mut diagnostics = Diagnostics::new();
    let config = reader::read(&mut db, &mut diagnostics, main);
    finish(db, diagnostics, &config, lower)
}

fn finish(db: SourceDb, mut diagnostics: Diagnostics, config: &ast::Config, lower: bool) -> Compilation {
    let has_syntax_errors = diagnostics.has_errors();
    diagnostics.extend(checks::run(&db, config));
    let plan = if lower && !has_syntax_errors && !diagnostics.has_errors() {
        Some(lower::lower(&db, config))
    } else {
        None
    };
    Compilation {
        db,
        diagnostics: diagnostics.sorted(),
        plan,
    }
}
