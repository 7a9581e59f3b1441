//! CONTRACT §2: commands, flags, JSON, exit codes, archive, check, init.

mod common;
use common::*;
use serde_json::Value;

const STOCK: &str =
    "SKU,Whse,Qty,AsOf,UPC,Title\nA,W1,10,2025-06-01T10:00:00Z,,\nB,W1,3,2025-06-01T10:00:00Z,,\n";

fn is_rfc3339(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        chrono::DateTime::parse_from_rfc3339(s).is_ok()
            && (s.ends_with("+00:00")
                || s.ends_with('Z')
                || s.contains('+')
                || s[19..].contains('-'))
    })
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn has_keys(v: &Value, want: &[&str]) {
    let k = keys(v);
    for w in want {
        assert!(k.iter().any(|x| x == w), "missing {w:?} in {v}");
    }
}

#[test]
fn init_then_run_once_gives_the_demo_feeds() {
    let ws = Workspace::new();
    let dir = ws.path("demo");
    let d = dir.display().to_string();
    let o = run_bin(&["init".into(), d.clone()], ws.dir());
    assert_eq!(o.code, 0, "{o:?}");
    let cfg = dir.join("stockgate.toml").display().to_string();
    let stock = std::fs::read(dir.join("var/inbox/acme-wms/stock-20261120.csv")).unwrap();
    let orders = std::fs::read(dir.join("var/inbox/acme-orders/orders-20261120.csv")).unwrap();
    let o = run_bin(
        &[
            "--config".into(),
            cfg.clone(),
            "run".into(),
            "--once".into(),
        ],
        ws.dir(),
    );
    assert_eq!(o.code, 0, "{o:?}");
    let feed = |cart: &str| -> String {
        let files = ws.files_under(&format!("demo/var/outbox/{cart}"));
        assert_eq!(files.len(), 1, "{files:?}");
        ws.read(&format!("demo/var/outbox/{cart}/{}", files[0]))
    };
    assert_eq!(
        feed("acme-shop"),
        "SKU,Quantity\nBOLT-4,0\nGADGET-2,6\nGIZMO-3,3\nWIDGET-1,59\n"
    );
    assert_eq!(
        feed("acme-marketplace"),
        "sku,upc,qty,title\nBOLT-4,042100005264,0,\"Bolt, 10mm\"\nGADGET-2,036000291452,6,Gadget\nWIDGET-1,012345678905,47,Blue widget\n"
    );
    // Picked-up files leave the inbox and are archived byte for byte.
    assert!(
        ws.files_under("demo/var/inbox").is_empty(),
        "{:?}",
        ws.files_under("demo/var/inbox")
    );
    let day = today();
    assert_eq!(
        std::fs::read(dir.join(format!("var/archive/acme-wms/{day}/stock-20261120.csv"))).unwrap(),
        stock
    );
    assert_eq!(
        std::fs::read(dir.join(format!("var/archive/acme-orders/{day}/orders-20261120.csv")))
            .unwrap(),
        orders
    );
    // A second pass: nothing due, nothing new; exit 0.
    let o = run_bin(
        &["--config".into(), cfg, "run".into(), "--once".into()],
        ws.dir(),
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(ws.files_under("demo/var/outbox/acme-shop").len(), 1);
    // init refuses an existing workspace.
    let before = std::fs::read(dir.join("stockgate.toml")).unwrap();
    let o = run_bin(&["init".into(), d], ws.dir());
    assert_eq!(o.code, 2, "{o:?}");
    assert_eq!(std::fs::read(dir.join("stockgate.toml")).unwrap(), before);
}

#[test]
fn run_once_consumes_the_inbox_and_quarantines_bad_files() {
    let ws = Workspace::standard("");
    ws.write("in/wms/good.csv", STOCK);
    ws.write(
        "in/orders/o.csv",
        "Order,Line,SKU,Qty,Status,At,Whse\n1,1,A,2,open,2025-06-01T11:00:00Z,\n",
    );
    ws.write(
        "in/wms/bad.csv",
        "SKU,Whse,Qty,AsOf,UPC,Title\nC,W1,x,2025-06-01T10:00:00Z,,\n",
    );
    let o = ws.run_ok(&["run", "--once"], 1);
    assert!(o.stdout.contains("rejected"), "{}", o.stdout);
    assert!(
        ws.files_under("in").is_empty(),
        "{:?}",
        ws.files_under("in")
    );
    // The bad file was moved (not copied) to quarantine, reasons beside it.
    assert_eq!(
        ws.files_under("var/quarantine/wms"),
        vec!["bad.csv", "bad.csv.error.txt"]
    );
    let feeds = ws.files_under("out/shop");
    assert_eq!(feeds, vec!["shop-000001.csv"]);
    assert_eq!(
        ws.read("out/shop/shop-000001.csv"),
        "SKU,Quantity\nA,8\nB,3\n"
    );
    let st = ws.run_ok(&["status", "--json"], 0).json();
    let wms = &st["inbound"][0];
    assert_eq!(wms["source"], "wms");
    assert_eq!(wms["applied"], 1);
    assert_eq!(wms["rejected"], 1);
    assert_eq!(
        wms["last_error"],
        r#"bad.csv: line 2, column "Qty" (quantity), value "x": not a whole number"#,
        "{st}"
    );
}

#[test]
fn archive_keeps_every_file_received_or_sent() {
    let ws = Workspace::standard("");
    let day = today();
    let p = ws.write("in/wms/s1.csv", STOCK);
    assert_eq!(ws.ingest("wms", &p, 0)["outcome"], "applied");
    let p2 = ws.write("in/wms/s1-again.csv", STOCK);
    let v = ws.ingest("wms", &p2, 0);
    assert_eq!(v["outcome"], "duplicate");
    let v = ws.sync("shop", &[], 0);
    let feed = std::fs::read(v["file"].as_str().unwrap()).unwrap();
    assert_eq!(
        ws.files_under("var/archive/wms"),
        vec![format!("{day}/s1-again.csv"), format!("{day}/s1.csv")]
    );
    assert_eq!(ws.read(&format!("var/archive/wms/{day}/s1.csv")), STOCK);
    assert_eq!(
        ws.read(&format!("var/archive/wms/{day}/s1-again.csv")),
        STOCK
    );
    assert_eq!(
        ws.files_under("var/archive/shop"),
        vec![format!("{day}/shop-000001.csv")]
    );
    assert_eq!(
        std::fs::read(ws.path(&format!("var/archive/shop/{day}/shop-000001.csv"))).unwrap(),
        feed
    );
    // Rejected files are not archived (they are in quarantine).
    let p3 = ws.write(
        "in/wms/bad.csv",
        "SKU,Whse,Qty,AsOf,UPC,Title\nC,W1,x,2025-06-01T10:00:00Z,,\n",
    );
    ws.ingest("wms", &p3, 1);
    assert_eq!(ws.files_under("var/archive/wms").len(), 2);
}

#[test]
fn dry_run_renders_and_records_nothing() {
    let ws = Workspace::standard("");
    ws.apply("wms", "s1.csv", STOCK);
    let want = "SKU,Quantity\nA,10\nB,3\n";
    let v = ws.sync("shop", &["--dry-run"], 0);
    assert_eq!(v["outcome"], "dry-run", "{v}");
    assert_eq!(v["items"], 2);
    assert_eq!(v["bytes"], want.len());
    assert_eq!(v["sha256"], sha256_hex(want.as_bytes()));
    assert_eq!(v["file"], Value::Null);
    assert!(ws.history("shop").is_empty());
    assert!(ws.files_under("out").is_empty());
    assert!(!ws.path("var/archive/shop").exists());
    // --dry-run --output FILE writes the feed there, still records nothing.
    let out = ws.path("preview.csv").display().to_string();
    let v = ws.sync("shop", &["--dry-run", "--output", &out], 0);
    assert_eq!(v["outcome"], "dry-run");
    assert_eq!(ws.read("preview.csv"), want);
    assert!(ws.history("shop").is_empty());
    assert_eq!(ws.count("last_sent"), 0);
    // The gate is still open: the real sync sends the same bytes.
    let v = ws.sync("shop", &[], 0);
    assert_eq!(v["outcome"], "sent");
    assert_eq!(v["sha256"], sha256_hex(want.as_bytes()));
    // Dry run of a shut gate says skipped and records nothing either.
    let v = ws.sync("shop", &["--dry-run"], 0);
    assert_eq!(v["outcome"], "skipped");
    assert_eq!(ws.history("shop").len(), 1);
}

#[test]
fn sync_output_delivers_to_the_file_and_records_it() {
    let ws = Workspace::standard("");
    ws.apply("wms", "s1.csv", STOCK);
    let out = ws.path("elsewhere/feed.csv").display().to_string();
    let v = ws.sync("shop", &["--output", &out], 0);
    assert_eq!(v["outcome"], "sent", "{v}");
    assert_eq!(v["file"], out);
    assert_eq!(ws.read("elsewhere/feed.csv"), "SKU,Quantity\nA,10\nB,3\n");
    assert!(ws.files_under("out").is_empty());
    let h = ws.history("shop");
    assert_eq!(h[0]["outcome"], "sent");
    assert_eq!(h[0]["file"], out);
    assert_eq!(ws.sync("shop", &[], 0)["outcome"], "skipped");
}

#[test]
fn json_documents_have_the_contract_fields() {
    let ws = Workspace::standard("");
    let p = ws.write("in/wms/s1.csv", STOCK);
    let v = ws
        .run_ok(
            &[
                "ingest",
                "--source",
                "wms",
                "--json",
                &p.display().to_string(),
            ],
            0,
        )
        .json();
    let f = &v[0];
    has_keys(f, &["file", "outcome", "rows", "stale", "errors"]);
    assert_eq!(f["file"], p.display().to_string());
    assert_eq!(
        (f["rows"].as_i64(), f["stale"].as_i64()),
        (Some(2), Some(0))
    );
    ws.apply(
        "orders",
        "o.csv",
        "Order,Line,SKU,Qty,Status,At,Whse\n9,1,A,2,open,2025-06-01T11:00:00Z,\n",
    );

    let s = ws.sync("shop", &[], 0);
    has_keys(
        &s,
        &[
            "cart",
            "outcome",
            "reason",
            "items",
            "file",
            "bytes",
            "sha256",
            "started_at",
            "finished_at",
        ],
    );
    assert_eq!(s["cart"], "shop");
    assert_eq!(s["reason"], Value::Null);
    let feed = std::fs::read(s["file"].as_str().unwrap()).unwrap();
    assert_eq!(feed, b"SKU,Quantity\nA,8\nB,3\n");
    assert_eq!(s["bytes"], feed.len());
    assert_eq!(s["sha256"], sha256_hex(&feed));
    ws.sync("shop", &[], 0);

    let h = ws.run_ok(&["history", "--json"], 0).json();
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 2);
    for e in h {
        has_keys(
            e,
            &[
                "cart",
                "outcome",
                "reason",
                "items",
                "file",
                "bytes",
                "sha256",
                "started_at",
                "finished_at",
            ],
        );
        assert!(
            is_rfc3339(&e["started_at"]) && is_rfc3339(&e["finished_at"]),
            "{e}"
        );
    }
    assert_eq!(
        (h[0]["outcome"].as_str(), h[1]["outcome"].as_str()),
        (Some("skipped"), Some("sent"))
    );
    assert_eq!(h[1]["sha256"], s["sha256"]);
    let limited = ws.run_ok(&["history", "--limit", "1", "--json"], 0).json();
    assert_eq!(limited.as_array().unwrap().len(), 1);
    assert_eq!(limited[0]["outcome"], "skipped");

    let e = ws.explain("A", None);
    has_keys(
        &e,
        &[
            "merchant",
            "sku",
            "warehouses",
            "orders_subtracted",
            "available",
            "carts",
        ],
    );
    has_keys(
        &e["warehouses"][0],
        &["warehouse", "quantity", "as_of", "report"],
    );
    assert_eq!(e["warehouses"][0]["report"], "s1.csv");
    assert_eq!(e["warehouses"][0]["as_of"], "2025-06-01T10:00:00+00:00");
    has_keys(
        &e["orders_subtracted"][0],
        &["order_id", "line", "quantity", "ordered_at"],
    );
    has_keys(&e["carts"][0], &["cart", "min_level", "value"]);
    assert_eq!(
        (e["available"].as_i64(), e["carts"][0]["value"].as_i64()),
        (Some(8), Some(8))
    );

    let st = ws.run_ok(&["status", "--json"], 0).json();
    let c = &st["carts"][0];
    has_keys(
        c,
        &[
            "cart",
            "schedule",
            "next_due",
            "last_attempt",
            "last_success",
            "last_outcome",
            "pending",
        ],
    );
    assert_eq!(c["cart"], "shop");
    assert_eq!(c["schedule"], "every 1m");
    assert_eq!(c["last_outcome"], "skipped");
    assert_eq!(c["pending"], 0);
    assert!(
        is_rfc3339(&c["next_due"])
            && is_rfc3339(&c["last_attempt"])
            && is_rfc3339(&c["last_success"]),
        "{c}"
    );
    let inbound: Vec<&Value> = st["inbound"].as_array().unwrap().iter().collect();
    assert_eq!(inbound.len(), 2);
    for i in &inbound {
        has_keys(
            i,
            &["source", "last_pickup", "applied", "rejected", "last_error"],
        );
        assert!(is_rfc3339(&i["last_pickup"]), "{i}");
        assert_eq!(i["applied"], 1);
        assert_eq!(i["rejected"], 0);
        assert_eq!(i["last_error"], Value::Null);
    }
}

