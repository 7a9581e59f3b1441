//! Read-only views for operators: `explain` (why a cart gets a number) and
//! `status` (what is due, what is waiting, what went wrong).

use crate::config::Config;
use crate::ledger::{FeedQuery, Ledger, LedgerError, OrderDraw};
use crate::sync::{breakdown_warehouses, feed_query};
use crate::util::{now_ms, rfc3339, to_datetime};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Explain {
    pub merchant: String,
    pub sku: String,
    pub known: bool,
    pub warehouses: Vec<WarehouseStock>,
    pub orders_subtracted: Vec<OrderSubtracted>,
    pub available: i64,
    pub carts: Vec<CartValue>,
    pub computed_at: String,
}

#[derive(Debug, Serialize)]
pub struct WarehouseStock {
    pub warehouse: String,
    pub quantity: i64,
    pub as_of: String,
    pub report: String,
}

#[derive(Debug, Serialize)]
pub struct OrderSubtracted {
    pub order_id: String,
    pub line: String,
    pub quantity: i64,
    pub ordered_at: String,
    /// A kit's order line drawing on this SKU, a component of the kit
    /// (rule 21): the kit's SKU (`quantity` is the line's times the
    /// quantity per kit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kit: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CartValue {
    pub cart: String,
    pub min_level: i64,
    pub warehouses: Vec<String>,
    pub available: i64,
    /// What the cart's feed sends; `None` when it leaves the SKU out.
    pub value: Option<i64>,
    /// Why the cart's feed leaves the SKU out (as its sync summary counts it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_out: Option<String>,
    /// Rule 20, step by step (`value` null when the feed leaves it out).
    pub steps: crate::ledger::Steps,
    /// A kit: its build per warehouse and the component limiting it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kit: Option<crate::ledger::KitExplain>,
    /// A per-warehouse 846 cart: how `value` is split over its locations
    /// (absent for other carts).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<LocationValue>,
}

#[derive(Debug, Serialize)]
pub struct LocationValue {
    pub warehouse: String,
    pub location: String,
    pub value: i64,
}

