//! Tests of the order loop: 940/856 writers (exact bytes, the independent
//! validator in 004010 and 005010), 945/856 readers, the 850 ship-to.

use std::io::Cursor;

use super::error::X12Error;
use super::inbound::{OrderLine850, read_850};
use super::orders::{
    Address, Item856, Line940, Order940, Pack856, Profile856, Profile940, Shipment856,
    check_order_940, check_shipment_856, write_856, write_940,
};
use super::shipments::{ShipLineIn, read_856_with, read_945_with};
use super::tests::{dt, tmp_dir, validate_files};
use super::writer::{ControlNumbers, EnvelopeProfile};

fn envelope(version: &str) -> EnvelopeProfile {
    EnvelopeProfile {
        version: version.into(),
        sender_qualifier: "ZZ".into(),
        sender_id: "GATE".into(),
        receiver_qualifier: "ZZ".into(),
        receiver_id: "WHSE".into(),
        usage: 'T',
        element_separator: '*',
        segment_terminator: '~',
        component_separator: '>',
        line_break: true,
    }
}

const CTL: ControlNumbers = ControlNumbers {
    interchange: 17,
    group: 17,
};

fn address() -> Address {
    Address {
        name: "Ada Lovelace".into(),
        company: "Analytical Ltd".into(),
        address1: "12 Engine St".into(),
        address2: "Unit 3".into(),
        city: "London".into(),
        state: "LN".into(),
        postal_code: "N1 9GU".into(),
        country: "GB".into(),
        phone: "+44 20 5555".into(),
        email: "ada@example.com".into(),
    }
}

fn profile_940(version: &str) -> Profile940 {
    Profile940 {
        envelope: envelope(version),
        transport_method: "M".into(),
        payment_method: "PP".into(),
        unit: "EA".into(),
    }
}

fn order() -> Order940 {
    Order940 {
        order_id: "1001".into(),
        po_number: "PO-77".into(),
        ship_method: "UPS GROUND".into(),
        ordered_at: Some(dt(2024, 3, 1, 9, 30)),
        ship_to: address(),
        lines: vec![
            Line940 {
                line: "1".into(),
                quantity: 2,
                ids: vec![("VN".into(), "SKU-1".into())],
            },
            Line940 {
                line: "2".into(),
                quantity: 5,
                ids: vec![
                    ("UP".into(), "012345678905".into()),
                    ("VN".into(), "SKU-2".into()),
                ],
            },
        ],
    }
}

fn write_940_str(version: &str, orders: &[Order940]) -> Result<String, X12Error> {
    let mut out = Vec::new();
    write_940(
        &mut out,
        &profile_940(version),
        CTL,
        dt(2024, 3, 2, 8, 0),
        orders,
    )?;
    Ok(String::from_utf8(out).unwrap())
}

fn profile_856(version: &str) -> Profile856 {
    Profile856 {
        envelope: envelope(version),
        unit: "EA".into(),
    }
}

fn shipment() -> Shipment856 {
    Shipment856 {
        shipment_id: "SH-500".into(),
        shipped_at: dt(2024, 3, 3, 14, 5),
        carrier: "UPSN".into(),
        service: "GROUND".into(),
        order_id: "1001".into(),
        po_number: String::new(),
        ship_to: Address {
            name: "Ada Lovelace".into(),
            address1: "12 Engine St".into(),
            city: "London".into(),
            postal_code: "N1 9GU".into(),
            country: "GB".into(),
            ..Default::default()
        },
        packs: vec![
            Pack856 {
                package: "00012345670000000018".into(),
                tracking: "1Z999AA10123456784".into(),
                items: vec![Item856 {
                    line: "1".into(),
                    ids: vec![("VN".into(), "SKU-1".into())],
                    shipped: 2,
                    ordered: 2,
                }],
            },
            Pack856 {
                package: String::new(),
                tracking: String::new(),
                items: vec![Item856 {
                    line: "2".into(),
                    ids: vec![
                        ("VN".into(), "SKU-2".into()),
                        ("UP".into(), "012345678905".into()),
                    ],
                    shipped: 3,
                    ordered: 5,
                }],
            },
        ],
    }
}

