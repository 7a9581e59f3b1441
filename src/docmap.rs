//! Mappings of the order loop's outbound feeds (CONTRACT §6): an order
//! feed's (`csv`, `xml`, `x12-940`) and a confirm feed's (`csv`, `xml`,
//! `x12-856`) layout. Typed keys per format (serde, unknown keys refused
//! with their line), checked once at load.

use crate::formats::x12::EnvelopeProfile;
use crate::util::{Problem, line_at};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Which outbound document a mapping lays out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    Orders,
    Confirms,
}

impl DocKind {
    pub fn x12_format(self) -> &'static str {
        match self {
            DocKind::Orders => "x12-940",
            DocKind::Confirms => "x12-856",
        }
    }
    fn fields(self) -> &'static [DocField] {
        use DocField::*;
        match self {
            DocKind::Orders => &[
                OrderId,
                Line,
                Sku,
                Quantity,
                OrderedAt,
                PoNumber,
                ShipMethod,
                Source,
                ShipTo(0),
                ShipTo(1),
                ShipTo(2),
                ShipTo(3),
                ShipTo(4),
                ShipTo(5),
                ShipTo(6),
                ShipTo(7),
                ShipTo(8),
                ShipTo(9),
                Upc,
            ],
            DocKind::Confirms => &[
                OrderId, Line, Sku, Quantity, Ordered, ShipmentId, Package, Tracking, Carrier,
                Service, ShippedAt, PoNumber, Source, Upc,
            ],
        }
    }
}

/// A field an order or confirm feed can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocField {
    OrderId,
    Line,
    Sku,
    Quantity,
    OrderedAt,
    PoNumber,
    ShipMethod,
    /// The inbound source the order came from.
    Source,
    /// `ship_to_*`, by index into `ledger::orders::SHIP_TO_FIELDS`.
    ShipTo(usize),
    /// The product's UPC (from the ledger's catalog).
    Upc,
    /// Confirm feeds: the order line's quantity.
    Ordered,
    ShipmentId,
    Package,
    Tracking,
    Carrier,
    Service,
    ShippedAt,
}

impl DocField {
    pub fn name(self) -> String {
        match self {
            DocField::OrderId => "order_id".into(),
            DocField::Line => "line".into(),
            DocField::Sku => "sku".into(),
            DocField::Quantity => "quantity".into(),
            DocField::OrderedAt => "ordered_at".into(),
            DocField::PoNumber => "po_number".into(),
            DocField::ShipMethod => "ship_method".into(),
            DocField::Source => "source".into(),
            DocField::ShipTo(i) => format!("ship_to_{}", crate::ledger::orders::SHIP_TO_FIELDS[i]),
            DocField::Upc => "upc".into(),
            DocField::Ordered => "ordered".into(),
            DocField::ShipmentId => "shipment_id".into(),
            DocField::Package => "package".into(),
            DocField::Tracking => "tracking".into(),
            DocField::Carrier => "carrier".into(),
            DocField::Service => "service".into(),
            DocField::ShippedAt => "shipped_at".into(),
        }
    }
}

