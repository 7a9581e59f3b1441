//! Crash safety with real child processes: a gateway killed in the middle of
//! applying a large file leaves the ledger as it was, the file in its inbox,
//! and the next run applies it whole.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use stockgate::ledger::Ledger;

const CONFIG: &str = r#"
[ledger]
path = "var/ledger.sqlite"
[[merchant]]
id = "m"
[[inbound]]
id = "wms"
merchant = "m"
kind = "inventory"
mapping = "inv"
warehouse = "MAIN"
[inbound.transport]
type = "dir"
path = "inbox"
pattern = "*.csv"
"#;

const MAPPING: &str = r#"
format = "csv"
record = "inventory"
[columns]
sku = "Item"
quantity = "OnHand"
"#;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_stockgate")
}

fn counts(ledger: &Path) -> Vec<(String, i64)> {
    Ledger::open(ledger).unwrap().table_counts().unwrap()
}

#[test]
fn killed_mid_ingest_changes_nothing_and_the_next_run_applies_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("mappings")).unwrap();
    std::fs::create_dir_all(root.join("inbox")).unwrap();
    std::fs::write(root.join("stockgate.toml"), CONFIG).unwrap();
    std::fs::write(root.join("mappings/inv.toml"), MAPPING).unwrap();
    // A small file first, so the ledger has content to compare.
    std::fs::write(root.join("inbox/a.csv"), "Item,OnHand\nA,1\nB,2\n").unwrap();
    let cfg = root.join("stockgate.toml");
    let ok = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--once"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let ledger = root.join("var/ledger.sqlite");
    let before = counts(&ledger);

    // A file large enough to be mid-transaction when killed.
    let mut big = String::from("Item,OnHand\n");
    for i in 0..400_000 {
        big.push_str(&format!("SKU-{i:06},{}\n", i % 97));
    }
    std::fs::write(root.join("inbox/big.csv"), &big).unwrap();
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--once"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the ingest finished before it could be killed; make the file bigger"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // Killed while working: nothing may have changed, and the file waits in the inbox.
    assert_eq!(
        counts(&ledger),
        before,
        "ledger changed by a killed ingest after {:?}",
        start.elapsed()
    );
    assert!(
        root.join("inbox/big.csv").exists(),
        "the file must stay in the inbox"
    );

    let out = Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--once"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!root.join("inbox/big.csv").exists());
    let l = Ledger::open(&ledger).unwrap();
    let n = counts(&ledger)
        .into_iter()
        .find(|(t, _)| t == "stock")
        .unwrap()
        .1;
    let sum = l.debug_sum("stock", "quantity").unwrap();
    let expected: i64 = (0..400_000i64).map(|i| i % 97).sum::<i64>() + 3;
    assert_eq!((n, sum), (400_002, expected));
}

const LOOP_CONFIG: &str = r#"
[ledger]
path = "var/ledger.sqlite"
[[merchant]]
id = "m"
[[inbound]]
id = "shop"
merchant = "m"
kind = "orders"
mapping = "orders"
warehouse = "EAST"
[inbound.transport]
type = "dir"
path = "inbox/orders"
pattern = "*.csv"
[[inbound]]
id = "east-ship"
merchant = "m"
kind = "shipments"
mapping = "ship"
warehouse = "EAST"
[inbound.transport]
type = "dir"
path = "inbox/ship"
pattern = "*.csv"
[[order_feed]]
id = "east"
merchant = "m"
warehouse = "EAST"
format = "csv"
mapping = "order-feed"
schedule = "every 1s"
[order_feed.transport]
type = "dir"
path = "out/east"
file_name = "{cart}-{seq}.csv"
[[confirm_feed]]
id = "confirm"
merchant = "m"
orders_from = ["shop"]
format = "csv"
mapping = "confirm-feed"
schedule = "every 1s"
[confirm_feed.transport]
type = "dir"
path = "out/confirm"
file_name = "{cart}-{seq}.csv"
"#;

