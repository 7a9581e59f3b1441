//! FTP and FTPS (explicit or implicit TLS) through suppaftp with rustls.
//!
//! One control connection serves the whole session. Every socket (control
//! and data) has read and write timeouts, and every connect is bounded, so a
//! server that stops answering fails the operation within about the
//! endpoint's timeout. Data connections are passive: EPSV first, PASV (to the
//! control connection's peer address, never the one in the 227 reply) when
//! the server refuses EPSV; the choice holds for the rest of the session.
//!
//! suppaftp logs every command at trace level through the `log` crate,
//! `PASS` included: the log filter keeps it at info (see `app::main`).

use super::{Deadline, Entry, EntryKind, Folder, TransportError};
use crate::config::{Endpoint, FtpEndpoint, Tls, TlsMode};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use secrecy::ExposeSecret;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;
use suppaftp::types::FileType;
use suppaftp::{FtpError, FtpResult, ImplFtpStream, Mode, Status, TlsConnector, TlsStream};

type Ftp = ImplFtpStream<TlsConn>;

/// What the last failed TLS handshake was: a certificate or protocol
/// failure (needs an operator) or a socket fault (may pass).
const TLS_OK: u8 = 0;
const TLS_PERMANENT: u8 = 1;
const TLS_RETRYABLE: u8 = 2;

pub struct FtpFolder {
    describe: String,
    /// `None` once closed.
    ftp: Option<Ftp>,
    timeout: Duration,
    /// One whole get or put.
    transfer_timeout: Duration,
    /// EPSV worked (`Some(true)`) or was refused (`Some(false)`, PASV used).
    epsv: Option<bool>,
    /// MLSD worked or was refused (LIST parsed instead).
    mlsd: Option<bool>,
    /// Set by the passive stream builder: a data connection was dialled, so
    /// the passive command itself was accepted.
    dialled: Arc<AtomicBool>,
    tls_failure: Arc<AtomicU8>,
    /// What certificates are checked against, for messages.
    trust: Trust,
    /// The folder after login and `cwd`, to come back to.
    home: Option<String>,
    /// A socket error left the control connection in an unknown state.
    broken: bool,
    /// The control connection and the current data connection, registered
    /// so that a stopping daemon can cut them.
    control_reg: Option<super::Registered>,
    data_reg: Arc<std::sync::Mutex<Option<super::Registered>>>,
}

impl std::fmt::Debug for FtpFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpFolder")
            .field("describe", &self.describe)
            .field("open", &self.ftp.is_some())
            .field("epsv", &self.epsv)
            .finish_non_exhaustive()
    }
}

