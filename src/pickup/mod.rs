//! Inbound files into the ledger: read, validate every row, apply whole or
//! not at all, then archive (applied, duplicate) or quarantine (rejected,
//! held) the exact bytes.

mod orders;

use crate::config::After;
use crate::config::{Config, Inbound};
use crate::formats::{RawRecord, ReadError, field_label, quantity::parse_whole, read_records};
use crate::ledger::{Applied, Ledger, LedgerError, OrderLine, ReportMeta};
use crate::ledger::{InventoryBatchOps, OrderBatchOps, ProductBatchOps};
use crate::mapping::{AsOfFrom, Field, RecordKind, Snapshot};
use crate::transport::{Entry, EntryKind, Folder, TransportError};
use crate::util::{
    Millis, bounded, copy_durable, escape, file_mtime_ms, file_name, now_ms, quoted, rfc3339,
    sha256_file,
};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PickupError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Transport(#[from] TransportError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PickupError {
    let what = what.into();
    move |source| PickupError::Io { what, source }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Applied,
    Duplicate,
    Rejected,
    Held,
}

impl Outcome {
    /// Its name, as in JSON, the ledger and the logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Rejected => "rejected",
            Outcome::Held => "held",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FileOutcome {
    pub file: String,
    pub source: String,
    pub outcome: Outcome,
    pub rows: u64,
    pub stale: u64,
    /// Empty or delimiter-only rows skipped (CONTRACT §4).
    pub skipped: u64,
    pub errors: Vec<String>,
    /// The mapping that reads this source's files: what to fix when a file
    /// is rejected for its layout (`mappings/NAME.toml`).
    pub mapping: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// SHA-256 of the file's bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zeroed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archived: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<String>,
    /// X12: where the 997 for this file went (or why none was sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack: Option<String>,
    /// Records left out without rejecting the file (X12: `no quantity`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<LeftOut>,
    /// Notes that reject nothing (an invalid UPC, an as-of taken from the
    /// file's time), each listed once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// How many records of a file were left out, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LeftOut {
    pub reason: String,
    pub items: u64,
}

/// Left-out counts and warnings gathered while a file is read.
#[derive(Default)]
struct Notes {
    left_out: Vec<LeftOut>,
    warnings: Vec<String>,
    more_warnings: u64,
}

impl Notes {
    fn leave_out(&mut self, reason: &str) {
        match self.left_out.iter_mut().find(|l| l.reason == reason) {
            Some(l) => l.items += 1,
            None => self.left_out.push(LeftOut {
                reason: reason.to_string(),
                items: 1,
            }),
        }
    }
    fn warn(&mut self, w: String) {
        if self.warnings.contains(&w) {
            return;
        }
        if self.warnings.len() < ERRORS_LISTED {
            self.warnings.push(bounded(&w, ERROR_LINE_MAX));
        } else {
            self.more_warnings += 1;
        }
    }
    fn into_outcome(mut self, out: &mut FileOutcome, src: &Inbound) {
        if self.more_warnings > 0 {
            self.warnings
                .push(format!("and {} more warnings", self.more_warnings));
        }
        for w in &self.warnings {
            tracing::warn!(source = %src.id, file = %escape(&out.file), "{w}");
        }
        out.left_out = self.left_out;
        out.warnings = self.warnings;
    }
}

impl FileOutcome {
    /// An applied file with nothing counted yet.
    fn new(path: &Path, src: &Inbound) -> FileOutcome {
        FileOutcome {
            file: path.display().to_string(),
            source: src.id.clone(),
            outcome: Outcome::Applied,
            rows: 0,
            stale: 0,
            skipped: 0,
            mapping: crate::util::mapping_shown(&src.mapping.path),
            errors: vec![],
            bytes: None,
            sha256: None,
            zeroed: None,
            report: None,
            archived: None,
            quarantined: None,
            ack: None,
            left_out: vec![],
            warnings: vec![],
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Apply a held full snapshot anyway.
    pub force: bool,
    /// The file belongs to the gateway (picked up from an inbox): move it
    /// into quarantine when bad. Otherwise (`ingest FILE`) copy it.
    pub consume: bool,
    pub pickup_time: Millis,
}

/// How many errors a rejected file's JSON and `.error.txt` list; the rest
/// are counted ("and N more"): a file of a million bad rows gives a short report.
pub const ERRORS_LISTED: usize = 1000;

/// The longest one error line may be (values in it are quoted at most
/// 200 characters each; this bounds whatever else a message echoes).
const ERROR_LINE_MAX: usize = 1000;

#[derive(Default)]
struct Errors {
    shown: Vec<String>,
    total: u64,
}

impl Errors {
    fn push(&mut self, e: String) {
        self.total += 1;
        if self.shown.len() < ERRORS_LISTED {
            self.shown.push(bounded(&e, ERROR_LINE_MAX));
        }
    }

    /// The listed errors, then "and N more" when some were left out.
    fn listed(&self) -> Vec<String> {
        let mut v = self.shown.clone();
        let more = self.total.saturating_sub(self.shown.len() as u64);
        if more > 0 {
            v.push(format!("and {more} more"));
        }
        v
    }
}

fn row_error(
    mapping: &crate::mapping::InboundMapping,
    line: u64,
    f: Field,
    value: &str,
    reason: &str,
) -> String {
    // X12 records are located by segment position, not line.
    let place = if matches!(mapping.source, crate::mapping::InSource::X12 { .. }) {
        "segment"
    } else {
        "line"
    };
    format!(
        "{place} {line}, column {} ({}), value {}: {reason}",
        quoted(&field_label(mapping, f)),
        f.name(),
        quoted(value)
    )
}

/// Applies one file as inbound source `src` would.
pub fn ingest_file(
    cfg: &Config,
    ledger: &mut Ledger,
    src: &Inbound,
    path: &Path,
    opts: Options,
) -> Result<FileOutcome, PickupError> {
    let x12 = x12_source(src);
    // Groups are read by their functional id: 997s (FA) are matched to the
    // 846s we sent, the others applied; one file may carry both.
    // Listing them reads the whole file, so only a file that may hold an FA
    // group is read for it (the others have none to route).
    let fids = if x12 && crate::acks::may_hold_fa_group(path) {
        crate::acks::group_ids(path)
    } else {
        vec![]
    };
    let has_fa = fids.iter().any(|f| f == "FA");
    if has_fa
        && fids.iter().all(|f| f == "FA")
        && let Some(peek) = crate::acks::peek(path)
    {
        return receive_acks(cfg, ledger, src, path, opts, &peek);
    }
    let mut out = apply_file(cfg, ledger, src, path, opts)?;
    // The bytes now live in the archive or in quarantine.
    let here = out
        .archived
        .as_deref()
        .or(out.quarantined.as_deref())
        .map(PathBuf::from)
        .unwrap_or_else(|| path.to_path_buf());
    if has_fa
        && out.outcome == Outcome::Applied
        && let Some(peek) = crate::acks::peek(&here)
    {
        match crate::acks::receive_997(cfg, ledger, &here, &peek) {
            Ok((groups, matched)) if matched < groups => out.warnings.push(format!(
                "{} of {groups} acknowledged groups match no 846 sent",
                groups - matched
            )),
            Ok(_) => {}
            Err(e) => out.warnings.push(format!("997 group not read: {e}")),
        }
    }
    if x12 && src.acknowledge {
        out.ack = Some(
            match crate::acks::send_997(cfg, ledger, src, &here, out.outcome == Outcome::Rejected) {
                Ok(Some(dest)) => dest,
                Ok(None) => "no ack_transport".into(),
                Err(e) => {
                    tracing::warn!(source = %src.id, error = %e, "997 not sent");
                    e
                }
            },
        );
    }
    Ok(out)
}

/// A 997 received for 846s we sent: matched to the sync history, archived.
fn receive_acks(
    cfg: &Config,
    ledger: &mut Ledger,
    src: &Inbound,
    path: &Path,
    opts: Options,
    peek: &crate::acks::Peek,
) -> Result<FileOutcome, PickupError> {
    let name = file_name(path);
    let (sha, _) = sha256_file(path).map_err(io(format!("cannot read {}", path.display())))?;
    let now = now_ms();
    let mut out = FileOutcome::new(path, src);
    out.sha256 = Some(sha.clone());
    match crate::acks::receive_997(cfg, ledger, path, peek) {
        Ok((groups, matched)) => {
            out.rows = groups;
            let archived = archive(cfg, &src.id, path, &name, now)?;
            ledger.record_file(&src.id, &name, &sha, "applied", Some(&archived), None, now)?;
            out.archived = Some(archived);
            tracing::info!(source = %src.id, file = %name, groups, matched, "997 received");
            if matched < groups {
                out.errors.push(format!(
                    "{} of {groups} acknowledged groups match no 846 sent",
                    groups - matched
                ));
            }
            Ok(out)
        }
        Err(e) => {
            let mut errors = Errors::default();
            errors.push(e);
            let job = FileJob {
                cfg,
                src,
                path,
                name,
                sha,
                now,
                opts,
            };
            let reasons = vec!["unreadable 997".into()];
            finish_bad(&job, ledger, out, Outcome::Rejected, reasons, errors, 0)
        }
    }
}

/// One file being applied: where it is, what it is, and the moment.
struct FileJob<'a> {
    cfg: &'a Config,
    src: &'a Inbound,
    path: &'a Path,
    name: String,
    sha: String,
    now: Millis,
    opts: Options,
}

impl FileJob<'_> {
    /// Rule 13: the archive copy, durable before anything is applied.
    fn archive(&self) -> Result<String, PickupError> {
        archive(self.cfg, &self.src.id, self.path, &self.name, self.now)
    }

