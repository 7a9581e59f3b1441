//! One cart's sync: the gate, the numbers (from the ledger), the feed
//! (rendered to a local file, streaming), its durable archive copy, delivery
//! under the final name, and only then the cart's marks.

mod docs;
mod x12docs;

pub use docs::{DocMarks, mark as mark_delivered, route as order_feed_of};

use crate::config::{Cart, Config};
use crate::formats::FeedItem;
use crate::formats::{FeedContext, write_feed};
use crate::ledger::{
    CartRules, FeedQuery, FeedRow, Ledger, LedgerError, SentLog, SyncEntry, SyncOutcome,
    missing_field,
};
use crate::mapping::OutField;
use crate::tables::TableError;
use crate::transport::{TransportError, deliver_to, deliver_to_path};
use crate::util::{Millis, hex, now_ms, rfc3339};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Lock(#[from] crate::locks::LockError),
}

#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Ignore the gate (and, in `run`, the schedule).
    pub force: bool,
    pub dry_run: bool,
    /// Write the feed to this file instead of the cart's transport.
    pub output: Option<PathBuf>,
}

/// The JSON shape of a sync, shared by `sync --json` and `history --json`.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub cart: String,
    pub outcome: SyncOutcome,
    pub reason: Option<String>,
    pub items: u64,
    pub file: Option<String>,
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<Missing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archived: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interchange_control: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_control: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack: Option<String>,
    /// An order feed's orders sent (CONTRACT §6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders: Option<u64>,
    /// A confirm feed's shipments sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipments: Option<u64>,
    /// A failed delivery that may succeed if tried again soon (the daemon
    /// retries it with backoff instead of waiting for the next schedule).
    #[serde(skip)]
    pub retryable: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Missing {
    pub field: String,
    pub items: u64,
}

impl SyncReport {
    pub fn from_entry(e: &SyncEntry) -> SyncReport {
        SyncReport {
            cart: e.cart.clone(),
            outcome: e.outcome,
            reason: e.reason.clone(),
            items: e.items,
            file: e.file.clone(),
            bytes: e.bytes,
            sha256: e.sha256.clone(),
            started_at: rfc3339(e.started_at),
            finished_at: rfc3339(e.finished_at),
            missing: vec![],
            archived: e.archive_path.clone(),
            interchange_control: e.interchange_control,
            group_control: e.group_control,
            ack: match (&e.ack_status, &e.ack_codes) {
                (Some(s), Some(c)) if !c.is_empty() => Some(format!("{s} ({c})")),
                (Some(s), _) => Some(s.clone()),
                // An 846 delivered and no 997 back yet.
                (None, _) if e.outcome == SyncOutcome::Sent && e.group_control.is_some() => {
                    Some("unacknowledged".into())
                }
                _ => None,
            },
            orders: None,
            shipments: None,
            retryable: false,
        }
    }

    pub fn is_failure(&self) -> bool {
        self.outcome == SyncOutcome::Failed
    }
}

/// What a delivery in progress is sending, kept in the ledger (its
/// `journal`, fenced by the cart's lease) until its outcome is recorded.
/// Older stockgates kept it in `var/journal/<cart>.json`:
/// [`Journal::import_files`] moves such a file into the ledger once.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Journal {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub started_at: Millis,
    pub items: u64,
    /// An order or confirm feed's marks, moved once the file is known
    /// delivered (also by the next start's reconciliation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marks: Option<DocMarks>,
}

