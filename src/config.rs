//! `stockgate.toml`: parsed into raw structs, then validated as a whole
//! (every mapping loaded, every reference resolved) before anything runs.

use crate::mapping::{self, InboundMapping, OutboundMapping, RecordKind};
use crate::schedule::{self, Schedule};
use crate::util::{Problem, line_at, line_of, parse_duration_secs, struct_fields};
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod transport;
use transport::RawTransport;
pub use transport::{
    After, DEFAULT_FILE_NAME, DEFAULT_TRANSFER_TIMEOUT, DirEndpoint, Endpoint, FtpEndpoint,
    HostKey, Password, PickupRules, SftpAuth, SftpEndpoint, Tls, TlsMode, TransportSpec, host_port,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // its field names list the known top-level keys
struct RawConfig {
    ledger: RawLedger,
    #[serde(default)]
    merchant: Vec<RawMerchant>,
    #[serde(default)]
    inbound: Vec<RawInbound>,
    #[serde(default)]
    cart: Vec<RawCart>,
    #[serde(default)]
    order_feed: Vec<RawOrderFeed>,
    #[serde(default)]
    confirm_feed: Vec<RawConfirmFeed>,
}

/// `[[order_feed]]`: orders forwarded to a warehouse (CONTRACT §6).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrderFeed {
    id: String,
    merchant: String,
    /// The lines for this warehouse (and lines naming none); without it,
    /// every line no other order feed of the merchant takes.
    warehouse: Option<String>,
    format: String,
    mapping: String,
    schedule: String,
    timezone: Option<String>,
    transport: RawTransport,
}

/// `[[confirm_feed]]`: shipment confirmations to an order source's cart.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfirmFeed {
    id: String,
    merchant: String,
    orders_from: Vec<String>,
    format: String,
    mapping: String,
    schedule: String,
    timezone: Option<String>,
    transport: RawTransport,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    /// A SQLite file; or `url` / `url_env` for PostgreSQL (one of the three).
    path: Option<PathBuf>,
    url: Option<String>,
    url_env: Option<String>,
    /// Files in flight on this host (default: beside a SQLite ledger, else `var`).
    scratch: Option<PathBuf>,
    archive: Option<PathBuf>,
    quarantine: Option<PathBuf>,
    keep: Option<String>,
    /// This gateway's name in the ledger's leases (default `HOST:PID`).
    instance: Option<String>,
    /// How long a lease lasts unrenewed (default `30s`, at least `3s`).
    lease: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMerchant {
    id: String,
    /// Rule 21: `kit_sku,component_sku,quantity`.
    kits: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInbound {
    id: String,
    merchant: String,
    kind: String,
    mapping: String,
    warehouse: Option<String>,
    poll: Option<String>,
    #[serde(default)]
    acknowledge: bool,
    transport: RawTransport,
    ack_transport: Option<RawTransport>,
    /// The cart whose orders this source carries (`sync_on_orders`).
    cart: Option<String>,
    /// Rule 22: order lines name the cart's item ids, translated back.
    sku_map: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCart {
    id: String,
    merchant: String,
    format: String,
    mapping: String,
    schedule: String,
    timezone: Option<String>,
    #[serde(default)]
    min_level: i64,
    #[serde(default)]
    full_sync: bool,
    #[serde(default)]
    warehouses: Vec<String>,
    transport: RawTransport,
    // Allocation per cart (rules 20-24).
    #[serde(default)]
    buffer: i64,
    #[serde(default = "hundred")]
    percent: i64,
    #[serde(default)]
    max_level: i64,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    sku_map: Option<PathBuf>,
    #[serde(default)]
    sync_on_orders: bool,
}

fn hundred() -> i64 {
    100
}

#[derive(Debug, Clone)]
pub struct Inbound {
    pub id: String,
    pub merchant: String,
    pub kind: RecordKind,
    pub mapping: InboundMapping,
    pub warehouse: Option<String>,
    pub poll: Duration,
    pub acknowledge: bool,
    pub transport: TransportSpec,
    pub ack_transport: Option<TransportSpec>,
    /// The cart whose orders this source carries.
    pub cart: Option<String>,
    /// Order lines carry this cart item id table's ids (rule 22).
    pub sku_map: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Cart {
    pub id: String,
    pub merchant: String,
    pub mapping: OutboundMapping,
    pub schedule: Schedule,
    pub schedule_text: String,
    pub tz: Tz,
    pub min_level: i64,
    pub full_sync: bool,
    pub warehouses: Vec<String>,
    pub transport: TransportSpec,
    /// `buffer`, `percent`, `max_level` (rule 20).
    pub alloc: crate::ledger::Allocation,
    /// `include` / `exclude` (rule 23).
    pub filters: crate::ledger::Filters,
    /// The cart's own item ids (rule 22).
    pub sku_map: Option<PathBuf>,
    /// The merchant's kits file (rule 21).
    pub kits: Option<PathBuf>,
    pub sync_on_orders: bool,
    /// What the feed sends: inventory (a `[[cart]]`), orders (an
    /// `[[order_feed]]`) or shipment confirmations (a `[[confirm_feed]]`).
    /// All three are scheduled, synced, delivered, journaled and recorded
    /// alike; only the rendering differs (`sync`).
    pub kind: FeedKind,
}

/// The outbound feed kinds (CONTRACT §6).
#[derive(Debug, Clone)]
pub enum FeedKind {
    Inventory,
    Orders {
        warehouse: Option<String>,
        doc: crate::docmap::DocMapping,
    },
    Confirms {
        orders_from: Vec<String>,
        doc: crate::docmap::DocMapping,
    },
}

impl FeedKind {
    /// `cart`, `order_feed` or `confirm_feed`: the table it comes from.
    pub fn table(&self) -> &'static str {
        match self {
            FeedKind::Inventory => "cart",
            FeedKind::Orders { .. } => "order_feed",
            FeedKind::Confirms { .. } => "confirm_feed",
        }
    }
    pub fn doc(&self) -> Option<&crate::docmap::DocMapping> {
        match self {
            FeedKind::Inventory => None,
            FeedKind::Orders { doc, .. } | FeedKind::Confirms { doc, .. } => Some(doc),
        }
    }
}

impl Cart {
    /// An inventory feed (`[[cart]]`), as opposed to an order or confirm feed.
    pub fn is_inventory(&self) -> bool {
        matches!(self.kind, FeedKind::Inventory)
    }
    /// What `status` and `history` call the feed's format.
    pub fn format_name(&self) -> &'static str {
        match self.kind.doc() {
            Some(d) => d.format_name(),
            None => self.mapping.format_name(),
        }
    }
    /// X12 846 feeds are always full catalogs (retailers replace, not merge).
    pub fn is_full(&self) -> bool {
        self.full_sync || matches!(self.mapping.format, mapping::OutFormat::X12_846(_))
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub dir: PathBuf,
    /// Where the ledger lives: a SQLite file or a PostgreSQL database.
    pub ledger: crate::ledger::LedgerLocation,
    /// This host's folder for files in flight (`[ledger] scratch`).
    pub scratch: PathBuf,
    pub archive: PathBuf,
    pub quarantine: PathBuf,
    /// Archive, quarantine and history older than this are pruned (`None`: forever).
    pub keep: Option<Duration>,
    /// This gateway's name as the holder of its leases (`[ledger] instance`,
    /// default `HOST:PID`).
    pub instance: String,
    /// How long a lease lasts unrenewed (`[ledger] lease`): renewed every
    /// third of it; a gateway that stops loses its work after it.
    pub lease: Duration,
    pub merchants: Vec<String>,
    /// Each merchant's kits file, when it names one (rule 21).
    pub kits: Vec<(String, PathBuf)>,
    pub inbound: Vec<Inbound>,
    pub carts: Vec<Cart>,
    /// Not wrong, but worth saying (`check` prints them): an inline password.
    pub warnings: Vec<Problem>,
}

impl Config {
    pub fn inbound(&self, id: &str) -> Option<&Inbound> {
        self.inbound.iter().find(|i| i.id == id)
    }
    pub fn cart(&self, id: &str) -> Option<&Cart> {
        self.carts.iter().find(|c| c.id == id)
    }
    /// The kits file of `merchant`, when it names one (rule 21).
    pub fn kits_of(&self, merchant: &str) -> Option<&Path> {
        kits_of(&self.kits, merchant)
    }
    /// Scratch folder beside the ledger for files in flight (`outgoing` feeds
    /// and 997s being written, `work` for fetched inbound files), per id.
    pub fn scratch_dir(&self, kind: &str, id: &str) -> PathBuf {
        self.scratch.join(kind).join(id)
    }

    pub fn mappings_dir(&self) -> PathBuf {
        self.dir.join("mappings")
    }
}

/// Where `check` points: a problem list keyed to the config file.
struct Ctx<'a> {
    path: &'a Path,
    src: &'a str,
    dir: &'a Path,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    /// Read and check every kits and sku_map file (`check`); otherwise
    /// they are read when a command needs them (`crate::tables`).
    tables: bool,
}

impl Ctx<'_> {
    /// Something not wrong, but worth saying (`check` prints it).
    fn warn(&mut self, table: &str, nth: usize, key: &str, message: impl Into<String>) {
        let p = self.problem(table, nth, key, message);
        self.warnings.push(p);
    }
    fn at(&mut self, table: &str, nth: usize, key: &str, message: impl Into<String>) {
        let p = self.problem(table, nth, key, message);
        self.problems.push(p);
    }
    /// Located at the key's line, named as `cart[0].transport.key`.
    fn problem(&self, table: &str, nth: usize, key: &str, message: impl Into<String>) -> Problem {
        let root = table.split('.').next().unwrap_or("");
        let rest = table.strip_prefix(root).unwrap_or("");
        let shown = if table.is_empty() {
            key.to_string()
        } else if table == "ledger" {
            format!("ledger.{key}")
        } else {
            format!("{root}[{nth}]{rest}.{key}")
        };
        Problem {
            file: self.path.to_path_buf(),
            line: line_of(self.src, table, nth, key),
            key: shown,
            message: message.into(),
        }
    }
    fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}