impl FtpFolder {
    pub fn connect(ep: &FtpEndpoint) -> Result<FtpFolder, TransportError> {
        let describe = Endpoint::Ftp(ep.clone()).describe();
        let timeout = if ep.timeout.is_zero() {
            Duration::from_secs(30)
        } else {
            ep.timeout
        };
        let password = ep
            .password
            .resolve()
            .map_err(|e| TransportError::permanent(format!("{describe}: cannot log in: {e}")))?;
        let tls_failure = Arc::new(AtomicU8::new(TLS_OK));
        let dialled = Arc::new(AtomicBool::new(false));
        let connector = match &ep.tls {
            Some(tls) => Some(
                TlsConn::connector(tls, timeout, tls_failure.clone()).map_err(|e| {
                    TransportError::permanent(format!("{describe}: TLS setup: {e}"))
                })?,
            ),
            None => None,
        };
        let mut folder = FtpFolder {
            describe,
            ftp: None,
            timeout,
            transfer_timeout: ep.transfer_timeout,
            epsv: None,
            mlsd: None,
            dialled: dialled.clone(),
            tls_failure,
            trust: Trust {
                host: ep.host.clone(),
                ca_file: ep.tls.as_ref().and_then(|t| t.ca_file.clone()),
            },
            home: None,
            broken: false,
            control_reg: None,
            data_reg: Arc::new(std::sync::Mutex::new(None)),
        };
        let builder = {
            let dialled = dialled.clone();
            let data_reg = folder.data_reg.clone();
            move |addr: SocketAddr| -> FtpResult<TcpStream> {
                dialled.store(true, Ordering::SeqCst);
                let s = TcpStream::connect_timeout(&addr, timeout)
                    .map_err(FtpError::ConnectionError)?;
                set_timeouts(&s, timeout).map_err(FtpError::ConnectionError)?;
                if let Ok(mut r) = data_reg.lock() {
                    *r = super::register(&s);
                }
                Ok(s)
            }
        };
        let implicit = matches!(&ep.tls, Some(t) if t.mode == TlsMode::Implicit);
        let mut ftp = if implicit {
            let connector = connector.expect("ftps has a connector");
            let ftp = folder.connect_implicit(ep, connector)?;
            ftp.passive_stream_builder(builder)
        } else {
            let stream = folder.tcp_connect(ep)?;
            let ftp = Ftp::connect_with_stream(stream)
                .map_err(|e| folder.error("no greeting from the server", e))?
                .passive_stream_builder(builder);
            match connector {
                Some(c) => ftp
                    .into_secure(c, &ep.host)
                    .map_err(|e| folder.error("cannot start TLS (AUTH TLS, PROT P)", e))?,
                None => ftp,
            }
        };
        ftp.set_mode(Mode::ExtendedPassive);
        ftp.set_passive_nat_workaround(true);
        if implicit {
            // Implicit FTPS has no AUTH step, so the protection level is set
            // here; servers that protect data by default may refuse it.
            let _ = ftp.custom_command("PBSZ 0", &[Status::CommandOk]);
            let _ = ftp.custom_command("PROT P", &[Status::CommandOk]);
        }
        let login = ftp.login(ep.user.as_str(), password.expose_secret());
        drop(password);
        login.map_err(|e| folder.error(format!("cannot log in as {}", ep.user), e))?;
        ftp.transfer_type(FileType::Binary)
            .map_err(|e| folder.error("cannot set binary mode (TYPE I)", e))?;
        if !ep.remote_dir.is_empty() {
            ftp.cwd(&ep.remote_dir).map_err(|e| {
                folder.error(format!("no folder {:?} on the server", ep.remote_dir), e)
            })?;
        }
        folder.home = ftp.pwd().ok();
        folder.ftp = Some(ftp);
        Ok(folder)
    }

    /// The control connection, bounded: connect within the timeout, then
    /// read and write timeouts on the socket.
    fn tcp_connect(&mut self, ep: &FtpEndpoint) -> Result<TcpStream, TransportError> {
        let addrs: Vec<SocketAddr> = (ep.host.as_str(), ep.port)
            .to_socket_addrs()
            .map_err(|e| {
                TransportError::retryable(format!(
                    "{}: cannot resolve {}: {e}",
                    self.describe, ep.host
                ))
            })?
            .collect();
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(s) => {
                    set_timeouts(&s, self.timeout)
                        .map_err(|e| self.io_error("cannot connect", &e))?;
                    let _ = s.set_nodelay(true);
                    self.control_reg = super::register(&s);
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        let e = last.unwrap_or_else(|| std::io::Error::new(ErrorKind::NotFound, "no address"));
        Err(TransportError::retryable(format!(
            "{}: cannot connect: {}",
            self.describe,
            io_text(&e, self.timeout)
        )))
    }

    /// suppaftp's implicit connect has no connect timeout of its own: it runs
    /// on a thread that is given up on after the timeout (the socket's own
    /// timeouts bound the TLS handshake and the greeting).
    fn connect_implicit(
        &mut self,
        ep: &FtpEndpoint,
        connector: TlsConnectorImpl,
    ) -> Result<Ftp, TransportError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let host = ep.host.clone();
        let port = ep.port;
        std::thread::Builder::new()
            .name("ftps-connect".into())
            .spawn(move || {
                let r = Ftp::connect_secure_implicit((host.as_str(), port), connector, &host);
                let _ = tx.send(r);
            })
            .map_err(|e| self.io_error("cannot connect", &e))?;
        match rx.recv_timeout(self.timeout) {
            Ok(Ok(ftp)) => Ok(ftp),
            Ok(Err(e)) => Err(self.error("cannot connect (implicit TLS)", e)),
            Err(_) => Err(TransportError::retryable(format!(
                "{}: cannot connect (implicit TLS): no answer within {:?}",
                self.describe, self.timeout
            ))),
        }
    }

    fn io_error(&self, what: impl std::fmt::Display, e: &std::io::Error) -> TransportError {
        TransportError::retryable(format!(
            "{}: {what}: {}",
            self.describe,
            io_text(e, self.timeout)
        ))
    }

