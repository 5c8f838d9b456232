//! Writing one message into the spool as it arrives.

use std::path::PathBuf;

use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::oneshot;

use super::codec::{encode_envelope, header, Trailer, MAX_ENVELOPE, MSG_MAGIC};
use super::committer::Op;
use super::envelope::Envelope;
use super::error::SpoolError;
use super::id::MessageId;
use super::Spool;

/// Buffer size between the session and the temporary file: the most
/// message bytes a writer holds in memory.
const BUFFER: usize = 64 * 1024;

/// A message being written to `incoming/`.
///
/// Feed it the message bytes with [`write`](SpoolWriter::write) as they
/// arrive, then [`commit`](SpoolWriter::commit) with the envelope. Dropping
/// a writer without committing deletes the temporary file. Every error means
/// the message was not taken: answer `452 4.3.1`.
pub struct SpoolWriter {
    /// The spool, for the committer's channel.
    spool: Spool,
    /// The ID the message gets.
    id: MessageId,
    /// `incoming/ID.tmp`.
    tmp: PathBuf,
    /// The temporary file behind a bounded buffer.
    file: BufWriter<tokio::fs::File>,
    /// CRC-32 of the message bytes so far.
    crc: crc32fast::Hasher,
    /// Message bytes so far.
    len: u64,
    /// Whether the temporary file is now the committer's business.
    handed_over: bool,
}

impl SpoolWriter {
    pub(super) async fn create(spool: Spool) -> Result<SpoolWriter, SpoolError> {
        let id = MessageId::generate();
        let tmp = spool.inner.incoming.join(format!("{id}.tmp"));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(|e| SpoolError::io("create", &tmp, e))?;
        let mut w = SpoolWriter {
            spool,
            id,
            tmp,
            file: BufWriter::with_capacity(BUFFER, file),
            crc: crc32fast::Hasher::new(),
            len: 0,
            handed_over: false,
        };
        w.raw(&header(MSG_MAGIC)).await?;
        Ok(w)
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
        self.raw(bytes).await
    }

    async fn raw(&mut self, bytes: &[u8]) -> Result<(), SpoolError> {
        self.file
            .write_all(bytes)
            .await
            .map_err(|e| SpoolError::io("write", &self.tmp, e))
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
        self.file
            .flush()
            .await
            .map_err(|e| SpoolError::io("write", &self.tmp, e))?;
        let file = self.file.get_mut();
        let std_file = file
            .try_clone()
            .await
            .map_err(|e| SpoolError::io("dup", &self.tmp, e))?
            .into_std()
            .await;
        let (done, wait) = oneshot::channel();
        self.handed_over = true;
        self.spool
            .inner
            .send(Op::Commit {
                file: std_file,
                tmp: self.tmp.clone(),
                id: self.id.clone(),
                done,
            })
            .inspect_err(|_| self.handed_over = false)?;
        wait.await.map_err(|_| SpoolError::Closed)??;
        Ok(self.id.clone())
    }
}

impl Drop for SpoolWriter {
    fn drop(&mut self) {
        if !self.handed_over {
            // The file closes when `self.file` drops; the committer deletes
            // it so that no blocking call runs on the async thread.
            let _ = self.spool.inner.send(Op::Discard(self.tmp.clone()));
        }
    }
}
