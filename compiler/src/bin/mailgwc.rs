//! `mailgwc`: check, build, explain and inspect mailgw configurations.
//!
//! Exit codes: 0 success, 1 when the configuration or plan has errors (or
//! warnings with `--deny warnings`), 2 for a usage error.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use mailgw_compiler::diagnostic::{Report, Severity};
use mailgw_compiler::explain::{self, Query};
use mailgw_compiler::Compilation;
use mailgw_plan::{LoadError, Plan, Summary, MAGIC};

/// A directory of 100,000 mailboxes is hundreds of thousands of small
/// strings; mimalloc allocates and frees them markedly faster than glibc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The mailgw configuration compiler.
#[derive(Parser)]
#[command(name = "mailgwc", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check configurations and report every problem found.
    Check {
        /// The main `.mailgw` files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Treat warnings as errors.
        #[arg(long, value_name = "WHAT", value_parser = ["warnings"])]
        deny: Option<String>,
        /// Output format of the diagnostics.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Compile a configuration into a plan file for the gateway.
    Build {
        /// The main `.mailgw` file.
        file: PathBuf,
        /// Where to write the plan.
        #[arg(short, long, value_name = "PLAN")]
        output: PathBuf,
        /// Treat warnings as errors.
        #[arg(long, value_name = "WHAT", value_parser = ["warnings"])]
        deny: Option<String>,
        /// Output format of the diagnostics.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Explain what the gateway does with mail for one address.
    Explain {
        /// A `.mailgw` configuration (compiled first) or a plan file.
        file: PathBuf,
        /// The recipient.
        #[arg(long, value_name = "ADDR")]
        to: String,
        /// The envelope sender; the null sender `<>` when not given.
        #[arg(long, value_name = "ADDR")]
        from: Option<String>,
        /// The client's IP address; 192.0.2.1 (any internet host) when not
        /// given.
        #[arg(long, value_name = "IP")]
        client: Option<IpAddr>,
        /// Assume the client authenticated as this user.
        #[arg(long, value_name = "USER")]
        auth: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Show what a plan file holds.
    Inspect {
        /// The plan file.
        plan: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            files,
            deny,
            format,
        } => check(&files, deny.is_some(), format),
        Command::Build {
            file,
            output,
            deny,
            format,
        } => build(&file, &output, deny.is_some(), format),
        Command::Explain {
            file,
            to,
            from,
            client,
            auth,
            format,
        } => {
            let query = Query {
                to,
                from,
                client,
                auth,
            };
            explain(&file, &query, format)
        }
        Command::Inspect { plan } => inspect(&plan),
    }
}

fn check(files: &[PathBuf], deny_warnings: bool, format: Format) -> ExitCode {
    let mut failed = false;
    for file in files {
        let compilation = mailgw_compiler::check(file);
        failed |= report(file, &compilation, deny_warnings, format);
    }
    exit(!failed)
}

/// Prints the diagnostics of one compilation and, for humans, a summary line
/// on stderr. Returns whether the compilation failed.
fn report(file: &Path, compilation: &Compilation, deny_warnings: bool, format: Format) -> bool {
    let mut errors = 0;
    let mut warnings = 0;
    for diagnostic in &compilation.diagnostics {
        match format {
            Format::Json => out(&format!("{}\n", diagnostic.to_json(&compilation.db))),
            Format::Human => eprintln!(
                "{:?}",
                miette::Report::new(Report::new(&compilation.db, diagnostic))
            ),
        }
        match diagnostic.severity {
            Severity::Error => errors += 1,
            Severity::Warning => warnings += 1,
        }
    }
    if let Format::Human = format {
        if errors + warnings > 0 {
            eprintln!(
                "{}: {}, {}",
                file.display(),
                count(errors, "error"),
                count(warnings, "warning")
            );
        }
    }
    errors > 0 || (deny_warnings && warnings > 0)
}

/// Writes to stdout. A closed pipe (`mailgwc inspect p | head`) is not an
/// error worth a panic: the rest of the output is dropped.
fn out(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn build(file: &Path, output: &Path, deny_warnings: bool, format: Format) -> ExitCode {
    let compilation = mailgw_compiler::compile(file);
    if report(file, &compilation, deny_warnings, format) {
        return ExitCode::FAILURE;
    }
    let Some(plan) = compilation.plan else {
        eprintln!("error: {} did not compile to a plan", file.display());
        return ExitCode::FAILURE;
    };
    let written = match write_atomically(output, |file| plan.write(file)) {
        Ok(written) => written,
        Err(error) => {
            eprintln!("error: cannot write the plan {}: {error}", output.display());
            return ExitCode::FAILURE;
        }
    };
    match format {
        Format::Human => out(&format!(
            "wrote {} ({} bytes, checksum {})\n",
            output.display(),
            written.len,
            written.checksum_hex()
        )),
        // One more JSON line after the diagnostics, so the output stays
        // one JSON value per line.
        Format::Json => out(&format!(
            "{}\n",
            serde_json::json!({
                "plan": output.display().to_string(),
                "bytes": written.len,
                "checksum": written.checksum_hex(),
            })
        )),
    }
    ExitCode::SUCCESS
}

/// Writes a temporary file next to `path` with `write`, syncs it, then
/// renames it over `path`, so a running gateway never sees a half-written plan.
fn write_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "plan".into(), |n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        let written = write(&mut file)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        Ok(written)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Whether `path` starts with the plan magic bytes.
fn is_plan(path: &Path) -> bool {
    let mut magic = [0u8; MAGIC.len()];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok_and(|()| magic == MAGIC)
}

fn explain(file: &Path, query: &Query, format: Format) -> ExitCode {
    let plan = if is_plan(file) {
        match Plan::load(file) {
            Ok(plan) => plan,
            Err(error) => {
                eprintln!("{}", load_error(file, &error));
                return ExitCode::FAILURE;
            }
        }
    } else {
        let compilation = mailgw_compiler::compile(file);
        // Warnings do not stop explain, but errors do, and both are shown.
        let failed = report(file, &compilation, false, Format::Human);
        match compilation.plan {
            Some(plan) if !failed => plan,
            _ => return ExitCode::FAILURE,
        }
    };
    match explain::explain(&plan, query) {
        Ok(explanation) => {
            match format {
                Format::Human => out(&explanation.to_string()),
                Format::Json => out(&format!("{:#}\n", explanation.to_json())),
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn inspect(path: &Path) -> ExitCode {
    match Plan::load(path) {
        Ok(plan) => {
            out(&Summary(&plan).to_string());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{}", load_error(path, &error));
            ExitCode::FAILURE
        }
    }
}

/// `error: PLAN: what is wrong`; a read error already names the file.
fn load_error(path: &Path, error: &LoadError) -> String {
    match error {
        LoadError::Io { .. } => format!("error: {error}"),
        _ => format!("error: {}: {error}", path.display()),
    }
}
