//! One generation of workers (one config): a thread per inbound source and
//! per cart, each with its own ledger connection and its own bell to wake it
//! early (a watched folder changed, or it is time to stop).

use super::leases::{Hold, Leases, WorkLease};
use super::shutdown::Shutdown;
use super::{RESCAN, SETTLE_MS, backoff};
use crate::config::{Cart, Config, Inbound};
use crate::ledger::{Ledger, LedgerError, SyncOutcome, cart_work, source_work};
use crate::pickup::{ApplyGate, FileOutcome, Outcome, pickup_source};
use crate::sync::{SyncOptions, SyncReport, sync_cart};
use crate::telemetry::Telemetry;
use crate::util::{escape, now_ms, to_datetime};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
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
    gate: Arc<ApplyGate>,
    first_looks: Arc<FirstLooks>,
    /// The generation's stop: every wait of its workers ends at it.
    shutdown: Arc<Shutdown>,
    /// Kept from generation to generation.
    retries: Arc<Retries>,
    /// This gateway's leases (one set for the process).
    leases: Arc<Leases>,
}

/// A cart's pending retry of a failed delivery.
#[derive(Debug, Clone, Copy)]
struct Retry {
    /// Failed deliveries in a row.
    failures: u32,
    at: Instant,
    /// `at` as wall-clock time (ms since the epoch), for the page.
    at_ms: i64,
}

/// Carts waiting to retry a failed delivery, kept across reloads: a cart of
/// the new config with the same id inherits its attempt count and due time
/// (so a fix and SIGHUP is tried at the retry, not at the next slot), and
/// across a worker's restart after a panic. Published to telemetry
/// (`stockgate_retries_pending`, the page's "next due").
struct Retries {
    telemetry: Arc<Telemetry>,
    inner: Mutex<RetriesInner>,
}

#[derive(Default)]
struct RetriesInner {
    /// The carts of the config in force: a retry of any other is dropped.
    carts: HashSet<String>,
    pending: std::collections::BTreeMap<String, Retry>,
}

impl Retries {
    fn lock(&self) -> std::sync::MutexGuard<'_, RetriesInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, inner: &RetriesInner) {
        self.telemetry.set_retries(
            inner
                .pending
                .iter()
                .map(|(c, r)| (c.clone(), r.at_ms))
                .collect(),
        );
    }

    /// A new config: retries of carts it no longer has are dropped.
    fn keep_only(&self, cfg: &Config) {
        let mut inner = self.lock();
        inner.carts = cfg.carts.iter().map(|c| c.id.clone()).collect();
        let RetriesInner { carts, pending } = &mut *inner;
        pending.retain(|c, _| carts.contains(c));
        self.publish(&inner);
    }

    fn get(&self, cart: &str) -> Option<Retry> {
        self.lock().pending.get(cart).copied()
    }

    fn set(&self, cart: &str, retry: Option<Retry>) {
        let mut inner = self.lock();
        match retry {
            Some(r) if inner.carts.contains(cart) => {
                inner.pending.insert(cart.to_string(), r);
            }
            _ => {
                inner.pending.remove(cart);
            }
        }
        self.publish(&inner);
    }
}

/// How long a cart's first sync waits for its sources' first look.
const FIRST_LOOK_WAIT: Duration = Duration::from_secs(60);

/// Sources that have not finished their first look since the start: a
/// cart's first sync waits for those that feed it (files that arrived while
/// stopped go in first), at most `FIRST_LOOK_WAIT` and not past a stop.
#[derive(Default)]
struct FirstLooks {
    pending: Mutex<HashSet<String>>,
    done: Condvar,
}

impl FirstLooks {
    fn done(&self, source: &str) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.remove(source);
        self.done.notify_all();
    }
    fn wake(&self) {
        let _p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        self.done.notify_all();
    }
    fn wait(&self, sources: &[String], limit: Duration, shutdown: &Shutdown) {
        let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.done.wait_timeout_while(p, limit, |p| {
            !shutdown.is_stopped() && sources.iter().any(|s| p.contains(s))
        });
    }
}

/// Whether `src` feeds `cart`: its merchant, and one of the cart's
/// warehouses (a source without a fixed warehouse may name any).
fn feeds(src: &Inbound, cart: &Cart) -> bool {
    src.merchant == cart.merchant
        && (cart.warehouses.is_empty()
            || src
                .warehouse
                .as_ref()
                .is_none_or(|w| cart.warehouses.contains(w)))
}