impl Journal {
    /// Where an older stockgate kept a cart's journal.
    pub fn old_path(cfg: &Config, cart: &str) -> PathBuf {
        cfg.scratch_dir("journal", "").join(format!("{cart}.json"))
    }
    fn write(&self, ledger: &Ledger, cart: &str) -> Result<(), LedgerError> {
        ledger.journal_put(cart, &serde_json::to_string(self).unwrap_or_default())
    }
    /// The cart's journal; none when the ledger cannot say (logged).
    pub fn read(ledger: &Ledger, cart: &str) -> Option<Journal> {
        match ledger.journal_get(cart) {
            Ok(b) => serde_json::from_str(&b?).ok(),
            Err(e) => {
                tracing::warn!(cart = %cart, error = %e, "cannot read the delivery journal");
                None
            }
        }
    }
    pub fn remove(ledger: &Ledger, cart: &str) -> Result<(), LedgerError> {
        ledger.journal_clear(cart)
    }
    /// At `run`'s start: each `var/journal/<cart>.json` an older stockgate
    /// left for a cart of `cfg` goes into the ledger (unless the ledger
    /// already has a journal for it) and the file goes; a file that cannot
    /// be read as a journal is left where it is, logged.
    pub fn import_files(cfg: &Config, ledger: &Ledger) {
        for cart in &cfg.carts {
            let p = Self::old_path(cfg, &cart.id);
            let Ok(b) = std::fs::read(&p) else { continue };
            let Ok(j) = serde_json::from_slice::<Journal>(&b) else {
                tracing::warn!(file = %crate::util::escape(&p.display().to_string()), "cannot read an old delivery journal; left in place");
                continue;
            };
            let moved = match ledger.journal_get(&cart.id) {
                Ok(Some(_)) => Ok(()),
                Ok(None) => j.write(ledger, &cart.id),
                Err(e) => Err(e),
            };
            match moved {
                Ok(()) => {
                    let _ = std::fs::remove_file(&p);
                    tracing::info!(cart = %cart.id, "moved an old delivery journal into the ledger");
                }
                Err(e) => {
                    tracing::error!(cart = %cart.id, error = %e, "cannot move an old delivery journal into the ledger")
                }
            }
        }
    }
}

/// The warehouses a cart's per-warehouse 846 splits each value over: those
/// of its mapping's `[location_ids]` that the cart counts ([] = no split).
pub fn breakdown_warehouses(cart: &Cart) -> Vec<String> {
    let Some(pw) = cart.mapping.per_warehouse() else {
        return vec![];
    };
    pw.location_ids
        .iter()
        .map(|(w, _)| w.clone())
        .filter(|w| cart.warehouses.is_empty() || cart.warehouses.contains(w))
        .collect()
}

/// The query that gives a cart's numbers now (`locations`: see
/// [`breakdown_warehouses`]).
pub fn feed_query<'a>(
    cart: &'a Cart,
    since: i64,
    now: Millis,
    required: &'a [crate::mapping::OutField],
    sku: Option<&'a str>,
    locations: &'a [String],
) -> FeedQuery<'a> {
    FeedQuery {
        merchant: &cart.merchant,
        cart: &cart.id,
        warehouses: &cart.warehouses,
        min_level: cart.min_level,
        full: cart.is_full(),
        since_report: since,
        sync_time: now,
        required,
        sku,
        locations,
        rules: None,
    }
}

fn ext(cart: &Cart) -> &'static str {
    if let Some(d) = cart.kind.doc() {
        return d.ext();
    }
    match cart.mapping.format_name() {
        "x12-846" => "x12",
        other => {
            if other == "xml" {
                "xml"
            } else {
                "csv"
            }
        }
    }
}

pub fn file_name(cart: &Cart, now: Millis, seq: i64) -> String {
    let local = crate::util::to_datetime(now).with_timezone(&cart.tz);
    cart.transport
        .file_name
        .replace("{cart}", &cart.id)
        .replace("{merchant}", &cart.merchant)
        .replace("{timestamp}", &local.format("%Y%m%d%H%M%S").to_string())
        .replace("{seq}", &format!("{seq:06}"))
        .replace("{ext}", ext(cart))
}

/// Bytes and SHA-256 of what passes through.
struct Counting<W: Write> {
    inner: W,
    bytes: u64,
    hash: Sha256,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct Rendered {
    path: PathBuf,
    bytes: u64,
    sha256: String,
}

/// One check of what a feed can carry: an item whose `field` holds one of
/// the forbidden characters or is longer than `max` characters is left out
/// and counted as `invalid <field> (<why>)`.
struct Check {
    field: OutField,
    /// Forbidden ASCII characters, by byte.
    ascii: [bool; 128],
    /// Forbidden characters beyond ASCII.
    other: Vec<char>,
    max: usize,
    why: String,
    /// A GS1 id (UP 12, EN 13, UK 14 digits): the length and check digit must hold.
    gtin: Option<usize>,
    /// The whole reason shown, when not `invalid FIELD (why)`.
    label: Option<String>,
    n: u64,
}

impl Check {
    fn new(field: OutField, chars: &[char], max: usize, why: String) -> Check {
        let mut ascii = [false; 128];
        let mut other = vec![];
        for &c in chars {
            if c.is_ascii() {
                ascii[c as usize] = true;
            } else {
                other.push(c);
            }
        }
        Check {
            field,
            ascii,
            other,
            max,
            why,
            gtin: None,
            label: None,
            n: 0,
        }
    }

