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
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LeaseLabel {
    /// `source:<id>`, `cart:<id>`.
    pub work: String,
    /// The holder's `[ledger] instance`.
    pub holder: String,
}

/// Failed looks in a row after which `/healthz` names a source (rule 37).
pub const TROUBLE_AFTER_FAILURES: u64 = 3;

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
    pickup_failures: Family<SourceLabel, Counter>,
    last_look: Family<SourceLabel, Gauge>,
    /// `failing` as a gauge, for alerts.
    failures_in_a_row: Family<SourceLabel, Gauge>,
    /// Failed looks in a row, per source (absent or 0: looking fine).
    failing: Mutex<std::collections::BTreeMap<String, u64>>,
    worker_panics: Family<WorkerLabel, Counter>,
    lease_held: Family<LeaseLabel, Gauge>,
    /// The order loop (CONTRACT §6), measured at each scrape.
    orders_waiting: Family<CartLabel, Gauge>,
    orders_by_status: Family<StatusLabel, Gauge>,
    oldest_waiting_order: Gauge,
    oldest_unconfirmed_shipment: Gauge,
    /// The live leases of the ledger, work -> holder (the page's "held by").
    pub leases: Mutex<std::collections::BTreeMap<String, String>>,
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
        let pickup_failures = Family::<SourceLabel, Counter>::default();
        registry.register(
            "pickup_failures",
            "Looks at an inbound source that failed (connect, login, host key, certificate, listing)",
            pickup_failures.clone(),
        );
        let last_look = Family::<SourceLabel, Gauge>::default();
        registry.register(
            "last_look_timestamp_seconds",
            "When each inbound source was last listed successfully (Unix time)",
            last_look.clone(),
        );
        let failures_in_a_row = Family::<SourceLabel, Gauge>::default();
        registry.register(
            "pickup_failures_in_a_row",
            "Failed looks at each inbound source since its last good one (3 or more: /healthz names it)",
            failures_in_a_row.clone(),
        );
        let worker_panics = Family::<WorkerLabel, Counter>::default();
        registry.register(
            "worker_panics",
            "Panics of source and cart workers (each is restarted)",
            worker_panics.clone(),
        );
        let lease_held = Family::<LeaseLabel, Gauge>::default();
        registry.register(
            "lease_held",
            "1 for each live lease in the ledger, by work and holder (the gateway's [ledger] instance)",
            lease_held.clone(),
        );
        let orders_waiting = Family::<CartLabel, Gauge>::default();
        registry.register(
            "feed_waiting",
            "Orders waiting for each order feed, shipments waiting for each confirm feed",
            orders_waiting.clone(),
        );
        let orders_by_status = Family::<StatusLabel, Gauge>::default();
        registry.register(
            "orders",
            "Orders in the ledger by status (open, sent, partial, shipped, confirmed, cancelled)",
            orders_by_status.clone(),
        );
        let oldest_waiting_order = Gauge::default();
        registry.register(
            "oldest_unsent_order_age_seconds",
            "Age of the oldest order with lines not yet sent to its warehouse (0: none)",
            oldest_waiting_order.clone(),
        );
        let oldest_unconfirmed_shipment = Gauge::default();
        registry.register(
            "oldest_unconfirmed_shipment_age_seconds",
            "Age of the oldest shipment not yet confirmed to every cart covering it (0: none)",
            oldest_unconfirmed_shipment.clone(),
        );
        Telemetry {
            orders_waiting,
            orders_by_status,
            oldest_waiting_order,
            oldest_unconfirmed_shipment,
            lease_held,
            leases: Mutex::new(Default::default()),
            registry,
            pickup_failures,
            last_look,
            failures_in_a_row,
            failing: Mutex::new(Default::default()),
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

    /// One look at a source (`at_ms` its time): a good one sets its last
    /// look and ends a failed run; a failed one counts.
    pub fn look(&self, source: &str, ok: bool, at_ms: i64) {
        let l = SourceLabel {
            source: source.into(),
        };
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let n = if ok {
            self.last_look.get_or_create(&l).set(at_ms / 1000);
            failing.remove(source);
            0
        } else {
            self.pickup_failures.get_or_create(&l).inc();
            let n = failing.entry(source.to_string()).or_default();
            *n += 1;
            *n
        };
        self.failures_in_a_row
            .get_or_create(&l)
            .set(n.min(i64::MAX as u64) as i64);
    }

    /// Rule 38: what alerts rely on, as the ledger kept it, when the gateway
    /// starts: each cart's last success, each source's last look and its
    /// current run of failed looks.
    pub fn restore(
        &self,
        carts: &[(String, Option<i64>)],
        sources: &[(String, crate::ledger::SourceLook)],
    ) {
        for (cart, at) in carts {
            if let Some(at) = at {
                self.last_success
                    .get_or_create(&CartLabel { cart: cart.clone() })
                    .set(at / 1000);
            }
        }
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        for (source, look) in sources {
            if let Some(at) = look.last_look {
                self.last_look
                    .get_or_create(&SourceLabel {
                        source: source.clone(),
                    })
                    .set(at / 1000);
            }
            if look.failures > 0 {
                failing.insert(source.clone(), look.failures);
            }
            self.failures_in_a_row
                .get_or_create(&SourceLabel {
                    source: source.clone(),
                })
                .set(look.failures.min(i64::MAX as u64) as i64);
        }
    }

    /// The live leases of the ledger now, (work, holder): the gauge
    /// `stockgate_lease_held{work,holder}` = 1 for each, none for others.
    pub fn set_leases(&self, live: &[(String, String)]) {
        self.lease_held.clear();
        for (work, holder) in live {
            self.lease_held
                .get_or_create(&LeaseLabel {
                    work: work.clone(),
                    holder: holder.clone(),
                })
                .set(1);
        }
        *self.leases.lock().unwrap_or_else(|e| e.into_inner()) = live.iter().cloned().collect();
    }

    /// The holder of `work`'s live lease, if any.
    pub fn held_by(&self, work: &str) -> Option<String> {
        self.leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(work)
            .cloned()
    }

    /// The sources that failed [`TROUBLE_AFTER_FAILURES`] looks or more in
    /// a row, for `/healthz`: "source ID: N failed looks", joined.
    pub fn failing_sources(&self) -> Option<String> {
        let failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let named: Vec<String> = failing
            .iter()
            .filter(|(_, n)| **n >= TROUBLE_AFTER_FAILURES)
            .map(|(s, n)| format!("source {s}: {n} failed looks in a row"))
            .collect();
        (!named.is_empty()).then(|| named.join("; "))
    }

    pub fn transfer(&self, direction: &str, id: &str, seconds: f64) {
        self.transfer_seconds
            .get_or_create(&Transfer {
                direction: direction.into(),
                id: id.into(),
            })
            .observe(seconds);
    }

    /// The carts waiting to retry a failed delivery, with when (ms since
    /// the epoch): `stockgate_retries_pending` (the ledger keeps the time
    /// for `status` and the page).
    pub fn set_retries(&self, due: std::collections::BTreeMap<String, i64>) {
        self.retries_pending.set(due.len() as i64);
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
    /// each worker that panicked and has not run a pass since, then each
    /// source that failed 3 looks or more in a row (rule 37), all named.
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
        parts.extend(self.failing_sources());
        // Rule 24: a kits or sku_map file that does not parse now.
        parts.extend(crate::tables::table_trouble());
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    pub fn beat(&self) {
        self.heartbeat
            .store(crate::util::now_ms(), Ordering::Relaxed);
    }

    /// The order loop's gauges, from the ledger now (each scrape).
    pub fn set_orders(
        &self,
        st: &crate::inspect::OrdersStatus,
        waiting: &std::collections::HashMap<String, i64>,
        feeds: &[String],
    ) {
        let now = crate::util::now_ms();
        for f in feeds {
            let n = waiting.get(f).copied().unwrap_or(0);
            self.orders_waiting
                .get_or_create(&CartLabel { cart: f.clone() })
                .set(n);
        }
        for s in [
            "open",
            "sent",
            "partial",
            "shipped",
            "confirmed",
            "cancelled",
        ] {
            let n = st.by_status.get(s).copied().unwrap_or(0);
            self.orders_by_status
                .get_or_create(&StatusLabel { status: s.into() })
                .set(n as i64);
        }
        let age = |t: Option<i64>| t.map_or(0, |t| ((now - t) / 1000).max(0));
        self.oldest_waiting_order.set(age(st.oldest_waiting_ms));
        self.oldest_unconfirmed_shipment
            .set(age(st.oldest_unconfirmed_ms));
    }

    /// The exposition text; `ledger` is measured now.
    pub fn encode(&self, ledger: &crate::ledger::LedgerLocation) -> String {
        self.ledger_bytes
            .set(crate::ledger::Ledger::size_bytes(ledger) as i64);
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_looks_count_name_the_source_after_three_and_clear_on_a_good_one() {
        let t = Telemetry::new();
        t.look("far", true, 1_700_000_000_000);
        for _ in 0..2 {
            t.look("far", false, 1_700_000_060_000);
        }
        assert_eq!(t.failing_sources(), None);
        t.look("far", false, 1_700_000_120_000);
        assert_eq!(
            t.failing_sources().as_deref(),
            Some("source far: 3 failed looks in a row")
        );
        let text = t.encode(&crate::ledger::LedgerLocation::file("/nonexistent"));
        assert!(
            text.contains("stockgate_pickup_failures_total{source=\"far\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("stockgate_last_look_timestamp_seconds{source=\"far\"} 1700000000"),
            "{text}"
        );
        assert!(
            text.contains("stockgate_pickup_failures_in_a_row{source=\"far\"} 3"),
            "{text}"
        );
        t.worker_panicked("cart shop", "boom");
        assert_eq!(
            t.trouble_now().as_deref(),
            Some("cart shop panicked: boom; source far: 3 failed looks in a row")
        );
        t.look("far", true, 1_700_000_180_000);
        assert_eq!(t.failing_sources(), None);
        assert_eq!(t.trouble_now().as_deref(), Some("cart shop panicked: boom"));
        let text = t.encode(&crate::ledger::LedgerLocation::file("/nonexistent"));
        assert!(
            text.contains("stockgate_pickup_failures_in_a_row{source=\"far\"} 0"),
            "{text}"
        );
        t.worker_ran("cart shop");
        assert_eq!(t.trouble_now(), None);
    }

    #[test]
    fn restore_sets_what_alerts_rely_on_from_the_ledger() {
        let t = Telemetry::new();
        let look = crate::ledger::SourceLook {
            last_look: Some(1_700_000_000_000),
            failures: 4,
            ..Default::default()
        };
        t.restore(
            &[
                ("shop".into(), Some(1_690_000_000_000)),
                ("new".into(), None),
            ],
            &[("far".into(), look)],
        );
        let text = t.encode(&crate::ledger::LedgerLocation::file("/nonexistent"));
        assert!(
            text.contains("stockgate_last_success_timestamp_seconds{cart=\"shop\"} 1690000000"),
            "{text}"
        );
        assert!(!text.contains("cart=\"new\""), "{text}");
        assert!(
            text.contains("stockgate_last_look_timestamp_seconds{source=\"far\"} 1700000000"),
            "{text}"
        );
        assert_eq!(
            t.failing_sources().as_deref(),
            Some("source far: 4 failed looks in a row")
        );
        assert!(
            text.contains("stockgate_pickup_failures_in_a_row{source=\"far\"} 4"),
            "{text}"
        );
    }
}
