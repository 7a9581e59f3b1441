//! `stockgate run` as the long-running service, as a real child process:
//! one instance per ledger, SIGHUP reload, JSON logs and /healthz, a cart
//! whose server never answers while the others keep their schedule, SIGTERM
//! within 5 s, 50 kill -9 at random moments, retention with the clock set
//! forward.

mod common;
use common::*;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon whose stderr goes to a file; killed if the test fails.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(ws: &Workspace, extra: &[&str]) -> Daemon {
        let log = ws.path(&format!("daemon-{}.log", now_nanos()));
        let mut args: Vec<String> = vec!["--config".into(), ws.config_path().display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(BIN)
            .args(&args)
            .current_dir(ws.dir())
            .env("STOCKGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, log }
    }
    fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
    fn signal(&self, sig: &str) {
        assert!(
            Command::new("kill")
                .args([sig, &self.child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
    }
    /// SIGTERM; returns how long it took to exit, and the exit status.
    fn term(mut self) -> (Duration, std::process::ExitStatus) {
        let t = Instant::now();
        self.signal("-TERM");
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (t.elapsed(), st);
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

const PLAIN_INV: &str =
    "format = \"csv\"\nrecord = \"inventory\"\n[columns]\nsku = \"SKU\"\nquantity = \"Qty\"\n";

/// merchant m1; sources `a` and `b` (warehouses A and B); carts from `carts`.
fn service_ws(carts: &str) -> Workspace {
    service_ws_with(carts, &[])
}

/// [`service_ws`] with `files` (path, body) written before the check.
fn service_ws_with(carts: &str, files: &[(&str, &str)]) -> Workspace {
    let ws = Workspace::new();
    for (p, body) in files {
        ws.write(p, body);
    }
    ws.config(&format!(
        "{}{}{}{carts}",
        header(&["m1"]),
        inbound("a", "m1", "inventory", "plain", "warehouse = \"A\""),
        inbound("b", "m1", "inventory", "plain", "warehouse = \"B\""),
    ));
    ws.mapping("plain", PLAIN_INV);
    ws.mapping("feed", FEED_MAPPING);
    let o = ws.run(&["check"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    ws
}

fn full_cart(id: &str, schedule: &str) -> String {
    cart(id, "m1", "full_sync = true").replace("every 1m", schedule)
}

/// Drops a file into a watched inbox (written under a temporary name, then renamed).
fn drop_file(ws: &Workspace, src: &str, name: &str, body: &str) {
    let tmp = ws.write(&format!("in/{src}/.{name}.tmp"), body);
    std::fs::rename(tmp, ws.path(&format!("in/{src}/{name}"))).unwrap();
}

#[test]
fn a_second_run_on_the_same_ledger_exits_2_naming_the_pid() {
    let ws = service_ws(&full_cart("shop", "every 1h"));
    let d = Daemon::start(&ws, &["run"]);
    wait_for("the daemon to start", Duration::from_secs(20), || {
        d.log().contains("stockgate running")
    });
    let o = ws.run(&["run", "--once"]);
    assert_eq!(o.code, 2, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stderr
            .contains(&format!("another stockgate run (pid {})", d.child.id())),
        "{}",
        o.stderr
    );
    let o = ws.run(&["run"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    // ingest and sync may run beside it.
    let f = ws.write("elsewhere/s.csv", "SKU,Qty\nX,3\n");
    assert_eq!(ws.ingest("a", &f, 0)["outcome"], "applied");
    assert_eq!(ws.sync("shop", &["--force"], 0)["outcome"], "sent");
    let (took, st) = d.term();
    assert!(st.success());
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Once it is gone, a new run may start.
    assert_eq!(ws.run(&["run", "--once"]).code, 0);
}

#[test]
fn sighup_reloads_a_good_config_and_refuses_a_bad_one() {
    let ws = service_ws(&full_cart("one", "every 1s"));
    let d = Daemon::start(
        &ws,
        &["--log-format", "json", "run", "--http", "127.0.0.1:0"],
    );
    drop_file(&ws, "a", "s1.csv", "SKU,Qty\nP,4\n");
    wait_for("cart one's first feed", Duration::from_secs(20), || {
        feeds(&ws.path("out/one")).iter().any(|f| {
            std::fs::read_to_string(ws.path(&format!("out/one/{f}"))).unwrap_or_default()
                == "SKU,Quantity\nP,4\n"
        })
    });
    // A good config: a second cart appears.
    let good = format!(
        "{}{}",
        ws.read("stockgate.toml"),
        full_cart("two", "every 1s")
    );
    ws.config(&good);
    d.signal("-HUP");
    wait_for("cart two's first feed", Duration::from_secs(20), || {
        !feeds(&ws.path("out/two")).is_empty()
    });
    // A bad one: refused, logged, the running config stays.
    ws.config(&good.replace(
        "schedule = \"every 1s\"",
        "schedule = \"every now and then\"",
    ));
    d.signal("-HUP");
    wait_for("the refusal", Duration::from_secs(10), || {
        d.log().contains("config reload refused")
    });
    let n = feeds(&ws.path("out/two")).len();
    wait_for("cart two to go on", Duration::from_secs(10), || {
        feeds(&ws.path("out/two")).len() > n + 1
    });
    // /healthz answers, on the port the log names.
    let log = d.log();
    let addr = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["addr"].as_str().map(String::from))
        .expect("the http address in the log");
    let health = http_get(&addr, "/healthz");
    assert!(
        health.starts_with("HTTP/1.1 200") || health.starts_with("HTTP/1.0 200"),
        "{health}"
    );
    assert!(health.ends_with("ok\n"), "{health}");
    let metrics = http_get(&addr, "/metrics");
    assert!(
        metrics.contains("stockgate_files_total{source=\"a\",outcome=\"applied\"} 1"),
        "{metrics}"
    );
    let (took, st) = d.term();
    assert!(
        st.success() && took < Duration::from_secs(5),
        "{took:?} {st:?}"
    );
    // Every log line is one JSON object; pickups and syncs carry their facts.
    let log = std::fs::read_to_string(d_log_path(&ws)).unwrap_or(log);
    let mut pickup = None;
    let mut sync = None;
    for l in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        match v["event"].as_str() {
            Some("pickup") => pickup = Some(v),
            Some("sync") if v["outcome"] == "sent" => sync = Some(v),
            _ => {}
        }
    }
    let p = pickup.expect("a pickup line");
    assert_eq!(p["source"], "a");
    assert_eq!(p["outcome"], "applied");
    assert_eq!(p["items"], 1);
    assert_eq!(p["bytes"], 12);
    assert!(p["file"].as_str().unwrap().ends_with("s1.csv"), "{p}");
    assert!(p["duration_ms"].is_u64(), "{p}");
    let s = sync.expect("a sync line");
    for k in ["cart", "file", "items", "bytes", "duration_ms"] {
        assert!(!s[k].is_null(), "{k} in {s}");
    }
}

fn d_log_path(ws: &Workspace) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(ws.dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("daemon-")
        })
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// A server that accepts connections and never says a word.
fn silent_server() -> (u16, std::thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let mut held = vec![];
        l.set_nonblocking(true).unwrap();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if let Ok((s, _)) = l.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    (port, h)
}

#[test]
fn a_cart_whose_server_never_answers_delays_no_one_and_sigterm_is_quick() {
    let (port, _server) = silent_server();
    let stuck = format!(
        r#"
[[cart]]
id = "stuck"
merchant = "m1"
format = "csv"
mapping = "feed"
schedule = "every 1s"
full_sync = true
[cart.transport]
type = "ftp"
host = "127.0.0.1"
port = {port}
user = "u"
password_env = "NO_SUCH_SECRET_NEEDED"
timeout = "60s"
"#
    );
    let ws = service_ws(&format!(
        "{}{}{stuck}",
        full_cart("fast", "every 1s"),
        full_cart("slow", "every 2s")
    ));
    let d = {
        let log = ws.path("daemon-stuck.log");
        let child = Command::new(BIN)
            .args(["--config", &ws.config_path().display().to_string(), "run"])
            .current_dir(ws.dir())
            .env("STOCKGATE_LOG", "info")
            .env("NO_SUCH_SECRET_NEEDED", "x")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, log }
    };
    // Counts arrive over time; the healthy carts keep their schedule.
    let mut expect = std::collections::BTreeMap::new();
    for round in 0..4 {
        let (a, b) = (10 + round, 100 + round);
        drop_file(
            &ws,
            "a",
            &format!("a{round}.csv"),
            &format!("SKU,Qty\nK,{a}\nL{round},1\n"),
        );
        drop_file(
            &ws,
            "b",
            &format!("b{round}.csv"),
            &format!("SKU,Qty\nK,{b}\n"),
        );
        expect.insert("K".to_string(), a + b);
        expect.insert(format!("L{round}"), 1);
        std::thread::sleep(Duration::from_millis(1500));
    }
    let want: String = std::iter::once("SKU,Quantity\n".to_string())
        .chain(expect.iter().map(|(k, v)| format!("{k},{v}\n")))
        .collect();
    for cart in ["fast", "slow"] {
        wait_for(
            &format!("{cart}'s feed of every count"),
            Duration::from_secs(20),
            || {
                feeds(&ws.path(&format!("out/{cart}")))
                    .last()
                    .is_some_and(|f| {
                        std::fs::read_to_string(ws.path(&format!("out/{cart}/{f}")))
                            .unwrap_or_default()
                            == want
                    })
            },
        );
    }
    // Both kept their schedule while `stuck` hung in its first connection.
    let fast = feeds(&ws.path("out/fast")).len();
    let slow = feeds(&ws.path("out/slow")).len();
    assert!(fast >= 5, "fast sent {fast} feeds");
    assert!(slow >= 3, "slow sent {slow} feeds");
    assert_eq!(
        ws.count_where("syncs", |r| r.text("cart") == Some("stuck")),
        0
    );
    let (took, st) = d.term();
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM took {took:?}\n{}",
        d_log(&ws)
    );
    assert!(st.success());
    // Nothing recorded as sent for the stuck cart; nothing half-written anywhere.
    assert_eq!(
        ws.count_where("syncs", |r| r.text("cart") == Some("stuck")
            && r.text("outcome") == Some("sent")),
        0
    );
    for cart in ["fast", "slow"] {
        let all: Vec<String> = std::fs::read_dir(ws.path(&format!("out/{cart}")))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(all.iter().all(|f| !f.starts_with('.')), "{all:?}");
    }
}

fn d_log(ws: &Workspace) -> String {
    std::fs::read_to_string(ws.path("daemon-stuck.log")).unwrap_or_default()
}

/// A tiny deterministic random source (no extra crate for the test).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn fifty_kill9_at_random_moments_lose_nothing_and_apply_nothing_twice() {
    let ws = service_ws(&format!(
        "{}{}",
        full_cart("full", "every 1s"),
        cart("changed", "m1", "").replace("every 1m", "every 1s")
    ));
    let mut rng = Lcg(20261128);
    let mut dropped: Vec<(String, String, String)> = vec![]; // (source, name, body)
    let mut expect: std::collections::BTreeMap<String, (u64, i64)> = Default::default(); // sku -> (file no, qty) per source
    let rows = 6000;
    let iterations = 50;
    let mut killed_with_files_waiting = 0;
    for it in 0..iterations {
        // One or two new counts, each of `rows` SKUs.
        for _ in 0..=rng.next(2) {
            let src = if rng.next(2) == 0 { "a" } else { "b" };
            let n = dropped.len();
            // One SKU of its own makes each file's content unique.
            let mut body = format!("SKU,Qty\nF{n},1\n");
            expect.insert(format!("{src}:F{n}"), (n as u64, 1));
            for r in 0..rows {
                let q = (n * 7 + r) % 50;
                body.push_str(&format!("S{r},{q}\n"));
                expect.insert(format!("{src}:S{r}"), (n as u64, q as i64));
            }
            let name = format!("f{n:03}.csv");
            drop_file(&ws, src, &name, &body);
            let p = ws.path(&format!("in/{src}/{name}"));
            set_mtime(&p, now_secs() - 10); // settled: taken at once
            dropped.push((src.into(), name, body));
        }
        let d = Daemon::start(&ws, &["run"]);
        std::thread::sleep(Duration::from_millis(rng.next(350)));
        let mut d = d;
        let _ = d.child.kill(); // SIGKILL
        let _ = d.child.wait();
        if !feeds(&ws.path("in/a")).is_empty() || !feeds(&ws.path("in/b")).is_empty() {
            killed_with_files_waiting += 1;
        }
        // After every kill: the ledger is whole.
        let l = ws.ledger();
        let ok = l.debug_integrity().unwrap();
        assert_eq!(ok, "ok", "iteration {it}");
        // No content applied twice for a source.
        let mut seen = std::collections::HashMap::new();
        for r in l.debug_rows("reports", &[]).unwrap().iter() {
            *seen
                .entry((
                    format!("{:?}", r.get("source")),
                    format!("{:?}", r.get("sha256")),
                ))
                .or_insert(0) += 1;
        }
        let twice = seen.values().filter(|&&n| n > 1).count();
        assert_eq!(twice, 0, "iteration {it}");
        drop(l);
        // No partial file under a final name.
        for cart in ["full", "changed"] {
            for f in feeds(&ws.path(&format!("out/{cart}"))) {
                let text = std::fs::read_to_string(ws.path(&format!("out/{cart}/{f}"))).unwrap();
                assert!(
                    text.starts_with("SKU,Quantity\n") && text.ends_with('\n'),
                    "{cart}/{f} is partial"
                );
                for l in text.lines().skip(1) {
                    let (_, q) = l
                        .split_once(',')
                        .unwrap_or_else(|| panic!("{cart}/{f}: {l:?}"));
                    q.parse::<i64>()
                        .unwrap_or_else(|_| panic!("{cart}/{f}: {l:?}"));
                }
            }
        }
    }
    // A last, clean run takes everything left.
    let d = Daemon::start(&ws, &["run"]);
    wait_for("every file to be taken", Duration::from_secs(60), || {
        feeds(&ws.path("in/a")).is_empty() && feeds(&ws.path("in/b")).is_empty()
    });
    std::thread::sleep(Duration::from_millis(2500)); // a sync after the last apply
    let (took, st) = d.term();
    assert!(st.success() && took < Duration::from_secs(5), "{took:?}");
    // Every dropped file applied exactly once (by content, per source).
    let applied = ws.count("reports");
    assert_eq!(applied, dropped.len() as i64);
    for (src, _, body) in &dropped {
        let sha = sha256_hex(body.as_bytes());
        assert_eq!(
            ws.count_where("reports", |r| r.text("source") == Some(src.as_str())
                && r.text("sha256") == Some(sha.as_str())),
            1
        );
    }
    // The last feed of the full cart is the independent sum of the latest counts.
    let mut sums: std::collections::BTreeMap<String, i64> = Default::default();
    for (k, (_, q)) in &expect {
        let sku = k.split_once(':').unwrap().1.to_string();
        *sums.entry(sku).or_insert(0) += q;
    }
    let last = feeds(&ws.path("out/full")).pop().expect("a full feed");
    let text = std::fs::read_to_string(ws.path(&format!("out/full/{last}"))).unwrap();
    let got: std::collections::BTreeMap<String, i64> = text
        .lines()
        .skip(1)
        .map(|l| {
            let (s, q) = l.split_once(',').unwrap();
            (s.to_string(), q.parse().unwrap())
        })
        .collect();
    assert_eq!(got, sums);
    // No leftovers after that clean start and stop.
    let mut left = vec![];
    for dir in [
        "out/full",
        "out/changed",
        "var/archive",
        "var/work",
        "var/outgoing",
    ] {
        for f in ws.files_under(dir) {
            let name = f.rsplit('/').next().unwrap();
            if name.starts_with('.') {
                left.push(format!("{dir}/{f}"));
            }
        }
    }
    assert!(left.is_empty(), "leftovers: {left:?}");
    eprintln!(
        "kill -9: {iterations} iterations passed ({killed_with_files_waiting} with files still waiting), {} files",
        dropped.len()
    );
}

#[test]
fn retention_prunes_what_is_older_than_keep() {
    let ws = service_ws(&full_cart("shop", "every 1s"));
    ws.apply("a", "s.csv", "SKU,Qty\nK,5\n");
    ws.write("in/b/bad.csv", "SKU,Qty\nK,x\n");
    ws.run_ok(&["run", "--once"], 1); // quarantines bad.csv, syncs shop
    ws.sync("shop", &["--force"], 0);
    assert!(!ws.files_under("var/archive").is_empty());
    assert_eq!(ws.files_under("var/quarantine/b").len(), 2);
    assert_eq!(ws.count("syncs"), 2);
    let stock_before = ws.ledger_dump();
    // keep = "forever": nothing goes, whatever the clock says.
    let cfg = ws.read("stockgate.toml");
    ws.config(&cfg.replace("[ledger]\n", "[ledger]\nkeep = \"forever\"\n"));
    let ahead = [("STOCKGATE_CLOCK_OFFSET".to_string(), "100d".to_string())];
    let o = ws.run_env(&["run", "--once"], &ahead);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert_eq!(ws.files_under("var/quarantine/b").len(), 2);
    // The default, 90 days, a hundred days on.
    ws.config(&cfg);
    let o = ws.run_env(&["run", "--once"], &ahead);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let archive: Vec<String> = ws
        .files_under("var/archive")
        .into_iter()
        .filter(|f| !f.contains(&today()))
        .collect();
    // Only what this last run archived (a day 100 days on) is left.
    assert!(
        ws.files_under("var/archive")
            .iter()
            .all(|f| !f.contains(&format!("/{}/", today()))),
        "{archive:?}"
    );
    assert!(ws.files_under("var/quarantine/b").is_empty());
    // History: each cart's newest attempt stays.
    assert_eq!(
        ws.count_where("syncs", |r| r.text("cart") == Some("shop")),
        1
    );
    assert_eq!(
        {
            // Before tomorrow (now, in whole seconds, plus a day).
            let now_s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            ws.count_where("inbound_files", |r| {
                r.int("received_at").unwrap() < now_s * 1000 + 86400000
            })
        },
        0
    );
    // The stock itself is never pruned.
    let after = ws.ledger_dump();
    let stock = |d: &str| {
        d.lines()
            .filter(|l| l.starts_with("stock") || l.contains("K|"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(stock(&stock_before), stock(&after));
    assert_eq!(ws.value("K", "shop"), 5);
}

#[test]
fn run_once_says_a_summary_even_when_nothing_was_due() {
    let ws = service_ws(&full_cart("shop", "every 1h"));
    let o = ws.run_ok(&["run", "--once"], 0);
    assert!(
        o.stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("run --once: 0 files (0 applied"),
        "{}",
        o.stdout
    );
    let o = ws.run_ok(&["run", "--once"], 0);
    assert_eq!(
        o.stdout.lines().last().unwrap(),
        "run --once: 0 files (0 applied, 0 duplicate, 0 rejected, 0 held), 0 carts synced (0 sent, 0 skipped, 0 failed), 0 errors"
    );
}

#[test]
fn a_delivery_interrupted_before_its_record_is_reconciled_at_the_next_start() {
    let ws = service_ws(&format!(
        "{}{}",
        full_cart("done", "every 1h"),
        full_cart("cut", "every 1h")
    ));
    // As a crash leaves them: `done` delivered its file but never recorded
    // it; `cut` stopped mid-upload (a temporary file, no final one).
    let journal = |cart: &str, file: &str, bytes: u64| {
        ws.write(
            &format!("var/journal/{cart}.json"),
            format!(r#"{{"file":"{file}","bytes":{bytes},"sha256":"ab","started_at":1795000000000,"items":1}}"#),
        );
    };
    journal("done", "done-000001.csv", 17);
    ws.write("out/done/done-000001.csv", "SKU,Quantity\nA,1\n");
    journal("cut", "cut-000001.csv", 16);
    ws.write("out/cut/.stockgate-cut.tmp", "SKU,Quan");
    ws.write("var/work/a/.999999/x.csv", "half");
    ws.write("var/archive/a/2026-11-28/.x.csv.tmp-999999", "half");
    let d = Daemon::start(&ws, &["run"]);
    wait_for("both reconciled", Duration::from_secs(20), || {
        stockgate::ledger::Ledger::open(ws.path("var/ledger.sqlite"))
            .and_then(|l| l.debug_rows("syncs", &[]))
            .is_ok_and(|t| t.count(|r| r.int("started_at") == Some(1795000000000)) == 2)
    });
    let (_, st) = d.term();
    assert!(st.success());
    let h = ws.history("done");
    let rec = h
        .iter()
        .find(|e| {
            e["file"]
                .as_str()
                .unwrap_or("")
                .ends_with("done-000001.csv")
        })
        .expect("reconciled entry");
    assert_eq!(rec["outcome"], "sent", "{rec}");
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("recorded at the next start"),
        "{rec}"
    );
    let h = ws.history("cut");
    let rec = h
        .iter()
        .find(|e| {
            e["started_at"]
                .as_str()
                .unwrap_or("")
                .starts_with("2026-11-18")
        })
        .expect("reconciled entry");
    assert_eq!(rec["outcome"], "failed", "{rec}");
    assert!(
        rec["reason"].as_str().unwrap().starts_with("interrupted"),
        "{rec}"
    );
    // Leftovers gone, journals gone.
    assert!(!ws.path("out/cut/.stockgate-cut.tmp").exists());
    assert!(!ws.path("var/work/a/.999999").exists());
    assert!(
        !ws.path("var/archive/a/2026-11-28/.x.csv.tmp-999999")
            .exists()
    );
    assert!(ws.files_under("var/journal").is_empty());
}

/// A server that accepts connections and never says a word, counting them.
fn silent_server_counting() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let n = std::sync::Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    std::thread::spawn(move || {
        let mut held = vec![];
        l.set_nonblocking(true).unwrap();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(90) {
            if let Ok((s, _)) = l.accept() {
                held.push(s);
                count.fetch_add(1, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    (port, n)
}

/// An inbound FTP source (warehouse S) on `port`, with a long timeout.
fn ftp_source(id: &str, merchant: &str, port: u16) -> String {
    format!(
        r#"
[[inbound]]
id = "{id}"
merchant = "{merchant}"
kind = "inventory"
mapping = "plain"
warehouse = "S"
poll = "1s"
[inbound.transport]
type = "ftp"
host = "127.0.0.1"
port = {port}
user = "u"
password_env = "SG_STUCK_PASSWORD"
pattern = "*.csv"
timeout = "60s"
"#
    )
}

fn start_with_env(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> Daemon {
    let log = ws.path(&format!("daemon-{}.log", now_nanos()));
    let child = Command::new(BIN)
        .arg("--config")
        .arg(ws.config_path())
        .args(args)
        .current_dir(ws.dir())
        .env("STOCKGATE_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Daemon { child, log }
}

fn feed_is(ws: &Workspace, cart: &str, want: &str) -> bool {
    feeds(&ws.path(&format!("out/{cart}")))
        .last()
        .is_some_and(|f| {
            std::fs::read_to_string(ws.path(&format!("out/{cart}/{f}"))).unwrap_or_default() == want
        })
}

#[test]
fn sighup_while_a_source_is_stuck_freezes_no_cart_and_sigterm_is_quick() {
    let (port, accepted) = silent_server_counting();
    let ws = Workspace::new();
    ws.config(&format!(
        "{}{}{}{}",
        header(&["m1", "m2"]),
        inbound("a", "m1", "inventory", "plain", "warehouse = \"A\""),
        ftp_source("stuck", "m2", port),
        cart("one", "m1", "").replace("every 1m", "every 1s"),
    ));
    ws.mapping("plain", PLAIN_INV);
    ws.mapping("feed", FEED_MAPPING);
    let d = start_with_env(&ws, &["run"], &[("SG_STUCK_PASSWORD", "x")]);
    wait_for("the stuck connection", Duration::from_secs(10), || {
        accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1
    });
    drop_file(&ws, "a", "s1.csv", "SKU,Qty\nP,4\n");
    wait_for("the first feed", Duration::from_secs(20), || {
        feed_is(&ws, "one", "SKU,Quantity\nP,4\n")
    });
    d.signal("-HUP");
    wait_for("the reload", Duration::from_secs(10), || {
        d.log().contains("config reloaded")
    });
    // The cart and its source go on while `stuck` still hangs.
    let t = Instant::now();
    drop_file(&ws, "a", "s2.csv", "SKU,Qty\nP,5\n");
    wait_for("the feed after the reload", Duration::from_secs(10), || {
        feed_is(&ws, "one", "SKU,Quantity\nP,5\n")
    });
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let log = d.log.clone();
    let (took, st) = d.term();
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM took {took:?}\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    assert!(st.success(), "{st:?}");
}

#[test]
fn a_stuck_source_of_another_warehouse_does_not_delay_a_carts_first_sync() {
    let (port, _accepted) = silent_server_counting();
    let ws = Workspace::new();
    ws.config(&format!(
        "{}{}{}{}",
        header(&["m1"]),
        inbound("a", "m1", "inventory", "plain", "warehouse = \"A\""),
        // Same merchant, a warehouse cart `one` does not count.
        ftp_source("stuck", "m1", port),
        cart("one", "m1", "warehouses = [\"A\"]").replace("every 1m", "every 1s"),
    ));
    ws.mapping("plain", PLAIN_INV);
    ws.mapping("feed", FEED_MAPPING);
    ws.write("in/a/s1.csv", "SKU,Qty\nP,4\n");
    let t = Instant::now();
    let d = start_with_env(&ws, &["run"], &[("SG_STUCK_PASSWORD", "x")]);
    wait_for("the first feed", Duration::from_secs(15), || {
        feed_is(&ws, "one", "SKU,Quantity\nP,4\n")
    });
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    let (took, st) = d.term();
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    assert!(st.success(), "{st:?}");
}

#[test]
fn a_panicking_worker_is_reported_counted_and_restarted() {
    let ws = service_ws(&full_cart("one", "every 1s"));
    // Debug builds only: cart `one`'s first two passes panic.
    let d = start_with_env(
        &ws,
        &["--log-format", "json", "run", "--http", "127.0.0.1:0"],
        &[("STOCKGATE_TEST_PANIC", "one:2")],
    );
    let mut addr = None;
    wait_for("the http address", Duration::from_secs(10), || {
        addr = d
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find_map(|v| v["addr"].as_str().map(String::from));
        addr.is_some()
    });
    let addr = addr.unwrap();
    let mut health = String::new();
    wait_for(
        "/healthz to name the panic",
        Duration::from_secs(10),
        || {
            health = http_get(&addr, "/healthz");
            health.ends_with("\r\n\r\ntrouble: cart one panicked: STOCKGATE_TEST_PANIC=one\n")
        },
    );
    assert!(health.starts_with("HTTP/1.0 503"), "{health}");
    drop_file(&ws, "a", "s1.csv", "SKU,Qty\nP,4\n");
    wait_for("the restarted cart's feed", Duration::from_secs(20), || {
        feed_is(&ws, "one", "SKU,Quantity\nP,4\n")
    });
    // Healthy again once it has run a pass (the feed is out a moment before).
    wait_for("/healthz ok", Duration::from_secs(5), || {
        health = http_get(&addr, "/healthz");
        health.ends_with("\r\n\r\nok\n")
    });
    assert!(health.starts_with("HTTP/1.0 200"), "{health}");
    let metrics = http_get(&addr, "/metrics");
    assert!(
        metrics.contains("\nstockgate_worker_panics_total{worker=\"cart one\"} 2\n"),
        "{metrics}"
    );
    let log = d.log();
    let panics: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "worker panicked; restarting it")
        .collect();
    assert_eq!(panics.len(), 2, "{log}");
    assert_eq!(panics[0]["worker"], "cart one");
    assert_eq!(panics[0]["panic"], "STOCKGATE_TEST_PANIC=one");
    assert_eq!(panics[0]["restart_in_s"], 1);
    assert_eq!(panics[1]["restart_in_s"], 2);
    let (took, st) = d.term();
    assert!(
        took < Duration::from_secs(5) && st.success(),
        "{took:?} {st:?}"
    );
}

/// One GET on a fresh connection: the whole answer, or what went wrong.
fn try_get(addr: &str, path: &str) -> std::io::Result<String> {
    use std::io::Write;
    let a: std::net::SocketAddr = addr.parse().unwrap();
    let mut s = std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn three_hundred_idle_http_clients_at_256_descriptors_kill_nothing() {
    let ws = service_ws(&full_cart("one", "every 1s"));
    let log = ws.path("daemon-fd.log");
    // The daemon under a limit of 256 descriptors.
    let child = Command::new("prlimit")
        .arg("--nofile=256:256")
        .arg("--")
        .arg(BIN)
        .arg("--config")
        .arg(ws.config_path())
        .args(["--log-format", "json", "run", "--http", "127.0.0.1:0"])
        .current_dir(ws.dir())
        .env("STOCKGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let d = Daemon { child, log };
    let mut addr = None;
    wait_for("the http address", Duration::from_secs(10), || {
        addr = d
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find_map(|v| v["addr"].as_str().map(String::from));
        addr.is_some()
    });
    let addr = addr.unwrap();
    assert!(
        try_get(&addr, "/healthz")
            .unwrap()
            .ends_with("\r\n\r\nok\n")
    );
    // 300 clients that send half a request and then nothing.
    let a: std::net::SocketAddr = addr.parse().unwrap();
    let t = Instant::now();
    let mut idle = vec![];
    for _ in 0..300 {
        if let Ok(mut s) = std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)) {
            use std::io::Write;
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
            idle.push(s);
        }
    }
    assert_eq!(idle.len(), 300);
    // Meanwhile the gateway answers (ok, or busy) and delivers.
    drop_file(&ws, "a", "s1.csv", "SKU,Qty\nP,4\n");
    let mut answer = String::new();
    wait_for(
        "an answer while 300 clients idle",
        Duration::from_secs(4),
        || {
            answer = try_get(&addr, "/healthz").unwrap_or_default();
            answer.ends_with("\r\n\r\nok\n") || answer.ends_with("\r\n\r\nbusy\n")
        },
    );
    assert!(
        answer.starts_with("HTTP/1.0 200 OK\r\n")
            || answer.starts_with("HTTP/1.0 503 Service Unavailable\r\n"),
        "{answer}"
    );
    wait_for("the feed", Duration::from_secs(20), || {
        feed_is(&ws, "one", "SKU,Quantity\nP,4\n")
    });
    // The idle ones time out after 5 s: ok again, on every try.
    wait_for("ok again", Duration::from_secs(15), || {
        try_get(&addr, "/healthz").is_ok_and(|a| a.ends_with("\r\n\r\nok\n"))
    });
    assert!(t.elapsed() >= Duration::from_secs(5), "{:?}", t.elapsed());
    for _ in 0..5 {
        let a = try_get(&addr, "/healthz").unwrap();
        assert!(
            a.starts_with("HTTP/1.0 200 OK\r\n") && a.ends_with("\r\n\r\nok\n"),
            "{a}"
        );
    }
    drop(idle);
    let log = d.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains("Too many open files"), "{log}");
    let (took, st) = d.term();
    assert!(
        took < Duration::from_secs(5) && st.success(),
        "{took:?} {st:?}"
    );
}

/// The address a `--log-format json run --http 127.0.0.1:0` daemon serves on.
fn http_addr(d: &Daemon) -> String {
    let mut addr = None;
    wait_for("the http address", Duration::from_secs(10), || {
        addr = d
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find_map(|v| v["addr"].as_str().map(String::from));
        addr.is_some()
    });
    addr.unwrap()
}

/// The body of a GET.
fn http_body(addr: &str, path: &str) -> String {
    let r = http_get(addr, path);
    r.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(r)
}

#[test]
fn a_restart_exports_the_last_success_and_last_look_of_a_cart_and_source_that_now_fail() {
    let ws = service_ws(&full_cart("one", "every 1s"));
    let p = ws.write("in/a/s.csv", "SKU,Qty\nP,4\n");
    set_mtime(&p, now_secs() - 60);
    let o = ws.run(&["run", "--once"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let st = ws.run_ok(&["status", "--json"], 0).json();
    let success = epoch(st["carts"][0]["last_success"].as_str().expect("sent"));
    assert_eq!(st["inbound"][0]["source"], "a", "{st}");
    let look = epoch(st["inbound"][0]["last_look"].as_str().expect("looked"));
    // Now the cart's folder and the source's inbox are plain files: neither
    // the cart nor the source succeeds after the restart.
    std::fs::remove_dir_all(ws.path("out/one")).unwrap();
    ws.write("out/one", "in the way");
    std::fs::remove_dir_all(ws.path("in/a")).unwrap();
    ws.write("in/a", "in the way");
    let d = Daemon::start(
        &ws,
        &["--log-format", "json", "run", "--http", "127.0.0.1:0"],
    );
    let addr = http_addr(&d);
    let metrics = http_body(&addr, "/metrics");
    let success_line =
        format!("stockgate_last_success_timestamp_seconds{{cart=\"one\"}} {success}");
    let look_line = format!("stockgate_last_look_timestamp_seconds{{source=\"a\"}} {look}");
    for want in [&success_line, &look_line] {
        assert!(
            metrics.lines().any(|l| l == want),
            "no {want} in:\n{metrics}"
        );
    }
    // Still there once both have failed under this daemon.
    let mut metrics = String::new();
    wait_for("the cart's failed sync", Duration::from_secs(20), || {
        metrics = http_body(&addr, "/metrics");
        metrics.contains("\nstockgate_syncs_total{cart=\"one\",outcome=\"failed\"} ")
            && metrics.contains("\nstockgate_pickup_failures_total{source=\"a\"} ")
    });
    for want in [&success_line, &look_line] {
        assert!(
            metrics.lines().any(|l| l == want),
            "no {want} in:\n{metrics}"
        );
    }
    // The page marks the cart failing and still shows its last success.
    let page = http_body(&addr, "/");
    let st = ws.run_ok(&["status", "--json"], 0).json();
    let last_success = st["carts"][0]["last_success"].as_str().unwrap();
    assert_eq!(epoch(last_success), success, "{st}");
    for want in [
        "<tr class=\"failing\"><td data-label=\"Cart\">one<span class=\"flag\">failing</span></td>"
            .to_string(),
        format!("<td data-label=\"Last success\">{last_success}</td>"),
        "<tr class=\"failing\"><td data-label=\"Source\">a<span class=\"flag\">failing</span></td>"
            .to_string(),
    ] {
        assert!(page.contains(&want), "no {want} in:\n{page}");
    }
    let (took, st) = d.term();
    assert!(
        took < Duration::from_secs(5) && st.success(),
        "{took:?} {st:?}"
    );
}

#[test]
fn a_reload_keeps_a_carts_pending_retry() {
    // Hourly: after the failure, only the retry can deliver within the test.
    let ws = service_ws(&cart("one", "m1", "").replace("every 1m", "every 1h"));
    let p = ws.write("in/a/s.csv", "SKU,Qty\nP,4\n");
    set_mtime(&p, now_secs() - 60);
    ws.write("out/one", "in the way");
    let d = Daemon::start(
        &ws,
        &["--log-format", "json", "run", "--http", "127.0.0.1:0"],
    );
    let addr = http_addr(&d);
    let retry_line = |log: &str| -> Option<serde_json::Value> {
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["message"] == "delivery will be retried")
    };
    wait_for("the failed delivery", Duration::from_secs(20), || {
        retry_line(&d.log()).is_some()
    });
    let failed_at = Instant::now();
    let r = retry_line(&d.log()).unwrap();
    assert_eq!(
        (
            r["cart"].as_str(),
            r["failures"].as_u64(),
            r["retry_in_s"].as_u64()
        ),
        (Some("one"), Some(1), Some(10)),
        "{r}"
    );
    let metrics = http_body(&addr, "/metrics");
    assert!(
        metrics.lines().any(|l| l == "stockgate_retries_pending 1"),
        "{metrics}"
    );
    let page = http_body(&addr, "/");
    let row = page
        .lines()
        .find(|l| l.contains("<td data-label=\"Cart\">one"))
        .unwrap_or_else(|| panic!("{page}"));
    assert!(
        row.starts_with("<tr class=\"failing\">")
            && row.contains(" (retry)</td><td data-label=\"Last attempt\">"),
        "{row}"
    );
    // `status` beside the daemon sees the retry too: next due is the retry.
    let st = ws.run_ok(&["status", "--json"], 0).json();
    let one = &st["carts"][0];
    assert_eq!(one["cart"], "one");
    let retry = one["retry_at"].as_str().unwrap_or_else(|| panic!("{st}"));
    assert_eq!(
        one["next_due"].as_str().map(|s| &s[..19]),
        Some(&retry[..19]),
        "{st}"
    );
    let due = chrono::DateTime::parse_from_rfc3339(retry).unwrap();
    let ahead = due.timestamp() - now_secs() as i64;
    assert!((0..=11).contains(&ahead), "retry {ahead} s ahead: {st}");
    // The fix: another folder, and SIGHUP. The retry is kept, not dropped
    // for the next hourly slot.
    ws.config(
        &std::fs::read_to_string(ws.config_path())
            .unwrap()
            .replace("path = \"out/one\"", "path = \"out/fixed\""),
    );
    d.signal("-HUP");
    wait_for("the reload", Duration::from_secs(10), || {
        d.log().contains("config reloaded")
    });
    wait_for("the retried delivery", Duration::from_secs(30), || {
        feeds(&ws.path("out/fixed")) == ["one-000002.csv"]
    });
    assert!(
        failed_at.elapsed() >= Duration::from_secs(8),
        "delivered {:?} after the failure: before its retry was due",
        failed_at.elapsed()
    );
    assert_eq!(ws.read("out/fixed/one-000002.csv"), "SKU,Quantity\nP,4\n");
    let mut metrics = String::new();
    wait_for("no retry pending", Duration::from_secs(5), || {
        metrics = http_body(&addr, "/metrics");
        metrics.lines().any(|l| l == "stockgate_retries_pending 0")
    });
    let page = http_body(&addr, "/");
    assert!(
        !page.contains("(retry)") && !page.contains("class=\"failing\""),
        "{page}"
    );
    let st = ws.run_ok(&["status", "--json"], 0).json();
    assert!(st["carts"][0]["retry_at"].is_null(), "{st}");
    let (took, st) = d.term();
    assert!(
        took < Duration::from_secs(5) && st.success(),
        "{took:?} {st:?}"
    );
}

/// Rule 24 under a running gateway: an edited sku_map is read again at the
/// next sync; a broken one keeps the last good table and shows in the log,
/// `/healthz` and `status`; fixed, the trouble is over.
#[test]
fn a_broken_then_fixed_sku_map_under_a_running_daemon() {
    let ws = service_ws_with(
        &cart("one", "m1", "full_sync = true\nsku_map = \"maps/one.csv\"")
            .replace("every 1m", "every 1s"),
        &[("maps/one.csv", "sku,cart_sku\nP,ONE-P\n")],
    );
    let d = Daemon::start(
        &ws,
        &["--log-format", "json", "run", "--http", "127.0.0.1:0"],
    );
    let latest = |ws: &Workspace| -> String {
        let fs = feeds(&ws.path("out/one"));
        fs.last()
            .map(|f| std::fs::read_to_string(ws.path(&format!("out/one/{f}"))).unwrap_or_default())
            .unwrap_or_default()
    };
    drop_file(&ws, "a", "s1.csv", "SKU,Qty\nP,4\nQ,2\n");
    wait_for(
        "the feed under the cart's ids",
        Duration::from_secs(20),
        || latest(&ws) == "SKU,Quantity\nONE-P,4\n",
    );
    let addr = d
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["addr"].as_str().map(String::from))
        .expect("the http address in the log");
    // Broken: two SKUs for one id. The last good table stays in use.
    ws.write("maps/one.csv", "sku,cart_sku\nP,ONE-P\nQ,ONE-P\n");
    let map = ws.path("maps/one.csv").display().to_string();
    let want =
        format!("sku_map file {map}:3: cart_sku \"ONE-P\" is given to two SKUs (first on line 2)");
    wait_for(
        "healthz to name the broken table",
        Duration::from_secs(20),
        || http_get(&addr, "/healthz").contains(&want),
    );
    assert!(
        d.log().contains("keeping the last good table"),
        "{}",
        d.log()
    );
    let n = feeds(&ws.path("out/one")).len();
    wait_for("the cart to go on", Duration::from_secs(20), || {
        feeds(&ws.path("out/one")).len() > n + 1
    });
    assert_eq!(latest(&ws), "SKU,Quantity\nONE-P,4\n");
    // Fixed, with a new id for Q: read again, the trouble is over.
    ws.write("maps/one.csv", "sku,cart_sku\nP,ONE-P\nQ,ONE-Q\n");
    wait_for("the new table", Duration::from_secs(20), || {
        latest(&ws) == "SKU,Quantity\nONE-P,4\nONE-Q,2\n"
    });
    wait_for("healthz ok", Duration::from_secs(20), || {
        http_get(&addr, "/healthz").ends_with("ok\n")
    });
    let (_, st) = d.term();
    assert!(st.success());
}

/// The config of `ws` with `[ledger]` keys added.
fn with_ledger_keys(ws: &Workspace, keys: &str) {
    let cfg = ws
        .read("stockgate.toml")
        .replacen("[ledger]\n", &format!("[ledger]\n{keys}"), 1);
    ws.config(&cfg);
}

#[test]
fn a_running_gateway_holds_every_lease_as_its_instance_and_hands_them_back_when_it_stops() {
    let ws = service_ws(&full_cart("shop", "every 1h"));
    with_ledger_keys(&ws, "instance = \"gw-test\"\nlease = \"3s\"\n");
    let d = Daemon::start(
        &ws,
        &["--log-format", "json", "run", "--http", "127.0.0.1:0"],
    );
    let addr = http_addr(&d);
    let held_by_all = |want: serde_json::Value| {
        let st = ws.run_ok(&["status", "--json"], 0).json();
        st["carts"][0]["held_by"] == want
            && st["inbound"].as_array().unwrap().len() == 2
            && st["inbound"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["held_by"] == want)
    };
    wait_for("every lease held", Duration::from_secs(20), || {
        held_by_all(serde_json::json!("gw-test"))
    });
    let want = [
        "stockgate_lease_held{work=\"cart:shop\",holder=\"gw-test\"} 1",
        "stockgate_lease_held{work=\"source:a\",holder=\"gw-test\"} 1",
        "stockgate_lease_held{work=\"source:b\",holder=\"gw-test\"} 1",
    ];
    wait_for("the lease gauges", Duration::from_secs(10), || {
        let m = http_body(&addr, "/metrics");
        want.iter().all(|w| m.lines().any(|l| l == *w))
    });
    // Renewed every second: still held, same generation, after more than a lease.
    std::thread::sleep(Duration::from_millis(4000));
    assert!(held_by_all(serde_json::json!("gw-test")));
    let leases = ws.rows("leases");
    assert_eq!(leases.rows.len(), 3);
    assert_eq!(
        leases.count(|r| r.int("generation") == Some(1) && r.text("holder") == Some("gw-test")),
        3
    );
    let o = ws.run_ok(&["status"], 0);
    assert!(o.stdout.contains("held by"), "{}", o.stdout);
    assert!(o.stdout.contains("gw-test"), "{}", o.stdout);
    let page = http_body(&addr, "/");
    assert!(
        page.contains("Held by") && page.contains("gw-test"),
        "{page}"
    );
    let (_, st) = d.term();
    assert!(st.success());
    // Stopped cleanly: every lease handed back, its heartbeat gone.
    assert!(held_by_all(serde_json::Value::Null));
    assert_eq!(ws.count("gateways"), 0);
    let o = ws.run_ok(&["status"], 0);
    assert!(!o.stdout.contains("gw-test"), "{}", o.stdout);
}

#[test]
fn check_validates_the_instance_and_lease_keys() {
    let ws = service_ws(&full_cart("shop", "every 1h"));
    let base = ws.read("stockgate.toml");
    for (keys, want) in [
        (
            "lease = \"2s\"\n",
            "ledger.lease`: must be at least \"3s\", got \"2s\"",
        ),
        (
            "lease = \"soon\"\n",
            "ledger.lease`: must be like \"30s\" or \"1m\", got \"soon\"",
        ),
        ("instance = \" \"\n", "ledger.instance`: must not be empty"),
        (
            &format!("instance = \"{}\"\n", "x".repeat(101)),
            "ledger.instance`: must be at most 100 characters, got 101",
        ),
        (
            "instance = \"a\\u0007b\"\n",
            "ledger.instance`: must be printable, got a\\u{7}b",
        ),
    ] {
        ws.config(&base.replacen("[ledger]\n", &format!("[ledger]\n{keys}"), 1));
        let o = ws.run(&["check"]);
        assert_eq!(o.code, 2, "{keys}: {}{}", o.stdout, o.stderr);
        assert!(
            o.stderr.contains(want) || o.stdout.contains(want),
            "{keys}: want {want} in {}{}",
            o.stdout,
            o.stderr
        );
    }
    ws.config(&base.replacen(
        "[ledger]\n",
        "[ledger]\ninstance = \"gw 1\"\nlease = \"3s\"\n",
        1,
    ));
    let o = ws.run(&["check"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
}

#[test]
fn the_delivery_journal_in_the_ledger_survives_a_kill_9_mid_delivery_and_the_restart_cleans_up() {
    let (port, accepted) = silent_server_counting();
    let ws = service_ws("");
    let far = format!(
        r#"
[[cart]]
id = "far"
merchant = "m1"
format = "csv"
mapping = "feed"
schedule = "every 1h"
full_sync = true
[cart.transport]
type = "ftp"
host = "127.0.0.1"
port = {port}
user = "u"
password_env = "SG_FAR_PASSWORD"
timeout = "60s"
"#
    );
    // A crashed gateway's leases expire after `lease` (on SQLite the next
    // `run`, alone on the ledger, hands them back at its start anyway).
    with_ledger_keys(&ws, "lease = \"3s\"\n");
    let base = ws.read("stockgate.toml");
    ws.config(&format!("{base}{far}"));
    ws.write("in/a/s.csv", "SKU,Qty\nP,4\n");
    let mut d = start_with_env(&ws, &["run"], &[("SG_FAR_PASSWORD", "x")]);
    wait_for("the delivery to hang", Duration::from_secs(20), || {
        accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1 && ws.count("journal") == 1
    });
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let j = ws.rows("journal");
    assert_eq!(j.rows.len(), 1);
    assert_eq!(j.count(|r| r.text("cart") == Some("far")), 1);
    assert_eq!(
        ws.count_where("syncs", |r| r.text("cart") == Some("far")),
        0
    );
    // Restarted with the cart on a folder: nothing was delivered there, so
    // the interrupted delivery is recorded as failed and the journal goes.
    ws.config(&format!("{base}{}", full_cart("far", "every 1h")));
    let d = Daemon::start(&ws, &["run"]);
    wait_for("the reconciled delivery", Duration::from_secs(20), || {
        ws.count("journal") == 0
            && ws.count_where("syncs", |r| {
                r.text("cart") == Some("far")
                    && r.text("outcome") == Some("failed")
                    && r.text("reason")
                        .is_some_and(|t| t.starts_with("interrupted"))
            }) == 1
    });
    let (_, st) = d.term();
    assert!(st.success());
}

/// `ws`'s config with its ledger moved to `url` (a PostgreSQL database),
/// written as `file` with `[ledger] instance = "<instance>"` and
/// `lease = "3s"`.
fn on_postgres(ws: &Workspace, file: &str, url: &str, instance: &str) -> PathBuf {
    let cfg = pg::ledger_line(
        &ws.read("stockgate.toml"),
        &format!("url = \"{url}\"\ninstance = \"{instance}\"\nlease = \"3s\""),
    );
    ws.write(file, cfg)
}

/// A daemon of the config `cfg` (in `ws`'s folder), with /healthz on a free port.
fn start_cfg(ws: &Workspace, cfg: &std::path::Path) -> Daemon {
    let log = ws.path(&format!("daemon-{}.log", now_nanos()));
    let child = Command::new(BIN)
        .arg("--config")
        .arg(cfg)
        .args(["--log-format", "json", "run", "--http", "127.0.0.1:0"])
        .current_dir(ws.dir())
        .env("STOCKGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Daemon { child, log }
}

/// Who holds each unit of work, by `status --json` of config `cfg`.
fn holders(ws: &Workspace, cfg: &std::path::Path) -> Vec<Option<String>> {
    let o = run_bin(
        &[
            "--config".into(),
            cfg.display().to_string(),
            "status".into(),
            "--json".into(),
        ],
        ws.dir(),
    );
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let st = o.json();
    st["carts"]
        .as_array()
        .unwrap()
        .iter()
        .chain(st["inbound"].as_array().unwrap())
        .map(|e| e["held_by"].as_str().map(String::from))
        .collect()
}

#[test]
fn two_gateways_on_one_postgres_ledger_share_the_work_apply_each_file_once_and_take_over_after_a_kill_9()
 {
    let Some(cluster) = pg::cluster() else {
        return;
    };
    let _ = cluster;
    let carts: String = ["c1", "c2", "c3", "c4"]
        .iter()
        .map(|c| full_cart(c, "every 1s"))
        .collect();
    let ws = service_ws(&carts);
    let url = pg::fresh_database("two_gateways");
    let cfg_a = on_postgres(&ws, "gw-a.toml", &url, "gw-a");
    let cfg_b = on_postgres(&ws, "gw-b.toml", &url, "gw-b");
    let a = start_cfg(&ws, &cfg_a);
    let b = start_cfg(&ws, &cfg_b);
    // Six units of work (4 carts, 2 sources), three each once both are up.
    wait_for(
        "the work spread over both gateways",
        Duration::from_secs(30),
        || {
            let h = holders(&ws, &cfg_a);
            h.iter().filter(|x| x.as_deref() == Some("gw-a")).count() == 3
                && h.iter().filter(|x| x.as_deref() == Some("gw-b")).count() == 3
        },
    );
    // The same inbox folders, seen by both: each file applied once.
    for i in 0..10 {
        drop_file(
            &ws,
            if i % 2 == 0 { "a" } else { "b" },
            &format!("s{i}.csv"),
            &format!("SKU,Qty\nK{i},{i}\n"),
        );
    }
    let ledger = || {
        stockgate::ledger::Ledger::open(stockgate::ledger::LedgerLocation::Postgres(
            stockgate::ledger::PgUrl::new(&url),
        ))
        .unwrap()
    };
    wait_for("ten files applied", Duration::from_secs(30), || {
        ledger().debug_rows("reports", &[]).unwrap().rows.len() == 10
    });
    let files = ledger().debug_rows("inbound_files", &[]).unwrap();
    assert_eq!(files.count(|r| r.text("outcome") == Some("applied")), 10);
    // kill -9 of one: the other has all the work within two leases (6 s).
    b.signal("-KILL");
    let t = Instant::now();
    wait_for("gw-a holding everything", Duration::from_secs(20), || {
        holders(&ws, &cfg_a)
            .iter()
            .all(|x| x.as_deref() == Some("gw-a"))
    });
    let took = t.elapsed();
    eprintln!("takeover after kill -9: {took:?} (lease 3s)");
    assert!(took <= Duration::from_millis(6500), "took over in {took:?}");
    // It goes on: new files applied once, every cart sent the new SKU.
    drop_file(&ws, "b", "late.csv", "SKU,Qty\nLATE,7\n");
    wait_for("every cart sending LATE", Duration::from_secs(20), || {
        ["c1", "c2", "c3", "c4"].iter().all(|c| {
            feeds(&ws.path(&format!("out/{c}")))
                .last()
                .and_then(|f| std::fs::read_to_string(ws.path(&format!("out/{c}/{f}"))).ok())
                .is_some_and(|f| f.contains("LATE,7"))
        })
    });
    let reports = ledger().debug_rows("reports", &[]).unwrap();
    assert_eq!(reports.rows.len(), 11);
    // Every cart's last feed is the independent sum: K0..K9 and LATE.
    let mut want: Vec<String> = (0..10).map(|i| format!("K{i},{i}")).collect();
    want.push("LATE,7".into());
    want.sort();
    let want = format!("SKU,Quantity\n{}\n", want.join("\n"));
    for c in ["c1", "c2", "c3", "c4"] {
        wait_for("the independent sum", Duration::from_secs(10), || {
            feed_is(&ws, c, &want)
        });
    }
    // No cart synced by two gateways at once: its attempts never overlap.
    let syncs = ledger()
        .debug_rows("syncs", &["cart", "started_at"])
        .unwrap();
    let spans: Vec<(String, i64, i64)> = syncs
        .iter()
        .map(|r| {
            (
                r.text("cart").unwrap().to_string(),
                r.int("started_at").unwrap(),
                r.int("finished_at").unwrap(),
            )
        })
        .collect();
    assert!(spans.len() > 8, "{spans:?}");
    for w in spans.windows(2) {
        if w[0].0 == w[1].0 {
            assert!(
                w[1].1 >= w[0].2,
                "overlapping attempts of {}: {w:?}",
                w[0].0
            );
        }
    }
    let (_, st) = a.term();
    assert!(st.success());
    assert!(holders(&ws, &cfg_a).iter().all(Option::is_none));
}

#[test]
fn healthz_says_ledger_while_postgres_is_down_and_the_gateway_recovers_by_itself() {
    let Some(db) = pg::OwnCluster::new("pgdown") else {
        return;
    };
    let ws = service_ws(&full_cart("shop", "every 1s"));
    let cfg = on_postgres(&ws, "pg.toml", &db.url("stockgate"), "gw-one");
    let d = start_cfg(&ws, &cfg);
    let addr = http_addr(&d);
    let health = || try_get(&addr, "/healthz").unwrap_or_default();
    let status = |h: &str| h.split_whitespace().nth(1).map(str::to_string);
    wait_for("healthy", Duration::from_secs(20), || {
        status(&health()).as_deref() == Some("200")
    });
    drop_file(&ws, "a", "one.csv", "SKU,Qty\nK1,1\n");
    wait_for("K1 sent", Duration::from_secs(20), || {
        feed_is(&ws, "shop", "SKU,Quantity\nK1,1\n")
    });
    db.stop();
    wait_for("503 ledger", Duration::from_secs(30), || {
        let h = health();
        status(&h).as_deref() == Some("503") && h.contains("ledger")
    });
    let mut d = d;
    assert!(d.child.try_wait().unwrap().is_none(), "{}", d.log());
    db.start();
    wait_for("healthy again", Duration::from_secs(30), || {
        status(&health()).as_deref() == Some("200")
    });
    // And working: a new file reaches the cart, applied once.
    drop_file(&ws, "a", "two.csv", "SKU,Qty\nK1,5\n");
    wait_for("K1 = 5 sent", Duration::from_secs(30), || {
        feed_is(&ws, "shop", "SKU,Quantity\nK1,5\n")
    });
    let log = d.log();
    let (_, st) = d.term();
    assert!(st.success(), "{log}");
}

#[test]
fn a_gateway_stopped_past_its_lease_finds_its_work_taken_and_writes_nothing_twice() {
    let Some(_) = pg::cluster() else {
        return;
    };
    let carts: String = ["c1", "c2"]
        .iter()
        .map(|c| full_cart(c, "every 1s"))
        .collect();
    let ws = service_ws(&carts);
    let url = pg::fresh_database("sigstop");
    let cfg_a = on_postgres(&ws, "gw-a.toml", &url, "gw-a");
    let cfg_b = on_postgres(&ws, "gw-b.toml", &url, "gw-b");
    let a = start_cfg(&ws, &cfg_a);
    wait_for("gw-a holding everything", Duration::from_secs(20), || {
        holders(&ws, &cfg_a)
            .iter()
            .all(|x| x.as_deref() == Some("gw-a"))
    });
    drop_file(&ws, "a", "one.csv", "SKU,Qty\nK1,1\n");
    wait_for("K1 sent", Duration::from_secs(20), || {
        feed_is(&ws, "c1", "SKU,Quantity\nK1,1\n") && feed_is(&ws, "c2", "SKU,Quantity\nK1,1\n")
    });
    // Frozen past its lease (a long GC pause, a VM stall): gw-b takes over.
    a.signal("-STOP");
    let b = start_cfg(&ws, &cfg_b);
    wait_for("gw-b holding everything", Duration::from_secs(20), || {
        holders(&ws, &cfg_b)
            .iter()
            .all(|x| x.as_deref() == Some("gw-b"))
    });
    drop_file(&ws, "a", "two.csv", "SKU,Qty\nK1,2\n");
    wait_for("K1 = 2 sent by gw-b", Duration::from_secs(20), || {
        feed_is(&ws, "c1", "SKU,Quantity\nK1,2\n") && feed_is(&ws, "c2", "SKU,Quantity\nK1,2\n")
    });
    // Woken: its next write finds the lease gone and stops that work.
    a.signal("-CONT");
    drop_file(&ws, "b", "three.csv", "SKU,Qty\nK2,3\n");
    wait_for("K2 sent", Duration::from_secs(20), || {
        feed_is(&ws, "c1", "SKU,Quantity\nK1,2\nK2,3\n")
            && feed_is(&ws, "c2", "SKU,Quantity\nK1,2\nK2,3\n")
    });
    std::thread::sleep(Duration::from_secs(2));
    let (_, st_a) = a.term();
    let (_, st_b) = b.term();
    assert!(st_a.success() && st_b.success());
    let l = stockgate::ledger::Ledger::open(stockgate::ledger::LedgerLocation::Postgres(
        stockgate::ledger::PgUrl::new(&url),
    ))
    .unwrap();
    // Each file applied once; each delivered feed file recorded once.
    assert_eq!(l.debug_rows("reports", &[]).unwrap().rows.len(), 3);
    let files = l.debug_rows("inbound_files", &[]).unwrap();
    assert_eq!(files.count(|r| r.text("outcome") == Some("applied")), 3);
    let syncs = l.debug_rows("syncs", &[]).unwrap();
    let mut sent: Vec<String> = syncs
        .iter()
        .filter(|r| r.text("outcome") == Some("sent"))
        .map(|r| r.text("file").unwrap().to_string())
        .collect();
    let n = sent.len();
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), n, "a feed file marked sent twice");
}

/// Issue 19.5: the status page and /metrics show the order loop: each
/// feed, what waits for it, orders by status, and an order held back.
#[test]
fn the_status_page_and_metrics_show_the_order_loop() {
    let ws = Workspace::new();
    let feed = |table: &str, id: &str, extra: &str, mapping: &str| {
        format!(
            "\n[[{table}]]\nid = \"{id}\"\nmerchant = \"m1\"\nformat = \"csv\"\nmapping = \"{mapping}\"\nschedule = \"every 1h\"\n{extra}\n[{table}.transport]\ntype = \"dir\"\npath = \"out/{id}\"\n"
        )
    };
    ws.config(&format!(
        "{}{}{}{}",
        header(&["m1"]),
        inbound(
            "shop-orders",
            "m1",
            "orders",
            "orders",
            "warehouse = \"EAST\""
        ),
        feed(
            "order_feed",
            "east-orders",
            "warehouse = \"EAST\"",
            "order-feed"
        ),
        feed(
            "confirm_feed",
            "shop-confirms",
            "orders_from = [\"shop-orders\"]",
            "confirm-feed"
        ),
    ));
    ws.mapping(
        "orders",
        "format = \"csv\"\nrecord = \"orders\"\n[columns]\norder_id = \"Order\"\nsku = \"SKU\"\nquantity = \"Qty\"\nship_to_name = \"Name\"\n",
    );
    ws.mapping(
        "order-feed",
        "format = \"csv\"\ncolumns = [ { header = \"Order\", field = \"order_id\" }, { header = \"Name\", field = \"ship_to_name\", required = true } ]\n",
    );
    ws.mapping(
        "confirm-feed",
        "format = \"csv\"\ncolumns = [ { header = \"Order\", field = \"order_id\" }, { header = \"Tracking\", field = \"tracking\" } ]\n",
    );
    ws.write(
        "in/shop-orders/o.csv",
        "Order,SKU,Qty,Name\n8001,A,1,Ann\n8002,B,2,\n",
    );
    let d = Daemon::start(
        &ws,
        &["--log-format", "json", "run", "--http", "127.0.0.1:0"],
    );
    let addr = http_addr(&d);
    wait_for(
        "the order feed's first sync",
        Duration::from_secs(20),
        || ws.files_under("out/east-orders").len() == 1,
    );
    let metrics = http_body(&addr, "/metrics");
    for want in [
        "stockgate_orders{status=\"sent\"} 1",
        "stockgate_orders{status=\"open\"} 1",
        "stockgate_feed_waiting{cart=\"east-orders\"} 0",
        "stockgate_feed_waiting{cart=\"shop-confirms\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == want),
            "no {want} in:\n{metrics}"
        );
    }
    let page = http_body(&addr, "/");
    assert!(page.contains("<h2>Order loop</h2>"), "{page}");
    assert!(
        page.contains("east-orders") && page.contains("shop-confirms"),
        "{page}"
    );
    assert!(
        page.contains("Order 8002 (source shop-orders) held back"),
        "{page}"
    );
    assert!(page.contains("missing ship_to_name"), "{page}");
    d.term();
}
