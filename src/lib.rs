//! stockgate: an inventory-sync gateway.
//!
//! Dependency direction (each module uses only those listed before it):
//! `util` → `progress` → `schedule` → `mapping` → `formats` (csv, xml, x12) →
//! `ledger` (the backend-neutral surface, `ledger::feed`, then `ledger::sqlite`) →
//! `tables` (the kits and sku_map files, read and cached) → `config` →
//! `locks` → `transport` → `store` → `acks` → `pickup` → `quarantine` → `sync` →
//! `inspect` → `telemetry` → `serve` → `daemon` → `init` → `app`.
//! The binary (`src/main.rs`) is a thin shell over [`app`].

pub mod acks;
pub mod app;
pub mod config;
pub mod daemon;
pub mod docmap;
pub mod formats;
pub mod init;
pub mod inspect;
pub mod ledger;
pub mod locks;
pub mod mapping;
pub mod pickup;
pub mod progress;
pub mod quarantine;
pub mod schedule;
pub mod serve;
pub mod store;
pub mod sync;
pub mod tables;
pub mod telemetry;
pub mod transport;
pub mod util;