    /// An id that must be a valid GS1 number of `len` digits.
    fn gtin(field: OutField, len: usize, label: &str) -> Check {
        let mut c = Check::new(field, &[], usize::MAX >> 1, String::new());
        c.gtin = Some(len);
        c.label = Some(label.to_string());
        c
    }

    fn fails(&self, item: &FeedItem) -> bool {
        let v = match self.field {
            OutField::Sku => item.sku.as_str(),
            OutField::Upc => match &item.upc {
                Some(v) => v.as_str(),
                None => return false,
            },
            OutField::Description => match &item.description {
                Some(v) => v.as_str(),
                None => return false,
            },
            _ => return false,
        };
        if let Some(len) = self.gtin {
            // Items without a value are left to the missing-field rule.
            return !v.is_empty() && (v.len() != len || !crate::formats::valid_gtin(v));
        }
        v.bytes().any(|b| b < 128 && self.ascii[b as usize])
            || (!self.other.is_empty() && v.chars().any(|c| self.other.contains(&c)))
            || (v.len() > self.max && v.chars().count() > self.max)
    }
}

/// Decides, item by item while the feed is rendered, what is sent: an item
/// lacking a field the mapping needs, or holding a value the format cannot
/// carry, is left out and counted (never fatal to the feed: one bad SKU,
/// from an older ledger say, must not block the whole catalog). The values
/// sent that changed go to `sent`.
struct FeedFilter<'a> {
    required: &'a [OutField],
    missing: Vec<u64>,
    checks: Vec<Check>,
    /// Per-warehouse feeds: items whose stock sits (partly) in a warehouse
    /// without a location id, left out as `missing location`.
    unplaced: u64,
    items: u64,
    sent: Option<&'a mut SentLog>,
    error: Option<std::io::Error>,
    /// Left out by the cart's rules (22, 23): `no alias`, `filtered`.
    ruled: std::collections::BTreeMap<&'static str, u64>,
}

impl<'a> FeedFilter<'a> {
    fn new(cart: &Cart, required: &'a [OutField], sent: Option<&'a mut SentLog>) -> Self {
        let mut checks = vec![];
        let controls: Vec<char> = (0u8..0x20).chain([0x7f]).map(char::from).collect();
        // CSV and XML carry tab, newline and carriage return in a description.
        let unwritable: Vec<char> = controls
            .iter()
            .copied()
            .filter(|c| !matches!(c, '\t' | '\n' | '\r' | '\x7f'))
            .collect();
        checks.push(Check::new(
            OutField::Sku,
            &controls,
            crate::pickup::MAX_SKU_CHARS,
            "a control character, or over 255 characters".into(),
        ));
        match &cart.mapping.format {
            crate::mapping::OutFormat::X12_846(p) => {
                // A separator inside an id would break the interchange.
                let mut seps = vec![
                    p.element_separator,
                    p.segment_terminator,
                    p.component_separator,
                    '^',
                ];
                seps.extend(&controls);
                for (_, f) in &p.item_ids {
                    checks.push(Check::new(
                        *f,
                        &seps,
                        X12_MAX_ID_LEN,
                        format!("a separator character, or over {X12_MAX_ID_LEN} characters"),
                    ));
                }
                // A UP (UPC-A, 12 digits), EN (EAN-13) or UK (GTIN-14) id
                // must have its length and a valid check digit.
                for (q, f) in &p.item_ids {
                    if let Some(len) = crate::formats::gtin_len(q) {
                        let what = match q.as_str() {
                            "UP" => "invalid upc",
                            "EN" => "invalid ean",
                            _ => "invalid gtin",
                        };
                        checks.push(Check::gtin(*f, len, what));
                    }
                }
            }
            crate::mapping::OutFormat::Csv { columns, .. }
            | crate::mapping::OutFormat::Xml {
                fields: columns, ..
            } => {
                for f in [OutField::Upc, OutField::Description] {
                    if columns.iter().any(|c| c.field == f) {
                        checks.push(Check::new(
                            f,
                            &unwritable,
                            usize::MAX >> 1,
                            "a control character the feed cannot carry".into(),
                        ));
                    }
                }
            }
        }
        FeedFilter {
            required,
            missing: vec![0; required.len()],
            checks,
            unplaced: 0,
            items: 0,
            sent,
            error: None,
            ruled: Default::default(),
        }
    }

