//! The SFTP transport against a real OpenSSH server on 127.0.0.1 (see
//! common/sshd.rs): listing, transfers, delivery, host key checks, logins and
//! how each failure is classified.

mod common;
use common::set_mtime;
use common::sshd::{KEY_PASSPHRASE, Sshd};
use secrecy::SecretString;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stockgate::config::{HostKey, Password, SftpAuth, SftpEndpoint};
use stockgate::transport::sftp::SftpFolder;
use stockgate::transport::{EntryKind, Folder, TransportError, deliver};

/// Key login, host key by fingerprint, absolute remote_dir = the data folder.
fn endpoint(s: &Sshd) -> SftpEndpoint {
    SftpEndpoint {
        host: s.host.clone(),
        port: s.port,
        user: s.user.clone(),
        auth: SftpAuth::Key {
            file: s.key.clone(),
            passphrase: None,
        },
        host_key: HostKey::Sha256(s.fingerprint.clone()),
        remote_dir: s.data.display().to_string(),
        timeout: Duration::from_secs(5),
        transfer_timeout: stockgate::config::DEFAULT_TRANSFER_TIMEOUT,
    }
}

fn connect(ep: &SftpEndpoint) -> SftpFolder {
    SftpFolder::connect(ep).unwrap_or_else(|e| panic!("connect: {e}"))
}

fn refused(ep: &SftpEndpoint) -> TransportError {
    match SftpFolder::connect(ep) {
        Ok(f) => panic!("{} should be refused", f.describe()),
        Err(e) => e,
    }
}

fn assert_permanent(e: &TransportError) {
    assert!(
        !e.is_retryable() && !e.not_found,
        "should be permanent: {e:?}"
    );
}

/// Deterministic, incompressible-looking bytes.
fn bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 11) as u8
        })
        .collect()
}

#[test]
fn list_get_put_size() {
    let Some(s) = Sshd::start() else { return };
    let d = &s.data;
    std::fs::write(d.join("a.csv"), b"sku,qty\nA-1,5\n").unwrap();
    set_mtime(&d.join("a.csv"), 1_700_000_000);
    std::fs::write(d.join("empty.txt"), b"").unwrap();
    set_mtime(&d.join("empty.txt"), 1_600_000_123);
    std::fs::create_dir(d.join("sub")).unwrap();
    std::os::unix::fs::symlink("a.csv", d.join("link.csv")).unwrap();

    let ep = endpoint(&s);
    let mut f = connect(&ep);
    assert_eq!(
        f.describe(),
        format!(
            "sftp://{}@127.0.0.1:{}/{}",
            s.user,
            s.port,
            s.data.display().to_string().trim_start_matches('/')
        )
    );
    let mut list = f.list().unwrap();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<_> = list.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a.csv", "empty.txt", "link.csv", "sub"]);
    let a = &list[0];
    assert_eq!(
        (a.size, a.mtime, a.kind),
        (14, Some(1_700_000_000_000), EntryKind::File)
    );
    let e = &list[1];
    assert_eq!(
        (e.size, e.mtime, e.kind),
        (0, Some(1_600_000_123_000), EntryKind::File)
    );
    assert_eq!(
        list[2].kind,
        EntryKind::Link,
        "lstat semantics: {:?}",
        list[2]
    );
    assert_eq!(
        list[2].size, 5,
        "the link itself (\"a.csv\"), not its target"
    );
    assert_eq!(list[3].kind, EntryKind::Dir);

    let mut got = vec![];
    assert_eq!(f.get("a.csv", &mut got).unwrap(), 14);
    assert_eq!(got, b"sku,qty\nA-1,5\n");
    let mut got = vec![];
    assert_eq!(f.get("empty.txt", &mut got).unwrap(), 0);
    assert!(got.is_empty());
    let e = f.get("nope.csv", &mut vec![]).unwrap_err();
    assert!(e.not_found, "{e:?}");
    assert!(e.message.contains("nope.csv"), "{}", e.message);

    // 5 MB up, byte for byte; then down again.
    let big = bytes(5 * 1024 * 1024 + 17, 7);
    assert_eq!(f.put("big.bin", &mut &big[..]).unwrap(), big.len() as u64);
    assert!(
        std::fs::read(d.join("big.bin")).unwrap() == big,
        "big.bin differs on disk"
    );
    assert_eq!(f.size("big.bin").unwrap(), big.len() as u64);
    let mut back = Vec::with_capacity(big.len());
    assert_eq!(f.get("big.bin", &mut back).unwrap(), big.len() as u64);
    assert!(back == big, "big.bin differs when fetched");
    // put truncates a longer file.
    assert_eq!(f.put("big.bin", &mut &b"short"[..]).unwrap(), 5);
    assert_eq!(std::fs::read(d.join("big.bin")).unwrap(), b"short");

    let e = f.size("missing.csv").unwrap_err();
    assert!(e.not_found && !e.is_retryable(), "{e:?}");
    assert!(e.message.contains("missing.csv"), "{}", e.message);
    assert!(
        e.message.contains(&format!("127.0.0.1:{}", s.port)),
        "{}",
        e.message
    );
    f.close();
}

