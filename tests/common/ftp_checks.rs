//! The checks of the FTP transport that hold on any real server: pure-ftpd
//! (plain and explicit TLS, `tests/ftp_transport.rs`) and vsftpd (implicit
//! TLS, `tests/ftps_implicit.rs`) run the same ones.

use super::ftpd::{Ftpd, make_ca};
use super::vsftpd::Vsftpd;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};
use stockgate::config::{Endpoint, FtpEndpoint};
use stockgate::transport::{self, EntryKind, Folder, TransportError};

/// What the checks need of a running server; its files on disk (the
/// user's folder, owned by the server's user) come with it.
pub trait FtpServer {
    /// The endpoint for folder `dir` of the user's folder ("" for itself).
    fn endpoint(&self, dir: &str) -> FtpEndpoint;
    /// The user's folder on disk, and the owner of what is written there.
    fn root(&self) -> &Path;
    fn owner(&self) -> (u32, u32);
    /// The folder of the server's own files, and its log's name there.
    fn scratch(&self) -> &Path;
    fn log_name(&self) -> &'static str;
    /// How the transport names folder `rel` of the user's folder:
    /// `ftp://bob@127.0.0.1:2121/in`.
    fn url(&self, rel: &str) -> String;
    /// The server's absolute path of folder `rel` of the user's folder.
    fn server_path(&self, rel: &str) -> String;
    /// Whether listings carry modification times to the second (MLSD);
    /// a `LIST`-only server gives minutes or days.
    fn exact_mtime(&self) -> bool;

    /// A path inside the user's folder on disk.
    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }
    /// Writes a file into the user's folder (owned by the server's user).
    fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        super::write_owned(self.root(), rel, bytes, Some(self.owner()))
    }
    /// Makes a folder (and parents) in the user's folder, owned by the server's user.
    fn mkdir(&self, rel: &str) -> PathBuf {
        super::mkdir_owned(self.root(), rel, Some(self.owner()))
    }
    /// A second throwaway CA that did not sign this server's certificate.
    fn other_ca(&self) -> PathBuf {
        make_ca(self.scratch(), "other", false)
    }
    /// The server's own log, for failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(self.scratch().join(self.log_name())).unwrap_or_default()
    }
}

impl FtpServer for Ftpd {
    fn endpoint(&self, dir: &str) -> FtpEndpoint {
        Ftpd::endpoint(self, dir)
    }
    fn root(&self) -> &Path {
        &self.root
    }
    fn owner(&self) -> (u32, u32) {
        (self.uid, self.gid)
    }
    fn scratch(&self) -> &Path {
        Ftpd::scratch(self)
    }
    fn log_name(&self) -> &'static str {
        "pure-ftpd.log"
    }
    fn url(&self, rel: &str) -> String {
        let scheme = if self.ca_file.is_some() {
            "ftps"
        } else {
            "ftp"
        };
        format!("{scheme}://{}@127.0.0.1:{}/{rel}", self.user, self.port)
    }
    fn server_path(&self, rel: &str) -> String {
        format!("/{rel}")
    }
    fn exact_mtime(&self) -> bool {
        true
    }
}

impl FtpServer for Vsftpd {
    fn endpoint(&self, dir: &str) -> FtpEndpoint {
        Vsftpd::endpoint(self, dir)
    }
    fn root(&self) -> &Path {
        &self.root
    }
    fn owner(&self) -> (u32, u32) {
        (self.uid, self.gid)
    }
    fn scratch(&self) -> &Path {
        Vsftpd::scratch(self)
    }
    fn log_name(&self) -> &'static str {
        "vsftpd.log"
    }
    fn url(&self, rel: &str) -> String {
        format!(
            "ftps://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            self.server_path(rel)
        )
    }
    fn server_path(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.remote_root.clone()
        } else {
            format!("{}/{rel}", self.remote_root)
        }
    }
    fn exact_mtime(&self) -> bool {
        false
    }
}

pub fn open(d: &impl FtpServer, ep: &FtpEndpoint) -> Box<dyn Folder> {
    transport::open(&Endpoint::Ftp(ep.clone())).unwrap_or_else(|e| {
        panic!(
            "cannot open {}: {e}\nserver log:\n{}",
            Endpoint::Ftp(ep.clone()).describe(),
            d.log()
        )
    })
}

