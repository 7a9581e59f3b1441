//! The leases of this gateway's work (rules 33, 34): each source and cart
//! worker holds its work's lease while it works it (its ledger handle
//! fenced with it), one renewer renews them all every third of `lease`
//! and heartbeats, and the work is spread over the gateways that are up:
//! a gateway takes at most `ceil(work items / live gateways)` and hands
//! extras back between units of work. On SQLite (one `run` per ledger)
//! every lease is granted: the same code path.

use crate::ledger::{Lease, Ledger, LedgerError};
use crate::telemetry::Telemetry;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Held {
    lease: Lease,
    lost: Arc<AtomicBool>,
    /// When the ledger last confirmed it (taken or renewed).
    confirmed: Instant,
}

/// This gateway's leases, shared by its workers and its renewer.
pub struct Leases {
    pub instance: String,
    pub ttl: Duration,
    /// Work items of the config in force.
    total: AtomicU64,
    /// Gateways seen within a lease at the last heartbeat (at least 1).
    live: AtomicU64,
    /// The one run of its ledger (SQLite, rule 18): every other heartbeat
    /// is that of a run that stopped, and counts for nothing.
    alone: AtomicBool,
    held: Mutex<BTreeMap<String, Held>>,
}

impl Leases {
    pub fn new(instance: &str, ttl: Duration) -> Leases {
        Leases {
            instance: instance.to_string(),
            ttl,
            total: AtomicU64::new(0),
            live: AtomicU64::new(1),
            alone: AtomicBool::new(false),
            held: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How often a worker without its lease tries again, and the renewer runs.
    pub fn every(&self) -> Duration {
        self.ttl / 3
    }

    pub fn set_total(&self, n: usize) {
        self.total.store(n as u64, Ordering::SeqCst);
    }

    /// At most this many leases for this gateway: `ceil(total / live)`.
    pub fn share(&self) -> u64 {
        let live = if self.alone.load(Ordering::SeqCst) {
            1
        } else {
            self.live.load(Ordering::SeqCst).max(1)
        };
        let (t, l) = (self.total.load(Ordering::SeqCst), live);
        t.div_ceil(l).max(1)
    }

    /// Heartbeats, then renews every held lease; a lease the ledger says is
    /// lost, or not confirmed for a whole lease (the ledger unreachable),
    /// has its worker's flag set. Publishes the ledger's live leases.
    pub fn renew_all(&self, ledger: &Ledger, telemetry: &Telemetry) {
        match ledger.heartbeat(&self.instance, self.ttl) {
            Ok(n) => self.live.store(n, Ordering::SeqCst),
            Err(e) => tracing::warn!(error = %e, "cannot record this gateway's heartbeat"),
        }
        let held: Vec<Lease> = self.lock().values().map(|h| h.lease.clone()).collect();
        for lease in held {
            let r = ledger.renew_lease(&lease, self.ttl);
            let mut map = self.lock();
            let Some(h) = map.get_mut(&lease.work) else {
                continue;
            };
            if h.lease.generation != lease.generation {
                continue;
            }
            match r {
                Ok(true) => h.confirmed = Instant::now(),
                Ok(false) => {
                    h.lost.store(true, Ordering::SeqCst);
                    map.remove(&lease.work);
                }
                Err(e) => {
                    tracing::warn!(work = %lease.work, error = %e, "cannot renew a lease");
                    if h.confirmed.elapsed() >= self.ttl {
                        h.lost.store(true, Ordering::SeqCst);
                        map.remove(&lease.work);
                    }
                }
            }
        }
        publish(ledger, telemetry);
    }

    /// At the start of the one `run` of a ledger (SQLite, under its
    /// instance lock): the live leases of any other holder are those of a
    /// run that crashed; they are handed back so that the work starts now,
    /// and this gateway's share is all the work from now on.
    pub fn release_others(&self, ledger: &Ledger) {
        self.alone.store(true, Ordering::SeqCst);
        let rows = match ledger.leases() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the leases");
                return;
            }
        };
        for r in rows
            .into_iter()
            .filter(|r| r.live && r.holder != self.instance)
        {
            let lease = Lease {
                work: r.work,
                holder: r.holder,
                generation: r.generation,
                taken_at: r.taken_at,
                expires_at: r.expires_at,
            };
            match ledger.release_lease(&lease) {
                Ok(()) => {
                    tracing::info!(work = %lease.work, holder = %crate::util::escape(&lease.holder), "took back a lease left by a run that stopped")
                }
                Err(e) => {
                    tracing::warn!(work = %lease.work, error = %e, "cannot hand a lease back")
                }
            }
        }
    }

