//! Implicit FTPS (TLS from the first byte, usually port 990) against a real
//! vsftpd on loopback (see `common/vsftpd.rs`): TLS on the login and every
//! data connection, exact bytes on the server's disk, delivery, folder
//! operations, a wrong CA, and one end-to-end run of the binary.

mod common;
use common::vsftpd::Vsftpd;
use std::time::{Duration, Instant};
use stockgate::config::{Endpoint, FtpEndpoint};
use stockgate::transport::{self, EntryKind, Folder, TransportError};

fn open(d: &Vsftpd, ep: &FtpEndpoint) -> Box<dyn Folder> {
    transport::open(&Endpoint::Ftp(ep.clone())).unwrap_or_else(|e| {
        panic!(
            "cannot open {}: {e}\nserver log:\n{}",
            Endpoint::Ftp(ep.clone()).describe(),
            d.log()
        )
    })
}

fn open_err(ep: &FtpEndpoint) -> TransportError {
    match transport::open(&Endpoint::Ftp(ep.clone())) {
        Ok(_) => panic!("{} opened", Endpoint::Ftp(ep.clone()).describe()),
        Err(e) => e,
    }
}

/// Bytes that are not text, so that any ASCII-mode conversion shows.
fn bytes(n: usize, seed: u32) -> Vec<u8> {
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

fn leftovers(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".stockgate-") && n.ends_with(".tmp"))
        .collect()
}

#[test]
fn ftps_implicit_list_get_put() {
    let Some(d) = Vsftpd::start() else { return };
    d.mkdir("in/sub");
    let a = bytes(1234, 1);
    d.write("in/a.csv", &a);
    d.write("in/empty.csv", b"");
    d.write("in/crlf.txt", b"one\r\ntwo\nthree\r\n");

    let mut f = open(&d, &d.endpoint("in"));
    assert_eq!(
        f.describe(),
        format!("ftps://anonymous@127.0.0.1:{}/data/in", d.port)
    );
    let mut list = f.list().unwrap();
    list.sort_by(|x, y| x.name.cmp(&y.name));
    let got: Vec<(&str, u64, EntryKind)> = list
        .iter()
        .map(|e| (e.name.as_str(), e.size, e.kind))
        .collect();
    assert_eq!(
        got,
        [
            ("a.csv", 1234, EntryKind::File),
            ("crlf.txt", 16, EntryKind::File),
            ("empty.csv", 0, EntryKind::File),
            ("sub", got[3].1, EntryKind::Dir),
        ]
    );
    assert!(list.iter().all(|e| e.mtime.is_some()), "{list:?}");

    let mut got = vec![];
    assert_eq!(f.get("a.csv", &mut got).unwrap(), 1234);
    assert!(got == a);
    let mut got = vec![];
    assert_eq!(f.get("crlf.txt", &mut got).unwrap(), 16);
    assert_eq!(got, b"one\r\ntwo\nthree\r\n");
    let mut got = vec![];
    assert_eq!(f.get("empty.csv", &mut got).unwrap(), 0);
    assert_eq!(f.size("a.csv").unwrap(), 1234);
    let e = f.size("nothing.csv").unwrap_err();
    assert!(e.not_found, "{e}");

    // 2 MB up, byte-exact on the server's disk, and back down.
    let big = bytes(2 * 1024 * 1024 + 5, 2);
    assert_eq!(f.put("big.bin", &mut &big[..]).unwrap(), big.len() as u64);
    assert!(std::fs::read(d.path("in/big.bin")).unwrap() == big);
    assert_eq!(f.size("big.bin").unwrap(), big.len() as u64);
    let mut back = vec![];
    assert_eq!(f.get("big.bin", &mut back).unwrap(), big.len() as u64);
    assert!(back == big);
    // Replacing: STOR overwrites.
    assert_eq!(f.put("big.bin", &mut &b"small"[..]).unwrap(), 5);
    assert_eq!(std::fs::read(d.path("in/big.bin")).unwrap(), b"small");
    // Many data connections on one control connection, each resuming the
    // control connection's TLS session (vsftpd's require_ssl_reuse): uploads
    // in a row, then uploads and listings in turn.
    for i in 0..10 {
        f.put(&format!("n{i}.txt"), &mut format!("{i}").as_bytes())
            .unwrap_or_else(|e| panic!("upload {i}: {e}"));
    }
    for i in 10..20 {
        f.put(&format!("n{i}.txt"), &mut format!("{i}").as_bytes())
            .unwrap_or_else(|e| panic!("upload {i}: {e}"));
        assert_eq!(f.list().unwrap().len(), 5 + i + 1);
    }
    for i in 0..20 {
        assert_eq!(
            std::fs::read_to_string(d.path(&format!("in/n{i}.txt"))).unwrap(),
            i.to_string()
        );
    }
    f.close();

    // Every session was TLS: vsftpd refuses anything else with these options.
    let log = d.log();
    assert!(log.contains("OK LOGIN"), "{log}");
    assert!(!log.contains("FAIL"), "{log}");
}

