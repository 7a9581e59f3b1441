//! `stockgate init DIR`: a workspace that runs at once, with commented
//! mappings and sample files in the inboxes.

use std::path::{Path, PathBuf};

pub const CONFIG: &str = r#"# stockgate workspace: written by `stockgate init`.
# Relative paths are relative to this file's folder.

[ledger]
path = "var/ledger.sqlite"
archive = "var/archive"         # every file received or sent, byte for byte
quarantine = "var/quarantine"   # rejected and held files, each with <file>.error.txt

[[merchant]]
id = "acme"

# The warehouse drops stock counts here (CSV, one row per SKU/warehouse/lot).
[[inbound]]
id = "acme-wms"
merchant = "acme"
kind = "inventory"
mapping = "warehouse-csv"       # mappings/warehouse-csv.toml
warehouse = "MAIN"              # used for rows with an empty warehouse column
[inbound.transport]
type = "dir"
path = "var/inbox/acme-wms"
pattern = "*.csv"

# The shop's order export: orders since the warehouse counted are subtracted.
[[inbound]]
id = "acme-orders"
merchant = "acme"
kind = "orders"
mapping = "orders-csv"
[inbound.transport]
type = "dir"
path = "var/inbox/acme-orders"
pattern = "*.csv"

# The web shop: a CSV of SKUs whose numbers changed, every 15 minutes.
[[cart]]
id = "acme-shop"
merchant = "acme"
format = "csv"
mapping = "shop-csv"
schedule = "every 15m"
timezone = "UTC"
min_level = 0
full_sync = false
warehouses = []                 # [] = all warehouses
[cart.transport]
type = "dir"
path = "var/outbox/acme-shop"
file_name = "inventory-{cart}-{timestamp}-{seq}.csv"

# A marketplace that sells only from MAIN and gets 0 below 5 units, full catalog.
[[cart]]
id = "acme-marketplace"
merchant = "acme"
format = "csv"
mapping = "marketplace-csv"
schedule = "every 1h"
min_level = 5
full_sync = true
warehouses = ["MAIN"]
[cart.transport]
type = "dir"
path = "var/outbox/acme-marketplace"
file_name = "stock-{merchant}-{timestamp}-{seq}.csv"

# A retailer that buys over EDI: a full-catalog X12 846 every hour (always full).
[[cart]]
id = "acme-retailer"
merchant = "acme"
format = "x12-846"
mapping = "retailer-846"
schedule = "0 * * * *"          # cron: at minute 0 of every hour
timezone = "America/New_York"
[cart.transport]
type = "dir"
path = "var/outbox/acme-retailer"
file_name = "846-{merchant}-{timestamp}-{seq}.x12"

# A partner portal that takes XML.
[[cart]]
id = "acme-portal"
merchant = "acme"
format = "xml"
mapping = "portal-xml"
schedule = "every 30m"
[cart.transport]
type = "dir"
path = "var/outbox/acme-portal"
file_name = "inventory-{timestamp}-{seq}.xml"
"#;

pub const WAREHOUSE_CSV: &str = r#"# Inbound inventory from the warehouse (CSV with a header row).
format = "csv"
record = "inventory"
delimiter = ","
header = true                   # columns by header name; false: by 1-based number
snapshot = "partial"            # "full": SKUs absent from a file drop to 0
# max_zeroed = "50%"            # a full file zeroing more is held as likely truncated

[columns]
sku = "Item"                    # required
quantity = "OnHand"             # required: whole numbers only (12, +12, 12.0, -3)
warehouse = "Whse"              # optional; empty cells use the source's warehouse
lot = "Lot"                     # optional: rows of one SKU/warehouse are summed
as_of = "CountedAt"             # optional: when the warehouse counted
upc = "UPC"                     # optional product attribute
description = "Title"           # optional product attribute

[as_of]
format = "%Y-%m-%d %H:%M:%S"    # chrono format; RFC 3339 is always accepted
timezone = "America/Chicago"
"#;

pub const ORDERS_CSV: &str = r#"# Inbound orders from the shop. A line seen again (same order and line)
# updates the earlier one; cancelled lines subtract nothing.
format = "csv"
record = "orders"
header = true
cancelled = ["cancelled", "void"]

[columns]
order_id = "OrderNo"            # required
line = "Line"                   # optional: else the row's place within its order
sku = "SKU"                     # required
quantity = "Qty"                # required
status = "Status"               # optional
ordered_at = "OrderedAt"        # optional: else when the line entered the ledger
"#;