/// One CSV column or XML element.
#[derive(Debug, Clone, PartialEq)]
pub struct DocColumn {
    pub name: String,
    pub field: DocField,
    /// `required = true`: an order lacking the field is held back.
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DocFormat {
    Csv {
        delimiter: u8,
        header: bool,
        crlf: bool,
        columns: Vec<DocColumn>,
    },
    Xml {
        root: String,
        item: String,
        fields: Vec<DocColumn>,
    },
    X12 {
        envelope: EnvelopeProfile,
        /// LIN / W01 product ids: (qualifier, sku | upc).
        item_ids: Vec<(String, DocField)>,
        /// 940 W66 defaults (rule 30).
        transport_method: String,
        payment_method: String,
        unit: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct DocMapping {
    pub name: String,
    pub path: PathBuf,
    pub kind: DocKind,
    pub format: DocFormat,
}

impl DocMapping {
    pub fn format_name(&self) -> &'static str {
        match self.format {
            DocFormat::Csv { .. } => "csv",
            DocFormat::Xml { .. } => "xml",
            DocFormat::X12 { .. } => self.kind.x12_format(),
        }
    }
    pub fn ext(&self) -> &'static str {
        match self.format {
            DocFormat::Csv { .. } => "csv",
            DocFormat::Xml { .. } => "xml",
            DocFormat::X12 { .. } => "edi",
        }
    }
    /// The columns marked `required = true` (CSV, XML).
    pub fn required(&self) -> Vec<DocField> {
        match &self.format {
            DocFormat::Csv { columns, .. }
            | DocFormat::Xml {
                fields: columns, ..
            } => columns
                .iter()
                .filter(|c| c.required)
                .map(|c| c.field)
                .collect(),
            DocFormat::X12 { .. } => vec![],
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    header: Option<String>,
    element: Option<String>,
    field: String,
    #[serde(default)]
    required: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoc {
    format: String,
    // csv
    delimiter: Option<String>,
    header: Option<bool>,
    line_ending: Option<String>,
    columns: Option<Vec<RawColumn>>,
    // xml
    root: Option<String>,
    item: Option<String>,
    fields: Option<Vec<RawColumn>>,
    // x12
    version: Option<String>,
    sender_qualifier: Option<String>,
    sender_id: Option<String>,
    receiver_qualifier: Option<String>,
    receiver_id: Option<String>,
    usage: Option<String>,
    element_separator: Option<String>,
    segment_terminator: Option<String>,
    component_separator: Option<String>,
    line_break: Option<bool>,
    item_ids: Option<Vec<Vec<String>>>,
    unit: Option<String>,
    transport_method: Option<String>,
    payment_method: Option<String>,
}

/// Reads and checks the mapping of an order feed or confirm feed.
pub fn load(path: &Path, kind: DocKind) -> Result<DocMapping, Vec<Problem>> {
    let problem = |line: Option<usize>, key: &str, message: String| Problem {
        file: path.to_path_buf(),
        line,
        key: key.to_string(),
        message,
    };
    let src = std::fs::read_to_string(path)
        .map_err(|e| vec![problem(None, "", format!("cannot read mapping: {e}"))])?;
    let raw: RawDoc = toml::from_str(&src).map_err(|e| {
        vec![problem(
            e.span().map(|s| line_at(&src, s.start)),
            "",
            e.message().trim().to_string(),
        )]
    })?;
    let line = |key: &str| crate::util::line_of(&src, "", 0, key);
    let mut problems = vec![];
    let mut at = |key: &str, message: String| problems.push(problem(line(key), key, message));
    let x12 = kind.x12_format();
    let format = match raw.format.as_str() {
        "csv" => {
            let delimiter = match raw.delimiter.as_deref() {
                None => b',',
                Some("\\t") | Some("\t") => b'\t',
                Some(s) if s.len() == 1 && s.is_ascii() => s.as_bytes()[0],
                Some(s) => {
                    at(
                        "delimiter",
                        format!("must be one ASCII character, got {s:?}"),
                    );
                    b','
                }
            };
            let crlf = match raw.line_ending.as_deref() {
                None | Some("lf") => false,
                Some("crlf") => true,
                Some(o) => {
                    at(
                        "line_ending",
                        format!("must be \"lf\" or \"crlf\", got {o:?}"),
                    );
                    false
                }
            };
            DocFormat::Csv {
                delimiter,
                header: raw.header.unwrap_or(true),
                crlf,
                columns: columns(kind, raw.columns, "columns", "header", &mut at),
            }
        }
        "xml" => DocFormat::Xml {
            root: raw.root.clone().unwrap_or_else(|| match kind {
                DocKind::Orders => "orders".into(),
                DocKind::Confirms => "shipments".into(),
            }),
            item: raw.item.clone().unwrap_or_else(|| "line".into()),
            fields: columns(kind, raw.fields, "fields", "element", &mut at),
        },
        f if f == x12 => {
            let s = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_string());
            let ch = |v: &Option<String>, d: char| {
                v.as_deref().and_then(|s| s.chars().next()).unwrap_or(d)
            };
            let envelope = EnvelopeProfile {
                version: s(&raw.version, "004010"),
                sender_qualifier: s(&raw.sender_qualifier, "ZZ"),
                sender_id: s(&raw.sender_id, ""),
                receiver_qualifier: s(&raw.receiver_qualifier, "ZZ"),
                receiver_id: s(&raw.receiver_id, ""),
                usage: if raw.usage.as_deref() == Some("T") {
                    'T'
                } else {
                    'P'
                },
                element_separator: ch(&raw.element_separator, '*'),
                segment_terminator: ch(&raw.segment_terminator, '~'),
                component_separator: ch(&raw.component_separator, '>'),
                line_break: raw.line_break.unwrap_or(false),
            };
            for (key, v) in [
                ("sender_id", &envelope.sender_id),
                ("receiver_id", &envelope.receiver_id),
            ] {
                if v.trim().is_empty() {
                    at(key, format!("required for {x12} feeds"));
                }
            }
            if let Err(e) = envelope.validate() {
                at("version", e.to_string());
            }
            let mut item_ids = vec![];
            for (i, pair) in raw
                .item_ids
                .clone()
                .unwrap_or_else(|| vec![vec!["VN".into(), "sku".into()]])
                .iter()
                .enumerate()
            {
                match pair.as_slice() {
                    [q, f]
                        if (1..=3).contains(&q.len())
                            && q.chars().all(|c| c.is_ascii_alphanumeric()) =>
                    {
                        match f.as_str() {
                            "sku" => item_ids.push((q.clone(), DocField::Sku)),
                            "upc" => item_ids.push((q.clone(), DocField::Upc)),
                            _ => at(
                                "item_ids",
                                format!("entry {}: field {f:?} must be sku or upc", i + 1),
                            ),
                        }
                    }
                    _ => at(
                        "item_ids",
                        format!(
                            "entry {} must be [qualifier, field], e.g. [\"VN\", \"sku\"]",
                            i + 1
                        ),
                    ),
                }
            }
            DocFormat::X12 {
                envelope,
                item_ids,
                transport_method: s(&raw.transport_method, "M"),
                payment_method: s(&raw.payment_method, "PP"),
                unit: s(&raw.unit, "EA"),
            }
        }
        other => {
            at(
                "format",
                format!("must be \"csv\", \"xml\" or \"{x12}\" for this feed, got {other:?}"),
            );
            return Err(problems);
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(DocMapping {
        name: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        path: path.to_path_buf(),
        kind,
        format,
    })
}

fn columns(
    kind: DocKind,
    raw: Option<Vec<RawColumn>>,
    key: &str,
    name_key: &str,
    at: &mut impl FnMut(&str, String),
) -> Vec<DocColumn> {
    let Some(raw) = raw else {
        at(
            key,
            format!(
                "required: a list like {key} = [ {{ {name_key} = \"Order\", field = \"order_id\" }} ]"
            ),
        );
        return vec![];
    };
    let known = kind.fields();
    let mut out = vec![];
    for (i, c) in raw.into_iter().enumerate() {
        let Some(field) = known.iter().copied().find(|f| f.name() == c.field) else {
            let names: Vec<String> = known.iter().map(|f| f.name()).collect();
            at(
                key,
                format!(
                    "entry {}: field {:?} is not one of {}",
                    i + 1,
                    c.field,
                    names.join(", ")
                ),
            );
            continue;
        };
        let name = match name_key {
            "header" => c.header.or(c.element),
            _ => c.element.or(c.header),
        }
        .unwrap_or_else(|| field.name());
        if name_key == "element" && !crate::mapping::valid_xml_name(&name) {
            at(
                key,
                format!("entry {}: {name:?} is not a valid XML element name", i + 1),
            );
        }
        out.push(DocColumn {
            name,
            field,
            required: c.required,
        });
    }
    if out.is_empty() {
        at(key, "must name at least one field".into());
    }
    out
}
