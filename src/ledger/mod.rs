//! The ledger: stock, orders, reports, carts' sync history.
//!
//! Every change to stock or orders happens in one transaction per file;
//! every rule that computes a number a cart receives is in one place, the
//! feed merge ([`feed`], plain Rust over key-ordered rows a backend
//! yields), behind [`Ledger::feed_rows`], shared by `sync` and `explain`.
//!
//! This module holds the backend-neutral surface (public types, errors);
//! each backend lives in a directory of its own (`sqlite/`).

#[doc(hidden)]
pub mod debug;
mod feed;
mod sqlite;

pub use sqlite::{InventoryBatch, Ledger, OrderBatch, ProductBatch, PrunedRows};

use crate::formats::FeedItem;
use crate::mapping::OutField;
use crate::util::Millis;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error(
        "ledger {path} has schema version {found}, newer than this stockgate knows ({known}); upgrade stockgate"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("ledger {path} is read-only: this user cannot write it")]
    ReadOnly { path: String },
    #[error("ledger: {0}")]
    Sql(#[from] rusqlite::Error),
}

pub type Result<T> = std::result::Result<T, LedgerError>;

/// One SKU a cart's feed includes (rule 6), with its numbers.
#[derive(Debug, Clone)]
pub struct FeedRow {
    /// `quantity` is the value sent (rules 2, 4, 5).
    pub item: FeedItem,
    pub available: i64,
    pub include: bool,
    /// The value differs from the last value sent to this cart (or none was).
    pub changed: bool,
}

/// Which of `required` (a mapping's required fields, in order) the item
/// lacks first: such an item is left out and counted as `missing <field>`.
pub fn missing_field(item: &FeedItem, required: &[OutField]) -> Option<usize> {
    required.iter().position(|f| match f {
        OutField::Upc => item.upc.as_deref().is_none_or(str::is_empty),
        OutField::Description => item.description.as_deref().is_none_or(str::is_empty),
        OutField::AsOf => item.as_of.is_none(),
        OutField::Price => item.price.as_deref().is_none_or(str::is_empty),
        _ => false,
    })
}

/// The values a feed sent that differ from the cart's last sent, kept
/// until the delivery is recorded: in memory up to a bound, then in an
/// unlinked scratch file (a first sync of a big catalog).
pub struct SentLog {
    mem: Vec<(String, i64)>,
    spill: Option<std::io::BufWriter<std::fs::File>>,
    dir: std::path::PathBuf,
    len: u64,
}

const SENT_IN_MEMORY: usize = 50_000;

impl SentLog {
    /// A log that spills into `dir` when it grows.
    pub fn new(dir: &Path) -> SentLog {
        SentLog {
            mem: Vec::new(),
            spill: None,
            dir: dir.to_path_buf(),
            len: 0,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, sku: &str, value: i64) -> std::io::Result<()> {
        use std::io::Write;
        self.len += 1;
        if self.spill.is_none() && self.mem.len() < SENT_IN_MEMORY {
            self.mem.push((sku.to_string(), value));
            return Ok(());
        }
        if self.spill.is_none() {
            std::fs::create_dir_all(&self.dir)?;
            let path = self.dir.join(format!(
                ".sent-{}-{}.tmp",
                std::process::id(),
                crate::util::now_ms()
            ));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            let _ = std::fs::remove_file(&path);
            self.spill = Some(std::io::BufWriter::with_capacity(1 << 16, f));
        }
        let w = self.spill.as_mut().expect("spill file");
        w.write_all(&(sku.len() as u32).to_le_bytes())?;
        w.write_all(sku.as_bytes())?;
        w.write_all(&value.to_le_bytes())
    }

    /// Every (SKU, value) pushed, in the order pushed.
    fn for_each(&mut self, mut f: impl FnMut(&str, i64) -> Result<()>) -> Result<()> {
        use std::io::{Read, Seek};
        for (sku, v) in &self.mem {
            f(sku, *v)?;
        }
        if let Some(w) = self.spill.take() {
            let io = |e: std::io::Error| {
                LedgerError::Sql(rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
            };
            let mut file = w.into_inner().map_err(|e| io(e.into_error()))?;
            file.rewind().map_err(io)?;
            let mut r = std::io::BufReader::with_capacity(1 << 16, file);
            let mut len = [0u8; 4];
            let mut sku = Vec::new();
            let mut val = [0u8; 8];
            loop {
                match r.read_exact(&mut len) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(io(e)),
                }
                sku.resize(u32::from_le_bytes(len) as usize, 0);
                r.read_exact(&mut sku).map_err(io)?;
                r.read_exact(&mut val).map_err(io)?;
                let s = std::str::from_utf8(&sku).map_err(|e| io(std::io::Error::other(e)))?;
                f(s, i64::from_le_bytes(val))?;
            }
        }
        Ok(())
    }
}

/// Stock and order rules for one cart (or for `explain`).
#[derive(Debug, Clone)]
pub struct FeedQuery<'a> {
    pub merchant: &'a str,
    pub cart: &'a str,
    pub warehouses: &'a [String],
    pub min_level: i64,
    pub full: bool,
    /// Reports with a larger id are "new since the last successful sync".
    pub since_report: i64,
    pub sync_time: Millis,
    pub required: &'a [OutField],
    pub sku: Option<&'a str>,
    /// Warehouses to split each value over (per-warehouse 846s; [] = no
    /// split). See [`split_by_warehouse`]; the whole-catalog pass only.
    pub locations: &'a [String],
}

