//! The HTTP server (`stockgate::serve`) over a real ledger filled by the real
//! binary: `/healthz`, `/metrics`, and the status page rendered by a real
//! headless Chromium at phone size; and a real daemon whose SFTP source
//! cannot look (a wrong host key) until a reload fixes it.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use stockgate::serve::{ServeState, Server, serve};
use stockgate::telemetry::Telemetry;

/// A source file name and a value that must come out escaped.
const BAD_NAME: &str = "bad<script>&co.csv";
const BAD_VALUE: &str = "<script>alert(1)</script>";

/// A workspace whose ledger has an applied file, a rejected one (with HTML in
/// its name and value), a sent sync (`shop`) and a failed one (`outlet`).
fn workspace() -> Workspace {
    // The outlet holds stock back (rules 20-23), with HTML in a pattern and
    // in its sku_map's name.
    let ws = Workspace::standard(&cart(
        "outlet",
        "m1",
        "buffer = 1\npercent = 50\nmax_level = 9\ninclude = [\"A*\", \"<b>*\"]\nsku_map = \"maps/outlet<x>.csv\"\nsync_on_orders = true",
    ));
    ws.write("maps/outlet<x>.csv", "sku,cart_sku\nA,O-A\n");
    ws.apply(
        "wms",
        "stock.csv",
        "SKU,Whse,Qty,AsOf,UPC,Title\nA,W1,10,2025-06-01T10:00:00Z,,Widget\nB,W1,3,2025-06-01T10:00:00Z,,Gadget\n",
    );
    ws.apply(
        "orders",
        "o.csv",
        "Order,Line,SKU,Qty,Status,At,Whse\n1,1,A,2,open,2025-06-01T11:00:00Z,\n",
    );
    assert_eq!(ws.sync("shop", &[], 0)["outcome"], "sent");
    // The outlet's folder is a regular file: its delivery fails.
    ws.write("out/outlet", "not a folder");
    assert_eq!(ws.sync("outlet", &[], 1)["outcome"], "failed");
    let p = ws.write(
        &format!("in/wms/{BAD_NAME}"),
        format!("SKU,Whse,Qty,AsOf,UPC,Title\nC,W1,{BAD_VALUE},2025-06-01T10:00:00Z,,\n"),
    );
    assert_eq!(ws.ingest("wms", &p, 1)["outcome"], "rejected");
    ws
}

struct Running {
    ws: Workspace,
    telemetry: Arc<Telemetry>,
    stop: Arc<AtomicBool>,
    server: Option<Server>,
}

impl Running {
    fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().addr
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(s) = self.server.take() {
            let _ = s.thread.join();
        }
    }
}

fn start() -> Running {
    let ws = workspace();
    let cfg = stockgate::config::load(&ws.config_path()).unwrap_or_else(|e| panic!("{e:?}"));
    let telemetry = Arc::new(Telemetry::new());
    telemetry.file("wms", "applied");
    telemetry.file("orders", "applied");
    telemetry.file("wms", "rejected");
    telemetry.sync("shop", "sent", Some((2, 20)));
    telemetry.sync("outlet", "failed", None);
    telemetry.transfer("pickup", "wms", 0.05);
    telemetry.transfer("pickup", "wms", 0.3);
    telemetry.transfer("delivery", "shop", 1.5);
    let state = Arc::new(ServeState {
        config: RwLock::new(Arc::new(cfg)),
        telemetry: telemetry.clone(),
        started_at: stockgate::util::now_ms() - 3_723_000,
    });
    let stop = Arc::new(AtomicBool::new(false));
    let server = serve("127.0.0.1:0", state, stop.clone()).expect("serve");
    assert_ne!(server.addr.port(), 0);
    Running {
        ws,
        telemetry,
        stop,
        server: Some(server),
    }
}

/// A raw HTTP/1.0 request: (status, headers lower-cased, body).
fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = vec![];
    s.read_to_end(&mut raw).expect("read response");
    let raw = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("header end");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("status line: {head}"));
    (status, head.to_lowercase(), body.to_string())
}

fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    request(addr, "GET", path)
}

#[test]
fn healthz_says_ok_then_why_not() {
    let r = start();
    let (code, head, body) = get(r.addr(), "/healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    assert!(
        head.contains("content-type: text/plain; charset=utf-8"),
        "{head}"
    );

    *r.telemetry.trouble.lock().unwrap() = Some("ledger write failed: disk full".into());
    let (code, _, body) = get(r.addr(), "/healthz");
    assert_eq!(code, 503);
    assert_eq!(body, "trouble: ledger write failed: disk full\n");
    *r.telemetry.trouble.lock().unwrap() = None;

    r.telemetry
        .heartbeat
        .store(stockgate::util::now_ms() - 42_400, Ordering::Relaxed);
    let (code, _, body) = get(r.addr(), "/healthz");
    assert_eq!(code, 503);
    assert_eq!(body, "stalled: the main loop last ran 42 s ago\n");
    r.telemetry.beat();
    assert_eq!(get(r.addr(), "/healthz").0, 200);

    // The ledger gone: the check opens it read-only, never creates it.
    let ledger = r.ws.path("var/ledger.sqlite");
    std::fs::rename(&ledger, r.ws.path("var/elsewhere.sqlite")).unwrap();
    let (code, _, body) = get(r.addr(), "/healthz");
    assert_eq!(code, 503);
    assert!(body.starts_with("ledger: "), "{body}");
    assert!(!ledger.exists());

    // Other paths and methods.
    assert_eq!(get(r.addr(), "/nothing-here").0, 404);
    let (code, head, _) = request(r.addr(), "POST", "/healthz");
    assert_eq!(code, 405);
    assert!(head.contains("allow: get, head"), "{head}");
    assert_eq!(request(r.addr(), "DELETE", "/").0, 405);
}

#[test]
fn slow_clients_hold_nobody_up() {
    let r = start();
    // Half send headers that never end, half a whole HTTP/1.1 request whose
    // answer they never read and then keep the connection open.
    let mut idle = vec![];
    for i in 0..8 {
        let mut s = TcpStream::connect(r.addr()).unwrap();
        let req = if i % 2 == 0 {
            "GET /metrics HTTP/1.1\r\nHost: x\r\n"
        } else {
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        };
        s.write_all(req.as_bytes()).unwrap();
        idle.push(s);
        std::thread::sleep(Duration::from_millis(50));
    }
    for path in ["/healthz", "/metrics", "/", "/nothing-here"] {
        let t = Instant::now();
        let (code, _, _) = get(r.addr(), path);
        assert!(code == 200 || path == "/nothing-here", "{path}: {code}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{path}: {:?}",
            t.elapsed()
        );
    }
    drop(idle);
}

