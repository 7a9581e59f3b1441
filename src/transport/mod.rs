//! Where files come from and go to: a local folder, an FTP/FTPS server or an
//! SFTP server. Each kind opens a [`Folder`] (one connection, one folder) that
//! lists, fetches, stores, renames and removes files by name; pickup and
//! delivery are written once, over that trait ([`deliver`]).
//! Every error says whether a retry may help.

pub mod dir;
pub mod ftp;
pub mod probe;
pub mod sftp;

use crate::config::{Endpoint, TransportSpec};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Whether trying again later may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A passing fault: refused, reset, timed out, a 4xx reply, a busy server.
    Retryable,
    /// Needs an operator: bad login, 5xx reply, host key mismatch, missing folder, no permission.
    Permanent,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    /// Names host, folder and file; never a secret.
    pub message: String,
    pub retry: Retry,
    /// The named file (or folder) does not exist.
    pub not_found: bool,
}

impl TransportError {
    pub fn retryable(message: impl Into<String>) -> Self {
        TransportError {
            message: message.into(),
            retry: Retry::Retryable,
            not_found: false,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        TransportError {
            message: message.into(),
            retry: Retry::Permanent,
            not_found: false,
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        TransportError {
            message: message.into(),
            retry: Retry::Permanent,
            not_found: true,
        }
    }
    pub fn is_retryable(&self) -> bool {
        self.retry == Retry::Retryable
    }
    /// Classifies a local or socket I/O error.
    pub fn io(what: impl std::fmt::Display, e: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let message = format!("{what}: {e}");
        match e.kind() {
            K::NotFound => TransportError::not_found(message),
            K::PermissionDenied | K::ReadOnlyFilesystem | K::InvalidInput | K::InvalidData => {
                TransportError::permanent(message)
            }
            _ => TransportError::retryable(message),
        }
    }
    /// The same error with more context in front.
    pub fn context(mut self, what: impl std::fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    /// A symbolic link (never followed by pickup).
    Link,
    Other,
}

/// One name in a listed folder.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The name as listed (UTF-8; a local name that is not is escaped, and `raw` holds it).
    pub name: String,
    pub size: u64,
    /// Modification time in ms since the epoch, when the server says it.
    pub mtime: Option<i64>,
    pub kind: EntryKind,
    /// Local folders only: the entry's own path, for names that are not UTF-8.
    pub raw: Option<PathBuf>,
}

/// One open folder: a local directory, or a remote one over one connection
/// (a whole pickup pass or delivery uses a single connection). Names are file
/// names inside the folder; `rename` and `mkdir` also take `sub/name` paths
/// relative to it (or absolute remote paths).
pub trait Folder {
    /// Where, for messages (`sftp://user@host:22/in`), never a secret.
    fn describe(&self) -> String;
    /// Every entry of the folder (not recursive). A missing folder is a permanent error.
    fn list(&mut self) -> Result<Vec<Entry>, TransportError>;
    /// Copies the file's bytes into `to`; returns how many.
    fn get(&mut self, name: &str, to: &mut dyn Write) -> Result<u64, TransportError>;
    /// Stores `from` as `name` (binary, replacing an existing file); returns bytes sent.
    fn put(&mut self, name: &str, from: &mut dyn Read) -> Result<u64, TransportError>;
    /// The size of a file; `not_found` when there is none.
    fn size(&mut self, name: &str) -> Result<u64, TransportError>;
    /// Renames within the server. Whether an existing `to` is replaced
    /// depends on the server: callers that must not replace check first, and
    /// callers that must replace remove `to` when the rename is refused.
    fn rename(&mut self, from: &str, to: &str) -> Result<(), TransportError>;
    /// Removes a file; `not_found` when there is none.
    fn remove(&mut self, name: &str) -> Result<(), TransportError>;
    /// Creates a folder (and its parents) relative to this one; fine if it exists.
    fn mkdir(&mut self, dir: &str) -> Result<(), TransportError>;
    /// A local path holding the file itself, read in place (local folders only).
    fn local_path(&self, _name: &str) -> Option<PathBuf> {
        None
    }
    /// Ends the session politely (QUIT, SSH disconnect); errors are ignored.
    fn close(&mut self) {}
}

/// Connections open now, so that a stopping daemon can cut them
/// ([`abort_all`]): a transfer stuck in a read then fails at once instead of
/// at its timeout.
static OPEN: std::sync::Mutex<Vec<(u64, std::net::TcpStream)>> = std::sync::Mutex::new(Vec::new());
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Keeps a connection in the registry until dropped.
pub struct Registered(u64);

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut v) = OPEN.lock() {
            v.retain(|(id, _)| *id != self.0);
        }
    }
}

/// Registers a socket (a control or SSH connection, or a data connection).
pub fn register(s: &std::net::TcpStream) -> Option<Registered> {
    let clone = s.try_clone().ok()?;
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    OPEN.lock().ok()?.push((id, clone));
    Some(Registered(id))
}

