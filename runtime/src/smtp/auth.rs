//! SASL helpers for `AUTH PLAIN` and `AUTH LOGIN` (RFC 4954, RFC 4616):
//! strict base64 and credentials that never print their password.

use std::fmt;

use super::command::Mechanism;

/// A password as the client sent it. Its `Debug` output is redacted so that
/// no log line can carry it by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: String) -> Password {
        Password(password)
    }

    /// The password, for the verifier only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// What the I/O layer verifies after `AUTH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The mechanism the client used.
    pub mechanism: Mechanism,
    /// The user name (authentication identity).
    pub username: String,
    /// The password.
    pub password: Password,
}

/// Why a SASL response was refused before any verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslError {
    /// Not valid base64, or not the structure the mechanism needs.
    Malformed,
    /// PLAIN with an authorization identity other than the user: this
    /// server lets nobody act for someone else.
    ForeignAuthzid,
}

/// Decodes standard base64 with padding (RFC 4648 4), refusing anything
/// else: whitespace, missing padding, characters outside the alphabet.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.chunks_exact(4).remainder().is_empty() {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quads = bytes.len() / 4;
    for (n, quad) in bytes.chunks_exact(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && n + 1 != quads) {
            return None;
        }
        let mut acc = 0u32;
        for &c in &quad[..4 - pad] {
            acc = acc << 6 | value(c)?;
        }
        acc <<= 6 * pad as u32;
        let [_, a, b, c] = acc.to_be_bytes();
        out.extend_from_slice(&[a, b, c][..3 - pad]);
    }
    Some(out)
}

/// Encodes bytes as standard base64 with padding.
pub fn encode_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut acc = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            acc |= u32::from(b) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= chunk.len() {
                let index = (acc >> (18 - 6 * i)) & 63;
                out.push(char::from(ALPHABET[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes one base64 SASL response into UTF-8 text.
pub fn decode_text(text: &str) -> Result<String, SaslError> {
    let bytes = decode_base64(text).ok_or(SaslError::Malformed)?;
    String::from_utf8(bytes).map_err(|_| SaslError::Malformed)
}

/// Decodes one base64 SASL response into a user name or password that can
/// be written into another protocol's command (the IMAP and POP3 proxy's
/// backend login): UTF-8 without NUL, CR or LF.
pub fn decode_field(text: &str) -> Result<String, SaslError> {
    decode_text(text).and_then(|t| {
        if t.contains(['\0', '\r', '\n']) {
            Err(SaslError::Malformed)
        } else {
            Ok(t)
        }
    })
}

/// Decodes a PLAIN response: `authzid NUL authcid NUL password`.
pub fn decode_plain(text: &str) -> Result<Credentials, SaslError> {
    let bytes = decode_base64(text).ok_or(SaslError::Malformed)?;
    let mut parts = bytes.split(|&b| b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| SaslError::Malformed);
    let (authzid, username, password) = (text(authzid)?, text(user)?, text(password)?);
    if username.is_empty() || password.is_empty() {
        return Err(SaslError::Malformed);
    }
    if !authzid.is_empty() && authzid != username {
        return Err(SaslError::ForeignAuthzid);
    }
    Ok(Credentials {
        mechanism: Mechanism::Plain,
        username,
        password: Password::new(password),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_and_strictness() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            let encoded = encode_base64(data);
            assert_eq!(decode_base64(&encoded).as_deref(), Some(data), "{encoded}");
        }
        assert_eq!(encode_base64(b"Username:"), "VXNlcm5hbWU6");
        for bad in [
            "Zg", "Zg=", "Z===", "Zg==Zg==", "Zm9v\r\n", "Zm 9", "Zm9*", "=Zm9",
        ] {
            assert_eq!(decode_base64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn fields_refuse_line_breaks_and_nul() {
        assert_eq!(decode_field(&encode_base64(b"al ice")), Ok("al ice".into()));
        for bad in [&b"a\r\nb"[..], b"a\nb", b"a\0b", b"\xff"] {
            assert_eq!(decode_field(&encode_base64(bad)), Err(SaslError::Malformed));
        }
        assert_eq!(decode_field("not base64!"), Err(SaslError::Malformed));
    }

    #[test]
    fn plain() {
        let ok = decode_plain(&encode_base64(b"\0alice\0secret")).expect("valid");
        assert_eq!(ok.username, "alice");
        assert_eq!(ok.password.expose(), "secret");
        assert!(!format!("{ok:?}").contains("secret"));
        assert!(decode_plain(&encode_base64(b"alice\0alice\0pw")).is_ok());
        assert_eq!(
            decode_plain(&encode_base64(b"bob\0alice\0pw")),
            Err(SaslError::ForeignAuthzid)
        );
        for bad in [
            &b"alice\0pw"[..],
            b"\0\0pw",
            b"\0a\0",
            b"\0a\0b\0c",
            b"\0\xff\0pw",
        ] {
            assert_eq!(
                decode_plain(&encode_base64(bad)),
                Err(SaslError::Malformed),
                "{bad:?}"
            );
        }
    }
}
