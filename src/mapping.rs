//! Mapping files (`mappings/NAME.toml`): how an inbound file's columns map to
//! ledger fields, and how a cart's feed is laid out. Parsed, then validated;
//! every problem is collected with its file, line and key.

use crate::util::{Millis, Problem, line_at, line_of};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// How X12 times (DTM, BIA, BEG) reach the shared time parser, read in the
/// mapping's time zone.
pub const X12_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";
/// How an X12 date without a time (BEG05 alone, say) reaches the parser.
pub const X12_DATE_FORMAT: &str = "%Y-%m-%d";

/// Ledger fields an inbound record can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Sku,
    Quantity,
    Warehouse,
    Lot,
    AsOf,
    Upc,
    Description,
    OrderId,
    Line,
    OrderedAt,
    Status,
    /// Unit of measure of the quantity (rule 17).
    Unit,
    /// Product price (inventory): a decimal kept as validated text.
    Price,
    // An order's own fields (CONTRACT §6), the same on each of its rows.
    ShipToName,
    ShipToCompany,
    ShipToAddress1,
    ShipToAddress2,
    ShipToCity,
    ShipToState,
    ShipToPostalCode,
    ShipToCountry,
    ShipToPhone,
    ShipToEmail,
    ShipMethod,
    PoNumber,
    // A shipment's (record = "shipments").
    ShipmentId,
    Package,
    Tracking,
    Carrier,
    Service,
    ShippedAt,
}

/// The ship-to fields in `ledger::orders::SHIP_TO_FIELDS` order.
pub const SHIP_TO: [Field; 10] = [
    Field::ShipToName,
    Field::ShipToCompany,
    Field::ShipToAddress1,
    Field::ShipToAddress2,
    Field::ShipToCity,
    Field::ShipToState,
    Field::ShipToPostalCode,
    Field::ShipToCountry,
    Field::ShipToPhone,
    Field::ShipToEmail,
];

impl Field {
    pub const ALL: [Field; 31] = [
        Field::Sku,
        Field::Quantity,
        Field::Warehouse,
        Field::Lot,
        Field::AsOf,
        Field::Upc,
        Field::Description,
        Field::OrderId,
        Field::Line,
        Field::OrderedAt,
        Field::Status,
        Field::Unit,
        Field::Price,
        Field::ShipToName,
        Field::ShipToCompany,
        Field::ShipToAddress1,
        Field::ShipToAddress2,
        Field::ShipToCity,
        Field::ShipToState,
        Field::ShipToPostalCode,
        Field::ShipToCountry,
        Field::ShipToPhone,
        Field::ShipToEmail,
        Field::ShipMethod,
        Field::PoNumber,
        Field::ShipmentId,
        Field::Package,
        Field::Tracking,
        Field::Carrier,
        Field::Service,
        Field::ShippedAt,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Field::Sku => "sku",
            Field::Quantity => "quantity",
            Field::Warehouse => "warehouse",
            Field::Lot => "lot",
            Field::AsOf => "as_of",
            Field::Upc => "upc",
            Field::Description => "description",
            Field::OrderId => "order_id",
            Field::Line => "line",
            Field::OrderedAt => "ordered_at",
            Field::Status => "status",
            Field::Unit => "unit",
            Field::Price => "price",
            Field::ShipToName => "ship_to_name",
            Field::ShipToCompany => "ship_to_company",
            Field::ShipToAddress1 => "ship_to_address1",
            Field::ShipToAddress2 => "ship_to_address2",
            Field::ShipToCity => "ship_to_city",
            Field::ShipToState => "ship_to_state",
            Field::ShipToPostalCode => "ship_to_postal_code",
            Field::ShipToCountry => "ship_to_country",
            Field::ShipToPhone => "ship_to_phone",
            Field::ShipToEmail => "ship_to_email",
            Field::ShipMethod => "ship_method",
            Field::PoNumber => "po_number",
            Field::ShipmentId => "shipment_id",
            Field::Package => "package",
            Field::Tracking => "tracking",
            Field::Carrier => "carrier",
            Field::Service => "service",
            Field::ShippedAt => "shipped_at",
        }
    }
    pub fn from_name(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == s)
    }
    fn allowed(self, record: RecordKind) -> bool {
        record.spec().fields.contains(&self)
    }
}

/// What an inbound file holds. Each kind's fields, and which of them a
/// mapping must name, sit in one table ([`KINDS`]); the ledger transaction
/// that applies a kind is `pickup`'s `stage_*` of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Inventory,
    Orders,
    /// The merchant's catalog: UPC, description, price per SKU; no stock.
    Products,
    /// A warehouse's shipment confirmations (CONTRACT §6, rules 27–28).
    Shipments,
}

struct KindSpec {
    kind: RecordKind,
    name: &'static str,
    fields: &'static [Field],
    required: &'static [Field],
}

const KINDS: [KindSpec; 4] = [
    KindSpec {
        kind: RecordKind::Inventory,
        name: "inventory",
        fields: &[
            Field::Sku,
            Field::Quantity,
            Field::Warehouse,
            Field::Lot,
            Field::AsOf,
            Field::Upc,
            Field::Description,
            Field::Unit,
            Field::Price,
        ],
        required: &[Field::Sku, Field::Quantity],
    },
    KindSpec {
        kind: RecordKind::Orders,
        name: "orders",
        fields: &[
            Field::OrderId,
            Field::Sku,
            Field::Quantity,
            Field::Line,
            Field::OrderedAt,
            Field::Status,
            Field::Warehouse,
            Field::Unit,
            Field::ShipToName,
            Field::ShipToCompany,
            Field::ShipToAddress1,
            Field::ShipToAddress2,
            Field::ShipToCity,
            Field::ShipToState,
            Field::ShipToPostalCode,
            Field::ShipToCountry,
            Field::ShipToPhone,
            Field::ShipToEmail,
            Field::ShipMethod,
            Field::PoNumber,
        ],
        required: &[Field::OrderId, Field::Sku, Field::Quantity],
    },
    KindSpec {
        kind: RecordKind::Shipments,
        name: "shipments",
        fields: &[
            Field::OrderId,
            Field::Sku,
            Field::Quantity,
            Field::Line,
            Field::ShipmentId,
            Field::Package,
            Field::Tracking,
            Field::Carrier,
            Field::Service,
            Field::ShippedAt,
            Field::Status,
            Field::Unit,
            Field::PoNumber,
        ],
        required: &[Field::OrderId, Field::Sku, Field::Quantity],
    },
    KindSpec {
        kind: RecordKind::Products,
        name: "products",
        fields: &[Field::Sku, Field::Upc, Field::Description, Field::Price],
        required: &[Field::Sku],
    },
];

impl RecordKind {
    fn spec(self) -> &'static KindSpec {
        KINDS
            .iter()
            .find(|k| k.kind == self)
            .expect("every kind is in KINDS")
    }
    pub fn name(self) -> &'static str {
        self.spec().name
    }
    pub fn from_name(s: &str) -> Option<RecordKind> {
        KINDS.iter().find(|k| k.name == s).map(|k| k.kind)
    }
    /// `"inventory", "orders" or "products"`, for messages.
    pub fn choices() -> String {
        let names: Vec<String> = KINDS.iter().map(|k| format!("{:?}", k.name)).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        }
    }
    fn required(self) -> &'static [Field] {
        self.spec().required
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Snapshot {
    Partial,
    Full,
}

/// How many of a warehouse's SKUs a full snapshot may zero before it is held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxZeroed {
    Percent(f64),
    Count(u64),
}

