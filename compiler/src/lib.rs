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
pub mod name_table;
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

/// Runs the checks and, when asked and the reading went well, lowers the
/// configuration at the same time on another thread: lowering never fails
/// and never panics on a wrong configuration, so its plan is simply
/// dropped when a check finds an error.
fn finish(
    db: SourceDb,
    mut diagnostics: Diagnostics,
    config: &ast::Config,
    lower: bool,
) -> Compilation {
    let lower = lower && !diagnostics.has_errors();
    let (findings, plan) = std::thread::scope(|scope| {
        let lowering = lower.then(|| scope.spawn(|| lower::lower(&db, config)));
        let findings = checks::run(&db, config);
        (findings, lowering.and_then(|l| l.join().ok()))
    });
    diagnostics.extend(findings);
    let plan = plan.filter(|_| !diagnostics.has_errors());
    Compilation {
        db,
        diagnostics: diagnostics.sorted(),
        plan,
    }
}