#[test]
fn ftps_implicit_deliver() {
    let Some(d) = Vsftpd::start() else { return };
    d.mkdir("out");
    let mut f = open(&d, &d.endpoint("out"));
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("feed.csv");
    let feed = bytes(300_000, 3);
    std::fs::write(&local, &feed).unwrap();
    let at = transport::deliver(f.as_mut(), &local, "feed-1.csv", "cart1", false).unwrap();
    assert_eq!(
        at,
        format!("ftps://anonymous@127.0.0.1:{}/data/out/feed-1.csv", d.port)
    );
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

    // A fresh connection delivers beside it.
    let mut f = open(&d, &d.endpoint("out"));
    std::fs::write(&local, b"v3\n").unwrap();
    transport::deliver(f.as_mut(), &local, "feed-2.csv", "cart2", false).unwrap();
    f.close();
    assert_eq!(std::fs::read(d.path("out/feed-2.csv")).unwrap(), b"v3\n");
    assert_eq!(leftovers(&d.path("out")), Vec::<String>::new());
}

#[test]
fn ftps_implicit_mkdir_rename_remove() {
    let Some(d) = Vsftpd::start() else { return };
    d.mkdir("in");
    d.write("in/a.csv", b"a,b\n1,2\n");
    d.write("in/b.csv", b"b\n");
    let mut f = open(&d, &d.endpoint("in"));
    f.mkdir("done/2024").unwrap();
    assert!(d.path("in/done/2024").is_dir());
    f.mkdir("done/2024").unwrap(); // already there: fine
    f.mkdir("done").unwrap();
    f.mkdir("/data/in/done/abs").unwrap(); // absolute on the server
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
            "ftps://anonymous@127.0.0.1:{}/data/in: cannot rename a.csv to done/a.csv",
            d.port
        )),
        "{e}"
    );

    f.remove("b.csv").unwrap();
    assert!(!d.path("in/b.csv").exists());
    let e = f.remove("b.csv").unwrap_err();
    assert!(e.not_found, "{e}");
    f.remove("done/2024/a.csv").unwrap();
    assert!(!d.path("in/done/2024/a.csv").exists());
    f.close();

    // A missing remote folder needs an operator.
    let e = open_err(&d.endpoint("nowhere"));
    assert!(!e.is_retryable(), "{e}");
    assert!(e.message.contains("nowhere"), "{e}");
}

#[test]
fn ftps_implicit_wrong_ca_is_refused() {
    let Some(d) = Vsftpd::start() else { return };
    let mut ep = d.endpoint("");
    ep.tls.as_mut().unwrap().ca_file = Some(d.other_ca());
    let start = Instant::now();
    let e = open_err(&ep);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(!e.is_retryable(), "{e}");
    assert!(
        e.message.starts_with(&format!(
            "ftps://anonymous@127.0.0.1:{}/data: cannot connect (implicit TLS)",
            d.port
        )),
        "{e}"
    );
    assert!(e.message.contains("certificate"), "{e}");

    // The system's trust store does not know the throwaway CA either.
    ep.tls.as_mut().unwrap().ca_file = None;
    let e = open_err(&ep);
    assert!(!e.is_retryable(), "{e}");
}

#[test]
fn ftps_implicit_feed_round_trip() {
    let Some(d) = Vsftpd::start() else { return };
    let r = d.remote();
    common::remote::feed_round_trip(&r);
    // The binary's sessions were TLS too (vsftpd forces it) and logged in.
    assert!(d.log().contains("OK LOGIN"), "{}", d.log());
}
