//! A real OpenSSH server for SFTP tests: `sshd -D -e -f CONFIG` on a free
//! 127.0.0.1 port, with a throwaway host key, throwaway client keys and its
//! own config, all in a temporary folder; killed on drop. Loopback only.
//!
//! Needs root (sshd, `useradd`, `chown`) and `/usr/sbin/sshd` + `ssh-keygen`
//! (Debian: `openssh-server openssh-client`). [`Sshd::start`] returns `None`
//! when either is missing, so tests skip; with `STOCKGATE_REQUIRE_SSHD=1` it
//! panics instead (set it in CI).
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";
/// The dedicated login user (not root: root bypasses file permissions).
pub const USER: &str = "stockgate-sftp";
/// Its password (set with chpasswd); throwaway, loopback only.
pub const PASSWORD: &str = "sg-test-Pw-4711";
/// The passphrase of [`Sshd::key_pass`].
pub const KEY_PASSPHRASE: &str = "sg-test-passphrase-93";

pub struct Sshd {
    pub tmp: tempfile::TempDir,
    pub host: String,
    pub port: u16,
    /// The login user ([`USER`]); owns [`Sshd::data`].
    pub user: String,
    /// The user's password; `None` when it could not be set.
    pub password: Option<String>,
    /// An authorized ed25519 key without passphrase.
    pub key: PathBuf,
    /// An authorized ed25519 key protected by [`KEY_PASSPHRASE`].
    pub key_pass: PathBuf,
    /// A valid key the server does not know.
    pub wrong_key: PathBuf,
    /// The host key's `SHA256:...` (from `ssh-keygen -lf`).
    pub fingerprint: String,
    /// The host key's public line, `ssh-ed25519 AAAA...` (no comment).
    pub host_pub: String,
    /// A known_hosts file holding `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    pub known_hosts: PathBuf,
    /// The folder on disk the SFTP user starts in (its login folder), owned
    /// by the user.
    pub data: PathBuf,
    /// sshd's own log (stderr, LogLevel DEBUG1).
    pub log: PathBuf,
    child: Child,
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let o = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{cmd:?} exited {:?}: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn keygen(path: &Path, passphrase: &str) -> Result<(), String> {
    run(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-C",
            "stockgate-test",
            "-N",
            passphrase,
            "-f",
        ])
        .arg(path))
    .map(|_| ())
}

/// (uid, gid, whether the password is set) of [`USER`], made once per process.
fn test_user() -> Result<(u32, u32, bool), String> {
    static USER_INFO: OnceLock<Result<(u32, u32, bool), String>> = OnceLock::new();
    USER_INFO
        .get_or_init(|| {
            if run(Command::new("id").args(["-u", USER])).is_err() {
                run(Command::new("useradd").args([
                    "--system",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    USER,
                ]))?;
            }
            let uid = run(Command::new("id").args(["-u", USER]))?;
            let gid = run(Command::new("id").args(["-g", USER]))?;
            // A locked account ("!" in shadow) may not log in at all, even
            // with a key: give it a password.
            let mut c = Command::new("chpasswd")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("chpasswd: {e}"))?;
            use std::io::Write;
            let _ = writeln!(c.stdin.take().unwrap(), "{USER}:{PASSWORD}");
            let pw = c.wait().map(|s| s.success()).unwrap_or(false);
            Ok((
                uid.trim().parse().map_err(|e| format!("uid: {e}"))?,
                gid.trim().parse().map_err(|e| format!("gid: {e}"))?,
                pw,
            ))
        })
        .clone()
}