    /// Classifies a suppaftp error: socket faults and 4xx replies may pass,
    /// 5xx replies and certificate failures need an operator.
    fn error(&mut self, what: impl std::fmt::Display, e: FtpError) -> TransportError {
        let (detail, retryable) = match &e {
            FtpError::UnexpectedResponse(r) => {
                let code = reply_code(r);
                (reply_text(r), (400..500).contains(&code))
            }
            FtpError::ConnectionError(io) => {
                self.broken = true;
                if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    (self.trust.explain(tls), false)
                } else {
                    (io_text(io, self.timeout), true)
                }
            }
            FtpError::SecureError(s) => {
                self.broken = true;
                let how = self.tls_failure.swap(TLS_OK, Ordering::SeqCst);
                let mut s = s.as_str();
                while let Some(rest) = s.strip_prefix("Secure error: ") {
                    s = rest; // suppaftp wraps the connector's error again
                }
                let s = if s.starts_with("TLS: ") || s.starts_with("certificate ") {
                    s.to_string()
                } else {
                    format!("TLS: {}", crate::util::bounded(s, crate::util::ECHO_MAX))
                };
                (s, how == TLS_RETRYABLE)
            }
            FtpError::BadResponse => {
                self.broken = true;
                ("the server's reply cannot be read".to_string(), true)
            }
            other => (other.to_string(), false),
        };
        let message = format!("{}: {what}: {detail}", self.describe);
        if retryable {
            TransportError::retryable(message)
        } else {
            TransportError::permanent(message)
        }
    }

    fn ftp(&mut self) -> Result<&mut Ftp, TransportError> {
        if self.broken {
            return Err(TransportError::retryable(format!(
                "{}: the connection was lost after an earlier error",
                self.describe
            )));
        }
        self.ftp.as_mut().ok_or_else(|| {
            TransportError::retryable(format!("{}: the connection is closed", self.describe))
        })
    }

    /// Runs one data command (it opens a data connection first). When the
    /// server refuses EPSV, switches to PASV for good and runs it again.
    /// Forgets the data connection's registration: it holds a duplicate of
    /// the socket, which would keep an upload's end-of-file from the server.
    fn release_data(&self) {
        if let Ok(mut r) = self.data_reg.lock() {
            r.take();
        }
    }

    fn data<R>(&mut self, mut f: impl FnMut(&mut Ftp) -> FtpResult<R>) -> FtpResult<R> {
        let ftp = self.ftp.as_mut().expect("checked by ftp()");
        self.dialled.store(false, Ordering::SeqCst);
        let r = f(ftp);
        let dialled = self.dialled.load(Ordering::SeqCst);
        match r {
            Err(FtpError::UnexpectedResponse(resp))
                if self.epsv.is_none() && !dialled && reply_code(&resp) >= 500 =>
            {
                tracing::debug!(
                    "{}: EPSV refused ({}); using PASV",
                    self.describe,
                    reply_text(&resp)
                );
                self.epsv = Some(false);
                ftp.set_mode(Mode::Passive);
                f(ftp)
            }
            r => {
                if dialled && self.epsv.is_none() {
                    self.epsv = Some(true);
                }
                r
            }
        }
    }

    /// After a 550 on `name`: whether the file is missing (rather than, say,
    /// not allowed). The reply's text says it, or a SIZE does.
    fn missing(&mut self, reply: &suppaftp::types::Response, name: &str) -> bool {
        if reply_code(reply) != 550 {
            return false;
        }
        let text = reply_text(reply).to_ascii_lowercase();
        if says_missing(&text) {
            return true;
        }
        if says_denied(&text) {
            return false;
        }
        let Some(ftp) = self.ftp.as_mut() else {
            return false;
        };
        matches!(ftp.size(name), Err(FtpError::UnexpectedResponse(r)) if reply_code(&r) == 550)
    }

    /// A data connection that failed mid-transfer (the server closed it,
    /// say, to answer 426): its reply is read on the control connection,
    /// which stays usable when there is one (so the caller may still remove
    /// a partial upload); only when no reply comes is the connection given up.
    fn data_cut(
        &mut self,
        stream: suppaftp::TransferStream<TlsConn>,
        what: String,
        e: std::io::Error,
    ) -> TransportError {
        match stream.finish() {
            Err(reply @ FtpError::UnexpectedResponse(_)) => self.error(what, reply),
            Ok(()) => self.io_error(what, &e),
            Err(_) => self.error(what, FtpError::ConnectionError(e)),
        }
    }

    /// A transfer that ran past `transfer_timeout`: its data connection is
    /// cut and the server's reply to that read (the control connection
    /// stays usable when one comes).
    fn overdue(
        &mut self,
        stream: suppaftp::TransferStream<TlsConn>,
        what: String,
        bytes: u64,
        done: &str,
    ) -> TransportError {
        let _ = stream
            .get_ref()
            .get_ref()
            .shutdown(std::net::Shutdown::Both);
        if !matches!(
            stream.finish(),
            Ok(()) | Err(FtpError::UnexpectedResponse(_))
        ) {
            self.broken = true;
        }
        TransportError::retryable(format!(
            "{}: {what}: not done within transfer_timeout {} ({bytes} bytes {done})",
            self.describe,
            crate::util::show_duration(self.transfer_timeout)
        ))
    }

    fn list_mlsd(&mut self) -> FtpResult<Vec<Entry>> {
        let lines = self.data(|f| f.mlsd(None))?;
        Ok(lines.iter().filter_map(|l| parse_mlsd(l)).collect())
    }

    fn list_plain(&mut self) -> FtpResult<Vec<Entry>> {
        let lines = self.data(|f| f.list(None))?;
        Ok(lines.iter().filter_map(|l| parse_list(l)).collect())
    }
}

