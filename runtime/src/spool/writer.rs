//! Writing one message into the spool as it arrives.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::oneshot;

use super::codec::{
    decode_envelope, encode_envelope, header, Trailer, HEADER_LEN, MAX_ENVELOPE, MSG_MAGIC,
};
use super::committer::{Op, Payload};
use super::envelope::Envelope;
use super::error::SpoolError;
use super::id::MessageId;
use super::Spool;

/// Buffer size between the session and a temporary file.
const BUFFER: usize = 64 * 1024;

/// Where the bytes of a message go while it arrives.
enum Sink {
    /// Kept in memory, while the message is within the spool's
    /// `max_inline`: the committer appends it to a segment.
    Memory(Vec<u8>),
    /// Larger: a file of its own in `incoming/`.
    File {
        /// `incoming/ID.tmp`.
        tmp: PathBuf,
        /// The file behind a bounded buffer.
        file: BufWriter<tokio::fs::File>,
    },
}

/// A message being written to the spool.
///
/// Feed it the message bytes with [`write`](SpoolWriter::write) as they
/// arrive, then [`commit`](SpoolWriter::commit) with the envelope. A message
/// up to the spool's `Options::max_inline` is held in memory and shares a
/// segment file with others; a larger one moves to a file of its own in
/// `incoming/`. Dropping a writer without committing discards the message.
/// Every error means the message was not taken: answer `452 4.3.1`.
pub struct SpoolWriter {
    /// The spool, for the committer's channel.
    spool: Spool,
    /// The ID the message gets.
    id: MessageId,
    /// Where the bytes go.
    sink: Sink,
    /// CRC-32 of the message bytes so far.
    crc: crc32fast::Hasher,
    /// Message bytes so far.
    len: u64,
    /// Whether the temporary file, if any, is now the committer's business.
    handed_over: bool,
}

impl SpoolWriter {
    pub(super) async fn create(spool: Spool) -> Result<SpoolWriter, SpoolError> {
        let id = MessageId::generate();
        let mut buf = Vec::with_capacity(4096);
        buf.extend_from_slice(&header(MSG_MAGIC));
        Ok(SpoolWriter {
            spool,
            id,
            sink: Sink::Memory(buf),
            crc: crc32fast::Hasher::new(),
            len: 0,
            handed_over: false,
        })
    }

    /// The ID the message will have once committed.
    pub fn id(&self) -> &MessageId {
        &self.id
    }

    /// The number of message bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no message bytes were written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends message bytes (as received, after dot-unstuffing).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), SpoolError> {
        self.crc.update(bytes);
        self.len += bytes.len() as u64;
        if matches!(self.sink, Sink::Memory(_)) && self.len > self.spool.inner.max_inline as u64 {
            if let Sink::Memory(held) = std::mem::replace(&mut self.sink, Sink::Memory(Vec::new()))
            {
                self.spill(&held).await?;
            }
        }
        self.raw(bytes).await
    }

    /// Moves a message that outgrew memory to `incoming/ID.tmp`.
    async fn spill(&mut self, held: &[u8]) -> Result<(), SpoolError> {
        let tmp = self.spool.inner.incoming.join(format!("{}.tmp", self.id));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(|e| SpoolError::io("create", &tmp, e))?;
        self.sink = Sink::File {
            tmp,
            file: BufWriter::with_capacity(BUFFER, file),
        };
        self.raw(held).await
    }

    async fn raw(&mut self, bytes: &[u8]) -> Result<(), SpoolError> {
        match &mut self.sink {
            Sink::Memory(buf) => {
                buf.extend_from_slice(bytes);
                Ok(())
            }
            Sink::File { tmp, file } => file
                .write_all(bytes)
                .await
                .map_err(|e| SpoolError::io("write", &*tmp, e)),
        }
    }

    /// Makes the message durable in `queue/` and returns its ID. Only when
    /// this returns `Ok` may the session answer 250.
    ///
    /// The envelope's `size` is set to the bytes written; its recipients'
    /// states are not stored (every recipient starts pending).
    pub async fn commit(mut self, mut envelope: Envelope) -> Result<MessageId, SpoolError> {
        envelope.size = self.len;
        let env = encode_envelope(&envelope);
        let env_len = u32::try_from(env.len())
            .ok()
            .filter(|&n| n <= MAX_ENVELOPE)
            .ok_or_else(|| SpoolError::Corrupt(self.id.clone(), "envelope too large".into()))?;
        let trailer = Trailer {
            body_len: self.len,
            env_len,
            body_crc: self.crc.clone().finalize(),
            env_crc: crc32fast::hash(&env),
        };
        self.raw(&env).await?;
        self.raw(&trailer.encode()).await?;
        // An image in memory stays in the spool's cache for the first
        // attempt, as the committed envelope reads back.
        let mut hot = None;
        let payload = match &mut self.sink {
            Sink::Memory(buf) => {
                let image = Arc::new(std::mem::take(buf));
                hot = Some(Arc::clone(&image));
                Payload::Image(image)
            }
            Sink::File { tmp, file } => {
                file.flush()
                    .await
                    .map_err(|e| SpoolError::io("write", &*tmp, e))?;
                let std_file = file
                    .get_mut()
                    .try_clone()
                    .await
                    .map_err(|e| SpoolError::io("dup", &*tmp, e))?
                    .into_std()
                    .await;
                Payload::File {
                    file: std_file,
                    tmp: tmp.clone(),
                }
            }
        };
        let (done, wait) = oneshot::channel();
        self.handed_over = true;
        self.spool
            .inner
            .send(Op::Commit {
                payload,
                id: self.id.clone(),
                done,
            })
            .inspect_err(|_| self.handed_over = false)?;
        wait.await.map_err(|_| SpoolError::Closed)??;
        if let (Some(image), Ok(envelope)) = (hot, decode_envelope(&env)) {
            let start = HEADER_LEN as usize;
            let body = start..start.saturating_add(usize::try_from(self.len).unwrap_or(usize::MAX));
            self.spool
                .inner
                .hot
                .insert(self.id.clone(), envelope, image, body);
        }
        self.spool.announce(&self.id);
        Ok(self.id.clone())
    }
}

impl Drop for SpoolWriter {
    fn drop(&mut self) {
        if let (false, Sink::File { tmp, .. }) = (self.handed_over, &self.sink) {
            // The file closes when the sink drops; the committer deletes it
            // so that no blocking call runs on the async thread.
            let _ = self.spool.inner.send(Op::Discard(tmp.clone()));
        }
    }
}