/// Whether this sshd knows `PerSourcePenalties` (OpenSSH 9.8+), which would
/// otherwise slow down a test that fails a login on purpose.
fn has_penalties(cfg: &Path) -> bool {
    static P: OnceLock<bool> = OnceLock::new();
    *P.get_or_init(|| {
        Command::new(SSHD)
            .arg("-t")
            .arg("-f")
            .arg(cfg)
            .args(["-o", "PerSourcePenalties=no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Sshd {
    /// Starts a server, or `None` (test skipped) when sshd cannot run here.
    pub fn start() -> Option<Sshd> {
        match Sshd::try_start() {
            Ok(s) => Some(s),
            Err(e) if std::env::var("STOCKGATE_REQUIRE_SSHD").is_ok_and(|v| v == "1") => {
                panic!("sshd test server: {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED: no sshd test server: {e}");
                None
            }
        }
    }

    fn try_start() -> Result<Sshd, String> {
        use std::os::unix::fs::PermissionsExt;
        if !Path::new(SSHD).is_file() {
            return Err(format!(
                "{SSHD} not installed (apt-get install openssh-server)"
            ));
        }
        let (uid, gid, pw) = test_user()?;
        // Privilege separation folder.
        std::fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let dir = tmp.path().to_path_buf();
        // The user reads authorized_keys and walks into data.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        let host_key = dir.join("host_ed25519");
        let key = dir.join("client_ed25519");
        let key_pass = dir.join("client_pass_ed25519");
        let wrong_key = dir.join("wrong_ed25519");
        keygen(&host_key, "")?;
        keygen(&key, "")?;
        keygen(&key_pass, KEY_PASSPHRASE)?;
        keygen(&wrong_key, "")?;
        let pub_of = |p: &Path| -> Result<String, String> {
            let s = std::fs::read_to_string(p.with_extension("pub"))
                .or_else(|_| std::fs::read_to_string(format!("{}.pub", p.display())))
                .map_err(|e| format!("{}.pub: {e}", p.display()))?;
            Ok(s.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        };
        let authorized = dir.join("authorized_keys");
        std::fs::write(
            &authorized,
            format!("{}\n{}\n", pub_of(&key)?, pub_of(&key_pass)?),
        )
        .map_err(|e| e.to_string())?;
        std::fs::set_permissions(&authorized, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| e.to_string())?;
        let host_pub = pub_of(&host_key)?;
        let fingerprint = run(Command::new("ssh-keygen")
            .arg("-lf")
            .arg(format!("{}.pub", host_key.display())))?
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
        let data = dir.join("data");
        std::fs::create_dir(&data).map_err(|e| e.to_string())?;
        std::os::unix::fs::chown(&data, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        let log = dir.join("sshd.log");
        let cfg = dir.join("sshd_config");

        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut conf = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile none\nUsePAM no\n\
                 StrictModes no\nAuthorizedKeysFile {ak}\nPubkeyAuthentication yes\n\
                 PasswordAuthentication yes\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin no\nAllowUsers {USER}\nMaxStartups 100\nMaxAuthTries 6\n\
                 LoginGraceTime 30\nLogLevel DEBUG1\nSubsystem sftp internal-sftp -d {data}\n",
                hk = host_key.display(),
                ak = authorized.display(),
                data = data.display(),
            );
            std::fs::write(&cfg, &conf).map_err(|e| e.to_string())?;
            if has_penalties(&cfg) {
                conf.push_str("PerSourcePenalties no\n");
                std::fs::write(&cfg, &conf).map_err(|e| e.to_string())?;
            }
            let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .map_err(|e| format!("{SSHD}: {e}"))?;
            let started = Instant::now();
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("Server listening on") {
                    let known_hosts = dir.join("known_hosts");
                    std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_pub}\n"))
                        .map_err(|e| e.to_string())?;
                    return Ok(Sshd {
                        host: "127.0.0.1".into(),
                        port,
                        user: USER.into(),
                        password: pw.then(|| PASSWORD.to_string()),
                        key,
                        key_pass,
                        wrong_key,
                        fingerprint,
                        host_pub,
                        known_hosts,
                        data,
                        log,
                        child,
                        tmp,
                    });
                }
                if let Ok(Some(_)) = child.try_wait() {
                    last = format!("sshd exited:\n{text}");
                    break; // port taken meanwhile: try another
                }
                if started.elapsed() > Duration::from_secs(10) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("sshd did not start in 10 s:\n{text}"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Err(last)
    }

    /// Stops the server (as if it went down), keeping its files.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What sshd logged so far.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Gives `path` to the login user (files the test made as root).
    pub fn own(&self, path: &Path) {
        let (uid, gid, _) = test_user().expect("test user");
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