pub fn open_err(ep: &FtpEndpoint) -> TransportError {
    match transport::open(&Endpoint::Ftp(ep.clone())) {
        Ok(_) => panic!("{} opened", Endpoint::Ftp(ep.clone()).describe()),
        Err(e) => e,
    }
}

/// Bytes that are not text, so that any ASCII-mode conversion shows.
pub fn bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).max(1);
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if i % 97 == 0 { b'\n' } else { (x >> 24) as u8 }
        })
        .collect()
}

pub fn set_mtime(p: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

/// Temporary delivery files left in a folder.
pub fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".stockgate-") && n.ends_with(".tmp"))
        .collect()
}

/// list, get, size: exact sizes, kinds, times and bytes (CRLF untouched).
pub fn check_list_get_size(d: &impl FtpServer) {
    d.mkdir("in/sub");
    let a = bytes(1234, 1);
    d.write("in/a.csv", &a);
    d.write("in/empty.csv", b"");
    d.write("in/crlf.txt", b"one\r\ntwo\nthree\r\n");
    set_mtime(&d.path("in/a.csv"), 1_700_000_123);
    set_mtime(&d.path("in/empty.csv"), 1_600_000_000);

    let mut f = open(d, &d.endpoint("in"));
    assert_eq!(f.describe(), d.url("in"));
    let mut list = f.list().unwrap();
    list.sort_by(|x, y| x.name.cmp(&y.name));
    let got: Vec<(&str, u64, EntryKind)> = list
        .iter()
        .map(|e| (e.name.as_str(), e.size, e.kind))
        .collect();
    assert_eq!(
        got[..3],
        [
            ("a.csv", 1234, EntryKind::File),
            ("crlf.txt", 16, EntryKind::File),
            ("empty.csv", 0, EntryKind::File),
        ]
    );
    assert_eq!((got[3].0, got[3].2), ("sub", EntryKind::Dir));
    assert_eq!(list.len(), 4, "{list:?}");
    if d.exact_mtime() {
        assert_eq!(list[0].mtime, Some(1_700_000_123_000));
        assert_eq!(list[2].mtime, Some(1_600_000_000_000));
    } else {
        assert!(list.iter().all(|e| e.mtime.is_some()), "{list:?}");
    }

    let mut out = Vec::new();
    assert_eq!(f.get("a.csv", &mut out).unwrap(), 1234);
    assert!(out == a);
    let mut out = Vec::new();
    assert_eq!(f.get("crlf.txt", &mut out).unwrap(), 16);
    assert_eq!(out, b"one\r\ntwo\nthree\r\n");
    let mut out = Vec::new();
    assert_eq!(f.get("empty.csv", &mut out).unwrap(), 0);
    assert!(out.is_empty());

    assert_eq!(f.size("a.csv").unwrap(), 1234);
    let e = f.size("nope.csv").unwrap_err();
    assert!(e.not_found, "{e}");
    assert!(e.message.contains("nope.csv"), "{e}");

    let e = f.get("nope.csv", &mut Vec::new()).unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(
        e.message
            .starts_with(&format!("{}: cannot get nope.csv: 550", d.url("in"))),
        "{e}"
    );
    // The session goes on after a refused command.
    assert_eq!(f.size("empty.csv").unwrap(), 0);
    f.close();
}

