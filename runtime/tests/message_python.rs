//! The messages of `mailgw_runtime::message` as Python's `email` package
//! (policy `default`) reads them: a second, independent MIME parser. Skipped
//! with a note when `python3` is missing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use mailgw_plan::Position;
use mailgw_runtime::message::disclaimer::{self, Applied};
use mailgw_runtime::message::dsn::{self, Action, Dsn, DsnRecipient, Returned};
use mailgw_runtime::message::journal::{self, JournalReport};

const ORIGINAL: &[u8] = b"From: alice@example.com\r\n\
    To: bob@example.net\r\n\
    Subject: Lunch\r\n\
    Message-ID: <lunch.1@example.com>\r\n\
    \r\n\
    See you at noon.\r\n";

/// Runs `script` with the file names as `sys.argv[1:]`; `None` when there
/// is no python3.
fn python(script: &str, files: &[&Path]) -> Option<String> {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(files);
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("note: python3 not runnable ({e}); skipping the Python check");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn at(secs: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn python_reads_the_dsn_journal_and_disclaimer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let recipients = [
        DsnRecipient {
            final_recipient: "bob@example.net".into(),
            original_recipient: Some("rfc822;bob@example.net".into()),
            action: Action::Failed,
            status: "5.1.1".into(),
            diagnostic: Some("550-5.1.1 no such user\r\n550 5.1.1 try again never".into()),
            remote_mta: Some("dns; mx.example.net".into()),
            last_attempt: Some(at(1_751_360_000)),
            will_retry_until: None,
        },
        DsnRecipient {
            final_recipient: "carol@example.net".into(),
            original_recipient: None,
            action: Action::Delayed,
            status: "4.4.1".into(),
            diagnostic: None,
            remote_mta: None,
            last_attempt: None,
            will_retry_until: Some(at(1_751_700_000)),
        },
    ];
    let report = Dsn {
        reporting_mta: "gw.example.com",
        from: "postmaster@gw.example.com",
        to: "alice@example.com",
        envid: Some("env-42"),
        queue_id: "Q1",
        arrival: at(1_751_350_000),
        received_from: Some("dns; client.example (192.0.2.1)"),
        recipients: &recipients,
        original: ORIGINAL,
        returned: Returned::Full,
        smtputf8: false,
    };
    let dsn_path = dir.path().join("dsn.eml");
    std::fs::write(
        &dsn_path,
        dsn::build(&report, at(1_751_360_703), "gw.example.com"),
    )
    .expect("write");

    let rcpts = vec!["bob@example.net".to_string(), "bcc@example.org".to_string()];
    let journal = JournalReport {
        from: "postmaster@gw.example.com",
        to: "journal@example.com",
        sender: Some("alice@example.com"),
        recipients: &rcpts,
        queue_id: "Q1",
        received_at: at(1_751_350_000),
        client: "192.0.2.1 (client.example)",
        original: ORIGINAL,
    };
    let journal_path = dir.path().join("journal.eml");
    std::fs::write(&journal_path, journal::build(&journal, at(1), "h")).expect("write");

    let alternative = b"MIME-Version: 1.0\r\n\
        Content-Type: multipart/alternative; boundary=alt\r\n\r\n\
        --alt\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nHello.\r\n\
        --alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
        PGh0bWw+PGJvZHk+SGVsbG8uPC9ib2R5PjwvaHRtbD4=\r\n--alt--\r\n";
    let Applied::Changed(with_text) = disclaimer::apply(
        alternative,
        "Vertraulich \u{2013} f\u{fc}r Sie",
        Position::Append,
    ) else {
        panic!("disclaimer not applied");
    };
    let disclaimer_path = dir.path().join("disclaimer.eml");
    std::fs::write(&disclaimer_path, with_text).expect("write");

    let script = r#"
import email, email.policy, sys
pol = email.policy.default
def load(p):
    with open(p, 'rb') as f:
        return email.message_from_bytes(f.read(), policy=pol)

m = load(sys.argv[1])
assert m.get_content_type() == 'multipart/report', m.get_content_type()
assert m.get_param('report-type') == 'delivery-status'
assert str(m['Auto-Submitted']) == 'auto-replied'
parts = m.get_payload()
assert [p.get_content_type() for p in parts] == ['text/plain', 'message/delivery-status', 'message/rfc822'], [p.get_content_type() for p in parts]
groups = parts[1].get_payload()
assert len(groups) == 3, len(groups)
assert groups[0]['Reporting-MTA'] == 'dns; gw.example.com'
assert groups[0]['Original-Envelope-Id'] == 'env-42'
bob, carol = groups[1], groups[2]
assert bob['Final-Recipient'] == 'rfc822; bob@example.net'
assert bob['Original-Recipient'] == 'rfc822;bob@example.net'
assert bob['Action'] == 'failed' and bob['Status'] == '5.1.1'
assert bob['Remote-MTA'] == 'dns; mx.example.net'
assert bob['Diagnostic-Code'] == 'smtp; 550-5.1.1 no such user 550 5.1.1 try again never', bob['Diagnostic-Code']
assert carol['Action'] == 'delayed' and carol['Status'] == '4.4.1'
assert carol['Will-Retry-Until'] is not None
inner = parts[2].get_payload()[0]
assert inner['Subject'] == 'Lunch'
assert 'Undelivered Mail' in m['Subject']

j = load(sys.argv[2])
assert j.get_content_type() == 'multipart/mixed'
assert str(j['Subject']) == 'Journal: Lunch'
assert str(j['X-Mailgw-Journal-Report']) == '1'
text, attached = j.get_payload()
assert 'Recipient: bcc@example.org' in text.get_content()
assert attached.get_content_type() == 'message/rfc822'
assert attached.get_payload()[0]['Message-ID'] == '<lunch.1@example.com>'

d = load(sys.argv[3])
plain, html = d.get_payload()
assert plain.get_content().endswith('Hello.\r\n\r\nVertraulich \u2013 f\u00fcr Sie\r\n') or plain.get_content().endswith('Hello.\n\nVertraulich \u2013 f\u00fcr Sie\n'), repr(plain.get_content())
assert plain['Content-Transfer-Encoding'] == 'quoted-printable'
assert plain.get_content_charset() == 'utf-8'
assert 'Vertraulich \u2013 f\u00fcr Sie</p></div></body>' in html.get_content(), repr(html.get_content())
print('python: ok')
"#;
    let files = [
        dsn_path.as_path(),
        journal_path.as_path(),
        disclaimer_path.as_path(),
    ];
    if let Some(out) = python(script, &files) {
        assert!(out.contains("python: ok"), "{out}");
    }
}
