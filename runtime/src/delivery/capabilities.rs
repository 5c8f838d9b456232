//! The extensions a peer announced in its `EHLO`/`LHLO` reply.

use super::reply::Reply;

/// What the peer offers. All false after `HELO`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Capabilities {
    /// `PIPELINING` (RFC 2920).
    pub(crate) pipelining: bool,
    /// `SIZE` (RFC 1870): `Some(0)` means no fixed limit.
    pub(crate) size: Option<u64>,
    /// `8BITMIME` (RFC 6152).
    pub(crate) eight_bit_mime: bool,
    /// `SMTPUTF8` (RFC 6531).
    pub(crate) smtputf8: bool,
    /// `DSN` (RFC 3461).
    pub(crate) dsn: bool,
    /// `STARTTLS` (RFC 3207).
    pub(crate) starttls: bool,
    /// `ENHANCEDSTATUSCODES` (RFC 2034).
    pub(crate) enhanced_status_codes: bool,
    /// The SASL mechanisms of `AUTH` (RFC 4954), upper-cased.
    pub(crate) auth: Vec<String>,
}

impl Capabilities {
    /// The capabilities in a positive `EHLO` reply; the first line is the
    /// peer's greeting and names no extension.
    pub(crate) fn parse(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "DSN" => caps.dsn = true,
                "STARTTLS" => caps.starttls = true,
                "ENHANCEDSTATUSCODES" => caps.enhanced_status_codes = true,
                "AUTH" => caps.auth.extend(words.map(|m| m.to_ascii_uppercase())),
                _ => {}
            }
        }
        caps
    }

    /// Whether `AUTH` offers `mechanism` (upper case).
    pub(crate) fn has_auth(&self, mechanism: &str) -> bool {
        self.auth.iter().any(|m| m == mechanism)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_extensions() {
        let reply = Reply {
            code: 250,
            status: None,
            lines: [
                "mx.example greets you",
                "pipelining",
                "SIZE 10240000",
                "8BITMIME",
                "SMTPUTF8",
                "DSN",
                "STARTTLS",
                "ENHANCEDSTATUSCODES",
                "AUTH PLAIN login",
                "X-UNKNOWN yes",
            ]
            .map(String::from)
            .to_vec(),
        };
        let caps = Capabilities::parse(&reply);
        assert!(caps.pipelining && caps.eight_bit_mime && caps.smtputf8 && caps.dsn);
        assert!(caps.starttls && caps.enhanced_status_codes);
        assert_eq!(caps.size, Some(10_240_000));
        assert!(caps.has_auth("PLAIN") && caps.has_auth("LOGIN") && !caps.has_auth("CRAM-MD5"));

        let first_line_only = Reply {
            lines: vec!["PIPELINING".into(), "SIZE".into()],
            ..reply
        };
        let caps = Capabilities::parse(&first_line_only);
        assert!(!caps.pipelining);
        assert_eq!(caps.size, Some(0));
    }
}
