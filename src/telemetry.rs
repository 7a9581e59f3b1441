//! What the running gateway counts, for `/metrics` (Prometheus text format
//! through `prometheus-client`) and the status page. Cheap to update from
//! any worker thread.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceOutcome {
    pub source: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CartOutcome {
    pub cart: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CartLabel {
    pub cart: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabel {
    /// "source ID" or "cart ID".
    pub worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Transfer {
    /// "pickup" (a source's pass) or "delivery" (a cart's feed).
    pub direction: String,
    /// The source or cart id.
    pub id: String,
}

fn duration_histogram() -> Histogram {
    // 10 ms .. ~5.5 min
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

pub struct Telemetry {
    registry: Registry,
    files: Family<SourceOutcome, Counter>,
    syncs: Family<CartOutcome, Counter>,
    items_sent: Family<CartLabel, Counter>,
    bytes_sent: Family<CartLabel, Counter>,
    last_success: Family<CartLabel, Gauge>,
    transfer_seconds: Family<Transfer, Histogram, fn() -> Histogram>,
    retries_pending: Gauge,
    ledger_bytes: Gauge,
    worker_panics: Family<WorkerLabel, Counter>,
    /// Workers that panicked and have not run a pass since, with why.
    worker_trouble: Mutex<std::collections::BTreeMap<String, String>>,
    /// When the main loop last went round (ms since the epoch).
    pub heartbeat: AtomicI64,
    /// Why the gateway is unhealthy, if it is (e.g. the ledger failed).
    pub trouble: Mutex<Option<String>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Telemetry {
        let mut registry = Registry::with_prefix("stockgate");
        let files = Family::<SourceOutcome, Counter>::default();
        registry.register(
            "files",
            "Inbound files taken, by source and outcome (applied, duplicate, rejected, held)",
            files.clone(),
        );
        let syncs = Family::<CartOutcome, Counter>::default();
        registry.register(
            "syncs",
            "Sync attempts, by cart and outcome (sent, skipped, failed)",
            syncs.clone(),
        );
        let items_sent = Family::<CartLabel, Counter>::default();
        registry.register("items_sent", "Items in delivered feeds", items_sent.clone());
        let bytes_sent = Family::<CartLabel, Counter>::default();
        registry.register("bytes_sent", "Bytes of delivered feeds", bytes_sent.clone());
        let last_success = Family::<CartLabel, Gauge>::default();
        registry.register(
            "last_success_timestamp_seconds",
            "When each cart last delivered a feed (Unix time)",
            last_success.clone(),
        );
        let transfer_seconds =
            Family::<Transfer, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram,
            );
        registry.register(
            "transfer_duration_seconds",
            "Duration of pickup passes and feed deliveries",
            transfer_seconds.clone(),
        );
        let retries_pending = Gauge::default();
        registry.register(
            "retries_pending",
            "Carts waiting to retry a failed delivery",
            retries_pending.clone(),
        );
        let ledger_bytes = Gauge::default();
        registry.register(
            "ledger_bytes",
            "Size of the SQLite ledger and its WAL",
            ledger_bytes.clone(),
        );
        let worker_panics = Family::<WorkerLabel, Counter>::default();
        registry.register(
            "worker_panics",
            "Panics of source and cart workers (each is restarted)",
            worker_panics.clone(),
        );
        Telemetry {
            registry,
            worker_panics,
            worker_trouble: Mutex::new(Default::default()),
            files,
            syncs,
            items_sent,
            bytes_sent,
            last_success,
            transfer_seconds,
            retries_pending,
            ledger_bytes,
            heartbeat: AtomicI64::new(crate::util::now_ms()),
            trouble: Mutex::new(None),
        }
    }

    pub fn file(&self, source: &str, outcome: &str) {
        self.files
            .get_or_create(&SourceOutcome {
                source: source.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// One sync attempt; `sent` = (items, bytes) when delivered.
    pub fn sync(&self, cart: &str, outcome: &str, sent: Option<(u64, u64)>) {
        self.syncs
            .get_or_create(&CartOutcome {
                cart: cart.into(),
                outcome: outcome.into(),
            })
            .inc();
        if let Some((items, bytes)) = sent {
            let c = CartLabel { cart: cart.into() };
            self.items_sent.get_or_create(&c).inc_by(items);
            self.bytes_sent.get_or_create(&c).inc_by(bytes);
            self.last_success
                .get_or_create(&c)
                .set(crate::util::now_ms() / 1000);
        }
    }

    pub fn transfer(&self, direction: &str, id: &str, seconds: f64) {
        self.transfer_seconds
            .get_or_create(&Transfer {
                direction: direction.into(),
                id: id.into(),
            })
            .observe(seconds);
    }

    pub fn set_retries_pending(&self, n: i64) {
        self.retries_pending.set(n);
    }

    /// A worker panicked: counted, and trouble until it runs a pass again.
    pub fn worker_panicked(&self, worker: &str, why: &str) {
        self.worker_panics
            .get_or_create(&WorkerLabel {
                worker: worker.into(),
            })
            .inc();
        self.worker_trouble
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(worker.into(), why.into());
    }

    /// A worker ran a pass: whatever trouble it had is over.
    pub fn worker_ran(&self, worker: &str) {
        let mut t = self
            .worker_trouble
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !t.is_empty() {
            t.remove(worker);
        }
    }

    /// Why the gateway is unhealthy, if it is: [`Telemetry::trouble`], then
    /// each worker that panicked and has not run a pass since.
    pub fn trouble_now(&self) -> Option<String> {
        let mut parts: Vec<String> = self
            .trouble
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        for (w, why) in self
            .worker_trouble
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            parts.push(format!("{w} panicked: {why}"));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    pub fn beat(&self) {
        self.heartbeat
            .store(crate::util::now_ms(), Ordering::Relaxed);
    }

    /// The exposition text; `ledger` is measured now.
    pub fn encode(&self, ledger: &std::path::Path) -> String {
        let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut wal = ledger.as_os_str().to_owned();
        wal.push("-wal");
        self.ledger_bytes
            .set((size(ledger) + size(std::path::Path::new(&wal))) as i64);
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