/// The config file to use: `--config`, else `$STOCKGATE_CONFIG`, else ./stockgate.toml.
pub fn default_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("STOCKGATE_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("stockgate.toml"))
}

/// Loads and validates the config and every mapping it names.
/// Returns every problem found, not just the first. Kits and sku_map files
/// are not read here: each command reads the tables of the carts it works
/// on (`crate::tables`), and [`load_checked`] reads them all.
pub fn load(path: &Path) -> Result<Config, Vec<Problem>> {
    load_with(path, false)
}

/// [`load`], and every kits and sku_map file read and checked too, its
/// problems at its file and line (`check`).
pub fn load_checked(path: &Path) -> Result<Config, Vec<Problem>> {
    load_with(path, true)
}

fn load_with(path: &Path, tables: bool) -> Result<Config, Vec<Problem>> {
    let one = |line, message: String| {
        vec![Problem {
            file: path.to_path_buf(),
            line,
            key: String::new(),
            message,
        }]
    };
    let src =
        std::fs::read_to_string(path).map_err(|e| one(None, format!("cannot read config: {e}")))?;
    // A syntax error stops here (nothing after it can be trusted); anything
    // else is collected, every key, every entry and every mapping, in one pass.
    let mut table = match src.parse::<toml::Table>() {
        Ok(t) => t,
        Err(e) => {
            let line = e.span().map(|s| line_at(&src, s.start));
            return Err(one(line, redact_secrets(&src, line, e.message().trim())));
        }
    };
    let unknown = strip_unknown(path, &src, &mut table);
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cx = Ctx {
        path,
        src: &src,
        dir: &dir,
        problems: unknown,
        warnings: vec![],
        tables,
    };
    let raw = typed(&mut cx, table);
    let mut mappings = MappingCache::default();
    check_broken_mappings(&mut cx, &mut mappings, &raw);
    let merchants = merchants(&mut cx, &raw);
    let kits = merchant_kits(&mut cx, &raw);
    let mut ids = HashSet::new();
    let inbound = raw
        .inbound
        .iter()
        .filter_map(|(i, r)| inbound_entry(&mut cx, &mut mappings, &raw, &mut ids, *i, r))
        .collect::<Vec<_>>();
    let mut carts = carts(&mut cx, &mut mappings, &raw);
    let feeds = doc_feeds(&mut cx, &raw, &carts, &inbound);
    carts.extend(feeds);
    for c in &mut carts {
        c.kits = kits_of(&kits, &c.merchant).map(Path::to_path_buf);
    }
    check_inbound_carts(&mut cx, &raw, &carts);
    let ledger = ledger_section(&mut cx, &raw.ledger);
    let problems = std::mem::take(&mut cx.problems);
    let warnings = std::mem::take(&mut cx.warnings);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Config {
        path: abs.clone(),
        ledger: ledger.location,
        scratch: ledger.scratch,
        archive: ledger.archive,
        quarantine: ledger.quarantine,
        keep: ledger.keep,
        instance: ledger.instance,
        lease: ledger.lease,
        dir,
        merchants,
        kits,
        inbound,
        carts,
        warnings,
    })
}