/// put of 5 MB (byte-exact, replaced by a second STOR), deliver (temp name,
/// size check, rename), refusal to replace a feed, a fixed name replaced.
pub fn check_put_deliver(d: &impl FtpServer) {
    d.mkdir("out");
    let big = bytes(5 * 1024 * 1024 + 7, 2);
    let mut f = open(d, &d.endpoint("out"));
    assert_eq!(f.put("big.bin", &mut &big[..]).unwrap(), big.len() as u64);
    assert!(std::fs::read(d.path("out/big.bin")).unwrap() == big);
    assert_eq!(f.size("big.bin").unwrap(), big.len() as u64);
    let mut back = vec![];
    assert_eq!(f.get("big.bin", &mut back).unwrap(), big.len() as u64);
    assert!(back == big);
    // Replacing: STOR overwrites.
    assert_eq!(f.put("big.bin", &mut &b"small"[..]).unwrap(), 5);
    assert_eq!(std::fs::read(d.path("out/big.bin")).unwrap(), b"small");

    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("feed.csv");
    let feed = bytes(300_000, 3);
    std::fs::write(&local, &feed).unwrap();
    let at = transport::deliver(f.as_mut(), &local, "feed-1.csv", "cart1", false).unwrap();
    assert_eq!(at, format!("{}/feed-1.csv", d.url("out")));
    assert!(std::fs::read(d.path("out/feed-1.csv")).unwrap() == feed);
    assert_eq!(leftovers(&d.path("out")), Vec::<String>::new());

    // A feed never replaces another...
    let e = transport::deliver(f.as_mut(), &local, "feed-1.csv", "cart1", false).unwrap_err();
    assert!(e.message.contains("already there"), "{e}");
    assert!(!e.is_retryable());
    assert_eq!(leftovers(&d.path("out")), Vec::<String>::new());
    // ...but a fixed name is replaced.
    std::fs::write(&local, b"v2\n").unwrap();
    transport::deliver(f.as_mut(), &local, "feed-1.csv", "cart1", true).unwrap();
    assert_eq!(std::fs::read(d.path("out/feed-1.csv")).unwrap(), b"v2\n");
    assert_eq!(leftovers(&d.path("out")), Vec::<String>::new());
    f.close();
}

/// mkdir (nested, again, absolute), rename and remove, with `not_found` on a
/// second try; a missing remote folder is permanent.
pub fn check_mkdir_rename_remove(d: &impl FtpServer) {
    d.mkdir("in");
    d.write("in/a.csv", b"a,b\n1,2\n");
    d.write("in/b.csv", b"b\n");
    let mut f = open(d, &d.endpoint("in"));
    f.mkdir("done/2024").unwrap();
    assert!(d.path("in/done/2024").is_dir());
    f.mkdir("done/2024").unwrap(); // already there: fine
    f.mkdir("done").unwrap();
    f.mkdir(&d.server_path("in/done/abs")).unwrap(); // absolute on the server
    assert!(d.path("in/done/abs").is_dir());

    f.rename("a.csv", "done/2024/a.csv").unwrap();
    assert!(!d.path("in/a.csv").exists());
    assert_eq!(
        std::fs::read(d.path("in/done/2024/a.csv")).unwrap(),
        b"a,b\n1,2\n"
    );
    let e = f.rename("a.csv", "done/a.csv").unwrap_err();
    assert!(e.not_found, "{e}");
    assert!(
        e.message.starts_with(&format!(
            "{}: cannot rename a.csv to done/a.csv",
            d.url("in")
        )),
        "{e}"
    );

    f.remove("b.csv").unwrap();
    assert!(!d.path("in/b.csv").exists());
    let e = f.remove("b.csv").unwrap_err();
    assert!(e.not_found, "{e}");
    assert!(e.message.contains("b.csv"), "{e}");
    f.remove("done/2024/a.csv").unwrap();
    assert!(!d.path("in/done/2024/a.csv").exists());
    f.close();

    // A missing remote folder needs an operator.
    let e = open_err(&d.endpoint("nowhere"));
    assert!(!e.is_retryable(), "{e}");
    assert!(e.message.contains("nowhere"), "{e}");
}

/// A server certificate signed by a CA other than `ca_file` is refused,
/// permanently, within the timeout, naming the failed step (`refusal`) and
/// the certificate; the system's trust store does not know the test CA
/// either.
pub fn check_wrong_ca_is_refused(d: &impl FtpServer, refusal: &str) {
    let mut ep = d.endpoint("");
    ep.tls.as_mut().unwrap().ca_file = Some(d.other_ca());
    let start = std::time::Instant::now();
    let e = open_err(&ep);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(!e.is_retryable(), "{e}");
    assert!(
        e.message.starts_with(&format!("{}: {refusal}", d.url(""))),
        "{e}"
    );
    assert!(e.message.contains("certificate"), "{e}");

    ep.tls.as_mut().unwrap().ca_file = None;
    let e = open_err(&ep);
    assert!(!e.is_retryable(), "{e}");
}
