//! The plan body encoded straight into its file, a chunk at a time.

use std::io::{self, Write};

use postcard::ser_flavors::Flavor;
use serde::Serialize;

/// How many encoded bytes are gathered before they go to the file.
const CHUNK: usize = 128 * 1024;

/// What [`write_body`] wrote.
pub(crate) struct Body<W> {
    /// The writer, after the last byte.
    pub out: W,
    /// Bytes written.
    pub len: u64,
    /// Their CRC-32 (IEEE).
    pub checksum: u32,
}

/// Encodes `value` with postcard into `out`, in chunks of [`CHUNK`] bytes,
/// counting them and computing their CRC-32 on the way: a 100 MB plan never
/// exists as one buffer, and every byte is touched once.
pub(crate) fn write_body<T: Serialize, W: Write>(value: &T, out: W) -> io::Result<Body<W>> {
    let mut error = None;
    let chunked = Chunked {
        out,
        chunk: Vec::with_capacity(CHUNK),
        crc: crc32fast::Hasher::new(),
        len: 0,
        error: &mut error,
    };
    match postcard::serialize_with_flavor(value, chunked) {
        Ok(done) => Ok(Body {
            out: done.out,
            len: done.len,
            checksum: done.crc.finalize(),
        }),
        Err(encoding) => Err(error.unwrap_or_else(|| io::Error::other(encoding))),
    }
}

/// The postcard flavor of [`write_body`].
struct Chunked<'e, W> {
    out: W,
    chunk: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
    /// Where a write error goes: postcard's own error cannot carry it.
    error: &'e mut Option<io::Error>,
}

impl<W: Write> Chunked<'_, W> {
    /// Writes out the gathered bytes.
    fn flush(&mut self) -> postcard::Result<()> {
        self.crc.update(&self.chunk);
        self.len += self.chunk.len() as u64;
        let written = self.out.write_all(&self.chunk);
        self.chunk.clear();
        written.map_err(|error| {
            *self.error = Some(error);
            postcard::Error::SerializeBufferFull
        })
    }
}

impl<'e, W: Write> Flavor for Chunked<'e, W> {
    type Output = Chunked<'e, W>;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        if self.chunk.len() >= CHUNK {
            self.flush()?;
        }
        self.chunk.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        if self.chunk.len() + bytes.len() > CHUNK {
            self.flush()?;
        }
        self.chunk.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(mut self) -> postcard::Result<Chunked<'e, W>> {
        self.flush()?;
        Ok(self)
    }
}