#[test]
fn deliver_replace_rename_mkdir_remove() {
    let Some(s) = Sshd::start() else { return };
    let d = &s.data;
    let local = s.tmp.path().join("local");
    std::fs::create_dir(&local).unwrap();
    let mut f = connect(&endpoint(&s));

    let one = local.join("one.csv");
    std::fs::write(&one, b"first feed\n").unwrap();
    let two = local.join("two.csv");
    std::fs::write(&two, b"second, longer feed\n").unwrap();
    let to = deliver(&mut f, &one, "feed.csv", "shop", true).unwrap();
    assert!(to.ends_with("/feed.csv"), "{to}");
    assert_eq!(std::fs::read(d.join("feed.csv")).unwrap(), b"first feed\n");
    // OpenSSH (SFTP v3) refuses to rename over feed.csv: deliver removes it, then renames.
    deliver(&mut f, &two, "feed.csv", "shop", true).unwrap();
    assert_eq!(
        std::fs::read(d.join("feed.csv")).unwrap(),
        b"second, longer feed\n"
    );
    // Without replace, an existing name is an error and is left alone.
    let e = deliver(&mut f, &one, "feed.csv", "shop", false).unwrap_err();
    assert_permanent(&e);
    assert_eq!(
        std::fs::read(d.join("feed.csv")).unwrap(),
        b"second, longer feed\n"
    );
    let left: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".stockgate-"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");

    // Rename into a folder made with mkdir (each level; again is fine).
    f.mkdir("done/2024").unwrap();
    f.mkdir("done/2024").unwrap();
    f.mkdir("done").unwrap();
    assert!(d.join("done/2024").is_dir());
    f.rename("feed.csv", "done/2024/feed.csv").unwrap();
    assert!(!d.join("feed.csv").exists());
    assert_eq!(
        std::fs::read(d.join("done/2024/feed.csv")).unwrap(),
        b"second, longer feed\n"
    );
    // An absolute target works too.
    let abs = format!("{}/back.csv", d.display());
    f.rename("done/2024/feed.csv", &abs).unwrap();
    assert!(d.join("back.csv").is_file());

    let e = f.rename("feed.csv", "x.csv").unwrap_err();
    assert!(e.not_found, "missing source is not_found: {e:?}");
    let e = f.rename("back.csv", "no/such/dir/x.csv").unwrap_err();
    assert!(
        !e.not_found,
        "a missing target folder is not a missing source: {e:?}"
    );
    assert!(d.join("back.csv").is_file());

    // A file where a folder should be.
    std::fs::write(d.join("plain"), b"x").unwrap();
    let e = f.mkdir("plain/sub").unwrap_err();
    assert_permanent(&e);
    assert!(e.message.contains("plain"), "{}", e.message);

    f.remove("back.csv").unwrap();
    assert!(!d.join("back.csv").exists());
    let e = f.remove("back.csv").unwrap_err();
    assert!(e.not_found, "{e:?}");
    assert!(e.message.contains("back.csv"), "{}", e.message);
    f.close();
}

#[test]
fn wrong_fingerprint_refused_before_login() {
    let Some(s) = Sshd::start() else { return };
    let mut ep = endpoint(&s);
    ep.host_key = HostKey::Sha256(format!("SHA256:{}", "A".repeat(43)));
    let e = refused(&ep);
    assert_permanent(&e);
    let m = &e.message;
    assert!(
        m.contains(&s.fingerprint),
        "shows the real fingerprint: {m}"
    );
    assert!(m.contains("ssh-ed25519"), "{m}");
    assert!(m.contains(&format!("127.0.0.1:{}", s.port)), "{m}");
    std::thread::sleep(Duration::from_millis(300));
    let log = s.log_text();
    assert!(
        !log.contains("userauth-request"),
        "no login was attempted; sshd log:\n{log}"
    );
    // The check above sees logins when there are some.
    connect(&endpoint(&s)).close();
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.log_text().contains("userauth-request"));
    // The fingerprint as pasted with base64 padding is accepted too.
    let mut ep = endpoint(&s);
    ep.host_key = HostKey::Sha256(format!("{}=", s.fingerprint));
    connect(&ep).close();
}

