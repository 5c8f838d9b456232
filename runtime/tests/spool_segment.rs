//! Segments: small messages share append-only files. Every cut of a segment
//! keeps exactly the messages written before it; a damaged message is set
//! aside without its neighbours; a segment and the journals of its messages
//! go once every message in it is removed; a message over `max_inline` gets
//! a file of its own.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use mailgw_runtime::spool::{
    BodyType, Envelope, MessageId, Options, Recipient, RecipientState, Spool, SpoolError,
};
use tokio::io::AsyncReadExt;

fn envelope() -> Envelope {
    Envelope {
        sender: Some("alice@example.org".into()),
        recipients: vec![
            Recipient::new("r0@example.net"),
            Recipient::new("r1@example.net"),
        ],
        ret: None,
        envid: None,
        body: BodyType::SevenBit,
        smtputf8: false,
        client_ip: "192.0.2.7".parse().expect("literal"),
        helo: "client.example.org".into(),
        auth_user: None,
        received_at: UNIX_EPOCH + Duration::from_secs(1_750_000_000),
        size: 0,
        origin: Default::default(),
    }
}

async fn put(spool: &Spool, body: &[u8]) -> MessageId {
    let mut w = spool.create().await.expect("create");
    for chunk in body.chunks(700) {
        w.write(chunk).await.expect("write");
    }
    w.commit(envelope()).await.expect("commit")
}

/// Commits each body in turn; their IDs.
async fn put_all(spool: &Spool, bodies: &[Vec<u8>]) -> Vec<MessageId> {
    let mut ids = Vec::new();
    for b in bodies {
        ids.push(put(spool, b).await);
    }
    ids
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

fn open(dir: &Path, options: Options) -> (Spool, mailgw_runtime::spool::Recovered) {
    // Another test forking can hold a copy of the lock descriptor for an
    // instant; wait that out.
    for _ in 0..50 {
        match Spool::open_with(dir, options) {
            Err(SpoolError::Locked(_)) => std::thread::sleep(Duration::from_millis(10)),
            other => return other.expect("open spool"),
        }
    }
    panic!("spool stays locked");
}

fn names(dir: &Path, suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect();
    v.sort();
    v
}

/// The end of a segment's records: the room written ahead is zeros, and a
/// record ends with its trailer's end magic.
fn records_end(path: &Path) -> usize {
    let bytes = std::fs::read(path).expect("read segment");
    bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1)
}

/// The only segment in `queue/`.
fn the_segment(queue: &Path) -> PathBuf {
    let segs = names(queue, ".seg");
    assert_eq!(segs.len(), 1, "{segs:?}");
    queue.join(&segs[0])
}

fn bodies() -> Vec<Vec<u8>> {
    (0..3u8)
        .map(|i| {
            format!(
                "Subject: m{i}\r\n\r\n{}\r\n",
                "x".repeat(100 * usize::from(i + 1))
            )
            .into_bytes()
        })
        .collect()
}

#[tokio::test]
async fn small_messages_share_a_segment_and_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bodies = bodies();
    let ids;
    {
        let (spool, _) = open(dir.path(), Options::default());
        ids = put_all(&spool, &bodies).await;
        for (id, b) in ids.iter().zip(&bodies) {
            assert_eq!(&body_of(&spool, id).await, b);
        }
        // Seen from outside while the spool is open, and without a removed one.
        assert_eq!(Spool::queued_ids(dir.path()).expect("peek"), ids);
        let extra = put(&spool, b"extra\r\n").await;
        spool.remove(&extra).await.expect("remove");
        assert_eq!(Spool::queued_ids(dir.path()).expect("peek"), ids);
    }
    let queue = dir.path().join("queue");
    the_segment(&queue);
    assert_eq!(names(&queue, ".msg"), Vec::<String>::new());
    assert_eq!(
        names(&dir.path().join("incoming"), ""),
        Vec::<String>::new()
    );

    let (spool, rec) = open(dir.path(), Options::default());
    let got: Vec<_> = rec.messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(got, ids);
    assert_eq!(spool.list().await.expect("list"), rec.messages);
    for (id, b) in ids.iter().zip(&bodies) {
        assert_eq!(&body_of(&spool, id).await, b);
        assert_eq!(
            spool.load(id).await.expect("load").envelope.size,
            b.len() as u64
        );
    }
}

