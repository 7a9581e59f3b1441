//! `[inbound.transport]`, `[inbound.ack_transport]` and `[cart.transport]`:
//! one typed endpoint per kind (dir, ftp/ftps, sftp), each with its own keys
//! and its own checks, plus the pickup and delivery rules they share.

use super::Ctx;
use secrecy::SecretString;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The table as written; every key of every kind, checked per kind below.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTransport {
    #[serde(rename = "type")]
    kind: String,
    path: Option<PathBuf>,
    pattern: Option<String>,
    file_name: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    key_file: Option<PathBuf>,
    key_passphrase_env: Option<String>,
    known_hosts: Option<PathBuf>,
    host_key_sha256: Option<String>,
    remote_dir: Option<String>,
    timeout: Option<String>,
    transfer_timeout: Option<String>,
    tls: Option<String>,
    ca_file: Option<PathBuf>,
    stable_for: Option<String>,
    done_marker: Option<bool>,
    after: Option<String>,
    after_rejected: Option<String>,
}

/// A secret: read from the environment when a connection is made, or given
/// inline. Neither `Debug` nor any message ever shows the value.
#[derive(Clone)]
pub enum Password {
    Env(String),
    Inline(Arc<SecretString>),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Password::Env(v) => write!(f, "Password::Env({v:?})"),
            Password::Inline(_) => write!(f, "Password::Inline([REDACTED])"),
        }
    }
}

