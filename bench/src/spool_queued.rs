//! `spool-queued`: how many messages a mailgw spool still holds.
//!
//! ```text
//! spool-queued SPOOL
//! ```
//!
//! Prints the number of queued messages in the spool directory `SPOOL`, read
//! with [`Spool::queued_ids`] as the end-to-end tests do: without the lock, so
//! it works on a running gateway's spool. `bench/relay.sh` uses it to check
//! that the queue is empty once the sink has every message.

use std::process::ExitCode;

use mailgw_runtime::spool::Spool;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(spool), None) = (args.next(), args.next()) else {
        eprintln!("usage: spool-queued SPOOL");
        return ExitCode::from(2);
    };
    match Spool::queued_ids(&spool) {
        Ok(ids) => {
            println!("{}", ids.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("spool-queued: {e}");
            ExitCode::FAILURE
        }
    }
}
