//! Where received and sent files are kept: the archive (every file received
//! or sent, byte for byte, under `archive/<source or cart>/<YYYY-MM-DD>/`),
//! below both pickup and the 997s and feeds that pickup and sync send.

use crate::config::Config;
use crate::util::{Millis, copy_durable, link_durable};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct ArchiveError {
    pub what: String,
    pub source: std::io::Error,
}

/// Copies the exact bytes to archive/<source or cart>/<YYYY-MM-DD>/NAME (a
/// free name if taken), durably: temporary file, fsync, rename, fsync of
/// the folder. Returns the archive path, or what failed and why.
pub fn archive(
    cfg: &Config,
    id: &str,
    path: &Path,
    name: &str,
    now: Millis,
) -> Result<String, ArchiveError> {
    put(cfg, id, path, name, now, copy_durable)
}

/// [`archive`] for a file of our own that is already durable and that
/// nothing will write again (a rendered feed, fsynced): the archive entry
/// is a second name for it (a hard link, then an fsync of the folder)
/// instead of a second copy of its bytes. Where a link cannot be made
/// (another file system, say), the bytes are copied as [`archive`] does.
pub fn archive_own(
    cfg: &Config,
    id: &str,
    path: &Path,
    name: &str,
    now: Millis,
) -> Result<String, ArchiveError> {
    put(cfg, id, path, name, now, |src, dir, name| {
        link_durable(src, dir, name).or_else(|_| copy_durable(src, dir, name))
    })
}

/// Puts `path` into its day's archive folder the way `how` does.
fn put(
    cfg: &Config,
    id: &str,
    path: &Path,
    name: &str,
    now: Millis,
    how: impl FnOnce(&Path, &Path, &str) -> std::io::Result<PathBuf>,
) -> Result<String, ArchiveError> {
    let day = crate::util::to_datetime(now).format("%Y-%m-%d").to_string();
    let dir = cfg.archive.join(id).join(day);
    how(path, &dir, name)
        .map(|dest| dest.display().to_string())
        .map_err(|source| ArchiveError {
            what: format!("cannot archive {} into {}", path.display(), dir.display()),
            source,
        })
}