    fn meta<'m>(&'m self, archived: &'m str, as_of: Millis, rows: u64) -> ReportMeta<'m> {
        ReportMeta {
            source: &self.src.id,
            file_name: &self.name,
            sha256: &self.sha,
            archive_path: Some(archived),
            as_of,
            rows,
            now: self.now,
        }
    }

    /// Nothing to apply: the same content was applied before.
    fn duplicate(
        &self,
        ledger: &Ledger,
        mut out: FileOutcome,
        archived: String,
    ) -> Result<FileOutcome, PickupError> {
        let (src, name) = (self.src, &self.name);
        ledger.record_file(
            &src.id,
            name,
            &self.sha,
            "duplicate",
            Some(&archived),
            None,
            self.now,
        )?;
        out.outcome = Outcome::Duplicate;
        out.archived = Some(archived);
        tracing::debug!(source = %src.id, file = %escape(name), "duplicate of an applied file; nothing changed");
        Ok(out)
    }
}

/// What reading a file and staging its rows came to.
enum Staged {
    /// Bad rows (listed in the errors): nothing applied.
    Rejected { rows: u64 },
    /// A full snapshot that would zero too much (rule 10): held.
    Held { reasons: Vec<String>, rows: u64 },
    /// Its archive copy made, the ledger's one transaction tried.
    Done {
        applied: Result<Applied, LedgerError>,
        archived: String,
    },
}

/// Applies one file's stock or orders to the ledger, whole or not at all.
fn apply_file(
    cfg: &Config,
    ledger: &mut Ledger,
    src: &Inbound,
    path: &Path,
    opts: Options,
) -> Result<FileOutcome, PickupError> {
    let (sha, size) = sha256_file(path).map_err(io(format!("cannot read {}", path.display())))?;
    let job = FileJob {
        cfg,
        src,
        path,
        name: file_name(path),
        sha,
        now: now_ms(),
        opts,
    };
    let mut out = FileOutcome::new(path, src);
    out.bytes = Some(size);
    out.sha256 = Some(job.sha.clone());
    // The common case, without reading the file; `apply` checks again inside
    // its transaction, where it counts.
    if ledger.already_applied(&src.id, &job.sha)?.is_some() {
        let archived = job.archive()?;
        return job.duplicate(ledger, out, archived);
    }
    let file_as_of = match src.mapping.as_of_from {
        AsOfFrom::FileMtime | AsOfFrom::Column => {
            file_mtime_ms(path).map_err(io(format!("cannot stat {}", path.display())))?
        }
        AsOfFrom::PickupTime => opts.pickup_time,
    };
    let mut errors = Errors::default();
    let mut notes = Notes::default();
    // Rule 15, for a file whose every row takes its mtime as the as-of.
    let now = job.now;
    if src.kind == RecordKind::Inventory
        && src.mapping.as_of_from == AsOfFrom::FileMtime
        && file_as_of > now.saturating_add(src.mapping.max_future_ms)
    {
        errors.push(format!(
            "as-of in the future: the file's modification time {} is more than max_future = {} after now ({})",
            rfc3339(file_as_of),
            future_text(src.mapping.max_future_ms),
            rfc3339(now)
        ));
    }
    let staged = match src.kind {
        RecordKind::Inventory => {
            stage_inventory(&job, ledger, file_as_of, &mut errors, &mut notes, &mut out)?
        }
        RecordKind::Orders => stage_orders(&job, ledger, &mut errors, &mut notes, &mut out)?,
        RecordKind::Products => stage_products(&job, ledger, &mut errors, &mut notes, &mut out)?,
        RecordKind::Shipments => {
            orders::stage_shipments(&job, ledger, &mut errors, &mut notes, &mut out)?
        }
    };
    let (applied, archived) = match staged {
        Staged::Held { reasons, rows } => {
            return finish_bad(&job, ledger, out, Outcome::Held, reasons, errors, rows);
        }
        Staged::Rejected { rows } => {
            notes.into_outcome(&mut out, src);
            let n = errors.total;
            let reason = if n == 1 {
                "1 error".to_string()
            } else {
                format!("{n} errors")
            };
            return finish_bad(
                &job,
                ledger,
                out,
                Outcome::Rejected,
                vec![reason],
                errors,
                rows,
            );
        }
        Staged::Done { applied, archived } => (applied, archived),
    };
    notes.into_outcome(&mut out, src);
    let summary = match applied {
        Ok(Applied::Applied(s)) => s,
        // Another process applied the same content a moment ago.
        Ok(Applied::Duplicate) => return job.duplicate(ledger, out, archived),
        Err(e) => {
            // Nothing was applied: the archive copy goes too (a crash here
            // leaves one extra archive copy and the file in the inbox).
            let _ = std::fs::remove_file(&archived);
            return Err(e.into());
        }
    };
    out.rows = summary.rows;
    out.stale = summary.stale;
    out.report = Some(summary.report_id);
    if src.mapping.snapshot == Snapshot::Full && src.kind == RecordKind::Inventory {
        out.zeroed = Some(summary.zeroed);
    }
    out.archived = Some(archived);
    // A quarantined file, fixed (or forced) and applied, leaves quarantine;
    // so does the quarantined copy of a file of that name fixed at the
    // partner's end (rule 39), its bytes kept in the archive first.
    let qdir = cfg.quarantine.join(&src.id);
    if in_dir(path, &qdir) {
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(error_txt_path(path));
    } else {
        let old = qdir.join(&job.name);
        if old.is_file() && archive(cfg, &src.id, &old, &job.name, job.now).is_ok() {
            let _ = std::fs::remove_file(&old);
            let _ = std::fs::remove_file(error_txt_path(&old));
        }
    }
    tracing::debug!(source = %src.id, file = %escape(&job.name), rows = out.rows, stale = out.stale, "applied");
    Ok(out)
}

/// Reads an inventory file's rows into a batch and, when every row is good
/// and no full snapshot is held, applies it. A file sorted by SKU is applied
/// directly; any other, or a full snapshot (which compares the file with the
/// ledger), is staged (a second read).
fn stage_inventory(
    job: &FileJob,
    ledger: &mut Ledger,
    file_as_of: Millis,
    errors: &mut Errors,
    notes: &mut Notes,
    out: &mut FileOutcome,
) -> Result<Staged, PickupError> {
    let (src, now) = (job.src, job.now);
    let direct = src.mapping.snapshot != Snapshot::Full;
    let mut batch = ledger.inventory_batch(&src.merchant, now, direct)?;
    let mut max_as_of = None::<Millis>;
    let mut last_as_of = LastAsOf::default();
    let mut rows = 0;
    // Rule 21: a kit has no stock of its own; its rows are left out. A
    // kits file that was never good rejects the file (naming its line):
    // without it, kit rows would be applied as stock.
    let kits = match job.cfg.kits_of(&src.merchant).map(crate::tables::load_kits) {
        Some(Err(e)) => {
            errors.push(e.to_string());
            None
        }
        Some(Ok(k)) => Some(k),
        None => None,
    };
    for pass in 0..2 {
        if pass == 1 {
            if errors.total > 0 || !batch.needs_staging() {
                break;
            }
            drop(batch);
            batch = ledger.inventory_batch(&src.merchant, now, false)?;
            out.skipped = 0;
            *notes = Notes::default();
            max_as_of = None;
        }
        rows = read_valid(
            job.path,
            src,
            errors,
            &mut out.skipped,
            notes,
            |rec, notes, stage| {
                let r = inventory_row(src, rec, file_as_of, now, &mut last_as_of, notes)
                    .map_err(RowFailed::Invalid)?;
                if kits.as_ref().is_some_and(|k| k.is_kit(r.sku)) {
                    notes.leave_out("kit sku");
                    return Ok(());
                }
                if stage {
                    max_as_of = max_as_of.max(Some(r.as_of));
                    batch
                        .add(r.sku, r.warehouse, r.qty, r.as_of, r.upc, r.description)
                        .map_err(RowFailed::Ledger)?;
                    if let Some(p) = &r.price {
                        batch.price(r.sku, p, now).map_err(RowFailed::Ledger)?;
                    }
                }
                Ok(())
            },
        )?;
    }
    if errors.total == 0 {
        batch.aggregate()?.into_iter().for_each(|e| errors.push(e));
    }
    if errors.total > 0 {
        return Ok(Staged::Rejected { rows });
    }
    let as_of = match src.mapping.as_of_from {
        AsOfFrom::Column => max_as_of.unwrap_or(file_as_of),
        _ => file_as_of,
    };
    let mut snapshot = vec![];
    if src.mapping.snapshot == Snapshot::Full {
        snapshot = batch.warehouses()?;
        if let Some(w) = &src.warehouse
            && !src.mapping.has(Field::Warehouse)
            && !snapshot.contains(w)
        {
            snapshot.push(w.clone());
        }
        let held: Vec<String> = batch
            .zero_counts(&snapshot, as_of)?
            .iter()
            .filter(|c| src.mapping.max_zeroed.exceeded(c.zeroed, c.total))
            .map(|c| {
                format!(
                    "would zero {} of {} SKUs (warehouse {}); apply with ingest --force if it is complete",
                    c.zeroed, c.total, c.warehouse
                )
            })
            .collect();
        if !held.is_empty() && !job.opts.force {
            return Ok(Staged::Held {
                reasons: held,
                rows,
            });
        }
    }
    let archived = job.archive()?;
    let applied = batch.apply(&job.meta(&archived, as_of, rows), &snapshot);
    Ok(Staged::Done { applied, archived })
}

/// Reads an orders file's lines into a batch and, when every line is good,
/// applies it (rule 2: the same line seen again updates it).
fn stage_orders(
    job: &FileJob,
    ledger: &mut Ledger,
    errors: &mut Errors,
    notes: &mut Notes,
    out: &mut FileOutcome,
) -> Result<Staged, PickupError> {
    let (src, now) = (job.src, job.now);
    let mut batch = ledger.order_batch(&src.merchant, &src.id)?;
    let mut ordinals: HashMap<String, u64> = HashMap::new();
    let mut heads = orders::Heads::default();
    let received = job.opts.pickup_time.min(now);
    // Rule 22: lines carry a cart's item ids, translated back.
    let sku_map = match src.sku_map.as_deref().map(crate::tables::load_sku_map) {
        Some(Err(e)) => {
            errors.push(e.to_string());
            None
        }
        Some(Ok(m)) => Some(m),
        None => None,
    };
    let rows = read_valid(
        job.path,
        src,
        errors,
        &mut out.skipped,
        notes,
        |rec, _, stage| {
            let mut o = order_row(src, rec, &mut ordinals, received).map_err(RowFailed::Invalid)?;
            if let Some(m) = &sku_map {
                match m.sku(&o.sku) {
                    Some(sku) => o.sku = sku.to_string(),
                    None => {
                        return Err(RowFailed::Invalid(vec![row_error(
                            &src.mapping,
                            rec.line,
                            Field::Sku,
                            &o.sku,
                            "no entry in the sku_map for this item id",
                        )]));
                    }
                }
            }
            if !stage {
                return Ok(());
            }
            heads.add(rec, &o.order_id);
            let line = OrderLine {
                order_id: &o.order_id,
                line: &o.line,
                sku: &o.sku,
                quantity: o.qty,
                warehouse: o.warehouse.as_deref(),
                ordered_at: o.ordered_at,
                status: o.status.as_deref(),
                cancelled: o.cancelled,
            };
            batch.upsert(&line, now).map_err(RowFailed::Ledger)
        },
    )?;
    archive_and_apply(job, errors, rows, |meta| {
        heads.write(&mut batch, src, now, notes)?;
        batch.apply(meta)
    })
}

/// The end of a file's staging: rejected with any bad row; else archived
/// (durably, before anything is applied: rule 13) and applied, as of the
/// moment it is applied.
fn archive_and_apply(
    job: &FileJob,
    errors: &Errors,
    rows: u64,
    apply: impl FnOnce(&ReportMeta) -> Result<Applied, LedgerError>,
) -> Result<Staged, PickupError> {
    if errors.total > 0 {
        return Ok(Staged::Rejected { rows });
    }
    let archived = job.archive()?;
    let applied = apply(&job.meta(&archived, job.now, rows));
    Ok(Staged::Done { applied, archived })
}

/// Reads a product catalog's rows into a batch and, when every row is good,
/// applies it: UPC, description and price per SKU, no stock.
fn stage_products(
    job: &FileJob,
    ledger: &mut Ledger,
    errors: &mut Errors,
    notes: &mut Notes,
    out: &mut FileOutcome,
) -> Result<Staged, PickupError> {
    let (src, now) = (job.src, job.now);
    let batch = ledger.product_batch(&src.merchant)?;
    let rows = read_valid(
        job.path,
        src,
        errors,
        &mut out.skipped,
        notes,
        |rec, notes, stage| {
            let p = product_row(src, rec, notes).map_err(RowFailed::Invalid)?;
            if !stage {
                return Ok(());
            }
            batch
                .upsert(p.sku, p.upc, p.description, p.price.as_deref(), now)
                .map_err(RowFailed::Ledger)
        },
    )?;
    archive_and_apply(job, errors, rows, |meta| batch.apply(meta))
}

/// What one row did: rejected (its errors), or the ledger failed.
enum RowFailed {
    Invalid(Vec<String>),
    Ledger(LedgerError),
}

/// Reads every record of the file, checking each with `row`, which also
/// stages it when told so: until the first bad row (after that the file
/// is rejected anyway, so only the checking goes on, to list every bad
/// row). Returns the number of records read; a file that cannot be read
/// at all is one more error.
fn read_valid(
    path: &Path,
    src: &Inbound,
    errors: &mut Errors,
    skipped: &mut u64,
    notes: &mut Notes,
    mut row: impl FnMut(&RawRecord, &mut Notes, bool) -> Result<(), RowFailed>,
) -> Result<u64, LedgerError> {
    let mut rows = 0u64;
    let mut db_err = None;
    crate::progress::start(
        &file_name(path),
        std::fs::metadata(path).ok().map(|m| m.len()),
    );
    let read = read_records(path, &src.mapping, &mut |mut rec: RawRecord| {
        if rec.skip {
            *skipped += 1;
            return Ok(());
        }
        for w in std::mem::take(&mut rec.warnings) {
            notes.warn(format!("segment {}: {w}", rec.line));
        }
        if let Some(why) = rec.left_out
            && rec.error.is_none()
        {
            notes.leave_out(why);
            return Ok(());
        }
        rows += 1;
        if rows.is_multiple_of(4096) {
            crate::progress::rows(rows);
        }
        match row(&rec, notes, errors.total == 0) {
            Ok(()) => Ok(()),
            Err(RowFailed::Invalid(es)) => {
                es.into_iter().for_each(|e| errors.push(e));
                Ok(())
            }
            Err(RowFailed::Ledger(e)) => {
                db_err = Some(e);
                Err("ledger error".to_string())
            }
        }
    });
    crate::progress::finish();
    if let Some(e) = db_err {
        return Err(e);
    }
    if let Err(e) = read {
        errors.push(read_error_text(&e));
    }
    Ok(rows)
}

/// Whether `path` lies under `dir`, however either was written (relative to
/// the current folder, with `..`, through a link).
fn in_dir(path: &Path, dir: &Path) -> bool {
    let canon = |p: &Path| {
        std::fs::canonicalize(p)
            .or_else(|_| std::path::absolute(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    canon(path).starts_with(canon(dir))
}

fn read_error_text(e: &ReadError) -> String {
    match e {
        // X12 messages name their segment position themselves.
        ReadError::Format { line: 0, message } => message.clone(),
        ReadError::Format { line, message } => format!("line {line}: {message}"),
        other => other.to_string(),
    }
}

/// The note beside a quarantined file: `<file>.error.txt`.
pub fn error_txt_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".error.txt");
    PathBuf::from(s)
}

#[allow(clippy::too_many_arguments)]
fn finish_bad(
    job: &FileJob,
    ledger: &Ledger,
    mut out: FileOutcome,
    outcome: Outcome,
    reasons: Vec<String>,
    errors: Errors,
    rows: u64,
) -> Result<FileOutcome, PickupError> {
    let FileJob {
        cfg,
        src,
        path,
        opts,
        ..
    } = *job;
    let sha = job.sha.as_str();
    let name = &file_name(path);
    let dir = cfg.quarantine.join(&src.id);
    crate::util::private_dir(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
    // Already in quarantine (ingest --force of a held file that is still too short)?
    // The same bytes under the same name already wait there (the partner
    // sent the bad file again): one file waits, not `X` and `X~1`.
    let same = dir.join(name);
    let waiting_already = same.is_file()
        && crate::util::sha256_file(&same).is_ok_and(|(h, _)| h == sha)
        && !in_dir(path, &same);
    let qpath = if path
        .parent()
        .is_some_and(|p| in_dir(p, &dir) && in_dir(&dir, p))
    {
        path.to_path_buf()
    } else if waiting_already {
        if opts.consume {
            std::fs::remove_file(path).map_err(io(format!("cannot remove {}", path.display())))?;
        }
        same
    } else if opts.consume {
        let dest = crate::util::free_path(&dir, name);
        if std::fs::rename(path, &dest).is_err() {
            copy_durable(path, &dir, &file_name(&dest))
                .map_err(io(format!("cannot quarantine {}", path.display())))?;
            std::fs::remove_file(path).map_err(io(format!("cannot remove {}", path.display())))?;
        }
        // A file moved in keeps its mode: make it the owner's alone.
        let _ = crate::util::private_file(&dest);
        dest
    } else {
        copy_durable(path, &dir, name)
            .map_err(io(format!("cannot quarantine {}", path.display())))?
    };
    let txt = error_txt_path(&qpath);
    let mut w = std::io::BufWriter::new(
        crate::util::create_private(&txt).map_err(io(format!("cannot write {}", txt.display())))?,
    );
    // Held or rejected: the only outcomes that end here.
    let kind = outcome.as_str();
    let body = (|| -> std::io::Result<()> {
        writeln!(w, "outcome: {kind}")?;
        writeln!(w, "file: {name}")?;
        writeln!(w, "source: {}", src.id)?;
        writeln!(w, "at: {}", rfc3339(now_ms()))?;
        for r in &reasons {
            writeln!(w, "reason: {r}")?;
        }
        writeln!(w, "rows read: {rows}")?;
        writeln!(w, "mapping: {}", out.mapping)?;
        writeln!(w, "the ledger was not changed")?;
        for e in errors.listed() {
            writeln!(w, "{e}")?;
        }
        writeln!(w)?;
        if outcome == Outcome::Held {
            writeln!(
                w,
                "to apply it as it is (it is complete): {}",
                retry_command(cfg, src, &qpath, true)
            )?;
        } else {
            writeln!(
                w,
                "to retry: fix this file here (or {}), then run:",
                out.mapping
            )?;
            writeln!(w, "  {}", retry_command(cfg, src, &qpath, false))?;
        }
        writeln!(
            w,
            "once applied, the file and this note leave quarantine and status no longer counts it"
        )?;
        w.flush()
    })();
    body.map_err(io(format!("cannot write {}", txt.display())))?;
    out.outcome = outcome;
    out.rows = rows;
    // One short line for `status`: the first row error, or the reason.
    let first = errors
        .shown
        .first()
        .or(reasons.first())
        .cloned()
        .unwrap_or_default();
    out.errors = if outcome == Outcome::Held {
        reasons
    } else {
        errors.listed()
    };
    out.quarantined = Some(qpath.display().to_string());
    let first = crate::util::bounded(&first, 200);
    let qshown = qpath.display().to_string();
    ledger.record_file(
        &src.id,
        name,
        sha,
        kind,
        Some(&qshown),
        Some(&first),
        now_ms(),
    )?;
    tracing::debug!(source = %src.id, file = %escape(name), outcome = kind, report = %escape(&txt.display().to_string()), "file not applied");
    Ok(out)
}

/// The command that ingests a quarantined file again, as it can be pasted.
fn retry_command(cfg: &Config, src: &Inbound, file: &Path, force: bool) -> String {
    format!(
        "stockgate --config {} ingest --source {}{} {}",
        crate::util::shell_quote(&cfg.path.display().to_string()),
        src.id,
        if force { " --force" } else { "" },
        crate::util::shell_quote(&file.display().to_string())
    )
}

/// Copies the exact bytes into the archive (see [`crate::store::archive`]).
fn archive(
    cfg: &Config,
    id: &str,
    path: &Path,
    name: &str,
    now: Millis,
) -> Result<String, PickupError> {
    crate::store::archive(cfg, id, path, name, now).map_err(|e| PickupError::Io {
        what: e.what,
        source: e.source,
    })
}

/// A valid inventory row, its text borrowed from the record (or the source).
struct InvRow<'a> {
    sku: &'a str,
    warehouse: &'a str,
    qty: i64,
    as_of: Millis,
    upc: Option<&'a str>,
    description: Option<&'a str>,
    /// Validated decimal text, normalized (`047.130` is `47.130`).
    price: Option<String>,
}

const BAD_UTF8: char = '\u{fffd}';

/// A field's text, trimmed; None when absent or blank.
fn text<'a>(rec: &'a RawRecord, f: Field) -> Option<&'a str> {
    rec.get(f).map(str::trim).filter(|s| !s.is_empty())
}

