//! A real vsftpd on 127.0.0.1 serving implicit FTPS (TLS from the first
//! byte, `implicit_ssl=YES`): its own config file, CA and server certificate
//! in a temporary folder, passive ports on loopback, run in the foreground
//! and killed on drop.
//!
//! The login is vsftpd's anonymous one (user `anonymous`, any password),
//! run as the system user `daemon`: it needs no user of its own, no PAM
//! service and no /etc/shells entry, so the test leaves the machine as it
//! found it. (vsftpd 3.0.3 changes into that user's home folder even with
//! `anon_root` set, and answers the login with a clear-text `500 OOPS` on
//! the TLS connection when it cannot: `nobody`'s /nonexistent will not do,
//! and `ftp` exists only where the vsftpd package made it.) TLS is forced on
//! the login and on every data connection, so nothing passes in the clear,
//! and every data connection must resume the control connection's TLS
//! session (vsftpd's default). vsftpd refuses a chroot (the anonymous root)
//! its user can write to, so the root is root's and the user's folder is
//! its subfolder `data`.
//!
//! Needs root (vsftpd chroots and drops to `daemon`), `openssl`, and the
//! vsftpd program: `$STOCKGATE_VSFTPD`, else /usr/sbin/vsftpd, else
//! /opt/vsftpd/usr/sbin/vsftpd. Debian's vsftpd and pure-ftpd packages
//! conflict (both are an `ftp-server`), so next to pure-ftpd the program is
//! unpacked from the package rather than installed:
//! `apt-get download vsftpd && dpkg-deb -x vsftpd_*.deb /opt/vsftpd`
//! (its libraries: libwrap0 libcap2 libpam0g libssl3). When it cannot start,
//! the tests print SKIPPED, or fail with `STOCKGATE_REQUIRE_SERVERS=1`.

use super::ftpd::make_ca;
use super::remote::Remote;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stockgate::config::{FtpEndpoint, Password, Tls, TlsMode};

/// Where the program is looked for after `$STOCKGATE_VSFTPD`.
const VSFTPD: [&str; 2] = ["/usr/sbin/vsftpd", "/opt/vsftpd/usr/sbin/vsftpd"];
/// The user anonymous sessions run as: on every Debian, with a home folder
/// that exists (/usr/sbin).
const FTP_USER: &str = "daemon";

fn program() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("STOCKGATE_VSFTPD") {
        return Ok(PathBuf::from(p));
    }
    VSFTPD
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "no vsftpd at {} (apt-get download vsftpd && dpkg-deb -x vsftpd_*.deb /opt/vsftpd)",
                VSFTPD.join(" or ")
            )
        })
}

pub struct Vsftpd {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// The user's folder on disk (`/data` on the server).
    pub root: PathBuf,
    /// How the server names `root`.
    pub remote_root: String,
    /// PEM of the CA that signed the server's certificate.
    pub ca_file: PathBuf,
    pub uid: u32,
    pub gid: u32,
    tmp: tempfile::TempDir,
    child: Child,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn config(dir: &Path, port: u16, pasv: u16) -> String {
    let d = dir.display();
    format!(
        "# stockgate test server: implicit FTPS on loopback
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port={port}
background=NO
# the container's seccomp filter and namespaces are not vsftpd's to set
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
secure_chroot_dir={d}/empty
# no local users: anonymous only, as {FTP_USER}, in {d}/anon/data
local_enable=NO
anonymous_enable=YES
ftp_username={FTP_USER}
no_anon_password=NO
anon_root={d}/anon
write_enable=YES
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_other_write_enable=YES
anon_world_readable_only=NO
anon_umask=022
# TLS from the first byte, on the login and every data connection
ssl_enable=YES
implicit_ssl=YES
allow_anon_ssl=YES
force_anon_logins_ssl=YES
force_anon_data_ssl=YES
# (vsftpd 3.0.3 knows no ssl_tlsv1_1/_2 switches; its default cipher list,
# DES-CBC3-SHA, is one rustls does not speak: TLS 1.2 needs this)
ssl_ciphers=HIGH
rsa_cert_file={d}/vsftpd-server.crt
rsa_private_key_file={d}/vsftpd-server.key
# vsftpd's default, spelled out: a data connection must resume the control
# connection's TLS session (stockgate keeps a TLS 1.3 ticket for it)
require_ssl_reuse=YES
# passive data connections on loopback
pasv_enable=YES
port_enable=NO
pasv_address=127.0.0.1
pasv_min_port={pasv}
pasv_max_port={}
# the server's own log, for failure messages
vsftpd_log_file={d}/vsftpd.log
xferlog_enable=YES
log_ftp_protocol=YES
dual_log_enable=YES
syslog_enable=NO
use_localtime=NO
hide_ids=NO
",
        pasv + 99
    )
}

impl Vsftpd {
    /// Starts a server, or `None` (test skipped) when vsftpd cannot run here;
    /// with `STOCKGATE_REQUIRE_SERVERS=1` that is a failure instead.
    pub fn start() -> Option<Vsftpd> {
        match Vsftpd::try_start() {
            Ok(s) => Some(s),
            Err(e) if std::env::var("STOCKGATE_REQUIRE_SERVERS").is_ok_and(|v| v == "1") => {
                panic!("vsftpd test server: {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED: no vsftpd test server: {e}");
                None
            }
        }
    }

