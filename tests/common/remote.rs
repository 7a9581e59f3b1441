//! One face for the real test servers (sshd, pure-ftpd): the transport keys a
//! config needs to reach a folder on it, and that folder on disk, so a test
//! can drop files as a partner would and read what stockgate delivered.

use std::path::{Path, PathBuf};

pub struct Remote {
    /// "sftp", "ftp" or "ftps".
    pub kind: &'static str,
    /// Connection keys (host, port, user, credentials, host key or CA).
    pub keys: String,
    /// The login folder on disk.
    pub root: PathBuf,
    /// How `remote_dir` names a folder under the root ("" for relative names).
    pub dir_prefix: String,
    /// Who files must belong to so the server's user may read and remove them.
    pub owner: Option<(u32, u32)>,
    /// Environment the binary needs (password variables).
    pub env: Vec<(String, String)>,
}

impl Remote {
    /// A `[... .transport]` body for folder `sub` of the root (made on disk).
    pub fn transport(&self, sub: &str, extra: &str) -> String {
        self.mkdir(sub);
        format!(
            "type = \"{}\"\n{}remote_dir = \"{}{}\"\ntimeout = \"10s\"\n{extra}\n",
            self.kind, self.keys, self.dir_prefix, sub
        )
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
    pub fn mkdir(&self, rel: &str) {
        super::mkdir_owned(&self.root, rel, self.owner);
    }
    /// Drops a file as a partner would (owned by the server's user).
    pub fn put(&self, rel: &str, body: impl AsRef<[u8]>) -> PathBuf {
        super::write_owned(&self.root, rel, body.as_ref(), self.owner)
    }
    pub fn own(&self, p: &Path) {
        if let Some((u, g)) = self.owner {
            std::os::unix::fs::chown(p, Some(u), Some(g)).unwrap();
        }
    }
    /// Every file under folder `rel`, relative to it, sorted.
    pub fn files(&self, rel: &str) -> Vec<String> {
        super::files_under(&self.path(rel))
    }
}

impl super::sshd::Sshd {
    pub fn remote(&self) -> Remote {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&self.data).unwrap();
        Remote {
            kind: "sftp",
            keys: format!(
                "host = \"{}\"\nport = {}\nuser = \"{}\"\nkey_file = \"{}\"\nhost_key_sha256 = \"{}\"\n",
                self.host,
                self.port,
                self.user,
                self.key.display(),
                self.fingerprint
            ),
            root: self.data.clone(),
            dir_prefix: format!("{}/", self.data.display()),
            owner: Some((m.uid(), m.gid())),
            env: vec![],
        }
    }
}

// ----- Scenarios run against every kind of server -----

use super::*;

pub const STOCK: &str = "SKU,Whse,Qty,AsOf,UPC,Title\nA,W1,10,2025-06-01T10:00:00Z,,\n";
pub const BAD: &str = "SKU,Whse,Qty,AsOf,UPC,Title\nC,W1,x,2025-06-01T10:00:00Z,,\n";

/// A workspace whose inbound source `wms` reads `remote`'s folder `in`
/// (with `src_extra` transport keys) and whose cart `shop` delivers to its
/// folder `out` (with `cart_extra` transport keys).
pub fn remote_ws(r: &Remote, src_extra: &str, cart_extra: &str) -> Workspace {
    let ws = Workspace::new();
    ws.config(&format!(
        r#"{}
[[inbound]]
id = "wms"
merchant = "m1"
kind = "inventory"
mapping = "inv"
[inbound.transport]
{}
[[cart]]
id = "shop"
merchant = "m1"
format = "csv"
mapping = "feed"
schedule = "every 1m"
[cart.transport]
{}
"#,
        header(&["m1"]),
        r.transport("in", &format!("pattern = \"*.csv\"\n{src_extra}")),
        r.transport("out", cart_extra),
    ));
    ws.mapping("inv", INV_MAPPING);
    ws.mapping("feed", FEED_MAPPING);
    let o = ws.run_env(&["check"], &r.env);
    assert_eq!(o.code, 0, "check: {}\n{}", o.stdout, o.stderr);
    ws
}

