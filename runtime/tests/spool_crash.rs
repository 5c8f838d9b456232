//! Crash test: a child process writes messages as fast as it can and prints
//! each ID only after `commit` returned (the moment a session would answer
//! 250); it is killed with SIGKILL at a random moment. After every kill the
//! spool is reopened: every acknowledged message must be there, intact, with
//! every acknowledged recipient state, and nothing partial may be queued.
//!
//! The child is this test binary run again with `MAILGW_SPOOL_CRASH_CHILD`
//! set, so no helper binary is needed.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use mailgw_runtime::spool::{
    BodyType, Envelope, MessageId, Options, Recipient, RecipientState, Spool, SpoolError,
};
use tokio::io::AsyncReadExt;

const CHILD_ENV: &str = "MAILGW_SPOOL_CRASH_CHILD";
const WRITERS: usize = 16;
const ROUNDS: usize = 10;

/// Deterministic message bytes for a seed: header, then lines of
/// pseudo-random printable text, so that any lost or swapped block shows.
fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(format!("Subject: {seed}\r\n\r\n").as_bytes());
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(if x.is_multiple_of(61) {
            b'\n'
        } else {
            b' ' + (x % 94) as u8
        });
    }
    out.truncate(len.max(1));
    out
}

fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(UNIX_EPOCH.elapsed().map_or(0, |d| d.as_nanos()));
    h.finish()
}

fn envelope() -> Envelope {
    Envelope {
        sender: Some("crash@example.org".into()),
        recipients: vec![
            Recipient::new("a@example.net"),
            Recipient::new("b@example.net"),
        ],
        ret: None,
        envid: None,
        body: BodyType::SevenBit,
        smtputf8: false,
        client_ip: "192.0.2.1".parse().expect("literal"),
        helo: "crash".into(),
        auth_user: None,
        received_at: UNIX_EPOCH,
        size: 0,
        origin: Default::default(),
    }
}

/// The child: writes, marks and removes messages until killed. Output lines:
/// `C id seed len` (committed), `D id` (recipient 0 delivered), `X id`
/// (removal asked), `R id` (removed), each printed only after the call returned.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (spool, _) = open(Path::new(&dir));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let spool = spool.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                loop {
                    n += 1;
                    let seed = random();
                    let len = (seed % 150_000) as usize + 1;
                    let bytes = body(seed, len);
                    let mut writer = spool.create().await.expect("create");
                    for chunk in bytes.chunks(16 * 1024) {
                        writer.write(chunk).await.expect("write");
                    }
                    let id = writer.commit(envelope()).await.expect("commit");
                    say(&format!("C {id} {seed} {len}"));
                    if n.is_multiple_of(2) {
                        spool
                            .mark(&id, 0, RecipientState::Delivered)
                            .await
                            .expect("mark");
                        say(&format!("D {id}"));
                    }
                    if n.is_multiple_of(5) && w.is_multiple_of(2) {
                        say(&format!("X {id}"));
                        spool.remove(&id).await.expect("remove");
                        say(&format!("R {id}"));
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // One write per line: a pipe write under PIPE_BUF is atomic, so a kill
    // never leaves half a line.
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

fn open(dir: &Path) -> (Spool, mailgw_runtime::spool::Recovered) {
    // The killed child's lock goes away with the process; allow a moment.
    for _ in 0..100 {
        // Messages up to 64 KiB go to segments, larger ones to files of
        // their own: both paths are killed at random moments.
        let options = Options {
            max_inline: 64 * 1024,
            ..Options::default()
        };
        match Spool::open_with(dir, options) {
            Err(SpoolError::Locked(_)) => std::thread::sleep(Duration::from_millis(10)),
            other => return other.expect("open spool"),
        }
    }
    panic!("spool stays locked");
}

#[test]
fn kill9_loses_no_acknowledged_message() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut committed: BTreeMap<MessageId, (u64, usize)> = BTreeMap::new();
    let mut delivered = BTreeSet::new();
    let mut removed = BTreeSet::new();
    let mut removing = BTreeSet::new();
    let mut verified = BTreeSet::new();
    let mut unacknowledged = BTreeSet::new();
    let started = Instant::now();
    let mut total_recovered = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(100 + random() % 600));
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        let lines = reader.join().expect("reader");

        for line in &lines {
            let f: Vec<&str> = line.split(' ').collect();
            let id = f.get(1).and_then(|s| MessageId::parse(s));
            match (f.first(), id) {
                (Some(&"C"), Some(id)) => {
                    let seed = f[2].parse().expect("seed");
                    let len = f[3].parse().expect("len");
                    committed.insert(id, (seed, len));
                }
                (Some(&"D"), Some(id)) => {
                    delivered.insert(id);
                }
                (Some(&"X"), Some(id)) => {
                    removing.insert(id);
                }
                (Some(&"R"), Some(id)) => {
                    removed.insert(id);
                }
                _ => {}
            }
        }

        let (spool, rec) = open(dir.path());
        assert!(rec.corrupt.is_empty(), "round {round}: {:?}", rec.corrupt);
        // Evidence that a kill hit a message in flight: a partial file, a
        // torn segment, or a message written but never acknowledged.
        total_recovered += rec.removed_incomplete + rec.torn_segments;
        for m in &rec.messages {
            if !committed.contains_key(&m.id) && unacknowledged.insert(m.id.clone()) {
                total_recovered += 1;
            }
        }
        let present: BTreeMap<_, _> = rec.messages.iter().map(|m| (m.id.clone(), m)).collect();
        rt.block_on(async {
            for (id, &(seed, len)) in &committed {
                if removed.contains(id) {
                    assert!(
                        !present.contains_key(id),
                        "round {round}: removed {id} is back"
                    );
                    continue;
                }
                if removing.contains(id) && !present.contains_key(id) {
                    // Killed while removing: gone or not, both are right.
                    continue;
                }
                let m = present
                    .get(id)
                    .unwrap_or_else(|| panic!("round {round}: acknowledged {id} lost"));
                assert_eq!(m.envelope.size, len as u64);
                if delivered.contains(id) {
                    assert_eq!(m.envelope.recipients[0].state, RecipientState::Delivered);
                }
                // Recovery checks every file's checksums on each open; the
                // bytes themselves are compared once, to keep the test fast.
                if !verified.insert(id.clone()) {
                    continue;
                }
                let (mut r, _) = spool.body(id).await.expect("body");
                let mut got = Vec::new();
                r.read_to_end(&mut got).await.expect("read");
                assert!(got == body(seed, len), "round {round}: {id} differs");
            }
        });
        eprintln!(
            "round {round}: {} lines, {} acknowledged so far, {} queued",
            lines.len(),
            committed.len(),
            rec.messages.len()
        );
    }
    assert!(
        committed.len() > ROUNDS,
        "the child acknowledged too little to test anything"
    );
    assert!(
        total_recovered > 0,
        "no kill hit a message being written; the test proves little"
    );
    eprintln!(
        "{} acknowledged, {} removed, {} messages caught in flight, {:?}",
        committed.len(),
        removed.len(),
        total_recovered,
        started.elapsed()
    );
}
