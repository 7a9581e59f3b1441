//! The command line: parse, load and validate the config, call the library,
//! print (data and --json to stdout, logs to stderr), choose the exit code.

use crate::config::{self, Config};
use crate::ledger::SyncOutcome;
use crate::ledger::{Ledger, LedgerError};
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

const AFTER_HELP: &str = "\
Examples:
  stockgate demo                                   # a workspace in ./stockgate-demo, one pass, the feeds
  stockgate init shop && cd shop                   # a ready-to-run workspace to edit
  stockgate check                                  # every problem of the config and its mappings
  stockgate run --once                             # pick up every source, sync every due cart, exit
  stockgate ingest --source acme-wms stock.csv     # apply a file now (a fixed quarantined file too)
  stockgate sync acme-shop --dry-run               # what would be sent, sending nothing
  stockgate status                                 # carts due, sources and their errors
  stockgate explain --merchant acme --sku WIDGET-1 # why a cart gets the number it gets
  stockgate history --cart acme-shop --limit 5

Exit status:
  0  success (a skipped sync is a success)
  1  the work failed (a rejected or held file, a failed delivery)
  2  bad usage or bad config (an unknown cart, source or merchant included)

Environment:
  STOCKGATE_CONFIG        config file when --config is not given (default ./stockgate.toml)
  STOCKGATE_LOG           log filter, e.g. warn, info, debug, stockgate=debug (-q and -v win over it)
  STOCKGATE_CLOCK_OFFSET  shift the clock, e.g. 2h or -30m (tests and drills only)
  NO_COLOR                no colour with --color auto

Data and --json go to stdout, logs to stderr. A man page: stockgate man > stockgate.1;
shell completions: stockgate completions bash|zsh|fish.";

