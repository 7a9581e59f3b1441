//! Property test (issue 8): random quantities (out of range included), SKUs
//! (control characters, empty, too long included) and as-of times (future
//! included) thrown at ingest -> sync through the real binary. Each file is
//! either applied whole with the right sums, or rejected with the ledger
//! unchanged.

mod common;
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::BTreeMap;

const INV_H: &str = "SKU,Whse,Qty,AsOf,UPC,Title\n";
const LIMIT: i64 = 1_000_000_000_000;

#[derive(Debug, Clone)]
struct Row {
    sku: String,
    warehouse: &'static str,
    qty: String,
    /// Seconds after 2025-06-01T00:00:00Z; `None`: 2099 (far future).
    as_of: Option<i64>,
}

fn sku() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec!["A", "B", "C", "D-1", "é"]).prop_map(String::from),
        1 => Just(String::new()),
        1 => Just("S".repeat(256)),
        1 => Just("L".repeat(255)),
        1 => prop::sample::select(vec!['\t', '\0', '\u{1b}', '\u{7f}', '\u{1f}', '\r'])
            .prop_map(|c| format!("A{c}B")),
    ]
}

fn qty() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (-50i64..200).prop_map(|q| q.to_string()),
        2 => prop::sample::select(vec![LIMIT, -LIMIT, LIMIT + 1, -LIMIT - 1, LIMIT / 2 + 1])
            .prop_map(|q| q.to_string()),
        1 => prop::sample::select(vec!["9223372036854775807", "-9223372036854775808", "99999999999999999999999"])
            .prop_map(String::from),
    ]
}

fn row() -> impl Strategy<Value = Row> {
    (
        sku(),
        prop::sample::select(vec!["W1", "W2"]),
        qty(),
        prop_oneof![8 => (0i64..1_000_000).prop_map(Some), 1 => Just(None)],
    )
        .prop_map(|(sku, warehouse, qty, as_of)| Row {
            sku,
            warehouse,
            qty,
            as_of,
        })
}

fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn as_of_text(t: Option<i64>) -> String {
    match t {
        Some(s) => chrono::DateTime::from_timestamp(epoch("2025-06-01T00:00:00Z") as i64 + s, 0)
            .unwrap()
            .to_rfc3339(),
        None => "2099-01-01T00:00:00Z".into(),
    }
}

/// The ledger's stock as the model keeps it: (sku, warehouse) -> (quantity, as_of seconds).
type Model = BTreeMap<(String, String), (i64, i64)>;

/// What the file should do: `Some(per-key (sum, max as_of))` when valid.
fn expected(rows: &[Row]) -> Option<BTreeMap<(String, String), (i64, i64)>> {
    let mut agg: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for r in rows {
        let sku = r.sku.trim();
        let ok_sku = !sku.is_empty()
            && sku.chars().count() <= 255
            && !sku.chars().any(|c| (c as u32) < 0x20 || c as u32 == 0x7f);
        let q: Option<i64> = r.qty.parse().ok().filter(|q| (-LIMIT..=LIMIT).contains(q));
        let (true, Some(q), Some(t)) = (ok_sku, q, r.as_of) else {
            return None;
        };
        let e = agg
            .entry((sku.to_string(), r.warehouse.to_string()))
            .or_insert((0, i64::MIN));
        e.0 += q;
        e.1 = e.1.max(t);
    }
    if agg.values().any(|(q, _)| q.abs() > LIMIT) {
        return None;
    }
    Some(agg)
}

fn stock(ws: &Workspace) -> Model {
    let base = epoch("2025-06-01T00:00:00Z") as i64;
    ws.rows("stock")
        .iter()
        .filter(|r| r.text("merchant") == Some("m1"))
        .map(|r| {
            (
                (
                    r.text("sku").unwrap().to_string(),
                    r.text("warehouse").unwrap().to_string(),
                ),
                (
                    r.int("quantity").unwrap(),
                    r.int("as_of").unwrap() / 1000 - base,
                ),
            )
        })
        .collect()
}