/// Checks every field of a record; all problems of the row are reported.
fn check_utf8(src: &Inbound, rec: &RawRecord, errs: &mut Vec<String>) {
    for f in Field::ALL {
        if let Some(v) = rec.get(f)
            && v.starts_with(BAD_UTF8)
            && v.contains("invalid UTF-8")
        {
            errs.push(row_error(
                &src.mapping,
                rec.line,
                f,
                v.trim_start_matches(BAD_UTF8)
                    .trim_start_matches("invalid UTF-8: "),
                &format!(
                    "invalid UTF-8; the file looks like windows-1252 (an Excel export): set encoding = \"windows-1252\" in {}",
                    crate::util::mapping_shown(&src.mapping.path)
                ),
            ));
        }
    }
}

/// A defect the format reader found in the record itself.
fn reader_error(src: &Inbound, rec: &RawRecord, errs: &mut Vec<String>) {
    if let Some(e) = &rec.error {
        let place = if x12_source(src) { "segment" } else { "line" };
        errs.push(format!("{place} {}: {e}", rec.line));
    }
}

/// The longest SKU accepted, in characters (rule 14).
pub const MAX_SKU_CHARS: usize = 255;

/// Rule 14: a SKU is 1 to 255 characters with no control character.
/// Returns the SKU, or pushes the row's error.
fn valid_sku<'a>(src: &Inbound, rec: &'a RawRecord, errs: &mut Vec<String>) -> Option<&'a str> {
    let raw = rec.get(Field::Sku).unwrap_or("");
    let reason = match text(rec, Field::Sku) {
        None => "empty SKU",
        Some(s) if s.chars().count() > MAX_SKU_CHARS => "SKU longer than 255 characters",
        Some(s) if s.chars().any(is_control) => {
            "SKU holds a control character (U+0000-U+001F, U+007F)"
        }
        Some(s) => return Some(s),
    };
    errs.push(row_error(&src.mapping, rec.line, Field::Sku, raw, reason));
    None
}

