//! Test workspace: a temporary folder with stockgate.toml, mappings/*.toml
//! and data files, driving the real binary.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use stockgate::ledger::Ledger;
use stockgate::ledger::debug::{DebugRow, DebugTable};

pub const BIN: &str = env!("CARGO_BIN_EXE_stockgate");

/// What a run of the binary gave.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

pub struct Workspace {
    pub tmp: tempfile::TempDir,
}

/// Inventory CSV mapping: SKU, Whse, Qty, AsOf (RFC 3339 column), UPC, Title.
pub const INV_MAPPING: &str = r#"format = "csv"
record = "inventory"
[columns]
sku = "SKU"
warehouse = "Whse"
quantity = "Qty"
as_of = "AsOf"
upc = "UPC"
description = "Title"
"#;

/// Inventory CSV mapping without warehouse or as-of columns (as-of = file mtime).
pub const INV_PLAIN_MAPPING: &str = r#"format = "csv"
record = "inventory"
[columns]
sku = "SKU"
quantity = "Qty"
"#;

/// Orders CSV mapping with every optional column.
pub const ORD_MAPPING: &str = r#"format = "csv"
record = "orders"
cancelled = ["cancelled", "void"]
[columns]
order_id = "Order"
line = "Line"
sku = "SKU"
quantity = "Qty"
status = "Status"
ordered_at = "At"
warehouse = "Whse"
"#;

/// Orders mapping without an ordered_at column: order time = ingest time.
pub const ORD_NOTIME_MAPPING: &str = r#"format = "csv"
record = "orders"
cancelled = ["cancelled"]
[columns]
order_id = "Order"
line = "Line"
sku = "SKU"
quantity = "Qty"
status = "Status"
"#;

pub const FEED_MAPPING: &str = r#"format = "csv"
header = true
columns = [ { header = "SKU", field = "sku" }, { header = "Quantity", field = "quantity" } ]
"#;

/// One `[[cart]]` section with a dir transport under out/<id>.
pub fn cart(id: &str, merchant: &str, extra: &str) -> String {
    format!(
        r#"
[[cart]]
id = "{id}"
merchant = "{merchant}"
format = "csv"
mapping = "feed"
schedule = "every 1m"
{extra}
[cart.transport]
type = "dir"
path = "out/{id}"
file_name = "{{cart}}-{{seq}}.csv"
"#
    )
}

/// One `[[inbound]]` section with a dir transport under in/<id>.
pub fn inbound(id: &str, merchant: &str, kind: &str, mapping: &str, extra: &str) -> String {
    format!(
        r#"
[[inbound]]
id = "{id}"
merchant = "{merchant}"
kind = "{kind}"
mapping = "{mapping}"
{extra}
[inbound.transport]
type = "dir"
path = "in/{id}"
pattern = "*"
"#
    )
}