/// A crash leaves a segment cut anywhere in the batch being written, with
/// or without the zeros written ahead: every cut must keep exactly the
/// messages whose record ends before it, never a partial one, and report
/// nothing as corrupt.
#[tokio::test]
async fn every_cut_of_a_segment_keeps_exactly_the_whole_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bodies = bodies();
    let mut ids = Vec::new();
    let mut ends = Vec::new();
    let queue = dir.path().join("queue");
    {
        let (spool, _) = open(dir.path(), Options::default());
        for b in &bodies {
            ids.push(put(&spool, b).await);
            ends.push(records_end(&the_segment(&queue)));
        }
    }
    let path = the_segment(&queue);
    let full = std::fs::read(&path).expect("read");
    let data = *ends.last().expect("three messages");
    assert!(full.len() > data, "no room written ahead");
    assert!(full[data..].iter().all(|&b| b == 0));
    for (cut, zeros) in (0..=data).flat_map(|cut| [(cut, false), (cut, true)]) {
        // Recovery deletes a segment left without messages; put it back.
        let mut bytes = full[..cut].to_vec();
        if zeros {
            bytes.resize(full.len(), 0);
        }
        std::fs::write(&path, &bytes).expect("write");
        let (spool, rec) = open(dir.path(), Options::default());
        assert!(rec.corrupt.is_empty(), "cut at {cut}: {:?}", rec.corrupt);
        let whole = ends.iter().filter(|&&end| end <= cut).count();
        let got: Vec<_> = rec.messages.iter().map(|m| m.id.clone()).collect();
        assert_eq!(got, ids[..whole], "cut at {cut}");
        // Torn: bytes after the last whole record that are not all zeros
        // (a header cut short is torn too, unless the zeros after it make
        // it whole again).
        let last = if bytes.get(..16) != full.get(..16) {
            0
        } else {
            ends[..whole].last().map_or(16, |&e| e)
        };
        let torn = bytes[last..].iter().any(|&b| b != 0);
        assert_eq!(
            rec.torn_segments,
            usize::from(torn),
            "cut at {cut}, zeros {zeros}"
        );
        if let Some(id) = got.last() {
            assert_eq!(body_of(&spool, id).await, bodies[whole - 1]);
        }
        drop(spool);
        for extra in names(&queue, ".seg") {
            if queue.join(&extra) != path {
                std::fs::remove_file(queue.join(extra)).expect("remove");
            }
        }
    }
}

/// A flipped byte inside one message's image sets that message aside in
/// `corrupt/` and keeps the messages after it.
#[tokio::test]
async fn a_damaged_message_is_set_aside_and_its_neighbours_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bodies = bodies();
    let ids;
    {
        let (spool, _) = open(dir.path(), Options::default());
        ids = put_all(&spool, &bodies).await;
    }
    let path = the_segment(&dir.path().join("queue"));
    let mut bytes = std::fs::read(&path).expect("read");
    let needle = b"Subject: m1";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("second message in segment");
    bytes[at + 9] ^= 0x20;
    std::fs::write(&path, bytes).expect("write");

    let (spool, rec) = open(dir.path(), Options::default());
    let got: Vec<_> = rec.messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(got, [ids[0].clone(), ids[2].clone()]);
    let corrupt: Vec<_> = rec.corrupt.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(corrupt, [format!("{}.msg", ids[1])]);
    assert_eq!(names(&dir.path().join("corrupt"), ""), corrupt);
    assert_eq!(body_of(&spool, &ids[2]).await, bodies[2]);
}

/// Removing messages: gone at once and after a restart; the segment and
/// every journal are deleted when the last message in it goes.
#[tokio::test]
async fn a_segment_goes_with_its_last_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = dir.path().join("queue");
    let bodies = bodies();
    let ids;
    {
        let (spool, _) = open(dir.path(), Options::default());
        ids = put_all(&spool, &bodies).await;
        spool
            .mark(&ids[0], 0, RecipientState::Delivered)
            .await
            .expect("mark");
        spool.remove(&ids[0]).await.expect("remove");
        spool.remove(&ids[1]).await.expect("remove");
        assert!(matches!(
            spool.load(&ids[0]).await,
            Err(SpoolError::NotFound(_))
        ));
        assert!(matches!(
            spool.mark(&ids[1], 0, RecipientState::Delivered).await,
            Err(SpoolError::NotFound(_))
        ));
        assert!(matches!(
            spool.remove(&ids[1]).await,
            Err(SpoolError::NotFound(_))
        ));
        let listed: Vec<_> = spool
            .list()
            .await
            .expect("list")
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(listed, [ids[2].clone()]);
    }
    // The segment is still needed by the third message; its removal log
    // says which are gone, and the first one's journal stays with it.
    the_segment(&queue);
    assert_eq!(names(&queue, ".del").len(), 1);
    assert_eq!(names(&queue, ".st"), [format!("{}.st", ids[0])]);

    let (spool, rec) = open(dir.path(), Options::default());
    let got: Vec<_> = rec.messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(got, [ids[2].clone()]);
    assert_eq!(body_of(&spool, &ids[2]).await, bodies[2]);
    // A new message goes to a new segment; the old one goes with its last
    // message, and with it every journal.
    let newer = put(&spool, b"new\r\n").await;
    assert_eq!(names(&queue, ".seg").len(), 2);
    spool.remove(&ids[2]).await.expect("remove");
    assert_eq!(names(&queue, ".seg").len(), 1);
    assert_eq!(names(&queue, ".st"), Vec::<String>::new());
    // The active segment stays when it empties: the next message goes
    // into it instead of a new one. Recovery deletes it when nothing in it
    // is queued.
    spool.remove(&newer).await.expect("remove");
    assert_eq!(names(&queue, ".seg").len(), 1);
    let newest = put(&spool, b"newest\r\n").await;
    assert_eq!(names(&queue, ".seg").len(), 1);
    spool.remove(&newest).await.expect("remove");
    drop(spool);
    let (_spool, rec) = open(dir.path(), Options::default());
    assert!(rec.messages.is_empty());
    assert_eq!(names(&queue, ""), Vec::<String>::new());
}

