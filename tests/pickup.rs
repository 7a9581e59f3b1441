//! Pickup rules that hold for every transport, shown on local folders:
//! after / after_rejected, kept files never applied twice, links not
//! followed, names that are not UTF-8 or hold control characters, rejected
//! files in the ledger for `status`.

mod common;
use common::*;

const STOCK: &str = "SKU,Whse,Qty,AsOf,UPC,Title\nA,W1,10,2025-06-01T10:00:00Z,,\n";
const BAD: &str = "SKU,Whse,Qty,AsOf,UPC,Title\nC,W1,x,2025-06-01T10:00:00Z,,\n";

fn ws_with(transport_extra: &str) -> Workspace {
    let ws = Workspace::new();
    ws.config(&format!(
        "{}{}{}{}",
        header(&["m1"]),
        inbound("wms", "m1", "inventory", "inv", ""),
        transport_extra,
        cart("shop", "m1", ""),
    ));
    ws.mapping("inv", INV_MAPPING);
    ws.mapping("feed", FEED_MAPPING);
    ws
}

fn files_logged(ws: &Workspace) -> i64 {
    ws.count("inbound_files")
}

#[test]
fn after_keep_never_applies_a_kept_file_twice() {
    let ws = ws_with("after = \"keep\"\n");
    ws.write("in/wms/s.csv", STOCK);
    let o = ws.run_ok(&["run", "--once"], 0);
    assert!(o.stdout.contains("applied"), "{}", o.stdout);
    assert_eq!(ws.files_under("in/wms"), vec!["s.csv"]);
    assert_eq!(files_logged(&ws), 1);
    for _ in 0..2 {
        ws.run_ok(&["run", "--once"], 0);
    }
    // Neither applied again nor even counted as a duplicate: it was not taken.
    assert_eq!(files_logged(&ws), 1);
    assert_eq!(ws.files_under("var/archive/wms").len(), 1);
    // A changed file of the same name is taken again.
    ws.write(
        "in/wms/s.csv",
        "SKU,Whse,Qty,AsOf,UPC,Title\nA,W1,7,2025-06-02T10:00:00Z,,\n",
    );
    set_mtime(&ws.path("in/wms/s.csv"), now_secs() - 60);
    ws.run_ok(&["run", "--once"], 0);
    assert_eq!(files_logged(&ws), 2);
    assert_eq!(ws.value("A", "shop"), 7);
}

#[test]
fn after_move_puts_the_file_in_a_subfolder() {
    let ws = ws_with("after = \"move:done\"\n");
    ws.write("in/wms/s.csv", STOCK);
    ws.run_ok(&["run", "--once"], 0);
    assert_eq!(ws.files_under("in/wms"), vec!["done/s.csv"]);
    // The same name again: both kept.
    ws.write("in/wms/s.csv", STOCK);
    ws.run_ok(&["run", "--once"], 0);
    let files = ws.files_under("in/wms");
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files.iter().all(|f| f.starts_with("done/s.csv")),
        "{files:?}"
    );
}

#[test]
fn a_kept_rejected_file_is_quarantined_once_and_retried_when_it_changes() {
    let ws = ws_with("after_rejected = \"keep\"\n");
    ws.write("in/wms/bad.csv", BAD);
    ws.run_ok(&["run", "--once"], 1);
    assert_eq!(ws.files_under("in/wms"), vec!["bad.csv"]);
    assert_eq!(
        ws.files_under("var/quarantine/wms"),
        vec!["bad.csv", "bad.csv.error.txt"]
    );
    // Later looks leave it alone: no second quarantine copy, no new log row.
    let o = ws.run_ok(&["run", "--once"], 0);
    assert!(o.stdout.contains("run --once: 0 files"), "{}", o.stdout);
    assert_eq!(ws.files_under("var/quarantine/wms").len(), 2);
    assert_eq!(files_logged(&ws), 1);
    let st = ws.run_ok(&["status", "--json"], 0).json();
    assert_eq!(st["inbound"][0]["rejected"], 1, "{st}");
    assert_eq!(
        st["inbound"][0]["last_error"],
        r#"bad.csv: line 2, column "Qty" (quantity), value "x": not a whole number"#
    );
    // The partner fixes it in place: taken again, applied, the error cleared.
    ws.write("in/wms/bad.csv", STOCK);
    set_mtime(&ws.path("in/wms/bad.csv"), now_secs() - 60);
    ws.run_ok(&["run", "--once"], 0);
    assert!(ws.files_under("in/wms").is_empty());
    // Its quarantined copy leaves with it, its bytes kept in the archive.
    assert!(ws.files_under("var/quarantine/wms").is_empty());
    let archived = ws.files_under("var/archive/wms");
    assert_eq!(
        archived.iter().filter(|f| f.contains("bad.csv")).count(),
        2,
        "the bad and the fixed bytes: {archived:?}"
    );
    let st = ws.run_ok(&["status", "--json"], 0).json();
    assert_eq!(st["inbound"][0]["rejected"], 0, "{st}");
    assert_eq!(st["inbound"][0]["applied"], 1, "{st}");
    assert!(st["inbound"][0]["last_error"].is_null(), "{st}");
}

