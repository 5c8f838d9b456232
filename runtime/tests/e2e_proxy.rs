//! End to end: the real `mailgw` binary as the IMAP and POP3 front end of
//! two real Dovecot backends (mbx1, mbx2), each with its own users and
//! mail, reached by Python's imaplib and poplib. Skipped with a message
//! when Dovecot cannot run here (`scripts/test` installs it).

mod dovecot;
#[path = "e2e/harness.rs"]
mod harness;
mod ports;

use std::process::Command;

use dovecot::{test_pki, Dovecot};
use harness::{manifest_dir, Gateway};
use ports::free_port;

/// Passwords: bob's needs literals (quote, backslash, space, non-ASCII).
const ALICE: &str = "alice-pw";
const BOB: &str = "b\"o b\\p ü";
const MOVED: &str = "moved-pw";

/// Two backends, the gateway in front of them, and its ports.
struct Fixture {
    mbx1: Dovecot,
    mbx2: Option<Dovecot>,
    gw: Gateway,
    imap: u16,
    imaps: u16,
    pop3: u16,
    pop3s: u16,
    mbx2_ports: (u16, u16),
}

fn hash(password: &str) -> String {
    let params = sha_crypt::Sha512Params::new(5000).expect("params");
    format!(
        "{{SHA512-CRYPT}}{}",
        sha_crypt::sha512_simple(password, &params).expect("hash")
    )
}

/// The directory file: alice and `moved` on `alice_on`, bob on mbx2.
fn directory(alice_on: &str) -> String {
    format!(
        "[[mailbox]]\nname = \"alice\"\nbackend = \"{alice_on}\"\naddresses = [\"alice@example.test\"]\npassword = \"{}\"\n\n\
         [[mailbox]]\nname = \"bob\"\nbackend = \"mbx2\"\naddresses = [\"bob@example.test\"]\npassword = \"{}\"\n\n\
         [[mailbox]]\nname = \"moved\"\nbackend = \"mbx1\"\naddresses = [\"moved@example.test\"]\npassword = \"{moved}\"\n\n\
         [[mailbox]]\nname = \"astray\"\nbackend = \"mbx1\"\naddresses = [\"astray@example.test\"]\npassword = \"{moved}\"\n",
        hash(ALICE),
        hash(BOB),
        moved = hash(MOVED)
    )
}

impl Fixture {
    fn start(verify: &str) -> Option<Fixture> {
        Fixture::start_with(verify, false, "")
    }