impl Folder for FtpFolder {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn list(&mut self) -> Result<Vec<Entry>, TransportError> {
        self.ftp()?;
        if self.mlsd != Some(false) {
            match self.list_mlsd() {
                Ok(v) => {
                    self.mlsd = Some(true);
                    return Ok(v);
                }
                Err(FtpError::UnexpectedResponse(r))
                    if self.mlsd.is_none() && matches!(reply_code(&r), 500 | 501 | 502 | 504) =>
                {
                    tracing::debug!(
                        "{}: MLSD refused ({}); parsing LIST",
                        self.describe,
                        reply_text(&r)
                    );
                    self.mlsd = Some(false);
                }
                Err(e) => return Err(self.error("cannot list the folder (MLSD)", e)),
            }
        }
        self.list_plain()
            .map_err(|e| self.error("cannot list the folder (LIST)", e))
    }

    fn get(&mut self, name: &str, to: &mut dyn Write) -> Result<u64, TransportError> {
        self.ftp()?;
        let mut stream = self
            .data(|f| f.retr_as_stream(name))
            .map_err(|e| self.error(format!("cannot get {name}"), e))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        let deadline = Deadline::new(self.transfer_timeout);
        loop {
            let Some(wait) = deadline.wait(self.timeout) else {
                return Err(self.overdue(stream, format!("cannot get {name}"), total, "received"));
            };
            let _ = stream.get_ref().get_ref().set_read_timeout(Some(wait));
            let n = match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) && deadline.hit(wait, self.timeout) => {
                    return Err(self.overdue(
                        stream,
                        format!("cannot get {name}"),
                        total,
                        "received",
                    ));
                }
                Err(e) => {
                    drop(stream);
                    return Err(self.error(
                        format!("cannot get {name} (after {total} bytes)"),
                        FtpError::ConnectionError(e),
                    ));
                }
            };
            if let Err(e) = to.write_all(&buf[..n]) {
                if let Err(FtpError::ConnectionError(_)) = stream.finish() {
                    self.broken = true;
                }
                return Err(TransportError::io(
                    format!("{}: cannot get {name}: local write failed", self.describe),
                    &e,
                ));
            }
            total += n as u64;
        }
        stream
            .finish()
            .map_err(|e| self.error(format!("cannot get {name}"), e))?;
        Ok(total)
    }

    fn put(&mut self, name: &str, from: &mut dyn Read) -> Result<u64, TransportError> {
        self.ftp()?;
        let mut stream = self
            .data(|f| f.put_with_stream(name))
            .map_err(|e| self.error(format!("cannot put {name}"), e))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        let deadline = Deadline::new(self.transfer_timeout);
        loop {
            let Some(wait) = deadline.wait(self.timeout) else {
                self.release_data();
                return Err(self.overdue(stream, format!("cannot put {name}"), total, "sent"));
            };
            let _ = stream.get_ref().get_ref().set_write_timeout(Some(wait));
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    if let Err(FtpError::ConnectionError(_)) = {
                        self.release_data();
                        stream.finish()
                    } {
                        self.broken = true;
                    }
                    return Err(TransportError::io(
                        format!("{}: cannot put {name}: local read failed", self.describe),
                        &e,
                    ));
                }
            };
            if let Err(e) = stream.write_all(&buf[..n]) {
                self.release_data();
                if is_timeout(&e) && deadline.hit(wait, self.timeout) {
                    return Err(self.overdue(stream, format!("cannot put {name}"), total, "sent"));
                }
                return Err(self.data_cut(
                    stream,
                    format!("cannot put {name} (after {total} bytes)"),
                    e,
                ));
            }
            total += n as u64;
        }
        if let Err(e) = stream.flush() {
            self.release_data();
            return Err(self.data_cut(stream, format!("cannot put {name}"), e));
        }
        self.release_data();
        stream
            .finish()
            .map_err(|e| self.error(format!("cannot put {name}"), e))?;
        Ok(total)
    }

    fn size(&mut self, name: &str) -> Result<u64, TransportError> {
        match self.ftp()?.size(name) {
            Ok(n) => Ok(n as u64),
            Err(FtpError::UnexpectedResponse(r))
                if reply_code(&r) == 550 && !says_denied(&reply_text(&r).to_ascii_lowercase()) =>
            {
                Err(TransportError::not_found(format!(
                    "{}: no file {name}: {}",
                    self.describe,
                    reply_text(&r)
                )))
            }
            Err(e) => Err(self.error(format!("cannot get the size of {name}"), e)),
        }
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), TransportError> {
        let what = format!("cannot rename {from} to {to}");
        let ftp = self.ftp()?;
        match ftp.custom_command(format!("RNFR {from}"), &[Status::RequestFilePending]) {
            Ok(_) => {}
            Err(FtpError::UnexpectedResponse(r)) if self.missing(&r, from) => {
                return Err(TransportError::not_found(format!(
                    "{}: {what}: no file {from}: {}",
                    self.describe,
                    reply_text(&r)
                )));
            }
            Err(e) => return Err(self.error(what, e)),
        }
        let ftp = self.ftp()?;
        ftp.custom_command(
            format!("RNTO {to}"),
            &[Status::RequestedFileActionOk, Status::CommandOk],
        )
        .map(|_| ())
        .map_err(|e| self.error(what, e))
    }

    fn remove(&mut self, name: &str) -> Result<(), TransportError> {
        match self.ftp()?.rm(name) {
            Ok(()) => Ok(()),
            Err(FtpError::UnexpectedResponse(r)) if self.missing(&r, name) => {
                Err(TransportError::not_found(format!(
                    "{}: cannot remove {name}: no such file: {}",
                    self.describe,
                    reply_text(&r)
                )))
            }
            Err(e) => Err(self.error(format!("cannot remove {name}"), e)),
        }
    }

    fn mkdir(&mut self, dir: &str) -> Result<(), TransportError> {
        let mut path = if dir.starts_with('/') {
            "/".to_string()
        } else {
            String::new()
        };
        for part in dir.split('/').filter(|p| !p.is_empty() && *p != ".") {
            if !path.is_empty() && !path.ends_with('/') {
                path.push('/');
            }
            path.push_str(part);
            let made = self.ftp()?.mkdir(&path);
            let Err(e) = made else { continue };
            if let FtpError::UnexpectedResponse(r) = &e {
                let text = reply_text(r).to_ascii_lowercase();
                if text.contains("exist") {
                    continue;
                }
                // Other wording: it exists when one can go into it.
                let home = self.home.clone();
                let ftp = self.ftp()?;
                if let Some(home) = home
                    && ftp.cwd(&path).is_ok()
                {
                    ftp.cwd(&home)
                        .map_err(|e| self.error(format!("cannot go back to {home}"), e))?;
                    continue;
                }
            }
            return Err(self.error(format!("cannot make folder {path}"), e));
        }
        Ok(())
    }

    fn close(&mut self) {
        if let Some(mut ftp) = self.ftp.take()
            && !self.broken
        {
            let _ = ftp.quit();
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn set_timeouts(s: &TcpStream, timeout: Duration) -> std::io::Result<()> {
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))
}