fn kits_of<'a>(kits: &'a [(String, PathBuf)], merchant: &str) -> Option<&'a Path> {
    kits.iter()
        .find(|(m, _)| m == merchant)
        .map(|(_, p)| p.as_path())
}

/// A kits or sku_map file, resolved; with `cx.tables`, read and checked:
/// its problems each at its file and CSV line.
fn check_table(
    cx: &mut Ctx,
    table: &str,
    i: usize,
    key: &str,
    path: &Path,
    parse: fn(Vec<u8>) -> Result<(), Vec<crate::tables::TableProblem>>,
) -> PathBuf {
    let full = cx.resolve(path);
    if !cx.tables {
        return full;
    }
    match std::fs::read(&full) {
        Err(e) => cx.at(
            table,
            i,
            key,
            format!("cannot read {}: {e}", full.display()),
        ),
        Ok(b) => {
            if let Err(ps) = parse(b) {
                let shown = format!("{table}[{i}].{key}");
                for p in ps {
                    cx.problems.push(Problem {
                        file: full.clone(),
                        line: p.line,
                        key: shown.clone(),
                        message: p.message,
                    });
                }
            }
        }
    }
    full
}

use crate::tables::{check_kits as parse_kits, check_sku_map as parse_sku_map};

/// `[[merchant]] kits`: each file checked (rule 21), resolved.
fn merchant_kits(cx: &mut Ctx, raw: &Typed) -> Vec<(String, PathBuf)> {
    let mut out = vec![];
    for (i, m) in &raw.merchant {
        if let Some(p) = &m.kits {
            let full = check_table(cx, "merchant", *i, "kits", p, parse_kits);
            out.push((m.id.clone(), full));
        }
    }
    out
}

/// `[[inbound]] cart` names a known cart of the same merchant; an
/// `[[inbound]] sku_map` belongs to an orders source.
fn check_inbound_carts(cx: &mut Ctx, raw: &Typed, carts: &[Cart]) {
    for (i, r) in &raw.inbound {
        if let Some(c) = &r.cart {
            match raw.cart.iter().find(|(_, rc)| &rc.id == c) {
                None => cx.at(
                    "inbound",
                    *i,
                    "cart",
                    format!(
                        "unknown cart {c:?}{}",
                        crate::util::did_you_mean(c, carts.iter().map(|c| c.id.as_str()))
                    ),
                ),
                Some((_, rc)) if rc.merchant != r.merchant => cx.at(
                    "inbound",
                    *i,
                    "cart",
                    format!(
                        "cart {c:?} belongs to merchant {:?}, this source to {:?}",
                        rc.merchant, r.merchant
                    ),
                ),
                _ => {}
            }
        }
        if r.sku_map.is_some() && r.kind != "orders" {
            cx.at(
                "inbound",
                *i,
                "sku_map",
                "sku_map translates order lines: only a kind = \"orders\" source takes it",
            );
        }
    }
}

/// Entries too broken to use still have their mappings checked.
fn check_broken_mappings(cx: &mut Ctx, mappings: &mut MappingCache, raw: &Typed) {
    for (kind, _, name) in &raw.broken_mappings {
        let mpath = mapping_path(cx.dir, name);
        if !mpath.exists() {
            continue;
        }
        if *kind == "inbound" {
            mappings.inbound(cx, &mpath);
        } else {
            mappings.outbound(cx, &mpath);
        }
    }
}

fn merchants(cx: &mut Ctx, raw: &Typed) -> Vec<String> {
    let mut merchants: Vec<String> = vec![];
    for (i, m) in raw.merchant.iter() {
        check_id(cx, "merchant", *i, &m.id);
        if merchants.contains(&m.id) {
            cx.at(
                "merchant",
                *i,
                "id",
                format!("merchant {:?} is declared twice", m.id),
            );
        }
        merchants.push(m.id.clone());
    }
    merchants
}

/// An entry's id: valid, and not used by an earlier entry of its table.
fn check_new_id(cx: &mut Ctx, seen: &mut HashSet<String>, table: &str, i: usize, id: &str) {
    check_id(cx, table, i, id);
    if !seen.insert(id.to_string()) {
        let what = if table == "cart" { "cart id" } else { "id" };
        cx.at(table, i, "id", format!("{what} {id:?} is used twice"));
    }
}

