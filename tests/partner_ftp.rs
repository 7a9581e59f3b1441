//! What a partner's FTP server may send that no real server here will on
//! demand (see `common/fake_ftp.rs`): names that are not one file of the
//! folder, names too long for a local file system, a trickling download, an
//! upload ended by a 426.

mod common;
use common::fake_ftp::{FakeFtp, Script};
use common::remote::STOCK;
use common::*;

/// A workspace whose source `wms` reads the fake server's folder.
fn ws_for(f: &FakeFtp, extra: &str) -> Workspace {
    let ws = Workspace::new();
    ws.config(&format!(
        r#"{}
[[inbound]]
id = "wms"
merchant = "m1"
kind = "inventory"
mapping = "inv"
[inbound.transport]
{}remote_dir = "in"
timeout = "5s"
stable_for = "0s"
pattern = "*.csv"
{extra}
"#,
        header(&["m1"]),
        f.keys(),
    ));
    ws.mapping("inv", INV_MAPPING);
    ws
}

fn run_once(ws: &Workspace, f: &FakeFtp) -> Out {
    ws.run_env(&["run", "--once"], &f.env())
}

#[test]
fn a_listed_path_never_touches_a_local_file_and_is_skipped_once() {
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("important.csv");
    std::fs::write(&victim, "precious\n").unwrap();
    let evil = victim.display().to_string();
    let f = FakeFtp::start(
        &[
            (evil.as_str(), STOCK.as_bytes()),
            ("sub\\up.csv", STOCK.as_bytes()),
            ("ok.csv", STOCK.as_bytes()),
        ],
        Script::default(),
    );
    let ws = ws_for(&f, "");
    let o = run_once(&ws, &f);
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(
        f.retrievals(),
        1,
        "only ok.csv is fetched: {:?}",
        f.commands()
    );
    let cmds = f.commands();
    assert!(
        !cmds
            .iter()
            .any(|c| c.contains("important") || c.contains("up.csv")),
        "nothing is asked of a name that is not one file: {cmds:?}"
    );
    assert_eq!(f.files(), vec![evil.clone(), "sub\\up.csv".to_string()]);
    let warned = |o: &Out| {
        o.stderr
            .lines()
            .filter(|l| l.contains("not one file of the folder; skipped"))
            .count()
    };
    assert_eq!(warned(&o), 2, "{}", o.stderr);
    let line = o
        .stderr
        .lines()
        .find(|l| l.contains("holds a /"))
        .unwrap_or_else(|| panic!("{}", o.stderr));
    assert!(line.contains(&evil), "{line}");
    // Recorded, and not warned about again at the next look.
    let o = run_once(&ws, &f);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(warned(&o), 0, "{}", o.stderr);
    assert_eq!(
        ws.count_where("remote_files", |r| r.text("outcome") == Some("skipped")
            && r.text("note").is_some_and(|n| n
                .to_ascii_lowercase()
                .starts_with("the name holds a "))),
        2
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn a_300_character_name_is_taken_under_a_bounded_local_name() {
    let long = format!("{}.csv", "n".repeat(296));
    assert_eq!(long.len(), 300);
    let bad = format!("{}.csv", "b".repeat(296));
    let f = FakeFtp::start(
        &[
            (long.as_str(), STOCK.as_bytes()),
            (bad.as_str(), remote::BAD.as_bytes()),
        ],
        Script::default(),
    );
    let ws = ws_for(&f, "");
    let o = run_once(&ws, &f);
    assert_eq!(
        o.code, 1,
        "one file is rejected\n{}\n{}",
        o.stdout, o.stderr
    );
    assert!(!o.stderr.contains("too long"), "{}", o.stderr);
    assert_eq!(ws.explain("A", None)["available"], 10);
    // Archived (the applied one) and quarantined (the rejected one) under
    // the derived name: 200 bytes at most, the extension kept.
    let archived = ws.files_under("var/archive/wms");
    assert_eq!(archived.len(), 1, "{archived:?}");
    for a in &archived {
        let name = a.rsplit('/').next().unwrap();
        assert!(name.len() <= 200 && name.ends_with(".csv"), "{name}");
    }
    let q = ws.files_under("var/quarantine/wms");
    assert_eq!(q.len(), 2, "{q:?}");
    assert!(
        q.iter().all(|n| n.len() <= 210 && n.starts_with("bbbb")),
        "{q:?}"
    );
    // The next pass fetches nothing again (the rejected one is kept and known).
    let o = run_once(&ws, &f);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(f.retrievals(), 2);
}

#[test]
fn a_file_that_cannot_be_fetched_is_logged_once_not_every_pass() {
    let f = FakeFtp::start(
        &[("locked.csv", STOCK.as_bytes())],
        Script {
            refuse_retr: vec!["locked.csv".into()],
            ..Script::default()
        },
    );
    let ws = ws_for(&f, "");
    let logged = |o: &Out| o.stderr.lines().filter(|l| l.contains("ERROR")).count();
    let o = run_once(&ws, &f);
    assert_eq!(logged(&o), 1, "{}", o.stderr);
    let line = o.stderr.lines().find(|l| l.contains("ERROR")).unwrap();
    assert!(
        line.contains("file skipped")
            && line.contains("cannot get locked.csv: 550 Permission denied"),
        "{line}"
    );
    let o = run_once(&ws, &f);
    assert_eq!(logged(&o), 0, "tried again, not logged again: {}", o.stderr);
    assert_eq!(f.retrievals(), 0);
    assert!(
        f.commands()
            .iter()
            .filter(|c| *c == "RETR locked.csv")
            .count()
            == 2
    );
}

fn endpoint(f: &FakeFtp) -> stockgate::config::FtpEndpoint {
    stockgate::config::FtpEndpoint {
        host: "127.0.0.1".into(),
        port: f.port,
        user: "bob".into(),
        password: stockgate::config::Password::Inline(std::sync::Arc::new(
            secrecy::SecretString::from("fake-pw"),
        )),
        remote_dir: "out".into(),
        tls: None,
        timeout: std::time::Duration::from_secs(5),
        transfer_timeout: stockgate::config::DEFAULT_TRANSFER_TIMEOUT,
    }
}

#[test]
fn an_upload_ended_by_426_removes_its_temporary_file_on_the_server() {
    let f = FakeFtp::start(
        &[],
        Script {
            stor_abort: Some((1000, "426 Connection closed; transfer aborted.".into())),
            ..Script::default()
        },
    );
    let tmp = tempfile::tempdir().unwrap();
    // Larger than the socket buffers: the server's close cuts the upload mid-way.
    let local = tmp.path().join("feed.csv");
    std::fs::write(&local, vec![b'x'; 4 << 20]).unwrap();
    let ep = stockgate::config::Endpoint::Ftp(endpoint(&f));
    let mut folder = stockgate::transport::open(&ep).unwrap();
    let e = stockgate::transport::deliver(folder.as_mut(), &local, "feed.csv", "shop", false)
        .unwrap_err();
    folder.close();
    assert!(e.is_retryable(), "{e}");
    let port = f.port;
    assert!(
        e.message.starts_with(&format!(
            "cannot deliver ftp://bob@127.0.0.1:{port}/out/feed.csv: ftp://bob@127.0.0.1:{port}/out: cannot put .stockgate-shop.tmp"
        )),
        "{e}"
    );
    assert!(
        e.message
            .contains("426 Connection closed; transfer aborted."),
        "{e}"
    );
    let cmds = f.commands();
    assert!(
        cmds.contains(&"DELE .stockgate-shop.tmp".to_string()),
        "{cmds:?}"
    );
    assert!(f.files().is_empty(), "{:?}", f.files());
}

#[test]
fn a_trickling_download_fails_at_transfer_timeout_and_is_tried_again() {
    let f = FakeFtp::start(
        &[("slow.csv", STOCK.as_bytes())],
        Script {
            trickle: Some(std::time::Duration::from_millis(200)),
            ..Script::default()
        },
    );
    let ws = ws_for(&f, "transfer_timeout = \"2s\"");
    let o = ws.run_env(&["check"], &f.env());
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    let started = std::time::Instant::now();
    let o = run_once(&ws, &f);
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(8), "{took:?}");
    let port = f.port;
    let line = o
        .stderr
        .lines()
        .find(|l| l.contains("file skipped"))
        .unwrap_or_else(|| panic!("{}", o.stderr));
    assert!(
        line.contains(&format!(
            "error=ftp://bob@127.0.0.1:{port}/in: cannot get slow.csv: not done within transfer_timeout 2s ("
        )),
        "{line}"
    );
    // Not applied, nothing left staged; the next pass tries again.
    assert_eq!(ws.count("inbound_files"), 0);
    assert!(ws.files_under("var/archive").is_empty());
    assert!(
        ws.files_under("var/work").is_empty(),
        "{:?}",
        ws.files_under("var/work")
    );
    assert_eq!(f.files(), vec!["slow.csv"]);
    run_once(&ws, &f);
    assert_eq!(f.retrievals(), 2);
}

#[test]
fn transfer_timeout_is_checked_like_timeout() {
    let f = FakeFtp::start(&[], Script::default());
    let ws = ws_for(&f, "transfer_timeout = \"soon\"");
    let o = ws.run_env(&["check"], &f.env());
    assert_eq!(o.code, 2, "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stdout
            .contains(".transport.transfer_timeout`: must be like \"30m\" or \"2h\", got \"soon\""),
        "{}",
        o.stdout
    );
}

#[test]
fn an_upload_the_server_takes_too_slowly_fails_at_transfer_timeout() {
    let f = FakeFtp::start(
        &[],
        Script {
            stor_trickle: Some(std::time::Duration::from_millis(200)),
            ..Script::default()
        },
    );
    let tmp = tempfile::tempdir().unwrap();
    // Far more than the socket buffers hold: the upload waits on the server.
    let local = tmp.path().join("feed.csv");
    std::fs::write(&local, vec![b'x'; 64 << 20]).unwrap();
    let mut ep = endpoint(&f);
    ep.transfer_timeout = std::time::Duration::from_secs(2);
    let mut folder = stockgate::transport::open(&stockgate::config::Endpoint::Ftp(ep)).unwrap();
    let started = std::time::Instant::now();
    let e = stockgate::transport::deliver(folder.as_mut(), &local, "feed.csv", "shop", false)
        .unwrap_err();
    let took = started.elapsed();
    folder.close();
    assert!(took < std::time::Duration::from_secs(12), "{took:?}");
    assert!(e.is_retryable(), "{e}");
    let port = f.port;
    assert!(
        e.message.starts_with(&format!(
            "cannot deliver ftp://bob@127.0.0.1:{port}/out/feed.csv: ftp://bob@127.0.0.1:{port}/out: cannot put .stockgate-shop.tmp: not done within transfer_timeout 2s ("
        )),
        "{e}"
    );
    assert!(e.message.ends_with(" bytes sent)"), "{e}");
}

/// `check --connect` is bounded by each endpoint's timeout: a server that
/// answers every command slowly, yet each within the timeout, is given up
/// at the timeout plus 2 s, named, and the next endpoint is still checked.
#[test]
fn check_connect_gives_up_on_a_slow_server_at_its_timeout() {
    let f = FakeFtp::start(
        &[],
        Script {
            reply_delay: Some(std::time::Duration::from_millis(1200)),
            ..Script::default()
        },
    );
    let ws = ws_for(&f, "");
    let cfg = ws
        .read("stockgate.toml")
        .replace("timeout = \"5s\"", "timeout = \"2s\"");
    ws.config(&format!("{cfg}{}", cart("shop", "m1", "")));
    ws.mapping("feed", FEED_MAPPING);
    let started = std::time::Instant::now();
    let o = ws.run_env(&["check", "--connect"], &f.env());
    let took = started.elapsed();
    assert_eq!(o.code, 1, "{}\n{}", o.stdout, o.stderr);
    let lines: Vec<&str> = o.stdout.lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            format!(
                "inbound wms: ftp://bob@127.0.0.1:{}/in: no result within 4s (timeout 2s + 2s): the server answers too slowly or not at all",
                f.port
            ),
            format!(
                "ok  cart shop: {} (not there yet; it can be made)",
                ws.path("out/shop").display()
            ),
        ],
        "{}",
        o.stdout
    );
    assert_eq!(o.stderr, "1 of 2 endpoints failed\n");
    assert!(
        took >= std::time::Duration::from_millis(3900) && took < std::time::Duration::from_secs(8),
        "{took:?}"
    );
    assert!(!o.stdout.contains("fake-pw") && !o.stderr.contains("fake-pw"));
}