    /// With `backend_tls`, mbx1 is reached over STARTTLS (IMAP) and
    /// implicit TLS (POP3), its certificate checked against a CA file, and
    /// mbx2, which has no TLS, is declared with STARTTLS.
    /// `imap_limits` goes into the `imap` listener.
    fn start_with(verify: &str, backend_tls: bool, imap_limits: &str) -> Option<Fixture> {
        let pki = backend_tls.then(test_pki);
        let mbx2 = Dovecot::builder()
            .user("alice", ALICE)
            .user("bob", BOB)
            .user("moved", MOVED)
            .start()?;
        let referral = format!("nologin=y host=127.0.0.1 port={}", mbx2.port);
        let mut mbx1 = Dovecot::builder()
            .user("alice", ALICE)
            .user_fields("moved", MOVED, &referral)
            .user_fields("astray", MOVED, "nologin=y host=127.0.0.1 port=1");
        if let Some((_, cert, key)) = &pki {
            mbx1 = mbx1.tls(cert, key);
        }
        let mbx1 = mbx1.start()?;
        let (mbx1_imap, mbx1_pop3, mbx2_imap) = match &pki {
            Some(_) => (
                format!("{} tls starttls", mbx1.port),
                format!("{} tls implicit", mbx1.pop3s),
                format!("{} tls starttls", mbx2.port),
            ),
            None => (
                format!("{} tls none", mbx1.port),
                mbx1.pop3.to_string(),
                mbx2.port.to_string(),
            ),
        };
        mbx1.seed("alice", "alice on mbx1");
        mbx2.seed("alice", "alice on mbx2");
        mbx2.seed("bob", "bob on mbx2");
        mbx2.seed("moved", "moved on mbx2");
        let (imap, imaps, pop3, pop3s) = (free_port(), free_port(), free_port(), free_port());
        let config = format!(
            r#"
gateway {{ hostname "mail.example.test" }}
tls "local" {{ self-signed }}
listener "imap"  {{ protocol imap; bind 127.0.0.1:{imap};  tls starttls require "local"; {imap_limits} }}
listener "imaps" {{ protocol imap; bind 127.0.0.1:{imaps}; tls implicit "local" }}
listener "pop3"  {{ protocol pop3; bind 127.0.0.1:{pop3};  tls starttls require "local" }}
listener "pop3s" {{ protocol pop3; bind 127.0.0.1:{pop3s}; tls implicit "local" }}
backend "mbx1" {{
    host "127.0.0.1"
    imap {mbx1_imap}
    pop3 {mbx1_pop3}
    lmtp {}
    forward-client on
    {ca}
}}
backend "mbx2" {{
    host "127.0.0.1"
    imap {mbx2_imap}
    pop3 {}
    lmtp {}
}}
domain "example.test" local
directory "users.toml"
auth {{ verify {verify}; failure-delay 500ms; max-failures 5 }}
queue {{ spool "spool" }}
log {{ level info }}
"#,
            mbx1.lmtp,
            mbx2.pop3,
            mbx2.lmtp,
            ca = if pki.is_some() { "ca \"ca.pem\"" } else { "" },
        );
        let ca = pki.as_ref().map_or(String::new(), |p| p.0.clone());
        let users = directory("mbx1");
        let gw = Gateway::start_text(&config, &[("users.toml", &users), ("ca.pem", &ca)], pop3s);
        Some(Fixture {
            mbx2_ports: (mbx2.port, mbx2.pop3),
            mbx1,
            mbx2: Some(mbx2),
            gw,
            imap,
            imaps,
            pop3,
            pop3s,
        })
    }

    /// Runs a scenario of `e2e/mailclient.py`; its output, or a panic with
    /// everything's logs when it fails.
    fn client(&self, args: &[&str], source_ip: Option<&str>) -> String {
        let mut command = Command::new("python3");
        command
            .arg(manifest_dir().join("tests/e2e/mailclient.py"))
            .args(args);
        if let Some(ip) = source_ip {
            command.env("SOURCE_IP", ip);
        }
        let out = command.output().expect("run python3");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "mailclient.py {args:?} failed:\n{stdout}\n{}\n--- gateway ---\n{}\n--- mbx1 ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.gw.log(),
            self.mbx1.log(),
        );
        stdout
    }

    fn port(&self, name: &str) -> String {
        match name {
            "imap" => self.imap,
            "imaps" => self.imaps,
            "pop3" => self.pop3,
            _ => self.pop3s,
        }
        .to_string()
    }
}

/// Runs `scenario` on the listener `listener` as `user`.
fn run(
    f: &Fixture,
    scenario: &str,
    listener: &str,
    user: &str,
    password: &str,
    rest: &[&str],
) -> String {
    run_from(f, None, scenario, listener, user, password, rest)
}

/// [`run`] from the loopback address `source` (each client address has
/// failure counts of its own).
fn run_from(
    f: &Fixture,
    source: Option<&str>,
    scenario: &str,
    listener: &str,
    user: &str,
    password: &str,
    rest: &[&str],
) -> String {
    let tls = if listener.ends_with('s') {
        "implicit"
    } else {
        "starttls"
    };
    let port = f.port(listener);
    let mut args = vec![scenario, &port, tls, user, password];
    args.extend_from_slice(rest);
    f.client(&args, source)
}