/// U+0000-U+001F and U+007F, the control characters rule 14 names.
fn is_control(c: char) -> bool {
    (c as u32) < 0x20 || c as u32 == 0x7f
}

/// `max_future` as an operator wrote it, roughly ("1h", "90s").
fn future_text(ms: i64) -> String {
    let s = ms / 1000;
    if s > 0 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s > 0 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Rule 17: `qty` in the record's unit, as base units (or the row's error).
fn in_base_unit(src: &Inbound, rec: &RawRecord, qty: i64, errs: &mut Vec<String>) -> Option<i64> {
    let m = &src.mapping;
    let unit = rec.get(Field::Unit).unwrap_or("");
    let factor = match m.unit_factor(unit) {
        Ok(f) => f,
        Err(r) => {
            errs.push(row_error(m, rec.line, Field::Unit, unit, &r));
            return None;
        }
    };
    match qty.checked_mul(factor) {
        Some(v) if v.abs() <= crate::formats::quantity::MAX_QUANTITY => Some(v),
        _ => {
            errs.push(row_error(
                m,
                rec.line,
                Field::Quantity,
                rec.get(Field::Quantity).unwrap_or(""),
                &format!(
                    "quantity out of range (at most ±1,000,000,000,000) as {factor} {} per {}",
                    m.unit,
                    unit.trim()
                ),
            ));
            None
        }
    }
}