/// Removals that arrive together are written to a removal log together:
/// every one of them holds, at once and after a restart.
#[tokio::test]
async fn removals_at_once_all_hold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spool, _) = open(dir.path(), Options::default());
    let mut ids = Vec::new();
    for n in 0..50 {
        ids.push(put(&spool, format!("message {n}\r\n").as_bytes()).await);
    }
    let (gone, kept) = ids.split_at(40);
    let removals: Vec<_> = gone
        .iter()
        .map(|id| {
            let spool = spool.clone();
            let id = id.clone();
            tokio::spawn(async move { spool.remove(&id).await })
        })
        .collect();
    for r in removals {
        r.await.expect("join").expect("remove");
    }
    assert!(matches!(
        spool.remove(&gone[0]).await,
        Err(SpoolError::NotFound(_))
    ));
    drop(spool);
    let (spool, rec) = open(dir.path(), Options::default());
    let got: Vec<_> = rec.messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(got, kept);
    for (n, id) in ids.iter().enumerate().skip(40) {
        assert_eq!(
            body_of(&spool, id).await,
            format!("message {n}\r\n").as_bytes()
        );
    }
}

/// Recovery deletes a segment left with no queued message: here the first
/// message is removed (a removal record in the segment) and the second
/// one's batch was torn by a crash (never acknowledged). The segment, its removal
/// log and the first message's journal go.
#[tokio::test]
async fn recovery_reclaims_a_finished_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = dir.path().join("queue");
    let (first, end) = {
        let (spool, _) = open(dir.path(), Options::default());
        let first = put(&spool, b"first\r\n").await;
        spool
            .mark(&first, 0, RecipientState::Delivered)
            .await
            .expect("mark");
        spool.remove(&first).await.expect("remove");
        let end = records_end(&the_segment(&queue));
        put(&spool, b"second\r\n").await;
        (first, end)
    };
    assert_eq!(names(&queue, ".del").len(), 1);
    assert_eq!(names(&queue, ".st"), [format!("{first}.st")]);
    let seg = the_segment(&queue);
    let bytes = std::fs::read(&seg).expect("read");
    std::fs::write(&seg, &bytes[..end + 5]).expect("cut");

    let (_spool, rec) = open(dir.path(), Options::default());
    assert!(rec.messages.is_empty());
    assert_eq!(rec.torn_segments, 1);
    assert_eq!(names(&queue, ""), Vec::<String>::new());
}

/// A message over `max_inline` is written to a file of its own while it
/// arrives; small ones still share a segment.
#[tokio::test]
async fn a_large_message_gets_its_own_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = dir.path().join("queue");
    let options = Options {
        max_inline: 1000,
        ..Options::default()
    };
    let big: Vec<u8> = (0..5000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let (small, large) = {
        let (spool, _) = open(dir.path(), options);
        let small = put(&spool, b"small\r\n").await;
        let large = put(&spool, &big).await;
        (small, large)
    };
    assert_eq!(names(&queue, ".msg"), [format!("{large}.msg")]);
    the_segment(&queue);
    let (spool, rec) = open(dir.path(), options);
    let got: Vec<_> = rec.messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(got, [small.clone(), large.clone()]);
    assert_eq!(body_of(&spool, &large).await, big);
    assert_eq!(body_of(&spool, &small).await, b"small\r\n");
}

