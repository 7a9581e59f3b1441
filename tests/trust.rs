//! Issue 15, "Trust, round two": the schedule after the clock came back,
//! the archive copy before a delivery, and what a crash leaves in the
//! archive.

mod common;
use common::*;

const STOCK: &str =
    "SKU,Whse,Qty,AsOf,UPC,Title\nA,W1,10,2025-06-01T10:00:00Z,,\nB,W1,3,2025-06-01T10:00:00Z,,\n";
const STOCK2: &str = "SKU,Whse,Qty,AsOf,UPC,Title\nA,W1,8,2025-06-02T10:00:00Z,,\n";

#[test]
fn a_last_attempt_a_day_ahead_does_not_stop_an_every_minute_cart() {
    let ws = Workspace::standard("");
    ws.apply("wms", "s1.csv", STOCK);
    assert_eq!(ws.sync("shop", &[], 0)["outcome"], "sent");
    // One pass while the clock was a day ahead, then it came back.
    let ahead = now_secs() as i64 * 1000 + 86_400_000;
    let ledger = stockgate::ledger::Ledger::open(ws.path("var/ledger.sqlite")).unwrap();
    ledger.keep_schedule("shop", Some(ahead)).unwrap();
    drop(ledger);
    ws.apply("wms", "s2.csv", STOCK2);
    let o = ws.run_ok(&["run", "--once"], 0);
    assert!(
        o.stderr.contains("the last attempt is in the future"),
        "{}",
        o.stderr
    );
    let h = ws.history("shop");
    assert_eq!(h.len(), 2, "{h:?}");
    assert_eq!(h[0]["outcome"], "sent", "{h:?}");
    assert_eq!(h[0]["items"], 1, "{h:?}");
    assert_eq!(ws.files_under("out/shop").len(), 2);
}

#[test]
fn a_feed_that_cannot_be_archived_is_not_sent() {
    let ws = Workspace::standard("");
    ws.apply("wms", "s1.csv", STOCK);
    // A file where the cart's archive day folder should be: no archive copy.
    let day = format!("var/archive/shop/{}", today());
    ws.write(&day, "in the way");
    let o = ws.run_ok(&["sync", "shop", "--json"], 1);
    let v = o.json();
    assert_eq!(v["outcome"], "failed", "{v}");
    let reason = v["reason"].as_str().unwrap();
    let folder = ws.path(&day).display().to_string();
    assert!(
        reason.starts_with("not sent: cannot archive ") && reason.contains(&folder),
        "{reason}"
    );
    assert!(
        ws.files_under("out").is_empty(),
        "{:?}",
        ws.files_under("out")
    );
    let h = ws.history("shop");
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["outcome"], "failed");
    assert_eq!(ws.count("last_sent"), 0);
    // Fixed: the next sync sends everything (the marks did not move).
    std::fs::remove_file(ws.path(&day)).unwrap();
    let v = ws.sync("shop", &[], 0);
    assert_eq!(v["outcome"], "sent", "{v}");
    assert_eq!(v["items"], 2, "{v}");
    let feed = v["file"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(feed).unwrap(),
        "SKU,Quantity\nA,10\nB,3\n"
    );
    assert_eq!(ws.files_under("out/shop").len(), 1);
    assert_eq!(ws.files_under("var/archive/shop").len(), 1);
}

/// Runs stockgate in `ws` as a user who cannot write the ledger: nobody
/// (uid 65534) when the tests run as root, whom file modes do not stop.
fn run_unprivileged(ws: &Workspace, args: &[&str]) -> Out {
    use std::os::unix::process::CommandExt;
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("--config")
        .arg(ws.config_path())
        .args(args)
        .current_dir(ws.dir())
        .env_remove("STOCKGATE_CONFIG")
        .env("STOCKGATE_LOG", "warn");
    if root {
        cmd.uid(65534).gid(65534);
    }
    let o = cmd.output().expect("run stockgate");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[test]
fn a_read_only_ledger_is_one_line_naming_the_file() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::standard("");
    ws.apply("wms", "s1.csv", STOCK);
    let ledger = ws.path("var/ledger.sqlite");
    // Everyone may read and write the workspace, except the ledger file.
    for p in [ws.dir().to_path_buf(), ws.path("var")] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    for rel in [
        "stockgate.toml",
        "mappings/inv.toml",
        "mappings/ord.toml",
        "mappings/feed.toml",
    ] {
        std::fs::set_permissions(ws.path(rel), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(ws.path("mappings"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&ledger, std::fs::Permissions::from_mode(0o444)).unwrap();
    let want = format!(
        "error: ledger {} is read-only: this user cannot write it\n",
        ledger.display()
    );
    for args in [&["sync", "shop"][..], &["run", "--once"][..]] {
        let o = run_unprivileged(&ws, args);
        assert_eq!(o.code, 1, "{args:?}: {}", o.stderr);
        assert_eq!(o.stderr, want, "{args:?}");
    }
    // Reading still works.
    let o = run_unprivileged(&ws, &["status"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
}

#[test]
fn archive_copies_no_record_refers_to_are_removed_at_the_start() {
    let ws = Workspace::standard("");
    ws.apply("wms", "s1.csv", STOCK);
    assert_eq!(ws.sync("shop", &[], 0)["outcome"], "sent");
    let day = today();
    let hour_ago = now_secs() - 3600;
    let kept: Vec<String> = ["wms", "shop"]
        .iter()
        .flat_map(|id| {
            ws.files_under(&format!("var/archive/{id}"))
                .into_iter()
                .map(move |f| format!("var/archive/{id}/{f}"))
        })
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    // What a kill -9 between the archive copy and the commit leaves: a feed
    // and a received file under names the archive uses, no record of them.
    let feed = ws.write(
        &format!("var/archive/shop/{day}/shop-000002.csv"),
        "SKU,Quantity\nA,9\n",
    );
    let got = ws.write(&format!("var/archive/wms/{day}/s2.csv"), STOCK2);
    // One written a moment ago (an `ingest` beside us may be about to record it).
    let fresh = ws.write(&format!("var/archive/wms/{day}/s3.csv"), STOCK2);
    for p in kept
        .iter()
        .map(|k| ws.path(k))
        .chain([feed.clone(), got.clone()])
    {
        set_mtime(&p, hour_ago);
    }
    let o = ws.run_ok(&["run", "--once"], 0);
    assert!(!feed.exists(), "{}", o.stderr);
    assert!(!got.exists(), "{}", o.stderr);
    assert!(fresh.exists());
    for k in &kept {
        assert!(ws.path(k).exists(), "{k} is referenced");
    }
    assert_eq!(
        o.stderr
            .matches("removed an archive copy no record refers to")
            .count(),
        2,
        "{}",
        o.stderr
    );
}
