//! The spool's behaviour through its public API: commit, reopen, recipient
//! states, hold, removal, recovery from damaged files, disk full.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use mailgw_runtime::spool::{
    BodyType, Envelope, MessageId, Notify, Options, Recipient, RecipientState, Ret, Spool,
    SpoolError,
};
use tokio::io::AsyncReadExt;

fn envelope(recipients: usize) -> Envelope {
    Envelope {
        sender: Some("alice@example.org".into()),
        recipients: (0..recipients)
            .map(|i| Recipient {
                address: format!("r{i}@example.net"),
                orcpt: (i == 0).then(|| "rfc822;R0@example.net".to_owned()),
                notify: (i == 0).then_some(Notify {
                    success: true,
                    failure: true,
                    delay: false,
                }),
                state: RecipientState::Pending,
                journal: false,
            })
            .collect(),
        ret: Some(Ret::Full),
        envid: Some("E1".into()),
        body: BodyType::EightBitMime,
        smtputf8: false,
        client_ip: "192.0.2.7".parse().expect("literal"),
        helo: "client.example.org".into(),
        auth_user: None,
        received_at: UNIX_EPOCH + Duration::from_micros(1_750_000_000_000_001),
        size: 0,
        origin: Default::default(),
    }
}

async fn put(spool: &Spool, body: &[u8], recipients: usize) -> Result<MessageId, SpoolError> {
    let mut w = spool.create().await?;
    for chunk in body.chunks(1000) {
        w.write(chunk).await?;
    }
    w.commit(envelope(recipients)).await
}

async fn body_of(spool: &Spool, id: &MessageId) -> Vec<u8> {
    let (mut r, len) = spool.body(id).await.expect("body");
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.expect("read body");
    assert_eq!(out.len() as u64, len);
    // The queue manager's way in: the same bytes at once.
    let loaded = spool.load(id).await.expect("load");
    assert_eq!(spool.read(&loaded).await.expect("read"), out);
    out
}

fn reopen(dir: &Path) -> (Spool, mailgw_runtime::spool::Recovered) {
    reopen_with(dir, Options::default())
}

/// Options that give every message a file of its own (no segments).
fn own_files() -> Options {
    Options {
        max_inline: 0,
        ..Options::default()
    }
}

fn reopen_with(dir: &Path, options: Options) -> (Spool, mailgw_runtime::spool::Recovered) {
    // Another test forking `mount` can hold a copy of the lock descriptor
    // for the instant between fork and exec; wait that out.
    for _ in 0..50 {
        match Spool::open_with(dir, options) {
            Err(SpoolError::Locked(_)) => std::thread::sleep(Duration::from_millis(10)),
            other => return other.expect("open spool"),
        }
    }
    panic!("spool stays locked");
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn committed_message_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let id = {
        let (spool, rec) = reopen(dir.path());
        assert!(rec.messages.is_empty());
        put(&spool, &body, 3).await.expect("commit")
    };
    let (spool, rec) = reopen(dir.path());
    assert_eq!(rec.messages.len(), 1);
    let m = &rec.messages[0];
    assert_eq!(m.id, id);
    let mut expect = envelope(3);
    expect.size = body.len() as u64;
    assert_eq!(m.envelope, expect);
    assert!(!m.hold);
    assert_eq!(body_of(&spool, &id).await, body);
    assert_eq!(spool.list().await.expect("list"), rec.messages);
}

