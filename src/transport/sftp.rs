//! SFTP through ssh2 (libssh2); the host key is checked against known_hosts or a SHA256 fingerprint before any secret is sent.
//!
//! Every blocking libssh2 call is bounded by the endpoint's timeout (set on the
//! socket and on the session), so a server that accepts and never answers
//! fails within about that long.

use super::{Deadline, Entry, EntryKind, Folder, TransportError};
use crate::config::{Endpoint, HostKey, SftpAuth, SftpEndpoint};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use ssh2::{ErrorCode, FileStat, OpenFlags, OpenType, Session, Sftp};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

/// One SFTP session on one remote folder. Holds no secret.
pub struct SftpFolder {
    describe: String,
    /// `sftp://user@host:port`, for messages.
    origin: String,
    /// The folder, absolute on the server (no trailing `/` unless it is `/`).
    base: String,
    session: Session,
    sftp: Option<Sftp>,
    timeout: std::time::Duration,
    /// One whole get or put.
    transfer_timeout: std::time::Duration,
    /// A transfer ran past `transfer_timeout`: the session was given up
    /// (libssh2 is left mid-packet), later calls fail at once.
    given_up: std::cell::Cell<bool>,
    /// The connection, registered so that a stopping daemon can cut it.
    _registered: Option<super::Registered>,
}

impl std::fmt::Debug for SftpFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpFolder")
            .field("at", &self.describe)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

// libssh2 status codes (LIBSSH2_FX_* and LIBSSH2_ERROR_*) used below.
const FX_NO_SUCH_FILE: i32 = 2;
const FX_PERMISSION_DENIED: i32 = 3;
const FX_FAILURE: i32 = 4;
const FX_NO_CONNECTION: i32 = 6;
const FX_CONNECTION_LOST: i32 = 7;
const FX_NO_SUCH_PATH: i32 = 10;
const FX_NO_SPACE_ON_FILESYSTEM: i32 = 14;
const FX_QUOTA_EXCEEDED: i32 = 15;
const FX_LOCK_CONFLICT: i32 = 17;

/// Session errors that need an operator (everything else, mostly socket
/// and timeout trouble, may pass).
fn session_permanent(code: i32) -> bool {
    const PERMANENT: &[i32] = &[
        -5,  // KEX_FAILURE: no common algorithms
        -8,  // KEY_EXCHANGE_FAILURE
        -10, // HOSTKEY_INIT
        -11, // HOSTKEY_SIGN
        -15, // PASSWORD_EXPIRED
        -16, // FILE (private key unreadable, wrong passphrase)
        -17, // METHOD_NONE
        -18, // AUTHENTICATION_FAILED
        -19, // PUBLICKEY_UNVERIFIED
        -33, // METHOD_NOT_SUPPORTED
        -34, // INVAL
        -48, // KEYFILE_AUTH_FAILED
        -51, // ALGO_UNSUPPORTED
    ];
    PERMANENT.contains(&code)
}

/// libssh2's LIBSSH2_ERROR_TIMEOUT: a blocking call waited its timeout.
const TIMEOUT: i32 = -9;

/// Classifies an ssh2 error; `what` names host, folder and file, and a
/// timeout says how long was waited (`timeout`, zero when none applies).
fn classify(what: impl std::fmt::Display, e: &ssh2::Error, timeout: Duration) -> TransportError {
    let message = if e.code() == ErrorCode::Session(TIMEOUT) && !timeout.is_zero() {
        format!(
            "{what}: no answer within {}",
            crate::util::show_duration(timeout)
        )
    } else {
        format!("{what}: {}", e.message())
    };
    match e.code() {
        ErrorCode::SFTP(FX_NO_SUCH_FILE | FX_NO_SUCH_PATH) => TransportError::not_found(message),
        ErrorCode::SFTP(
            FX_FAILURE
            | FX_NO_CONNECTION
            | FX_CONNECTION_LOST
            | FX_NO_SPACE_ON_FILESYSTEM
            | FX_QUOTA_EXCEEDED
            | FX_LOCK_CONFLICT,
        ) => TransportError::retryable(message),
        ErrorCode::SFTP(FX_PERMISSION_DENIED) => TransportError::permanent(message),
        ErrorCode::SFTP(_) => TransportError::permanent(message),
        ErrorCode::Session(c) if session_permanent(c) => TransportError::permanent(message),
        ErrorCode::Session(_) => TransportError::retryable(message),
    }
}