pub fn run_once(ws: &Workspace, r: &Remote, code: i32) -> Out {
    let o = ws.run_env(&["run", "--once"], &r.env);
    assert_eq!(
        o.code, code,
        "run --once exited {}\nstdout:\n{}\nstderr:\n{}",
        o.code, o.stdout, o.stderr
    );
    o
}

pub fn sync_json(
    ws: &Workspace,
    r: &Remote,
    cart: &str,
    extra: &[&str],
) -> (i32, serde_json::Value) {
    let mut args = vec!["sync", cart, "--json"];
    args.extend_from_slice(extra);
    let o = ws.run_env(&args, &r.env);
    (o.code, o.json())
}

/// Picked up remotely, delivered remotely, exact bytes both ways; a fixed
/// file name is replaced, a `{seq}` name never.
pub fn feed_round_trip(r: &Remote) {
    let ws = remote_ws(r, "stable_for = \"0s\"", "file_name = \"{cart}-{seq}.csv\"");
    r.put("in/s1.csv", STOCK);
    run_once(&ws, r, 0);
    assert!(r.files("in").is_empty(), "{:?}", r.files("in"));
    assert_eq!(ws.value("A", "shop"), 10);
    let out = r.files("out");
    assert_eq!(out, vec!["shop-000001.csv"]);
    let sent = std::fs::read(r.path("out/shop-000001.csv")).unwrap();
    assert_eq!(sent, b"SKU,Quantity\nA,10\n");
    // The archive holds the same bytes, received and sent.
    let archived = ws.files_under("var/archive");
    assert_eq!(archived.len(), 2, "{archived:?}");
    assert!(
        archived
            .iter()
            .any(|a| a.starts_with("shop/") && a.ends_with("shop-000001.csv"))
    );
    assert!(
        archived
            .iter()
            .any(|a| a.starts_with("wms/") && a.ends_with("s1.csv"))
    );
    let h = ws.history("shop");
    assert!(
        h[0]["file"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}://", r.kind)),
        "{}",
        h[0]
    );
    // A new count: a new file beside the first, the first untouched.
    r.put(
        "in/s2.csv",
        STOCK.replace(",10,", ",4,").replace("06-01", "06-02"),
    );
    run_once(&ws, r, 0); // picks up; the cart is not due again yet
    let (code, v) = sync_json(&ws, r, "shop", &[]);
    assert_eq!(
        (code, &v["outcome"]),
        (0, &serde_json::json!("sent")),
        "{v}"
    );
    let out = r.files("out");
    assert_eq!(out, vec!["shop-000001.csv", "shop-000002.csv"]);
    assert_eq!(
        std::fs::read(r.path("out/shop-000002.csv")).unwrap(),
        b"SKU,Quantity\nA,4\n"
    );

    // A fixed name is replaced, through the temporary name, nothing left over.
    let ws2 = remote_ws(r, "stable_for = \"0s\"", "file_name = \"feed.csv\"");
    ws2.apply("wms", "a.csv", STOCK);
    // (A forced sync of a changed-only cart with nothing new sends the header only.)
    for want in ["SKU,Quantity\nA,10\n", "SKU,Quantity\n"] {
        let (code, v) = sync_json(&ws2, r, "shop", &["--force"]);
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["outcome"], "sent", "{v}");
        assert_eq!(
            std::fs::read_to_string(r.path("out/feed.csv")).unwrap(),
            want
        );
    }
    let out = r.files("out");
    assert!(out.contains(&"feed.csv".to_string()), "{out:?}");
    assert!(!out.iter().any(|f| f.contains(".stockgate")), "{out:?}");
}