impl MaxZeroed {
    pub fn exceeded(self, zeroed: u64, total: u64) -> bool {
        match self {
            MaxZeroed::Percent(p) => total > 0 && (zeroed as f64) * 100.0 > p * (total as f64),
            MaxZeroed::Count(n) => zeroed > n,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AsOfFrom {
    Column,
    FileMtime,
    PickupTime,
}

/// How to read a time column: RFC 3339 always, else a chrono format in a zone.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeSpec {
    pub format: Option<String>,
    pub tz: Tz,
}

impl TimeSpec {
    pub fn parse(&self, s: &str) -> Result<Millis, String> {
        self.parse_dated(s).map(|(t, _)| t)
    }

    /// The time, and the date when the text held a date alone (rule 16):
    /// the time is then the start of that day in the mapping's zone.
    pub fn parse_dated(&self, s: &str) -> Result<(Millis, Option<NaiveDate>), String> {
        let s = s.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok((t.timestamp_millis(), None));
        }
        let Some(fmt) = &self.format else {
            return Err("not an RFC 3339 time (set [as_of] format in the mapping)".into());
        };
        // A time that carries its own offset (`%z`, `%:z`) keeps it; the
        // zone applies only to times without one (issue 15: Shopify's
        // `2026-12-01 21:30:00 -0500` was read in the zone, hours off).
        if fmt.contains('z')
            && let Ok(t) = DateTime::parse_from_str(s, fmt)
        {
            return Ok((t.timestamp_millis(), None));
        }
        let (naive, date) = match NaiveDateTime::parse_from_str(s, fmt) {
            Ok(t) => (t, None),
            Err(e) => {
                let date = NaiveDate::parse_from_str(s, fmt)
                    .ok()
                    // X12 dates without a time reach the parser as a date alone.
                    .or_else(|| {
                        (fmt == X12_TIME_FORMAT)
                            .then(|| NaiveDate::parse_from_str(s, X12_DATE_FORMAT).ok())
                            .flatten()
                    })
                    .ok_or_else(|| time_error(fmt, e))?;
                (date.and_time(Default::default()), Some(date))
            }
        };
        let t = self
            .tz
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.timestamp_millis())
            .ok_or_else(|| format!("{s} does not exist in {}", self.tz))?;
        Ok((t, date))
    }

    /// An order time (rule 16): a date alone is the end of that day in the
    /// mapping's zone, but no later than `received`, the moment the file came in.
    pub fn parse_order(&self, s: &str, received: Millis) -> Result<Millis, String> {
        let (t, date) = self.parse_dated(s)?;
        let Some(d) = date else { return Ok(t) };
        let next = d
            .succ_opt()
            .and_then(|n| {
                self.tz
                    .from_local_datetime(&n.and_time(Default::default()))
                    .earliest()
            })
            .map(|t| t.timestamp_millis() - 1)
            .unwrap_or(t);
        Ok(next.min(received))
    }
}

/// Why a value is not a time in `fmt`, in words, with the format expected
/// (chrono's own text, "input is out of range", says neither); the row's
/// error shows the value.
fn time_error(fmt: &str, e: chrono::ParseError) -> String {
    use chrono::format::ParseErrorKind as K;
    let why = match e.kind() {
        K::OutOfRange => "a month, day, hour or minute is out of its range",
        K::Impossible => "its parts contradict each other",
        K::NotEnough => "it lacks part of a date or time",
        K::TooShort => "it ends early",
        K::TooLong => "it has more after the time",
        _ => "it does not match",
    };
    format!("not a time in format {fmt:?} ({why}; RFC 3339 is also accepted)")
}

#[derive(Debug, Clone, PartialEq)]
pub enum ColumnRef {
    Name(String),
    Number(usize),
}

impl std::fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ColumnRef::Name(n) => write!(f, "{n}"),
            ColumnRef::Number(n) => write!(f, "column {n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum InSource {
    Csv {
        delimiter: u8,
        header: bool,
        columns: Vec<(Field, ColumnRef)>,
    },
    Xml {
        item: String,
        fields: Vec<(Field, String)>,
    },
    X12 {
        /// LIN/PO1 qualifiers that may hold the SKU; the first present wins.
        sku_qualifiers: Vec<String>,
        quantity_qualifier: String,
        /// DTM01 codes whose date is the 846's as-of ([`DEFAULT_AS_OF_QUALIFIERS`]).
        as_of_qualifiers: Vec<String>,
        /// Opt-in (`[locations]`): an 846 location id (header N1 N104 with
        /// N101 WH/SF/SN/ST, or an SDQ location) -> warehouse.
        locations: Vec<(String, String)>,
        /// Opt-in (`price_qualifier`): the LIN loop's CTP whose CTP02 is
        /// this code gives the product's price (CTP03).
        price_qualifier: Option<String>,
    },
}

/// DTM01 codes that date an 846's count (the mapping's `as_of_qualifiers`
/// changes the list): 007 effective, 009 processed, 097 transaction
/// creation, 194 period end. Others (036 expiration, 002 delivery
/// requested, ...) never set the as-of.
pub const DEFAULT_AS_OF_QUALIFIERS: [&str; 4] = ["007", "009", "097", "194"];

#[derive(Debug, Clone, PartialEq)]
pub struct InboundMapping {
    pub name: String,
    pub path: PathBuf,
    pub record: RecordKind,
    pub snapshot: Snapshot,
    pub max_zeroed: MaxZeroed,
    pub as_of_from: AsOfFrom,
    /// Rule 15: a count dated more than this after the moment it is
    /// applied is rejected (`max_future`, default "1h"), in milliseconds.
    pub max_future_ms: i64,
    pub time: TimeSpec,
    pub cancelled: Vec<String>,
    pub source: InSource,
    /// Inbound CSV: the file's character encoding (`encoding`, default UTF-8).
    pub encoding: &'static encoding_rs::Encoding,
    /// Rule 17: the base unit quantities are kept in (`unit`, default "EA").
    pub unit: String,
    /// Rule 17: other units and how many base units each holds (`[units]`).
    pub units: Vec<(String, i64)>,
    /// What `check` says about the mapping without refusing it.
    pub warnings: Vec<Problem>,
}

impl InboundMapping {
    /// Base units in one `unit` ("" or the base unit: 1), or the row's error.
    pub fn unit_factor(&self, unit: &str) -> Result<i64, String> {
        let u = unit.trim();
        if u.is_empty() || u.eq_ignore_ascii_case(&self.unit) {
            return Ok(1);
        }
        self.units
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(u))
            .map(|(_, n)| *n)
            .ok_or_else(|| {
                format!(
                    "unit {} has no entry in the mapping's [units] table (base unit {})",
                    crate::util::quoted(u),
                    self.unit
                )
            })
    }
}

impl InboundMapping {
    pub fn has(&self, f: Field) -> bool {
        match &self.source {
            InSource::Csv { columns, .. } => columns.iter().any(|(g, _)| *g == f),
            InSource::Xml { fields, .. } => fields.iter().any(|(g, _)| *g == f),
            InSource::X12 { locations, .. } if f == Field::Warehouse => !locations.is_empty(),
            InSource::X12 {
                price_qualifier, ..
            } if f == Field::Price => price_qualifier.is_some(),
            // An 850's N1*ST loop, TD5 and BEG03; a 945's or 856's
            // shipment fields.
            InSource::X12 { .. }
                if self.record != RecordKind::Inventory
                    && f as usize >= Field::ShipToName as usize =>
            {
                self.record.spec().fields.contains(&f)
            }
            InSource::X12 { .. } => {
                matches!(
                    f,
                    Field::Status if self.record == RecordKind::Shipments
                ) || matches!(
                    f,
                    Field::Sku
                        | Field::Quantity
                        | Field::Unit
                        | Field::AsOf
                        | Field::OrderId
                        | Field::Line
                        | Field::OrderedAt
                )
            }
        }
    }
}

/// Fields a feed can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutField {
    Sku,
    Quantity,
    Upc,
    Description,
    Merchant,
    AsOf,
    /// The product's price (inbound `price`, kept as validated decimal text).
    Price,
}

impl OutField {
    pub fn name(self) -> &'static str {
        match self {
            OutField::Sku => "sku",
            OutField::Quantity => "quantity",
            OutField::Upc => "upc",
            OutField::Description => "description",
            OutField::Merchant => "merchant",
            OutField::AsOf => "as_of",
            OutField::Price => "price",
        }
    }
    pub fn from_name(s: &str) -> Option<OutField> {
        [
            OutField::Sku,
            OutField::Quantity,
            OutField::Upc,
            OutField::Description,
            OutField::Merchant,
            OutField::AsOf,
            OutField::Price,
        ]
        .into_iter()
        .find(|f| f.name() == s)
    }
    /// Fields a product may lack; an item lacking a required one is left out.
    pub fn optional_in_ledger(self) -> bool {
        matches!(
            self,
            OutField::Upc | OutField::Description | OutField::AsOf | OutField::Price
        )
    }
}

