//! Group commit throughput: 20 concurrent writers committing small messages:
//! a file per message with one sync per message (`max_batch: 1`), a file per
//! message with group commit (`max_inline: 0`), and segments (the default).
//!
//! A measurement, not a check: run it with
//! `cargo test --release -p mailgw-runtime --test spool_group_commit -- --ignored --nocapture`.
//! It runs on the file system of the temporary directory (`TMPDIR`).

use std::time::{Duration, Instant, UNIX_EPOCH};

use mailgw_runtime::spool::{BodyType, Envelope, Options, Recipient, Spool};

const WRITERS: usize = 20;
const RUN: Duration = Duration::from_secs(3);

fn envelope() -> Envelope {
    Envelope {
        sender: Some("bench@example.org".into()),
        recipients: vec![Recipient::new("r@example.net")],
        ret: None,
        envid: None,
        body: BodyType::SevenBit,
        smtputf8: false,
        client_ip: "192.0.2.1".parse().expect("literal"),
        helo: "bench".into(),
        auth_user: None,
        received_at: UNIX_EPOCH,
        size: 0,
        origin: Default::default(),
    }
}

async fn measure(options: Options) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spool, _) = Spool::open_with(dir.path(), options).expect("open");
    let body = vec![b'x'; 4096];
    let start = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let spool = spool.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while start.elapsed() < RUN {
                    let mut w = spool.create().await.expect("create");
                    w.write(&body).await.expect("write");
                    w.commit(envelope()).await.expect("commit");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("writer");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "measurement; run by hand"]
async fn group_commit_throughput() {
    let single = measure(Options {
        max_batch: 1,
        max_inline: 0,
    })
    .await;
    let files = measure(Options {
        max_inline: 0,
        ..Options::default()
    })
    .await;
    let segments = measure(Options::default()).await;
    eprintln!(
        "{WRITERS} writers, 4 KiB messages: a file per message, one sync each {single:.0} \
         commits/s; a file per message, group commit {files:.0} commits/s ({:.1}x); \
         segments {segments:.0} commits/s ({:.1}x)",
        files / single,
        segments / single
    );
}
