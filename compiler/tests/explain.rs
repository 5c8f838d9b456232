//! Explain snapshots: what `mailgwc explain` says about a few recipients of
//! each configuration.
//!
//! - Every `tests/explain/*.mailgw` lists its questions in comment lines
//!   `# explain: --to ADDR [--from ADDR] [--client IP] [--auth USER]`.
//! - Every `examples/*.mailgw` gets a standard set derived from its plan: the
//!   first mailbox, the first group, an unknown user in the first local
//!   domain, and a remote address from a stranger and from an authenticated
//!   user.
//!
//! Each configuration must compile without errors. Source lines in the output
//! are relative to the configuration's directory, so the snapshots do not
//! depend on where the tests run.

use std::net::IpAddr;
use std::path::Path;

use mailgw_compiler::explain::{explain, Query};
use mailgw_plan::{Plan, Target};

/// Compiles `path`, failing the test with the diagnostics if it has errors.
fn plan(path: &Path) -> Plan {
    let compilation = mailgw_compiler::compile(path);
    let errors: Vec<String> = compilation
        .diagnostics
        .iter()
        .filter(|d| d.severity == mailgw_compiler::diagnostic::Severity::Error)
        .map(|d| format!("{}: {}", d.code, d.message))
        .collect();
    assert!(
        errors.is_empty(),
        "{} has errors: {errors:#?}",
        path.display()
    );
    compilation.plan.expect("no errors, so a plan")
}

/// Parses `--to X --from Y --client IP --auth U`.
fn query(args: &str) -> Query {
    let mut query = Query {
        to: String::new(),
        from: None,
        client: None,
        auth: None,
    };
    let mut words = args.split_whitespace();
    while let Some(flag) = words.next() {
        let value = words
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag {
            "--to" => query.to = value.to_owned(),
            "--from" => query.from = Some(value.to_owned()),
            "--client" => {
                query.client = Some(value.parse::<IpAddr>().expect("an IP address"));
            }
            "--auth" => query.auth = Some(value.to_owned()),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!query.to.is_empty(), "`{args}` has no --to");
    query
}

/// The transcript: each question as a command line, then the answer.
fn transcript(plan: &Plan, questions: &[String]) -> String {
    let mut out = String::new();
    for args in questions {
        let q = query(args);
        out.push_str(&format!("$ mailgwc explain {args}\n"));
        match explain(plan, &q) {
            Ok(explanation) => out.push_str(&explanation.to_string()),
            Err(error) => out.push_str(&format!("error: {error}\n")),
        }
        out.push('\n');
    }
    out
}

/// Runs `check` on every `*.mailgw` in `dir` (relative to this crate),
/// in name order, each with its own snapshot `{prefix}@{file name}`; every
/// file is checked even when an earlier one fails.
fn each_config(dir: &str, prefix: &str, check: impl Fn(&Path) -> String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "mailgw"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    let mut failed = Vec::new();
    for path in &paths {
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path("explain/snapshots");
        settings.set_prepend_module_to_snapshot(false);
        settings.set_input_file(path);
        settings.set_snapshot_suffix(&name);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            settings.bind(|| insta::assert_snapshot!(prefix, check(path)));
        }));
        if result.is_err() {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
}

#[test]
fn cases() {
    each_config("tests/explain", "case", |path| {
        let text = std::fs::read_to_string(path).expect("readable");
        let questions: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# explain:"))
            .map(|q| q.trim().to_owned())
            .collect();
        assert!(!questions.is_empty(), "{} asks nothing", path.display());
        transcript(&plan(path), &questions)
    });
}

/// The standard questions for an example, from what its plan holds.
fn standard_questions(plan: &Plan) -> Vec<String> {
    let mut questions = Vec::new();
    // The first mailbox's alphabetically first address.
    let first_mailbox = plan
        .recipients
        .iter()
        .filter(|(_, t)| *t == Target::Mailbox(0))
        .map(|(address, _)| address)
        .min()
        .zip(plan.mailboxes.get(0))
        .map(|(address, m)| (m.name.to_owned(), address.to_owned()));
    if let Some((_, address)) = &first_mailbox {
        questions.push(format!("--to {address}"));
    }
    // The alphabetically first group address.
    let group = plan
        .recipients
        .iter()
        .filter(|(_, t)| matches!(t, Target::Group(_)))
        .min();
    if let Some((address, _)) = group {
        let from = first_mailbox
            .as_ref()
            .map_or_else(String::new, |(_, a)| format!(" --from {a}"));
        questions.push(format!("--to {address}{from}"));
    }
    if let Some(domain) = plan.domains.first() {
        questions.push(format!(
            "--to no-such-user@{} --from someone@elsewhere.example",
            domain.name
        ));
    }
    questions.push("--to someone@remote.example --from stranger@elsewhere.example".to_owned());
    if let Some((name, address)) = &first_mailbox {
        questions.push(format!(
            "--to someone@remote.example --auth {name} --from {address}"
        ));
    }
    questions
}

#[test]
fn examples() {
    each_config("../examples", "example", |path| {
        let plan = plan(path);
        transcript(&plan, &standard_questions(&plan))
    });
}