/// A file a source listed: as last seen, and its outcome once taken.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenFile {
    pub size: i64,
    pub mtime: Option<Millis>,
    pub first_seen: Millis,
    pub outcome: Option<String>,
    /// Why it was skipped, or could not be taken last time.
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct InboundStats {
    pub last_pickup: Option<Millis>,
    pub applied: u64,
    /// The latest of a failed look and a rejected or held file, and its time.
    pub last_error: Option<String>,
    pub last_error_at: Option<Millis>,
    /// The last successful listing of the source.
    pub last_look: Option<Millis>,
    /// Failed looks in a row (0 after a good one).
    pub failures: u64,
}

/// What the ledger keeps of a source's looks (rule 37).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceLook {
    pub last_look: Option<Millis>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Millis>,
    pub failures: u64,
}

#[derive(Debug, Clone, Default)]
pub struct CartState {
    pub last_report_id: i64,
    pub last_attempt: Option<Millis>,
    pub last_success: Option<Millis>,
    pub last_outcome: Option<String>,
    /// When the daemon retries a failed delivery, if one is pending.
    pub retry_at: Option<Millis>,
}

/// How a sync attempt ended. Stored as its name (`sent`, `skipped`,
/// `failed`); `dry-run` is reported, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncOutcome {
    Sent,
    #[default]
    Skipped,
    Failed,
    DryRun,
}

impl SyncOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncOutcome::Sent => "sent",
            SyncOutcome::Skipped => "skipped",
            SyncOutcome::Failed => "failed",
            SyncOutcome::DryRun => "dry-run",
        }
    }
    /// The stored name back (an unknown one reads as failed).
    pub fn parse(s: &str) -> SyncOutcome {
        match s {
            "sent" => SyncOutcome::Sent,
            "skipped" => SyncOutcome::Skipped,
            "dry-run" => SyncOutcome::DryRun,
            _ => SyncOutcome::Failed,
        }
    }
}

impl std::fmt::Display for SyncOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncEntry {
    pub id: i64,
    pub cart: String,
    pub started_at: Millis,
    pub finished_at: Millis,
    pub outcome: SyncOutcome,
    pub reason: Option<String>,
    pub items: u64,
    pub file: Option<String>,
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    pub forced: bool,
    pub archive_path: Option<String>,
    pub interchange_control: Option<i64>,
    pub group_control: Option<i64>,
    pub ack_status: Option<String>,
    pub ack_codes: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StockRow {
    pub warehouse: String,
    pub quantity: i64,
    pub as_of: Millis,
    pub report: String,
}

#[derive(Debug, Clone)]
pub struct OrderDraw {
    pub order_id: String,
    pub line: String,
    pub quantity: i64,
    pub ordered_at: Millis,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplySummary {
    pub report_id: i64,
    pub rows: u64,
    pub stale: u64,
    pub zeroed: u64,
}

/// A full snapshot that would zero too much: (warehouse, would zero, of total).
#[derive(Debug, Clone, PartialEq)]
pub struct ZeroCount {
    pub warehouse: String,
    pub zeroed: u64,
    pub total: u64,
}

pub struct ReportMeta<'a> {
    pub source: &'a str,
    pub file_name: &'a str,
    pub sha256: &'a str,
    /// The durable archive copy, made before the apply (rule 13).
    pub archive_path: Option<&'a str>,
    pub as_of: Millis,
    pub rows: u64,
    pub now: Millis,
}

/// What applying a report did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Applied(ApplySummary),
    /// The same content was applied for this source already (possibly by
    /// another process a moment ago): nothing changed.
    Duplicate,
}

pub struct OrderLine<'a> {
    pub order_id: &'a str,
    pub line: &'a str,
    pub sku: &'a str,
    pub quantity: i64,
    pub warehouse: Option<&'a str>,
    /// None: the time the line first entered the ledger.
    pub ordered_at: Option<Millis>,
    pub status: Option<&'a str>,
    pub cancelled: bool,
}
