//! A real pure-ftpd on 127.0.0.1 for transport tests: its own temporary
//! root folder, one virtual user (its own passwd file and PureDB), passive
//! ports on loopback, optionally explicit TLS with a throwaway CA.
//!
//! Needs `pure-ftpd` (with `pure-pw`) and `openssl` on PATH; run as root the
//! virtual user is mapped to nobody (65534:65534), so the server really
//! enforces folder permissions; otherwise to the current user.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stockgate::config::{FtpEndpoint, Password, Tls, TlsMode};

pub struct Ftpd {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// The user's folder on disk: the server's `/` (chrooted).
    pub root: PathBuf,
    /// PEM of the CA that signed the server's certificate (TLS servers only).
    pub ca_file: Option<PathBuf>,
    /// The uid/gid files of the virtual user belong to.
    pub uid: u32,
    pub gid: u32,
    tmp: tempfile::TempDir,
    child: Child,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?} ({e}); CI needs: apt-get install -y pure-ftpd openssl")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A program by name: on PATH, else in /usr/sbin (pure-ftpd is there, and
/// /usr/sbin is not on every PATH).
fn program(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    let sbin = Path::new("/usr/sbin").join(name);
    if !on_path && sbin.is_file() {
        sbin
    } else {
        PathBuf::from(name)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// A throwaway CA (`ca.pem`) in `dir` and, when `server` is set, a server
/// certificate for 127.0.0.1/localhost signed by it, with its key, in
/// `server.pem` (the one file pure-ftpd reads). Returns the CA's path.
pub fn make_ca(dir: &Path, name: &str, server: bool) -> PathBuf {
    let ca_key = dir.join(format!("{name}-ca.key"));
    let ca = dir.join(format!("{name}-ca.pem"));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .args(["req", "-x509"])
        .args(ec)
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca)
        .args([
            "-days",
            "2",
            "-subj",
            &format!("/CN=stockgate test CA {name}"),
        ]));
    if server {
        let key = dir.join(format!("{name}-server.key"));
        let csr = dir.join(format!("{name}-server.csr"));
        let crt = dir.join(format!("{name}-server.crt"));
        let ext = dir.join(format!("{name}-server.ext"));
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(Command::new("openssl")
            .arg("req")
            .args(ec)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .args(["-subj", "/CN=127.0.0.1"]));
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-set_serial", "2"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&crt));
        let mut pem = std::fs::read(&crt).unwrap();
        pem.extend(std::fs::read(&key).unwrap());
        std::fs::write(dir.join(format!("{name}-server.pem")), pem).unwrap();
    }
    ca
}

impl Ftpd {
    /// Plain FTP.
    pub fn start() -> Ftpd {
        Ftpd::launch(false)
    }

    /// FTP with explicit TLS (AUTH TLS) offered; `ca_file` is the CA to trust.
    pub fn start_tls() -> Ftpd {
        Ftpd::launch(true)
    }

    fn launch(tls: bool) -> Ftpd {
        let tmp = tempfile::tempdir().unwrap();
        // The server drops to the virtual user's uid, which must reach root/.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let me: u32 = run(Command::new("id").arg("-u")).parse().unwrap();
        let (uid, gid) = if me == 0 {
            (65534, 65534)
        } else {
            (me, run(Command::new("id").arg("-g")).parse().unwrap())
        };
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::chown(&root, Some(uid), Some(gid)).unwrap();

        let user = "bob".to_string();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let password = format!("Pw-{}-{nanos}-sEcReT", std::process::id());
        // pure-pw useradd hashes with argon2id at a cost that makes every
        // login take seconds; a SHA-512 crypt hash in the same passwd format
        // logs in at once. `pure-pw mkdb` then builds the PureDB.
        let hash = run(Command::new("openssl").args(["passwd", "-6", &password]));
        let passwd = tmp.path().join("pureftpd.passwd");
        let pdb = tmp.path().join("pureftpd.pdb");
        std::fs::write(
            &passwd,
            format!(
                "{user}:{hash}:{uid}:{gid}::{}/./::::::::::::\n",
                root.display()
            ),
        )
        .unwrap();
        run(Command::new(program("pure-pw"))
            .arg("mkdb")
            .arg(&pdb)
            .arg("-f")
            .arg(&passwd));

        let ca_file = tls.then(|| make_ca(tmp.path(), "ftpd", true));

        let mut last_err = String::new();
        for _ in 0..10 {
            let port = free_port();
            let log = std::fs::File::create(tmp.path().join("pure-ftpd.log")).unwrap();
            let mut cmd = Command::new(program("pure-ftpd"));
            cmd.arg("-S")
                .arg(format!("127.0.0.1,{port}"))
                .arg("-l")
                .arg(format!("puredb:{}", pdb.display()))
                .args(["-E", "-A", "-H", "-4", "-f", "none", "-u", "1"])
                .args(["-p", "30000:39999"])
                .arg("-g")
                .arg(tmp.path().join("pure-ftpd.pid"));
            if tls {
                cmd.args(["-Y", "1", "-2"])
                    .arg(tmp.path().join("ftpd-server.pem"));
            }
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("cannot run pure-ftpd; CI needs: apt-get install -y pure-ftpd openssl");
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                    // Wait for the greeting: the server is serving.
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut b = [0u8; 3];
                    if s.read_exact(&mut b).is_ok() && &b == b"220" {
                        return Ftpd {
                            host: "127.0.0.1".into(),
                            port,
                            user,
                            password,
                            root,
                            ca_file,
                            uid,
                            gid,
                            tmp,
                            child,
                        };
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            last_err =
                std::fs::read_to_string(tmp.path().join("pure-ftpd.log")).unwrap_or_default();
        }
        panic!("pure-ftpd did not start: {last_err}");
    }

    /// The endpoint of this server: `ftps` with explicit TLS trusting
    /// `ca_file` when the server has TLS, else plain `ftp`. Timeout 10 s.
    pub fn endpoint(&self, remote_dir: &str) -> FtpEndpoint {
        FtpEndpoint {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password: Password::Inline(Arc::new(secrecy::SecretString::from(
                self.password.clone(),
            ))),
            remote_dir: remote_dir.into(),
            tls: self.ca_file.as_ref().map(|ca| Tls {
                mode: TlsMode::Explicit,
                ca_file: Some(ca.clone()),
            }),
            timeout: Duration::from_secs(10),
            transfer_timeout: stockgate::config::DEFAULT_TRANSFER_TIMEOUT,
        }
    }
}

impl Ftpd {
    /// The folder of the server's own files (config, CA, log).
    pub fn scratch(&self) -> &Path {
        self.tmp.path()
    }
}

impl Drop for Ftpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
