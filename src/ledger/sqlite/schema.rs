//! The SQLite ledger's schema: its migrations.

/// Schema migrations, in order; `PRAGMA user_version` = how many have run.
/// Append only: a released migration never changes.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the first release.
    "
    CREATE TABLE merchants (id TEXT PRIMARY KEY);
    CREATE TABLE products (
        merchant TEXT NOT NULL, sku TEXT NOT NULL, upc TEXT, description TEXT,
        first_seen INTEGER NOT NULL,
        PRIMARY KEY (merchant, sku)) WITHOUT ROWID;
    CREATE TABLE reports (
        id INTEGER PRIMARY KEY, source TEXT NOT NULL, merchant TEXT NOT NULL, kind TEXT NOT NULL,
        file_name TEXT NOT NULL, sha256 TEXT NOT NULL, as_of INTEGER, rows INTEGER NOT NULL,
        stale INTEGER NOT NULL, zeroed INTEGER NOT NULL, applied_at INTEGER NOT NULL, archive_path TEXT);
    CREATE INDEX reports_sha ON reports (source, sha256);
    CREATE INDEX reports_merchant ON reports (merchant, id);
    CREATE TABLE report_warehouses (
        report_id INTEGER NOT NULL, warehouse TEXT NOT NULL, PRIMARY KEY (report_id, warehouse)) WITHOUT ROWID;
    CREATE TABLE stock (
        merchant TEXT NOT NULL, sku TEXT NOT NULL, warehouse TEXT NOT NULL,
        quantity INTEGER NOT NULL, as_of INTEGER NOT NULL,
        report_id INTEGER NOT NULL,        -- report that set the quantity
        named_report_id INTEGER NOT NULL,  -- last report that named this row
        PRIMARY KEY (merchant, sku, warehouse)) WITHOUT ROWID;
    CREATE INDEX stock_warehouse ON stock (merchant, warehouse);
    CREATE TABLE order_lines (
        source TEXT NOT NULL, order_id TEXT NOT NULL, line TEXT NOT NULL,
        merchant TEXT NOT NULL, sku TEXT NOT NULL, quantity INTEGER NOT NULL, warehouse TEXT,
        ordered_at INTEGER NOT NULL, status TEXT, cancelled INTEGER NOT NULL,
        entered_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, report_id INTEGER NOT NULL,
        PRIMARY KEY (source, order_id, line));
    CREATE INDEX order_lines_sku ON order_lines (merchant, sku);
    CREATE TABLE inbound_files (
        id INTEGER PRIMARY KEY, source TEXT NOT NULL, file_name TEXT NOT NULL, sha256 TEXT NOT NULL,
        outcome TEXT NOT NULL, report_id INTEGER, received_at INTEGER NOT NULL, archive_path TEXT);
    CREATE INDEX inbound_files_source ON inbound_files (source, id);
    CREATE TABLE carts (
        id TEXT PRIMARY KEY, last_report_id INTEGER NOT NULL DEFAULT 0,
        last_attempt INTEGER, last_success INTEGER, last_outcome TEXT, seq INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE syncs (
        id INTEGER PRIMARY KEY, cart TEXT NOT NULL, started_at INTEGER NOT NULL, finished_at INTEGER NOT NULL,
        outcome TEXT NOT NULL, reason TEXT, items INTEGER NOT NULL, file TEXT, bytes INTEGER,
        sha256 TEXT, forced INTEGER NOT NULL, archive_path TEXT,
        interchange_control INTEGER, group_control INTEGER, ack_status TEXT, ack_codes TEXT);
    CREATE INDEX syncs_cart ON syncs (cart, id);
    CREATE TABLE last_sent (
        cart TEXT NOT NULL, sku TEXT NOT NULL, value INTEGER NOT NULL, sync_id INTEGER NOT NULL,
        PRIMARY KEY (cart, sku)) WITHOUT ROWID;
    CREATE TABLE control_numbers (
        sender TEXT NOT NULL, receiver TEXT NOT NULL, last INTEGER NOT NULL,
        PRIMARY KEY (sender, receiver)) WITHOUT ROWID;
    ",
    // 2: remote pickup. Every file a source has listed: first seen with this
    // size and mtime (to tell when it is stable), and once taken, its outcome
    // (so a kept file is never applied again, and a kept rejected file is not
    // fetched again until it changes). Rejected and held files are logged in
    // inbound_files with their first error; `cleared` once fixed and applied.
    "
    CREATE TABLE remote_files (
        source TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL, mtime INTEGER,
        first_seen INTEGER NOT NULL, outcome TEXT, sha256 TEXT, taken_at INTEGER, note TEXT,
        PRIMARY KEY (source, name)) WITHOUT ROWID;
    ALTER TABLE inbound_files ADD COLUMN error TEXT;
    ALTER TABLE inbound_files ADD COLUMN cleared INTEGER NOT NULL DEFAULT 0;
    ",
    // 3: nothing reads stock by (merchant, warehouse) but a full snapshot's
    // check and zeroing, once per such file, which scan the merchant's stock
    // by its primary key as fast; every ingest paid for keeping the index.
    "
    DROP INDEX IF EXISTS stock_warehouse;
    ",
    // 4: a product's price (inbound `price`, 846 CTP): validated decimal
    // text, never a float; NULL when no file gave one.
    "
    ALTER TABLE products ADD COLUMN price TEXT;
    ",
    // 5: each inbound source's looks (rule 37, 38): the last good listing,
    // the last failed one and how many failed in a row, so `status` run
    // beside the daemon and a restarted daemon's metrics see them.
    "
    CREATE TABLE source_looks (
        source TEXT PRIMARY KEY,
        last_look INTEGER,
        last_error TEXT,
        last_error_at INTEGER,
        failures INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    ",
    // 6: a cart's pending retry of a failed delivery (the daemon's), so
    // `status` beside it and a restarted daemon see when it comes.
    "
    ALTER TABLE carts ADD COLUMN retry_at INTEGER;
    ",
    // 7: several gateways, one ledger (rules 33, 34). `leases`: who works
    // each unit of work (`source:<id>`, `cart:<id>`) until when, and the
    // generation every fenced write checks; a released lease keeps its row
    // (expires_at = taken_at) so the next taker bumps the generation.
    // `gateways`: each gateway's last heartbeat, to spread the work over
    // those up. `journal`: a cart's delivery in flight (was
    // `var/journal/<cart>.json`), kept until its outcome is recorded.
    "
    CREATE TABLE leases (
        work TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        generation INTEGER NOT NULL,
        taken_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE gateways (
        instance TEXT PRIMARY KEY,
        last_seen INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE journal (
        cart TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        written_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // 8: the order loop (CONTRACT §6). Each order line's delivery to its
    // warehouse's order feed (`sent_feed`, `sent_sync`), whether it changed
    // after that (`changed`), or arrived after its order was sent (`late`),
    // and how much of it shipped; each order's ship-to, method and PO
    // (`order_heads`, `held`: why an order feed holds it back); shipments
    // applied (identity (source, ident): rule 27) and their lines; and
    // each shipment's delivery to each confirm feed.
    "
    ALTER TABLE order_lines ADD COLUMN sent_feed TEXT;
    ALTER TABLE order_lines ADD COLUMN sent_sync INTEGER;
    ALTER TABLE order_lines ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE order_lines ADD COLUMN late INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE order_lines ADD COLUMN shipped INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX order_lines_order ON order_lines (merchant, order_id);
    CREATE TABLE order_heads (
        source TEXT NOT NULL, order_id TEXT NOT NULL, merchant TEXT NOT NULL,
        po_number TEXT, ship_method TEXT, ship_to TEXT, held TEXT, updated_at INTEGER NOT NULL,
        PRIMARY KEY (source, order_id)) WITHOUT ROWID;
    CREATE TABLE shipments (
        id INTEGER PRIMARY KEY, source TEXT NOT NULL, ident TEXT NOT NULL, merchant TEXT NOT NULL,
        order_source TEXT NOT NULL, order_id TEXT NOT NULL, shipment_id TEXT, shipped_at INTEGER,
        carrier TEXT, service TEXT, report_id INTEGER NOT NULL, applied_at INTEGER NOT NULL,
        UNIQUE (source, ident));
    CREATE INDEX shipments_order ON shipments (order_source, order_id);
    CREATE TABLE shipment_lines (
        shipment INTEGER NOT NULL, n INTEGER NOT NULL, line TEXT NOT NULL, sku TEXT NOT NULL,
        quantity INTEGER NOT NULL, package TEXT, tracking TEXT,
        PRIMARY KEY (shipment, n)) WITHOUT ROWID;
    CREATE TABLE confirmations (
        feed TEXT NOT NULL, shipment INTEGER NOT NULL, sync_id INTEGER NOT NULL,
        PRIMARY KEY (feed, shipment)) WITHOUT ROWID;
    ",
];