/// One column/element of a CSV or XML feed.
#[derive(Debug, Clone, PartialEq)]
pub struct OutColumn {
    pub name: String,
    pub field: OutField,
    /// `optional = true`: an empty value is written instead of leaving the item out.
    pub optional: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct X12Profile {
    pub version: String,
    pub sender_qualifier: String,
    pub sender_id: String,
    pub receiver_qualifier: String,
    pub receiver_id: String,
    pub usage: char,
    pub element_separator: char,
    pub segment_terminator: char,
    pub component_separator: char,
    pub bia_purpose: String,
    pub bia_report_type: String,
    pub item_ids: Vec<(String, OutField)>,
    pub quantity_qualifier: String,
    pub unit: String,
    pub line_break: bool,
    /// (addition) optional segments retailers' guides ask for.
    pub extras: Extras846,
}

/// Optional 846 content (each a mapping key of the same name); all off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extras846 {
    /// BIA03 (reference id, 1 to 30 characters); default: our ISA13 as a number.
    pub bia_reference: Option<String>,
    /// `DTM*<this>*CCYYMMDD*HHMM` after the BIA with the time the numbers
    /// were computed (e.g. "405" or "007").
    pub as_of_dtm: Option<String>,
    /// Header `N1*<N101>*<N102>*<N103>*<N104>` (e.g. SF ship-from, 92 id).
    pub ship_from: Option<[String; 4]>,
    /// `PID*F****<description>` after each LIN whose product has one.
    pub pid_description: bool,
    /// More `QTY*<qualifier>*<quantity>*<unit>` after the first, same value
    /// (e.g. "17" quantity available as well as "33").
    pub extra_quantity_qualifiers: Vec<String>,
    /// CTT02: the sum of the QTY02 values of the set (a hash total).
    pub hash_total: bool,
    /// More `QTY*<qualifier>*<value>*<unit>` segments, each carrying its
    /// own measure of the ledger (`extra_quantities`).
    pub extra_quantities: Vec<(String, Measure)>,
    /// `CTP*<class of trade>*<price identifier>*<price>` in each LIN loop
    /// (`price_class_of_trade`, `price_qualifier`); items without a price
    /// are left out (`missing price`).
    pub price: Option<(String, String)>,
    /// One number per warehouse instead of one per SKU (`per_warehouse`).
    pub per_warehouse: Option<PerWarehouse>,
    /// Fixed `REF*<REF01>*<REF02>[*<REF03>]` segments after the BIA/DTM
    /// (`header_refs`, e.g. a vendor number a retailer's guide requires).
    pub header_refs: Vec<[String; 3]>,
    /// Fixed REF segments in every LIN loop, after the CTP (`item_refs`).
    pub item_refs: Vec<[String; 3]>,
}

/// A number of the ledger an 846 QTY can carry (`extra_quantities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// The value sent (rules 2, 4, 5): what the main QTY carries.
    Available,
    /// Counted stock before orders: the sum of the latest counts of the
    /// counted warehouses (negative sums sent as 0).
    OnHand,
    /// The open order lines that draw on that stock (rule 2).
    Committed,
}

impl Measure {
    pub const ALL: [Measure; 3] = [Measure::Available, Measure::OnHand, Measure::Committed];
    pub fn name(self) -> &'static str {
        match self {
            Measure::Available => "available",
            Measure::OnHand => "on_hand",
            Measure::Committed => "committed",
        }
    }
}

/// How a per-warehouse 846 names each warehouse's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerWarehouseMode {
    /// One LIN per SKU; an SDQ lists (location id, quantity) pairs.
    Sdq,
    /// One LIN loop per (SKU, warehouse), an N1 in the loop naming it.
    N1,
}

/// `per_warehouse` and its `[location_ids]` (warehouse -> location id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerWarehouse {
    pub mode: PerWarehouseMode,
    /// (warehouse, location id), in warehouse name order.
    pub location_ids: Vec<(String, String)>,
    /// N103 / SDQ02: the id's qualifier (default "92", assigned by buyer).
    pub qualifier: String,
    /// N101 in `n1` mode (default "WH", warehouse).
    pub entity: String,
}