fn write_856_str(version: &str, shipments: &[Shipment856]) -> Result<String, X12Error> {
    let mut out = Vec::new();
    write_856(
        &mut out,
        &profile_856(version),
        CTL,
        dt(2024, 3, 3, 15, 0),
        shipments,
    )?;
    Ok(String::from_utf8(out).unwrap())
}

fn vn() -> Vec<String> {
    vec!["VN".into()]
}

fn lines_945(text: &str) -> Result<Vec<ShipLineIn>, X12Error> {
    let mut v = Vec::new();
    read_945_with(Cursor::new(text), &vn(), |l| {
        v.push(l);
        Ok::<(), X12Error>(())
    })?;
    Ok(v)
}

fn lines_856(text: &str) -> Result<Vec<ShipLineIn>, X12Error> {
    let mut v = Vec::new();
    read_856_with(Cursor::new(text), &vn(), |l| {
        v.push(l);
        Ok::<(), X12Error>(())
    })?;
    Ok(v)
}

// ---------------------------------------------------------------- 940

const EXPECTED_940: &str = "\
ISA*00*          *00*          *ZZ*GATE           *ZZ*WHSE           *240302*0800*U*00401*000000017*0*T*>~
GS*OW*GATE*WHSE*20240302*0800*17*X*004010~
ST*940*0001~
W05*N*1001*PO-77~
N1*ST*Ada Lovelace~
N2*Analytical Ltd~
N3*12 Engine St*Unit 3~
N4*London*LN*N1 9GU*GB~
PER*IC**TE*+44 20 5555*EM*ada@example.com~
G62*04*20240301~
W66*PP*M***UPS GROUND~
LX*1~
W01*2*EA**VN*SKU-1~
N9*LI*1~
LX*2~
W01*5*EA*012345678905*VN*SKU-2~
N9*LI*2~
W76*7~
SE*17*0001~
GE*1*17~
IEA*1*000000017~
";

#[test]
fn write_940_exact_bytes() {
    assert_eq!(write_940_str("004010", &[order()]).unwrap(), EXPECTED_940);
}

#[test]
fn write_940_without_ship_method_or_date() {
    let mut o = order();
    o.ship_method.clear();
    o.ordered_at = None;
    o.ship_to = Address::default();
    o.po_number.clear();
    let text = write_940_str("004010", &[o]).unwrap();
    assert!(
        text.contains("ST*940*0001~\nW05*N*1001~\nW66*PP*M~\nLX*1~"),
        "{text}"
    );
    assert!(text.contains("SE*11*0001~"), "{text}");
}

#[test]
fn write_940_validates_in_both_versions() {
    let dir = tmp_dir("w940");
    let mut second = order();
    second.order_id = "1002".into();
    second.ship_method.clear();
    let mut files = Vec::new();
    for v in ["004010", "005010"] {
        let f = dir.join(format!("940-{v}.x12"));
        std::fs::write(&f, write_940_str(v, &[order(), second.clone()]).unwrap()).unwrap();
        files.push(f);
    }
    validate_files(&files);
}

#[test]
fn write_940_refuses_bad_orders() {
    let mut empty = order();
    empty.lines.clear();
    let e = write_940_str("004010", &[empty]).unwrap_err().to_string();
    assert!(e.contains("at least one line"), "{e}");
    let mut delim = order();
    delim.ship_to.address1 = "12*Engine".into();
    let e = write_940_str("004010", &[delim]).unwrap_err().to_string();
    assert!(e.contains("N301") && e.contains("delimiter"), "{e}");
    let mut neg = order();
    neg.lines[0].quantity = -1;
    assert!(write_940_str("004010", &[neg]).is_err());
    assert!(write_940_str("004010", &[]).is_err());
    // Checked before anything is written: a bad second order leaves no output.
    let mut long = order();
    long.ship_to.name = "N".repeat(61);
    let p = profile_940("004010");
    let e = check_order_940(&p, &long).unwrap_err().to_string();
    assert!(e.contains("N102"), "{e}");
    assert!(check_order_940(&p, &order()).is_ok());
    let mut out = Vec::new();
    let now = dt(2024, 3, 2, 8, 0);
    assert!(write_940(&mut out, &p, CTL, now, &[order(), long]).is_err());
    assert!(out.is_empty());
}