#[derive(Parser, Debug)]
#[command(
    name = "stockgate",
    version,
    about = "Inventory-sync gateway: warehouse files in, cart feeds out",
    long_about = "Inventory-sync gateway: warehouses and order sources drop files \
(CSV, XML, X12) in folders or on FTP/SFTP servers; stockgate keeps one SQLite ledger \
of stock and orders per merchant and, on each cart's schedule, renders and delivers \
that cart's feed (CSV, XML or X12 846).",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Config file [default: ./stockgate.toml, or $STOCKGATE_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log lines on stderr: `human` (default) or `json` (one object per line)
    #[arg(long, global = true, value_name = "FORMAT", default_value = "human", value_parser = ["human", "json"])]
    pub log_format: String,
    /// Colour on a terminal: auto (default; off when NO_COLOR is set), always, never
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,
    /// Quiet: only errors on stderr (no warnings, no progress bar)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More log lines on stderr: -v info, -vv debug (a command's results are printed anyway)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// `--config`, on the commands that read a config (also accepted before the command).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConfigArg {
    /// Config file [default: ./stockgate.toml, or $STOCKGATE_CONFIG]
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a ready-to-run workspace: config, mappings, sample files
    #[command(after_help = "Example: stockgate init shop && cd shop && stockgate run --once")]
    Init {
        /// Folder to create (must not hold a stockgate.toml yet)
        #[arg(required_unless_present = "list_presets")]
        dir: Option<PathBuf>,
        /// List the retailer preset mappings init writes, with their guides, and exit
        #[arg(long)]
        list_presets: bool,
    },
    /// Initialize DIR (default ./stockgate-demo) if needed, run the gateway once, show the feeds
    #[command(
        after_help = "Example: stockgate demo && stockgate demo   # the second run sends nothing new"
    )]
    Demo {
        /// Demo workspace folder [default: ./stockgate-demo]
        dir: Option<PathBuf>,
    },
    /// Run the gateway; --once: pick up every source once, sync every due cart once, exit
    #[command(
        after_help = "Examples:\n  stockgate run                          # until SIGTERM/SIGINT; SIGHUP reloads the config\n  stockgate run --once                   # one pass, for cron\n  stockgate run --http 127.0.0.1:9181    # also /healthz, /metrics and a status page"
    )]
    Run {
        #[command(flatten)]
        cfg: ConfigArg,
        /// Pick up every source once, sync every due cart once, then exit (exit 1 if anything failed)
        #[arg(long)]
        once: bool,
        /// Also serve /healthz, /metrics and a status page on ADDR (e.g. 127.0.0.1:9181)
        #[arg(long, value_name = "ADDR")]
        http: Option<String>,
    },
    /// Apply files now, exactly as inbound source ID would
    #[command(
        after_help = "Examples:\n  stockgate ingest --source acme-wms stock.csv\n  stockgate ingest --source acme-wms var/quarantine/acme-wms/stock.csv   # retry a fixed file\n  stockgate ingest --source acme-wms --force var/quarantine/acme-wms/short.csv   # apply a held snapshot\n\nExit status 1 when any file is rejected or held (reasons in <file>.error.txt in quarantine)."
    )]
    Ingest {
        #[command(flatten)]
        cfg: ConfigArg,
        /// Inbound source id (an [[inbound]] id of the config) whose mapping reads the files
        #[arg(long, value_name = "ID")]
        source: String,
        /// Apply a held full snapshot (one that would zero more SKUs than max_zeroed)
        #[arg(long)]
        force: bool,
        /// Print one JSON list, an object per file, instead of lines
        #[arg(long)]
        json: bool,
        /// Files to apply, in order
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Sync one cart now
    #[command(
        after_help = "Examples:\n  stockgate sync acme-shop\n  stockgate sync acme-shop --dry-run --output /tmp/feed.csv\n  stockgate sync acme-shop --force      # ignore the gate: send even with no new inventory\n\nA sync that sends moves the cart's schedule; a skipped one leaves its next due time alone."
    )]
    Sync {
        #[command(flatten)]
        cfg: ConfigArg,
        /// Cart id (a [[cart]] id of the config)
        #[arg(value_name = "CART")]
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
        /// Print the result as one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Carts due and last outcomes; inbound sources and their errors
    #[command(after_help = "Times are shown in the local time zone (RFC 3339 with --json).")]
    Status {
        #[command(flatten)]
        cfg: ConfigArg,
        /// Print one JSON object (times in RFC 3339)
        #[arg(long)]
        json: bool,
    },
    /// Why a cart gets the number it gets for a SKU
    #[command(
        after_help = "Example: stockgate explain --merchant acme --sku WIDGET-1 --cart acme-shop"
    )]
    Explain {
        #[command(flatten)]
        cfg: ConfigArg,
        /// Merchant id (a [[merchant]] id) that owns the SKU
        #[arg(long, value_name = "M")]
        merchant: String,
        /// The SKU, as the warehouse files spell it
        #[arg(long, value_name = "SKU")]
        sku: String,
        /// Only this cart (its warehouses and min_level) [default: every cart of the merchant]
        #[arg(long, value_name = "C")]
        cart: Option<String>,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Orders and their status: open, sent, partial, shipped, confirmed, cancelled
    #[command(
        after_help = "Examples:\n  stockgate orders --status sent\n  stockgate orders --merchant acme --json"
    )]
    Orders {
        #[command(flatten)]
        cfg: ConfigArg,
        /// Only this merchant's orders
        #[arg(long, value_name = "M")]
        merchant: Option<String>,
        /// Only orders with this status (open, sent, partial, shipped, confirmed, cancelled)
        #[arg(long, value_name = "S")]
        status: Option<String>,
        /// Print one JSON list
        #[arg(long)]
        json: bool,
    },
    /// Past sync attempts, newest first
    #[command(after_help = "Example: stockgate history --cart acme-shop --limit 5 --json")]
    History {
        #[command(flatten)]
        cfg: ConfigArg,
        /// Only this cart's attempts [default: every cart]
        #[arg(long, value_name = "C")]
        cart: Option<String>,
        /// At most N entries
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: u64,
        /// Print one JSON list
        #[arg(long)]
        json: bool,
    },
    /// What waits in quarantine for an operator, oldest first; retry or discard it
    #[command(
        after_help = "Examples:\n  stockgate quarantine\n  stockgate quarantine retry --source acme-wms stock-20261120.csv\n  stockgate quarantine retry --source acme-wms stock-20261120.csv --force   # a held snapshot that is complete\n  stockgate quarantine discard --source acme-wms stock-20261120.csv          # kept in the archive"
    )]
    Quarantine {
        #[command(flatten)]
        cfg: ConfigArg,
        /// Only this inbound source's files [default: every source]
        #[arg(long, value_name = "S")]
        source: Option<String>,
        /// Print one JSON list
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        action: Option<QuarantineAction>,
    },
    /// Validate the config and every mapping; list every problem
    #[command(
        after_help = "Every problem of the config and of every mapping it names is listed in one run,\neach once, as FILE:LINE: key `KEY`: what is wrong. Exit status 2 when there is any.\n\nWith --connect, once the config is good, every endpoint is also reached: each remote\none logged in to (host key or certificate checked), its folder listed (inbound) or a\ntemporary file written and removed (outbound); each local folder found or makeable and,\noutbound, writable. One line per endpoint; exit status 1 when any fails. Nothing is\nfetched, delivered or recorded."
    )]
    Check {
        #[command(flatten)]
        cfg: ConfigArg,
        /// Also log in to every endpoint and try its folder (changes nothing)
        #[arg(long)]
        connect: bool,
    },
    /// Create or upgrade the ledger's schema (SQLite or PostgreSQL); `run` does it too
    Migrate {
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Copy a SQLite ledger, history included, into the (empty) PostgreSQL ledger of the config
    #[command(
        after_help = "Example: STOCKGATE_DATABASE_URL=postgres://gw@db/stock stockgate copy-ledger --from var/ledger.sqlite

The config's [ledger] names the PostgreSQL database (url or url_env); it must hold no
ledger yet. Everything is copied in one transaction: a failure leaves it empty.
Stop the gateways using the SQLite ledger first."
    )]
    CopyLedger {
        #[command(flatten)]
        cfg: ConfigArg,
        /// The SQLite ledger file to copy
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Print the man page (roff) on stdout: stockgate man > stockgate.1
    Man,
    /// Print a shell completion script on stdout
    #[command(
        after_help = "Examples:\n  stockgate completions bash > ~/.local/share/bash-completion/completions/stockgate\n  stockgate completions zsh > ~/.zfunc/_stockgate\n  stockgate completions fish > ~/.config/fish/completions/stockgate.fish"
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
pub enum QuarantineAction {
    /// Apply a quarantined file again (fixed in place, or --force for a held one)
    Retry {
        /// The inbound source whose quarantine holds it
        #[arg(long, value_name = "S")]
        source: String,
        /// Its name in quarantine/<source>/ (as `stockgate quarantine` lists it)
        #[arg(value_name = "FILE")]
        file: String,
        /// Apply a held full snapshot as it is (it is complete)
        #[arg(long)]
        force: bool,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
    /// Drop a quarantined file: it leaves quarantine, its bytes stay in the archive
    Discard {
        /// The inbound source whose quarantine holds it
        #[arg(long, value_name = "S")]
        source: String,
        /// Its name in quarantine/<source>/ (as `stockgate quarantine` lists it)
        #[arg(value_name = "FILE")]
        file: String,
    },
}

impl Command {
    /// `--config` given after the command, if any.
    fn config_arg(&self) -> Option<PathBuf> {
        match self {
            Command::Run { cfg, .. }
            | Command::Ingest { cfg, .. }
            | Command::Sync { cfg, .. }
            | Command::Status { cfg, .. }
            | Command::Explain { cfg, .. }
            | Command::History { cfg, .. }
            | Command::Orders { cfg, .. }
            | Command::Quarantine { cfg, .. }
            | Command::Migrate { cfg }
            | Command::CopyLedger { cfg, .. }
            | Command::Check { cfg, .. } => cfg.config.clone(),
            _ => None,
        }
    }
    /// Whether it prints its results itself (logs then only add what it does not say).
    fn one_shot(&self) -> bool {
        !matches!(self, Command::Run { once: false, .. })
    }
    fn json(&self) -> bool {
        match self {
            Command::Ingest { json, .. }
            | Command::Sync { json, .. }
            | Command::Status { json, .. }
            | Command::Explain { json, .. }
            | Command::History { json, .. }
            | Command::Orders { json, .. } => *json,
            Command::Quarantine { json, action, .. } => {
                *json || matches!(action, Some(QuarantineAction::Retry { json: true, .. }))
            }
            _ => false,
        }
    }
}

static COLOR_OUT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether to colour a stream: `--color`, then NO_COLOR, then whether it is a terminal.
fn colour(when: &str, terminal: bool) -> bool {
    match when {
        "always" => true,
        "never" => false,
        _ => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

/// An outcome word in its colour (when stdout is coloured).
fn paint(word: &str) -> String {
    if !COLOR_OUT.load(std::sync::atomic::Ordering::Relaxed) {
        return word.to_string();
    }
    let code = match word.trim() {
        "applied" | "sent" => "32",
        "duplicate" | "skipped" | "dry-run" => "2",
        "held" => "33",
        "rejected" | "failed" | "error" => "31",
        _ => return word.to_string(),
    };
    format!("\x1b[{code}m{word}\x1b[0m")
}

/// Prints a result line whose first word is an outcome, coloured.
fn out_result(word: &str, rest: &str) {
    use std::io::Write as _;
    let rest = crate::util::escape(rest);
    let _ = writeln!(std::io::stdout().lock(), "{}{rest}", paint(word));
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
    // One line per result: a command that prints its results logs only
    // warnings by default; the daemon logs what it does.
    let level = if cli.quiet {
        Some("error")
    } else {
        match cli.verbose {
            0 => None,
            1 => Some("info"),
            _ => Some("debug"),
        }
    };
    let default = if cli.command.one_shot() {
        "warn"
    } else {
        "info"
    };
    let filter = match level {
        Some(l) => tracing_subscriber::EnvFilter::new(l),
        None => tracing_subscriber::EnvFilter::try_from_env("STOCKGATE_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
    }
    // suppaftp traces every command it sends, PASS with the password.
    .add_directive("suppaftp=info".parse().expect("a valid directive"));
    let stderr_tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    COLOR_OUT.store(
        colour(
            &cli.color,
            std::io::IsTerminal::is_terminal(&std::io::stdout()),
        ),
        std::sync::atomic::Ordering::Relaxed,
    );
    if stderr_tty && !cli.quiet && !cli.command.json() && cli.log_format != "json" {
        crate::progress::enable();
    }
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
        logs.with_ansi(colour(&cli.color, stderr_tty)).init();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", crate::util::error_chain(e.chain()));
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
    if Ledger::is_new(&cfg.ledger) {
        return open(cfg);
    }
    Ok(Ledger::open_read(&cfg.ledger)?)
}

fn open(cfg: &Config) -> anyhow::Result<Ledger> {
    let ledger = Ledger::open(&cfg.ledger)?;
    ledger.check_writable(&cfg.ledger)?;
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

/// `check`: every problem of the config and of every mapping, in one pass;
/// `--connect`: then every endpoint reached, one line each.
fn cmd_check(cfg_flag: Option<PathBuf>, connect: bool) -> anyhow::Result<i32> {
    let path = config::default_path(cfg_flag.clone());
    match config::load_checked(&path) {
        Ok(cfg) => {
            for w in &cfg.warnings {
                outln!("warning: {w}");
            }
            let carts = cfg.carts.iter().filter(|c| c.is_inventory()).count();
            let feeds = cfg.carts.len() - carts;
            outln!(
                "ok: {} ({}, {}, {}{}, all mappings valid)",
                path.display(),
                count(cfg.merchants.len(), "merchant"),
                count(cfg.inbound.len(), "inbound source"),
                count(carts, "cart"),
                if feeds > 0 {
                    format!(", {}", count(feeds, "order/confirm feed"))
                } else {
                    String::new()
                }
            );
            if !connect {
                return Ok(OK);
            }
            let outcomes = crate::transport::probe::connect_check(&cfg);
            for o in &outcomes {
                outln!("{o}");
            }
            let failed = outcomes.iter().filter(|o| !o.ok()).count();
            if failed == 0 {
                return Ok(OK);
            }
            eprintln!("{failed} of {} failed", count(outcomes.len(), "endpoint"));
            Ok(FAILED)
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

/// One pass of the gateway (`run --once`, `demo`) under the ledger's
/// instance lock: leftovers of a crash cleaned, retention, every source
/// picked up once, every due cart synced once. `Err(code)`: another `run`
/// holds the ledger (said on stderr).
fn one_pass(cfg: &Config) -> anyhow::Result<Result<crate::daemon::Pass, i32>> {
    // Rule 18: one `run` per ledger.
    let _lock = match crate::locks::instance(cfg) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Err(USAGE));
        }
    };
    let mut ledger = open(cfg)?;
    crate::daemon::clean_up_after_crashes(cfg);
    if let Err(e) = crate::daemon::prune(cfg) {
        tracing::error!(error = %e, "retention failed");
    }
    Ok(Ok(crate::daemon::run_once(cfg, &mut ledger)))
}

/// `run` and `run --once`, holding the ledger's instance lock.
fn cmd_run(cfg_flag: Option<PathBuf>, once: bool, http: Option<String>) -> anyhow::Result<i32> {
    let cfg = try_cfg!(load(&cfg_flag));
    if once {
        let pass = match one_pass(&cfg)? {
            Ok(p) => p,
            Err(code) => return Ok(code),
        };
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
        // Rule 18: one `run` per ledger.
        let _lock = match crate::locks::instance(&cfg) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(USAGE);
            }
        };
        drop(open(&cfg)?); // set up (or upgrade) the ledger before the workers open it
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hup = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, stop.clone())?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
        let path = config::default_path(cfg_flag.clone());
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

/// `ingest --source ID FILE...`: apply files now, as the source would.
fn cmd_ingest(
    cfg_flag: Option<PathBuf>,
    source: String,
    force: bool,
    as_json: bool,
    files: Vec<PathBuf>,
) -> anyhow::Result<i32> {
    let cfg = try_cfg!(load(&cfg_flag));
    let Some(src) = cfg.inbound(&source) else {
        let ids: Vec<&str> = cfg.inbound.iter().map(|i| i.id.as_str()).collect();
        return Ok(unknown_id(&cfg, "inbound source", &source, &ids));
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

/// `quarantine`: list what waits; `retry` applies a file again as `ingest`
/// would; `discard` drops it (archived, recorded).
fn cmd_quarantine(
    cfg_flag: Option<PathBuf>,
    source: Option<String>,
    as_json: bool,
    action: Option<QuarantineAction>,
) -> anyhow::Result<i32> {
    use crate::quarantine::{self, QuarantineError};
    let cfg = try_cfg!(load(&cfg_flag));
    let find = |id: &str| {
        cfg.inbound(id).ok_or_else(|| {
            let ids: Vec<&str> = cfg.inbound.iter().map(|i| i.id.as_str()).collect();
            unknown_id(&cfg, "inbound source", id, &ids)
        })
    };
    let not_there = |e: QuarantineError| match e {
        e @ QuarantineError::NotThere { .. } => {
            eprintln!("error: {e}");
            Ok(USAGE)
        }
        e => Err(anyhow::Error::from(e)),
    };
    match action {
        None => {
            let src = match source.as_deref().map(find).transpose() {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            let waiting = quarantine::list(&cfg, src);
            if as_json {
                json(&waiting);
            } else if waiting.is_empty() {
                outln!("nothing waits in quarantine");
            } else {
                for w in &waiting {
                    outln!(
                        "{:<9} {}  {}/{}  {}",
                        w.outcome,
                        local_time(&w.since),
                        crate::util::escape(&w.source),
                        crate::util::escape(&w.file),
                        truncate(&crate::util::escape(&w.reason), 100)
                    );
                }
            }
            Ok(OK)
        }
        Some(QuarantineAction::Retry {
            source,
            file,
            force,
            json: as_json,
        }) => {
            let src = match find(&source) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            let mut ledger = open(&cfg)?;
            let out = match quarantine::retry(&cfg, &mut ledger, src, &file, force) {
                Ok(o) => o,
                Err(e) => return not_there(e),
            };
            let code = if matches!(out.outcome, Outcome::Rejected | Outcome::Held) {
                FAILED
            } else {
                OK
            };
            if as_json {
                json(&[&out]);
            } else {
                print_file(&out);
            }
            Ok(code)
        }
        Some(QuarantineAction::Discard { source, file }) => {
            let src = match find(&source) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            let ledger = open(&cfg)?;
            match quarantine::discard(&cfg, &ledger, src, &file) {
                Ok(archived) => {
                    outln!("discarded {file} (its bytes are kept in {archived})");
                    Ok(OK)
                }
                Err(e) => not_there(e),
            }
        }
    }
}

/// `sync CART`: one sync now (gate and schedule as the options say).
fn cmd_sync(
    cfg_flag: Option<PathBuf>,
    cart: String,
    force: bool,
    dry_run: bool,
    output: Option<PathBuf>,
    as_json: bool,
) -> anyhow::Result<i32> {
    let cfg = try_cfg!(load(&cfg_flag));
    let Some(c) = cfg.cart(&cart) else {
        return Ok(unknown_id(&cfg, "cart", &cart, &cart_ids(&cfg, None)));
    };
    let mut ledger = open(&cfg)?;
    let before = ledger.cart_state(&c.id)?.last_attempt;
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
    // A skipped manual sync leaves the cart's schedule alone: its
    // next due time stays what it was (the attempt is in history).
    if r.outcome == SyncOutcome::Skipped && !dry_run {
        ledger.keep_schedule(&c.id, before)?;
    }
    if as_json {
        json(&r);
    } else {
        print_sync(&r);
    }
    Ok(if r.is_failure() { FAILED } else { OK })
}

/// The statuses of rule 25.
const ORDER_STATUSES: [&str; 6] = [
    "open",
    "sent",
    "partial",
    "shipped",
    "confirmed",
    "cancelled",
];

fn cmd_orders(
    cfg_flag: Option<PathBuf>,
    merchant: Option<String>,
    status: Option<String>,
    as_json: bool,
) -> anyhow::Result<i32> {
    let cfg = try_cfg!(load(&cfg_flag));
    if let Some(m) = &merchant
        && !cfg.merchants.contains(m)
    {
        let ids: Vec<&str> = cfg.merchants.iter().map(String::as_str).collect();
        return Ok(unknown_id(&cfg, "merchant", m, &ids));
    }
    if let Some(s) = &status
        && !ORDER_STATUSES.contains(&s.as_str())
    {
        eprintln!(
            "error: unknown order status {}; one of {}",
            crate::util::quoted(s),
            ORDER_STATUSES.join(", ")
        );
        return Ok(USAGE);
    }
    let ledger = open_read(&cfg)?;
    let mut orders = crate::inspect::orders(&cfg, &ledger, merchant.as_deref())?;
    if let Some(s) = &status {
        orders.retain(|o| &o.status == s);
    }
    if as_json {
        json(&orders);
        return Ok(OK);
    }
    if orders.is_empty() {
        outln!("no orders");
    }
    for o in &orders {
        let ordered: i64 = o
            .lines
            .iter()
            .filter(|l| !l.cancelled)
            .map(|l| l.quantity)
            .sum();
        let shipped: i64 = o.lines.iter().map(|l| l.shipped).sum();
        let mut flags = String::new();
        if o.changed_after_sending {
            flags.push_str("  changed after sending");
        }
        if let Some(h) = &o.held {
            flags.push_str(&format!("  held: {}", crate::util::escape(h)));
        }
        let tracking: Vec<String> = o
            .shipments
            .iter()
            .flat_map(|s| s.packages.iter().filter_map(|p| p.tracking.clone()))
            .collect();
        outln!(
            "{}  {}  {}  {}  shipped {shipped}/{ordered}{}{flags}",
            crate::util::escape(&o.merchant),
            crate::util::escape(&o.source),
            crate::util::escape(&o.order_id),
            paint(&o.status),
            if tracking.is_empty() {
                String::new()
            } else {
                format!(
                    "  tracking {}",
                    truncate(&crate::util::escape(&tracking.join(", ")), 120)
                )
            }
        );
    }
    Ok(OK)
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let cfg_flag = cli.command.config_arg().or(cli.config.clone());
    match cli.command {
        Command::Man => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut out)?;
            Ok(OK)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "stockgate", &mut std::io::stdout());
            Ok(OK)
        }
        Command::Init {
            list_presets: true, ..
        } => {
            for p in crate::init::PRESETS {
                outln!("{:<22} {}", p.name, p.title);
                outln!("{:<22} guide: {}", "", p.guide);
            }
            outln!("init writes each as mappings/<name>.toml; use it as a cart's mapping");
            Ok(OK)
        }
        Command::Init { dir: None, .. } => Ok(USAGE),
        Command::Init { dir: Some(dir), .. } => match crate::init::init(&dir) {
            Ok(cfg) => {
                let exe = exe_shown();
                let c = crate::util::shell_quote(&cfg.display().to_string());
                outln!("workspace written: {}", cfg.display());
                outln!("next: {exe} --config {c} run --once");
                outln!("then: {exe} --config {c} status");
                Ok(OK)
            }
            Err(e @ crate::init::InitError::Exists(_)) => {
                eprintln!("error: {e}");
                Ok(USAGE)
            }
            Err(e) => Err(e.into()),
        },
        Command::Demo { dir } => demo(dir.unwrap_or_else(|| PathBuf::from("stockgate-demo"))),
        Command::Check { connect, .. } => cmd_check(cfg_flag, connect),
        Command::Quarantine {
            source,
            json,
            action,
            ..
        } => cmd_quarantine(cfg_flag, source, json, action),
        Command::Run { once, http, .. } => cmd_run(cfg_flag, once, http),
        Command::Migrate { .. } => {
            let cfg = try_cfg!(load(&cfg_flag));
            let ledger = open(&cfg)?;
            outln!(
                "ledger {}: schema version {}",
                cfg.ledger,
                ledger.schema_version()?
            );
            Ok(OK)
        }
        Command::CopyLedger { from, .. } => {
            let cfg = try_cfg!(load(&cfg_flag));
            let ledger = Ledger::open(&cfg.ledger)?;
            let copied = match ledger.copy_from_sqlite(&from) {
                Err(e @ (LedgerError::NotEmpty(_) | LedgerError::Usage(_))) => {
                    eprintln!("error: {e}");
                    return Ok(USAGE);
                }
                r => r?,
            };
            let total: u64 = copied.iter().map(|(_, n)| n).sum();
            for (t, n) in &copied {
                outln!("{t:<20} {n:>10} rows");
            }
            outln!(
                "copied {total} rows from {} into {}",
                from.display(),
                cfg.ledger
            );
            Ok(OK)
        }
        Command::Ingest {
            source,
            force,
            json: as_json,
            files,
            ..
        } => cmd_ingest(cfg_flag, source, force, as_json, files),
        Command::Sync {
            cart,
            force,
            dry_run,
            output,
            json: as_json,
            ..
        } => cmd_sync(cfg_flag, cart, force, dry_run, output, as_json),
        Command::Status { json: as_json, .. } => {
            let cfg = try_cfg!(load(&cfg_flag));
            let ledger = open_read(&cfg)?;
            let s = crate::inspect::status(&cfg, &ledger)?;
            if as_json {
                json(&s);
            } else {
                print_status(&s);
            }
            Ok(OK)
        }
        Command::Orders {
            merchant,
            status,
            json: as_json,
            ..
        } => cmd_orders(cfg_flag, merchant, status, as_json),
        Command::Explain {
            merchant,
            sku,
            cart,
            json: as_json,
            ..
        } => {
            let cfg = try_cfg!(load(&cfg_flag));
            if !cfg.merchants.contains(&merchant) {
                let ids: Vec<&str> = cfg.merchants.iter().map(String::as_str).collect();
                return Ok(unknown_id(&cfg, "merchant", &merchant, &ids));
            }
            if let Some(c) = &cart
                && cfg.cart(c).is_none_or(|c| c.merchant != merchant)
            {
                let of = format!(" of merchant {}", crate::util::quoted(&merchant));
                return Ok(unknown_id_of(
                    &cfg,
                    "cart",
                    c,
                    &of,
                    &cart_ids(&cfg, Some(&merchant)),
                ));
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
            ..
        } => {
            let cfg = try_cfg!(load(&cfg_flag));
            if let Some(c) = &cart
                && cfg.cart(c).is_none()
            {
                return Ok(unknown_id(&cfg, "cart", c, &cart_ids(&cfg, None)));
            }
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
                        local_time(&r.started_at),
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
    let what = f.outcome.as_str();
    let mut line = format!(" {}  rows={} stale={}", f.file, f.rows, f.stale);
    if f.skipped > 0 {
        line.push_str(&format!(" skipped={}", f.skipped));
    }
    if let Some(z) = f.zeroed {
        line.push_str(&format!(" zeroed={z}"));
    }
    out_result(&format!("{what:<9}"), &line);
    for e in &f.errors {
        outln!("    {e}");
    }
    if let Some(q) = &f.quarantined {
        outln!("    mapping: {}", f.mapping);
        let name = std::path::Path::new(q)
            .file_name()
            .map(|n| crate::util::shell_quote(&n.to_string_lossy()))
            .unwrap_or_default();
        let retry = format!("stockgate quarantine retry --source {} {name}", f.source);
        if f.outcome == Outcome::Held {
            outln!(
                "    held: {q} (reasons in {q}.error.txt); if it is complete, apply it: {retry} --force"
            );
        } else {
            outln!("    quarantined: {q} (reasons in {q}.error.txt; fix it, then: {retry})");
        }
    }
}

fn print_sync(r: &SyncReport) {
    let what = match (r.orders, r.shipments) {
        (Some(_), _) => "orders",
        (_, Some(_)) => "shipments",
        _ => "items",
    };
    let mut line = format!(" {}: {} {what}", r.cart, r.items);
    if let Some(f) = &r.file {
        line.push_str(&format!(" -> {f}"));
    }
    if let Some(b) = r.bytes {
        line.push_str(&format!(" ({b} bytes)"));
    }
    if let Some(reason) = &r.reason {
        line.push_str(&format!("  [{reason}]"));
    }
    out_result(&format!("{:<8}", r.outcome), &line);
}

/// `run --once`'s last line, said even when nothing was due.
fn pass_summary(p: &crate::daemon::Pass) -> String {
    let n = |o: Outcome| p.files.iter().filter(|f| f.outcome == o).count();
    let s = |o: SyncOutcome| p.syncs.iter().filter(|r| r.outcome == o).count();
    format!(
        "run --once: {} ({} applied, {} duplicate, {} rejected, {} held), {} synced ({} sent, {} skipped, {} failed), {}",
        count(p.files.len(), "file"),
        n(Outcome::Applied),
        n(Outcome::Duplicate),
        n(Outcome::Rejected),
        n(Outcome::Held),
        count(p.syncs.len(), "cart"),
        s(SyncOutcome::Sent),
        s(SyncOutcome::Skipped),
        s(SyncOutcome::Failed),
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
        let kit = o
            .kit
            .as_deref()
            .map(|k| format!(" (kit {})", crate::util::escape(k)))
            .unwrap_or_default();
        outln!(
            "  order {} line {}: -{}  at {}{kit}",
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
        let outcome = match (&c.left_out, c.value) {
            (Some(why), _) => format!("left out: {why}"),
            (None, v) => format!("sends {}", v.unwrap_or(0)),
        };
        outln!(
            "  cart {:<20} ({wh}, min_level {}): available {} -> {outcome}",
            c.cart,
            c.min_level,
            c.available,
        );
        if !c.locations.is_empty() {
            let split: Vec<String> = c
                .locations
                .iter()
                .map(|l| format!("{} ({}) {}", l.location, l.warehouse, l.value))
                .collect();
            outln!("    per location: {}", split.join(", "));
        }
        let st = &c.steps;
        let cap = st.cap.map_or("none".to_string(), |c| c.to_string());
        // Rule 20's steps, for a cart with keys (or a kit).
        let keyed = st.buffer != 0 || st.percent != 100 || st.cap.is_some() || c.kit.is_some();
        if keyed {
            outln!(
                "    steps: available {}, min_level {}, buffer {}, percent {}, cap {}, value {}",
                st.available,
                st.min_level,
                st.buffer,
                st.percent,
                cap,
                st.value.map_or("left out".to_string(), |v| v.to_string())
            );
        }
        if let Some(k) = &c.kit {
            for w in &k.warehouses {
                let comps: Vec<String> = w
                    .components
                    .iter()
                    .map(|x| format!("{} {}/{} = {}", x.sku, x.available, x.per_kit, x.share))
                    .collect();
                outln!(
                    "    kit in {}: {} (limited by {}): {}",
                    w.warehouse,
                    w.build,
                    w.limited_by,
                    comps.join(", ")
                );
            }
        }
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
    let pass = match one_pass(&cfg)? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    print_pass(&pass);
    // A second run finds nothing due or nothing new, and says so: the gateway
    // never sends a feed just to have something to show.
    if pass.syncs.iter().all(|s| s.outcome != SyncOutcome::Sent) {
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
    let exe = exe_shown();
    let cfg_shown = crate::util::shell_quote(&cfg_path.display().to_string());
    outln!("try:  {exe} --config {cfg_shown} explain --merchant acme --sku WIDGET-1");
    outln!("      {exe} --config {cfg_shown} status");
    outln!("      {exe} --config {cfg_shown} history");
    outln!("      {exe} --config {cfg_shown} orders");
    Ok(OK)
}

/// How to run this very binary again from the current folder, as it can be
/// pasted: `stockgate` when that is what the shell finds on the PATH, else
/// its path (relative to the current folder when under it).
fn exe_shown() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "stockgate".into();
    };
    let same = |a: &Path| std::fs::canonicalize(a).ok() == std::fs::canonicalize(&exe).ok();
    if let Some(paths) = std::env::var_os("PATH") {
        let found = std::env::split_paths(&paths)
            .map(|d| d.join("stockgate"))
            .find(|p| p.is_file());
        if found.as_deref().is_some_and(same) {
            return "stockgate".into();
        }
    }
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| exe.strip_prefix(cwd).ok().map(|p| Path::new(".").join(p)))
        .unwrap_or_else(|| exe.clone());
    crate::util::shell_quote(&shown.display().to_string())
}

/// An unknown id on the command line: exit 2, naming the valid ones.
fn unknown_id(cfg: &Config, what: &str, id: &str, valid: &[&str]) -> i32 {
    unknown_id_of(cfg, what, id, "", valid)
}

/// As [`unknown_id`], with a qualifier after the id (` of merchant "m1"`).
fn unknown_id_of(cfg: &Config, what: &str, id: &str, of: &str, valid: &[&str]) -> i32 {
    let list = if valid.is_empty() {
        "none".to_string()
    } else {
        valid.join(", ")
    };
    let noun = what.rsplit(' ').next().unwrap_or(what);
    eprintln!(
        "error: no {what} {}{of} in {}{}; {noun}s: {list}",
        crate::util::quoted(id),
        cfg.path.display(),
        crate::util::did_you_mean(id, valid.iter().copied()),
    );
    USAGE
}

fn cart_ids<'a>(cfg: &'a Config, merchant: Option<&str>) -> Vec<&'a str> {
    cfg.carts
        .iter()
        .filter(|c| merchant.is_none_or(|m| c.merchant == m))
        .map(|c| c.id.as_str())
        .collect()
}

/// An RFC 3339 time in the local time zone, for human output.
fn local_time(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S %:z")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_string())
}

/// The longest an error is shown in `status` (the whole one is in the
/// `.error.txt` and in `status --json`).
const STATUS_ERROR_MAX: usize = 60;

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn print_status(s: &crate::inspect::Status) {
    use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
    let table = |header: &[&str]| {
        let mut t = Table::new();
        t.load_style(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(header.to_vec());
        // Cells are padded by one space each side; no margin at the left.
        for c in t.column_iter_mut() {
            c.set_padding((0, 2));
        }
        t
    };
    let opt = |v: &Option<String>| v.as_deref().map(local_time).unwrap_or_else(|| "-".into());
    let mut carts = table(&[
        "cart",
        "format",
        "schedule",
        "last",
        "last success",
        "next due",
        "pending",
        "held by",
    ]);
    for c in &s.carts {
        carts.add_row(vec![
            truncate(&crate::util::escape(&c.cart), 30),
            c.format.to_string(),
            truncate(&c.schedule, 20),
            c.last_outcome.clone().unwrap_or_else(|| "-".into()),
            opt(&c.last_success),
            if c.next_is_retry {
                format!("{} (retry)", opt(&c.next_due))
            } else {
                opt(&c.next_due)
            },
            c.pending.to_string(),
            truncate(
                &crate::util::escape(c.held_by.as_deref().unwrap_or("-")),
                30,
            ),
        ]);
    }
    if let Some(col) = carts.column_mut(6) {
        col.set_cell_alignment(CellAlignment::Right);
    }
    let mut inbound = table(&[
        "source",
        "kind",
        "applied",
        "rejected",
        "held",
        "last pickup",
        "last look",
        "held by",
        "last error",
    ]);
    for i in &s.inbound {
        // A source failing now says how long it has been failing.
        let error = match (&i.last_error, i.failures) {
            (None, _) => "-".to_string(),
            (Some(e), 0) => e.clone(),
            (Some(e), n) => format!("{n} failed looks: {e}"),
        };
        inbound.add_row(vec![
            truncate(&crate::util::escape(&i.source), 30),
            i.kind.to_string(),
            i.applied.to_string(),
            i.rejected.to_string(),
            i.held.to_string(),
            opt(&i.last_pickup),
            opt(&i.last_look),
            truncate(
                &crate::util::escape(i.held_by.as_deref().unwrap_or("-")),
                30,
            ),
            truncate(&crate::util::escape(&error), STATUS_ERROR_MAX),
        ]);
    }
    for n in 2..=4 {
        if let Some(col) = inbound.column_mut(n) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    let show = |t: &Table| {
        for line in t.lines() {
            outln!("{}", line.trim_end());
        }
    };
    show(&carts);
    for (title, feeds) in [
        ("order feeds", &s.order_feeds),
        ("confirm feeds", &s.confirm_feeds),
    ] {
        if feeds.is_empty() {
            continue;
        }
        let mut t = table(&[
            "feed",
            "format",
            "schedule",
            "last",
            "last success",
            "next due",
            "waiting",
        ]);
        for c in feeds {
            t.add_row(vec![
                truncate(&crate::util::escape(&c.cart), 30),
                c.format.to_string(),
                truncate(&c.schedule, 20),
                c.last_outcome.clone().unwrap_or_else(|| "-".into()),
                opt(&c.last_success),
                opt(&c.next_due),
                c.pending.to_string(),
            ]);
        }
        outln!();
        outln!("{title}:");
        show(&t);
    }
    if let Some(o) = &s.orders {
        let counts: Vec<String> = o
            .by_status
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        outln!();
        outln!(
            "orders: {}; {} waiting to be sent{}; {} shipments waiting to be confirmed",
            if counts.is_empty() {
                "none".to_string()
            } else {
                counts.join(", ")
            },
            o.waiting_to_send,
            o.oldest_waiting
                .as_deref()
                .map(|t| format!(" (oldest {})", local_time(t)))
                .unwrap_or_default(),
            o.waiting_to_confirm
        );
        for id in &o.changed_after_sending {
            outln!(
                "order {}: changed after sending (not resent; tell the warehouse)",
                crate::util::escape(id)
            );
        }
        for h in &o.held {
            outln!(
                "order {}: held back ({})",
                crate::util::escape(&h.order_id),
                truncate(&crate::util::escape(&h.reason), 200)
            );
        }
    }
    // Rule 24: a kits or sku_map file that cannot be used, under the carts
    // it holds back (each keeps its last good table, or cannot sync).
    for c in &s.carts {
        for t in c.allocation.iter().flat_map(|a| &a.trouble) {
            outln!(
                "cart {}: {}",
                crate::util::escape(&c.cart),
                truncate(&crate::util::escape(t), 300)
            );
        }
    }
    outln!();
    show(&inbound);
}
