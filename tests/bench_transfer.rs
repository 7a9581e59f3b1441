//! Transfer benchmark (issue 6), not a test: `scripts/bench-transfer` runs it
//! in release mode. Against real servers on loopback (OpenSSH, pure-ftpd),
//! in the same run, alternating, 3 times each, medians:
//! - pick up 2,000 small files (download, apply, archive, delete) with
//!   `stockgate run --once` vs `lftp mirror --Remove-source-files` (FTP) and
//!   OpenSSH's `sftp` batch `get` + `rm` (SFTP), which only download and delete;
//! - deliver a 100 MB feed with `stockgate sync` (render, upload under a
//!   temporary name, size check, rename, archive) vs `lftp put` / `sftp put`
//!   of the same bytes.

mod common;
use common::ftpd::Ftpd;
use common::remote::*;
use common::sshd::Sshd;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const FILES: usize = 2000;
const ROUNDS: usize = 3;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fill(r: &Remote) {
    for i in 0..FILES {
        r.put(
            &format!("in/f{i:05}.csv"),
            format!("SKU,Whse,Qty,AsOf,UPC,Title\nS{i},W1,{i},2025-06-01T10:00:00Z,,\n"),
        );
    }
}

fn timed(what: &str, mut cmd: Command) -> Duration {
    let t = Instant::now();
    let o = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let d = t.elapsed();
    assert!(
        o.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    d
}

fn row(what: &str, ours: &[Duration], theirs: &[Duration], reference: &str) {
    let (a, b) = (median(ours.to_vec()), median(theirs.to_vec()));
    println!(
        "| {what} | {:.2} s (min {:.2}, max {:.2}) | {reference} {:.2} s (min {:.2}, max {:.2}) | {:.2}x |",
        a.as_secs_f64(),
        ours.iter().min().unwrap().as_secs_f64(),
        ours.iter().max().unwrap().as_secs_f64(),
        b.as_secs_f64(),
        theirs.iter().min().unwrap().as_secs_f64(),
        theirs.iter().max().unwrap().as_secs_f64(),
        a.as_secs_f64() / b.as_secs_f64()
    );
}

fn sftp_cmd(s: &Sshd, batch: &str) -> Command {
    let b = s.tmp.path().join(format!("batch-{}", batch.len()));
    std::fs::write(&b, batch).unwrap();
    let mut c = Command::new("sftp");
    c.args([
        "-q",
        "-i",
        &s.key.display().to_string(),
        "-o",
        &format!("UserKnownHostsFile={}", s.known_hosts.display()),
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-P",
        &s.port.to_string(),
        "-b",
        &b.display().to_string(),
        &format!("{}@{}", s.user, s.host),
    ]);
    c
}

fn lftp_cmd(f: &Ftpd, script: &str) -> Command {
    let mut c = Command::new("lftp");
    c.args([
        "-u",
        &format!("{},{}", f.user, f.password),
        "-p",
        &f.port.to_string(),
        "-e",
        &format!("set net:max-retries 1; set ftp:passive-mode on; {script}; quit"),
        &f.host,
    ]);
    c
}

/// A workspace whose cart `shop` delivers a ~100 MB full feed to `r`'s `out`.
fn big_feed_ws(r: &Remote) -> Workspace {
    let ws = full_feed_ws(r);
    ws.apply("wms", "big.csv", &big_stock(5000));
    ws
}

#[test]
#[ignore = "a benchmark: scripts/bench-transfer"]
fn transfer_benchmark() {
    if cfg!(debug_assertions) {
        panic!("run in release: scripts/bench-transfer");
    }
    let s = Sshd::start().expect("sshd");
    let f = Ftpd::start();
    println!("| what | stockgate | reference | ratio |");
    println!("|---|---|---|---|");
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    // --- 2,000 small files ---
    for (kind, r) in [("SFTP", s.remote()), ("FTP", f.remote())] {
        if only == "feed" {
            break;
        }
        let (mut ours, mut theirs) = (vec![], vec![]);
        for _ in 0..ROUNDS {
            let ws = remote_ws(&r, "stable_for = \"0s\"", "");
            fill(&r);
            let mut c = Command::new(BIN);
            c.args([
                "--config",
                &ws.config_path().display().to_string(),
                "run",
                "--once",
            ])
            .envs(r.env.iter().map(|(k, v)| (k, v)))
            .env("STOCKGATE_LOG", "warn");
            ours.push(timed("stockgate run --once", c));
            assert_eq!(ws.count("reports"), FILES as i64);
            assert!(r.files("in").is_empty());
            fill(&r);
            let local = tempfile::tempdir().unwrap();
            let cmd = if kind == "SFTP" {
                sftp_cmd(
                    &s,
                    &format!(
                        "lcd {}\nget {}in/*\nrm {}in/*\n",
                        local.path().display(),
                        r.dir_prefix,
                        r.dir_prefix
                    ),
                )
            } else {
                lftp_cmd(
                    &f,
                    &format!("mirror --Remove-source-files in {}", local.path().display()),
                )
            };
            theirs.push(timed("reference", cmd));
            assert!(r.files("in").is_empty(), "{kind} reference left files");
        }
        let reference = if kind == "SFTP" {
            "sftp get + rm"
        } else {
            "lftp mirror --Remove-source-files"
        };
        row(
            &format!("{kind}: pick up {FILES} small files"),
            &ours,
            &theirs,
            reference,
        );
    }
    // --- a 100 MB feed ---
    for (kind, r) in [("SFTP", s.remote()), ("FTP", f.remote())] {
        let ws = big_feed_ws(&r);
        let (mut ours, mut theirs, mut render) = (vec![], vec![], vec![]);
        let mut size = 0;
        for i in 0..ROUNDS {
            // The same feed rendered and hashed, not sent: what the transfer adds.
            let sync = |extra: &[&str]| {
                let mut c = Command::new(BIN);
                c.args(["--config", &ws.config_path().display().to_string()])
                    .args(["sync", "shop", "--force"])
                    .args(extra)
                    .envs(r.env.iter().map(|(k, v)| (k, v)))
                    .env("STOCKGATE_LOG", "warn");
                c
            };
            render.push(timed("stockgate sync --dry-run", sync(&["--dry-run"])));
            ours.push(timed("stockgate sync", sync(&[])));
            let sent = r.path(&format!("out/shop-{:06}.csv", i + 1));
            size = std::fs::metadata(&sent).unwrap().len();
            let local = ws.path("feed-copy.csv");
            std::fs::copy(&sent, &local).unwrap();
            let cmd = if kind == "SFTP" {
                sftp_cmd(
                    &s,
                    &format!("put {} {}out/ref-{i}.csv\n", local.display(), r.dir_prefix),
                )
            } else {
                lftp_cmd(&f, &format!("put {} -o out/ref-{i}.csv", local.display()))
            };
            theirs.push(timed("reference", cmd));
            assert_eq!(
                std::fs::metadata(r.path(&format!("out/ref-{i}.csv")))
                    .unwrap()
                    .len(),
                size
            );
        }
        let reference = if kind == "SFTP" {
            "sftp put"
        } else {
            "lftp put"
        };
        row(
            &format!("{kind}: deliver a {} MB feed", size / 1_000_000),
            &ours,
            &theirs,
            reference,
        );
        let upload: Vec<Duration> = ours
            .iter()
            .zip(&render)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        row(
            &format!(
                "{kind}: of which upload, size check, rename, archive (sync minus `sync --dry-run`)"
            ),
            &upload,
            &theirs,
            reference,
        );
    }
}