fn io_text(e: &std::io::Error, timeout: Duration) -> String {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => format!("no answer within {timeout:?}"),
        _ => e.to_string(),
    }
}

/// The reply's code, from its text when suppaftp does not know it.
fn reply_code(r: &suppaftp::types::Response) -> u32 {
    match r.status.code() {
        0 => std::str::from_utf8(r.body.get(..3).unwrap_or_default())
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        c => c,
    }
}

/// The reply as one line: `550 No such file or directory`.
fn reply_text(r: &suppaftp::types::Response) -> String {
    let text = String::from_utf8_lossy(&r.body);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        r.status.code().to_string()
    } else {
        lines.join(" ")
    }
}

fn says_missing(lower: &str) -> bool {
    [
        "no such file",
        "not found",
        "does not exist",
        "doesn't exist",
        "not exist",
        "can't check for file existence",
        "cannot find",
        "can't find",
    ]
    .iter()
    .any(|s| lower.contains(s))
}

fn says_denied(lower: &str) -> bool {
    [
        "permission",
        "denied",
        "not allowed",
        "read-only",
        "read only",
    ]
    .iter()
    .any(|s| lower.contains(s))
}

/// One MLSD line (RFC 3659 facts, `; `, the name); `.`/`..` give `None`.
fn parse_mlsd(line: &str) -> Option<Entry> {
    let (facts, name) = match line.strip_prefix(' ') {
        Some(name) => ("", name),
        None => {
            let i = line.find("; ")?;
            (&line[..i], &line[i + 2..])
        }
    };
    if name.is_empty() || name == "." || name == ".." {
        return None;
    }
    let mut kind = EntryKind::File;
    let mut size = None;
    let mut sizd = None;
    let mut mtime = None;
    for fact in facts.split(';') {
        let Some((key, value)) = fact.split_once('=') else {
            continue;
        };
        match key.to_ascii_lowercase().as_str() {
            "type" => {
                let v = value.to_ascii_lowercase();
                kind = match v.as_str() {
                    "file" => EntryKind::File,
                    "dir" => EntryKind::Dir,
                    "cdir" | "pdir" => return None,
                    "link" => EntryKind::Link,
                    v if v.starts_with("os.unix=slink") || v.starts_with("os.unix=symlink") => {
                        EntryKind::Link
                    }
                    _ => EntryKind::Other,
                };
            }
            "size" => size = value.parse::<u64>().ok(),
            "sizd" => sizd = value.parse::<u64>().ok(),
            "modify" => {
                mtime = chrono::NaiveDateTime::parse_from_str(value, "%Y%m%d%H%M%S%.f")
                    .ok()
                    .map(|t| t.and_utc().timestamp_millis());
            }
            _ => {}
        }
    }
    Some(Entry {
        name: name.to_string(),
        size: size.or(sizd).unwrap_or(0),
        mtime,
        kind,
        raw: None,
    })
}

