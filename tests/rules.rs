//! CONTRACT §1, one test (at least) per inventory rule, through the real binary.

mod common;
use common::*;

const T0: &str = "2025-06-01T10:00:00Z";
const T0_M1H: &str = "2025-06-01T09:00:00Z";
const T0_P1H: &str = "2025-06-01T11:00:00Z";
const T0_P2H: &str = "2025-06-01T12:00:00Z";
const T0_P3H: &str = "2025-06-01T13:00:00Z";
const FUTURE: &str = "2099-01-01T00:00:00Z";

const INV_H: &str = "SKU,Whse,Qty,AsOf,UPC,Title\n";
const ORD_H: &str = "Order,Line,SKU,Qty,Status,At,Whse\n";

/// Inventory CSV: each row "SKU,Whse,Qty,AsOf" (UPC and Title left empty).
fn inv(rows: &[&str]) -> String {
    let mut s = INV_H.to_string();
    for r in rows {
        s.push_str(r);
        s.push_str(",,\n");
    }
    s
}

/// Orders CSV: each row "Order,Line,SKU,Qty,Status,At,Whse".
fn ord(rows: &[&str]) -> String {
    let mut s = ORD_H.to_string();
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s
}

fn outbox(ws: &Workspace, cart: &str) -> Vec<String> {
    ws.files_under(&format!("out/{cart}"))
}

// ----- 1. gate -----

#[test]
fn gate_skips_changed_only_cart_without_new_inventory() {
    let ws = Workspace::standard("");
    ws.apply("wms", "s1.csv", &inv(&[&format!("A,W1,10,{T0}")]));
    assert_eq!(ws.sync_feed("shop", &[]), "SKU,Quantity\nA,10\n");
    assert_eq!(outbox(&ws, "shop"), vec!["shop-000001.csv"]);

    // Nothing new: skipped, exit 0, recorded, nothing written.
    let v = ws.sync("shop", &[], 0);
    assert_eq!(v["outcome"], "skipped", "{v}");
    assert_eq!(v["reason"], "no new inventory");
    assert_eq!(v["items"], 0);
    assert_eq!(v["file"], serde_json::Value::Null);
    assert_eq!(outbox(&ws, "shop"), vec!["shop-000001.csv"]);
    let h = ws.history("shop");
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["outcome"], "skipped");
    assert_eq!(h[0]["reason"], "no new inventory");
    assert_eq!(h[1]["outcome"], "sent");

    // An order file is not inventory: the gate stays shut even though A changed.
    ws.apply(
        "orders",
        "o1.csv",
        &ord(&[&format!("1,1,A,2,open,{T0_P1H},")]),
    );
    assert_eq!(ws.sync("shop", &[], 0)["outcome"], "skipped");
    assert_eq!(outbox(&ws, "shop").len(), 1);

    // --force ignores the gate; A changed (10 -> 8) so it is sent.
    assert_eq!(ws.sync_feed("shop", &["--force"]), "SKU,Quantity\nA,8\n");

    // New inventory opens it again.
    ws.apply("wms", "s2.csv", &inv(&[&format!("B,W1,1,{T0}")]));
    assert_eq!(ws.sync_feed("shop", &[]), "SKU,Quantity\nB,1\n");
    assert_eq!(ws.sync("shop", &[], 0)["outcome"], "skipped");
}

#[test]
fn gate_only_counts_reports_for_the_carts_warehouses() {
    let ws = Workspace::standard(&cart("east", "m1", "warehouses = [\"EAST\"]"));
    ws.apply(
        "wms",
        "s1.csv",
        &inv(&[&format!("A,EAST,4,{T0}"), &format!("A,W1,10,{T0}")]),
    );
    assert_eq!(ws.sync_feed("east", &[]), "SKU,Quantity\nA,4\n");
    assert_eq!(ws.sync_feed("shop", &[]), "SKU,Quantity\nA,14\n");

    // A report touching only W1: the all-warehouse cart syncs, the EAST cart does not.
    ws.apply("wms", "s2.csv", &inv(&[&format!("A,W1,11,{T0_P1H}")]));
    let v = ws.sync("east", &[], 0);
    assert_eq!(v["outcome"], "skipped", "{v}");
    assert_eq!(v["reason"], "no new inventory");
    assert_eq!(ws.sync_feed("shop", &[]), "SKU,Quantity\nA,15\n");

    // A report touching EAST opens the EAST cart.
    ws.apply("wms", "s3.csv", &inv(&[&format!("A,EAST,5,{T0_P1H}")]));
    assert_eq!(ws.sync_feed("east", &[]), "SKU,Quantity\nA,5\n");
}

#[test]
fn full_sync_cart_always_sends_every_sku_including_zeros() {
    let ws = Workspace::standard(&cart("full", "m1", "full_sync = true"));
    ws.apply(
        "wms",
        "s1.csv",
        &inv(&[
            &format!("A,W1,10,{T0}"),
            &format!("B,W1,0,{T0}"),
            &format!("C,W1,-4,{T0}"),
        ]),
    );
    let all = "SKU,Quantity\nA,10\nB,0\nC,0\n";
    assert_eq!(ws.sync_feed("full", &[]), all);
    // No new inventory: still sent, still everything.
    assert_eq!(ws.sync_feed("full", &[]), all);
    // An order for A: the full cart sends A's new value and the rest.
    ws.apply(
        "orders",
        "o1.csv",
        &ord(&[&format!("1,1,A,3,open,{T0_P1H},")]),
    );
    assert_eq!(ws.sync_feed("full", &[]), "SKU,Quantity\nA,7\nB,0\nC,0\n");
    assert_eq!(outbox(&ws, "full").len(), 3);
}

// ----- 2. orders since the count -----

#[test]
fn orders_after_the_count_and_not_after_now_are_subtracted() {
    let ws = Workspace::standard("");
    ws.apply("wms", "s1.csv", &inv(&[&format!("A,W1,10,{T0}")]));
    ws.apply(
        "orders",
        "o1.csv",
        &ord(&[
            &format!("100,1,A,1,open,{T0_M1H},"), // before the count: already in it
            &format!("101,1,A,3,open,{T0_P1H},"), // after: subtracted
            &format!("102,1,A,4,open,{FUTURE},"), // after the sync time: not yet
            &format!("103,1,A,5,CANCELLED,{T0_P1H},"), // cancelled (any case): nothing
            &format!("104,1,A,6,Void,{T0_P2H},"), // cancelled too
            &format!("105,1,A,2,open,{T0},"),     // at the count (not later): nothing
        ]),
    );
    let e = ws.explain("A", None);
    assert_eq!(e["available"], 7, "{e}");
    let subs = e["orders_subtracted"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "{e}");
    assert_eq!(subs[0]["order_id"], "101");
    assert_eq!(subs[0]["line"], "1");
    assert_eq!(subs[0]["quantity"], 3);
    assert_eq!(subs[0]["ordered_at"], "2025-06-01T11:00:00+00:00");
    assert_eq!(ws.sync_feed("shop", &[]), "SKU,Quantity\nA,7\n");

    // A later count includes order 101: nothing is subtracted any more.
    ws.apply("wms", "s2.csv", &inv(&[&format!("A,W1,7,{T0_P2H}")]));
    let e = ws.explain("A", None);
    assert_eq!(e["available"], 7, "{e}");
    assert_eq!(e["orders_subtracted"].as_array().unwrap().len(), 0);
}