    /// Why `item` is left out, if it is: the first reason that applies.
    fn leave(&self, item: &FeedItem) -> Option<Leave> {
        if let Some(i) = missing_field(item, self.required) {
            return Some(Leave::Missing(i));
        }
        if item.unplaced != 0 {
            return Some(Leave::Unplaced);
        }
        self.checks
            .iter()
            .position(|c| c.fails(item))
            .map(Leave::Invalid)
    }

    /// The reason as the sync summary counts it.
    fn label(&self, l: Leave) -> String {
        match l {
            Leave::Missing(i) => format!("missing {}", self.required[i].name()),
            Leave::Unplaced => "missing location".into(),
            Leave::Invalid(i) => {
                let c = &self.checks[i];
                c.label
                    .clone()
                    .unwrap_or_else(|| format!("invalid {} ({})", c.field.name(), c.why))
            }
        }
    }

    fn keep(&mut self, r: FeedRow) -> Option<FeedItem> {
        if let Some(why) = r.left_out {
            *self.ruled.entry(why).or_default() += 1;
            return None;
        }
        if let Some(l) = self.leave(&r.item) {
            match l {
                Leave::Missing(i) => self.missing[i] += 1,
                Leave::Unplaced => self.unplaced += 1,
                Leave::Invalid(i) => self.checks[i].n += 1,
            }
            return None;
        }
        self.items += 1;
        if r.changed
            && let Some(log) = self.sent.as_deref_mut()
            && let Err(e) = log.push(r.sku(), r.item.quantity)
        {
            self.error.get_or_insert(e);
        }
        Some(r.item)
    }

    /// Items left out: missing fields first, then invalid values, each
    /// counted under the first reason that applies.
    fn left_out(&self) -> Vec<Missing> {
        let missing = (0..self.required.len()).map(|i| (Leave::Missing(i), self.missing[i]));
        let unplaced = std::iter::once((Leave::Unplaced, self.unplaced));
        let invalid = (0..self.checks.len()).map(|i| (Leave::Invalid(i), self.checks[i].n));
        let mut out: Vec<Missing> = missing
            .chain(unplaced)
            .chain(invalid)
            .filter(|(_, n)| *n > 0)
            .map(|(l, n)| Missing {
                field: self.label(l),
                items: n,
            })
            .collect();
        out.extend(self.ruled.iter().map(|(why, n)| Missing {
            field: why.to_string(),
            items: *n,
        }));
        out
    }
}

/// Why a feed leaves an item out: a required field it lacks (by index), a
/// warehouse without a location id, or a check it fails (by index).
#[derive(Clone, Copy)]
enum Leave {
    Missing(usize),
    Unplaced,
    Invalid(usize),
}

/// Why `cart`'s feed leaves `item` out, worded as its sync summary counts
/// it; `None` when the feed sends it. The same decision as the feed's, for
/// `explain`.
pub fn left_out_reason(cart: &Cart, row: &FeedRow) -> Option<String> {
    if let Some(why) = row.left_out {
        return Some(why.to_string());
    }
    let required = cart.mapping.required_fields();
    let filter = FeedFilter::new(cart, &required, None);
    filter.leave(&row.item).map(|l| filter.label(l))
}