#[test]
fn imap_users_find_their_own_mailbox_on_the_right_backend() {
    let Some(f) = Fixture::start("directory") else {
        return;
    };
    // STARTTLS required: no login offered before it.
    let out = run(&f, "imap_login", "imap", "alice", ALICE, &[]);
    assert!(
        out.contains("pre-tls") && out.contains("LOGINDISABLED"),
        "{out}"
    );
    assert!(out.contains("STARTTLS"), "{out}");
    assert!(out.contains("Subject: alice on mbx1"), "{out}");
    assert!(!out.contains("alice on mbx2"), "{out}");
    // Dovecot's post-login capabilities reach the client in the LOGIN's
    // own answer.
    let login = out.lines().find(|l| l.starts_with("login ")).unwrap_or("");
    assert!(
        login.starts_with("login OK [CAPABILITY") && login.contains("IDLE"),
        "{out}"
    );
    // Implicit TLS, AUTHENTICATE PLAIN, a password that needs literals,
    // and the login by address.
    let out = run(
        &f,
        "imap_login",
        "imaps",
        "bob@example.test",
        BOB,
        &["plain"],
    );
    assert!(out.contains("Subject: bob on mbx2"), "{out}");
    let out = run(&f, "imap_login", "imaps", "bob", BOB, &[]);
    assert!(out.contains("Subject: bob on mbx2"), "{out}");
    // Implicit TLS picks the listener's protocol by ALPN.
    assert!(out.contains("alpn imap"), "{out}");
    // Users never see backend names.
    let shown = out.replace("bob on mbx2", "");
    assert!(!shown.contains("mbx"), "{shown}");
    let log = f.gw.log();
    assert!(
        log.contains("backend=mbx1") && log.contains("backend=mbx2"),
        "{log}"
    );
    assert!(
        !log.contains(ALICE) && !log.contains("o b"),
        "a password was logged:\n{log}"
    );
}

#[test]
fn pop3_retr_dele_quit_and_a_drop_without_quit() {
    let Some(f) = Fixture::start("directory") else {
        return;
    };
    let out = run(&f, "pop3_login", "pop3", "alice", ALICE, &[]);
    assert!(
        out.contains("greeting +OK mail.example.test ready."),
        "{out}"
    );
    // Before TLS: STLS offered, no way to send a password.
    let pre_tls: Vec<&str> = out
        .lines()
        .find_map(|l| l.strip_prefix("pre-tls "))
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert!(
        pre_tls.contains(&"STLS") && !pre_tls.contains(&"USER") && !pre_tls.contains(&"SASL"),
        "{out}"
    );
    assert!(
        out.contains("count 1") && out.contains("Subject: alice on mbx1"),
        "{out}"
    );
    // DELE, then the client drops the connection: no QUIT reaches the
    // backend, so nothing is deleted.
    let out = run(&f, "pop3_login", "pop3s", "alice", ALICE, &["dele", "drop"]);
    assert!(out.contains("dropped"), "{out}");
    let out = run(&f, "pop3_login", "pop3s", "alice", ALICE, &["plain"]);
    assert!(
        out.contains("count 1"),
        "the dropped session deleted mail: {out}"
    );
    // DELE and QUIT: deleted.
    run(&f, "pop3_login", "pop3s", "alice", ALICE, &["dele"]);
    let out = run(&f, "pop3_login", "pop3s", "alice", ALICE, &[]);
    assert!(out.contains("count 0"), "{out}");
    let out = run(&f, "pop3_login", "pop3s", "bob", BOB, &[]);
    assert!(out.contains("Subject: bob on mbx2"), "{out}");
    assert!(out.contains("alpn pop3"), "{out}");
}