#[test]
fn order_draws_on_its_warehouse_else_the_latest_count() {
    let ws = Workspace::standard(&cart("w2only", "m1", "warehouses = [\"W2\"]"));
    // W1 counted at T0, W2 counted two hours later.
    ws.apply(
        "wms",
        "s1.csv",
        &inv(&[&format!("A,W1,10,{T0}"), &format!("A,W2,20,{T0_P2H}")]),
    );
    ws.apply(
        "orders",
        "o1.csv",
        &ord(&[
            &format!("1,1,A,1,open,{T0_P1H},W1"), // after W1's count: subtracted
            &format!("2,1,A,2,open,{T0_P1H},W2"), // before W2's count: in it already
            &format!("3,1,A,4,open,{T0_P1H},"), // no warehouse: latest count (T0+2h) -> not subtracted
            &format!("4,1,A,8,open,{T0_P3H},"), // no warehouse, after every count: subtracted
        ]),
    );
    // All warehouses: 30 - 1 - 8.
    let e = ws.explain("A", Some("shop"));
    assert_eq!(e["available"], 21, "{e}");
    let ids: Vec<&str> = e["orders_subtracted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["1", "4"]);
    assert_eq!(e["carts"][0]["value"], 21);
    // W2 only: 20 - 8; the W1 line does not draw on W2.
    let e = ws.explain("A", Some("w2only"));
    assert_eq!(e["available"], 12, "{e}");
    assert_eq!(e["carts"][0]["value"], 12);
    assert_eq!(ws.sync_feed("shop", &[]), "SKU,Quantity\nA,21\n");
    assert_eq!(ws.sync_feed("w2only", &[]), "SKU,Quantity\nA,12\n");
    // Sent and unchanged (the next changed-only feed leaves A out): explain
    // still gives its numbers.
    let e = ws.explain("A", Some("shop"));
    assert_eq!(
        (&e["carts"][0]["available"], &e["carts"][0]["value"]),
        (&21.into(), &21.into()),
        "{e}"
    );
}

#[test]
fn same_order_line_again_updates_it_never_doubles() {
    let ws = Workspace::standard("");
    ws.apply(
        "wms",
        "s1.csv",
        &inv(&[&format!("A,W1,10,{T0}"), &format!("B,W1,10,{T0}")]),
    );
    ws.apply(
        "orders",
        "o1.csv",
        &ord(&[
            &format!("7,1,A,2,open,{T0_P1H},"),
            &format!("7,2,B,1,open,{T0_P1H},"),
        ]),
    );
    assert_eq!(ws.explain("A", None)["available"], 8);
    // Same order and line, new quantity: 10 - 4, not 10 - 6.
    ws.apply(
        "orders",
        "o2.csv",
        &ord(&[&format!("7,1,A,4,open,{T0_P1H},")]),
    );
    assert_eq!(ws.explain("A", None)["available"], 6);
    assert_eq!(ws.count("order_lines"), 2);
    // Line 2 was untouched by o2.
    assert_eq!(ws.explain("B", None)["available"], 9);
    // Now cancelled ("void"): nothing subtracted.
    ws.apply(
        "orders",
        "o3.csv",
        &ord(&[&format!("7,1,A,4,void,{T0_P1H},")]),
    );
    assert_eq!(ws.explain("A", None)["available"], 10);
    assert_eq!(ws.count("order_lines"), 2);
}

#[test]
fn orders_without_ordered_at_are_timed_when_they_enter_the_ledger() {
    let ws = Workspace::standard("");
    ws.mapping("ord", ORD_NOTIME_MAPPING);
    ws.apply("wms", "s1.csv", &inv(&[&format!("A,W1,10,{T0}")]));
    let before = chrono::Utc::now();
    ws.apply(
        "orders",
        "o1.csv",
        "Order,Line,SKU,Qty,Status\n1,1,A,3,open\n2,1,A,5,Cancelled\n",
    );
    let after = chrono::Utc::now();
    let e = ws.explain("A", None);
    assert_eq!(e["available"], 7, "{e}");
    let at = chrono::DateTime::parse_from_rfc3339(
        e["orders_subtracted"][0]["ordered_at"].as_str().unwrap(),
    )
    .unwrap();
    assert!(
        at >= before - chrono::TimeDelta::milliseconds(5) && at <= after,
        "{at} not in [{before}, {after}]"
    );
    // Seen again later: still the time it first entered, quantity updated.
    ws.apply(
        "orders",
        "o2.csv",
        "Order,Line,SKU,Qty,Status\n1,1,A,4,open\n",
    );
    let e = ws.explain("A", None);
    assert_eq!(e["available"], 6, "{e}");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(
            e["orders_subtracted"][0]["ordered_at"].as_str().unwrap()
        )
        .unwrap(),
        at
    );
    // A count taken after the order entered includes it.
    let later = (chrono::Utc::now() + chrono::TimeDelta::seconds(1)).to_rfc3339();
    ws.apply("wms", "s2.csv", &inv(&[&format!("A,W1,6,{later}")]));
    let e = ws.explain("A", None);
    assert_eq!(e["available"], 6, "{e}");
    assert_eq!(e["orders_subtracted"].as_array().unwrap().len(), 0);
}

// ----- 4. every cart of a merchant, two merchants -----