impl Shared {
    fn stopping(&self) -> bool {
        self.shutdown.is_stopped()
    }
}

/// A worker thread; `done` is set when it has returned (or panicked out).
struct Worker {
    name: String,
    handle: JoinHandle<()>,
    done: Arc<AtomicBool>,
}

/// Sets its flag when dropped: at the end of a worker thread, however it ends.
struct DoneGuard(Arc<AtomicBool>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

pub struct Generation {
    shared: Arc<Shared>,
    workers: Vec<Worker>,
    /// Workers of earlier generations still busy (a transfer stuck in a
    /// read): each is replaced by its successor as soon as it returns.
    retiring: Vec<Worker>,
    source_bells: Vec<Arc<Bell>>,
    watcher: Option<(
        notify_debouncer_full::Debouncer<
            notify_debouncer_full::notify::RecommendedWatcher,
            notify_debouncer_full::RecommendedCache,
        >,
        std::sync::mpsc::Receiver<notify_debouncer_full::DebounceEventResult>,
    )>,
}

impl Generation {
    /// Starts every worker for `cfg`. With the `previous` generation (a
    /// reload), that one is told to stop: its idle workers are replaced at
    /// once, a busy one as soon as it returns (its successor waits for it,
    /// so one source or cart never runs twice at once), and nobody else
    /// waits for it. Only a fresh start waits for first looks.
    pub fn start(
        cfg: Arc<Config>,
        telemetry: Arc<Telemetry>,
        leases: Arc<Leases>,
        previous: Option<Generation>,
    ) -> Generation {
        use notify_debouncer_full::notify::RecursiveMode;
        let mut old: Vec<Worker> = vec![];
        let fresh = previous.is_none();
        let retries = match &previous {
            Some(p) => p.shared.retries.clone(),
            None => Arc::new(Retries {
                telemetry: telemetry.clone(),
                inner: Mutex::default(),
            }),
        };
        retries.keep_only(&cfg);
        if let Some(mut p) = previous {
            p.signal_stop();
            p.watcher = None;
            old.append(&mut p.workers);
            old.append(&mut p.retiring);
        }
        old.retain(|w| !w.done.load(Ordering::SeqCst));
        let pending = if fresh {
            cfg.inbound.iter().map(|s| s.id.clone()).collect()
        } else {
            HashSet::new()
        };
        let shared = Arc::new(Shared {
            cfg: cfg.clone(),
            telemetry,
            gate: Arc::new(ApplyGate::default()),
            first_looks: Arc::new(FirstLooks {
                pending: Mutex::new(pending),
                done: Condvar::new(),
            }),
            shutdown: Arc::new(Shutdown::default()),
            retries,
            leases,
        });
        shared.leases.set_total(cfg.inbound.len() + cfg.carts.len());
        {
            let (gate, looks) = (shared.gate.clone(), shared.first_looks.clone());
            shared.shutdown.on_stop(move || {
                gate.stop();
                looks.wake();
            });
        }
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
            workers: vec![],
            retiring: vec![],
            source_bells: vec![],
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
            g.spawn(
                format!("source {}", src.id),
                &old,
                bell.clone(),
                move |name| {
                    supervise(&sh, name, || {
                        source_worker(&sh, name, &sh.cfg.inbound[i], &bell, watched)
                    })
                },
            );
        }
        for i in 0..cfg.carts.len() {
            let bell = Arc::new(Bell::default());
            let sh = shared.clone();
            let sources: Vec<String> = cfg
                .inbound
                .iter()
                .filter(|s| feeds(s, &cfg.carts[i]))
                .map(|s| s.id.clone())
                .collect();
            g.spawn(
                format!("cart {}", cfg.carts[i].id),
                &old,
                bell.clone(),
                move |name| {
                    supervise(&sh, name, || {
                        cart_worker(&sh, name, &sh.cfg.carts[i], &bell, &sources)
                    })
                },
            );
        }
        g.retiring = old;
        g.watcher = watcher.map(|w| (w, rx));
        g
    }

    /// Starts worker `name`; when a worker of that name from an earlier
    /// generation is still running, this one first waits for it to return.
    fn spawn(
        &mut self,
        name: String,
        old: &[Worker],
        bell: Arc<Bell>,
        f: impl FnOnce(&str) + Send + 'static,
    ) {
        {
            let bell = bell.clone();
            self.shared.shutdown.on_stop(move || bell.ring());
        }
        let before = old.iter().find(|w| w.name == name).map(|w| w.done.clone());
        let done = Arc::new(AtomicBool::new(false));
        let guard = DoneGuard(done.clone());
        let shutdown = self.shared.shutdown.clone();
        let n = name.clone();
        let body = move || {
            let _guard = guard;
            if let Some(before) = before {
                if !before.load(Ordering::SeqCst) {
                    tracing::info!(worker = %n, "waiting for the previous config's worker to finish");
                }
                while !before.load(Ordering::SeqCst) {
                    if shutdown.wait_timeout(Duration::from_millis(50)) {
                        return;
                    }
                }
            }
            f(&n)
        };
        match std::thread::Builder::new().name(name.clone()).spawn(body) {
            Ok(handle) => self.workers.push(Worker { name, handle, done }),
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
        self.retiring.retain(|w| !w.done.load(Ordering::SeqCst));
    }

    /// Tells every worker to stop; returns at once.
    fn signal_stop(&self) {
        self.shared.shutdown.stop();
    }

    /// Stops every worker, of this generation and of earlier ones still
    /// busy: each finishes what it is doing; work still running after
    /// `limit` has its connections cut and is left behind (the process is
    /// about to exit).
    pub fn stop(mut self, limit: Duration) {
        self.signal_stop();
        self.watcher = None;
        let mut all = std::mem::take(&mut self.workers);
        all.append(&mut self.retiring);
        let t = Instant::now();
        let running = |all: &[Worker]| -> Vec<String> {
            all.iter()
                .filter(|w| !w.done.load(Ordering::SeqCst))
                .map(|w| w.name.clone())
                .collect()
        };
        while t.elapsed() < limit && !running(&all).is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = running(&all);
        if !left.is_empty() {
            tracing::warn!(workers = %left.join(", "), "still busy at shutdown: cutting their connections");
            crate::transport::abort_all();
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(500) && !running(&all).is_empty() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for w in all {
            if w.done.load(Ordering::SeqCst) {
                let _ = w.handle.join();
            }
        }
    }
}

/// Runs a worker; a panic is caught, logged with the worker's name,
/// counted (`stockgate_worker_panics_total{worker}`) and reported by
/// `/healthz` until the worker has run a pass again, and the worker is
/// started again after 1 s, 2 s, 4 s ... at most 60 s (its own state starts
/// afresh, except a cart's pending retry, which it keeps).
fn supervise(sh: &Shared, name: &str, mut worker: impl FnMut()) {
    let mut panics = 0u32;
    let mut last_panic: Option<Instant> = None;
    loop {
        let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut worker)) else {
            return; // stopped
        };
        let why = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        let why = crate::util::bounded(&escape(&why), 200);
        if last_panic.is_some_and(|t| t.elapsed() > Duration::from_secs(600)) {
            panics = 0;
        }
        last_panic = Some(Instant::now());
        let wait = Duration::from_secs((1u64 << panics.min(6)).min(60));
        panics += 1;
        sh.telemetry.worker_panicked(name, &why);
        tracing::error!(worker = %name, panic = %why, restart_in_s = wait.as_secs(), "worker panicked; restarting it");
        if sh.shutdown.wait_timeout(wait) {
            return;
        }
    }
}