/// The `[[inbound]]` entry numbered `i`, or `None` when its mapping is unusable
/// (every problem recorded in `cx`).
fn inbound_entry(
    cx: &mut Ctx,
    mappings: &mut MappingCache,
    raw: &Typed,
    ids: &mut HashSet<String>,
    i: usize,
    r: &RawInbound,
) -> Option<Inbound> {
    check_new_id(cx, ids, "inbound", i, &r.id);
    if !raw.merchant_ids.contains(&r.merchant) {
        cx.at(
            "inbound",
            i,
            "merchant",
            unknown_merchant(&r.merchant, &raw.merchant_ids),
        );
    }
    let kind = RecordKind::from_name(&r.kind).unwrap_or_else(|| {
        cx.at(
            "inbound",
            i,
            "kind",
            format!("must be {}, got {:?}", RecordKind::choices(), r.kind),
        );
        RecordKind::Inventory
    });
    let mpath = mapping_path(cx.dir, &r.mapping);
    let mapping = if !mpath.exists() {
        let message = no_mapping(cx.dir, &r.mapping, &mpath);
        cx.at("inbound", i, "mapping", message);
        None
    } else {
        mappings.inbound(cx, &mpath).inspect(|m| {
            if m.record != kind {
                cx.at(
                    "inbound",
                    i,
                    "mapping",
                    format!(
                        "mapping {:?} reads {} records but this source is kind = {:?}",
                        r.mapping,
                        m.record.name(),
                        r.kind
                    ),
                );
            }
        })
    };
    let poll = match r.poll.as_deref() {
        None => Duration::from_secs(30),
        Some(p) => Duration::from_secs(parse_duration_secs(p).unwrap_or_else(|| {
            cx.at(
                "inbound",
                i,
                "poll",
                format!("must be like \"30s\", \"5m\" or \"1h\", got {p:?}"),
            );
            30
        })),
    };
    let transport = transport::transport_spec(cx, "inbound.transport", i, &r.transport, true);
    let sku_map = r
        .sku_map
        .as_ref()
        .map(|p| check_table(cx, "inbound", i, "sku_map", p, parse_sku_map));
    let ack_transport = r
        .ack_transport
        .as_ref()
        .map(|t| transport::transport_spec(cx, "inbound.ack_transport", i, t, false));
    if r.acknowledge {
        let is_x12 = mapping
            .as_ref()
            .is_some_and(|m| matches!(m.source, mapping::InSource::X12 { .. }));
        if !is_x12 {
            cx.at(
                "inbound",
                i,
                "acknowledge",
                "997 acknowledgments apply to X12 sources only",
            );
        }
        if ack_transport.is_none() {
            cx.at(
                "inbound",
                i,
                "acknowledge",
                "acknowledge = true needs an [inbound.ack_transport] to send 997s to",
            );
        }
    }
    Some(Inbound {
        id: r.id.clone(),
        merchant: r.merchant.clone(),
        kind,
        mapping: mapping?,
        warehouse: r.warehouse.clone(),
        poll,
        acknowledge: r.acknowledge,
        transport,
        ack_transport,
        cart: r.cart.clone(),
        sku_map,
    })
}

fn carts(cx: &mut Ctx, mappings: &mut MappingCache, raw: &Typed) -> Vec<Cart> {
    let mut carts = vec![];
    let mut ids = HashSet::new();
    let mut outboxes: Vec<(String, String)> = vec![];
    for (pos, (i, r)) in raw.cart.iter().enumerate() {
        let i = *i;
        check_new_id(cx, &mut ids, "cart", i, &r.id);
        let parts = cart_parts(cx, mappings, raw, i, r);
        let transport = transport::transport_spec(cx, "cart.transport", i, &r.transport, false);
        // Rule 19: two carts must never write the same file.
        let place = (transport.endpoint.location(), transport.file_name.clone());
        if let Some(other) = raw.cart[..pos]
            .iter()
            .zip(&outboxes)
            .find_map(|((_, o), seen)| {
                (seen == &place && !place.1.contains("{cart}")).then_some(o.id.clone())
            })
        {
            cx.at(
                "cart.transport",
                i,
                "file_name",
                format!(
                    "carts {other:?} and {:?} deliver to the same place with the same file_name {:?}: one would overwrite the other (put {{cart}} in file_name)",
                    r.id, transport.file_name
                ),
            );
        }
        outboxes.push(place);
        let (alloc, filters, sku_map) = cart_alloc(cx, i, r);
        if let Some((mapping, schedule, tz)) = parts {
            carts.push(Cart {
                id: r.id.clone(),
                merchant: r.merchant.clone(),
                mapping,
                schedule,
                schedule_text: r.schedule.clone(),
                tz,
                min_level: r.min_level.max(0),
                full_sync: r.full_sync,
                warehouses: r.warehouses.clone(),
                transport,
                alloc,
                filters,
                sku_map,
                kits: None,
                sync_on_orders: r.sync_on_orders,
                kind: FeedKind::Inventory,
            });
        }
    }
    carts
}

/// A cart's allocation keys (rule 20), filters (rule 23) and sku_map
/// (rule 22), each checked.
fn cart_alloc(
    cx: &mut Ctx,
    i: usize,
    r: &RawCart,
) -> (
    crate::ledger::Allocation,
    crate::ledger::Filters,
    Option<PathBuf>,
) {
    if !(0..=100).contains(&r.percent) {
        cx.at(
            "cart",
            i,
            "percent",
            format!("must be a whole number from 0 to 100, got {}", r.percent),
        );
    }
    for (key, v) in [("buffer", r.buffer), ("max_level", r.max_level)] {
        if v < 0 {
            cx.at("cart", i, key, format!("must be 0 or more, got {v}"));
        }
    }
    let filters = crate::ledger::Filters::new(&r.include, &r.exclude).unwrap_or_else(|bad| {
        for b in bad {
            cx.at("cart", i, b.key, b.to_string());
        }
        crate::ledger::Filters::default()
    });
    let sku_map = r
        .sku_map
        .as_ref()
        .map(|p| check_table(cx, "cart", i, "sku_map", p, parse_sku_map));
    let alloc = crate::ledger::Allocation {
        buffer: r.buffer.max(0),
        percent: r.percent.clamp(0, 100),
        max_level: r.max_level.max(0),
    };
    (alloc, filters, sku_map)
}

/// A `[[cart]]` entry's mapping, schedule and time zone, checked with its
/// merchant, format and `min_level`; `None` when the mapping or the schedule
/// is unusable (every problem recorded in `cx`).
fn cart_parts(
    cx: &mut Ctx,
    mappings: &mut MappingCache,
    raw: &Typed,
    i: usize,
    r: &RawCart,
) -> Option<(OutboundMapping, Schedule, Tz)> {
    if !raw.merchant_ids.contains(&r.merchant) {
        cx.at(
            "cart",
            i,
            "merchant",
            unknown_merchant(&r.merchant, &raw.merchant_ids),
        );
    }
    if !["csv", "xml", "x12-846"].contains(&r.format.as_str()) {
        cx.at(
            "cart",
            i,
            "format",
            format!(
                "must be \"csv\", \"xml\" or \"x12-846\", got {:?}",
                r.format
            ),
        );
    }
    let schedule = schedule::parse(&r.schedule)
        .map_err(|e| cx.at("cart", i, "schedule", e.to_string()))
        .ok();
    let tz = match r.timezone.as_deref() {
        None => Tz::UTC,
        Some(s) => s.parse().unwrap_or_else(|_| {
            cx.at(
                "cart",
                i,
                "timezone",
                format!(
                    "unknown time zone {s:?}{} (use an IANA name like \"Europe/Berlin\")",
                    crate::util::did_you_mean(s, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()))
                ),
            );
            Tz::UTC
        }),
    };
    if r.min_level < 0 {
        cx.at(
            "cart",
            i,
            "min_level",
            format!("must be 0 or more, got {}", r.min_level),
        );
    }
    let mpath = mapping_path(cx.dir, &r.mapping);
    let mapping = if !mpath.exists() {
        let message = no_mapping(cx.dir, &r.mapping, &mpath);
        cx.at("cart", i, "mapping", message);
        None
    } else {
        mappings.outbound(cx, &mpath).inspect(|m| {
            if m.format_name() != r.format {
                cx.at(
                    "cart",
                    i,
                    "format",
                    format!(
                        "cart says {:?} but mapping {:?} is {:?}",
                        r.format,
                        r.mapping,
                        m.format_name()
                    ),
                );
            }
        })
    };
    if let Some(m) = &mapping {
        check_location_ids(cx, i, r, m);
    }
    Some((mapping?, schedule?, tz))
}