impl PerWarehouse {
    /// The retailer's location id of `warehouse` (`[location_ids]`).
    pub fn location_id(&self, warehouse: &str) -> Option<&str> {
        self.location_ids
            .iter()
            .find(|(w, _)| w == warehouse)
            .map(|(_, id)| id.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutFormat {
    Csv {
        delimiter: u8,
        header: bool,
        columns: Vec<OutColumn>,
        style: CsvStyle,
    },
    Xml {
        root: String,
        item: String,
        fields: Vec<OutColumn>,
    },
    X12_846(Box<X12Profile>),
}

/// How an outbound CSV is written beyond its columns (issue 16: what carts
/// such as CartRover's CSV ones offer).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CsvStyle {
    /// `line_ending = "crlf"` (default `"lf"`).
    pub crlf: bool,
    /// `quote = "always"`: every field quoted (default `"necessary"`).
    pub quote_always: bool,
    /// `[as_of] format` and `timezone`: the as_of field's text (default
    /// RFC 3339 in UTC; a zone alone gives RFC 3339 in that zone).
    pub as_of: Option<(Option<String>, Tz)>,
}

impl CsvStyle {
    /// The as_of field's text for a time.
    pub fn as_of_text(&self, t: Millis) -> String {
        match &self.as_of {
            None => crate::util::rfc3339(t),
            Some((fmt, tz)) => {
                let t = crate::util::to_datetime(t).with_timezone(tz);
                match fmt {
                    Some(f) => t.format(f).to_string(),
                    None => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMapping {
    pub name: String,
    pub path: PathBuf,
    pub format: OutFormat,
}

impl OutboundMapping {
    /// The per-warehouse settings of an 846 that sends one number per
    /// warehouse (`per_warehouse`); `None` for any other feed.
    pub fn per_warehouse(&self) -> Option<&PerWarehouse> {
        match &self.format {
            OutFormat::X12_846(p) => p.extras.per_warehouse.as_ref(),
            _ => None,
        }
    }

    /// The product fields an item must have to appear in this feed.
    pub fn required_fields(&self) -> Vec<OutField> {
        let mut v: Vec<OutField> = match &self.format {
            OutFormat::Csv { columns, .. }
            | OutFormat::Xml {
                fields: columns, ..
            } => columns
                .iter()
                .filter(|c| !c.optional)
                .map(|c| c.field)
                .collect(),
            OutFormat::X12_846(p) => p
                .item_ids
                .iter()
                .map(|(_, f)| *f)
                .chain(p.extras.price.as_ref().map(|_| OutField::Price))
                .collect(),
        };
        v.retain(|f| f.optional_in_ledger());
        v.dedup();
        v
    }
    pub fn format_name(&self) -> &'static str {
        match self.format {
            OutFormat::Csv { .. } => "csv",
            OutFormat::Xml { .. } => "xml",
            OutFormat::X12_846(_) => "x12-846",
        }
    }
}

/// Every key any mapping may have; which apply is checked after parsing.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    format: Option<String>,
    record: Option<String>,
    delimiter: Option<String>,
    header: Option<bool>,
    snapshot: Option<String>,
    max_zeroed: Option<toml::Value>,
    max_future: Option<String>,
    as_of_from: Option<String>,
    columns: Option<toml::Value>,
    as_of: Option<RawTime>,
    cancelled: Option<Vec<String>>,
    item: Option<String>,
    root: Option<String>,
    fields: Option<toml::Value>,
    sku_qualifier: Option<toml::Value>,
    quantity_qualifier: Option<String>,
    as_of_qualifiers: Option<Vec<String>>,
    units: Option<toml::Table>,
    locations: Option<toml::Table>,
    version: Option<String>,
    sender_qualifier: Option<String>,
    sender_id: Option<String>,
    receiver_qualifier: Option<String>,
    receiver_id: Option<String>,
    usage: Option<String>,
    element_separator: Option<String>,
    segment_terminator: Option<String>,
    component_separator: Option<String>,
    bia_purpose: Option<String>,
    bia_report_type: Option<String>,
    item_ids: Option<Vec<Vec<String>>>,
    unit: Option<String>,
    line_break: Option<bool>,
    encoding: Option<String>,
    bia_reference: Option<String>,
    as_of_dtm: Option<String>,
    ship_from: Option<Vec<String>>,
    pid_description: Option<bool>,
    extra_quantity_qualifiers: Option<Vec<String>>,
    hash_total: Option<bool>,
    per_warehouse: Option<String>,
    location_ids: Option<toml::Table>,
    location_qualifier: Option<String>,
    location_entity: Option<String>,
    price_qualifier: Option<String>,
    price_class_of_trade: Option<String>,
    extra_quantities: Option<Vec<Vec<String>>>,
    header_refs: Option<Vec<Vec<String>>>,
    item_refs: Option<Vec<Vec<String>>>,
    line_ending: Option<String>,
    quote: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTime {
    format: Option<String>,
    timezone: Option<String>,
}

/// Collects problems for one file, locating keys by scanning its text.
struct Checker<'a> {
    path: &'a Path,
    src: &'a str,
    problems: Vec<Problem>,
    /// Worth saying, not wrong (`check` prints them, exit 0).
    warnings: Vec<Problem>,
}

impl Checker<'_> {
    fn at(&mut self, table: &str, key: &str, message: impl Into<String>) {
        let p = self.problem(table, key, message);
        self.problems.push(p);
    }
    fn warn(&mut self, table: &str, key: &str, message: impl Into<String>) {
        let p = self.problem(table, key, message);
        self.warnings.push(p);
    }
    fn problem(&self, table: &str, key: &str, message: impl Into<String>) -> Problem {
        let line = line_of(self.src, table, 0, key);
        let full_key = if table.is_empty() {
            key.to_string()
        } else {
            format!("{table}.{key}")
        };
        Problem {
            file: self.path.to_path_buf(),
            line,
            key: full_key,
            message: message.into(),
        }
    }
}

/// The keys a mapping of this format (and direction) may have, as shown
/// to an operator who wrote another one.
fn keys_for(format: Option<&str>, inbound: bool) -> Vec<&'static str> {
    let all = crate::util::struct_fields::<RawMapping>();
    let inb: &[&str] = &[
        "format",
        "record",
        "snapshot",
        "max_zeroed",
        "max_future",
        "as_of_from",
        "as_of",
        "cancelled",
        "unit",
        "units",
    ];
    let want: Vec<&str> = match (format, inbound) {
        (Some("csv"), true) => [inb, &["delimiter", "header", "columns", "encoding"]].concat(),
        (Some("xml"), true) => [inb, &["item", "fields"]].concat(),
        (Some("x12"), true) => [
            inb,
            &[
                "sku_qualifier",
                "quantity_qualifier",
                "as_of_qualifiers",
                "locations",
                "price_qualifier",
            ],
        ]
        .concat(),
        (Some("csv"), false) => vec![
            "format",
            "delimiter",
            "header",
            "columns",
            "line_ending",
            "quote",
            "as_of",
        ],
        (Some("xml"), false) => vec!["format", "root", "item", "fields"],
        (Some("x12-846"), false) => all
            .iter()
            .copied()
            .filter(|k| {
                ![
                    "record",
                    "delimiter",
                    "header",
                    "snapshot",
                    "max_zeroed",
                    "max_future",
                    "as_of_from",
                    "columns",
                    "as_of",
                    "cancelled",
                    "item",
                    "root",
                    "fields",
                    "sku_qualifier",
                    "encoding",
                    "as_of_qualifiers",
                    "locations",
                    "units",
                    "line_ending",
                    "quote",
                ]
                .contains(k)
            })
            .collect(),
        _ => return all.to_vec(),
    };
    all.iter().copied().filter(|k| want.contains(k)).collect()
}

/// The mapping's text and raw keys, plus one problem per unknown or wrongly
/// typed key: each is reported (file, line, key) and the rest still checked.
fn read_raw(
    path: &Path,
    inbound: bool,
) -> Result<(String, RawMapping, Vec<Problem>), Vec<Problem>> {
    let problem = |line, message: String| {
        vec![Problem {
            file: path.to_path_buf(),
            line,
            key: String::new(),
            message,
        }]
    };
    let src = std::fs::read_to_string(path)
        .map_err(|e| problem(None, format!("cannot read mapping: {e}")))?;
    let mut table = match src.parse::<toml::Table>() {
        Ok(t) => t,
        Err(e) => {
            return Err(problem(
                e.span().map(|s| line_at(&src, s.start)),
                e.message().trim().to_string(),
            ));
        }
    };
    let format = table
        .get("format")
        .and_then(|v| v.as_str())
        .map(String::from);
    let shown = keys_for(format.as_deref(), inbound);
    let mut unknown = vec![];
    let mut strip = |t: &mut toml::Table, table_name: &str, known: &[&str], shown: &[&str]| {
        t.retain(|k, _| {
            if known.contains(&k) {
                return true;
            }
            let key = if table_name.is_empty() {
                k.to_string()
            } else {
                format!("{table_name}.{k}")
            };
            let what = match format.as_deref() {
                Some(f) if table_name.is_empty() => format!("known keys of a {f:?} mapping"),
                _ => "known keys here".to_string(),
            };
            let message = format!(
                "unknown key{}; {what}: {}",
                crate::util::did_you_mean(k, shown.iter().copied()),
                shown.join(", ")
            );
            unknown.push(Problem {
                file: path.to_path_buf(),
                line: line_of(&src, table_name, 0, k),
                key,
                message,
            });
            false
        })
    };
    strip(
        &mut table,
        "",
        crate::util::struct_fields::<RawMapping>(),
        &shown,
    );
    if let Some(toml::Value::Table(t)) = table.get_mut("as_of") {
        let known = crate::util::struct_fields::<RawTime>();
        strip(t, "as_of", known, known);
    }
    let (raw, errors) = crate::util::deserialize_all::<RawMapping>(table);
    for e in errors {
        let (t, k) = match e.path.as_slice() {
            [t, k, ..] if k.parse::<usize>().is_err() => (t.clone(), k.clone()),
            [k, ..] => (String::new(), k.clone()),
            [] => (String::new(), String::new()),
        };
        unknown.push(Problem {
            file: path.to_path_buf(),
            line: line_of(&src, &t, 0, &k),
            key: if t.is_empty() { k } else { format!("{t}.{k}") },
            message: e.message,
        });
    }
    unknown.sort_by_key(|p| p.line);
    match raw {
        Some(raw) => Ok((src, raw, unknown)),
        None => Err(unknown),
    }
}

fn name_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn single_byte(c: &mut Checker, key: &str, v: &Option<String>, default: u8) -> u8 {
    match v.as_deref() {
        None => default,
        Some("\\t") | Some("\t") => b'\t',
        Some(s) if s.len() == 1 && s.is_ascii() => s.as_bytes()[0],
        Some(s) => {
            c.at("", key, format!("must be one ASCII character, got {s:?}"));
            default
        }
    }
}

fn single_char(c: &mut Checker, key: &str, v: &Option<String>, default: char) -> char {
    single_byte(c, key, v, default as u8) as char
}

fn parse_tz(c: &mut Checker, table: &str, s: Option<&str>) -> Tz {
    match s {
        None => Tz::UTC,
        Some(s) => s.parse::<Tz>().unwrap_or_else(|_| {
            c.at(
                table,
                "timezone",
                format!(
                    "unknown time zone {s:?}{} (use an IANA name like \"America/Chicago\")",
                    crate::util::did_you_mean(s, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()))
                ),
            );
            Tz::UTC
        }),
    }
}

fn check_time_format(c: &mut Checker, fmt: &str) {
    use chrono::format::{Fixed, Item, StrftimeItems};
    if StrftimeItems::new(fmt).any(|i| matches!(i, Item::Error)) {
        c.at("as_of", "format", format!("invalid chrono format {fmt:?}"));
    }
    if StrftimeItems::new(fmt).any(|i| matches!(i, Item::Fixed(Fixed::TimezoneName))) {
        c.warn(
            "as_of",
            "format",
            format!(
                "{fmt:?} has %Z, a zone name, which is read and ignored (times are then taken in [as_of] timezone): use %z for an offset like -0500"
            ),
        );
    }
}

/// Reads and validates an inbound mapping.
pub fn load_inbound(path: &Path) -> Result<InboundMapping, Vec<Problem>> {
    let (src, raw, unknown) = read_raw(path, true)?;
    let mut c = Checker {
        path,
        src: &src,
        problems: unknown,
        warnings: vec![],
    };
    let record = match raw.record.as_deref() {
        None => RecordKind::Inventory,
        Some(o) => RecordKind::from_name(o).unwrap_or_else(|| {
            c.at(
                "",
                "record",
                format!("must be {}, got {o:?}", RecordKind::choices()),
            );
            RecordKind::Inventory
        }),
    };
    let snapshot = match raw.snapshot.as_deref() {
        Some("partial") | None => Snapshot::Partial,
        Some("full") => Snapshot::Full,
        Some(o) => {
            c.at(
                "",
                "snapshot",
                format!("must be \"partial\" or \"full\", got {o:?}"),
            );
            Snapshot::Partial
        }
    };
    let max_zeroed = match &raw.max_zeroed {
        None => MaxZeroed::Percent(50.0),
        Some(toml::Value::Integer(n)) if *n >= 0 => MaxZeroed::Count(*n as u64),
        Some(toml::Value::String(s)) => {
            match s.trim().strip_suffix('%').map(|p| p.trim().parse::<f64>()) {
                Some(Ok(p)) if (0.0..=100.0).contains(&p) => MaxZeroed::Percent(p),
                _ => match s.trim().parse::<u64>() {
                    Ok(n) => MaxZeroed::Count(n),
                    Err(_) => {
                        c.at(
                            "",
                            "max_zeroed",
                            format!("must be a percentage like \"50%\" or a count, got {s:?}"),
                        );
                        MaxZeroed::Percent(50.0)
                    }
                },
            }
        }
        Some(v) => {
            c.at(
                "",
                "max_zeroed",
                format!("must be a percentage like \"50%\" or a count, got {v}"),
            );
            MaxZeroed::Percent(50.0)
        }
    };
    let max_future_ms = match raw.max_future.as_deref() {
        None => 3_600_000,
        Some(t) => match crate::util::parse_duration_secs(t) {
            Some(secs) => (secs as i64).saturating_mul(1000),
            None if t.trim().strip_suffix('s').is_some_and(|n| n.trim() == "0") => 0,
            None => {
                c.at(
                    "",
                    "max_future",
                    format!("must be a duration like \"1h\", \"30m\" or \"0s\", got {t:?}"),
                );
                3_600_000
            }
        },
    };
    let rt = raw.as_of.as_ref();
    let tz = parse_tz(&mut c, "as_of", rt.and_then(|t| t.timezone.as_deref()));
    let format = rt.and_then(|t| t.format.clone());
    if let Some(f) = &format {
        check_time_format(&mut c, f);
    }
    let mut time = TimeSpec { format, tz };
    let cancelled = raw.cancelled.clone().unwrap_or_default();
    if !cancelled.is_empty() && !matches!(record, RecordKind::Orders | RecordKind::Shipments) {
        c.at(
            "",
            "cancelled",
            "only order and shipment mappings (record = \"orders\" or \"shipments\") have cancelled statuses",
        );
    }

    let source = match raw.format.as_deref() {
        Some("csv") => {
            let delimiter = single_byte(&mut c, "delimiter", &raw.delimiter, b',');
            let header = raw.header.unwrap_or(true);
            let columns = inbound_columns(&mut c, raw.columns.as_ref(), "columns", header, record);
            InSource::Csv {
                delimiter,
                header,
                columns,
            }
        }
        Some("xml") => {
            let item = raw.item.clone().unwrap_or_default();
            if item.trim().is_empty() {
                c.at(
                    "",
                    "item",
                    "required: the path to each record element, e.g. \"Inventory/Item\"",
                );
            }
            let cols = inbound_columns(&mut c, raw.fields.as_ref(), "fields", true, record);
            let fields = cols
                .into_iter()
                .map(|(f, r)| {
                    (
                        f,
                        match r {
                            ColumnRef::Name(n) => n,
                            ColumnRef::Number(n) => n.to_string(),
                        },
                    )
                })
                .collect();
            InSource::Xml { item, fields }
        }
        Some("x12") => {
            let sku_qualifiers: Vec<String> = match &raw.sku_qualifier {
                None => vec!["VN".into()],
                Some(toml::Value::String(q)) => vec![q.clone()],
                Some(toml::Value::Array(a)) => {
                    let v: Vec<String> = a
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect();
                    if v.len() != a.len() || v.is_empty() {
                        c.at(
                            "",
                            "sku_qualifier",
                            "must be a qualifier or a non-empty list of qualifiers, e.g. [\"VN\", \"UP\"]",
                        );
                    }
                    v
                }
                Some(o) => {
                    c.at(
                        "",
                        "sku_qualifier",
                        format!("must be a qualifier or a list of qualifiers, got {o}"),
                    );
                    vec![]
                }
            };
            let quantity_qualifier = raw
                .quantity_qualifier
                .clone()
                .unwrap_or_else(|| "33".into());
            let as_of_qualifiers = raw.as_of_qualifiers.clone().unwrap_or_else(|| {
                DEFAULT_AS_OF_QUALIFIERS
                    .iter()
                    .map(|q| q.to_string())
                    .collect()
            });
            let mut codes: Vec<(&str, &String)> = sku_qualifiers
                .iter()
                .map(|q| ("sku_qualifier", q))
                .collect();
            codes.push(("quantity_qualifier", &quantity_qualifier));
            codes.extend(as_of_qualifiers.iter().map(|q| ("as_of_qualifiers", q)));
            for (k, v) in codes {
                if v.is_empty() || v.len() > 3 || !v.chars().all(|ch| ch.is_ascii_alphanumeric()) {
                    c.at(
                        "",
                        k,
                        format!(
                            "must be an X12 qualifier code of 1-3 letters or digits, got {v:?}"
                        ),
                    );
                }
            }
            let mut locations = vec![];
            for (k, v) in raw.locations.iter().flatten() {
                match v.as_str() {
                    Some(w) if !w.trim().is_empty() => locations.push((k.clone(), w.to_string())),
                    _ => c.at(
                        "locations",
                        k,
                        format!("must name a warehouse, e.g. \"{k}\" = \"DALLAS\", got {v}"),
                    ),
                }
            }
            let price_qualifier = raw.price_qualifier.clone();
            if let Some(q) = &price_qualifier
                && (q.len() != 3 || !q.chars().all(|ch| ch.is_ascii_alphanumeric()))
            {
                c.at(
                    "",
                    "price_qualifier",
                    format!(
                        "must be a 3-character CTP02 price identifier code like \"WHL\", got {q:?}"
                    ),
                );
            }
            InSource::X12 {
                sku_qualifiers,
                quantity_qualifier,
                as_of_qualifiers,
                locations,
                price_qualifier,
            }
        }
        Some(o) => {
            c.at(
                "",
                "format",
                format!("inbound format must be \"csv\", \"xml\" or \"x12\", got {o:?}"),
            );
            InSource::Csv {
                delimiter: b',',
                header: true,
                columns: vec![],
            }
        }
        None => {
            c.at("", "format", "required: \"csv\", \"xml\" or \"x12\"");
            InSource::Csv {
                delimiter: b',',
                header: true,
                columns: vec![],
            }
        }
    };
    let unit = raw.unit.clone().unwrap_or_else(|| "EA".into());
    if unit.trim().is_empty() {
        c.at("", "unit", "must name the base unit, e.g. \"EA\"");
    }
    let mut units = vec![];
    for (k, v) in raw.units.iter().flatten() {
        match v.as_integer() {
            Some(n) if (1..=1_000_000_000_000).contains(&n) => units.push((k.clone(), n)),
            _ => c.at(
                "units",
                k,
                format!("must be a whole number of {unit} of at least 1, e.g. CA = 12, got {v}"),
            ),
        }
    }
    if matches!(source, InSource::X12 { .. }) && time.format.is_none() {
        // X12 dates (DTM, BIA, BEG) reach the time parser in this form.
        time.format = Some(X12_TIME_FORMAT.to_string());
    }
    let mut m = InboundMapping {
        name: name_of(path),
        path: path.to_path_buf(),
        record,
        snapshot,
        max_zeroed,
        as_of_from: AsOfFrom::FileMtime,
        max_future_ms,
        time,
        cancelled,
        source,
        encoding: encoding_rs::UTF_8,
        unit,
        units,
        warnings: vec![],
    };
    m.encoding = match raw
        .encoding
        .as_deref()
        .map(|e| e.trim().to_ascii_lowercase())
    {
        None => encoding_rs::UTF_8,
        Some(e) if !matches!(m.source, InSource::Csv { .. }) => {
            c.at(
                "",
                "encoding",
                format!("applies to CSV mappings only, got {e:?}"),
            );
            encoding_rs::UTF_8
        }
        Some(e) => match e.as_str() {
            "utf-8" | "utf8" => encoding_rs::UTF_8,
            "windows-1252" | "cp1252" | "latin1" | "iso-8859-1" => encoding_rs::WINDOWS_1252,
            "utf-16" | "utf-16le" => encoding_rs::UTF_16LE,
            "utf-16be" => encoding_rs::UTF_16BE,
            o => {
                c.at(
                    "",
                    "encoding",
                    format!(
                        "must be \"utf-8\", \"windows-1252\" or \"utf-16\", got {o:?}{}",
                        crate::util::did_you_mean(o, ["utf-8", "windows-1252", "utf-16"])
                    ),
                );
                encoding_rs::UTF_8
            }
        },
    };
    m.as_of_from = match raw.as_of_from.as_deref() {
        // X12: the DTM/BIA date of each set when present, else the file's mtime.
        None if m.has(Field::AsOf) => AsOfFrom::Column,
        None | Some("file_mtime") => AsOfFrom::FileMtime,
        Some("pickup_time") => AsOfFrom::PickupTime,
        Some(o) => {
            c.at(
                "",
                "as_of_from",
                format!("must be \"file_mtime\" or \"pickup_time\", got {o:?}"),
            );
            AsOfFrom::FileMtime
        }
    };
    if raw.as_of_qualifiers.is_some() && !matches!(m.source, InSource::X12 { .. }) {
        c.at(
            "",
            "as_of_qualifiers",
            "applies to X12 (format = \"x12\") mappings only",
        );
    }
    if record == RecordKind::Products && matches!(m.source, InSource::X12 { .. }) {
        c.at(
            "",
            "record",
            "an X12 source reads 846 inventory or 850 orders; a product catalog is CSV or XML",
        );
    }
    if record != RecordKind::Inventory && raw.snapshot.is_some() {
        c.at("", "snapshot", "applies to inventory mappings only");
    }
    if raw.price_qualifier.is_some()
        && (!matches!(m.source, InSource::X12 { .. }) || record == RecordKind::Orders)
    {
        c.at(
            "",
            "price_qualifier",
            "applies to X12 846 inventory (format = \"x12\", record = \"inventory\") mappings only; CSV and XML name a `price` column or field",
        );
    }
    let feed_keys = [
        ("root", raw.root.is_some()),
        ("version", raw.version.is_some()),
        ("sender_id", raw.sender_id.is_some()),
        ("receiver_id", raw.receiver_id.is_some()),
        ("item_ids", raw.item_ids.is_some()),
    ]
    .into_iter()
    .filter(|(_, present)| *present)
    .map(|(k, _)| k)
    // price_qualifier is also an X12 inbound key (checked above).
    .chain(
        x12_846_keys_present(&raw)
            .into_iter()
            .filter(|k| *k != "price_qualifier"),
    );
    for key in feed_keys {
        c.at(
            "",
            key,
            "is a feed (outbound) key; this mapping is used by an inbound source",
        );
    }
    m.warnings = c.warnings;
    if c.problems.is_empty() {
        Ok(m)
    } else {
        Err(c.problems)
    }
}

/// An outbound CSV's `line_ending`, `quote` and `[as_of]`.
fn csv_style(c: &mut Checker, raw: &RawMapping) -> CsvStyle {
    let crlf = match raw.line_ending.as_deref() {
        None | Some("lf") => false,
        Some("crlf") => true,
        Some(o) => {
            c.at(
                "",
                "line_ending",
                format!("must be \"lf\" or \"crlf\", got {o:?}"),
            );
            false
        }
    };
    let quote_always = match raw.quote.as_deref() {
        None | Some("necessary") => false,
        Some("always") => true,
        Some(o) => {
            c.at(
                "",
                "quote",
                format!("must be \"necessary\" or \"always\", got {o:?}"),
            );
            false
        }
    };
    let as_of = raw.as_of.as_ref().map(|t| {
        if let Some(f) = &t.format {
            check_time_format(c, f);
        }
        let tz = parse_tz(c, "as_of", t.timezone.as_deref());
        (t.format.clone(), tz)
    });
    CsvStyle {
        crlf,
        quote_always,
        as_of,
    }
}

/// `[columns]`/`[fields]` of an inbound mapping: field = "Header" | number.
fn inbound_columns(
    c: &mut Checker,
    v: Option<&toml::Value>,
    table: &str,
    header: bool,
    record: RecordKind,
) -> Vec<(Field, ColumnRef)> {
    let mut out = vec![];
    let Some(v) = v else {
        c.at(
            "",
            table,
            format!("required: a [{table}] table naming where each field is"),
        );
        return out;
    };
    let Some(t) = v.as_table() else {
        c.at(
            "",
            table,
            format!("must be a table like [{table}] sku = \"Item\""),
        );
        return out;
    };
    for (k, v) in t {
        let Some(field) = Field::from_name(k) else {
            let known: Vec<_> = Field::ALL
                .iter()
                .filter(|f| f.allowed(record))
                .map(|f| f.name())
                .collect();
            c.at(
                table,
                k,
                format!(
                    "unknown field {k:?}; {} fields are: {}",
                    record.name(),
                    known.join(", ")
                ),
            );
            continue;
        };
        if !field.allowed(record) {
            c.at(
                table,
                k,
                format!("field {k:?} does not apply to {} records", record.name()),
            );
            continue;
        }
        let r = match v {
            toml::Value::String(s) if !s.is_empty() => {
                if !header && table == "columns" {
                    match s.parse::<usize>() {
                        Ok(n) if n >= 1 => ColumnRef::Number(n),
                        _ => {
                            c.at(
                                table,
                                k,
                                format!("header = false: columns are 1-based numbers, got {s:?}"),
                            );
                            continue;
                        }
                    }
                } else {
                    ColumnRef::Name(s.clone())
                }
            }
            toml::Value::Integer(n) if *n >= 1 && table == "columns" => {
                ColumnRef::Number(*n as usize)
            }
            other => {
                c.at(
                    table,
                    k,
                    format!("must be a column name or a 1-based column number, got {other}"),
                );
                continue;
            }
        };
        out.push((field, r));
    }
    for f in record.required() {
        if !out.iter().any(|(g, _)| g == f) && t.get(f.name()).is_none() {
            c.at(
                table,
                f.name(),
                format!(
                    "required for {} records: say where the {} is",
                    record.name(),
                    f.name()
                ),
            );
        }
    }
    out
}

/// Reads and validates a feed (cart) mapping.
pub fn load_outbound(path: &Path) -> Result<OutboundMapping, Vec<Problem>> {
    let (src, raw, unknown) = read_raw(path, false)?;
    let mut c = Checker {
        path,
        src: &src,
        problems: unknown,
        warnings: vec![],
    };
    for (key, present) in [
        ("record", raw.record.is_some()),
        ("snapshot", raw.snapshot.is_some()),
        ("sku_qualifier", raw.sku_qualifier.is_some()),
        ("as_of_qualifiers", raw.as_of_qualifiers.is_some()),
        ("units", raw.units.is_some()),
        ("locations", raw.locations.is_some()),
    ] {
        if present {
            c.at("", key, "is an inbound key; this mapping is used by a cart");
        }
    }
    if matches!(raw.format.as_deref(), Some("csv" | "xml")) {
        for key in x12_846_keys_present(&raw) {
            c.at("", key, "applies to x12-846 feeds only");
        }
    }
    let format = match raw.format.as_deref() {
        Some("csv") => {
            let delimiter = single_byte(&mut c, "delimiter", &raw.delimiter, b',');
            let columns = out_columns(&mut c, raw.columns.as_ref(), "columns", "header", |_| true);
            let style = csv_style(&mut c, &raw);
            OutFormat::Csv {
                delimiter,
                header: raw.header.unwrap_or(true),
                columns,
                style,
            }
        }
        Some("xml") => {
            let root = raw.root.clone().unwrap_or_else(|| "Inventory".into());
            let item = raw.item.clone().unwrap_or_else(|| "Item".into());
            for (k, v) in [("root", &root), ("item", &item)] {
                if !valid_xml_name(v) {
                    c.at("", k, format!("{v:?} is not a valid XML element name"));
                }
            }
            let fields = out_columns(
                &mut c,
                raw.fields.as_ref(),
                "fields",
                "element",
                valid_xml_name,
            );
            OutFormat::Xml { root, item, fields }
        }
        Some("x12-846") => OutFormat::X12_846(Box::new(x12_profile(&mut c, &raw))),
        Some(o) => {
            c.at(
                "",
                "format",
                format!("feed format must be \"csv\", \"xml\" or \"x12-846\", got {o:?}"),
            );
            OutFormat::Csv {
                delimiter: b',',
                header: true,
                columns: vec![],
                style: CsvStyle::default(),
            }
        }
        None => {
            c.at("", "format", "required: \"csv\", \"xml\" or \"x12-846\"");
            OutFormat::Csv {
                delimiter: b',',
                header: true,
                columns: vec![],
                style: CsvStyle::default(),
            }
        }
    };
    let m = OutboundMapping {
        name: name_of(path),
        path: path.to_path_buf(),
        format,
    };
    if c.problems.is_empty() {
        Ok(m)
    } else {
        Err(c.problems)
    }
}

/// The 846-only keys a mapping sets.
fn x12_846_keys_present(raw: &RawMapping) -> Vec<&'static str> {
    [
        ("bia_reference", raw.bia_reference.is_some()),
        ("as_of_dtm", raw.as_of_dtm.is_some()),
        ("ship_from", raw.ship_from.is_some()),
        ("pid_description", raw.pid_description.is_some()),
        (
            "extra_quantity_qualifiers",
            raw.extra_quantity_qualifiers.is_some(),
        ),
        ("hash_total", raw.hash_total.is_some()),
        ("per_warehouse", raw.per_warehouse.is_some()),
        ("location_ids", raw.location_ids.is_some()),
        ("location_qualifier", raw.location_qualifier.is_some()),
        ("location_entity", raw.location_entity.is_some()),
        ("price_qualifier", raw.price_qualifier.is_some()),
        ("price_class_of_trade", raw.price_class_of_trade.is_some()),
        ("extra_quantities", raw.extra_quantities.is_some()),
        ("header_refs", raw.header_refs.is_some()),
        ("item_refs", raw.item_refs.is_some()),
    ]
    .into_iter()
    .filter(|(_, present)| *present)
    .map(|(k, _)| k)
    .collect()
}

pub fn valid_xml_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(ch) if ch.is_alphabetic() || ch == '_')
        && chars.all(|ch| ch.is_alphanumeric() || matches!(ch, '-' | '_' | '.'))
        && !s.to_ascii_lowercase().starts_with("xml")
}

