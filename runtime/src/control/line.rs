//! Reading one bounded line from a client.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Read {
    /// A line (without its newline) is in the buffer. The last line of a
    /// connection may lack its newline.
    Line,
    /// The client closed the connection.
    Eof,
    /// The line grew past the limit; the rest of it is unread.
    TooLong,
}

/// Reads the next line into `line` (cleared first), keeping at most `max`
/// bytes of it.
pub(super) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<Read> {
    line.clear();
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() {
                Read::Eof
            } else {
                Read::Line
            });
        }
        let (take, end) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max {
            return Ok(Read::TooLong);
        }
        line.extend_from_slice(&buf[..take]);
        reader.consume(take + usize::from(end));
        if end {
            return Ok(Read::Line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<(Read, String)> {
        let mut reader = input;
        let mut line = Vec::new();
        let mut out = Vec::new();
        loop {
            let read = read_line(&mut reader, &mut line, max)
                .await
                .expect("reading a slice does not fail");
            let done = read != Read::Line;
            out.push((read, String::from_utf8_lossy(&line).into_owned()));
            if done {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn splits_lines_and_keeps_an_unterminated_last_one() {
        assert_eq!(
            lines(b"a\nbc\nd", 8).await,
            [
                (Read::Line, "a".into()),
                (Read::Line, "bc".into()),
                (Read::Line, "d".into()),
                (Read::Eof, String::new()),
            ]
        );
    }

    #[tokio::test]
    async fn a_line_of_exactly_max_bytes_is_taken_one_more_is_not() {
        assert_eq!(lines(b"abcd\n", 4).await[0], (Read::Line, "abcd".into()));
        assert_eq!(lines(b"abcde\n", 4).await[0].0, Read::TooLong);
    }
}