/// The last as-of text parsed and what it gave: the rows of a file mostly
/// share one as-of (an 846's set date, the time of a WMS export).
#[derive(Default)]
struct LastAsOf {
    raw: String,
    parsed: Option<Result<Millis, String>>,
}

impl LastAsOf {
    fn parse(&mut self, m: &crate::mapping::InboundMapping, raw: &str) -> Result<Millis, String> {
        match &self.parsed {
            Some(p) if self.raw == raw => p.clone(),
            _ => {
                let p = m.time.parse(raw);
                self.raw.clear();
                self.raw.push_str(raw);
                self.parsed = Some(p.clone());
                p
            }
        }
    }
}

fn inventory_row<'a>(
    src: &'a Inbound,
    rec: &'a RawRecord,
    file_as_of: Millis,
    applied_at: Millis,
    last_as_of: &mut LastAsOf,
    notes: &mut Notes,
) -> Result<InvRow<'a>, Vec<String>> {
    let m = &src.mapping;
    let mut errs = vec![];
    check_utf8(src, rec, &mut errs);
    reader_error(src, rec, &mut errs);
    if !errs.is_empty() {
        return Err(errs);
    }
    let sku = valid_sku(src, rec, &mut errs);
    let raw_q = rec.get(Field::Quantity).unwrap_or("");
    let qty = parse_whole(raw_q)
        .map_err(|r| errs.push(row_error(m, rec.line, Field::Quantity, raw_q, r)))
        .ok()
        .and_then(|q| in_base_unit(src, rec, q, &mut errs));
    let (upc, price) = product_attributes(src, rec, notes, &mut errs);
    let warehouse = text(rec, Field::Warehouse).or(src.warehouse.as_deref());
    if warehouse.is_none() {
        errs.push(row_error(
            m,
            rec.line,
            Field::Warehouse,
            rec.get(Field::Warehouse).unwrap_or(""),
            "no warehouse (empty, and the source has no `warehouse`)",
        ));
    }
    let as_of =
        if m.as_of_from == AsOfFrom::Column && x12_source(src) && rec.get(Field::AsOf).is_none() {
            // An 846 without BIA04 or an as-of DTM: the file's time (warned).
            Some(file_as_of)
        } else if m.as_of_from == AsOfFrom::Column {
            let raw = rec.get(Field::AsOf).unwrap_or("");
            match last_as_of.parse(m, raw) {
                // Rule 15: a count from the future would make every real one stale.
                Ok(t) if t > applied_at.saturating_add(m.max_future_ms) => {
                    errs.push(row_error(
                        m,
                        rec.line,
                        Field::AsOf,
                        raw,
                        &format!(
                            "as-of in the future ({} is more than max_future = {} after now, {})",
                            rfc3339(t),
                            future_text(m.max_future_ms),
                            rfc3339(applied_at)
                        ),
                    ));
                    None
                }
                Ok(t) => Some(t),
                Err(r) => {
                    errs.push(row_error(m, rec.line, Field::AsOf, raw, &r));
                    None
                }
            }
        } else {
            Some(file_as_of)
        };
    match (sku, qty, warehouse, as_of) {
        (Some(sku), Some(qty), Some(warehouse), Some(as_of)) if errs.is_empty() => Ok(InvRow {
            sku,
            warehouse,
            qty,
            as_of,
            upc,
            description: text(rec, Field::Description),
            price,
        }),
        _ => Err(errs),
    }
}

