//! Issue 8, "trust under hostile input": each defect found by trying to
//! break the gateway, with a test that reproduces it (CONTRACT rules 13-19).
//! The malformed-file corpora of tests/bad_input.rs hold the per-row cases;
//! this file holds what needs more than one file or command.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const T0: &str = "2025-06-01T10:00:00Z";
const INV_H: &str = "SKU,Whse,Qty,AsOf,UPC,Title\n";

fn cart_full(id: &str, format: &str, mapping: &str, ext: &str) -> String {
    format!(
        r#"
[[cart]]
id = "{id}"
merchant = "m1"
format = "{format}"
mapping = "{mapping}"
schedule = "every 1m"
full_sync = true
[cart.transport]
type = "dir"
path = "out/{id}"
file_name = "{{cart}}-{{seq}}.{ext}"
"#
    )
}

// ----- item 1: overflow -----

#[test]
fn quantities_beyond_a_trillion_are_rejected_and_sums_never_overflow() {
    let ws = Workspace::standard("");
    let before = ws.ledger_dump();
    // The issue's reproduction: i64::MAX twice in one file.
    let p = ws.write(
        "in/wms/max.csv",
        format!("{INV_H}A,W1,9223372036854775807,{T0},,\nA,W1,9223372036854775807,{T0},,\n"),
    );
    let v = ws.ingest("wms", &p, 1);
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert!(
        v["errors"][0].as_str().unwrap().contains("out of range"),
        "{v}"
    );
    assert_eq!(ws.ledger_dump(), before);

    // Each row within range, but the lots of one (SKU, warehouse) sum beyond it.
    let p = ws.write(
        "in/wms/lots.csv",
        format!("{INV_H}A,W1,1000000000000,{T0},,\nA,W1,1,{T0},,\n"),
    );
    let v = ws.ingest("wms", &p, 1);
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert!(v["errors"].to_string().contains("out of range"), "{v}");
    assert_eq!(ws.ledger_dump(), before);

    // At the limit in two warehouses: applied, and every sum still works.
    ws.apply(
        "wms",
        "edge.csv",
        &format!("{INV_H}A,W1,1000000000000,{T0},,\nA,W2,1000000000000,{T0},,\nB,W1,-1000000000000,{T0},,\n"),
    );
    let e = ws.explain("A", Some("shop"));
    assert_eq!(e["available"], 2_000_000_000_000i64, "{e}");
    assert_eq!(e["carts"][0]["value"], 2_000_000_000_000i64, "{e}");
    let feed = ws.sync_feed("shop", &["--force"]);
    assert!(feed.contains("A,2000000000000"), "{feed}");

    // Orders too.
    let before = ws.ledger_dump();
    let p = ws.write(
        "in/orders/o.csv",
        format!("Order,Line,SKU,Qty,Status,At,Whse\nO1,1,A,1000000000001,open,{T0},\n"),
    );
    let v = ws.ingest("orders", &p, 1);
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert!(
        v["errors"][0].as_str().unwrap().contains("out of range"),
        "{v}"
    );
    assert_eq!(ws.ledger_dump(), before);
}

// ----- item 2: control characters in SKUs, at ingest and in feeds -----

