//! The long-running gateway as a real child process: a file dropped in a
//! watched inbox becomes a feed without any command, and SIGTERM stops it
//! cleanly.

mod common;
use common::{feeds, wait_for};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
[[cart]]
id = "shop"
merchant = "m"
format = "csv"
mapping = "feed"
schedule = "every 1s"
[cart.transport]
type = "dir"
path = "outbox"
file_name = "feed-{seq}.csv"
"#;

/// Kills the daemon if a test fails before stopping it, so no gateway
/// outlives its test.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn watched_inbox_to_feed_and_clean_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("mappings")).unwrap();
    std::fs::write(root.join("stockgate.toml"), CONFIG).unwrap();
    std::fs::write(root.join("mappings/inv.toml"), "format = \"csv\"\nrecord = \"inventory\"\n[columns]\nsku = \"Item\"\nquantity = \"OnHand\"\n").unwrap();
    std::fs::write(
        root.join("mappings/feed.toml"),
        "format = \"csv\"\ncolumns = [ { header = \"SKU\", field = \"sku\" }, { header = \"Qty\", field = \"quantity\" } ]\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stockgate"))
        .arg("--config")
        .arg(root.join("stockgate.toml"))
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Daemon)
        .unwrap();
    // The first pass finds no inventory: the cart is skipped, nothing is sent.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(feeds(&root.join("outbox")).is_empty());

    // Written under a temporary name, then renamed: as a careful partner does.
    std::fs::create_dir_all(root.join("inbox")).unwrap();
    std::fs::write(
        root.join("inbox/.stock.csv.part"),
        "Item,OnHand\nA,5\nB,7\n",
    )
    .unwrap();
    std::fs::rename(
        root.join("inbox/.stock.csv.part"),
        root.join("inbox/stock.csv"),
    )
    .unwrap();
    wait_for("the feed", Duration::from_secs(20), || {
        feeds(&root.join("outbox")) == ["feed-000001.csv"]
    });
    assert_eq!(
        std::fs::read_to_string(root.join("outbox/feed-000001.csv")).unwrap(),
        "SKU,Qty\nA,5\nB,7\n"
    );
    assert!(
        !root.join("inbox/stock.csv").exists(),
        "a picked-up file leaves the inbox"
    );

    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("stopped"), "{err}");
}

#[test]
fn a_failed_delivery_is_retried_soon_not_at_the_next_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("mappings")).unwrap();
    // Hourly cart: without a retry, a failed delivery would wait an hour.
    std::fs::write(
        root.join("stockgate.toml"),
        CONFIG.replace("every 1s", "every 1h"),
    )
    .unwrap();
    std::fs::write(root.join("mappings/inv.toml"), "format = \"csv\"\nrecord = \"inventory\"\n[columns]\nsku = \"Item\"\nquantity = \"OnHand\"\n").unwrap();
    std::fs::write(
        root.join("mappings/feed.toml"),
        "format = \"csv\"\ncolumns = [ { header = \"SKU\", field = \"sku\" }, { header = \"Qty\", field = \"quantity\" } ]\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("inbox")).unwrap();
    std::fs::write(root.join("inbox/stock.csv"), "Item,OnHand\nA,5\n").unwrap();
    // Settled already: taken on the daemon's first pass, before the first sync.
    std::fs::File::options()
        .write(true)
        .open(root.join("inbox/stock.csv"))
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    // The outbox cannot be created: a plain file stands where the folder goes.
    std::fs::write(root.join("outbox"), "in the way").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stockgate"))
        .arg("--config")
        .arg(root.join("stockgate.toml"))
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Daemon)
        .unwrap();
    let history = |root: &Path| -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_stockgate"))
            .arg("--config")
            .arg(root.join("stockgate.toml"))
            .args(["history", "--json"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    wait_for("the failed attempt", Duration::from_secs(15), || {
        history(root).contains("\"failed\"")
    });
    std::fs::remove_file(root.join("outbox")).unwrap();
    wait_for("the retried delivery", Duration::from_secs(30), || {
        feeds(&root.join("outbox")) == ["feed-000002.csv"]
    });
    assert_eq!(
        std::fs::read_to_string(root.join("outbox/feed-000002.csv")).unwrap(),
        "SKU,Qty\nA,5\n"
    );
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.0.wait().unwrap().success());
}
