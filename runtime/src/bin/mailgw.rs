//! `mailgw`: the gateway.
//!
//! `mailgw run PLAN|FILE.mailgw` serves a plan file, or a `.mailgw`
//! configuration compiled in-process (with `mailgwc`'s diagnostics);
//! `--check` loads everything and exits. Signals: SIGTERM stops gracefully,
//! SIGINT at once, SIGHUP reloads the plan (the running one stays when the
//! new one fails).
//!
//! `mailgw queue --spool DIR|--plan FILE COMMAND` asks the running gateway
//! about its queue, through its control socket (see [`queue`]).
//!
//! Exit codes of `run`: 0 success, 1 when the plan cannot be loaded or
//! served, 2 for a usage error. `queue` adds 3: no gateway is running.

// Under `mailgw/`: a file in `src/bin/` would be a binary of its own.
#[path = "mailgw/queue/mod.rs"]
mod queue;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mailgw_compiler::diagnostic::{Report, Severity};
use mailgw_plan::{LogLevel, Plan};
use mailgw_runtime::control::{self, Control};
use mailgw_runtime::queue::{Limits, Queue};
use mailgw_runtime::server::{Generation, Server};
use mailgw_runtime::spool::Spool;
use tokio::signal::unix::{signal, SignalKind};

/// Sessions, messages and delivery attempts allocate and free many small
/// buffers across the runtime's threads; mimalloc does that with less CPU
/// than glibc's allocator (bench/README.md, end-to-end relay benchmark).
/// It asks for transparent huge pages for its arenas, which `run` turns
/// off (see there).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The mailgw mail gateway.
#[derive(Parser)]
#[command(name = "mailgw", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a plan.
    Run {
        /// A plan file (from `mailgwc build`) or a `.mailgw` configuration.
        plan: PathBuf,
        /// Load the plan, its certificates and keys, then exit.
        #[arg(long)]
        check: bool,
        /// Seconds a graceful shutdown (SIGTERM) waits for transactions in
        /// flight.
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        grace: u64,
    },
    /// Look at and change the queue of the running gateway.
    Queue(queue::QueueArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run { plan, check, grace } => run(&plan, check, grace),
        Command::Queue(args) => queue::run(args),
    }
}

