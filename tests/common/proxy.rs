//! A TCP proxy on loopback in front of a real server, to make it misbehave
//! in ways it will not on demand: after the first `free` bytes from the
//! server, the rest trickles to the client one byte every `every`.
//!
//! Bounded in time: it accepts for at most [`LIFETIME`], every socket has a
//! timeout, every loop ends by itself, and dropping it stops it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const LIFETIME: Duration = Duration::from_secs(120);

pub struct Proxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (any port) and forwards each connection to
    /// 127.0.0.1:`upstream`; the server's bytes after the first `free`
    /// reach the client one every `every`.
    pub fn trickle(upstream: u16, free: usize, every: Duration) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let end = Instant::now() + LIFETIME;
                let mut pipes = vec![];
                while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                    let Ok((client, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        continue;
                    };
                    let _ = client.set_nonblocking(false);
                    for s in [&client, &server] {
                        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                        let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
                        let _ = s.set_nodelay(true);
                    }
                    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let (st1, st2) = (stop.clone(), stop.clone());
                    pipes.push(std::thread::spawn(move || {
                        pipe(client, server, usize::MAX, Duration::ZERO, &st1, end)
                    }));
                    pipes.push(std::thread::spawn(move || {
                        pipe(s2, c2, free, every, &st2, end)
                    }));
                }
                for p in pipes {
                    let _ = p.join();
                }
            })
        };
        Proxy {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies `from` to `to`: the first `free` bytes at once, then one byte
/// every `every`, until either side closes, `stop` is set or `end` passes.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    free: usize,
    every: Duration,
    stop: &AtomicBool,
    end: Instant,
) {
    let mut sent = 0usize;
    let mut buf = [0u8; 16 * 1024];
    let mut pending: Vec<u8> = vec![];
    while !stop.load(Ordering::SeqCst) && Instant::now() < end {
        if sent >= free && !pending.is_empty() {
            if to.write_all(&pending[..1]).is_err() {
                break;
            }
            pending.remove(0);
            sent += 1;
            std::thread::sleep(every);
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let now = (free.saturating_sub(sent)).min(n);
                if to.write_all(&buf[..now]).is_err() {
                    break;
                }
                sent += now;
                // Held back to trickle (nothing more is read until it is sent).
                pending.extend_from_slice(&buf[now..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
