//! End to end: `kill -9` at random moments while a client streams
//! messages. After each restart every message that got 250 is in the
//! spool, and every queued message is whole.

#[path = "e2e/harness.rs"]
mod harness;
mod ports;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness::{manifest_dir, Gateway};
use mailgw_runtime::spool::Spool;
use tokio::io::AsyncReadExt;

/// A small xorshift generator; the seed is printed so a failure can be
/// replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn kill_9_loses_no_acknowledged_message() {
    let seed = std::env::var("MAILGW_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("crash test seed: {seed} (set MAILGW_CRASH_SEED to replay)");
    let mut rng = Rng(seed);

    let mut gw = Gateway::start();
    let acked = gw.dir.path().join("acked");
    let mut client = Command::new("python3")
        .arg(manifest_dir().join("tests/e2e/client.py"))
        .args(["stream", &gw.smtp.to_string(), "400"])
        .arg(&acked)
        .stdout(Stdio::null())
        .spawn()
        .expect("start the client");

    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(30 + rng.next() % 250));
        gw.signal("KILL");
        gw.wait_exit().expect("mailgw killed");
        gw.launch();
        gw.wait_port(gw.smtp);
    }
    let status = client.wait().expect("client ends");
    assert!(status.success());
    gw.signal("KILL");
    gw.wait_exit().expect("mailgw killed");

    let acked: BTreeSet<String> = std::fs::read_to_string(&acked)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(!acked.is_empty(), "no message was accepted:\n{}", gw.log());

    let (spool, recovered) = Spool::open(gw.spool()).expect("open the spool");
    assert!(recovered.corrupt.is_empty(), "{:?}", recovered.corrupt);
    let queued: BTreeSet<String> = recovered
        .messages
        .iter()
        .map(|m| m.id.to_string())
        .collect();
    let lost: Vec<&String> = acked.difference(&queued).collect();
    assert!(lost.is_empty(), "acknowledged but not queued: {lost:?}");
    eprintln!(
        "{} acknowledged, {} queued, {} incomplete removed at the last start",
        acked.len(),
        queued.len(),
        recovered.removed_incomplete
    );

    // Every queued message is whole: it ends with the client's last line.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for m in &recovered.messages {
            let (mut body, len) = spool.body(&m.id).await.expect("message body");
            let mut bytes = Vec::new();
            body.read_to_end(&mut bytes).await.expect("read body");
            assert_eq!(bytes.len() as u64, len);
            let text = String::from_utf8_lossy(&bytes);
            assert!(text.starts_with("Received: "), "{}", m.id);
            assert!(
                text.contains("Subject: e2e\r\n") && text.trim_end().ends_with("199"),
                "{} is not whole",
                m.id
            );
        }
    });
}
