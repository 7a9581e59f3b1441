//! Where files come from and go to. A [`Source`] lists and fetches inbound
//! files; a [`Sink`] delivers a finished feed under its final name.
//! Errors say whether a retry may help.

use crate::config::{After, TransportKind, TransportSpec};
use crate::util::{file_mtime_ms, glob_match};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    pub message: String,
    /// A passing fault (network, busy server): the next attempt may succeed.
    pub retryable: bool,
}

impl TransportError {
    fn io(what: String, e: std::io::Error) -> Self {
        TransportError {
            message: format!("{what}: {e}"),
            retryable: true,
        }
    }
}

/// A file waiting at a source.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub name: String,
    pub size: u64,
    pub mtime: i64,
    /// For local folders: the file itself, read in place.
    pub local: Option<PathBuf>,
}

pub trait Source {
    /// Files matching the pattern, oldest first.
    fn list(&mut self) -> Result<Vec<Waiting>, TransportError>;
    /// A local path holding the file's bytes (a folder source returns the file itself).
    fn fetch(&mut self, f: &Waiting, work_dir: &Path) -> Result<PathBuf, TransportError>;
    /// Called once the file is safely archived (or quarantined): delete, move or keep it.
    fn done(&mut self, f: &Waiting) -> Result<(), TransportError>;
}

pub trait Sink {
    /// Delivers `local` as `name`; it appears under that name only when complete.
    /// Returns where it went (for the history).
    fn deliver(&mut self, local: &Path, name: &str) -> Result<String, TransportError>;
}

pub struct DirSource {
    dir: PathBuf,
    pattern: String,
    after: After,
}

impl Source for DirSource {
    fn list(&mut self) -> Result<Vec<Waiting>, TransportError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => {
                return Err(TransportError::io(
                    format!("cannot list {}", self.dir.display()),
                    e,
                ));
            }
        };
        let mut out = vec![];
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Hidden and temporary names are files still being written.
            if name.starts_with('.')
                || name.ends_with(".tmp")
                || name.ends_with(".part")
                || !glob_match(&self.pattern, &name)
            {
                continue;
            }
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            out.push(Waiting {
                name,
                size: meta.len(),
                mtime: file_mtime_ms(&path).unwrap_or(0),
                local: Some(path),
            });
        }
        out.sort_by(|a, b| (a.mtime, &a.name).cmp(&(b.mtime, &b.name)));
        Ok(out)
    }
    fn fetch(&mut self, f: &Waiting, _work: &Path) -> Result<PathBuf, TransportError> {
        Ok(f.local.clone().unwrap_or_else(|| self.dir.join(&f.name)))
    }
    fn done(&mut self, f: &Waiting) -> Result<(), TransportError> {
        let path = self.dir.join(&f.name);
        match &self.after {
            After::Keep => Ok(()),
            After::Delete => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(TransportError::io(
                    format!("cannot remove {}", path.display()),
                    e,
                )),
                _ => Ok(()),
            },
            After::Move(d) => {
                let dest = self.dir.join(d);
                std::fs::create_dir_all(&dest).map_err(|e| {
                    TransportError::io(format!("cannot create {}", dest.display()), e)
                })?;
                std::fs::rename(&path, crate::util::free_path(&dest, &f.name))
                    .map_err(|e| TransportError::io(format!("cannot move {}", path.display()), e))
            }
        }
    }
}

pub struct DirSink {
    dir: PathBuf,
}

impl Sink for DirSink {
    fn deliver(&mut self, local: &Path, name: &str) -> Result<String, TransportError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| TransportError::io(format!("cannot create {}", self.dir.display()), e))?;
        // Same folder, temporary name, fsync, rename: readers never see half a feed.
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let dest = self.dir.join(name);
        let r = (|| {
            std::fs::copy(local, &tmp)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &dest)?;
            if let Ok(d) = std::fs::File::open(&self.dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        r.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            TransportError::io(format!("cannot deliver {}", dest.display()), e)
        })?;
        Ok(dest.display().to_string())
    }
}

fn unavailable(kind: TransportKind) -> TransportError {
    TransportError {
        message: format!("{kind:?} transport is not available in this build"),
        retryable: false,
    }
}

pub fn source(spec: &TransportSpec) -> Result<Box<dyn Source>, TransportError> {
    match spec.kind {
        TransportKind::Dir => Ok(Box::new(DirSource {
            dir: spec.path.clone().unwrap_or_default(),
            pattern: spec.pattern.clone(),
            after: spec.after.clone(),
        })),
        k => Err(unavailable(k)),
    }
}

pub fn sink(spec: &TransportSpec) -> Result<Box<dyn Sink>, TransportError> {
    match spec.kind {
        TransportKind::Dir => Ok(Box::new(DirSink {
            dir: spec.path.clone().unwrap_or_default(),
        })),
        k => Err(unavailable(k)),
    }
}

/// A sink that writes one exact path (`sync --output FILE`).
pub struct FileSink;

impl FileSink {
    pub fn deliver_to(local: &Path, dest: &Path) -> Result<String, TransportError> {
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "feed".into());
        DirSink {
            dir: dir.to_path_buf(),
        }
        .deliver(local, &name)
    }
}
