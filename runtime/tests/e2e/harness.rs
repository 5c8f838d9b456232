//! Starts the real `mailgw` binary on a configuration of its own: loopback
//! ports chosen free, the spool and the directory file in a temporary
//! folder, a self-signed certificate made by the gateway.

#![allow(dead_code)]

use std::io::Read as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;

/// The crate's directory (for the example directory file and the scripts).
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test configuration: an inbound listener (STARTTLS offered, no
/// login) and a submission listener (STARTTLS required, login required),
/// the quickstart's users, `extra` appended.
pub fn config(smtp: u16, submission: u16, smtp_limits: &str, extra: &str) -> String {
    format!(
        r#"
gateway {{
    hostname   "localhost"
    postmaster "postmaster@example.test"
}}
tls "local" {{ self-signed }}
listener "smtp" {{
    protocol smtp
    bind     127.0.0.1:{smtp}
    tls      starttls offer "local"
    auth     off
    {smtp_limits}
}}
listener "submission" {{
    protocol smtp
    bind     127.0.0.1:{submission}
    tls      starttls require "local"
    auth     require
}}
backend "local" {{
    host "127.0.0.1"
    lmtp 24024
    imap 24143
    pop3 24110
}}
domain "example.test" local
directory "users.toml"
auth {{ verify directory }}
connector "sink" {{
    address-space "*" cost 1
    deliver smarthost 127.0.0.1:2526 tls none
}}
relay {{
    allow authenticated
    deny  all
}}
unknown-recipients reject
queue {{ spool "spool" }}
log {{ level info }}
{extra}
"#
    )
}

/// A running gateway.
pub struct Gateway {
    /// The temporary folder: `gw.mailgw`, `users.toml`, `spool/`, `log`.
    pub dir: tempfile::TempDir,
    /// The inbound listener's port.
    pub smtp: u16,
    /// The submission listener's port.
    pub submission: u16,
    child: Option<Child>,
    starts: u32,
}

impl Gateway {
    /// A gateway on the default test configuration.
    pub fn start() -> Gateway {
        Gateway::start_with("", "")
    }

    /// A gateway with extra lines in the inbound listener and the file.
    pub fn start_with(smtp_limits: &str, extra: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("temporary folder");
        std::fs::copy(
            manifest_dir().join("../examples/quickstart-users.toml"),
            dir.path().join("users.toml"),
        )
        .expect("copy the directory file");
        let smtp = free_port();
        let submission = free_port();
        let mut gw = Gateway {
            dir,
            smtp,
            submission,
            child: None,
            starts: 0,
        };
        gw.write_config(&config(smtp, submission, smtp_limits, extra));
        gw.launch();
        gw.wait_port(smtp);
        gw
    }

    /// A gateway on `config` (the whole `.mailgw` text) with `files`
    /// (name, contents) written next to it; waits for `port`.
    pub fn start_text(config: &str, files: &[(&str, &str)], port: u16) -> Gateway {
        let dir = tempfile::tempdir().expect("temporary folder");
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).expect("write a file");
        }
        let mut gw = Gateway {
            dir,
            smtp: 0,
            submission: 0,
            child: None,
            starts: 0,
        };
        gw.write_config(config);
        gw.launch();
        gw.wait_port(port);
        gw
    }

    /// Replaces the configuration file (for a reload).
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config_path(), text).expect("write the configuration");
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gw.mailgw")
    }

    /// The spool folder.
    pub fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// Starts the binary (again), logging to `log`.
    pub fn launch(&mut self) {
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        // More descriptors than the default soft limit, for the
        // concurrency test; the hard limit caps it.
        let script = format!(
            "ulimit -n $(ulimit -Hn) 2>/dev/null; exec '{}' run '{}' --grace 5",
            env!("CARGO_BIN_EXE_mailgw"),
            self.config_path().display()
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mailgw");
        self.child = Some(child);
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// Everything the gateway logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until `port` accepts connections (20 s at most).
    pub fn wait_port(&mut self, port: u16) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("mailgw exited with {status}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("mailgw does not listen on {port}:\n{}", self.log());
    }

    /// Waits until the log holds `text` `times` times (10 s at most).
    pub fn wait_log(&self, text: &str, times: usize) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if self.log().matches(text).count() >= times {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the log never said {text:?} {times} times:\n{}", self.log());
    }

    /// Waits until `times` sessions ended, cleanly or not.
    pub fn wait_sessions_ended(&self, times: usize) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            let log = self.log();
            if log.matches(" closed session=").count()
                + log.matches(" connection lost session=").count()
                >= times
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{times} sessions never ended:\n{}", self.log());
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to end (10 s at most); returns whether it did.
    pub fn wait_exit(&mut self) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// IDs of the messages queued in the spool.
    pub fn queued(&self) -> Vec<String> {
        mailgw_runtime::spool::Spool::queued_ids(self.spool())
            .map(|ids| ids.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    }

    /// The resident memory of the gateway, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs a scenario of `e2e/client.py`; panics with its output unless it
/// exits 0. Returns its standard output.
pub fn python(gw: &Gateway, args: &[&str]) -> String {
    let out = python_output(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "client.py {args:?} failed:\n{stdout}\n{}\n--- gateway log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.log()
    );
    stdout
}

/// Runs a scenario of `e2e/client.py`.
pub fn python_output(args: &[&str]) -> Output {
    Command::new("python3")
        .arg(manifest_dir().join("tests/e2e/client.py"))
        .args(args)
        .output()
        .expect("run python3")
}

/// Reads what a raw socket has until it closes or `timeout` passes.
pub fn read_all(stream: &mut TcpStream, timeout: Duration) -> String {
    stream.set_read_timeout(Some(timeout)).expect("set timeout");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Whether a command is on PATH.
pub fn have(command: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {command}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The path as a string, for command lines.
pub fn s(path: &Path) -> String {
    path.display().to_string()
}
