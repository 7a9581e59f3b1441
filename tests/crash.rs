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
