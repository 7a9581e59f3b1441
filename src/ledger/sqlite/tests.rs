use super::batch::BATCH;
use super::scan::OPEN_LINES_OF_SKU;
use super::*;

#[test]
fn migrations_upgrade_an_older_ledger_and_refuse_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    // A ledger at version 0 (created by nothing) upgrades to the latest.
    Connection::open(&path).unwrap();
    let l = SqliteLedger::open(&path).unwrap();
    assert_eq!(l.schema_version().unwrap(), MIGRATIONS.len() as i64);
    drop(l);
    // Reopening is idempotent.
    assert_eq!(
        SqliteLedger::open(&path).unwrap().schema_version().unwrap(),
        MIGRATIONS.len() as i64
    );
    // A ledger written by a newer stockgate is refused, untouched.
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    match SqliteLedger::open(&path) {
        Err(LedgerError::TooNew { found: 99, .. }) => {}
        other => panic!("expected TooNew, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_new_ledger_opened_by_several_processes_at_once_migrates_once() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || {
                    SqliteLedger::open(&p).map(|l| l.schema_version().unwrap())
                })
            })
            .collect();
        for h in handles {
            let v = h.join().unwrap();
            assert_eq!(
                v.as_ref().ok(),
                Some(&(MIGRATIONS.len() as i64)),
                "round {round}: {:?}",
                v.as_ref().err()
            );
        }
    }
}