#[test]
fn wrong_password_and_unknown_user_get_the_same_answer() {
    let Some(f) = Fixture::start("directory") else {
        return;
    };
    // Each from a client of its own: a client's delay grows with its
    // failures.
    let attempt = |source, scenario, listener, user| {
        run_from(&f, Some(source), scenario, listener, user, "not-it", &[])
    };
    let wrong = attempt("127.0.0.2", "imap_wrong", "imaps", "alice");
    let unknown = attempt("127.0.0.3", "imap_wrong", "imaps", "nobody");
    let answer = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("refused"))
            .map(str::to_owned)
    };
    assert_eq!(answer(&wrong), answer(&unknown), "{wrong}\n{unknown}");
    assert!(
        answer(&wrong).is_some_and(|a| a.contains("AUTHENTICATIONFAILED")),
        "{wrong}"
    );
    let seconds = |out: &str| -> f64 {
        out.lines()
            .find_map(|l| l.strip_prefix("seconds "))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0)
    };
    // The same delay: the failure delay, give or take the noise of a
    // loaded machine.
    let same_delay = |wrong: &str, unknown: &str| {
        assert!(
            seconds(wrong) >= 0.45 && seconds(unknown) >= 0.45,
            "{wrong}\n{unknown}"
        );
        assert!(
            (seconds(wrong) - seconds(unknown)).abs() < 0.25,
            "{wrong}\n{unknown}"
        );
    };
    same_delay(&wrong, &unknown);
    let wrong = attempt("127.0.0.4", "pop3_wrong", "pop3s", "alice");
    let unknown = attempt("127.0.0.5", "pop3_wrong", "pop3s", "nobody");
    same_delay(&wrong, &unknown);
    assert_eq!(answer(&wrong), answer(&unknown), "{wrong}\n{unknown}");
    assert!(
        answer(&wrong).is_some_and(|a| a.contains("[AUTH]")),
        "{wrong}"
    );
    // The gateway checked the passwords itself: no wrong one reached a
    // backend.
    assert!(
        !f.mbx1.log().contains("Password mismatch"),
        "{}",
        f.mbx1.log()
    );
    assert!(!f.gw.log().contains("not-it"), "a password was logged");
}

#[test]
fn idle_and_a_ten_megabyte_fetch_pass_through() {
    let Some(f) = Fixture::start("directory") else {
        return;
    };
    let out = run(&f, "imap_idle", "imaps", "alice", ALICE, &[]);
    assert!(out.contains("idle +"), "{out}");
    assert!(out.contains("EXISTS"), "{out}");
    assert!(out.contains("done") && out.contains(" OK"), "{out}");
    let out = run(&f, "imap_big", "imaps", "bob", BOB, &["10"]);
    assert!(out.contains("same True"), "{out}");
    let size: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("size "))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(size > 10_000_000, "{out}");
}

#[test]
fn a_login_referral_to_a_declared_backend_is_followed() {
    let Some(f) = Fixture::start("directory") else {
        return;
    };
    // The directory says mbx1; mbx1 refers the login to mbx2.
    let out = run(&f, "imap_login", "imaps", "moved", MOVED, &[]);
    assert!(out.contains("Subject: moved on mbx2"), "{out}");
    assert!(
        f.gw.log().contains("following a login referral"),
        "{}",
        f.gw.log()
    );
    // A referral to a server the plan does not declare is not followed.
    let out = run(&f, "imap_wrong", "imaps", "astray", MOVED, &[]);
    assert!(out.contains("[UNAVAILABLE]"), "{out}");
    assert!(f.gw.log().contains("not followed"), "{}", f.gw.log());
}

#[test]
fn raw_sockets_pipelining_literals_and_hostile_input() {
    let Some(f) = Fixture::start("directory") else {
        return;
    };
    let out = run(&f, "imap_raw", "imap", "alice", ALICE, &[]);
    let server: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("S: ")).collect();
    // The LOGIN sent with STARTTLS in one packet was never answered.
    assert!(!server.iter().any(|l| l.starts_with("b ")), "{out}");
    assert!(server.contains(&"c OK NOOP completed."), "{out}");
    assert!(server.iter().any(|l| l.starts_with("* BAD")), "{out}");
    assert!(
        server.contains(&"x BAD [TOOBIG] Literal too large."),
        "{out}"
    );
    // LOGIN by literals; the SELECT and LOGOUT pipelined behind it were
    // answered by the backend.
    assert!(server.iter().any(|l| l.starts_with("d OK")), "{out}");
    assert!(server.iter().any(|l| l.ends_with("EXISTS")), "{out}");
    assert!(server.iter().any(|l| l.starts_with("e OK")), "{out}");
    assert!(server.iter().any(|l| l.starts_with("f OK")), "{out}");
    assert!(
        server.contains(&"* BYE [TOOBIG] Command too long."),
        "{out}"
    );
    assert!(out.contains("end: <closed>"), "{out}");
    let out = run(&f, "pop3_raw", "pop3", "alice", ALICE, &[]);
    let server: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("S: ")).collect();
    assert!(server.contains(&"-ERR No user name given."), "{out}");
    assert!(
        server.iter().any(|l| l.starts_with("+OK Logged in")),
        "{out}"
    );
    assert!(
        server.iter().any(|l| l.starts_with("+OK 1 ")),
        "STAT: {out}"
    );
}