/// Standard base64 without padding (as OpenSSH prints fingerprints).
fn base64_unpadded(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Standard base64 (padding optional); `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The 1-based line of a `@revoked` entry of known_hosts for this key blob
/// (whatever its host patterns: a revoked key is never accepted, as OpenSSH
/// says of the marker).
fn revoked_line(text: &str, blob: &[u8]) -> Option<usize> {
    text.lines().enumerate().find_map(|(i, line)| {
        let mut f = line.split_whitespace();
        (f.next() == Some("@revoked")).then_some(())?;
        let (_hosts, _ktype, key) = (f.next()?, f.next()?, f.next()?);
        (base64_decode(key)? == blob).then_some(i + 1)
    })
}

/// Whether a private key file is protected by a passphrase: a PEM key
/// marked ENCRYPTED, or an OpenSSH key whose cipher is not `none`.
fn key_is_encrypted(file: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    if text.contains("ENCRYPTED") {
        return true;
    }
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN OPENSSH PRIVATE KEY"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let Some(bytes) = base64_decode(body.trim()) else {
        return false;
    };
    let Some(rest) = bytes.strip_prefix(b"openssh-key-v1\0") else {
        return false;
    };
    let Some(len) = rest.get(..4) else {
        return false;
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    rest.get(4..4 + len).is_some_and(|cipher| cipher != b"none")
}

/// `SHA256:...` of a host key blob, exactly as `ssh-keygen -lf` prints it.
pub fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", base64_unpadded(&Sha256::digest(blob)))
}

/// The key type named at the start of an SSH key blob (`ssh-ed25519`).
fn key_type(blob: &[u8]) -> String {
    blob.get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|n| blob.get(4..4 + n))
        .and_then(|s| std::str::from_utf8(s).ok())
        .unwrap_or("unknown key type")
        .to_string()
}

/// Joins a name onto a folder; absolute names stand alone.
fn join(base: &str, name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else if name.is_empty() {
        base.to_string()
    } else if base.ends_with('/') {
        format!("{base}{name}")
    } else {
        format!("{base}/{name}")
    }
}

fn kind_of(stat: &FileStat) -> EntryKind {
    match stat.perm.map(|p| p & 0o170000) {
        Some(0o100000) => EntryKind::File,
        Some(0o040000) => EntryKind::Dir,
        Some(0o120000) => EntryKind::Link,
        _ => EntryKind::Other,
    }
}

impl SftpFolder {
    pub fn connect(ep: &SftpEndpoint) -> Result<SftpFolder, TransportError> {
        let addr = crate::config::host_port(&ep.host, ep.port);
        let describe = Endpoint::Sftp(ep.clone()).describe();
        let timeout = if ep.timeout.is_zero() {
            std::time::Duration::from_secs(30)
        } else {
            ep.timeout
        };

        // TCP, every address the name resolves to, each bounded.
        let addrs: Vec<_> = (ep.host.as_str(), ep.port)
            .to_socket_addrs()
            .map_err(|e| TransportError::io(format!("cannot resolve {}", ep.host), &e))?
            .collect();
        let mut last = None;
        let mut tcp = None;
        for a in &addrs {
            match TcpStream::connect_timeout(a, timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = match (tcp, last) {
            (Some(s), _) => s,
            (None, Some(e)) => {
                return Err(TransportError::io(format!("cannot connect to {addr}"), &e));
            }
            (None, None) => {
                return Err(TransportError::retryable(format!(
                    "cannot connect to {addr}: the name has no address"
                )));
            }
        };
        let sock = |e: std::io::Error| TransportError::io(format!("cannot connect to {addr}"), &e);
        tcp.set_read_timeout(Some(timeout)).map_err(sock)?;
        tcp.set_write_timeout(Some(timeout)).map_err(sock)?;
        let _ = tcp.set_nodelay(true);
        let registered = super::register(&tcp);

        let mut session = Session::new().map_err(|e| classify("cannot start ssh", &e, timeout))?;
        session.set_timeout(u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX));
        session.set_tcp_stream(tcp);
        session.handshake().map_err(|e| {
            classify(
                format!("{describe}: ssh handshake with {addr} failed"),
                &e,
                timeout,
            )
        })?;

        // The host key, before anything about us is sent.
        let (blob, _) = session
            .host_key()
            .ok_or_else(|| TransportError::permanent(format!("{addr} sent no host key")))?;
        let blob = blob.to_vec();
        let seen = fingerprint(&blob);
        let ktype = key_type(&blob);
        match &ep.host_key {
            HostKey::Sha256(want) => {
                // OpenSSH prints no padding; accept a pasted one.
                if want.trim().trim_end_matches('=') != seen {
                    return Err(TransportError::permanent(format!(
                        "host key of {addr} does not match host_key_sha256 {want:?}: the server offers {ktype} {seen}; if an administrator of the server confirms it, set host_key_sha256 = \"{seen}\""
                    )));
                }
            }
            HostKey::KnownHosts(file) => {
                check_known_hosts(
                    &session, file, &ep.host, ep.port, &blob, &addr, &ktype, &seen,
                )?;
            }
        }

        // Login.
        let login = format!("login to {addr} as {} refused", ep.user);
        match &ep.auth {
            SftpAuth::Password(p) => {
                let secret = p
                    .resolve()
                    .map_err(|m| TransportError::permanent(format!("{login}: {m}")))?;
                session
                    .userauth_password(&ep.user, secret.expose_secret())
                    .map_err(|e| auth_error(&login, "password", &e, timeout))?;
            }
            SftpAuth::Key { file, passphrase } => {
                if let Err(e) = std::fs::metadata(file) {
                    return Err(TransportError::permanent(format!(
                        "{login}: cannot read key_file {}: {e}",
                        file.display()
                    )));
                }
                let pass = match passphrase {
                    Some(p) => Some(
                        p.resolve()
                            .map_err(|m| TransportError::permanent(format!("{login}: {m}")))?,
                    ),
                    None => None,
                };
                session
                    .userauth_pubkey_file(
                        &ep.user,
                        None,
                        file,
                        pass.as_ref().map(|s| s.expose_secret()),
                    )
                    .map_err(|e| {
                        if pass.is_some()
                            && e.code() == ErrorCode::Session(-16)
                            && key_is_encrypted(file)
                        {
                            return TransportError::permanent(format!(
                                "{login}: wrong passphrase for key_file {}",
                                file.display()
                            ));
                        }
                        let mut err = auth_error(&login, &format!("key {}", file.display()), &e, timeout);
                        if pass.is_none() && e.code() == ErrorCode::Session(-16) {
                            err.message.push_str(
                                " (if the key is protected by a passphrase, set key_passphrase_env)",
                            );
                        }
                        err
                    })?;
            }
        }
        if !session.authenticated() {
            return Err(TransportError::permanent(format!(
                "{login}: not authenticated"
            )));
        }

        let sftp = session.sftp().map_err(|e| {
            let mut err = classify(format!("cannot start sftp on {addr}"), &e, timeout);
            if matches!(e.code(), ErrorCode::Session(-21 | -22)) {
                // Refused, not dropped: the server offers no sftp subsystem.
                err.retry = super::Retry::Permanent;
                err.message
                    .push_str(" (does the server offer the sftp subsystem to this user?)");
            }
            err
        })?;

        // The folder: relative to the login folder unless absolute.
        let base = if ep.remote_dir.starts_with('/') {
            ep.remote_dir.clone()
        } else {
            let home = sftp.realpath(Path::new(".")).map_err(|e| {
                classify(
                    format!("cannot find the login folder on {addr}"),
                    &e,
                    timeout,
                )
            })?;
            join(&home.to_string_lossy(), &ep.remote_dir)
        };
        let base = match base.trim_end_matches('/') {
            "" => "/".to_string(),
            b => b.to_string(),
        };
        match sftp.stat(Path::new(&base)) {
            Ok(st) if st.is_dir() => {}
            Ok(_) => {
                return Err(TransportError::permanent(format!(
                    "{describe}: remote folder {base} on {addr} is not a folder"
                )));
            }
            Err(e) => {
                let mut err = classify(
                    format!("{describe}: remote folder {base} on {addr} cannot be opened"),
                    &e,
                    timeout,
                );
                if err.not_found {
                    err = TransportError::permanent(format!(
                        "{describe}: remote folder {base} does not exist on {addr}"
                    ));
                }
                return Err(err);
            }
        }

        Ok(SftpFolder {
            describe,
            origin: format!("sftp://{}@{addr}", ep.user),
            base,
            session,
            sftp: Some(sftp),
            timeout,
            transfer_timeout: ep.transfer_timeout,
            given_up: std::cell::Cell::new(false),
            _registered: registered,
        })
    }

    fn sftp(&self) -> Result<&Sftp, TransportError> {
        if self.given_up.get() {
            return Err(TransportError::retryable(format!(
                "{}: the session was given up after a transfer ran past transfer_timeout",
                self.describe
            )));
        }
        self.sftp.as_ref().ok_or_else(|| {
            TransportError::retryable(format!("{}: the session is closed", self.describe))
        })
    }

    fn path(&self, name: &str) -> String {
        join(&self.base, name)
    }

    /// `sftp://user@host:port/path`, for messages.
    fn at(&self, path: &str) -> String {
        format!("{}{}", self.origin, path)
    }

    /// Bounds the next blocking call by the transfer's deadline too;
    /// returns that bound, `None` once the deadline has passed.
    fn bound(&self, deadline: &Deadline) -> Option<std::time::Duration> {
        let w = deadline.wait(self.timeout)?;
        let ms = u32::try_from(w.as_millis()).unwrap_or(u32::MAX).max(1);
        self.session.set_timeout(ms);
        Some(w)
    }

    fn unbound(&self) {
        self.session
            .set_timeout(u32::try_from(self.timeout.as_millis()).unwrap_or(u32::MAX));
    }

    fn overdue(&self, what: &str, bytes: u64, done: &str) -> TransportError {
        // Whatever is still to say to the server (closing the file, the
        // session) waits no more than a moment.
        self.session.set_timeout(1);
        self.given_up.set(true);
        TransportError::retryable(format!(
            "{what}: not done within transfer_timeout {} ({bytes} bytes {done})",
            crate::util::show_duration(self.transfer_timeout)
        ))
    }
}