/// Applies `rows` (SKU, warehouse, qty, as-of, UPC) the direct way or
/// staged; returns the summary and every stock and product row.
fn apply_rows(
    l: &mut SqliteLedger,
    direct: bool,
    name: &str,
    rows: &[(String, &str, i64, Millis, Option<String>)],
) -> (ApplySummary, Vec<String>) {
    let batch = l.inventory_batch("m", 5, direct).unwrap();
    for (sku, w, q, t, upc) in rows {
        batch.add(sku, w, *q, *t, upc.as_deref(), None).unwrap();
    }
    assert!(!batch.needs_staging());
    assert!(batch.aggregate().unwrap().is_empty());
    let meta = ReportMeta {
        source: "s",
        file_name: name,
        sha256: name,
        archive_path: None,
        as_of: 0,
        rows: rows.len() as u64,
        now: 5,
    };
    let Applied::Applied(summary) = batch.apply(&meta, &[]).unwrap() else {
        panic!("duplicate")
    };
    let dump = |sql: &str| -> Vec<String> {
        let mut stmt = l.conn.prepare(sql).unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    let mut all = dump(
        "SELECT concat_ws('|', sku, warehouse, quantity, as_of, report_id, named_report_id) FROM stock ORDER BY 1",
    );
    all.extend(dump(
        "SELECT concat_ws('|', sku, upc, description, first_seen) FROM products ORDER BY 1",
    ));
    (summary, all)
}

#[test]
fn direct_batches_match_the_staged_way_stale_rows_included() {
    // Over several batches and a tail: lots summed, a second warehouse
    // now and then; the later file older for every third SKU (stale).
    let (n_first, n_later) = (BATCH * 4 + 7, BATCH * 6 + 5);
    let first: Vec<_> = (0..n_first)
        .map(|i| {
            (
                format!("S{i:05}"),
                "W",
                1,
                if i % 3 == 0 { 20 } else { 10 },
                None,
            )
        })
        .collect();
    let mut later = vec![];
    for i in 0..n_later {
        let sku = format!("S{i:05}");
        later.push((sku.clone(), "W", i as i64, 15, Some(format!("{i:012}"))));
        if i % 7 == 0 {
            later.push((sku.clone(), "W", 2, 15, None));
            later.push((sku, "X", 3, 15, None));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut results = vec![];
    for direct in [true, false] {
        let mut l = SqliteLedger::open(&dir.path().join(format!("{direct}.sqlite"))).unwrap();
        l.ensure(&["m".into()], &[]).unwrap();
        apply_rows(&mut l, direct, "a", &first);
        results.push(apply_rows(&mut l, direct, "b", &later));
    }
    let stale_skus = (0..n_first).filter(|i| i % 3 == 0);
    let want: u64 = stale_skus.map(|i| if i % 7 == 0 { 2 } else { 1 }).sum();
    assert_eq!(results[0].0.stale, want);
    assert_eq!(results[0], results[1]);
}

/// The query plan of `sql`, one detail line per step.
fn plan(l: &SqliteLedger, sql: &str, n: usize) -> Vec<String> {
    let mut stmt = l
        .conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap();
    let params: Vec<rusqlite::types::Value> = (0..n)
        .map(|_| rusqlite::types::Value::Text("x".into()))
        .collect();
    stmt.query_map(rusqlite::params_from_iter(params), |r| {
        r.get::<_, String>(3)
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

/// Issue 8 item 15: `explain` of one SKU searches stock, orders and
/// products by index (milliseconds on a 2,000,000-SKU ledger), never
/// scans the merchant's whole catalog.
#[test]
fn explain_of_one_sku_searches_by_index() {
    let dir = tempfile::tempdir().unwrap();
    let l = SqliteLedger::open(&dir.path().join("l.sqlite")).unwrap();
    let order_draws = OPEN_LINES_OF_SKU.to_string();
    let [products, stock, orders, sent] = merge_sql(true);
    for (what, sql, n, tables) in [
        ("products of one SKU", products, 2, &["products"][..]),
        ("stock of one SKU", stock, 2, &["stock"]),
        ("orders of one SKU", orders, 3, &["order_lines"]),
        ("last sent of one SKU", sent, 2, &["last_sent"]),
        ("order_draws' lines", order_draws, 3, &["order_lines"]),
    ] {
        let steps = plan(&l, &sql, n);
        let text = steps.join("\n");
        // Tables as the plan names them (by their aliases in the SQL).
        for table in tables {
            let uses: Vec<&String> = steps
                .iter()
                .filter(|s| s.split_whitespace().nth(1) == Some(table))
                .collect();
            assert!(!uses.is_empty(), "{what}: {table} not in the plan:\n{text}");
            for u in uses {
                assert!(
                    u.starts_with("SEARCH") && u.contains("sku=?"),
                    "{what}: {table} is not searched by SKU through an index:\n{text}"
                );
            }
        }
    }
}

/// Issue 8 item 1: sums in the feed query never raise "integer overflow",
/// whatever an older ledger holds.
#[test]
fn feed_sums_never_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let l = SqliteLedger::open(&dir.path().join("l.sqlite")).unwrap();
    l.conn
        .execute_batch(&format!(
            "INSERT INTO products VALUES ('m', 'A', NULL, NULL, 0, NULL);
             INSERT INTO stock VALUES ('m', 'A', 'W1', {max}, 1, 1, 1), ('m', 'A', 'W2', {max}, 1, 1, 1);
             INSERT INTO order_lines VALUES ('o', '1', '1', 'm', 'A', {max}, NULL, 5, NULL, 0, 5, 5, 1),
                                            ('o', '1', '2', 'm', 'A', {max}, NULL, 5, NULL, 0, 5, 5, 1);",
            max = i64::MAX
        ))
        .unwrap();
    for sku in [None, Some("A")] {
        let q = FeedQuery {
            merchant: "m",
            cart: "c",
            warehouses: &[],
            min_level: 0,
            full: true,
            since_report: 0,
            sync_time: 10,
            required: &[],
            sku,
            locations: &[],
            rules: None,
        };
        let rows: Vec<(String, i64, i64)> = l
            .feed_rows(&q, |rows| {
                rows.map(|r| (r.item.sku, r.available, r.item.quantity))
                    .collect()
            })
            .unwrap();
        assert_eq!(rows, [("A".to_string(), 0, 0)], "{sku:?}");
    }
}

#[test]
fn a_new_ledger_gives_freed_pages_back_incrementally() {
    let dir = tempfile::tempdir().unwrap();
    let l = SqliteLedger::open(&dir.path().join("l.sqlite")).unwrap();
    let mode: i64 = l
        .conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, 2, "INCREMENTAL");
}

#[test]
fn control_numbers_never_repeat_and_wrap_at_nine_digits() {
    let dir = tempfile::tempdir().unwrap();
    let l = SqliteLedger::open(&dir.path().join("l.sqlite")).unwrap();
    assert_eq!(l.next_control("S", "R").unwrap(), 1);
    assert_eq!(l.next_control("S", "R").unwrap(), 2);
    assert_eq!(l.next_control("S", "OTHER").unwrap(), 1);
    l.conn
        .execute(
            "UPDATE control_numbers SET last = 999999999 WHERE receiver = 'R'",
            [],
        )
        .unwrap();
    assert_eq!(l.next_control("S", "R").unwrap(), 1);
}

/// Rule 2 once: explain's list of the order lines a SKU's value subtracts
/// is the merge's own rule (`feed::draws`), so its sum is the feed's
/// `committed`, for every set of counted warehouses.
#[test]
fn explain_lists_exactly_the_orders_the_feed_subtracts() {
    let dir = tempfile::tempdir().unwrap();
    let l = SqliteLedger::open(&dir.path().join("l.sqlite")).unwrap();
    l.conn
        .execute_batch(
            "INSERT INTO products VALUES ('m', 'A', NULL, NULL, 0, NULL), ('m', 'B', NULL, NULL, 0, NULL);
             INSERT INTO stock VALUES ('m', 'A', 'W1', 10, 100, 1, 1), ('m', 'A', 'W2', 7, 200, 1, 1);
             INSERT INTO order_lines VALUES
               ('o', '1', '1', 'm', 'A', 1, NULL, 150, NULL, 0, 5, 5, 1),
               ('o', '1', '2', 'm', 'A', 2, NULL, 250, NULL, 0, 5, 5, 1),
               ('o', '2', '1', 'm', 'A', 4, 'W1', 150, NULL, 0, 5, 5, 1),
               ('o', '2', '2', 'm', 'A', 8, 'W2', 150, NULL, 0, 5, 5, 1),
               ('o', '2', '3', 'm', 'A', 16, 'W2', 250, NULL, 0, 5, 5, 1),
               ('o', '2', '4', 'm', 'A', 32, 'W3', 250, NULL, 0, 5, 5, 1),
               ('o', '3', '1', 'm', 'A', 64, 'W1', 250, NULL, 1, 5, 5, 1),
               ('o', '3', '2', 'm', 'A', 128, 'W1', 999, NULL, 0, 5, 5, 1),
               ('o', '4', '1', 'm', 'B', 3, NULL, 1, NULL, 0, 5, 5, 1),
               ('o', '4', '2', 'm', 'B', 5, 'W1', 1, NULL, 0, 5, 5, 1);",
        )
        .unwrap();
    let all: Vec<String> = vec![];
    let w1 = vec!["W1".to_string()];
    let w2 = vec!["W2".to_string()];
    let w3 = vec!["W3".to_string()];
    let mut committed = vec![];
    for ws in [&all, &w1, &w2, &w3] {
        for sku in ["A", "B"] {
            let q = FeedQuery {
                merchant: "m",
                cart: "c",
                warehouses: ws,
                min_level: 0,
                full: true,
                since_report: 0,
                sync_time: 500,
                required: &[],
                sku: Some(sku),
                locations: &[],
                rules: None,
            };
            let feed: Vec<i64> = l
                .feed_rows(&q, |rows| rows.map(|r| r.item.committed).collect())
                .unwrap();
            let listed: i64 = l
                .order_draws("m", sku, ws, 500)
                .unwrap()
                .iter()
                .map(|o| o.quantity)
                .sum();
            assert_eq!(feed, [listed], "{sku} counting {ws:?}");
            committed.push(listed);
        }
    }
    // All: W1's line after its count (4), W2's after its (16), the
    // warehouse-less one after the latest count (2), W3 never counted (32);
    // B never counted: every line. W1 only: latest is W1's 100, so both
    // warehouse-less lines draw.
    assert_eq!(committed, [54, 8, 7, 8, 18, 3, 35, 3]);
}

/// `rows_of_skus` gives the same rows by a look per SKU as by one pass
/// over the merchant (many SKUs).
#[test]
fn rows_of_skus_by_look_and_by_pass_agree() {
    let dir = tempfile::tempdir().unwrap();
    let l = SqliteLedger::open(&dir.path().join("l.sqlite")).unwrap();
    let mut sql = String::new();
    for i in 0..5000 {
        sql.push_str(&format!(
            "INSERT INTO stock VALUES ('m', 'S{i:05}', 'W1', {i}, 1, 1, {i});
             INSERT INTO stock VALUES ('n', 'S{i:05}', 'W1', 7, 1, 1, 1);"
        ));
        if i % 3 == 0 {
            sql.push_str(&format!(
                "INSERT INTO order_lines VALUES ('o', '{i}', '1', 'm', 'S{i:05}', 2, NULL, {}, NULL, {}, 5, 5, 1);",
                i % 7,
                i32::from(i % 5 == 0)
            ));
        }
    }
    l.conn.execute_batch(&sql).unwrap();
    let key = |r: &crate::ledger::SkuRows| {
        let mut s: Vec<_> = r
            .stock
            .iter()
            .map(|s| {
                (
                    s.sku.clone(),
                    s.warehouse.clone(),
                    s.quantity,
                    s.named_report_id,
                )
            })
            .collect();
        s.sort();
        let mut o: Vec<_> = r
            .orders
            .iter()
            .map(|o| (o.sku.clone(), o.quantity, o.ordered_at))
            .collect();
        o.sort();
        (s, o)
    };
    let many: Vec<String> = (0..5000)
        .step_by(1)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("S{i:05}"))
        .collect();
    let by_pass = super::scan::rows_of_skus(&l.conn, "m", &many, 4).unwrap();
    let mut by_look = crate::ledger::SkuRows::default();
    for chunk in many.chunks(1000) {
        let r = super::scan::rows_of_skus(&l.conn, "m", chunk, 4).unwrap();
        by_look.stock.extend(r.stock);
        by_look.orders.extend(r.orders);
    }
    assert_eq!(by_pass.stock.len(), 2500);
    // Lines on every 6th SKU, not cancelled (every 5th), ordered_at <= 4.
    let want = (0..5000)
        .filter(|i| i % 2 == 0 && i % 3 == 0 && i % 5 != 0 && i % 7 <= 4)
        .count();
    assert_eq!(by_pass.orders.len(), want);
    assert_eq!(key(&by_pass), key(&by_look));
}