// ---------------------------------------------------------------- 856

const EXPECTED_856: &str = "\
ISA*00*          *00*          *ZZ*GATE           *ZZ*WHSE           *240303*1500*U*00401*000000017*0*T*>~
GS*SH*GATE*WHSE*20240303*1500*17*X*004010~
ST*856*0001~
BSN*00*SH-500*20240303*1500~
HL*1**S~
TD5**2*UPSN**GROUND~
DTM*011*20240303*1405~
N1*ST*Ada Lovelace~
N3*12 Engine St~
N4*London**N1 9GU*GB~
HL*2*1*O~
PRF*1001~
HL*3*2*P~
MAN*GM*00012345670000000018~
MAN*CP*1Z999AA10123456784~
HL*4*3*I~
LIN*1*VN*SKU-1~
SN1**2*EA**2*EA~
HL*5*2*P~
HL*6*5*I~
LIN*2*VN*SKU-2*UP*012345678905~
SN1**3*EA**5*EA~
CTT*6~
SE*22*0001~
GE*1*17~
IEA*1*000000017~
";

#[test]
fn write_856_exact_bytes() {
    assert_eq!(
        write_856_str("004010", &[shipment()]).unwrap(),
        EXPECTED_856
    );
}

#[test]
fn write_856_validates_in_both_versions() {
    let dir = tmp_dir("w856");
    let mut second = shipment();
    second.shipment_id = "SH-501".into();
    second.carrier.clear();
    second.ship_to = Address::default();
    second.po_number = "PO-77".into();
    let mut files = Vec::new();
    for v in ["004010", "005010"] {
        let f = dir.join(format!("856-{v}.x12"));
        std::fs::write(&f, write_856_str(v, &[shipment(), second.clone()]).unwrap()).unwrap();
        files.push(f);
    }
    validate_files(&files);
}

#[test]
fn write_856_refuses_bad_shipments() {
    let mut s = shipment();
    s.shipment_id = "X".into();
    assert!(write_856_str("004010", &[s]).is_err());
    let mut s = shipment();
    s.packs[0].tracking = "1Z~9".into();
    let e = write_856_str("004010", &[s]).unwrap_err().to_string();
    assert!(e.contains("MAN02"), "{e}");
    let mut s = shipment();
    s.order_id.clear();
    assert!(write_856_str("004010", &[s]).is_err());
    assert!(write_856_str("004010", &[]).is_err());
    let p = profile_856("005010");
    assert!(check_shipment_856(&p, &shipment()).is_ok());
    let mut s = shipment();
    s.carrier = "UPS GROUND".into();
    let e = check_shipment_856(&p, &s).unwrap_err().to_string();
    assert!(e.contains("SCAC"), "{e}");
}

#[test]
fn write_856_round_trip() {
    let text = write_856_str("005010", &[shipment()]).unwrap();
    let lines = lines_856(&text).unwrap();
    assert_eq!(lines.len(), 2);
    let got: Vec<(&str, &str, &str, &str, &str, &str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l.shipment_id.as_str(),
                l.order_id.as_str(),
                l.line.as_str(),
                l.package.as_str(),
                l.tracking.as_str(),
                l.quantity.as_str(),
                l.ordered.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "SH-500",
                "1001",
                "1",
                "00012345670000000018",
                "1Z999AA10123456784",
                "2",
                "2"
            ),
            ("SH-500", "1001", "2", "", "", "3", "5"),
        ]
    );
    for l in &lines {
        assert_eq!(l.carrier, "UPSN");
        assert_eq!(l.service, "GROUND");
        assert_eq!(l.shipped_at, Some(dt(2024, 3, 3, 14, 5)));
        assert_eq!(l.error, None);
    }
    assert_eq!(lines[1].sku.as_deref(), Some("SKU-2"));
}

// ---------------------------------------------------------------- 945