/// A row's UPC (an invalid one is kept and warned about: feeds keyed by
/// UP leave it out) and price (checked decimal text).
fn product_attributes<'a>(
    src: &Inbound,
    rec: &'a RawRecord,
    notes: &mut Notes,
    errs: &mut Vec<String>,
) -> (Option<&'a str>, Option<String>) {
    let raw_price = rec.get(Field::Price).unwrap_or("");
    let price = crate::formats::price::parse(raw_price)
        .map_err(|r| {
            errs.push(row_error(
                &src.mapping,
                rec.line,
                Field::Price,
                raw_price,
                r,
            ))
        })
        .unwrap_or(None);
    let upc = text(rec, Field::Upc);
    if let Some(u) = &upc
        && !crate::formats::valid_gtin(u)
    {
        let place = if x12_source(src) { "segment" } else { "line" };
        notes.warn(format!(
            "{place} {}: invalid upc {} (not 8, 12, 13 or 14 digits with a valid check digit); UP-keyed feeds leave it out",
            rec.line,
            quoted(u)
        ));
    }
    (upc, price)
}

struct ProductRow<'a> {
    sku: &'a str,
    upc: Option<&'a str>,
    description: Option<&'a str>,
    price: Option<String>,
}

fn product_row<'a>(
    src: &Inbound,
    rec: &'a RawRecord,
    notes: &mut Notes,
) -> Result<ProductRow<'a>, Vec<String>> {
    let mut errs = vec![];
    check_utf8(src, rec, &mut errs);
    reader_error(src, rec, &mut errs);
    if !errs.is_empty() {
        return Err(errs);
    }
    let sku = valid_sku(src, rec, &mut errs);
    let (upc, price) = product_attributes(src, rec, notes, &mut errs);
    match sku {
        Some(sku) if errs.is_empty() => Ok(ProductRow {
            sku,
            upc,
            description: text(rec, Field::Description),
            price,
        }),
        _ => Err(errs),
    }
}

struct OrdRow {
    order_id: String,
    line: String,
    sku: String,
    qty: i64,
    warehouse: Option<String>,
    ordered_at: Option<Millis>,
    status: Option<String>,
    cancelled: bool,
}

fn x12_source(src: &Inbound) -> bool {
    matches!(src.mapping.source, crate::mapping::InSource::X12 { .. })
}

fn order_row(
    src: &Inbound,
    rec: &RawRecord,
    ordinals: &mut HashMap<String, u64>,
    received: Millis,
) -> Result<OrdRow, Vec<String>> {
    let m = &src.mapping;
    let mut errs = vec![];
    check_utf8(src, rec, &mut errs);
    reader_error(src, rec, &mut errs);
    if !errs.is_empty() {
        return Err(errs);
    }
    let order_id = text(rec, Field::OrderId).map(str::to_string);
    if order_id.is_none() {
        errs.push(row_error(
            m,
            rec.line,
            Field::OrderId,
            rec.get(Field::OrderId).unwrap_or(""),
            "empty order id",
        ));
    }
    let sku = valid_sku(src, rec, &mut errs).map(str::to_string);
    let raw_q = rec.get(Field::Quantity).unwrap_or("");
    let qty = match parse_whole(raw_q) {
        Ok(q) if q < 0 => {
            errs.push(row_error(
                m,
                rec.line,
                Field::Quantity,
                raw_q,
                "negative order quantity",
            ));
            None
        }
        Ok(q) => in_base_unit(src, rec, q, &mut errs),
        Err(r) => {
            errs.push(row_error(m, rec.line, Field::Quantity, raw_q, r));
            None
        }
    };
    let ordered_at = match text(rec, Field::OrderedAt) {
        None => None,
        // Rule 16: a date alone is the end of that day, capped at receipt.
        Some(raw) => m
            .time
            .parse_order(raw, received)
            .map_err(|r| errs.push(row_error(m, rec.line, Field::OrderedAt, raw, &r)))
            .ok(),
    };
    let status = text(rec, Field::Status).map(str::to_string);
    let cancelled = status
        .as_deref()
        .is_some_and(|s| m.cancelled.iter().any(|c| c.trim().eq_ignore_ascii_case(s)));
    let (Some(order_id), Some(sku), Some(qty)) = (order_id, sku, qty) else {
        return Err(errs);
    };
    if !errs.is_empty() {
        return Err(errs);
    }
    // Without a line column, a line is its place among the order's rows in this file.
    let line = text(rec, Field::Line)
        .map(str::to_string)
        .unwrap_or_else(|| {
            let n = ordinals.entry(order_id.clone()).or_insert(0);
            *n += 1;
            n.to_string()
        });
    Ok(OrdRow {
        order_id,
        line,
        sku,
        qty,
        warehouse: text(rec, Field::Warehouse)
            .map(str::to_string)
            .or_else(|| src.warehouse.clone()),
        ordered_at,
        status,
        cancelled,
    })
}

/// What one look at a source did.
#[derive(Debug, Default)]
pub struct Pickup {
    pub files: Vec<FileOutcome>,
    /// Files left for a later look: maybe still being written (not stable
    /// yet, or no `.done` marker yet).
    pub settling: usize,
    /// The soonest a settling remote file may prove stable.
    pub stable_in: Option<std::time::Duration>,
    /// Files that could not be fetched, moved or read this time; the others went on.
    pub errors: Vec<String>,
}

/// Files being applied, per merchant: a due sync waits until the files its
/// merchant's sources already fetched are in the ledger, so a feed never
/// goes out a moment before the count that was already in hand. It also
/// carries the daemon's stop: a pass stops between files, and a wait for
/// the gate ends, once [`ApplyGate::stop`] was called.
#[derive(Default)]
pub struct ApplyGate {
    busy: std::sync::Mutex<HashMap<String, u32>>,
    idle: std::sync::Condvar,
    stopped: std::sync::atomic::AtomicBool,
}

pub struct GateGuard<'a> {
    gate: &'a ApplyGate,
    merchant: String,
}

impl ApplyGate {
    pub fn enter(&self, merchant: &str) -> GateGuard<'_> {
        let mut b = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        *b.entry(merchant.to_string()).or_insert(0) += 1;
        GateGuard {
            gate: self,
            merchant: merchant.to_string(),
        }
    }
    /// Waits (at most `limit`, and not past a stop) until no file of
    /// `merchant` is being applied.
    pub fn wait_idle(&self, merchant: &str, limit: std::time::Duration) {
        let b = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.idle.wait_timeout_while(b, limit, |b| {
            !self.is_stopped() && b.get(merchant).is_some_and(|n| *n > 0)
        });
    }
    /// The daemon is stopping: passes end after the file in hand.
    pub fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _b = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        self.idle.notify_all();
    }
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        let mut b = self.gate.busy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = b.get_mut(&self.merchant) {
            *n = n.saturating_sub(1);
        }
        self.gate.idle.notify_all();
    }
}

