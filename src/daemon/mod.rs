//! `run`: pick up inbound files and sync due carts, once or until stopped.

use crate::config::Config;
use crate::ledger::Ledger;
use crate::pickup::{FileOutcome, pickup_source};
use crate::sync::{SyncOptions, SyncReport, sync_cart};
use crate::util::{now_ms, to_datetime};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
/// that long), unless it changes in between.
pub fn run_once(cfg: &Config, ledger: &mut Ledger, settle_ms: i64) -> Pass {
    let mut pass = Pass::default();
    for src in &cfg.inbound {
        let mut wait = pickup_into(cfg, ledger, src, settle_ms, &mut pass);
        // Only files first seen in this look are waited for, once.
        if let Some(w) = wait
            .take()
            .filter(|w| *w <= src.transport.pickup.stable_for)
        {
            std::thread::sleep(w + Duration::from_millis(50));
            pickup_into(cfg, ledger, src, settle_ms, &mut pass);
        }
    }
    sync_due(cfg, ledger, &mut pass, None);
    pass
}

/// Picks up one source into `pass`; returns, when files were left settling,
/// how soon the next look may take them (`Some(ZERO)`: unknown, look again soon).
fn pickup_into(
    cfg: &Config,
    ledger: &mut Ledger,
    src: &crate::config::Inbound,
    settle_ms: i64,
    pass: &mut Pass,
) -> Option<Duration> {
    match pickup_source(cfg, ledger, src, settle_ms, None) {
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
            let msg = crate::util::escape(&e.to_string());
            tracing::error!(source = %src.id, error = %msg, "pickup failed");
            pass.errors.push(format!("source {}: {msg}", src.id));
            None
        }
    }
}

/// Carts whose delivery failed in a way worth retrying: (failures in a row,
/// when to try again). Kept by the running daemon only.
type Retries = std::collections::HashMap<String, (u32, Instant)>;

/// 10 s, 20 s, 40 s ... at most 10 minutes: soon enough for a blip, gentle on
/// a server that is down. A cart's own schedule still applies as well.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs((10u64 << failures.saturating_sub(1).min(6)).min(600))
}

fn sync_due(cfg: &Config, ledger: &mut Ledger, pass: &mut Pass, mut retries: Option<&mut Retries>) {
    let now = to_datetime(now_ms());
    for cart in &cfg.carts {
        let last = match ledger.cart_state(&cart.id) {
            Ok(s) => s.last_attempt.map(to_datetime),
            Err(e) => {
                pass.errors.push(format!("cart {}: {e}", cart.id));
                continue;
            }
        };
        let retry_due = retries
            .as_deref()
            .and_then(|r| r.get(&cart.id))
            .is_some_and(|(_, at)| Instant::now() >= *at);
        if !retry_due && !cart.schedule.due(last, now, cart.tz) {
            continue;
        }
        match sync_cart(cfg, ledger, cart, &SyncOptions::default()) {
            Ok(r) => {
                if let Some(retries) = retries.as_deref_mut() {
                    if r.retryable {
                        let failures = retries.get(&cart.id).map_or(0, |(n, _)| *n) + 1;
                        let wait = backoff(failures);
                        tracing::warn!(cart = %cart.id, failures, retry_in_s = wait.as_secs(), "delivery will be retried");
                        retries.insert(cart.id.clone(), (failures, Instant::now() + wait));
                    } else {
                        retries.remove(&cart.id);
                    }
                }
                pass.syncs.push(r)
            }
            Err(e) => {
                tracing::error!(cart = %cart.id, error = %e, "sync failed");
                pass.errors.push(format!("cart {}: {e}", cart.id));
            }
        }
    }
}

/// Folders are rescanned this often even without a watch event: events can be
/// lost (overflow, network file systems), files must not be.
const RESCAN: Duration = Duration::from_secs(30);

/// Runs until `stop` is set (SIGINT/SIGTERM). Local inboxes are watched
/// (notify, debounced) and rescanned every 30 s; remote sources are polled at
/// their `poll` interval; carts sync when due. The pass in progress always
/// finishes: no file is left half-applied, no sync half-recorded.
pub fn run(cfg: &Config, ledger: &mut Ledger, stop: Arc<AtomicBool>) {
    use notify_debouncer_full::notify::RecursiveMode;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut debouncer = match notify_debouncer_full::new_debouncer(
        Duration::from_millis(500),
        None,
        tx,
    ) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch folders; rescanning them every second instead");
            None
        }
    };
    let mut watched = vec![false; cfg.inbound.len()];
    for (i, src) in cfg.inbound.iter().enumerate() {
        if let (Some(d), Some(path)) = (debouncer.as_mut(), src.transport.dir()) {
            let _ = std::fs::create_dir_all(path);
            match d.watch(path, RecursiveMode::NonRecursive) {
                Ok(()) => watched[i] = true,
                Err(e) => {
                    tracing::warn!(source = %src.id, error = %e, "cannot watch; rescanning every second")
                }
            }
        }
    }
    let mut retries = Retries::new();
    // Every source is looked at once at start-up: files may have arrived while stopped.
    let mut due_at: Vec<Instant> = vec![Instant::now(); cfg.inbound.len()];
    tracing::info!(
        sources = cfg.inbound.len(),
        carts = cfg.carts.len(),
        "stockgate running"
    );
    while !stop.load(Ordering::SeqCst) {
        let mut pass = Pass::default();
        let now = Instant::now();
        for (i, src) in cfg.inbound.iter().enumerate() {
            if now < due_at[i] {
                continue;
            }
            let settling = pickup_into(cfg, ledger, src, SETTLE_MS, &mut pass);
            due_at[i] = now
                + if let Some(w) = settling.filter(|w| !w.is_zero()) {
                    // A remote file proving stable: look again when it may be.
                    w.min(src.poll) + Duration::from_millis(50)
                } else if settling.is_some() || (!src.transport.endpoint.is_remote() && !watched[i])
                {
                    Duration::from_secs(1)
                } else if !src.transport.endpoint.is_remote() {
                    RESCAN
                } else {
                    src.poll
                };
        }
        sync_due(cfg, ledger, &mut pass, Some(&mut retries));
        // Sleep until a watch event or a second passes (to see `stop` and schedules).
        if let Ok(Ok(events)) = rx.recv_timeout(Duration::from_secs(1)) {
            for ev in events {
                for p in &ev.paths {
                    for (i, src) in cfg.inbound.iter().enumerate() {
                        if src.transport.dir().is_some_and(|d| p.parent() == Some(d)) {
                            due_at[i] = Instant::now();
                        }
                    }
                }
            }
        }
    }
    drop(debouncer);
    tracing::info!("stopped");
}