#[test]
fn known_hosts() {
    let Some(s) = Sshd::start() else { return };
    let dir = s.tmp.path();
    let wrong_pub = std::fs::read_to_string(format!("{}.pub", s.wrong_key.display())).unwrap();
    let wrong_pub: Vec<_> = wrong_pub.split_whitespace().take(2).collect();
    let wrong_pub = wrong_pub.join(" ");
    let mut ep = endpoint(&s);

    ep.host_key = HostKey::KnownHosts(s.known_hosts.clone());
    connect(&ep).close();

    // Hashed host names (ssh-keygen -H, HashKnownHosts yes).
    let hashed = dir.join("kh_hashed");
    std::fs::copy(&s.known_hosts, &hashed).unwrap();
    let ok = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&hashed)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    assert!(std::fs::read_to_string(&hashed).unwrap().starts_with("|1|"));
    ep.host_key = HostKey::KnownHosts(hashed);
    connect(&ep).close();

    // Lines libssh2 cannot read do not hide the ones after them.
    let messy = dir.join("kh_messy");
    std::fs::write(
        &messy,
        format!(
            "# comment\n@cert-authority *.example.org {wrong_pub}\nexample.org sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIA==\ngarbage\n\n[127.0.0.1]:{} {}\n",
            s.port, s.host_pub
        ),
    )
    .unwrap();
    ep.host_key = HostKey::KnownHosts(messy);
    connect(&ep).close();

    // Other hosts only: refused, and the message says what to check.
    let other = dir.join("kh_other");
    std::fs::write(
        &other,
        format!("example.org {}\n[127.0.0.1]:1 {}\n", s.host_pub, s.host_pub),
    )
    .unwrap();
    ep.host_key = HostKey::KnownHosts(other);
    let e = refused(&ep);
    assert_permanent(&e);
    assert!(e.message.contains("not in known_hosts"), "{}", e.message);
    assert!(e.message.contains(&s.fingerprint), "{}", e.message);
    assert!(e.message.contains("ssh-ed25519"), "{}", e.message);

    // A bare host names port 22 only (as OpenSSH reads it).
    let bare = dir.join("kh_bare");
    std::fs::write(&bare, format!("127.0.0.1 {}\n", s.host_pub)).unwrap();
    ep.host_key = HostKey::KnownHosts(bare);
    assert_permanent(&refused(&ep));

    // Another key for this host: a mismatch.
    let changed = dir.join("kh_changed");
    std::fs::write(&changed, format!("[127.0.0.1]:{} {wrong_pub}\n", s.port)).unwrap();
    ep.host_key = HostKey::KnownHosts(changed);
    let e = refused(&ep);
    assert_permanent(&e);
    assert!(e.message.contains("does NOT match"), "{}", e.message);
    assert!(e.message.contains(&s.fingerprint), "{}", e.message);

    // A missing known_hosts file.
    ep.host_key = HostKey::KnownHosts(dir.join("no_such_known_hosts"));
    let e = refused(&ep);
    assert_permanent(&e);
    assert!(e.message.contains("no_such_known_hosts"), "{}", e.message);
}