/// `after` = delete, keep, move: each file applied exactly once.
pub fn pickup_after_values(r: &Remote) {
    for (after, left) in [
        ("delete", vec![]),
        ("keep", vec!["s.csv"]),
        ("move:done", vec!["done/s.csv"]),
    ] {
        let ws = remote_ws(r, &format!("stable_for = \"0s\"\nafter = \"{after}\""), "");
        for d in ["in", "out"] {
            for f in r.files(d) {
                let _ = std::fs::remove_file(r.path(&format!("{d}/{f}")));
            }
        }
        r.put("in/s.csv", STOCK);
        run_once(&ws, r, 0);
        assert_eq!(r.files("in"), left, "after = {after}");
        run_once(&ws, r, 0);
        run_once(&ws, r, 0);
        assert_eq!(r.files("in"), left, "after = {after}");
        assert_eq!(ws.count("inbound_files"), 1, "after = {after}");
        assert_eq!(ws.value("A", "shop"), 10);
        if after == "keep" {
            // The ledger remembers the kept file: name, size, mtime, hash, outcome.
            assert_eq!(
                ws.count_where("remote_files", |r| r.text("source") == Some("wms")
                    && r.text("name") == Some("s.csv")
                    && r.int("size") == Some(STOCK.len() as i64)
                    && !r.is_null("mtime")
                    && r.text("sha256") == Some(sha256_hex(STOCK.as_bytes()).as_str())
                    && r.text("outcome") == Some("applied")),
                1
            );
        }
    }
}