/// One order feed or confirm feed, as the cart-like [`Cart`] every sync
/// path takes (`kind` says what it sends).
struct FeedEntry<'a> {
    table: &'static str,
    i: usize,
    id: &'a str,
    merchant: &'a str,
    format: &'a str,
    mapping: &'a str,
    schedule: &'a str,
    timezone: Option<&'a str>,
    transport: &'a RawTransport,
}

/// `[[order_feed]]` and `[[confirm_feed]]` entries, their ids unique
/// across carts and feeds.
fn doc_feeds(cx: &mut Ctx, raw: &Typed, carts: &[Cart], inbound: &[Inbound]) -> Vec<Cart> {
    let mut ids: HashSet<String> = raw.cart.iter().map(|(_, c)| c.id.clone()).collect();
    let mut out = vec![];
    for (i, r) in &raw.order_feed {
        let e = FeedEntry {
            table: "order_feed",
            i: *i,
            id: &r.id,
            merchant: &r.merchant,
            format: &r.format,
            mapping: &r.mapping,
            schedule: &r.schedule,
            timezone: r.timezone.as_deref(),
            transport: &r.transport,
        };
        let warehouse = r.warehouse.clone();
        if let Some(c) = doc_feed(
            cx,
            raw,
            &mut ids,
            &e,
            crate::docmap::DocKind::Orders,
            |doc| FeedKind::Orders { warehouse, doc },
        ) {
            out.push(c);
        }
    }
    for (i, r) in &raw.confirm_feed {
        let e = FeedEntry {
            table: "confirm_feed",
            i: *i,
            id: &r.id,
            merchant: &r.merchant,
            format: &r.format,
            mapping: &r.mapping,
            schedule: &r.schedule,
            timezone: r.timezone.as_deref(),
            transport: &r.transport,
        };
        for s in &r.orders_from {
            match inbound.iter().find(|x| &x.id == s) {
                Some(x) if x.kind == RecordKind::Orders && x.merchant == r.merchant => {}
                Some(_) => cx.at(
                    "confirm_feed",
                    *i,
                    "orders_from",
                    format!(
                        "{s:?} is not an order source (kind = \"orders\") of merchant {:?}",
                        r.merchant
                    ),
                ),
                None => cx.at(
                    "confirm_feed",
                    *i,
                    "orders_from",
                    format!("no [[inbound]] with id {s:?}"),
                ),
            }
        }
        let orders_from = r.orders_from.clone();
        if let Some(c) = doc_feed(
            cx,
            raw,
            &mut ids,
            &e,
            crate::docmap::DocKind::Confirms,
            |doc| FeedKind::Confirms { orders_from, doc },
        ) {
            out.push(c);
        }
    }
    let _ = carts;
    out
}

fn doc_feed(
    cx: &mut Ctx,
    raw: &Typed,
    ids: &mut HashSet<String>,
    e: &FeedEntry,
    kind: crate::docmap::DocKind,
    make: impl FnOnce(crate::docmap::DocMapping) -> FeedKind,
) -> Option<Cart> {
    let (t, i) = (e.table, e.i);
    check_id(cx, t, i, e.id);
    if !ids.insert(e.id.to_string()) {
        cx.at(
            t,
            i,
            "id",
            format!(
                "id {:?} is used twice (carts, order feeds and confirm feeds share ids)",
                e.id
            ),
        );
    }
    if !raw.merchant_ids.iter().any(|m| m == e.merchant) {
        cx.at(
            t,
            i,
            "merchant",
            unknown_merchant(e.merchant, &raw.merchant_ids),
        );
    }
    let schedule = schedule::parse(e.schedule)
        .map_err(|err| cx.at(t, i, "schedule", err.to_string()))
        .ok();
    let tz = match e.timezone {
        None => Tz::UTC,
        Some(s) => s.parse().unwrap_or_else(|_| {
            cx.at(t, i, "timezone", format!("unknown time zone {s:?}"));
            Tz::UTC
        }),
    };
    let transport = transport::transport_spec(cx, &format!("{t}.transport"), i, e.transport, false);
    let mpath = mapping_path(cx.dir, e.mapping);
    let doc = if !mpath.exists() {
        let message = no_mapping(cx.dir, e.mapping, &mpath);
        cx.at(t, i, "mapping", message);
        None
    } else {
        match crate::docmap::load(&mpath, kind) {
            Ok(d) => {
                if d.format_name() != e.format {
                    cx.at(
                        t,
                        i,
                        "format",
                        format!(
                            "{t} says {:?} but mapping {:?} is {:?}",
                            e.format,
                            e.mapping,
                            d.format_name()
                        ),
                    );
                }
                Some(d)
            }
            Err(ps) => {
                cx.problems.extend(ps);
                None
            }
        }
    };
    let (doc, schedule) = (doc?, schedule?);
    Some(Cart {
        id: e.id.to_string(),
        merchant: e.merchant.to_string(),
        mapping: OutboundMapping {
            name: doc.name.clone(),
            path: doc.path.clone(),
            format: mapping::OutFormat::Csv {
                delimiter: b',',
                header: true,
                columns: vec![],
                style: Default::default(),
            },
        },
        schedule,
        schedule_text: e.schedule.to_string(),
        tz,
        min_level: 0,
        full_sync: false,
        warehouses: vec![],
        transport,
        alloc: Default::default(),
        filters: Default::default(),
        sku_map: None,
        kits: None,
        sync_on_orders: false,
        kind: make(doc),
    })
}

