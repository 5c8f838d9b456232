//! `mailgwc`: check, build, explain and inspect mailgw configurations.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use mailgw_compiler::diagnostic::{Report, Severity};

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
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
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
    }
}

fn check(files: &[PathBuf], deny_warnings: bool, format: Format) -> ExitCode {
    let mut failed = false;
    for file in files {
        let compilation = mailgw_compiler::check(file);
        for diagnostic in &compilation.diagnostics {
            match format {
                Format::Json => println!("{}", diagnostic.to_json(&compilation.db)),
                Format::Human => eprintln!(
                    "{:?}",
                    miette::Report::new(Report::new(&compilation.db, diagnostic))
                ),
            }
            failed |= diagnostic.severity == Severity::Error || deny_warnings;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