#[test]
fn a_bad_sku_already_in_the_ledger_is_left_out_of_every_feed_never_fatal() {
    let ws = Workspace::standard(&format!(
        "{}{}{}",
        cart_full("c", "csv", "feed", "csv"),
        cart_full("x", "xml", "xfeed", "xml"),
        cart_full("e", "x12-846", "r846", "x12"),
    ));
    ws.mapping(
        "xfeed",
        "format = \"xml\"\nroot = \"Inventory\"\nitem = \"Item\"\nfields = [ { element = \"SKU\", field = \"sku\" }, { element = \"Qty\", field = \"quantity\" } ]\n",
    );
    ws.mapping(
        "r846",
        "format = \"x12-846\"\nversion = \"004010\"\nsender_qualifier = \"ZZ\"\nsender_id = \"ACME\"\nreceiver_qualifier = \"ZZ\"\nreceiver_id = \"SHOP\"\nitem_ids = [ [\"VN\", \"sku\"] ]\n",
    );
    ws.apply(
        "wms",
        "s.csv",
        &format!("{INV_H}A,W1,5,{T0},,\nAX,W1,7,{T0},,\n"),
    );
    // What an older stockgate let in: SKUs holding TAB, NUL, ESC, DEL
    // (PostgreSQL's text holds no NUL: never there).
    let l = ws.ledger();
    let bad: &[&str] = if common::pg::enabled() {
        &["A\tX", "A\u{1b}X", "A\u{7f}X"]
    } else {
        &["A\tX", "A\0X", "A\u{1b}X", "A\u{7f}X"]
    };
    for sku in bad.iter().copied() {
        l.debug_insert(
            "products",
            &[
                ("merchant", "m1".into()),
                ("sku", sku.into()),
                ("first_seen", 0.into()),
            ],
        )
        .unwrap();
        l.debug_insert(
            "stock",
            &[
                ("merchant", "m1".into()),
                ("sku", sku.into()),
                ("warehouse", "W1".into()),
                ("quantity", 3.into()),
                ("as_of", 0.into()),
                ("report_id", 1.into()),
                ("named_report_id", 1.into()),
            ],
        )
        .unwrap();
    }
    drop(l);
    for cart in ["c", "x", "e"] {
        let v = ws.sync(cart, &["--force"], 0);
        assert_eq!(v["outcome"], "sent", "{cart}: {v}");
        assert_eq!(v["items"], 2, "{cart}: {v}");
        assert_eq!(v["missing"][0]["items"], bad.len(), "{cart}: {v}");
        assert!(
            v["missing"][0]["field"]
                .as_str()
                .unwrap()
                .starts_with("invalid sku"),
            "{v}"
        );
        let bytes = std::fs::read(v["file"].as_str().unwrap()).unwrap();
        assert!(
            !bytes
                .iter()
                .any(|&b| b == 0 || b == 0x1b || b == 0x7f || b == b'\t'),
            "{cart}: a control character was written"
        );
        let text = String::from_utf8(bytes).unwrap();
        // `A\0X` is never turned into `AX` (a real, different SKU): AX = 7 once.
        assert_eq!(text.matches("AX").count(), 1, "{cart}: {text}");
    }
}

// ----- item 3: future as-of -----

#[test]
fn a_count_dated_in_the_future_is_rejected() {
    let ws = Workspace::standard(&inbound("plain", "m1", "inventory", "plain", ""));
    ws.mapping("plain", INV_PLAIN_MAPPING);
    ws.apply("wms", "s.csv", &format!("{INV_H}A,W1,5,{T0},,\n"));
    let before = ws.ledger_dump();
    let p = ws.write(
        "in/wms/f.csv",
        format!("{INV_H}A,W1,9,2099-01-01T00:00:00Z,,\n"),
    );
    let v = ws.ingest("wms", &p, 1);
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .contains("as-of in the future"),
        "{v}"
    );
    assert_eq!(ws.ledger_dump(), before);
    // Within max_future (default 1h): a clock a little ahead is fine.
    let soon = chrono::Utc::now() + chrono::Duration::minutes(20);
    ws.apply(
        "wms",
        "soon.csv",
        &format!("{INV_H}A,W1,6,{},,\n", soon.to_rfc3339()),
    );
    assert_eq!(ws.value("A", "shop"), 6);

    // as_of_from = file_mtime: a file from 2099.
    let before = ws.ledger_dump();
    let p = ws.write("in/plain/m.csv", "SKU,Qty\nA,1\n");
    set_mtime(&p, epoch("2099-01-01T00:00:00Z"));
    let v = ws.ingest("plain", &p, 1);
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .contains("as-of in the future"),
        "{v}"
    );
    assert_eq!(ws.ledger_dump(), before);

    // max_future is a mapping key; a bad value is a config problem.
    ws.mapping(
        "plain",
        &format!("{INV_PLAIN_MAPPING}max_future = \"soon\"\n"),
    );
    let o = ws.run_ok(&["check"], 2);
    assert!(
        o.stdout.contains("max_future") || o.stderr.contains("max_future"),
        "{o:?}"
    );
    ws.mapping(
        "plain",
        &format!("max_future = \"200y\"\n{INV_PLAIN_MAPPING}"),
    );
    ws.run_ok(&["check"], 2);
    ws.mapping(
        "plain",
        &format!("max_future = \"1d\"\n{INV_PLAIN_MAPPING}"),
    );
    ws.run_ok(&["check"], 0);
}

// ----- items 7, 8: bounded input and output -----