#[test]
fn the_client_address_is_forwarded_where_configured() {
    let Some(f) = Fixture::start("directory") else {
        return;
    };
    let port = f.port("imaps");
    f.client(
        &["imap_login", &port, "implicit", "alice", ALICE],
        Some("127.0.0.7"),
    );
    let port = f.port("pop3s");
    f.client(
        &["pop3_login", &port, "implicit", "alice", ALICE],
        Some("127.0.0.8"),
    );
    let log = f.mbx1.log();
    assert!(
        log.contains("imap-login: Info: Login: user=<alice>") && log.contains("rip=127.0.0.7"),
        "{log}"
    );
    assert!(
        log.contains("pop3-login: Info: Login: user=<alice>") && log.contains("rip=127.0.0.8"),
        "{log}"
    );
    // mbx2 has forward-client off: it sees the gateway.
    let port = f.port("imaps");
    f.client(
        &["imap_login", &port, "implicit", "bob", BOB],
        Some("127.0.0.9"),
    );
    let log = f.mbx2.as_ref().map(Dovecot::log).unwrap_or_default();
    assert!(
        log.contains("Login: user=<bob>") && !log.contains("rip=127.0.0.9"),
        "{log}"
    );
}

#[test]
fn a_backend_down_is_unavailable_not_a_wrong_password() {
    let Some(mut f) = Fixture::start("directory") else {
        return;
    };
    drop(f.mbx2.take());
    // Dovecot's stop is asynchronous: wait until the ports are closed.
    for _ in 0..100 {
        let open = [f.mbx2_ports.0, f.mbx2_ports.1]
            .iter()
            .any(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok());
        if !open {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = run(&f, "imap_wrong", "imaps", "bob", BOB, &[]);
    assert!(out.contains("[UNAVAILABLE]"), "{out}");
    let out = run(&f, "pop3_wrong", "pop3s", "bob", BOB, &[]);
    assert!(out.contains("[SYS/TEMP]"), "{out}");
    assert!(f.gw.log().contains("side=\"backend\""), "{}", f.gw.log());
}

#[test]
fn a_reload_moves_the_next_login_to_the_new_backend() {
    let Some(f) = Fixture::start("directory") else {
        return;
    };
    let out = run(&f, "imap_login", "imaps", "alice", ALICE, &[]);
    assert!(out.contains("alice on mbx1"), "{out}");
    std::fs::write(f.gw.dir.path().join("users.toml"), directory("mbx2")).expect("write");
    f.gw.signal("HUP");
    f.gw.wait_log("reloaded", 1);
    let out = run(&f, "imap_login", "imaps", "alice", ALICE, &[]);
    assert!(
        out.contains("alice on mbx2") && !out.contains("alice on mbx1"),
        "{out}"
    );
}

#[test]
fn with_verify_backend_the_backend_decides() {
    let Some(f) = Fixture::start("backend imap") else {
        return;
    };
    let out = run(&f, "imap_login", "imap", "alice", ALICE, &[]);
    assert!(out.contains("alice on mbx1"), "{out}");
    let out = run(&f, "imap_wrong", "imaps", "alice", "not-it", &[]);
    assert!(out.contains("AUTHENTICATIONFAILED"), "{out}");
    assert!(
        f.mbx1.log().contains("Password mismatch"),
        "{}",
        f.mbx1.log()
    );
    let out = run(&f, "pop3_login", "pop3s", "bob", BOB, &[]);
    assert!(out.contains("bob on mbx2"), "{out}");
}

#[test]
fn backends_over_tls_with_checked_certificates_and_no_fallback() {
    let Some(f) = Fixture::start_with("directory", true, "") else {
        return;
    };
    // mbx1: IMAP over STARTTLS, POP3 over implicit TLS, both checked
    // against the CA file.
    let out = run(&f, "imap_login", "imaps", "alice", ALICE, &[]);
    assert!(out.contains("alice on mbx1"), "{out}");
    let out = run(&f, "pop3_login", "pop3s", "alice", ALICE, &[]);
    assert!(out.contains("Subject: alice on mbx1"), "{out}");
    let log = f.mbx1.log();
    assert!(
        log.contains("imap-login: Info: Login: user=<alice>") && log.contains("TLS"),
        "{log}"
    );
    // mbx2 refuses STARTTLS: the login fails, nothing is sent in clear.
    let out = run(&f, "imap_wrong", "imaps", "bob", BOB, &[]);
    assert!(out.contains("[UNAVAILABLE]"), "{out}");
    assert!(f.gw.log().contains("STARTTLS refused"), "{}", f.gw.log());
    let mbx2 = f.mbx2.as_ref().map(Dovecot::log).unwrap_or_default();
    assert!(!mbx2.contains("user=<bob>"), "{mbx2}");
    // The certificate is checked: with another CA in the file, mbx1's
    // certificate is not trusted and the login fails before it is sent.
    let (other_ca, _, _) = test_pki();
    std::fs::write(f.gw.config_path().with_file_name("ca.pem"), other_ca).expect("write");
    f.gw.signal("HUP");
    f.gw.wait_log("reloaded", 1);
    let logins = f.mbx1.log().matches("Login: user=<alice>").count();
    let out = run(&f, "imap_wrong", "imaps", "alice", ALICE, &[]);
    assert!(out.contains("[UNAVAILABLE]"), "{out}");
    assert_eq!(
        f.mbx1.log().matches("Login: user=<alice>").count(),
        logins,
        "no login reached mbx1"
    );
}

#[test]
fn limits_before_login() {
    let limits = "max-per-client 2; timeout greeting 1s, command 1s";
    let Some(f) = Fixture::start_with("directory", false, limits) else {
        return;
    };
    let connect = || {
        let c = std::net::TcpStream::connect(("127.0.0.1", f.imap)).expect("connect");
        c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        c
    };
    let (mut first, mut second, mut third) = (connect(), connect(), connect());
    let greeting = |c: &mut std::net::TcpStream| {
        let mut buf = [0u8; 512];
        let n = std::io::Read::read(c, &mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(greeting(&mut first).starts_with("* OK [CAPABILITY"));
    assert!(greeting(&mut second).starts_with("* OK [CAPABILITY"));
    let refused = harness::read_all(&mut third, std::time::Duration::from_secs(5));
    assert_eq!(
        refused,
        "* BYE [UNAVAILABLE] Too many connections, try again later\r\n"
    );
    // Nothing said within the greeting timeout: closed with a BYE.
    let idle = harness::read_all(&mut first, std::time::Duration::from_secs(5));
    assert_eq!(idle, "* BYE Disconnected for inactivity.\r\n");
    drop(second);
}

#[test]
fn a_graceful_stop_tells_the_connections_waiting_for_their_first_command() {
    let Some(mut f) = Fixture::start("directory") else {
        return;
    };
    let connect = |port: u16| {
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        c
    };
    let greeting = |c: &mut std::net::TcpStream| {
        let mut buf = [0u8; 512];
        let n = std::io::Read::read(c, &mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let (mut imap, mut pop3, mut imaps) = (connect(f.imap), connect(f.pop3), connect(f.imaps));
    assert!(greeting(&mut imap).starts_with("* OK [CAPABILITY"));
    assert!(greeting(&mut pop3).starts_with("+OK mail.example.test ready."));
    // Accepted (the listening line names the listener too), not merely
    // queued by the kernel.
    f.gw.wait_log("listener=imaps", 2);
    f.gw.signal("TERM");
    let wait = std::time::Duration::from_secs(5);
    assert_eq!(
        harness::read_all(&mut imap, wait),
        "* BYE [UNAVAILABLE] Server shutting down.\r\n"
    );
    assert_eq!(
        harness::read_all(&mut pop3, wait),
        "-ERR [SYS/TEMP] Server shutting down.\r\n"
    );
    // Before its TLS hello nothing can be said: closed without a word.
    assert_eq!(harness::read_all(&mut imaps, wait), "");
    let status = f.gw.wait_exit();
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        f.gw.log()
    );
}