    /// A clean stop: every lease handed back, this gateway's heartbeat gone.
    pub fn release_all(&self, ledger: &Ledger, telemetry: &Telemetry) {
        let held = std::mem::take(&mut *self.lock());
        for (_, h) in held {
            h.lost.store(true, Ordering::SeqCst);
            if let Err(e) = ledger.release_lease(&h.lease) {
                tracing::warn!(work = %h.lease.work, error = %e, "cannot hand a lease back");
            }
        }
        if let Err(e) = ledger.gateway_left(&self.instance) {
            tracing::warn!(error = %e, "cannot remove this gateway's heartbeat");
        }
        publish(ledger, telemetry);
    }
}

/// The ledger's live leases, to `/metrics` and the page.
pub fn publish(ledger: &Ledger, telemetry: &Telemetry) {
    match ledger.leases() {
        Ok(rows) => telemetry.set_leases(
            &rows
                .into_iter()
                .filter(|r| r.live)
                .map(|r| (r.work, r.holder))
                .collect::<Vec<_>>(),
        ),
        Err(e) => tracing::warn!(error = %e, "cannot read the leases"),
    }
}

/// One worker's hold on its work's lease.
pub struct WorkLease {
    pub work: String,
    current: Option<(Lease, Arc<AtomicBool>)>,
}

/// What [`WorkLease::ensure`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Hold {
    /// Held, as before.
    Kept,
    /// Taken just now (a start, or a takeover): look at what the last
    /// holder may have left (a cart's journal).
    Taken,
    /// Not ours now: wait [`Leases::every`] and try again.
    NotHeld,
}

impl WorkLease {
    pub fn new(work: String) -> WorkLease {
        WorkLease {
            work,
            current: None,
        }
    }

    /// Before each unit of work: makes sure this worker holds its lease,
    /// with `ledger` fenced by it. A lease found lost is dropped (logged);
    /// one held beyond this gateway's share is handed back; a free one is
    /// taken while this gateway is under its share.
    pub fn ensure(&mut self, leases: &Leases, ledger: &mut Ledger) -> Result<Hold, LedgerError> {
        if let Some((lease, lost)) = &self.current {
            if lost.load(Ordering::SeqCst) {
                self.drop_lost(leases, ledger);
            } else {
                let over = {
                    let mut map = leases.lock();
                    let over = map.len() as u64 > leases.share();
                    if over {
                        map.remove(&self.work);
                    }
                    over
                };
                if over {
                    ledger.set_fence(None);
                    let r = ledger.release_lease(lease);
                    tracing::info!(work = %self.work, "handed the work to another gateway (more than this one's share)");
                    self.current = None;
                    r?;
                    return Ok(Hold::NotHeld);
                }
                if ledger
                    .fence()
                    .is_none_or(|f| f.generation != lease.generation)
                {
                    ledger.set_fence(Some(lease.fence()));
                }
                return Ok(Hold::Kept);
            }
        }
        {
            // A lease of this work already held (by this worker's
            // predecessor, before a reload) is ours to take on.
            let map = leases.lock();
            if !map.contains_key(&self.work) && map.len() as u64 >= leases.share() {
                return Ok(Hold::NotHeld);
            }
        }
        let Some(lease) = ledger.take_lease(&self.work, &leases.instance, leases.ttl)? else {
            return Ok(Hold::NotHeld);
        };
        let lost = Arc::new(AtomicBool::new(false));
        leases.lock().insert(
            self.work.clone(),
            Held {
                lease: lease.clone(),
                lost: lost.clone(),
                confirmed: Instant::now(),
            },
        );
        tracing::debug!(work = %self.work, generation = lease.generation, "lease taken");
        ledger.set_fence(Some(lease.fence()));
        self.current = Some((lease, lost));
        Ok(Hold::Taken)
    }