const SHIP_945: &str = "\
ISA*00*          *00*          *ZZ*WHSE           *ZZ*GATE           *240303*1600*U*00401*000000031*0*P*>~
GS*SW*WHSE*GATE*20240303*1600*31*X*004010~
ST*945*0001~
W06*N*1001*20240303*SH-945**PO-77~
N1*ST*Ada Lovelace~
N9*BM*BOL-1~
G62*11*20240303*8*1405~
W27*M*UPSN*UPS GROUND~
LX*1~
MAN*GM*00012345670000000018~
MAN*CP*1Z999AA10123456784~
W12*CC*2*2**EA**VN*SKU-1~
LX*2~
MAN*GM*00012345670000000025~
W12*PR*5*3**EA*012345678905*VN*SKU-2~
N9*CN*1ZTRACK2~
W03*5~
SE*16*0001~
GE*1*31~
IEA*1*000000031~
";

#[test]
fn read_945_fields() {
    let lines = lines_945(SHIP_945).unwrap();
    assert_eq!(lines.len(), 2);
    let a = &lines[0];
    assert_eq!(
        *a,
        ShipLineIn {
            shipment_id: "SH-945".into(),
            order_id: "1001".into(),
            po_number: "PO-77".into(),
            line: "1".into(),
            sku: Some("SKU-1".into()),
            ids: vec![("VN".into(), "SKU-1".into())],
            quantity: "2".into(),
            unit: "EA".into(),
            ordered: "2".into(),
            status: "CC".into(),
            package: "00012345670000000018".into(),
            tracking: "1Z999AA10123456784".into(),
            carrier: "UPSN".into(),
            service: "UPS GROUND".into(),
            shipped_at: Some(dt(2024, 3, 3, 14, 5)),
            position: 12,
            set_control: "0001".into(),
            error: None,
        }
    );
    let b = &lines[1];
    assert_eq!(b.line, "2");
    assert_eq!(b.quantity, "3");
    assert_eq!(b.ordered, "5");
    assert_eq!(b.status, "PR");
    assert_eq!(b.package, "00012345670000000025");
    assert_eq!(b.tracking, "1ZTRACK2", "N9*CN in the W12 loop");
    assert_eq!(
        b.ids,
        vec![
            ("UP".to_owned(), "012345678905".to_owned()),
            ("VN".to_owned(), "SKU-2".to_owned())
        ]
    );
    assert_eq!(b.sku.as_deref(), Some("SKU-2"));
    assert_eq!(b.position, 15);
}

#[test]
fn read_945_defects() {
    // Truncated mid-set: an error, not a short read.
    let cut = &SHIP_945[..SHIP_945.find("LX*2").unwrap()];
    assert!(lines_945(cut).is_err());
    // W12 before the W06.
    let early = SHIP_945.replace("W06*N*1001*20240303*SH-945**PO-77~\n", "");
    let e = lines_945(&early).unwrap_err().to_string();
    assert!(e.contains("before the W06"), "{e}");
    // Wrong set type.
    let wrong = SHIP_945.replace("ST*945*", "ST*856*");
    assert!(lines_945(&wrong).is_err());
    // A line without the SKU qualifier is a bad line, not an error.
    let mut v = Vec::new();
    let sum = read_945_with(Cursor::new(SHIP_945), &["BP".to_owned()], |l| {
        v.push(l);
        Ok::<(), X12Error>(())
    })
    .unwrap();
    assert_eq!((sum.sets, sum.lines, sum.bad_lines), (1, 2, 2));
    assert!(
        v[0].error
            .as_deref()
            .unwrap()
            .contains("no item qualifier BP")
    );
}

#[test]
fn read_945_without_w12_has_no_lines() {
    let text = "\
ISA*00*          *00*          *ZZ*WHSE           *ZZ*GATE           *240303*1600*U*00401*000000032*0*P*>~
GS*SW*WHSE*GATE*20240303*1600*32*X*004010~
ST*945*0001~
W06*N*1001*20240303*SH-1~
N1*ST*X~
SE*4*0001~
GE*1*32~
IEA*1*000000032~
";
    assert_eq!(lines_945(text).unwrap(), vec![]);
}

