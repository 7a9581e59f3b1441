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

/// Allocation per cart (rules 20-23): random stock, orders, kits and keys;
/// every value sent equals an independent model, and none exceeds the
/// SKU's `available`.
#[test]
fn allocated_values_match_an_independent_model() {
    const SKUS: [&str; 4] = ["A", "X", "Y", "Z"];
    const WS: [&str; 2] = ["W1", "W2"];
    #[derive(Debug, Clone)]
    struct Case {
        /// Per SKU: W1 quantity, W2 quantity (None: no row).
        stock: Vec<(i64, Option<i64>)>,
        /// Two kits: (component index, per kit) each, distinct components.
        kits: Vec<Vec<(usize, i64)>>,
        /// (sku index 0..6: 4 = K1, 5 = K2, quantity, warehouse index or none).
        orders: Vec<(usize, i64, Option<usize>)>,
        keys: (i64, i64, i64, i64, bool),
    }
    let kit = prop::collection::btree_map(0usize..4, 1i64..4, 1..4)
        .prop_map(|m| m.into_iter().collect::<Vec<_>>());
    let case = (
        prop::collection::vec((-3i64..20, prop::option::of(-3i64..20)), 4),
        prop::collection::vec(kit, 2),
        prop::collection::vec((0usize..6, 1i64..6, prop::option::of(0usize..2)), 0..6),
        (0i64..6, 0i64..=100, 0i64..15, 0i64..5, any::<bool>()),
    )
        .prop_map(|(stock, kits, orders, keys)| Case {
            stock,
            kits,
            orders,
            keys,
        });
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&case, |c| {
            let (buffer, percent, max_level, min_level, w2_only) = c.keys;
            let warehouses = if w2_only { "[\"W2\"]" } else { "[]" };
            let ws = Workspace::standard(&cart(
                "alloc",
                "m1",
                &format!(
                    "full_sync = true\nbuffer = {buffer}\npercent = {percent}\nmax_level = {max_level}\nmin_level = {min_level}\nwarehouses = {warehouses}"
                ),
            ));
            let cfg = ws.read("stockgate.toml").replacen(
                "[[merchant]]\nid = \"m1\"\n",
                "[[merchant]]\nid = \"m1\"\nkits = \"kits.csv\"\n",
                1,
            );
            ws.config(&cfg);
            let mut kits = String::from("kit_sku,component_sku,quantity\n");
            for (k, comps) in c.kits.iter().enumerate() {
                for (ci, per) in comps {
                    kits.push_str(&format!("K{},{},{per}\n", k + 1, SKUS[*ci]));
                }
            }
            ws.write("kits.csv", &kits);
            let t0 = "2025-06-01T10:00:00Z";
            let mut inv = String::from(INV_H);
            for (i, (w1, w2)) in c.stock.iter().enumerate() {
                inv.push_str(&format!("{},W1,{w1},{t0},,\n", SKUS[i]));
                if let Some(q) = w2 {
                    inv.push_str(&format!("{},W2,{q},{t0},,\n", SKUS[i]));
                }
            }
            ws.apply("wms", "s.csv", &inv);
            if !c.orders.is_empty() {
                let mut ord = String::from("Order,Line,SKU,Qty,Status,At,Whse\n");
                for (n, (s, q, w)) in c.orders.iter().enumerate() {
                    let sku = if *s < 4 { SKUS[*s].to_string() } else { format!("K{}", s - 3) };
                    let w = w.map_or("", |w| WS[w]);
                    ord.push_str(&format!("1,{n},{sku},{q},open,2025-06-01T11:00:00Z,{w}\n"));
                }
                ws.apply("orders", "o.csv", &ord);
            }
            // The model.
            let counts = |w: usize| !w2_only || w == 1;
            let rows = |i: usize| -> Vec<(usize, i64)> {
                let (w1, w2) = c.stock[i];
                let mut v = vec![(0, w1)];
                if let Some(q) = w2 {
                    v.push((1, q));
                }
                v.into_iter().filter(|(w, _)| counts(*w)).collect()
            };
            // Lines per SKU, kit lines expanded: (quantity, warehouse).
            let mut lines: Vec<Vec<(i64, Option<usize>)>> = vec![vec![]; 4];
            for (s, q, w) in &c.orders {
                if *s < 4 {
                    lines[*s].push((*q, *w));
                } else {
                    for (ci, per) in &c.kits[s - 4] {
                        lines[*ci].push((q * per, *w));
                    }
                }
            }
            let alloc = |a: i64| -> i64 {
                if a < min_level {
                    return 0;
                }
                let v = ((a - buffer) * percent).div_euclid(100);
                let v = if max_level > 0 { v.min(max_level) } else { v };
                v.max(0)
            };
            let mut want: BTreeMap<String, (i64, i64)> = BTreeMap::new();
            let mut net: Vec<Vec<(usize, i64)>> = vec![];
            for i in 0..4 {
                let r = rows(i);
                let first = r.first().map(|(w, _)| *w);
                let mut a: i64 = r.iter().map(|(_, q)| q).sum();
                let mut per_w = r.clone();
                for (q, w) in &lines[i] {
                    let on = match w {
                        Some(w) if !counts(*w) => continue,
                        Some(w) => Some(*w),
                        None => first,
                    };
                    a -= q;
                    if let Some(slot) = per_w.iter_mut().find(|(pw, _)| Some(*pw) == on) {
                        slot.1 -= q;
                    }
                }
                want.insert(SKUS[i].to_string(), (alloc(a), a));
                net.push(per_w);
            }
            for (k, comps) in c.kits.iter().enumerate() {
                let mut total = 0;
                for w in 0..2 {
                    if !comps.iter().any(|(ci, _)| net[*ci].iter().any(|(pw, _)| *pw == w)) {
                        continue;
                    }
                    let b = comps
                        .iter()
                        .map(|(ci, per)| {
                            let a = net[*ci].iter().find(|(pw, _)| *pw == w).map_or(0, |x| x.1);
                            a.div_euclid(*per)
                        })
                        .min()
                        .unwrap_or(0)
                        .max(0);
                    total += b;
                }
                want.insert(format!("K{}", k + 1), (alloc(total), total));
            }
            let sv = ws.sync("alloc", &[], 0);
            prop_assert_eq!(&sv["outcome"], "sent", "{}", sv);
            let feed = std::fs::read_to_string(sv["file"].as_str().unwrap()).unwrap();
            let got: BTreeMap<String, i64> = csv::Reader::from_reader(feed.as_bytes())
                .records()
                .map(|r| {
                    let r = r.unwrap();
                    (r[0].to_string(), r[1].parse().unwrap())
                })
                .collect();
            for (sku, v) in &got {
                prop_assert!(*v <= want[sku].1.max(0), "{} sends {} over available {}", sku, v, want[sku].1);
            }
            let want: BTreeMap<String, i64> = want.into_iter().map(|(k, (v, _))| (k, v)).collect();
            prop_assert_eq!(got, want, "{:?}", c);
            Ok::<(), TestCaseError>(())
        })
        .unwrap();
}