    /// A write failed with `LeaseLost` (or the renewer flagged it): the
    /// work is dropped, to be taken again later.
    pub fn drop_lost(&mut self, leases: &Leases, ledger: &mut Ledger) {
        if self.current.take().is_some() {
            tracing::warn!(work = %self.work, "lease lost: {}", self.work);
        }
        leases.lock().remove(&self.work);
        ledger.set_fence(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_takes_at_most_its_fair_share_and_hands_extras_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        let mut a = Ledger::open(&path).unwrap();
        let b = Ledger::open(&path).unwrap();
        let t = Telemetry::new();
        let leases = Leases::new("gw-a", Duration::from_secs(30));
        leases.set_total(3);
        leases.renew_all(&a, &t);
        assert_eq!(leases.share(), 3, "alone: everything");
        let mut works: Vec<WorkLease> = ["cart:x", "cart:y", "source:z"]
            .iter()
            .map(|w| WorkLease::new(w.to_string()))
            .collect();
        for w in &mut works {
            assert_eq!(w.ensure(&leases, &mut a).unwrap(), Hold::Taken);
            assert_eq!(w.ensure(&leases, &mut a).unwrap(), Hold::Kept);
        }
        // A second gateway comes up: the share is ceil(3 / 2) = 2.
        b.heartbeat("gw-b", Duration::from_secs(30)).unwrap();
        leases.renew_all(&a, &t);
        assert_eq!(leases.share(), 2);
        assert_eq!(works[0].ensure(&leases, &mut a).unwrap(), Hold::NotHeld);
        assert_eq!(works[1].ensure(&leases, &mut a).unwrap(), Hold::Kept);
        assert_eq!(works[2].ensure(&leases, &mut a).unwrap(), Hold::Kept);
        // Not taken again while at the share; the other gateway takes it.
        assert_eq!(works[0].ensure(&leases, &mut a).unwrap(), Hold::NotHeld);
        let l = b
            .take_lease("cart:x", "gw-b", Duration::from_secs(30))
            .unwrap()
            .unwrap();
        assert_eq!(l.generation, 2);
        // The other gateway takes `cart:y` over (as after an expiry): the
        // renewer finds it lost and its worker drops it.
        b.debug_insert(
            "leases",
            &[
                ("work", crate::ledger::debug::DebugValue::Text("zzz".into())),
                ("holder", crate::ledger::debug::DebugValue::Text("-".into())),
                ("generation", crate::ledger::debug::DebugValue::Integer(1)),
                ("taken_at", crate::ledger::debug::DebugValue::Integer(0)),
                ("expires_at", crate::ledger::debug::DebugValue::Integer(0)),
            ],
        )
        .unwrap();
        let y = leases.lock().get("cart:y").unwrap().lease.clone();
        b.release_lease(&y).unwrap();
        leases.renew_all(&a, &t);
        assert_eq!(works[1].ensure(&leases, &mut a).unwrap(), Hold::Taken);
        assert_eq!(a.fence().unwrap().generation, 2);
        assert_eq!(t.held_by("cart:x").as_deref(), Some("gw-b"));
        assert_eq!(t.held_by("zzz"), None, "an expired lease is not shown");
        // A clean stop hands everything back.
        leases.release_all(&a, &t);
        assert!(
            a.leases()
                .unwrap()
                .iter()
                .all(|r| !r.live || r.holder == "gw-b")
        );
        assert_eq!(t.held_by("source:z"), None);
    }

    /// The one run of a SQLite ledger is alone (rule 18): a run killed a
    /// moment ago left a fresh heartbeat, which must not halve its share
    /// (its carts would wait a whole lease for a gateway that is gone).
    #[test]
    fn the_one_run_of_a_ledger_takes_everything_whatever_heartbeats_a_killed_run_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        let a = Ledger::open(&path).unwrap();
        a.heartbeat("gw-killed", Duration::from_secs(30)).unwrap();
        let t = Telemetry::new();
        let leases = Leases::new("gw-a", Duration::from_secs(30));
        leases.set_total(3);
        leases.release_others(&a);
        leases.renew_all(&a, &t);
        assert_eq!(leases.share(), 3);
    }
}