#[test]
fn exit_codes() {
    let ws = Workspace::standard("");
    let p = ws.write("in/wms/s1.csv", STOCK).display().to_string();
    // 2: bad usage or config.
    assert_eq!(ws.run(&["sync", "nope"]).code, 2);
    assert_eq!(ws.run(&["ingest", "--source", "nope", &p]).code, 2);
    assert_eq!(ws.run(&["sync", "shop", "--bogus"]).code, 2);
    assert_eq!(ws.run(&["frobnicate"]).code, 2);
    assert_eq!(ws.run(&["history", "--limit", "many"]).code, 2);
    assert_eq!(
        ws.run(&["explain", "--merchant", "nobody", "--sku", "A"])
            .code,
        2
    );
    assert_eq!(
        ws.run(&[
            "explain",
            "--merchant",
            "m1",
            "--sku",
            "A",
            "--cart",
            "nope"
        ])
        .code,
        2
    );
    let missing = run_bin(
        &[
            "--config".into(),
            ws.path("absent.toml").display().to_string(),
            "status".into(),
        ],
        ws.dir(),
    );
    assert_eq!(missing.code, 2, "{missing:?}");
    ws.write("broken.toml", "[ledger\npath = 1\n");
    let broken = run_bin(
        &[
            "--config".into(),
            ws.path("broken.toml").display().to_string(),
            "status".into(),
        ],
        ws.dir(),
    );
    assert_eq!(broken.code, 2, "{broken:?}");
    // Nothing was created by the refused commands.
    assert!(!ws.path("var/ledger.sqlite").exists() || ws.count("reports") == 0);
    // 0: success, including a skipped sync.
    assert_eq!(ws.run(&["ingest", "--source", "wms", &p]).code, 0);
    assert_eq!(ws.run(&["sync", "shop"]).code, 0);
    let o = ws.run(&["sync", "shop"]);
    assert_eq!(o.code, 0);
    assert!(o.stdout.starts_with("skipped"), "{}", o.stdout);
    // 1: the work failed.
    let bad = ws.write(
        "in/wms/bad.csv",
        "SKU,Whse,Qty,AsOf,UPC,Title\nA,W1,1.5,2025-06-01T10:00:00Z,,\n",
    );
    assert_eq!(
        ws.run(&["ingest", "--source", "wms", &bad.display().to_string()])
            .code,
        1
    );
    assert_eq!(
        ws.run(&[
            "ingest",
            "--source",
            "wms",
            &ws.path("no-such.csv").display().to_string()
        ])
        .code,
        1
    );
    // STOCKGATE_CONFIG is honoured when --config is absent.
    let o = std::process::Command::new(BIN)
        .arg("status")
        .envs(common::pg::env_for(ws.dir()))
        .env("STOCKGATE_CONFIG", ws.config_path())
        .current_dir("/")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

#[test]
fn ingest_several_files_reports_each() {
    let ws = Workspace::standard("");
    let a = ws.write("in/wms/a.csv", STOCK).display().to_string();
    let b = ws
        .write(
            "in/wms/b.csv",
            "SKU,Whse,Qty,AsOf,UPC,Title\nA,W1,1.5,2025-06-01T10:00:00Z,,\n",
        )
        .display()
        .to_string();
    let c = ws.write("in/wms/c.csv", STOCK).display().to_string();
    let o = ws.run_ok(&["ingest", "--source", "wms", "--json", &a, &b, &c], 1);
    let v = o.json();
    let outcomes: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["applied", "rejected", "duplicate"]);
}

