//! A local folder as a [`Folder`]: files are read in place, written with
//! fsync, renamed atomically (and the folder fsynced after).

use super::{Entry, EntryKind, Folder, TransportError};
use crate::util::escape;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub struct DirFolder {
    dir: PathBuf,
}

impl DirFolder {
    pub fn new(dir: &Path) -> DirFolder {
        DirFolder {
            dir: dir.to_path_buf(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    fn sync_dir(dir: &Path) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

impl Folder for DirFolder {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn list(&mut self) -> Result<Vec<Entry>, TransportError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            // An inbox not made yet holds nothing: it is made, so a partner
            // can drop files and the watch has a folder (rule 37).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return std::fs::create_dir_all(&self.dir)
                    .map(|_| vec![])
                    .map_err(|e| {
                        TransportError::io(format!("cannot create {}", self.dir.display()), &e)
                    });
            }
            Err(e) => {
                return Err(TransportError::io(
                    format!("cannot list {}", self.dir.display()),
                    &e,
                ));
            }
        };
        let mut out = vec![];
        for entry in rd {
            let entry = entry.map_err(|e| {
                TransportError::io(format!("cannot list {}", self.dir.display()), &e)
            })?;
            let os = entry.file_name();
            let (name, raw) = match os.to_str() {
                Some(s) => (s.to_string(), None),
                None => (escape(&os.to_string_lossy()), Some(entry.path())),
            };
            // Not followed: a link may point out of the inbox.
            let Ok(ft) = entry.file_type() else { continue };
            let kind = if ft.is_symlink() {
                EntryKind::Link
            } else if ft.is_dir() {
                EntryKind::Dir
            } else if ft.is_file() {
                EntryKind::File
            } else {
                EntryKind::Other
            };
            let meta = entry.metadata().ok(); // the entry itself, a link not followed
            out.push(Entry {
                name,
                size: meta.as_ref().map_or(0, |m| m.len()),
                mtime: meta
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as i64),
                kind,
                raw,
            });
        }
        Ok(out)
    }

    fn get(&mut self, name: &str, to: &mut dyn Write) -> Result<u64, TransportError> {
        let p = self.path(name);
        let mut f = std::fs::File::open(&p)
            .map_err(|e| TransportError::io(format!("cannot read {}", p.display()), &e))?;
        std::io::copy(&mut f, to)
            .map_err(|e| TransportError::io(format!("cannot read {}", p.display()), &e))
    }

    fn put(&mut self, name: &str, from: &mut dyn Read) -> Result<u64, TransportError> {
        let p = self.path(name);
        let r = (|| {
            let mut f = std::fs::File::create(&p)?;
            let n = std::io::copy(from, &mut f)?;
            f.flush()?;
            f.sync_all()?;
            Ok(n)
        })();
        r.map_err(|e| TransportError::io(format!("cannot write {}", p.display()), &e))
    }

    fn size(&mut self, name: &str) -> Result<u64, TransportError> {
        let p = self.path(name);
        std::fs::metadata(&p)
            .map(|m| m.len())
            .map_err(|e| TransportError::io(format!("cannot stat {}", p.display()), &e))
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), TransportError> {
        let (a, b) = (self.path(from), self.path(to));
        std::fs::rename(&a, &b).map_err(|e| {
            TransportError::io(
                format!("cannot rename {} to {}", a.display(), b.display()),
                &e,
            )
        })?;
        Self::sync_dir(b.parent().unwrap_or(&self.dir));
        Ok(())
    }

    fn remove(&mut self, name: &str) -> Result<(), TransportError> {
        let p = self.path(name);
        std::fs::remove_file(&p)
            .map_err(|e| TransportError::io(format!("cannot remove {}", p.display()), &e))
    }

    fn mkdir(&mut self, dir: &str) -> Result<(), TransportError> {
        let p = self.path(dir);
        std::fs::create_dir_all(&p)
            .map_err(|e| TransportError::io(format!("cannot create {}", p.display()), &e))
    }

    fn local_path(&self, name: &str) -> Option<PathBuf> {
        Some(self.path(name))
    }
}
