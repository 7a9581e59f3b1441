//! Inbound CSV options, XML in and out, outbound fields (CONTRACT §4).

mod common;
use common::*;

/// Workspace with source `wms` (mapping `inv` = `inv_mapping`, warehouse MAIN)
/// and a full-sync cart `shop` (mapping `feed` = `feed_mapping`, format `fmt`).
fn ws_with(inv_mapping: &str, fmt: &str, feed_mapping: &str) -> Workspace {
    let ws = Workspace::new();
    let c = cart("shop", "m1", "full_sync = true")
        .replace("format = \"csv\"", &format!("format = \"{fmt}\""));
    ws.config(&format!(
        "{}{}{}",
        header(&["m1"]),
        inbound("wms", "m1", "inventory", "inv", "warehouse = \"MAIN\""),
        c
    ));
    ws.mapping("inv", inv_mapping);
    ws.mapping("feed", feed_mapping);
    ws
}

#[test]
fn csv_columns_by_number_without_header_and_semicolons() {
    let ws = ws_with(
        "format = \"csv\"\nrecord = \"inventory\"\nheader = false\ndelimiter = \";\"\n[columns]\nsku = 2\nquantity = \"4\"\nwarehouse = 1\n",
        "csv",
        FEED_MAPPING,
    );
    let v = ws.apply("wms", "s.csv", "W1;A;ignored;5\nW2;A;x;7\nW1;B;y;+3\n");
    assert_eq!(v["rows"], 3);
    assert_eq!(ws.sync_feed("shop", &[]), "SKU,Quantity\nA,12\nB,3\n");
    let e = ws.explain("A", None);
    assert_eq!(e["warehouses"][1]["warehouse"], "W2");
    assert_eq!(e["warehouses"][1]["quantity"], 7);
}

#[test]
fn csv_tab_delimiter_and_case_insensitive_header() {
    let ws = ws_with(
        "format = \"csv\"\nrecord = \"inventory\"\ndelimiter = \"\\t\"\n[columns]\nsku = \"Item\"\nquantity = \"OnHand\"\n",
        "csv",
        FEED_MAPPING,
    );
    // Header spelled differently (case), extra column, BOM; rows use the source's warehouse.
    ws.apply(
        "wms",
        "s.tsv",
        "\u{feff}ITEM\tNote\tonhand\nA\ta, b\t4\nB\t\"q\"\t2\n",
    );
    assert_eq!(ws.sync_feed("shop", &[]), "SKU,Quantity\nA,4\nB,2\n");
    assert_eq!(ws.explain("A", None)["warehouses"][0]["warehouse"], "MAIN");
}