#[test]
fn check_accepts_a_good_workspace() {
    let ws = Workspace::standard(&cart(
        "east",
        "m1",
        "warehouses = [\"EAST\"]\nmin_level = 2",
    ));
    let o = ws.run_ok(&["check"], 0);
    assert!(o.stdout.starts_with("ok"), "{}", o.stdout);
    // init's workspace checks too.
    let d = ws.path("fresh").display().to_string();
    assert_eq!(run_bin(&["init".into(), d.clone()], ws.dir()).code, 0);
    let o = run_bin(
        &[
            "--config".into(),
            format!("{d}/stockgate.toml"),
            "check".into(),
        ],
        ws.dir(),
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.starts_with("ok"), "{}", o.stdout);
}

/// Issue 16.8 (CONTRACT rule 40): `init` writes every preset mapping the
/// project ships beside the sample ones, each passing `check` when a cart
/// uses it; `init --list-presets` shows them with their guides.
#[test]
fn init_writes_every_preset_and_lists_them_with_their_guides() {
    let ws = Workspace::new();
    let o = run_bin(&["init".into(), "--list-presets".into()], ws.dir());
    assert_eq!(o.code, 0, "{o:?}");
    for want in [
        "walmart-dsv-846",
        "https://developer.walmart.com/suppliers/docs/846-inventory-inquiry",
        "qvc-commercehub-846",
        "https://www.stedi.com/app/guides/view/qvc/commercehub-drop-ship-inventory-inquiryadvice/01HBCEDS9W1Z3M6JSS78AD3X6N",
    ] {
        assert!(o.stdout.contains(want), "{want}\n{}", o.stdout);
    }
    let d = ws.path("fresh");
    assert_eq!(
        run_bin(&["init".into(), d.display().to_string()], ws.dir()).code,
        0
    );
    let shipped: Vec<String> =
        std::fs::read_dir(env!("CARGO_MANIFEST_DIR").to_string() + "/mappings")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    for name in &shipped {
        assert_eq!(
            std::fs::read(d.join("mappings").join(name)).ok(),
            std::fs::read(format!("{}/mappings/{name}", env!("CARGO_MANIFEST_DIR"))).ok(),
            "{name} written by init"
        );
    }
    // A cart on each retailer preset passes check.
    let cfg = std::fs::read_to_string(d.join("stockgate.toml")).unwrap();
    let mut extra = String::new();
    for preset in ["walmart-dsv-846", "qvc-commercehub-846"] {
        extra.push_str(&format!(
            "\n[[cart]]\nid = \"{preset}\"\nmerchant = \"acme\"\nformat = \"x12-846\"\nmapping = \"{preset}\"\nschedule = \"every 1h\"\n[cart.transport]\ntype = \"dir\"\npath = \"var/outbox/{preset}\"\n"
        ));
    }
    // The 856 preset is a confirm feed's (issue 19).
    extra.push_str("\n[[confirm_feed]]\nid = \"qvc-856\"\nmerchant = \"acme\"\norders_from = [\"acme-orders\"]\nformat = \"x12-856\"\nmapping = \"qvc-commercehub-856\"\nschedule = \"every 1h\"\n[confirm_feed.transport]\ntype = \"dir\"\npath = \"var/outbox/qvc-856\"\n");
    std::fs::write(d.join("stockgate.toml"), cfg + &extra).unwrap();
    let o = run_bin(
        &[
            "--config".into(),
            d.join("stockgate.toml").display().to_string(),
            "check".into(),
        ],
        ws.dir(),
    );
    assert_eq!(o.code, 0, "{o:?}");
    let o = run_bin(&["init".into(), "--list-presets".into()], ws.dir());
    assert!(
        o.stdout
            .contains("https://stedi.com/app/guides/view/qvc/856/01HBCEDAK6G4130H6481MS1QSM"),
        "{}",
        o.stdout
    );
}

