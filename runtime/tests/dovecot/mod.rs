//! A private Dovecot instance for tests: config, sockets, state, log and
//! mail all under a temporary directory, on free loopback ports, stopped on
//! drop. Used as the backend mailbox server (IMAP, POP3, LMTP).
//!
//! Include with `mod dovecot;` from a test file. Starting it needs root
//! (Dovecot switches to its own users) and the Debian packages
//! `dovecot-imapd`, `dovecot-pop3d` and `dovecot-lmtpd`, which
//! `scripts/test` installs; [`Builder::start`] returns `None` with a
//! `SKIPPED` message otherwise.

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::ports::free_port;

/// Finds `name` in `PATH` or the sbin directories.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file());
    found
}

/// How to start a [`Dovecot`].
#[derive(Default)]
pub struct Builder {
    users: Vec<(String, String, String)>,
    tls: Option<(String, String)>,
    extra: String,
}

impl Builder {
    /// Adds a user to the passwd-file (stored as SHA512-CRYPT).
    pub fn user(self, name: &str, password: &str) -> Builder {
        self.user_fields(name, password, "")
    }

    /// Adds a user with passdb extra fields (e.g. `nologin=y
    /// host=… port=…`, a login referral).
    pub fn user_fields(mut self, name: &str, password: &str, fields: &str) -> Builder {
        self.users
            .push((name.to_owned(), password.to_owned(), fields.to_owned()));
        self
    }

    /// Adds every `(user, password)`.
    pub fn users(mut self, users: &[(&str, &str)]) -> Builder {
        for (name, password) in users {
            self = self.user(name, password);
        }
        self
    }

    /// Certificate and key (PEM): STARTTLS on the plain ports, implicit TLS
    /// on the `imaps` and `pop3s` ports.
    pub fn tls(mut self, cert: &str, key: &str) -> Builder {
        self.tls = Some((cert.to_owned(), key.to_owned()));
        self
    }

    /// Appends raw configuration text (later settings override earlier).
    pub fn extra(mut self, config: &str) -> Builder {
        self.extra.push_str(config);
        self.extra.push('\n');
        self
    }