#[test]
fn each_file_is_applied_whole_with_the_right_sums_or_rejected_with_the_ledger_unchanged() {
    let ws = Workspace::standard(
        "\n[[cart]]\nid = \"full\"\nmerchant = \"m1\"\nformat = \"csv\"\nmapping = \"feed\"\nschedule = \"every 1m\"\nfull_sync = true\n[cart.transport]\ntype = \"dir\"\npath = \"out/full\"\nfile_name = \"{cart}-{seq}.csv\"\n",
    );
    ws.run_ok(&["status"], 0);
    let model = std::cell::RefCell::new(Model::new());
    let n = std::cell::Cell::new(0u32);
    let mut runner = TestRunner::new(Config {
        cases: 200,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&prop::collection::vec(row(), 1..6), |rows| {
            n.set(n.get() + 1);
            let i = n.get();
            // A unique first row: every file is new content (never a duplicate).
            let mut body = format!("{INV_H}N{i},W1,{i},{},,\n", as_of_text(Some(0)));
            for r in &rows {
                body.push_str(&format!(
                    "{},{},{},{},,\n",
                    csv_field(&r.sku),
                    r.warehouse,
                    r.qty,
                    as_of_text(r.as_of)
                ));
            }
            let mut all = rows.clone();
            all.insert(
                0,
                Row {
                    sku: format!("N{i}"),
                    warehouse: "W1",
                    qty: i.to_string(),
                    as_of: Some(0),
                },
            );
            let before = ws.ledger_dump();
            let p = ws.write(&format!("drop/f{i}.csv"), &body);
            let o = ws.run(&["ingest", "--source", "wms", "--json", p.to_str().unwrap()]);
            let v = o.json();
            let outcome = v[0]["outcome"].as_str().unwrap_or("").to_string();
            match expected(&all) {
                None => {
                    prop_assert_eq!(&outcome, "rejected", "{}\n{}", body.escape_debug(), v);
                    prop_assert_eq!(o.code, 1);
                    prop_assert!(
                        ws.ledger_dump() == before,
                        "ledger changed by a rejected file"
                    );
                }
                Some(agg) => {
                    prop_assert_eq!(&outcome, "applied", "{}\n{}", body.escape_debug(), v);
                    let mut m = model.borrow_mut();
                    for (k, (q, t)) in agg {
                        let e = m.entry(k).or_insert((0, i64::MIN));
                        // Rule 11: an older row changes nothing.
                        if e.1 <= t {
                            *e = (q, t);
                        }
                    }
                    prop_assert_eq!(&stock(&ws), &*m);
                }
            }
            // The feed: every SKU's sum over warehouses, clamped at 0.
            let sv = ws.sync("full", &[], 0);
            prop_assert_eq!(&sv["outcome"], "sent");
            let feed = std::fs::read_to_string(sv["file"].as_str().unwrap()).unwrap();
            let mut want: BTreeMap<String, i64> = BTreeMap::new();
            for ((sku, _), (q, _)) in model.borrow().iter() {
                *want.entry(sku.clone()).or_insert(0) += q;
            }
            let mut rdr = csv::Reader::from_reader(feed.as_bytes());
            let got: BTreeMap<String, i64> = rdr
                .records()
                .map(|r| {
                    let r = r.unwrap();
                    (r[0].to_string(), r[1].parse().unwrap())
                })
                .collect();
            let want: BTreeMap<String, i64> =
                want.into_iter().map(|(k, v)| (k, v.max(0))).collect();
            prop_assert_eq!(got, want);
            Ok::<(), TestCaseError>(())
        })
        .unwrap();
    eprintln!("cases run: {}", n.get());
    // Both branches were exercised.
    let applied = ws.count("reports");
    assert!(
        applied > 5 && applied < n.get() as i64,
        "{applied} of {} applied",
        n.get()
    );
}