#[test]
fn rejected_files_are_counted_from_the_quarantine_and_cleared_by_a_fixed_ingest() {
    let ws = ws_with("");
    ws.write("in/wms/bad.csv", BAD);
    ws.run_ok(&["run", "--once"], 1);
    let st = ws.run_ok(&["status", "--json"], 0).json();
    assert_eq!(st["inbound"][0]["rejected"], 1, "{st}");
    // What sits there is what waits (rule 39): the folder gone, nothing waits.
    std::fs::remove_dir_all(ws.path("var/quarantine")).unwrap();
    let st = ws.run_ok(&["status", "--json"], 0).json();
    assert_eq!(st["inbound"][0]["rejected"], 0, "{st}");
    assert_eq!(st["inbound"][0]["in_quarantine"], 0, "{st}");
    // The operator fixes the quarantined copy and ingests it again.
    let fixed = ws.write("var/quarantine/wms/bad.csv", STOCK);
    ws.write("var/quarantine/wms/bad.csv.error.txt", "old");
    let v = ws.ingest("wms", &fixed, 0);
    assert_eq!(v["outcome"], "applied");
    assert!(ws.files_under("var/quarantine/wms").is_empty());
    let st = ws.run_ok(&["status", "--json"], 0).json();
    assert_eq!(st["inbound"][0]["rejected"], 0, "{st}");
}

#[cfg(unix)]
#[test]
fn a_symlink_is_not_followed_out_of_the_inbox() {
    let ws = ws_with("");
    let outside = ws.write("secret/stock.csv", STOCK);
    std::fs::create_dir_all(ws.path("in/wms")).unwrap();
    std::os::unix::fs::symlink(&outside, ws.path("in/wms/link.csv")).unwrap();
    ws.write("in/wms/real.csv", STOCK.replace("A,", "B,"));
    let o = ws.run_ok(&["run", "--once"], 0);
    assert!(
        o.stderr.contains("symbolic link not followed"),
        "{}",
        o.stderr
    );
    // The real file went on; the link and its target are untouched.
    assert_eq!(ws.files_under("in/wms"), vec!["link.csv"]);
    assert_eq!(ws.read("secret/stock.csv"), STOCK);
    assert_eq!(ws.count_where("stock", |r| r.text("sku") == Some("A")), 0);
    assert_eq!(ws.count_where("stock", |r| r.text("sku") == Some("B")), 1);
    // Warned once, not at every look.
    let o = ws.run_ok(&["run", "--once"], 0);
    assert!(!o.stderr.contains("symbolic link"), "{}", o.stderr);
}

#[cfg(unix)]
#[test]
fn a_name_that_is_not_utf8_leaves_the_inbox_once() {
    use std::os::unix::ffi::OsStrExt;
    let ws = ws_with("");
    std::fs::create_dir_all(ws.path("in/wms")).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"stock-\xff\xfe.csv");
    std::fs::write(ws.path("in/wms").join(name), STOCK).unwrap();
    ws.run_ok(&["run", "--once"], 0);
    assert!(ws.files_under("in/wms").is_empty());
    let q = ws.files_under("var/quarantine/wms");
    assert_eq!(q, vec!["stock-__.csv", "stock-__.csv.error.txt"], "{q:?}");
    assert!(
        ws.read("var/quarantine/wms/stock-__.csv.error.txt")
            .contains("not UTF-8")
    );
    assert_eq!(ws.count("stock"), 0);
    ws.run_ok(&["run", "--once"], 0);
    assert_eq!(ws.files_under("var/quarantine/wms").len(), 2);
    let st = ws.run_ok(&["status", "--json"], 0).json();
    assert_eq!(st["inbound"][0]["rejected"], 1, "{st}");
}

#[test]
fn a_name_with_a_newline_cannot_forge_a_log_line() {
    let ws = ws_with("");
    ws.write("in/wms/x\nERROR forged line.csv", BAD);
    let mut full: Vec<String> = vec!["--config".into(), ws.config_path().display().to_string()];
    full.extend(["run".to_string(), "--once".to_string()]);
    // Every log line this time, not just warnings.
    let o = run_bin_env(&full, ws.dir(), &[("STOCKGATE_LOG".into(), "debug".into())]);
    assert!(
        !o.stderr.lines().any(|l| l.starts_with("ERROR forged")),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("x\\nERROR forged line.csv"),
        "{}",
        o.stderr
    );
    assert!(
        !o.stdout.lines().any(|l| l.starts_with("ERROR forged")),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("x\\nERROR forged line.csv"),
        "{}",
        o.stdout
    );
}
