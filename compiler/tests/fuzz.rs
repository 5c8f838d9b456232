//! No input makes the compiler panic, and every diagnostic points inside
//! its file.
//!
//! Property tests feed the reader and the checks arbitrary text, text made of
//! the language's own tokens, and the example files cut short or with bytes
//! changed. Each run is bounded: 256 cases per property unless
//! `PROPTEST_CASES` says otherwise (`scripts/test` sets it). Explicit tests
//! cover the files a user can hand the compiler by mistake: not UTF-8,
//! missing, empty, only comments, including themselves.

use std::path::{Path, PathBuf};

use mailgw_compiler::diagnostic::{Code, Severity};
use mailgw_compiler::Compilation;
use proptest::prelude::*;

/// The repository root: the compiler crate's parent.
fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Every label of every diagnostic is inside its file and on character
/// boundaries, so that slicing the source at a span never panics.
fn assert_spans_valid(compilation: &Compilation) -> Result<(), TestCaseError> {
    for diagnostic in &compilation.diagnostics {
        let labels = std::iter::once(&diagnostic.primary).chain(&diagnostic.secondary);
        for label in labels {
            let text = &compilation.db.file(label.span.file).text;
            let (start, end) = (label.span.start as usize, label.span.end as usize);
            prop_assert!(start <= end, "{diagnostic:?}: span ends before it starts");
            prop_assert!(
                end <= text.len(),
                "{diagnostic:?}: span past the end of the file"
            );
            prop_assert!(
                text.is_char_boundary(start) && text.is_char_boundary(end),
                "{diagnostic:?}: span not on character boundaries"
            );
        }
        // Rendering reads the spans too; it must not panic either.
        let _ = diagnostic.to_json(&compilation.db);
        let report = mailgw_compiler::diagnostic::Report::new(&compilation.db, diagnostic);
        let mut out = String::new();
        let handler =
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
        prop_assert!(handler.render_report(&mut out, &report).is_ok());
    }
    Ok(())
}

/// Checks `text` as a file in the examples folder, so that relative paths in
/// edited examples still find their certificates and directory files.
fn check_as_example(text: &str) -> Compilation {
    mailgw_compiler::check_text(&repo_root().join("examples/fuzzed.mailgw"), text)
}

/// Every token the generators draw from: the top-level keywords and [`WORDS`].
fn tokens() -> Vec<&'static str> {
    mailgw_compiler::reader::TOP
        .iter()
        .chain(WORDS)
        .copied()
        .collect()
}

/// The language's vocabulary besides the top-level keywords: block
/// keywords, literals of every kind, and the punctuation between them.
const WORDS: &[&str] = &[
    "hostname",
    "postmaster",
    "max-message-size",
    "max-hops",
    "certificate",
    "key",
    "self-signed",
    "protocol",
    "bind",
    "auth",
    "max-connections",
    "max-per-client",
    "timeout",
    "min-data-rate",
    "filter-return",
    "host",
    "imap",
    "pop3",
    "lmtp",
    "smtp",
    "forward-client",
    "ca",
    "local",
    "on",
    "off",
    "address",
    "password",
    "member",
    "verify",
    "backend",
    "max-failures",
    "failure-delay",
    "address-space",
    "cost",
    "deliver",
    "smarthost",
    "mx",
    "port",
    "accept-from",
    "reject-from",
    "allow",
    "deny",
    "authenticated",
    "from",
    "to",
    "sender",
    "all",
    "and",
    "reject",
    "forward",
    "scope",
    "inbound",
    "outbound",
    "both",
    "append",
    "prepend",
    "copy-to",
    "spool",
    "retry",
    "warn-after",
    "expire",
    "level",
    "protocol-trace",
    "server",
    "none",
    "starttls",
    "offer",
    "require",
    "implicit",
    "opportunistic",
    "greeting",
    "command",
    "data",
    "idle",
    "session",
    "\"mx\"",
    "\"mbx1\"",
    "\"public\"",
    "\"example.com\"",
    "\"alice@example.com\"",
    "\"*\"",
    "\"*.tochter.example\"",
    "\"10.0.0.11\":24",
    "\"\"",
    "\"a\\\"b\"",
    "\"unterminated",
    "\"ü\"",
    "0.0.0.0:25",
    "[::]:993",
    "[::1]:25",
    "127.0.0.1:2525",
    "10.0.0.0/8",
    "2001:db8::/32",
    "0.0.0.0/0",
    "::/0",
    "10.0.0.256",
    "::1",
    "relay.isp.example:587",
    "25MB",
    "512KiB",
    "0B",
    "30s",
    "500ms",
    "5d",
    "2w",
    "0",
    "1",
    "65535",
    "65536",
    "99999999999999999999",
    "*",
    "*.x",
    "a@b",
    "{",
    "}",
    "{",
    "}",
    ",",
    ";",
    "\n",
    "\n",
    " ",
    " ",
    "\t",
    "# comment\n",
    "\\\n",
    "\r\n",
    "=",
    "'",
    "ä",
    "\u{0}",
    "\u{feff}",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(tokens()), 0..80).prop_map(|tokens| {
        let mut text = String::new();
        for token in tokens {
            text.push_str(token);
            if !token.ends_with(char::is_whitespace) {
                text.push(' ');
            }
        }
        text
    })
}