#[test]
fn a_huge_line_or_field_is_rejected_and_every_echo_is_bounded() {
    let ws = Workspace::standard("");
    ws.apply("wms", "s.csv", &format!("{INV_H}A,W1,5,{T0},,\n"));
    let before = ws.ledger_dump();

    // One 3 MB line: rejected, and nothing quotes it whole.
    let p = ws.write(
        "in/wms/line.csv",
        format!("{INV_H}A,W1,{},{T0},,\n", "9".repeat(3 << 20)),
    );
    let o = ws.run_ok(
        &["ingest", "--source", "wms", "--json", p.to_str().unwrap()],
        1,
    );
    assert!(o.stdout.len() < 8_000, "JSON of {} bytes", o.stdout.len());
    let v = &o.json()[0];
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert!(v["errors"].to_string().contains("1 MiB"), "{v}");
    let txt = ws.read("var/quarantine/wms/line.csv.error.txt");
    assert!(txt.len() < 8_000, "error.txt of {} bytes", txt.len());
    let st = ws.run_ok(&["status", "--json"], 0);
    assert!(
        st.stdout.len() < 8_000,
        "status of {} bytes",
        st.stdout.len()
    );
    assert_eq!(ws.ledger_dump(), before);

    // One 100 KB field in a record under 1 MiB: that row is rejected.
    let p = ws.write(
        "in/wms/field.csv",
        format!("{INV_H}A,W1,5,{T0},,{}\n", "d".repeat(100 << 10)),
    );
    let o = ws.run_ok(
        &["ingest", "--source", "wms", "--json", p.to_str().unwrap()],
        1,
    );
    assert!(o.stdout.len() < 8_000, "JSON of {} bytes", o.stdout.len());
    assert!(
        o.stdout.contains("line 2") && o.stdout.contains("64 KiB"),
        "{}",
        o.stdout
    );

    // A long bad value is quoted at most ~200 characters, with "…".
    let p = ws.write(
        "in/wms/value.csv",
        format!("{INV_H}A,W1,{},{T0},,\n", "x".repeat(5000)),
    );
    let v = ws.ingest("wms", &p, 1);
    let e = v["errors"][0].as_str().unwrap();
    assert!(e.contains('…') && e.len() < 400, "{e}");

    // 5,000 bad rows: 1,000 listed, then "and 4000 more".
    let mut body = INV_H.to_string();
    for i in 0..5000 {
        body.push_str(&format!("S{i},W1,bad,{T0},,\n"));
    }
    let p = ws.write("in/wms/many.csv", body);
    let v = ws.ingest("wms", &p, 1);
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1001, "{}", errors.len());
    assert_eq!(errors[1000], "and 4000 more");
    let txt = ws.read("var/quarantine/wms/many.csv.error.txt");
    assert_eq!(txt.matches("not a whole number").count(), 1000);
    assert!(txt.contains("and 4000 more\n"), "{txt}");
    assert_eq!(ws.ledger_dump(), before);
}

// ----- item 9: ISA13, ISA11 and file names from X12 -----

#[test]
fn a_997_file_name_holds_only_safe_characters() {
    let ws = Workspace::standard(&inbound("edi", "m1", "inventory", "edi", "warehouse = \"EDI\"").replace(
        "[inbound.transport]",
        "acknowledge = true\n[inbound.ack_transport]\ntype = \"dir\"\npath = \"out/acks\"\n\n[inbound.transport]",
    ));
    ws.mapping(
        "edi",
        "format = \"x12\"\nrecord = \"inventory\"\nsku_qualifier = \"VN\"\nquantity_qualifier = \"33\"\n",
    );
    // A sender id that tries to climb out of the ack folder.
    let body = "ISA*00*          *00*          *ZZ*../../../x/..  *ZZ*STOCKGATE      *260101*1200*U*00401*000000007*0*P*>~\n\
GS*IB*WHSE*STOCKGATE*20260101*1200*7*X*004010~\nST*846*0001~\nBIA*00*SI*R1*20260101*1200~\nLIN*1*VN*A~\nQTY*33*5*EA~\nCTT*1~\nSE*6*0001~\nGE*1*7~\nIEA*1*000000007~\n";
    let p = ws.write("in/edi/a.x12", body);
    let v = ws.ingest("edi", &p, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    let acks = ws.files_under("out/acks");
    assert_eq!(acks.len(), 1, "{acks:?} {v}");
    let name = &acks[0];
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
        "{name}"
    );
    assert!(name.contains("000000007"), "{name}");

    // ISA13 of the issue: not nine digits, rejected, no 997 names it.
    for isa13 in ["00000010A", "../../../"] {
        let bad = body.replace("000000007", isa13);
        let p = ws.write(&format!("in/edi/{}.x12", isa13.replace('/', "_")), bad);
        let v = ws.ingest("edi", &p, 1);
        assert_eq!(v["outcome"], "rejected", "{v}");
        assert!(v["errors"].to_string().contains("nine digits"), "{v}");
    }
    assert_eq!(ws.files_under("out/acks").len(), 1);
}