/// `mailgw run`.
fn run(plan: &Path, check: bool, grace: u64) -> ExitCode {
    // A gateway holds thousands of small, mostly idle connections: with
    // huge pages under the allocator's arenas each one would cost several
    // times the memory it uses (2 MiB pages filled sparsely).
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("mailgw: cannot turn off transparent huge pages: {e}");
    }
    let loaded = match load(plan, Output::Stderr) {
        Ok(p) => p,
        Err(()) => return ExitCode::from(1),
    };
    init_logging(loaded.log.level);
    let generation = match Generation::new(loaded) {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(error = %e, "cannot load the TLS profiles");
            return ExitCode::from(1);
        }
    };
    if check {
        eprintln!("{}: ok", plan.display());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(serve(
        plan.to_owned(),
        generation,
        Duration::from_secs(grace),
    ));
    // Sessions still open after the grace period (or at SIGINT) are cut.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

/// Where the diagnostics of a compilation go.
#[derive(Clone, Copy)]
enum Output {
    /// Printed as `mailgwc` prints them (at start).
    Stderr,
    /// Logged (at a reload).
    Log,
}

/// Loads a plan file, or compiles a `.mailgw` configuration.
fn load(path: &Path, output: Output) -> Result<Plan, ()> {
    if path.extension().is_some_and(|e| e == "mailgw") {
        let compilation = mailgw_compiler::compile(path);
        for d in &compilation.diagnostics {
            let text = format!("{:?}", miette::Report::new(Report::new(&compilation.db, d)));
            match (output, d.severity) {
                (Output::Stderr, _) => eprintln!("{text}"),
                (Output::Log, Severity::Error) => tracing::error!("{text}"),
                (Output::Log, Severity::Warning) => tracing::warn!("{text}"),
            }
        }
        match compilation.plan {
            Some(plan) if !compilation.has_errors() => Ok(plan),
            _ => {
                let msg = format!("{}: the configuration has errors", path.display());
                match output {
                    Output::Stderr => eprintln!("{msg}"),
                    Output::Log => tracing::error!("{msg}"),
                }
                Err(())
            }
        }
    } else {
        Plan::load(path).map_err(|e| match output {
            Output::Stderr => eprintln!("{}: {e}", path.display()),
            Output::Log => {
                tracing::error!(plan = %path.display(), error = %e, "cannot load the plan")
            }
        })
    }
}

/// Logs to stderr at the plan's level; `RUST_LOG` overrides it.
fn init_logging(level: LogLevel) {
    let level = match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

async fn serve(path: PathBuf, generation: Generation, grace: Duration) -> ExitCode {
    let root = PathBuf::from(&generation.plan.queue.spool);
    let opened = tokio::task::spawn_blocking(move || Spool::open(&root)).await;
    let (spool, recovered) = match opened {
        Ok(Ok((spool, recovered))) => {
            tracing::info!(
                spool = %generation.plan.queue.spool,
                queued = recovered.messages.len(),
                removed_incomplete = recovered.removed_incomplete,
                corrupt = recovered.corrupt.len(),
                "spool open"
            );
            (spool, recovered.messages)
        }
        Ok(Err(e)) => {
            tracing::error!(spool = %generation.plan.queue.spool, error = %e, "cannot open the spool");
            return ExitCode::from(1);
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot open the spool");
            return ExitCode::from(1);
        }
    };
    let spool_path = generation.plan.queue.spool.clone();
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => {
            tracing::error!("cannot install the signal handlers");
            return ExitCode::from(1);
        }
    };
    let control = match Control::bind(&control::socket_path(Path::new(&spool_path))).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the control socket");
            return ExitCode::from(1);
        }
    };
    let arrivals = spool.arrivals();
    let limits = Limits::of(&generation.plan.queue);
    let mut server = match Server::start(generation, spool.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::from(1);
        }
    };
    let queue = Queue::start(spool, server.plans(), recovered, arrivals, limits);
    server.attach_queue(queue.admin());
    let (control_stop, control_stopped) = tokio::sync::oneshot::channel::<()>();
    let control_task = tokio::spawn(control.run(queue.admin(), async move {
        let _ = control_stopped.await;
    }));
    tracing::info!(plan = %path.display(), control = %control::socket_path(Path::new(&spool_path)).display(), "mailgw ready");
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!(grace_s = grace.as_secs(), "SIGTERM: graceful shutdown");
                let _ = control_stop.send(());
                let _ = control_task.await;
                if server.shutdown(grace).await {
                    tracing::info!("every session ended; stopped");
                } else {
                    tracing::warn!("grace period over; closing the sessions left");
                }
                queue.stop().await;
                return ExitCode::SUCCESS;
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: stopping now");
                return ExitCode::SUCCESS;
            }
            _ = hup.recv() => {
                tracing::info!(plan = %path.display(), "SIGHUP: reloading");
                let p = path.clone();
                let loaded = tokio::task::spawn_blocking(move || {
                    load(&p, Output::Log).ok().map(Generation::new)
                })
                .await;
                match loaded {
                    Ok(Some(Ok(generation))) => {
                        if generation.plan.queue.spool != spool_path {
                            tracing::warn!(spool = %spool_path, "the spool directory changed; it takes effect at the next start");
                        }
                        match server.reload(generation).await {
                            Ok(failures) => tracing::info!(failed_binds = failures.len(), addresses = ?server.addresses(), "reloaded"),
                            Err(failures) => tracing::error!(failed_binds = failures.len(), "reload failed: a new address cannot be bound; the running plan stays"),
                        }
                    }
                    Ok(Some(Err(e))) => tracing::error!(error = %e, "reload failed; the running plan stays"),
                    Ok(None) | Err(_) => tracing::error!("reload failed; the running plan stays"),
                }
            }
        }
    }
}
