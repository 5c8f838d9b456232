//! Directory verification: every hash scheme, logins by name and address,
//! unknown users costing a real check, and the per-client failure count.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use mailgw_plan::{Mailbox, Plan, RecipientTable, SourceRef, Target, Verify};
use mailgw_runtime::auth::{Authenticator, Verdict};

/// The quickstart's real hashes (examples/quickstart-users.toml).
const ALICE: &str = "$argon2id$v=19$m=19456,t=2,p=1$DshDapmGkom4PZypVFKHwA$zL6QngefvlHEK3PQA10TGsTzIxPG0Bi4LU4yy3OwPcw";
const BOB: &str = "$argon2id$v=19$m=19456,t=2,p=1$Y7YThiElWz8H30YWMcwkYQ$5d7C7mdJNF2wkttQJtz/0s7EemmatAlADBuZPWWeADI";
const POSTMASTER: &str = "$argon2id$v=19$m=19456,t=2,p=1$oYtJ33fydGj6onblWodSZQ$954/64ym+Hbde60yLtP+M13lIHtrNGMlI9H3rRFT9Ww";

fn client() -> IpAddr {
    IpAddr::from([192, 0, 2, 7])
}

/// A plan whose mailboxes are `(name, address, hash)`, verified against
/// the directory; the group `team@example.test` holds nobody.
fn plan(mailboxes: &[(&str, &str, Option<String>)]) -> Arc<Plan> {
    let mut plan = Plan::empty("mx.example.test");
    plan.auth.verify = Verify::Directory;
    let mut entries = Vec::new();
    for (index, (name, address, hash)) in mailboxes.iter().enumerate() {
        plan.mailboxes.push(Mailbox {
            name,
            backend: 0,
            password_hash: hash.as_deref(),
            source: SourceRef::new(0, 1),
        });
        entries.push(((*address).to_owned(), Target::Mailbox(index as u32)));
    }
    entries.push(("team@example.test".to_owned(), Target::Group(0)));
    plan.recipients = RecipientTable::build(entries).expect("distinct addresses");
    Arc::new(plan)
}

/// Asserts that `hash` accepts `password` and rejects a wrong one.
async fn check_scheme(hash: String, password: &str) {
    let auth = Authenticator::new(plan(&[("user", "user@example.test", Some(hash.clone()))]));
    assert_eq!(
        auth.verify("user", password, client()).await,
        Verdict::Accepted { mailbox: 0 },
        "{hash}"
    );
    assert_eq!(
        auth.verify("user", "wrong", client()).await,
        Verdict::Rejected,
        "{hash}"
    );
}