// ---------------------------------------------------------------- 856 reader

const SHIP_856: &str = "\
ISA*00*          *00*          *ZZ*WHSE           *ZZ*GATE           *240303*1600*U*00501*000000041*0*P*>~
GS*SH*WHSE*GATE*20240303*1600*41*X*005010~
ST*856*0001~
BSN*00*ASN-9*20240303*1600~
HL*1**S~
TD5*B*2*FDEG*M*FEDEX GROUND~
REF*CN*SHIPTRACK~
DTM*011*20240302*0915~
HL*2*1*O~
PRF*PO-77~
HL*3*2*P~
MAN*GM*PKG-1~
HL*4*3*I~
LIN*1*VN*SKU-1*UP*012345678905~
SN1**4*EA**6*EA**IC~
HL*5*2*P~
REF*CN*PACKTRACK~
HL*6*5*I~
LIN**BP*B-2~
SN1**1*CA~
CTT*6~
SE*20*0001~
GE*1*41~
IEA*1*000000041~
";

#[test]
fn read_856_fields() {
    let lines = lines_856(SHIP_856).unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0],
        ShipLineIn {
            shipment_id: "ASN-9".into(),
            order_id: "PO-77".into(),
            po_number: "PO-77".into(),
            line: "1".into(),
            sku: Some("SKU-1".into()),
            ids: vec![
                ("VN".into(), "SKU-1".into()),
                ("UP".into(), "012345678905".into())
            ],
            quantity: "4".into(),
            unit: "EA".into(),
            ordered: "6".into(),
            status: "IC".into(),
            package: "PKG-1".into(),
            tracking: "SHIPTRACK".into(),
            carrier: "FDEG".into(),
            service: "FEDEX GROUND".into(),
            shipped_at: Some(dt(2024, 3, 2, 9, 15)),
            position: 15,
            set_control: "0001".into(),
            error: None,
        }
    );
    let b = &lines[1];
    assert_eq!(
        b.tracking, "PACKTRACK",
        "pack level wins over shipment level"
    );
    assert_eq!(b.package, "");
    assert_eq!(b.line, "");
    assert_eq!((b.quantity.as_str(), b.unit.as_str()), ("1", "CA"));
    assert_eq!(b.ordered, "");
    assert_eq!(b.sku, None);
    assert!(b.error.as_deref().unwrap().contains("no item qualifier VN"));
    // BSN03+BSN04 when no DTM*011.
    let no_dtm = SHIP_856
        .replace("DTM*011*20240302*0915~\n", "")
        .replace("SE*20*", "SE*19*");
    let l = lines_856(&no_dtm).unwrap();
    assert_eq!(l[0].shipped_at, Some(dt(2024, 3, 3, 16, 0)));
    // A header DTM*011 (before the first HL) when no level has one.
    let header = no_dtm
        .replace("1600~\nHL*1**S~", "1600~\nDTM*011*20240301*0700~\nHL*1**S~")
        .replace("SE*19*", "SE*20*");
    let l = lines_856(&header).unwrap();
    assert_eq!(l[0].shipped_at, Some(dt(2024, 3, 1, 7, 0)));
}

#[test]
fn read_856_defects() {
    let early = SHIP_856
        .replace("BSN*00*ASN-9*20240303*1600~\n", "")
        .replace("SE*20*", "SE*19*");
    let e = lines_856(&early).unwrap_err().to_string();
    assert!(e.contains("before the BSN"), "{e}");
    let orphan = SHIP_856.replace("HL*6*5*I", "HL*6*9*I");
    let e = lines_856(&orphan).unwrap_err().to_string();
    assert!(e.contains("HL02"), "{e}");
    let cut = &SHIP_856[..SHIP_856.find("CTT").unwrap()];
    assert!(lines_856(cut).is_err());
}

// ---------------------------------------------------------------- 850 ship-to