/// A cart's rules 20–23 with its tables as they are now (rule 24: a kits
/// or sku_map file is read again when it changed; one that does not
/// parse keeps the last good table). None: the cart has none of the keys.
/// Err: a table that could never be read.
pub fn cart_rules(cart: &Cart) -> Result<Option<CartRules>, TableError> {
    let kits = cart
        .kits
        .as_deref()
        .map(crate::tables::load_kits)
        .transpose()?;
    let sku_map = cart
        .sku_map
        .as_deref()
        .map(crate::tables::load_sku_map)
        .transpose()?;
    if kits.is_none() && sku_map.is_none() && cart.alloc.is_default() && cart.filters.is_empty() {
        return Ok(None);
    }
    Ok(Some(CartRules {
        alloc: cart.alloc,
        kits,
        sku_map,
        filters: cart.filters.clone(),
    }))
}

/// Computes and writes the feed to `path`, item by item, in one pass.
fn render(
    ledger: &Ledger,
    cart: &Cart,
    q: &FeedQuery,
    filter: &mut FeedFilter,
    ctx: &FeedContext,
    path: &Path,
) -> Result<Rendered, String> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    let file =
        std::fs::File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let mut counting = Counting {
        inner: std::io::BufWriter::with_capacity(1 << 16, file),
        bytes: 0,
        hash: Sha256::new(),
    };
    // A full feed sends (at most) every SKU of the merchant: a bar with an ETA.
    match cart.is_full().then(|| ledger.product_count(&cart.merchant)) {
        Some(Ok(total)) => crate::progress::start_items(&cart.id, total),
        _ => crate::progress::start(&cart.id, None),
    }
    let mut n = 0u64;
    let written = ledger
        .feed_rows(q, |rows| {
            let mut items = rows.filter_map(|r| filter.keep(r)).inspect(|_| {
                n += 1;
                if n.is_multiple_of(4096) {
                    crate::progress::rows(n);
                }
            });
            write_feed(&cart.mapping, ctx, &mut counting, &mut items)
        })
        .map_err(|e| e.to_string());
    crate::progress::finish();
    written?.map_err(|e| format!("cannot render feed: {e}"))?;
    if let Some(e) = filter.error.take() {
        return Err(format!("cannot keep the values sent: {e}"));
    }
    counting
        .flush()
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let Counting { inner, bytes, hash } = counting;
    inner
        .into_inner()
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?
        .sync_all()
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(Rendered {
        path: path.to_path_buf(),
        bytes,
        sha256: hex(&hash.finalize()),
    })
}

/// Ends an attempt that sends nothing (skipped or failed): records it in the
/// history, unless it is a dry run, and reports it. No mark moves.
fn unsent(
    ledger: &mut Ledger,
    mut entry: SyncEntry,
    outcome: SyncOutcome,
    reason: String,
    dry_run: bool,
) -> Result<SyncReport, SyncError> {
    // `run` logs one line per attempt; `sync` prints it.
    tracing::debug!(cart = %entry.cart, reason = %reason, "{outcome}");
    entry.outcome = outcome;
    entry.reason = Some(reason);
    entry.finished_at = now_ms();
    if !dry_run {
        ledger.record_sync(&entry, None)?;
    }
    Ok(SyncReport::from_entry(&entry))
}