pub fn header(merchants: &[&str]) -> String {
    let ledger = if pg::enabled() {
        format!("url_env = \"{}\"", pg::URL_ENV)
    } else {
        "path = \"var/ledger.sqlite\"".to_string()
    };
    let mut s = format!(
        "[ledger]\n{ledger}\narchive = \"var/archive\"\nquarantine = \"var/quarantine\"\n",
    );
    for m in merchants {
        s.push_str(&format!("\n[[merchant]]\nid = \"{m}\"\n"));
    }
    s
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The usual workspace: merchant m1, inventory source `wms` (INV_MAPPING),
    /// orders source `orders` (ORD_MAPPING), cart `shop` (changed-only) plus `carts`.
    pub fn standard(carts: &str) -> Workspace {
        let ws = Workspace::new();
        let cfg = format!(
            "{}{}{}{}{}",
            header(&["m1"]),
            inbound("wms", "m1", "inventory", "inv", ""),
            inbound("orders", "m1", "orders", "ord", ""),
            cart("shop", "m1", ""),
            carts
        );
        ws.config(&cfg);
        ws.mapping("inv", INV_MAPPING);
        ws.mapping("ord", ORD_MAPPING);
        ws.mapping("feed", FEED_MAPPING);
        ws
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir().join(rel)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("stockgate.toml")
    }

    pub fn write(&self, rel: &str, body: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, body).unwrap();
        p
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub fn config(&self, body: &str) {
        self.write("stockgate.toml", body);
    }

    pub fn mapping(&self, name: &str, body: &str) {
        self.write(&format!("mappings/{name}.toml"), body);
    }

    /// Runs the binary with `--config <ws>/stockgate.toml` and `args`.
    pub fn run(&self, args: &[&str]) -> Out {
        let mut full: Vec<String> =
            vec!["--config".into(), self.config_path().display().to_string()];
        full.extend(args.iter().map(|s| s.to_string()));
        run_bin(&full, self.dir())
    }

    /// Runs with extra environment variables (passwords for remote servers).
    pub fn run_env(&self, args: &[&str], env: &[(String, String)]) -> Out {
        let mut full: Vec<String> =
            vec!["--config".into(), self.config_path().display().to_string()];
        full.extend(args.iter().map(|s| s.to_string()));
        run_bin_env(&full, self.dir(), env)
    }

    /// Runs and expects `code`; returns the output.
    pub fn run_ok(&self, args: &[&str], code: i32) -> Out {
        let o = self.run(args);
        assert_eq!(
            o.code, code,
            "stockgate {args:?} exited {} (want {code})\nstdout:\n{}\nstderr:\n{}",
            o.code, o.stdout, o.stderr
        );
        o
    }

    /// `ingest --source SRC --json FILE`; returns the one file's JSON object.
    pub fn ingest(&self, src: &str, file: &Path, code: i32) -> Value {
        let f = file.display().to_string();
        let o = self.run_ok(&["ingest", "--source", src, "--json", &f], code);
        let v = o.json();
        assert_eq!(v.as_array().map(|a| a.len()), Some(1), "{v}");
        v[0].clone()
    }

    /// Writes `body` to in/<src>/<name> and ingests it, expecting exit 0 and `applied`.
    pub fn apply(&self, src: &str, name: &str, body: &str) -> Value {
        let p = self.write(&format!("in/{src}/{name}"), body);
        let v = self.ingest(src, &p, 0);
        assert_eq!(v["outcome"], "applied", "{v}");
        v
    }

    /// `sync CART --json [extra]`, expecting `code`.
    pub fn sync(&self, cart: &str, extra: &[&str], code: i32) -> Value {
        let mut args = vec!["sync", cart, "--json"];
        args.extend_from_slice(extra);
        self.run_ok(&args, code).json()
    }

    /// Syncs and returns the delivered feed's text (outcome must be "sent").
    pub fn sync_feed(&self, cart: &str, extra: &[&str]) -> String {
        let v = self.sync(cart, extra, 0);
        assert_eq!(v["outcome"], "sent", "{v}");
        let f = v["file"].as_str().expect("file").to_string();
        std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("read feed {f}: {e}"))
    }

    pub fn explain(&self, sku: &str, cart: Option<&str>) -> Value {
        self.explain_m("m1", sku, cart)
    }

    pub fn explain_m(&self, merchant: &str, sku: &str, cart: Option<&str>) -> Value {
        let mut args = vec!["explain", "--merchant", merchant, "--sku", sku, "--json"];
        if let Some(c) = cart {
            args.extend(["--cart", c]);
        }
        self.run_ok(&args, 0).json()
    }

    /// The value explain says `cart` gets for `sku`.
    pub fn value(&self, sku: &str, cart: &str) -> i64 {
        let v = self.explain(sku, Some(cart));
        v["carts"][0]["value"]
            .as_i64()
            .unwrap_or_else(|| panic!("no value in {v}"))
    }

    pub fn history(&self, cart: &str) -> Vec<Value> {
        self.run_ok(&["history", "--cart", cart, "--json"], 0)
            .json()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Every file under `rel` (recursively), as paths relative to it, sorted.
    pub fn files_under(&self, rel: &str) -> Vec<String> {
        files_under(&self.path(rel))
    }

    /// Row counts of every table plus full dumps of the rule tables.
    pub fn ledger_dump(&self) -> String {
        let new = if pg::enabled() {
            pg::is_new(self.dir())
        } else {
            !self.path("var/ledger.sqlite").exists()
        };
        if new {
            self.run_ok(&["status"], 0); // creates the (empty) ledger
        }
        let l = self.ledger();
        let names = l.debug_tables().unwrap();
        assert!(names.len() >= 10, "tables: {names:?}");
        let mut s = String::new();
        // The file logs record every file received, rejected ones included
        // (status reads them); what must not change is everything else.
        for (n, c) in l
            .table_counts()
            .unwrap()
            .into_iter()
            .filter(|(n, _)| !["inbound_files", "remote_files"].contains(&n.as_str()))
        {
            s.push_str(&format!("{n}: {c}\n"));
        }
        for (t, order) in [
            ("stock", &["merchant", "sku", "warehouse"][..]),
            ("order_lines", &["source", "order_id", "line"]),
            ("products", &["merchant", "sku"]),
            ("carts", &["id"]),
            ("last_sent", &["cart", "sku"]),
            ("reports", &["id"]),
        ] {
            let rows: Vec<String> = l
                .debug_rows(t, order)
                .unwrap()
                .iter()
                .map(|r| {
                    let v: Vec<String> = r.values().iter().map(|x| format!("{x:?}")).collect();
                    v.join("|")
                })
                .collect();
            s.push_str(&format!("[{t}]\n{}\n", rows.join("\n")));
        }
        s
    }

    /// The workspace's ledger, opened (created when missing).
    pub fn ledger(&self) -> Ledger {
        Ledger::open(self.ledger_location()).expect("open ledger")
    }

    /// Where this workspace's ledger is: its SQLite file, or with
    /// `STOCKGATE_TEST_LEDGER=postgres` its schema of the test cluster.
    pub fn ledger_location(&self) -> stockgate::ledger::LedgerLocation {
        if pg::enabled() {
            stockgate::ledger::LedgerLocation::Postgres(stockgate::ledger::PgUrl::new(
                &pg::url_for(self.dir()),
            ))
        } else {
            stockgate::ledger::LedgerLocation::file(self.path("var/ledger.sqlite"))
        }
    }

    /// Every row of a ledger table (test support: no SQL in tests).
    pub fn rows(&self, table: &str) -> DebugTable {
        self.ledger().debug_rows(table, &[]).unwrap()
    }

    /// How many rows a ledger table has.
    pub fn count(&self, table: &str) -> i64 {
        let counts = self.ledger().table_counts().unwrap();
        counts
            .into_iter()
            .find(|(n, _)| n == table)
            .unwrap_or_else(|| panic!("no table {table}"))
            .1
    }

    /// The sum of an integer column of a ledger table.
    pub fn sum(&self, table: &str, column: &str) -> i64 {
        self.ledger().debug_sum(table, column).unwrap()
    }

    /// How many rows of a ledger table `f` holds for.
    pub fn count_where(&self, table: &str, f: impl Fn(DebugRow) -> bool) -> i64 {
        self.rows(table).count(f)
    }
}

