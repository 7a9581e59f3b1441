//! What a crash can leave behind, cleaned when `run` starts (it holds the
//! instance lock, so nothing else of its own is running): scratch files,
//! half-written archive and quarantine copies, temporary feed files in the
//! outboxes, and deliveries whose outcome was never recorded.

use crate::config::{Cart, Config};
use crate::ledger::{Ledger, SyncEntry, SyncOutcome};
use crate::sync::Journal;
use crate::transport::{open, temp_name};
use crate::util::{escape, now_ms};
use std::path::Path;

/// A process that is gone (its leftovers are ours to remove).
fn dead(pid: &str) -> bool {
    pid.parse::<u32>()
        .is_ok_and(|p| p != std::process::id() && !Path::new(&format!("/proc/{p}")).exists())
}

/// Removes `.NAME.tmp-PID` and `.NAME.errors-PID` files of dead processes
/// from `dir` and its subfolders (archive/<id>/<day>/, quarantine/<id>/).
fn sweep_temps(dir: &Path, depth: usize, removed: &mut u64) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() && depth > 0 {
            sweep_temps(&p, depth - 1, removed);
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            continue;
        }
        let pid = name
            .rsplit_once(".tmp-")
            .or_else(|| name.rsplit_once(".errors-"))
            .map(|(_, pid)| pid);
        if pid.is_some_and(dead) && std::fs::remove_file(&p).is_ok() {
            *removed += 1;
        }
    }
}

/// Local leftovers: scratch folders, archive and quarantine temporaries,
/// temporary feeds in local outboxes.
pub fn at_start(cfg: &Config) {
    let mut removed = 0u64;
    // Fetched files being applied, feeds being rendered: a fresh start has none.
    for kind in ["work", "outgoing"] {
        let dir = cfg.scratch_dir(kind, "");
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            // A manual `sync` of that cart may be rendering right now.
            if kind == "outgoing" && !matches!(crate::locks::cart(cfg, &id), Ok(Some(_))) {
                continue;
            }
            let p = e.path();
            for f in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                let fp = f.path();
                let is_ours = kind == "outgoing"
                    || f.file_name()
                        .to_string_lossy()
                        .strip_prefix('.')
                        .is_some_and(dead);
                if is_ours {
                    let r = if fp.is_dir() {
                        std::fs::remove_dir_all(&fp)
                    } else {
                        std::fs::remove_file(&fp)
                    };
                    removed += r.is_ok() as u64;
                }
            }
        }
    }
    sweep_temps(&cfg.archive, 2, &mut removed);
    sweep_temps(&cfg.quarantine, 1, &mut removed);
    for cart in &cfg.carts {
        if let Some(dir) = cart.transport.dir() {
            let tmp = dir.join(temp_name(&cart.id));
            if tmp.exists()
                && matches!(crate::locks::cart(cfg, &cart.id), Ok(Some(_)))
                && std::fs::remove_file(&tmp).is_ok()
            {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed leftovers of an earlier run");
    }
}

/// At a cart worker's start: reconciles a delivery whose outcome was not
/// recorded, and removes the cart's temporary file where it went.
pub fn cart_leftovers(cfg: &Config, cart: &Cart) {
    let Ok(Some(_lock)) = crate::locks::cart(cfg, &cart.id) else {
        return; // someone is syncing it right now
    };
    // Only a stop in the middle of a delivery leaves something on the
    // server, and such a delivery left its journal: no journal, nothing to
    // connect for (a failed delivery's temporary file, if its removal
    // failed too, is the one the cart's next delivery overwrites).
    let Some(j) = Journal::read(cfg, &cart.id) else {
        return;
    };
    let mut folder = match open(&cart.transport.endpoint) {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!(cart = %cart.id, error = %escape(&e.message), "cannot look for leftovers now");
            return;
        }
    };
    let found = folder.size(&j.file);
    let delivered = matches!(found, Ok(n) if n == j.bytes);
    if found.as_ref().is_err_and(|e| !e.not_found) {
        folder.close();
        return; // cannot tell now; the next start looks again
    }
    let entry = SyncEntry {
        cart: cart.id.clone(),
        started_at: j.started_at,
        finished_at: now_ms(),
        outcome: if delivered {
            SyncOutcome::Sent
        } else {
            SyncOutcome::Failed
        },
        reason: Some(if delivered {
            "delivered, but the process stopped before recording it; recorded at the next start (its changes are sent again)".into()
        } else {
            "interrupted: the process stopped during delivery; sent again at the next sync".into()
        }),
        items: j.items,
        file: Some(format!(
            "{}/{}",
            folder.describe().trim_end_matches('/'),
            j.file
        )),
        bytes: Some(j.bytes),
        sha256: Some(j.sha256.clone()),
        ..Default::default()
    };
    match Ledger::open(&cfg.ledger_path).and_then(|mut l| l.record_sync(&entry, None)) {
        Ok(_) => {
            tracing::warn!(cart = %cart.id, file = %escape(&j.file), delivered, "reconciled a delivery interrupted by a stop");
            Journal::remove(cfg, &cart.id);
        }
        Err(e) => {
            tracing::error!(cart = %cart.id, error = %e, "cannot reconcile an interrupted delivery")
        }
    }
    match folder.remove(&temp_name(&cart.id)) {
        Ok(()) => {
            tracing::info!(cart = %cart.id, "removed a temporary feed file left by an earlier run")
        }
        Err(e) if e.not_found => {}
        Err(e) => {
            tracing::debug!(cart = %cart.id, error = %escape(&e.message), "cannot remove a leftover temporary file")
        }
    }
    folder.close();
}
