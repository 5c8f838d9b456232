//! Password hashes as a directory stores them: argon2 PHC strings,
//! SHA-crypt and bcrypt, bare or with Dovecot's `{SCHEME}` prefix.
//!
//! Every check here is CPU-heavy on purpose; callers run it on a blocking
//! thread.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;

/// An argon2id hash (m=19456, t=2, p=1, the quickstart's parameters) of a
/// random string nobody knows: what a login that cannot succeed is checked
/// against when the directory holds no hash to stand in (see [`spend`]).
pub(crate) const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$bWFpbGd3LWR1bW15LXNhbHQ$Bq2Uo0jK8vJd0wX8m1xkQm6s7K2m5V0n3bX8yQ1o2pU";

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// The password matches.
    Match,
    /// The password does not match.
    Mismatch,
    /// The hash is in no scheme this runtime knows, or is malformed.
    Unsupported,
}

/// The schemes, by the prefix of the hash itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Argon2,
    Sha512Crypt,
    Sha256Crypt,
    Bcrypt,
}

/// Checks `password` against `stored`, which may carry a Dovecot scheme
/// prefix (`{SHA512-CRYPT}$6$...`); the prefix must agree with the hash.
pub(crate) fn check(stored: &str, password: &str) -> Check {
    let Some((scheme, hash)) = parse(stored) else {
        return Check::Unsupported;
    };
    match scheme {
        Scheme::Argon2 => check_argon2(hash, password),
        Scheme::Sha512Crypt => sha_crypt_outcome(sha_crypt::sha512_check(password, hash)),
        Scheme::Sha256Crypt => sha_crypt_outcome(sha_crypt::sha256_check(password, hash)),
        Scheme::Bcrypt => match bcrypt::verify(password, hash) {
            Ok(true) => Check::Match,
            Ok(false) => Check::Mismatch,
            Err(_) => Check::Unsupported,
        },
    }
}

/// Whether `stored` is a hash in a scheme [`check`] knows (a check of it
/// costs what the scheme costs).
pub(crate) fn is_supported(stored: &str) -> bool {
    parse(stored).is_some()
}

/// The scheme and the hash itself, without a prefix that agrees with it.
fn parse(stored: &str) -> Option<(Scheme, &str)> {
    let (declared, hash) = split_prefix(stored)?;
    let scheme = scheme_of(hash)?;
    match declared {
        Some(declared) if !declared_matches(declared, scheme) => None,
        _ => Some((scheme, hash)),
    }
}

/// Spends the time of a real check, for a login that cannot succeed
/// (unknown user, no hash, unknown scheme): against `decoy`, a real user's
/// stored hash, so that it costs what that user's login costs whatever
/// schemes the directory uses; against [`DUMMY_HASH`] when there is none.
pub(crate) fn spend(decoy: Option<&str>, password: &str) {
    // The outcome is irrelevant: a match would still be answered with a
    // rejection.
    match decoy {
        Some(stored) => {
            let _ = check(stored, password);
        }
        None => {
            let _ = check_argon2(DUMMY_HASH, password);
        }
    }
}

/// Splits `{SCHEME}hash` into the scheme and the hash; a hash without a
/// prefix has no declared scheme. `None` for an unterminated prefix.
fn split_prefix(stored: &str) -> Option<(Option<&str>, &str)> {
    match stored.strip_prefix('{') {
        Some(rest) => {
            let (scheme, hash) = rest.split_once('}')?;
            Some((Some(scheme), hash))
        }
        None => Some((None, stored)),
    }
}

fn scheme_of(hash: &str) -> Option<Scheme> {
    if hash.starts_with("$argon2id$") || hash.starts_with("$argon2i$") {
        Some(Scheme::Argon2)
    } else if hash.starts_with("$6$") {
        Some(Scheme::Sha512Crypt)
    } else if hash.starts_with("$5$") {
        Some(Scheme::Sha256Crypt)
    } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
        Some(Scheme::Bcrypt)
    } else {
        None
    }
}

/// Whether Dovecot's scheme name `declared` (case-insensitive) names the
/// scheme the hash is in.
fn declared_matches(declared: &str, scheme: Scheme) -> bool {
    let declared = declared.to_ascii_uppercase();
    match scheme {
        Scheme::Argon2 => declared == "ARGON2ID" || declared == "ARGON2I",
        Scheme::Sha512Crypt => declared == "SHA512-CRYPT",
        Scheme::Sha256Crypt => declared == "SHA256-CRYPT",
        Scheme::Bcrypt => declared == "BLF-CRYPT",
    }
}

/// sha-crypt does not export its error type, so a mismatch is told from a
/// malformed hash by the variant's name.
fn sha_crypt_outcome<E: std::fmt::Debug>(result: Result<(), E>) -> Check {
    match result {
        Ok(()) => Check::Match,
        Err(e) if format!("{e:?}") == "HashMismatch" => Check::Mismatch,
        Err(_) => Check::Unsupported,
    }
}

fn check_argon2(hash: &str, password: &str) -> Check {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return Check::Unsupported;
    };
    // The algorithm, version and cost come from the hash itself.
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Check::Match,
        Err(argon2::password_hash::Error::Password) => Check::Mismatch,
        Err(_) => Check::Unsupported,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_hash_parses_and_costs_a_real_check() {
        assert_eq!(check(DUMMY_HASH, "guess"), Check::Mismatch);
    }

    #[test]
    fn prefix_must_agree_with_the_hash() {
        assert_eq!(check("{SHA512-CRYPT}$2y$10$abc", "x"), Check::Unsupported);
        assert_eq!(check("{SHA512-CRYPT", "x"), Check::Unsupported);
        assert_eq!(check("{PLAIN}secret", "secret"), Check::Unsupported);
        assert_eq!(check("$1$md5$crypt", "x"), Check::Unsupported);
        assert_eq!(check("", ""), Check::Unsupported);
    }
}
