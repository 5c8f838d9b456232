//! `mailgw queue`: the admin's view of the running gateway's queue.
//!
//! Every command goes to the gateway over its control socket
//! (`<spool>/control.sock`, [`mailgw_runtime::control`]); the gateway, the
//! only writer of the spool, carries it out. Nothing here reads or writes the
//! spool files.
//!
//! Exit codes: 0 done, 1 the gateway refused or failed (no such message),
//! 2 usage, 3 no gateway is running on the spool.

mod format;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{ArgGroup, Args, Subcommand};
use mailgw_runtime::control::{self, client::Client, client::ClientError};
use mailgw_runtime::queue::admin::{unix_seconds, Answer, Command, Entry};

/// Exit code: the gateway answered with an error, or could not be asked.
const ERROR: u8 = 1;
/// Exit code: a usage error (as clap's).
const USAGE: u8 = 2;
/// Exit code: no gateway answers on the spool's control socket.
const NOT_RUNNING: u8 = 3;

/// `mailgw queue`'s arguments.
#[derive(Args)]
#[command(group(ArgGroup::new("where").required(true).args(["spool", "plan"])))]
pub struct QueueArgs {
    /// The gateway's spool directory.
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
    /// The plan file or `.mailgw` configuration the gateway runs; its
    /// spool is used.
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    action: Action,
}

/// A queue command.
#[derive(Subcommand)]
enum Action {
    /// List the queued messages, oldest first.
    List {
        /// Print JSON (an array of messages) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one message.
    Show {
        /// The queue ID.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Try a message (or all) now; held messages stay held.
    #[command(group(ArgGroup::new("which").required(true).args(["id", "all"])))]
    Retry {
        /// The queue ID.
        id: Option<String>,
        /// Every queued message.
        #[arg(long)]
        all: bool,
    },
    /// Remove a message without notifying anyone.
    Delete {
        /// The queue ID.
        id: String,
    },
    /// Stop delivering a message until it is released.
    Hold {
        /// The queue ID.
        id: String,
    },
    /// Release a held message; it is tried now.
    Release {
        /// The queue ID.
        id: String,
    },
    /// Try now every message with a pending recipient in a domain.
    Flush {
        /// The recipient domain.
        domain: String,
    },
}

/// How an answer is printed.
enum Print {
    /// The table of messages.
    Table,
    /// One message, every field.
    Detail(String),
    /// JSON: every message (`None`) or the one with this ID.
    Json(Option<String>),
    /// A count: "{verb} N messages{suffix}".
    Done(&'static str, String),
}

impl Action {
    /// The request and how its answer is printed.
    fn into_command(self) -> (Command, Print) {
        let done = |verb| Print::Done(verb, String::new());
        match self {
            Action::List { json: false } => (Command::List, Print::Table),
            Action::List { json: true } => (Command::List, Print::Json(None)),
            Action::Show { id, json } => {
                let print = if json {
                    Print::Json(Some(id.clone()))
                } else {
                    Print::Detail(id.clone())
                };
                (Command::Show { id }, print)
            }
            Action::Retry { id, .. } => (Command::Retry { id }, done("retrying")),
            Action::Delete { id } => (Command::Delete { id }, done("deleted")),
            Action::Hold { id } => (Command::Hold { id }, done("held")),
            Action::Release { id } => (Command::Release { id }, done("released")),
            Action::Flush { domain } => {
                let domain = domain.to_ascii_lowercase();
                let print = Print::Done("flushing", format!(" for {domain}"));
                (Command::Flush { domain }, print)
            }
        }
    }
}

/// Runs `mailgw queue`.
pub fn run(args: QueueArgs) -> ExitCode {
    let spool = match (args.spool, args.plan) {
        (Some(spool), _) => spool,
        (None, Some(plan)) => match crate::load(&plan, crate::Output::Stderr) {
            Ok(plan) => PathBuf::from(&plan.queue.spool),
            Err(()) => return ExitCode::from(ERROR),
        },
        // clap requires one of the two.
        (None, None) => return ExitCode::from(USAGE),
    };
    let (command, print) = args.action.into_command();
    match ask(&spool, &command) {
        Ok(Answer::Error { message }) => fail(&message),
        Ok(answer) => output(print, answer),
        Err(ClientError::NotRunning { socket, .. }) => {
            eprintln!(
                "no gateway is running on spool {} (control socket: {})",
                spool.display(),
                socket.display()
            );
            ExitCode::from(NOT_RUNNING)
        }
        Err(e) => fail(&e.to_string()),
    }
}

/// Sends one command to the gateway of `spool`.
fn ask(spool: &Path, command: &Command) -> Result<Answer, ClientError> {
    Client::connect(&control::socket_path(spool))?.request(command)
}

/// Prints the answer as asked.
fn output(print: Print, answer: Answer) -> ExitCode {
    match render(print, answer, unix_seconds(SystemTime::now())) {
        Ok(text) => {
            // A closed pipe (`mailgw queue list | head`) is not an error
            // worth a message.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(message) => fail(&message),
    }
}

/// The text for `answer`, or why there is none.
fn render(print: Print, answer: Answer, now: u64) -> Result<String, String> {
    match (print, answer) {
        (Print::Table, Answer::Messages { messages }) => Ok(format::table(&messages, now)),
        (Print::Detail(id), Answer::Messages { messages }) => {
            find(messages, &id).map(|entry| format::detail(&entry, now))
        }
        (Print::Json(None), Answer::Messages { messages }) => json(&messages),
        (Print::Json(Some(id)), Answer::Messages { messages }) => json(&find(messages, &id)?),
        (Print::Done(verb, suffix), Answer::Done { count }) => Ok(format!(
            "{verb} {}{suffix}\n",
            format::count(count as u64, "message")
        )),
        _ => Err("the gateway answered something other than what was asked".into()),
    }
}

/// The entry with ID `id`.
fn find(messages: Vec<Entry>, id: &str) -> Result<Entry, String> {
    messages
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| format!("no such message: {id}"))
}

/// Pretty JSON with a final newline.
fn json<T: serde::Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string_pretty(value)
        .map(|text| text + "\n")
        .map_err(|e| e.to_string())
}

/// Prints `message` to stderr; exit code 1.
fn fail(message: &str) -> ExitCode {
    eprintln!("mailgw queue: {}", format::clean(message));
    ExitCode::from(ERROR)
}