/// One LIST line (Unix `ls -l` or DOS style); the time is the server's
/// local time read as UTC, to the minute for recent files.
fn parse_list(line: &str) -> Option<Entry> {
    use suppaftp::list::ListParser;
    let f = ListParser::parse_posix(line)
        .or_else(|_| ListParser::parse_dos(line))
        .ok()?;
    let name = f.name();
    if name.is_empty() || name == "." || name == ".." {
        return None;
    }
    let kind = if f.is_symlink() {
        EntryKind::Link
    } else if f.is_directory() {
        EntryKind::Dir
    } else if f.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    };
    let mtime = f
        .modified()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as i64);
    Some(Entry {
        name: name.to_string(),
        size: f.size() as u64,
        mtime,
        kind,
        raw: None,
    })
}

// --- TLS -------------------------------------------------------------------

/// The server name and trust roots a certificate is checked against.
#[derive(Debug, Clone)]
struct Trust {
    host: String,
    ca_file: Option<std::path::PathBuf>,
}

impl Trust {
    /// A TLS failure as a short sentence saying what to do (rustls's own
    /// text can be a structure of bytes); anything else, bounded.
    fn explain(&self, e: &rustls::Error) -> String {
        use rustls::CertificateError as C;
        let rustls::Error::InvalidCertificate(c) = e else {
            return format!("TLS: {}", crate::util::bounded(&e.to_string(), 200));
        };
        match c {
            // A chain that ends at no trusted root (webpki may name the
            // last algorithm it tried instead).
            C::UnknownIssuer
            | C::UnsupportedSignatureAlgorithmContext { .. }
            | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => match &self.ca_file {
                None => {
                    "certificate not trusted (unknown issuer): set ca_file to the CA that signed it"
                        .into()
                }
                Some(ca) => format!(
                    "certificate not trusted (unknown issuer): ca_file {} does not hold the CA that signed it",
                    ca.display()
                ),
            },
            C::Expired | C::ExpiredContext { .. } => {
                "certificate expired: the server needs a new one".into()
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "certificate not valid yet: check this machine's clock".into()
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                "certificate not valid for {}: connect by a name it holds",
                crate::util::bounded(&self.host, 100)
            ),
            C::BadSignature => "certificate signature is invalid".into(),
            C::Revoked => "certificate revoked".into(),
            C::BadEncoding => "certificate cannot be read".into(),
            other => format!(
                "certificate refused: {}",
                crate::util::bounded(&format!("{other:?}"), 200)
            ),
        }
    }
}