#[test]
fn as_of_column_with_format_and_timezone() {
    let ws = ws_with(
        "format = \"csv\"\nrecord = \"inventory\"\n[columns]\nsku = \"SKU\"\nquantity = \"Qty\"\nas_of = \"Counted\"\n[as_of]\nformat = \"%d/%m/%Y %H:%M\"\ntimezone = \"Europe/Berlin\"\n",
        "csv",
        FEED_MAPPING,
    );
    // Winter (CET, +01:00), summer (CEST, +02:00), and RFC 3339 always accepted.
    ws.apply("wms", "s.csv", "SKU,Qty,Counted\nA,1,20/11/2026 07:00\nB,2,01/07/2025 07:30\nC,3,2025-07-01T07:30:00+02:00\n");
    assert_eq!(
        ws.explain("A", None)["warehouses"][0]["as_of"],
        "2026-11-20T06:00:00+00:00"
    );
    assert_eq!(
        ws.explain("B", None)["warehouses"][0]["as_of"],
        "2025-07-01T05:30:00+00:00"
    );
    assert_eq!(
        ws.explain("C", None)["warehouses"][0]["as_of"],
        "2025-07-01T05:30:00+00:00"
    );
    // A time not in the format: the file is rejected naming the row and column.
    let before = ws.ledger_dump();
    let p = ws.write("in/wms/bad.csv", "SKU,Qty,Counted\nA,1,2026-11-20 07:00\n");
    let v = ws.ingest("wms", &p, 1);
    assert_eq!(v["outcome"], "rejected");
    let err = v["errors"][0].as_str().unwrap();
    assert!(
        err.starts_with(r#"line 2, column "Counted" (as_of), value "2026-11-20 07:00": "#),
        "{err}"
    );
    assert_eq!(ws.ledger_dump(), before);
    // A date in another order (month 30): which format, the value, and why
    // in words, not chrono's bare "input is out of range".
    let p = ws.write("in/wms/us.csv", "SKU,Qty,Counted\nA,1,11/30/2026 07:00\n");
    let v = ws.ingest("wms", &p, 1);
    assert_eq!(
        v["errors"][0],
        r#"line 2, column "Counted" (as_of), value "11/30/2026 07:00": not a time in format "%d/%m/%Y %H:%M" (a month, day, hour or minute is out of its range; RFC 3339 is also accepted)"#,
        "{v}"
    );
}

#[test]
fn as_of_defaults_to_file_mtime() {
    let ws = ws_with(INV_PLAIN_MAPPING, "csv", FEED_MAPPING);
    let p = ws.write("in/wms/s.csv", "SKU,Qty\nA,1\n");
    set_mtime(&p, epoch("2025-03-04T05:06:07Z"));
    assert_eq!(ws.ingest("wms", &p, 0)["outcome"], "applied");
    assert_eq!(
        ws.explain("A", None)["warehouses"][0]["as_of"],
        "2025-03-04T05:06:07+00:00"
    );
}

#[test]
fn header_lacking_a_mapped_column_rejects_the_file() {
    let ws = ws_with(INV_MAPPING, "csv", FEED_MAPPING);
    let before = ws.ledger_dump();
    let p = ws.write(
        "in/wms/s.csv",
        "SKU,Whse,Quantity,AsOf,UPC,Title\nA,W1,1,2025-06-01T10:00:00Z,,\n",
    );
    let v = ws.ingest("wms", &p, 1);
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert_eq!(
        v["errors"],
        serde_json::json!([
            r#"line 1: header lacks column "Qty" (quantity); header has: SKU, Whse, Quantity, AsOf, UPC, Title; fix the file or the [columns] of mappings/inv.toml"#
        ])
    );
    let txt = ws.read("var/quarantine/wms/s.csv.error.txt");
    assert!(
        txt.contains(r#"header lacks column "Qty" (quantity)"#),
        "{txt}"
    );
    assert_eq!(ws.ledger_dump(), before);
}

const XML_IN: &str = "format = \"xml\"\nrecord = \"inventory\"\nitem = \"Inventory/Item\"\n[fields]\nsku = \"SKU\"\nquantity = \"@qty\"\n";

#[test]
fn xml_inbound_items_and_attributes() {
    let ws = ws_with(XML_IN, "csv", FEED_MAPPING);
    let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Inventory>
  <Item qty="5"><SKU>A&amp;1</SKU></Item>
  <Item qty="+2"><SKU>B</SKU></Item>
  <Other qty="9"><SKU>X</SKU></Other>
  <Item qty="3"><SKU>A&amp;1</SKU></Item>
</Inventory>
"#;
    let v = ws.apply("wms", "s.xml", body);
    assert_eq!(v["rows"], 3);
    assert_eq!(ws.sync_feed("shop", &[]), "SKU,Quantity\nA&1,8\nB,2\n");
}

#[test]
fn xml_inbound_with_a_dtd_is_rejected() {
    let ws = ws_with(XML_IN, "csv", FEED_MAPPING);
    ws.apply(
        "wms",
        "s0.xml",
        "<Inventory><Item qty=\"1\"><SKU>A</SKU></Item></Inventory>",
    );
    let before = ws.ledger_dump();
    let body = "<?xml version=\"1.0\"?>\n<!DOCTYPE Inventory [<!ENTITY x \"9\">]>\n<Inventory><Item qty=\"&x;\"><SKU>A</SKU></Item></Inventory>\n";
    let p = ws.write("in/wms/evil.xml", body);
    let v = ws.ingest("wms", &p, 1);
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert_eq!(v["errors"][0], "line 2: DTD not allowed (line 2)", "{v}");
    assert_eq!(ws.read("var/quarantine/wms/evil.xml"), body);
    assert_eq!(ws.ledger_dump(), before);
}

#[test]
fn xml_inbound_bad_quantity_names_the_attribute() {
    let ws = ws_with(XML_IN, "csv", FEED_MAPPING);
    let p = ws.write("in/wms/s.xml", "<Inventory>\n<Item qty=\"1\"><SKU>A</SKU></Item>\n<Item qty=\"2.5\"><SKU>B</SKU></Item>\n</Inventory>\n");
    let v = ws.ingest("wms", &p, 1);
    assert_eq!(v["outcome"], "rejected");
    assert_eq!(
        v["errors"],
        serde_json::json!([
            r#"line 3, column "@qty" (quantity), value "2.5": not a whole number (has a fraction)"#
        ])
    );
}

#[test]
fn xml_feed_exact_bytes() {
    let ws = ws_with(
        INV_MAPPING,
        "xml",
        "format = \"xml\"\nroot = \"Stock\"\nitem = \"Product\"\nfields = [ { element = \"SKU\", field = \"sku\" }, { element = \"Qty\", field = \"quantity\" }, { element = \"Name\", field = \"description\", optional = true } ]\n",
    );
    ws.apply("wms", "s.csv", "SKU,Whse,Qty,AsOf,UPC,Title\nA<1>,W1,4,2025-06-01T10:00:00Z,,Tom & \"Jerry\"\nB,W1,-1,2025-06-01T10:00:00Z,,\n");
    let v = ws.sync("shop", &[], 0);
    let f = v["file"].as_str().unwrap();
    assert!(f.ends_with("/out/shop/shop-000001.csv"), "{f}");
    let body = std::fs::read(f).unwrap();
    assert_eq!(
        String::from_utf8(body.clone()).unwrap(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Stock>\n  <Product><SKU>A&lt;1&gt;</SKU><Qty>4</Qty><Name>Tom &amp; &quot;Jerry&quot;</Name></Product>\n  <Product><SKU>B</SKU><Qty>0</Qty><Name></Name></Product>\n</Stock>\n"
    );
    assert_eq!(v["bytes"], body.len());
    assert_eq!(v["sha256"], sha256_hex(&body));
}

#[test]
fn feed_leaves_out_items_missing_a_required_field() {
    let ws = ws_with(
        INV_MAPPING,
        "csv",
        "format = \"csv\"\ncolumns = [ { header = \"upc\", field = \"upc\" }, { header = \"qty\", field = \"quantity\" }, { header = \"merchant\", field = \"merchant\" }, { header = \"as_of\", field = \"as_of\" } ]\n",
    );
    ws.apply("wms", "s.csv", "SKU,Whse,Qty,AsOf,UPC,Title\nA,W1,4,2025-06-01T10:00:00Z,0123,\nB,W1,2,2025-06-01T10:00:00Z,,\nC,W1,1,2025-06-01T10:00:00Z,,\n");
    let v = ws.sync("shop", &[], 0);
    assert_eq!(v["outcome"], "sent");
    assert_eq!(v["items"], 1);
    assert_eq!(v["reason"], "2 left out: missing upc", "{v}");
    assert_eq!(
        std::fs::read_to_string(v["file"].as_str().unwrap()).unwrap(),
        "upc,qty,merchant,as_of\n0123,4,m1,2025-06-01T10:00:00+00:00\n"
    );
}

/// Issue 15.1: a time whose text carries its own offset (`%z`, Shopify's
/// `2026-12-01 21:30:00 -0500`) keeps it; the mapping's `timezone` applies
/// only to times without one. Dropping the offset timed orders hours off.
#[test]
fn a_utc_offset_in_the_text_is_kept_and_timezone_only_fills_in() {
    let ws = Workspace::new();
    ws.config(&format!(
        "{}{}{}{}",
        header(&["m1"]),
        inbound("wms", "m1", "inventory", "inv", "warehouse = \"MAIN\""),
        inbound("orders", "m1", "orders", "ord", ""),
        cart("shop", "m1", "full_sync = true")
    ));
    let zone = "[as_of]\nformat = \"%Y-%m-%d %H:%M:%S %z\"\ntimezone = \"Asia/Tokyo\"\n";
    ws.mapping(
        "inv",
        &format!("format = \"csv\"\nrecord = \"inventory\"\n[columns]\nsku = \"SKU\"\nquantity = \"Qty\"\nas_of = \"Counted\"\n{zone}"),
    );
    ws.mapping(
        "ord",
        &format!("format = \"csv\"\nrecord = \"orders\"\n[columns]\norder_id = \"Order\"\nsku = \"SKU\"\nquantity = \"Qty\"\nordered_at = \"At\"\n{zone}"),
    );
    ws.mapping("feed", FEED_MAPPING);
    // Counted 10:00 UTC (05:00 at -0500).
    ws.apply(
        "wms",
        "s.csv",
        "SKU,Qty,Counted\nMUG-11OZ,125,2025-06-01 05:00:00 -0500\nHOOD,4,2025-06-01 19:00:00 +0900\n",
    );
    assert_eq!(
        ws.explain("MUG-11OZ", None)["warehouses"][0]["as_of"],
        "2025-06-01T10:00:00+00:00"
    );
    assert_eq!(
        ws.explain("HOOD", None)["warehouses"][0]["as_of"],
        "2025-06-01T10:00:00+00:00"
    );
    // Orders after the count in their own offsets: 06:30 -0500 = 11:30 UTC,
    // 20:00 +0900 = 11:00 UTC. Read in Tokyo (or UTC) they would fall before it.
    ws.apply(
        "orders",
        "o.csv",
        "Order,SKU,Qty,At\n1,MUG-11OZ,4,2025-06-01 06:30:00 -0500\n2,HOOD,2,2025-06-01 20:00:00 +0900\n3,HOOD,1,2025-06-01 04:59:00 -0500\n",
    );
    assert_eq!(
        ws.sync_feed("shop", &[]),
        "SKU,Quantity\nHOOD,2\nMUG-11OZ,121\n"
    );
    let e = ws.explain("MUG-11OZ", None);
    assert_eq!(
        e["orders_subtracted"][0]["ordered_at"],
        "2025-06-01T11:30:00+00:00"
    );
}

/// Issue 15.1: `%Z` (a zone name) cannot be read by chrono: `check` says to use `%z`.
#[test]
fn check_warns_about_a_zone_name_in_a_time_format() {
    let ws = ws_with(
        "format = \"csv\"\nrecord = \"inventory\"\n[columns]\nsku = \"SKU\"\nquantity = \"Qty\"\nas_of = \"Counted\"\n[as_of]\nformat = \"%Y-%m-%d %H:%M:%S %Z\"\n",
        "csv",
        FEED_MAPPING,
    );
    let o = ws.run_ok(&["check"], 0);
    let all = format!("{}{}", o.stdout, o.stderr);
    assert!(
        all.contains("as_of.format") && all.contains("%Z") && all.contains("use %z"),
        "{all}"
    );
}

/// Issue 15.4 (CONTRACT rule 20): `explain --cart` of a SKU the cart's feed
/// leaves out says so and why, exactly as the feed decides: `"value": null`,
/// `"left_out": "<reason>"`; the text says "left out", never "sends N".
#[test]
fn explain_says_a_left_out_sku_is_left_out_and_why() {
    let ws = ws_with(
        INV_MAPPING,
        "csv",
        "format = \"csv\"\ncolumns = [ { header = \"upc\", field = \"upc\" }, { header = \"qty\", field = \"quantity\" } ]\n",
    );
    ws.apply("wms", "s.csv", "SKU,Whse,Qty,AsOf,UPC,Title\nA,W1,4,2025-06-01T10:00:00Z,0123,\nB,W1,28,2025-06-01T10:00:00Z,,\nC,W1,3,2025-06-01T10:00:00Z,\"01\u{1}2\",\n");
    let v = ws.sync("shop", &[], 0);
    assert_eq!(v["items"], 1, "{v}");
    let e = ws.explain("B", Some("shop"));
    let c = &e["carts"][0];
    assert_eq!(c["value"], serde_json::Value::Null, "{e}");
    assert_eq!(c["left_out"], "missing upc", "{e}");
    assert_eq!(c["available"], 28);
    let e = ws.explain("C", Some("shop"));
    assert_eq!(
        e["carts"][0]["left_out"], "invalid upc (a control character the feed cannot carry)",
        "{e}"
    );
    // A SKU the feed sends has its value and no left_out.
    let e = ws.explain("A", Some("shop"));
    assert_eq!(e["carts"][0]["value"], 4);
    assert!(e["carts"][0].get("left_out").is_none(), "{e}");
    let o = ws.run_ok(
        &[
            "explain",
            "--merchant",
            "m1",
            "--sku",
            "B",
            "--cart",
            "shop",
        ],
        0,
    );
    assert!(
        o.stdout.contains("available 28 -> left out: missing upc"),
        "{}",
        o.stdout
    );
    assert!(!o.stdout.contains("sends 28"), "{}", o.stdout);
}

/// Issue 16.11: outbound CSV options carts ask for: `line_ending = "crlf"`,
/// `delimiter`, `quote = "always"`, and `[as_of] format`/`timezone` for the
/// as_of field (RFC 3339 in UTC without them).
#[test]
fn outbound_csv_line_ending_quote_delimiter_and_as_of_format() {
    let ws = ws_with(
        INV_MAPPING,
        "csv",
        "format = \"csv\"\ndelimiter = \";\"\nline_ending = \"crlf\"\nquote = \"always\"\ncolumns = [ { header = \"SKU\", field = \"sku\" }, { header = \"Qty\", field = \"quantity\" }, { header = \"Counted\", field = \"as_of\" } ]\n[as_of]\nformat = \"%m/%d/%Y %H:%M\"\ntimezone = \"America/New_York\"\n",
    );
    ws.apply(
        "wms",
        "s.csv",
        "SKU,Whse,Qty,AsOf,UPC,Title\nA,W1,4,2025-06-01T10:00:00Z,,\nB;2,W1,2,2025-12-01T10:00:00Z,,\n",
    );
    assert_eq!(
        ws.sync_feed("shop", &[]),
        "\"SKU\";\"Qty\";\"Counted\"\r\n\"A\";\"4\";\"06/01/2025 06:00\"\r\n\"B;2\";\"2\";\"12/01/2025 05:00\"\r\n"
    );
    // Wrong values are named by check.
    ws.mapping(
        "feed",
        "format = \"csv\"\nline_ending = \"cr\"\nquote = \"sometimes\"\ncolumns = [ { header = \"SKU\", field = \"sku\" } ]\n[as_of]\nformat = \"%Q\"\n",
    );
    let o = ws.run_ok(&["check"], 2);
    for want in [
        "`line_ending`: must be \"lf\" or \"crlf\", got \"cr\"",
        "`quote`: must be \"necessary\" or \"always\", got \"sometimes\"",
        "`as_of.format`: invalid chrono format \"%Q\"",
    ] {
        assert!(o.stdout.contains(want), "{want}\n{}", o.stdout);
    }
}