/// Polls `f` until it holds; fails the test after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Feed files (not temporary ones) in a folder, sorted.
pub fn feeds(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

/// Every file under `root` (recursively), as paths relative to it, sorted.
pub fn files_under(root: &Path) -> Vec<String> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = vec![];
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Makes folder `rel` (and its parents) under `root`, each folder it makes
/// owned by `owner` (a test server's user).
pub fn mkdir_owned(root: &Path, rel: &str, owner: Option<(u32, u32)>) -> PathBuf {
    let mut p = root.to_path_buf();
    for part in rel.split('/').filter(|s| !s.is_empty()) {
        p.push(part);
        if !p.is_dir() {
            std::fs::create_dir(&p).unwrap();
            if let Some((u, g)) = owner {
                std::os::unix::fs::chown(&p, Some(u), Some(g)).unwrap();
            }
        }
    }
    p
}

/// Writes file `rel` under `root` (its folder made as by [`mkdir_owned`]),
/// owned by `owner`.
pub fn write_owned(root: &Path, rel: &str, body: &[u8], owner: Option<(u32, u32)>) -> PathBuf {
    if let Some((dir, _)) = rel.rsplit_once('/') {
        mkdir_owned(root, dir, owner);
    }
    let p = root.join(rel);
    std::fs::write(&p, body).unwrap();
    if let Some((u, g)) = owner {
        std::os::unix::fs::chown(&p, Some(u), Some(g)).unwrap();
    }
    p
}

pub fn run_bin(args: &[String], cwd: &Path) -> Out {
    run_bin_env(args, cwd, &[])
}

pub fn run_bin_env(args: &[String], cwd: &Path, env: &[(String, String)]) -> Out {
    let mut cmd = Command::new(BIN);
    if pg::enabled() {
        cmd.env(pg::URL_ENV, pg::url_for(cwd));
    }
    let o = cmd
        .args(args)
        .current_dir(cwd)
        .env_remove("STOCKGATE_CONFIG")
        .env("STOCKGATE_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run stockgate");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Sets a file's modification time to `secs` after the Unix epoch.
pub fn set_mtime(p: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

/// RFC 3339 UTC instant → seconds since the epoch (for set_mtime).
pub fn epoch(rfc3339: &str) -> u64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp() as u64
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Today's date as the archive names it (UTC).
pub fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// The shared folder beside the repository (contract, samples, tools).
pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// A third-party X12 sample under shared/samples/x12/ (read in place, never copied into the repo).
pub fn x12_sample(name: &str) -> PathBuf {
    let p = shared_dir().join("samples/x12").join(name);
    assert!(p.is_file(), "missing sample {}", p.display());
    p
}

/// Runs the independent X12 validator (shared/tools/x12-validate) on `files`;
/// panics with its output unless it exits 0.
pub fn x12_validate(files: &[&Path]) {
    let tool = shared_dir().join("tools/x12-validate/x12-validate");
    let o = Command::new(&tool)
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", tool.display()));
    assert!(
        o.status.success(),
        "x12-validate {files:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}
pub mod fake_ftp;
pub mod ftp_checks;
pub mod ftpd;
pub mod pg;
pub mod proxy;
pub mod remote;
pub mod sshd;
pub mod vsftpd;
