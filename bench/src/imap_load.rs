//! A small IMAP load generator for `bench/proxy.sh`: the same requests
//! against Dovecot directly, through nginx's mail proxy and through mailgw.
//!
//! ```text
//! imap-load logins  PORT USERS PASSWORD COUNT CONCURRENCY
//! imap-load noop    PORT USER PASSWORD COUNT
//! imap-load fetch   PORT USER PASSWORD ROUNDS
//! imap-load hold    PORT COUNT [login USERS PASSWORD]
//! ```
//!
//! - `logins`: COUNT sessions (connect, greeting, `LOGIN`, `LOGOUT`) by
//!   CONCURRENCY workers; users `bench0` … `bench{USERS-1}` in turn.
//!   Prints `logins_per_s`.
//! - `noop`: one logged-in session, COUNT `NOOP`s one after the other.
//!   Prints `noop_p50_us`, `noop_p99_us`.
//! - `fetch`: one logged-in session, `FETCH 1 BODY.PEEK[]` of the first
//!   message in INBOX ROUNDS times. Prints `fetch_mb_per_s` (median).
//! - `hold`: opens COUNT connections, reads each greeting (and with
//!   `login` logs in as `bench0` … in turn), prints `held COUNT`, then waits for a line on stdin
//!   before closing them all, so the caller can measure memory meanwhile.
//!
//! Plain TCP only: TLS costs the same through every path and is left out
//! to measure the proxies.

use std::io::BufRead;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// One IMAP client connection.
struct Client {
    stream: BufReader<TcpStream>,
    line: String,
    tag: u32,
}

impl Client {
    async fn connect(port: u16) -> Result<Client> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        tcp.set_nodelay(true)?;
        let mut client = Client {
            stream: BufReader::new(tcp),
            line: String::new(),
            tag: 0,
        };
        client.read_line().await?;
        if !client.line.starts_with("* OK") {
            return Err(format!("greeting: {}", client.line.trim_end()).into());
        }
        Ok(client)
    }

    async fn read_line(&mut self) -> Result<()> {
        self.line.clear();
        if self.stream.read_line(&mut self.line).await? == 0 {
            return Err("connection closed".into());
        }
        Ok(())
    }

    /// Sends a command and reads to its tagged answer, which must be OK.
    /// Literals in the answer (`{n}` at a line end) are read and dropped;
    /// returns the octets of literals read.
    async fn command(&mut self, command: &str) -> Result<usize> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        let line = format!("{tag} {command}\r\n");
        self.stream.get_mut().write_all(line.as_bytes()).await?;
        let mut literal_octets = 0;
        loop {
            self.read_line().await?;
            if let Some(n) = literal_length(&self.line) {
                let mut left = n;
                let mut buf = vec![0u8; 64 * 1024];
                while left > 0 {
                    let want = left.min(buf.len());
                    let got = self.stream.read(&mut buf[..want]).await?;
                    if got == 0 {
                        return Err("closed in a literal".into());
                    }
                    left -= got;
                }
                literal_octets += n;
                continue;
            }
            if let Some(rest) = self.line.strip_prefix(&tag) {
                if rest.starts_with(" OK") {
                    return Ok(literal_octets);
                }
                return Err(format!("{command}: {}", self.line.trim_end()).into());
            }
        }
    }

    async fn login(&mut self, user: &str, password: &str) -> Result<()> {
        self.command(&format!("LOGIN \"{user}\" \"{password}\""))
            .await
            .map(|_| ())
    }
}

fn literal_length(line: &str) -> Option<usize> {
    let inner = line.trim_end().strip_suffix('}')?;
    let open = inner.rfind('{')?;
    inner[open + 1..].parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

async fn logins(port: u16, users: u32, password: String, count: u32, workers: u32) -> Result<()> {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let next = std::sync::Arc::clone(&next);
        let password = password.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= count {
                    return Ok::<(), Box<dyn std::error::Error + Send + Sync>>(());
                }
                let mut client = Client::connect(port).await?;
                client
                    .login(&format!("bench{}", n % users), &password)
                    .await?;
                client.command("LOGOUT").await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!("logins_per_s {:.1}", f64::from(count) / seconds);
    Ok(())
}

async fn noop(port: u16, user: &str, password: &str, count: u32) -> Result<()> {
    let mut client = Client::connect(port).await?;
    client.login(user, password).await?;
    for _ in 0..100 {
        client.command("NOOP").await?;
    }
    let mut times = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let start = Instant::now();
        client.command("NOOP").await?;
        times.push(start.elapsed());
    }
    client.command("LOGOUT").await?;
    times.sort();
    println!("noop_p50_us {}", percentile(&times, 0.50).as_micros());
    println!("noop_p99_us {}", percentile(&times, 0.99).as_micros());
    Ok(())
}

async fn fetch(port: u16, user: &str, password: &str, rounds: u32) -> Result<()> {
    let mut client = Client::connect(port).await?;
    client.login(user, password).await?;
    client.command("SELECT INBOX").await?;
    let mut rates = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        let octets = client.command("FETCH 1 BODY.PEEK[]").await?;
        let seconds = start.elapsed().as_secs_f64();
        rates.push(octets as f64 / seconds / 1e6);
    }
    client.command("LOGOUT").await?;
    rates.sort_by(f64::total_cmp);
    println!("fetch_mb_per_s {:.1}", rates[rates.len() / 2]);
    Ok(())
}

async fn hold(port: u16, count: u32, login: Option<(u32, String)>) -> Result<()> {
    let mut held = Vec::with_capacity(count as usize);
    for n in 0..count {
        let mut client = Client::connect(port).await?;
        if let Some((users, password)) = &login {
            client
                .login(&format!("bench{}", n % users.max(&1)), password)
                .await?;
        }
        held.push(client);
    }
    println!("held {}", held.len());
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)
    })
    .await;
    drop(held);
    Ok(())
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Result<T> {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("argument {i}: {what}").into())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or_default();
    let port: u16 = arg(&args, 2, "PORT")?;
    match mode {
        "logins" => {
            logins(
                port,
                arg(&args, 3, "USERS")?,
                arg(&args, 4, "PASSWORD")?,
                arg(&args, 5, "COUNT")?,
                arg(&args, 6, "CONCURRENCY")?,
            )
            .await
        }
        "noop" => {
            let (user, password): (String, String) =
                (arg(&args, 3, "USER")?, arg(&args, 4, "PASSWORD")?);
            noop(port, &user, &password, arg(&args, 5, "COUNT")?).await
        }
        "fetch" => {
            let (user, password): (String, String) =
                (arg(&args, 3, "USER")?, arg(&args, 4, "PASSWORD")?);
            fetch(port, &user, &password, arg(&args, 5, "ROUNDS")?).await
        }
        "hold" => {
            let login = match args.get(4).map(String::as_str) {
                Some("login") => Some((arg(&args, 5, "USERS")?, arg(&args, 6, "PASSWORD")?)),
                _ => None,
            };
            hold(port, arg(&args, 3, "COUNT")?, login).await
        }
        _ => Err("usage: imap-load logins|noop|fetch|hold PORT ... (see the source)".into()),
    }
}
