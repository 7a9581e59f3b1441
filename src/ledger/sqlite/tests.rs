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
             INSERT INTO order_lines (source, order_id, line, merchant, sku, quantity, warehouse, ordered_at, status, cancelled, entered_at, updated_at, report_id) VALUES ('o', '1', '1', 'm', 'A', {max}, NULL, 5, NULL, 0, 5, 5, 1),
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
             INSERT INTO order_lines (source, order_id, line, merchant, sku, quantity, warehouse, ordered_at, status, cancelled, entered_at, updated_at, report_id) VALUES
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
                "INSERT INTO order_lines (source, order_id, line, merchant, sku, quantity, warehouse, ordered_at, status, cancelled, entered_at, updated_at, report_id) VALUES ('o', '{i}', '1', 'm', 'S{i:05}', 2, NULL, {}, NULL, {}, 5, 5, 1);",
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

fn lease_ledger() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    (dir, path)
}

#[test]
fn a_lease_is_taken_renewed_released_and_taken_again_with_exact_generations() {
    let (_d, path) = lease_ledger();
    let l = SqliteLedger::open(&path).unwrap();
    let ttl = Duration::from_secs(30);
    let t0 = clock();
    let a = l.take_lease("cart:shop", "gw-a", ttl).unwrap().unwrap();
    assert_eq!(
        (a.work.as_str(), a.holder.as_str(), a.generation),
        ("cart:shop", "gw-a", 1)
    );
    assert!(a.taken_at >= t0 && a.taken_at <= clock());
    assert_eq!(a.expires_at - a.taken_at, 30_000);
    // Another holder: refused while it lives, nothing changed.
    assert_eq!(l.take_lease("cart:shop", "gw-b", ttl).unwrap(), None);
    // Ours again: renewed, same generation and taken_at.
    std::thread::sleep(Duration::from_millis(5));
    let a2 = l.take_lease("cart:shop", "gw-a", ttl).unwrap().unwrap();
    assert_eq!((a2.generation, a2.taken_at), (1, a.taken_at));
    assert!(a2.expires_at > a.expires_at);
    assert!(l.renew_lease(&a2, ttl).unwrap());
    let rows = l.leases().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].holder.as_str(), rows[0].generation, rows[0].live),
        ("gw-a", 1, true)
    );
    // Released: no longer live, and not renewable.
    l.release_lease(&a2).unwrap();
    let rows = l.leases().unwrap();
    assert_eq!((rows[0].generation, rows[0].live), (1, false));
    assert_eq!(rows[0].expires_at, rows[0].taken_at);
    assert!(!l.renew_lease(&a2, ttl).unwrap());
    // Taken after the release, by another holder: generation 2.
    let b = l.take_lease("cart:shop", "gw-b", ttl).unwrap().unwrap();
    assert_eq!((b.holder.as_str(), b.generation), ("gw-b", 2));
    // The old lease is lost: not renewable, its release changes nothing.
    assert!(!l.renew_lease(&a2, ttl).unwrap());
    l.release_lease(&a2).unwrap();
    assert!(l.leases().unwrap()[0].live);
    // Another work is a lease of its own.
    let s = l.take_lease("source:wms", "gw-a", ttl).unwrap().unwrap();
    assert_eq!(s.generation, 1);
    let works: Vec<_> = l.leases().unwrap().into_iter().map(|r| r.work).collect();
    assert_eq!(works, ["cart:shop", "source:wms"]);
}

#[test]
fn an_expired_lease_is_taken_over_with_a_new_generation() {
    let (_d, path) = lease_ledger();
    let l = SqliteLedger::open(&path).unwrap();
    let short = Duration::from_millis(40);
    let a = l.take_lease("source:wms", "gw-a", short).unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(60));
    assert!(!l.leases().unwrap()[0].live);
    // Expired and nobody took it: its holder may still renew it.
    assert!(l.renew_lease(&a, short).unwrap());
    assert!(l.leases().unwrap()[0].live);
    std::thread::sleep(Duration::from_millis(60));
    // Expired, taken again by its own holder: a new tenure, generation 2.
    let a2 = l.take_lease("source:wms", "gw-a", short).unwrap().unwrap();
    assert_eq!(a2.generation, 2);
    assert!(!l.renew_lease(&a, short).unwrap(), "generation moved");
    std::thread::sleep(Duration::from_millis(60));
    let b = l
        .take_lease("source:wms", "gw-b", Duration::from_secs(30))
        .unwrap()
        .unwrap();
    assert_eq!((b.holder.as_str(), b.generation), ("gw-b", 3));
    assert!(!l.renew_lease(&a2, short).unwrap(), "taken by another");
}

#[test]
fn heartbeats_count_the_gateways_seen_within_a_lease() {
    let (_d, path) = lease_ledger();
    let l = SqliteLedger::open(&path).unwrap();
    let within = Duration::from_millis(80);
    assert_eq!(l.heartbeat("gw-a", within).unwrap(), 1);
    assert_eq!(l.heartbeat("gw-b", within).unwrap(), 2);
    assert_eq!(l.heartbeat("gw-a", within).unwrap(), 2);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(l.heartbeat("gw-a", within).unwrap(), 1, "gw-b went quiet");
    l.heartbeat("gw-b", within).unwrap();
    l.gateway_left("gw-b").unwrap();
    assert_eq!(l.heartbeat("gw-a", within).unwrap(), 1, "gw-b left");
}

