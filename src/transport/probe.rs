//! `check --connect`: every endpoint of a config reached as a real transfer
//! would reach it, changing nothing. A remote one is opened with
//! [`super::open`] (connect, TLS certificate or SSH host key, login, the
//! folder), then an inbound folder is listed and an outbound one written: a
//! temporary file under the delivery temp-name convention
//! (`.stockgate-check-<pid>.tmp`) is put and removed. A local folder must
//! exist or be makeable (what is made for the test is removed again) and,
//! outbound, be writable. No file is fetched and the ledger is not opened.
//!
//! Endpoints are checked one after another, each within its `timeout` (plus
//! a short grace for the transport's own, more precise, timeout error), so
//! the whole check is bounded by the sum of the timeouts.

use super::{Folder, TransportError, dir::DirFolder};
use crate::config::{Config, Endpoint};
use crate::util::{ECHO_MAX, bounded, show_duration};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest message shown for one endpoint, in characters.
const MESSAGE_MAX: usize = 600;

/// How long past its `timeout` an endpoint's check may run, so that a hung
/// command fails with the transport's own error (which names the step).
const GRACE: Duration = Duration::from_secs(2);

/// One endpoint to check.
#[derive(Debug, Clone)]
pub struct Target {
    /// Who uses it: `inbound wms`, `inbound wms ack_transport`, `cart shop`.
    pub role: String,
    pub endpoint: Endpoint,
    /// Files are written there (carts, 997s), else listed (inbound).
    pub outbound: bool,
}

/// The result of checking one endpoint.
#[derive(Debug)]
pub struct Outcome {
    pub role: String,
    /// Where (never a secret).
    pub describe: String,
    /// What was found (`listed`, `writable` ...), or why it failed.
    pub result: Result<String, TransportError>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.result.is_ok()
    }
}

/// `ok  cart shop: sftp://u@h:22/out (writable)`, or
/// `inbound wms: ftp://u@h:21/in: cannot log in as u: 530 ...` (the message
/// without a repeated location, bounded).
impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (role, at) = (
            bounded(&self.role, ECHO_MAX),
            bounded(&self.describe, ECHO_MAX),
        );
        match &self.result {
            Ok(note) => write!(f, "ok  {role}: {at} ({note})"),
            Err(e) => {
                let prefix = format!("{}: ", self.describe);
                let message = e.message.strip_prefix(&prefix).unwrap_or(&e.message);
                write!(f, "{role}: {at}: {}", bounded(message, MESSAGE_MAX))
            }
        }
    }
}

/// Every endpoint of the config, in its order: each inbound source (then its
/// `ack_transport`, when it sends 997s there), then each cart.
pub fn targets(cfg: &Config) -> Vec<Target> {
    let mut out = vec![];
    for i in &cfg.inbound {
        out.push(Target {
            role: format!("inbound {}", i.id),
            endpoint: i.transport.endpoint.clone(),
            outbound: false,
        });
        if let Some(ack) = i.ack_transport.as_ref().filter(|_| i.acknowledge) {
            out.push(Target {
                role: format!("inbound {} ack_transport", i.id),
                endpoint: ack.endpoint.clone(),
                outbound: true,
            });
        }
    }
    for c in &cfg.carts {
        out.push(Target {
            role: format!("cart {}", c.id),
            endpoint: c.transport.endpoint.clone(),
            outbound: true,
        });
    }
    out
}

/// Checks every endpoint of the config, one after another.
pub fn connect_check(cfg: &Config) -> Vec<Outcome> {
    targets(cfg).into_iter().map(check_bounded).collect()
}

/// Checks one endpoint in a thread of its own, waiting at most its timeout
/// (and [`GRACE`]); a check still running then is left to end by itself
/// (every step of it is bounded by the timeout too) and reported as too slow.
pub fn check_bounded(target: Target) -> Outcome {
    let describe = target.endpoint.describe();
    let timeout = target.endpoint.timeout();
    let (tx, rx) = std::sync::mpsc::channel();
    let Target {
        role,
        endpoint,
        outbound,
    } = target;
    let spawned = std::thread::Builder::new()
        .name("check-connect".into())
        .spawn(move || {
            let _ = tx.send(check(&endpoint, outbound));
        });
    let result = match spawned {
        Err(e) => Err(TransportError::io("cannot start a thread", &e)),
        Ok(_) => rx.recv_timeout(timeout + GRACE).unwrap_or_else(|_| {
            Err(TransportError::retryable(format!(
                "no result within {} (timeout {} + {}): the server answers too slowly or not at all",
                show_duration(timeout + GRACE),
                show_duration(timeout),
                show_duration(GRACE)
            )))
        }),
    };
    Outcome {
        role,
        describe,
        result,
    }
}

/// The test file's name: hidden, `.tmp`, so pickup never takes it.
pub fn probe_name() -> String {
    super::temp_name(&format!("check-{}", std::process::id()))
}