/// Explains a SKU's number: stock counted per warehouse, orders subtracted
/// since each count, and each cart's value. With `cart`, the stock and orders
/// shown are those that cart counts.
pub fn explain(
    cfg: &Config,
    ledger: &Ledger,
    merchant: &str,
    sku: &str,
    cart: Option<&str>,
) -> Result<Explain, LedgerError> {
    let now = now_ms();
    let all: Vec<String> = vec![];
    let counted = cart
        .and_then(|c| cfg.cart(c))
        .map(|c| c.warehouses.as_slice())
        .unwrap_or(&all);
    let stock = ledger.stock_rows(merchant, sku, counted)?;
    let mut orders: Vec<(OrderDraw, Option<String>)> = ledger
        .order_draws(merchant, sku, counted, now)?
        .into_iter()
        .map(|o| (o, None))
        .collect();
    orders.extend(kit_draws(cfg, ledger, merchant, sku, counted, &stock, now)?);
    orders.sort_by(|(a, _), (b, _)| {
        (a.ordered_at, &a.order_id, &a.line).cmp(&(b.ordered_at, &b.order_id, &b.line))
    });
    let warehouses = stock
        .into_iter()
        .map(|r| WarehouseStock {
            warehouse: r.warehouse,
            quantity: r.quantity,
            as_of: rfc3339(r.as_of),
            report: r.report,
        })
        .collect::<Vec<_>>();
    // i128: no sum of i64 quantities overflows, whatever the ledger holds.
    let available = warehouses.iter().map(|w| w.quantity as i128).sum::<i128>()
        - orders.iter().map(|o| o.0.quantity as i128).sum::<i128>();
    let available = available.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
    let mut carts = vec![];
    for c in cfg
        .carts
        .iter()
        .filter(|c| c.is_inventory() && c.merchant == merchant && cart.is_none_or(|id| id == c.id))
    {
        // Full: the SKU's numbers whether or not its next sync would send it.
        let breakdown = breakdown_warehouses(c);
        // A table that cannot be used (and never could): the cart's sync
        // fails, so its feed sends nothing; that is its `left_out`.
        let (rules, broken) = match crate::sync::cart_rules(c) {
            Ok(r) => (r, None),
            Err(e) => (None, Some(e.to_string())),
        };
        let q = FeedQuery {
            full: true,
            rules: rules.as_ref(),
            ..feed_query(c, 0, now, &[], Some(sku), &breakdown)
        };
        let mut row = ledger.feed_rows(&q, |rows| rows.next())?;
        let left_out = broken.or_else(|| {
            row.as_ref()
                .and_then(|r| crate::sync::left_out_reason(c, r))
        });
        let kit = row.as_mut().and_then(|r| r.kit.take()).map(|k| *k);
        let (available, value) = row
            .as_ref()
            .map_or((0, Some(0)), |r| (r.available, Some(r.item.quantity)));
        let value = value.filter(|_| left_out.is_none());
        let steps = c.alloc.steps(available, c.min_level, value);
        let locations = row
            .map(|r| r.item.warehouses)
            .unwrap_or_default()
            .into_iter()
            .map(|s| LocationValue {
                location: c
                    .mapping
                    .per_warehouse()
                    .and_then(|pw| pw.location_id(&s.warehouse))
                    .unwrap_or_default()
                    .to_string(),
                warehouse: s.warehouse,
                value: s.quantity,
            })
            .collect();
        carts.push(CartValue {
            cart: c.id.clone(),
            min_level: c.min_level,
            warehouses: c.warehouses.clone(),
            available,
            value,
            left_out,
            steps,
            kit,
            locations,
        });
    }
    Ok(Explain {
        merchant: merchant.to_string(),
        sku: sku.to_string(),
        known: ledger.product_exists(merchant, sku)?,
        warehouses,
        orders_subtracted: orders
            .into_iter()
            .map(|(o, kit)| OrderSubtracted {
                order_id: o.order_id,
                line: o.line,
                quantity: o.quantity,
                ordered_at: rfc3339(o.ordered_at),
                kit,
            })
            .collect(),
        available,
        carts,
        computed_at: rfc3339(now),
    })
}