/// Picks up every waiting file of one source (as `run` does), oldest first,
/// over one connection. `settle_ms`: local files modified this recently are
/// left for the next look. An error is returned only when the source cannot
/// be reached or listed at all; one bad file never stops the others.
pub fn pickup_source(
    cfg: &Config,
    ledger: &mut Ledger,
    src: &Inbound,
    settle_ms: i64,
    gate: Option<&ApplyGate>,
) -> Result<Pickup, PickupError> {
    let r = crate::transport::open(&src.transport.endpoint)
        .map_err(PickupError::from)
        .and_then(|mut folder| {
            let r = pickup_from(cfg, ledger, src, folder.as_mut(), settle_ms, gate);
            folder.close();
            r
        });
    // Rule 37: every look is recorded, so a source that cannot look shows.
    let error = r.as_ref().err().map(|e| escape(&e.to_string()));
    if let Err(e) = ledger.note_look(&src.id, now_ms(), error.as_deref()) {
        tracing::warn!(source = %src.id, error = %e, "cannot record the look at the source");
    }
    r
}

/// What the listing says of one entry.
enum Look {
    Take,
    Settling(Option<std::time::Duration>),
    /// Taken before with this outcome: at most its after-step is left to do.
    Taken(String),
    Ignore,
}

fn pickup_from(
    cfg: &Config,
    ledger: &mut Ledger,
    src: &Inbound,
    folder: &mut dyn Folder,
    settle_ms: i64,
    gate: Option<&ApplyGate>,
) -> Result<Pickup, PickupError> {
    let rules = &src.transport.pickup;
    let remote = src.transport.endpoint.is_remote();
    let now = now_ms();
    let mut outs = Pickup::default();
    let entries = folder.list()?;
    let listed: HashSet<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let seen = ledger.seen_files(&src.id)?;
    let mut take = vec![];
    for e in &entries {
        if e.name.starts_with('.')
            || e.name.ends_with(".tmp")
            || e.name.ends_with(".part")
            || (rules.done_marker && e.name.ends_with(".done"))
        {
            continue;
        }
        let row = seen.get(&e.name);
        let same = row.is_some_and(|r| r.size == e.size as i64 && r.mtime == e.mtime);
        // Before the pattern: a path in a listing is said, whatever it matches
        // (`*` stops at a `/`).
        if let Some(why) = crate::util::remote_name_problem(&e.name) {
            // Never fetched, removed or moved, nor made a local path: once
            // warned about and recorded, it is left alone.
            if !same || row.and_then(|r| r.outcome.as_deref()) != Some("skipped") {
                tracing::warn!(source = %src.id, file = %bounded(&e.name, crate::util::ECHO_MAX), "{why}: not one file of the folder; skipped");
                ledger.note_taken(
                    &src.id,
                    &e.name,
                    e.size,
                    e.mtime,
                    "skipped",
                    None,
                    Some(why),
                    now,
                )?;
            }
            continue;
        }
        if !src.transport.pattern.is_match(&e.name) {
            continue;
        }
        let look = match e.kind {
            EntryKind::Dir | EntryKind::Other => Look::Ignore,
            EntryKind::Link => {
                if !same {
                    tracing::warn!(source = %src.id, file = %escape(&e.name), "symbolic link not followed; skipped");
                    ledger.note_taken(
                        &src.id,
                        &e.name,
                        e.size,
                        e.mtime,
                        "skipped",
                        None,
                        Some("symbolic link"),
                        now,
                    )?;
                }
                Look::Ignore
            }
            EntryKind::File if e.raw.is_some() => {
                // A name that is not UTF-8: it leaves the inbox once, into quarantine.
                bad_name(cfg, ledger, src, e, now, &mut outs);
                Look::Ignore
            }
            EntryKind::File => match row {
                Some(r) if same && r.outcome.is_some() => {
                    Look::Taken(r.outcome.clone().unwrap_or_default())
                }
                _ if rules.done_marker => {
                    if listed.contains(format!("{}.done", e.name).as_str()) {
                        Look::Take
                    } else {
                        Look::Settling(None)
                    }
                }
                _ if remote && !rules.stable_for.is_zero() => {
                    let stable_ms = rules.stable_for.as_millis() as i64;
                    match row {
                        Some(r) if same && now - r.first_seen >= stable_ms => Look::Take,
                        Some(r) if same => Look::Settling(Some(std::time::Duration::from_millis(
                            (stable_ms - (now - r.first_seen)) as u64,
                        ))),
                        _ => {
                            ledger.note_seen(&src.id, &e.name, e.size, e.mtime, now)?;
                            Look::Settling(Some(rules.stable_for))
                        }
                    }
                }
                _ if !remote && settle_ms > 0 && now - e.mtime.unwrap_or(0) < settle_ms => {
                    Look::Settling(None)
                }
                _ => Look::Take,
            },
        };
        match look {
            Look::Take => take.push(e),
            Look::Settling(wait) => {
                outs.settling += 1;
                if let Some(w) = wait {
                    outs.stable_in = Some(outs.stable_in.map_or(w, |s| s.min(w)));
                }
            }
            Look::Taken(outcome) => {
                // The outcome is safe in the ledger; a failed delete or move is tried again.
                match after_step(src, folder, e, &outcome) {
                    Ok(true) => ledger.forget(&src.id, &e.name)?,
                    Ok(false) => {}
                    Err(msg) => outs
                        .errors
                        .push(format!("{}: {}", escape(&e.name), escape(&msg))),
                }
            }
            Look::Ignore => {}
        }
    }
    take.sort_by(|a, b| (a.mtime, &a.name).cmp(&(b.mtime, &b.name)));
    let work = cfg
        .scratch_dir("work", &src.id)
        .join(format!(".{}", std::process::id()));
    for e in take {
        if gate.is_some_and(ApplyGate::is_stopped) {
            break; // the rest waits for the next pass
        }
        match take_one(cfg, ledger, src, folder, e, &work, now, gate) {
            Ok(out) => outs.files.push(out),
            Err(TakeError::File(msg)) => {
                let note = bounded(&msg, 500);
                // Logged once per file (and again when it changes or says
                // something else); recorded with the file (no outcome: it is
                // tried again at the next look).
                let file = bounded(&e.name, crate::util::ECHO_MAX);
                if seen.get(&e.name).and_then(|r| r.note.as_deref()) == Some(note.as_str()) {
                    tracing::debug!(source = %src.id, file = %file, error = %note, "file skipped again");
                } else {
                    tracing::error!(source = %src.id, file = %file, error = %note, "file skipped");
                }
                ledger.note_problem(&src.id, &e.name, e.size, e.mtime, &note, now)?;
                outs.errors.push(format!("{file}: {note}"));
            }
            Err(TakeError::Pass(err)) => {
                let _ = std::fs::remove_dir_all(&work);
                return Err(err);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    // Rows noted in this pass are of listed files: the ones read at its start cover the rest.
    let gone: Vec<&str> = seen
        .keys()
        .map(String::as_str)
        .filter(|n| !listed.contains(n))
        .collect();
    ledger.forget_all(&src.id, &gone)?;
    Ok(outs)
}

enum TakeError {
    /// This file only: logged, the others go on.
    File(String),
    /// The ledger itself failed: stop the pass.
    Pass(PickupError),
}

/// Fetches one file (remote: under a temporary local name, size checked),
/// applies or quarantines it, records the outcome, then deletes, moves or
/// keeps the original as the source says.
#[allow(clippy::too_many_arguments)]
fn take_one(
    cfg: &Config,
    ledger: &mut Ledger,
    src: &Inbound,
    folder: &mut dyn Folder,
    e: &Entry,
    work: &Path,
    now: Millis,
    gate: Option<&ApplyGate>,
) -> Result<FileOutcome, TakeError> {
    let rules = &src.transport.pickup;
    let (local, fetched) = match folder.local_path(&e.name) {
        Some(p) => (p, false),
        None => (fetch(folder, e, work).map_err(TakeError::File)?, true),
    };
    // A local file rejected with no after_rejected moves into quarantine.
    let consume = fetched || rules.after_rejected.is_none();
    let opts = Options {
        force: false,
        consume,
        pickup_time: now,
    };
    let guard = gate.map(|g| g.enter(&src.merchant));
    let result = ingest_file(cfg, ledger, src, &local, opts);
    drop(guard);
    if fetched {
        let _ = std::fs::remove_file(&local);
    }
    let mut out = match result {
        Ok(out) => out,
        Err(PickupError::Ledger(l)) => return Err(TakeError::Pass(PickupError::Ledger(l))),
        Err(other) => return Err(TakeError::File(other.to_string())),
    };
    if fetched {
        // Say where the file came from, not where it was staged.
        out.file = format!("{}/{}", folder.describe().trim_end_matches('/'), e.name);
    }
    let outcome = out.outcome.as_str();
    ledger
        .note_taken(
            &src.id,
            &e.name,
            e.size,
            e.mtime,
            outcome,
            out.sha256.as_deref(),
            None,
            now_ms(),
        )
        .map_err(|l| TakeError::Pass(l.into()))?;
    match after_step(src, folder, e, outcome) {
        // Gone from the folder: a new file of the same name is a new file.
        Ok(true) => ledger
            .forget(&src.id, &e.name)
            .map_err(|l| TakeError::Pass(l.into()))?,
        Ok(false) => {}
        Err(msg) => {
            tracing::warn!(source = %src.id, file = %escape(&e.name), error = %escape(&msg), "will try again at the next look");
            let _ = ledger.note_taken(
                &src.id,
                &e.name,
                e.size,
                e.mtime,
                outcome,
                None,
                Some(&msg),
                now_ms(),
            );
        }
    }
    Ok(out)
}

/// Downloads a remote file into `work/NAME`, with the listed mtime, and
/// checks its size. NAME is [`safe_local_name`](crate::util::safe_local_name)
/// of the listed name (the name itself when it is one safe component): the
/// archive and quarantine copies are named after it.
fn fetch(folder: &mut dyn Folder, e: &Entry, work: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(work).map_err(|x| format!("cannot create {}: {x}", work.display()))?;
    let local = work.join(crate::util::safe_local_name(&e.name).as_ref());
    let r = (|| {
        let mut f = std::fs::File::create(&local)
            .map_err(|x| format!("cannot write {}: {x}", local.display()))?;
        let got = {
            let mut w = std::io::BufWriter::with_capacity(1 << 16, &mut f);
            let n = folder.get(&e.name, &mut w).map_err(|x| x.message)?;
            w.flush()
                .map_err(|x| format!("cannot write {}: {x}", local.display()))?;
            n
        };
        if got != e.size {
            return Err(format!(
                "fetched {got} bytes but {} were listed (still being written?); tried again at the next look",
                e.size
            ));
        }
        if let Some(ms) = e.mtime {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
            let _ = f.set_modified(t);
        }
        f.sync_all()
            .map_err(|x| format!("cannot write {}: {x}", local.display()))?;
        Ok(local.clone())
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&local);
    }
    r
}

/// Deletes, moves or keeps a taken file (and removes its `.done` marker).
/// Returns whether the file left the folder.
fn after_step(
    src: &Inbound,
    folder: &mut dyn Folder,
    e: &Entry,
    outcome: &str,
) -> Result<bool, String> {
    let rules = &src.transport.pickup;
    let after = match outcome {
        "applied" | "duplicate" => Some(&rules.after),
        "rejected" | "held" => rules.after_rejected.as_ref(),
        _ => return Ok(false),
    };
    let gone = |r: Result<(), TransportError>| match r {
        Err(x) if !x.not_found => Err(x.message),
        _ => Ok(()),
    };
    match after {
        None => {} // a local file already moved into quarantine
        Some(After::Keep) => return Ok(false),
        Some(After::Delete) => gone(folder.remove(&e.name))?,
        Some(After::Move(d)) => {
            folder.mkdir(d).map_err(|x| x.message)?;
            let mut to = format!("{}/{}", d.trim_end_matches('/'), e.name);
            if folder.size(&to).is_ok() {
                // An older file of the same name is there: keep both.
                to = format!("{to}.{}", now_ms());
            }
            if let Err(x) = folder.rename(&e.name, &to) {
                if x.not_found {
                    return Ok(true); // moved already
                }
                // An older file of the same name is there: keep both.
                let alt = format!("{to}.{}", now_ms());
                folder
                    .rename(&e.name, &alt)
                    .map_err(|y| format!("{}; {}", x.message, y.message))?;
            }
        }
    }
    if rules.done_marker && !matches!(after, Some(After::Keep)) {
        gone(folder.remove(&format!("{}.done", e.name)))?;
    }
    Ok(!matches!(after, Some(After::Keep)))
}

/// A local file whose name is not UTF-8: moved into quarantine once, under
/// an escaped name, with a note; never applied.
fn bad_name(
    cfg: &Config,
    ledger: &mut Ledger,
    src: &Inbound,
    e: &Entry,
    now: Millis,
    outs: &mut Pickup,
) {
    let Some(raw) = &e.raw else { return };
    let dir = cfg.quarantine.join(&src.id);
    let safe: String = e
        .name
        .chars()
        .map(|c| if c == '\u{fffd}' || c == '\\' { '_' } else { c })
        .collect();
    let r = (|| -> std::io::Result<PathBuf> {
        crate::util::private_dir(&dir)?;
        let dest = crate::util::free_path(&dir, &safe);
        std::fs::rename(raw, &dest)?;
        let _ = crate::util::private_file(&dest);
        std::io::Write::write_all(
            &mut crate::util::create_private(&error_txt_path(&dest))?,
            format!(
                "outcome: rejected\nfile: {}\nsource: {}\nat: {}\nreason: the file name is not UTF-8; rename it and drop it again\nthe ledger was not changed\n",
                e.name,
                src.id,
                rfc3339(now)
            )
            .as_bytes(),
        )?;
        Ok(dest)
    })();
    match r {
        Ok(dest) => {
            tracing::warn!(source = %src.id, file = %escape(&e.name), "file name is not UTF-8; quarantined");
            let _ = ledger.record_file(
                &src.id,
                &e.name,
                "",
                "rejected",
                Some(&dest.display().to_string()),
                Some("file name is not UTF-8"),
                now,
            );
        }
        Err(x) => outs
            .errors
            .push(format!("{}: cannot quarantine: {x}", escape(&e.name))),
    }
}
