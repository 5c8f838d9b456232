//! The `mailgwc` command line, run as a user would: exit codes, output
//! formats, plan files, determinism, and damaged plans.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mailgw_plan::{Plan, FORMAT_VERSION, HEADER_LEN};

/// A fresh directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("mailgwc-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dir");
        }
        std::fs::write(&path, text).expect("write file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `mailgwc` with `args` in `cwd`.
fn mailgwc(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailgwc"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("mailgwc runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

/// A configuration with no finding at all: a self-signed certificate, so no
/// file is needed, and a directory file for a second source.
const CLEAN: &str = r#"# A small, clean gateway.
gateway {
    hostname   "mail.example.com"
    postmaster "postmaster@example.com"
}
tls "public" { self-signed }
listener "mx" {
    protocol smtp
    bind     0.0.0.0:25
    tls      starttls offer "public"
    auth     off
}
listener "submission" {
    protocol smtp
    bind     0.0.0.0:587
    tls      starttls require "public"
    auth     require
}
backend "mbx1" {
    host "10.0.0.11"
    imap 143 tls starttls
    lmtp 24
}
domain "example.com" local
mailbox "alice" on "mbx1" { address "alice@example.com", "postmaster@example.com" }
directory "users.toml"
group "sales" { address "sales@example.com"; member "alice", "bob", "partner@foreign.example" }
auth { verify backend imap }
connector "internet" {
    address-space "*" cost 1
    deliver mx
    accept-from group "sales"
}
relay {
    allow authenticated
    deny  all
}
"#;

const USERS: &str = r#"[[mailbox]]
name = "bob"
backend = "mbx1"
addresses = ["bob@example.com"]
"#;

/// The clean configuration in `dir`; returns the main file.
fn clean(dir: &TempDir) -> PathBuf {
    dir.write("users.toml", USERS);
    dir.write("gateway.mailgw", CLEAN)
}

/// `CLEAN` with one unused backend: one warning (`mailgw::unused`).
fn with_warning() -> String {
    CLEAN.replace(
        "domain \"example.com\" local",
        "backend \"spare\" { host \"10.0.0.12\"; lmtp 24 }\ndomain \"example.com\" local",
    )
}

/// `CLEAN` with a mailbox on a backend that does not exist: one error.
fn with_error() -> String {
    CLEAN.replace(
        "on \"mbx1\" { address \"alice",
        "on \"mbx9\" { address \"alice",
    )
}

#[test]
fn check_clean_exits_zero_silently() {
    let dir = TempDir::new("check-clean");
    clean(&dir);
    let out = mailgwc(dir.path(), &["check", "gateway.mailgw"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert_eq!(stdout(&out), "");
}

#[test]
fn check_warnings_pass_unless_denied() {
    let dir = TempDir::new("check-warnings");
    clean(&dir);
    dir.write("gateway.mailgw", &with_warning());
    let out = mailgwc(dir.path(), &["check", "gateway.mailgw"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("mailgw::unused"), "{err}");
    assert!(
        err.trim_end()
            .ends_with("gateway.mailgw: 0 errors, 1 warning"),
        "{err}"
    );

    let out = mailgwc(
        dir.path(),
        &["check", "--deny", "warnings", "gateway.mailgw"],
    );
    assert_eq!(code(&out), 1);

    let out = mailgwc(dir.path(), &["build", "gateway.mailgw", "-o", "p.plan"]);
    assert_eq!(code(&out), 0, "warnings do not stop a build");
    assert!(dir.path().join("p.plan").exists());
}

#[test]
fn check_errors_exit_one_with_a_summary() {
    let dir = TempDir::new("check-errors");
    clean(&dir);
    dir.write("bad.mailgw", &with_error());
    let out = mailgwc(dir.path(), &["check", "gateway.mailgw", "bad.mailgw"]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(err.contains("mailgw::reference::unknown"), "{err}");
    assert!(err.contains("bad.mailgw: 1 error, "), "{err}");
    assert!(
        !err.contains("gateway.mailgw: "),
        "a clean file gets no summary: {err}"
    );
}

#[test]
fn check_json_has_every_field() {
    let dir = TempDir::new("check-json");
    clean(&dir);
    dir.write("bad.mailgw", &with_error());
    let out = mailgwc(dir.path(), &["check", "--format", "json", "bad.mailgw"]);
    assert_eq!(code(&out), 1);
    assert_eq!(stderr(&out), "", "JSON mode writes no human text");
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let unknown = lines
        .iter()
        .find(|d| d["code"] == "mailgw::reference::unknown")
        .expect("the unknown backend is reported");
    assert_eq!(unknown["severity"], "error");
    assert_eq!(unknown["file"], "bad.mailgw");
    assert_eq!(unknown["line"], 25);
    assert!(unknown["column"].as_u64().is_some_and(|c| c > 1));
    assert!(unknown["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(unknown["help"].as_str().is_some_and(|h| !h.is_empty()));
}

#[test]
fn a_missing_file_on_the_command_line_is_an_error_that_names_it() {
    let dir = TempDir::new("check-missing");
    let out = mailgwc(dir.path(), &["check", "nope.mailgw"]);
    assert_eq!(code(&out), 1);
    let text = stderr(&out);
    assert!(
        text.contains("the file `nope.mailgw` does not exist"),
        "{text}"
    );
    assert!(text.contains("relative to the current directory"), "{text}");
    let out = mailgwc(dir.path(), &["check", "--format", "json", "nope.mailgw"]);
    assert_eq!(code(&out), 1);
    let d: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("one JSON line");
    assert_eq!(d["code"], "mailgw::io");
    assert_eq!(d["file"], "nope.mailgw", "CI can annotate the file");
    assert_eq!(d["line"], 1);
}

#[test]
fn usage_errors_exit_two() {
    let dir = TempDir::new("usage");
    for args in [
        &["check"][..],
        &["build", "gateway.mailgw"],
        &["explain", "gateway.mailgw"],
        &[
            "explain",
            "x",
            "--to",
            "a@b.example",
            "--client",
            "not-an-ip",
        ],
        &["check", "--format", "xml", "x"],
        &["frobnicate"],
    ] {
        let out = mailgwc(dir.path(), args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn build_writes_a_plan_that_loads() {
    let dir = TempDir::new("build");
    clean(&dir);
    let out = mailgwc(
        dir.path(),
        &["build", "gateway.mailgw", "-o", "out/gateway.plan"],
    );
    assert_eq!(code(&out), 1, "the output directory does not exist");
    assert!(stderr(&out).contains("cannot write the plan"));

    let out = mailgwc(
        dir.path(),
        &["build", "gateway.mailgw", "-o", "gateway.plan"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let path = dir.path().join("gateway.plan");
    let plan = Plan::load(&path).expect("the plan loads");
    let bytes = std::fs::read(&path).expect("read plan");
    assert_eq!(
        stdout(&out),
        format!(
            "wrote gateway.plan ({} bytes, checksum {})\n",
            bytes.len(),
            plan.checksum_hex()
        )
    );
    assert_eq!(plan.gateway.hostname, "mail.example.com");
    let out = mailgwc(
        dir.path(),
        &[
            "build",
            "--format",
            "json",
            "gateway.mailgw",
            "-o",
            "gateway.plan",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON line");
    assert_eq!(json["plan"], "gateway.plan");
    assert_eq!(json["bytes"], bytes.len());
    assert_eq!(json["checksum"], plan.checksum_hex());
    assert_eq!(plan.mailboxes.len(), 2);
    assert_eq!(plan.sources.files, ["gateway.mailgw", "users.toml"]);
    // Only the plan is left behind: the temporary file was renamed.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["gateway.mailgw", "gateway.plan", "users.toml"]);
}

#[test]
fn build_with_errors_writes_nothing() {
    let dir = TempDir::new("build-errors");
    clean(&dir);
    std::fs::write(dir.path().join("old.plan"), b"previous").expect("write");
    dir.write("bad.mailgw", &with_error());
    let out = mailgwc(dir.path(), &["build", "bad.mailgw", "-o", "old.plan"]);
    assert_eq!(code(&out), 1);
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("bad.mailgw: 1 error"));
    assert_eq!(
        std::fs::read(dir.path().join("old.plan")).expect("read"),
        b"previous",
        "a failed build leaves the old plan alone"
    );
    let out = mailgwc(
        dir.path(),
        &[
            "build",
            "--deny",
            "warnings",
            "gateway.mailgw",
            "-o",
            "x.plan",
        ],
    );
    assert_eq!(code(&out), 0, "clean, so --deny warnings passes");
}

/// Same sources, same bytes: twice in place, from another working
/// directory with an absolute path, and in a copy of the sources elsewhere.
/// Source map names are relative to the main file's directory, so none of
/// these shows in the plan. (Files the runtime opens — certificates, keys,
/// credentials — are stored as absolute paths, so a copy that has them
/// differs exactly there.)
#[test]
fn builds_are_deterministic() {
    let dir = TempDir::new("determinism");
    let main = clean(&dir);
    let build = |cwd: &Path, file: &str, out: &str| -> Vec<u8> {
        let output = mailgwc(cwd, &["build", file, "-o", out]);
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        std::fs::read(cwd.join(out)).expect("plan written")
    };
    let first = build(dir.path(), "gateway.mailgw", "a.plan");
    let second = build(dir.path(), "gateway.mailgw", "b.plan");
    assert_eq!(first, second);

    let elsewhere = TempDir::new("determinism-cwd");
    let main = main.to_str().expect("UTF-8 temp path");
    assert_eq!(first, build(elsewhere.path(), main, "c.plan"));

    let copy = TempDir::new("determinism-copy");
    clean(&copy);
    assert_eq!(first, build(copy.path(), "gateway.mailgw", "d.plan"));

    // A different source gives a different plan.
    copy.write("users.toml", &USERS.replace("bob@", "robert@"));
    assert_ne!(first, build(copy.path(), "gateway.mailgw", "e.plan"));
}

#[test]
fn inspect_summarizes_a_plan() {
    let dir = TempDir::new("inspect");
    clean(&dir);
    let out = mailgwc(
        dir.path(),
        &["build", "gateway.mailgw", "-o", "gateway.plan"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = mailgwc(dir.path(), &["inspect", "gateway.plan"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("gateway mail.example.com\n"), "{text}");
    assert!(
        text.contains("recipients: 2 mailboxes, 1 groups, 4 addresses"),
        "{text}"
    );
    assert!(
        text.contains("  allow authenticated  (gateway.mailgw:35)"),
        "{text}"
    );
}

/// Every kind of damage gives one clear sentence and exit 1, never a panic.
#[test]
fn inspect_refuses_damaged_plans() {
    let dir = TempDir::new("inspect-damaged");
    clean(&dir);
    let out = mailgwc(dir.path(), &["build", "gateway.mailgw", "-o", "good.plan"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let good = std::fs::read(dir.path().join("good.plan")).expect("read");

    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    let mut version = good.clone();
    version[8..10].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let cases: [(&str, Vec<u8>, String); 6] = [
        (
            "truncated.plan",
            good[..good.len() - 10].to_vec(),
            "the plan is truncated".to_owned(),
        ),
        (
            "header-only.plan",
            good[..HEADER_LEN - 1].to_vec(),
            "too short to be a plan".to_owned(),
        ),
        ("flipped.plan", flipped, "the plan is corrupted".to_owned()),
        (
            "version.plan",
            version,
            format!(
                "format version {}, this build reads version {FORMAT_VERSION}",
                FORMAT_VERSION + 1
            ),
        ),
        (
            "text.plan",
            CLEAN.as_bytes().to_vec(),
            "not a mailgw plan".to_owned(),
        ),
        ("empty.plan", Vec::new(), "too short".to_owned()),
    ];
    for (name, bytes, expected) in cases {
        std::fs::write(dir.path().join(name), bytes).expect("write");
        let out = mailgwc(dir.path(), &["inspect", name]);
        let err = stderr(&out);
        assert_eq!(code(&out), 1, "{name}: {err}");
        assert!(
            err.starts_with(&format!("error: {name}: ")),
            "{name}: {err}"
        );
        assert!(err.contains(&expected), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: one sentence: {err}");
        assert_eq!(stdout(&out), "");
    }
    let out = mailgwc(dir.path(), &["inspect", "missing.plan"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).starts_with("error: cannot read the plan missing.plan"));
}

#[test]
fn explain_gives_the_same_answer_from_source_and_plan() {
    let dir = TempDir::new("explain");
    clean(&dir);
    let out = mailgwc(
        dir.path(),
        &["build", "gateway.mailgw", "-o", "gateway.plan"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let questions: [&[&str]; 6] = [
        &["--to", "alice@example.com"],
        &["--to", "sales@example.com", "--from", "bob@example.com"],
        &["--to", "nobody@example.com"],
        &["--to", "x@foreign.example"],
        &[
            "--to",
            "x@foreign.example",
            "--auth",
            "bob",
            "--from",
            "bob@example.com",
        ],
        &[
            "--to",
            "x@foreign.example",
            "--client",
            "10.1.2.3",
            "--format",
            "json",
        ],
    ];
    for question in questions {
        let run = |file: &str| {
            let mut args = vec!["explain", file];
            args.extend_from_slice(question);
            let out = mailgwc(dir.path(), &args);
            assert_eq!(code(&out), 0, "{question:?}: {}", stderr(&out));
            assert_eq!(stderr(&out), "", "{question:?}");
            stdout(&out)
        };
        let from_source = run("gateway.mailgw");
        assert_eq!(from_source, run("gateway.plan"), "{question:?}");
        assert!(from_source.contains("gateway.mailgw:"), "{from_source}");
    }

    let out = mailgwc(
        dir.path(),
        &["explain", "gateway.plan", "--to", "nobody@example.com"],
    );
    let text = stdout(&out);
    assert!(text.contains("result      550 5.1.1 "), "{text}");
    let out = mailgwc(
        dir.path(),
        &[
            "explain",
            "gateway.plan",
            "--to",
            "x@foreign.example",
            "--auth",
            "alice",
            "--from",
            "alice@example.com",
        ],
    );
    let text = stdout(&out);
    assert!(
        text.contains("relay       allowed by `allow authenticated`  (gateway.mailgw:35)"),
        "{text}"
    );
    assert!(
        text.contains("accepted, relayed via connector \"internet\""),
        "{text}"
    );

    let out = mailgwc(
        dir.path(),
        &[
            "explain",
            "gateway.plan",
            "--to",
            "x@foreign.example",
            "--format",
            "json",
        ],
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(json["relay"]["verdict"], "denied");
    assert_eq!(json["relay"]["source"], "gateway.mailgw:36");
    assert_eq!(json["result"]["accepted"], false);
    assert_eq!(json["result"]["reply"], "550 5.7.1");
    assert_eq!(json["client"], "192.0.2.1");
}

#[test]
fn explain_refuses_bad_input() {
    let dir = TempDir::new("explain-bad");
    clean(&dir);
    dir.write("bad.mailgw", &with_error());
    let out = mailgwc(
        dir.path(),
        &["explain", "bad.mailgw", "--to", "alice@example.com"],
    );
    assert_eq!(code(&out), 1);
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("mailgw::reference::unknown"));

    let out = mailgwc(
        dir.path(),
        &["explain", "gateway.mailgw", "--to", "not an address"],
    );
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).starts_with("error: the recipient `not an address` is not an address"));

    let out = mailgwc(
        dir.path(),
        &[
            "explain",
            "gateway.mailgw",
            "--to",
            "a@example.com",
            "--from",
            "@@",
        ],
    );
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).starts_with("error: the sender `@@`"));

    std::fs::write(dir.path().join("broken.plan"), mailgw_plan::MAGIC).expect("write");
    let out = mailgwc(
        dir.path(),
        &["explain", "broken.plan", "--to", "a@example.com"],
    );
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("too short to be a plan"),
        "{}",
        stderr(&out)
    );
}
