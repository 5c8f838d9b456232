//! Messages just committed, kept in memory for their first delivery
//! attempt.
//!
//! A small message is whole in memory when it is committed (it goes into a
//! segment as one record); the queue manager tries it moments later. Keeping
//! that image until the message is removed spares the attempt reading its
//! envelope and bytes back from the segment: two trips to a blocking
//! thread and about ten system calls per message. The copy is only a
//! cache: the segment on disk stays the record, and a message not found
//! here is read from there. A message leaves the cache when it is removed,
//! and before anything is appended to its state journal (from then on its
//! state is the envelope plus the journal, which only the disk has). The
//! cache holds at most [`LIMIT`] bytes; messages committed while it is full
//! are read from disk.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use super::envelope::Envelope;
use super::id::MessageId;

/// The most message bytes held.
pub const LIMIT: usize = 64 << 20;

/// One message held.
struct Entry {
    /// The envelope as committed (every recipient pending).
    envelope: Envelope,
    /// The message's spool image, shared with the committer's write.
    image: Arc<Vec<u8>>,
    /// Where the message bytes are in `image`.
    body: Range<usize>,
}

/// The cache; every method takes its lock for a moment.
#[derive(Default)]
pub struct Hot {
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    entries: HashMap<MessageId, Entry>,
    /// Image bytes held.
    bytes: usize,
}

impl Hot {
    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps a committed message, unless the cache is full.
    pub fn insert(
        &self,
        id: MessageId,
        envelope: Envelope,
        image: Arc<Vec<u8>>,
        body: Range<usize>,
    ) {
        if image.get(body.clone()).is_none() {
            return;
        }
        let mut held = self.lock();
        if held.bytes + image.len() > LIMIT {
            return;
        }
        held.bytes += image.len();
        let entry = Entry {
            envelope,
            image,
            body,
        };
        if let Some(old) = held.entries.insert(id, entry) {
            held.bytes -= old.image.len();
        }
    }

    /// The envelope of a message held, as committed.
    pub fn envelope(&self, id: &MessageId) -> Option<Envelope> {
        self.lock().entries.get(id).map(|e| e.envelope.clone())
    }

    /// A copy of the bytes of a message held.
    pub fn body(&self, id: &MessageId) -> Option<Vec<u8>> {
        let held = self.lock();
        let entry = held.entries.get(id)?;
        entry.image.get(entry.body.clone()).map(<[u8]>::to_vec)
    }

    /// Forgets a message (removed, or its state is about to change).
    pub fn evict(&self, id: &MessageId) {
        let mut held = self.lock();
        if let Some(old) = held.entries.remove(id) {
            held.bytes -= old.image.len();
        }
    }

    /// Image bytes held now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            sender: Some("a@example.test".into()),
            recipients: Vec::new(),
            ret: None,
            envid: None,
            body: super::super::BodyType::SevenBit,
            smtputf8: false,
            client_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            helo: "client.example.test".into(),
            auth_user: None,
            received_at: std::time::UNIX_EPOCH,
            size: 4,
            origin: super::super::Origin::default(),
        }
    }

    #[test]
    fn holds_until_evicted() {
        let hot = Hot::default();
        let id = MessageId::generate();
        let image = Arc::new(b"headBODYtrailer".to_vec());
        hot.insert(id.clone(), envelope(), Arc::clone(&image), 4..8);
        assert_eq!(hot.body(&id).as_deref(), Some(&b"BODY"[..]));
        assert_eq!(hot.envelope(&id), Some(envelope()));
        assert_eq!(hot.bytes(), image.len());
        hot.evict(&id);
        assert_eq!(hot.body(&id), None);
        assert_eq!(hot.envelope(&id), None);
        assert_eq!(hot.bytes(), 0);
    }

    #[test]
    fn a_full_cache_takes_nothing_more() {
        let hot = Hot::default();
        let big = MessageId::generate();
        hot.insert(big.clone(), envelope(), Arc::new(vec![0; LIMIT - 10]), 0..1);
        let small = MessageId::generate();
        hot.insert(small.clone(), envelope(), Arc::new(vec![0; 11]), 0..1);
        assert!(hot.body(&small).is_none());
        hot.evict(&big);
        hot.insert(small.clone(), envelope(), Arc::new(vec![0; 11]), 0..1);
        assert!(hot.body(&small).is_some());
    }

    #[test]
    fn a_range_outside_the_image_is_not_kept() {
        let hot = Hot::default();
        let id = MessageId::generate();
        hot.insert(id.clone(), envelope(), Arc::new(vec![0; 4]), 2..8);
        assert!(hot.body(&id).is_none());
        assert_eq!(hot.bytes(), 0);
    }
}
