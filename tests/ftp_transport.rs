//! The FTP/FTPS transport against a real pure-ftpd on loopback (see
//! `common/ftpd.rs`): plain FTP and explicit FTPS, exact bytes on the
//! server's disk, and how every failure is classified.

mod common;
use common::ftp_checks::*;
use common::ftpd::Ftpd;
use std::net::TcpListener;
use std::time::{Duration, Instant};
use stockgate::config::{Endpoint, FtpEndpoint, Password, Tls, TlsMode};
use stockgate::transport::{self, EntryKind};

#[test]
fn ftp_list_get_size() {
    let d = Ftpd::start();
    check_list_get_size(&d);
}

#[test]
fn ftp_put_and_deliver() {
    let d = Ftpd::start();
    check_put_deliver(&d);
}

#[test]
fn ftp_mkdir_rename_remove() {
    check_mkdir_rename_remove(&Ftpd::start());
}

#[test]
fn ftp_permission_denied_is_permanent() {
    let d = Ftpd::start();
    let ro = d.mkdir("ro");
    d.write("ro/keep.csv", b"keep\n");
    std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let mut f = open(&d, &d.endpoint("ro"));
    let e = f.put("new.csv", &mut &b"x\n"[..]).unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(!e.not_found, "{e}");
    assert!(
        e.message.starts_with(&format!(
            "ftp://bob@127.0.0.1:{}/ro: cannot put new.csv: 55",
            d.port
        )),
        "{e}"
    );
    let e = f.remove("keep.csv").unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(!e.not_found, "a refused delete is not a missing file: {e}");
    assert!(e.message.contains("cannot remove keep.csv"), "{e}");
    let e = f.mkdir("sub").unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.message.contains("cannot make folder sub"), "{e}");
    assert!(d.path("ro/keep.csv").exists());
    f.close();
}

#[test]
fn ftp_wrong_password_is_permanent_and_secret() {
    let d = Ftpd::start();
    let mut ep = d.endpoint("");
    let wrong = "Wr0ng-Pa55-xyzzy";
    ep.password = Password::Inline(std::sync::Arc::new(secrecy::SecretString::from(wrong)));
    let e = open_err(&ep);
    assert!(!e.is_retryable(), "{e}");
    assert!(
        e.message.starts_with(&format!(
            "ftp://bob@127.0.0.1:{}/: cannot log in as bob: 530",
            d.port
        )),
        "{e}"
    );
    for shown in [e.to_string(), format!("{e:?}"), format!("{ep:?}")] {
        assert!(!shown.contains(wrong), "{shown}");
        assert!(!shown.contains(&d.password), "{shown}");
    }
    // The right one works, and Debug of the open folder hides it too.
    let ep = d.endpoint("");
    assert!(!format!("{ep:?}").contains(&d.password));
    open(&d, &ep).close();
}

#[test]
fn ftp_missing_password_variable_is_permanent() {
    let d = Ftpd::start();
    let mut ep = d.endpoint("");
    ep.password = Password::Env("STOCKGATE_TEST_FTP_NO_SUCH_VARIABLE".into());
    let e = open_err(&ep);
    assert!(!e.is_retryable(), "{e}");
    assert!(
        e.message.contains("STOCKGATE_TEST_FTP_NO_SUCH_VARIABLE"),
        "{e}"
    );
}

#[test]
fn ftp_missing_remote_dir_is_permanent() {
    let d = Ftpd::start();
    let e = open_err(&d.endpoint("no/such/dir"));
    assert!(!e.is_retryable(), "{e}");
    assert!(
        e.message.starts_with(&format!(
            "ftp://bob@127.0.0.1:{}/no/such/dir: no folder \"no/such/dir\" on the server: 550",
            d.port
        )),
        "{e}"
    );
}