// ----- item 11: secrets in config errors -----

#[test]
fn a_secret_of_the_wrong_type_is_never_quoted() {
    let ws = Workspace::standard("");
    let cfg = std::fs::read_to_string(ws.config_path()).unwrap();
    let cfg = cfg.replacen(
        "[inbound.transport]\ntype = \"dir\"",
        "[inbound.transport]\ntype = \"dir\"\npassword = 12345678",
        1,
    );
    ws.config(&cfg);
    let o = ws.run_ok(&["check"], 2);
    let all = format!("{}{}", o.stdout, o.stderr);
    assert!(!all.contains("12345678"), "{all}");
    assert!(all.contains("password"), "{all}");
    // A wrong type under another secret name, in a table that also has an unknown key.
    let cfg = cfg.replace(
        "password = 12345678",
        "key_passphrase = 87654321\nbogus = 1",
    );
    ws.config(&cfg);
    let o = ws.run_ok(&["check"], 2);
    let all = format!("{}{}", o.stdout, o.stderr);
    assert!(!all.contains("87654321"), "{all}");
}

// ----- item 12: owner-only files -----

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn ledger_archive_and_quarantine_are_owner_only_whatever_the_umask() {
    let ws = Workspace::standard("");
    let good = ws.write("drop/good.csv", format!("{INV_H}A,W1,5,{T0},,\n"));
    let bad = ws.write("drop/bad.csv", format!("{INV_H}A,W1,x,{T0},,\n"));
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o644)).unwrap();
    // umask 000: only explicit modes keep others out.
    let sh = |args: &str| {
        let o = std::process::Command::new("sh")
            .envs(common::pg::env_for(ws.dir()))
            .arg("-c")
            .arg(format!(
                "umask 000; exec '{BIN}' --config '{}' {args}",
                ws.config_path().display()
            ))
            .env("STOCKGATE_LOG", "warn")
            .output()
            .unwrap();
        o.status.code()
    };
    assert_eq!(
        sh(&format!("ingest --source wms '{}'", good.display())),
        Some(0)
    );
    assert_eq!(
        sh(&format!("ingest --source wms '{}'", bad.display())),
        Some(1)
    );
    for d in [
        "var",
        "var/archive",
        "var/archive/wms",
        "var/quarantine",
        "var/quarantine/wms",
    ] {
        assert_eq!(mode(&ws.path(d)), 0o700, "{d}");
    }
    let mut files = vec![];
    if !common::pg::enabled() {
        files.push("var/ledger.sqlite".to_string());
    }
    for sfx in ["-wal", "-shm"] {
        if ws.path(&format!("var/ledger.sqlite{sfx}")).exists() {
            files.push(format!("var/ledger.sqlite{sfx}"));
        }
    }
    files.extend(
        ws.files_under("var/archive")
            .iter()
            .map(|f| format!("var/archive/{f}")),
    );
    files.extend(
        ws.files_under("var/quarantine")
            .iter()
            .map(|f| format!("var/quarantine/{f}")),
    );
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        assert_eq!(mode(&ws.path(f)), 0o600, "{f}");
    }
    let day = ws.path(&format!("var/archive/wms/{}", today()));
    assert_eq!(mode(&day), 0o700);
}

// ----- item 13: duplicate header column, ragged rows -----
// (corpus cases in tests/bad_input.rs: duplicate_header_column, row_longer_than_header)

// ----- item 14: a failed sync says how many items it would have sent -----

#[test]
fn a_failed_sync_reports_the_items_it_would_have_sent() {
    let ws = Workspace::standard("");
    ws.apply(
        "wms",
        "s.csv",
        &format!("{INV_H}A,W1,5,{T0},,\nB,W1,6,{T0},,\n"),
    );
    // The outbox is a regular file: delivery fails.
    ws.write("out/shop", "not a folder");
    let v = ws.sync("shop", &[], 1);
    assert_eq!(v["outcome"], "failed", "{v}");
    assert_eq!(v["items"], 2, "{v}");
    let h = ws.history("shop");
    assert_eq!(h[0]["items"], 2, "{h:?}");
}

// ----- items 4, 5, 6 (fixed earlier on this branch): kept fixed -----

