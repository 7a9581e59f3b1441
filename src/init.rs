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
pub const SAMPLE_STOCK: &str = include_str!("../fixtures/demo/stock-20261120.csv");
pub const SAMPLE_ORDERS: &str = include_str!("../fixtures/demo/orders-20261120.csv");

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