fn bare_endpoint(port: u16, timeout: Duration) -> FtpEndpoint {
    FtpEndpoint {
        host: "127.0.0.1".into(),
        port,
        user: "bob".into(),
        password: Password::Inline(std::sync::Arc::new(secrecy::SecretString::from("pw"))),
        remote_dir: "in".into(),
        tls: None,
        timeout,
        transfer_timeout: stockgate::config::DEFAULT_TRANSFER_TIMEOUT,
    }
}

#[test]
fn ftp_closed_port_is_retryable() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = open_err(&bare_endpoint(port, Duration::from_secs(2)));
    assert!(e.is_retryable(), "{e}");
    assert!(
        e.message
            .starts_with(&format!("ftp://bob@127.0.0.1:{port}/in: cannot connect")),
        "{e}"
    );
}

#[test]
fn ftp_silent_server_times_out() {
    // Accepts (the kernel does) and never says a word.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    for tls in [
        None,
        Some(Tls {
            mode: TlsMode::Explicit,
            ca_file: None,
        }),
        Some(Tls {
            mode: TlsMode::Implicit,
            ca_file: None,
        }),
    ] {
        let mut ep = bare_endpoint(port, Duration::from_secs(2));
        let mode = format!("{:?}", tls.as_ref().map(|t| t.mode));
        ep.tls = tls;
        let start = Instant::now();
        let r = transport::open(&Endpoint::Ftp(ep));
        let took = start.elapsed();
        let e = r.err().unwrap_or_else(|| panic!("{mode}: opened"));
        assert!(took < Duration::from_secs(10), "{mode}: took {took:?}");
        assert!(
            took >= Duration::from_millis(1500),
            "{mode}: took {took:?}: {e}"
        );
        assert!(e.is_retryable(), "{mode}: {e}");
        assert!(e.message.contains("no answer within 2s"), "{mode}: {e}");
    }
    drop(l);
}

#[test]
fn ftps_explicit_list_get_size() {
    let d = Ftpd::start_tls();
    check_list_get_size(&d);
}

#[test]
fn ftps_explicit_put_and_deliver() {
    let d = Ftpd::start_tls();
    check_put_deliver(&d);
}

#[test]
fn ftps_wrong_ca_is_refused() {
    check_wrong_ca_is_refused(&Ftpd::start_tls(), "cannot start TLS");
}

#[test]
fn ftps_implicit_against_a_plain_server_is_refused() {
    // Debian's pure-ftpd has no implicit TLS: a TLS hello to a plain FTP
    // port gets "220 ..." back, which is no TLS record.
    let d = Ftpd::start();
    let mut ep = d.endpoint("");
    ep.tls = Some(Tls {
        mode: TlsMode::Implicit,
        ca_file: Some(d.other_ca()),
    });
    let start = Instant::now();
    let e = open_err(&ep);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(!e.is_retryable(), "{e}");
    assert!(e.message.contains("TLS"), "{e}");
}

