//! The control channel: `control::serve` on a temporary socket, the test
//! playing the queue manager at the other end of the request channel.
//!
//! The first half speaks the JSON-lines protocol by hand, like a transcript
//! (send this line, the manager gets that command, the client gets that
//! answer); the second half runs the `mailgw queue` command line against the
//! same server.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::SystemTime;

use mailgw_runtime::control::{self, Control, MAX_LINE};
use mailgw_runtime::queue::admin::{unix_seconds, Answer, Command, Entry, EntryRecipient, Request};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// A control server on a temporary spool; the test holds the manager's end.
struct Gateway {
    /// The spool directory.
    spool: tempfile::TempDir,
    /// `<spool>/control.sock`.
    socket: PathBuf,
    /// The manager's end of the request channel.
    requests: mpsc::Receiver<Request>,
    /// Completes the server's shutdown future.
    stop: oneshot::Sender<()>,
    /// The server.
    task: JoinHandle<()>,
}

async fn start() -> Gateway {
    let spool = tempfile::tempdir().expect("temp dir");
    let socket = control::socket_path(spool.path());
    let control = Control::bind(&socket).await.expect("bind");
    let (tx, requests) = mpsc::channel(8);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(control.run(tx, async {
        let _ = stopped.await;
    }));
    Gateway {
        spool,
        socket,
        requests,
        stop,
        task,
    }
}

impl Gateway {
    /// Plays the manager for one request: checks the command, answers.
    async fn expect(&mut self, command: Command, answer: Answer) {
        let request = self.requests.recv().await.expect("a request");
        assert_eq!(request.command, command);
        request.reply.send(answer).expect("the server waits");
    }

    /// Plays the manager until the test ends: answers every request with
    /// `answer(command)`.
    fn manager(self, answer: fn(&Command) -> Answer) -> Running {
        let Gateway {
            spool,
            socket,
            mut requests,
            stop,
            task,
        } = self;
        let manager = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(request) = requests.recv().await {
                let _ = request.reply.send(answer(&request.command));
                seen.push(request.command);
            }
            seen
        });
        Running {
            spool,
            socket,
            stop,
            task,
            manager,
        }
    }

    /// Stops the server and waits for it.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("server task");
    }
}

/// A client speaking the protocol by hand.
struct Client {
    reader: BufReader<UnixStream>,
}

impl Client {
    async fn connect(socket: &Path) -> Client {
        let stream = UnixStream::connect(socket).await.expect("connect");
        Client {
            reader: BufReader::new(stream),
        }
    }

    async fn send(&mut self, line: &str) {
        self.send_unchecked(line).await.expect("write");
    }

    /// Sends `line`; the server may close the connection before it has
    /// all of it.
    async fn send_unchecked(&mut self, line: &str) -> std::io::Result<()> {
        let line = format!("{line}\n");
        self.reader.get_mut().write_all(line.as_bytes()).await
    }

    async fn answer(&mut self) -> Value {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).await.expect("read");
        assert!(n > 0, "the server closed the connection");
        assert!(line.ends_with('\n'), "one answer per line: {line:?}");
        serde_json::from_str(&line).expect("the answer is JSON")
    }

    /// The server closed the connection (end of file, or a reset because
    /// it left our bytes unread).
    async fn assert_closed(&mut self) {
        let mut rest = Vec::new();
        if let Ok(n) = self.reader.read_to_end(&mut rest).await {
            assert_eq!(n, 0, "nothing after the last answer");
        }
    }
}

fn error_message(answer: &Value) -> &str {
    assert_eq!(answer["answer"], "error", "{answer}");
    answer["message"].as_str().expect("a message")
}

fn entry(id: &str) -> Entry {
    Entry {
        id: id.into(),
        sender: "alice@example.org".into(),
        recipients: vec![EntryRecipient {
            address: "bob@example.net".into(),
            state: "deferred".into(),
            error: Some("451 4.7.1 Try again later".into()),
        }],
        size: 2048,
        received_at: 1_714_564_800,
        next_attempt: Some(1_714_565_400),
        attempts: 2,
        hold: false,
    }
}

const ID: &str = "00062a1b2c3d4e5f-0000002a-9f3c01d2";