fn argon2_hash(algorithm: Algorithm, password: &str) -> String {
    let params = Params::new(1024, 1, 1, None).expect("params");
    let salt = SaltString::encode_b64(b"mailgw-test-salt").expect("salt");
    Argon2::new(algorithm, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .expect("hash")
        .to_string()
}

#[tokio::test]
async fn quickstart_argon2id_hashes() {
    let auth = Authenticator::new(plan(&[
        ("alice", "alice@example.test", Some(ALICE.into())),
        ("bob", "bob@example.test", Some(BOB.into())),
        (
            "postmaster",
            "postmaster@example.test",
            Some(POSTMASTER.into()),
        ),
    ]));
    let c = client();
    assert_eq!(
        auth.verify("alice", "alice-demo", c).await,
        Verdict::Accepted { mailbox: 0 }
    );
    assert_eq!(
        auth.verify("bob", "bob-demo", c).await,
        Verdict::Accepted { mailbox: 1 }
    );
    assert_eq!(
        auth.verify("postmaster", "postmaster-demo", c).await,
        Verdict::Accepted { mailbox: 2 }
    );
    assert_eq!(auth.verify("alice", "bob-demo", c).await, Verdict::Rejected);
    assert_eq!(
        auth.verify("alice", "Alice-demo", c).await,
        Verdict::Rejected
    );
}

#[tokio::test]
async fn argon2_schemes() {
    let pw = "s3cret pässword";
    check_scheme(argon2_hash(Algorithm::Argon2id, pw), pw).await;
    check_scheme(argon2_hash(Algorithm::Argon2i, pw), pw).await;
    check_scheme(
        format!("{{ARGON2ID}}{}", argon2_hash(Algorithm::Argon2id, pw)),
        pw,
    )
    .await;
    check_scheme(
        format!("{{ARGON2I}}{}", argon2_hash(Algorithm::Argon2i, pw)),
        pw,
    )
    .await;
}

#[tokio::test]
async fn sha_crypt_schemes() {
    let pw = "s3cret pässword";
    let default = sha_crypt::Sha512Params::new(sha_crypt::ROUNDS_DEFAULT).expect("params");
    let rounds = sha_crypt::Sha512Params::new(10_000).expect("params");
    let sha512 = sha_crypt::sha512_simple(pw, &default).expect("hash");
    let sha512_rounds = sha_crypt::sha512_simple(pw, &rounds).expect("hash");
    assert!(sha512.starts_with("$6$") && sha512_rounds.starts_with("$6$rounds=10000$"));
    check_scheme(sha512.clone(), pw).await;
    check_scheme(format!("{{SHA512-CRYPT}}{sha512}"), pw).await;
    check_scheme(format!("{{SHA512-CRYPT}}{sha512_rounds}"), pw).await;

    let params = sha_crypt::Sha256Params::new(sha_crypt::ROUNDS_DEFAULT).expect("params");
    let sha256 = sha_crypt::sha256_simple(pw, &params).expect("hash");
    assert!(sha256.starts_with("$5$"));
    check_scheme(sha256.clone(), pw).await;
    check_scheme(format!("{{SHA256-CRYPT}}{sha256}"), pw).await;
}

#[tokio::test]
async fn bcrypt_schemes() {
    let pw = "s3cret pässword";
    let hashed = bcrypt::hash_with_result(pw, 4).expect("hash");
    let y = hashed.format_for_version(bcrypt::Version::TwoY);
    let b = hashed.format_for_version(bcrypt::Version::TwoB);
    let a = hashed.format_for_version(bcrypt::Version::TwoA);
    assert!(y.starts_with("$2y$") && b.starts_with("$2b$") && a.starts_with("$2a$"));
    check_scheme(format!("{{BLF-CRYPT}}{y}"), pw).await;
    check_scheme(y, pw).await;
    check_scheme(b, pw).await;
    check_scheme(a, pw).await;
}

#[tokio::test]
async fn unknown_users_schemes_and_missing_hashes_are_rejected() {
    let auth = Authenticator::new(plan(&[
        ("alice", "alice@example.test", Some(ALICE.into())),
        ("nohash", "nohash@example.test", None),
        ("plain", "plain@example.test", Some("{PLAIN}secret".into())),
        ("md5", "md5@example.test", Some("$1$salt$hash".into())),
        (
            "mismatch",
            "mismatch@example.test",
            Some(format!("{{BLF-CRYPT}}{ALICE}")),
        ),
    ]));
    let c = client();
    assert_eq!(
        auth.verify("nobody", "alice-demo", c).await,
        Verdict::Rejected
    );
    assert_eq!(auth.verify("", "", c).await, Verdict::Rejected);
    assert_eq!(auth.verify("nohash", "", c).await, Verdict::Rejected);
    assert_eq!(auth.verify("plain", "secret", c).await, Verdict::Rejected);
    assert_eq!(auth.verify("md5", "x", c).await, Verdict::Rejected);
    assert_eq!(
        auth.verify("mismatch", "alice-demo", c).await,
        Verdict::Rejected
    );
    // A group's address is no login.
    assert_eq!(
        auth.verify("team@example.test", "alice-demo", c).await,
        Verdict::Rejected
    );
}

#[tokio::test]
async fn login_by_address() {
    let auth = Authenticator::new(plan(&[
        ("bob", "bob@example.test", Some(BOB.into())),
        ("alice", "a.smith@example.test", Some(ALICE.into())),
    ]));
    let c = client();
    assert_eq!(
        auth.verify("a.smith@example.test", "alice-demo", c).await,
        Verdict::Accepted { mailbox: 1 }
    );
    // Domains are compared without case, as the recipient table keys them.
    assert_eq!(
        auth.verify("a.smith@EXAMPLE.test", "alice-demo", c).await,
        Verdict::Accepted { mailbox: 1 }
    );
    assert_eq!(
        auth.verify("a.smith@example.test", "bob-demo", c).await,
        Verdict::Rejected
    );
    assert_eq!(
        auth.verify("nobody@example.test", "bob-demo", c).await,
        Verdict::Rejected
    );
}

/// Unknown users, missing hashes and unknown schemes cost about one argon2
/// check, like a wrong password for a real user. An early return would be
/// thousands of times faster; the bound is generous (a quarter of the real
/// check) because the machine is shared: each user's fastest of a few runs,
/// measured in turn with the real user's so load hits both alike.
#[tokio::test]
async fn unknown_users_take_as_long_as_real_ones() {
    let auth = Authenticator::new(plan(&[
        ("alice", "alice@example.test", Some(ALICE.into())),
        ("nohash", "nohash@example.test", None),
        ("plain", "plain@example.test", Some("{PLAIN}x".into())),
    ]));
    async fn time(auth: &Authenticator, user: &str) -> Duration {
        let start = Instant::now();
        assert_eq!(
            auth.verify(user, "guess", client()).await,
            Verdict::Rejected
        );
        start.elapsed()
    }
    for user in ["nobody", "nohash", "plain", "nobody@example.test"] {
        let (mut real, mut fastest) = (Duration::MAX, Duration::MAX);
        for _ in 0..3 {
            real = real.min(time(&auth, "alice").await);
            fastest = fastest.min(time(&auth, user).await);
        }
        assert!(
            fastest * 4 >= real,
            "{user}: {fastest:?} against {real:?} for a real user"
        );
    }
}

#[tokio::test]
async fn failures_are_counted_per_client_and_cleared_by_success() {
    let auth = Authenticator::new(plan(&[("bob", "bob@example.test", Some(BOB.into()))]));
    let (a, b) = (client(), IpAddr::from([198, 51, 100, 1]));
    assert_eq!(auth.failures(a), 0);
    assert_eq!(auth.verify("bob", "x", a).await, Verdict::Rejected);
    assert_eq!(auth.verify("nobody", "x", a).await, Verdict::Rejected);
    assert_eq!(auth.verify("bob", "x", b).await, Verdict::Rejected);
    assert_eq!(auth.failures(a), 2);
    assert_eq!(auth.failures(b), 1);
    assert_eq!(
        auth.verify("bob", "bob-demo", a).await,
        Verdict::Accepted { mailbox: 0 }
    );
    assert_eq!(auth.failures(a), 0);
    assert_eq!(auth.failures(b), 1);
}
