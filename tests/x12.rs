//! X12 end to end through the real binary: 846 feeds (exact bytes, envelope
//! counts, control numbers, large catalogs, the independent validator) and
//! inbound 846/850 files, including real third-party samples from shared/.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const T0: &str = "2025-06-01T10:00:00Z";
const INV_H: &str = "SKU,Whse,Qty,AsOf,UPC,Title\n";

/// The retailer 846 profile of CONTRACT §4 (production usage, no line breaks).
fn r846(version: &str) -> String {
    format!(
        r#"format = "x12-846"
version = "{version}"
sender_qualifier = "ZZ"
sender_id = "ACMEWHSE"
receiver_qualifier = "08"
receiver_id = "925485US00"
usage = "P"
element_separator = "*"
segment_terminator = "~"
component_separator = ">"
bia_purpose = "00"
bia_report_type = "SI"
item_ids = [ ["UP", "upc"], ["VN", "sku"] ]
quantity_qualifier = "33"
unit = "EA"
"#
    )
}

/// One x12-846 `[[cart]]` using mapping `r846`, delivering to out/<id>.
fn x12_cart(id: &str, extra: &str) -> String {
    format!(
        r#"
[[cart]]
id = "{id}"
merchant = "m1"
format = "x12-846"
mapping = "r846"
schedule = "every 1m"
{extra}
[cart.transport]
type = "dir"
path = "out/{id}"
file_name = "{{cart}}-{{seq}}.x12"
"#
    )
}

/// The standard workspace plus an x12-846 cart `retail` (full_sync = false on purpose).
fn retail_ws(version: &str) -> Workspace {
    let ws = Workspace::standard(&x12_cart("retail", "full_sync = false"));
    ws.mapping("r846", &r846(version));
    ws
}

/// A, B (0), C (no UPC), D (negative): every case the 846 has to handle.
fn abcd() -> String {
    format!(
        "{INV_H}A,W1,10,{T0},012345678905,Blue widget\n\
         B,W1,0,{T0},036000291452,\n\
         C,W1,5,{T0},,No UPC\n\
         D,W1,-4,{T0},042100005264,\n"
    )
}

/// A UPC-A: the 11 digits of `body` and their GS1 check digit.
fn upc(body: &str) -> String {
    assert_eq!(body.len(), 11, "{body}");
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

// ----- a small X12 parser for assertions -----

/// Segments (id first, then elements) and the separators, read from the ISA.
struct X12 {
    elem: char,
    term: char,
    segs: Vec<Vec<String>>,
}

impl X12 {
    fn parse(text: &str) -> X12 {
        assert!(text.starts_with("ISA"), "not an interchange: {text:.40}");
        let b = text.as_bytes();
        let elem = b[3] as char;
        let term = b[105] as char;
        let segs = text
            .split(term)
            .map(|s| s.trim_matches(['\r', '\n']))
            .filter(|s| !s.is_empty())
            .map(|s| s.split(elem).map(str::to_string).collect::<Vec<_>>())
            .collect::<Vec<_>>();
        X12 { elem, term, segs }
    }

    fn render(&self) -> String {
        let mut s = String::new();
        for seg in &self.segs {
            s.push_str(&seg.join(&self.elem.to_string()));
            s.push(self.term);
        }
        s
    }

    fn all(&self, id: &str) -> Vec<&Vec<String>> {
        self.segs.iter().filter(|s| s[0] == id).collect()
    }

    fn one(&self, id: &str) -> &Vec<String> {
        let v = self.all(id);
        assert_eq!(v.len(), 1, "want exactly one {id}");
        v[0]
    }

    /// Checks every count and control-number pairing of the envelope and
    /// returns the number of LIN loops of each set, in order.
    fn check_envelope(&self) -> Vec<usize> {
        let s = &self.segs;
        assert_eq!(s[0][0], "ISA");
        assert_eq!(s[0].len(), 17, "ISA has 16 elements");
        assert_eq!(s.last().unwrap()[0], "IEA");
        let (isa, iea) = (&s[0], s.last().unwrap());
        let gs = self.all("GS");
        let ge = self.all("GE");
        assert_eq!(iea[1], gs.len().to_string(), "IEA01 = number of GS");
        assert_eq!(isa[13], iea[2], "ISA13 = IEA02");
        assert_eq!(isa[13].len(), 9);
        assert_eq!(gs.len(), ge.len());
        let mut lins = vec![];
        let mut i = 1;
        while i < s.len() - 1 {
            assert_eq!(s[i][0], "GS", "segment {}", i + 1);
            let gs = &s[i];
            i += 1;
            let mut sets = 0;
            let mut st02s = vec![];
            while s[i][0] == "ST" {
                let st = &s[i];
                let start = i;
                let mut lin = 0;
                while s[i][0] != "SE" {
                    if s[i][0] == "LIN" {
                        lin += 1;
                    }
                    if s[i][0] == "CTT" {
                        assert_eq!(s[i][1], lin.to_string(), "CTT01 = LIN loops in the set");
                    }
                    i += 1;
                }
                let se = &s[i];
                assert_eq!(se[1], (i - start + 1).to_string(), "SE01 = segments ST..SE");
                assert_eq!(st[2], se[2], "ST02 = SE02");
                assert!(!st02s.contains(&st[2]), "ST02 {} repeats", st[2]);
                st02s.push(st[2].clone());
                sets += 1;
                lins.push(lin);
                i += 1;
            }
            let ge = &s[i];
            assert_eq!(ge[0], "GE", "segment {}", i + 1);
            assert_eq!(ge[1], sets.to_string(), "GE01 = sets in the group");
            assert_eq!(gs[6], ge[2], "GS06 = GE02");
            i += 1;
        }
        lins
    }

    /// The same interchange with the times of the sync replaced by
    /// fixed-width placeholders (ISA09/ISA10, GS04/GS05, BIA04/BIA05), after
    /// checking that each is the sync's start time in UTC.
    fn normalized(&self, started_at: &str) -> String {
        let t = chrono::DateTime::parse_from_rfc3339(started_at)
            .unwrap_or_else(|e| panic!("started_at {started_at:?}: {e}"))
            .with_timezone(&chrono::Utc);
        let (yymmdd, ccyymmdd, hhmm) = (
            t.format("%y%m%d").to_string(),
            t.format("%Y%m%d").to_string(),
            t.format("%H%M").to_string(),
        );
        let mut c = X12 {
            elem: self.elem,
            term: self.term,
            segs: self.segs.clone(),
        };
        for seg in &mut c.segs {
            let (d, tm, dv, ph) = match seg[0].as_str() {
                "ISA" => (9, 10, &yymmdd, "YYMMDD"),
                "GS" => (4, 5, &ccyymmdd, "CCYYMMDD"),
                "BIA" => (4, 5, &ccyymmdd, "CCYYMMDD"),
                _ => continue,
            };
            assert_eq!(&seg[d], dv, "{}{d:02} is the sync date", seg[0]);
            assert_eq!(seg[tm], hhmm, "{}{tm:02} is the sync time", seg[0]);
            seg[d] = ph.into();
            seg[tm] = "HHMM".into();
        }
        c.render()
    }
}

/// Reads a delivered feed, checks the parse round-trips to the exact bytes.
fn read_x12(path: &str) -> (String, X12) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let x = X12::parse(&text);
    assert_eq!(x.render(), text, "feed is exactly its segments");
    (text, x)
}

fn lin_qty(x: &X12) -> Vec<String> {
    x.segs
        .iter()
        .filter(|s| s[0] == "LIN" || s[0] == "QTY")
        .map(|s| s.join("*"))
        .collect()
}

// ----- 1. the 846 feed, byte for byte -----

const EXPECT_4010: &str = "ISA*00*          *00*          *ZZ*ACMEWHSE       *08*925485US00     *YYMMDD*HHMM*U*00401*000000001*0*P*>~\
GS*IB*ACMEWHSE*925485US00*CCYYMMDD*HHMM*1*X*004010~\
ST*846*0001~\
BIA*00*SI*1*CCYYMMDD*HHMM~\
LIN*1*UP*012345678905*VN*A~\
QTY*33*10*EA~\
LIN*2*UP*036000291452*VN*B~\
QTY*33*0*EA~\
LIN*3*UP*042100005264*VN*D~\
QTY*33*0*EA~\
CTT*3~\
SE*10*0001~\
GE*1*1~\
IEA*1*000000001~";

fn feed_846_exact(version: &str, expect: &str) {
    let ws = retail_ws(version);
    ws.apply("wms", "s1.csv", &abcd());
    let v = ws.sync("retail", &[], 0);
    assert_eq!(v["outcome"], "sent", "{v}");
    assert_eq!(v["items"], 3, "{v}");
    // C has no UPC: left out and counted.
    assert_eq!(
        v["missing"],
        serde_json::json!([{"field": "missing upc", "items": 1}]),
        "{v}"
    );
    assert_eq!(v["reason"], "1 left out: missing upc", "{v}");
    assert_eq!(v["interchange_control"], 1, "{v}");
    assert_eq!(v["group_control"], 1, "{v}");
    let file = v["file"].as_str().unwrap();
    assert_eq!(
        Path::new(file),
        ws.path("out/retail/retail-000001.x12").as_path()
    );
    let (text, x) = read_x12(file);
    assert_eq!(v["bytes"], text.len() as u64);
    assert_eq!(v["sha256"], sha256_hex(text.as_bytes()));
    assert_eq!(x.check_envelope(), vec![3]);
    assert_eq!(x.normalized(v["started_at"].as_str().unwrap()), expect);
    assert!(!text.contains("*C~"), "C (no UPC) is left out");
    // Archived byte for byte.
    let archived = std::fs::read_to_string(v["archived"].as_str().unwrap()).unwrap();
    assert_eq!(archived, text);
    x12_validate(&[Path::new(file)]);
}

#[test]
fn feed_846_4010_exact_bytes_counts_missing_upc_and_valid() {
    feed_846_exact("004010", EXPECT_4010);
}

#[test]
fn feed_846_5010_exact_bytes_repetition_separator_and_valid() {
    // 005010: ISA11 is the repetition separator '^', ISA12 00501, GS08 005010.
    let expect = EXPECT_4010
        .replace("*HHMM*U*00401*", "*HHMM*^*00501*")
        .replace("*X*004010~", "*X*005010~");
    feed_846_exact("005010", &expect);
}

// ----- 2. x12-846 carts are always full -----

#[test]
fn x12_cart_is_always_full_even_with_full_sync_false() {
    let ws = retail_ws("004010");
    ws.apply("wms", "s1.csv", &abcd());
    let v1 = ws.sync("retail", &[], 0);
    assert_eq!(v1["outcome"], "sent", "{v1}");
    let (_, x1) = read_x12(v1["file"].as_str().unwrap());
    // The changed-only CSV cart, for contrast, is gated after its first sync.
    assert_eq!(ws.sync("shop", &[], 0)["outcome"], "sent");
    assert_eq!(ws.sync("shop", &[], 0)["outcome"], "skipped");

    // No new inventory, nothing changed: the 846 is sent again, in full.
    let v2 = ws.sync("retail", &[], 0);
    assert_eq!(v2["outcome"], "sent", "{v2}");
    assert_eq!(v2["reason"], "1 left out: missing upc", "{v2}");
    assert_eq!(v2["items"], 3, "{v2}");
    let (_, x2) = read_x12(v2["file"].as_str().unwrap());
    x2.check_envelope();
    let every = vec![
        "LIN*1*UP*012345678905*VN*A",
        "QTY*33*10*EA",
        "LIN*2*UP*036000291452*VN*B",
        "QTY*33*0*EA",
        "LIN*3*UP*042100005264*VN*D",
        "QTY*33*0*EA",
    ];
    assert_eq!(lin_qty(&x1), every);
    assert_eq!(lin_qty(&x2), every);
    assert_eq!(x2.one("ISA")[13], "000000002");

    // A change to one SKU: still every SKU, with the new value.
    ws.apply(
        "wms",
        "s2.csv",
        &format!("{INV_H}A,W1,7,2025-06-01T11:00:00Z,012345678905,\n"),
    );
    let v3 = ws.sync("retail", &[], 0);
    let (_, x3) = read_x12(v3["file"].as_str().unwrap());
    let mut every3 = every.clone();
    every3[1] = "QTY*33*7*EA";
    assert_eq!(lin_qty(&x3), every3);
    assert_eq!(
        ws.files_under("out/retail"),
        vec![
            "retail-000001.x12",
            "retail-000002.x12",
            "retail-000003.x12"
        ]
    );
}

// ----- 3. a large catalog: sets of at most 10,000 LIN loops -----