/// Runs the daemon until `done` holds (or 40 s), then stops it with SIGTERM.
fn daemon_until(
    cfg: &Path,
    env: &[(&str, &str)],
    mut done: impl FnMut() -> bool,
) -> std::process::ExitStatus {
    let mut c = Command::new(bin());
    c.arg("--config")
        .arg(cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if done() || start.elapsed() > Duration::from_secs(40) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    child.wait().unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn orders_json(cfg: &Path) -> serde_json::Value {
    let o = Command::new(bin())
        .arg("--config")
        .arg(cfg)
        .args(["orders", "--json"])
        .output()
        .unwrap();
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn the_order_loop_across_a_kill_sends_nothing_twice_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in ["mappings", "inbox/orders", "inbox/ship"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("stockgate.toml"), LOOP_CONFIG).unwrap();
    std::fs::write(
        root.join("mappings/orders.toml"),
        "format = \"csv\"\nrecord = \"orders\"\n[columns]\norder_id = \"Order\"\nsku = \"SKU\"\nquantity = \"Qty\"\nship_to_name = \"Name\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("mappings/ship.toml"),
        "format = \"csv\"\nrecord = \"shipments\"\n[columns]\norder_id = \"Order\"\nsku = \"SKU\"\nquantity = \"Qty\"\nshipment_id = \"Shipment\"\ntracking = \"Tracking\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("mappings/order-feed.toml"),
        "format = \"csv\"\ncolumns = [ { header = \"Order\", field = \"order_id\" }, { header = \"SKU\", field = \"sku\" }, { header = \"Qty\", field = \"quantity\" }, { header = \"Name\", field = \"ship_to_name\" } ]\n",
    )
    .unwrap();
    std::fs::write(
        root.join("mappings/confirm-feed.toml"),
        "format = \"csv\"\ncolumns = [ { header = \"Order\", field = \"order_id\" }, { header = \"Shipment\", field = \"shipment_id\" }, { header = \"Tracking\", field = \"tracking\" }, { header = \"Qty\", field = \"quantity\" } ]\n",
    )
    .unwrap();
    let cfg = root.join("stockgate.toml");
    std::fs::write(
        root.join("inbox/orders/o1.csv"),
        "Order,SKU,Qty,Name\n5001,A,2,Ann\n5002,B,1,Bo\n",
    )
    .unwrap();
    let out_east = root.join("out/east");
    let out_confirm = root.join("out/confirm");

    // Killed right after the order feed's file is delivered, before its record.
    let st = daemon_until(
        &cfg,
        &[("STOCKGATE_TEST_ABORT_AFTER_DELIVERY", "east")],
        || false,
    );
    assert!(
        st.code().is_none(),
        "the daemon should have died by a signal: {st:?}"
    );
    assert_eq!(files(&out_east), vec!["east-000001.csv"]);
    // The next start finds the file delivered and marks its orders: they are
    // not sent again, however many syncs follow.
    let st = daemon_until(&cfg, &[], || {
        orders_json(&cfg)
            .as_array()
            .is_some_and(|a| a.iter().all(|o| o["status"] == "sent"))
    });
    assert!(
        st.success() || st.code().is_none() || st.code() == Some(0),
        "{st:?}"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(files(&out_east), vec!["east-000001.csv"]);
    assert_eq!(
        std::fs::read_to_string(out_east.join("east-000001.csv")).unwrap(),
        "Order,SKU,Qty,Name\n5001,A,2,Ann\n5002,B,1,Bo\n"
    );
    let o = orders_json(&cfg);
    assert_eq!(o.as_array().unwrap().len(), 2, "{o}");

    // Shipments back; the confirm feed killed the same way.
    std::fs::write(
        root.join("inbox/ship/s1.csv"),
        "Order,SKU,Qty,Shipment,Tracking\n5001,A,2,S1,1Z1\n5002,B,1,S2,1Z2\n",
    )
    .unwrap();
    let st = daemon_until(
        &cfg,
        &[("STOCKGATE_TEST_ABORT_AFTER_DELIVERY", "confirm")],
        || false,
    );
    assert!(st.code().is_none(), "{st:?}");
    assert_eq!(files(&out_confirm), vec!["confirm-000001.csv"]);
    daemon_until(&cfg, &[], || {
        orders_json(&cfg)
            .as_array()
            .is_some_and(|a| a.iter().all(|o| o["status"] == "confirmed"))
    });
    assert_eq!(files(&out_confirm), vec!["confirm-000001.csv"]);
    assert_eq!(files(&out_east), vec!["east-000001.csv"]);
    assert_eq!(
        std::fs::read_to_string(out_confirm.join("confirm-000001.csv")).unwrap(),
        "Order,Shipment,Tracking,Qty\n5001,S1,1Z1,2\n5002,S2,1Z2,1\n"
    );
    let o = orders_json(&cfg);
    for order in o.as_array().unwrap() {
        assert_eq!(order["status"], "confirmed", "{o}");
        assert_eq!(
            order["shipments"][0]["confirmed_to"],
            serde_json::json!(["confirm"])
        );
    }
}