#[tokio::test]
async fn a_command_reaches_the_manager_and_its_answer_the_client() {
    let mut gw = start().await;
    let mut client = Client::connect(&gw.socket).await;
    client
        .send(&format!(r#"{{"command":"show","id":"{ID}"}}"#))
        .await;
    let messages = vec![entry(ID)];
    gw.expect(
        Command::Show { id: ID.into() },
        Answer::Messages {
            messages: messages.clone(),
        },
    )
    .await;
    assert_eq!(
        client.answer().await,
        json!({"answer": "messages", "messages": messages})
    );
    gw.stop().await;
}

#[tokio::test]
async fn one_connection_carries_several_requests() {
    let mut gw = start().await;
    let mut client = Client::connect(&gw.socket).await;

    client.send(r#"{"command":"retry"}"#).await;
    gw.expect(Command::Retry { id: None }, Answer::Done { count: 3 })
        .await;
    assert_eq!(client.answer().await, json!({"answer": "done", "count": 3}));

    // Blank lines are skipped; the flush domain arrives in lowercase.
    client.send("").await;
    client
        .send(r#"{"command":"flush","domain":"Example.NET"}"#)
        .await;
    gw.expect(
        Command::Flush {
            domain: "example.net".into(),
        },
        Answer::Done { count: 1 },
    )
    .await;
    assert_eq!(client.answer().await, json!({"answer": "done", "count": 1}));
    gw.stop().await;
}

#[tokio::test]
async fn a_malformed_line_is_answered_and_the_connection_stays() {
    let mut gw = start().await;
    let mut client = Client::connect(&gw.socket).await;
    for line in [
        "not json",
        r#"{"command":"frobnicate"}"#,
        r#"{"command":"show"}"#,
        "\u{1b}[31m\u{0}",
    ] {
        client.send(line).await;
        let answer = client.answer().await;
        assert!(
            error_message(&answer).starts_with("malformed request: "),
            "{line:?}: {answer}"
        );
    }
    client.send(r#"{"command":"list"}"#).await;
    gw.expect(Command::List, Answer::Messages { messages: vec![] })
        .await;
    assert_eq!(
        client.answer().await,
        json!({"answer": "messages", "messages": []})
    );
    assert!(
        gw.requests.try_recv().is_err(),
        "malformed lines reach no one"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_line_of_the_limit_is_served_one_byte_more_closes() {
    let mut gw = start().await;
    let mut client = Client::connect(&gw.socket).await;
    // Leading white space is valid JSON: a real command of exactly MAX_LINE
    // bytes.
    let command = r#"{"command":"list"}"#;
    client
        .send(&format!(
            "{}{command}",
            " ".repeat(MAX_LINE - command.len())
        ))
        .await;
    gw.expect(Command::List, Answer::Messages { messages: vec![] })
        .await;
    assert_eq!(client.answer().await["answer"], "messages");

    client
        .send(&format!(
            "{}{command}",
            " ".repeat(MAX_LINE + 1 - command.len())
        ))
        .await;
    let answer = client.answer().await;
    assert!(error_message(&answer).contains("longer than 65536 bytes"));
    client.assert_closed().await;
    assert!(gw.requests.try_recv().is_err());
    gw.stop().await;
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_the_new_one_is_private() {
    let spool = tempfile::tempdir().expect("temp dir");
    let socket = control::socket_path(spool.path());
    // A gateway that died: its socket file is there, nobody listens.
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
    assert!(socket.exists());

    let control = Control::bind(&socket)
        .await
        .expect("a stale socket is replaced");
    let meta = fs::metadata(&socket).expect("socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let (tx, mut rx) = mpsc::channel(1);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(control.run(tx, async {
        let _ = stopped.await;
    }));
    let mut client = Client::connect(&socket).await;
    client.send(r#"{"command":"list"}"#).await;
    let request = rx.recv().await.expect("request");
    let _ = request.reply.send(Answer::Done { count: 0 });
    assert_eq!(client.answer().await["answer"], "done");

    let _ = stop.send(());
    task.await.expect("server task");
    assert!(!socket.exists(), "the socket is removed at shutdown");
}

#[tokio::test]
async fn a_live_socket_is_refused_and_keeps_working() {
    let mut gw = start().await;
    let err = match Control::bind(&gw.socket).await {
        Ok(_) => panic!("a second server bound a live socket"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(err
        .to_string()
        .contains("two gateways must not share a spool"));

    let mut client = Client::connect(&gw.socket).await;
    client.send(r#"{"command":"hold","id":"x"}"#).await;
    gw.expect(Command::Hold { id: "x".into() }, Answer::Done { count: 1 })
        .await;
    assert_eq!(client.answer().await["count"], 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_left_alone() {
    let spool = tempfile::tempdir().expect("temp dir");
    let socket = control::socket_path(spool.path());
    fs::write(&socket, "keep me").expect("write");
    let err = match Control::bind(&socket).await {
        Ok(_) => panic!("bound over a regular file"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(fs::read_to_string(&socket).expect("read"), "keep me");
}

#[tokio::test]
async fn without_a_manager_the_client_gets_an_error() {
    let gw = start().await;
    let Gateway {
        requests,
        socket,
        stop,
        task,
        spool: _spool,
    } = gw;
    drop(requests);
    let mut client = Client::connect(&socket).await;
    client.send(r#"{"command":"list"}"#).await;
    let answer = client.answer().await;
    assert_eq!(error_message(&answer), "the queue manager is not running");
    let _ = stop.send(());
    task.await.expect("server task");
}

// The command line.

/// A server whose manager answers every request with a fixed function.
struct Running {
    spool: tempfile::TempDir,
    socket: PathBuf,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    manager: JoinHandle<Vec<Command>>,
}

impl Running {
    /// Runs `mailgw queue --spool SPOOL args...`.
    async fn queue(&self, args: &[&str]) -> Output {
        queue_at(self.spool.path(), args).await
    }

    /// Stops the server; the commands the manager received.
    async fn stop(self) -> Vec<Command> {
        let _ = self.stop.send(());
        self.task.await.expect("server task");
        self.manager.await.expect("manager task")
    }
}

async fn queue_at(spool: &Path, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mailgw"));
    command.arg("queue").arg("--spool").arg(spool).args(args);
    run(command).await
}

/// Runs a command off the runtime's threads, so the server goes on.
async fn run(mut command: std::process::Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("run mailgw"))
        .await
        .expect("join")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("UTF-8")
}

/// Now, in seconds since the epoch.
fn now() -> u64 {
    unix_seconds(SystemTime::now())
}

/// A queue of three messages. Their ages sit in the middle of their unit
/// (5 min 30 s, 2 h 30 min, 3 d 12 h), so the table reads the same however
/// long the test takes.
fn queue() -> Vec<Entry> {
    let now = now();
    let recipient = |address: &str, state: &str, error: Option<&str>| EntryRecipient {
        address: address.into(),
        state: state.into(),
        error: error.map(String::from),
    };
    vec![
        Entry {
            id: "00061f5b7a8c0000-00000001-5e3b9a01".into(),
            sender: "newsletter@lists.example.org".into(),
            recipients: vec![
                recipient("carol@example.com", "delivered", None),
                recipient(
                    "dave@slow.example",
                    "deferred",
                    Some("connection to mx.slow.example timed out"),
                ),
            ],
            size: 1_048_576,
            received_at: now - (3 * 86_400 + 43_200),
            next_attempt: Some(now + 900),
            attempts: 14,
            hold: false,
        },
        Entry {
            id: "00062a1b2c3d4e5f-0000002a-9f3c01d2".into(),
            sender: String::new(),
            recipients: vec![recipient(
                "postmaster@example.net",
                "failed",
                Some("550 5.1.1 <postmaster@example.net>: User unknown\r\n\u{1b}[2J"),
            )],
            size: 512,
            received_at: now - (2 * 3_600 + 1_800),
            next_attempt: None,
            attempts: 1,
            hold: true,
        },
        Entry {
            id: "00062a1b9f000000-0000002b-0c0ffee0".into(),
            sender: "alice@example.org".into(),
            recipients: vec![
                recipient(
                    "bob@example.net",
                    "deferred",
                    Some("451 4.7.1 Greylisted, try again later"),
                ),
                recipient("erin@example.net", "pending", None),
            ],
            size: 2_048,
            received_at: now - (5 * 60 + 30),
            next_attempt: Some(now + 240),
            attempts: 1,
            hold: false,
        },
    ]
}

fn answer_queue(command: &Command) -> Answer {
    match command {
        Command::List => Answer::Messages { messages: queue() },
        Command::Show { id } => match queue().into_iter().find(|e| &e.id == id) {
            Some(entry) => Answer::Messages {
                messages: vec![entry],
            },
            None => Answer::Error {
                message: format!("no such message: {id}"),
            },
        },
        Command::Retry { id: None } => Answer::Done { count: 3 },
        Command::Retry { .. } | Command::Hold { .. } | Command::Release { .. } => {
            Answer::Done { count: 1 }
        }
        Command::Delete { .. } => Answer::Error {
            message: "no such message: 0000".into(),
        },
        Command::Flush { .. } => Answer::Done { count: 2 },
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_list_prints_a_table() {
    let gw = start().await.manager(answer_queue);
    let out = gw.queue(&["list"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    insta::assert_snapshot!(stdout(&out));
    assert_eq!(gw.stop().await, [Command::List]);
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_list_json_is_the_entries() {
    let gw = start().await.manager(answer_queue);
    let out = gw.queue(&["list", "--json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let entries: Vec<Entry> = serde_json::from_slice(&out.stdout).expect("JSON entries");
    let expected = queue();
    assert_eq!(entries.len(), expected.len());
    for (got, want) in entries.iter().zip(&expected) {
        // Only the times move between the two calls.
        assert_eq!((&got.id, &got.recipients), (&want.id, &want.recipients));
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_show_prints_every_field() {
    let gw = start().await.manager(answer_queue);
    let out = gw
        .queue(&["show", "00061f5b7a8c0000-00000001-5e3b9a01"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "id:           00061f5b7a8c0000-00000001-5e3b9a01\n",
        "sender:       newsletter@lists.example.org\n",
        "size:         1048576 bytes\n",
        " (3d ago)\n",
        "attempts:     14\n",
        " (in 15m)\n",
        "on hold:      no\n",
        "recipients:\n",
        "  delivered  carol@example.com\n",
        "  deferred   dave@slow.example\n             connection to mx.slow.example timed out\n",
    ] {
        assert!(text.contains(line), "{line:?} missing in:\n{text}");
    }

    let out = gw
        .queue(&["show", "--json", "00062a1b2c3d4e5f-0000002a-9f3c01d2"])
        .await;
    let entry: Entry = serde_json::from_slice(&out.stdout).expect("one JSON entry");
    assert!(entry.hold);

    let out = gw.queue(&["show", "nope"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "mailgw queue: no such message: nope\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_changes_say_how_many_messages() {
    let gw = start().await.manager(answer_queue);
    let cases: [(&[&str], &str); 5] = [
        (&["retry", "--all"], "retrying 3 messages\n"),
        (&["retry", "x"], "retrying 1 message\n"),
        (&["hold", "x"], "held 1 message\n"),
        (&["release", "x"], "released 1 message\n"),
        (
            &["flush", "Slow.Example"],
            "flushing 2 messages for slow.example\n",
        ),
    ];
    for (args, text) in cases {
        let out = gw.queue(args).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), text, "{args:?}");
    }
    let out = gw.queue(&["delete", "0000"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "mailgw queue: no such message: 0000\n");

    let x = || "x".to_string();
    assert_eq!(
        gw.stop().await,
        [
            Command::Retry { id: None },
            Command::Retry { id: Some(x()) },
            Command::Hold { id: x() },
            Command::Release { id: x() },
            Command::Flush {
                domain: "slow.example".into()
            },
            Command::Delete { id: "0000".into() },
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_without_a_gateway_exits_3() {
    let spool = tempfile::tempdir().expect("temp dir");
    let socket = control::socket_path(spool.path());
    let expected = format!(
        "no gateway is running on spool {} (control socket: {})\n",
        spool.path().display(),
        socket.display()
    );
    // No socket file at all, then a stale one.
    let out = queue_at(spool.path(), &["list"]).await;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stderr(&out), expected);
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
    let out = queue_at(spool.path(), &["show", "x"]).await;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stderr(&out), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_finds_the_spool_in_the_plan() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart.mailgw");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mailgw"));
    command.arg("queue").arg("--plan").arg(&config).arg("list");
    let out = run(command).await;
    // Nobody runs the quickstart from the test tree.
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/examples/spool (control socket: "),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_usage_errors_exit_2() {
    for args in [&["list"][..], &["--spool", "/nonexistent", "retry"]] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mailgw"));
        command.arg("queue").args(args);
        let out = run(command).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// Another uid is refused even where the socket's mode would let it in
/// (made 0666 here). Needs root, to run the client as `nobody`.
#[tokio::test(flavor = "multi_thread")]
async fn another_uid_is_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to run a client under another uid");
        return;
    }
    let gw = start().await.manager(answer_queue);
    for path in [gw.spool.path(), &gw.socket] {
        fs::set_permissions(path, fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mailgw"));
    command
        .arg("queue")
        .arg("--spool")
        .arg(gw.spool.path())
        .arg("list")
        .uid(65_534)
        .gid(65_534);
    let out = run(command).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "mailgw queue: permission denied: only uid 0 may use the control socket\n"
    );
    assert_eq!(gw.stop().await, [], "the manager hears nothing");
}
