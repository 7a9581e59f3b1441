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

/// Picks up every source once, then syncs every due cart once.
pub fn run_once(cfg: &Config, ledger: &mut Ledger, settle_ms: i64) -> Pass {
    let mut pass = Pass::default();
    for src in &cfg.inbound {
        pickup_into(cfg, ledger, src, settle_ms, &mut pass);
    }
    sync_due(cfg, ledger, &mut pass);
    pass
}

fn pickup_into(
    cfg: &Config,
    ledger: &mut Ledger,
    src: &crate::config::Inbound,
    settle_ms: i64,
    pass: &mut Pass,
) {
    match pickup_source(cfg, ledger, src, settle_ms) {
        Ok(files) => pass.files.extend(files),
        Err(e) => {
            tracing::error!(source = %src.id, error = %e, "pickup failed");
            pass.errors.push(format!("source {}: {e}", src.id));
        }
    }
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
        if !cart.schedule.due(last, now, cart.tz) {
            continue;
        }
        match sync_cart(cfg, ledger, cart, &SyncOptions::default()) {
            Ok(r) => pass.syncs.push(r),
            Err(e) => {
                tracing::error!(cart = %cart.id, error = %e, "sync failed");
                pass.errors.push(format!("cart {}: {e}", cart.id));
            }
        }
    }
}

/// Runs until `stop` is set (SIGINT/SIGTERM): local folders are looked at
/// every second, remote sources at their `poll` interval, carts when due.
/// A pass in progress always finishes: no file is left half-applied.
pub fn run(cfg: &Config, ledger: &mut Ledger, stop: Arc<AtomicBool>) {
    let mut last_poll: Vec<Option<Instant>> = vec![None; cfg.inbound.len()];
    tracing::info!(
        sources = cfg.inbound.len(),
        carts = cfg.carts.len(),
        "stockgate running"
    );
    while !stop.load(Ordering::SeqCst) {
        let mut pass = Pass::default();
        for (i, src) in cfg.inbound.iter().enumerate() {
            let every = if src.transport.kind == crate::config::TransportKind::Dir {
                Duration::from_secs(1)
            } else {
                src.poll
            };
            if last_poll[i].is_none_or(|t| t.elapsed() >= every) {
                last_poll[i] = Some(Instant::now());
                pickup_into(cfg, ledger, src, SETTLE_MS, &mut pass);
            }
        }
        sync_due(cfg, ledger, &mut pass);
        for _ in 0..10 {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    tracing::info!("stopped");
}
