//! `run`: pick up inbound files and sync due carts, once (`run --once`, in
//! order, in this thread) or as a service until stopped: one worker thread
//! per inbound source and per cart, so that a source or cart that hangs or
//! fails never delays another; the main thread watches local inboxes,
//! signals (SIGTERM/SIGINT stop, SIGHUP reloads the config) and health,
//! and never waits for a worker except, at SIGTERM, for at most
//! `STOP_WITHIN`; retention runs on a thread of its own.

mod hygiene;
mod leases;
mod retention;
mod shutdown;
mod workers;

pub use shutdown::Shutdown;

pub use hygiene::at_start as clean_up_after_crashes;
pub use retention::prune;

use crate::config::Config;
use crate::ledger::Ledger;
use crate::pickup::{FileOutcome, pickup_source};
use crate::sync::{SyncOptions, SyncReport, sync_cart};
use crate::util::{now_ms, to_datetime};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Pass {
    pub files: Vec<FileOutcome>,
    pub syncs: Vec<SyncReport>,
    /// Sources or carts that failed outright (transport down, ledger error).
    pub errors: Vec<String>,
}

/// Files younger than this may still be being written by a trading partner.
pub const SETTLE_MS: i64 = 2000;

/// Picks up every source once, then syncs every due cart once. A remote
/// file seen for the first time is looked at again once `stable_for` has
/// passed (so `run --once` takes a file that is complete, waiting at most
/// that long), unless it changes in between. Local files are taken however
/// recently written: the operator who runs it says they are complete.
pub fn run_once(cfg: &Config, ledger: &mut Ledger) -> Pass {
    let mut pass = Pass::default();
    for src in &cfg.inbound {
        let mut wait = pickup_into(cfg, ledger, src, &mut pass);
        // Only files first seen in this look are waited for, once.
        if let Some(w) = wait
            .take()
            .filter(|w| *w <= src.transport.pickup.stable_for)
        {
            std::thread::sleep(w + Duration::from_millis(50));
            pickup_into(cfg, ledger, src, &mut pass);
        }
    }
    sync_due(cfg, ledger, &mut pass);
    pass
}

/// Picks up one source into `pass`; returns, when files were left settling,
/// how soon the next look may take them (`Some(ZERO)`: unknown, look again soon).
fn pickup_into(
    cfg: &Config,
    ledger: &mut Ledger,
    src: &crate::config::Inbound,
    pass: &mut Pass,
) -> Option<Duration> {
    match pickup_source(cfg, ledger, src, 0, None) {
        Ok(p) => {
            pass.files.extend(p.files);
            pass.errors.extend(
                p.errors
                    .into_iter()
                    .map(|e| format!("source {}: {e}", src.id)),
            );
            (p.settling > 0).then(|| p.stable_in.unwrap_or(Duration::ZERO))
        }
        Err(e) => {
            // The pass's result lines show it: no log line repeats it.
            let msg = crate::util::escape(&e.to_string());
            pass.errors.push(format!("source {}: {msg}", src.id));
            None
        }
    }
}

/// 10 s, 20 s, 40 s ... at most 10 minutes: soon enough for a blip, gentle on
/// a server that is down. A cart's own schedule still applies as well.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs((10u64 << failures.saturating_sub(1).min(6)).min(600))
}

fn sync_due(cfg: &Config, ledger: &mut Ledger, pass: &mut Pass) {
    let now = to_datetime(now_ms());
    for cart in &cfg.carts {
        let last = match ledger.cart_state(&cart.id) {
            Ok(s) => s.last_attempt.map(to_datetime),
            Err(e) => {
                pass.errors.push(format!("cart {}: {e}", cart.id));
                continue;
            }
        };
        if cart.schedule.clock_went_back(last, now, cart.tz) {
            tracing::warn!(cart = %cart.id, "the last attempt is in the future (the clock went back): the schedule starts again from now");
        }
        if !cart.schedule.due(last, now, cart.tz) {
            continue;
        }
        match sync_cart(cfg, ledger, cart, &SyncOptions::default()) {
            Ok(r) => pass.syncs.push(r),
            Err(e) => pass.errors.push(format!("cart {}: {e}", cart.id)),
        }
    }
}

/// Rule 38: what alerts rely on is there from the start, as the ledger kept
/// it (each cart's last success, each source's last look and failed looks
/// in a row), not only once something happens. A ledger that cannot be
/// read is logged; the workers report it as well.
fn restore_telemetry(cfg: &Config, telemetry: &crate::telemetry::Telemetry) {
    let read = || -> Result<_, crate::ledger::LedgerError> {
        let ledger = Ledger::open(&cfg.ledger)?;
        let mut carts = vec![];
        for c in &cfg.carts {
            carts.push((c.id.clone(), ledger.cart_state(&c.id)?.last_success));
        }
        let mut sources = vec![];
        for s in &cfg.inbound {
            sources.push((s.id.clone(), ledger.source_look(&s.id)?));
        }
        Ok((carts, sources))
    };
    match read() {
        Ok((carts, sources)) => telemetry.restore(&carts, &sources),
        Err(e) => tracing::error!(error = %e, "cannot read the ledger to restore the metrics"),
    }
}

/// Folders are rescanned this often even without a watch event: events can be
/// lost (overflow, network file systems), files must not be.
const RESCAN: Duration = Duration::from_secs(30);

/// How long SIGTERM may take: in-flight work gets this long to finish, then
/// its connections are cut (their temporary files are removed where the
/// connection still allows, and by the next start otherwise).
const STOP_WITHIN: Duration = Duration::from_millis(4300);