#[test]
fn catalog_of_25000_items_makes_three_sets_in_one_group() {
    let ws = retail_ws("004010");
    let mut csv = String::with_capacity(25_000 * 48);
    csv.push_str(INV_H);
    for i in 0..25_000u64 {
        csv.push_str(&format!(
            "S{i:05},W1,{},{T0},{},\n",
            i % 97,
            upc(&format!("{}", 40_000_000_000 + i))
        ));
    }
    let v = ws.apply("wms", "big.csv", &csv);
    assert_eq!(v["rows"], 25_000);
    let v = ws.sync("retail", &[], 0);
    assert_eq!(v["outcome"], "sent", "{v}");
    assert_eq!(v["items"], 25_000, "{v}");
    let (text, x) = read_x12(v["file"].as_str().unwrap());
    assert_eq!(x.check_envelope(), vec![10_000, 10_000, 5_000]);
    assert_eq!(x.all("GS").len(), 1);
    assert_eq!(x.all("ISA").len(), 1);
    let st02: Vec<&str> = x.all("ST").iter().map(|s| s[2].as_str()).collect();
    assert_eq!(st02, ["0001", "0002", "0003"]);
    let se01: Vec<&str> = x.all("SE").iter().map(|s| s[1].as_str()).collect();
    assert_eq!(se01, ["20004", "20004", "10004"]);
    // Every BIA carries the interchange number; LIN01 restarts in each set.
    for bia in x.all("BIA") {
        assert_eq!(bia[3], "1");
    }
    let lins = x.all("LIN");
    assert_eq!(lins.len(), 25_000);
    let lin = |seq: u32, i: u64| {
        format!(
            "LIN*{seq}*UP*{}*VN*S{i:05}",
            upc(&(40_000_000_000 + i).to_string())
        )
    };
    assert_eq!(lins[0].join("*"), lin(1, 0));
    assert_eq!(lins[9_999].join("*"), lin(10_000, 9_999));
    assert_eq!(lins[10_000].join("*"), lin(1, 10_000));
    assert_eq!(lins[24_999].join("*"), lin(5_000, 24_999));
    let qty_sum: i64 = x
        .all("QTY")
        .iter()
        .map(|q| q[2].parse::<i64>().unwrap())
        .sum();
    assert_eq!(qty_sum, (0..25_000i64).map(|i| i % 97).sum::<i64>());
    assert_eq!(v["bytes"], text.len() as u64);
    x12_validate(&[Path::new(v["file"].as_str().unwrap())]);
}

// ----- 4. control numbers -----

fn isa13(v: &Value) -> String {
    let (_, x) = read_x12(v["file"].as_str().unwrap());
    x.check_envelope();
    let gs06 = x.one("GS")[6].clone();
    let isa13 = x.one("ISA")[13].clone();
    assert_eq!(
        gs06.parse::<i64>().unwrap(),
        v["group_control"].as_i64().unwrap()
    );
    assert_eq!(
        isa13.parse::<i64>().unwrap(),
        v["interchange_control"].as_i64().unwrap()
    );
    isa13
}

