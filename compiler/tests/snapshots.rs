//! Data-driven snapshot tests: every configuration in a folder is a test.
//!
//! - `compiler/tests/cases/ok/*.mailgw` and `examples/*.mailgw` must compile
//!   (check and lower into a plan) with no error; warnings are allowed and
//!   recorded.
//! - `compiler/tests/cases/err/*.mailgw` and `examples/broken/*.mailgw` must
//!   give at least one error.
//! - `compiler/tests/cases/warn/*.mailgw` must give at least one warning and
//!   no error: they still build.
//!
//! Each file's findings, rendered as `mailgwc check` shows them (miette's
//! graphical handler, unicode without colour, 100 columns), are an insta
//! snapshot in `snapshots/`. Paths are relative to the repository root: the
//! tests run there, so snapshots do not depend on the machine.
//!
//! To accept changed or new snapshots: `INSTA_UPDATE=always cargo test -p
//! mailgw-compiler --test snapshots` (or `cargo insta accept`), then read the
//! `.snap` files before committing them.
//!
//! `docs/diagnostics.md` is generated here from [`Code::ALL`]: the test
//! [`diagnostics_doc_is_current`] fails when it differs, and
//! `UPDATE_DOCS=1` rewrites it.
//!
//! `mailgwc explain` snapshots live in `tests/explain.rs` (with their inputs
//! in `tests/explain/`); `mailgwc build`/`inspect` ones belong there or
//! in `tests/cli.rs`, not here: this file is about `check`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

use mailgw_compiler::diagnostic::{Code, Report, Severity};
use mailgw_compiler::Compilation;
use miette::{GraphicalReportHandler, GraphicalTheme};

/// The repository root: the compiler crate's parent.
fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Makes the repository root the current directory, once for the whole test
/// binary, so that every file is named relative to it (`examples/x.mailgw`).
/// Every test here calls it first; all of them want the same directory, so
/// tests running in parallel agree.
fn enter_root() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_current_dir(repo_root()).expect("the repository root is a directory");
    });
}

/// `path` relative to the repository root, as a user would type it there.
fn relative(path: &Path) -> PathBuf {
    let root = repo_root();
    let root = root.canonicalize().unwrap_or(root);
    path.strip_prefix(&root).unwrap_or(path).to_path_buf()
}

/// The findings rendered as `mailgwc check` prints them, then the counts.
fn render(compilation: &Compilation, name: &Path) -> String {
    let handler =
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor()).with_width(100);
    let mut out = String::new();
    for diagnostic in &compilation.diagnostics {
        let report = Report::new(&compilation.db, diagnostic);
        handler
            .render_report(&mut out, &report)
            .expect("rendering into a String cannot fail");
        out.push('\n');
    }
    let (errors, warnings) = counts(compilation);
    out.push_str(&format!(
        "{}: {errors} error{}, {warnings} warning{}\n",
        name.display(),
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" },
    ));
    strip_root(&out)
}

/// Replaces the absolute repository path, should a message contain one.
fn strip_root(text: &str) -> String {
    let root = repo_root();
    let canonical = root.canonicalize().unwrap_or_else(|_| root.clone());
    let mut out = text.replace(&format!("{}/", canonical.display()), "");
    out = out.replace(&format!("{}/", root.display()), "");
    out
}

fn counts(compilation: &Compilation) -> (usize, usize) {
    let errors = compilation
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    (errors, compilation.diagnostics.len() - errors)
}