fn auth_error(login: &str, how: &str, e: &ssh2::Error, timeout: Duration) -> TransportError {
    // libssh2's messages name no secret; a refusal is permanent, a dropped
    // connection may pass (see `session_permanent`).
    classify(format!("{login} ({how})"), e, timeout)
}

#[allow(clippy::too_many_arguments)]
fn check_known_hosts(
    session: &Session,
    file: &Path,
    host: &str,
    port: u16,
    blob: &[u8],
    addr: &str,
    ktype: &str,
    seen: &str,
) -> Result<(), TransportError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        TransportError::permanent(format!(
            "cannot read known_hosts {} (for {addr}): {e}",
            file.display()
        ))
    })?;
    if let Some(line) = revoked_line(&text, blob) {
        return Err(TransportError::permanent(format!(
            "host key of {addr} ({ktype} {seen}) is marked @revoked in known_hosts {}:{line}: refused; ask the server's administrator for its new key",
            file.display()
        )));
    }
    let mut kh = session
        .known_hosts()
        .map_err(|e| classify("cannot check known_hosts", &e, Duration::ZERO))?;
    // Line by line: libssh2's own reader gives up on the first line it cannot
    // parse (a @cert-authority or an sk- key), losing every line after it.
    // Marked lines (@revoked, handled above; @cert-authority, which `check`
    // reports as unsupported) are not host keys of their own.
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with('@') {
            continue;
        }
        let _ = kh.read_str(l, ssh2::KnownHostFileKind::OpenSSH);
    }
    // OpenSSH writes `host` for port 22 and `[host]:port` otherwise, and only
    // that form matches (libssh2's check_port would also accept a bare host
    // for any port).
    let name = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    let hint = format!(
        "the server offers {ktype} {seen}; if an administrator of the server confirms it, add `{name} {ktype} <key>` to {} (ssh-keyscan -p {port} {host}) or set host_key_sha256 = \"{seen}\"",
        file.display()
    );
    match kh.check(&name, blob) {
        ssh2::CheckResult::Match => Ok(()),
        ssh2::CheckResult::Mismatch => Err(TransportError::permanent(format!(
            "host key of {addr} does NOT match known_hosts {}: {hint}",
            file.display()
        ))),
        ssh2::CheckResult::NotFound => Err(TransportError::permanent(format!(
            "host {addr} is not in known_hosts {}: {hint}",
            file.display()
        ))),
        ssh2::CheckResult::Failure => Err(TransportError::permanent(format!(
            "cannot check the host key of {addr} against known_hosts {}: {hint}",
            file.display()
        ))),
    }
}