#[test]
fn check_lists_every_problem_with_file_line_and_key() {
    let ws = Workspace::new();
    let cfg = "[ledger]
path = \"var/ledger.sqlite\"

[[merchant]]
id = \"m1\"

[[inbound]]
id = \"wms\"
merchant = \"m1\"
kind = \"inventory\"
mapping = \"inv\"
[inbound.transport]
type = \"dir\"
path = \"in/wms\"

[[cart]]
id = \"shop\"
merchant = \"nobody\"
format = \"csv\"
mapping = \"feed\"
schedule = \"every 5 fortnights\"
[cart.transport]
type = \"dir\"
path = \"out/shop\"

[[cart]]
id = \"shop2\"
merchant = \"m1\"
format = \"csv\"
mapping = \"missing\"
schedule = \"every 1m\"
colour = \"red\"
[cart.transport]
type = \"dir\"
path = \"out/shop2\"
pth = \"typo\"
";
    ws.config(cfg);
    // Config: unknown keys in a cart and its transport. Mapping: unknown key at
    // the top, unknown field in [columns], bad delimiter. Every one is listed.
    ws.mapping("inv", "format = \"csv\"\nrecord = \"inventory\"\ndelimiter = \";;\"\ncolour = \"red\"\n[columns]\nsku = \"SKU\"\nquantity = \"Qty\"\nshade = \"Shade\"\n");
    ws.mapping("feed", FEED_MAPPING);
    let o = ws.run_ok(&["check"], 2);
    let c = ws.config_path().display().to_string();
    let m = ws.path("mappings/inv.toml").display().to_string();
    let want = [
        format!("{m}:3: key `delimiter`: "),
        format!("{m}:4: key `colour`: "),
        format!("{m}:8: key `columns.shade`: "),
        format!("{c}:18: key `cart[0].merchant`: unknown merchant \"nobody\""),
        format!("{c}:21: key `cart[0].schedule`: "),
        format!("{c}:30: key `cart[1].mapping`: no mapping file "),
        format!("{c}:32: key `cart[1].colour`: unknown key"),
        format!("{c}:36: key `cart[1].transport.pth`: unknown key"),
    ];
    let lines: Vec<&str> = o.stdout.lines().collect();
    for w in &want {
        assert_eq!(
            lines.iter().filter(|l| l.starts_with(w.as_str())).count(),
            1,
            "{w:?} not in:\n{}",
            o.stdout
        );
    }
    assert_eq!(lines.len(), want.len(), "{}", o.stdout);
    assert!(lines.iter().any(|l| l.contains("fortnights")));
    // Commands refuse to run with a broken config.
    assert_eq!(ws.run(&["status"]).code, 2);
}

