//! Malformed inbound files, one table per format (CSV, XML, X12): each is
//! rejected whole (CONTRACT §1.9): `ingest` exits 1, outcome "rejected",
//! errors naming the line or segment, the exact bytes in
//! quarantine/<source>/ with `<file>.error.txt` beside them, and not one
//! ledger table changed. Add a row to a table to extend the corpus.

mod common;
use common::*;

const T0: &str = "2025-06-01T10:00:00Z";
const INV_H: &str = "SKU,Whse,Qty,AsOf,UPC,Title\n";

/// One malformed file.
struct Case {
    /// Also the file name (plus the format's extension), so keep it unique.
    name: &'static str,
    /// Inbound source that ingests it.
    source: &'static str,
    body: Vec<u8>,
    /// Each entry: alternatives, one of which must appear in some error
    /// (JSON) and in the .error.txt.
    expect: &'static [&'static [&'static str]],
}

fn case(
    name: &'static str,
    source: &'static str,
    body: impl Into<Vec<u8>>,
    expect: &'static [&'static [&'static str]],
) -> Case {
    Case {
        name,
        source,
        body: body.into(),
        expect,
    }
}

/// Ingests every case against `ws` and checks the rejection contract;
/// reports every failing case at once.
fn run_corpus(ws: &Workspace, ext: &str, cases: Vec<Case>) {
    let mut names = std::collections::HashSet::new();
    let mut failures = vec![];
    for c in &cases {
        assert!(names.insert(c.name), "duplicate case name {}", c.name);
        if let Err(e) = run_case(ws, ext, c) {
            failures.push(format!("[{}] {e}", c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

fn run_case(ws: &Workspace, ext: &str, c: &Case) -> Result<(), String> {
    let file = format!("{}.{ext}", c.name);
    let before = ws.ledger_dump();
    let p = ws.write(&format!("drop/{file}"), &c.body);
    let o = ws.run(&[
        "ingest",
        "--source",
        c.source,
        "--json",
        p.to_str().unwrap(),
    ]);
    let ctx = format!("stdout:\n{}\nstderr:\n{}", o.stdout, o.stderr);
    if o.code != 1 {
        return Err(format!("exit {} (want 1)\n{ctx}", o.code));
    }
    let v: serde_json::Value =
        serde_json::from_str(&o.stdout).map_err(|e| format!("not JSON ({e})\n{ctx}"))?;
    let v = &v[0];
    if v["outcome"] != "rejected" {
        return Err(format!("outcome {} (want rejected)\n{ctx}", v["outcome"]));
    }
    let errors: Vec<String> = v["errors"]
        .as_array()
        .map(|a| a.iter().map(|e| e.to_string()).collect())
        .unwrap_or_default();
    if errors.is_empty() {
        return Err(format!("no errors\n{ctx}"));
    }
    let q = ws.path(&format!("var/quarantine/{}/{file}", c.source));
    match std::fs::read(&q) {
        Ok(b) if b == c.body => {}
        Ok(_) => return Err(format!("{} differs from the file ingested", q.display())),
        Err(e) => return Err(format!("{}: {e}\n{ctx}", q.display())),
    }
    let txt_path = ws.path(&format!("var/quarantine/{}/{file}.error.txt", c.source));
    let txt = std::fs::read_to_string(&txt_path)
        .map_err(|e| format!("{}: {e}\n{ctx}", txt_path.display()))?;
    if !txt.starts_with("outcome: rejected\n") {
        return Err(format!("error.txt:\n{txt}"));
    }
    for alts in c.expect {
        if !alts.iter().any(|a| errors.iter().any(|e| e.contains(a))) {
            return Err(format!("no error mentions any of {alts:?}\n{ctx}"));
        }
        if !alts.iter().any(|a| txt.contains(a)) {
            return Err(format!("error.txt mentions none of {alts:?}:\n{txt}"));
        }
    }
    let after = ws.ledger_dump();
    if after != before {
        return Err(format!(
            "ledger changed\nbefore:\n{before}\nafter:\n{after}\n{ctx}"
        ));
    }
    // The file ingested by path stays where it was.
    if !p.exists() {
        return Err(format!("{} was removed", p.display()));
    }
    Ok(())
}

// ----- CSV -----

#[test]
fn csv_corpus_is_rejected_whole() {
    let ws = Workspace::standard("");
    // Something in the ledger, so that "unchanged" means something.
    ws.apply(
        "wms",
        "good.csv",
        &format!("{INV_H}A,W1,10,{T0},,\nB,W1,20,{T0},,\n"),
    );
    let good_a = format!("{INV_H}A,W1,11,{T0},,\n");
    let with = |row: &str| format!("{good_a}{row}\n");
    run_corpus(
        &ws,
        "csv",
        vec![
            case(
                "truncated",
                "wms",
                format!("{good_a}B,W1"),
                &[&["line 3"], &["empty quantity"]],
            ),
            case(
                "truncated_in_quantity_column",
                "wms",
                format!("{good_a}B,W1,2"),
                &[&["line 3"], &["AsOf"]],
            ),
            case(
                "semicolon_separator",
                "wms",
                format!("SKU;Whse;Qty;AsOf;UPC;Title\nA;W1;12;{T0};;\n"),
                &[&["line 1"], &["header lacks column"]],
            ),
            case(
                "non_numeric_quantity",
                "wms",
                with(&format!("B,W1,twelve,{T0},,")),
                &[&["line 3"], &["twelve"]],
            ),
            case(
                "fractional_quantity",
                "wms",
                with(&format!("B,W1,12.5,{T0},,")),
                &[&["line 3"], &["12.5"]],
            ),
            case(
                "exponent_quantity",
                "wms",
                with(&format!("B,W1,1e3,{T0},,")),
                &[&["line 3"], &["1e3"]],
            ),
            case(
                "thousands_separator_quantity",
                "wms",
                with(&format!("B,W1,\"12,000\",{T0},,")),
                &[&["line 3"], &["12,000"]],
            ),
            case(
                "empty_quantity",
                "wms",
                with(&format!("B,W1,,{T0},,")),
                &[&["line 3"], &["empty quantity"]],
            ),
            case(
                "invalid_utf8",
                "wms",
                [
                    good_a.as_bytes(),
                    b"B\xff\xfe,W1,3,",
                    T0.as_bytes(),
                    b",,\n",
                ]
                .concat(),
                &[&["line 3"], &["invalid UTF-8"]],
            ),
            case("empty_file", "wms", "", &[&["line 1"], &["empty"]]),
            // Issue 8: hostile input.
            case(
                "quantity_beyond_a_trillion",
                "wms",
                with(&format!("B,W1,1000000000001,{T0},,")),
                &[&["line 3"], &["out of range"]],
            ),
            case(
                "quantity_i64_max_twice",
                "wms",
                format!(
                    "{INV_H}A,W1,9223372036854775807,{T0},,\nA,W1,9223372036854775807,{T0},,\n"
                ),
                &[&["line 2"], &["out of range"]],
            ),
            case(
                "lots_summing_beyond_a_trillion",
                "wms",
                format!("{INV_H}A,W1,600000000000,{T0},,\nA,W1,600000000000,{T0},,\n"),
                &[&["rows sum to 1200000000000"], &["out of range"]],
            ),
            case(
                "sku_with_tab",
                "wms",
                with(&format!("B\tX,W1,3,{T0},,")),
                &[&["line 3"], &["control character"]],
            ),
            case(
                "sku_with_nul",
                "wms",
                with(&format!("B\0X,W1,3,{T0},,")),
                &[&["line 3"], &["control character"]],
            ),
            case(
                "sku_with_esc",
                "wms",
                with(&format!("B\u{1b}[31mX,W1,3,{T0},,")),
                &[&["line 3"], &["control character"]],
            ),
            case(
                "sku_with_del",
                "wms",
                with(&format!("B\u{7f}X,W1,3,{T0},,")),
                &[&["line 3"], &["control character"]],
            ),
            case(
                "sku_of_256_characters",
                "wms",
                with(&format!("{},W1,3,{T0},,", "S".repeat(256))),
                &[&["line 3"], &["longer than 255"]],
            ),
            case(
                "as_of_in_the_future",
                "wms",
                with("B,W1,3,2099-01-01T00:00:00Z,,"),
                &[&["line 3"], &["as-of in the future"]],
            ),
            case(
                "duplicate_header_column",
                "wms",
                format!("SKU,Whse,Qty,Qty,AsOf,UPC,Title\nA,W1,12,13,{T0},,\n"),
                &[&["line 1"], &["Qty"], &["twice"]],
            ),
            case(
                "row_longer_than_header",
                "wms",
                with(&format!("B,W1,3,{T0},,,extra")),
                &[&["line 3"], &["7 fields, the header has 6"]],
            ),
            case(
                "record_over_1_mib",
                "wms",
                with(&format!("B,W1,{},{T0},,", "1".repeat(2 << 20))),
                &[&["line 3"], &["1 MiB"]],
            ),
            case(
                "field_over_64_kib",
                "wms",
                with(&format!("B,W1,3,{T0},,{}", "t".repeat(100 << 10))),
                &[&["line 3"], &["64 KiB"]],
            ),
            case(
                "order_quantity_beyond_a_trillion",
                "orders",
                format!("Order,Line,SKU,Qty,Status,At,Whse\nO1,1,A,1000000000001,open,{T0},\n"),
                &[&["line 2"], &["out of range"]],
            ),
            case(
                "order_sku_with_control_character",
                "orders",
                format!("Order,Line,SKU,Qty,Status,At,Whse\nO1,1,A\u{1}B,1,open,{T0},\n"),
                &[&["line 2"], &["control character"]],
            ),
            case(
                "header_only_bad_rows_later",
                "wms",
                format!("{good_a}C,W1,1,{T0},,\nD,W1,x,{T0},,\nE,W1,2.5,{T0},,\n"),
                &[&["line 4"], &["line 5"]],
            ),
        ],
    );
    assert_eq!(ws.value("A", "shop"), 10);
    assert_eq!(ws.value("B", "shop"), 20);
}

// ----- XML -----

const XML_MAPPING: &str = r#"format = "xml"
record = "inventory"
item = "Inventory/Item"
[fields]
sku = "SKU"
quantity = "@qty"
warehouse = "Whse"
"#;

fn xml_ws() -> Workspace {
    let ws = Workspace::standard(&inbound("xml", "m1", "inventory", "xinv", ""));
    ws.mapping("xinv", XML_MAPPING);
    ws
}

/// An inventory document: A (quantity `qa`, line 3) then `items` from line 4.
fn xml_doc(qa: &str, items: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Inventory>\n  \
         <Item qty=\"{qa}\"><SKU>A</SKU><Whse>W1</Whse></Item>\n{items}</Inventory>\n"
    )
}

/// `s` as bytes with every NUL turned into 0xFF (never valid in UTF-8).
fn ff(s: &str) -> Vec<u8> {
    s.bytes().map(|b| if b == 0 { 0xff } else { b }).collect()
}

#[test]
fn xml_corpus_is_rejected_whole() {
    let ws = xml_ws();
    ws.apply(
        "xml",
        "good.xml",
        &xml_doc(
            "10",
            "  <Item qty=\"20\"><SKU>B</SKU><Whse>W1</Whse></Item>\n",
        ),
    );
    assert_eq!(ws.value("A", "shop"), 10);
    // Bad files say A = 11: a partly applied file would show.
    let item = |qty: &str, sku: &str| {
        xml_doc(
            "11",
            &format!("  <Item qty=\"{qty}\"><SKU>{sku}</SKU><Whse>W1</Whse></Item>\n"),
        )
    };
    let full = item("7", "B");
    run_corpus(
        &ws,
        "xml",
        vec![
            case(
                "truncated",
                "xml",
                &full.as_bytes()[..full.len() - 40],
                &[&["line 4"]],
            ),
            case(
                "truncated_before_root_end",
                "xml",
                full.replace("</Inventory>\n", ""),
                &[
                    &["line "],
                    &["malformed", "unclosed", "not closed", "end of input"],
                ],
            ),
            case(
                "mismatched_tags",
                "xml",
                full.replace("<SKU>B</SKU>", "<SKU>B</Sku>"),
                &[&["line 4"]],
            ),
            case(
                "non_numeric_quantity",
                "xml",
                item("lots", "B"),
                &[&["line 4"], &["lots"]],
            ),
            case(
                "fractional_quantity",
                "xml",
                item("2.5", "B"),
                &[&["line 4"], &["2.5"]],
            ),
            case(
                "invalid_utf8",
                "xml",
                ff(&item("7", "B\u{0}")),
                &[&["line 4"], &["UTF-8"]],
            ),
            case("empty_file", "xml", "", &[&["line 1"]]),
            case(
                "dtd_external_entity",
                "xml",
                "<?xml version=\"1.0\"?>\n<!DOCTYPE Inventory [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n<Inventory>\n  <Item qty=\"7\"><SKU>&xxe;</SKU><Whse>W1</Whse></Item>\n</Inventory>\n",
                &[&["line 2"], &["DTD"]],
            ),
            case(
                "dtd_entity_expansion",
                "xml",
                "<?xml version=\"1.0\"?>\n<!DOCTYPE Inventory [\n<!ENTITY a \"aaaaaaaaaa\">\n<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n]>\n<Inventory>\n  <Item qty=\"7\"><SKU>&b;</SKU><Whse>W1</Whse></Item>\n</Inventory>\n",
                &[&["line 2"], &["DTD"]],
            ),
            case(
                "quantity_beyond_a_trillion",
                "xml",
                item("1000000000001", "B"),
                &[&["line 4"], &["out of range"]],
            ),
            case(
                "sku_with_tab",
                "xml",
                item("7", "B&#9;X"),
                &[&["line 4"], &["control character"]],
            ),
            case(
                "sku_of_256_characters",
                "xml",
                item("7", &"S".repeat(256)),
                &[&["line 4"], &["longer than 255"]],
            ),
            case(
                "undefined_entity_without_dtd",
                "xml",
                item("7", "&xxe;"),
                &[&["line 4"], &["xxe"]],
            ),
        ],
    );
    assert_eq!(ws.value("A", "shop"), 10);
    assert_eq!(ws.value("B", "shop"), 20);
}

// ----- X12 -----

const ISA: &str = "ISA*00*          *00*          *ZZ*WHSE           *ZZ*STOCKGATE      *260101*1200*U*00401*000000007*0*P*>";

/// An 846 (one segment a line) from the segments after the ISA; counts as given.
fn x12(segs: &[&str]) -> String {
    let mut s = format!("{ISA}~\n");
    for seg in segs {
        s.push_str(seg);
        s.push_str("~\n");
    }
    s
}

/// A good 846: A = `qa`, B = `qb`; SE01/GE01/IEA01 as given.
/// Positions: ISA 1, GS 2, ST 3, BIA 4, LIN 5, QTY 6, LIN 7, QTY 8, CTT 9, SE 10, GE 11, IEA 12.
fn x846(qa: &str, qb: &str, se01: &str, ge01: &str, iea01: &str) -> String {
    x12(&[
        "GS*IB*WHSE*STOCKGATE*20260101*1200*7*X*004010",
        "ST*846*0001",
        "BIA*00*SI*R1*20260101*1200",
        "LIN*1*VN*A*UP*012345678905",
        &format!("QTY*33*{qa}*EA"),
        "LIN*2*VN*B",
        &format!("QTY*33*{qb}*EA"),
        "CTT*2",
        &format!("SE*{se01}*0001"),
        &format!("GE*{ge01}*7"),
        &format!("IEA*{iea01}*000000007"),
    ])
}

fn good846(qa: &str, qb: &str) -> String {
    x846(qa, qb, "8", "1", "1")
}

#[test]
fn x12_corpus_is_rejected_whole() {
    let ws = Workspace::standard(&format!(
        "{}{}",
        inbound("edi", "m1", "inventory", "edi", "warehouse = \"EDI\""),
        inbound("edizz", "m1", "inventory", "edizz", "warehouse = \"EDI\"")
    ));
    let m = |q: &str| {
        format!(
            "format = \"x12\"\nrecord = \"inventory\"\nsku_qualifier = \"{q}\"\nquantity_qualifier = \"33\"\n"
        )
    };
    ws.mapping("edi", &m("VN"));
    ws.mapping("edizz", &m("ZZ"));
    ws.apply("edi", "good.x12", &good846("10", "20"));
    assert_eq!(ws.value("A", "shop"), 10);

    let good = good846("5", "6");
    // The good file, body segments written with '|' although the ISA says '*'.
    let wrong_sep = {
        let (isa, body) = good.split_at(ISA.len() + 2);
        format!("{isa}{}", body.replace('*', "|"))
    };
    let bad_utf8 = ff(&good.replacen("LIN*2*VN*B", "LIN*2*VN*B\u{0}", 1));
    run_corpus(
        &ws,
        "x12",
        vec![
            case(
                "truncated_in_body",
                "edi",
                &good.as_bytes()[..200],
                &[&["missing SE for ST at segment 3"]],
            ),
            case(
                "truncated_before_iea",
                "edi",
                good.split("IEA*").next().unwrap(),
                &[&["missing IEA"], &["segment 11"]],
            ),
            case(
                "truncated_inside_isa",
                "edi",
                &good.as_bytes()[..60],
                &[&["ISA at segment 1"]],
            ),
            case(
                "wrong_se01",
                "edi",
                x846("5", "6", "9", "1", "1"),
                &[&["SE at segment 10"], &["SE01"]],
            ),
            case(
                "wrong_ge01",
                "edi",
                x846("5", "6", "8", "2", "1"),
                &[&["GE at segment 11"], &["GE01"]],
            ),
            case(
                "wrong_iea01",
                "edi",
                x846("5", "6", "8", "1", "2"),
                &[&["IEA at segment 12"], &["IEA01"]],
            ),
            case(
                "wrong_ctt01",
                "edi",
                good.replace("CTT*2", "CTT*3"),
                &[&["CTT at segment 9"], &["CTT01"]],
            ),
            case(
                "se02_differs_from_st02",
                "edi",
                good.replace("SE*8*0001", "SE*8*0002"),
                &[&["SE at segment 10"], &["SE02"]],
            ),
            case(
                "iea02_differs_from_isa13",
                "edi",
                good.replace("IEA*1*000000007", "IEA*1*000000008"),
                &[&["IEA at segment 12"], &["IEA02"]],
            ),
            case(
                "wrong_separator_in_body",
                "edi",
                wrong_sep,
                &[&["position 2", "segment 2"]],
            ),
            case(
                "missing_terminator",
                "edi",
                good.replace("QTY*33*6*EA~", "QTY*33*6*EA"),
                &[&["segment 8"]],
            ),
            case(
                "non_numeric_quantity",
                "edi",
                good846("5", "lots"),
                &[&["line 8", "segment 8"], &["lots"]],
            ),
            case(
                "fractional_quantity",
                "edi",
                good846("5", "6.5"),
                &[&["line 8", "segment 8"], &["6.5"]],
            ),
            case(
                "empty_quantity",
                "edi",
                good.replace("QTY*33*6*EA", "QTY*33**EA"),
                &[&["line 8", "segment 8"]],
            ),
            case(
                "unknown_sku_qualifier",
                "edizz",
                good.clone(),
                &[
                    &["no LIN qualifier ZZ in LIN at segment 5"],
                    &["LIN at segment 7"],
                ],
            ),
            // A LIN loop without the QTY 33 is left out and counted, not
            // rejected (issue 9; tests/x12.rs issue9_2_...).
            case(
                "invalid_utf8",
                "edi",
                bad_utf8,
                &[&["LIN at segment 7"], &["UTF-8"]],
            ),
            case("empty_file", "edi", "", &[&["segment 1"]]),
            case(
                "not_x12",
                "edi",
                format!("{INV_H}A,W1,5,{T0},,\n"),
                &[&["segment 1"], &["ISA"]],
            ),
            case(
                "purchase_order_in_an_inventory_source",
                "edi",
                x12(&[
                    "GS*PO*WHSE*STOCKGATE*20260101*1200*7*X*004010",
                    "ST*850*0001",
                    "BEG*00*SA*PO1**20260101",
                    "PO1*1*5*EA***VN*A",
                    "CTT*1",
                    "SE*5*0001",
                    "GE*1*7",
                    "IEA*1*000000007",
                ]),
                &[&["ST at segment 3"], &["850"]],
            ),
            case(
                "quantity_beyond_a_trillion",
                "edi",
                good846("5", "1000000000001"),
                &[&["line 7", "segment 7", "segment 8"], &["out of range"]],
            ),
            case(
                "sku_with_tab",
                "edi",
                good.replacen("LIN*2*VN*B", "LIN*2*VN*B\tX", 1),
                &[&["segment 7", "segment 8"], &["control character"]],
            ),
            case(
                "isa13_not_digits",
                "edi",
                good.replace("000000007", "00000010A"),
                &[&["segment 1"], &["ISA13"], &["nine digits"]],
            ),
            case(
                "isa13_path_traversal",
                "edi",
                good.replace("000000007", "../../../"),
                &[&["segment 1"], &["ISA13"], &["nine digits"]],
            ),
            case(
                "isa11_equals_the_component_separator",
                "edi",
                good.replace("*U*00401*", "*>*00501*"),
                &[&["segment 1"], &["ISA11"]],
            ),
            case(
                "data_after_iea",
                "edi",
                format!("{good}GS*IB*X*Y*20250601*1000*9*X*004010~"),
                &[&["data after IEA: GS at segment 13"]],
            ),
            // Another interchange may follow (issue 9), but not the same one again.
            case(
                "repeated_interchange",
                "edi",
                format!("{good}{}", good846("5", "6")),
                &[
                    &["ISA at segment 13: ISA13"],
                    &["repeats the control number of an earlier interchange"],
                ],
            ),
        ],
    );
    assert_eq!(ws.value("A", "shop"), 10);
    assert_eq!(ws.value("B", "shop"), 20);
}
