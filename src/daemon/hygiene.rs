//! What a crash can leave behind, cleaned when `run` starts (it holds the
//! instance lock, so nothing else of its own is running): scratch files,
//! half-written archive and quarantine copies, archive copies no record
//! refers to, temporary feed files in the outboxes, and deliveries whose
//! outcome was never recorded.

use crate::config::{Cart, Config};
use crate::ledger::{Ledger, SyncEntry, SyncOutcome};
use crate::sync::Journal;
use crate::transport::{open, temp_name};
use crate::util::{escape, now_ms, safe_name_part};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

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
    // Journals an older stockgate kept in files go into the ledger first.
    match Ledger::open(&cfg.ledger) {
        Ok(l) => Journal::import_files(cfg, &l),
        Err(e) => {
            tracing::error!(error = %e, "cannot open the ledger to move old delivery journals")
        }
    }
    sweep_temps(&cfg.archive, 2, &mut removed);
    sweep_temps(&cfg.quarantine, 1, &mut removed);
    orphan_archive_copies(cfg, *STARTED.get_or_init(SystemTime::now), &mut removed);
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

/// When this process first cleaned up (its start).
static STARTED: std::sync::OnceLock<SystemTime> = std::sync::OnceLock::new();

/// How long before this process started an archive entry no record refers
/// to must have been written to count as an orphan: an `ingest` or `sync`
/// running beside us may be between its archive copy and its record.
const ORPHAN_AGE: Duration = Duration::from_secs(600);

/// Every archive entry the ledger refers to (reports, inbound files, syncs),
/// as `ID/DAY/NAME`; `None` when the ledger cannot be read (then nothing
/// counts as an orphan).
fn archive_refs(cfg: &Config) -> Option<HashSet<String>> {
    let mut refs = HashSet::new();
    for r in crate::ledger::Ledger::archive_paths(&cfg.ledger)? {
        refs.insert(archive_key(Path::new(&r))?);
    }
    Some(refs)
}

/// `ID/DAY/NAME` of an archive entry (whatever the archive folder is called).
fn archive_key(p: &Path) -> Option<String> {
    let mut parts: Vec<String> = p
        .components()
        .rev()
        .take(3)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.len() < 3 {
        return None;
    }
    parts.reverse();
    Some(parts.join("/"))
}

/// Removes archive entries of this config's sources and carts that no
/// record refers to and that were written well before this process
/// started: a `kill -9` between the archive copy and the commit leaves
/// them (the file itself is applied, or the feed sent, again later under
/// another archive name). Left alone: a cart being synced by another
/// process or with a delivery to reconcile (its journal: the record made
/// then links the copy), the 997s we send (archived, not recorded), and the
/// days retention is about to prune (their records may be pruned first).
fn orphan_archive_copies(cfg: &Config, started: SystemTime, removed: &mut u64) {
    let Some(refs) = archive_refs(cfg) else {
        return;
    };
    let Ok(ledger) = Ledger::open_read(&cfg.ledger) else {
        return;
    };
    let Some(cutoff) = started.checked_sub(ORPHAN_AGE) else {
        return;
    };
    let first_day = cfg
        .keep
        .map(|k| {
            let t = now_ms() - k.as_millis() as i64 + 2 * 86_400_000;
            crate::util::to_datetime(t).format("%Y-%m-%d").to_string()
        })
        .unwrap_or_default();
    let sources = cfg.inbound.iter().map(|s| {
        (
            s.id.as_str(),
            Some(format!("997-{}-", safe_name_part(&s.id))),
        )
    });
    let carts = cfg.carts.iter().map(|c| (c.id.as_str(), None));
    for (id, own_997) in sources.chain(carts) {
        let _lock = if own_997.is_none() {
            match crate::locks::cart(cfg, id) {
                Ok(Some(l)) if Journal::read(&ledger, id).is_none() => Some(l),
                _ => continue,
            }
        } else {
            None
        };
        for day in std::fs::read_dir(cfg.archive.join(id))
            .into_iter()
            .flatten()
            .flatten()
        {
            let day_name = day.file_name().to_string_lossy().into_owned();
            let is_day = day_name.len() == 10
                && day_name.as_bytes()[4] == b'-'
                && day_name.as_bytes()[7] == b'-';
            if !is_day || day_name < first_day || !day.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            for f in std::fs::read_dir(day.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || own_997.as_ref().is_some_and(|p| name.starts_with(p)) {
                    continue;
                }
                let old = f
                    .metadata()
                    .ok()
                    .filter(|m| m.is_file())
                    .and_then(|m| m.modified().ok())
                    .is_some_and(|t| t < cutoff);
                if !old || refs.contains(&format!("{id}/{day_name}/{name}")) {
                    continue;
                }
                if std::fs::remove_file(f.path()).is_ok() {
                    tracing::warn!(file = %escape(&f.path().display().to_string()), "removed an archive copy no record refers to (left by a crash)");
                    *removed += 1;
                }
            }
        }
    }
}

/// When a cart worker takes the cart's work (at its start, or taking it
/// over from another gateway): reconciles a delivery whose outcome was not
/// recorded (its journal in the ledger), and removes the cart's temporary
/// file where it went. `ledger` is the worker's, fenced by the cart's lease.
pub fn cart_leftovers(cfg: &Config, ledger: &mut Ledger, cart: &Cart) {
    let Ok(Some(_lock)) = crate::locks::cart(cfg, &cart.id) else {
        return; // someone is syncing it right now
    };
    // Only a stop in the middle of a delivery leaves something on the
    // server, and such a delivery left its journal: no journal, nothing to
    // connect for (a failed delivery's temporary file, if its removal
    // failed too, is the one the cart's next delivery overwrites).
    let Some(j) = Journal::read(ledger, &cart.id) else {
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
    // The feed's archive copy, made before the delivery: linked to the
    // record when it was delivered, removed when it was not.
    let day = crate::util::to_datetime(j.started_at)
        .format("%Y-%m-%d")
        .to_string();
    let copy = cfg.archive.join(&cart.id).join(day).join(&j.file);
    let archive_path = match copy.is_file() {
        true if delivered => Some(copy.display().to_string()),
        true => {
            let _ = std::fs::remove_file(&copy);
            None
        }
        false => None,
    };
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
        archive_path,
        ..Default::default()
    };
    // An order or confirm feed's marks move once its file is known
    // delivered: nothing it sent is sent again (CONTRACT §6).
    let marked = |ledger: &mut Ledger, id: i64| match (&j.marks, delivered) {
        (Some(m), true) => crate::sync::mark_delivered(ledger, &cart.id, id, m),
        _ => Ok(()),
    };
    match ledger
        .record_sync(&entry, None)
        .and_then(|id| marked(ledger, id))
        .and_then(|_| Journal::remove(ledger, &cart.id))
    {
        Ok(()) => {
            tracing::warn!(cart = %cart.id, file = %escape(&j.file), delivered, "reconciled a delivery interrupted by a stop");
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