#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// `--http ADDR`: serve /healthz, /metrics and the status page.
    pub http: Option<String>,
}

/// Runs until `stop` is set (SIGINT/SIGTERM). `hup` set: re-read the config
/// at `config_path`; a config with problems is refused (each logged) and the
/// running one kept. Local inboxes are watched (notify, debounced) and
/// rescanned every 30 s; remote sources are polled at their `poll`
/// interval; carts sync when due, and a retryable delivery failure is
/// retried with backoff. The caller holds the instance lock.
pub fn run(
    config_path: &Path,
    cfg: Config,
    stop: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    opts: RunOptions,
) -> Result<(), String> {
    let telemetry = Arc::new(crate::telemetry::Telemetry::new());
    let mut cfg = Arc::new(cfg);
    let state = Arc::new(crate::serve::ServeState {
        config: RwLock::new(cfg.clone()),
        telemetry: telemetry.clone(),
        started_at: now_ms(),
    });
    let server = match &opts.http {
        Some(addr) => {
            let s = crate::serve::serve(addr, state.clone(), stop.clone())?;
            tracing::info!(addr = %s.addr, "serving /healthz, /metrics and the status page");
            Some(s)
        }
        None => None,
    };
    hygiene::at_start(&cfg);
    restore_telemetry(&cfg, &telemetry);
    // Retention on its own thread: a long prune (a busy ledger) never holds
    // up signals or a reload. It prunes by the config in force.
    let retention_stop = Arc::new(Shutdown::default());
    let retention = {
        let (state, stop) = (state.clone(), retention_stop.clone());
        std::thread::Builder::new()
            .name("retention".into())
            .spawn(move || {
                loop {
                    let cfg = state
                        .config
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    if let Err(e) = retention::prune(&cfg) {
                        tracing::error!(error = %e, "retention failed");
                    }
                    if stop.wait_timeout(retention::EVERY) {
                        break;
                    }
                }
            })
            .map_err(|e| tracing::error!(error = %e, "cannot start retention"))
            .ok()
    };
    // Leases: the first heartbeat before any worker starts (its share is
    // counted from it), then one renewer for every lease of this gateway.
    let leases = Arc::new(leases::Leases::new(&cfg.instance, cfg.lease));
    leases.set_total(cfg.inbound.len() + cfg.carts.len());
    let renewer_stop = Arc::new(Shutdown::default());
    let renewer = {
        let (leases, stop, telemetry, path) = (
            leases.clone(),
            renewer_stop.clone(),
            telemetry.clone(),
            cfg.ledger.clone(),
        );
        if let Ok(l) = Ledger::open(&path) {
            if Ledger::exclusive_run(&path) {
                leases.release_others(&l);
            }
            leases.renew_all(&l, &telemetry);
        }
        std::thread::Builder::new()
            .name("leases".into())
            .spawn(move || {
                let mut ledger: Option<Ledger> = None;
                loop {
                    if ledger.is_none() {
                        ledger = Ledger::open(&path)
                            .map_err(|e| tracing::error!(error = %e, "cannot open the ledger to renew the leases"))
                            .ok();
                    }
                    if let Some(l) = &ledger {
                        leases.renew_all(l, &telemetry);
                    }
                    if stop.wait_timeout(leases.every()) {
                        break;
                    }
                }
            })
            .map_err(|e| tracing::error!(error = %e, "cannot start the lease renewer"))
            .ok()
    };
    let mut workers_ =
        workers::Generation::start(cfg.clone(), telemetry.clone(), leases.clone(), None);
    loop {
        tracing::info!(
            sources = cfg.inbound.len(),
            carts = cfg.carts.len(),
            "stockgate running"
        );
        let reload = loop {
            telemetry.beat();
            workers_.wait_events(Duration::from_millis(500));
            if stop.load(Ordering::SeqCst) {
                break None;
            }
            if hup.swap(false, Ordering::SeqCst) {
                match crate::config::load(config_path) {
                    Ok(new) => break Some(new),
                    Err(problems) => {
                        for p in &problems {
                            tracing::error!(problem = %p, "config reload refused; the running config stays");
                        }
                    }
                }
            }
        };
        match reload {
            None => {
                tracing::info!("stopping");
                retention_stop.stop();
                workers_.stop(STOP_WITHIN);
                // A clean stop hands every lease back: another gateway
                // takes the work at once, not after the lease expires.
                renewer_stop.stop();
                if let Some(r) = renewer {
                    let _ = r.join();
                }
                match Ledger::open(&cfg.ledger) {
                    Ok(l) => leases.release_all(&l, &telemetry),
                    Err(e) => tracing::error!(error = %e, "cannot hand the leases back"),
                }
                break;
            }
            Some(new) => {
                // Idle workers are replaced now; one that is busy finishes
                // under the old config and its successor starts when it returns.
                cfg = Arc::new(new);
                *state.config.write().unwrap_or_else(|e| e.into_inner()) = cfg.clone();
                workers_ = workers::Generation::start(
                    cfg.clone(),
                    telemetry.clone(),
                    leases.clone(),
                    Some(workers_),
                );
                hygiene::at_start(&cfg);
                tracing::info!(config = %config_path.display(), "config reloaded");
            }
        }
    }
    if let Some(r) = retention.filter(|r| r.is_finished()) {
        let _ = r.join();
    }
    drop(server);
    tracing::info!("stopped");
    Ok(())
}