const BUF: usize = 256 * 1024;

impl Folder for SftpFolder {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn list(&mut self) -> Result<Vec<Entry>, TransportError> {
        let at = self.at(&self.base);
        let sftp = self.sftp()?;
        let mut dir = sftp.opendir(Path::new(&self.base)).map_err(|e| {
            let err = classify(format!("cannot list {at}"), &e, self.timeout);
            if err.not_found {
                TransportError::permanent(format!("cannot list {at}: no such folder"))
            } else {
                err
            }
        })?;
        let mut out = vec![];
        loop {
            let (name, stat) = match dir.readdir() {
                Ok(x) => x,
                Err(e) if e.code() == ErrorCode::Session(-16) => break, // no more entries
                Err(e) => return Err(classify(format!("cannot list {at}"), &e, self.timeout)),
            };
            let raw = name.as_os_str();
            if raw == "." || raw == ".." {
                continue;
            }
            // OpenSSH reports lstat attributes: a link is a link.
            let (name, mut kind) = match raw.to_str() {
                Some(s) => (s.to_string(), kind_of(&stat)),
                // Cannot be named back to the server: never picked up.
                None => (
                    crate::util::escape(&raw.to_string_lossy()),
                    EntryKind::Other,
                ),
            };
            let mut stat = stat;
            if stat.perm.is_none()
                && raw.to_str().is_some()
                && let Ok(st) = sftp.lstat(Path::new(&join(&self.base, &name)))
            {
                kind = kind_of(&st);
                stat = st;
            }
            out.push(Entry {
                name,
                size: stat.size.unwrap_or(0),
                mtime: stat.mtime.map(|s| (s as i64).saturating_mul(1000)),
                kind,
                raw: None,
            });
        }
        let _ = dir.close();
        Ok(out)
    }