/// A rustls stream over one socket (control or data), closed with close_notify.
#[derive(Debug)]
struct TlsConn {
    stream: StreamOwned<ClientConnection, TcpStream>,
    shutdown: bool,
    timeout: Duration,
}

/// Makes [`TlsConn`]s: verifies the server against the trust roots and
/// completes the handshake at once (so a bad certificate fails the connect,
/// not the next command), within the socket timeouts.
struct TlsConnectorImpl {
    config: Arc<ClientConfig>,
    /// For messages: what the certificate was checked against.
    ca_file: Option<std::path::PathBuf>,
    timeout: Duration,
    failure: Arc<AtomicU8>,
}

impl std::fmt::Debug for TlsConnectorImpl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConnectorImpl")
    }
}

impl TlsConn {
    fn connector(
        tls: &Tls,
        timeout: Duration,
        failure: Arc<AtomicU8>,
    ) -> Result<TlsConnectorImpl, String> {
        let mut roots = RootCertStore::empty();
        match &tls.ca_file {
            Some(ca) => {
                let certs = CertificateDer::pem_file_iter(ca)
                    .map_err(|e| format!("cannot read ca_file {}: {e}", ca.display()))?;
                for cert in certs {
                    let cert =
                        cert.map_err(|e| format!("cannot read ca_file {}: {e}", ca.display()))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("bad certificate in {}: {e}", ca.display()))?;
                }
                if roots.is_empty() {
                    return Err(format!("no certificate in ca_file {}", ca.display()));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(
                        "no trusted CA certificates on this system (install ca-certificates, or set ca_file)"
                            .into(),
                    );
                }
            }
        }
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(TlsConnectorImpl {
            config: Arc::new(config),
            ca_file: tls.ca_file.clone(),
            timeout,
            failure,
        })
    }
}

impl TlsConnector for TlsConnectorImpl {
    type Stream = TlsConn;

    fn connect(&self, domain: &str, stream: TcpStream) -> FtpResult<TlsConn> {
        let fail = |permanent: bool, e: FtpError| {
            self.failure.store(
                if permanent {
                    TLS_PERMANENT
                } else {
                    TLS_RETRYABLE
                },
                Ordering::SeqCst,
            );
            e
        };
        set_timeouts(&stream, self.timeout)
            .map_err(|e| fail(false, FtpError::ConnectionError(e)))?;
        let name = ServerName::try_from(domain.to_string())
            .map_err(|e| fail(true, FtpError::SecureError(format!("bad server name: {e}"))))?;
        let conn = ClientConnection::new(self.config.clone(), name)
            .map_err(|e| fail(true, FtpError::SecureError(e.to_string())))?;
        let mut stream = StreamOwned::new(conn, stream);
        while stream.conn.is_handshaking() {
            if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                return Err(
                    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                        Some(tls) => fail(
                            true,
                            FtpError::SecureError(
                                Trust {
                                    host: domain.to_string(),
                                    ca_file: self.ca_file.clone(),
                                }
                                .explain(tls),
                            ),
                        ),
                        None if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                            fail(
                                false,
                                FtpError::SecureError(format!(
                                    "no answer within {:?} during the handshake",
                                    self.timeout
                                )),
                            )
                        }
                        None => fail(false, FtpError::SecureError(e.to_string())),
                    },
                );
            }
        }
        Ok(TlsConn {
            stream,
            shutdown: true,
            timeout: self.timeout,
        })
    }
}

impl TlsStream for TlsConn {
    type InnerStream = StreamOwned<ClientConnection, TcpStream>;

    fn tcp_stream(mut self) -> FtpResult<TcpStream> {
        self.shutdown = false;
        let _ = self.stream.flush();
        self.stream
            .sock
            .try_clone()
            .map_err(FtpError::ConnectionError)
    }

    fn get_ref(&self) -> &TcpStream {
        &self.stream.sock
    }

    fn mut_ref(&mut self) -> &mut Self::InnerStream {
        &mut self.stream
    }
}