/// `columns = [ { header = "SKU", field = "sku" }, ... ]` (or `element =` for XML).
fn out_columns(
    c: &mut Checker,
    v: Option<&toml::Value>,
    key: &str,
    name_key: &str,
    valid: fn(&str) -> bool,
) -> Vec<OutColumn> {
    let mut out = vec![];
    let Some(arr) = v.and_then(|v| v.as_array()) else {
        c.at(
            "",
            key,
            format!(
                "required: a list like {key} = [ {{ {name_key} = \"SKU\", field = \"sku\" }} ]"
            ),
        );
        return out;
    };
    for (i, entry) in arr.iter().enumerate() {
        let n = i + 1;
        let Some(t) = entry.as_table() else {
            c.at(
                "",
                key,
                format!("entry {n} must be {{ {name_key} = \"...\", field = \"...\" }}"),
            );
            continue;
        };
        for k in t.keys() {
            if k != name_key && k != "field" && k != "optional" {
                c.at(
                    "",
                    key,
                    format!("entry {n}: unknown key {k:?} (expected {name_key}, field, optional)"),
                );
            }
        }
        let name = t.get(name_key).and_then(|v| v.as_str()).unwrap_or("");
        if name.is_empty() && name_key == "element" {
            c.at("", key, format!("entry {n}: {name_key} is required"));
        } else if !name.is_empty() && !valid(name) {
            c.at(
                "",
                key,
                format!("entry {n}: {name:?} is not a valid XML element name"),
            );
        }
        let field_s = t.get("field").and_then(|v| v.as_str()).unwrap_or("");
        let Some(field) = OutField::from_name(field_s) else {
            c.at("", key, format!("entry {n}: field {field_s:?} is not one of sku, quantity, upc, description, merchant, as_of, price"));
            continue;
        };
        let optional = t.get("optional").and_then(|v| v.as_bool()).unwrap_or(false);
        out.push(OutColumn {
            name: name.to_string(),
            field,
            optional,
        });
    }
    if out.is_empty() && c.problems.is_empty() {
        c.at("", key, "must name at least one field");
    }
    out
}