#[test]
fn logins() {
    let Some(s) = Sshd::start() else { return };
    // Unique names: the process environment is shared by parallel tests.
    let (good, bad) = ("SG_TEST_SFTP_PASSPHRASE_OK", "SG_TEST_SFTP_PASSPHRASE_BAD");
    // SAFETY: set once, before any connection of this test, under names no other test reads.
    unsafe {
        std::env::set_var(good, KEY_PASSPHRASE);
        std::env::set_var(bad, "not-the-passphrase-xyz");
    }
    let mut ep = endpoint(&s);
    ep.auth = SftpAuth::Key {
        file: s.key_pass.clone(),
        passphrase: Some(Password::Env(good.into())),
    };
    let mut f = connect(&ep);
    assert!(f.list().unwrap().is_empty());
    f.close();

    ep.auth = SftpAuth::Key {
        file: s.key_pass.clone(),
        passphrase: Some(Password::Env(bad.into())),
    };
    let e = refused(&ep);
    assert_permanent(&e);
    assert!(
        !e.message.contains("not-the-passphrase-xyz"),
        "{}",
        e.message
    );
    assert!(!format!("{e:?}").contains("not-the-passphrase-xyz"));

    ep.auth = SftpAuth::Key {
        file: s.key_pass.clone(),
        passphrase: None,
    };
    let e = refused(&ep);
    assert_permanent(&e);
    assert!(e.message.contains("key_passphrase_env"), "{}", e.message);

    ep.auth = SftpAuth::Key {
        file: s.key_pass.clone(),
        passphrase: Some(Password::Env("SG_TEST_SFTP_UNSET_VAR".into())),
    };
    let e = refused(&ep);
    assert_permanent(&e);
    assert!(
        e.message.contains("SG_TEST_SFTP_UNSET_VAR"),
        "{}",
        e.message
    );

    ep.auth = SftpAuth::Key {
        file: s.wrong_key.clone(),
        passphrase: None,
    };
    let e = refused(&ep);
    assert_permanent(&e);
    assert!(e.message.contains(&s.user), "{}", e.message);

    let Some(pw) = s.password.clone() else {
        eprintln!("SKIPPED: password login (the test user has no password)");
        return;
    };
    ep.auth = SftpAuth::Password(Password::Inline(Arc::new(SecretString::from(pw.clone()))));
    connect(&ep).close();
    let wrong = "Wrong-Secret-816";
    ep.auth = SftpAuth::Password(Password::Inline(Arc::new(SecretString::from(wrong))));
    let e = refused(&ep);
    assert_permanent(&e);
    assert!(
        !e.message.contains(wrong) && !e.message.contains(&pw),
        "{}",
        e.message
    );
    let dbg = format!("{ep:?} {e:?}");
    assert!(!dbg.contains(wrong), "{dbg}");
}

#[test]
fn remote_dir_resolution() {
    let Some(s) = Sshd::start() else { return };
    std::fs::create_dir(s.data.join("in")).unwrap();
    std::fs::write(s.data.join("in/x.csv"), b"x").unwrap();
    std::fs::write(s.data.join("top.csv"), b"top").unwrap();
    let mut ep = endpoint(&s);

    // "" = the login folder; a relative folder is under it.
    ep.remote_dir = String::new();
    let mut f = connect(&ep);
    let mut names: Vec<_> = f.list().unwrap().into_iter().map(|e| e.name).collect();
    names.sort();
    assert_eq!(names, ["in", "top.csv"]);
    f.close();
    ep.remote_dir = "in".into();
    let mut f = connect(&ep);
    let names: Vec<_> = f.list().unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["x.csv"]);
    assert_eq!(f.size("x.csv").unwrap(), 1);
    f.close();

    for missing in ["nope", "/srv/stockgate-no-such-folder"] {
        ep.remote_dir = missing.into();
        let e = refused(&ep);
        assert_permanent(&e);
        assert!(
            e.message.contains(missing),
            "names the folder: {}",
            e.message
        );
    }
    ep.remote_dir = "top.csv".into();
    assert_permanent(&refused(&ep));
}

#[test]
fn permission_denied_is_permanent() {
    use std::os::unix::fs::PermissionsExt;
    let Some(s) = Sshd::start() else { return };
    let ro = s.data.join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::write(ro.join("keep.csv"), b"keep").unwrap();
    s.own(&ro);
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut f = connect(&endpoint(&s));
    let e = f.put("ro/new.csv", &mut &b"x"[..]).unwrap_err();
    assert_permanent(&e);
    assert!(e.message.contains("ro/new.csv"), "{}", e.message);
    let e = f.remove("ro/keep.csv").unwrap_err();
    assert_permanent(&e);
    let e = f.rename("ro/keep.csv", "moved.csv").unwrap_err();
    assert_permanent(&e);
    assert!(ro.join("keep.csv").is_file());
    f.close();
}

/// An endpoint on `port` of loopback with a key and host key that never get
/// used: the connection fails before them. Timeout 2 s.
fn nowhere(port: u16) -> SftpEndpoint {
    SftpEndpoint {
        host: "127.0.0.1".into(),
        port,
        user: "nobody".into(),
        auth: SftpAuth::Key {
            file: Path::new("/nonexistent/key").into(),
            passphrase: None,
        },
        host_key: HostKey::Sha256(format!("SHA256:{}", "A".repeat(43))),
        remote_dir: String::new(),
        timeout: Duration::from_secs(2),
        transfer_timeout: stockgate::config::DEFAULT_TRANSFER_TIMEOUT,
    }
}

#[test]
fn closed_port_is_retryable() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ep = nowhere(port);
    let e = refused(&ep);
    assert!(e.is_retryable(), "{e:?}");
    assert!(
        e.message.contains(&format!("127.0.0.1:{port}")),
        "{}",
        e.message
    );
}