/// Test hook, in debug builds only (never in a release build):
/// `STOCKGATE_TEST_PANIC=<source or cart id>[:N]` makes that worker's first
/// N passes (default 1) panic, so the tests can watch a panicking worker
/// being reported and restarted.
#[cfg(debug_assertions)]
fn test_panic(id: &str) {
    use std::sync::atomic::AtomicU32;
    static DONE: AtomicU32 = AtomicU32::new(0);
    let Ok(v) = std::env::var("STOCKGATE_TEST_PANIC") else {
        return;
    };
    let (target, n) = match v.rsplit_once(':') {
        Some((t, n)) => (t.to_string(), n.parse().unwrap_or(1)),
        None => (v, 1),
    };
    if target == id && DONE.fetch_add(1, Ordering::SeqCst) < n {
        panic!("STOCKGATE_TEST_PANIC={target}");
    }
}

#[cfg(not(debug_assertions))]
fn test_panic(_: &str) {}

/// A worker's own ledger connection, opened on first use and again after an error.
struct Conn {
    ledger: Option<Ledger>,
}

impl Conn {
    fn get(&mut self, cfg: &Config) -> Result<&mut Ledger, String> {
        if self.ledger.is_none() {
            let l = Ledger::open(&cfg.ledger).map_err(|e| e.to_string())?;
            l.check_writable(&cfg.ledger).map_err(|e| e.to_string())?;
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

fn source_worker(sh: &Shared, name: &str, src: &Inbound, bell: &Bell, watched: bool) {
    let mut conn = Conn { ledger: None };
    let remote = src.transport.endpoint.is_remote();
    let mut first = true;
    let started = Instant::now();
    // Failed looks in a row, for the retry's backoff.
    let mut failures = 0u32;
    let mut hold = WorkLease::new(source_work(&src.id));
    while !sh.stopping() {
        test_panic(&src.id);
        let held = conn
            .get(&sh.cfg)
            .and_then(|l| hold.ensure(&sh.leases, l).map_err(|e| e.to_string()));
        match held {
            Ok(Hold::NotHeld) => {
                // Another gateway works it: nothing for our carts to wait for.
                if first {
                    first = false;
                    sh.first_looks.done(&src.id);
                }
                sh.telemetry.worker_ran(name);
                bell.wait(sh.leases.every());
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(source = %src.id, error = %escape(&e), "ledger unavailable");
                conn.ledger = None;
                bell.wait(Duration::from_secs(10));
                continue;
            }
        }
        let t0 = Instant::now();
        let mut settling = false;
        let next = match conn.get(&sh.cfg) {
            Err(e) => {
                tracing::error!(source = %src.id, error = %escape(&e), "ledger unavailable");
                Duration::from_secs(10)
            }
            Ok(ledger) => match pickup_source(&sh.cfg, ledger, src, SETTLE_MS, Some(&sh.gate)) {
                Ok(p) => {
                    sh.telemetry.look(&src.id, true, now_ms());
                    failures = 0;
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
                Err(crate::pickup::PickupError::Ledger(LedgerError::LeaseLost { .. })) => {
                    hold.drop_lost(&sh.leases, ledger);
                    sh.leases.every()
                }
                Err(e) => {
                    sh.telemetry.look(&src.id, false, now_ms());
                    failures = failures.saturating_add(1);
                    let wait = look_again_in(src.poll, failures);
                    let msg = escape(&e.to_string());
                    tracing::error!(event = "pickup", source = %src.id, outcome = "failed", failures, retry_in_s = wait.as_secs(), error = %msg, "pickup failed");
                    if matches!(e, crate::pickup::PickupError::Ledger(_)) {
                        conn.ledger = None;
                    }
                    wait
                }
            },
        };
        // The first look is over once no file of it is still settling
        // (local files a moment old wait a second or two).
        if first && (!settling || started.elapsed() >= Duration::from_secs(3)) {
            first = false;
            sh.first_looks.done(&src.id);
        }
        sh.telemetry.worker_ran(name);
        bell.wait(next);
    }
    sh.first_looks.done(&src.id);
}

/// Failed looks in a row after which a failing source is looked at less
/// often than every `poll` (rule 37).
const LOOK_BACKOFF_AFTER: u32 = 10;

/// The longest wait between looks at a failing source (unless its `poll`
/// is longer).
const LOOK_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// When to look again at a source after `failures` failed looks in a row:
/// every `poll` for the first 10, then twice as long at each failure, at
/// most 5 minutes (or `poll`, if that is longer).
pub(super) fn look_again_in(poll: Duration, failures: u32) -> Duration {
    let over = failures.saturating_sub(LOOK_BACKOFF_AFTER).min(16);
    poll.saturating_mul(1 << over)
        .min(LOOK_BACKOFF_MAX.max(poll))
}

/// Keeps a cart's pending retry in the ledger, for `status` and a restart.
fn note_retry(ledger: &Ledger, cart: &str, at: Option<i64>) {
    if let Err(e) = ledger.set_retry(cart, at) {
        tracing::warn!(cart = %cart, error = %e, "cannot record the pending retry");
    }
}

fn cart_worker(sh: &Shared, name: &str, cart: &Cart, bell: &Bell, sources: &[String]) {
    let mut conn = Conn { ledger: None };
    // A retry pending from the previous config (or before a panic) stays.
    let mut inherited = sh.retries.get(&cart.id);
    // ... and one the ledger kept from before a restart.
    if inherited.is_none()
        && let Ok(Some(at_ms)) = conn
            .get(&sh.cfg)
            .and_then(|l| l.cart_state(&cart.id).map_err(|e| e.to_string()))
            .map(|s| s.retry_at)
    {
        let wait = Duration::from_millis((at_ms - now_ms()).max(0) as u64);
        let r = Retry {
            failures: 1,
            at: Instant::now() + wait,
            at_ms,
        };
        sh.retries.set(&cart.id, Some(r));
        inherited = Some(r);
    }
    let mut failures = inherited.map_or(0, |r| r.failures);
    let mut retry_at: Option<Instant> = inherited.map(|r| r.at);
    // Our own last attempt, also when it was not recorded (another process
    // held the cart), so that the schedule is respected either way.
    let mut tried: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut warned_clock = false;
    let mut hold = WorkLease::new(cart_work(&cart.id));
    sh.first_looks.wait(sources, FIRST_LOOK_WAIT, &sh.shutdown);
    while !sh.stopping() {
        test_panic(&cart.id);
        let ledger = match conn.get(&sh.cfg) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(cart = %cart.id, error = %escape(&e), "ledger unavailable");
                bell.wait(Duration::from_secs(10));
                continue;
            }
        };
        match hold.ensure(&sh.leases, ledger) {
            Ok(Hold::NotHeld) => {
                sh.telemetry.worker_ran(name);
                bell.wait(sh.leases.every());
                continue;
            }
            // Taken (at the start, or over from a gateway that stopped):
            // finish what its journal says first.
            Ok(Hold::Taken) => super::hygiene::cart_leftovers(&sh.cfg, ledger, cart),
            Ok(Hold::Kept) => {}
            Err(e) => {
                tracing::error!(cart = %cart.id, error = %e, "ledger error");
                conn.ledger = None;
                bell.wait(Duration::from_secs(10));
                continue;
            }
        }
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
                    if r.retryable {
                        failures += 1;
                        let wait = backoff(failures);
                        tracing::warn!(cart = %cart.id, failures, retry_in_s = wait.as_secs(), "delivery will be retried");
                        let at = Instant::now() + wait;
                        retry_at = Some(at);
                        let at_ms = now_ms() + wait.as_millis() as i64;
                        sh.retries.set(
                            &cart.id,
                            Some(Retry {
                                failures,
                                at,
                                at_ms,
                            }),
                        );
                        note_retry(ledger, &cart.id, Some(at_ms));
                    } else {
                        failures = 0;
                        if retry_at.take().is_some() {
                            note_retry(ledger, &cart.id, None);
                        }
                        sh.retries.set(&cart.id, None);
                    }
                }
                Err(crate::sync::SyncError::Ledger(LedgerError::LeaseLost { .. })) => {
                    hold.drop_lost(&sh.leases, ledger);
                }
                Err(e) => {
                    tracing::error!(event = "sync", cart = %cart.id, outcome = "failed", error = %e, "sync failed");
                    conn.ledger = None;
                }
            }
            sh.telemetry.worker_ran(name);
            continue; // the schedule is read again from the ledger
        }
        sh.telemetry.worker_ran(name);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_source_is_looked_at_every_poll_then_backs_off_to_five_minutes() {
        let poll = Duration::from_secs(30);
        for n in 1..=10 {
            assert_eq!(look_again_in(poll, n), poll, "failure {n}");
        }
        assert_eq!(look_again_in(poll, 11), Duration::from_secs(60));
        assert_eq!(look_again_in(poll, 12), Duration::from_secs(120));
        assert_eq!(look_again_in(poll, 13), Duration::from_secs(240));
        assert_eq!(look_again_in(poll, 14), Duration::from_secs(300));
        assert_eq!(look_again_in(poll, u32::MAX), Duration::from_secs(300));
        // A poll longer than 5 minutes is never shortened, nor lengthened.
        let hour = Duration::from_secs(3600);
        assert_eq!(look_again_in(hour, 1), hour);
        assert_eq!(look_again_in(hour, 40), hour);
    }
}