/// "N left out: why; ..." for a sync's reason.
fn missing_note(missing: &[Missing]) -> Option<String> {
    (!missing.is_empty()).then(|| {
        missing
            .iter()
            .map(|m| format!("{} left out: {}", m.items, m.field))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// The longest LIN id value the 846 writer accepts (X12 element max for 234).
const X12_MAX_ID_LEN: usize = 48;

pub fn sync_cart(
    cfg: &Config,
    ledger: &mut Ledger,
    cart: &Cart,
    opts: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let started = now_ms();
    let mut entry = SyncEntry {
        cart: cart.id.clone(),
        started_at: started,
        forced: opts.force,
        ..Default::default()
    };
    // Rule 18: never two syncs of one cart at once, whatever process runs them.
    let _lock = if opts.dry_run {
        None
    } else {
        match crate::locks::cart(cfg, &cart.id).map_err(SyncError::Lock)? {
            Some(l) => Some(l),
            None => {
                let busy = "another process is syncing this cart right now";
                return unsent(ledger, entry, SyncOutcome::Skipped, busy.into(), true);
            }
        }
    };
    if !cart.is_inventory() {
        return docs::sync_doc(cfg, ledger, cart, opts, entry);
    }
    let state = ledger.cart_state(&cart.id)?;

    // The cart's tables, read once per sync when first needed (by the
    // gate below or by the feed).
    let rules = std::cell::OnceCell::new();

    // 1. The gate: only new inventory justifies a changed-only feed (or,
    // with sync_on_orders, an order from elsewhere that changed a value).
    if !opts.force
        && !cart.is_full()
        && ledger.reports_since(&cart.merchant, state.last_report_id, &cart.warehouses)? == 0
        && !orders_open_gate(cfg, ledger, cart, &rules, state.last_report_id, started)?
    {
        let reason = "no new inventory".into();
        return unsent(ledger, entry, SyncOutcome::Skipped, reason, opts.dry_run);
    }

    // 2. The numbers, as of now: computed while the feed is rendered.
    let through = ledger.max_report_id()?;
    let required = cart.mapping.required_fields();
    let locations = breakdown_warehouses(cart);
    let rules = match rules.get_or_init(|| cart_rules(cart)) {
        Ok(r) => r,
        Err(reason) => {
            let reason = reason.to_string();
            return unsent(ledger, entry, SyncOutcome::Failed, reason, opts.dry_run);
        }
    };
    let q = FeedQuery {
        rules: rules.as_ref(),
        ..feed_query(
            cart,
            state.last_report_id,
            started,
            &required,
            None,
            &locations,
        )
    };
    if let Some((reason, missing)) = nothing_to_send(ledger, cart, &q, &required)? {
        let mut report = unsent(ledger, entry, SyncOutcome::Skipped, reason, opts.dry_run)?;
        report.missing = missing;
        return Ok(report);
    }

    // 3. Render to a local file under the feed's final name.
    let (name, control) = reserve(ledger, cart, started, opts.dry_run)?;
    entry.interchange_control = control.map(|(i, _)| i);
    entry.group_control = control.map(|(_, g)| g);
    let local = cfg.scratch_dir("outgoing", &cart.id).join(&name);
    let ctx = FeedContext {
        merchant: &cart.merchant,
        now: started,
        control,
        tz: cart.tz,
    };
    let mut sent = SentLog::new(&cfg.scratch_dir("outgoing", &cart.id));
    let mut filter = FeedFilter::new(cart, &required, (!opts.dry_run).then_some(&mut sent));
    let rendered = render(ledger, cart, &q, &mut filter, &ctx, &local);
    entry.items = filter.items;
    let missing = filter.left_out();
    drop(filter);
    let rendered = match rendered {
        Ok(r) => r,
        Err(reason) => {
            let _ = std::fs::remove_file(&local);
            return unsent(ledger, entry, SyncOutcome::Failed, reason, opts.dry_run);
        }
    };
    entry.bytes = Some(rendered.bytes);
    entry.sha256 = Some(rendered.sha256.clone());
    if opts.dry_run {
        return Ok(dry_run_report(&entry, &rendered, missing, opts));
    }

    // 4. Archive, deliver under the final name, then move the marks.
    let out = Outgoing {
        rendered,
        name,
        through,
        sent,
        missing,
        marks: None,
    };
    deliver_and_record(cfg, ledger, cart, opts, entry, out)
}

/// `sync_on_orders` (CONTRACT §5): an order file applied since the cart's
/// last successful sync, from a source not naming this cart, and a value
/// this cart sends that now differs from the last sent.
fn orders_open_gate(
    cfg: &Config,
    ledger: &Ledger,
    cart: &Cart,
    rules: &std::cell::OnceCell<Result<Option<CartRules>, TableError>>,
    since: i64,
    now: Millis,
) -> Result<bool, SyncError> {
    if !cart.sync_on_orders {
        return Ok(false);
    }
    let own: Vec<String> = cfg
        .inbound
        .iter()
        .filter(|i| i.cart.as_deref() == Some(cart.id.as_str()))
        .map(|i| i.id.clone())
        .collect();
    if ledger.order_reports_since(&cart.merchant, since, &own)? == 0 {
        return Ok(false);
    }
    let Ok(rules) = rules.get_or_init(|| cart_rules(cart)) else {
        return Ok(false);
    };
    let required = cart.mapping.required_fields();
    let q = FeedQuery {
        rules: rules.as_ref(),
        // Only a changed value counts here, not a SKU named by a report.
        ..feed_query(cart, i64::MAX, now, &required, None, &[])
    };
    let mut probe = FeedFilter::new(cart, &required, None);
    Ok(ledger.feed_rows(&q, |rows| {
        rows.filter(|r| r.changed)
            .filter_map(|r| probe.keep(r))
            .next()
            .is_some()
    })?)
}

/// An 846 must hold at least one LIN loop: with nothing to send there is
/// no valid file (and no seq or control number is taken). Usually the first
/// item answers; an empty feed is counted whole. `Some((reason, left out))`
/// when an 846 would be empty.
fn nothing_to_send(
    ledger: &Ledger,
    cart: &Cart,
    q: &FeedQuery,
    required: &[crate::mapping::OutField],
) -> Result<Option<(String, Vec<Missing>)>, SyncError> {
    if !matches!(cart.mapping.format, crate::mapping::OutFormat::X12_846(_)) {
        return Ok(None);
    }
    let mut probe = FeedFilter::new(cart, required, None);
    let any = ledger.feed_rows(q, |rows| {
        rows.filter_map(|r| probe.keep(r)).next().is_some()
    })?;
    if any {
        return Ok(None);
    }
    let missing = probe.left_out();
    let reason = match missing_note(&missing) {
        Some(m) => format!("nothing to send ({m})"),
        None => "nothing to send (the merchant has no SKUs yet)".into(),
    };
    Ok(Some((reason, missing)))
}

/// The feed's file name (its `{seq}` taken) and, for X12, its control
/// numbers, reserved first (committed) so that none ever repeats, even
/// across a failed delivery. A dry run only peeks.
fn reserve(
    ledger: &Ledger,
    cart: &Cart,
    now: Millis,
    dry_run: bool,
) -> Result<(String, Option<(i64, i64)>), SyncError> {
    let seq = if dry_run {
        0
    } else {
        ledger.next_seq(&cart.id)?
    };
    let control = match &cart.mapping.format {
        crate::mapping::OutFormat::X12_846(p) => {
            let n = if dry_run {
                ledger.peek_control(&p.sender_id, &p.receiver_id)?
            } else {
                ledger.next_control(&p.sender_id, &p.receiver_id)?
            };
            Some((n, n))
        }
        _ => None,
    };
    Ok((file_name(cart, now, seq), control))
}

/// A dry run's report: what would be sent, the file written to `--output`
/// when asked; nothing recorded, no mark moved.
fn dry_run_report(
    entry: &SyncEntry,
    rendered: &Rendered,
    missing: Vec<Missing>,
    opts: &SyncOptions,
) -> SyncReport {
    let mut report = SyncReport::from_entry(entry);
    report.outcome = SyncOutcome::DryRun;
    report.reason = missing_note(&missing);
    report.missing = missing;
    report.finished_at = rfc3339(now_ms());
    if let Some(out) = &opts.output {
        match deliver_to_path(&rendered.path, out) {
            Ok(dest) => report.file = Some(dest),
            Err(e) => {
                report.outcome = SyncOutcome::Failed;
                report.reason = Some(e.message);
            }
        }
    }
    let _ = std::fs::remove_file(&rendered.path);
    report
}

/// A rendered feed on its way: its final name, the last report it includes,
/// the values it sends (for `last_sent`) and what it left out.
struct Outgoing {
    rendered: Rendered,
    name: String,
    through: i64,
    sent: SentLog,
    missing: Vec<Missing>,
    /// An order or confirm feed's marks (`None` for inventory).
    marks: Option<DocMarks>,
}

/// Archives, delivers under the final name, then moves the marks. A journal
/// says what is being delivered until the outcome is recorded: after a
/// crash, the next `run` reconciles it with the destination.
fn deliver_and_record(
    cfg: &Config,
    ledger: &mut Ledger,
    cart: &Cart,
    opts: &SyncOptions,
    mut entry: SyncEntry,
    mut out: Outgoing,
) -> Result<SyncReport, SyncError> {
    let rendered = &out.rendered;
    let _ = &out.marks;
    // Rule 13: the archive copy is durable before anything is sent. The
    // rendered file is fsynced and written no more: archived as a link.
    let archived =
        crate::store::archive_own(cfg, &cart.id, &rendered.path, &out.name, entry.started_at);
    let archive_path = match archived {
        Ok(a) => a,
        Err(e) => {
            let _ = std::fs::remove_file(&rendered.path);
            let reason = format!("not sent: {e}");
            return unsent(ledger, entry, SyncOutcome::Failed, reason, false);
        }
    };
    let journal = Journal {
        file: out.name.clone(),
        bytes: rendered.bytes,
        sha256: rendered.sha256.clone(),
        started_at: entry.started_at,
        items: entry.items,
        marks: out.marks.clone(),
    };
    // A lost lease stops the delivery before anything is sent.
    let journaled = match opts.output {
        Some(_) => false,
        None => match journal.write(ledger, &cart.id) {
            Ok(()) => true,
            Err(e @ LedgerError::LeaseLost { .. }) => {
                let _ = std::fs::remove_file(&rendered.path);
                let _ = std::fs::remove_file(&archive_path);
                return Err(e.into());
            }
            Err(e) => {
                tracing::warn!(cart = %cart.id, error = %e, "cannot keep the delivery journal");
                false
            }
        },
    };
    let delivered: Result<String, TransportError> = match &opts.output {
        Some(path) => deliver_to_path(&rendered.path, path),
        None => {
            // Rule 19: only a fixed file name replaces the file it names.
            let tpl = &cart.transport.file_name;
            let fixed = !tpl.contains("{seq}") && !tpl.contains("{timestamp}");
            deliver_to(&cart.transport, &rendered.path, &out.name, &cart.id, fixed)
        }
    };
    let dest = match delivered {
        Ok(d) => d,
        Err(e) => {
            let _ = std::fs::remove_file(&rendered.path);
            // Not sent: no archive copy either (every archived feed was sent).
            let _ = std::fs::remove_file(&archive_path);
            if journaled {
                let _ = Journal::remove(ledger, &cart.id);
            }
            let reason = format!("delivery failed: {}", e.message);
            let mut report = unsent(ledger, entry, SyncOutcome::Failed, reason, false)?;
            report.retryable = e.is_retryable();
            return Ok(report);
        }
    };
    test_abort_after_delivery(&cart.id);
    entry.file = Some(dest);
    let _ = std::fs::remove_file(&rendered.path);
    entry.archive_path = Some(archive_path);
    entry.outcome = SyncOutcome::Sent;
    entry.reason = missing_note(&out.missing);
    entry.finished_at = now_ms();
    entry.id = ledger.record_delivery(&entry, Some(out.through), Some(&mut out.sent))?;
    if let Some(m) = &out.marks {
        // Delivered: the marks move (a failure here leaves the journal,
        // which the next start uses to move them).
        if let Err(e) = docs::mark(ledger, &cart.id, entry.id, m) {
            tracing::error!(cart = %cart.id, error = %e, "delivered, but cannot mark what it sent; the next start does");
            return Err(e.into());
        }
    }
    if journaled {
        let _ = Journal::remove(ledger, &cart.id);
    }
    tracing::debug!(cart = %cart.id, items = entry.items, file = entry.file.as_deref().unwrap_or(""), "sent");
    let mut report = SyncReport::from_entry(&entry);
    report.missing = out.missing;
    Ok(report)
}

/// Test hook, in debug builds only (never in a release build):
/// `STOCKGATE_TEST_ABORT_AFTER_DELIVERY=<feed id>` kills the process (as a
/// kill -9 would) right after that feed's file is delivered and before the
/// delivery is recorded: the worst moment, which the journal covers.
#[cfg(debug_assertions)]
fn test_abort_after_delivery(id: &str) {
    if std::env::var("STOCKGATE_TEST_ABORT_AFTER_DELIVERY").is_ok_and(|v| v == id) {
        std::process::abort();
    }
}

#[cfg(not(debug_assertions))]
fn test_abort_after_delivery(_: &str) {}
