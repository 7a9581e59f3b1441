//! Reads an inbound file as a source's mapping describes and counts its
//! records, applying nothing: the parse alone (envelope, segments, records;
//! no row checks, no ledger, no archive). `scripts/bench` times it against
//! Bots' parse of the same 846, which also stops at its parse tree.
//!
//!     cargo run --release --example parse_only -- CONFIG SOURCE FILE

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, source, file] = args.as_slice() else {
        eprintln!("usage: parse_only CONFIG SOURCE FILE");
        return ExitCode::from(2);
    };
    let cfg = match stockgate::config::load(std::path::Path::new(config)) {
        Ok(c) => c,
        Err(problems) => {
            eprintln!("{config}: {} problems", problems.len());
            return ExitCode::from(2);
        }
    };
    let Some(src) = cfg.inbound(source) else {
        eprintln!("no inbound source {source}");
        return ExitCode::from(2);
    };
    let mut bad = 0u64;
    let read =
        stockgate::formats::read_records(std::path::Path::new(file), &src.mapping, &mut |rec| {
            bad += u64::from(rec.error.is_some());
            Ok(())
        });
    match read {
        Ok(n) => {
            println!("{n} records, {bad} with a defect");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{file}: {e}");
            ExitCode::FAILURE
        }
    }
}