/// Checks one endpoint now (unbounded but for the transport's own timeouts).
pub fn check(endpoint: &Endpoint, outbound: bool) -> Result<String, TransportError> {
    match endpoint {
        Endpoint::Dir(d) => check_dir(&d.path, outbound),
        _ => {
            let mut folder = super::open(endpoint)?;
            let r = use_folder(folder.as_mut(), outbound);
            folder.close();
            r
        }
    }
}

/// Lists (inbound) or writes and removes a test file (outbound).
fn use_folder(folder: &mut dyn Folder, outbound: bool) -> Result<String, TransportError> {
    if !outbound {
        let n = folder.list()?.len();
        return Ok(format!(
            "listed, {n} {}",
            if n == 1 { "entry" } else { "entries" }
        ));
    }
    let name = probe_name();
    folder.put(&name, &mut &b"stockgate check --connect\n"[..])?;
    folder.remove(&name).map_err(|mut e| {
        let at = folder.describe();
        let why = e
            .message
            .strip_prefix(&format!("{at}: "))
            .unwrap_or(&e.message);
        e.message = format!("{at}: wrote the test file {name} but cannot remove it: {why}");
        e
    })?;
    Ok("writable".into())
}

/// A local folder: listed or written when it exists; when it does not, made
/// (as the gateway would make it), tried, and removed again.
fn check_dir(path: &Path, outbound: bool) -> Result<String, TransportError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            let mut folder = DirFolder::new(path);
            use_folder(&mut folder, outbound)
        }
        Ok(_) => Err(TransportError::permanent(format!(
            "{}: not a folder",
            path.display()
        ))),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            let made = make_dirs(path)?;
            let mut folder = DirFolder::new(path);
            let r = if outbound {
                use_folder(&mut folder, true).map(|_| ())
            } else {
                Ok(())
            };
            for d in made.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
            r.map(|_| "not there yet; it can be made".into())
        }
        Err(e) => Err(TransportError::io(
            format!("{}: cannot open", path.display()),
            &e,
        )),
    }
}

/// Makes `path` and its missing parents; returns the folders made, outermost first.
fn make_dirs(path: &Path) -> Result<Vec<PathBuf>, TransportError> {
    let mut missing = vec![];
    let mut p = path;
    while !p.as_os_str().is_empty() && std::fs::symlink_metadata(p).is_err() {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    missing.reverse();
    let mut made = vec![];
    for d in &missing {
        if let Err(e) = std::fs::create_dir(d) {
            for m in made.iter().rev() {
                let _ = std::fs::remove_dir(m);
            }
            return Err(TransportError::io(
                format!("{}: cannot create {}", path.display(), d.display()),
                &e,
            ));
        }
        made.push(d.clone());
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_folders_are_checked_and_left_as_they_were() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        std::fs::create_dir(&out).unwrap();
        assert_eq!(check_dir(&out, true).unwrap(), "writable");
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
        assert_eq!(check_dir(&out, false).unwrap(), "listed, 0 entries");

        let deep = tmp.path().join("a/b/c");
        for outbound in [false, true] {
            assert_eq!(
                check_dir(&deep, outbound).unwrap(),
                "not there yet; it can be made"
            );
            assert!(!tmp.path().join("a").exists());
        }

        let file = tmp.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let e = check_dir(&file, false).unwrap_err();
        assert_eq!(e.message, format!("{}: not a folder", file.display()));
        let under = file.join("in");
        let e = check_dir(&under, true).unwrap_err();
        assert!(
            e.message.starts_with(&format!(
                "{}: cannot create {}: ",
                under.display(),
                under.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn an_outcome_names_its_location_once() {
        let o = Outcome {
            role: "inbound wms".into(),
            describe: "ftp://u@h:21/in".into(),
            result: Err(TransportError::permanent(
                "ftp://u@h:21/in: cannot log in as u: 530 no",
            )),
        };
        assert_eq!(
            o.to_string(),
            "inbound wms: ftp://u@h:21/in: cannot log in as u: 530 no"
        );
        let o = Outcome {
            role: "cart shop".into(),
            describe: "sftp://u@h:22/out".into(),
            result: Ok("writable".into()),
        };
        assert_eq!(o.to_string(), "ok  cart shop: sftp://u@h:22/out (writable)");
        // Echoes are bounded and escaped: a long folder, a reply with a newline.
        let long = format!("ftp://u@h:21/{}", "d".repeat(400));
        let o = Outcome {
            role: "cart shop".into(),
            describe: long.clone(),
            result: Err(TransportError::permanent(format!(
                "{long}: cannot put x: 553 no\r\nforged line"
            ))),
        };
        assert_eq!(
            o.to_string(),
            format!(
                "cart shop: {}…: cannot put x: 553 no\\r\\nforged line",
                &long[..ECHO_MAX]
            )
        );
        assert_eq!(
            probe_name(),
            format!(".stockgate-check-{}.tmp", std::process::id())
        );
    }
}
