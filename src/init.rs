//! `stockgate init DIR`: a workspace that runs at once, with commented
//! mappings and sample files in the inboxes.

use std::path::{Path, PathBuf};

// The workspace's files live in the repository as plain files (mappings/ and
// fixtures/demo/), so operators can read and copy them; init embeds them.
pub const CONFIG: &str = include_str!("../fixtures/demo/stockgate.toml");
pub const WAREHOUSE_CSV: &str = include_str!("../mappings/warehouse-csv.toml");
pub const ORDERS_CSV: &str = include_str!("../mappings/orders-csv.toml");
pub const SHOP_CSV: &str = include_str!("../mappings/shop-csv.toml");
pub const MARKETPLACE_CSV: &str = include_str!("../mappings/marketplace-csv.toml");
pub const RETAILER_846: &str = include_str!("../mappings/retailer-846.toml");
pub const PORTAL_XML: &str = include_str!("../mappings/portal-xml.toml");
pub const WAREHOUSE_846: &str = include_str!("../mappings/warehouse-846.toml");
pub const WAREHOUSE_XML: &str = include_str!("../mappings/warehouse-xml.toml");
pub const ORDERS_850: &str = include_str!("../mappings/orders-850.toml");
pub const SAMPLE_STOCK: &str = include_str!("../fixtures/demo/stock-20261120.csv");
pub const SAMPLE_ORDERS: &str = include_str!("../fixtures/demo/orders-20261120.csv");
pub const SHOP_ORDERS_CSV: &str = include_str!("../mappings/shop-orders-csv.toml");
pub const SHIPMENTS_CSV: &str = include_str!("../mappings/shipments-csv.toml");
pub const WAREHOUSE_ORDERS_CSV: &str = include_str!("../mappings/warehouse-orders-csv.toml");
pub const SHOP_CONFIRMS_CSV: &str = include_str!("../mappings/shop-confirms-csv.toml");
pub const SAMPLE_SHIPMENTS: &str = include_str!("../fixtures/demo/shipments-20261121.csv");

/// A retailer's 846 as its published guide asks for it, shipped as a mapping.
pub struct Preset {
    pub name: &'static str,
    pub title: &'static str,
    pub guide: &'static str,
    pub body: &'static str,
}

/// Every retailer preset the project ships (mappings/, cited at their top).
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "walmart-dsv-846",
        title: "Walmart.com Drop Ship Vendor 846, X12 004010",
        guide: "https://developer.walmart.com/suppliers/docs/846-inventory-inquiry",
        body: include_str!("../mappings/walmart-dsv-846.toml"),
    },
    Preset {
        name: "qvc-commercehub-846",
        title: "QVC drop ship 846 through CommerceHub, X12 004010",
        guide: "https://www.stedi.com/app/guides/view/qvc/commercehub-drop-ship-inventory-inquiryadvice/01HBCEDS9W1Z3M6JSS78AD3X6N",
        body: include_str!("../mappings/qvc-commercehub-846.toml"),
    },
    Preset {
        name: "qvc-commercehub-856",
        title: "QVC drop ship 856 ship notice through CommerceHub, X12 004010 (a confirm feed)",
        guide: "https://stedi.com/app/guides/view/qvc/856/01HBCEDAK6G4130H6481MS1QSM",
        body: include_str!("../mappings/qvc-commercehub-856.toml"),
    },
];

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
    let samples: [(String, &str); 13] = [
        ("mappings/shop-orders-csv.toml".into(), SHOP_ORDERS_CSV),
        ("mappings/shipments-csv.toml".into(), SHIPMENTS_CSV),
        (
            "mappings/warehouse-orders-csv.toml".into(),
            WAREHOUSE_ORDERS_CSV,
        ),
        ("mappings/shop-confirms-csv.toml".into(), SHOP_CONFIRMS_CSV),
        ("mappings/warehouse-csv.toml".into(), WAREHOUSE_CSV),
        ("mappings/warehouse-846.toml".into(), WAREHOUSE_846),
        ("mappings/warehouse-xml.toml".into(), WAREHOUSE_XML),
        ("mappings/orders-csv.toml".into(), ORDERS_CSV),
        ("mappings/orders-850.toml".into(), ORDERS_850),
        ("mappings/shop-csv.toml".into(), SHOP_CSV),
        ("mappings/marketplace-csv.toml".into(), MARKETPLACE_CSV),
        ("mappings/retailer-846.toml".into(), RETAILER_846),
        ("mappings/portal-xml.toml".into(), PORTAL_XML),
    ];
    let presets = PRESETS
        .iter()
        .map(|p| (format!("mappings/{}.toml", p.name), p.body));
    let rest = [
        ("var/inbox/acme-wms/stock-20261120.csv".into(), SAMPLE_STOCK),
        (
            "var/inbox/acme-orders/orders-20261120.csv".into(),
            SAMPLE_ORDERS,
        ),
        (
            "var/inbox/acme-shipments/shipments-20261121.csv".into(),
            SAMPLE_SHIPMENTS,
        ),
        ("stockgate.toml".into(), CONFIG),
    ];
    for (rel, body) in samples.into_iter().chain(presets).chain(rest) {
        let p = dir.join(&rel);
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
        "var/outbox/acme-warehouse-orders",
        "var/outbox/acme-shop-confirms",
    ] {
        let p = dir.join(d);
        std::fs::create_dir_all(&p).map_err(|source| InitError::Io {
            path: p.clone(),
            source,
        })?;
    }
    Ok(config)
}
