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
    let ledger = stockgate::ledger::Ledger::open(&ws.path("var/ledger.sqlite")).unwrap();
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
    assert_eq!(ws.sql_i64("SELECT COUNT(*) FROM last_sent"), 0);
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