/// The example files' texts: realistic input to cut and edit.
fn example_texts() -> &'static [String] {
    static TEXTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    TEXTS.get_or_init(read_examples)
}

fn read_examples() -> Vec<String> {
    let mut texts = Vec::new();
    for folder in ["examples", "examples/broken", "compiler/tests/cases/ok"] {
        let Ok(entries) = std::fs::read_dir(repo_root().join(folder)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "mailgw"))
            .collect();
        paths.sort();
        texts.extend(paths.iter().filter_map(|p| std::fs::read_to_string(p).ok()));
    }
    assert!(!texts.is_empty(), "the examples are there");
    texts
}

/// One byte change: overwrite, insert or delete at a position.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    // Bytes that matter to the grammar, plus any byte at all.
    let byte = prop_oneof![
        prop::sample::select(b"{}\";,#\\\n :./[]*@-0123456789abz".to_vec()),
        any::<u8>(),
    ];
    let edit = prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(at, b)| Edit::Set(at, b)),
        (any::<usize>(), byte).prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<usize>().prop_map(Edit::Delete),
    ];
    prop::collection::vec(edit, 1..8)
}

fn apply(text: &str, edits: &[Edit]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for edit in edits {
        let len = bytes.len().max(1);
        match *edit {
            Edit::Set(at, b) if !bytes.is_empty() => bytes[at % len] = b,
            Edit::Insert(at, b) => bytes.insert(at % (bytes.len() + 1), b),
            Edit::Delete(at) if !bytes.is_empty() => {
                bytes.remove(at % len);
            }
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        // Failures are reported with their input; no files in the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_text(text in any::<String>()) {
        assert_spans_valid(&mailgw_compiler::check_text(Path::new("fuzz.mailgw"), &text))?;
    }

    #[test]
    fn arbitrary_printable_text(text in "[ -~\n\t]{0,400}") {
        assert_spans_valid(&mailgw_compiler::check_text(Path::new("fuzz.mailgw"), &text))?;
    }

    #[test]
    fn language_tokens(text in token_soup()) {
        assert_spans_valid(&check_as_example(&text))?;
    }

    #[test]
    fn statements_with_blocks(
        head in prop::collection::vec(prop::sample::select(tokens()), 1..4),
        body in prop::collection::vec(prop::collection::vec(prop::sample::select(tokens()), 1..5), 0..6),
    ) {
        // `keyword value { keyword value; keyword value }`: shapes that get past
        // the grammar and into the reader and the checks more often than soup.
        let mut text = head.join(" ");
        text.push_str(" {\n");
        for line in body {
            text.push_str("    ");
            text.push_str(&line.join(" "));
            text.push('\n');
        }
        text.push_str("}\n");
        assert_spans_valid(&check_as_example(&text))?;
    }

    #[test]
    fn examples_cut_short(index in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>()) {
        let texts = example_texts();
        let text = index.get(texts);
        let mut at = cut.index(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        assert_spans_valid(&check_as_example(&text[..at]))?;
    }

    #[test]
    fn examples_with_bytes_changed(index in any::<prop::sample::Index>(), edits in edits()) {
        let texts = example_texts();
        let bytes = apply(index.get::<String>(texts), &edits);
        // Files are read as bytes; invalid UTF-8 is the reader's to report, so
        // go through a real file for those.
        match String::from_utf8(bytes) {
            Ok(text) => assert_spans_valid(&check_as_example(&text))?,
            Err(error) => {
                let dir = tempdir();
                let path = dir.join("edited.mailgw");
                std::fs::write(&path, error.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let compilation = mailgw_compiler::check(&path);
                prop_assert!(compilation.diagnostics.iter().any(|d| d.code == Code::Io));
                assert_spans_valid(&compilation)?;
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Directory files go through their own reader (TOML parser events, in
    /// pieces on several threads, with a fallback): edited ones must not
    /// panic it either.
    #[test]
    fn directory_files_with_bytes_changed(edits in edits()) {
        let toml = include_str!("../../examples/quickstart-users.toml");
        let dir = tempdir();
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(dir.join(name), bytes).map_err(|e| TestCaseError::fail(e.to_string()))
        };
        write("users.toml", &apply(toml, &edits))?;
        write("main.mailgw", b"directory \"users.toml\"\n")?;
        let compilation = mailgw_compiler::check(&dir.join("main.mailgw"));
        let _ = std::fs::remove_dir_all(&dir);
        assert_spans_valid(&compilation)?;
    }
}

/// A fresh directory under the system's temporary directory.
fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mailgw-fuzz-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("the temporary directory is writable");
    dir
}

fn check_file(name: &str, bytes: &[u8]) -> Compilation {
    let dir = tempdir();
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("the temporary directory is writable");
    let compilation = mailgw_compiler::check(&path);
    let _ = std::fs::remove_dir_all(&dir);
    compilation
}

fn codes(compilation: &Compilation) -> Vec<(Code, Severity)> {
    compilation
        .diagnostics
        .iter()
        .map(|d| (d.code, d.severity))
        .collect()
}

fn spans_valid(compilation: &Compilation) {
    if let Err(error) = assert_spans_valid(compilation) {
        panic!("{error}");
    }
}

#[test]
fn non_utf8_file() {
    let compilation = check_file(
        "latin1.mailgw",
        b"# Gr\xfc\xdfe\ndomain \"example.com\" local\n",
    );
    assert_eq!(codes(&compilation), [(Code::Io, Severity::Error)]);
    let label = &compilation.diagnostics[0].primary;
    assert_eq!(label.span.start, 4, "the first byte that is not UTF-8");
    spans_valid(&compilation);
}

#[test]
fn missing_file() {
    let compilation = mailgw_compiler::check(Path::new("/nonexistent/mailgw/missing.mailgw"));
    assert_eq!(codes(&compilation), [(Code::Io, Severity::Error)]);
    assert!(compilation.diagnostics[0]
        .message
        .contains("does not exist"));
    // Named on the command line: the diagnostic still names the file.
    let label = &compilation.diagnostics[0].primary;
    let file = compilation.db.file(label.span.file);
    assert_eq!(file.name, "/nonexistent/mailgw/missing.mailgw");
    assert_eq!((label.span.start, label.span.end), (0, 0));
}

#[test]
fn missing_include() {
    let compilation = check_file("main.mailgw", b"include \"nope.mailgw\"\n");
    assert_eq!(codes(&compilation), [(Code::Io, Severity::Error)]);
    spans_valid(&compilation);
}

#[test]
fn directory_instead_of_file() {
    let dir = tempdir();
    let compilation = mailgw_compiler::check(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(codes(&compilation), [(Code::Io, Severity::Error)]);
}

/// An empty configuration is read without complaint about its syntax, but a
/// gateway without a listener does nothing: a warning, not an error (an
/// empty file is a fine start), pointing at the start of the file.
#[test]
fn empty_file() {
    for text in ["", "\n\n", "   \t\n", ";;\n"] {
        let compilation = mailgw_compiler::check_text(Path::new("empty.mailgw"), text);
        assert_eq!(
            codes(&compilation),
            [(Code::Statement, Severity::Warning)],
            "{text:?}"
        );
        assert!(compilation.diagnostics[0].message.contains("no `listener`"));
        spans_valid(&compilation);
    }
    let compilation = check_file("empty.mailgw", b"");
    assert_eq!(codes(&compilation), [(Code::Statement, Severity::Warning)]);
    assert!(!compilation.has_errors());
}

#[test]
fn only_comments() {
    let text = "# mailgw configuration\n# nothing here yet\n\n    # indented comment\n";
    let compilation = mailgw_compiler::check_text(Path::new("comments.mailgw"), text);
    assert_eq!(codes(&compilation), [(Code::Statement, Severity::Warning)]);
    spans_valid(&compilation);
}

#[test]
fn include_cycle() {
    let dir = tempdir();
    std::fs::write(dir.join("a.mailgw"), "include \"b.mailgw\"\n").expect("writable");
    std::fs::write(dir.join("b.mailgw"), "include \"c.mailgw\"\n").expect("writable");
    std::fs::write(dir.join("c.mailgw"), "include \"a.mailgw\"\n").expect("writable");
    std::fs::write(dir.join("self.mailgw"), "include \"self.mailgw\"\n").expect("writable");
    let cycle = mailgw_compiler::check(&dir.join("a.mailgw"));
    let itself = mailgw_compiler::check(&dir.join("self.mailgw"));
    let _ = std::fs::remove_dir_all(&dir);

    let found: Vec<_> = cycle
        .diagnostics
        .iter()
        .filter(|d| d.code == Code::IncludeCycle)
        .collect();
    assert_eq!(found.len(), 1, "{:?}", cycle.diagnostics);
    // The include that closes the cycle, and the two that led there.
    assert_eq!(found[0].secondary.len(), 2, "{:?}", found[0]);
    spans_valid(&cycle);

    assert_eq!(
        itself
            .diagnostics
            .iter()
            .filter(|d| d.code == Code::IncludeCycle)
            .count(),
        1
    );
    spans_valid(&itself);
}

/// A regression corpus: inputs that once broke, or nearly did.
#[test]
fn known_tricky_inputs() {
    for text in [
        "\"",
        "{",
        "}",
        "a {",
        "a \"\\",
        "listener \"x\" { bind [",
        "listener \"x\" { bind [::",
        "gateway { hostname \"ü.example\" }",
        "\u{feff}gateway {}",
        "a\r\nb\r\n",
        "mailbox \"a\" on \"b\" { address \"@\" }",
        "relay { allow from ::/0 and to \"*\" }",
        "queue { retry 99999999999999999999w }",
        "directory \"\"",
        "include \"\"",
        "include \".\"",
        "tls \"a\" { certificate \"/dev/null\"; key \"/dev/null\" }",
        "\\\n\\\n",
        "# \u{0}\n",
    ] {
        spans_valid(&check_as_example(text));
    }
}