/// A per-warehouse 846 names each counted warehouse by its location id: a
/// warehouse the cart counts without one would leave its SKUs out of the
/// feed (`missing location`) at every sync.
fn check_location_ids(cx: &mut Ctx, i: usize, r: &RawCart, m: &OutboundMapping) {
    let Some(pw) = m.per_warehouse() else { return };
    for w in &r.warehouses {
        if pw.location_id(w).is_none() {
            cx.at(
                "cart",
                i,
                "warehouses",
                format!(
                    "warehouse {w:?} has no location id in mapping {:?} (per_warehouse): add it to its [location_ids], e.g. {w} = \"DC01\"",
                    r.mapping
                ),
            );
        }
    }
}

/// `[ledger]`: its paths resolved against the config's folder, and `keep`.
struct LedgerSection {
    location: crate::ledger::LedgerLocation,
    scratch: PathBuf,
    archive: PathBuf,
    quarantine: PathBuf,
    keep: Option<Duration>,
    instance: String,
    lease: Duration,
}

/// The default lease (`[ledger] lease`).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// The shortest lease `check` accepts: renewed every third of it, a
/// shorter one would be lost to a slow disk or a busy database.
pub const MIN_LEASE: Duration = Duration::from_secs(3);

/// This machine's name and this process's id, `HOST:PID`: the default
/// `[ledger] instance`.
pub fn default_instance() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "localhost".into());
    format!("{}:{}", crate::util::bounded(&host, 80), std::process::id())
}

/// `[ledger] path`, `url` or `url_env` (exactly one): a SQLite file, or a
/// PostgreSQL URL given inline (a password in it is warned of, as an
/// inline transport password is) or read from the environment.
fn ledger_location(cx: &mut Ctx, raw: &RawLedger) -> crate::ledger::LedgerLocation {
    use crate::ledger::{LedgerLocation, PgUrl};
    let fallback = LedgerLocation::file(cx.resolve(Path::new("var/ledger.sqlite")));
    let given = [raw.path.is_some(), raw.url.is_some(), raw.url_env.is_some()]
        .iter()
        .filter(|g| **g)
        .count();
    if given != 1 {
        cx.at(
            "ledger",
            0,
            if given == 0 { "path" } else { "url" },
            if given == 0 {
                "is missing: give path = \"var/ledger.sqlite\" (SQLite), or url_env = \"STOCKGATE_DATABASE_URL\" (PostgreSQL)"
            } else {
                "give one of path, url and url_env, not several"
            },
        );
        return fallback;
    }
    let url = |cx: &mut Ctx, key: &str, u: &str| {
        let u = u.trim();
        if !(u.starts_with("postgres://") || u.starts_with("postgresql://") || u.contains('=')) {
            cx.at(
                "ledger",
                0,
                key,
                format!(
                    "must be a PostgreSQL URL like \"postgres://user@host:5432/db\", got {}",
                    crate::util::bounded(&crate::ledger::location::redact(u), 80)
                ),
            );
        }
        PgUrl::new(u)
    };
    if let Some(p) = &raw.path {
        return LedgerLocation::file(cx.resolve(p));
    }
    if let Some(u) = &raw.url {
        let u = url(cx, "url", u);
        if u.has_password() {
            cx.warn(
                "ledger",
                0,
                "url",
                "holds a password: prefer url_env = \"STOCKGATE_DATABASE_URL\" (the password stays out of the file)",
            );
        }
        return LedgerLocation::Postgres(u);
    }
    let var = raw.url_env.as_deref().unwrap_or_default();
    match std::env::var(var) {
        Ok(u) if !u.trim().is_empty() => LedgerLocation::Postgres(url(cx, "url_env", &u)),
        _ => {
            cx.at(
                "ledger",
                0,
                "url_env",
                format!(
                    "names the environment variable {}, which is not set",
                    crate::util::bounded(var, 80)
                ),
            );
            fallback
        }
    }
}

fn ledger_section(cx: &mut Ctx, raw: &RawLedger) -> LedgerSection {
    let or =
        |p: &Option<PathBuf>, default: &str| cx.resolve(p.as_deref().unwrap_or(Path::new(default)));
    let (archive, quarantine) = (
        or(&raw.archive, "var/archive"),
        or(&raw.quarantine, "var/quarantine"),
    );
    let location = ledger_location(cx, raw);
    let scratch = match (&raw.scratch, &location) {
        (Some(p), _) => cx.resolve(p),
        (None, crate::ledger::LedgerLocation::File(f)) => {
            crate::ledger::Ledger::scratch_root(f).to_path_buf()
        }
        (None, crate::ledger::LedgerLocation::Postgres(_)) => cx.resolve(Path::new("var")),
    };
    let keep = match raw.keep.as_deref().map(str::trim) {
        None => Some(Duration::from_secs(90 * 86400)),
        Some("forever") => None,
        Some(k) => parse_duration_secs(k).map(Duration::from_secs).or_else(|| {
            cx.at(
                "ledger",
                0,
                "keep",
                format!("must be like \"90d\", \"12h\" or \"forever\", got {k:?}"),
            );
            None
        }),
    };
    let instance = match &raw.instance {
        None => default_instance(),
        Some(n) => {
            let bad = if n.trim().is_empty() {
                Some("must not be empty".to_string())
            } else if n.chars().count() > 100 {
                Some(format!(
                    "must be at most 100 characters, got {}",
                    n.chars().count()
                ))
            } else if n.chars().any(|c| c.is_control()) {
                Some(format!(
                    "must be printable, got {}",
                    crate::util::bounded(n, 120)
                ))
            } else {
                None
            };
            if let Some(m) = bad {
                cx.at("ledger", 0, "instance", m);
            }
            n.clone()
        }
    };
    let lease = match raw.lease.as_deref() {
        None => DEFAULT_LEASE,
        Some(l) => match crate::util::parse_duration(l, false) {
            Some(d) if d >= MIN_LEASE => d,
            Some(_) => {
                cx.at(
                    "ledger",
                    0,
                    "lease",
                    format!(
                        "must be at least \"3s\", got {:?}",
                        crate::util::bounded(l, 40)
                    ),
                );
                DEFAULT_LEASE
            }
            None => {
                cx.at(
                    "ledger",
                    0,
                    "lease",
                    format!(
                        "must be like \"30s\" or \"1m\", got {:?}",
                        crate::util::bounded(l, 40)
                    ),
                );
                DEFAULT_LEASE
            }
        },
    };
    LedgerSection {
        location,
        scratch,
        archive,
        quarantine,
        keep,
        instance,
        lease,
    }
}