    fn try_start() -> Result<Vsftpd, String> {
        let vsftpd = program()?;
        let me = euid();
        if me != 0 {
            return Err(format!("vsftpd needs root (running as uid {me})"));
        }
        let (uid, gid) = passwd_ids(FTP_USER)?;
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let dir = tmp.path().to_path_buf();
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m))
                .map_err(|e| format!("chmod {}: {e}", p.display()))
        };
        // The anonymous user walks through the temporary folder into the anonymous root.
        mode(&dir, 0o755)?;
        for d in ["empty", "anon", "anon/data"] {
            std::fs::create_dir(dir.join(d)).map_err(|e| format!("mkdir {d}: {e}"))?;
            mode(&dir.join(d), 0o755)?;
        }
        let root = dir.join("anon/data");
        std::os::unix::fs::chown(&root, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", root.display()))?;
        let ca_file = make_ca(&dir, "vsftpd", true);

        let mut last_err = String::new();
        for _ in 0..10 {
            let port = free_port();
            // A passive range of its own per attempt (tests run in parallel).
            let pasv = 40000 + (port % 200) * 100;
            let conf = dir.join("vsftpd.conf");
            std::fs::write(&conf, config(&dir, port, pasv)).map_err(|e| e.to_string())?;
            let out = std::fs::File::create(dir.join("vsftpd.out")).map_err(|e| e.to_string())?;
            // vsftpd writes its start-up errors ("500 OOPS: ...") to fd 0.
            let mut child = Command::new(&vsftpd)
                .arg(&conf)
                .stdin(out.try_clone().map_err(|e| e.to_string())?)
                .stdout(out.try_clone().map_err(|e| e.to_string())?)
                .stderr(out)
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", vsftpd.display()))?;
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                // Listening is serving: the greeting itself is behind TLS.
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(Vsftpd {
                        host: "127.0.0.1".into(),
                        port,
                        user: "anonymous".into(),
                        password: "stockgate@example.invalid".into(),
                        root,
                        remote_root: "/data".into(),
                        ca_file,
                        uid,
                        gid,
                        tmp,
                        child,
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            last_err = format!(
                "{}{}",
                std::fs::read_to_string(dir.join("vsftpd.out")).unwrap_or_default(),
                std::fs::read_to_string(dir.join("vsftpd.log")).unwrap_or_default()
            );
        }
        Err(format!("vsftpd did not start: {last_err}"))
    }

    /// Implicit FTPS to folder `sub` of the user's folder ("" for the folder
    /// itself), trusting the test CA. Timeout 10 s.
    pub fn endpoint(&self, sub: &str) -> FtpEndpoint {
        FtpEndpoint {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password: Password::Inline(Arc::new(secrecy::SecretString::from(
                self.password.clone(),
            ))),
            remote_dir: if sub.is_empty() {
                self.remote_root.clone()
            } else {
                format!("{}/{sub}", self.remote_root)
            },
            tls: Some(Tls {
                mode: TlsMode::Implicit,
                ca_file: Some(self.ca_file.clone()),
            }),
            timeout: Duration::from_secs(10),
            transfer_timeout: stockgate::config::DEFAULT_TRANSFER_TIMEOUT,
        }
    }

    /// The same server as a [`Remote`] for the end-to-end scenarios.
    pub fn remote(&self) -> Remote {
        Remote {
            kind: "ftps",
            keys: format!(
                "host = \"{}\"\nport = {}\nuser = \"{}\"\npassword_env = \"SG_FTP_PASSWORD\"\ntls = \"implicit\"\nca_file = \"{}\"\n",
                self.host,
                self.port,
                self.user,
                self.ca_file.display()
            ),
            root: self.root.clone(),
            dir_prefix: format!("{}/", self.remote_root),
            owner: Some((self.uid, self.gid)),
            env: vec![("SG_FTP_PASSWORD".into(), self.password.clone())],
        }
    }
}

/// A system user's uid and gid, from /etc/passwd.
fn passwd_ids(user: &str) -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == user)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| format!("no user {user} in /etc/passwd"))
}

/// The effective uid, from /proc (no libc call).
fn euid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

impl Vsftpd {
    /// The folder of the server's own files (config, CA, log).
    pub fn scratch(&self) -> &Path {
        self.tmp.path()
    }
}

impl Drop for Vsftpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