fn x12_profile(c: &mut Checker, raw: &RawMapping) -> X12Profile {
    let s = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_string());
    let version = s(&raw.version, "004010");
    if version != "004010" && version != "005010" {
        c.at(
            "",
            "version",
            format!("must be \"004010\" or \"005010\", got {version:?}"),
        );
    }
    let mut need = |key: &str, v: &Option<String>, max: usize| -> String {
        let v = v.clone().unwrap_or_default();
        if v.trim().is_empty() {
            c.at("", key, "required for x12-846 feeds");
        } else if v.len() > max {
            c.at(
                "",
                key,
                format!("at most {max} characters, got {} ({v:?})", v.len()),
            );
        }
        v
    };
    let sender_id = need("sender_id", &raw.sender_id, 15);
    let receiver_id = need("receiver_id", &raw.receiver_id, 15);
    let sender_qualifier = need("sender_qualifier", &raw.sender_qualifier, 2);
    let receiver_qualifier = need("receiver_qualifier", &raw.receiver_qualifier, 2);
    let usage = match raw.usage.as_deref() {
        None | Some("P") => 'P',
        Some("T") => 'T',
        Some(o) => {
            c.at("", "usage", format!("must be \"P\" or \"T\", got {o:?}"));
            'P'
        }
    };
    let element_separator = single_char(c, "element_separator", &raw.element_separator, '*');
    let segment_terminator = single_char(c, "segment_terminator", &raw.segment_terminator, '~');
    let component_separator = single_char(c, "component_separator", &raw.component_separator, '>');
    let seps = [element_separator, segment_terminator, component_separator];
    if seps[0] == seps[1] || seps[0] == seps[2] || seps[1] == seps[2] {
        c.at(
            "",
            "element_separator",
            "element separator, segment terminator and component separator must differ",
        );
    }
    if seps
        .iter()
        .any(|ch| ch.is_ascii_alphanumeric() || *ch == ' ')
    {
        c.at(
            "",
            "element_separator",
            "separators cannot be letters, digits or spaces",
        );
    }
    let mut item_ids = vec![];
    match &raw.item_ids {
        None => c.at(
            "",
            "item_ids",
            "required: e.g. item_ids = [ [\"UP\", \"upc\"], [\"VN\", \"sku\"] ]",
        ),
        Some(list) => {
            for (i, pair) in list.iter().enumerate() {
                match pair.as_slice() {
                    [q, f] if (1..=3).contains(&q.len()) && q.chars().all(|ch| ch.is_ascii_alphanumeric()) => match OutField::from_name(f) {
                        Some(field @ (OutField::Sku | OutField::Upc | OutField::Description)) => item_ids.push((q.clone(), field)),
                        _ => c.at("", "item_ids", format!("entry {}: field {f:?} must be sku, upc or description", i + 1)),
                    },
                    _ => c.at("", "item_ids", format!("entry {}: must be [\"QUALIFIER\", \"field\"] with a 1-3 character qualifier", i + 1)),
                }
            }
            if list.is_empty() {
                c.at("", "item_ids", "must name at least one LIN id");
            }
        }
    }
    let ship_from = match raw.ship_from.as_deref() {
        None => None,
        Some([a, b, c, d]) => Some([a.clone(), b.clone(), c.clone(), d.clone()]),
        Some([a, b]) => Some([a.clone(), b.clone(), String::new(), String::new()]),
        Some(_) => {
            c.at(
                "",
                "ship_from",
                "must be [N101, name] or [N101, name, id qualifier, id], e.g. [\"SF\", \"Acme DC\", \"92\", \"DC01\"]",
            );
            None
        }
    };
    let code = |c: &mut Checker, key: &str, v: &str, min: usize, max: usize| {
        if v.len() < min || v.len() > max || !v.chars().all(|ch| ch.is_ascii_alphanumeric()) {
            c.at(
                "",
                key,
                format!("{v:?} must be {min} to {max} letters or digits"),
            );
        }
    };
    if let Some(q) = &raw.as_of_dtm {
        code(c, "as_of_dtm", q, 3, 3);
    }
    for q in raw.extra_quantity_qualifiers.iter().flatten() {
        code(c, "extra_quantity_qualifiers", q, 2, 2);
    }
    if let Some(r) = &raw.bia_reference
        && (r.is_empty() || r.len() > 30)
    {
        c.at("", "bia_reference", "must be 1 to 30 characters");
    }
    let extra_quantities = extra_quantities(c, raw);
    let price = ctp_price(c, raw);
    let per_warehouse = per_warehouse(c, raw, &seps);
    let header_refs = refs(c, "header_refs", raw.header_refs.as_deref(), &seps);
    let item_refs = refs(c, "item_refs", raw.item_refs.as_deref(), &seps);
    X12Profile {
        version,
        sender_qualifier,
        sender_id,
        receiver_qualifier,
        receiver_id,
        usage,
        element_separator,
        segment_terminator,
        component_separator,
        bia_purpose: s(&raw.bia_purpose, "00"),
        bia_report_type: s(&raw.bia_report_type, "SI"),
        item_ids,
        quantity_qualifier: s(&raw.quantity_qualifier, "33"),
        unit: s(&raw.unit, "EA"),
        line_break: raw.line_break.unwrap_or(false),
        extras: Extras846 {
            bia_reference: raw.bia_reference.clone(),
            as_of_dtm: raw.as_of_dtm.clone(),
            ship_from,
            pid_description: raw.pid_description.unwrap_or(false),
            extra_quantity_qualifiers: raw.extra_quantity_qualifiers.clone().unwrap_or_default(),
            hash_total: raw.hash_total.unwrap_or(false),
            extra_quantities,
            price,
            per_warehouse,
            header_refs,
            item_refs,
        },
    }
}