impl Password {
    /// The secret itself; the error names the variable, never a value.
    pub fn resolve(&self) -> Result<SecretString, String> {
        match self {
            Password::Inline(s) => Ok(SecretString::from(
                secrecy::ExposeSecret::expose_secret(s.as_ref()).to_string(),
            )),
            Password::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(SecretString::from(v)),
                _ => Err(format!("environment variable {var} is not set")),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// AUTH TLS on the plain control port (21).
    Explicit,
    /// TLS from the first byte (port 990).
    Implicit,
}

#[derive(Debug, Clone)]
pub struct Tls {
    pub mode: TlsMode,
    /// PEM file of CA certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct DirEndpoint {
    /// The folder, absolute (resolved against the config's folder).
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct FtpEndpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Password,
    /// The folder on the server ("" = the login folder).
    pub remote_dir: String,
    /// `Some` for `type = "ftps"`.
    pub tls: Option<Tls>,
    /// Connect, every command, every read and write of a data transfer.
    pub timeout: Duration,
    /// One whole file transfer (get or put), however it trickles.
    pub transfer_timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum SftpAuth {
    Password(Password),
    Key {
        file: PathBuf,
        passphrase: Option<Password>,
    },
}

#[derive(Debug, Clone)]
pub enum HostKey {
    /// An OpenSSH known_hosts file.
    KnownHosts(PathBuf),
    /// `SHA256:` + unpadded base64 of the SHA-256 of the key blob (as `ssh-keygen -lf` prints).
    Sha256(String),
}

#[derive(Debug, Clone)]
pub struct SftpEndpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub auth: SftpAuth,
    pub host_key: HostKey,
    pub remote_dir: String,
    pub timeout: Duration,
    /// One whole file transfer (get or put), however it trickles.
    pub transfer_timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum Endpoint {
    Dir(DirEndpoint),
    Ftp(FtpEndpoint),
    Sftp(SftpEndpoint),
}

impl Endpoint {
    pub fn is_remote(&self) -> bool {
        !matches!(self, Endpoint::Dir(_))
    }
    /// Where, for messages: a folder, or `ftp://user@host:port/dir` (never a secret).
    pub fn describe(&self) -> String {
        match self {
            Endpoint::Dir(d) => d.path.display().to_string(),
            Endpoint::Ftp(f) => format!(
                "{}://{}@{}/{}",
                if f.tls.is_some() { "ftps" } else { "ftp" },
                f.user,
                host_port(&f.host, f.port),
                f.remote_dir.trim_start_matches('/')
            ),
            Endpoint::Sftp(s) => format!(
                "sftp://{}@{}/{}",
                s.user,
                host_port(&s.host, s.port),
                s.remote_dir.trim_start_matches('/')
            ),
        }
    }
    /// The folder files land in, as one comparable string.
    pub fn location(&self) -> String {
        match self {
            Endpoint::Dir(d) => std::path::absolute(&d.path)
                .unwrap_or_else(|_| d.path.clone())
                .display()
                .to_string(),
            Endpoint::Ftp(f) => format!(
                "ftp://{}:{}/{}",
                f.host.to_ascii_lowercase(),
                f.port,
                f.remote_dir.trim_matches('/')
            ),
            Endpoint::Sftp(s) => format!(
                "sftp://{}:{}/{}",
                s.host.to_ascii_lowercase(),
                s.port,
                s.remote_dir.trim_matches('/')
            ),
        }
    }
    pub fn timeout(&self) -> Duration {
        match self {
            Endpoint::Dir(_) => DEFAULT_TIMEOUT,
            Endpoint::Ftp(f) => f.timeout,
            Endpoint::Sftp(s) => s.timeout,
        }
    }
}

/// `host:port`, an IPv6 address in brackets (`[::1]:22`).
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// What to do with a picked-up file once its outcome is safely recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum After {
    Delete,
    /// Into this folder (relative to the inbox folder unless absolute).
    Move(String),
    Keep,
}

/// Pickup rules of an inbound transport.
#[derive(Debug, Clone)]
pub struct PickupRules {
    /// Applied or duplicate files.
    pub after: After,
    /// Rejected or held files. `None` (dir default): moved into quarantine.
    pub after_rejected: Option<After>,
    /// A remote file is taken once its size and mtime held this long.
    pub stable_for: Duration,
    /// Take NAME only once NAME.done exists (then remove the marker).
    pub done_marker: bool,
}

#[derive(Debug, Clone)]
pub struct TransportSpec {
    pub endpoint: Endpoint,
    pub pattern: crate::util::Glob,
    /// Carts: the feed's file name template.
    pub file_name: String,
    pub pickup: PickupRules,
}

impl TransportSpec {
    /// The local folder of a `dir` transport.
    pub fn dir(&self) -> Option<&std::path::Path> {
        match &self.endpoint {
            Endpoint::Dir(d) => Some(&d.path),
            _ => None,
        }
    }
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_TRANSFER_TIMEOUT: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_STABLE_FOR: Duration = Duration::from_secs(10);
pub const DEFAULT_FILE_NAME: &str = "inventory-{cart}-{timestamp}-{seq}.{ext}";

fn after_value(cx: &mut Ctx, table: &str, i: usize, key: &str, v: &str) -> Option<After> {
    match v {
        "delete" => Some(After::Delete),
        "keep" => Some(After::Keep),
        s if s.starts_with("move:") && s.len() > 5 && !s[5..].split('/').any(|p| p == "..") => {
            Some(After::Move(s[5..].to_string()))
        }
        o => {
            cx.at(
                table,
                i,
                key,
                format!("must be \"delete\", \"keep\" or \"move:<dir>\" (no \"..\"), got {o:?}"),
            );
            None
        }
    }
}

/// `p` resolved against the config's folder; a problem when no such file is there.
fn existing_file(cx: &mut Ctx, table: &str, i: usize, key: &str, p: &std::path::Path) -> PathBuf {
    let file = cx.resolve(p);
    if !file.is_file() {
        cx.at(table, i, key, format!("no such file {}", file.display()));
    }
    file
}

/// Rule 40: a secret's variable that is not set (or empty) is a warning
/// naming the key and the variable: every connection would fail without it.
fn unset_variable(cx: &mut Ctx, table: &str, i: usize, key: &str, var: &str) {
    if std::env::var_os(var).is_none_or(|v| v.is_empty()) {
        cx.warn(
            table,
            i,
            key,
            format!(
                "environment variable {} is not set (it is read at each connection)",
                crate::util::quoted(var)
            ),
        );
    }
}

/// Warns about `@cert-authority` lines of a known_hosts file: host
/// certificates are not checked (libssh2 has no support), so such a line
/// trusts nothing and the server's own key must be listed.
fn cert_authority_lines(cx: &mut Ctx, table: &str, i: usize, file: &std::path::Path) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.split_whitespace().next() == Some("@cert-authority"))
        .map(|(n, _)| (n + 1).to_string())
        .collect();
    if !lines.is_empty() {
        cx.warn(
            table,
            i,
            "known_hosts",
            format!(
                "{} line {}: @cert-authority is not supported (host certificates are not checked); list the server's own host key",
                file.display(),
                lines.join(", ")
            ),
        );
    }
}

/// Validates one transport table for its kind; every problem is reported.
pub(super) fn transport_spec(
    cx: &mut Ctx,
    table: &str,
    i: usize,
    t: &RawTransport,
    inbound: bool,
) -> TransportSpec {
    let kind = t.kind.as_str();
    if !["dir", "ftp", "ftps", "sftp"].contains(&kind) {
        cx.at(
            table,
            i,
            "type",
            format!("must be \"dir\", \"ftp\", \"ftps\" or \"sftp\", got {kind:?}"),
        );
    }
    // Keys that belong to other kinds.
    let foreign: &[(&str, bool)] = &[
        ("path", t.path.is_some()),
        ("host", t.host.is_some()),
        ("port", t.port.is_some()),
        ("user", t.user.is_some()),
        ("password", t.password.is_some()),
        ("password_env", t.password_env.is_some()),
        ("key_file", t.key_file.is_some()),
        ("key_passphrase_env", t.key_passphrase_env.is_some()),
        ("known_hosts", t.known_hosts.is_some()),
        ("host_key_sha256", t.host_key_sha256.is_some()),
        ("remote_dir", t.remote_dir.is_some()),
        ("timeout", t.timeout.is_some()),
        ("transfer_timeout", t.transfer_timeout.is_some()),
        ("tls", t.tls.is_some()),
        ("ca_file", t.ca_file.is_some()),
        ("stable_for", t.stable_for.is_some()),
    ];
    let allowed: &[&str] = match kind {
        "dir" => &["path"],
        "ftp" => &[
            "host",
            "port",
            "user",
            "password",
            "password_env",
            "remote_dir",
            "timeout",
            "transfer_timeout",
            "stable_for",
        ],
        "ftps" => &[
            "host",
            "port",
            "user",
            "password",
            "password_env",
            "remote_dir",
            "timeout",
            "transfer_timeout",
            "tls",
            "ca_file",
            "stable_for",
        ],
        "sftp" => &[
            "host",
            "port",
            "user",
            "password",
            "password_env",
            "key_file",
            "key_passphrase_env",
            "known_hosts",
            "host_key_sha256",
            "remote_dir",
            "timeout",
            "transfer_timeout",
            "stable_for",
        ],
        _ => &[],
    };
    if !allowed.is_empty() {
        for (k, present) in foreign {
            if *present && !allowed.contains(k) {
                cx.at(table, i, k, format!("does not apply to type = {kind:?}"));
            }
        }
    }
    let timeout = match t.timeout.as_deref() {
        None => DEFAULT_TIMEOUT,
        Some(s) => crate::util::parse_duration(s, false).unwrap_or_else(|| {
            cx.at(
                table,
                i,
                "timeout",
                format!("must be like \"30s\" or \"2m\", got {s:?}"),
            );
            DEFAULT_TIMEOUT
        }),
    };
    let transfer_timeout = match t.transfer_timeout.as_deref() {
        None => DEFAULT_TRANSFER_TIMEOUT,
        Some(s) => crate::util::parse_duration(s, false).unwrap_or_else(|| {
            cx.at(
                table,
                i,
                "transfer_timeout",
                format!("must be like \"30m\" or \"2h\", got {s:?}"),
            );
            DEFAULT_TRANSFER_TIMEOUT
        }),
    };
    let required = |cx: &mut Ctx, key: &str, v: &Option<String>| -> String {
        match v.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => {
                cx.at(table, i, key, format!("required for type = {kind:?}"));
                String::new()
            }
        }
    };
    let password = |cx: &mut Ctx, needed: bool| -> Option<Password> {
        match (&t.password, &t.password_env) {
            (Some(_), Some(_)) => {
                cx.at(
                    table,
                    i,
                    "password",
                    "give password_env or password, not both",
                );
                None
            }
            (Some(p), None) => {
                cx.warn(
                    table,
                    i,
                    "password",
                    "a password written in the config; prefer password_env = \"VAR\"",
                );
                Some(Password::Inline(Arc::new(SecretString::from(p.clone()))))
            }
            (None, Some(v)) => {
                unset_variable(cx, table, i, "password_env", v);
                Some(Password::Env(v.clone()))
            }
            (None, None) => {
                if needed {
                    cx.at(
                        table,
                        i,
                        "password_env",
                        format!("required for type = {kind:?} (the variable holding the password)"),
                    );
                }
                None
            }
        }
    };
    let remote_dir = t.remote_dir.clone().unwrap_or_default();
    let endpoint = match kind {
        "ftp" | "ftps" => {
            let tls = (kind == "ftps").then(|| {
                let mode = match t.tls.as_deref() {
                    None | Some("explicit") => TlsMode::Explicit,
                    Some("implicit") => TlsMode::Implicit,
                    Some(o) => {
                        cx.at(
                            table,
                            i,
                            "tls",
                            format!("must be \"explicit\" or \"implicit\", got {o:?}"),
                        );
                        TlsMode::Explicit
                    }
                };
                let ca_file = t
                    .ca_file
                    .as_deref()
                    .map(|p| existing_file(cx, table, i, "ca_file", p));
                Tls { mode, ca_file }
            });
            let port = t.port.unwrap_or(match tls.as_ref().map(|t| t.mode) {
                Some(TlsMode::Implicit) => 990,
                _ => 21,
            });
            Endpoint::Ftp(FtpEndpoint {
                host: required(cx, "host", &t.host),
                port,
                user: required(cx, "user", &t.user),
                password: password(cx, true).unwrap_or(Password::Env(String::new())),
                remote_dir,
                tls,
                timeout,
                transfer_timeout,
            })
        }
        "sftp" => {
            let auth = match (&t.key_file, password(cx, false)) {
                (Some(_), Some(_)) => {
                    cx.at(
                        table,
                        i,
                        "key_file",
                        "give key_file or a password, not both",
                    );
                    SftpAuth::Password(Password::Env(String::new()))
                }
                (Some(k), None) => {
                    let file = existing_file(cx, table, i, "key_file", k);
                    if let Some(v) = &t.key_passphrase_env {
                        unset_variable(cx, table, i, "key_passphrase_env", v);
                    }
                    SftpAuth::Key {
                        file,
                        passphrase: t.key_passphrase_env.clone().map(Password::Env),
                    }
                }
                (None, Some(p)) => SftpAuth::Password(p),
                (None, None) => {
                    cx.at(
                        table,
                        i,
                        "key_file",
                        "sftp needs key_file (a private key) or password_env",
                    );
                    SftpAuth::Password(Password::Env(String::new()))
                }
            };
            if t.key_passphrase_env.is_some() && t.key_file.is_none() {
                cx.at(table, i, "key_passphrase_env", "applies with key_file only");
            }
            let host_key = match (&t.known_hosts, &t.host_key_sha256) {
                (Some(_), Some(_)) => {
                    cx.at(
                        table,
                        i,
                        "host_key_sha256",
                        "give known_hosts or host_key_sha256, not both",
                    );
                    HostKey::Sha256(String::new())
                }
                (Some(k), None) => {
                    let file = existing_file(cx, table, i, "known_hosts", k);
                    cert_authority_lines(cx, table, i, &file);
                    HostKey::KnownHosts(file)
                }
                (None, Some(h)) => {
                    let ok = h.strip_prefix("SHA256:").is_some_and(|b| {
                        (43..=44).contains(&b.len())
                            && b.chars()
                                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
                    });
                    if !ok {
                        cx.at(
                            table,
                            i,
                            "host_key_sha256",
                            "must be an OpenSSH fingerprint like \"SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8\" (ssh-keygen -lf KEY)",
                        );
                    }
                    HostKey::Sha256(h.clone())
                }
                (None, None) => {
                    cx.at(
                        table,
                        i,
                        "known_hosts",
                        "sftp needs known_hosts or host_key_sha256: the server's host key is always checked",
                    );
                    HostKey::Sha256(String::new())
                }
            };
            Endpoint::Sftp(SftpEndpoint {
                host: required(cx, "host", &t.host),
                port: t.port.unwrap_or(22),
                user: required(cx, "user", &t.user),
                auth,
                host_key,
                remote_dir,
                timeout,
                transfer_timeout,
            })
        }
        _ => {
            if t.path.is_none() && kind == "dir" {
                cx.at(table, i, "path", "required for type = \"dir\": the folder");
            }
            Endpoint::Dir(DirEndpoint {
                path: t.path.as_deref().map(|p| cx.resolve(p)).unwrap_or_default(),
            })
        }
    };
    if !inbound {
        for (k, present) in [
            ("pattern", t.pattern.is_some()),
            ("after", t.after.is_some()),
            ("after_rejected", t.after_rejected.is_some()),
            ("done_marker", t.done_marker.is_some()),
            ("stable_for", t.stable_for.is_some()),
        ] {
            if present {
                cx.at(
                    table,
                    i,
                    k,
                    "applies to inbound sources, not to where files are sent",
                );
            }
        }
    }
    let file_name = t
        .file_name
        .clone()
        .unwrap_or_else(|| DEFAULT_FILE_NAME.into());
    if !inbound {
        super::check_template(cx, table, i, &file_name);
    } else if t.file_name.is_some() {
        cx.at(
            table,
            i,
            "file_name",
            "applies to carts (outbound), not inbound sources",
        );
    }
    let after = match t.after.as_deref() {
        None => After::Delete,
        Some(s) => after_value(cx, table, i, "after", s).unwrap_or(After::Delete),
    };
    let after_rejected = match t.after_rejected.as_deref() {
        None if endpoint.is_remote() => Some(After::Keep),
        None => None,
        Some(s) => after_value(cx, table, i, "after_rejected", s),
    };
    let stable_for = match t.stable_for.as_deref() {
        None => DEFAULT_STABLE_FOR,
        Some(s) => crate::util::parse_duration(s, true).unwrap_or_else(|| {
            cx.at(
                table,
                i,
                "stable_for",
                format!("must be like \"10s\", \"1m\" or \"0s\", got {s:?}"),
            );
            DEFAULT_STABLE_FOR
        }),
    };
    let any = || crate::util::Glob::new("*").expect("* is a glob");
    let pattern = match t.pattern.as_deref() {
        None => any(),
        Some(p) => crate::util::Glob::new(p).unwrap_or_else(|e| {
            cx.at(
                table,
                i,
                "pattern",
                format!("is not a file-name pattern ({})", e.kind()),
            );
            any()
        }),
    };
    TransportSpec {
        endpoint,
        pattern,
        file_name,
        pickup: PickupRules {
            after,
            after_rejected,
            stable_for,
            done_marker: t.done_marker.unwrap_or(false),
        },
    }
}
