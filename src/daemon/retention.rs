//! `[ledger] keep = "90d"`: archive and quarantine files and history rows
//! older than that are pruned, in small batches, so a ledger left running
//! for months stays the size of its last three months. The stock, the
//! reports that set it and each cart's marks are never pruned.

use crate::config::Config;
use crate::util::{Millis, now_ms, to_datetime};
use std::path::Path;
use std::time::Duration;

/// How often `run` prunes.
pub const EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, Default, PartialEq)]
pub struct Pruned {
    pub archive_days: u64,
    pub quarantine_files: u64,
    pub history_rows: u64,
    pub file_rows: u64,
}

/// Prunes everything older than `keep`; a no-op with `keep = "forever"`.
pub fn prune(cfg: &Config) -> Result<Pruned, String> {
    let Some(keep) = cfg.keep else {
        return Ok(Pruned::default());
    };
    let cutoff: Millis = now_ms() - keep.as_millis() as Millis;
    let mut p = Pruned::default();
    // archive/<id>/<YYYY-MM-DD>/: whole days before the cutoff's day.
    let cutoff_day = to_datetime(cutoff).format("%Y-%m-%d").to_string();
    for id in read_dirs(&cfg.archive) {
        for day in read_dirs(&id) {
            let name = day
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let is_day =
                name.len() == 10 && name.as_bytes()[4] == b'-' && name.as_bytes()[7] == b'-';
            if is_day && name < cutoff_day && std::fs::remove_dir_all(&day).is_ok() {
                p.archive_days += 1;
            }
        }
    }
    // quarantine/<id>/FILE and FILE.error.txt, by modification time.
    for id in read_dirs(&cfg.quarantine) {
        for e in std::fs::read_dir(&id).into_iter().flatten().flatten() {
            let old = e
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .is_some_and(|d| (d.as_millis() as Millis) < cutoff);
            if old && std::fs::remove_file(e.path()).is_ok() {
                p.quarantine_files += 1;
            }
        }
    }
    if crate::ledger::Ledger::is_new(&cfg.ledger) {
        return Ok(p);
    }
    let ledger = crate::ledger::Ledger::open(&cfg.ledger).map_err(|e| e.to_string())?;
    let rows = ledger.prune_history(cutoff).map_err(|e| e.to_string())?;
    p.history_rows = rows.history_rows;
    p.file_rows = rows.file_rows;
    if p != Pruned::default() {
        tracing::info!(
            archive_days = p.archive_days,
            quarantine_files = p.quarantine_files,
            history_rows = p.history_rows,
            file_rows = p.file_rows,
            "pruned what is older than [ledger] keep"
        );
    }
    Ok(p)
}

fn read_dirs(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}