#[test]
fn silent_server_times_out() {
    // Accepts (the kernel does) and never says a word.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let ep = nowhere(port);
    let t = Instant::now();
    let e = refused(&ep);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}: {e:?}");
    assert!(
        took >= Duration::from_millis(1500),
        "gave up early ({took:?}): {e:?}"
    );
    assert!(e.is_retryable(), "{e:?}");
    drop(l);
}

#[test]
fn a_trickling_download_fails_at_transfer_timeout() {
    let Some(s) = Sshd::start() else { return };
    let body = bytes(4 << 20, 7);
    std::fs::write(s.data.join("big.bin"), &body).unwrap();
    s.own(&s.data.join("big.bin"));
    // The login and the first part of the file pass; the rest trickles.
    let p = common::proxy::Proxy::trickle(s.port, 256 * 1024, Duration::from_millis(200));
    let mut ep = endpoint(&s);
    ep.port = p.port;
    ep.transfer_timeout = Duration::from_secs(2);
    let mut f = connect(&ep);
    let started = Instant::now();
    let mut sink = vec![];
    let e = f.get("big.bin", &mut sink).unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert!(e.is_retryable(), "{e}");
    assert!(
        e.message.starts_with(&format!(
            "cannot fetch sftp://{}@127.0.0.1:{}{}/big.bin: not done within transfer_timeout 2s (",
            s.user,
            p.port,
            s.data.display()
        )),
        "{e}"
    );
    assert!((sink.len() as u64) < body.len() as u64);
}

#[test]
fn a_revoked_host_key_is_refused_even_beside_a_plain_line() {
    let Some(s) = Sshd::start() else { return };
    let kh = s.tmp.path().join("kh_revoked");
    let plain = format!("[127.0.0.1]:{} {}\n", s.port, s.host_pub);
    std::fs::write(&kh, format!("{plain}@revoked * {}\n", s.host_pub)).unwrap();
    let mut ep = endpoint(&s);
    ep.host_key = HostKey::KnownHosts(kh.clone());
    let e = refused(&ep);
    assert_permanent(&e);
    let ktype = s.host_pub.split_whitespace().next().unwrap();
    assert_eq!(
        e.message,
        format!(
            "host key of 127.0.0.1:{} ({ktype} {}) is marked @revoked in known_hosts {}:2: refused; ask the server's administrator for its new key",
            s.port,
            s.fingerprint,
            kh.display()
        )
    );
    // Nothing about us was sent: the server saw no login attempt.
    assert!(
        !s.log_text().contains("Accepted publickey"),
        "{}",
        s.log_text()
    );
    // A @revoked line for another key changes nothing.
    let wrong_pub = std::fs::read_to_string(format!("{}.pub", s.wrong_key.display())).unwrap();
    let wrong_pub: Vec<_> = wrong_pub.split_whitespace().take(2).collect();
    std::fs::write(&kh, format!("@revoked * {}\n{plain}", wrong_pub.join(" "))).unwrap();
    connect(&ep).close();
}

#[test]
fn a_wrong_passphrase_is_named_as_such_and_never_shown() {
    let Some(s) = Sshd::start() else { return };
    let bad = "SG_TEST_SFTP_PASSPHRASE_WRONG";
    // SAFETY: set once, before any connection of this test, under a name no other test reads.
    unsafe { std::env::set_var(bad, "not-the-passphrase-abc") };
    let mut ep = endpoint(&s);
    ep.auth = SftpAuth::Key {
        file: s.key_pass.clone(),
        passphrase: Some(Password::Env(bad.into())),
    };
    let e = refused(&ep);
    assert_permanent(&e);
    assert_eq!(
        e.message,
        format!(
            "login to 127.0.0.1:{} as {} refused: wrong passphrase for key_file {}",
            s.port,
            s.user,
            s.key_pass.display()
        )
    );
    assert!(!format!("{e:?}").contains("not-the-passphrase-abc"));
    assert!(!format!("{e:?}").contains(KEY_PASSPHRASE));
}

#[test]
fn a_silent_server_names_host_folder_and_time_waited() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let ep = nowhere(port);
    let e = refused(&ep);
    assert!(e.is_retryable(), "{e:?}");
    assert_eq!(
        e.message,
        format!(
            "sftp://nobody@127.0.0.1:{port}/: ssh handshake with 127.0.0.1:{port} failed: no answer within 2s"
        )
    );
    drop(l);
}