    fn get(&mut self, name: &str, to: &mut dyn Write) -> Result<u64, TransportError> {
        let path = self.path(name);
        let at = self.at(&path);
        let sftp = self.sftp()?;
        let mut f = sftp
            .open(Path::new(&path))
            .map_err(|e| classify(format!("cannot fetch {at}"), &e, self.timeout))?;
        let mut buf = vec![0u8; BUF];
        let mut total = 0u64;
        let deadline = Deadline::new(self.transfer_timeout);
        loop {
            let Some(wait) = self.bound(&deadline) else {
                return Err(self.overdue(&format!("cannot fetch {at}"), total, "received"));
            };
            let n = match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) if deadline.hit(wait, self.timeout) => {
                    return Err(self.overdue(&format!("cannot fetch {at}"), total, "received"));
                }
                Err(e) => {
                    self.unbound();
                    return Err(TransportError::io(format!("cannot fetch {at}"), &e));
                }
            };
            to.write_all(&buf[..n]).map_err(|e| {
                self.unbound();
                TransportError::io(format!("cannot store the copy of {at} locally"), &e)
            })?;
            total += n as u64;
        }
        self.unbound();
        let _ = f.close();
        Ok(total)
    }

    fn put(&mut self, name: &str, from: &mut dyn Read) -> Result<u64, TransportError> {
        let path = self.path(name);
        let at = self.at(&path);
        let sftp = self.sftp()?;
        let mut f = sftp
            .open_mode(
                Path::new(&path),
                OpenFlags::WRITE | OpenFlags::TRUNCATE,
                0o644,
                OpenType::File,
            )
            .map_err(|e| classify(format!("cannot store {at}"), &e, self.timeout))?;
        let mut buf = vec![0u8; BUF];
        let mut total = 0u64;
        let deadline = Deadline::new(self.transfer_timeout);
        loop {
            let Some(wait) = self.bound(&deadline) else {
                return Err(self.overdue(&format!("cannot store {at}"), total, "sent"));
            };
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.unbound();
                    return Err(TransportError::io(
                        format!("cannot read the local file to store as {at}"),
                        &e,
                    ));
                }
            };
            if let Err(e) = f.write_all(&buf[..n]) {
                if deadline.hit(wait, self.timeout) {
                    return Err(self.overdue(&format!("cannot store {at}"), total, "sent"));
                }
                self.unbound();
                return Err(TransportError::io(format!("cannot store {at}"), &e));
            }
            total += n as u64;
        }
        self.unbound();
        f.close()
            .map_err(|e| classify(format!("cannot store {at}"), &e, self.timeout))?;
        Ok(total)
    }

    fn size(&mut self, name: &str) -> Result<u64, TransportError> {
        let path = self.path(name);
        let at = self.at(&path);
        let st = self
            .sftp()?
            .stat(Path::new(&path))
            .map_err(|e| classify(format!("cannot stat {at}"), &e, self.timeout))?;
        st.size.ok_or_else(|| {
            TransportError::retryable(format!("cannot stat {at}: the server gave no size"))
        })
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), TransportError> {
        let (src, dst) = (self.path(from), self.path(to));
        let what = format!("cannot rename {} to {dst}", self.at(&src));
        let sftp = self.sftp()?;
        match sftp.rename(Path::new(&src), Path::new(&dst), None) {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = classify(&what, &e, self.timeout);
                // "No such file" may be about the target's folder: only a
                // missing source is not_found.
                if err.not_found && sftp.lstat(Path::new(&src)).is_ok() {
                    return Err(TransportError::permanent(format!(
                        "{what}: the target folder does not exist"
                    )));
                }
                Err(err)
            }
        }
    }

    fn remove(&mut self, name: &str) -> Result<(), TransportError> {
        let path = self.path(name);
        let at = self.at(&path);
        self.sftp()?
            .unlink(Path::new(&path))
            .map_err(|e| classify(format!("cannot remove {at}"), &e, self.timeout))
    }

    fn mkdir(&mut self, dir: &str) -> Result<(), TransportError> {
        let full = self.path(dir.trim_end_matches('/'));
        let sftp = self.sftp()?;
        let mut cur = String::new();
        for part in full.split('/').filter(|p| !p.is_empty()) {
            cur.push('/');
            cur.push_str(part);
            let p = Path::new(&cur);
            if let Ok(st) = sftp.stat(p)
                && st.is_dir()
            {
                continue;
            }
            if let Err(e) = sftp.mkdir(p, 0o755) {
                // Made meanwhile, or refused: only a folder now there is fine.
                match sftp.stat(p) {
                    Ok(st) if st.is_dir() => {}
                    Ok(_) => {
                        return Err(TransportError::permanent(format!(
                            "cannot make folder {}: a file has that name",
                            self.at(&cur)
                        )));
                    }
                    _ => {
                        return Err(classify(
                            format!("cannot make folder {}", self.at(&cur)),
                            &e,
                            self.timeout,
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn close(&mut self) {
        if let Some(mut s) = self.sftp.take() {
            let _ = s.shutdown();
        }
        let _ = self.session.disconnect(None, "stockgate: done", None);
    }
}

impl Drop for SftpFolder {
    fn drop(&mut self) {
        if self.sftp.is_some() {
            self.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_openssh() {
        assert_eq!(base64_unpadded(b""), "");
        assert_eq!(base64_unpadded(b"f"), "Zg");
        assert_eq!(base64_unpadded(b"fo"), "Zm8");
        assert_eq!(base64_unpadded(b"foo"), "Zm9v");
        assert_eq!(base64_unpadded(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_unpadded(&[0xff, 0xfe]), "//4");
        // 32 bytes -> 43 characters, as ssh-keygen prints.
        assert_eq!(fingerprint(b"x").len(), 7 + 43);
    }

    #[test]
    fn base64_round_trip_and_revoked_lines() {
        for data in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foobar",
            &[0xff, 0xfe, 0x00, 0x01],
        ] {
            assert_eq!(base64_decode(&base64_unpadded(data)).as_deref(), Some(data));
        }
        assert_eq!(base64_decode("Zm9v").unwrap(), b"foo");
        assert_eq!(base64_decode("Zg==").unwrap(), b"f");
        assert!(base64_decode("Z m").is_none());
        let kh =
            "host ssh-ed25519 Zm9v\n@revoked * ssh-ed25519 Zm9vYmFy\n@revoked h ssh-ed25519 eHl6\n";
        assert_eq!(revoked_line(kh, b"foobar"), Some(2));
        assert_eq!(revoked_line(kh, b"xyz"), Some(3));
        assert_eq!(revoked_line(kh, b"foo"), None);
    }

    #[test]
    fn joins() {
        assert_eq!(join("/in", "a.csv"), "/in/a.csv");
        assert_eq!(join("/in", "sub/a.csv"), "/in/sub/a.csv");
        assert_eq!(join("/in", "/abs/a.csv"), "/abs/a.csv");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/in", ""), "/in");
    }

    #[test]
    fn key_type_from_blob() {
        let mut blob = vec![0, 0, 0, 11];
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&[0, 0, 0, 32]);
        assert_eq!(key_type(&blob), "ssh-ed25519");
        assert_eq!(key_type(&[0, 0]), "unknown key type");
    }
}