/// A scripted server for what pure-ftpd cannot be made to do: it refuses
/// EPSV and MLSD, and its 227 replies name another address (127.0.0.2) than
/// the one the client is connected to (a server behind NAT). Returns its
/// port and, when the session ends, the commands it was sent.
fn old_server() -> (u16, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{BufRead, BufReader, Write};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        w.write_all(b"220 old ftpd\r\n").unwrap();
        let mut cmds = vec![];
        let mut pasv: Option<TcpListener> = None;
        let send = |pasv: &mut Option<TcpListener>, w: &mut std::net::TcpStream, data: &[u8]| {
            w.write_all(b"150 here it comes\r\n").unwrap();
            let (mut d, _) = pasv.take().expect("PASV first").accept().unwrap();
            d.write_all(data).unwrap();
            drop(d);
            w.write_all(b"226 done\r\n").unwrap();
        };
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let cmd = line.trim_end().to_string();
            cmds.push(cmd.clone());
            let verb = cmd.split(' ').next().unwrap().to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "USER" => b"331 password please\r\n",
                "PASS" => b"230 welcome\r\n",
                "TYPE" => b"200 type set\r\n",
                "CWD" => b"250 ok\r\n",
                "PWD" => b"257 \"/in\" is the current folder\r\n",
                "EPSV" => b"502 EPSV not implemented\r\n",
                "MLSD" => b"500 MLSD: unknown command\r\n",
                "PASV" => {
                    let dl = TcpListener::bind("127.0.0.1:0").unwrap();
                    let p = dl.local_addr().unwrap().port();
                    pasv = Some(dl);
                    let msg = format!(
                        "227 Entering Passive Mode (127,0,0,2,{},{})\r\n",
                        p >> 8,
                        p & 255
                    );
                    w.write_all(msg.as_bytes()).unwrap();
                    continue;
                }
                "LIST" => {
                    send(&mut pasv, &mut w, b"-rw-r--r--   1 ftp  ftp      5 Jan  2  2020 old.csv\r\ndrwxr-xr-x   2 ftp  ftp   4096 Jan  2  2020 sub\r\n");
                    continue;
                }
                "RETR" => {
                    send(&mut pasv, &mut w, b"hello");
                    continue;
                }
                "QUIT" => {
                    w.write_all(b"221 bye\r\n").unwrap();
                    break;
                }
                _ => b"502 not implemented\r\n",
            };
            w.write_all(reply).unwrap();
        }
        cmds
    });
    (port, h)
}

#[test]
fn ftp_falls_back_to_pasv_and_list() {
    let (port, server) = old_server();
    let mut f =
        transport::open(&Endpoint::Ftp(bare_endpoint(port, Duration::from_secs(5)))).unwrap();
    for _ in 0..2 {
        let list = f.list().unwrap();
        let got: Vec<(&str, u64, EntryKind, Option<i64>)> = list
            .iter()
            .map(|e| (e.name.as_str(), e.size, e.kind, e.mtime))
            .collect();
        assert_eq!(
            got,
            [
                ("old.csv", 5, EntryKind::File, Some(1_577_923_200_000)),
                ("sub", 4096, EntryKind::Dir, Some(1_577_923_200_000)),
            ]
        );
    }
    let mut out = Vec::new();
    assert_eq!(f.get("old.csv", &mut out).unwrap(), 5);
    assert_eq!(out, b"hello");
    f.close();
    let cmds = server.join().unwrap();
    let count = |v: &str| cmds.iter().filter(|c| c.starts_with(v)).count();
    // Each refusal is met once, then remembered for the session.
    assert_eq!(count("EPSV"), 1, "{cmds:?}");
    assert_eq!(count("MLSD"), 1, "{cmds:?}");
    assert_eq!(count("PASV"), 4, "{cmds:?}");
    assert_eq!(count("LIST"), 2, "{cmds:?}");
    assert_eq!(count("TYPE I"), 1, "{cmds:?}");
    assert_eq!(cmds.last().map(String::as_str), Some("QUIT"), "{cmds:?}");
}

#[test]
fn ftps_untrusted_certificate_says_what_to_do() {
    let d = Ftpd::start_tls();
    let mut ep = d.endpoint("");
    ep.tls.as_mut().unwrap().ca_file = None;
    let e = open_err(&ep);
    assert!(!e.is_retryable(), "{e}");
    assert_eq!(
        e.message,
        format!(
            "ftps://bob@127.0.0.1:{}/: cannot start TLS (AUTH TLS, PROT P): certificate not trusted (unknown issuer): set ca_file to the CA that signed it",
            d.port
        )
    );
    let other = d.other_ca();
    ep.tls.as_mut().unwrap().ca_file = Some(other.clone());
    let e = open_err(&ep);
    assert!(!e.is_retryable(), "{e}");
    assert_eq!(
        e.message,
        format!(
            "ftps://bob@127.0.0.1:{}/: cannot start TLS (AUTH TLS, PROT P): certificate not trusted (unknown issuer): ca_file {} does not hold the CA that signed it",
            d.port,
            other.display()
        )
    );
    assert!(!format!("{e:?}").contains(&d.password));
}