    /// Starts Dovecot and waits until its IMAP port answers.
    pub fn start(self) -> Option<Dovecot> {
        let (Some(dovecot), Some(doveadm)) = (find_program("dovecot"), find_program("doveadm"))
        else {
            eprintln!("SKIPPED: dovecot is not installed (scripts/test installs dovecot-imapd)");
            return None;
        };
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("SKIPPED: starting Dovecot needs root (it runs as dovecot/dovenull)");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // Dovecot's unprivileged processes must reach the sockets and files.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mail = root.join("mail");
        std::fs::create_dir(&mail).expect("mkdir");
        std::fs::set_permissions(&mail, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let params = sha_crypt::Sha512Params::new(sha_crypt::ROUNDS_DEFAULT).expect("params");
        let mut passwd = String::new();
        for (user, password, fields) in &self.users {
            let hash = sha_crypt::sha512_simple(password, &params).expect("hash");
            passwd.push_str(&format!("{user}:{{SHA512-CRYPT}}{hash}::::::{fields}\n"));
        }
        std::fs::write(root.join("passwd"), passwd).expect("passwd");
        let ports = Ports {
            imap: free_port(),
            imaps: free_port(),
            pop3: free_port(),
            pop3s: free_port(),
            lmtp: free_port(),
        };
        let ssl = match &self.tls {
            Some((cert, key)) => {
                std::fs::write(root.join("cert.pem"), cert).expect("cert");
                std::fs::write(root.join("key.pem"), key).expect("key");
                let r = root.display();
                format!("ssl = yes\nssl_cert = <{r}/cert.pem\nssl_key = <{r}/key.pem\n")
            }
            None => "ssl = no\n".to_owned(),
        };
        let r = root.display();
        let Ports {
            imap,
            imaps,
            pop3,
            pop3s,
            lmtp,
        } = ports;
        let (imaps, pop3s) = if self.tls.is_some() {
            (imaps, pop3s)
        } else {
            (0, 0)
        };
        let config = root.join("dovecot.conf");
        std::fs::write(
            &config,
            format!(
                "base_dir = {r}/run\n\
                 state_dir = {r}/state\n\
                 log_path = {r}/dovecot.log\n\
                 {ssl}\
                 listen = 127.0.0.1\n\
                 protocols = imap pop3 lmtp\n\
                 disable_plaintext_auth = no\n\
                 auth_failure_delay = 0\n\
                 login_trusted_networks = 127.0.0.0/8\n\
                 auth_verbose = yes\n\
                 default_internal_user = dovecot\n\
                 default_login_user = dovenull\n\
                 mail_location = maildir:{r}/mail/%u\n\
                 pop3_uidl_format = %08Xu%08Xv\n\
                 passdb {{\n  driver = passwd-file\n  args = {r}/passwd\n}}\n\
                 userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={r}/mail/%u\n}}\n\
                 service imap-login {{\n\
                 \x20 inet_listener imap {{\n    port = {imap}\n  }}\n\
                 \x20 inet_listener imaps {{\n    port = {imaps}\n  }}\n\
                 }}\n\
                 service pop3-login {{\n\
                 \x20 inet_listener pop3 {{\n    port = {pop3}\n  }}\n\
                 \x20 inet_listener pop3s {{\n    port = {pop3s}\n  }}\n\
                 }}\n\
                 service lmtp {{\n\
                 \x20 inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {lmtp}\n  }}\n\
                 }}\n\
                 {extra}",
                extra = self.extra,
            ),
        )
        .expect("config");
        let status = Command::new(&dovecot)
            .arg("-c")
            .arg(&config)
            .status()
            .expect("run dovecot");
        let started = Dovecot {
            dir,
            config,
            doveadm,
            port: imap,
            imaps,
            pop3,
            pop3s,
            lmtp,
        };
        assert!(
            status.success(),
            "dovecot failed to start: {status}\n{}",
            started.log()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in [imap, pop3, lmtp] {
            while std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "dovecot did not listen on {port}: {}",
                    started.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(started)
    }
}

struct Ports {
    imap: u16,
    imaps: u16,
    pop3: u16,
    pop3s: u16,
    lmtp: u16,
}

/// A running private Dovecot.
pub struct Dovecot {
    /// Everything of this instance lives here.
    pub dir: tempfile::TempDir,
    config: PathBuf,
    doveadm: PathBuf,
    /// The IMAP port (STARTTLS offered when started with TLS).
    pub port: u16,
    /// The implicit-TLS IMAP port; 0 without TLS.
    pub imaps: u16,
    /// The POP3 port.
    pub pop3: u16,
    /// The implicit-TLS POP3 port; 0 without TLS.
    pub pop3s: u16,
    /// The LMTP port.
    pub lmtp: u16,
}

impl Dovecot {
    /// A builder with no users.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Starts Dovecot with a passwd-file of `(user, password)`.
    pub fn start(users: &[(&str, &str)]) -> Option<Dovecot> {
        Dovecot::builder().users(users).start()
    }

    /// Like [`Dovecot::start`], with TLS (certificate and key PEM).
    pub fn start_with(users: &[(&str, &str)], tls: Option<(&str, &str)>) -> Option<Dovecot> {
        let builder = Dovecot::builder().users(users);
        match tls {
            Some((cert, key)) => builder.tls(cert, key),
            None => builder,
        }
        .start()
    }

    /// Dovecot's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// The maildir of `user`.
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user)
    }

    /// Puts a message with `subject` in `user`'s INBOX (a maildir file
    /// Dovecot's unprivileged processes may read and move).
    pub fn seed(&self, user: &str, subject: &str) {
        let maildir = self.maildir(user);
        for sub in ["", "new", "cur", "tmp"] {
            let dir = maildir.join(sub);
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        }
        let count = std::fs::read_dir(maildir.join("new")).map_or(0, |d| d.count());
        let file = maildir
            .join("new")
            .join(format!("{}.{count}.seed", std::process::id()));
        let message = format!(
            "From: seed@example.test\r\nTo: {user}@example.test\r\nSubject: {subject}\r\n\r\n{subject}\r\n"
        );
        std::fs::write(&file, message).expect("seed");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    }

    /// The messages in `user`'s INBOX (new and cur), in name order.
    pub fn messages(&self, user: &str) -> Vec<Vec<u8>> {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir(user).join(sub)) {
                files.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
            }
        }
        files.sort();
        files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new(&self.doveadm)
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .status();
    }
}

/// A CA, and a certificate for 127.0.0.1 it signed: (CA PEM, certificate
/// PEM, key PEM), for backends with TLS checked against a CA file.
pub fn test_pki() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("cert");
    (ca.pem(), cert.pem(), key.serialize_pem())
}