#[tokio::test]
async fn recipient_states_hold_and_schedule_are_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let next = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let id = {
        let (spool, _) = reopen(dir.path());
        let id = put(&spool, b"Subject: x\r\n\r\nhi\r\n", 3)
            .await
            .expect("commit");
        spool
            .mark(&id, 0, RecipientState::Delivered)
            .await
            .expect("mark");
        spool
            .mark(&id, 1, RecipientState::Failed("550 5.1.1 unknown".into()))
            .await
            .expect("mark");
        spool
            .mark(&id, 2, RecipientState::Deferred("421 busy".into()))
            .await
            .expect("mark");
        spool.hold(&id, true).await.expect("hold");
        spool.schedule(&id, 2, next).await.expect("schedule");

        let again = spool.mark(&id, 0, RecipientState::Pending).await;
        assert!(matches!(again, Err(SpoolError::Final(_, 0))), "{again:?}");
        let out = spool.mark(&id, 3, RecipientState::Delivered).await;
        assert!(
            matches!(out, Err(SpoolError::NoSuchRecipient(_, 3))),
            "{out:?}"
        );
        let other = MessageId::generate();
        let gone = spool.mark(&other, 0, RecipientState::Delivered).await;
        assert!(matches!(gone, Err(SpoolError::NotFound(_))), "{gone:?}");
        id
    };
    let (spool, rec) = reopen(dir.path());
    let m = &rec.messages[0];
    let states: Vec<_> = m
        .envelope
        .recipients
        .iter()
        .map(|r| r.state.clone())
        .collect();
    assert_eq!(
        states,
        [
            RecipientState::Delivered,
            RecipientState::Failed("550 5.1.1 unknown".into()),
            RecipientState::Deferred("421 busy".into()),
        ]
    );
    assert!(m.hold);
    assert_eq!(m.attempts, 2);
    assert_eq!(m.next_attempt, Some(next));
    assert!(!m.is_done());

    spool.hold(&id, false).await.expect("release");
    spool
        .mark(&id, 2, RecipientState::Delivered)
        .await
        .expect("mark");
    let m = spool.load(&id).await.expect("load");
    assert!(!m.hold);
    assert!(m.is_done());
    spool.remove(&id).await.expect("remove");
    assert!(matches!(
        spool.load(&id).await,
        Err(SpoolError::NotFound(_))
    ));
    assert!(matches!(
        spool.remove(&id).await,
        Err(SpoolError::NotFound(_))
    ));
    assert_eq!(files_in(&dir.path().join("queue")), Vec::<String>::new());
}

#[tokio::test]
async fn abandoned_writer_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spool, _) = reopen(dir.path());
    let mut w = spool.create().await.expect("create");
    w.write(b"half a message").await.expect("write");
    drop(w);
    // The committer handles requests in order: once this commit is done,
    // the abandoned file is gone.
    put(&spool, b"x", 1).await.expect("commit");
    assert_eq!(files_in(&dir.path().join("incoming")), Vec::<String>::new());
}

#[tokio::test]
async fn second_open_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_spool, _) = reopen(dir.path());
    assert!(matches!(
        Spool::open(dir.path()),
        Err(SpoolError::Locked(_))
    ));
}

#[tokio::test]
async fn recovery_removes_incomplete_and_sets_aside_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (good, bad_body, bad_len) = {
        let (spool, _) = reopen_with(dir.path(), own_files());
        (
            put(&spool, b"good", 1).await.expect("commit"),
            put(&spool, b"flipped byte", 1).await.expect("commit"),
            put(&spool, b"cut short", 1).await.expect("commit"),
        )
    };
    let queue = dir.path().join("queue");
    let path = |id: &MessageId| queue.join(format!("{id}.msg"));
    let mut bytes = std::fs::read(path(&bad_body)).expect("read");
    bytes[17] ^= 0x20;
    std::fs::write(path(&bad_body), bytes).expect("write");
    let bytes = std::fs::read(path(&bad_len)).expect("read");
    std::fs::write(path(&bad_len), &bytes[..bytes.len() - 1]).expect("write");
    std::fs::write(dir.path().join("incoming/leftover.tmp"), b"partial").expect("write");
    std::fs::write(queue.join("stray"), b"?").expect("write");
    // A journal whose message is gone.
    std::fs::write(queue.join(format!("{}.st", MessageId::generate())), b"").expect("write");

    let (_spool, rec) = reopen(dir.path());
    let ids: Vec<_> = rec.messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids, std::slice::from_ref(&good));
    assert_eq!(rec.removed_incomplete, 1);
    let mut moved: Vec<_> = rec.corrupt.iter().map(|(n, _)| n.clone()).collect();
    moved.sort();
    let mut expect = vec![
        format!("{bad_body}.msg"),
        format!("{bad_len}.msg"),
        "stray".to_owned(),
    ];
    expect.sort();
    assert_eq!(moved, expect);
    assert_eq!(files_in(&dir.path().join("corrupt")), expect);
    assert_eq!(files_in(&queue), [format!("{good}.msg")]);
    assert_eq!(files_in(&dir.path().join("incoming")), Vec::<String>::new());
}

