//! One generation of workers (one config): a thread per inbound source and
//! per cart, each with its own ledger connection and its own bell to wake it
//! early (a watched folder changed, or it is time to stop).

use super::{RESCAN, SETTLE_MS, backoff};
use crate::config::{Cart, Config, Inbound};
use crate::ledger::{Ledger, SyncOutcome};
use crate::pickup::{ApplyGate, FileOutcome, Outcome, pickup_source};
use crate::sync::{SyncOptions, SyncReport, sync_cart};
use crate::telemetry::Telemetry;
use crate::util::{escape, now_ms, to_datetime};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Wakes a sleeping worker early.
#[derive(Default)]
pub struct Bell {
    rung: Mutex<bool>,
    cv: Condvar,
}

impl Bell {
    pub fn ring(&self) {
        *self.rung.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }
    /// Sleeps `d`, or until rung; returns whether it was rung.
    pub fn wait(&self, d: Duration) -> bool {
        let g = self.rung.lock().unwrap_or_else(|e| e.into_inner());
        let (mut g, _) = self
            .cv
            .wait_timeout_while(g, d, |rung| !*rung)
            .unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *g, false)
    }
}

struct Shared {
    cfg: Arc<Config>,
    telemetry: Arc<Telemetry>,
    gate: ApplyGate,
    /// Sources per merchant that have not finished their first look yet: a
    /// cart's first sync waits for them (files that arrived while stopped
    /// go in first), at most `FIRST_LOOK_WAIT`.
    first_looks: Mutex<std::collections::HashMap<String, usize>>,
    first_looks_done: Condvar,
    stop: AtomicBool,
    retries_pending: AtomicI64,
}

/// How long a cart's first sync waits for its merchant's sources' first look.
const FIRST_LOOK_WAIT: Duration = Duration::from_secs(60);

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
    fn first_look_done(&self, merchant: &str) {
        let mut m = self.first_looks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(merchant) {
            *n = n.saturating_sub(1);
        }
        self.first_looks_done.notify_all();
    }
    fn wait_first_looks(&self, merchant: &str) {
        let m = self.first_looks.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .first_looks_done
            .wait_timeout_while(m, FIRST_LOOK_WAIT, |m| {
                !self.stopping() && m.get(merchant).is_some_and(|n| *n > 0)
            });
    }
}

pub struct Generation {
    shared: Arc<Shared>,
    threads: Vec<(String, JoinHandle<()>)>,
    source_bells: Vec<Arc<Bell>>,
    cart_bells: Vec<Arc<Bell>>,
    watcher: Option<(
        notify_debouncer_full::Debouncer<
            notify_debouncer_full::notify::RecommendedWatcher,
            notify_debouncer_full::RecommendedCache,
        >,
        std::sync::mpsc::Receiver<notify_debouncer_full::DebounceEventResult>,
    )>,
}

