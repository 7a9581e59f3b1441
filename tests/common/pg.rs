//! A throwaway PostgreSQL cluster for the tests (CONTRACT §7): `initdb`
//! (as the `postgres` user when the tests run as root) into a temporary
//! folder, `postgres` on a free loopback port with `fsync=off`, watched by
//! a small shell that stops it when this test binary exits. One cluster
//! per test binary; one schema per workspace folder, so every workspace
//! starts from an empty ledger.
//!
//! With `STOCKGATE_TEST_LEDGER=postgres`, [`super::header`] names the
//! ledger by `url_env = "STOCKGATE_TEST_DATABASE_URL"` and every run of
//! the binary from a workspace gets that workspace's URL: the same tests
//! run against either ledger. Without a server the PostgreSQL tests skip,
//! unless `STOCKGATE_REQUIRE_POSTGRES=1` (CI), which fails them instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The environment variable a PostgreSQL workspace's config names.
pub const URL_ENV: &str = "STOCKGATE_TEST_DATABASE_URL";

/// Whether this run puts the tests' ledgers on PostgreSQL.
pub fn enabled() -> bool {
    std::env::var("STOCKGATE_TEST_LEDGER").is_ok_and(|v| v == "postgres")
}

pub struct Cluster {
    pub port: u16,
    pub dir: PathBuf,
}

impl Cluster {
    /// The URL of database `db` as the superuser (trust auth on loopback).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("postgres").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// `cmd` as the `postgres` user when we are root (initdb refuses root).
fn as_pg(bin: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin).args(args);
        c
    } else {
        let mut c = Command::new(bin);
        c.args(args);
        c
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// initdb into a new folder `name` under the temporary folder (owned by
/// the `postgres` user when we are root): (bin dir, folder, data folder).
fn init(name: &str) -> Result<(PathBuf, PathBuf, String), String> {
    let bin =
        bin_dir().ok_or("no PostgreSQL under /usr/lib/postgresql (apt-get install postgresql)")?;
    let dir = std::env::temp_dir().join(format!("stockgate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if is_root() {
        let ok = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| e.to_string())?;
        if !ok.success() {
            return Err("cannot chown the cluster folder to postgres".into());
        }
    }
    let data = dir.join("data");
    let data_s = data.display().to_string();
    let out = as_pg(
        &bin.join("initdb"),
        &[
            "-D",
            &data_s,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "-N",
        ],
    )
    .stdout(Stdio::null())
    .output()
    .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!("initdb: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok((bin, dir, data_s))
}

fn start() -> Result<Cluster, String> {
    let (bin, dir, data_s) = init("pg")?;
    let port = free_port();
    let dir_s = dir.display().to_string();
    // The server, and a watcher that stops it once this test binary is gone.
    let postgres = format!(
        "{} -D {data_s} -p {port} -h 127.0.0.1 -k {dir_s} -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=300 -c shared_buffers=64MB",
        bin.join("postgres").display()
    );
    let script = format!(
        "{postgres} >{dir_s}/log 2>&1 & pg=$!; \
         while [ -d /proc/{me} ] && [ -d /proc/$pg ]; do sleep 0.5; done; \
         kill -INT $pg 2>/dev/null; wait $pg; rm -rf {dir_s}",
        me = std::process::id()
    );
    let mut watcher = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", &script]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", &script]);
        c
    };
    watcher
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start postgres: {e}"))?;
    let cluster = Cluster { port, dir };
    let t = Instant::now();
    loop {
        match postgres::Client::connect(&cluster.url("postgres"), postgres::NoTls) {
            Ok(mut c) => {
                c.batch_execute("CREATE DATABASE stockgate_test")
                    .map_err(|e| e.to_string())?;
                return Ok(cluster);
            }
            Err(_) if t.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => {
                let log = std::fs::read_to_string(cluster.dir.join("log")).unwrap_or_default();
                return Err(format!("postgres did not start: {e}\n{log}"));
            }
        }
    }
}

/// The cluster of this test binary, started on first use; None (skip)
/// when PostgreSQL is not installed, a failure under
/// `STOCKGATE_REQUIRE_POSTGRES=1`.
pub fn cluster() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(start) {
        Ok(c) => Some(c),
        Err(e) if std::env::var("STOCKGATE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
            panic!("PostgreSQL required (STOCKGATE_REQUIRE_POSTGRES=1): {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: no PostgreSQL for this test: {e}");
            None
        }
    }
}

