//! `mailgw::file`: the certificate, key, CA and credentials files the
//! configuration names.
//!
//! The gateway reads these files when it starts; a mistake in one of them
//! takes TLS (and with it submission, IMAP and POP3) down. So the compiler
//! reads them now. For every TLS profile with `certificate` and `key` (a
//! `self-signed` profile has no files):
//! - error: a file that is missing, unreadable, or a directory;
//! - error: a certificate file without a PEM certificate (with a hint when it
//!   is DER or holds a key), or whose first certificate does not parse;
//! - error: a key file without an unencrypted PEM private key (PKCS#1, SEC1
//!   or PKCS#8);
//! - error: a key that does not belong to the certificate. RSA keys are
//!   compared by modulus and exponent; EC keys by their public point when the
//!   key file carries it (OpenSSL always writes it); otherwise, and for
//!   Ed25519 and Ed448 keys, only the key type is compared, since deriving the
//!   public key would take a cryptography library;
//! - error: a certificate of the chain that has expired or is not valid yet;
//!   warning: one that expires within 30 days;
//! - warning: a first certificate that does not cover the gateway's
//!   `hostname`: no subject alternative DNS name matches it (`*.example.com`
//!   matches exactly one label, `mail.example.com` but not `example.com`),
//!   or, when the certificate has no DNS names at all, its common name does
//!   not. Clients that check the name refuse such a certificate.
//!
//! A connector's `credentials` file and a backend's `ca` file must exist and
//! be readable (error); a `ca` file must hold at least one PEM certificate
//! (error). The `directory` files are read, and reported on, by the reader.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use x509_parser::der_parser::ber::{BerObject, BerObjectContent, Class};
use x509_parser::der_parser::der::parse_der;
use x509_parser::der_parser::Oid;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{
    OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519, OID_SIG_ED448,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::Context;
use crate::ast::TlsProfile;
use crate::diagnostic::{Code, Diagnostic, Label};
use crate::source::Spanned;

/// Certificates that expire within this many seconds get a warning.
const EXPIRY_WARNING: i64 = 30 * 86_400;

/// Runs this check.
pub fn check(cx: &mut Context<'_>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    check_at(cx, now);
}

/// The check, as if the time were `now` (seconds since the Unix epoch).
fn check_at(cx: &mut Context<'_>, now: i64) {
    let mut found = Vec::new();
    for profile in &cx.config.tls {
        if profile.self_signed.is_none() {
            tls_profile(cx, profile, now, &mut found);
        }
    }
    for connector in &cx.config.connectors {
        if let Some(file) = &connector.credentials {
            if let Err(diagnostic) = read(cx, file, "credentials file") {
                found.push(diagnostic.with_help(
                    "the file holds the smarthost's user name and password; paths are relative to the file that names them",
                ));
            }
        }
    }
    let cas = cx.config.backends.iter().map(|b| &b.ca);
    let cas = cas.chain(cx.config.connectors.iter().map(|c| &c.ca));
    for file in cas {
        let Some(file) = file else {
            continue;
        };
        match read(cx, file, "CA file") {
            Err(diagnostic) => found.push(diagnostic),
            Ok(bytes) => {
                if let Err(diagnostic) = certificates(cx, file, &bytes, "CA file") {
                    found.push(diagnostic);
                }
            }
        }
    }
    for diagnostic in found {
        cx.report(diagnostic);
    }
}

fn tls_profile(cx: &Context<'_>, profile: &TlsProfile, now: i64, found: &mut Vec<Diagnostic>) {
    let certs = profile.certificate.as_ref().and_then(|file| {
        read(cx, file, "certificate file")
            .and_then(|bytes| certificates(cx, file, &bytes, "certificate file"))
            .map_err(|d| found.push(d))
            .ok()
            .map(|certs| (file, certs))
    });
    let key = profile.key.as_ref().and_then(|file| {
        read(cx, file, "key file")
            .and_then(|bytes| private_key(cx, file, &bytes))
            .map_err(|d| found.push(d))
            .ok()
            .map(|key| (file, key))
    });
    let Some((cert_file, certs)) = certs else {
        return;
    };
    let mut parsed = Vec::new();
    for (index, der) in certs.iter().enumerate() {
        match X509Certificate::from_der(der) {
            Ok((_, cert)) => parsed.push(cert),
            Err(error) => {
                found.push(
                    Diagnostic::error(
                        Code::File,
                        format!(
                            "certificate {} in `{}` cannot be parsed: {error}",
                            index + 1,
                            written(cx, cert_file)
                        ),
                        Label::new(cert_file.span, "not a valid certificate"),
                    )
                    .with_help(
                        "replace the file with the certificate chain your CA issued, in PEM",
                    ),
                );
                return;
            }
        }
    }
    for (index, cert) in parsed.iter().enumerate() {
        if let Some(diagnostic) = validity(cx, cert_file, cert, index, now) {
            found.push(diagnostic);
        }
    }
    let Some(leaf) = parsed.first() else {
        return;
    };
    if let Some((key_file, key)) = &key {
        if let Some(problem) = key_mismatch(leaf, key) {
            found.push(
                Diagnostic::error(
                    Code::File,
                    format!(
                        "the key in `{}` does not belong to the certificate in `{}`{problem}: every TLS handshake would fail",
                        written(cx, key_file),
                        written(cx, cert_file)
                    ),
                    Label::new(key_file.span, "not this certificate's key"),
                )
                .with_label(Label::new(cert_file.span, "the certificate"))
                .with_help(format!(
                    "use the key the certificate was issued for; `openssl x509 -noout -pubkey -in {}` and \
                     `openssl pkey -pubout -in {}` must print the same key",
                    written(cx, cert_file),
                    written(cx, key_file)
                )),
            );
        }
    }
    if let Some(diagnostic) = hostname(cx, cert_file, leaf) {
        found.push(diagnostic);
    }
}

/// The path as the user wrote it.
fn written(cx: &Context<'_>, file: &Spanned<std::path::PathBuf>) -> String {
    let text = cx.db.slice(file.span).trim_matches('"');
    if text.is_empty() {
        file.value.display().to_string()
    } else {
        text.to_owned()
    }
}

/// The bytes of a file, or the error for a missing or unreadable one.
fn read(
    cx: &Context<'_>,
    file: &Spanned<std::path::PathBuf>,
    what: &str,
) -> Result<Vec<u8>, Diagnostic> {
    let path: &Path = &file.value;
    std::fs::read(path).map_err(|error| {
        let (why, label) = match error.kind() {
            std::io::ErrorKind::NotFound => ("does not exist".to_owned(), "file not found"),
            std::io::ErrorKind::PermissionDenied => (
                "cannot be read: permission denied".to_owned(),
                "cannot be read",
            ),
            _ if path.is_dir() => ("is a directory, not a file".to_owned(), "a directory"),
            _ => (format!("cannot be read: {error}"), "cannot be read"),
        };
        Diagnostic::error(
            Code::File,
            format!("the {what} `{}` {why}", written(cx, file)),
            Label::new(file.span, label),
        )
        .with_help("paths are relative to the file that names them")
    })
}

/// The DER certificates in a PEM file, at least one.
fn certificates(
    cx: &Context<'_>,
    file: &Spanned<std::path::PathBuf>,
    bytes: &[u8],
    what: &str,
) -> Result<Vec<Vec<u8>>, Diagnostic> {
    let (items, malformed) = pem_items(bytes);
    let certs: Vec<Vec<u8>> = items
        .iter()
        .filter_map(|item| match item {
            rustls_pemfile::Item::X509Certificate(der) => Some(der.to_vec()),
            _ => None,
        })
        .collect();
    if !certs.is_empty() {
        return Ok(certs);
    }
    let help = if bytes.first() == Some(&0x30) && X509Certificate::from_der(bytes).is_ok() {
        format!(
            "the file is DER, not PEM: convert it with `openssl x509 -inform der -in {0} -out {0}.pem`",
            written(cx, file)
        )
    } else if items.iter().any(is_key) {
        "the file holds a private key: are `certificate` and `key` swapped?".to_owned()
    } else {
        "a PEM certificate starts with `-----BEGIN CERTIFICATE-----`".to_owned()
    };
    let why = if malformed {
        "is not valid PEM"
    } else {
        "holds no PEM certificate"
    };
    Err(Diagnostic::error(
        Code::File,
        format!("the {what} `{}` {why}", written(cx, file)),
        Label::new(file.span, "no certificate in this file"),
    )
    .with_help(help))
}

/// The first private key in a PEM file.
fn private_key(
    cx: &Context<'_>,
    file: &Spanned<std::path::PathBuf>,
    bytes: &[u8],
) -> Result<Key, Diagnostic> {
    let (items, malformed) = pem_items(bytes);
    for item in items {
        let key = match item {
            rustls_pemfile::Item::Pkcs1Key(der) => Key::Pkcs1(der.secret_pkcs1_der().to_vec()),
            rustls_pemfile::Item::Sec1Key(der) => Key::Sec1(der.secret_sec1_der().to_vec()),
            rustls_pemfile::Item::Pkcs8Key(der) => Key::Pkcs8(der.secret_pkcs8_der().to_vec()),
            _ => continue,
        };
        return Ok(key);
    }
    let text = String::from_utf8_lossy(bytes);
    let (why, help) = if text.contains("ENCRYPTED PRIVATE KEY")
        || text.contains("Proc-Type: 4,ENCRYPTED")
    {
        (
            "holds an encrypted key: the gateway cannot ask for a passphrase",
            format!(
                "decrypt it with `openssl pkey -in {} -out FILE` and make FILE readable only by the gateway",
                written(cx, file)
            ),
        )
    } else if text.contains("BEGIN CERTIFICATE") {
        (
            "holds a certificate, not a private key",
            "are `certificate` and `key` swapped?".to_owned(),
        )
    } else if malformed {
        (
            "is not valid PEM",
            "a PEM key starts with `-----BEGIN PRIVATE KEY-----`".to_owned(),
        )
    } else {
        (
            "holds no PEM private key",
            "a PEM key starts with `-----BEGIN PRIVATE KEY-----`".to_owned(),
        )
    };
    Err(Diagnostic::error(
        Code::File,
        format!("the key file `{}` {why}", written(cx, file)),
        Label::new(file.span, "no usable key in this file"),
    )
    .with_help(help))
}

/// The PEM sections of a file, and whether a malformed one stopped the reading.
fn pem_items(bytes: &[u8]) -> (Vec<rustls_pemfile::Item>, bool) {
    let mut items = Vec::new();
    let mut reader = bytes;
    for item in rustls_pemfile::read_all(&mut reader) {
        match item {
            Ok(item) => items.push(item),
            Err(_) => return (items, true),
        }
    }
    (items, false)
}

fn is_key(item: &rustls_pemfile::Item) -> bool {
    matches!(
        item,
        rustls_pemfile::Item::Pkcs1Key(_)
            | rustls_pemfile::Item::Pkcs8Key(_)
            | rustls_pemfile::Item::Sec1Key(_)
    )
}

/// An expired, not yet valid, or soon expiring certificate of the chain.
fn validity(
    cx: &Context<'_>,
    file: &Spanned<std::path::PathBuf>,
    cert: &X509Certificate<'_>,
    index: usize,
    now: i64,
) -> Option<Diagnostic> {
    let validity = cert.validity();
    let which = if index == 0 {
        format!("the certificate in `{}`", written(cx, file))
    } else {
        format!(
            "certificate {} of the chain in `{}` ({})",
            index + 1,
            written(cx, file),
            cert.subject()
        )
    };
    let not_after = validity.not_after.timestamp();
    let not_before = validity.not_before.timestamp();
    let diagnostic = if not_after < now {
        Diagnostic::error(
            Code::File,
            format!(
                "{which} expired on {}: clients will refuse it",
                validity.not_after
            ),
            Label::new(file.span, "expired"),
        )
        .with_help("renew the certificate and replace the file")
    } else if not_before > now {
        Diagnostic::error(
            Code::File,
            format!(
                "{which} is not valid before {}: clients will refuse it until then",
                validity.not_before
            ),
            Label::new(file.span, "not valid yet"),
        )
        .with_help("keep the current certificate until then, or check the machine's clock")
    } else if not_after - now < EXPIRY_WARNING {
        Diagnostic::warning(
            Code::File,
            format!(
                "{which} expires on {}, in {} days",
                validity.not_after,
                (not_after - now) / 86_400
            ),
            Label::new(file.span, "expires soon"),
        )
        .with_help("renew the certificate before it expires")
    } else {
        return None;
    };
    Some(diagnostic)
}

/// The warning for a certificate that does not name the gateway's host name.
fn hostname(
    cx: &Context<'_>,
    file: &Spanned<std::path::PathBuf>,
    cert: &X509Certificate<'_>,
) -> Option<Diagnostic> {
    let host = cx.config.gateway.as_ref()?.hostname.as_ref()?;
    let mut names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(name) => Some((*name).to_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
            .collect();
    }
    if names.iter().any(|name| name_matches(name, &host.value)) {
        return None;
    }
    let listed = if names.is_empty() {
        "no host name at all".to_owned()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(
        Diagnostic::warning(
            Code::File,
            format!(
                "the certificate in `{}` is for {listed}, not for the gateway's host name `{}`: clients that check \
                 the name will refuse it",
                written(cx, file),
                host.value
            ),
            Label::new(file.span, "does not cover the host name"),
        )
        .with_label(Label::new(host.span, "the gateway's host name"))
        .with_help(format!(
            "get a certificate whose subject alternative names include `{}`",
            host.value
        )),
    )
}

/// Matches a certificate name against a host name: case-insensitive, and a
/// leading `*.` stands for exactly one label.
fn name_matches(name: &str, host: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match name.strip_prefix("*.") {
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => name == host,
    }
}

/// A private key's DER, by format.
enum Key {
    /// PKCS#1 `RSAPrivateKey`.
    Pkcs1(Vec<u8>),
    /// SEC1 `ECPrivateKey`.
    Sec1(Vec<u8>),
    /// PKCS#8 `PrivateKeyInfo`.
    Pkcs8(Vec<u8>),
}

/// What can be learnt about a key's public half without cryptography.
enum PublicHalf<'a> {
    /// RSA modulus and public exponent.
    Rsa(&'a [u8], &'a [u8]),
    /// An EC key, with its public point when the file carries it.
    Ec(Option<&'a [u8]>),
    /// Another algorithm, by OID.
    Other(Oid<'a>),
}

/// Why the key does not belong to the certificate (`""` when only the key
/// material differs), or `None` when it does or it cannot be told.
fn key_mismatch(cert: &X509Certificate<'_>, key: &Key) -> Option<String> {
    let der = match key {
        Key::Pkcs1(d) | Key::Sec1(d) | Key::Pkcs8(d) => d.as_slice(),
    };
    let (_, object) = parse_der(der).ok()?;
    let half = match key {
        Key::Pkcs1(_) => rsa_half(&object)?,
        Key::Sec1(_) => PublicHalf::Ec(ec_point(&object)),
        Key::Pkcs8(_) => {
            let fields = object.as_sequence().ok()?;
            let oid = fields
                .get(1)?
                .as_sequence()
                .ok()?
                .first()?
                .as_oid()
                .ok()?
                .clone();
            let inner = fields.get(2)?.as_slice().ok()?;
            if oid == OID_PKCS1_RSAENCRYPTION {
                rsa_half(&parse_der(inner).ok()?.1)?
            } else if oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
                PublicHalf::Ec(parse_der(inner).ok().and_then(|(_, o)| ec_point(&o)))
            } else {
                PublicHalf::Other(oid)
            }
        }
    };
    let spki = cert.public_key();
    let cert_kind = key_kind(&spki.algorithm.algorithm);
    let key_oid = match &half {
        PublicHalf::Rsa(..) => OID_PKCS1_RSAENCRYPTION,
        PublicHalf::Ec(_) => OID_KEY_TYPE_EC_PUBLIC_KEY,
        PublicHalf::Other(oid) => oid.clone(),
    };
    if key_oid != spki.algorithm.algorithm {
        return Some(format!(
            " (the key is {}, the certificate's is {cert_kind})",
            key_kind(&key_oid)
        ));
    }
    let same = match (&half, spki.parsed().ok()?) {
        (PublicHalf::Rsa(modulus, exponent), PublicKey::RSA(rsa)) => {
            unsigned(modulus) == unsigned(rsa.modulus)
                && unsigned(exponent) == unsigned(rsa.exponent)
        }
        (PublicHalf::Ec(Some(point)), PublicKey::EC(_)) => {
            *point == spki.subject_public_key.data.as_ref()
        }
        _ => true,
    };
    (!same).then(String::new)
}

/// Modulus and exponent of an `RSAPrivateKey`.
fn rsa_half<'a>(object: &BerObject<'a>) -> Option<PublicHalf<'a>> {
    let fields = object.as_sequence().ok()?;
    Some(PublicHalf::Rsa(
        fields.get(1)?.as_slice().ok()?,
        fields.get(2)?.as_slice().ok()?,
    ))
}

