//! `plan-load`: how fast a built plan loads and answers recipient lookups.
//!
//! ```text
//! plan-load PLAN ADDRESSES [--loads N] [--rounds N]
//! ```
//!
//! `PLAN` is a file written by `mailgwc build`; `ADDRESSES` is the
//! `postmap.txt` that `bench/gen_config.py` wrote next to the configuration
//! (`address<TAB>mailbox` lines). The program
//!
//! 1. loads the plan `--loads` times (read, checksum, decode) and reports the
//!    median;
//! 2. looks up every address of the file plus as many addresses that are not
//!    recipients (half with a known domain, half with an unknown one),
//!    `--rounds` times, and reports the median lookups per second: once for
//!    [`RecipientTable::lookup`](mailgw_plan::RecipientTable::lookup) alone on
//!    normalized keys (`lookups_per_s`, the benchmark's target), once with
//!    [`normalize_address`] in front, as the runtime does for each `RCPT TO`
//!    (`normalize_lookups_per_s`).
//!
//! Every hit must be found and no miss may be, so a broken table fails the
//! benchmark instead of making it fast. Results go to stdout as `key value`
//! lines for `bench/compile.sh` to parse.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The allocator the runtime loads plans with: a plan is hundreds of
/// thousands of small strings, which mimalloc allocates markedly faster.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use mailgw_plan::{normalize_address, Plan};

/// Command line options.
struct Options {
    plan: PathBuf,
    addresses: PathBuf,
    loads: usize,
    rounds: usize,
}

const USAGE: &str = "usage: plan-load PLAN ADDRESSES [--loads N] [--rounds N]";

fn parse_args() -> Result<Options, String> {
    let mut positional = Vec::new();
    let mut loads = 10;
    let mut rounds = 5;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--loads") => loads = count(args.next(), "--loads")?,
            Some("--rounds") => rounds = count(args.next(), "--rounds")?,
            Some("-h" | "--help") => return Err(USAGE.to_owned()),
            Some(flag) if flag.starts_with("--") => {
                return Err(format!("unknown option {flag}\n{USAGE}"))
            }
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let [plan, addresses] = <[PathBuf; 2]>::try_from(positional)
        .map_err(|_| format!("expected PLAN and ADDRESSES\n{USAGE}"))?;
    Ok(Options {
        plan,
        addresses,
        loads,
        rounds,
    })
}

/// Parses the value of a repetition option: a positive integer.
fn count(value: Option<std::ffi::OsString>, flag: &str) -> Result<usize, String> {
    value
        .as_deref()
        .and_then(|v| v.to_str())
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{flag} needs a positive integer"))
}

/// Reads and decodes the plan file, the way the runtime starts.
fn load(path: &Path) -> Result<Plan, String> {
    Plan::load(path).map_err(|e| format!("cannot load plan {}: {e}", path.display()))
}

/// True when the plan has a recipient (mailbox or group) with this
/// normalized address.
fn is_recipient(plan: &Plan, key: &str) -> bool {
    plan.recipients.lookup(key).is_some()
}

/// True when the plan has a recipient with this address as a client wrote it.
fn is_recipient_raw(plan: &Plan, address: &str) -> bool {
    is_recipient(plan, &normalize_address(address))
}

/// Median time of `rounds` runs of `lookup` over `addresses`.
fn time_rounds(
    rounds: usize,
    addresses: &[String],
    plan: &Plan,
    lookup: fn(&Plan, &str) -> bool,
) -> Duration {
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let mut found = 0usize;
        for address in addresses {
            found += usize::from(lookup(plan, black_box(address)));
        }
        times.push(start.elapsed());
        black_box(found);
    }
    median(times)
}

/// Lookups per second for `count` lookups in `time`.
fn rate(count: usize, time: Duration) -> f64 {
    count as f64 / time.as_secs_f64().max(1e-9)
}

/// The addresses to look up: every address of the file, then the misses.
struct Workload {
    hits: Vec<String>,
    misses: Vec<String>,
}

fn read_workload(path: &Path) -> Result<Workload, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read addresses {}: {e}", path.display()))?;
    let mut hits = Vec::new();
    let mut misses = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let address = line.split('\t').next().unwrap_or_default().trim();
        let Some((local, domain)) = address.split_once('@') else {
            return Err(format!(
                "{}:{}: expected address<TAB>mailbox",
                path.display(),
                number + 1
            ));
        };
        // Alternate misses between an unknown local part in a local domain
        // and a domain the gateway does not know at all.
        misses.push(if number % 2 == 0 {
            format!("nobody-{local}@{domain}")
        } else {
            format!("{local}@not-{domain}")
        });
        hits.push(address.to_owned());
    }
    if hits.is_empty() {
        return Err(format!("{}: no addresses", path.display()));
    }
    Ok(Workload { hits, misses })
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn run(options: &Options) -> Result<(), String> {
    let plan_bytes = std::fs::metadata(&options.plan)
        .map_err(|e| format!("cannot stat plan {}: {e}", options.plan.display()))?
        .len();

    let mut load_times = Vec::with_capacity(options.loads);
    for _ in 0..options.loads {
        let start = Instant::now();
        let plan = load(&options.plan)?;
        load_times.push(start.elapsed());
        drop(black_box(plan));
    }
    let plan = load(&options.plan)?;

    let workload = read_workload(&options.addresses)?;
    let missing = workload
        .hits
        .iter()
        .filter(|a| !is_recipient_raw(&plan, a))
        .count();
    let false_hits = workload
        .misses
        .iter()
        .filter(|a| is_recipient_raw(&plan, a))
        .count();
    if missing > 0 || false_hits > 0 {
        return Err(format!(
            "recipient table is wrong: {missing} of {} addresses not found, {false_hits} of {} non-recipients found",
            workload.hits.len(),
            workload.misses.len()
        ));
    }

    let raw: Vec<String> = workload.hits.into_iter().chain(workload.misses).collect();
    let keys: Vec<String> = raw.iter().map(|a| normalize_address(a)).collect();
    let lookups = raw.len();
    let round_median = time_rounds(options.rounds, &keys, &plan, is_recipient);
    let raw_median = time_rounds(options.rounds, &raw, &plan, is_recipient_raw);
    let load_median = median(load_times);
    let addresses = plan.recipients.len();

    println!("plan_bytes {plan_bytes}");
    println!("loads {}", options.loads);
    println!("load_median_s {:.6}", load_median.as_secs_f64());
    println!("addresses {addresses}");
    println!("lookups_per_round {lookups}");
    println!("rounds {}", options.rounds);
    println!("lookup_round_median_s {:.6}", round_median.as_secs_f64());
    println!("lookups_per_s {:.0}", rate(lookups, round_median));
    println!("normalize_lookups_per_s {:.0}", rate(lookups, raw_median));
    Ok(())
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|options| run(&options));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("plan-load: {message}");
            ExitCode::FAILURE
        }
    }
}
