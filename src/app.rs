//! The command line: parse, load and validate the config, call the library,
//! print (data and --json to stdout, logs to stderr), choose the exit code.

use crate::config::{self, Config};
use crate::ledger::Ledger;
use crate::pickup::{self, Outcome};
use crate::sync::{SyncOptions, SyncReport, sync_cart};
use crate::util::{Problem, now_ms};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

/// Like println!, but a closed stdout (`stockgate ... | head`) is not a panic.
macro_rules! outln {
    () => {
        outln!("")
    };
    ($($t:tt)*) => {{
        use std::io::Write as _;
        // Names and values come from partners' files: a control character
        // (a newline, ESC) is shown escaped, never let through to forge a
        // line or drive the terminal.
        let line = $crate::util::escape(&format!($($t)*));
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }};
}

/// Exit codes of CONTRACT §2.
pub const OK: i32 = 0;
pub const FAILED: i32 = 1;
pub const USAGE: i32 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "stockgate",
    version,
    about = "Inventory-sync gateway: warehouse files in, cart feeds out"
)]
pub struct Cli {
    /// Config file (default ./stockgate.toml, or $STOCKGATE_CONFIG)
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Log lines on stderr: `human` (default) or `json` (one object per line)
    #[arg(long, global = true, value_name = "FORMAT", default_value = "human", value_parser = ["human", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a ready-to-run workspace: config, mappings, sample files
    Init { dir: PathBuf },
    /// Initialize DIR (default ./stockgate-demo) if needed, run the gateway once, show the feeds
    Demo { dir: Option<PathBuf> },
    /// Run the gateway; --once: pick up every source once, sync every due cart once, exit
    Run {
        /// Pick up every source once, sync every due cart once, then exit
        #[arg(long)]
        once: bool,
        /// Also serve /healthz, /metrics and a status page on ADDR (e.g. 127.0.0.1:9181)
        #[arg(long, value_name = "ADDR")]
        http: Option<String>,
    },
    /// Apply files now, exactly as inbound source ID would
    Ingest {
        #[arg(long)]
        source: String,
        /// Apply a held full snapshot
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Sync one cart now
    Sync {
        cart: String,
        /// Ignore the gate and the schedule
        #[arg(long)]
        force: bool,
        /// Render and summarize; send and record nothing
        #[arg(long)]
        dry_run: bool,
        /// Write the feed to FILE instead of the cart's transport
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Carts due and last outcomes; inbound sources and their errors
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Why a cart gets the number it gets for a SKU
    Explain {
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        sku: String,
        #[arg(long)]
        cart: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Past sync attempts, newest first
    History {
        #[arg(long)]
        cart: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u64,
        #[arg(long)]
        json: bool,
    },
    /// Validate the config and every mapping; list every problem
    Check,
}

/// Entry point for the binary; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { USAGE } else { OK };
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("STOCKGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        // suppaftp traces every command it sends, PASS with the password.
        .add_directive("suppaftp=info".parse().expect("a valid directive"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false);
    if cli.log_format == "json" {
        logs.json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            FAILED
        }
    }
}

fn load(cli_config: &Option<PathBuf>) -> Result<Config, i32> {
    let path = config::default_path(cli_config.clone());
    config::load(&path).map_err(|problems| {
        print_problems(&problems);
        USAGE
    })
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn print_problems(problems: &[Problem]) {
    for p in problems {
        eprintln!("error: {p}");
    }
    eprintln!("{} found", count(problems.len(), "problem"));
}

/// For commands that only read (status, explain, history): no writes to an
/// existing ledger, so a long ingest in the daemon never makes them wait. A
/// new ledger is set up as every command sets it up.
fn open_read(cfg: &Config) -> anyhow::Result<Ledger> {
    if !cfg.ledger_path.exists() {
        return open(cfg);
    }
    Ok(Ledger::open(&cfg.ledger_path)?)
}

fn open(cfg: &Config) -> anyhow::Result<Ledger> {
    let ledger = Ledger::open(&cfg.ledger_path)?;
    ledger.ensure(
        &cfg.merchants,
        &cfg.carts.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
    )?;
    Ok(ledger)
}

fn json(v: &impl serde::Serialize) {
    use std::io::Write as _;
    // JSON escapes control characters in strings itself.
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

macro_rules! try_cfg {
    ($e:expr) => {
        match $e {
            Ok(c) => c,
            Err(code) => return Ok(code),
        }
    };
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Init { dir } => match crate::init::init(&dir) {
            Ok(cfg) => {
                outln!("workspace written: {}", cfg.display());
                outln!("next: stockgate --config {} run --once", cfg.display());
                Ok(OK)
            }
            Err(e @ crate::init::InitError::Exists(_)) => {
                eprintln!("error: {e}");
                Ok(USAGE)
            }
            Err(e) => Err(e.into()),
        },
        Command::Demo { dir } => demo(dir.unwrap_or_else(|| PathBuf::from("stockgate-demo"))),
        Command::Check => {
            let path = config::default_path(cli.config.clone());
            match config::load(&path) {
                Ok(cfg) => {
                    for w in &cfg.warnings {
                        outln!("warning: {w}");
                    }
                    outln!(
                        "ok: {} ({}, {}, {}, all mappings valid)",
                        path.display(),
                        count(cfg.merchants.len(), "merchant"),
                        count(cfg.inbound.len(), "inbound source"),
                        count(cfg.carts.len(), "cart")
                    );
                    Ok(OK)
                }
                Err(problems) => {
                    for p in &problems {
                        outln!("{p}");
                    }
                    eprintln!("{} found", count(problems.len(), "problem"));
                    Ok(USAGE)
                }
            }
        }
        Command::Run { once, http } => {
            let cfg = try_cfg!(load(&cli.config));
            // Rule 18: one `run` per ledger.
            let _lock = match crate::locks::instance(&cfg) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(USAGE);
                }
            };
            let mut ledger = open(&cfg)?;
            if once {
                crate::daemon::clean_up_after_crashes(&cfg);
                if let Err(e) = crate::daemon::prune(&cfg) {
                    tracing::error!(error = %e, "retention failed");
                }
                let pass = crate::daemon::run_once(&cfg, &mut ledger, 0);
                print_pass(&pass);
                outln!("{}", pass_summary(&pass));
                let bad = !pass.errors.is_empty()
                    || pass
                        .files
                        .iter()
                        .any(|f| matches!(f.outcome, Outcome::Rejected | Outcome::Held))
                    || pass.syncs.iter().any(SyncReport::is_failure);
                Ok(if bad { FAILED } else { OK })
            } else {
                drop(ledger);
                let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let hup = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                    signal_hook::flag::register(sig, stop.clone())?;
                }
                signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
                let path = config::default_path(cli.config.clone());
                let opts = crate::daemon::RunOptions { http };
                match crate::daemon::run(&path, cfg, stop, hup, opts) {
                    Ok(()) => Ok(OK),
                    Err(e) => {
                        eprintln!("error: {e}");
                        Ok(USAGE)
                    }
                }
            }
        }
        Command::Ingest {
            source,
            force,
            json: as_json,
            files,
        } => {
            let cfg = try_cfg!(load(&cli.config));
            let Some(src) = cfg.inbound(&source) else {
                eprintln!(
                    "error: no inbound source {source:?} in {}",
                    cfg.path.display()
                );
                return Ok(USAGE);
            };
            let mut ledger = open(&cfg)?;
            let mut outs = vec![];
            let mut code = OK;
            for f in &files {
                if !f.is_file() {
                    eprintln!("error: {}: no such file", f.display());
                    code = FAILED;
                    continue;
                }
                let opts = pickup::Options {
                    force,
                    consume: false,
                    pickup_time: now_ms(),
                };
                let out = pickup::ingest_file(&cfg, &mut ledger, src, f, opts)?;
                if matches!(out.outcome, Outcome::Rejected | Outcome::Held) {
                    code = FAILED;
                }
                outs.push(out);
            }
            if as_json {
                json(&outs);
            } else {
                outs.iter().for_each(print_file);
            }
            Ok(code)
        }
        Command::Sync {
            cart,
            force,
            dry_run,
            output,
            json: as_json,
        } => {
            let cfg = try_cfg!(load(&cli.config));
            let Some(c) = cfg.cart(&cart) else {
                eprintln!("error: no cart {cart:?} in {}", cfg.path.display());
                return Ok(USAGE);
            };
            let mut ledger = open(&cfg)?;
            let r = sync_cart(
                &cfg,
                &mut ledger,
                c,
                &SyncOptions {
                    force,
                    dry_run,
                    output,
                },
            )?;
            if as_json {
                json(&r);
            } else {
                print_sync(&r);
            }
            Ok(if r.is_failure() { FAILED } else { OK })
        }
        Command::Status { json: as_json } => {
            let cfg = try_cfg!(load(&cli.config));
            let ledger = open_read(&cfg)?;
            let s = crate::inspect::status(&cfg, &ledger)?;
            if as_json {
                json(&s);
            } else {
                outln!(
                    "{:<20} {:<8} {:<12} {:<10} {:<26} {:<26} pending",
                    "cart",
                    "format",
                    "schedule",
                    "last",
                    "last success",
                    "next due"
                );
                for c in &s.carts {
                    outln!(
                        "{:<20} {:<8} {:<12} {:<10} {:<26} {:<26} {}",
                        c.cart,
                        c.format,
                        c.schedule,
                        c.last_outcome.as_deref().unwrap_or("-"),
                        c.last_success.as_deref().unwrap_or("-"),
                        c.next_due.as_deref().unwrap_or("-"),
                        c.pending
                    );
                }
                outln!();
                outln!(
                    "{:<20} {:<10} {:>8} {:>8} {:>5} {:<26} last error",
                    "source",
                    "kind",
                    "applied",
                    "rejected",
                    "held",
                    "last pickup"
                );
                for i in &s.inbound {
                    outln!(
                        "{:<20} {:<10} {:>8} {:>8} {:>5} {:<26} {}",
                        i.source,
                        i.kind,
                        i.applied,
                        i.rejected,
                        i.held,
                        i.last_pickup.as_deref().unwrap_or("-"),
                        i.last_error.as_deref().unwrap_or("-")
                    );
                }
            }
            Ok(OK)
        }
        Command::Explain {
            merchant,
            sku,
            cart,
            json: as_json,
        } => {
            let cfg = try_cfg!(load(&cli.config));
            if !cfg.merchants.contains(&merchant) {
                eprintln!("error: no merchant {merchant:?} in {}", cfg.path.display());
                return Ok(USAGE);
            }
            if let Some(c) = &cart
                && cfg.cart(c).is_none_or(|c| c.merchant != merchant)
            {
                eprintln!("error: no cart {c:?} for merchant {merchant:?}");
                return Ok(USAGE);
            }
            let ledger = open_read(&cfg)?;
            let e = crate::inspect::explain(&cfg, &ledger, &merchant, &sku, cart.as_deref())?;
            if as_json {
                json(&e);
            } else {
                print_explain(&e);
            }
            Ok(OK)
        }
        Command::History {
            cart,
            limit,
            json: as_json,
        } => {
            let cfg = try_cfg!(load(&cli.config));
            let ledger = open_read(&cfg)?;
            let entries: Vec<SyncReport> = ledger
                .history(cart.as_deref(), limit)?
                .iter()
                .map(SyncReport::from_entry)
                .collect();
            if as_json {
                json(&entries);
            } else {
                for r in &entries {
                    outln!(
                        "{}  {:<20} {:<8} {:>7} items  {}{}",
                        r.started_at,
                        r.cart,
                        r.outcome,
                        r.items,
                        r.file.as_deref().unwrap_or("-"),
                        r.reason
                            .as_deref()
                            .map(|s| format!("  ({s})"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(OK)
        }
    }
}

fn print_file(f: &pickup::FileOutcome) {
    let what = match f.outcome {
        Outcome::Applied => "applied",
        Outcome::Duplicate => "duplicate",
        Outcome::Rejected => "rejected",
        Outcome::Held => "held",
    };
    let mut line = format!("{what:<9} {}  rows={} stale={}", f.file, f.rows, f.stale);
    if let Some(z) = f.zeroed {
        line.push_str(&format!(" zeroed={z}"));
    }
    outln!("{line}");
    for e in &f.errors {
        outln!("    {e}");
    }
    if let Some(q) = &f.quarantined {
        outln!("    quarantined: {q} (reasons in {q}.error.txt)");
    }
}

fn print_sync(r: &SyncReport) {
    let mut line = format!("{:<8} {}: {} items", r.outcome, r.cart, r.items);
    if let Some(f) = &r.file {
        line.push_str(&format!(" -> {f}"));
    }
    if let Some(b) = r.bytes {
        line.push_str(&format!(" ({b} bytes)"));
    }
    if let Some(reason) = &r.reason {
        line.push_str(&format!("  [{reason}]"));
    }
    outln!("{line}");
}

/// `run --once`'s last line, said even when nothing was due.
fn pass_summary(p: &crate::daemon::Pass) -> String {
    let n = |o: Outcome| p.files.iter().filter(|f| f.outcome == o).count();
    let s = |o: &str| p.syncs.iter().filter(|r| r.outcome == o).count();
    format!(
        "run --once: {} ({} applied, {} duplicate, {} rejected, {} held), {} synced ({} sent, {} skipped, {} failed), {}",
        count(p.files.len(), "file"),
        n(Outcome::Applied),
        n(Outcome::Duplicate),
        n(Outcome::Rejected),
        n(Outcome::Held),
        count(p.syncs.len(), "cart"),
        s("sent"),
        s("skipped"),
        s("failed"),
        count(p.errors.len(), "error")
    )
}

fn print_pass(p: &crate::daemon::Pass) {
    p.files.iter().for_each(print_file);
    p.syncs.iter().for_each(print_sync);
    for e in &p.errors {
        outln!("error    {e}");
    }
}

fn print_explain(e: &crate::inspect::Explain) {
    outln!(
        "{} / {}{}",
        e.merchant,
        e.sku,
        if e.known { "" } else { "  (not in the ledger)" }
    );
    outln!("stock counted:");
    for w in &e.warehouses {
        outln!(
            "  {:<10} {:>8}  as of {}  ({})",
            w.warehouse,
            w.quantity,
            w.as_of,
            w.report
        );
    }
    outln!("orders since the count:");
    if e.orders_subtracted.is_empty() {
        outln!("  none");
    }
    for o in &e.orders_subtracted {
        outln!(
            "  order {} line {}: -{}  at {}",
            o.order_id,
            o.line,
            o.quantity,
            o.ordered_at
        );
    }
    outln!("available: {}", e.available);
    for c in &e.carts {
        let wh = if c.warehouses.is_empty() {
            "all warehouses".to_string()
        } else {
            c.warehouses.join(",")
        };
        outln!(
            "  cart {:<20} ({wh}, min_level {}): available {} -> sends {}",
            c.cart,
            c.min_level,
            c.available,
            c.value
        );
    }
}

/// `demo`: a workspace (made if missing), one pass of the gateway, and
/// where every feed went.
fn demo(dir: PathBuf) -> anyhow::Result<i32> {
    let cfg_path = dir.join("stockgate.toml");
    if !cfg_path.exists() {
        crate::init::init(&dir)?;
        outln!("initialized demo workspace in {}", dir.display());
    }
    let cfg = match config::load(&cfg_path) {
        Ok(c) => c,
        Err(p) => {
            print_problems(&p);
            return Ok(USAGE);
        }
    };
    let mut ledger = open(&cfg)?;
    let pass = crate::daemon::run_once(&cfg, &mut ledger, 0);
    print_pass(&pass);
    // A second run finds nothing due or nothing new, and says so: the gateway
    // never sends a feed just to have something to show.
    if pass.syncs.iter().all(|s| s.outcome != "sent") {
        outln!(
            "nothing new to send (carts not due, or no new inventory); drop files into var/inbox/* and run again"
        );
    }
    outln!();
    outln!("feeds:");
    for c in &cfg.carts {
        if let Some(d) = c.transport.dir() {
            let mut files: Vec<_> = std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect();
            files.sort();
            if let Some(last) = files.last() {
                outln!("  {:<20} {}", c.id, last.display());
            }
        }
    }
    outln!();
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| {
            p.strip_prefix(std::env::current_dir().ok()?)
                .map(Path::to_path_buf)
                .ok()
                .or(Some(p))
        })
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "stockgate".into());
    outln!(
        "try:  {exe} --config {} explain --merchant acme --sku WIDGET-1",
        cfg_path.display()
    );
    outln!("      {exe} --config {} status", cfg_path.display());
    Ok(OK)
}