pub const SHOP_CSV: &str = r#"# The web shop's feed: SKU and quantity.
format = "csv"
header = true
columns = [
  { header = "SKU", field = "sku" },
  { header = "Quantity", field = "quantity" },
]
"#;

pub const MARKETPLACE_CSV: &str = r#"# The marketplace lists by UPC: a SKU without a UPC is left out of this
# feed (counted as "missing upc" in the sync summary).
format = "csv"
header = true
columns = [
  { header = "sku", field = "sku" },
  { header = "upc", field = "upc" },
  { header = "qty", field = "quantity" },
  { header = "title", field = "description", optional = true },
]
"#;

pub const RETAILER_846: &str = r#"# X12 846 for a retailer: LIN carries the UPC (UP) and the vendor's SKU (VN),
# QTY 33 the quantity available. A SKU without a UPC is left out of this feed.
format = "x12-846"
version = "004010"              # or "005010"
sender_qualifier = "ZZ"
sender_id = "ACMEWHSE"
receiver_qualifier = "08"
receiver_id = "925485US00"
usage = "T"                     # "P" production | "T" test
element_separator = "*"
segment_terminator = "~"
component_separator = ">"
line_break = true               # a newline after each terminator, for people reading it
bia_purpose = "00"
bia_report_type = "SI"
item_ids = [ ["UP", "upc"], ["VN", "sku"] ]
quantity_qualifier = "33"
unit = "EA"
"#;

pub const PORTAL_XML: &str = r#"# XML feed: <Inventory><Item><SKU/><Quantity/>...</Item></Inventory>
format = "xml"
root = "Inventory"
item = "Item"
fields = [
  { element = "SKU", field = "sku" },
  { element = "Quantity", field = "quantity" },
  { element = "Description", field = "description", optional = true },
  { element = "AsOf", field = "as_of" },
]
"#;

pub const SAMPLE_STOCK: &str = "Item,Whse,Lot,OnHand,UPC,Title,CountedAt
WIDGET-1,MAIN,L1,40,012345678905,Blue widget,2026-11-20 06:00:00
WIDGET-1,MAIN,L2,10,012345678905,Blue widget,2026-11-20 06:00:00
WIDGET-1,EAST,,12,012345678905,Blue widget,2026-11-20 06:00:00
GADGET-2,MAIN,,7,036000291452,Gadget,2026-11-20 06:00:00
GIZMO-3,MAIN,,3,,Gizmo,2026-11-20 06:00:00
BOLT-4,EAST,,-2,042100005264,\"Bolt, 10mm\",2026-11-20 06:00:00
";

pub const SAMPLE_ORDERS: &str = "OrderNo,Line,SKU,Qty,Status,OrderedAt
0999,1,WIDGET-1,4,open,2026-11-19T15:00:00Z
1001,1,WIDGET-1,3,open,2026-11-20T15:00:00Z
1001,2,GADGET-2,1,open,2026-11-20T15:00:00Z
1002,1,WIDGET-1,5,cancelled,2026-11-20T16:00:00Z
";

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0} already exists; not overwriting a workspace")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes the workspace; refuses to touch an existing config.
pub fn init(dir: &Path) -> Result<PathBuf, InitError> {
    let config = dir.join("stockgate.toml");
    if config.exists() {
        return Err(InitError::Exists(config));
    }
    let files: &[(&str, &str)] = &[
        ("mappings/warehouse-csv.toml", WAREHOUSE_CSV),
        ("mappings/orders-csv.toml", ORDERS_CSV),
        ("mappings/shop-csv.toml", SHOP_CSV),
        ("mappings/marketplace-csv.toml", MARKETPLACE_CSV),
        ("mappings/retailer-846.toml", RETAILER_846),
        ("mappings/portal-xml.toml", PORTAL_XML),
        ("var/inbox/acme-wms/stock-20261120.csv", SAMPLE_STOCK),
        ("var/inbox/acme-orders/orders-20261120.csv", SAMPLE_ORDERS),
        ("stockgate.toml", CONFIG),
    ];
    for (rel, body) in files {
        let p = dir.join(rel);
        let io = |source| InitError::Io {
            path: p.clone(),
            source,
        };
        std::fs::create_dir_all(p.parent().unwrap_or(dir)).map_err(io)?;
        std::fs::write(&p, body).map_err(io)?;
    }
    for d in [
        "var/outbox/acme-shop",
        "var/outbox/acme-marketplace",
        "var/outbox/acme-retailer",
        "var/outbox/acme-portal",
    ] {
        let p = dir.join(d);
        std::fs::create_dir_all(&p).map_err(|source| InitError::Io {
            path: p.clone(),
            source,
        })?;
    }
    Ok(config)
}
