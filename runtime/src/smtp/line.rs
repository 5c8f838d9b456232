//! The input buffer and the command line reader.
//!
//! Only `CRLF` ends a command line. A line ended by a bare LF, or holding a
//! bare CR or a NUL, is refused as a whole (`500 5.5.2`): no other reading
//! of the bytes can turn into a command, which is what SMTP smuggling needs.
//! A line longer than the limit is discarded as it arrives, so the buffer
//! never holds more than one maximal line, and answered `500 5.5.6` once its
//! end is seen.

/// Bytes received from the client and not yet processed.
#[derive(Debug, Default)]
pub struct Input {
    data: Vec<u8>,
    start: usize,
}

impl Input {
    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.data.len() {
            self.data.drain(..self.start);
            self.start = 0;
        }
        self.data.extend_from_slice(bytes);
    }

    /// The unprocessed bytes.
    pub fn pending(&self) -> &[u8] {
        self.data.get(self.start..).unwrap_or_default()
    }

    /// Marks `n` bytes as processed.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.data.len());
        if self.start == self.data.len() {
            self.data.clear();
            self.start = 0;
        }
    }

    /// Drops every unprocessed byte and says how many there were.
    pub fn discard(&mut self) -> usize {
        let n = self.pending().len();
        self.data.clear();
        self.start = 0;
        n
    }
}

/// Why a command line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// The line ended in LF without CR.
    BareLf,
    /// A CR not followed by LF.
    BareCr,
    /// A NUL byte.
    Nul,
    /// Another control character.
    Control,
    /// Longer than the limit.
    TooLong,
    /// Not UTF-8.
    NotUtf8,
}

/// Whether the reader is skipping the rest of an over-long line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skipping {
    No,
    TooLong,
}

/// Splits the input into command lines of at most `max` octets (CRLF not
/// counted).
#[derive(Debug)]
pub struct LineReader {
    max: usize,
    skipping: Skipping,
}

impl LineReader {
    /// A reader for lines of at most `max` octets.
    pub fn new(max: usize) -> LineReader {
        LineReader {
            max,
            skipping: Skipping::No,
        }
    }

    /// Forgets a half-skipped line (after STARTTLS).
    pub fn reset(&mut self) {
        self.skipping = Skipping::No;
    }

    /// The next complete line, or `None` when more input is needed.
    pub fn next_line(&mut self, input: &mut Input) -> Option<Result<String, LineError>> {
        let pending = input.pending();
        let Some(lf) = pending.iter().position(|&b| b == b'\n') else {
            // The CR of CRLF may already be here, so one extra octet is held.
            if self.skipping == Skipping::TooLong || pending.len() > self.max + 1 {
                self.skipping = Skipping::TooLong;
                let n = pending.len();
                input.consume(n);
            }
            return None;
        };
        let result = if self.skipping == Skipping::TooLong {
            self.skipping = Skipping::No;
            Err(LineError::TooLong)
        } else {
            check_line(&pending[..lf], self.max)
        };
        input.consume(lf + 1);
        Some(result)
    }
}

fn check_line(raw: &[u8], max: usize) -> Result<String, LineError> {
    let line = raw.strip_suffix(b"\r").ok_or(LineError::BareLf)?;
    if line.len() > max {
        return Err(LineError::TooLong);
    }
    if line.contains(&b'\r') {
        return Err(LineError::BareCr);
    }
    if line.contains(&0) {
        return Err(LineError::Nul);
    }
    let text = std::str::from_utf8(line).map_err(|_| LineError::NotUtf8)?;
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(LineError::Control);
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]], max: usize) -> Vec<Result<String, LineError>> {
        let mut input = Input::default();
        let mut reader = LineReader::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            input.push(chunk);
            while let Some(line) = reader.next_line(&mut input) {
                out.push(line);
            }
        }
        out
    }

    #[test]
    fn crlf_only() {
        assert_eq!(
            lines(&[b"NOOP\r", b"\nQUIT\r\n"], 10),
            [Ok("NOOP".into()), Ok("QUIT".into())]
        );
        assert_eq!(
            lines(&[b"NOOP\nQUIT\r\n"], 10),
            [Err(LineError::BareLf), Ok("QUIT".into())]
        );
        assert_eq!(
            lines(&[b"NO\rOP\r\n", b"A\0\r\n", b"\xff\r\n", b"a\x01\r\n"], 10),
            [
                Err(LineError::BareCr),
                Err(LineError::Nul),
                Err(LineError::NotUtf8),
                Err(LineError::Control)
            ]
        );
    }

    #[test]
    fn long_lines_are_skipped_with_bounded_memory() {
        let mut input = Input::default();
        let mut reader = LineReader::new(8);
        for _ in 0..1000 {
            input.push(&[b'x'; 100]);
            assert_eq!(reader.next_line(&mut input), None);
            assert!(input.pending().len() <= 9);
        }
        input.push(b"\r\nNOOP\r\n");
        assert_eq!(reader.next_line(&mut input), Some(Err(LineError::TooLong)));
        assert_eq!(reader.next_line(&mut input), Some(Ok("NOOP".into())));
        assert_eq!(lines(&[b"123456789\r\n"], 8), [Err(LineError::TooLong)]);
        assert_eq!(lines(&[b"12345678\r\n"], 8), [Ok("12345678".into())]);
    }
}