#[test]
fn carts_of_one_merchant_get_the_same_total() {
    let ws = Workspace::standard(&format!(
        "{}{}",
        cart("shop2", "m1", ""),
        cart("floor", "m1", "min_level = 9")
    ));
    ws.apply(
        "wms",
        "s1.csv",
        &inv(&[
            &format!("A,W1,6,{T0}"),
            &format!("A,W2,4,{T0}"),
            &format!("B,W1,3,{T0}"),
        ]),
    );
    ws.apply(
        "orders",
        "o1.csv",
        &ord(&[&format!("1,1,A,2,open,{T0_P1H},")]),
    );
    let shop = ws.sync_feed("shop", &[]);
    assert_eq!(shop, "SKU,Quantity\nA,8\nB,3\n");
    assert_eq!(ws.sync_feed("shop2", &[]), shop);
    // Same total, own min_level: B (3 < 9) is sent as 0, A (8 < 9) too.
    assert_eq!(ws.sync_feed("floor", &[]), "SKU,Quantity\nA,0\nB,0\n");
    let e = ws.explain("A", None);
    let values: Vec<(String, i64)> = e["carts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["cart"].as_str().unwrap().to_string(),
                c["value"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        values,
        vec![("shop".into(), 8), ("shop2".into(), 8), ("floor".into(), 0)]
    );
}

#[test]
fn two_merchants_with_the_same_sku_are_independent() {
    let ws = Workspace::new();
    ws.config(&format!(
        "{}{}{}{}{}{}",
        header(&["m1", "m2"]),
        inbound("wms1", "m1", "inventory", "inv", ""),
        inbound("wms2", "m2", "inventory", "inv", ""),
        inbound("ord2", "m2", "orders", "ord", ""),
        cart("shop1", "m1", ""),
        cart("shop2", "m2", "")
    ));
    ws.mapping("inv", INV_MAPPING);
    ws.mapping("ord", ORD_MAPPING);
    ws.mapping("feed", FEED_MAPPING);
    ws.apply("wms1", "s.csv", &inv(&[&format!("A,W1,10,{T0}")]));
    ws.apply(
        "wms2",
        "s.csv",
        &inv(&[&format!("A,W1,50,{T0}"), &format!("Z,W1,1,{T0}")]),
    );
    ws.apply("ord2", "o.csv", &ord(&[&format!("1,1,A,5,open,{T0_P1H},")]));
    assert_eq!(ws.sync_feed("shop1", &[]), "SKU,Quantity\nA,10\n");
    assert_eq!(ws.sync_feed("shop2", &[]), "SKU,Quantity\nA,45\nZ,1\n");
    assert_eq!(ws.explain_m("m1", "A", None)["available"], 10);
    assert_eq!(ws.explain_m("m2", "A", None)["available"], 45);
    // m2's new report does not open m1's gate.
    ws.apply("wms2", "s2.csv", &inv(&[&format!("A,W1,40,{T0_P1H}")]));
    assert_eq!(ws.sync("shop1", &[], 0)["outcome"], "skipped");
    assert_eq!(ws.sync_feed("shop2", &[]), "SKU,Quantity\nA,40\n");
}

// ----- 5. min_level -----

#[test]
fn min_level_sends_zero_below_and_clamps_negatives() {
    let ws = Workspace::standard(&cart("min5", "m1", "min_level = 5\nfull_sync = true"));
    ws.apply(
        "wms",
        "s1.csv",
        &inv(&[
            &format!("A,W1,4,{T0}"),
            &format!("B,W1,5,{T0}"),
            &format!("C,W1,6,{T0}"),
            &format!("D,W1,-2,{T0}"),
        ]),
    );
    assert_eq!(
        ws.sync_feed("min5", &[]),
        "SKU,Quantity\nA,0\nB,5\nC,6\nD,0\n"
    );
    assert_eq!(
        ws.sync_feed("shop", &[]),
        "SKU,Quantity\nA,4\nB,5\nC,6\nD,0\n"
    );
    let e = ws.explain("D", None);
    assert_eq!(e["available"], -2);
    assert_eq!(e["carts"][0]["value"], 0);
    assert_eq!(e["carts"][1]["min_level"], 5);
    assert_eq!(e["carts"][1]["value"], 0);
    // An order takes C below 5.
    ws.apply(
        "orders",
        "o.csv",
        &ord(&[&format!("1,1,C,2,open,{T0_P1H},")]),
    );
    assert_eq!(
        ws.sync_feed("min5", &[]),
        "SKU,Quantity\nA,0\nB,5\nC,0\nD,0\n"
    );
}

// ----- 6. changed-only content -----

#[test]
fn changed_only_cart_sends_named_and_changed_skus() {
    let ws = Workspace::standard("");
    ws.apply(
        "wms",
        "s1.csv",
        &inv(&[
            &format!("A,W1,1,{T0}"),
            &format!("B,W1,2,{T0}"),
            &format!("C,W1,3,{T0}"),
        ]),
    );
    assert_eq!(ws.sync_feed("shop", &[]), "SKU,Quantity\nA,1\nB,2\nC,3\n");
    // B named again with the same value: sent (named), A and C are not.
    ws.apply("wms", "s2.csv", &inv(&[&format!("B,W1,2,{T0_P1H}")]));
    assert_eq!(ws.sync_feed("shop", &[]), "SKU,Quantity\nB,2\n");
    // An order changes C; a report names only A: A (named) and C (changed).
    ws.apply(
        "orders",
        "o.csv",
        &ord(&[&format!("1,1,C,1,open,{T0_P1H},")]),
    );
    ws.apply("wms", "s3.csv", &inv(&[&format!("A,W1,1,{T0_P2H}")]));
    assert_eq!(ws.sync_feed("shop", &[]), "SKU,Quantity\nA,1\nC,2\n");
    // A new SKU never sent to this cart counts as changed; --force with nothing new sends nothing changed.
    ws.apply("wms", "s4.csv", &inv(&[&format!("D,W2,9,{T0}")]));
    assert_eq!(ws.sync_feed("shop", &[]), "SKU,Quantity\nD,9\n");
    let v = ws.sync("shop", &["--force"], 0);
    assert_eq!(v["outcome"], "sent", "{v}");
    assert_eq!(v["items"], 0);
    assert_eq!(
        std::fs::read_to_string(v["file"].as_str().unwrap()).unwrap(),
        "SKU,Quantity\n"
    );
}

// ----- 7. lots -----

#[test]
fn rows_of_one_report_for_the_same_sku_and_warehouse_are_summed() {
    let ws = Workspace::standard("");
    ws.apply(
        "wms",
        "s1.csv",
        &inv(&[
            &format!("A,W1,3,{T0}"),
            &format!("A,W2,5,{T0}"),
            &format!("A,W1,4,{T0}"),
            &format!("A,W1,-1,{T0}"),
        ]),
    );
    let e = ws.explain("A", None);
    let wh: Vec<(String, i64)> = e["warehouses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["warehouse"].as_str().unwrap().into(),
                w["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(wh, vec![("W1".into(), 6), ("W2".into(), 5)]);
    assert_eq!(e["available"], 11);
    // A later report replaces (not adds to) the summed value.
    ws.apply(
        "wms",
        "s2.csv",
        &inv(&[&format!("A,W1,2,{T0_P1H}"), &format!("A,W1,2,{T0_P1H}")]),
    );
    assert_eq!(ws.explain("A", None)["available"], 9);
}

// ----- 8. whole numbers -----

#[test]
fn whole_number_forms_are_accepted() {
    let ws = Workspace::standard("");
    let body = format!(
        "{INV_H}N1,W1,12,{T0},,\nN2,W1,+12,{T0},,\nN3,W1, 12 ,{T0},,\nN4,W1,12.0,{T0},,\nN5,W1,-3,{T0},,\nN6,W1,\" 7 \",{T0},,\n"
    );
    let v = ws.apply("wms", "s1.csv", &body);
    assert_eq!(v["rows"], 6);
    assert_eq!(v["errors"], serde_json::json!([]));
    let rows: Vec<(String, i64)> = ws
        .ledger()
        .debug_rows("stock", &["sku"])
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.text("sku").unwrap().to_string(),
                r.int("quantity").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("N1".into(), 12),
            ("N2".into(), 12),
            ("N3".into(), 12),
            ("N4".into(), 12),
            ("N5".into(), -3),
            ("N6".into(), 7)
        ]
    );
    // Negative stock is kept (and clamped when sent).
    assert_eq!(ws.explain("N5", None)["available"], -3);
    assert_eq!(
        ws.sync_feed("shop", &[]),
        "SKU,Quantity\nN1,12\nN2,12\nN3,12\nN4,12\nN5,0\nN6,7\n"
    );
}

#[test]
fn non_whole_quantities_reject_the_file_and_every_bad_row_is_listed() {
    let ws = Workspace::standard("");
    ws.apply("wms", "s0.csv", &inv(&[&format!("A,W1,10,{T0}")]));
    ws.apply(
        "orders",
        "o0.csv",
        &ord(&[&format!("1,1,A,1,open,{T0_P1H},")]),
    );
    assert_eq!(ws.sync_feed("shop", &[]), "SKU,Quantity\nA,9\n");
    let before = ws.ledger_dump();

    let body = format!(
        "{INV_H}A,W1,12.5,{T1},,\nB,W1,1e3,{T1},,\nC,W1,\"12,000\",{T1},,\nOK,W1,5,{T1},,\nD,W1,twelve,{T1},,\nE,W1,,{T1},,\nA,W1,20,{T1},,\n",
        T1 = T0_P2H
    );
    let p = ws.write("in/wms/bad.csv", &body);
    let v = ws.ingest("wms", &p, 1);
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert_eq!(v["rows"], 7);
    let expected = [
        r#"line 2, column "Qty" (quantity), value "12.5": not a whole number (has a fraction)"#,
        r#"line 3, column "Qty" (quantity), value "1e3": not a whole number"#,
        r#"line 4, column "Qty" (quantity), value "12,000": not a whole number"#,
        r#"line 6, column "Qty" (quantity), value "twelve": not a whole number"#,
        r#"line 7, column "Qty" (quantity), value "": empty quantity"#,
    ];
    let errors: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(errors, expected);

    // Quarantined copy (byte for byte) with the reasons beside it.
    assert_eq!(ws.read("var/quarantine/wms/bad.csv"), body);
    let txt = ws.read("var/quarantine/wms/bad.csv.error.txt");
    for e in expected {
        assert!(
            txt.lines().any(|l| l == e),
            "{e:?} not in error.txt:\n{txt}"
        );
    }
    assert!(txt.contains("reason: 5 errors"), "{txt}");
    // `ingest FILE` copies: the operator's file stays where it was.
    assert!(p.exists());

    // Applied whole or not at all: every table unchanged (OK and A's 20 not applied).
    assert_eq!(ws.ledger_dump(), before);
    assert_eq!(ws.explain("OK", None)["known"], false);
    assert_eq!(ws.sync("shop", &[], 0)["outcome"], "skipped");
}

#[test]
fn bad_order_file_changes_no_order_line() {
    let ws = Workspace::standard("");
    ws.apply("wms", "s0.csv", &inv(&[&format!("A,W1,10,{T0}")]));
    ws.apply(
        "orders",
        "o0.csv",
        &ord(&[&format!("1,1,A,1,open,{T0_P1H},")]),
    );
    let before = ws.ledger_dump();
    // Line 2 would update order 1 and add order 2; line 3 is bad.
    let p = ws.write(
        "in/orders/o1.csv",
        ord(&[
            &format!("1,1,A,5,open,{T0_P1H},"),
            &format!("2,1,A,1.5,open,{T0_P1H},"),
        ]),
    );
    let v = ws.ingest("orders", &p, 1);
    assert_eq!(v["outcome"], "rejected");
    assert_eq!(
        v["errors"],
        serde_json::json!([
            r#"line 3, column "Qty" (quantity), value "1.5": not a whole number (has a fraction)"#
        ])
    );
    assert_eq!(ws.ledger_dump(), before);
    assert_eq!(ws.explain("A", None)["available"], 9);
}

// ----- 10. full snapshots -----

fn snapshot_ws(extra: &str) -> Workspace {
    let ws = Workspace::new();
    ws.config(&format!(
        "{}{}{}",
        header(&["m1"]),
        inbound("wms", "m1", "inventory", "snap", "warehouse = \"MAIN\""),
        cart("shop", "m1", "")
    ));
    ws.mapping(
        "snap",
        &INV_PLAIN_MAPPING.replace(
            "[columns]",
            &format!("snapshot = \"full\"\n{extra}[columns]"),
        ),
    );
    ws.mapping("feed", FEED_MAPPING);
    ws
}

/// Writes in/wms/NAME with mtime `as_of` and ingests it.
fn ingest_at(
    ws: &Workspace,
    name: &str,
    body: &str,
    as_of: &str,
    force: bool,
    code: i32,
) -> serde_json::Value {
    let p = ws.write(&format!("in/wms/{name}"), body);
    set_mtime(&p, epoch(as_of));
    let f = p.display().to_string();
    let mut args = vec!["ingest", "--source", "wms", "--json"];
    if force {
        args.push("--force");
    }
    args.push(&f);
    ws.run_ok(&args, code).json()[0].clone()
}

#[test]
fn full_snapshot_zeroes_absent_skus_as_of_the_file() {
    let ws = snapshot_ws("");
    let v = ingest_at(&ws, "s1.csv", "SKU,Qty\nA,1\nB,2\nC,3\nD,4\n", T0, false, 0);
    assert_eq!(v["outcome"], "applied");
    assert_eq!(v["zeroed"], 0);
    assert_eq!(
        ws.sync_feed("shop", &[]),
        "SKU,Quantity\nA,1\nB,2\nC,3\nD,4\n"
    );
    // D absent: set to 0 as of the file's as-of (its mtime); 1 of 4 is within 50%.
    let v = ingest_at(&ws, "s2.csv", "SKU,Qty\nA,1\nB,2\nC,5\n", T0_P1H, false, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(v["zeroed"], 1);
    let e = ws.explain("D", None);
    assert_eq!(e["warehouses"][0]["warehouse"], "MAIN");
    assert_eq!(e["warehouses"][0]["quantity"], 0);
    assert_eq!(e["warehouses"][0]["as_of"], "2025-06-01T11:00:00+00:00");
    assert_eq!(e["warehouses"][0]["report"], "s2.csv");
    assert_eq!(
        ws.sync_feed("shop", &[]),
        "SKU,Quantity\nA,1\nB,2\nC,5\nD,0\n"
    );
    // Exactly 50% (2 of 4, counting D already at 0 only in the total) is allowed.
    let v = ingest_at(&ws, "s3.csv", "SKU,Qty\nA,1\nD,1\n", T0_P2H, false, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(v["zeroed"], 2);
}

#[test]
fn partial_snapshot_keeps_absent_skus() {
    let ws = Workspace::standard("");
    ws.apply(
        "wms",
        "s1.csv",
        &inv(&[&format!("A,W1,1,{T0}"), &format!("B,W1,2,{T0}")]),
    );
    ws.apply("wms", "s2.csv", &inv(&[&format!("A,W1,7,{T0_P1H}")]));
    assert_eq!(ws.explain("B", None)["available"], 2);
    assert_eq!(ws.explain("A", None)["available"], 7);
}

#[test]
fn full_snapshot_zeroing_too_much_is_held_until_forced() {
    let ws = snapshot_ws("");
    ingest_at(&ws, "s1.csv", "SKU,Qty\nA,1\nB,2\nC,3\nD,4\n", T0, false, 0);
    let before = ws.ledger_dump();
    let v = ingest_at(&ws, "short.csv", "SKU,Qty\nA,9\n", T0_P1H, false, 1);
    assert_eq!(v["outcome"], "held", "{v}");
    let q = ws.path("var/quarantine/wms/short.csv");
    assert_eq!(v["quarantined"], q.display().to_string());
    assert_eq!(ws.read("var/quarantine/wms/short.csv"), "SKU,Qty\nA,9\n");
    let txt = ws.read("var/quarantine/wms/short.csv.error.txt");
    assert!(txt.starts_with("outcome: held\n"), "{txt}");
    assert!(
        txt.contains("reason: would zero 3 of 4 SKUs (warehouse MAIN); "),
        "{txt}"
    );
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("would zero 3 of 4 SKUs (warehouse MAIN)"),
        "{v}"
    );
    assert_eq!(ws.ledger_dump(), before);
    let st = ws.run_ok(&["status", "--json"], 0).json();
    assert_eq!(st["inbound"][0]["held"], 1, "{st}");

    // ingest --force on the quarantined file applies it and clears quarantine
    // (named as an operator types it: relative to the workspace folder).
    let v = ws
        .run_ok(
            &[
                "ingest",
                "--source",
                "wms",
                "--force",
                "--json",
                "var/quarantine/wms/short.csv",
            ],
            0,
        )
        .json()[0]
        .clone();
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(v["zeroed"], 3);
    assert!(!q.exists());
    assert!(!ws.path("var/quarantine/wms/short.csv.error.txt").exists());
    assert_eq!(
        ws.sync_feed("shop", &[]),
        "SKU,Quantity\nA,9\nB,0\nC,0\nD,0\n"
    );
}

#[test]
fn max_zeroed_count_setting() {
    let ws = snapshot_ws("max_zeroed = 1\n");
    ingest_at(
        &ws,
        "s1.csv",
        "SKU,Qty\nA,1\nB,2\nC,3\nD,4\nE,5\nF,6\n",
        T0,
        false,
        0,
    );
    let v = ingest_at(
        &ws,
        "s2.csv",
        "SKU,Qty\nA,1\nB,2\nC,3\nD,4\n",
        T0_P1H,
        false,
        1,
    );
    assert_eq!(v["outcome"], "held");
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("would zero 2 of 6 SKUs (warehouse MAIN)"),
        "{v}"
    );
    let v = ingest_at(
        &ws,
        "s3.csv",
        "SKU,Qty\nA,1\nB,2\nC,3\nD,4\nE,5\n",
        T0_P1H,
        false,
        0,
    );
    assert_eq!(v["outcome"], "applied");
    assert_eq!(v["zeroed"], 1);
}

// ----- 11. stale rows -----

#[test]
fn older_rows_are_stale_and_equal_as_of_applies() {
    let ws = Workspace::standard("");
    ws.apply(
        "wms",
        "new.csv",
        &inv(&[&format!("A,W1,10,{T0_P1H}"), &format!("B,W1,1,{T0_P1H}")]),
    );
    // Arrives late: A's row is older than the ledger's (stale), C is new, B's W2 row is a different key.
    let v = ws.apply(
        "wms",
        "old.csv",
        &inv(&[
            &format!("A,W1,99,{T0}"),
            &format!("C,W1,3,{T0}"),
            &format!("B,W2,4,{T0}"),
        ]),
    );
    assert_eq!(v["rows"], 3);
    assert_eq!(v["stale"], 1, "{v}");
    let e = ws.explain("A", None);
    assert_eq!(e["available"], 10);
    assert_eq!(e["warehouses"][0]["as_of"], "2025-06-01T11:00:00+00:00");
    assert_eq!(e["warehouses"][0]["report"], "new.csv");
    assert_eq!(ws.explain("C", None)["available"], 3);
    assert_eq!(ws.explain("B", None)["available"], 5);
    // Same as-of: applies.
    let v = ws.apply("wms", "same.csv", &inv(&[&format!("A,W1,11,{T0_P1H}")]));
    assert_eq!(v["stale"], 0);
    assert_eq!(ws.explain("A", None)["available"], 11);
}

// ----- 12. duplicates -----

#[test]
fn same_content_again_is_a_duplicate_and_changes_nothing() {
    let ws = Workspace::standard("");
    let body = inv(&[&format!("A,W1,10,{T0}")]);
    ws.apply("wms", "s1.csv", &body);
    ws.apply(
        "orders",
        "o1.csv",
        &ord(&[&format!("1,1,A,1,open,{T0_P1H},")]),
    );
    assert_eq!(ws.sync_feed("shop", &[]), "SKU,Quantity\nA,9\n");
    let count = |ws: &Workspace| {
        ws.count("reports") * 1000 + ws.count("stock") * 100 + ws.count("order_lines")
    };
    let before = count(&ws);
    let stock = ws.explain("A", None);
    // Same bytes under another name.
    let p = ws.write("in/wms/again.csv", &body);
    let v = ws.ingest("wms", &p, 0);
    assert_eq!(v["outcome"], "duplicate", "{v}");
    assert_eq!(count(&ws), before);
    assert_eq!(ws.explain("A", None)["warehouses"], stock["warehouses"]);
    // A duplicate opens no gate.
    assert_eq!(ws.sync("shop", &[], 0)["outcome"], "skipped");
    // A duplicate order file would otherwise re-apply an update; it changes nothing.
    let p = ws.write(
        "in/orders/o1-again.csv",
        ord(&[&format!("1,1,A,1,open,{T0_P1H},")]),
    );
    assert_eq!(ws.ingest("orders", &p, 0)["outcome"], "duplicate");
    assert_eq!(count(&ws), before);
}

// ----- 13. marks move only after delivery -----

#[test]
fn failed_delivery_moves_no_marks() {
    let ws = Workspace::standard("");
    ws.apply(
        "wms",
        "s1.csv",
        &inv(&[&format!("A,W1,10,{T0}"), &format!("B,W1,2,{T0}")]),
    );
    // The cart's folder path is a regular file: delivery cannot create it.
    ws.write("out/shop", "not a folder");
    let v = ws.sync("shop", &[], 1);
    assert_eq!(v["outcome"], "failed", "{v}");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .starts_with("delivery failed: "),
        "{v}"
    );
    assert_eq!(ws.count("last_sent"), 0);
    assert_eq!(
        ws.count_where("carts", |r| r.text("id") == Some("shop")
            && !r.is_null("last_success")),
        0
    );
    assert_eq!(ws.history("shop")[0]["outcome"], "failed");
    let st = ws.run_ok(&["status", "--json"], 0).json();
    let shop = st["carts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cart"] == "shop")
        .unwrap()
        .clone();
    assert_eq!(shop["last_outcome"], "failed");
    assert_eq!(shop["last_success"], serde_json::Value::Null);
    assert_eq!(shop["pending"], 1);
    // Fixed: the gate is still open and the same items go out.
    std::fs::remove_file(ws.path("out/shop")).unwrap();
    assert_eq!(ws.sync_feed("shop", &[]), "SKU,Quantity\nA,10\nB,2\n");
    assert_eq!(ws.sync("shop", &[], 0)["outcome"], "skipped");
}