/// The config's entries that deserialized, each with its place (the nth
/// `[[cart]]`, ...), every key that did not reported on the way.
struct Typed {
    ledger: RawLedger,
    merchant: Vec<(usize, RawMerchant)>,
    /// Every merchant id written, broken entries included (no follow-on errors).
    merchant_ids: Vec<String>,
    inbound: Vec<(usize, RawInbound)>,
    cart: Vec<(usize, RawCart)>,
    order_feed: Vec<(usize, RawOrderFeed)>,
    confirm_feed: Vec<(usize, RawConfirmFeed)>,
    /// ("inbound" | "cart", nth, mapping name) of entries that did not deserialize.
    broken_mappings: Vec<(&'static str, usize, String)>,
}

/// Deserializes each section and each entry on its own: one bad key makes
/// one problem (file:line, key), never hides the rest.
fn typed(cx: &mut Ctx, mut table: toml::Table) -> Typed {
    fn report(cx: &mut Ctx, root: &str, nth: usize, errors: Vec<crate::util::KeyError>) {
        for e in errors {
            let (table, key) = match e.path.as_slice() {
                [] => (root.to_string(), String::new()),
                [k] => (root.to_string(), k.clone()),
                [sub, k, ..] if sub.parse::<usize>().is_err() && k.parse::<usize>().is_err() => {
                    (format!("{root}.{sub}"), k.clone())
                }
                [k, ..] => (root.to_string(), k.clone()),
            };
            cx.at(&table, nth, &key, e.message);
        }
    }
    let mut out = Typed {
        ledger: RawLedger {
            path: Some(PathBuf::from("var/ledger.sqlite")),
            url: None,
            url_env: None,
            scratch: None,
            archive: None,
            quarantine: None,
            keep: None,
            instance: None,
            lease: None,
        },
        merchant: vec![],
        merchant_ids: vec![],
        inbound: vec![],
        cart: vec![],
        order_feed: vec![],
        confirm_feed: vec![],
        broken_mappings: vec![],
    };
    match table.remove("ledger") {
        Some(toml::Value::Table(t)) => {
            let (v, errors) = crate::util::deserialize_all::<RawLedger>(t);
            report(cx, "ledger", 0, errors);
            if let Some(l) = v {
                out.ledger = l;
            }
        }
        Some(_) => cx.at(
            "",
            0,
            "ledger",
            "must be a table: [ledger] with path = \"var/ledger.sqlite\"",
        ),
        None => cx.problems.push(Problem {
            file: cx.path.to_path_buf(),
            line: None,
            key: "ledger".into(),
            message:
                "required table [ledger] is missing; add [ledger] with path = \"var/ledger.sqlite\""
                    .into(),
        }),
    }
    let mut items = |name: &str| -> Vec<(usize, toml::Table)> {
        match table.remove(name) {
            None => vec![],
            Some(toml::Value::Array(a)) => a
                .into_iter()
                .enumerate()
                .filter_map(|(i, v)| match v {
                    toml::Value::Table(t) => Some((i, t)),
                    _ => None,
                })
                .collect(),
            Some(_) => {
                cx.at("", 0, name, format!("must be a list of tables: [[{name}]]"));
                vec![]
            }
        }
    };
    let (merchants, inbound, carts) = (items("merchant"), items("inbound"), items("cart"));
    let (order_feeds, confirm_feeds) = (items("order_feed"), items("confirm_feed"));
    for (i, t) in merchants {
        if let Some(toml::Value::String(id)) = t.get("id") {
            out.merchant_ids.push(id.clone());
        }
        let (v, errors) = crate::util::deserialize_all::<RawMerchant>(t);
        report(cx, "merchant", i, errors);
        out.merchant.extend(v.map(|v| (i, v)));
    }
    for (i, t) in inbound {
        let name = t.get("mapping").and_then(|v| v.as_str()).map(String::from);
        let (v, errors) = crate::util::deserialize_all::<RawInbound>(t);
        report(cx, "inbound", i, errors);
        match v {
            Some(v) => out.inbound.push((i, v)),
            None => out.broken_mappings.extend(name.map(|n| ("inbound", i, n))),
        }
    }
    for (i, t) in carts {
        let name = t.get("mapping").and_then(|v| v.as_str()).map(String::from);
        let (v, errors) = crate::util::deserialize_all::<RawCart>(t);
        report(cx, "cart", i, errors);
        match v {
            Some(v) => out.cart.push((i, v)),
            None => out.broken_mappings.extend(name.map(|n| ("cart", i, n))),
        }
    }
    for (i, t) in order_feeds {
        let (v, errors) = crate::util::deserialize_all::<RawOrderFeed>(t);
        report(cx, "order_feed", i, errors);
        out.order_feed.extend(v.map(|v| (i, v)));
    }
    for (i, t) in confirm_feeds {
        let (v, errors) = crate::util::deserialize_all::<RawConfirmFeed>(t);
        report(cx, "confirm_feed", i, errors);
        out.confirm_feed.extend(v.map(|v| (i, v)));
    }
    out
}

/// Mappings loaded once each, their problems reported once, however many
/// sources or carts share them.
#[derive(Default)]
struct MappingCache {
    inbound: std::collections::HashMap<PathBuf, Option<InboundMapping>>,
    outbound: std::collections::HashMap<PathBuf, Option<OutboundMapping>>,
}

impl MappingCache {
    fn inbound(&mut self, cx: &mut Ctx, p: &Path) -> Option<InboundMapping> {
        self.inbound
            .entry(p.to_path_buf())
            .or_insert_with(|| match mapping::load_inbound(p) {
                Ok(m) => {
                    cx.warnings.extend(m.warnings.iter().cloned());
                    Some(m)
                }
                Err(ps) => {
                    cx.problems.extend(ps);
                    None
                }
            })
            .clone()
    }
    fn outbound(&mut self, cx: &mut Ctx, p: &Path) -> Option<OutboundMapping> {
        self.outbound
            .entry(p.to_path_buf())
            .or_insert_with(|| match mapping::load_outbound(p) {
                Ok(m) => Some(m),
                Err(ps) => {
                    cx.problems.extend(ps);
                    None
                }
            })
            .clone()
    }
}

/// `mapping = "acme-wms"` is mappings/acme-wms.toml beside the config;
/// `mapping = "mappings/acme-wms.toml"` (anything with a `/` or ending in
/// `.toml`) is a path relative to the config's folder.
pub fn mapping_path(dir: &Path, name: &str) -> PathBuf {
    if name.ends_with(".toml") || name.contains('/') || name.contains('\\') {
        dir.join(name)
    } else {
        dir.join("mappings").join(format!("{name}.toml"))
    }
}

fn no_mapping(dir: &Path, name: &str, mpath: &Path) -> String {
    let names: Vec<String> = std::fs::read_dir(dir.join("mappings"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_suffix(".toml").map(String::from)
        })
        .collect();
    let stem = Path::new(name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        "no mapping file {}{} (a name like \"acme-wms\" means mappings/acme-wms.toml; a path is relative to the config's folder)",
        mpath.display(),
        crate::util::did_you_mean(&stem, names.iter().map(String::as_str))
    )
}

fn unknown_merchant(m: &str, known: &[String]) -> String {
    format!(
        "unknown merchant {m:?}{} (merchants: {}; declare others in a [[merchant]])",
        crate::util::did_you_mean(m, known.iter().map(String::as_str)),
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )
}

/// Ids become folder names (archive/<id>/) and appear in file names.
fn check_id(cx: &mut Ctx, table: &str, i: usize, id: &str) {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || id.starts_with('.')
    {
        cx.at(
            table,
            i,
            "id",
            format!("{id:?} must be letters, digits, '-', '_' or '.' (it names folders)"),
        );
    }
}

fn check_template(cx: &mut Ctx, table: &str, i: usize, tpl: &str) {
    let mut rest = tpl;
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else {
            cx.at(table, i, "file_name", format!("unclosed '{{' in {tpl:?}"));
            return;
        };
        let name = &rest[start + 1..start + end];
        if !["cart", "merchant", "timestamp", "seq", "ext"].contains(&name) {
            cx.at(table, i, "file_name", format!("unknown placeholder {{{name}}}; use {{cart}} {{merchant}} {{timestamp}} {{seq}} {{ext}}"));
        }
        rest = &rest[start + end + 1..];
    }
    if tpl.contains('/') || tpl.contains('\\') || tpl.starts_with('.') {
        cx.at(
            table,
            i,
            "file_name",
            format!("{tpl:?} must be a plain file name (no folders, not hidden)"),
        );
    }
}

