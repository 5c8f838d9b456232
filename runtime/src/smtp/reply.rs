//! SMTP replies: a code, an enhanced status code (RFC 3463) and text.

use std::fmt;

/// One SMTP reply, possibly multi-line.
///
/// Replies are built by the session only, from fixed text and values the
/// session checked; client bytes never reach a reply unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code (RFC 5321 4.2).
    pub code: u16,
    /// The enhanced status code, `class.subject.detail` (RFC 3463), left out
    /// of greetings, the `EHLO` reply and SASL challenges as RFC 2034 says.
    pub enhanced: Option<Enhanced>,
    /// The text lines; at least one (it may be empty, as in `334 `).
    pub lines: Vec<String>,
}

/// An enhanced status code (RFC 3463), e.g. `5.7.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enhanced(pub u8, pub u16, pub u16);

impl fmt::Display for Enhanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Reply {
    /// A one-line reply with an enhanced status code.
    pub fn new(code: u16, enhanced: Enhanced, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            lines: vec![text.into()],
        }
    }

    /// A reply without an enhanced status code (greeting, `EHLO`, `334`).
    pub fn plain(code: u16, lines: Vec<String>) -> Reply {
        let lines = if lines.is_empty() {
            vec![String::new()]
        } else {
            lines
        };
        Reply {
            code,
            enhanced: None,
            lines,
        }
    }

    /// Whether this is a positive reply (2xx or 3xx).
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// The reply as sent: `250-first\r\n250 last\r\n`, the enhanced code
    /// repeated on every line (RFC 2034 4).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.write_to(&mut out);
        out
    }

    /// Appends the reply as sent to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            // Writing into a vector cannot fail.
            let _ = write!(out, "{}{sep}", self.code);
            if let Some(enhanced) = self.enhanced {
                let _ = write!(out, "{enhanced}");
                if !line.is_empty() {
                    out.push(b' ');
                }
            }
            // Reply text is ours, but a stray CR or LF would split the reply,
            // so it is replaced rather than trusted.
            out.extend(
                line.bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
            out.extend_from_slice(b"\r\n");
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The lines are UTF-8 and only ASCII CR and LF are replaced.
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_single_and_multi_line() {
        let r = Reply::new(250, Enhanced(2, 1, 0), "Sender OK");
        assert_eq!(r.to_string(), "250 2.1.0 Sender OK\r\n");
        let r = Reply::plain(250, vec!["mx.example".into(), "SIZE 100".into()]);
        assert_eq!(r.to_string(), "250-mx.example\r\n250 SIZE 100\r\n");
        let r = Reply::plain(334, Vec::new());
        assert_eq!(r.to_string(), "334 \r\n");
        let r = Reply::new(250, Enhanced(2, 0, 0), "a\r\nb");
        assert_eq!(r.to_string(), "250 2.0.0 a  b\r\n");
    }
}
