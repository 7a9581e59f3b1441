//! What waits for an operator (CONTRACT §8, rule 39): the files in
//! `quarantine/<source>/`, each beside its `<file>.error.txt`. The folder is
//! the truth: a file an operator deleted by hand no longer waits, a file is
//! counted once whatever happened to it before, and `retry` and `discard`
//! are the two ways out besides a fixed file of that name being applied.

use crate::config::{Config, Inbound};
use crate::ledger::{Ledger, LedgerError};
use crate::pickup::{FileOutcome, Options, PickupError, error_txt_path};
use crate::util::{Millis, file_mtime_ms, now_ms, rfc3339};
use serde::Serialize;
use std::path::PathBuf;

/// One file waiting in quarantine.
#[derive(Debug, Clone, Serialize)]
pub struct Waiting {
    pub source: String,
    /// Its name in `quarantine/<source>/`.
    pub file: String,
    /// "rejected" or "held".
    pub outcome: String,
    /// The first reason its `.error.txt` gives.
    pub reason: String,
    /// When it was put there (RFC 3339).
    pub since: String,
    #[serde(skip)]
    pub since_ms: Millis,
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error("{file} is not waiting in quarantine/{id}/ (see `stockgate quarantine --source {id}`)")]
    NotThere { id: String, file: String },
    #[error("cannot {what}: {err}")]
    Io {
        what: String,
        #[source]
        err: std::io::Error,
    },
    #[error(transparent)]
    Archive(#[from] crate::store::ArchiveError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Pickup(#[from] PickupError),
}

/// What waits in one source's quarantine folder, oldest first.
pub fn waiting(cfg: &Config, src: &Inbound) -> Vec<Waiting> {
    let dir = cfg.quarantine.join(&src.id);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return vec![];
    };
    let mut out: Vec<Waiting> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.ends_with(".error.txt") && !n.starts_with('.'))
        .map(|file| {
            let path = dir.join(&file);
            let note = std::fs::read_to_string(error_txt_path(&path)).unwrap_or_default();
            let field = |k: &str| {
                note.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(|v| v.trim().to_string())
            };
            let since_ms = field("at:")
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.timestamp_millis())
                .or_else(|| file_mtime_ms(&path).ok())
                .unwrap_or(0);
            Waiting {
                source: src.id.clone(),
                outcome: field("outcome:").unwrap_or_else(|| "rejected".into()),
                reason: field("reason:").unwrap_or_default(),
                since: rfc3339(since_ms),
                since_ms,
                file,
                path,
            }
        })
        .collect();
    out.sort_by(|a, b| (a.since_ms, &a.file).cmp(&(b.since_ms, &b.file)));
    out
}

/// What waits in every source's quarantine (or one source's), oldest first.
pub fn list(cfg: &Config, source: Option<&Inbound>) -> Vec<Waiting> {
    let mut all: Vec<Waiting> = cfg
        .inbound
        .iter()
        .filter(|i| source.is_none_or(|s| s.id == i.id))
        .flat_map(|i| waiting(cfg, i))
        .collect();
    all.sort_by(|a, b| (a.since_ms, &a.source, &a.file).cmp(&(b.since_ms, &b.source, &b.file)));
    all
}

/// The waiting file `file` names: its name as listed, or its path.
fn find(cfg: &Config, src: &Inbound, file: &str) -> Result<Waiting, QuarantineError> {
    let name = std::path::Path::new(file)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(file);
    waiting(cfg, src)
        .into_iter()
        .find(|w| w.file == name)
        .ok_or_else(|| QuarantineError::NotThere {
            id: src.id.clone(),
            file: crate::util::quoted(file),
        })
}

/// `quarantine retry`: applies the file again, exactly as `ingest` of it
/// would (applied, it leaves quarantine with its note).
pub fn retry(
    cfg: &Config,
    ledger: &mut Ledger,
    src: &Inbound,
    file: &str,
    force: bool,
) -> Result<FileOutcome, QuarantineError> {
    let w = find(cfg, src, file)?;
    let opts = Options {
        force,
        consume: false,
        pickup_time: now_ms(),
    };
    Ok(crate::pickup::ingest_file(cfg, ledger, src, &w.path, opts)?)
}

/// `quarantine discard`: the file leaves quarantine, its bytes kept in the
/// archive and the discard recorded (history of the source's files).
/// Returns the archive path.
pub fn discard(
    cfg: &Config,
    ledger: &Ledger,
    src: &Inbound,
    file: &str,
) -> Result<String, QuarantineError> {
    let w = find(cfg, src, file)?;
    let now = now_ms();
    let archived = crate::store::archive(cfg, &src.id, &w.path, &w.file, now)?;
    let (sha, _) = crate::util::sha256_file(&w.path).map_err(|err| QuarantineError::Io {
        what: format!("read {}", w.path.display()),
        err,
    })?;
    ledger.discard_file(&src.id, &w.file, &sha, &archived, now)?;
    for p in [error_txt_path(&w.path), w.path.clone()] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(QuarantineError::Io {
                    what: format!("remove {}", p.display()),
                    err,
                });
            }
        }
    }
    Ok(archived)
}