/// Removes keys no config struct knows, returning one problem per key.
fn strip_unknown(path: &Path, src: &str, table: &mut toml::Table) -> Vec<Problem> {
    let mut out = vec![];
    let mut strip = |t: &mut toml::Table, header: &str, nth: usize, known: &[&str]| {
        t.retain(|k, _| {
            if known.contains(&k) {
                return true;
            }
            let root = header.split('.').next().unwrap_or("");
            let shown = match header {
                "" => k.to_string(),
                "ledger" => format!("ledger.{k}"),
                _ => format!(
                    "{root}[{nth}]{}.{k}",
                    header.strip_prefix(root).unwrap_or("")
                ),
            };
            out.push(Problem {
                file: path.to_path_buf(),
                line: line_of(src, header, nth, k),
                key: shown,
                message: format!(
                    "unknown key{}; known keys here: {}",
                    crate::util::did_you_mean(k, known.iter().copied()),
                    known.join(", ")
                ),
            });
            false
        })
    };
    strip(table, "", 0, struct_fields::<RawConfig>());
    if let Some(toml::Value::Table(t)) = table.get_mut("ledger") {
        strip(t, "ledger", 0, struct_fields::<RawLedger>());
    }
    for (name, known) in [
        ("merchant", struct_fields::<RawMerchant>()),
        ("inbound", struct_fields::<RawInbound>()),
        ("cart", struct_fields::<RawCart>()),
        ("order_feed", struct_fields::<RawOrderFeed>()),
        ("confirm_feed", struct_fields::<RawConfirmFeed>()),
    ] {
        let Some(toml::Value::Array(items)) = table.get_mut(name) else {
            continue;
        };
        for (i, item) in items.iter_mut().enumerate() {
            let toml::Value::Table(t) = item else {
                continue;
            };
            strip(t, name, i, known);
            for sub in ["transport", "ack_transport"] {
                if let Some(toml::Value::Table(tt)) = t.get_mut(sub) {
                    strip(
                        tt,
                        &format!("{name}.{sub}"),
                        i,
                        struct_fields::<RawTransport>(),
                    );
                }
            }
        }
    }
    out.sort_by_key(|p| p.line);
    out
}

/// Whether a config key holds a secret: `password`, anything ending in
/// `password` or `passphrase`.
fn is_secret_key(k: &str) -> bool {
    let k = k.trim().trim_matches('"').to_ascii_lowercase();
    k.ends_with("password") || k.ends_with("passphrase")
}

/// A TOML error message with no secret in it: the value of a secret key is
/// never quoted (a wrongly typed `password = 12345678` included). When the
/// error's `line` sets a secret key, the message names the key only.
fn redact_secrets(src: &str, line: Option<usize>, message: &str) -> String {
    if let Some(l) = line
        && let Some(text) = src.lines().nth(l.saturating_sub(1))
        && let Some((k, _)) = text.split_once('=')
        && is_secret_key(k)
    {
        let k = k.trim().trim_matches('"');
        let expected = message
            .split_once("expected")
            .map(|(_, e)| format!(": expected{e}"))
            .unwrap_or_default();
        return format!("key `{k}` has an invalid value (value not shown){expected}");
    }
    let mut secrets = vec![];
    fn walk(v: &toml::Value, key: Option<&str>, out: &mut Vec<String>) {
        match v {
            toml::Value::Table(t) => t.iter().for_each(|(k, v)| walk(v, Some(k), out)),
            toml::Value::Array(a) => a.iter().for_each(|v| walk(v, key, out)),
            toml::Value::String(s) if key.is_some_and(is_secret_key) => out.push(s.clone()),
            other if key.is_some_and(is_secret_key) => out.push(other.to_string()),
            _ => {}
        }
    }
    if let Ok(t) = src.parse::<toml::Table>() {
        walk(&toml::Value::Table(t), None, &mut secrets);
    }
    let mut m = message.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        m = m.replace(s.as_str(), "(value not shown)");
    }
    m
}