#[tokio::test]
async fn every_truncation_of_a_message_file_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = {
        let (spool, _) = reopen_with(dir.path(), own_files());
        put(&spool, b"Subject: t\r\n\r\nbody\r\n", 2)
            .await
            .expect("commit")
    };
    let path = dir.path().join(format!("queue/{id}.msg"));
    let full = std::fs::read(&path).expect("read");
    for cut in 0..full.len() {
        std::fs::write(&path, &full[..cut]).expect("write");
        let (_spool, rec) = reopen(dir.path());
        assert!(rec.messages.is_empty(), "cut at {cut} accepted");
        std::fs::rename(dir.path().join(format!("corrupt/{id}.msg")), &path).expect("restore");
    }
}

#[tokio::test]
async fn torn_journal_record_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = {
        let (spool, _) = reopen(dir.path());
        let id = put(&spool, b"m", 2).await.expect("commit");
        spool
            .mark(&id, 0, RecipientState::Delivered)
            .await
            .expect("mark");
        id
    };
    let st = dir.path().join(format!("queue/{id}.st"));
    let mut bytes = std::fs::read(&st).expect("read");
    bytes.extend_from_slice(&[9, 0, 0, 0, 1, 2]);
    std::fs::write(&st, bytes).expect("write");

    let (spool, rec) = reopen(dir.path());
    assert_eq!(rec.repaired_journals, 1);
    assert_eq!(
        rec.messages[0].envelope.recipients[0].state,
        RecipientState::Delivered
    );
    spool
        .mark(&id, 1, RecipientState::Delivered)
        .await
        .expect("mark");
    drop(spool);
    let (_spool, rec) = reopen(dir.path());
    assert!(rec.messages[0].is_done());
}

/// Disk full: every error is a refusal (452 4.3.1), nothing acknowledged is
/// lost, nothing partial is queued; space comes back once messages leave.
/// Needs a small tmpfs; skipped where mounting is not allowed.
#[tokio::test]
async fn disk_full_refuses_and_loses_nothing() {
    disk_full(own_files(), 3).await;
}

/// The same with segments: a segment's space comes back once every message
/// in it is removed, the active segment's too.
#[tokio::test]
async fn disk_full_with_segments_refuses_and_loses_nothing() {
    disk_full(Options::default(), usize::MAX).await;
}

/// Fills a 256 KiB tmpfs, checks what was acknowledged, removes up to
/// `remove` messages and expects a commit to succeed again.
async fn disk_full(options: Options, remove: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(mnt)
        .stderr(std::process::Stdio::null())
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!("skipping: cannot mount a tmpfs here");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(mnt);

    let (spool, _) = reopen_with(mnt, options);
    let body = vec![b'x'; 20_000];
    let mut acked = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        match put(&spool, &body, 1).await {
            Ok(id) => acked.push(id),
            Err(e) => {
                assert!(e.is_storage_full(), "{e}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "the tmpfs never filled up");
    assert!(!acked.is_empty());
    drop(spool);
    let (spool, rec) = reopen_with(mnt, options);
    let ids: Vec<_> = rec.messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids, acked);
    assert!(rec.corrupt.is_empty());
    for id in &acked {
        assert_eq!(body_of(&spool, id).await, body);
    }
    // Space comes back once messages leave (a file still open somewhere
    // keeps its space a little longer, hence more than one).
    for id in acked.iter().take(remove) {
        spool.remove(id).await.expect("remove");
    }
    put(&spool, &body, 1)
        .await
        .expect("commit after space freed");
}