impl TlsConn {
    /// Servers that want each data connection to resume the control
    /// connection's TLS session (vsftpd's `require_ssl_reuse`, on by
    /// default) refuse one that does not: `522 SSL connection failed:
    /// session reuse required`. rustls spends a TLS 1.3 ticket per
    /// resumption, and the server gives a fresh one on each resumed
    /// connection; a download or listing reads it, but an upload never reads
    /// its data connection, so without this every upload would use up a
    /// ticket and the third upload of a session would fail. Called after
    /// close_notify on a resumed TLS 1.3 connection that has not had its
    /// ticket yet: ends the upload (half-close) and reads what the server
    /// sends until it closes (at most 2 s), taking the ticket into the cache.
    fn keep_ticket(&mut self) {
        let conn = &mut self.stream.conn;
        if conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3)
            || conn.handshake_kind() != Some(rustls::HandshakeKind::Resumed)
            || conn.tls13_tickets_received() > 0
        {
            return;
        }
        let sock = &mut self.stream.sock;
        let wait = self.timeout.min(Duration::from_secs(2));
        if sock.shutdown(std::net::Shutdown::Write).is_err()
            || sock.set_read_timeout(Some(wait)).is_err()
        {
            return;
        }
        let deadline = std::time::Instant::now() + wait;
        let mut sink = [0u8; 4096];
        while std::time::Instant::now() < deadline {
            match conn.read_tls(sock) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if conn.process_new_packets().is_err() {
                break;
            }
            // Data is not expected here; dropped, so rustls's buffer never fills.
            while matches!(conn.reader().read(&mut sink), Ok(n) if n > 0) {}
        }
    }
}

impl Drop for TlsConn {
    fn drop(&mut self) {
        if self.shutdown {
            let _ = self.stream.flush();
            self.stream.conn.send_close_notify();
            let _ = self.stream.conn.write_tls(&mut self.stream.sock);
            self.keep_ticket();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlsd_lines() {
        let e =
            parse_mlsd("type=file;size=6;modify=20261128175831;UNIX.mode=0644; a b.csv").unwrap();
        assert_eq!(e.name, "a b.csv");
        assert_eq!(e.size, 6);
        assert_eq!(e.kind, EntryKind::File);
        assert_eq!(e.mtime, Some(1795888711000));
        let d = parse_mlsd("type=dir;sizd=4096;modify=20200101000000.250; sub").unwrap();
        assert_eq!(
            (d.kind, d.size, d.mtime),
            (EntryKind::Dir, 4096, Some(1577836800250))
        );
        assert!(parse_mlsd("type=cdir;modify=20200101000000; .").is_none());
        assert!(parse_mlsd("type=pdir;modify=20200101000000; ..").is_none());
        let l = parse_mlsd("type=OS.unix=slink:/x;size=1; ln").unwrap();
        assert_eq!(l.kind, EntryKind::Link);
        assert_eq!(
            parse_mlsd("type=OS.unix=chr-3/4; tty").unwrap().kind,
            EntryKind::Other
        );
    }

    #[test]
    fn certificate_failures_say_what_to_do() {
        use rustls::CertificateError as C;
        let t = |ca: Option<&str>, c: C| {
            Trust {
                host: "ftp.example.org".into(),
                ca_file: ca.map(Into::into),
            }
            .explain(&rustls::Error::InvalidCertificate(c))
        };
        assert_eq!(
            t(None, C::UnknownIssuer),
            "certificate not trusted (unknown issuer): set ca_file to the CA that signed it"
        );
        assert_eq!(
            t(Some("/etc/ca.pem"), C::UnknownIssuer),
            "certificate not trusted (unknown issuer): ca_file /etc/ca.pem does not hold the CA that signed it"
        );
        assert_eq!(
            t(None, C::Expired),
            "certificate expired: the server needs a new one"
        );
        assert_eq!(
            t(None, C::NotValidForName),
            "certificate not valid for ftp.example.org: connect by a name it holds"
        );
        assert_eq!(t(None, C::BadSignature), "certificate signature is invalid");
        let other = Trust {
            host: "h".into(),
            ca_file: None,
        }
        .explain(&rustls::Error::DecryptError);
        assert_eq!(other, "TLS: cannot decrypt peer's message");
    }

    #[test]
    fn list_lines() {
        let e = parse_list("-rw-r--r--    1 65534      0      6 Nov 28  2020 a.txt").unwrap();
        assert_eq!(
            (e.name.as_str(), e.size, e.kind),
            ("a.txt", 6, EntryKind::File)
        );
        assert!(e.mtime.is_some());
        let d = parse_list("drwxr-xr-x    2 0  0  4096 Jan  1  2021 sub").unwrap();
        assert_eq!(d.kind, EntryKind::Dir);
        assert!(parse_list("total 12").is_none());
    }
}