impl Generation {
    /// Starts every worker for `cfg`.
    pub fn start(cfg: Arc<Config>, telemetry: Arc<Telemetry>) -> Generation {
        use notify_debouncer_full::notify::RecursiveMode;
        let shared = Arc::new(Shared {
            cfg: cfg.clone(),
            telemetry,
            gate: ApplyGate::default(),
            first_looks: Mutex::new(cfg.inbound.iter().fold(
                std::collections::HashMap::new(),
                |mut m, s| {
                    *m.entry(s.merchant.clone()).or_insert(0) += 1;
                    m
                },
            )),
            first_looks_done: Condvar::new(),
            stop: AtomicBool::new(false),
            retries_pending: AtomicI64::new(0),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let mut watcher = match notify_debouncer_full::new_debouncer(
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
        let mut g = Generation {
            shared: shared.clone(),
            threads: vec![],
            source_bells: vec![],
            cart_bells: vec![],
            watcher: None,
        };
        for (i, src) in cfg.inbound.iter().enumerate() {
            let mut watched = false;
            if let (Some(w), Some(path)) = (watcher.as_mut(), src.transport.dir()) {
                let _ = std::fs::create_dir_all(path);
                match w.watch(path, RecursiveMode::NonRecursive) {
                    Ok(()) => watched = true,
                    Err(e) => {
                        tracing::warn!(source = %src.id, error = %e, "cannot watch; rescanning every second")
                    }
                }
            }
            let bell = Arc::new(Bell::default());
            g.source_bells.push(bell.clone());
            let sh = shared.clone();
            g.spawn(format!("source {}", src.id), move || {
                source_worker(&sh, &sh.cfg.inbound[i], &bell, watched)
            });
        }
        for i in 0..cfg.carts.len() {
            let bell = Arc::new(Bell::default());
            g.cart_bells.push(bell.clone());
            let sh = shared.clone();
            g.spawn(format!("cart {}", cfg.carts[i].id), move || {
                cart_worker(&sh, &sh.cfg.carts[i], &bell)
            });
        }
        g.watcher = watcher.map(|w| (w, rx));
        g
    }

    fn spawn(&mut self, name: String, f: impl FnOnce() + Send + 'static) {
        match std::thread::Builder::new().name(name.clone()).spawn(f) {
            Ok(h) => self.threads.push((name, h)),
            Err(e) => tracing::error!(worker = %name, error = %e, "cannot start worker"),
        }
    }

    /// Waits up to `d` for watch events; rings the bells of the sources
    /// whose folders changed.
    pub fn wait_events(&mut self, d: Duration) {
        let Some((_, rx)) = &self.watcher else {
            std::thread::sleep(d);
            return;
        };
        if let Ok(Ok(events)) = rx.recv_timeout(d) {
            for ev in events {
                for p in &ev.paths {
                    for (i, src) in self.shared.cfg.inbound.iter().enumerate() {
                        if src.transport.dir().is_some_and(|d| p.parent() == Some(d)) {
                            self.source_bells[i].ring();
                        }
                    }
                }
            }
        }
    }

    /// Stops every worker: each finishes what it is doing. With a
    /// `deadline`, work still running then has its connections cut and is
    /// left behind (the process is about to exit).
    pub fn stop(mut self, deadline: Option<Duration>) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for b in self.source_bells.iter().chain(&self.cart_bells) {
            b.ring();
        }
        self.watcher = None;
        let Some(limit) = deadline else {
            for (_, h) in self.threads {
                let _ = h.join();
            }
            return;
        };
        let t = Instant::now();
        let running = |threads: &[(String, JoinHandle<()>)]| -> Vec<String> {
            threads
                .iter()
                .filter(|(_, h)| !h.is_finished())
                .map(|(n, _)| n.clone())
                .collect()
        };
        while t.elapsed() < limit && !running(&self.threads).is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = running(&self.threads);
        if !left.is_empty() {
            tracing::warn!(workers = %left.join(", "), "still busy at shutdown: cutting their connections");
            crate::transport::abort_all();
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(500) && !running(&self.threads).is_empty() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A worker's own ledger connection, opened on first use and again after an error.
struct Conn {
    ledger: Option<Ledger>,
}

impl Conn {
    fn get(&mut self, cfg: &Config) -> Result<&mut Ledger, String> {
        if self.ledger.is_none() {
            let l = Ledger::open(&cfg.ledger_path).map_err(|e| e.to_string())?;
            l.check_writable(&cfg.ledger_path)
                .map_err(|e| e.to_string())?;
            self.ledger = Some(l);
        }
        Ok(self.ledger.as_mut().expect("just set"))
    }
}

/// The one log line per file picked up (`--log-format json`: one JSON object).
pub fn log_file(src: &str, f: &FileOutcome, ms: u128) {
    let outcome = f.outcome.as_str();
    let file = escape(&f.file);
    let first_error = f.errors.first().map(|e| crate::util::bounded(e, 200));
    if matches!(f.outcome, Outcome::Rejected | Outcome::Held) {
        tracing::warn!(event = "pickup", source = %src, file = %file, outcome, items = f.rows, bytes = f.bytes.unwrap_or(0), duration_ms = ms as u64, error = first_error.as_deref().unwrap_or(""), "file not applied");
    } else {
        tracing::info!(event = "pickup", source = %src, file = %file, outcome, items = f.rows, bytes = f.bytes.unwrap_or(0), duration_ms = ms as u64, "file picked up");
    }
}

/// The one log line per sync attempt.
pub fn log_sync(r: &SyncReport, ms: u128) {
    let file = r.file.as_deref().map(escape).unwrap_or_default();
    let reason = r.reason.as_deref().map(escape).unwrap_or_default();
    match r.outcome {
        SyncOutcome::Failed => {
            tracing::error!(event = "sync", cart = %r.cart, outcome = %r.outcome, file = %file, items = r.items, bytes = r.bytes.unwrap_or(0), duration_ms = ms as u64, reason = %reason, "sync failed")
        }
        _ => {
            tracing::info!(event = "sync", cart = %r.cart, outcome = %r.outcome, file = %file, items = r.items, bytes = r.bytes.unwrap_or(0), duration_ms = ms as u64, reason = %reason, "sync")
        }
    }
}

fn source_worker(sh: &Shared, src: &Inbound, bell: &Bell, watched: bool) {
    let mut conn = Conn { ledger: None };
    let remote = src.transport.endpoint.is_remote();
    let mut first = true;
    let started = Instant::now();
    while !sh.stopping() {
        let t0 = Instant::now();
        let mut settling = false;
        let next = match conn.get(&sh.cfg) {
            Err(e) => {
                tracing::error!(source = %src.id, error = %escape(&e), "ledger unavailable");
                Duration::from_secs(10)
            }
            Ok(ledger) => match pickup_source(&sh.cfg, ledger, src, SETTLE_MS, Some(&sh.gate)) {
                Ok(p) => {
                    let took = t0.elapsed();
                    for f in &p.files {
                        sh.telemetry.file(&src.id, f.outcome.as_str());
                        log_file(&src.id, f, took.as_millis());
                    }
                    for e in &p.errors {
                        tracing::error!(source = %src.id, error = %escape(e), "file skipped");
                    }
                    if !p.files.is_empty() || remote {
                        sh.telemetry.transfer("pickup", &src.id, took.as_secs_f64());
                    }
                    settling = p.settling > 0;
                    if let Some(w) = p.stable_in {
                        w.min(src.poll) + Duration::from_millis(50)
                    } else if p.settling > 0 || (!remote && !watched) {
                        Duration::from_secs(1)
                    } else if !remote {
                        RESCAN
                    } else {
                        src.poll
                    }
                }
                Err(e) => {
                    let msg = escape(&e.to_string());
                    tracing::error!(event = "pickup", source = %src.id, outcome = "failed", error = %msg, "pickup failed");
                    if matches!(e, crate::pickup::PickupError::Ledger(_)) {
                        conn.ledger = None;
                    }
                    if remote {
                        src.poll
                    } else {
                        Duration::from_secs(5)
                    }
                }
            },
        };
        // The first look is over once no file of it is still settling
        // (local files a moment old wait a second or two).
        if first && (!settling || started.elapsed() >= Duration::from_secs(3)) {
            first = false;
            sh.first_look_done(&src.merchant);
        }
        bell.wait(next);
    }
    if first {
        sh.first_look_done(&src.merchant);
    }
}

fn cart_worker(sh: &Shared, cart: &Cart, bell: &Bell) {
    let mut conn = Conn { ledger: None };
    let mut failures = 0u32;
    let mut retry_at: Option<Instant> = None;
    // Our own last attempt, also when it was not recorded (another process
    // held the cart), so that the schedule is respected either way.
    let mut tried: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut warned_clock = false;
    super::hygiene::cart_leftovers(&sh.cfg, cart);
    sh.wait_first_looks(&cart.merchant);
    while !sh.stopping() {
        let ledger = match conn.get(&sh.cfg) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(cart = %cart.id, error = %escape(&e), "ledger unavailable");
                bell.wait(Duration::from_secs(10));
                continue;
            }
        };
        let last = match ledger.cart_state(&cart.id) {
            Ok(s) => s.last_attempt.map(to_datetime).max(tried),
            Err(e) => {
                tracing::error!(cart = %cart.id, error = %e, "ledger error");
                conn.ledger = None;
                bell.wait(Duration::from_secs(10));
                continue;
            }
        };
        let now = to_datetime(now_ms());
        let went_back = cart.schedule.clock_went_back(last, now, cart.tz);
        if went_back && !warned_clock {
            tracing::warn!(cart = %cart.id, last_attempt = %last.map(|t| t.to_rfc3339()).unwrap_or_default(), "the last attempt is in the future (the clock went back): the schedule starts again from now");
        }
        warned_clock = went_back;
        let retry_due = retry_at.is_some_and(|t| Instant::now() >= t);
        if retry_due || cart.schedule.due(last, now, cart.tz) {
            // Files of this merchant already fetched go in first.
            sh.gate.wait_idle(&cart.merchant, Duration::from_secs(30));
            tried = Some(now);
            let t0 = Instant::now();
            match sync_cart(&sh.cfg, ledger, cart, &SyncOptions::default()) {
                Ok(r) => {
                    let took = t0.elapsed();
                    log_sync(&r, took.as_millis());
                    let sent =
                        (r.outcome == SyncOutcome::Sent).then(|| (r.items, r.bytes.unwrap_or(0)));
                    sh.telemetry.sync(&cart.id, r.outcome.as_str(), sent);
                    if matches!(r.outcome, SyncOutcome::Sent | SyncOutcome::Failed) {
                        sh.telemetry
                            .transfer("delivery", &cart.id, took.as_secs_f64());
                    }
                    let was_retrying = retry_at.is_some();
                    if r.retryable {
                        failures += 1;
                        let wait = backoff(failures);
                        tracing::warn!(cart = %cart.id, failures, retry_in_s = wait.as_secs(), "delivery will be retried");
                        retry_at = Some(Instant::now() + wait);
                    } else {
                        failures = 0;
                        retry_at = None;
                    }
                    let delta = retry_at.is_some() as i64 - was_retrying as i64;
                    if delta != 0 {
                        let n = sh.retries_pending.fetch_add(delta, Ordering::SeqCst) + delta;
                        sh.telemetry.set_retries_pending(n);
                    }
                }
                Err(e) => {
                    tracing::error!(event = "sync", cart = %cart.id, outcome = "failed", error = %e, "sync failed");
                    conn.ledger = None;
                }
            }
            continue; // the schedule is read again from the ledger
        }
        // Sleep until the next due time (or a retry), at most 30 s at a time.
        let until = cart
            .schedule
            .next_due(last, now, cart.tz)
            .map(|t| (t - now).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::from_secs(30));
        let until = match retry_at {
            Some(t) => until.min(t.saturating_duration_since(Instant::now())),
            None => until,
        };
        bell.wait(
            until
                .clamp(Duration::from_millis(50), Duration::from_secs(30))
                .saturating_add(Duration::from_millis(5)),
        );
    }
    if retry_at.is_some() {
        let n = sh.retries_pending.fetch_sub(1, Ordering::SeqCst) - 1;
        sh.telemetry.set_retries_pending(n);
    }
}