#[test]
fn two_syncs_in_one_second_with_the_default_file_name_both_arrive() {
    let ws = Workspace::standard("");
    let cfg = std::fs::read_to_string(ws.config_path()).unwrap();
    // The default file_name: no file_name key at all.
    ws.config(&cfg.replace("file_name = \"{cart}-{seq}.csv\"\n", ""));
    ws.apply("wms", "1.csv", &format!("{INV_H}A,W1,5,{T0},,\n"));
    let a = ws.sync("shop", &[], 0);
    ws.apply("wms", "2.csv", &format!("{INV_H}B,W1,6,{T0},,\n"));
    let b = ws.sync("shop", &[], 0);
    assert_eq!(a["outcome"], "sent", "{a}");
    assert_eq!(b["outcome"], "sent", "{b}");
    assert_ne!(a["file"], b["file"]);
    let files = ws.files_under("out/shop");
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files.iter().all(|f| f.starts_with("inventory-shop-")),
        "{files:?}"
    );
    assert!(ws.read(&format!("out/shop/{}", files[0])).contains("A,5"));
    assert!(ws.read(&format!("out/shop/{}", files[1])).contains("B,6"));

    // A {timestamp}-only name used twice in one second never replaces the first.
    let cfg = std::fs::read_to_string(ws.config_path()).unwrap();
    ws.config(&cfg.replace(
        "path = \"out/shop\"\n",
        "path = \"out/shop2\"\nfile_name = \"x-{timestamp}.csv\"\n",
    ));
    ws.apply("wms", "3.csv", &format!("{INV_H}C,W1,7,{T0},,\n"));
    let first = ws.sync("shop", &[], 0);
    ws.apply("wms", "4.csv", &format!("{INV_H}D,W1,8,{T0},,\n"));
    let _second = ws.run(&["sync", "shop", "--json"]);
    let f = first["file"].as_str().unwrap();
    assert!(
        std::fs::read_to_string(f).unwrap().contains("C,7"),
        "{first}"
    );
}

#[test]
fn check_refuses_two_carts_writing_the_same_file() {
    let ws = Workspace::standard("");
    let cfg = std::fs::read_to_string(ws.config_path()).unwrap();
    let two = cart("shop2", "m1", "").replace("out/shop2", "out/shop");
    let same = format!("{cfg}{two}").replace("{cart}-{seq}.csv", "feed.csv");
    ws.config(&same);
    let o = ws.run_ok(&["check"], 2);
    assert!(
        o.stdout.contains("cart[1].transport.file_name") && o.stdout.contains("overwrite"),
        "{o:?}"
    );
}

#[test]
fn the_same_file_ingested_twice_at_the_same_moment_is_applied_once() {
    let ws = Workspace::standard("");
    ws.run_ok(&["status"], 0); // the ledger exists before the race
    for trial in 0..30 {
        let p = ws.write(
            &format!("drop/t{trial}.csv"),
            format!("{INV_H}A,W1,{trial},{T0},,\n"),
        );
        let spawn = || {
            std::process::Command::new(BIN)
                .envs(common::pg::env_for(ws.dir()))
                .args(["--config", ws.config_path().to_str().unwrap()])
                .args(["ingest", "--source", "wms", "--json", p.to_str().unwrap()])
                .env("STOCKGATE_LOG", "error")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let outs: Vec<String> = [a, b]
            .into_iter()
            .map(|c| {
                let o = c.wait_with_output().unwrap();
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                v[0]["outcome"].as_str().unwrap().to_string()
            })
            .collect();
        let applied = outs.iter().filter(|o| *o == "applied").count();
        assert_eq!(applied, 1, "trial {trial}: {outs:?}");
        assert!(
            outs.contains(&"duplicate".to_string()),
            "trial {trial}: {outs:?}"
        );
    }
    assert_eq!(ws.count("reports"), 30);
}

#[test]
fn an_archive_that_cannot_be_written_applies_nothing() {
    let ws = Workspace::standard("");
    ws.run_ok(&["status"], 0);
    let before = ws.ledger_dump();
    // A regular file where the archive folder should be: writing under it
    // fails even for root.
    ws.write("var/archive", "not a folder");
    let p = ws.write("in/wms/s.csv", format!("{INV_H}A,W1,5,{T0},,\n"));
    let o = ws.run(&["ingest", "--source", "wms", "--json", p.to_str().unwrap()]);
    assert_ne!(o.code, 0, "{o:?}");
    assert_eq!(ws.ledger_dump(), before);
    assert!(p.exists(), "the file stays where it was");
    // No temp file anywhere under var.
    let left: Vec<String> = ws
        .files_under("var")
        .into_iter()
        .filter(|f| f.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Once the archive can be written, the file is applied (not a "duplicate").
    std::fs::remove_file(ws.path("var/archive")).unwrap();
    let v = ws.ingest("wms", &p, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
}
