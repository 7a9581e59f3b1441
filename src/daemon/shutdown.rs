//! One stop signal that every wait of a generation of workers listens to
//! (after mini-redis' `Shutdown`): a flag under a mutex and a condvar, plus
//! wakers for the waits that sleep on a condvar of their own (a worker's
//! bell, the first-look wait, the apply gate).

use std::sync::{Condvar, Mutex};
use std::time::Duration;

type Waker = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
pub struct Shutdown {
    stopped: Mutex<bool>,
    cv: Condvar,
    wakers: Mutex<Vec<Waker>>,
}

impl Shutdown {
    /// Stops: every `wait_timeout` returns `true` now, every waker runs once.
    pub fn stop(&self) {
        {
            let mut s = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
            if *s {
                return;
            }
            *s = true;
            self.cv.notify_all();
        }
        for w in self.wakers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            w();
        }
    }

    pub fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps `d`, or until stopped; returns whether it is stopped.
    pub fn wait_timeout(&self, d: Duration) -> bool {
        let g = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        let (g, _) = self
            .cv
            .wait_timeout_while(g, d, |s| !*s)
            .unwrap_or_else(|e| e.into_inner());
        *g
    }

    /// Runs `f` at the stop (now, if already stopped): it wakes a wait that
    /// sleeps on a condvar of its own.
    pub fn on_stop(&self, f: impl Fn() + Send + Sync + 'static) {
        let mut w = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_stopped() {
            drop(w);
            f();
            return;
        }
        w.push(Box::new(f));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    #[test]
    fn a_stop_ends_every_wait_at_once_and_runs_each_waker_once() {
        let s = Arc::new(Shutdown::default());
        assert!(!s.wait_timeout(Duration::from_millis(10)));
        let woken = Arc::new(AtomicU32::new(0));
        let w = woken.clone();
        s.on_stop(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let t = Instant::now();
                    (s.wait_timeout(Duration::from_secs(60)), t.elapsed())
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        s.stop();
        s.stop();
        for h in waiters {
            let (stopped, took) = h.join().unwrap();
            assert!(stopped);
            assert!(took < Duration::from_secs(5), "{took:?}");
        }
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        assert!(s.is_stopped());
        assert!(s.wait_timeout(Duration::from_secs(60)));
        // A waker added after the stop runs at once.
        let w = woken.clone();
        s.on_stop(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(woken.load(Ordering::SeqCst), 2);
    }
}