/// Sends `raw` as it is; returns the whole answer.
fn raw_request(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(raw);
    let mut out = vec![];
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn request_heads_are_bounded_and_checked() {
    let r = start();
    // 8 KiB of head at most.
    let mut big = b"GET /healthz HTTP/1.1\r\nX-Long: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 9000));
    big.extend_from_slice(b"\r\n\r\n");
    let a = raw_request(r.addr(), &big);
    assert!(
        a.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{a}"
    );
    assert!(a.ends_with("\r\n\r\nrequest head too long\n"), "{a}");
    // Not a request line.
    let a = raw_request(r.addr(), b"hello\r\n\r\n");
    assert!(a.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{a}");
    let a = raw_request(r.addr(), b"GET / HTTP/2.0\r\n\r\n");
    assert!(a.starts_with("HTTP/1.1 505 "), "{a}");
    // HEAD: the headers of GET, no body.
    let a = raw_request(r.addr(), b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a}");
    assert!(a.contains("\r\nContent-Length: 3\r\n"), "{a}");
    assert!(a.contains("\r\nConnection: close\r\n"), "{a}");
    assert!(a.ends_with("\r\n\r\n"), "{a}");
    // Half a request that never ends is dropped after 5 s, unanswered.
    let t = Instant::now();
    let a = raw_request(r.addr(), b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
    assert_eq!(a, "");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(4900) && took < Duration::from_secs(8),
        "{took:?}"
    );
}

#[test]
fn metrics_are_openmetrics_text() {
    let r = start();
    let (code, head, body) = get(r.addr(), "/metrics");
    assert_eq!(code, 200, "{body}");
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{head}"
    );
    for line in [
        r#"stockgate_files_total{source="wms",outcome="applied"} 1"#,
        r#"stockgate_files_total{source="wms",outcome="rejected"} 1"#,
        r#"stockgate_syncs_total{cart="outlet",outcome="failed"} 1"#,
        r#"stockgate_items_sent_total{cart="shop"} 2"#,
        r#"stockgate_transfer_duration_seconds_count{direction="pickup",id="wms"} 2"#,
    ] {
        assert!(body.lines().any(|l| l == line), "no {line} in:\n{body}");
    }
    assert!(
        body.contains(r#"stockgate_transfer_duration_seconds_bucket{le="+Inf",direction="delivery",id="shop"} 1"#),
        "{body}"
    );
    let ledger_bytes: f64 = body
        .lines()
        .find_map(|l| l.strip_prefix("stockgate_ledger_bytes "))
        .expect("stockgate_ledger_bytes")
        .parse()
        .unwrap();
    assert!(ledger_bytes > 0.0, "{body}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    // Every line is a comment or `name{labels} number`.
    for l in body.lines().filter(|l| !l.starts_with("# ")) {
        let (name, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l}"));
        assert!(value.parse::<f64>().is_ok(), "value in {l}");
        let bare = name.split('{').next().unwrap();
        assert!(
            bare.starts_with("stockgate_")
                && bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "name in {l}"
        );
        assert_eq!(name.contains('{'), name.ends_with('}'), "labels in {l}");
    }
}

#[test]
fn page_is_escaped_html() {
    let r = start();
    let (code, head, body) = get(r.addr(), "/");
    assert_eq!(code, 200, "{body}");
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    for want in [
        "<title>stockgate</title>",
        "name=\"viewport\"",
        "http-equiv=\"refresh\" content=\"30\"",
        env!("CARGO_PKG_VERSION"),
        "up 1 h 2 min",
        "<h2>Carts</h2>",
        "<h2>Sources</h2>",
        "<h2>Recent history</h2>",
        "bad&lt;script&gt;&amp;co.csv",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "delivery failed: ",
        "shop-000001.csv",
    ] {
        assert!(body.contains(want), "no {want} in:\n{body}");
    }
    // The outlet's allocation keys, escaped; the shop sets none.
    let sku_map = r.ws.path("maps/outlet<x>.csv").display().to_string();
    let want = format!(
        "<h2>Allocation</h2>\n<div class=\"scroll\"><table><thead><tr><th>Cart</th><th>Buffer</th>\
         <th>Percent</th><th>Max level</th><th>Include</th><th>Exclude</th><th>sku_map</th>\
         <th>Kits</th><th>Sync on orders</th><th>Table trouble</th></tr></thead><tbody>\n\
         <tr><td data-label=\"Cart\">outlet</td><td data-label=\"Buffer\">1</td>\
         <td data-label=\"Percent\">50</td><td data-label=\"Max level\">9</td>\
         <td data-label=\"Include\">A*, &lt;b&gt;*</td><td data-label=\"Exclude\">—</td>\
         <td data-label=\"sku_map\">{}</td><td data-label=\"Kits\">—</td>\
         <td data-label=\"Sync on orders\">yes</td>\
         <td class=\"long\" data-label=\"Table trouble\">—</td></tr>\n</tbody></table></div>\n",
        sku_map.replace('<', "&lt;").replace('>', "&gt;")
    );
    assert!(body.contains(&want), "no {want} in:\n{body}");
    assert!(!body.to_lowercase().contains("<script"), "{body}");
    assert!(!body.contains("&co.csv"), "unescaped & in:\n{body}");
    // HEAD: headers only.
    let (code, _, body) = request(r.addr(), "HEAD", "/");
    assert_eq!((code, body.as_str()), (200, ""));
}

#[test]
fn page_marks_failing_rows_and_shows_a_pending_retry() {
    let r = start();
    let cfg = stockgate::config::load(&r.ws.config_path()).unwrap_or_else(|e| panic!("{e:?}"));
    let ledger = stockgate::ledger::Ledger::open(&cfg.ledger).unwrap();
    let looked = 1_750_000_000_000;
    ledger.note_look("orders", looked, None).unwrap();
    for at in [looked + 60_000, looked + 120_000] {
        ledger
            .note_look("orders", at, Some("connect: refused <b>"))
            .unwrap();
    }
    let retry = stockgate::util::now_ms() + 5_000;
    ledger.set_retry("outlet", Some(retry)).unwrap();
    let retry_shown =
        stockgate::util::to_datetime(retry).to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let (code, _, body) = get(r.addr(), "/");
    assert_eq!(code, 200, "{body}");
    let rfc = stockgate::util::rfc3339;
    for want in [
        "<th>Last look</th><th>Failures</th><th>Last pickup</th>",
        "<th>Last error</th><th>Error at</th>",
        "<th>Last attempt</th><th>Last success</th><th>Last outcome</th>",
        "<tr class=\"failing\"><td data-label=\"Source\">orders<span class=\"flag\">failing</span></td>",
        &format!("<td data-label=\"Last look\">{}</td>", rfc(looked)),
        "<td data-label=\"Failures\"><span class=\"bad\">2</span></td>",
        "<span class=\"err\">connect: refused &lt;b&gt;</span>",
        &format!("<td data-label=\"Error at\">{}</td>", rfc(looked + 120_000)),
        "<tr class=\"failing\"><td data-label=\"Cart\">outlet<span class=\"flag\">failing</span></td>",
        &format!("<td data-label=\"Next due\">{retry_shown} (retry)</td>"),
        "<tr><td data-label=\"Cart\">shop</td>",
        "<tr><td data-label=\"Source\">wms</td>",
    ] {
        assert!(body.contains(want), "no {want} in:\n{body}");
    }
    // A cart that was skipped, or a source that looks fine, is not failing.
    assert_eq!(body.matches("<tr class=\"failing\">").count(), 2, "{body}");
    assert!(!body.contains("<b>"), "{body}");
}

// ----- a real browser -----

/// Debian's Chromium (or `$STOCKGATE_CHROMIUM`), if installed.
fn chromium() -> Option<PathBuf> {
    let p = std::env::var_os("STOCKGATE_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    p.is_file().then_some(p)
}

/// Runs the browser with `args`, stdout to a file; kills its whole process
/// group if it takes longer than `limit`. Returns (success, stdout, stderr).
fn browser(bin: &Path, args: &[String], dir: &Path, limit: Duration) -> (bool, String, String) {
    use std::os::unix::process::CommandExt;
    let out = dir.join("stdout");
    let err = dir.join("stderr");
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
    let pgid = child.id().to_string();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if t.elapsed() > limit {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Leave none of its helpers behind either way (its own group only).
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let (stdout, stderr) = (read(&out), read(&err));
    match status {
        None => panic!(
            "chromium hung for {limit:?}: killed\nstderr:\n{}",
            stderr.chars().take(4000).collect::<String>()
        ),
        Some(s) => (s.success(), stdout, stderr),
    }
}

fn chromium_args(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=412,915",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

#[test]
fn page_in_a_real_browser_at_phone_size() {
    let Some(bin) = chromium() else {
        if std::env::var("STOCKGATE_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!(
                "STOCKGATE_REQUIRE_BROWSER=1 but no Chromium at /usr/bin/chromium (or $STOCKGATE_CHROMIUM): apt-get install -y chromium"
            );
        }
        println!("SKIPPED: no Chromium at /usr/bin/chromium (apt-get install -y chromium)");
        return;
    };
    let r = start();
    let url = format!("http://{}/", r.addr());
    let limit = Duration::from_secs(60);

    // The rendered DOM.
    let tmp = tempfile::tempdir().unwrap();
    let mut args = chromium_args(&tmp.path().join("profile-dom"));
    args.extend(["--dump-dom".to_string(), url.clone()]);
    let (ok, dom, stderr) = browser(&bin, &args, tmp.path(), limit);
    assert!(ok, "chromium --dump-dom failed\nstderr:\n{stderr}");
    for want in [
        "<title>stockgate</title>",
        ">shop<",
        ">outlet<",
        ">wms<",
        ">orders<",
        "Recent history",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "bad&lt;script&gt;&amp;co.csv",
        "Allocation",
        "A*, &lt;b&gt;*",
        "outlet&lt;x&gt;.csv",
    ] {
        assert!(
            dom.contains(want),
            "no {want} in the DOM:\n{dom}\nstderr:\n{stderr}"
        );
    }
    assert!(
        !dom.to_lowercase().contains("<script"),
        "a script element:\n{dom}"
    );

    // A phone-sized screenshot.
    let png = tmp.path().join("page.png");
    let shots = tmp.path().join("shot");
    std::fs::create_dir_all(&shots).unwrap();
    let mut args = chromium_args(&tmp.path().join("profile-shot"));
    args.extend([format!("--screenshot={}", png.display()), url.clone()]);
    let (ok, _, stderr) = browser(&bin, &args, &shots, limit);
    assert!(ok, "chromium --screenshot failed\nstderr:\n{stderr}");
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot ({e})\n{stderr}"));
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // The PNG's own size (IHDR): the phone-sized window.
    let dim = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!((dim(16), dim(20)), (412, 915), "screenshot size");
    assert!(
        bytes.len() > 10_000,
        "screenshot of {} bytes: a blank page?",
        bytes.len()
    );
    // For a person to look at: the phone shot, the whole page at phone
    // width, and a desktop-width one (KEEP.png, KEEP-full.png, KEEP-wide.png).
    if let Ok(keep) = std::env::var("STOCKGATE_KEEP_SCREENSHOT") {
        std::fs::copy(&png, format!("{keep}.png")).unwrap();
        for (name, size) in [("full", "412,2400"), ("wide", "1280,1000")] {
            let mut args = chromium_args(&tmp.path().join(format!("profile-{name}")));
            args.retain(|a| !a.starts_with("--window-size="));
            args.extend([
                format!("--window-size={size}"),
                format!("--screenshot={keep}-{name}.png"),
                format!("http://{}/", r.addr()),
            ]);
            assert!(browser(&bin, &args, &shots, limit).0, "{name} screenshot");
        }
    }
}

// ----- a real daemon, a source that cannot look -----

/// `stockgate --log-format json run --http 127.0.0.1:0` in `ws`, and the
/// address it serves on; killed on drop.
struct Served {
    child: std::process::Child,
    log: PathBuf,
    addr: SocketAddr,
}

impl Served {
    fn start(ws: &Workspace) -> Served {
        let log = ws.path("daemon.log");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(ws.config_path())
            .args(["--log-format", "json", "run", "--http", "127.0.0.1:0"])
            .current_dir(ws.dir())
            .env("STOCKGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut addr = None;
        wait_for("the http address", Duration::from_secs(10), || {
            addr = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find_map(|v| v["addr"].as_str().and_then(|a| a.parse().ok()));
            addr.is_some()
        });
        Served {
            child,
            log,
            addr: addr.unwrap(),
        }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn hup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number in `metrics`' line `name N`, if there is one.
fn metric(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|v| v.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    })
}

fn sftp_source_config(s: &common::sshd::Sshd, known_hosts: &Path) -> String {
    format!(
        r#"{}
[[inbound]]
id = "far"
merchant = "m1"
kind = "inventory"
mapping = "inv"
poll = "1s"
[inbound.transport]
type = "sftp"
host = "{}"
port = {}
user = "{}"
key_file = "{}"
known_hosts = "{}"
remote_dir = "{}/in"
pattern = "*.csv"
stable_for = "1s"
timeout = "10s"
{}"#,
        header(&["m1"]),
        s.host,
        s.port,
        s.user,
        s.key.display(),
        known_hosts.display(),
        s.data.display(),
        cart("shop", "m1", "")
    )
}

#[test]
fn a_source_with_a_wrong_host_key_is_visible_everywhere_until_fixed_by_a_reload() {
    let Some(s) = common::sshd::Sshd::start() else {
        println!("SKIPPED: no sshd");
        return;
    };
    let remote = s.remote();
    remote.mkdir("in");
    remote.put("in/stock.csv", common::remote::STOCK);
    // A known_hosts that gives this server another key.
    let wrong_pub = std::fs::read_to_string(format!("{}.pub", s.wrong_key.display())).unwrap();
    let wrong_pub: Vec<_> = wrong_pub.split_whitespace().take(2).collect();
    let wrong_kh = s.tmp.path().join("kh_wrong");
    std::fs::write(
        &wrong_kh,
        format!("[127.0.0.1]:{} {}\n", s.port, wrong_pub.join(" ")),
    )
    .unwrap();
    let ws = Workspace::new();
    ws.config(&sftp_source_config(&s, &wrong_kh));
    ws.mapping("inv", INV_MAPPING);
    ws.mapping("feed", FEED_MAPPING);
    let d = Served::start(&ws);

    // /healthz: 503 naming the source, once 3 looks in a row have failed.
    let mut failed = 0;
    wait_for(
        "/healthz to name the source",
        Duration::from_secs(30),
        || {
            let (code, _, body) = get(d.addr, "/healthz");
            failed = body
                .strip_prefix("trouble: source far: ")
                .and_then(|b| b.strip_suffix(" failed looks in a row\n"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            code == 503 && failed >= 3
        },
    );
    let (_, _, metrics) = get(d.addr, "/metrics");
    let counted = metric(&metrics, "stockgate_pickup_failures_total{source=\"far\"}").unwrap();
    assert!(counted >= 3.0, "{metrics}");
    assert_eq!(
        metric(
            &metrics,
            "stockgate_last_look_timestamp_seconds{source=\"far\"}"
        ),
        None,
        "{metrics}"
    );

    // status --json: the error, its time, failures in a row, no good look.
    let want_error = format!(
        "host key of 127.0.0.1:{port} does NOT match known_hosts {kh}: the server offers ssh-ed25519 {fp}; if an administrator of the server confirms it, add `[127.0.0.1]:{port} ssh-ed25519 <key>` to {kh} (ssh-keyscan -p {port} 127.0.0.1) or set host_key_sha256 = \"{fp}\"",
        port = s.port,
        kh = wrong_kh.display(),
        fp = s.fingerprint,
    );
    let st = ws.run_ok(&["status", "--json"], 0).json();
    let far = &st["inbound"][0];
    assert_eq!(far["source"], "far", "{st}");
    assert_eq!(far["last_error"], want_error.as_str(), "{st}");
    assert!(far["failures"].as_u64().unwrap() >= 3, "{st}");
    assert!(far["last_error_at"].is_string(), "{st}");
    assert_eq!(far["last_look"], serde_json::Value::Null, "{st}");
    assert_eq!(far["applied"], 0, "{st}");

    // The page: the row marked failing, the error escaped, no good look yet.
    let (code, _, page) = get(d.addr, "/");
    assert_eq!(code, 200, "{page}");
    for want in [
        "<tr class=\"failing\"><td data-label=\"Source\">far<span class=\"flag\">failing</span></td><td data-label=\"Kind\">inventory</td><td data-label=\"Last look\">—</td>".to_string(),
        "<span class=\"health bad\">trouble: source far: ".to_string(),
        format!(
            "<span class=\"err\">{}</span>",
            want_error.replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
        ),
    ] {
        assert!(page.contains(&want), "no {want} in:\n{page}");
    }
    if let Some(bin) = chromium() {
        let tmp = tempfile::tempdir().unwrap();
        let mut args = chromium_args(&tmp.path().join("profile"));
        args.extend(["--dump-dom".to_string(), format!("http://{}/", d.addr)]);
        let (ok, dom, stderr) = browser(&bin, &args, tmp.path(), Duration::from_secs(60));
        assert!(ok, "chromium --dump-dom failed\nstderr:\n{stderr}");
        for want in [
            ">far<span class=\"flag\">failing</span>",
            "does NOT match known_hosts",
            "<td data-label=\"Failures\"><span class=\"bad\">",
            // The whole message, up to what to do: the server's key.
            &format!("the server offers ssh-ed25519 {}", s.fingerprint),
        ] {
            assert!(dom.contains(want), "no {want} in the DOM:\n{dom}");
        }
    }

    // Fixed by a config change and SIGHUP: a good look clears it all, and
    // the file applies.
    ws.config(&sftp_source_config(&s, &s.known_hosts));
    d.hup();
    wait_for("/healthz ok", Duration::from_secs(30), || {
        let (code, _, body) = get(d.addr, "/healthz");
        (code, body.as_str()) == (200, "ok\n")
    });
    wait_for("the file applied", Duration::from_secs(30), || {
        ws.run_ok(&["status", "--json"], 0).json()["inbound"][0]["applied"] == 1
    });
    let st = ws.run_ok(&["status", "--json"], 0).json();
    let far = &st["inbound"][0];
    assert_eq!(far["failures"], 0, "{st}");
    assert_eq!(far["last_error"], serde_json::Value::Null, "{st}");
    assert_eq!(far["last_error_at"], serde_json::Value::Null, "{st}");
    let last_look = far["last_look"].as_str().expect("a good look").to_string();
    assert_eq!(ws.value("A", "shop"), 10);
    let (_, _, metrics) = get(d.addr, "/metrics");
    let look = metric(
        &metrics,
        "stockgate_last_look_timestamp_seconds{source=\"far\"}",
    )
    .unwrap();
    assert!(look >= epoch(&last_look) as f64 - 5.0, "{metrics}");
    let (_, _, page) = get(d.addr, "/");
    assert!(!page.contains("class=\"failing\""), "{page}");
    assert!(
        page.contains(
            "<tr><td data-label=\"Source\">far</td><td data-label=\"Kind\">inventory</td>"
        ),
        "{page}"
    );
    assert!(d.log().contains("config reloaded"), "{}", d.log());
}

// ----- the alert rules the README gives (examples/alerts.yml) -----

/// The series and the alerts expected of them: a cart that stopped
/// delivering at t=0 (`shop`) and one that delivers every minute; a source
/// whose last good look was at t=0 (`far`), one failing from the start
/// that never looked well (`down`), one both (`gone`), one failing twice
/// then fine (`blip`), and one looking well every minute (`near`).
const ALERT_TESTS: &str = r#"
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'stockgate_last_success_timestamp_seconds{cart="shop"}'
        values: '0x200'
      - series: 'stockgate_last_success_timestamp_seconds{cart="fresh"}'
        values: '0+60x200'
      - series: 'stockgate_last_look_timestamp_seconds{source="far"}'
        values: '0x200'
      - series: 'stockgate_pickup_failures_in_a_row{source="far"}'
        values: '0x200'
      - series: 'stockgate_pickup_failures_in_a_row{source="down"}'
        values: '0+1x200'
      - series: 'stockgate_last_look_timestamp_seconds{source="gone"}'
        values: '0x200'
      - series: 'stockgate_pickup_failures_in_a_row{source="gone"}'
        values: '0+1x200'
      - series: 'stockgate_last_look_timestamp_seconds{source="blip"}'
        values: '0 0 0 180+60x197'
      - series: 'stockgate_pickup_failures_in_a_row{source="blip"}'
        values: '0 1 2 0x197'
      - series: 'stockgate_last_look_timestamp_seconds{source="near"}'
        values: '0+60x200'
      - series: 'stockgate_pickup_failures_in_a_row{source="near"}'
        values: '0x200'
    alert_rule_test:
      - eval_time: 2m
        alertname: StockgateSourceNotLooking
        exp_alerts: []
      - eval_time: 3m
        alertname: StockgateSourceNotLooking
        exp_alerts:
          - exp_labels: {severity: page, source: down}
            exp_annotations: &down
              summary: "stockgate source down: cannot look at its inbox"
              description: "`stockgate status` shows its last_error; `stockgate check --connect` tries it now."
          - exp_labels: {severity: page, source: gone}
            exp_annotations: &gone
              summary: "stockgate source gone: cannot look at its inbox"
              description: "`stockgate status` shows its last_error; `stockgate check --connect` tries it now."
      - eval_time: 31m
        alertname: StockgateSourceNotLooking
        exp_alerts:
          - exp_labels: {severity: page, source: down}
            exp_annotations: *down
          - exp_labels: {severity: page, source: far}
            exp_annotations:
              summary: "stockgate source far: cannot look at its inbox"
              description: "`stockgate status` shows its last_error; `stockgate check --connect` tries it now."
          - exp_labels: {severity: page, source: gone}
            exp_annotations: *gone
      - eval_time: 119m
        alertname: StockgateCartNoSuccess
        exp_alerts: []
      - eval_time: 121m
        alertname: StockgateCartNoSuccess
        exp_alerts:
          - exp_labels: {severity: page, cart: shop}
            exp_annotations:
              summary: "stockgate cart shop: no feed delivered for 2 h"
              description: "See `stockgate status` or the status page for its last outcome and error."
"#;

#[test]
fn the_alert_rules_fire_on_what_the_gateway_exports() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/alerts.yml");
    let text = std::fs::read_to_string(&rules).unwrap();
    // Every series the rules read is one the gateway exports.
    let t = Telemetry::new();
    t.sync("shop", "sent", Some((1, 1)));
    t.look("far", true, 0);
    t.look("far", false, 60_000);
    let exported = t.encode(&stockgate::ledger::LedgerLocation::file("/nonexistent"));
    for name in [
        "stockgate_last_success_timestamp_seconds",
        "stockgate_last_look_timestamp_seconds",
        "stockgate_pickup_failures_in_a_row",
    ] {
        assert!(text.contains(name), "{name} not in {}", rules.display());
        assert!(
            exported.contains(&format!("# TYPE {name} gauge")),
            "{name} not exported:\n{exported}"
        );
    }
    let promtool = std::env::var_os("STOCKGATE_PROMTOOL")
        .map_or_else(|| PathBuf::from("/usr/bin/promtool"), PathBuf::from);
    if !promtool.is_file() {
        if std::env::var("STOCKGATE_REQUIRE_PROMTOOL").as_deref() == Ok("1") {
            panic!(
                "STOCKGATE_REQUIRE_PROMTOOL=1 but no promtool at {} (apt-get install -y prometheus)",
                promtool.display()
            );
        }
        println!("SKIPPED: no promtool (apt-get install -y prometheus)");
        return;
    }
    let out = Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("SUCCESS: 2 rules found"), "{said}");
    let tmp = tempfile::tempdir().unwrap();
    let tests = tmp.path().join("alerts_test.yml");
    std::fs::write(
        &tests,
        format!("rule_files:\n  - {}\n{ALERT_TESTS}", rules.display()),
    )
    .unwrap();
    let out = Command::new(&promtool)
        .arg("test")
        .arg("rules")
        .arg(&tests)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