// ----- 20-23. allocation per cart (CONTRACT §5) -----

/// A workspace whose merchant m1 names `kits.csv` (rule 21), with `carts`.
fn alloc_ws(carts: &str) -> Workspace {
    let ws = Workspace::standard(carts);
    let cfg = ws.read("stockgate.toml").replacen(
        "[[merchant]]\nid = \"m1\"\n",
        "[[merchant]]\nid = \"m1\"\nkits = \"maps/kits.csv\"\n",
        1,
    );
    ws.config(&cfg);
    ws
}

#[test]
fn allocation_keys_each_alone_and_together() {
    // A: W1 6 + W2 4 = 10; B: W1 3.
    let carts = [
        cart("buf", "m1", "full_sync = true\nbuffer = 2"),
        cart("pct", "m1", "full_sync = true\npercent = 50"),
        cart("cap", "m1", "full_sync = true\nmax_level = 4"),
        cart(
            "all",
            "m1",
            "full_sync = true\nmin_level = 5\nbuffer = 2\npercent = 50\nmax_level = 3",
        ),
        cart(
            "w2",
            "m1",
            "full_sync = true\nwarehouses = [\"W2\"]\nbuffer = 1",
        ),
        cart(
            "filt",
            "m1",
            "full_sync = true\ninclude = [\"A*\", \"B*\"]\nexclude = [\"B\"]",
        ),
    ]
    .concat();
    let ws = Workspace::standard(&carts);
    ws.apply(
        "wms",
        "s1.csv",
        &inv(&[
            &format!("A,W1,6,{T0}"),
            &format!("A,W2,4,{T0}"),
            &format!("B,W1,3,{T0}"),
            &format!("BB,W1,7,{T0}"),
        ]),
    );
    // The plain cart: available as is.
    assert_eq!(ws.sync_feed("shop", &[]), "SKU,Quantity\nA,10\nB,3\nBB,7\n");
    // buffer 2: 10-2, 3-2, 7-2.
    assert_eq!(ws.sync_feed("buf", &[]), "SKU,Quantity\nA,8\nB,1\nBB,5\n");
    // percent 50 rounds down: 5, 3 -> 1, 7 -> 3.
    assert_eq!(ws.sync_feed("pct", &[]), "SKU,Quantity\nA,5\nB,1\nBB,3\n");
    // max_level 4 caps.
    assert_eq!(ws.sync_feed("cap", &[]), "SKU,Quantity\nA,4\nB,3\nBB,4\n");
    // min_level 5 first (B: 3 < 5 -> 0), then (10-2)*50% = 4, capped at 3;
    // BB: (7-2)*50% = 2.5 -> 2.
    assert_eq!(ws.sync_feed("all", &[]), "SKU,Quantity\nA,3\nB,0\nBB,2\n");
    // One warehouse: A counts W2's 4 only, minus the buffer; B and BB have none there.
    assert_eq!(ws.sync_feed("w2", &[]), "SKU,Quantity\nA,3\nB,0\nBB,0\n");
    // Filters: B is excluded, nothing else matches neither.
    let v = ws.sync("filt", &[], 0);
    assert_eq!(v["items"], 2, "{v}");
    assert_eq!(
        v["missing"],
        serde_json::json!([{"field": "filtered", "items": 1}])
    );
    let f = v["file"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(f).unwrap(),
        "SKU,Quantity\nA,10\nBB,7\n"
    );

    // explain --cart shows each step; a filtered SKU has value null.
    let e = ws.explain("A", Some("all"));
    assert_eq!(
        e["carts"][0]["steps"],
        serde_json::json!({"available": 10, "min_level": 5, "buffer": 2, "percent": 50, "cap": 3, "value": 3})
    );
    let e = ws.explain("B", Some("filt"));
    assert_eq!(e["carts"][0]["value"], serde_json::Value::Null);
    assert_eq!(e["carts"][0]["left_out"], "filtered");
    assert_eq!(e["carts"][0]["steps"]["cap"], serde_json::Value::Null);
    let o = ws.run_ok(
        &["explain", "--merchant", "m1", "--sku", "A", "--cart", "all"],
        0,
    );
    assert!(
        o.stdout
            .contains("steps: available 10, min_level 5, buffer 2, percent 50, cap 3, value 3"),
        "{}",
        o.stdout
    );

    // A changed-only cart sends a SKU whose value changed because a key
    // changed (rule 6 against the last value sent).
    let cfg = ws.read("stockgate.toml").replacen(
        "id = \"shop\"\nmerchant = \"m1\"\nformat = \"csv\"\nmapping = \"feed\"\nschedule = \"every 1m\"\n",
        "id = \"shop\"\nmerchant = \"m1\"\nformat = \"csv\"\nmapping = \"feed\"\nschedule = \"every 1m\"\nmax_level = 5\n",
        1,
    );
    ws.config(&cfg);
    assert_eq!(
        ws.sync_feed("shop", &["--force"]),
        "SKU,Quantity\nA,5\nBB,5\n"
    );
}