#[test]
fn control_numbers_are_consecutive_persist_and_never_repeat() {
    let ws = retail_ws("004010");
    ws.apply("wms", "s1.csv", &abcd());
    let v1 = ws.sync("retail", &[], 0);
    assert_eq!(isa13(&v1), "000000001");
    let v2 = ws.sync("retail", &[], 0);
    assert_eq!(isa13(&v2), "000000002");

    // A dry run peeks at the next number but does not take it.
    let preview = ws.path("preview.x12");
    let d = ws.sync(
        "retail",
        &["--dry-run", "--output", preview.to_str().unwrap()],
        0,
    );
    assert_eq!(d["outcome"], "dry-run", "{d}");
    assert_eq!(d["interchange_control"], 3, "{d}");
    let (_, px) = read_x12(preview.to_str().unwrap());
    assert_eq!(px.one("ISA")[13], "000000003");
    let d = ws.sync("retail", &["--dry-run"], 0);
    assert_eq!(d["interchange_control"], 3, "{d}");

    // A failed delivery (the outbox is a regular file) still uses up its number.
    std::fs::rename(ws.path("out/retail"), ws.path("out/retail.saved")).unwrap();
    ws.write("out/retail", "not a folder");
    let f = ws.sync("retail", &[], 1);
    assert_eq!(f["outcome"], "failed", "{f}");
    assert!(
        f["reason"].as_str().unwrap().starts_with("delivery failed"),
        "{f}"
    );
    assert_eq!(f["interchange_control"], 3, "{f}");
    assert_eq!(f["group_control"], 3, "{f}");
    assert_eq!(f["file"], Value::Null);
    std::fs::remove_file(ws.path("out/retail")).unwrap();
    std::fs::rename(ws.path("out/retail.saved"), ws.path("out/retail")).unwrap();

    // The next success takes a new one: 3 is never sent.
    let v4 = ws.sync("retail", &[], 0);
    assert_eq!(isa13(&v4), "000000004");
    let v5 = ws.sync("retail", &[], 0);
    assert_eq!(isa13(&v5), "000000005");

    // Every file delivered has its own number.
    let mut seen = vec![];
    for f in ws.files_under("out/retail") {
        let (_, x) = read_x12(ws.path(&format!("out/retail/{f}")).to_str().unwrap());
        seen.push(x.one("ISA")[13].clone());
    }
    seen.sort();
    assert_eq!(seen, ["000000001", "000000002", "000000004", "000000005"]);

    // history --json: newest first, failed attempt included, dry runs absent.
    let h = ws.history("retail");
    let got: Vec<(String, i64, i64)> = h
        .iter()
        .map(|e| {
            (
                e["outcome"].as_str().unwrap().to_string(),
                e["interchange_control"].as_i64().unwrap_or(-1),
                e["group_control"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    let want: Vec<(String, i64, i64)> = [
        ("sent", 5),
        ("sent", 4),
        ("failed", 3),
        ("sent", 2),
        ("sent", 1),
    ]
    .iter()
    .map(|(o, n)| (o.to_string(), *n, *n))
    .collect();
    assert_eq!(got, want, "{h:?}");
}

#[test]
fn carts_to_the_same_partner_share_one_control_number_sequence() {
    // Two 846 carts with the same sender/receiver: one sequence, no repeats.
    let ws = Workspace::standard(&format!(
        "{}{}",
        x12_cart("retail", ""),
        x12_cart("retail2", "")
    ));
    ws.mapping("r846", &r846("004010"));
    ws.apply("wms", "s1.csv", &abcd());
    let a = ws.sync("retail", &[], 0);
    let b = ws.sync("retail2", &[], 0);
    let c = ws.sync("retail", &[], 0);
    assert_eq!(
        [isa13(&a), isa13(&b), isa13(&c)],
        ["000000001", "000000002", "000000003"]
    );
}

// ----- 5. inbound 846 -----

fn x12_inbound(id: &str, kind: &str, mapping: &str) -> String {
    inbound(id, "m1", kind, mapping, "warehouse = \"EDI\"")
}

fn x12_in_mapping(record: &str, sku_q: &str, qty_q: &str) -> String {
    format!(
        "format = \"x12\"\nrecord = \"{record}\"\nsku_qualifier = \"{sku_q}\"\nquantity_qualifier = \"{qty_q}\"\n"
    )
}

/// Copies a shared sample into the (temporary) workspace and returns its path there.
fn sample_in(ws: &Workspace, name: &str) -> PathBuf {
    let body = std::fs::read(x12_sample(name)).unwrap();
    ws.write(&format!("samples/{name}"), body)
}

#[test]
fn inbound_846_sanmina_sample_applies_with_dtm_as_of() {
    let ws = Workspace::standard(&x12_inbound("sanmina", "inventory", "sanmina"));
    ws.mapping("sanmina", &x12_in_mapping("inventory", "BP", "34"));
    let p = sample_in(&ws, "oopfactory_ORD__846_Example1.txt");
    let v = ws.ingest("sanmina", &p, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(v["rows"], 1, "{v}");
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
    let e = ws.explain("46L5055", None);
    assert_eq!(e["available"], 5250, "{e}");
    assert_eq!(
        e["warehouses"],
        serde_json::json!([{
            "warehouse": "EDI",
            "quantity": 5250,
            "as_of": "2004-08-11T23:00:00+00:00",
            "report": "oopfactory_ORD__846_Example1.txt"
        }]),
        "{e}"
    );
    // Archived byte for byte (BOM, CRLF and indentation included).
    let archived = std::fs::read(v["archived"].as_str().unwrap()).unwrap();
    assert_eq!(
        archived,
        std::fs::read(x12_sample("oopfactory_ORD__846_Example1.txt")).unwrap()
    );
}

#[test]
fn inbound_846_with_missing_terminators_is_rejected_and_quarantined() {
    let ws = Workspace::standard(&x12_inbound("sanmina", "inventory", "sanmina"));
    ws.mapping("sanmina", &x12_in_mapping("inventory", "BP", "34"));
    ws.apply("wms", "s1.csv", &format!("{INV_H}38490-B,EDI,3,{T0},,\n"));
    let before = ws.ledger_dump();
    let name = "oopfactory_ORD__846_Example2.txt";
    let p = sample_in(&ws, name);
    let o = ws.run_ok(
        &[
            "ingest",
            "--source",
            "sanmina",
            "--json",
            p.to_str().unwrap(),
        ],
        1,
    );
    let v = &o.json()[0];
    assert_eq!(v["outcome"], "rejected", "{v}");
    let errors: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    // "REF~ZZ~ASIAQTY~17~403.32~FT": the lost terminator, named by segment and position.
    assert!(
        errors
            .iter()
            .any(|e| e.contains("REF at segment 15") && e.contains("missing segment terminator")),
        "{errors:?}"
    );
    let q = ws.path(&format!("var/quarantine/sanmina/{name}"));
    assert_eq!(std::fs::read(&q).unwrap(), std::fs::read(&p).unwrap());
    let txt = ws.read(&format!("var/quarantine/sanmina/{name}.error.txt"));
    assert!(txt.starts_with("outcome: rejected\n"), "{txt}");
    assert!(txt.contains("REF at segment 15"), "{txt}");
    assert_eq!(ws.ledger_dump(), before);
    assert_eq!(ws.value("38490-B", "shop"), 3);
}

#[test]
fn inbound_846_5010_sample_with_vn_and_qty_33() {
    let ws = Workspace::standard(&x12_inbound("edi", "inventory", "edi"));
    ws.mapping("edi", &x12_in_mapping("inventory", "VN", "33"));
    let p = sample_in(
        &ws,
        "crate_x12-types-0.12.0_v005010_846_full_transmission.edi",
    );
    let v = ws.ingest("edi", &p, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(v["rows"], 1, "{v}");
    let e = ws.explain("ABC123", None);
    assert_eq!(e["available"], 100, "{e}");
    // No DTM: the as-of is BIA04 (20200101), midnight UTC.
    assert_eq!(
        e["warehouses"][0]["as_of"], "2020-01-01T00:00:00+00:00",
        "{e}"
    );
    assert_eq!(e["warehouses"][0]["warehouse"], "EDI", "{e}");
}

// ----- 6. inbound 850 as orders -----

/// A one-line 850 with correct counts.
fn po850(po: &str, sku: &str, qty: u32) -> String {
    [
        "ISA*00*          *00*          *ZZ*BUYER          *ZZ*ACMEWHSE       *260101*1200*U*00401*000000042*0*P*>",
        "GS*PO*BUYER*ACMEWHSE*20260101*1200*42*X*004010",
        "ST*850*0001",
        &format!("BEG*00*SA*{po}**20260101"),
        &format!("PO1*1*{qty}*EA***VN*{sku}"),
        "CTT*1",
        "SE*5*0001",
        "GE*1*42",
        "IEA*1*000000042",
    ]
    .iter()
    .map(|s| format!("{s}~\n"))
    .collect()
}

#[test]
fn inbound_850_purchase_order_subtracts_from_stock() {
    let ws = Workspace::standard(&format!(
        "{}{}",
        x12_inbound("po", "orders", "po"),
        x12_cart("retail", "")
    ));
    ws.mapping("po", &x12_in_mapping("orders", "VN", "33"));
    ws.mapping("r846", &r846("004010"));
    ws.apply("wms", "s1.csv", &abcd());
    let p = ws.write("po/po123.x12", po850("PO123", "A", 5));
    let v = ws.ingest("po", &p, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(v["rows"], 1, "{v}");
    let e = ws.explain("A", None);
    assert_eq!(
        e["orders_subtracted"],
        serde_json::json!([{
            "order_id": "PO123",
            "line": "1",
            "quantity": 5,
            // BEG05 is a date alone: an order is the end of that day
            // (rule 16), here earlier than the file's receipt.
            "ordered_at": "2026-01-01T23:59:59.999+00:00"
        }]),
        "{e}"
    );
    assert_eq!(e["available"], 5, "{e}");
    // The same PO again is a duplicate; a corrected PO updates the line, never doubles it.
    assert_eq!(ws.ingest("po", &p, 0)["outcome"], "duplicate");
    let p2 = ws.write("po/po123b.x12", po850("PO123", "A", 6));
    assert_eq!(ws.ingest("po", &p2, 0)["outcome"], "applied");
    assert_eq!(ws.explain("A", None)["available"], 4);
    // And the 846 carries it.
    let v = ws.sync("retail", &[], 0);
    let (_, x) = read_x12(v["file"].as_str().unwrap());
    assert_eq!(lin_qty(&x)[1], "QTY*33*4*EA");
}

// ----- 7. the demo workspace -----

#[test]
fn init_workspace_run_once_846_is_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let o = run_bin(&["init".into(), dir.display().to_string()], tmp.path());
    assert_eq!(o.code, 0, "{o:?}");
    let cfg = dir.join("stockgate.toml").display().to_string();
    let o = run_bin(
        &["--config".into(), cfg, "run".into(), "--once".into()],
        &dir,
    );
    assert_eq!(o.code, 0, "{o:?}");
    let out = dir.join("var/outbox/acme-retailer");
    let files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}\n{o:?}");
    let f = &files[0];
    let name = f.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("846-acme-") && name.ends_with(".x12"),
        "{name}"
    );
    let text = std::fs::read_to_string(f).unwrap();
    // line_break = true in the demo mapping: one segment a line.
    assert!(text.lines().all(|l| l.ends_with('~')), "{text}");
    let x = X12::parse(&text);
    assert_eq!(x.check_envelope(), vec![3]);
    assert_eq!(x.one("ISA")[15], "T");
    // GIZMO-3 has no UPC: left out. WIDGET-1 is 40+10+12 less the open order
    // placed after the count (3), when that order time has passed.
    let order_passed = now_secs() > epoch("2026-11-20T15:00:00Z");
    let (w, g) = if order_passed { (59, 6) } else { (62, 7) };
    assert_eq!(
        lin_qty(&x),
        vec![
            "LIN*1*UP*042100005264*VN*BOLT-4".to_string(),
            "QTY*33*0*EA".into(),
            "LIN*2*UP*036000291452*VN*GADGET-2".into(),
            format!("QTY*33*{g}*EA"),
            "LIN*3*UP*012345678905*VN*WIDGET-1".into(),
            format!("QTY*33*{w}*EA"),
        ]
    );
    x12_validate(&[f]);
}

// ----- 997 acknowledgments for received X12 -----

/// An inventory X12 source `sanmina` (BP / 34) that answers with 997s into out/acks.
fn acking_ws() -> Workspace {
    let ws = Workspace::standard(&x12_inbound("sanmina", "inventory", "sanmina").replace(
        "[inbound.transport]",
        "acknowledge = true\n[inbound.ack_transport]\ntype = \"dir\"\npath = \"out/acks\"\n\n[inbound.transport]",
    ));
    ws.mapping("sanmina", &x12_in_mapping("inventory", "BP", "34"));
    ws
}

#[test]
fn acks_997_for_accepted_and_rejected_846_are_valid() {
    let ws = acking_ws();
    let p1 = sample_in(&ws, "oopfactory_ORD__846_Example1.txt");
    let v = ws.ingest("sanmina", &p1, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    let ack1 = v["ack"].as_str().expect("ack path").to_string();
    let text = std::fs::read_to_string(&ack1).unwrap();
    let x = X12::parse(&text);
    x.check_envelope();
    // Back to the sender: our ISA sender is their receiver.
    assert_eq!(x.one("ISA")[6].trim(), "SANMINACORP");
    assert_eq!(x.one("ISA")[8].trim(), "322341109");
    assert_eq!(x.one("GS")[1], "FA");
    assert_eq!(x.one("AK1")[1..], ["IB", "1979"]);
    assert_eq!(x.one("AK2")[1..], ["846", "1979"]);
    assert_eq!(x.one("AK5")[1..], ["A"]);
    assert_eq!(x.one("AK9")[1..], ["A", "1", "1", "1"]);
    x12_validate(&[Path::new(&ack1)]);

    let p2 = sample_in(&ws, "oopfactory_ORD__846_Example2.txt");
    let v = ws.ingest("sanmina", &p2, 1);
    assert_eq!(v["outcome"], "rejected", "{v}");
    let ack2 = v["ack"].as_str().expect("ack path").to_string();
    let x = X12::parse(&std::fs::read_to_string(&ack2).unwrap());
    x.check_envelope();
    assert_eq!(x.one("AK5")[1], "R");
    assert_eq!(x.one("AK9")[1], "R");
    x12_validate(&[Path::new(&ack2)]);
}

#[test]

fn acks_997_for_two_partners_never_overwrite_each_other() {
    let ws = acking_ws();
    let p1 = sample_in(&ws, "oopfactory_ORD__846_Example1.txt");
    let p2 = sample_in(&ws, "oopfactory_ORD__846_Example2.txt");
    // Both samples carry ISA13 000001979 but come from different senders.
    let o = ws.run(&[
        "ingest",
        "--source",
        "sanmina",
        "--json",
        p1.to_str().unwrap(),
        p2.to_str().unwrap(),
    ]);
    let v = o.json();
    let acks: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["ack"].as_str().unwrap())
        .collect();
    assert_ne!(acks[0], acks[1], "{v}");
    assert_eq!(ws.files_under("out/acks").len(), 2, "{v}");
}

#[test]
fn a_sku_holding_a_separator_is_left_out_not_blocking_the_846() {
    let ws = retail_ws("004010");
    ws.apply(
        "wms",
        "s1.csv",
        &format!("{INV_H}A,W1,10,{T0},012345678905,\nBAD*1,W1,3,{T0},036000291452,\nE,W1,2,{T0},042100005264,\n"),
    );
    let v = ws.sync("retail", &[], 0);
    assert_eq!(v["outcome"], "sent", "{v}");
    assert_eq!(v["items"], 2, "{v}");
    assert_eq!(
        v["missing"],
        serde_json::json!([{"field": "invalid sku (a separator character, or over 48 characters)", "items": 1}]),
        "{v}"
    );
    let file = v["file"].as_str().unwrap();
    let (_, x) = read_x12(file);
    assert_eq!(
        lin_qty(&x),
        [
            "LIN*1*UP*012345678905*VN*A",
            "QTY*33*10*EA",
            "LIN*2*UP*042100005264*VN*E",
            "QTY*33*2*EA"
        ]
    );
    x12_validate(&[Path::new(file)]);
}

// ----- issue 9: X12 as trading partners really send it -----
// Every file below is a minimal interchange written for the test.

/// One interchange: ISA/IEA (ISA12 `isa12`) around `groups`, each
/// (GS01, GS02, GS03, GS08, sets), each set (ST01, ST02, body segments
/// between ST and SE, each ending in `~`). Counts and trailers computed;
/// GS06 = 10 * n + the group's ordinal.
type Set<'a> = (&'a str, &'a str, &'a str);
type Group<'a> = (&'a str, &'a str, &'a str, &'a str, &'a [Set<'a>]);
fn ic(n: u32, from: &str, to: &str, isa12: &str, groups: &[Group]) -> String {
    let mut s = format!(
        "ISA*00*          *00*          *ZZ*{from:<15}*ZZ*{to:<15}*261120*0800*U*{isa12}*{n:09}*0*P*>~\n"
    );
    for (gi, (fid, gs02, gs03, gs08, sets)) in groups.iter().enumerate() {
        let ctl = 10 * n + gi as u32 + 1;
        s += &format!("GS*{fid}*{gs02}*{gs03}*20261120*0800*{ctl}*X*{gs08}~\n");
        for (st01, st02, body) in sets.iter() {
            let segs = body.matches('~').count() + 2;
            s += &format!("ST*{st01}*{st02}~\n{body}\nSE*{segs}*{st02}~\n");
        }
        s += &format!("GE*{}*{ctl}~\n", sets.len());
    }
    s + &format!("IEA*{}*{n:09}~\n", groups.len())
}

/// An interchange `n` from BUYER to GATE (004010) holding one 850, `body`.
fn po_850(n: u32, body: &str) -> String {
    ic(
        n,
        "BUYER",
        "GATE",
        "00401",
        &[("PO", "BUYER", "GATE", "004010", &[("850", "0001", body)])],
    )
}

/// An 846 from warehouse WHSE (GS ids WHSEAPP/GATEAPP) to us, 004010.
fn wh846(n: u32, body: &str) -> String {
    ic(
        n,
        "WHSE",
        "GATE",
        "00401",
        &[(
            "IB",
            "WHSEAPP",
            "GATEAPP",
            "004010",
            &[("846", "0001", body)],
        )],
    )
}

/// Workspace: X12 inventory source `wh` (warehouse EDI) answering with
/// 997s into out/acks, X12 orders source `po`, the retail x12 cart, and
/// the given extra lines for the `wh` mapping.
fn edi_ws(wh_mapping_extra: &str, po_mapping_extra: &str) -> Workspace {
    let acking = |id: &str, kind: &str| {
        x12_inbound(id, kind, id).replace(
            "[inbound.transport]",
            "acknowledge = true\n[inbound.ack_transport]\ntype = \"dir\"\npath = \"out/acks\"\n\n[inbound.transport]",
        )
    };
    let ws = Workspace::standard(&format!(
        "{}{}{}{}",
        acking("wh", "inventory"),
        acking("po", "orders"),
        x12_inbound("retailer", "inventory", "retailer"),
        x12_cart("retail", "")
    ));
    ws.mapping(
        "wh",
        &format!(
            "{}{wh_mapping_extra}",
            x12_in_mapping("inventory", "VN", "33")
        ),
    );
    ws.mapping(
        "po",
        &format!("{}{po_mapping_extra}", x12_in_mapping("orders", "VN", "33")),
    );
    ws.mapping("retailer", &x12_in_mapping("inventory", "VN", "33"));
    ws.mapping("r846", &r846("004010"));
    ws
}

/// The 997s written to out/acks, parsed, each checked by both validators.
fn acks_sent(ws: &Workspace) -> Vec<X12> {
    let files = ws.files_under("out/acks");
    let paths: Vec<PathBuf> = files
        .iter()
        .map(|f| ws.path(&format!("out/acks/{f}")))
        .collect();
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    if !refs.is_empty() {
        x12_validate(&refs);
    }
    paths
        .iter()
        .map(|p| {
            let x = X12::parse(&std::fs::read_to_string(p).unwrap());
            x.check_envelope();
            x
        })
        .collect()
}

fn warehouse_as_of(ws: &Workspace, sku: &str) -> String {
    let e = ws.explain(sku, None);
    e["warehouses"][0]["as_of"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn issue9_1_dtm_sets_the_as_of_only_with_an_as_of_qualifier() {
    let ws = edi_ws("", "");
    // 036 = expiration: the count is BIA04/BIA05, 2026-11-20 08:00.
    let p = ws.write(
        "in/wh/a.x12",
        wh846(
            1,
            "BIA*00*SI*R1*20261120*0800~DTM*036*20301231~LIN*1*VN*A~QTY*33*5*EA~CTT*1~",
        ),
    );
    let v = ws.ingest("wh", &p, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(warehouse_as_of(&ws, "A"), "2026-11-20T08:00:00+00:00");
    // The next day's real report is not stale.
    let p = ws.write(
        "in/wh/b.x12",
        wh846(
            2,
            "BIA*00*SI*R2*20261121*0800~DTM*036*20301231~LIN*1*VN*A~QTY*33*7*EA~CTT*1~",
        ),
    );
    let v = ws.ingest("wh", &p, 0);
    assert_eq!(
        (v["outcome"].as_str(), v["stale"].as_u64()),
        (Some("applied"), Some(0)),
        "{v}"
    );
    assert_eq!(ws.explain("A", None)["available"], 7);
    // 007 = effective: that date (alone: the start of the day).
    let p = ws.write(
        "in/wh/c.x12",
        wh846(
            3,
            "BIA*00*SI*R3*20261120*0800~DTM*007*20261122~LIN*1*VN*A~QTY*33*8*EA~CTT*1~",
        ),
    );
    ws.ingest("wh", &p, 0);
    assert_eq!(warehouse_as_of(&ws, "A"), "2026-11-22T00:00:00+00:00");
    // No BIA date, no usable DTM: the file's time, with a warning in X12 terms.
    let p = ws.write(
        "in/wh/d.x12",
        wh846(
            4,
            "BIA*00*SI*R4~DTM*036*20301231~LIN*1*VN*B~QTY*33*2*EA~CTT*1~",
        ),
    );
    set_mtime(&p, epoch("2026-11-23T10:00:00Z"));
    let v = ws.ingest("wh", &p, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(warehouse_as_of(&ws, "B"), "2026-11-23T10:00:00+00:00");
    let w = v["warnings"].to_string();
    assert!(
        w.contains("no BIA04 date and no header DTM with DTM01 007/009/097/194"),
        "{v}"
    );
    // as_of_qualifiers changes the list.
    let ws = edi_ws("as_of_qualifiers = [\"011\"]\n", "");
    let p = ws.write("in/wh/e.x12", wh846(5, "BIA*00*SI*R5*20261120*0800~DTM*007*20261122~DTM*011*20261119*1530~LIN*1*VN*A~QTY*33*8*EA~CTT*1~"));
    ws.ingest("wh", &p, 0);
    assert_eq!(warehouse_as_of(&ws, "A"), "2026-11-19T15:30:00+00:00");
}

#[test]
fn issue9_2_lin_without_the_qty_is_left_out_and_counted() {
    let ws = edi_ws("", "");
    let body = "BIA*00*SI*R1*20261120*0800~\
LIN*149*VP*SAMPLE-203*MF*ACME*VN*PRICE-ONLY*UP*012345678905~PID*F*08***Price-only line~CTP*WH*WHL*47.13~\
LIN*150*VN*B~QTY*33*6*EA~CTT*2~";
    let p = ws.write("in/wh/a.x12", wh846(1, body));
    let v = ws.ingest("wh", &p, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(v["rows"], 1, "{v}");
    assert_eq!(
        v["left_out"],
        serde_json::json!([{"reason": "no quantity", "items": 1}]),
        "{v}"
    );
    assert_eq!(ws.explain("B", None)["available"], 6);
    assert_eq!(ws.explain("PRICE-ONLY", None)["known"], false);
    // The partner is told the file was accepted.
    let acks = acks_sent(&ws);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].one("AK5")[1..], ["A"]);
    assert_eq!(acks[0].one("AK9")[1], "A");
}

#[test]
fn issue9_3_several_interchanges_in_one_file() {
    let ws = edi_ws("", "");
    let two = format!(
        "{}{}",
        wh846(
            1,
            "BIA*00*SI*R1*20261120*0800~LIN*1*VN*A~QTY*33*5*EA~CTT*1~"
        ),
        wh846(
            2,
            "BIA*00*SI*R2*20261120*0800~LIN*1*VN*B~QTY*33*6*EA~CTT*1~"
        )
    );
    let p = ws.write("in/wh/two.x12", &two);
    let v = ws.ingest("wh", &p, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(v["rows"], 2, "{v}");
    assert_eq!(ws.explain("A", None)["available"], 5);
    assert_eq!(ws.explain("B", None)["available"], 6);
    // Each interchange is acknowledged by its own 997.
    let acks = acks_sent(&ws);
    assert_eq!(acks.len(), 2, "{v}");
    let mut ak1: Vec<String> = acks.iter().map(|a| a.one("AK1")[2].clone()).collect();
    ak1.sort();
    assert_eq!(ak1, ["11", "21"]);
    assert_eq!(v["ack"].as_str().unwrap().matches("997-").count(), 2, "{v}");

    // Whole or not at all: a bad quantity in the second interchange rejects both.
    let bad = format!(
        "{}{}",
        wh846(
            3,
            "BIA*00*SI*R3*20261121*0800~LIN*1*VN*A~QTY*33*50*EA~CTT*1~"
        ),
        wh846(
            4,
            "BIA*00*SI*R4*20261121*0800~LIN*1*VN*B~QTY*33*6.5*EA~CTT*1~"
        )
    );
    let p = ws.write("in/wh/bad.x12", &bad);
    let v = ws.ingest("wh", &p, 1);
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert_eq!(ws.explain("A", None)["available"], 5);
    assert_eq!(ws.explain("B", None)["available"], 6);
    // Both interchanges are answered, rejected.
    let acks = acks_sent(&ws);
    assert_eq!(acks.len(), 4);
    let rejected = acks.iter().filter(|a| a.one("AK9")[1] == "R").count();
    assert_eq!(rejected, 2);

    // Two 850s concatenated.
    let po = |n: u32, po: &str, q: u32| {
        ic(
            n,
            "BUYER",
            "GATE",
            "00401",
            &[(
                "PO",
                "BUYER",
                "GATE",
                "004010",
                &[(
                    "850",
                    "0001",
                    &format!("BEG*00*SA*{po}**20261120~PO1*1*{q}*EA***VN*A~CTT*1~"),
                )],
            )],
        )
    };
    let p = ws.write(
        "in/po/two.x12",
        format!("{}{}", po(7, "PO-1", 1), po(8, "PO-2", 2)),
    );
    let v = ws.ingest("po", &p, 0);
    assert_eq!(
        (v["outcome"].as_str(), v["rows"].as_u64()),
        (Some("applied"), Some(2)),
        "{v}"
    );
    assert_eq!(ws.explain("A", None)["available"], 2);
    // Trailing junk after the last IEA still rejects the file.
    let p = ws.write("in/po/junk.x12", format!("{}GS*PO*X~", po(9, "PO-3", 1)));
    let v = ws.ingest("po", &p, 1);
    assert!(
        v["errors"].to_string().contains("data after IEA: GS"),
        "{v}"
    );
}

/// The retail cart has sent two 846s (groups 1 and 2).
fn two_846s_sent() -> Workspace {
    let ws = edi_ws("", "");
    ws.apply("wms", "s1.csv", &abcd());
    assert_eq!(ws.sync("retail", &[], 0)["group_control"], 1);
    assert_eq!(ws.sync("retail", &[], 0)["group_control"], 2);
    ws
}

fn ack_by_group(ws: &Workspace, g: i64) -> Value {
    let sent: Vec<Value> = ws
        .history("retail")
        .into_iter()
        .filter(|h| h["outcome"] == "sent")
        .collect();
    sent.iter()
        .find(|h| h["group_control"] == g)
        .unwrap_or_else(|| panic!("{sent:?}"))["ack"]
        .clone()
}

/// A 997 from the retailer (925485US00) to us, ISA13 `n`, with `body`.
fn retailer_ack(n: u32, body: &str) -> String {
    ic(
        n,
        "925485US00",
        "ACMEWHSE",
        "00401",
        &[(
            "FA",
            "925485US00",
            "ACMEWHSE",
            "004010",
            &[("997", "0001", body)],
        )],
    )
}

#[test]
fn issue9_4_an_846_group_beside_a_997_group() {
    let ws = two_846s_sent();
    // One interchange from the retailer: an 846 group and a 997 group for our group 2.
    let mixed = ic(
        32,
        "925485US00",
        "ACMEWHSE",
        "00401",
        &[
            (
                "IB",
                "925485US00",
                "ACMEWHSE",
                "004010",
                &[(
                    "846",
                    "0001",
                    "BIA*00*SI*R9*20261120*0800~LIN*1*VN*RT-1~QTY*33*9*EA~CTT*1~",
                )],
            ),
            (
                "FA",
                "925485US00",
                "ACMEWHSE",
                "004010",
                &[("997", "0001", "AK1*IB*2~AK2*846*0001~AK5*A~AK9*A*1*1*1~")],
            ),
        ],
    );
    let p = ws.write("in/retailer/mixed.x12", &mixed);
    let v = ws.ingest("retailer", &p, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(v["rows"], 1, "{v}");
    assert_eq!(ws.explain("RT-1", None)["available"], 9);
    assert_eq!(ack_by_group(&ws, 2), "accepted");
    assert_eq!(ack_by_group(&ws, 1), "unacknowledged");
    // The same content on the acknowledging source: only the 846 group is acknowledged.
    let p = ws.write("in/wh/mixed.x12", &mixed);
    ws.ingest("wh", &p, 0);
    let acks = acks_sent(&ws);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].one("AK1")[1..], ["IB", "321"]);
}

#[test]
fn issue9_7_997_matching_needs_ib_and_846() {
    let ws = two_846s_sent();
    // An acknowledgment of an invoice group numbered 2 is not about our 846.
    let p = ws.write(
        "in/retailer/in-ack.x12",
        retailer_ack(31, "AK1*IN*2~AK2*810*0001~AK5*R*5~AK9*R*1*1*0~"),
    );
    let v = ws.ingest("retailer", &p, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(ack_by_group(&ws, 2), "unacknowledged");
    // Nor is an IB acknowledgment whose sets are not 846s.
    let p = ws.write(
        "in/retailer/odd-ack.x12",
        retailer_ack(33, "AK1*IB*2~AK2*810*0001~AK5*R*5~AK9*R*1*1*0~"),
    );
    ws.ingest("retailer", &p, 0);
    assert_eq!(ack_by_group(&ws, 2), "unacknowledged");
    // The acknowledgment of our 846 group 2 is.
    let p = ws.write(
        "in/retailer/ack.x12",
        retailer_ack(34, "AK1*IB*2~AK2*846*0001~AK5*R*5~AK9*R*1*1*0~"),
    );
    ws.ingest("retailer", &p, 0);
    assert_eq!(ack_by_group(&ws, 2), "rejected (set 0001: AK5 R 5)");
    assert_eq!(ack_by_group(&ws, 1), "unacknowledged");
}

#[test]
fn issue9_5_sku_qualifier_up_keeps_the_upc() {
    let ws = edi_ws("", "");
    ws.mapping("wh", &x12_in_mapping("inventory", "UP", "33"));
    let p = ws.write(
        "in/wh/a.x12",
        wh846(
            1,
            "BIA*00*SI*R1*20261120*0800~LIN*1*UP*012345678905~QTY*33*5*EA~CTT*1~",
        ),
    );
    assert_eq!(ws.ingest("wh", &p, 0)["outcome"], "applied");
    let v = ws.sync("retail", &[], 0);
    assert_eq!(v["outcome"], "sent", "{v}");
    assert_eq!(v["items"], 1, "{v}");
    assert!(v["reason"].is_null(), "nothing left out: {v}");
    let file = v["file"].as_str().unwrap();
    let (_, x) = read_x12(file);
    assert_eq!(
        lin_qty(&x),
        ["LIN*1*UP*012345678905*VN*012345678905", "QTY*33*5*EA"]
    );
    x12_validate(&[Path::new(file)]);
}

#[test]
fn issue9_6_upc_check_digits() {
    let ws = edi_ws("", "");
    ws.mapping("wh", &x12_in_mapping("inventory", "UP", "33"));
    let p = ws.write(
        "in/wh/a.x12",
        wh846(1, "BIA*00*SI*R1*20261120*0800~LIN*1*UP*012345678905~QTY*33*5*EA~LIN*2*UP*12345~QTY*33*4*EA~CTT*2~"),
    );
    let v = ws.ingest("wh", &p, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert!(
        v["warnings"].to_string().contains("segment 8: invalid upc"),
        "{v}"
    );
    let v = ws.apply(
        "wms",
        "s1.csv",
        &format!("{INV_H}A,W1,10,{T0},PHM-TAB-METF500,\nC,W1,3,{T0},036000291452,\nD,W1,1,{T0},036000291453,\n"),
    );
    assert!(
        v["warnings"].to_string().contains("line 2: invalid upc"),
        "{v}"
    );
    assert!(
        v["warnings"].to_string().contains("line 4: invalid upc"),
        "{v}"
    );
    let v = ws.sync("retail", &[], 0);
    assert_eq!(v["outcome"], "sent", "{v}");
    assert_eq!(v["items"], 2, "{v}");
    assert!(
        v["missing"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({"field": "invalid upc", "items": 3})),
        "{v}"
    );
    let file = v["file"].as_str().unwrap();
    let (_, x) = read_x12(file);
    assert_eq!(
        lin_qty(&x),
        [
            "LIN*1*UP*012345678905*VN*012345678905",
            "QTY*33*5*EA",
            "LIN*2*UP*036000291452*VN*C",
            "QTY*33*3*EA"
        ]
    );
    x12_validate(&[Path::new(file)]);
}

#[test]
fn issue9_8_our_997_answers_the_partner_gs_in_its_version() {
    let ws = edi_ws("", "");
    let p = ws.write(
        "in/wh/a.x12",
        wh846(
            1,
            "BIA*00*SI*R1*20261120*0800~LIN*1*VN*A~QTY*33*5*EA~CTT*1~",
        ),
    );
    ws.ingest("wh", &p, 0);
    let acks = acks_sent(&ws);
    let gs = acks[0].one("GS");
    assert_eq!((gs[2].as_str(), gs[3].as_str()), ("GATEAPP", "WHSEAPP"));
    assert_eq!(acks[0].one("ISA")[6].trim(), "GATE");
    // A 003040 PO with a one-digit ST02: answered in 003040, AK202 4 digits.
    let po = ic(
        2,
        "BUYER",
        "GATE",
        "00304",
        &[(
            "PO",
            "BUYERAPP",
            "GATEAPP",
            "003040",
            &[("850", "1", "BEG*00*SA*PO-9**20261120~PO1*1*1*EA***VN*A~")],
        )],
    );
    let p = ws.write("in/po/old.x12", &po);
    let v = ws.ingest("po", &p, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    let acks = acks_sent(&ws);
    let a = acks
        .iter()
        .find(|a| a.one("AK1")[1] == "PO")
        .expect("997 for the PO");
    assert_eq!(a.one("ISA")[12], "00304");
    assert_eq!(a.one("GS")[8], "003040");
    assert_eq!(a.one("AK2")[1..], ["850", "0001"]);
}

#[test]
fn issue9_9_sku_qualifier_list_in_po1_and_lin() {
    let ws = edi_ws("", "");
    ws.mapping(
        "po",
        "format = \"x12\"\nrecord = \"orders\"\nsku_qualifier = [\"VN\", \"N4\"]\n",
    );
    ws.mapping(
        "wh",
        "format = \"x12\"\nrecord = \"inventory\"\nsku_qualifier = [\"VN\", \"UP\"]\n",
    );
    let p = ws.write(
        "in/wh/a.x12",
        wh846(1, "BIA*00*SI*R1*20261120*0800~LIN*1*UP*012345678905~QTY*33*5*EA~LIN*2*VN*0002-1433-80~QTY*33*9*EA~CTT*2~"),
    );
    assert_eq!(ws.ingest("wh", &p, 0)["rows"], 2);
    let po = po_850(
        2,
        "BEG*00*SA*PO-1**20261120~PO1*1*1*EA***VN*012345678905~PO1*2*2*EA***N4*0002-1433-80~CTT*2~",
    );
    let p = ws.write("in/po/a.x12", &po);
    let v = ws.ingest("po", &p, 0);
    assert_eq!(
        (v["outcome"].as_str(), v["rows"].as_u64()),
        (Some("applied"), Some(2)),
        "{v}"
    );
    assert_eq!(ws.explain("012345678905", None)["available"], 4);
    assert_eq!(ws.explain("0002-1433-80", None)["available"], 7);
    // A list that is not a list of qualifiers is refused by check.
    ws.mapping(
        "po",
        "format = \"x12\"\nrecord = \"orders\"\nsku_qualifier = [\"VN\", 4]\n",
    );
    let o = ws.run(&["check"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stdout.contains("sku_qualifier") || o.stderr.contains("sku_qualifier"),
        "{o:?}"
    );
}

#[test]
fn issue9_10_units_in_x12_csv_and_xml() {
    let ws = edi_ws("[units]\nCA = 12\n", "[units]\nCA = 12\n");
    // QTY*33*3*CA is 36 eaches; PO1**2*CA is 24.
    let p = ws.write(
        "in/wh/a.x12",
        wh846(
            1,
            "BIA*00*SI*R1*20261120*0800~LIN*1*VN*A~QTY*33*3*CA~LIN*2*VN*B~QTY*33*5*EA~CTT*2~",
        ),
    );
    assert_eq!(ws.ingest("wh", &p, 0)["outcome"], "applied");
    assert_eq!(ws.explain("A", None)["available"], 36);
    let po = po_850(2, "BEG*00*SA*PO-1**20261120~PO1**2*CA***VN*A~CTT*1~");
    let p = ws.write("in/po/a.x12", &po);
    assert_eq!(ws.ingest("po", &p, 0)["outcome"], "applied");
    assert_eq!(ws.explain("A", None)["available"], 12);
    // A unit without an entry rejects the row, naming the unit.
    let before = ws.ledger_dump();
    let p = ws.write(
        "in/wh/b.x12",
        wh846(
            3,
            "BIA*00*SI*R3*20261121*0800~LIN*1*VN*A~QTY*33*1*PL~CTT*1~",
        ),
    );
    let v = ws.ingest("wh", &p, 1);
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert!(
        v["errors"]
            .to_string()
            .contains("unit \\\"PL\\\" has no entry in the mapping's [units] table (base unit EA)"),
        "{v}"
    );
    assert!(v["errors"].to_string().contains("QTY03"), "{v}");
    assert_eq!(ws.ledger_dump(), before);
    // CSV: a unit column; XML: a unit field.
    ws.mapping(
        "inv",
        &format!("{INV_MAPPING}unit = \"UOM\"\n[units]\nCS = 6\n")
            .replace("unit = \"UOM\"\n[units]", "[units]")
            .replace(
                "description = \"Title\"\n",
                "description = \"Title\"\nunit = \"UOM\"\n",
            ),
    );
    ws.apply(
        "wms",
        "u.csv",
        &format!(
            "SKU,Whse,Qty,AsOf,UPC,Title,UOM\nC,W1,2,{T0},,,CS\nD,W1,2,{T0},,,EA\nE,W1,2,{T0},,,\n"
        ),
    );
    assert_eq!(ws.explain("C", None)["available"], 12);
    assert_eq!(ws.explain("D", None)["available"], 2);
    assert_eq!(ws.explain("E", None)["available"], 2);
    let p = ws.write(
        "in/wms/bad.csv",
        format!("SKU,Whse,Qty,AsOf,UPC,Title,UOM\nC,W1,2,{T0},,,BX\n"),
    );
    let v = ws.ingest("wms", &p, 1);
    assert!(
        v["errors"]
            .to_string()
            .contains("unit \\\"BX\\\" has no entry"),
        "{v}"
    );
    ws.mapping("inv", "format = \"xml\"\nrecord = \"inventory\"\nitem = \"Inventory/Item\"\nunit = \"EA\"\n[fields]\nsku = \"SKU\"\nquantity = \"Qty\"\nwarehouse = \"@whse\"\nunit = \"@uom\"\n[units]\nDZ = 12\n");
    ws.apply(
        "wms",
        "u.xml",
        "<Inventory><Item whse=\"W2\" uom=\"DZ\"><SKU>F</SKU><Qty>3</Qty></Item></Inventory>",
    );
    assert_eq!(ws.explain("F", None)["available"], 36);
}

#[test]
fn issue9_11_date_only_times_in_the_mapping_zone() {
    let chicago = "[as_of]\ntimezone = \"America/Chicago\"\n";
    let ws = edi_ws(chicago, chicago);
    // A count dated 2026-11-20 alone: the start of that day in Chicago.
    let p = ws.write(
        "in/wh/a.x12",
        wh846(1, "BIA*00*SI*R1*20261120~LIN*1*VN*B~QTY*33*5*EA~CTT*1~"),
    );
    ws.ingest("wh", &p, 0);
    assert_eq!(warehouse_as_of(&ws, "B"), "2026-11-20T06:00:00+00:00");
    // A noon count, then a PO dated that day: the order is the end of that
    // day (Chicago), so it subtracts.
    let p = ws.write(
        "in/wh/b.x12",
        wh846(
            2,
            "BIA*00*SI*R2*20261120*1200~LIN*1*VN*A~QTY*33*10*EA~CTT*1~",
        ),
    );
    ws.ingest("wh", &p, 0);
    assert_eq!(warehouse_as_of(&ws, "A"), "2026-11-20T18:00:00+00:00");
    let po = po_850(3, "BEG*00*SA*PO-1**20261120~PO1*1*3*EA***VN*A~CTT*1~");
    let p = ws.write("in/po/a.x12", &po);
    ws.ingest("po", &p, 0);
    let e = ws.explain("A", None);
    assert_eq!(
        e["orders_subtracted"][0]["ordered_at"], "2026-11-21T05:59:59.999+00:00",
        "{e}"
    );
    assert_eq!(e["available"], 7, "{e}");
    // A PO dated today is no later than the moment its file came in.
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::America::Chicago)
        .format("%Y%m%d")
        .to_string();
    let po = ic(
        4,
        "BUYER",
        "GATE",
        "00401",
        &[(
            "PO",
            "BUYER",
            "GATE",
            "004010",
            &[(
                "850",
                "0001",
                &format!("BEG*00*SA*PO-2**{today}~PO1*1*1*EA***VN*B~CTT*1~"),
            )],
        )],
    );
    let p = ws.write("in/po/b.x12", &po);
    let before = now_secs();
    ws.ingest("po", &p, 0);
    let e = ws.explain("B", None);
    let at = e["orders_subtracted"][0]["ordered_at"]
        .as_str()
        .unwrap_or_else(|| panic!("{e}"))
        .to_string();
    assert!(
        epoch(&at) <= now_secs() && epoch(&at) + 5 >= before,
        "{at} {e}"
    );
    assert_eq!(e["available"], 4, "{e}");
}

#[test]
fn issue9_feature_n1_and_sdq_locations_to_warehouses() {
    let ws = edi_ws(
        "[locations]\nDC01 = \"DALLAS\"\nDC02 = \"RENO\"\nST9 = \"STORE9\"\n",
        "",
    );
    // Header N1*WH names the warehouse of every LIN; SDQ splits one LIN's
    // QTY over locations (and its unit wins).
    let body = "BIA*00*SI*R1*20261120*0800~N1*WH*Dallas DC*92*DC01~\
LIN*1*VN*A~QTY*33*10*EA~\
LIN*2*VN*B~QTY*33*7*EA~SDQ*EA*92*DC02*3*ST9*4~\
CTT*2~";
    let p = ws.write("in/wh/a.x12", wh846(1, body));
    let v = ws.ingest("wh", &p, 0);
    assert_eq!(
        (v["outcome"].as_str(), v["rows"].as_u64()),
        (Some("applied"), Some(3)),
        "{v}"
    );
    let whs = |sku: &str| -> Vec<(String, i64)> {
        let e = ws.explain(sku, None);
        e["warehouses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                (
                    w["warehouse"].as_str().unwrap().to_string(),
                    w["quantity"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(whs("A"), [("DALLAS".to_string(), 10)]);
    let mut b = whs("B");
    b.sort();
    assert_eq!(b, [("RENO".to_string(), 3), ("STORE9".to_string(), 4)]);
    // An id without an entry rejects the row, naming it.
    let p = ws.write(
        "in/wh/b.x12",
        wh846(
            2,
            "BIA*00*SI*R2*20261121*0800~N1*WH*Elsewhere*92*DC77~LIN*1*VN*A~QTY*33*1*EA~CTT*1~",
        ),
    );
    let v = ws.ingest("wh", &p, 1);
    assert!(
        v["errors"]
            .to_string()
            .contains("location \\\"DC77\\\" (N104 or SDQ) has no entry"),
        "{v}"
    );
    // Without [locations] (the default), N1 and SDQ are passed over.
    let ws = edi_ws("", "");
    let p = ws.write("in/wh/a.x12", wh846(1, body));
    ws.ingest("wh", &p, 0);
    assert_eq!(ws.explain("B", None)["warehouses"][0]["warehouse"], "EDI");
    assert_eq!(ws.explain("B", None)["available"], 7);
}

#[test]
fn issue9_feature_846_writer_options_pass_both_validators() {
    for version in ["004010", "005010"] {
        let ws = retail_ws(version);
        ws.mapping(
            "r846",
            &format!(
                "{}bia_reference = \"INV-DAILY\"\nas_of_dtm = \"405\"\nship_from = [\"SF\", \"Acme DC\", \"92\", \"DC01\"]\npid_description = true\nextra_quantity_qualifiers = [\"17\"]\nhash_total = true\n",
                r846(version)
            ),
        );
        ws.apply("wms", "s1.csv", &abcd());
        let v = ws.sync("retail", &[], 0);
        assert_eq!(v["outcome"], "sent", "{v}");
        let file = v["file"].as_str().unwrap();
        let (_, x) = read_x12(file);
        assert_eq!(x.check_envelope(), vec![3]);
        assert_eq!(x.one("BIA")[3], "INV-DAILY");
        assert_eq!(x.one("DTM")[1], "405");
        assert_eq!(x.one("DTM")[2], x.one("BIA")[4], "the DTM is the sync time");
        assert_eq!(x.one("N1")[1..], ["SF", "Acme DC", "92", "DC01"]);
        let body: Vec<String> = x
            .segs
            .iter()
            .filter(|s| ["LIN", "PID", "QTY"].contains(&s[0].as_str()))
            .map(|s| s.join("*"))
            .collect();
        assert_eq!(
            body,
            [
                "LIN*1*UP*012345678905*VN*A",
                "PID*F****Blue widget",
                "QTY*33*10*EA",
                "QTY*17*10*EA",
                "LIN*2*UP*036000291452*VN*B",
                "QTY*33*0*EA",
                "QTY*17*0*EA",
                "LIN*3*UP*042100005264*VN*D",
                "QTY*33*0*EA",
                "QTY*17*0*EA",
            ]
        );
        // CTT02: the hash total of every QTY02.
        assert_eq!(x.one("CTT")[1..], ["3", "20"]);
        x12_validate(&[Path::new(file)]);
    }
}

// ----- issue 9, second half: per-warehouse 846s, measures, prices, presets -----

/// The segments of an 846 between the BIA (or header N1) and the CTT, as text.
fn body_segments(x: &X12) -> Vec<String> {
    x.segs
        .iter()
        .filter(|s| ["LIN", "PID", "CTP", "SDQ", "QTY", "N1"].contains(&s[0].as_str()))
        .map(|s| s.join("*"))
        .collect()
}

/// A (W1 5, W2 -3: total 2), B (W1 4, W2 6, 2 ordered on W2: total 8),
/// D (W1 1, W2 1, 5 ordered without a warehouse: total -3, sent 0),
/// E (only in W3, a warehouse without a location id).
fn per_warehouse_ws(version: &str, extra: &str, cart_extra: &str) -> Workspace {
    let ws = Workspace::standard(&x12_cart("retail", cart_extra));
    ws.mapping(
        "r846",
        &format!(
            "{}per_warehouse = \"{extra}\"\n[location_ids]\nW1 = \"DC01\"\nW2 = \"DC02\"\n",
            r846(version)
        ),
    );
    ws.apply(
        "wms",
        "s1.csv",
        &format!(
            "{INV_H}A,W1,5,{T0},012345678905,\nA,W2,-3,{T0},012345678905,\n\
             B,W1,4,{T0},036000291452,\nB,W2,6,{T0},036000291452,\n\
             D,W1,1,{T0},042100005264,\nD,W2,1,{T0},042100005264,\n\
             E,W3,7,{T0},{},\n",
            upc("07000000001")
        ),
    );
    ws.apply(
        "orders",
        "o1.csv",
        "Order,Line,SKU,Qty,Status,At,Whse\n\
         O1,1,B,2,open,2025-06-01T11:00:00Z,W2\n\
         O2,1,D,5,open,2025-06-01T11:00:00Z,\n",
    );
    ws
}

/// The single totals a normal feed sends (the CSV cart `shop`).
fn plain_totals(ws: &Workspace) -> Vec<String> {
    let mut v: Vec<String> = ws
        .sync_feed("shop", &[])
        .lines()
        .skip(1)
        .map(String::from)
        .collect();
    v.sort();
    v
}

#[test]
fn issue9_per_warehouse_sdq_splits_each_total_without_overselling() {
    for version in ["004010", "005010"] {
        let ws = per_warehouse_ws(version, "sdq", "");
        assert_eq!(plain_totals(&ws), ["A,2", "B,8", "D,0", "E,7"]);
        let v = ws.sync("retail", &[], 0);
        assert_eq!(v["outcome"], "sent", "{v}");
        // E's 7 sit in W3, which has no location id: left out, counted.
        assert_eq!(v["items"], 3, "{v}");
        assert_eq!(v["missing"][0]["field"], "missing location", "{v}");
        assert_eq!(v["missing"][0]["items"], 1, "{v}");
        let file = v["file"].as_str().unwrap();
        let (_, x) = read_x12(file);
        assert_eq!(x.check_envelope(), vec![3]);
        // Each SDQ sums to its QTY, the normal feed's total: W2's -3 is
        // taken from W1 (never 5 + 0 = 5 for a total of 2).
        assert_eq!(
            body_segments(&x),
            [
                "LIN*1*UP*012345678905*VN*A",
                "SDQ*EA*92*DC01*2*DC02*0",
                "QTY*33*2*EA",
                "LIN*2*UP*036000291452*VN*B",
                "SDQ*EA*92*DC01*4*DC02*4",
                "QTY*33*8*EA",
                "LIN*3*UP*042100005264*VN*D",
                "SDQ*EA*92*DC01*0*DC02*0",
                "QTY*33*0*EA",
            ]
        );
        x12_validate(&[Path::new(file)]);
    }
}

/// A kit in a per-warehouse cart: its build per warehouse is what the
/// split divides (rule 21 over the 846's locations).
#[test]
fn a_kit_is_split_over_locations_by_its_build_per_warehouse() {
    let ws = per_warehouse_ws("004010", "sdq", "");
    let cfg = ws.read("stockgate.toml").replacen(
        "[[merchant]]\nid = \"m1\"\n",
        "[[merchant]]\nid = \"m1\"\nkits = \"kits.csv\"\n",
        1,
    );
    ws.config(&cfg);
    ws.write("kits.csv", "kit_sku,component_sku,quantity\nK,A,1\nK,B,1\n");
    // A: W1 5, W2 -3; B: W1 4, W2 6 - 2 = 4. K: W1 min(5, 4) = 4, W2
    // min(-3, 4) -> 0: 4 in all, all of it at DC01.
    let e = ws.explain("K", Some("retail"));
    assert_eq!(e["carts"][0]["available"], 4, "{e}");
    assert_eq!(
        e["carts"][0]["locations"],
        serde_json::json!([
            {"warehouse": "W1", "location": "DC01", "value": 4},
            {"warehouse": "W2", "location": "DC02", "value": 0}
        ])
    );
    // Without a split (the CSV cart) the same total.
    assert_eq!(ws.explain("K", Some("shop"))["carts"][0]["value"], 4);
}

/// `explain` shows the same split a per-warehouse 846 sends, location by
/// location, and the plain carts' numbers without one.
#[test]
fn issue9_explain_shows_the_per_location_split() {
    let ws = per_warehouse_ws("004010", "sdq", "");
    let e = ws.explain("A", Some("retail"));
    assert_eq!(e["carts"][0]["value"], 2, "{e}");
    assert_eq!(
        e["carts"][0]["locations"],
        serde_json::json!([
            {"warehouse": "W1", "location": "DC01", "value": 2},
            {"warehouse": "W2", "location": "DC02", "value": 0}
        ])
    );
    let e = ws.explain("B", Some("shop"));
    assert!(e["carts"][0].get("locations").is_none(), "{e}");
    let o = ws.run_ok(
        &[
            "explain",
            "--merchant",
            "m1",
            "--sku",
            "B",
            "--cart",
            "retail",
        ],
        0,
    );
    let tail: Vec<&str> = o.stdout.lines().rev().take(2).collect();
    assert_eq!(
        tail,
        [
            "    per location: DC01 (W1) 4, DC02 (W2) 4",
            "  cart retail               (all warehouses, min_level 0): available 8 -> sends 8",
        ],
        "{}",
        o.stdout
    );
}

#[test]
fn issue9_per_warehouse_n1_one_lin_loop_per_sku_and_warehouse() {
    for version in ["004010", "005010"] {
        let ws = per_warehouse_ws(version, "n1", "");
        let v = ws.sync("retail", &[], 0);
        assert_eq!(v["outcome"], "sent", "{v}");
        let file = v["file"].as_str().unwrap();
        let (_, x) = read_x12(file);
        assert_eq!(x.check_envelope(), vec![6]);
        assert_eq!(
            body_segments(&x),
            [
                "LIN*1*UP*012345678905*VN*A",
                "QTY*33*2*EA",
                "N1*WH**92*DC01",
                "LIN*2*UP*012345678905*VN*A",
                "QTY*33*0*EA",
                "N1*WH**92*DC02",
                "LIN*3*UP*036000291452*VN*B",
                "QTY*33*4*EA",
                "N1*WH**92*DC01",
                "LIN*4*UP*036000291452*VN*B",
                "QTY*33*4*EA",
                "N1*WH**92*DC02",
                "LIN*5*UP*042100005264*VN*D",
                "QTY*33*0*EA",
                "N1*WH**92*DC01",
                "LIN*6*UP*042100005264*VN*D",
                "QTY*33*0*EA",
                "N1*WH**92*DC02",
            ]
        );
        x12_validate(&[Path::new(file)]);
    }
}

#[test]
fn issue9_per_warehouse_min_level_and_the_carts_warehouses_filter() {
    // min_level = 3: A's total 2 is sent as 0, so every share is 0; B's 8 stays.
    let ws = per_warehouse_ws("004010", "sdq", "min_level = 3");
    let (_, x) = read_x12(ws.sync("retail", &[], 0)["file"].as_str().unwrap());
    let sdq: Vec<String> = x.all("SDQ").iter().map(|s| s.join("*")).collect();
    assert_eq!(
        sdq,
        [
            "SDQ*EA*92*DC01*0*DC02*0",
            "SDQ*EA*92*DC01*4*DC02*4",
            "SDQ*EA*92*DC01*0*DC02*0"
        ]
    );
    // A cart counting W1 only: W1's own numbers, one location (E not counted at all).
    let ws = per_warehouse_ws("004010", "sdq", "warehouses = [\"W1\"]");
    let v = ws.sync("retail", &[], 0);
    assert!(v["missing"].is_null(), "{v}");
    let (_, x) = read_x12(v["file"].as_str().unwrap());
    assert_eq!(
        body_segments(&x),
        [
            "LIN*1*UP*012345678905*VN*A",
            "SDQ*EA*92*DC01*5",
            "QTY*33*5*EA",
            "LIN*2*UP*036000291452*VN*B",
            "SDQ*EA*92*DC01*4",
            "QTY*33*4*EA",
            // D's order names no warehouse: it draws on W1 (1 - 5 = -4 -> 0).
            "LIN*3*UP*042100005264*VN*D",
            "SDQ*EA*92*DC01*0",
            "QTY*33*0*EA",
            // An 846 is a full catalog: E (none in W1) is sent as 0.
            "LIN*4*UP*070000000010*VN*E",
            "SDQ*EA*92*DC01*0",
            "QTY*33*0*EA",
        ]
    );
}

#[test]
fn issue9_per_warehouse_keys_are_checked() {
    let ws = retail_ws("004010");
    ws.mapping(
        "r846",
        &format!(
            "{}per_warehouse = \"sqd\"\nlocation_qualifier = \"9999\"\n",
            r846("004010")
        ),
    );
    let o = ws.run_ok(&["check"], 2);
    let o = format!("{}{}", o.stdout, o.stderr);
    assert!(o.contains("per_warehouse") && o.contains("\"sdq\""), "{o}");
    assert!(o.contains("location_qualifier"), "{o}");
    ws.mapping(
        "r846",
        &format!("{}per_warehouse = \"n1\"\n", r846("004010")),
    );
    let o = ws.run_ok(&["check"], 2);
    let o = format!("{}{}", o.stdout, o.stderr);
    assert!(o.contains("needs a [location_ids] table"), "{o}");
    ws.mapping(
        "r846",
        &format!("{}[location_ids]\nW1 = \"DC01\"\n", r846("004010")),
    );
    let o = ws.run_ok(&["check"], 2);
    let o = format!("{}{}", o.stdout, o.stderr);
    assert!(
        o.contains("location_ids") && o.contains("needs per_warehouse"),
        "{o}"
    );
}

/// A cart that counts a warehouse its per-warehouse 846 cannot name is
/// refused by `check`, not found out at sync as SKUs left out.
#[test]
fn issue9_a_counted_warehouse_without_a_location_id_is_refused_by_check() {
    // Counting only named warehouses passes.
    let ws = per_warehouse_ws("004010", "sdq", "warehouses = [\"W1\", \"W2\"]");
    ws.run_ok(&["check"], 0);
    let cfg = ws.read("stockgate.toml");
    ws.config(&cfg.replace("[\"W1\", \"W2\"]", "[\"W1\", \"W3\"]"));
    let o = ws.run_ok(&["check"], 2);
    let want = format!(
        "{}:{}: key `cart[1].warehouses`: warehouse \"W3\" has no location id in mapping \"r846\" (per_warehouse): add it to its [location_ids], e.g. W3 = \"DC01\"\n",
        ws.config_path().display(),
        ws.read("stockgate.toml")
            .lines()
            .position(|l| l.starts_with("warehouses = "))
            .unwrap()
            + 1
    );
    assert_eq!(o.stdout, want);
    assert_eq!(o.stderr, "1 problem found\n");
}

#[test]
fn issue9_extra_quantities_carry_on_hand_and_committed() {
    for version in ["004010", "005010"] {
        // One LIN per SKU: the SKU's numbers (on hand = the counted sum).
        let ws = per_warehouse_ws(version, "sdq", "");
        ws.mapping(
            "r846",
            &format!(
                "{}extra_quantities = [[\"17\", \"on_hand\"], [\"27\", \"committed\"]]\nextra_quantity_qualifiers = [\"33\"]\nhash_total = true\n",
                r846(version)
            ),
        );
        let v = ws.sync("retail", &[], 0);
        let file = v["file"].as_str().unwrap();
        let (_, x) = read_x12(file);
        assert_eq!(
            lin_qty(&x),
            [
                "LIN*1*UP*012345678905*VN*A",
                "QTY*33*2*EA",
                "QTY*33*2*EA",
                "QTY*17*2*EA",
                "QTY*27*0*EA",
                "LIN*2*UP*036000291452*VN*B",
                "QTY*33*8*EA",
                "QTY*33*8*EA",
                "QTY*17*10*EA",
                "QTY*27*2*EA",
                // D: 2 counted, 5 ordered: 0 available, 2 on hand, 5 committed.
                "LIN*3*UP*042100005264*VN*D",
                "QTY*33*0*EA",
                "QTY*33*0*EA",
                "QTY*17*2*EA",
                "QTY*27*5*EA",
                "LIN*4*UP*070000000010*VN*E",
                "QTY*33*7*EA",
                "QTY*33*7*EA",
                "QTY*17*7*EA",
                "QTY*27*0*EA",
            ]
        );
        assert_eq!(x.one("CTT")[1..], ["4", "62"], "hash total of every QTY02");
        x12_validate(&[Path::new(file)]);
        // One LIN loop per warehouse: each warehouse's own numbers.
        ws.mapping(
            "r846",
            &format!(
                "{}per_warehouse = \"n1\"\nextra_quantities = [[\"17\", \"on_hand\"], [\"27\", \"committed\"]]\n[location_ids]\nW1 = \"DC01\"\nW2 = \"DC02\"\n",
                r846(version)
            ),
        );
        let v = ws.sync("retail", &[], 0);
        let file = v["file"].as_str().unwrap();
        let (_, x) = read_x12(file);
        let qty: Vec<String> = x.all("QTY").iter().map(|s| s[1..3].join("=")).collect();
        assert_eq!(
            qty.chunks(3).map(|c| c.join(" ")).collect::<Vec<_>>(),
            [
                "33=2 17=5 27=0", // A W1
                "33=0 17=0 27=0", // A W2 (counted -3: on hand sent as 0)
                "33=4 17=4 27=0", // B W1
                "33=4 17=6 27=2", // B W2
                "33=0 17=1 27=5", // D W1 (the order without a warehouse)
                "33=0 17=1 27=0", // D W2
            ]
        );
        x12_validate(&[Path::new(file)]);
    }
}

#[test]
fn issue9_extra_quantities_are_checked() {
    let ws = retail_ws("004010");
    ws.mapping(
        "r846",
        &format!(
            "{}extra_quantities = [[\"17\", \"onhand\"]]\n",
            r846("004010")
        ),
    );
    let o = ws.run_ok(&["check"], 2);
    assert!(
        o.stdout.contains("extra_quantities") && o.stdout.contains("available, on_hand, committed"),
        "{}",
        o.stdout
    );
}

/// Inventory CSV with a `Price` column.
const INV_PRICE_MAPPING: &str = r#"format = "csv"
record = "inventory"
[columns]
sku = "SKU"
warehouse = "Whse"
quantity = "Qty"
as_of = "AsOf"
upc = "UPC"
description = "Title"
price = "Price"
"#;

#[test]
fn issue9_price_from_csv_xml_and_846_ctp_to_feeds() {
    for version in ["004010", "005010"] {
        let ws = Workspace::standard(&format!(
            "{}{}{}",
            x12_cart("retail", ""),
            inbound("xmlwms", "m1", "inventory", "invxml", "warehouse = \"W2\""),
            cart("priced", "m1", "").replace("mapping = \"feed\"", "mapping = \"pfeed\"")
        ));
        ws.mapping("inv", INV_PRICE_MAPPING);
        ws.mapping(
            "invxml",
            "format = \"xml\"\nrecord = \"inventory\"\nitem = \"Inventory/Item\"\n[fields]\nsku = \"SKU\"\nquantity = \"Qty\"\nprice = \"@price\"\n",
        );
        ws.mapping(
            "pfeed",
            "format = \"csv\"\ncolumns = [ { header = \"SKU\", field = \"sku\" }, { header = \"Price\", field = \"price\" } ]\n",
        );
        ws.mapping(
            "r846",
            &format!(
                "{}price_qualifier = \"WHL\"\npid_description = true\n",
                r846(version)
            ),
        );
        // A malformed price rejects the file, naming the row, column and value.
        let p = ws.write(
            "in/wms/bad.csv",
            format!("{INV_H},Price\nA,W1,10,{T0},012345678905,Blue widget,\"12,50\"\nB,W1,1,{T0},036000291452,,-3\n")
                .replace("Title\n,Price", "Title,Price"),
        );
        let v = ws.ingest("wms", &p, 1);
        assert_eq!(v["outcome"], "rejected", "{v}");
        let errors = v["errors"].to_string();
        assert!(
            errors.contains("12,50") && errors.contains("Price") && errors.contains("not a price"),
            "{errors}"
        );
        assert!(errors.contains("\\\"-3\\\""), "{errors}");
        ws.apply(
            "wms",
            "s1.csv",
            &format!(
                "SKU,Whse,Qty,AsOf,UPC,Title,Price\nA,W1,10,{T0},012345678905,Blue widget,047.130\n\
                 B,W1,0,{T0},036000291452,,\nD,W1,-4,{T0},042100005264,,+5\n"
            ),
        );
        // XML: B gets its price from an attribute.
        ws.apply(
            "xmlwms",
            "x1.xml",
            "<Inventory><Item price=\"19.99\"><SKU>B</SKU><Qty>2</Qty></Item></Inventory>",
        );
        // CSV/XML feeds: `price` like any product field (D has +5 -> 5).
        let feed = ws.sync_feed("priced", &[]);
        assert_eq!(feed, "SKU,Price\nA,47.130\nB,19.99\nD,5\n");
        // 846: CTP**WHL*<price> after the PID, before the QTY.
        let v = ws.sync("retail", &[], 0);
        let file = v["file"].as_str().unwrap();
        let (_, x) = read_x12(file);
        assert_eq!(
            body_segments(&x),
            [
                "LIN*1*UP*012345678905*VN*A",
                "PID*F****Blue widget",
                "CTP**WHL*47.130",
                "QTY*33*10*EA",
                "LIN*2*UP*036000291452*VN*B",
                "CTP**WHL*19.99",
                "QTY*33*2*EA",
                "LIN*3*UP*042100005264*VN*D",
                "CTP**WHL*5",
                "QTY*33*0*EA",
            ]
        );
        x12_validate(&[Path::new(file)]);
    }
}

#[test]
fn issue9_price_from_an_inbound_846_ctp_and_missing_price_left_out() {
    let ws = edi_ws("price_qualifier = \"WHL\"\n", "");
    ws.mapping(
        "r846",
        &format!(
            "{}price_qualifier = \"WHL\"\nprice_class_of_trade = \"WS\"\n",
            r846("004010")
        ),
    );
    // A: the WHL price wins over the RES one; B: no CTP, so no price.
    let body = "BIA*00*SI*R1*20261120*0800~\
LIN*1*VN*A*UP*012345678905~CTP**RES*99.00~CTP**WHL*47.13~QTY*33*10*EA~\
LIN*2*VN*B*UP*036000291452~QTY*33*7*EA~CTT*2~";
    let p = ws.write("in/wh/a.x12", wh846(1, body));
    let v = ws.ingest("wh", &p, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    let v = ws.sync("retail", &[], 0);
    assert_eq!(v["items"], 1, "{v}");
    assert_eq!(v["missing"][0]["field"], "missing price", "{v}");
    let file = v["file"].as_str().unwrap();
    let (_, x) = read_x12(file);
    assert_eq!(
        body_segments(&x),
        [
            "LIN*1*UP*012345678905*VN*A",
            "CTP*WS*WHL*47.13",
            "QTY*33*10*EA"
        ]
    );
    x12_validate(&[Path::new(file)]);
    // A malformed CTP03 rejects the 846, naming the element.
    let p = ws.write(
        "in/wh/b.x12",
        wh846(
            2,
            "BIA*00*SI*R2*20261121*0800~LIN*1*VN*A~CTP**WHL*4E2~QTY*33*1*EA~CTT*1~",
        ),
    );
    let v = ws.ingest("wh", &p, 1);
    assert!(v["errors"].to_string().contains("CTP03"), "{v}");
}

/// A shipped preset (mappings/NAME.toml) used as the retail cart's mapping.
fn preset_ws(name: &str) -> Workspace {
    let ws = Workspace::standard(&x12_cart("retail", ""));
    let preset = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("mappings/{name}.toml"));
    ws.mapping("r846", &std::fs::read_to_string(preset).unwrap());
    ws.mapping("inv", INV_PRICE_MAPPING);
    let o = ws.run_ok(&["check"], 0);
    assert!(o.stdout.starts_with("ok: "), "{}", o.stdout);
    ws.apply(
        "wms",
        "s1.csv",
        &format!(
            "SKU,Whse,Qty,AsOf,UPC,Title,Price\nA,W1,10,{T0},012345678905,Blue widget,47.13\n\
             B,W1,0,{T0},036000291452,,5\nC,W1,5,{T0},,No UPC,\nD,W1,-4,{T0},042100005264,,2.50\n"
        ),
    );
    ws.apply(
        "orders",
        "o1.csv",
        "Order,Line,SKU,Qty,Status,At,Whse\nO1,1,A,3,open,2025-06-01T11:00:00Z,W1\n",
    );
    ws
}

#[test]
fn issue9_preset_walmart_dsv_846() {
    let ws = preset_ws("walmart-dsv-846");
    let v = ws.sync("retail", &[], 0);
    assert_eq!(v["outcome"], "sent", "{v}");
    assert_eq!(v["missing"][0]["field"], "missing upc", "{v}");
    let file = v["file"].as_str().unwrap();
    let (_, x) = read_x12(file);
    assert_eq!(x.check_envelope(), vec![3]);
    assert_eq!(
        x.one("ISA")[5..9],
        ["12", "5555551234     ", "01", "12571829       "]
    );
    assert_eq!(x.one("BIA")[1..3], ["00", "SI"]);
    let segs: Vec<String> = x
        .segs
        .iter()
        .filter(|s| ["REF", "LIN", "QTY"].contains(&s[0].as_str()))
        .map(|s| s.join("*"))
        .collect();
    assert_eq!(
        segs,
        [
            "REF*VR*11223344",
            "LIN*1*UP*012345678905*VN*A",
            "REF*ZZ*AC",
            "QTY*17*7*EA",
            "LIN*2*UP*036000291452*VN*B",
            "REF*ZZ*AC",
            "QTY*17*0*EA",
            "LIN*3*UP*042100005264*VN*D",
            "REF*ZZ*AC",
            "QTY*17*0*EA",
        ]
    );
    x12_validate(&[Path::new(file)]);
}

#[test]
fn issue9_preset_qvc_commercehub_846() {
    let ws = preset_ws("qvc-commercehub-846");
    let v = ws.sync("retail", &[], 0);
    assert_eq!(v["outcome"], "sent", "{v}");
    // C has no price: left out, counted.
    assert_eq!(v["items"], 3, "{v}");
    assert_eq!(v["missing"][0]["field"], "missing price", "{v}");
    let file = v["file"].as_str().unwrap();
    let (_, x) = read_x12(file);
    assert_eq!(x.check_envelope(), vec![3]);
    assert_eq!(
        body_segments(&x),
        [
            "LIN*1*SK*A",
            "PID*F****Blue widget",
            "CTP**UCP*47.13",
            "QTY*33*7*EA",
            "LIN*2*SK*B",
            "CTP**UCP*5",
            "QTY*33*0*EA",
            "LIN*3*SK*D",
            "CTP**UCP*2.50",
            "QTY*33*0*EA",
        ]
    );
    x12_validate(&[Path::new(file)]);
}

#[test]
fn issue9_refs_are_checked_and_written_in_5010() {
    let ws = retail_ws("005010");
    ws.mapping(
        "r846",
        &format!("{}header_refs = [[\"VR\"]]\n", r846("005010")),
    );
    let o = ws.run_ok(&["check"], 2);
    assert!(
        o.stdout.contains("header_refs") && o.stdout.contains("entry 1"),
        "{}",
        o.stdout
    );
    ws.mapping(
        "r846",
        &format!(
            "{}header_refs = [[\"VR\", \"11223344\", \"ACME LLC\"]]\nitem_refs = [[\"ZZ\", \"AC\"]]\n",
            r846("005010")
        ),
    );
    ws.apply("wms", "s1.csv", &abcd());
    let v = ws.sync("retail", &[], 0);
    let file = v["file"].as_str().unwrap();
    let (_, x) = read_x12(file);
    assert_eq!(x.all("REF")[0][1..], ["VR", "11223344", "ACME LLC"]);
    assert_eq!(x.all("REF").len(), 4);
    x12_validate(&[Path::new(file)]);
}

#[test]
fn issue9_inbound_reads_what_per_warehouse_846s_write() {
    let ws = edi_ws("[locations]\nDC01 = \"DALLAS\"\nDC02 = \"RENO\"\n", "");
    // "sdq": the SDQ before the QTY (the grammar's place); "n1": an N1 in each LIN loop.
    let body = "BIA*00*SI*R1*20261120*0800~\
LIN*1*VN*A~SDQ*EA*92*DC01*2*DC02*0~QTY*33*2*EA~\
LIN*2*VN*B~QTY*33*4*EA~N1*WH**92*DC01~\
LIN*3*VN*B~QTY*33*3*EA~N1*WH**92*DC02~CTT*3~";
    let p = ws.write("in/wh/a.x12", wh846(1, body));
    let v = ws.ingest("wh", &p, 0);
    assert_eq!(v["rows"], 4, "{v}");
    let whs = |sku: &str| -> Vec<String> {
        let e = ws.explain(sku, None);
        let mut v: Vec<String> = e["warehouses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| format!("{}={}", w["warehouse"].as_str().unwrap(), w["quantity"]))
            .collect();
        v.sort();
        v
    };
    assert_eq!(whs("A"), ["DALLAS=2", "RENO=0"]);
    assert_eq!(whs("B"), ["DALLAS=4", "RENO=3"]);
}

/// Issue 15.2: without `[locations]`, SDQ quantities are per-location detail
/// and are ignored: the chosen QTY counts (Newegg's EaaS 846 has
/// `SDQ*EA*54*MEL*50` beside `QTY*33*7`; 50 was applied).
#[test]
fn issue15_2_sdq_without_locations_is_ignored_the_qty_counts() {
    let ws = edi_ws("", "");
    let body = "BIA*00*SI*R1*20261120*0800~\
LIN*1*VN*A~SDQ*EA*54*MEL*50~QTY*33*7*EA~\
LIN*2*VN*B~QTY*33*9*EA~SDQ*EA*54*MEL*2*SYD*3~\
CTT*2~";
    let p = ws.write("in/wh/a.x12", wh846(1, body));
    let v = ws.ingest("wh", &p, 0);
    assert_eq!(
        (v["outcome"].as_str(), v["rows"].as_u64()),
        (Some("applied"), Some(2)),
        "{v}"
    );
    for (sku, q) in [("A", 7), ("B", 9)] {
        let e = ws.explain(sku, None);
        assert_eq!(e["warehouses"].as_array().unwrap().len(), 1, "{e}");
        assert_eq!(e["warehouses"][0]["warehouse"], "EDI");
        assert_eq!(e["warehouses"][0]["quantity"], q, "{e}");
        assert_eq!(e["available"], q);
    }
    // With [locations], the same file splits by SDQ as before.
    let ws = edi_ws("[locations]\nMEL = \"MELBOURNE\"\nSYD = \"SYDNEY\"\n", "");
    let p = ws.write("in/wh/a.x12", wh846(1, body));
    let v = ws.ingest("wh", &p, 0);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(ws.explain("A", None)["warehouses"][0]["quantity"], 50);
    assert_eq!(ws.explain("B", None)["available"], 5);
}

/// Issue 15.3: every date and time element must be a valid X12 DT/TM,
/// whatever its qualifier: `DTM*405*20241399` (not an as-of code) rejects the
/// set, and the 997 says so with the element's error; an 850's G62 too.
#[test]
fn issue15_3_an_impossible_date_rejects_the_set_whatever_its_qualifier() {
    let ws = edi_ws("", "");
    for (n, (file, dtm, want)) in [
        (
            "a.x12",
            "DTM*405*20241399~",
            "DTM02 \\\"20241399\\\" is not a CCYYMMDD date",
        ),
        (
            "b.x12",
            "DTM*405*20241201*2561~",
            "DTM03 \\\"2561\\\" is not an HHMM",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let body = format!("BIA*00*SI*R1*20261120*0800~LIN*1*VN*A~QTY*33*7*EA~{dtm}CTT*1~");
        let p = ws.write(&format!("in/wh/{file}"), wh846(n as u32 + 1, &body));
        let v = ws.ingest("wh", &p, 1);
        assert_eq!(v["outcome"], "rejected", "{v}");
        assert!(v["errors"].to_string().contains(want), "{v}");
    }
    // Nothing applied (the 997s took control numbers, nothing else changed).
    let dump = ws.ledger_dump();
    assert!(
        dump.contains("\nreports: 0\n") && dump.contains("\nstock: 0\n"),
        "{dump}"
    );
    let acks = acks_sent(&ws);
    assert_eq!(acks.len(), 2);
    for a in &acks {
        assert_eq!(a.one("AK5")[1..], ["R", "5"]);
        assert_eq!(a.one("AK9")[1], "R");
    }
    // An 850 whose G62 (a DT/TM pair too) holds 20261131.
    let po = "BEG*00*SA*PO-9**20261120~G62*10*20261131~PO1*1*2*EA***VN*A~CTT*1~";
    let p = ws.write("in/po/p.x12", po_850(7, po));
    let v = ws.ingest("po", &p, 1);
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert!(
        v["errors"]
            .to_string()
            .contains("G6202 \\\"20261131\\\" is not a CCYYMMDD date"),
        "{v}"
    );
}

/// Issue 16.7: an 846's file name and its envelope agree on time: the
/// `{timestamp}` of the name, ISA09/ISA10, GS04/GS05 and BIA04/BIA05 are all
/// in the cart's `timezone` (UTC by default).
#[test]
fn issue16_7_file_name_and_envelope_share_the_carts_time_zone() {
    let c = x12_cart("retail", "timezone = \"Asia/Kolkata\"")
        .replace("{cart}-{seq}.x12", "{cart}-{timestamp}.x12");
    let ws = Workspace::standard(&c);
    ws.mapping("r846", &r846("004010"));
    ws.apply("wms", "s.csv", &abcd());
    let v = ws.sync("retail", &[], 0);
    assert_eq!(v["outcome"], "sent", "{v}");
    let file = v["file"].as_str().unwrap();
    let stamp = file
        .rsplit_once("retail-")
        .unwrap()
        .1
        .trim_end_matches(".x12");
    assert_eq!(stamp.len(), 14, "{file}");
    // The moment the sync started, in Kolkata (+05:30), as the name says it.
    let started = chrono::DateTime::parse_from_rfc3339(v["started_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono_tz::Asia::Kolkata);
    assert_eq!(stamp, started.format("%Y%m%d%H%M%S").to_string());
    let (_, x) = read_x12(file);
    let isa = x.one("ISA");
    assert_eq!(format!("20{}{}", isa[9], isa[10]), stamp[..12]);
    let gs = x.one("GS");
    assert_eq!(format!("{}{}", gs[4], gs[5]), stamp[..12]);
    let bia = x.one("BIA");
    assert_eq!(format!("{}{}", bia[4], bia[5]), stamp[..12]);
}

/// Issue 16.9: a product catalog source (`kind = "products"`) sets UPCs,
/// descriptions and prices from the merchant's catalog; the next 846 uses
/// them. Applied whole or not at all, archived, never touching stock.
#[test]
fn issue16_9_a_products_file_sets_the_upcs_the_next_846_uses() {
    let ws = Workspace::standard(&format!(
        "{}{}",
        inbound("catalog", "m1", "products", "catalog", ""),
        x12_cart("retail", "")
    ));
    ws.mapping("r846", &r846("004010"));
    ws.mapping(
        "catalog",
        "format = \"csv\"\nrecord = \"products\"\n[columns]\nsku = \"Item\"\nupc = \"GTIN\"\ndescription = \"Name\"\nprice = \"Cost\"\n",
    );
    // Stock from the warehouse carries no UPC: the 846 leaves both out.
    ws.apply(
        "wms",
        "s.csv",
        &format!("{INV_H}A,W1,10,{T0},,\nB,W1,3,{T0},,\n"),
    );
    let v = ws.sync("retail", &[], 0);
    assert_eq!(v["outcome"], "skipped", "{v}");
    assert_eq!(
        v["reason"], "nothing to send (2 left out: missing upc)",
        "{v}"
    );
    let stock = ws.explain("A", None)["warehouses"].clone();
    // A catalog row with a bad price rejects the whole file: nothing changes.
    let p = ws.write(
        "in/catalog/bad.csv",
        "Item,GTIN,Name,Cost\nA,012345678905,Blue widget,4.50\nB,036000291452,Gadget,cheap\n",
    );
    let bad = ws.ingest("catalog", &p, 1);
    assert_eq!(bad["outcome"], "rejected", "{bad}");
    assert!(
        bad["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("line 3, column \"Cost\" (price), value \"cheap\""),
        "{bad}"
    );
    assert_eq!(ws.sync("retail", &[], 0)["outcome"], "skipped");
    // The good catalog: UPCs for both (and a SKU with no stock yet).
    let v = ws.apply(
        "catalog",
        "catalog.csv",
        "Item,GTIN,Name,Cost\nA,012345678905,Blue widget,4.50\nB,036000291452,Gadget,2\nN,042100005264,New thing,\n",
    );
    assert_eq!(v["rows"], 3, "{v}");
    assert!(
        v["archived"]
            .as_str()
            .unwrap()
            .contains("/archive/catalog/"),
        "{v}"
    );
    assert_eq!(
        ws.explain("A", None)["warehouses"],
        stock,
        "stock untouched"
    );
    assert_eq!(ws.explain("N", None)["warehouses"], serde_json::json!([]));
    let v = ws.sync("retail", &[], 0);
    assert_eq!(v["outcome"], "sent", "{v}");
    let (_, x) = read_x12(v["file"].as_str().unwrap());
    assert_eq!(
        lin_qty(&x),
        [
            "LIN*1*UP*012345678905*VN*A",
            "QTY*33*10*EA",
            "LIN*2*UP*036000291452*VN*B",
            "QTY*33*3*EA",
            "LIN*3*UP*042100005264*VN*N",
            "QTY*33*0*EA",
        ]
    );
    x12_validate(&[Path::new(v["file"].as_str().unwrap())]);
    // The same catalog again is a duplicate; a catalog opens no gate.
    let p = ws.write(
        "in/catalog/again.csv",
        "Item,GTIN,Name,Cost\nA,012345678905,Blue widget,4.50\nB,036000291452,Gadget,2\nN,042100005264,New thing,\n",
    );
    assert_eq!(ws.ingest("catalog", &p, 0)["outcome"], "duplicate");
    assert_eq!(ws.sync("shop", &[], 0)["outcome"], "sent");
    ws.apply(
        "catalog",
        "c2.csv",
        "Item,GTIN,Name,Cost\nA,012345678905,,\n",
    );
    let v = ws.sync("shop", &[], 0);
    assert_eq!(
        (v["outcome"].as_str(), v["reason"].as_str()),
        (Some("skipped"), Some("no new inventory")),
        "{v}"
    );
}

/// Rule 22 in an 846: the LIN pair that `item_ids` takes from `sku`
/// carries the cart's own ids; unmapped SKUs are left out (`no alias`);
/// allocation keys apply; the file passes both validators.
#[test]
fn feed_846_with_sku_map_carries_the_cart_ids_and_validates() {
    let ws = Workspace::standard(&x12_cart(
        "retail",
        "sku_map = \"maps/retail.csv\"\nbuffer = 2",
    ));
    ws.mapping("r846", &r846("004010"));
    ws.write(
        "maps/retail.csv",
        "sku,cart_sku\nA,RT-100\nB,RT-200\nC,RT-300\n",
    );
    ws.apply("wms", "s1.csv", &abcd());
    let v = ws.sync("retail", &[], 0);
    assert_eq!(v["outcome"], "sent", "{v}");
    assert_eq!(v["items"], 2, "{v}");
    assert_eq!(
        v["missing"],
        serde_json::json!([{"field": "missing upc", "items": 1}, {"field": "no alias", "items": 1}]),
        "{v}"
    );
    let file = v["file"].as_str().unwrap();
    let (text, x) = read_x12(file);
    assert_eq!(x.check_envelope(), vec![2]);
    // A: 10 - 2 = 8; B: 0.
    assert!(
        text.contains("LIN*1*UP*012345678905*VN*RT-100~QTY*33*8*EA~"),
        "{text}"
    );
    assert!(
        text.contains("LIN*2*UP*036000291452*VN*RT-200~QTY*33*0*EA~"),
        "{text}"
    );
    assert!(!text.contains("*A~") && !text.contains("*D~"), "{text}");
    x12_validate(&[Path::new(file)]);
}