/// The public point of an `ECPrivateKey`: the `[1]` field, when present.
fn ec_point<'a>(object: &BerObject<'a>) -> Option<&'a [u8]> {
    let fields = object.as_sequence().ok()?;
    let tagged = fields
        .iter()
        .find(|f| f.class() == Class::ContextSpecific && f.tag().0 == 1)?;
    match &tagged.content {
        BerObjectContent::Tagged(_, _, inner) => inner.as_slice().ok(),
        BerObjectContent::Unknown(any) => {
            let (_, inner) = parse_der(any.data).ok()?;
            inner.as_slice().ok()
        }
        _ => None,
    }
}

/// An integer's bytes without leading zeros.
fn unsigned(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    &bytes[zeros..]
}

/// A key algorithm's name for people.
fn key_kind(oid: &Oid<'_>) -> String {
    if *oid == OID_PKCS1_RSAENCRYPTION {
        "an RSA key".to_owned()
    } else if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        "an EC key".to_owned()
    } else if *oid == OID_SIG_ED25519 {
        "an Ed25519 key".to_owned()
    } else if *oid == OID_SIG_ED448 {
        "an Ed448 key".to_owned()
    } else {
        format!("a key of type {oid}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Names;
    use crate::diagnostic::{Diagnostics, Severity};
    use crate::source::SourceDb;

    const DIR: &str = "tests/cases/fixtures";

    fn profile(cert: &str, key: &str) -> String {
        format!(
            "gateway {{ hostname \"mail.example.com\" }}\n\
             tls \"public\" {{ certificate \"{DIR}/{cert}\"; key \"{DIR}/{key}\" }}\n"
        )
    }

    /// The `mailgw::file` findings for `text` at the time `now`, with the
    /// text under each primary label.
    fn file_findings(text: &str, now: i64) -> Vec<(Diagnostic, String)> {
        let mut db = SourceDb::new();
        let mut read = Diagnostics::new();
        let config = crate::reader::read_text(
            &mut db,
            &mut read,
            Path::new("test.mailgw"),
            text.to_owned(),
        );
        assert!(!read.has_errors(), "{:?}", read.iter().collect::<Vec<_>>());
        let mut cx = Context {
            db: &db,
            config: &config,
            names: Names::new(&db, &config),
            diagnostics: Diagnostics::new(),
        };
        check_at(&mut cx, now);
        cx.diagnostics
            .into_iter()
            .map(|d| {
                let at = db.slice(d.primary.span).to_owned();
                (d, at)
            })
            .collect()
    }

    /// 2030-01-01: inside the 100-year fixtures, after the expired one.
    const NOW: i64 = 1_893_456_000;

    #[test]
    fn good_profiles_have_no_findings() {
        for (cert, key) in [
            ("mail.example.com.pem", "mail.example.com.key"),
            ("mail.example.com.pem", "mail.example.com.rsa.key"),
            ("wildcard-ec.pem", "wildcard-ec.key"),
            ("wildcard-ec.pem", "wildcard-ec.p8.key"),
            ("cn-only.pem", "cn-only.key"),
        ] {
            let found = file_findings(&profile(cert, key), NOW);
            assert!(found.is_empty(), "{cert} {key}: {found:?}");
        }
    }

    #[test]
    fn missing_files() {
        let found = file_findings(&profile("nope.pem", "nope.key"), NOW);
        let at: Vec<&str> = found.iter().map(|(_, at)| at.as_str()).collect();
        assert_eq!(
            at,
            [format!("\"{DIR}/nope.pem\""), format!("\"{DIR}/nope.key\"")]
        );
        assert!(found
            .iter()
            .all(|(d, _)| d.severity == Severity::Error && d.message.contains("does not exist")));
    }

    #[test]
    fn connector_ca_files_are_checked() {
        let text = format!(
            "connector \"isp\" {{ address-space \"*\" cost 1; \
             deliver smarthost relay.example:587 tls require ca \"{DIR}/nope-ca.pem\" }}\n\
             connector \"ok\" {{ address-space \"*\" cost 2; \
             deliver smarthost relay2.example:587 tls require ca \"{DIR}/mail.example.com.pem\" }}\n\
             connector \"junk\" {{ address-space \"*\" cost 3; \
             deliver smarthost relay3.example:587 tls require ca \"{DIR}/garbage.pem\" }}\n"
        );
        let found = file_findings(&text, NOW);
        let at: Vec<&str> = found.iter().map(|(_, at)| at.as_str()).collect();
        assert_eq!(
            at,
            [
                format!("\"{DIR}/nope-ca.pem\""),
                format!("\"{DIR}/garbage.pem\"")
            ]
        );
        assert!(
            found[0].0.message.contains("does not exist"),
            "{}",
            found[0].0.message
        );
        assert!(
            found[1].0.message.contains("no PEM certificate"),
            "{}",
            found[1].0.message
        );
    }

    #[test]
    fn garbage_and_swapped_files() {
        let found = file_findings(&profile("garbage.pem", "garbage.pem"), NOW);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].0.message.contains("no PEM certificate"),
            "{}",
            found[0].0.message
        );
        assert!(
            found[1].0.message.contains("no PEM private key"),
            "{}",
            found[1].0.message
        );
        let found = file_findings(
            &profile("mail.example.com.key", "mail.example.com.pem"),
            NOW,
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found
            .iter()
            .all(|(d, _)| d.help.as_deref().is_some_and(|h| h.contains("swapped"))));
    }

    #[test]
    fn key_that_does_not_match() {
        let found = file_findings(&profile("mail.example.com.pem", "wrong.key"), NOW);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].1, format!("\"{DIR}/wrong.key\""));
        assert_eq!(found[0].0.secondary.len(), 1);
        let found = file_findings(&profile("mail.example.com.pem", "wildcard-ec.key"), NOW);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0]
            .0
            .message
            .contains("the key is an EC key, the certificate's is an RSA key"));
        let found = file_findings(&profile("wildcard-ec.pem", "mail.example.com.key"), NOW);
        assert_eq!(found.len(), 1, "{found:?}");
        let found = file_findings(&profile("wildcard-ec.pem", "wrong-ec.key"), NOW);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].0.message.contains("does not belong"));
    }

    #[test]
    fn expired_and_expiring() {
        let found = file_findings(&profile("expired.pem", "expired.key"), NOW);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0.severity, Severity::Error);
        assert!(found[0].0.message.contains("expired"));
        assert_eq!(found[0].1, format!("\"{DIR}/expired.pem\""));
        // Before its validity: 1999.
        let found = file_findings(&profile("expired.pem", "expired.key"), 915_148_800);
        assert!(found[0].0.message.contains("not valid before"), "{found:?}");
    }

    #[test]
    fn expiring_within_30_days_is_a_warning() {
        let mut db = SourceDb::new();
        let mut read = Diagnostics::new();
        let text = profile("mail.example.com.pem", "mail.example.com.key");
        let config = crate::reader::read_text(&mut db, &mut read, Path::new("test.mailgw"), text);
        let path = config
            .tls
            .first()
            .and_then(|t| t.certificate.as_ref())
            .expect("a certificate");
        let bytes = std::fs::read(&path.value).expect("the fixture");
        let (items, _) = pem_items(&bytes);
        let Some(rustls_pemfile::Item::X509Certificate(der)) = items.first() else {
            panic!("no certificate in the fixture");
        };
        let (_, cert) = X509Certificate::from_der(der).expect("a certificate");
        let end = cert.validity().not_after.timestamp();
        let found = file_findings(
            &profile("mail.example.com.pem", "mail.example.com.key"),
            end - 10 * 86_400,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0.severity, Severity::Warning);
        assert!(
            found[0].0.message.contains("in 10 days"),
            "{}",
            found[0].0.message
        );
        assert!(file_findings(
            &profile("mail.example.com.pem", "mail.example.com.key"),
            end - 31 * 86_400
        )
        .is_empty());
    }

    #[test]
    fn certificate_for_another_host() {
        let found = file_findings(&profile("other-host.pem", "other-host.key"), NOW);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0.severity, Severity::Warning);
        assert!(found[0].0.message.contains("`other.example.net`"));
        assert_eq!(found[0].1, format!("\"{DIR}/other-host.pem\""));
        let host = found[0].0.secondary.first().expect("the host name label");
        assert_eq!(host.text, "the gateway's host name");
    }

    #[test]
    fn host_name_matching() {
        assert!(name_matches("*.example.com", "mail.example.com"));
        assert!(name_matches("MAIL.example.com.", "mail.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.mail.example.com"));
    }

    #[test]
    fn credentials_and_ca_files() {
        let text = format!(
            "backend \"b\" {{ host \"10.0.0.1\"; lmtp 24; ca \"{DIR}/garbage.pem\" }}\n\
             connector \"out\" {{ address-space \"*\" cost 1; deliver smarthost relay.example:587 credentials \"{DIR}/isp.toml\" }}"
        );
        let found = file_findings(&text, NOW);
        let at: Vec<&str> = found.iter().map(|(_, at)| at.as_str()).collect();
        assert_eq!(
            at,
            [
                format!("\"{DIR}/isp.toml\""),
                format!("\"{DIR}/garbage.pem\"")
            ]
        );
        let text = format!(
            "backend \"b\" {{ host \"10.0.0.1\"; lmtp 24; ca \"{DIR}/mail.example.com.pem\" }}\n\
             connector \"out\" {{ address-space \"*\" cost 1; deliver smarthost relay.example:587 credentials \"{DIR}/gen-certs.sh\" }}"
        );
        assert!(file_findings(&text, NOW).is_empty());
    }
}