#[test]
fn kits_are_built_per_warehouse_and_draw_on_components() {
    let ws = alloc_ws(&cart(
        "walmart",
        "m1",
        "full_sync = true\nsku_map = \"maps/walmart.csv\"",
    ));
    // K = 1 X + 2 Y; K2 = 1 X + 1 Z.
    ws.write(
        "maps/kits.csv",
        "kit_sku,component_sku,quantity\nK,X,1\nK,Y,2\nK2,X,1\nK2,Z,1\n",
    );
    ws.write("maps/walmart.csv", "sku,cart_sku\nX,WX-1\nK,WK-1\n");
    ws.apply(
        "wms",
        "s1.csv",
        &inv(&[
            &format!("X,W1,5,{T0}"),
            &format!("X,W2,3,{T0}"),
            &format!("Y,W1,0,{T0}"),
            &format!("Y,W2,10,{T0}"),
            &format!("Z,W1,4,{T0}"),
        ]),
    );
    // K: W1 min(5/1, 0/2) = 0, W2 min(3/1, 10/2) = 3 -> 3 (summed stock
    // would give min(8, 5) = 5). K2: W1 min(5, 4) = 4, W2 min(3, 0) = 0 -> 4.
    assert_eq!(
        ws.sync_feed("shop", &[]),
        "SKU,Quantity\nK,3\nK2,4\nX,8\nY,10\nZ,4\n"
    );
    // One kit K ordered on W2: X -1 and Y -2 there (rule 2 per component);
    // five more ordered before the count draw nothing.
    ws.apply(
        "orders",
        "o1.csv",
        &ord(&[
            &format!("1,1,K,1,open,{T0_P1H},W2"),
            &format!("3,1,K,5,open,{T0_M1H},W2"),
        ]),
    );
    // Top-level explain of a component lists the kit's line among those
    // drawing on it: Y 0 + 10 - 1 K x 2 = 8, as every cart counts it.
    let e = ws.explain("Y", None);
    assert_eq!(
        e["orders_subtracted"],
        serde_json::json!([{"order_id": "1", "line": "1", "quantity": 2,
            "ordered_at": "2025-06-01T11:00:00+00:00", "kit": "K"}]),
        "{e}"
    );
    assert_eq!(e["available"], 8);
    let per_cart: Vec<_> = e["carts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["cart"].clone(), c["available"].clone()))
        .collect();
    assert_eq!(
        per_cart,
        vec![
            (serde_json::json!("shop"), serde_json::json!(8)),
            (serde_json::json!("walmart"), serde_json::json!(8))
        ]
    );
    let o = ws.run_ok(&["explain", "--merchant", "m1", "--sku", "X"], 0);
    assert!(
        o.stdout
            .contains("  order 1 line 1: -1  at 2025-06-01T11:00:00+00:00 (kit K)\navailable: 7\n"),
        "{}",
        o.stdout
    );
    // X: 5 + 2 = 7; Y: 8; K: W2 min(2, 4) = 2; K2: W1 4, W2 min(2, 0) = 0
    // (4 as before: a changed-only cart does not send it again).
    assert_eq!(
        ws.sync_feed("shop", &["--force"]),
        "SKU,Quantity\nK,2\nX,7\nY,8\n"
    );
    // A component order lowers the kit: Z 3 (no warehouse: Z's latest, W1).
    ws.apply(
        "orders",
        "o2.csv",
        &ord(&[&format!("2,1,Z,3,open,{T0_P1H},")]),
    );
    assert_eq!(
        ws.sync_feed("shop", &["--force"]),
        "SKU,Quantity\nK2,1\nZ,1\n"
    );
    // The cart's own item ids; SKUs without one are left out as `no alias`.
    let v = ws.sync("walmart", &[], 0);
    assert_eq!(
        v["missing"],
        serde_json::json!([{"field": "no alias", "items": 3}]),
        "{v}"
    );
    let f = v["file"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(f).unwrap(),
        "SKU,Quantity\nWK-1,2\nWX-1,7\n"
    );
    // explain of a kit: each warehouse's component shares and the limit.
    let e = ws.explain("K", Some("shop"));
    let c = &e["carts"][0];
    assert_eq!(c["steps"]["available"], 2, "{e}");
    assert_eq!(
        c["kit"]["warehouses"],
        serde_json::json!([
            {"warehouse": "W1", "build": 0, "limited_by": "Y", "components": [
                {"sku": "X", "per_kit": 1, "available": 5, "share": 5},
                {"sku": "Y", "per_kit": 2, "available": 0, "share": 0}]},
            {"warehouse": "W2", "build": 2, "limited_by": "X", "components": [
                {"sku": "X", "per_kit": 1, "available": 2, "share": 2},
                {"sku": "Y", "per_kit": 2, "available": 8, "share": 4}]}
        ])
    );
    let o = ws.run_ok(
        &[
            "explain",
            "--merchant",
            "m1",
            "--sku",
            "K",
            "--cart",
            "shop",
        ],
        0,
    );
    assert!(
        o.stdout
            .contains("kit in W2: 2 (limited by X): X 2/1 = 2, Y 8/2 = 4"),
        "{}",
        o.stdout
    );
}

#[test]
fn check_refuses_bad_kits_and_sku_maps_naming_file_and_line() {
    let ws = alloc_ws(&cart(
        "walmart",
        "m1",
        "sku_map = \"maps/walmart.csv\"\npercent = 150\nbuffer = -1",
    ));
    ws.write(
        "maps/kits.csv",
        "kit_sku,component_sku,quantity\nK,K,1\nK2,X,2.5\nK3,K2,1\n",
    );
    ws.write("maps/walmart.csv", "sku,cart_sku\nX,W1\nY,W1\nX,W2\n");
    let o = ws.run_ok(&["check"], 2);
    let kits = ws.path("maps/kits.csv").display().to_string();
    let map = ws.path("maps/walmart.csv").display().to_string();
    for want in [
        format!("{kits}:2: key `merchant[0].kits`: kit \"K\" names itself as a component"),
        format!("{kits}:3: key `merchant[0].kits`: quantity \"2.5\" must be a whole number"),
        format!("{kits}:4: key `merchant[0].kits`: kit \"K3\" names another kit, \"K2\""),
        format!(
            "{map}:3: key `cart[1].sku_map`: cart_sku \"W1\" is given to two SKUs (first on line 2)"
        ),
        format!("{map}:4: key `cart[1].sku_map`: sku \"X\" is mapped twice (first on line 2)"),
        "key `cart[1].percent`: must be a whole number from 0 to 100, got 150".to_string(),
        "key `cart[1].buffer`: must be 0 or more, got -1".to_string(),
    ] {
        assert!(
            o.stderr.contains(&want) || o.stdout.contains(&want),
            "want {want}\n{}{}",
            o.stdout,
            o.stderr
        );
    }

    // The keys fixed, the tables still broken: `status` shows the carts and
    // their table trouble (a table is read when a command needs it, not at
    // config load), and a sync of such a cart fails naming file and line.
    let cfg = ws
        .read("stockgate.toml")
        .replace("percent = 150\nbuffer = -1", "percent = 50");
    ws.config(&cfg);
    ws.write("maps/kits.csv", "kit_sku,component_sku,quantity\nK,X,1\n");
    ws.apply("wms", "s1.csv", &inv(&[&format!("X,W1,4,{T0}")]));
    let map_trouble = format!(
        "sku_map file {map}:3: cart_sku \"W1\" is given to two SKUs (first on line 2) (and 1 more)"
    );
    let st = ws.run_ok(&["status", "--json"], 0).json();
    assert_eq!(st["tables"], serde_json::json!([map_trouble]), "{st}");
    assert_eq!(st["carts"][1]["cart"], "walmart");
    assert_eq!(
        st["carts"][1]["allocation"]["trouble"],
        serde_json::json!([map_trouble])
    );
    assert_eq!(
        st["carts"][0]["allocation"]["trouble"],
        serde_json::Value::Null
    );
    let o = ws.run_ok(&["status"], 0);
    assert!(
        o.stdout.contains(&format!("cart walmart: {map_trouble}\n")),
        "{}",
        o.stdout
    );
    let v = ws.sync("walmart", &[], 1);
    assert_eq!(v["outcome"], "failed", "{v}");
    assert_eq!(v["reason"], map_trouble.as_str());
    // explain says the cart sends nothing, and why.
    let e = ws.explain("X", Some("walmart"));
    assert_eq!(e["carts"][0]["value"], serde_json::Value::Null, "{e}");
    assert_eq!(e["carts"][0]["left_out"], map_trouble.as_str());
    assert_eq!(e["carts"][0]["available"], 4);
    // The other cart of the merchant syncs (its kits file is good again).
    assert_eq!(ws.sync_feed("shop", &[]), "SKU,Quantity\nK,4\nX,4\n");
    // A broken kits file fails every cart of the merchant, naming its line.
    ws.write("maps/kits.csv", "kit_sku,component_sku,quantity\nK,X,0\n");
    let v = ws.sync("shop", &["--force"], 1);
    assert_eq!(
        v["reason"],
        format!("kits file {kits}:2: quantity \"0\" must be a whole number from 1 to 1000000000")
            .as_str()
    );
    // Nor is an inventory file applied without the merchant's kits (its kit
    // rows would count as stock): rejected, naming the table's line.
    let p = ws.write("in/wms/s2.csv", inv(&[&format!("K,W1,9,{T0_P1H}")]));
    let v = ws.ingest("wms", &p, 1);
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert_eq!(
        v["errors"],
        serde_json::json!([format!(
            "kits file {kits}:2: quantity \"0\" must be a whole number from 1 to 1000000000"
        )])
    );
    assert_eq!(ws.explain("K", Some("walmart"))["known"], false);
    // History reads no table at all.
    ws.run_ok(&["history"], 0);
}

#[test]
fn sku_map_in_translates_order_lines_and_kit_rows_are_left_out() {
    let ws = alloc_ws(&cart("web", "m1", "sync_on_orders = true"));
    let cfg = ws.read("stockgate.toml")
        + &inbound(
            "mkt-orders",
            "m1",
            "orders",
            "ord",
            "sku_map = \"maps/mkt.csv\"\ncart = \"shop\"",
        );
    ws.config(&cfg);
    ws.write("maps/kits.csv", "kit_sku,component_sku,quantity\nK,X,2\n");
    ws.write("maps/mkt.csv", "sku,cart_sku\nX,MX-1\nK,MK-1\n");
    // A row naming the kit is left out and counted, never applied.
    let v = ws.apply(
        "wms",
        "s1.csv",
        &inv(&[&format!("X,W1,10,{T0}"), &format!("K,W1,99,{T0}")]),
    );
    assert_eq!(
        v["left_out"],
        serde_json::json!([{"reason": "kit sku", "items": 1}]),
        "{v}"
    );
    assert_eq!(ws.sync_feed("web", &[]), "SKU,Quantity\nK,5\nX,10\n");
    // The marketplace's ids are translated back: MK-1 draws 2 X per kit.
    ws.apply(
        "mkt-orders",
        "m1.csv",
        &ord(&[
            &format!("7,1,MK-1,1,open,{T0_P1H},"),
            &format!("7,2,MX-1,1,open,{T0_P1H},"),
        ]),
    );
    // sync_on_orders: no new inventory, but an order from another source
    // changed values this cart sends: X 10 - 2 - 1 = 7, K 3.
    assert_eq!(ws.sync_feed("web", &[]), "SKU,Quantity\nK,3\nX,7\n");
    assert_eq!(ws.sync("web", &[], 0)["reason"], "no new inventory");
    // Without the key the gate stays shut (rule 1).
    assert_eq!(ws.sync("shop", &[], 0)["outcome"], "sent");
    ws.apply(
        "mkt-orders",
        "m2.csv",
        &ord(&[&format!("8,1,MX-1,1,open,{T0_P1H},")]),
    );
    assert_eq!(ws.sync("shop", &[], 0)["reason"], "no new inventory");
    // An id without an entry rejects the file, naming it.
    let p = ws.write(
        "in/mkt-orders/m3.csv",
        ord(&[&format!("9,1,NOPE-9,1,open,{T0_P1H},")]),
    );
    let v = ws.ingest("mkt-orders", &p, 1);
    assert_eq!(v["outcome"], "rejected", "{v}");
    let errs = v["errors"].to_string();
    assert!(
        errs.contains("NOPE-9") && errs.contains("sku_map"),
        "{errs}"
    );
}

/// CONTRACT §5: orders from a source naming the cart (`[[inbound]] cart`)
/// are the cart's own, and do not open its `sync_on_orders` gate; an order
/// from any other source does.
#[test]
fn a_source_naming_the_cart_does_not_open_its_own_sync_on_orders_gate() {
    let ws = Workspace::standard(&cart("web", "m1", "sync_on_orders = true"));
    let cfg =
        ws.read("stockgate.toml") + &inbound("web-orders", "m1", "orders", "ord", "cart = \"web\"");
    ws.config(&cfg);
    ws.apply(
        "wms",
        "s1.csv",
        &inv(&[&format!("X,W1,10,{T0}"), &format!("Y,W1,4,{T0}")]),
    );
    assert_eq!(ws.sync_feed("web", &[]), "SKU,Quantity\nX,10\nY,4\n");
    // The web shop's own order: X 10 - 3 = 7, but the gate stays shut.
    ws.apply(
        "web-orders",
        "w1.csv",
        &ord(&[&format!("W-1,1,X,3,open,{T0_P1H},")]),
    );
    let v = ws.sync("web", &[], 0);
    assert_eq!(
        (v["outcome"].as_str(), v["reason"].as_str()),
        (Some("skipped"), Some("no new inventory")),
        "{v}"
    );
    assert_eq!(ws.explain("X", Some("web"))["carts"][0]["value"], 7);
    // An order from another source opens it: Y 4 - 1 = 3, and X goes out
    // at 7 (its value differs from the 10 last sent).
    ws.apply(
        "orders",
        "o1.csv",
        &ord(&[&format!("M-1,1,Y,1,open,{T0_P1H},")]),
    );
    assert_eq!(ws.sync_feed("web", &[]), "SKU,Quantity\nX,7\nY,3\n");
    // Its own orders alone again: shut.
    ws.apply(
        "web-orders",
        "w2.csv",
        &ord(&[&format!("W-2,1,Y,1,open,{T0_P1H},")]),
    );
    assert_eq!(ws.sync("web", &[], 0)["reason"], "no new inventory");
}

/// examples/allocation.toml (every allocation key, kits, sku_map) passes
/// `check` and gives, end to end, the numbers its comments promise.
#[test]
fn the_allocation_example_checks_and_runs() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let ws = Workspace::new();
    ws.write(
        "stockgate.toml",
        std::fs::read(src.join("allocation.toml")).unwrap(),
    );
    for f in ["maps/kits.csv", "maps/marketplace-items.csv"] {
        ws.write(f, std::fs::read(src.join(f)).unwrap());
    }
    for m in ["warehouse-csv", "orders-csv", "shop-csv"] {
        let f = format!("mappings/{m}.toml");
        ws.write(&f, std::fs::read(src.join(&f)).unwrap());
    }
    let o = ws.run_ok(&["check"], 0);
    assert!(o.stdout.starts_with("ok: "), "{}", o.stdout);
    ws.apply(
        "acme-wms",
        "count.csv",
        "Item,OnHand,Whse,Lot,CountedAt,UPC,Title\n\
         ACME-MUG,11,MAIN,,2025-06-01 08:00:00,,\n\
         ACME-TEA,4,MAIN,,2025-06-01 08:00:00,,\n\
         ACME-OLD-DISCONTINUED,9,MAIN,,2025-06-01 08:00:00,,\n\
         OTHER,5,MAIN,,2025-06-01 08:00:00,,\n",
    );
    // web-shop: GIFTSET builds min(11/2, 4/1) = 4 -> (4-1)*80% = 2;
    // MUG (11-1)*80% = 8; TEA (4-1)*80% = 2; the rest filtered.
    let v = ws.sync("web-shop", &[], 0);
    assert_eq!(
        v["missing"],
        serde_json::json!([{"field": "filtered", "items": 2}]),
        "{v}"
    );
    let feed = std::fs::read_to_string(v["file"].as_str().unwrap()).unwrap();
    assert_eq!(
        feed,
        "SKU,Quantity\nACME-GIFTSET,2\nACME-MUG,8\nACME-TEA,2\n"
    );
    // marketplace: 50% under its own ids: 2, 5, 2; OTHER... has no id.
    let v = ws.sync("marketplace", &[], 0);
    let feed = std::fs::read_to_string(v["file"].as_str().unwrap()).unwrap();
    assert_eq!(feed, "SKU,Quantity\nMKT-2001,2\nMKT-1001,5\nMKT-1002,2\n");
    // One gift set sold on the marketplace: MUG 9, TEA 3, GIFTSET 3; the
    // web shop's gate opens on it (sync_on_orders): 1, 6, 1.
    ws.apply(
        "marketplace-orders",
        "o1.csv",
        "OrderNo,Line,SKU,Qty,Status,OrderedAt\nM-1,1,MKT-2001,1,open,2025-06-01T15:00:00Z\n",
    );
    let feed = ws.sync_feed("web-shop", &[]);
    assert_eq!(
        feed,
        "SKU,Quantity\nACME-GIFTSET,1\nACME-MUG,6\nACME-TEA,1\n"
    );
}