#[test]
fn the_journal_is_kept_per_cart_until_cleared() {
    let (_d, path) = lease_ledger();
    let l = SqliteLedger::open(&path).unwrap();
    assert_eq!(l.journal_get("shop").unwrap(), None);
    l.journal_put("shop", r#"{"file":"a"}"#).unwrap();
    l.journal_put("shop", r#"{"file":"b"}"#).unwrap();
    l.journal_put("other", r#"{"file":"c"}"#).unwrap();
    assert_eq!(
        l.journal_get("shop").unwrap().as_deref(),
        Some(r#"{"file":"b"}"#)
    );
    l.journal_clear("shop").unwrap();
    l.journal_clear("shop").unwrap();
    assert_eq!(l.journal_get("shop").unwrap(), None);
    assert_eq!(
        l.journal_get("other").unwrap().as_deref(),
        Some(r#"{"file":"c"}"#)
    );
}

fn counts_of(l: &SqliteLedger) -> Vec<(String, i64)> {
    l.table_counts().unwrap()
}

#[test]
fn a_stale_fence_makes_every_completing_write_fail_and_write_nothing() {
    let (_d, path) = lease_ledger();
    let mut a = SqliteLedger::open(&path).unwrap();
    let b = SqliteLedger::open(&path).unwrap();
    a.ensure(&["m".into()], &["shop".into()]).unwrap();
    let short = Duration::from_millis(40);
    let cart = a.take_lease("cart:shop", "gw-a", short).unwrap().unwrap();
    let src = a.take_lease("source:wms", "gw-a", short).unwrap().unwrap();
    // Held: the fenced writes go through.
    a.set_fence(Some(cart.fence()));
    a.set_retry("shop", Some(5)).unwrap();
    a.journal_put("shop", "{}").unwrap();
    std::thread::sleep(Duration::from_millis(60));
    // Taken over by another handle after the short ttl.
    let b_cart = b
        .take_lease("cart:shop", "gw-b", Duration::from_secs(30))
        .unwrap()
        .unwrap();
    assert_eq!(b_cart.generation, 2);
    b.take_lease("source:wms", "gw-b", Duration::from_secs(30))
        .unwrap()
        .unwrap();
    let before = counts_of(&a);
    let lost = |r: Result<()>, what: &str, work: &str| match r {
        Err(LedgerError::LeaseLost { work: w }) if w == work => {}
        other => panic!("{what}: expected LeaseLost {work}, got {other:?}"),
    };
    let entry = SyncEntry {
        cart: "shop".into(),
        started_at: 1,
        finished_at: 2,
        outcome: SyncOutcome::Sent,
        items: 1,
        ..Default::default()
    };
    let mut log = SentLog::new(path.parent().unwrap());
    log.push("A", 3).unwrap();
    lost(
        a.record_delivery(&entry, Some(7), Some(&mut log))
            .map(|_| ()),
        "record_delivery",
        "cart:shop",
    );
    lost(
        a.record_sync(&entry, None).map(|_| ()),
        "record_sync",
        "cart:shop",
    );
    lost(a.set_retry("shop", None), "set_retry", "cart:shop");
    lost(
        a.keep_schedule("shop", Some(9)),
        "keep_schedule",
        "cart:shop",
    );
    lost(
        a.journal_put("shop", "{\"x\":1}"),
        "journal_put",
        "cart:shop",
    );
    lost(a.journal_clear("shop"), "journal_clear", "cart:shop");
    a.set_fence(Some(src.fence()));
    let now = clock();
    let meta = ReportMeta {
        source: "wms",
        file_name: "f.csv",
        sha256: "ab",
        archive_path: None,
        as_of: now,
        rows: 1,
        now,
    };
    for direct in [true, false] {
        let batch = a.inventory_batch("m", now, direct).unwrap();
        batch.add("A", "MAIN", 5, now, None, None).unwrap();
        if !direct {
            batch.aggregate().unwrap();
        }
        lost(
            batch.apply(&meta, &[]).map(|_| ()),
            "inventory apply",
            "source:wms",
        );
    }
    let batch = a.order_batch("m", "wms").unwrap();
    lost(batch.apply(&meta).map(|_| ()), "order apply", "source:wms");
    let batch = a.product_batch("m").unwrap();
    lost(
        batch.apply(&meta).map(|_| ()),
        "product apply",
        "source:wms",
    );
    lost(
        a.note_taken("wms", "f.csv", 1, None, "applied", Some("ab"), None, now),
        "note_taken",
        "source:wms",
    );
    lost(
        a.note_problem("wms", "f.csv", 1, None, "x", now),
        "note_problem",
        "source:wms",
    );
    lost(
        a.record_file("wms", "f.csv", "ab", "rejected", None, Some("x"), now),
        "record_file",
        "source:wms",
    );
    lost(
        a.discard_file("wms", "f.csv", "ab", "arch", now),
        "discard_file",
        "source:wms",
    );
    assert_eq!(counts_of(&a), before, "nothing written");
    let st = a.cart_state("shop").unwrap();
    assert_eq!(
        (st.retry_at, st.last_attempt, st.last_report_id),
        (Some(5), None, 0)
    );
    assert_eq!(a.journal_get("shop").unwrap().as_deref(), Some("{}"));
    // No fence (a CLI command under its flock): nothing is checked.
    a.set_fence(None);
    a.set_retry("shop", None).unwrap();
    assert_eq!(a.cart_state("shop").unwrap().retry_at, None);
}