/// Shuts down every registered connection (the daemon is stopping).
pub fn abort_all() {
    if let Ok(v) = OPEN.lock() {
        for (_, s) in v.iter() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The end of one whole transfer (`transfer_timeout`).
pub struct Deadline(std::time::Instant);

impl Deadline {
    pub fn new(limit: Duration) -> Deadline {
        let now = std::time::Instant::now();
        Deadline(
            now.checked_add(limit)
                .unwrap_or(now + Duration::from_secs(86400 * 365)),
        )
    }
    /// How long the next read or write may wait (`timeout`, or less near the
    /// end); `None` once the deadline has passed.
    pub fn wait(&self, timeout: Duration) -> Option<Duration> {
        let left = self.0.saturating_duration_since(std::time::Instant::now());
        (!left.is_zero()).then(|| left.min(timeout))
    }
    /// Whether a read or write that failed after waiting `wait` (from
    /// [`wait`](Self::wait)) ran into the deadline rather than the timeout:
    /// the deadline has passed, or that wait was cut to it.
    pub fn hit(&self, wait: Duration, timeout: Duration) -> bool {
        wait < timeout || std::time::Instant::now() >= self.0
    }
}

/// Opens the transport's folder: connects, logs in, checks the host key.
pub fn open(endpoint: &Endpoint) -> Result<Box<dyn Folder>, TransportError> {
    match endpoint {
        Endpoint::Dir(d) => Ok(Box::new(dir::DirFolder::new(&d.path))),
        Endpoint::Ftp(f) => Ok(Box::new(ftp::FtpFolder::connect(f)?)),
        Endpoint::Sftp(s) => Ok(Box::new(sftp::SftpFolder::connect(s)?)),
    }
}

/// The temporary name a delivery uploads under: hidden, ends in `.tmp`, one
/// per final name's owner so that a crash leaves at most one behind and the
/// next delivery reuses it. Pickup never takes such names.
pub fn temp_name(owner: &str) -> String {
    format!(".stockgate-{owner}.tmp")
}

/// Delivers `local` into `folder` as `name`: uploaded under a temporary name,
/// its size checked, then renamed. `replace`: an existing `name` is replaced
/// (a fixed file name); otherwise an existing `name` is an error and is left
/// alone. After a failure no temporary file is left behind (best effort: the
/// connection may be gone). Returns where it went.
pub fn deliver(
    folder: &mut dyn Folder,
    local: &Path,
    name: &str,
    owner: &str,
    replace: bool,
) -> Result<String, TransportError> {
    let where_ = format!("{}/{}", folder.describe().trim_end_matches('/'), name);
    let tmp = temp_name(owner);
    let expected = std::fs::metadata(local)
        .map_err(|e| TransportError::io(format!("cannot read {}", local.display()), &e))?
        .len();
    let result = (|| {
        if !replace {
            match folder.size(name) {
                Ok(_) => {
                    return Err(TransportError::permanent(
                        "a file of that name is already there, and a feed never replaces another (put {seq} or {timestamp} in file_name)",
                    ));
                }
                Err(e) if e.not_found => {}
                Err(e) => return Err(e),
            }
        }
        let mut f = std::fs::File::open(local)
            .map_err(|e| TransportError::io(format!("cannot read {}", local.display()), &e))?;
        let sent = folder.put(&tmp, &mut f)?;
        let listed = folder.size(&tmp)?;
        if sent != expected || listed != expected {
            return Err(TransportError::retryable(format!(
                "upload of {where_} incomplete: {expected} bytes to send, {sent} sent, the server has {listed}"
            )));
        }
        match folder.rename(&tmp, name) {
            Ok(()) => Ok(()),
            Err(e) if replace && !e.not_found => {
                // Servers that cannot rename over an existing file (SFTP v3):
                // remove the old feed, then rename.
                match folder.remove(name) {
                    Ok(()) => {}
                    Err(r) if r.not_found => return Err(e),
                    Err(r) => return Err(r),
                }
                folder.rename(&tmp, name)
            }
            Err(e) => Err(e),
        }
    })();
    if let Err(e) = result {
        // Best effort: the connection may be gone (the next delivery of
        // this owner overwrites the file then).
        match folder.remove(&tmp) {
            Ok(()) => tracing::debug!("{where_}: removed the partial upload {tmp}"),
            Err(r) if r.not_found => {}
            Err(r) => tracing::warn!(
                "{where_}: the partial upload {tmp} is left on the server: {}",
                r.message
            ),
        }
        return Err(e.context(format!("cannot deliver {where_}")));
    }
    Ok(where_)
}

/// Delivers to a cart's (or a 997's) transport over one connection.
pub fn deliver_to(
    spec: &TransportSpec,
    local: &Path,
    name: &str,
    owner: &str,
    replace: bool,
) -> Result<String, TransportError> {
    let mut folder = open(&spec.endpoint)?;
    if !spec.endpoint.is_remote() {
        folder.mkdir("")?; // a local outbox is made on first use; a remote one must exist
    }
    let r = deliver(folder.as_mut(), local, name, owner, replace);
    folder.close();
    r
}

/// Writes one exact local path (`sync --output FILE`), replacing it.
pub fn deliver_to_path(local: &Path, dest: &Path) -> Result<String, TransportError> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "feed".into());
    let mut folder = dir::DirFolder::new(dir);
    folder.mkdir("")?;
    deliver(&mut folder, local, &name, &name, true)?;
    Ok(dest.display().to_string())
}