/// `header_refs` / `item_refs = [ ["VR", "11223344"], ["ZZ", "AC", "text"] ]`.
fn refs(c: &mut Checker, key: &str, v: Option<&[Vec<String>]>, seps: &[char]) -> Vec<[String; 3]> {
    let mut out = vec![];
    let clean = |s: &str| {
        !s.chars()
            .any(|ch| ch.is_control() || seps.contains(&ch) || ch == '^')
    };
    for (i, r) in v.unwrap_or_default().iter().enumerate() {
        match r.as_slice() {
            [q, id] | [q, id, _]
                if is_code(q, 2, 3)
                    && (1..=50).contains(&id.len())
                    && r.get(2).is_none_or(|d| (1..=80).contains(&d.len()))
                    && r.iter().all(|s| clean(s)) =>
            {
                out.push([q.clone(), id.clone(), r.get(2).cloned().unwrap_or_default()])
            }
            _ => c.at(
                "",
                key,
                format!(
                    "entry {}: must be [REF01, REF02] or [REF01, REF02, REF03]: a 2-3 character qualifier, an id of 1 to 50 and a description of 1 to 80 characters without separators, e.g. [\"VR\", \"11223344\"]",
                    i + 1
                ),
            ),
        }
    }
    out
}

/// Whether `v` is `min..=max` ASCII letters or digits (an X12 code).
fn is_code(v: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&v.len()) && v.chars().all(|ch| ch.is_ascii_alphanumeric())
}