/// A file still growing is not taken; once it holds still, it is, whole.
pub fn not_taken_until_stable(r: &Remote) {
    let ws = remote_ws(r, "stable_for = \"2s\"", "");
    let path = r.put("in/grow.csv", "SKU,Whse,Qty,AsOf,UPC,Title\n");
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        for i in 0..12 {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            writeln!(f, "S{i},W1,{i},2025-06-01T10:00:00Z,,").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    run_once(&ws, r, 0);
    assert_eq!(ws.count("stock"), 0, "taken while growing");
    assert_eq!(r.files("in"), vec!["grow.csv"]);
    writer.join().unwrap();
    let t = std::time::Instant::now();
    run_once(&ws, r, 0);
    assert!(
        t.elapsed() >= std::time::Duration::from_secs(2),
        "waited for stability"
    );
    assert_eq!(ws.count("stock"), 12, "taken whole");
    assert!(r.files("in").is_empty());
}

/// `done_marker = true`: NAME waits for NAME.done; both go after.
pub fn done_marker(r: &Remote) {
    let ws = remote_ws(r, "done_marker = true", "");
    r.put("in/a.csv", STOCK);
    run_once(&ws, r, 0);
    assert_eq!(ws.count("stock"), 0);
    r.put("in/a.csv.done", "");
    run_once(&ws, r, 0);
    assert_eq!(ws.value("A", "shop"), 10);
    assert!(r.files("in").is_empty(), "{:?}", r.files("in"));
}

/// A rejected remote file is quarantined once and not fetched again; with
/// `after_rejected = "move:bad"` it is moved aside on the server.
pub fn rejected_once(r: &Remote) {
    let ws = remote_ws(r, "stable_for = \"0s\"", "");
    r.put("in/bad.csv", BAD);
    let o = run_once(&ws, r, 1);
    assert!(o.stdout.contains("1 rejected"), "{}", o.stdout);
    assert_eq!(
        ws.files_under("var/quarantine/wms"),
        vec!["bad.csv", "bad.csv.error.txt"]
    );
    assert_eq!(r.files("in"), vec!["bad.csv"]);
    for _ in 0..2 {
        let o = run_once(&ws, r, 0);
        assert!(o.stdout.contains("run --once: 0 files"), "{}", o.stdout);
    }
    assert_eq!(ws.files_under("var/quarantine/wms").len(), 2);
    assert_eq!(ws.count("inbound_files"), 1);
    let st = ws.run_env(&["status", "--json"], &r.env).json();
    assert_eq!(st["inbound"][0]["rejected"], 1, "{st}");

    let ws = remote_ws(r, "stable_for = \"0s\"\nafter_rejected = \"move:bad\"", "");
    run_once(&ws, r, 1);
    assert_eq!(r.files("in"), vec!["bad/bad.csv"]);
}

/// 2,000 files in one folder: each applied once, in one connection.
pub fn many_files(r: &Remote, n: usize) -> std::time::Duration {
    let ws = remote_ws(r, "stable_for = \"0s\"", "");
    for i in 0..n {
        r.put(
            &format!("in/f{i:05}.csv"),
            format!("SKU,Whse,Qty,AsOf,UPC,Title\nS{i},W1,{i},2025-06-01T10:00:00Z,,\n"),
        );
    }
    let t = std::time::Instant::now();
    run_once(&ws, r, 0);
    let took = t.elapsed();
    assert_eq!(
        ws.count_where("inbound_files", |r| r.text("outcome") == Some("applied")),
        n as i64
    );
    assert_eq!(ws.count("stock"), n as i64);
    assert_eq!(ws.sum("stock", "quantity"), (n * (n - 1) / 2) as i64);
    assert!(r.files("in").is_empty());
    eprintln!("{}: {n} files picked up in {took:?}", r.kind);
    took
}

/// A big inventory file: `n` rows with a 20 kB description each.
pub fn big_stock(n: usize) -> String {
    let pad = "x".repeat(20_000);
    let mut s = String::from("SKU,Whse,Qty,AsOf,UPC,Title\n");
    for i in 0..n {
        s.push_str(&format!("B{i},W1,1,2025-06-01T10:00:00Z,,{pad}\n"));
    }
    s
}

fn kill9_when(mut child: std::process::Child, what: &str, mut cond: impl FnMut() -> bool) -> bool {
    let t = std::time::Instant::now();
    while t.elapsed() < std::time::Duration::from_secs(60) {
        if cond() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            eprintln!("{what}: finished before it could be killed");
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let _ = child.kill();
    panic!("{what}: never reached the moment to kill");
}

fn spawn(ws: &Workspace, r: &Remote, args: &[&str]) -> std::process::Child {
    let mut full: Vec<String> = vec!["--config".into(), ws.config_path().display().to_string()];
    full.extend(args.iter().map(|s| s.to_string()));
    std::process::Command::new(BIN)
        .args(&full)
        .current_dir(ws.dir())
        .env("STOCKGATE_LOG", "warn")
        .envs(r.env.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A workspace taking files from `r`'s `in` at once, whose cart `shop`
/// sends a full feed (SKU, quantity, title) to `r`'s `out` as `shop-<seq>.csv`.
pub fn full_feed_ws(r: &Remote) -> Workspace {
    let ws = remote_ws(r, "stable_for = \"0s\"", "file_name = \"{cart}-{seq}.csv\"");
    let cfg = ws.read("stockgate.toml");
    ws.config(&cfg.replace(
        "schedule = \"every 1m\"",
        "schedule = \"every 1m\"\nfull_sync = true",
    ));
    ws.mapping(
        "feed",
        "format = \"csv\"\nheader = true\ncolumns = [ { header = \"SKU\", field = \"sku\" }, { header = \"Quantity\", field = \"quantity\" }, { header = \"Title\", field = \"description\" } ]\n",
    );
    ws
}

/// kill -9 in the middle of a download, then of an upload: after a restart
/// nothing is applied twice or lost, no partial file sits under a final
/// name, and the feed is sent again.
pub fn kill9_mid_transfer(r: &Remote) {
    let rows = 5000;
    let ws = full_feed_ws(r);
    // Download.
    let body = big_stock(rows);
    r.put("in/big.csv", &body);
    let child = spawn(&ws, r, &["run", "--once"]);
    let work = ws.path("var/work/wms");
    let killed_download = kill9_when(child, "download", || {
        std::fs::read_dir(&work)
            .into_iter()
            .flatten()
            .flatten()
            .any(|d| d.path().join("big.csv").exists())
    });
    if killed_download {
        assert_eq!(ws.count("stock"), 0, "applied while killed");
        assert_eq!(r.files("in"), vec!["big.csv"], "the remote file must stay");
    }
    // The next run applies it once, whole; the feed goes out (a sync may
    // have been killed too).
    let o = ws.run_env(&["run", "--once"], &r.env);
    assert!(o.code == 0, "{}\n{}", o.stdout, o.stderr);
    assert_eq!(ws.count("stock"), rows as i64);
    assert_eq!(ws.count("reports"), 1);
    assert!(r.files("in").is_empty());
    let sent: Vec<String> = r.files("out");
    assert_eq!(sent.len(), 1, "{sent:?}");
    let first = std::fs::read(r.path(&format!("out/{}", sent[0]))).unwrap();

    // Upload: a forced full sync killed while its temporary file grows.
    let child = spawn(&ws, r, &["sync", "shop", "--force"]);
    let tmp = r.path("out/.stockgate-shop.tmp");
    let killed = kill9_when(child, "upload", || {
        std::fs::metadata(&tmp).is_ok_and(|m| m.len() > 0)
    });
    let files = r.files("out");
    if killed {
        // Only the first feed under a final name, and it is whole.
        let finals: Vec<&String> = files.iter().filter(|f| !f.starts_with('.')).collect();
        assert_eq!(finals.len(), 1, "{files:?}");
        let kept = std::fs::read(r.path(&format!("out/{}", finals[0]))).unwrap();
        assert!(
            kept == first,
            "the first feed changed ({} bytes, was {})",
            kept.len(),
            first.len()
        );
        let h = ws.history("shop");
        assert_eq!(
            h.iter().filter(|e| e["outcome"] == "sent").count(),
            1,
            "{h:?}"
        );
    }
    // Sent again: whole, under a new final name, no temporary file left.
    let (code, v) = sync_json(&ws, r, "shop", &["--force"]);
    assert_eq!(code, 0, "{v}");
    let files = r.files("out");
    assert!(!files.iter().any(|f| f.starts_with('.')), "{files:?}");
    assert_eq!(files.len(), if killed { 2 } else { 3 }, "{files:?}");
    eprintln!(
        "{}: download and upload killed mid-transfer: {killed}",
        r.kind
    );
    let second = std::fs::read(r.path(&format!("out/{}", files.last().unwrap()))).unwrap();
    assert!(
        second == first,
        "resent feed: {} bytes, first {}",
        second.len(),
        first.len()
    );
    assert_eq!(second.len() as u64, v["bytes"].as_u64().unwrap());
}

impl super::ftpd::Ftpd {
    /// Plain FTP, or explicit FTPS trusting the test CA when the server has TLS.
    pub fn remote(&self) -> Remote {
        let tls = match &self.ca_file {
            Some(ca) => format!("tls = \"explicit\"\nca_file = \"{}\"\n", ca.display()),
            None => String::new(),
        };
        Remote {
            kind: if self.ca_file.is_some() {
                "ftps"
            } else {
                "ftp"
            },
            keys: format!(
                "host = \"{}\"\nport = {}\nuser = \"{}\"\npassword_env = \"SG_FTP_PASSWORD\"\n{tls}",
                self.host, self.port, self.user
            ),
            root: self.root.clone(),
            dir_prefix: String::new(),
            owner: Some((self.uid, self.gid)),
            env: vec![("SG_FTP_PASSWORD".into(), self.password.clone())],
        }
    }
}

/// A name the server lists that is not one path component on our side (a
/// backslash in it, which a Unix server allows in a file name) is never
/// fetched, removed or made a local path: skipped with one warning,
/// recorded, and left alone at the next look; the other files are taken.
pub fn backslash_name_is_skipped(r: &Remote) {
    let ws = remote_ws(r, "stable_for = \"0s\"", "");
    r.put("in/x\\..\\..\\evil.csv", STOCK);
    r.put("in/ok.csv", STOCK);
    let o = run_once(&ws, r, 0);
    let warned = |o: &Out| {
        o.stderr
            .lines()
            .filter(|l| l.contains("the name holds a \\: not one file of the folder; skipped"))
            .count()
    };
    assert_eq!(warned(&o), 1, "{}", o.stderr);
    assert!(o.stderr.contains("x\\..\\..\\evil.csv"), "{}", o.stderr);
    assert_eq!(r.files("in"), vec!["x\\..\\..\\evil.csv"]);
    assert_eq!(ws.count("inbound_files"), 1);
    assert_eq!(
        ws.count_where("remote_files", |r| r.text("outcome") == Some("skipped")
            && r.text("note") == Some("the name holds a \\")),
        1
    );
    let o = run_once(&ws, r, 0);
    assert_eq!(warned(&o), 0, "{}", o.stderr);
    assert_eq!(r.files("in"), vec!["x\\..\\..\\evil.csv"]);
}

/// A file the server will not hand over is logged, recorded with its reason
/// and skipped; the others of the pass go on, and it is tried again later.
pub fn unreadable_file_is_skipped(r: &Remote) {
    use std::os::unix::fs::PermissionsExt;
    let ws = remote_ws(r, "stable_for = \"0s\"", "");
    r.put("in/a.csv", STOCK);
    let locked = r.put("in/b.csv", STOCK.replace("A,", "B,"));
    // Owned by root, mode 000: the server's (non-root) user cannot read it.
    std::os::unix::fs::chown(&locked, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    r.put("in/c.csv", STOCK.replace("A,", "C,"));
    let o = ws.run_env(&["run", "--once"], &r.env);
    assert_eq!(o.code, 1, "{}\n{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("b.csv"), "{}", o.stdout);
    assert_eq!(ws.count("stock"), 2, "a and c applied");
    assert_eq!(r.files("in"), vec!["b.csv"]);
    assert_eq!(
        ws.count_where("remote_files", |r| r.text("name") == Some("b.csv")
            && r.is_null("outcome")
            && !r.is_null("note")),
        1
    );
    // Readable again: taken at the next look.
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o644)).unwrap();
    r.own(&locked);
    run_once(&ws, r, 0);
    assert_eq!(ws.count("stock"), 3);
    assert!(r.files("in").is_empty());
}

/// A server that goes away: the sync fails (retryable, history says so, the
/// marks stay), a pickup pass fails; then a server is back (on a new port,
/// given by `back`), and the same changes go out, nothing lost.
pub fn server_down_then_back<G>(
    r: &Remote,
    down: impl FnOnce(),
    back: impl FnOnce() -> (G, Remote),
) {
    let ws = remote_ws(r, "stable_for = \"0s\"", "file_name = \"{cart}-{seq}.csv\"");
    ws.apply("wms", "a.csv", STOCK);
    let cfg = ws.read("stockgate.toml");
    down();
    let (code, v) = sync_json(&ws, r, "shop", &[]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["outcome"], "failed");
    assert!(v["reason"].as_str().unwrap().contains("127.0.0.1"), "{v}");
    assert_eq!(ws.history("shop")[0]["outcome"], "failed");
    let o = ws.run_env(&["run", "--once"], &r.env);
    assert_ne!(o.code, 0, "{}", o.stdout);
    let (_server, r2) = back();
    ws.config(&cfg.replace(&r.keys, &r2.keys).replace(
        &format!("remote_dir = \"{}", r.dir_prefix),
        &format!("remote_dir = \"{}", r2.dir_prefix),
    ));
    r2.mkdir("out");
    r2.mkdir("in");
    let (code, v) = sync_json(&ws, &r2, "shop", &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["outcome"], "sent", "{v}");
    // (The failed attempt used up seq 1: sequence numbers never repeat.)
    assert_eq!(r2.files("out"), vec!["shop-000002.csv"]);
    assert_eq!(
        std::fs::read(r2.path("out/shop-000002.csv")).unwrap(),
        b"SKU,Quantity\nA,10\n"
    );
}

/// The order loop over this server (CONTRACT §6): orders picked up from
/// one folder, the order feed delivered to another, shipments picked up,
/// confirmations delivered; each file once, exact bytes.
pub fn order_loop(r: &Remote) {
    let ws = Workspace::new();
    let stable = "pattern = \"*.csv\"\nstable_for = \"0s\"\n";
    let named = "file_name = \"{cart}-{seq}.csv\"\n";
    ws.config(&format!(
        r#"{}
[[inbound]]
id = "shop-orders"
merchant = "m1"
kind = "orders"
mapping = "orders"
warehouse = "EAST"
[inbound.transport]
{}
[[inbound]]
id = "east-ship"
merchant = "m1"
kind = "shipments"
mapping = "ship"
warehouse = "EAST"
[inbound.transport]
{}
[[order_feed]]
id = "east"
merchant = "m1"
warehouse = "EAST"
format = "csv"
mapping = "order-feed"
schedule = "every 1m"
[order_feed.transport]
{}
[[confirm_feed]]
id = "confirms"
merchant = "m1"
orders_from = ["shop-orders"]
format = "csv"
mapping = "confirm-feed"
schedule = "every 1m"
[confirm_feed.transport]
{}
"#,
        header(&["m1"]),
        r.transport("orders-in", stable),
        r.transport("ship-in", stable),
        r.transport("orders-out", named),
        r.transport("confirm-out", named),
    ));
    ws.mapping(
        "orders",
        "format = \"csv\"\nrecord = \"orders\"\n[columns]\norder_id = \"Order\"\nsku = \"SKU\"\nquantity = \"Qty\"\nship_to_name = \"Name\"\n",
    );
    ws.mapping(
        "ship",
        "format = \"csv\"\nrecord = \"shipments\"\n[columns]\norder_id = \"Order\"\nsku = \"SKU\"\nquantity = \"Qty\"\nshipment_id = \"Shipment\"\ntracking = \"Tracking\"\n",
    );
    ws.mapping(
        "order-feed",
        "format = \"csv\"\ncolumns = [ { header = \"Order\", field = \"order_id\" }, { header = \"SKU\", field = \"sku\" }, { header = \"Qty\", field = \"quantity\" }, { header = \"Name\", field = \"ship_to_name\", required = true } ]\n",
    );
    ws.mapping(
        "confirm-feed",
        "format = \"csv\"\ncolumns = [ { header = \"Order\", field = \"order_id\" }, { header = \"Tracking\", field = \"tracking\" }, { header = \"Qty\", field = \"quantity\" } ]\n",
    );
    let o = ws.run_env(&["check"], &r.env);
    assert_eq!(o.code, 0, "check: {}\n{}", o.stdout, o.stderr);
    r.put(
        "orders-in/o1.csv",
        "Order,SKU,Qty,Name\n7001,A,2,Ann\n7002,B,1,Bo\n",
    );
    run_once(&ws, r, 0);
    assert_eq!(r.files("orders-out"), vec!["east-000001.csv"]);
    assert_eq!(
        std::fs::read_to_string(r.path("orders-out/east-000001.csv")).unwrap(),
        "Order,SKU,Qty,Name\n7001,A,2,Ann\n7002,B,1,Bo\n"
    );
    assert!(
        r.files("orders-in").is_empty(),
        "{:?}",
        r.files("orders-in")
    );
    r.put(
        "ship-in/s1.csv",
        "Order,SKU,Qty,Shipment,Tracking\n7001,A,2,S1,1Z1\n7002,B,1,S2,1Z2\n",
    );
    // Forced: the schedule of an order feed that just sent is not due yet.
    let o = ws.run_env(&["run", "--once"], &r.env);
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    let (code, v) = sync_json(&ws, r, "confirms", &[]);
    assert!(code == 0, "{v}");
    let confirms = r.files("confirm-out");
    assert_eq!(confirms, vec!["confirms-000001.csv"], "{v}");
    assert_eq!(
        std::fs::read_to_string(r.path("confirm-out/confirms-000001.csv")).unwrap(),
        "Order,Tracking,Qty\n7001,1Z1,2\n7002,1Z2,1\n"
    );
    // Nothing is sent twice.
    let (_, v) = sync_json(&ws, r, "east", &["--force"]);
    assert_eq!(v["reason"], "nothing new", "{v}");
    let (_, v) = sync_json(&ws, r, "confirms", &["--force"]);
    assert_eq!(v["reason"], "nothing new", "{v}");
    assert_eq!(r.files("orders-out"), vec!["east-000001.csv"]);
    assert_eq!(r.files("confirm-out"), vec!["confirms-000001.csv"]);
}