/// The cluster, or a panic: for runs with `STOCKGATE_TEST_LEDGER=postgres`.
fn required() -> &'static Cluster {
    cluster().expect("STOCKGATE_TEST_LEDGER=postgres needs a PostgreSQL server")
}

/// A new, empty database of the cluster, and its URL.
pub fn fresh_database(name: &str) -> String {
    let c = required();
    let mut admin = postgres::Client::connect(&c.url("postgres"), postgres::NoTls)
        .expect("connect to the test cluster");
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .expect("drop database");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    c.url(name)
}

/// The URL of the workspace at `dir`: its own schema of the test database
/// (created on first use), through `options=-csearch_path`.
pub fn url_for(dir: &Path) -> String {
    static MADE: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let c = required();
    let schema = format!(
        "ws_{}",
        super::sha256_hex(dir.as_os_str().as_encoded_bytes())
            .get(..16)
            .unwrap()
    );
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if !made.contains(&schema) {
        let mut admin = postgres::Client::connect(&c.url("stockgate_test"), postgres::NoTls)
            .expect("connect to the test cluster");
        admin
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .expect("create schema");
        made.push(schema.clone());
    }
    format!(
        "{}?options=-csearch_path%3D{schema}",
        c.url("stockgate_test")
    )
}

/// The environment a run of the binary from workspace `dir` needs: with
/// `STOCKGATE_TEST_LEDGER=postgres`, its ledger's URL; else nothing.
pub fn env_for(dir: &Path) -> Vec<(String, String)> {
    if enabled() {
        vec![(URL_ENV.to_string(), url_for(dir))]
    } else {
        vec![]
    }
}

/// Whether the workspace at `dir` has no ledger yet (no table in its schema).
pub fn is_new(dir: &Path) -> bool {
    let c = required();
    let url = url_for(dir);
    let schema = url.rsplit("%3D").next().unwrap_or_default().to_string();
    let mut admin = postgres::Client::connect(&c.url("stockgate_test"), postgres::NoTls)
        .expect("connect to the test cluster");
    let n: i64 = admin
        .query_one(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .expect("count tables")
        .get(0);
    n == 0
}

/// A cluster of one test's own, that it can stop and start again (the
/// database going away under a running gateway); stopped and removed on
/// drop.
pub struct OwnCluster {
    bin: PathBuf,
    dir: PathBuf,
    data: String,
    pub port: u16,
}

impl OwnCluster {
    /// None (skip) without PostgreSQL, as [`cluster`].
    pub fn new(name: &str) -> Option<OwnCluster> {
        cluster()?;
        let (bin, dir, data) = init(name).expect("initdb");
        let c = OwnCluster {
            bin,
            dir,
            data,
            port: free_port(),
        };
        c.start();
        let mut admin = postgres::Client::connect(&c.url("postgres"), postgres::NoTls)
            .expect("connect to the own cluster");
        admin
            .batch_execute("CREATE DATABASE stockgate")
            .expect("create database");
        Some(c)
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) {
        let out = as_pg(&self.bin.join("pg_ctl"), args)
            .output()
            .expect("pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn start(&self) {
        let opts = format!(
            "-p {} -h 127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        let log = format!("{}/log", self.dir.display());
        self.pg_ctl(&["-D", &self.data, "-l", &log, "-o", &opts, "-w", "start"]);
    }

    pub fn stop(&self) {
        self.pg_ctl(&["-D", &self.data, "-m", "immediate", "-w", "stop"]);
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = as_pg(
            &self.bin.join("pg_ctl"),
            &["-D", &self.data, "-m", "immediate", "-w", "stop"],
        )
        .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `cfg` with its `[ledger]` location (the first `path = ` or `url_env = `
/// line) replaced by `line`.
pub fn ledger_line(cfg: &str, line: &str) -> String {
    let mut done = false;
    cfg.lines()
        .map(|l| {
            if !done && (l.starts_with("path = ") || l.starts_with("url_env = ")) {
                done = true;
                line.to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