/// `extra_quantities = [ ["17", "on_hand"], ["27", "committed"] ]`.
fn extra_quantities(c: &mut Checker, raw: &RawMapping) -> Vec<(String, Measure)> {
    let mut out = vec![];
    for (i, pair) in raw.extra_quantities.iter().flatten().enumerate() {
        let measure = match pair.as_slice() {
            [q, m] if is_code(q, 2, 2) => Measure::ALL.into_iter().find(|x| x.name() == m),
            _ => None,
        };
        match measure {
            Some(m) => out.push((pair[0].clone(), m)),
            None => c.at(
                "",
                "extra_quantities",
                format!(
                    "entry {}: must be [\"QTY01 code\", measure] with a 2-character code and a measure of available, on_hand, committed, e.g. [\"17\", \"on_hand\"]",
                    i + 1
                ),
            ),
        }
    }
    out
}

/// `price_qualifier` (CTP02) and `price_class_of_trade` (CTP01).
fn ctp_price(c: &mut Checker, raw: &RawMapping) -> Option<(String, String)> {
    let class = raw.price_class_of_trade.clone().unwrap_or_default();
    if !class.is_empty() && !is_code(&class, 2, 2) {
        c.at(
            "",
            "price_class_of_trade",
            format!("must be a 2-character CTP01 class of trade code like \"WS\", got {class:?}"),
        );
    }
    let Some(q) = &raw.price_qualifier else {
        if raw.price_class_of_trade.is_some() {
            c.at(
                "",
                "price_class_of_trade",
                "needs price_qualifier (the CTP02 code, e.g. \"WHL\") to write a CTP",
            );
        }
        return None;
    };
    if !is_code(q, 3, 3) {
        c.at(
            "",
            "price_qualifier",
            format!("must be a 3-character CTP02 price identifier code like \"WHL\", got {q:?}"),
        );
    }
    Some((class, q.clone()))
}

/// `per_warehouse = "sdq" | "n1"` with `[location_ids]`, `location_qualifier`, `location_entity`.
fn per_warehouse(c: &mut Checker, raw: &RawMapping, seps: &[char]) -> Option<PerWarehouse> {
    let location_ids = location_ids(c, raw, seps);
    let qualifier = raw
        .location_qualifier
        .clone()
        .unwrap_or_else(|| "92".into());
    if !is_code(&qualifier, 1, 2) {
        c.at(
            "",
            "location_qualifier",
            format!("must be a 1-2 character id code qualifier like \"92\", got {qualifier:?}"),
        );
    }
    let entity = raw.location_entity.clone().unwrap_or_else(|| "WH".into());
    if !is_code(&entity, 2, 3) {
        c.at(
            "",
            "location_entity",
            format!("must be a 2-3 character N101 entity code like \"WH\", got {entity:?}"),
        );
    }
    let mode = match raw.per_warehouse.as_deref() {
        None => {
            for (key, present) in [
                ("location_ids", raw.location_ids.is_some()),
                ("location_qualifier", raw.location_qualifier.is_some()),
                ("location_entity", raw.location_entity.is_some()),
            ] {
                if present {
                    c.at("", key, "needs per_warehouse = \"sdq\" or \"n1\"");
                }
            }
            return None;
        }
        Some("sdq") => PerWarehouseMode::Sdq,
        Some("n1") => PerWarehouseMode::N1,
        Some(o) => {
            c.at(
                "",
                "per_warehouse",
                format!("must be \"sdq\" (one SDQ of location/quantity pairs per SKU) or \"n1\" (one LIN loop per SKU and warehouse, with an N1), got {o:?}"),
            );
            return None;
        }
    };
    if raw.location_ids.as_ref().is_none_or(|t| t.is_empty()) {
        c.at(
            "",
            "per_warehouse",
            "needs a [location_ids] table naming each warehouse's location id, e.g. [location_ids] DALLAS = \"DC01\"",
        );
    }
    if mode == PerWarehouseMode::Sdq && raw.location_entity.is_some() {
        c.at(
            "",
            "location_entity",
            "applies to per_warehouse = \"n1\" only",
        );
    }
    Some(PerWarehouse {
        mode,
        location_ids,
        qualifier,
        entity,
    })
}

/// `[location_ids]`: warehouse = "location id" (N104 / SDQ03: 2 to 80 characters).
fn location_ids(c: &mut Checker, raw: &RawMapping, seps: &[char]) -> Vec<(String, String)> {
    let mut out = vec![];
    for (w, v) in raw.location_ids.iter().flatten() {
        match v.as_str() {
            Some(id)
                if (2..=80).contains(&id.len())
                    && id.chars().all(|ch| ch.is_ascii_graphic() && !seps.contains(&ch)) =>
            {
                out.push((w.clone(), id.to_string()))
            }
            _ => c.at(
                "location_ids",
                w,
                format!(
                    "must be a location id of 2 to 80 ASCII characters without spaces or separators, e.g. {w} = \"DC01\", got {v}"
                ),
            ),
        }
    }
    out
}

/// Whether a mapping file looks inbound (it says `record =` or is X12 in).
pub fn looks_inbound(path: &Path) -> bool {
    read_raw(path, true)
        .map(|(_, r, _)| r.record.is_some() || r.format.as_deref() == Some("x12"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let t = TimeSpec {
            format: Some("%Y-%m-%d %H:%M:%S".into()),
            tz: "America/Chicago".parse().unwrap(),
        };
        assert_eq!(t.parse("2026-01-05 08:00:00").unwrap(), 1767621600000);
        assert_eq!(t.parse("2026-01-05T14:00:00Z").unwrap(), 1767621600000);
        assert!(t.parse("yesterday").is_err());
    }

    /// The example mappings shipped in mappings/ (and written by `init`) are valid.
    #[test]
    fn shipped_mappings_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let r = if looks_inbound(&p) {
                load_inbound(&p).map(|_| ())
            } else {
                // An order or confirm feed's mapping is the order loop's
                // own (`docmap`), not a cart's.
                load_outbound(&p).map(|_| ()).or_else(|e| {
                    [
                        crate::docmap::DocKind::Orders,
                        crate::docmap::DocKind::Confirms,
                    ]
                    .into_iter()
                    .find_map(|k| crate::docmap::load(&p, k).ok())
                    .map(|_| ())
                    .ok_or(e)
                })
            };
            assert!(r.is_ok(), "{}: {:?}", p.display(), r);
            n += 1;
        }
        assert!(n >= 9, "{n} mappings");
    }

    #[test]
    fn known_keys_come_from_the_structs() {
        assert_eq!(
            crate::util::struct_fields::<RawTime>(),
            ["format", "timezone"]
        );
        let keys = crate::util::struct_fields::<RawMapping>();
        assert!(
            keys.contains(&"sku_qualifier") && keys.contains(&"line_break"),
            "{keys:?}"
        );
    }

    #[test]
    fn max_zeroed() {
        assert!(MaxZeroed::Percent(50.0).exceeded(6, 10));
        assert!(!MaxZeroed::Percent(50.0).exceeded(5, 10));
        assert!(MaxZeroed::Count(3).exceeded(4, 100));
    }
}