#[test]
fn demo_produces_csv_xml_and_846_feeds_once_and_never_sends_for_show() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("demo");
    let run = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_stockgate"))
            .arg("demo")
            .arg(&ws)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let list = |cart: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(ws.join("var/outbox").join(cart))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let first = run();
    assert!(first.contains("initialized demo workspace"), "{first}");
    for (cart, ext) in [
        ("acme-shop", ".csv"),
        ("acme-marketplace", ".csv"),
        ("acme-retailer", ".x12"),
        ("acme-portal", ".xml"),
    ] {
        let files = list(cart);
        assert_eq!(files.len(), 1, "{cart}: {files:?}");
        assert!(files[0].ends_with(ext), "{cart}: {files:?}");
    }
    let second = run();
    assert!(second.contains("nothing new to send"), "{second}");
    for cart in [
        "acme-shop",
        "acme-marketplace",
        "acme-retailer",
        "acme-portal",
    ] {
        assert_eq!(list(cart).len(), 1, "{cart} got a feed on the second run");
    }
}

/// Issue 16.4 (CONTRACT §8, rule 39): `quarantine` lists what waits, oldest
/// first; `retry` and `discard` take a file out; `status` counts what sits
/// there now, each file once.
#[test]
fn quarantine_lists_retries_and_discards_and_status_counts_each_file_once() {
    let ws = Workspace::new();
    ws.config(&format!(
        "{}{}{}{}",
        header(&["m1"]),
        inbound("wms", "m1", "inventory", "inv", ""),
        inbound("snap", "m1", "inventory", "snap", "warehouse = \"MAIN\""),
        cart("shop", "m1", "")
    ));
    ws.mapping("inv", INV_MAPPING);
    ws.mapping(
        "snap",
        &INV_PLAIN_MAPPING.replace("[columns]", "snapshot = \"full\"\n[columns]"),
    );
    ws.mapping("feed", FEED_MAPPING);
    const H: &str = "SKU,Whse,Qty,AsOf,UPC,Title\n";
    let t0 = "2025-06-01T10:00:00Z";
    let counts = |ws: &Workspace| -> Vec<(String, u64, u64, u64)> {
        let v = ws.run_ok(&["status", "--json"], 0).json();
        v["inbound"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["source"].as_str().unwrap().to_string(),
                    i["in_quarantine"].as_u64().unwrap(),
                    i["rejected"].as_u64().unwrap(),
                    i["held"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    // A bad file, taken by the gateway (moved into quarantine).
    ws.write("in/wms/bad.csv", format!("{H}A,W1,x,{t0},,\n"));
    assert_eq!(ws.run(&["run", "--once"]).code, 1);
    // The partner sends the same bad file again: still one file waiting.
    ws.write("in/wms/bad.csv", format!("{H}A,W1,x,{t0},,\n"));
    assert_eq!(ws.run(&["run", "--once"]).code, 1);
    assert_eq!(
        ws.files_under("var/quarantine/wms"),
        ["bad.csv", "bad.csv.error.txt"]
    );
    // A full snapshot that would zero 3 of 4 SKUs is held.
    ws.apply("snap", "full1.csv", "SKU,Qty\nA,1\nB,2\nC,3\nD,4\n");
    let p = ws.write("in/snap/short.csv", "SKU,Qty\nA,1\n");
    let o = ws.run_ok(&["ingest", "--source", "snap", &p.display().to_string()], 1);
    std::fs::remove_file(&p).unwrap(); // ingest leaves its own file; run would take it
    assert!(
        o.stdout.contains("if it is complete, apply it: stockgate quarantine retry --source snap short.csv --force"),
        "{}",
        o.stdout
    );
    assert_eq!(
        counts(&ws),
        [("wms".into(), 1, 1, 0), ("snap".into(), 1, 0, 1)]
    );
    let v = ws.run_ok(&["quarantine", "--json"], 0).json();
    let list: Vec<(&str, &str, &str)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["source"].as_str().unwrap(),
                w["file"].as_str().unwrap(),
                w["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        list,
        [
            ("wms", "bad.csv", "rejected"),
            ("snap", "short.csv", "held")
        ]
    );
    assert_eq!(v[0]["reason"], "1 error", "{v}");
    assert_eq!(
        v[1]["reason"],
        "would zero 3 of 4 SKUs (warehouse MAIN); apply with ingest --force if it is complete",
        "{v}"
    );
    assert!(chrono::DateTime::parse_from_rfc3339(v[0]["since"].as_str().unwrap()).is_ok());
    let v = ws
        .run_ok(&["quarantine", "--source", "snap", "--json"], 0)
        .json();
    assert_eq!(v.as_array().unwrap().len(), 1);
    // Fixed in place, retried: applied, out of quarantine.
    ws.write("var/quarantine/wms/bad.csv", format!("{H}A,W1,7,{t0},,\n"));
    let o = ws.run_ok(&["quarantine", "retry", "--source", "wms", "bad.csv"], 0);
    assert!(o.stdout.starts_with("applied"), "{}", o.stdout);
    assert_eq!(ws.explain("A", None)["available"], 8, "MAIN 1 + W1 7");
    assert!(ws.files_under("var/quarantine/wms").is_empty());
    // A held file retried without --force stays held (exit 1); discarded, it
    // leaves quarantine and its bytes stay in the archive.
    ws.run_ok(&["quarantine", "retry", "--source", "snap", "short.csv"], 1);
    let o = ws.run_ok(
        &["quarantine", "discard", "--source", "snap", "short.csv"],
        0,
    );
    assert!(
        o.stdout
            .starts_with("discarded short.csv (its bytes are kept in "),
        "{}",
        o.stdout
    );
    assert!(ws.files_under("var/quarantine/snap").is_empty());
    let archived = ws.files_under("var/archive/snap");
    assert!(
        archived.iter().any(|f| f.ends_with("/short.csv")),
        "{archived:?}"
    );
    assert_eq!(
        counts(&ws),
        [("wms".into(), 0, 0, 0), ("snap".into(), 0, 0, 0)]
    );
    // A file deleted by hand waits no more; a name not there is a usage error.
    ws.write("in/wms/bad2.csv", format!("{H}A,W1,y,{t0},,\n"));
    ws.run(&["run", "--once"]);
    assert_eq!(counts(&ws)[0], ("wms".into(), 1, 1, 0));
    std::fs::remove_file(ws.path("var/quarantine/wms/bad2.csv")).unwrap();
    assert_eq!(counts(&ws)[0], ("wms".into(), 0, 0, 0));
    let o = ws.run_ok(&["quarantine", "retry", "--source", "wms", "bad2.csv"], 2);
    assert!(
        o.stderr
            .contains("\"bad2.csv\" is not waiting in quarantine/wms/"),
        "{}",
        o.stderr
    );
    assert_eq!(
        ws.run_ok(&["quarantine"], 0).stdout,
        "nothing waits in quarantine\n"
    );
}

/// `ws`'s config with `[ledger] path` (or `url_env`) replaced by `url = "<url>"`.
fn ledger_url(ws: &Workspace, url: &str) {
    ws.config(&pg::ledger_line(
        &ws.read("stockgate.toml"),
        &format!("url = \"{url}\""),
    ));
}

/// SKUs whose order differs between byte order and most collations.
const AWKWARD_SKUS: [&str; 8] = ["a-1", "A-1", "B_2", "b-2", "Ä-3", "10", "9", "a b"];

fn awkward_stock() -> String {
    let mut body = String::from(INV_H);
    for (i, sku) in AWKWARD_SKUS.iter().enumerate() {
        body.push_str(&format!("{sku},W1,{},{T0},,\n", i + 1));
    }
    body
}

const INV_H: &str = "SKU,Whse,Qty,AsOf,UPC,Title\n";
const T0: &str = "2026-01-01T00:00:00Z";

#[test]
fn postgres_feeds_are_byte_identical_to_sqlites_and_keys_compare_in_byte_order() {
    let Some(_) = pg::cluster() else { return };
    let x12 = r#"
[[cart]]
id = "edi"
merchant = "m1"
format = "x12-846"
mapping = "edi"
schedule = "every 1m"
[cart.transport]
type = "dir"
path = "out/edi"
file_name = "{cart}-{seq}.x12"
"#;
    let mut out = Vec::new();
    for on_pg in [false, true] {
        let ws = Workspace::standard(&cart("full", "m1", "full_sync = true"));
        let cfg = ws.read("stockgate.toml") + x12;
        ws.config(&cfg);
        ws.mapping(
            "edi",
            "format = \"x12-846\"\nversion = \"004010\"\nsender_qualifier = \"ZZ\"\nsender_id = \"ACMEWHSE\"\n\
             receiver_qualifier = \"08\"\nreceiver_id = \"925485US00\"\nusage = \"P\"\n\
             item_ids = [ [\"VN\", \"sku\"] ]\nquantity_qualifier = \"33\"\nunit = \"EA\"\n",
        );
        if on_pg {
            ledger_url(&ws, &pg::fresh_database("byte_order"));
        } else {
            let cfg = pg::ledger_line(&ws.read("stockgate.toml"), "path = \"var/ledger.sqlite\"");
            ws.config(&cfg);
        }
        ws.apply("wms", "s.csv", &awkward_stock());
        ws.apply(
            "orders",
            "o.csv",
            "Order,Line,SKU,Qty,Status,At,Whse\nO1,1,Ä-3,2,open,2026-06-01T00:00:00Z,W1\n",
        );
        let csv = ws.sync_feed("full", &["--force"]);
        let v = ws.sync("edi", &["--force"], 0);
        let edi = std::fs::read_to_string(v["file"].as_str().unwrap()).unwrap();
        out.push((csv, edi));
    }
    let (sqlite, pg) = (&out[0], &out[1]);
    // Byte order, as Rust sorts the strings.
    let mut want: Vec<&str> = AWKWARD_SKUS.to_vec();
    want.sort();
    let skus: Vec<&str> = sqlite
        .0
        .lines()
        .skip(1)
        .map(|l| l.rsplit_once(',').unwrap().0)
        .collect();
    assert_eq!(skus, want, "{}", sqlite.0);
    assert_eq!(pg.0, sqlite.0, "the CSV feeds differ");
    assert!(pg.0.contains("Ä-3,3\n"), "{}", pg.0); // 5 counted, 2 ordered
    // The 846s differ only in the envelope's dates and times.
    let strip = |s: &str| -> String {
        s.split('~')
            .map(|seg| {
                let f: Vec<&str> = seg.trim().split('*').collect();
                match f[0] {
                    "ISA" => f[..9].join("*"),
                    "GS" => f[..4].join("*"),
                    "BIA" => f[..3].join("*"),
                    _ => f.join("*"),
                }
            })
            .collect::<Vec<_>>()
            .join("~")
    };
    assert_eq!(strip(&pg.1), strip(&sqlite.1));
}

#[test]
fn copy_ledger_moves_every_row_into_an_empty_postgres_ledger_and_refuses_a_full_one() {
    let Some(cluster) = pg::cluster() else { return };
    let ws = Workspace::standard(&cart("full", "m1", "full_sync = true"));
    let cfg = ws.read("stockgate.toml").replace(
        "url_env = \"STOCKGATE_TEST_DATABASE_URL\"",
        "path = \"var/ledger.sqlite\"",
    );
    ws.config(&cfg);
    ws.apply("wms", "s.csv", &awkward_stock());
    ws.apply(
        "orders",
        "o.csv",
        "Order,Line,SKU,Qty,Status,At,Whse\nO1,1,a-1,1,open,2026-06-01T00:00:00Z,W1\n",
    );
    let before = ws.sync_feed("full", &["--force"]);
    ws.sync("shop", &[], 0);
    let sqlite = stockgate::ledger::Ledger::open(ws.path("var/ledger.sqlite")).unwrap();
    let tables = sqlite.debug_tables().unwrap();
    let dump =
        |l: &stockgate::ledger::Ledger| -> Vec<(String, stockgate::ledger::debug::DebugTable)> {
            tables
                .iter()
                .map(|t| {
                    let mut rows = l.debug_rows(t, &[]).unwrap();
                    rows.rows.sort_by_key(|r| format!("{r:?}"));
                    (t.clone(), rows)
                })
                .collect()
        };
    let want = dump(&sqlite);
    drop(sqlite);
    // The URL carries a password (the test cluster trusts loopback and
    // ignores it): it is never printed.
    let url = pg::fresh_database("copy_target").replace("postgres@", "postgres:Sup3r-s3cret@");
    let _ = cluster;
    let pg_cfg = ws.write(
        "pg.toml",
        ws.read("stockgate.toml")
            .replace("path = \"var/ledger.sqlite\"", "url_env = \"PG_URL\""),
    );
    let run = |args: &[&str]| {
        let mut full = vec!["--config".to_string(), pg_cfg.display().to_string()];
        full.extend(args.iter().map(|a| a.to_string()));
        let o = run_bin_env(&full, ws.dir(), &[("PG_URL".into(), url.clone())]);
        assert!(
            !o.stdout.contains("Sup3r") && !o.stderr.contains("Sup3r"),
            "{args:?} printed the password:\n{}{}",
            o.stdout,
            o.stderr
        );
        o
    };
    let from = ws.path("var/ledger.sqlite").display().to_string();
    let o = run(&["copy-ledger", "--from", &from]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("postgres:***@"), "{}", o.stdout);
    let rows_of = |t: &str| {
        o.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(t))
            .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
    };
    assert_eq!(rows_of("stock").as_deref(), Some("8"), "{}", o.stdout);
    assert_eq!(rows_of("syncs").as_deref(), Some("2"), "{}", o.stdout);
    // Every row of every table, history included.
    let pg = stockgate::ledger::Ledger::open(stockgate::ledger::LedgerLocation::Postgres(
        stockgate::ledger::PgUrl::new(&url),
    ))
    .unwrap();
    assert_eq!(pg.debug_tables().unwrap(), tables);
    let got = dump(&pg);
    for ((t, w), (_, g)) in want.iter().zip(&got) {
        assert_eq!(g.rows, w.rows, "table {t}");
    }
    drop(pg);
    // The same feed from the copy; new ids go on after the copied ones.
    let o = run(&["sync", "full", "--force", "--json"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let v = o.json();
    let after = std::fs::read_to_string(v["file"].as_str().unwrap()).unwrap();
    assert_eq!(after, before);
    // explain says the same of a SKU from either ledger.
    let explain = |args: Vec<String>, env: &[(String, String)]| {
        let o = run_bin_env(&args, ws.dir(), env);
        assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
        let mut v = o.json();
        v.as_object_mut().unwrap().remove("ledger");
        v.as_object_mut().unwrap().remove("computed_at");
        v
    };
    let ex = |cfg: &std::path::Path| -> Vec<String> {
        [
            "--config",
            &cfg.display().to_string(),
            "explain",
            "--merchant",
            "m1",
            "--sku",
            "a-1",
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    assert_eq!(
        explain(ex(&pg_cfg), &[("PG_URL".into(), url.clone())]),
        explain(ex(&ws.config_path()), &[])
    );
    let o = run(&["history", "--cart", "full", "--json"]);
    let h = o.json();
    assert_eq!(h[0]["id"].as_i64(), h[1]["id"].as_i64().map(|i| i + 2));
    // A second copy into the now full ledger is refused, changing nothing.
    let o = run(&["copy-ledger", "--from", &from]);
    assert_eq!(o.code, 2, "{}{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("is not empty"), "{}", o.stderr);
    // migrate and status name the database, redacted.
    let o = run(&["migrate"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("postgres:***@127.0.0.1"), "{}", o.stdout);
    assert!(o.stdout.contains("schema version 3"), "{}", o.stdout);
    let o = run(&["status", "--json"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    // An unreachable database: a clear error, the password still hidden.
    let dead = url.replace(&format!(":{}/", cluster_port(&url)), ":1/");
    let o = run_bin_env(
        &[
            "--config".into(),
            pg_cfg.display().to_string(),
            "status".into(),
        ],
        ws.dir(),
        &[("PG_URL".into(), dead)],
    );
    assert_ne!(o.code, 0);
    assert!(!o.stderr.contains("Sup3r"), "{}", o.stderr);
    assert!(
        o.stderr.contains("postgres:***@127.0.0.1:1/"),
        "{}",
        o.stderr
    );
}

/// The port of a test cluster URL.
fn cluster_port(url: &str) -> String {
    url.rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn check_names_a_ledger_given_twice_or_an_unset_url_env() {
    let ws = Workspace::standard("");
    let cfg = ws.read("stockgate.toml");
    let cfg = pg::ledger_line(
        &cfg,
        "path = \"var/ledger.sqlite\"\nurl = \"postgres://gw:pw@db/stock\"",
    );
    ws.config(&cfg);
    let o = ws.run(&["check"]);
    assert_eq!(o.code, 2, "{}{}", o.stdout, o.stderr);
    assert!(
        format!("{}{}", o.stdout, o.stderr).contains("give one of path, url and url_env"),
        "{}",
        o.stderr
    );
    assert!(
        !format!("{}{}", o.stdout, o.stderr).contains(":pw@"),
        "{}",
        o.stderr
    );
    let cfg = pg::ledger_line(
        &ws.read("stockgate.toml"),
        "url_env = \"STOCKGATE_NO_SUCH_VAR\"",
    );
    let cfg = cfg.replace("url = \"postgres://gw:pw@db/stock\"\n", "");
    ws.config(&cfg);
    let o = ws.run(&["check"]);
    assert_eq!(o.code, 2, "{}{}", o.stdout, o.stderr);
    assert!(
        format!("{}{}", o.stdout, o.stderr).contains("url_env")
            && format!("{}{}", o.stdout, o.stderr)
                .contains("STOCKGATE_NO_SUCH_VAR, which is not set"),
        "{}",
        o.stderr
    );
    let cfg = pg::ledger_line(&ws.read("stockgate.toml"), "url = \"mysql://db/stock\"");
    ws.config(&cfg);
    let o = ws.run(&["check"]);
    assert_eq!(o.code, 2, "{}{}", o.stdout, o.stderr);
    assert!(
        format!("{}{}", o.stdout, o.stderr).contains("must be a PostgreSQL URL"),
        "{}",
        o.stderr
    );
    // An inline password is a warning, redacted.
    let cfg = ws.read("stockgate.toml").replace(
        "url = \"mysql://db/stock\"",
        "url = \"postgres://gw:pw@db/stock\"",
    );
    ws.config(&cfg);
    let o = ws.run(&["check"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let all = format!("{}{}", o.stdout, o.stderr);
    assert!(all.contains("holds a password"), "{all}");
    assert!(!all.contains(":pw@"), "{all}");
}