const PO_850_SHIP_TO: &str = "\
ISA*00*          *00*          *ZZ*SHOP           *ZZ*GATE           *240102*0930*U*00401*000000005*0*P*>~
GS*PO*SHOP*GATE*20240102*0930*5*X*004010~
ST*850*0001~
BEG*00*SA*PO-778**20240101~
TD5**2*UPSN**UPS 2ND DAY~
N1*BT*Billing Person~
N3*1 Bill Rd~
N1*ST*Ada Lovelace~
N2*Analytical Ltd~
N3*12 Engine St*Unit 3~
N4*London*LN*N1 9GU*GB~
PER*IC*Ada*EM*ada@example.com*TE*+44 20 5555~
PO1*1*3*EA*9.99**VN*SKU-1~
PO1*2*1*EA*1.00**VN*SKU-2~
CTT*2~
SE*14*0001~
GE*1*5~
IEA*1*000000005~
";

#[test]
fn read_850_ship_to_on_every_line() {
    let mut lines: Vec<OrderLine850> = Vec::new();
    read_850(Cursor::new(PO_850_SHIP_TO), "VN", |l| {
        lines.push(l);
        Ok::<(), X12Error>(())
    })
    .unwrap();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert_eq!(l.po_number, "PO-778");
        assert_eq!(l.ship_method, "UPS 2ND DAY");
        assert_eq!(l.ship_to, address());
        assert_eq!(l.error, None);
    }
    // TD503 when there is no routing; TD504 when there is neither.
    let scac = PO_850_SHIP_TO.replace("TD5**2*UPSN**UPS 2ND DAY", "TD5**2*UPSN*M");
    let mut methods = Vec::new();
    read_850(Cursor::new(scac.as_str()), "VN", |l| {
        methods.push(l.ship_method);
        Ok::<(), X12Error>(())
    })
    .unwrap();
    assert_eq!(methods, vec!["UPSN", "UPSN"]);
    let mode = PO_850_SHIP_TO.replace("TD5**2*UPSN**UPS 2ND DAY", "TD5****M");
    let mut methods = Vec::new();
    read_850(Cursor::new(mode.as_str()), "VN", |l| {
        methods.push(l.ship_method);
        Ok::<(), X12Error>(())
    })
    .unwrap();
    assert_eq!(methods, vec!["M", "M"]);
}

// ---------------------------------------------------------------- no panics

/// Both shipment readers over `bytes`: any result, never a panic.
fn exercise_shipments(bytes: &[u8]) {
    let wanted = ["VN".to_owned(), "UP".to_owned()];
    let _ = read_945_with(Cursor::new(bytes), &wanted, |_| Ok::<(), X12Error>(()));
    let _ = read_856_with(Cursor::new(bytes), &wanted, |_| Ok::<(), X12Error>(()));
    let _ = read_850(Cursor::new(bytes), "VN", |_| Ok::<(), X12Error>(()));
}

#[test]
fn shipment_readers_survive_mutations() {
    let written = write_856_str("004010", &[shipment()]).unwrap();
    let seeds: Vec<&[u8]> = vec![
        SHIP_945.as_bytes(),
        SHIP_856.as_bytes(),
        PO_850_SHIP_TO.as_bytes(),
        written.as_bytes(),
    ];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let interesting = [b'*', b'~', b'\n', b'H', b'L', b'1', b'2', b'S', 0xFF, 0];
    for _ in 0..3000 {
        let mut b = seeds[(rnd() % seeds.len() as u64) as usize].to_vec();
        for _ in 0..1 + rnd() % 6 {
            if b.is_empty() {
                break;
            }
            let i = (rnd() % b.len() as u64) as usize;
            match rnd() % 4 {
                0 => b[i] = rnd() as u8,
                1 => b[i] = interesting[(rnd() % interesting.len() as u64) as usize],
                2 => {
                    b.remove(i);
                }
                _ => {
                    let j = (i + 1 + (rnd() % 40) as usize).min(b.len());
                    let chunk = b[i..j].to_vec();
                    b.splice(i..i, chunk);
                }
            }
        }
        exercise_shipments(&b);
    }
    for seed in &seeds {
        for n in 0..seed.len() {
            exercise_shipments(&seed[..n]);
        }
    }
}