/// Rule 21 for `explain` of a kit component: the open order lines of each
/// kit naming `sku` that draw on it (rule 2 applied to the component, as
/// if the line named it: after the count of the warehouse it draws on),
/// each with the component's quantity (line × per kit) and the kit's SKU.
fn kit_draws(
    cfg: &Config,
    ledger: &Ledger,
    merchant: &str,
    sku: &str,
    counted: &[String],
    stock: &[crate::ledger::StockRow],
    now: i64,
) -> Result<Vec<(OrderDraw, Option<String>)>, LedgerError> {
    let Some(kits) = cfg
        .kits_of(merchant)
        .and_then(|p| crate::tables::load_kits(p).ok())
    else {
        return Ok(vec![]);
    };
    let latest = stock.iter().map(|r| r.as_of).max();
    // The as-of a line is counted against: its warehouse's count (None when
    // the component has none there: it draws), else the latest count. A
    // line on a warehouse the cart does not count is not listed at all.
    let since = |w: Option<&str>| match w {
        Some(w) => stock.iter().find(|r| r.warehouse == w).map(|r| r.as_of),
        None => latest,
    };
    let mut out = vec![];
    for (kit, comps) in &kits.kits {
        let Some(per) = comps.iter().find(|(c, _)| c == sku).map(|(_, q)| *q) else {
            continue;
        };
        // The kit has no stock rows: every open line in a counted warehouse.
        for mut o in ledger.order_draws(merchant, kit, counted, now)? {
            if since(o.warehouse.as_deref()).is_some_and(|s| o.ordered_at <= s) {
                continue;
            }
            o.quantity = (i128::from(o.quantity) * i128::from(per))
                .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
            out.push((o, Some(kit.clone())));
        }
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub carts: Vec<CartStatus>,
    /// `[[order_feed]]`s, each like a cart (`pending`: orders waiting for it).
    pub order_feeds: Vec<CartStatus>,
    /// `[[confirm_feed]]`s (`pending`: shipments waiting for it).
    pub confirm_feeds: Vec<CartStatus>,
    /// The order loop at a glance (CONTRACT §6); absent without order sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders: Option<OrdersStatus>,
    /// Kits and sku_map files that do not parse now (rule 24): each keeps
    /// its cart on the last good table.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    pub inbound: Vec<InboundStatus>,
    pub ledger: String,
}

/// The order loop: orders per status, what waits and since when, and
/// what needs an operator (changed after sending, held back).
#[derive(Debug, Serialize, Default)]
pub struct OrdersStatus {
    pub by_status: std::collections::BTreeMap<String, u64>,
    /// Orders with lines not sent to their warehouse yet.
    pub waiting_to_send: u64,
    pub oldest_waiting: Option<String>,
    #[serde(skip)]
    pub oldest_waiting_ms: Option<i64>,
    /// Shipments not yet delivered by a confirm feed covering them.
    pub waiting_to_confirm: u64,
    pub oldest_unconfirmed: Option<String>,
    #[serde(skip)]
    pub oldest_unconfirmed_ms: Option<i64>,
    /// Orders changed after they were sent (at most 50 listed).
    pub changed_after_sending: Vec<String>,
    /// Orders an order feed holds back, with the reason (at most 50).
    pub held: Vec<HeldOrder>,
}

#[derive(Debug, Serialize)]
pub struct HeldOrder {
    pub source: String,
    pub order_id: String,
    pub reason: String,
}

/// The confirm feeds covering order source `source` (rule 25).
pub fn covering(cfg: &Config, source: &str) -> Vec<String> {
    cfg.carts
        .iter()
        .filter_map(|c| match &c.kind {
            crate::config::FeedKind::Confirms { orders_from, .. }
                if orders_from.iter().any(|s| s == source) =>
            {
                Some(c.id.clone())
            }
            _ => None,
        })
        .collect()
}

/// `stockgate orders`: every order (of `merchant`), its status (rule 25).
pub fn orders(
    cfg: &Config,
    ledger: &Ledger,
    merchant: Option<&str>,
) -> Result<Vec<crate::ledger::orders::OrderView>, LedgerError> {
    ledger.sql_read(|tx| crate::ledger::orders::list_orders(tx, merchant, &|s| covering(cfg, s)))
}

/// The order loop's numbers for `status`, `/metrics` and the status page;
/// per feed, what waits for it.
pub fn orders_status(
    cfg: &Config,
    ledger: &Ledger,
) -> Result<(OrdersStatus, std::collections::HashMap<String, i64>), LedgerError> {
    let mut st = OrdersStatus::default();
    let mut per_feed: std::collections::HashMap<String, i64> = Default::default();
    for o in orders(cfg, ledger, None)? {
        *st.by_status.entry(o.status.clone()).or_default() += 1;
        if o.unsent > 0 && o.held.is_none() {
            st.waiting_to_send += 1;
            st.oldest_waiting_ms = Some(
                st.oldest_waiting_ms
                    .map_or(o.ordered_at, |t| t.min(o.ordered_at)),
            );
            let mut feeds: Vec<&str> = o
                .lines
                .iter()
                .filter(|l| !l.sent && !l.cancelled)
                .filter_map(|l| {
                    crate::sync::order_feed_of(cfg, &o.merchant, l.warehouse.as_deref())
                })
                .collect();
            feeds.dedup();
            for f in feeds {
                *per_feed.entry(f.to_string()).or_default() += 1;
            }
        }
        if o.changed_after_sending && st.changed_after_sending.len() < 50 {
            st.changed_after_sending.push(o.order_id.clone());
        }
        if let Some(h) = &o.held
            && st.held.len() < 50
        {
            st.held.push(HeldOrder {
                source: o.source.clone(),
                order_id: o.order_id.clone(),
                reason: h.clone(),
            });
        }
        let cov = covering(cfg, &o.source);
        for s in &o.shipments {
            let missing: Vec<&String> =
                cov.iter().filter(|f| !s.confirmed_to.contains(f)).collect();
            if !missing.is_empty() {
                st.waiting_to_confirm += 1;
                st.oldest_unconfirmed_ms = Some(
                    st.oldest_unconfirmed_ms
                        .map_or(s.applied_at, |t| t.min(s.applied_at)),
                );
            }
            for f in missing {
                *per_feed.entry(f.clone()).or_default() += 1;
            }
        }
    }
    st.oldest_waiting = st.oldest_waiting_ms.map(rfc3339);
    st.oldest_unconfirmed = st.oldest_unconfirmed_ms.map(rfc3339);
    Ok((st, per_feed))
}

#[derive(Debug, Serialize)]
pub struct CartStatus {
    pub cart: String,
    pub merchant: String,
    pub format: String,
    pub schedule: String,
    pub next_due: Option<String>,
    pub last_attempt: Option<String>,
    pub last_success: Option<String>,
    pub last_outcome: Option<String>,
    /// When the running gateway retries a failed delivery (`next_due` then
    /// is the sooner of it and the schedule's next slot).
    pub retry_at: Option<String>,
    /// `next_due` is the pending retry.
    #[serde(skip)]
    pub next_is_retry: bool,
    /// Inventory reports applied since the last successful sync.
    pub pending: i64,
    /// The `[ledger] instance` of the gateway holding this cart's live
    /// lease (rule 35), or null.
    pub held_by: Option<String>,
    /// Allocation keys (rules 20-23), when the cart sets any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocation: Option<AllocationStatus>,
}

/// A cart's allocation keys, as `status` shows them.
#[derive(Debug, Serialize)]
pub struct AllocationStatus {
    pub buffer: i64,
    pub percent: i64,
    pub max_level: i64,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub sku_map: Option<String>,
    pub kits: Option<String>,
    pub sync_on_orders: bool,
    /// This cart's kits or sku_map file that cannot be used now (rule 24),
    /// each as `"tables"` words it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trouble: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct InboundStatus {
    pub source: String,
    pub kind: String,
    pub last_pickup: Option<String>,
    pub applied: u64,
    /// Files waiting in quarantine, rejected.
    pub rejected: u64,
    /// Full snapshots held in quarantine (apply with `ingest --force`).
    pub held: u64,
    /// What sits in quarantine now, each file once (rule 39).
    pub in_quarantine: u64,
    /// The latest of a failed look and a rejected or held file (rule 37).
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// Failed looks in a row (0 after a good look).
    pub failures: u64,
    /// The last successful listing of the source.
    pub last_look: Option<String>,
    /// The `[ledger] instance` of the gateway holding this source's live
    /// lease (rule 35), or null.
    pub held_by: Option<String>,
}

fn allocation_status(c: &crate::config::Cart) -> Option<AllocationStatus> {
    // Reads the cart's tables (rule 24): a broken one shows in `tables`.
    let _ = crate::sync::cart_rules(c);
    let trouble: Vec<String> = [&c.kits, &c.sku_map]
        .into_iter()
        .flatten()
        .filter_map(|p| crate::tables::trouble_of(p))
        .collect();
    let shown = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let any = !c.alloc.is_default()
        || !c.filters.is_empty()
        || c.sku_map.is_some()
        || c.kits.is_some()
        || c.sync_on_orders;
    any.then(|| AllocationStatus {
        buffer: c.alloc.buffer,
        percent: c.alloc.percent,
        max_level: c.alloc.max_level,
        include: c.filters.include_text.clone(),
        exclude: c.filters.exclude_text.clone(),
        sku_map: shown(&c.sku_map),
        kits: shown(&c.kits),
        sync_on_orders: c.sync_on_orders,
        trouble,
    })
}

pub fn status(cfg: &Config, ledger: &Ledger) -> Result<Status, LedgerError> {
    let now = chrono::Utc::now();
    let held: std::collections::HashMap<String, String> = ledger
        .leases()?
        .into_iter()
        .filter(|l| l.live)
        .map(|l| (l.work, l.holder))
        .collect();
    let held_by = |work: String| held.get(&work).cloned();
    let has_orders = cfg
        .inbound
        .iter()
        .any(|i| i.kind == crate::mapping::RecordKind::Orders);
    let (orders, waiting) = match has_orders {
        true => {
            let (o, w) = orders_status(cfg, ledger)?;
            (Some(o), w)
        }
        false => (None, Default::default()),
    };
    let (mut carts, mut order_feeds, mut confirm_feeds) = (vec![], vec![], vec![]);
    for c in &cfg.carts {
        let st = ledger.cart_state(&c.id)?;
        let next = c
            .schedule
            .next_due(st.last_attempt.map(to_datetime), now, c.tz);
        // A pending retry of a failed delivery comes first when it is sooner.
        let retry = st.retry_at.map(to_datetime);
        let next_is_retry = retry.is_some_and(|r| next.is_none_or(|n| r < n));
        let next = if next_is_retry { retry } else { next };
        let pending = match c.kind {
            crate::config::FeedKind::Inventory => {
                ledger.reports_since(&c.merchant, st.last_report_id, &c.warehouses)?
            }
            _ => waiting.get(&c.id).copied().unwrap_or(0),
        };
        let list = match c.kind {
            crate::config::FeedKind::Inventory => &mut carts,
            crate::config::FeedKind::Orders { .. } => &mut order_feeds,
            crate::config::FeedKind::Confirms { .. } => &mut confirm_feeds,
        };
        list.push(CartStatus {
            cart: c.id.clone(),
            merchant: c.merchant.clone(),
            format: c.format_name().into(),
            schedule: c.schedule_text.clone(),
            next_due: next.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)),
            last_attempt: st.last_attempt.map(rfc3339),
            last_success: st.last_success.map(rfc3339),
            last_outcome: st.last_outcome,
            retry_at: st.retry_at.map(rfc3339),
            next_is_retry,
            pending,
            held_by: held_by(crate::ledger::cart_work(&c.id)),
            allocation: allocation_status(c),
        });
    }
    let mut inbound = vec![];
    for i in &cfg.inbound {
        let st = ledger.inbound_stats(&i.id)?;
        // The folder is the truth of what waits (a file deleted by hand
        // waits no more; one file is one, whatever it was before).
        let waiting = crate::quarantine::waiting(cfg, i);
        let held = waiting.iter().filter(|w| w.outcome == "held").count() as u64;
        inbound.push(InboundStatus {
            source: i.id.clone(),
            kind: i.kind.name().into(),
            last_pickup: st.last_pickup.map(rfc3339),
            applied: st.applied,
            rejected: waiting.len() as u64 - held,
            held,
            in_quarantine: waiting.len() as u64,
            last_error: st.last_error,
            last_error_at: st.last_error_at.map(rfc3339),
            failures: st.failures,
            last_look: st.last_look.map(rfc3339),
            held_by: held_by(crate::ledger::source_work(&i.id)),
        });
    }
    let tables = crate::tables::table_trouble();
    Ok(Status {
        tables,
        carts,
        order_feeds,
        confirm_feeds,
        orders,
        inbound,
        ledger: cfg.ledger.to_string(),
    })
}
