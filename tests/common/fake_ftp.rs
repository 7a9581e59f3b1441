//! A scripted FTP server on loopback, for what a real server will not do on
//! demand: list names no real file system holds (`/home/x/important.csv`,
//! 300 characters), trickle a download, end an upload with a 426. It speaks
//! just enough FTP for stockgate (USER/PASS, TYPE, PWD, CWD, EPSV/PASV,
//! MLSD, RETR, STOR, SIZE, DELE, RNFR/RNTO, MKD, QUIT), keeps its files in
//! memory and records every command it receives.
//!
//! Bounded in time: it accepts for at most [`LIFETIME`], every socket has a
//! timeout, every loop ends by itself, and dropping it stops it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest a fake server (or one of its sessions) lives.
pub const LIFETIME: Duration = Duration::from_secs(120);
/// How long a socket waits for the other side.
const WAIT: Duration = Duration::from_secs(10);

/// How the server misbehaves.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// RETR sends one byte every this long.
    pub trickle: Option<Duration>,
    /// STOR reads this many bytes, then closes the data connection unread
    /// and answers this reply (e.g. `426 Connection closed; transfer aborted.`).
    pub stor_abort: Option<(usize, String)>,
    /// STOR reads one byte every this long.
    pub stor_trickle: Option<Duration>,
    /// RETR of these names answers `550 Permission denied`.
    pub refuse_retr: Vec<String>,
    /// Every reply (the greeting too) waits this long: a server that
    /// answers each command within the client's timeout, yet slowly.
    pub reply_delay: Option<Duration>,
}

#[derive(Default)]
struct State {
    files: BTreeMap<String, Vec<u8>>,
    log: Vec<String>,
    retr: usize,
}

pub struct FakeFtp {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeFtp {
    /// Listens on 127.0.0.1 (any port), serving `files` (name, bytes), as `script` says.
    pub fn start(files: &[(&str, &[u8])], script: Script) -> FakeFtp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            files: files
                .iter()
                .map(|(n, b)| (n.to_string(), b.to_vec()))
                .collect(),
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                let end = Instant::now() + LIFETIME;
                let mut sessions = vec![];
                while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                    match listener.accept() {
                        Ok((s, _)) => {
                            let (state, stop, script) =
                                (state.clone(), stop.clone(), script.clone());
                            sessions.push(std::thread::spawn(move || {
                                let _ = session(s, &state, &stop, &script);
                            }));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                for s in sessions {
                    let _ = s.join();
                }
            })
        };
        FakeFtp {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// Transport keys of a config that reaches this server (password in `FAKE_FTP_PW`).
    pub fn keys(&self) -> String {
        format!(
            "type = \"ftp\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"bob\"\npassword_env = \"FAKE_FTP_PW\"\n",
            self.port
        )
    }

    /// The environment [`keys`](Self::keys) needs.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("FAKE_FTP_PW".into(), "fake-pw".into())]
    }