/// One line per finding, for assertion messages.
fn summary(compilation: &Compilation) -> String {
    compilation
        .diagnostics
        .iter()
        .map(|d| format!("  {} {}: {}", d.severity.as_str(), d.code, d.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Compiles each file `glob!` gives, snapshots its findings, and collects
/// the files that break `expect` instead of stopping at the first.
fn run_glob(kind: &str, problems: &mut Vec<String>, path: &Path, expect: Expect) {
    let name = relative(path);
    let compilation = mailgw_compiler::compile(&name);
    insta::assert_snapshot!(kind, render(&compilation, &name));
    let (errors, warnings) = counts(&compilation);
    match expect {
        Expect::Clean => {
            if errors > 0 {
                problems.push(format!(
                    "{}: errors:\n{}",
                    name.display(),
                    summary(&compilation)
                ));
            } else if compilation.plan.is_none() {
                problems.push(format!("{}: no plan was built", name.display()));
            }
        }
        Expect::Warnings => {
            if errors > 0 || warnings == 0 {
                problems.push(format!(
                    "{}: expected warnings only:\n{}",
                    name.display(),
                    summary(&compilation)
                ));
            }
        }
        Expect::Errors => {
            if errors == 0 {
                problems.push(format!(
                    "{}: no error:\n{}",
                    name.display(),
                    summary(&compilation)
                ));
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Expect {
    /// No error, and a plan.
    Clean,
    /// At least one warning and no error.
    Warnings,
    /// At least one error.
    Errors,
}

fn assert_no_problems(problems: &[String]) {
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Runs [`run_glob`] over the `.mailgw` files of `folder` (relative to this
/// file), then fails with every file that broke `expect`.
fn check_folder(folder: &str, kind: &str, expect: Expect) {
    enter_root();
    let mut problems = Vec::new();
    insta::glob!(folder, "*.mailgw", |path| {
        run_glob(kind, &mut problems, path, expect)
    });
    assert_no_problems(&problems);
}

#[test]
fn ok_cases() {
    check_folder("cases/ok", "ok", Expect::Clean);
}

#[test]
fn examples() {
    check_folder("../../examples", "example", Expect::Clean);
}

/// The quickstart is what a fresh machine runs: not even a warning.
#[test]
fn quickstart_has_no_findings() {
    enter_root();
    let compilation = mailgw_compiler::compile(Path::new("examples/quickstart.mailgw"));
    assert!(
        compilation.diagnostics.is_empty(),
        "\n{}",
        summary(&compilation)
    );
    assert!(compilation.plan.is_some());
}

/// Error cases: each shows one mistake that stops the build.
#[test]
fn err_cases() {
    check_folder("cases/err", "err", Expect::Errors);
}

/// Warning cases: each shows one doubtful setting that still builds.
#[test]
fn warn_cases() {
    check_folder("cases/warn", "warn", Expect::Warnings);
}

/// The broken examples are admins' mistakes that stop the build: errors.
#[test]
fn broken_examples() {
    check_folder("../../examples/broken", "broken", Expect::Errors);
}

/// `mailgwc check --format json` for a few cases: one diagnostic in one
/// file, and one whose places are in two files.
#[test]
fn json() {
    enter_root();
    for (snapshot, file) in [
        (
            "json_open_relay",
            "compiler/tests/cases/err/open-relay.mailgw",
        ),
        (
            "json_duplicate_address",
            "examples/broken/duplicate-address.mailgw",
        ),
        ("json_typo_keyword", "examples/broken/typo-keyword.mailgw"),
    ] {
        let compilation = mailgw_compiler::check(Path::new(file));
        let list: Vec<serde_json::Value> = compilation
            .diagnostics
            .iter()
            .map(|d| d.to_json(&compilation.db))
            .collect();
        let text = serde_json::to_string_pretty(&list).expect("JSON values serialize");
        insta::assert_snapshot!(snapshot, strip_root(&text));
    }
}

/// The severity each code is reported with, for docs/diagnostics.md. Kept
/// here by hand; [`severities_match_the_cases`] checks it against every case.
fn severity(code: Code) -> Option<&'static str> {
    Some(match code {
        Code::Io
        | Code::Syntax
        | Code::UnknownKeyword
        | Code::Arguments
        | Code::IncludeCycle
        | Code::Directory
        | Code::UnknownReference
        | Code::DuplicateName
        | Code::ForeignAddress
        | Code::PortConflict
        | Code::OpenRelay
        | Code::CleartextCredentials
        | Code::UnreachableListener
        | Code::RoutingLoop => "error",
        Code::Statement
        | Code::Value
        | Code::DuplicateAddress
        | Code::RelayByAddress
        | Code::Unroutable
        | Code::NoPostmaster
        | Code::File
        | Code::QueueSchedule => "error or warning",
        Code::RelayUnreachableRule
        | Code::NonStandardPort
        | Code::FilterReturnExposed
        | Code::ShadowedAddressSpace
        | Code::Unused
        | Code::EmptyGroup
        | Code::EmptyDomain => "warning",
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// docs/diagnostics.md, from `Code::ALL`, `Code::explanation` and [`severity`].
fn diagnostics_doc() -> Result<String, String> {
    let mut out = String::from(
        "# Diagnostics\n\
         \n\
         <!-- Generated by compiler/tests/snapshots.rs from `Code::ALL` in\n\
         compiler/src/diagnostic.rs; edit the doc comments there, then run\n\
         `UPDATE_DOCS=1 cargo test -p mailgw-compiler --test snapshots diagnostics_doc`. -->\n\
         \n\
         Every finding of `mailgwc check` carries a stable code. A code never\n\
         changes meaning; a new kind of finding gets a new code. An **error**\n\
         stops `mailgwc build`; a **warning** does not, but says that the\n\
         configuration probably does not do what was meant. Some codes are\n\
         errors in one situation and warnings in another (an expired\n\
         certificate is an error, one expiring within 30 days a warning); the\n\
         report always says which.\n\
         \n\
         Each report points at the place in the source, says in one sentence\n\
         why it matters, and says what to do. `mailgwc check --format json`\n\
         gives the same as JSON objects (`code`, `severity`, `message`, `help`,\n\
         `file`, `line`, `column`, `end_line`, `end_column`, `label`).\n\
         \n\
         Examples of most findings are in `compiler/tests/cases/err/` (errors),\n\
         `compiler/tests/cases/warn/` (warnings) and\n\
         `examples/broken/`, with the reports in `compiler/tests/snapshots/`.\n\
         \n\
         | code | severity |\n\
         | --- | --- |\n",
    );
    let mut missing = Vec::new();
    for code in Code::ALL {
        let severity = severity(*code).unwrap_or_else(|| {
            missing.push(code.as_str());
            "?"
        });
        out.push_str(&format!(
            "| [`{code}`](#{}) | {severity} |\n",
            anchor(code.as_str())
        ));
    }
    let checks = check_docs();
    for code in Code::ALL {
        let explanation: Vec<&str> = code.explanation().lines().map(str::trim).collect();
        out.push_str(&format!(
            "\n## `{code}`\n\n*{}*\n\n{}\n",
            severity(*code).unwrap_or("?"),
            explanation.join("\n").trim()
        ));
        // A check defines a code in its first line or in a `**`code`**` heading;
        // other mentions ("that is `mailgw::x` already") are not its check.
        let needle = format!("`{code}`");
        let heading = format!("**{needle}**");
        let files: Vec<String> = checks
            .iter()
            .filter(|(_, doc)| {
                doc.lines().next().is_some_and(|l| l.contains(&needle)) || doc.contains(&heading)
            })
            .map(|(file, _)| format!("[`{file}`](../compiler/src/checks/{file})"))
            .collect();
        if !files.is_empty() {
            out.push_str(&format!(
                "\nChecked in {}: the doc comment there says exactly when it is reported.\n",
                files.join(", ")
            ));
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(format!(
            "add the severity of {} to `severity()` in compiler/tests/snapshots.rs",
            missing.join(", ")
        ))
    }
}

/// Each check file's name and its module doc (`//!` lines), by file name.
fn check_docs() -> Vec<(String, String)> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/checks");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&folder)
        .expect("compiler/src/checks is a folder")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_owned();
            let text = std::fs::read_to_string(&path).ok()?;
            let doc: Vec<&str> = text
                .lines()
                .filter_map(|line| line.trim_start().strip_prefix("//!"))
                .collect();
            Some((name, doc.join("\n")))
        })
        .collect();
    files.sort();
    files
}

/// The anchor GitHub gives the heading "`code`": lowercase, `:` dropped.
fn anchor(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[test]
fn diagnostics_doc_is_current() {
    let path = repo_root().join("docs/diagnostics.md");
    let wanted = diagnostics_doc().unwrap_or_else(|message| panic!("{message}"));
    if std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &wanted).expect("docs/diagnostics.md is writable");
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == wanted,
        "docs/diagnostics.md is out of date: run `UPDATE_DOCS=1 cargo test -p mailgw-compiler --test snapshots diagnostics_doc`"
    );
}

/// Every code a case reports comes with a severity docs/diagnostics.md
/// admits, and every finding has a primary place.
#[test]
fn severities_match_the_cases() {
    enter_root();
    let mut seen: BTreeMap<Code, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for folder in [
        "compiler/tests/cases/ok",
        "compiler/tests/cases/err",
        "compiler/tests/cases/warn",
        "examples",
        "examples/broken",
    ] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
            .expect("the case folders exist")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "mailgw"))
            .collect();
        files.sort();
        for file in files {
            let compilation = mailgw_compiler::check(&file);
            for d in &compilation.diagnostics {
                let documented = severity(d.code).unwrap_or("?");
                if !documented.contains(d.severity.as_str()) {
                    problems.push(format!(
                        "{}: {} is a {}, documented as {documented}",
                        file.display(),
                        d.code,
                        d.severity.as_str()
                    ));
                }
                if d.help.is_none() {
                    problems.push(format!(
                        "{}: {} has no help line: {}",
                        file.display(),
                        d.code,
                        d.message
                    ));
                }
                seen.entry(d.code)
                    .or_default()
                    .push(file.display().to_string());
            }
        }
    }
    assert_no_problems(&problems);
    // The cases exercise the common codes; a failure here means a case was lost.
    for code in [
        Code::OpenRelay,
        Code::DuplicateAddress,
        Code::IncludeCycle,
        Code::UnknownKeyword,
    ] {
        assert!(seen.contains_key(&code), "no case reports {code}");
    }
}

/// The examples in docs/language.md read without a syntax or value error:
/// the reference shows forms the reader accepts. They are fragments, so
/// what only the whole configuration decides (references, files, relay
/// safety) is not asserted.
#[test]
fn language_doc_examples_read() {
    let path = repo_root().join("docs/language.md");
    let text = std::fs::read_to_string(&path).expect("docs/language.md exists");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match &mut current {
            None if trimmed == "```mailgw" => current = Some(String::new()),
            Some(block) if trimmed == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(trimmed);
                block.push('\n');
            }
            None => {}
        }
    }
    assert!(blocks.len() > 20, "found only {} examples", blocks.len());
    let reader_codes = [
        Code::Syntax,
        Code::UnknownKeyword,
        Code::Arguments,
        Code::Statement,
        Code::Value,
    ];
    let mut problems = Vec::new();
    for block in &blocks {
        let compilation = mailgw_compiler::check_text(&path, block);
        for d in &compilation.diagnostics {
            if d.severity == Severity::Error && reader_codes.contains(&d.code) {
                problems.push(format!("{}: {}\n{block}", d.code, d.message));
            }
        }
    }
    assert_no_problems(&problems);
}