/// A torn removal log entry is cut at the next start and later removals
/// stay readable; a removal log with a damaged header is set aside and its
/// segment's messages are all kept (none is lost; journals still say who
/// has a message).
#[tokio::test]
async fn a_damaged_removal_log_loses_no_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = dir.path().join("queue");
    let bodies = bodies();
    let ids;
    {
        let (spool, _) = open(dir.path(), Options::default());
        ids = put_all(&spool, &bodies).await;
    }
    {
        // After a restart the segment is no longer the active one: a
        // removal goes to its removal log.
        let (spool, _) = open(dir.path(), Options::default());
        spool.remove(&ids[0]).await.expect("remove");
    }
    let del = queue.join(&names(&queue, ".del")[0]);
    let mut bytes = std::fs::read(&del).expect("read");
    bytes.extend_from_slice(b"00066");
    std::fs::write(&del, &bytes).expect("tear");
    {
        let (spool, rec) = open(dir.path(), Options::default());
        let got: Vec<_> = rec.messages.iter().map(|m| m.id.clone()).collect();
        assert_eq!(got, ids[1..]);
        spool.remove(&ids[1]).await.expect("remove");
    }
    let (_spool, rec) = open(dir.path(), Options::default());
    let got: Vec<_> = rec.messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(got, ids[2..]);
    drop(_spool);

    let mut bytes = std::fs::read(&del).expect("read");
    bytes[0] ^= 0x01;
    std::fs::write(&del, &bytes).expect("damage");
    let (spool, rec) = open(dir.path(), Options::default());
    let got: Vec<_> = rec.messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(got, ids);
    let corrupt: Vec<_> = rec.corrupt.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(corrupt, names(&dir.path().join("corrupt"), ".del"));
    assert_eq!(corrupt.len(), 1);
    // A fresh removal log takes removals again.
    spool.remove(&ids[0]).await.expect("remove");
    drop(spool);
    let (_spool, rec) = open(dir.path(), Options::default());
    assert_eq!(rec.messages.len(), 2);
}

/// Concurrent commits of small and large (over the 256 KiB write chunk)
/// messages share batches; each is found whole, where the index says.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_small_and_large_messages_land_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = |i: usize| -> Vec<u8> {
        let len = if i.is_multiple_of(3) {
            300_000 + i * 7_001
        } else {
            10 + i * 97
        };
        (0..len).map(|j| b'a' + ((i * 31 + j) % 26) as u8).collect()
    };
    let ids = {
        let (spool, _) = open(dir.path(), Options::default());
        let tasks: Vec<_> = (0..30)
            .map(|i| {
                let spool = spool.clone();
                tokio::spawn(async move { put(&spool, &body(i)).await })
            })
            .collect();
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.expect("task"));
        }
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(body_of(&spool, id).await, body(i), "message {i}");
        }
        ids
    };
    assert_eq!(
        names(&dir.path().join("queue"), ".msg"),
        Vec::<String>::new()
    );
    let (spool, rec) = open(dir.path(), Options::default());
    assert_eq!(rec.messages.len(), ids.len());
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            body_of(&spool, id).await,
            body(i),
            "message {i} after reopen"
        );
    }
}

/// A message of the active segment is removed by a removal record in the
/// segment itself, written with the batch: the removal log stays empty, and
/// the removal holds after a restart. A segment of format version 1 (before
/// removal records) is still read; an unknown version is set aside.
#[tokio::test]
async fn removal_records_in_the_active_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = dir.path().join("queue");
    let bodies = bodies();
    let ids;
    {
        let (spool, _) = open(dir.path(), Options::default());
        ids = put_all(&spool, &bodies).await;
        spool.remove(&ids[1]).await.expect("remove");
    }
    let del = queue.join(&names(&queue, ".del")[0]);
    let header_only = 16;
    assert_eq!(
        std::fs::metadata(&del).expect("del").len(),
        header_only,
        "nothing in the removal log"
    );
    let (spool, rec) = open(dir.path(), Options::default());
    let got: Vec<_> = rec.messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(got, [ids[0].clone(), ids[2].clone()]);
    assert_eq!(body_of(&spool, &ids[2]).await, bodies[2]);
    drop(spool);

    // The same segment, written by an older version without removal
    // records: every message in it is read.
    let seg = the_segment(&queue);
    let mut bytes = std::fs::read(&seg).expect("read");
    assert_eq!(bytes[8..12], 2u32.to_le_bytes());
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    std::fs::write(&seg, &bytes).expect("write");
    let (_spool, rec) = open(dir.path(), Options::default());
    assert_eq!(rec.messages.len(), 2);
    drop(_spool);

    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    std::fs::write(&seg, &bytes).expect("write");
    let (_spool, rec) = open(dir.path(), Options::default());
    assert!(rec.messages.is_empty());
    assert_eq!(names(&dir.path().join("corrupt"), ".seg").len(), 1);
}