    /// Every command received so far, in order (`PASS` included, verbatim).
    pub fn commands(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// The names it holds now.
    pub fn files(&self) -> Vec<String> {
        self.state.lock().unwrap().files.keys().cloned().collect()
    }

    /// How many RETR it answered.
    pub fn retrievals(&self) -> usize {
        self.state.lock().unwrap().retr
    }
}

impl Drop for FakeFtp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn mlsd_line(name: &str, size: usize) -> String {
    format!("type=file;size={size};modify=20200101000000; {name}\r\n")
}

/// Accepts the data connection of a passive listener, within [`WAIT`].
fn accept_data(l: &TcpListener, stop: &AtomicBool) -> Option<TcpStream> {
    l.set_nonblocking(true).ok()?;
    let end = Instant::now() + WAIT;
    while Instant::now() < end && !stop.load(Ordering::SeqCst) {
        if let Ok((s, _)) = l.accept() {
            s.set_nonblocking(false).ok()?;
            s.set_read_timeout(Some(WAIT)).ok()?;
            s.set_write_timeout(Some(WAIT)).ok()?;
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

fn session(
    s: TcpStream,
    state: &Mutex<State>,
    stop: &AtomicBool,
    script: &Script,
) -> std::io::Result<()> {
    s.set_read_timeout(Some(WAIT))?;
    s.set_write_timeout(Some(WAIT))?;
    let mut out = s.try_clone()?;
    let mut input = BufReader::new(s);
    let delay = script.reply_delay;
    let reply = |out: &mut TcpStream, text: &str| {
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        out.write_all(format!("{text}\r\n").as_bytes())
    };
    reply(&mut out, "220 fake FTP")?;
    let end = Instant::now() + LIFETIME;
    let mut pasv: Option<TcpListener> = None;
    let mut rnfr: Option<String> = None;
    while Instant::now() < end && !stop.load(Ordering::SeqCst) {
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        state.lock().unwrap().log.push(line.clone());
        let (cmd, arg) = match line.split_once(' ') {
            Some((c, a)) => (c.to_ascii_uppercase(), a.to_string()),
            None => (line.to_ascii_uppercase(), String::new()),
        };
        match cmd.as_str() {
            "USER" => reply(&mut out, "331 password please")?,
            "PASS" => reply(&mut out, "230 logged in")?,
            "TYPE" => reply(&mut out, "200 type set")?,
            "PWD" => reply(&mut out, "257 \"/\" is the folder")?,
            "CWD" => reply(&mut out, "250 ok")?,
            "MKD" => reply(&mut out, &format!("257 \"{arg}\" made"))?,
            "OPTS" => reply(&mut out, "200 ok")?,
            "QUIT" => {
                reply(&mut out, "221 bye")?;
                return Ok(());
            }
            "EPSV" => {
                let l = TcpListener::bind("127.0.0.1:0")?;
                let p = l.local_addr()?.port();
                pasv = Some(l);
                reply(
                    &mut out,
                    &format!("229 Entering Extended Passive Mode (|||{p}|)"),
                )?;
            }
            "PASV" => {
                let l = TcpListener::bind("127.0.0.1:0")?;
                let p = l.local_addr()?.port();
                pasv = Some(l);
                reply(
                    &mut out,
                    &format!(
                        "227 Entering Passive Mode (127,0,0,1,{},{})",
                        p >> 8,
                        p & 255
                    ),
                )?;
            }
            "SIZE" => {
                let size = state.lock().unwrap().files.get(&arg).map(Vec::len);
                match size {
                    Some(n) => reply(&mut out, &format!("213 {n}"))?,
                    None => reply(&mut out, "550 No such file or directory")?,
                }
            }
            "DELE" => {
                let had = state.lock().unwrap().files.remove(&arg).is_some();
                reply(
                    &mut out,
                    if had {
                        "250 deleted"
                    } else {
                        "550 No such file or directory"
                    },
                )?;
            }
            "RNFR" => {
                if state.lock().unwrap().files.contains_key(&arg) {
                    rnfr = Some(arg);
                    reply(&mut out, "350 ready for RNTO")?;
                } else {
                    reply(&mut out, "550 No such file or directory")?;
                }
            }
            "RNTO" => match rnfr.take() {
                Some(from) => {
                    let mut st = state.lock().unwrap();
                    if let Some(b) = st.files.remove(&from) {
                        st.files.insert(arg, b);
                    }
                    drop(st);
                    reply(&mut out, "250 renamed")?;
                }
                None => reply(&mut out, "503 RNFR first")?,
            },
            "MLSD" | "LIST" | "RETR" | "STOR" => {
                let Some(l) = pasv.take() else {
                    reply(&mut out, "425 use EPSV or PASV first")?;
                    continue;
                };
                if cmd == "RETR" && !state.lock().unwrap().files.contains_key(&arg) {
                    reply(&mut out, "550 No such file or directory")?;
                    continue;
                }
                if cmd == "RETR" && script.refuse_retr.contains(&arg) {
                    reply(&mut out, "550 Permission denied")?;
                    continue;
                }
                reply(&mut out, "150 opening data connection")?;
                let Some(mut data) = accept_data(&l, stop) else {
                    reply(&mut out, "425 no data connection")?;
                    continue;
                };
                let done = match cmd.as_str() {
                    "MLSD" | "LIST" => {
                        let text: String = {
                            let st = state.lock().unwrap();
                            st.files
                                .iter()
                                .map(|(n, b)| mlsd_line(n, b.len()))
                                .collect()
                        };
                        data.write_all(text.as_bytes()).is_ok()
                    }
                    "RETR" => {
                        let body = {
                            let mut st = state.lock().unwrap();
                            st.retr += 1;
                            st.files.get(&arg).cloned().unwrap_or_default()
                        };
                        match script.trickle {
                            None => data.write_all(&body).is_ok(),
                            Some(every) => {
                                let mut ok = true;
                                for b in &body {
                                    if stop.load(Ordering::SeqCst)
                                        || Instant::now() > end
                                        || data.write_all(&[*b]).is_err()
                                    {
                                        ok = false;
                                        break;
                                    }
                                    std::thread::sleep(every);
                                }
                                ok
                            }
                        }
                    }
                    _ => {
                        // STOR
                        let mut got = vec![];
                        let limit = script.stor_abort.as_ref().map(|(n, _)| *n);
                        let mut buf = [0u8; 8192];
                        while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                            let want = match limit {
                                Some(n) if got.len() >= n => break,
                                Some(n) => buf.len().min(n - got.len()),
                                None if script.stor_trickle.is_some() => 1,
                                None => buf.len(),
                            };
                            if let Some(every) = script.stor_trickle {
                                std::thread::sleep(every);
                            }
                            match data.read(&mut buf[..want]) {
                                Ok(0) | Err(_) => break,
                                Ok(k) => got.extend_from_slice(&buf[..k]),
                            }
                        }
                        state.lock().unwrap().files.insert(arg.clone(), got);
                        limit.is_none()
                    }
                };
                drop(data);
                match (&script.stor_abort, cmd.as_str()) {
                    (Some((_, r)), "STOR") => reply(&mut out, r)?,
                    _ if done => reply(&mut out, "226 transfer complete")?,
                    _ => reply(&mut out, "426 Connection closed; transfer aborted.")?,
                }
            }
            _ => reply(&mut out, "502 not implemented")?,
        }
    }
    Ok(())
}
