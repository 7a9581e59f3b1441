//! Locks between processes sharing one ledger (CONTRACT rule 18): one `run`
//! per ledger, and one sync of a cart at a time. OS file locks (`flock`):
//! the kernel releases them when the process ends, even on `kill -9`.

use crate::config::Config;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another stockgate run (pid {pid}) holds {path}; stop it first, or use `ingest`/`sync`, which may run beside it"
    )]
    Held { pid: String, path: String },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Held for as long as `run` runs.
pub struct InstanceLock {
    /// None on PostgreSQL: any number of `run`s share it (rule 33).
    _file: Option<File>,
    pub path: PathBuf,
}

fn lock_file(path: &PathBuf) -> Result<File, LockError> {
    if let Some(d) = path.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| LockError::Io {
            path: path.display().to_string(),
            source,
        })
}

/// `<ledger>.lock`, holding the pid of the `run` that owns the ledger.
pub fn instance(cfg: &Config) -> Result<InstanceLock, LockError> {
    let Some(path) = crate::ledger::Ledger::instance_lock_path(&cfg.ledger) else {
        return Ok(InstanceLock {
            _file: None,
            path: PathBuf::new(),
        });
    };
    let mut file = lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(LockError::Held {
                pid: if pid.is_empty() {
                    "unknown".into()
                } else {
                    pid.into()
                },
                path: cfg.ledger.to_string(),
            });
        }
        Err(TryLockError::Error(source)) => {
            return Err(LockError::Io {
                path: path.display().to_string(),
                source,
            });
        }
    }
    let io = |source| LockError::Io {
        path: path.display().to_string(),
        source,
    };
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(InstanceLock {
        _file: Some(file),
        path,
    })
}

/// Held while one cart syncs.
pub struct CartLock {
    _file: File,
}

/// The cart's lock, or `None` when another process (or thread) is syncing it now.
pub fn cart(cfg: &Config, cart: &str) -> Result<Option<CartLock>, LockError> {
    let path = cfg
        .scratch_dir("locks", "")
        .join(format!("cart-{cart}.lock"));
    let file = lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(CartLock { _file: file })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(source)) => Err(LockError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}
