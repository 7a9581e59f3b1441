//! Tests against the third-party samples, a malformed corpus, the writers
//! (checked by the independent validator) and random mutations.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{NaiveDate, NaiveDateTime};

use super::ack::{GroupAck, SetAck, build_997, read_997, validate_for_ack};
use super::envelope::{Envelope, Event};
use super::error::{AckCode, X12Error};
use super::inbound::{Item846In, OrderLine850, parse_time, read_846, read_850};
use super::reader::Reader;
use super::writer::{
    ControlNumbers, EnvelopeProfile, Item846Out, Profile846, write_846, write_846_sets,
};

/// shared/ sits beside the crate (CI clone) or at /work/shared.
pub(super) fn shared_path(env: &str, rel: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for base in [
        manifest.join("../shared"),
        manifest.join("../../shared"),
        PathBuf::from("/work/shared"),
    ] {
        let p = base.join(rel);
        if p.exists() {
            return p;
        }
    }
    panic!("{rel} not found: set {env}");
}

fn samples_dir() -> PathBuf {
    shared_path("X12_SAMPLES", "samples/x12")
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(samples_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Temporary folder removed when the test ends.
pub(super) struct TmpDir(PathBuf);

impl TmpDir {
    pub(super) fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn tmp_dir(name: &str) -> TmpDir {
    let d = std::env::temp_dir().join(format!("x12-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    TmpDir(d)
}

/// Run the independent validator; panics with its output when it rejects.
pub(super) fn validate_files(files: &[PathBuf]) {
    let tool = shared_path("X12_VALIDATE", "tools/x12-validate/x12-validate");
    let out = Command::new(tool)
        .args(files)
        .output()
        .expect("run x12-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "x12-validate rejected:\n{text}");
}

fn all_segments(bytes: &[u8]) -> Result<Vec<super::reader::Segment>, X12Error> {
    let mut r = Reader::new(Cursor::new(bytes));
    let mut v = Vec::new();
    while let Some(s) = r.next_segment()? {
        v.push(s);
    }
    Ok(v)
}

fn envelope_check(bytes: &[u8]) -> Result<Vec<Event>, X12Error> {
    Envelope::new(Cursor::new(bytes)).collect()
}

fn envelope_err(bytes: &[u8]) -> String {
    match envelope_check(bytes) {
        Ok(_) => panic!("expected rejection of {:?}", String::from_utf8_lossy(bytes)),
        Err(e) => e.to_string(),
    }
}

fn items_846(bytes: &[u8], sku: &str, qty: &str) -> Result<Vec<Item846In>, X12Error> {
    let mut v = Vec::new();
    read_846(Cursor::new(bytes), sku, qty, |i| {
        v.push(i);
        Ok::<(), X12Error>(())
    })?;
    Ok(v)
}

pub(super) fn dt(y: i32, m: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(h, mi, 0)
        .unwrap()
}

// ---------------------------------------------------------------- samples

#[test]
#[allow(clippy::type_complexity)]
fn samples_separators() {
    // (file, element, component, repetition, terminator, segments, last id)
    let cases: &[(&str, u8, u8, Option<u8>, u8, usize, &str)] = &[
        (
            "bots-plugins_810-004030VICS-01.x12",
            b'*',
            b':',
            Some(b'^'),
            b'~',
            46,
            "IEA",
        ),
        (
            "bots-plugins_820-004010VICS-03.x12",
            b'*',
            b'>',
            None,
            b'\n',
            0,
            "IEA",
        ),
        (
            "bots-plugins_855-004010UCS-01.x12",
            b'*',
            b'>',
            None,
            b'~',
            0,
            "IEA",
        ),
        (
            "bots-plugins_997-004010VICS-01.x12",
            b'*',
            b'>',
            None,
            0x15,
            10,
            "IEA",
        ),
        (
            "crate_x12-types-0.12.0_v005010_846_full_transmission.edi",
            b'*',
            b'>',
            None,
            b'~',
            11,
            "IEA",
        ),
        (
            "npm_node-x12-edi-1.0.15_test.edi",
            b'*',
            b'>',
            None,
            b'\r',
            25,
            "IEA",
        ),
        (
            "vscode-edi-x12-support_odd-separator.edi",
            b'|',
            b'!',
            Some(b'>'),
            b'~',
            0,
            "PRV",
        ),
        (
            "oopfactory_ORD__846_Example1.txt",
            b'~',
            b'>',
            None,
            b'}',
            20,
            "IEA",
        ),
        (
            "oopfactory_ORD__846_Example2.txt",
            b'~',
            b'>',
            None,
            b'*',
            28,
            "IEA",
        ),
    ];
    let mut seen = 0;
    for &(name, e, c, rep, t, count, last) in cases {
        let bytes = sample(name);
        let mut r = Reader::new(Cursor::new(&bytes[..]));
        let first = r.next_segment().unwrap().unwrap();
        assert_eq!(first.id(), "ISA", "{name}");
        let seps = r.separators().unwrap();
        assert_eq!(
            (seps.element, seps.component, seps.repetition, seps.segment),
            (e, c, rep, t),
            "{name}"
        );
        let segs = all_segments(&bytes).unwrap_or_else(|err| panic!("{name}: {err}"));
        if count > 0 {
            assert_eq!(segs.len(), count, "{name}");
        }
        assert_eq!(segs.last().unwrap().id(), last, "{name}");
        for (i, s) in segs.iter().enumerate() {
            assert_eq!(s.position, i + 1, "{name}");
        }
        seen += 1;
    }
    // Every file in the folder is covered.
    let files = std::fs::read_dir(samples_dir())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != "SOURCES.md")
        .count();
    assert_eq!(files, seen);
}

#[test]
fn samples_envelopes() {
    for name in [
        "bots-plugins_810-004030VICS-01.x12",
        "bots-plugins_820-004010VICS-03.x12",
        "bots-plugins_855-004010UCS-01.x12",
        "bots-plugins_997-004010VICS-01.x12",
        "crate_x12-types-0.12.0_v005010_846_full_transmission.edi",
        "npm_node-x12-edi-1.0.15_test.edi",
        "oopfactory_ORD__846_Example1.txt",
    ] {
        let events = envelope_check(&sample(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            matches!(events.last(), Some(Event::InterchangeEnd { .. })),
            "{name}"
        );
    }
    let ev = envelope_check(&sample("bots-plugins_855-004010UCS-01.x12")).unwrap();
    let sets = ev
        .iter()
        .filter(|e| matches!(e, Event::SetStart(_)))
        .count();
    assert_eq!(sets, 6);
}

#[test]
fn sample_810_segment_detail() {
    let segs = all_segments(&sample("bots-plugins_810-004030VICS-01.x12")).unwrap();
    let it1 = &segs[9];
    assert_eq!(it1.id(), "IT1");
    assert_eq!(it1.position, 10);
    assert_eq!(it1.element(1), "");
    assert_eq!(it1.element(2), "16");
    assert_eq!(it1.element(7), "001055503223");
    assert_eq!(it1.element(8), "");
    assert_eq!(it1.element(0), "");
}

#[test]
fn odd_separator_truncated_rejected() {
    let msg = envelope_err(&sample("vscode-edi-x12-support_odd-separator.edi"));
    assert_eq!(
        msg,
        "missing SE for ST at segment 3: input ends after segment 46"
    );
}

#[test]
fn example1_846() {
    let items = items_846(&sample("oopfactory_ORD__846_Example1.txt"), "BP", "34").unwrap();
    assert_eq!(items.len(), 1);
    let it = &items[0];
    assert_eq!(it.sku.as_deref(), Some("46L5055"));
    assert_eq!(it.quantity.as_deref(), Some("5250"));
    assert_eq!(it.as_of, Some(dt(2004, 8, 11, 23, 0)));
    assert_eq!(it.position, 10);
    assert_eq!(it.lin_position, 9);
    assert_eq!(it.set_control, "1979");
    assert_eq!(it.error, None);
    assert_eq!(
        it.ids,
        vec![
            ("BP".into(), "46L5055".into()),
            ("EC".into(), "5V".into()),
            ("MF".into(), "XYZ Corporation".into()),
            ("MG".into(), "1234123232".into())
        ]
    );
    // Other quantity qualifier, unknown SKU qualifier -> item error.
    let items = items_846(&sample("oopfactory_ORD__846_Example1.txt"), "VN", "QH").unwrap();
    assert_eq!(items[0].quantity.as_deref(), Some("100"));
    assert_eq!(items[0].position, 12);
    assert_eq!(
        items[0].error.as_deref(),
        Some("no LIN qualifier VN in LIN at segment 9")
    );
    // No QTY 33 in the loop: left out (counted by the caller), not an error.
    let items = items_846(&sample("oopfactory_ORD__846_Example1.txt"), "BP", "33").unwrap();
    assert_eq!(items[0].error, None);
    assert_eq!(items[0].left_out, Some("no quantity"));
    assert_eq!(items[0].position, 9);
}

#[test]
fn example2_846_missing_terminators_rejected() {
    let err = items_846(&sample("oopfactory_ORD__846_Example2.txt"), "BP", "17").unwrap_err();
    assert_eq!(
        err.to_string(),
        "REF at segment 15 has 5 elements but REF allows at most 4 (missing segment terminator?)"
    );
    // Its envelope counts happen to agree (SE01 was written for the broken file).
    envelope_check(&sample("oopfactory_ORD__846_Example2.txt")).unwrap();
}

#[test]
fn x12types_846_as_of_from_bia() {
    let items = items_846(
        &sample("crate_x12-types-0.12.0_v005010_846_full_transmission.edi"),
        "VN",
        "33",
    )
    .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].sku.as_deref(), Some("ABC123"));
    assert_eq!(items[0].quantity.as_deref(), Some("100"));
    assert_eq!(items[0].unit, "EA");
    assert_eq!(items[0].as_of, Some(dt(2020, 1, 1, 0, 0)));
}

#[test]
fn read_846_rejects_other_set_types() {
    let err = items_846(&sample("bots-plugins_855-004010UCS-01.x12"), "UA", "33").unwrap_err();
    assert_eq!(
        err.to_string(),
        "ST at segment 3: transaction set 855 (group PR) where an 846 was expected"
    );
}

#[test]
fn bots_997_sample_read() {
    let acks = read_997(Cursor::new(sample("bots-plugins_997-004010VICS-01.x12"))).unwrap();
    assert_eq!(acks.len(), 1);
    let a = &acks[0];
    assert_eq!(
        (a.functional_id.as_str(), a.group_control.as_str(), a.status),
        ("PR", "10001", 'A')
    );
    assert_eq!(
        a.set_acks,
        vec![SetAck {
            id: "855".into(),
            control: "1294".into(),
            status: 'A',
            codes: vec![]
        }]
    );
    assert_eq!(
        (a.sets_included, a.sets_received, a.sets_accepted),
        (1, 1, 1)
    );
}

// ---------------------------------------------------------------- 850

const PO_850: &str = "ISA*00*          *00*          *ZZ*SHOP           *ZZ*GATE           *240102*0930*U*00401*000000005*0*P*>~\n\
GS*PO*SHOP*GATE*20240102*0930*5*X*004010~\n\
ST*850*0001~\n\
BEG*00*SA*PO-778**20240101~\n\
PO1*1*3*EA*9.99**VN*SKU-1*UP*012345678905~\n\
PO1**2*EA*1.00**UP*999~\n\
PO1*7*+4*EA***BP*X*VN*SKU-9~\n\
CTT*3~\n\
SE*7*0001~\n\
GE*1*5~\n\
IEA*1*000000005~\n";

#[test]
fn read_850_lines() {
    let mut lines: Vec<OrderLine850> = Vec::new();
    let sum = read_850(Cursor::new(PO_850), "VN", |l| {
        lines.push(l);
        Ok::<(), X12Error>(())
    })
    .unwrap();
    assert_eq!((sum.sets, sum.lines, sum.bad_lines), (1, 3, 1));
    assert_eq!(lines[0].order_id, "PO-778");
    assert_eq!(lines[0].line, "1");
    assert_eq!(lines[0].quantity, "3");
    assert_eq!(lines[0].sku.as_deref(), Some("SKU-1"));
    assert_eq!(lines[0].ordered_at, Some(dt(2024, 1, 1, 0, 0)));
    assert_eq!(lines[0].position, 5);
    assert_eq!(lines[1].line, "2", "ordinal when PO101 is empty");
    assert_eq!(lines[1].sku, None);
    assert_eq!(
        lines[1].error.as_deref(),
        Some("no PO1 qualifier VN in PO1 at segment 6")
    );
    assert_eq!(lines[2].line, "7");
    assert_eq!(lines[2].quantity, "+4");
    assert_eq!(lines[2].sku.as_deref(), Some("SKU-9"));
}

// ---------------------------------------------------------------- malformed corpus

const GOOD: &str = "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *200101*1200*U*00501*000000001*0*P*>~\n\
GS*IB*SENDER*RECEIVER*20200101*1200*1*X*005010~\n\
ST*846*0001~\n\
BIA*00*SI*REF1*20200101~\n\
N1*SU*SUPPLIER*92*S1~\n\
LIN*1*VN*ABC123~\n\
QTY*33*100*EA~\n\
CTT*1~\n\
SE*7*0001~\n\
GE*1*1~\n\
IEA*1*000000001~\n";

fn good_with(from: &str, to: &str) -> Vec<u8> {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1).into_bytes()
}

#[test]
fn good_base_passes() {
    envelope_check(GOOD.as_bytes()).unwrap();
    assert_eq!(items_846(GOOD.as_bytes(), "VN", "33").unwrap().len(), 1);
}

#[test]
fn malformed_corpus() {
    let cut = GOOD.find("QTY").unwrap() + 5;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            GOOD.as_bytes()[..cut].to_vec(),
            "missing SE for ST at segment 3: input ends after segment 7",
        ),
        (
            "wrong SE01",
            good_with("SE*7", "SE*8"),
            "SE at segment 9: SE01 is \"8\" but the number of segments ST..SE inclusive is 7",
        ),
        (
            "non-numeric SE01",
            good_with("SE*7", "SE*x"),
            "SE at segment 9: SE01 \"x\" is not a count (digits only)",
        ),
        (
            "wrong GE01",
            good_with("GE*1*1", "GE*2*1"),
            "GE at segment 10: GE01 is \"2\" but the number of transaction sets in the group is 1",
        ),
        (
            "wrong IEA01",
            good_with("IEA*1", "IEA*3"),
            "IEA at segment 11: IEA01 is \"3\" but the number of functional groups is 1",
        ),
        (
            "SE02 mismatch",
            good_with("SE*7*0001", "SE*7*0002"),
            "SE at segment 9: SE02 is \"0002\" but ST02 at segment 3 is \"0001\"",
        ),
        (
            "GE02 mismatch",
            good_with("GE*1*1", "GE*1*2"),
            "GE at segment 10: GE02 is \"2\" but GS06 at segment 2 is \"1\"",
        ),
        (
            "IEA02 mismatch",
            good_with("IEA*1*000000001", "IEA*1*000000009"),
            "IEA at segment 11: IEA02 is \"000000009\" but ISA13 at segment 1 is \"000000001\"",
        ),
        (
            "wrong element separator in body",
            GOOD.replace("~\nGS*IB*SENDER", "~\nGS|IB|SENDER")
                .into_bytes(),
            "segment at position 2 has an invalid segment id \"GS|IB|SENDER*RECEIVER*20\" (wrong element separator or missing segment terminator?)",
        ),
        (
            "wrong segment terminator in body",
            GOOD.replace("~\nST*846*0001~", "~\nST*846*0001!")
                .into_bytes(),
            "ST at segment 3: element ST02 contains a line break (wrong segment terminator?)",
        ),
        (
            "misaligned ISA",
            good_with("*SENDER         *", "*SENDER        *"),
            "ISA at segment 1: expected the element separator '*' before ISA07 at byte 51 but found 'Z'; ISA fields must be padded to their fixed width",
        ),
        (
            "invalid UTF-8",
            {
                let mut b = GOOD.as_bytes().to_vec();
                let i = GOOD.find("SUPPLIER").unwrap();
                b[i] = 0xFF;
                b
            },
            "N1 at segment 5: element 2 is not valid UTF-8",
        ),
        (
            "empty file",
            Vec::new(),
            "empty input: no ISA segment at segment 1",
        ),
        (
            "whitespace only",
            b" \r\n\t".to_vec(),
            "empty input: no ISA segment at segment 1",
        ),
        (
            "not X12",
            b"SKU,Qty\nA,1\n".to_vec(),
            "input does not start with ISA at segment 1 (found \"SKU,Qty\\nA,1\\n\")",
        ),
        (
            "short ISA",
            b"ISA*00*".to_vec(),
            "ISA at segment 1: input ends after 7 bytes; an ISA is 106 bytes (fixed width)",
        ),
        (
            "data after IEA",
            format!("{GOOD}GS*IB*X*Y*20200101*1200*2*X*005010~").into_bytes(),
            "data after IEA: GS at segment 12",
        ),
        (
            "junk after IEA",
            format!("{GOOD}\u{1}\u{2}~").into_bytes(),
            "data after IEA: (unreadable) at segment 12",
        ),
        (
            "missing IEA",
            GOOD.replace("IEA*1*000000001~\n", "").into_bytes(),
            "missing IEA for ISA at segment 1: input ends after segment 10",
        ),
        (
            "missing GE",
            GOOD.replace("GE*1*1~\n", "").into_bytes(),
            "missing GE for GS at segment 2: found IEA at segment 10",
        ),
        (
            "missing SE before GE",
            GOOD.replace("SE*7*0001~\n", "").into_bytes(),
            "missing SE for ST at segment 3: found GE at segment 9",
        ),
        (
            "next GS before GE",
            GOOD.replace(
                "GE*1*1~\n",
                "GS*IB*SENDER*RECEIVER*20200101*1200*2*X*005010~\n",
            )
            .into_bytes(),
            "missing GE for GS at segment 2: found GS at segment 10",
        ),
        (
            "nested ST",
            good_with("CTT*1~", "ST*846*0002~"),
            "missing SE for ST at segment 3: found ST at segment 8",
        ),
        (
            "segment outside ST/SE",
            good_with("ST*846*0001~\n", "N1*SU*X~\nST*846*0001~\n"),
            "N1 at segment 3: segment outside a transaction set (between ST and SE)",
        ),
        (
            "SE without ST",
            good_with("GE*1*1~", "SE*2*0001~\nGE*1*1~"),
            "SE at segment 10: SE without a matching ST",
        ),
        (
            "second ISA",
            good_with("IEA*1*000000001~", &GOOD[..107]),
            "ISA at segment 11: second ISA before the IEA of the ISA at segment 1 (nested interchange)",
        ),
        (
            "empty segment",
            good_with("CTT*1~", "CTT*1~~"),
            "empty segment at position 9 (two segment terminators in a row)",
        ),
        (
            "duplicate ST02",
            good_with("GE*1*1~", "ST*846*0001~\nSE*2*0001~\nGE*2*1~"),
            "ST at segment 10: ST02 \"0001\" repeats the control number of an earlier set in this group",
        ),
        (
            "duplicate GS06",
            good_with(
                "IEA*1",
                "GS*IB*S*R*20200101*1200*01*X*005010~\nGE*0*01~\nIEA*2",
            ),
            "GS at segment 11: GS06 \"01\" repeats the control number of an earlier group in this interchange",
        ),
        (
            "bad GS06",
            good_with("1200*1*X", "1200*A1*X"),
            "GS at segment 2: GS06 \"A1\" is not a group control number (1 to 9 digits)",
        ),
        (
            "empty ST02",
            good_with("ST*846*0001", "ST*846*"),
            "ST at segment 3: ST02 \"\" is required but empty",
        ),
    ];
    for (what, bytes, expected) in cases {
        let got = match envelope_check(&bytes) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => e.to_string(),
        };
        assert_eq!(got, expected, "{what}");
        // read_846 layers on the envelope and must reject as well.
        assert!(items_846(&bytes, "VN", "33").is_err(), "{what}");
    }
}

#[test]
fn segment_too_long() {
    let big = "X".repeat(70_000);
    let bytes = good_with("SUPPLIER", &big);
    assert_eq!(
        envelope_err(&bytes),
        "N1 at segment 5 is longer than 65536 bytes (missing segment terminator?)"
    );
}

#[test]
fn unterminated_last_segment_accepted() {
    let bytes = GOOD.trim_end().trim_end_matches('~');
    envelope_check(bytes.as_bytes()).unwrap();
}

#[test]
fn ctt_mismatch_rejected() {
    let err = items_846(&good_with("CTT*1", "CTT*2"), "VN", "33").unwrap_err();
    assert_eq!(
        err.to_string(),
        "CTT at segment 8: CTT01 is \"2\" but the number of LIN loops in the set is 1"
    );
}

#[test]
fn bad_dates_rejected() {
    let err = items_846(
        &good_with("BIA*00*SI*REF1*20200101", "BIA*00*SI*REF1*20201301"),
        "VN",
        "33",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "BIA at segment 4: BIA04 \"20201301\" is not a CCYYMMDD date"
    );
    let with_dtm = |t: &str| {
        GOOD.replace("N1*SU", &format!("DTM*007*20200102*{t}~\nN1*SU"))
            .replace("SE*7", "SE*8")
    };
    let err = items_846(with_dtm("2561").as_bytes(), "VN", "33").unwrap_err();
    assert_eq!(
        err.to_string(),
        "DTM at segment 5: DTM03 \"2561\" is not an HHMM[SS[D..]] time"
    );
    let items = items_846(with_dtm("123456").as_bytes(), "VN", "33").unwrap();
    assert_eq!(
        items[0].as_of,
        Some(dt(2020, 1, 2, 12, 34) + chrono::Duration::seconds(56))
    );
}

#[test]
fn time_formats() {
    assert_eq!(parse_time("2300").unwrap().to_string(), "23:00:00");
    assert_eq!(parse_time("00234648").unwrap().to_string(), "00:23:46.480");
    assert!(parse_time("23").is_none());
    assert!(parse_time("23000").is_none());
    assert!(parse_time("2400").is_none());
    assert!(parse_time("12a0").is_none());
}

#[test]
fn bad_items_reported_not_skipped() {
    let body = "LIN*1*VN*ABC123~\nQTY*33*100*EA~\nLIN*2*UP*111~\nQTY*33*5*EA~\nLIN*3*VN*X~\nQTY*17*5*EA~\nLIN*4*VN*~\nQTY*33*1*EA~\nCTT*4~\nSE*13*0001~";
    let bytes = GOOD.replace("LIN*1*VN*ABC123~\nQTY*33*100*EA~\nCTT*1~\nSE*7*0001~", body);
    let items = items_846(bytes.as_bytes(), "VN", "33").unwrap();
    let errs: Vec<_> = items.iter().map(|i| i.error.clone()).collect();
    assert_eq!(
        errs,
        vec![
            None,
            Some("no LIN qualifier VN in LIN at segment 8".to_owned()),
            None,
            Some("empty value for LIN qualifier VN in LIN at segment 12".to_owned()),
        ]
    );
    assert_eq!(items[3].sku, None);
}

// ---------------------------------------------------------------- writer

fn profile(version: &str) -> Profile846 {
    Profile846 {
        envelope: EnvelopeProfile {
            version: version.into(),
            sender_qualifier: "ZZ".into(),
            sender_id: "ACMEWHSE".into(),
            receiver_qualifier: "08".into(),
            receiver_id: "925485US00".into(),
            usage: 'P',
            element_separator: '*',
            segment_terminator: '~',
            component_separator: '>',
            line_break: false,
        },
        bia_purpose: "00".into(),
        bia_report_type: "SI".into(),
        item_ids: vec![("UP".into(), "upc".into()), ("VN".into(), "sku".into())],
        quantity_qualifier: "33".into(),
        unit: "EA".into(),
        extras: Default::default(),
    }
}

/// The 004010 profile with one envelope setting changed.
fn with_envelope(f: impl FnOnce(&mut EnvelopeProfile)) -> Profile846 {
    let mut p = profile("004010");
    f(&mut p.envelope);
    p
}

fn item(upc: &str, sku: &str, q: i64) -> Item846Out {
    Item846Out {
        ids: vec![("UP".into(), upc.into()), ("VN".into(), sku.into())],
        quantity: q,
        ..Default::default()
    }
}

const CTL: ControlNumbers = ControlNumbers {
    interchange: 17,
    group: 42,
};

fn now() -> NaiveDateTime {
    dt(2024, 3, 5, 14, 7)
}

#[test]
fn write_846_exact_bytes() {
    let mut out = Vec::new();
    let items = vec![
        item("012345678905", "SKU-1", 12),
        item("012345678912", "SKU-2", 0),
    ];
    let w = write_846(&mut out, &profile("004010"), CTL, now(), items.into_iter()).unwrap();
    let expected = "ISA*00*          *00*          *ZZ*ACMEWHSE       *08*925485US00     *240305*1407*U*00401*000000017*0*P*>~\
GS*IB*ACMEWHSE*925485US00*20240305*1407*42*X*004010~\
ST*846*0001~\
BIA*00*SI*17*20240305*1407~\
LIN*1*UP*012345678905*VN*SKU-1~\
QTY*33*12*EA~\
LIN*2*UP*012345678912*VN*SKU-2~\
QTY*33*0*EA~\
CTT*2~\
SE*8*0001~\
GE*1*42~\
IEA*1*000000017~";
    assert_eq!(String::from_utf8(out.clone()).unwrap(), expected);
    assert_eq!((w.sets, w.items, w.bytes), (1, 2, expected.len() as u64));

    // 005010 with line breaks: same segments, "^" repetition separator.
    let mut p = profile("005010");
    p.envelope.line_break = true;
    let mut out5 = Vec::new();
    let items = vec![
        item("012345678905", "SKU-1", 12),
        item("012345678912", "SKU-2", -3),
    ];
    write_846(&mut out5, &p, CTL, now(), items.into_iter()).unwrap();
    let text = String::from_utf8(out5.clone()).unwrap();
    assert!(text.starts_with("ISA*00*          *00*          *ZZ*ACMEWHSE       *08*925485US00     *240305*1407*^*00501*000000017*0*P*>~\nGS*IB*ACMEWHSE*925485US00*20240305*1407*42*X*005010~\n"), "{text}");
    assert!(text.contains("QTY*33*-3*EA~\n"));

    let dir = tmp_dir("w846");
    let f4 = dir.join("two-4010.x12");
    let f5 = dir.join("two-5010.x12");
    std::fs::write(&f4, &out).unwrap();
    std::fs::write(&f5, &out5).unwrap();
    validate_files(&[f4, f5]);
}

#[test]
fn write_846_empty_feed_refused() {
    // Bots requires at least one LIN loop per 846, so nothing is written.
    let mut out = Vec::new();
    let err = write_846(&mut out, &profile("004010"), CTL, now(), std::iter::empty()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot write items \"\": an 846 needs at least one LIN item"
    );
    assert!(out.is_empty());
}

#[test]
fn write_846_25000_items_three_sets() {
    let make_items = || {
        (0..25_000i64).map(|i| {
            item(
                &format!("{:012}", 100_000 + i),
                &format!("SKU-{i}"),
                i % 97 - 5,
            )
        })
    };
    let mut out = Vec::new();
    let w = write_846(&mut out, &profile("005010"), CTL, now(), make_items()).unwrap();
    assert_eq!((w.sets, w.items, w.bytes), (3, 25_000, out.len() as u64));

    // Read back: envelope checks SE01/SE02/GE01/IEA01; count LIN/CTT per set.
    let mut lins = Vec::new();
    let mut ctts = Vec::new();
    let mut ses = Vec::new();
    let mut st02 = Vec::new();
    let mut ge = None;
    let mut n = 0u64;
    for ev in Envelope::new(Cursor::new(&out)) {
        match ev.unwrap() {
            Event::SetStart(h) => {
                st02.push(h.control_number);
                n = 0;
            }
            Event::Segment(s) if s.id() == "LIN" => n += 1,
            Event::Segment(s) if s.id() == "CTT" => ctts.push(s.element(1).to_owned()),
            Event::SetEnd { segments, .. } => {
                lins.push(n);
                ses.push(segments);
            }
            Event::GroupEnd { sets, declared, .. } => ge = Some((sets, declared)),
            _ => {}
        }
    }
    assert_eq!(lins, vec![10_000, 10_000, 5_000]);
    assert_eq!(ctts, vec!["10000", "10000", "5000"]);
    assert_eq!(ses, vec![20_004, 20_004, 10_004]);
    assert_eq!(st02, vec!["0001", "0002", "0003"]);
    assert_eq!(ge, Some((3, "3".to_owned())));

    // Round trip: write -> read_846 -> same items.
    let back = items_846(&out, "VN", "33").unwrap();
    assert_eq!(back.len(), 25_000);
    for (b, orig) in back.iter().zip(make_items()) {
        assert_eq!(b.error, None);
        assert_eq!(b.ids, orig.ids);
        assert_eq!(b.sku.as_deref(), Some(orig.ids[1].1.as_str()));
        assert_eq!(
            b.quantity.as_deref(),
            Some(orig.quantity.to_string().as_str())
        );
        assert_eq!(b.as_of, Some(now()));
    }

    let dir = tmp_dir("w25k");
    let f = dir.join("big.x12");
    std::fs::write(&f, &out).unwrap();
    validate_files(&[f]);
}

#[test]
fn write_846_split_small_sets() {
    let items = (0..7).map(|i| item("1", &format!("S{i}"), i));
    let mut out = Vec::new();
    let w = write_846_sets(&mut out, &profile("004010"), CTL, now(), items, 3).unwrap();
    assert_eq!(w.sets, 3);
    let back = items_846(&out, "VN", "33").unwrap();
    let skus: Vec<_> = back.iter().map(|i| i.sku.clone().unwrap()).collect();
    assert_eq!(skus, ["S0", "S1", "S2", "S3", "S4", "S5", "S6"]);
}

#[test]
fn writer_refuses_bad_values() {
    let cases: Vec<(Profile846, Vec<Item846Out>, &str)> = vec![
        (
            profile("004010"),
            vec![item("1", "A*B", 1)],
            "cannot write LIN05 \"A*B\": contains the delimiter or control character '*'",
        ),
        (
            profile("004010"),
            vec![item("1", "A~B", 1)],
            "cannot write LIN05 \"A~B\": contains the delimiter or control character '~'",
        ),
        (
            profile("005010"),
            vec![item("1", "A^B", 1)],
            "cannot write LIN05 \"A^B\": contains the delimiter or control character '^'",
        ),
        (
            profile("004010"),
            vec![item("1", "", 1)],
            "cannot write item 1 VN \"\": must be 1 to 48 characters",
        ),
        (
            profile("004010"),
            vec![item("1", "A", i64::MAX)],
            "cannot write item 1 quantity \"9223372036854775807\": has more than 15 digits",
        ),
        (
            with_envelope(|e| e.version = "003040".into()),
            vec![],
            "invalid X12 profile: version: \"003040\" must be \"004010\" or \"005010\"",
        ),
        (
            with_envelope(|e| e.element_separator = '~'),
            vec![],
            "invalid X12 profile: element_separator: element separator, segment terminator, component separator (and '^' repetition separator from 004020 on) must all differ",
        ),
        (
            with_envelope(|e| e.sender_id = "X".repeat(16)),
            vec![],
            "invalid X12 profile: sender_id: \"XXXXXXXXXXXXXXXX\" must be 1 to 15 ASCII characters without separators",
        ),
        (
            with_envelope(|e| e.usage = 'X'),
            vec![],
            "invalid X12 profile: usage: 'X' must be \"P\" or \"T\"",
        ),
    ];
    for (p, items, expected) in cases {
        let err = write_846(Vec::new(), &p, CTL, now(), items.into_iter()).unwrap_err();
        assert_eq!(err.to_string(), expected);
    }
    let bad_ctl = ControlNumbers {
        interchange: 1_000_000_000,
        group: 1,
    };
    assert!(
        write_846(
            Vec::new(),
            &profile("004010"),
            bad_ctl,
            now(),
            std::iter::empty()
        )
        .is_err()
    );
}

// ---------------------------------------------------------------- 997

fn env_profile(version: &str) -> EnvelopeProfile {
    EnvelopeProfile {
        line_break: true,
        ..profile(version).envelope
    }
}

#[test]
fn build_997_validates_and_reads_back() {
    let acks = vec![
        GroupAck {
            functional_id: "IB".into(),
            group_control: "42".into(),
            version: "004010".into(),
            sets: vec![
                SetAck {
                    id: "846".into(),
                    control: "0001".into(),
                    status: 'A',
                    codes: vec![],
                },
                SetAck {
                    id: "846".into(),
                    control: "0002".into(),
                    status: 'R',
                    codes: vec![4, 3],
                },
            ],
            status: 'P',
            codes: vec![],
            sets_included: 2,
            sets_received: 2,
            sets_accepted: 1,
        },
        GroupAck {
            functional_id: "PO".into(),
            group_control: "7".into(),
            version: "004010".into(),
            sets: vec![],
            status: 'R',
            codes: vec![5],
            sets_included: 3,
            sets_received: 2,
            sets_accepted: 0,
        },
    ];
    let dir = tmp_dir("b997");
    let mut files = Vec::new();
    for v in ["004010", "005010"] {
        let mut out = Vec::new();
        let w = build_997(&mut out, &env_profile(v), CTL, now(), &acks).unwrap();
        assert_eq!(w.sets, 2);
        let f = dir.join(format!("ack-{v}.x12"));
        std::fs::write(&f, &out).unwrap();
        files.push(f);
        let back = read_997(Cursor::new(&out)).unwrap();
        assert_eq!(back.len(), 2);
        for (b, a) in back.iter().zip(&acks) {
            assert_eq!(
                (&b.functional_id, &b.group_control, b.status),
                (&a.functional_id, &a.group_control, a.status)
            );
            assert_eq!(b.set_acks, a.sets);
            assert_eq!(b.codes, a.codes);
            assert_eq!(
                (b.sets_included, b.sets_received, b.sets_accepted),
                (a.sets_included, a.sets_received, a.sets_accepted)
            );
        }
        if v == "004010" {
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("ST*997*0001~\nAK1*IB*42~\nAK2*846*0001~\nAK5*A~\nAK2*846*0002~\nAK5*R*4*3~\nAK9*P*2*2*1~\nSE*8*0001~\n"), "{text}");
            assert!(text.contains("GS*FA*ACMEWHSE*925485US00*"));
        } else {
            assert!(
                String::from_utf8(out)
                    .unwrap()
                    .contains("AK1*IB*42*004010~")
            );
        }
    }
    validate_files(&files);
}

#[test]
fn validate_for_ack_codes() {
    // Group 1: set 2 has a wrong SE01, set 3 lacks its SE; group 2: GE01 wrong.
    let text = "ISA*00*          *00*          *ZZ*PARTNER        *ZZ*US             *240101*0000*U*00401*000000003*0*P*>~\
GS*IB*PARTNER*US*20240101*0000*10*X*004010~\
ST*846*0001~BIA*00*SI*R*20240101~SE*3*0001~\
ST*846*0002~BIA*00*SI*R*20240101~SE*9*0002~\
ST*846*0003~BIA*00*SI*R*20240101~\
GE*3*10~\
GS*IB*PARTNER*US*20240101*0000*11*X*004010~\
ST*846*0001~BIA*00*SI*R*20240101~SE*3*0001~\
GE*2*11~\
IEA*2*000000003~";
    let rep = validate_for_ack(Cursor::new(text)).unwrap();
    assert_eq!(rep.interchange.control_number(), "000000003");
    assert_eq!(rep.groups.len(), 2);
    let g = &rep.groups[0];
    assert_eq!(g.status, 'P');
    assert_eq!(
        (g.sets_included, g.sets_received, g.sets_accepted),
        (3, 3, 1)
    );
    let s: Vec<_> = g
        .sets
        .iter()
        .map(|s| (s.control.as_str(), s.status, s.codes.clone()))
        .collect();
    assert_eq!(
        s,
        vec![
            ("0001", 'A', vec![]),
            ("0002", 'R', vec![4]),
            ("0003", 'R', vec![2])
        ]
    );
    let g2 = &rep.groups[1];
    assert_eq!((g2.status, g2.codes.clone()), ('R', vec![5]));
    assert_eq!(
        (g2.sets_included, g2.sets_received, g2.sets_accepted),
        (2, 1, 1)
    );
    assert!(rep.interchange_problems.is_empty());
    assert_eq!(rep.problems.len(), 3);

    // The acknowledgment for it is valid X12.
    let mut out = Vec::new();
    build_997(&mut out, &env_profile("004010"), CTL, now(), &rep.groups).unwrap();
    let dir = tmp_dir("vfa");
    let f = dir.join("ack.x12");
    std::fs::write(&f, &out).unwrap();
    validate_files(&[f]);

    // Interchange-level problems go to TA1 codes.
    let rep = validate_for_ack(Cursor::new(
        GOOD.replace("IEA*1*000000001", "IEA*1*000000002"),
    ))
    .unwrap();
    assert_eq!(rep.groups[0].status, 'A');
    assert_eq!(rep.interchange_problems.len(), 1);
    assert_eq!(rep.interchange_problems[0].0, "001");
    let rep = validate_for_ack(Cursor::new(GOOD.replace("IEA*1*000000001~\n", ""))).unwrap();
    assert_eq!(rep.interchange_problems[0].0, "023");
    let rep = validate_for_ack(Cursor::new(GOOD.replace("ST*846*0001", "ST**0001"))).unwrap();
    assert_eq!(
        (
            rep.groups[0].sets[0].status,
            rep.groups[0].sets[0].codes.clone()
        ),
        ('R', vec![6])
    );
    assert_eq!(rep.groups[0].status, 'R');
    let rep = validate_for_ack(Cursor::new(GOOD.replace("GE*1*1", "GE*1*5"))).unwrap();
    assert_eq!(
        (rep.groups[0].status, rep.groups[0].codes.clone()),
        ('R', vec![4])
    );
}

#[test]
fn ack_code_mapping() {
    let e = envelope_check(&good_with("SE*7", "SE*8")).unwrap_err();
    assert_eq!(e.ack_code(), AckCode::Set(4));
    let e = envelope_check(&good_with("SE*7*0001", "SE*7*0002")).unwrap_err();
    assert_eq!(e.ack_code(), AckCode::Set(3));
    let e = envelope_check(&good_with("GE*1*1", "GE*2*1")).unwrap_err();
    assert_eq!(e.ack_code(), AckCode::Group(5));
    let e = envelope_check(&good_with("GE*1*1", "GE*1*2")).unwrap_err();
    assert_eq!(e.ack_code(), AckCode::Group(4));
    let e = envelope_check(GOOD.replace("GE*1*1~\n", "").as_bytes()).unwrap_err();
    assert_eq!(e.ack_code(), AckCode::Group(3));
    let e = envelope_check(GOOD.replace("SE*7*0001~\n", "").as_bytes()).unwrap_err();
    assert_eq!(e.ack_code(), AckCode::Set(2));
    let e = envelope_check(&good_with("ST*846*0001", "ST*846*")).unwrap_err();
    assert_eq!(e.ack_code(), AckCode::Set(7));
    let e = envelope_check(&good_with("GE*1*1~", "ST*846*0001~\nSE*2*0001~\nGE*2*1~")).unwrap_err();
    assert_eq!(e.ack_code(), AckCode::Set(23));
}

// ---------------------------------------------------------------- robustness

/// Run every entry point over `bytes`; only panics matter here.
fn exercise(bytes: &[u8]) {
    let _ = envelope_check(bytes);
    let _ = all_segments(bytes);
    let _ = items_846(bytes, "VN", "33");
    let _ = read_850(Cursor::new(bytes), "VN", |_| Ok::<(), X12Error>(()));
    let _ = read_997(Cursor::new(bytes));
    let _ = validate_for_ack(Cursor::new(bytes));
}

#[test]
fn random_mutations_never_panic() {
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(samples_dir())
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    seeds.push(GOOD.as_bytes().to_vec());
    seeds.push(PO_850.as_bytes().to_vec());
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let interesting = [
        b'*', b'~', b'\n', b'\r', b' ', 0xFF, 0xEF, b'S', b'E', b'I', b'A', b'0', b'9', 0,
    ];
    for _ in 0..4000 {
        let mut b = seeds[(rnd() % seeds.len() as u64) as usize].clone();
        let edits = 1 + rnd() % 6;
        for _ in 0..edits {
            if b.is_empty() {
                break;
            }
            let i = (rnd() % b.len() as u64) as usize;
            match rnd() % 5 {
                0 => b[i] = rnd() as u8,
                1 => b[i] = interesting[(rnd() % interesting.len() as u64) as usize],
                2 => {
                    b.remove(i);
                }
                3 => b.truncate(i),
                _ => {
                    let j = (rnd() % b.len() as u64) as usize;
                    let (lo, hi) = (i.min(j), i.max(j).min(lo_hi_cap(i.min(j), b.len())));
                    let chunk = b[lo..hi].to_vec();
                    b.splice(i..i, chunk);
                }
            }
        }
        exercise(&b);
    }
    // Every truncation of a sample.
    let s = sample("oopfactory_ORD__846_Example1.txt");
    for n in 0..s.len() {
        exercise(&s[..n]);
    }
}

fn lo_hi_cap(lo: usize, len: usize) -> usize {
    (lo + 64).min(len)
}

// ---------------------------------------------------------------- issue 9: X12 as partners send it

/// A minimal 846 interchange written for these tests: `body` between BIA and
/// CTT (LIN loops counted from the LIN segments), ISA13/GS06 = `n`.
fn mini_846(n: u32, header: &str, body: &str) -> String {
    let lins = body.matches("LIN*").count();
    let inner = format!("BIA*00*SI*R{n}*20261120*0800~{header}{body}CTT*{lins}~");
    let segs = inner.matches('~').count() + 2;
    format!(
        "ISA*00*          *00*          *ZZ*WHSE           *ZZ*GATE           *261120*0800*U*00401*{n:09}*0*P*>~\
GS*IB*WHSEAPP*GATEAPP*20261120*0800*{n}*X*004010~ST*846*0001~{inner}SE*{segs}*0001~GE*1*{n}~IEA*1*{n:09}~"
    )
}

#[test]
fn x12_issue9_dtm_as_of_only_with_an_as_of_qualifier() {
    // 036 (expiration) never dates the count: BIA04/BIA05 do.
    let f = mini_846(1, "DTM*036*20301231~", "LIN*1*VN*A~QTY*33*5*EA~");
    let items = items_846(f.as_bytes(), "VN", "33").unwrap();
    assert_eq!(items[0].as_of, Some(dt(2026, 11, 20, 8, 0)));
    // 007 (effective) does, date alone = start of day.
    let f = mini_846(
        1,
        "DTM*036*20301231~DTM*007*20261119~",
        "LIN*1*VN*A~QTY*33*5*EA~",
    );
    let items = items_846(f.as_bytes(), "VN", "33").unwrap();
    assert_eq!(items[0].as_of, Some(dt(2026, 11, 19, 0, 0)));
    assert!(items[0].as_of_date_only);
    // A mapping may name its own list.
    let mut opts = super::inbound::Read846::new("VN", "33");
    opts.as_of_qualifiers = vec!["036".into()];
    let mut v = vec![];
    super::inbound::read_846_with(Cursor::new(f.as_bytes()), &opts, |i| {
        v.push(i);
        Ok::<(), X12Error>(())
    })
    .unwrap();
    assert_eq!(v[0].as_of, Some(dt(2030, 12, 31, 0, 0)));
    // Neither BIA date nor usable DTM: no as-of (the caller falls back).
    let f = mini_846(1, "DTM*036*20301231~", "LIN*1*VN*A~QTY*33*5*EA~")
        .replace("BIA*00*SI*R1*20261120*0800~", "BIA*00*SI*R1~");
    assert_eq!(items_846(f.as_bytes(), "VN", "33").unwrap()[0].as_of, None);
}

#[test]
fn x12_issue9_lin_without_the_qty_is_left_out_not_an_error() {
    let f = mini_846(
        1,
        "",
        "LIN*149*VP*SAMPLE1*UP*012345678905~PID*F*08***Sample item~CTP*WH*WHL*47.13~LIN*150*VP*SAMPLE2~QTY*33*7*EA~",
    );
    let items = items_846(f.as_bytes(), "VP", "33").unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].error, None);
    assert_eq!(items[0].left_out, Some("no quantity"));
    assert_eq!(items[1].left_out, None);
    assert_eq!(items[1].quantity.as_deref(), Some("7"));
}

#[test]
fn x12_issue9_several_interchanges_each_with_its_separators() {
    let a = mini_846(1, "", "LIN*1*VN*A~QTY*33*5*EA~");
    // The second interchange uses other separators, after a line break.
    let b = mini_846(2, "", "LIN*1*VN*B~QTY*33*6*EA~")
        .replace('*', "|")
        .replace('~', "\n")
        .replace('>', "^");
    let both = format!("{a}\r\n{b}");
    let items = items_846(both.as_bytes(), "VN", "33").unwrap();
    let got: Vec<_> = items.iter().map(|i| i.sku.clone().unwrap()).collect();
    assert_eq!(got, ["A", "B"]);
    let evs = envelope_check(both.as_bytes()).unwrap();
    let starts = evs
        .iter()
        .filter(|e| matches!(e, Event::InterchangeStart(_)))
        .count();
    assert_eq!(starts, 2);
    let reps = super::ack::validate_interchanges_for_ack(Cursor::new(both.as_bytes())).unwrap();
    assert_eq!(reps.len(), 2);
    assert_eq!(reps[1].interchange.control_number(), "000000002");
    assert!(reps.iter().all(|r| r.problems.is_empty()));
    // Anything but an ISA after an IEA is still an error, and a broken
    // second interchange is too.
    let junk = format!("{a}GS*IB*X*Y*20260101*0800*9*X*004010~");
    assert!(envelope_err(junk.as_bytes()).starts_with("data after IEA: GS"));
    let broken = format!("{a}{}", b.replace("IEA|1|000000002\n", ""));
    assert!(envelope_err(broken.as_bytes()).contains("missing IEA"));
}

#[test]
fn x12_issue9_groups_read_by_functional_id() {
    // One interchange: an IB group (846) and an FA group (997).
    let f = "ISA*00*          *00*          *ZZ*WHSE           *ZZ*GATE           *261120*0800*U*00401*000000007*0*P*>~\
GS*IB*WHSE*GATE*20261120*0800*70*X*004010~ST*846*0001~BIA*00*SI*R7*20261120*0800~LIN*1*VN*A~QTY*33*5*EA~CTT*1~SE*6*0001~GE*1*70~\
GS*FA*WHSE*GATE*20261120*0800*71*X*004010~ST*997*0001~AK1*IB*3~AK2*846*0001~AK5*A~AK9*A*1*1*1~SE*6*0001~GE*1*71~IEA*2*000000007~";
    let items = items_846(f.as_bytes(), "VN", "33").unwrap();
    assert_eq!(items.len(), 1);
    let acks = read_997(Cursor::new(f.as_bytes())).unwrap();
    assert_eq!(acks.len(), 1);
    assert_eq!(
        (
            acks[0].functional_id.as_str(),
            acks[0].group_control.as_str()
        ),
        ("IB", "3")
    );
    // An 850 group in an inventory file is still named.
    let po = f.replace("GS*IB*", "GS*PO*").replace("ST*846*", "ST*850*");
    let err = items_846(po.as_bytes(), "VN", "33")
        .unwrap_err()
        .to_string();
    assert!(err.contains("transaction set 850 (group PO)"), "{err}");
}

#[test]
fn x12_issue9_sku_qualifier_lists_in_lin_and_po1() {
    let po = PO_850.replace(
        "PO1**2*EA*1.00**UP*999~",
        "PO1**2*EA*1.00**N4*0002-1433-80~",
    );
    let mut lines = vec![];
    super::inbound::read_850_with(
        Cursor::new(po.as_bytes()),
        &["VN".to_owned(), "N4".to_owned()],
        |l| {
            lines.push(l);
            Ok::<(), X12Error>(())
        },
    )
    .unwrap();
    let skus: Vec<_> = lines.iter().map(|l| l.sku.clone()).collect();
    assert_eq!(
        skus,
        [
            Some("SKU-1".into()),
            Some("0002-1433-80".into()),
            Some("SKU-9".into())
        ]
    );
    let f = mini_846(
        1,
        "",
        "LIN*1*UP*012345678905~QTY*33*5*EA~LIN*2*VN*B*UP*036000291452~QTY*33*6*EA~",
    );
    let mut opts = super::inbound::Read846::new("VN", "33");
    opts.sku_qualifiers.push("UP".into());
    let mut v = vec![];
    super::inbound::read_846_with(Cursor::new(f.as_bytes()), &opts, |i| {
        v.push(i.sku);
        Ok::<(), X12Error>(())
    })
    .unwrap();
    assert_eq!(v, [Some("012345678905".into()), Some("B".into())]);
}

#[test]
fn x12_issue9_gtin_check_digits() {
    use crate::formats::valid_gtin;
    for ok in [
        "012345678905",
        "036000291452",
        "4006381333931",
        "10012345678902",
        "96385074",
    ] {
        assert!(valid_gtin(ok), "{ok}");
    }
    for bad in [
        "012345678900",
        "12345",
        "PHM-TAB-METF500",
        "4006381333932",
        "",
    ] {
        assert!(!valid_gtin(bad), "{bad}");
    }
}

#[test]
fn x12_issue9_997_gs_ids_from_the_partner_gs_and_003040_ak202() {
    // A 003040 850 with a one-digit ST02, sent under ISA ids that differ
    // from its GS ids.
    let f = "ISA*00*          *00*          *12*5551234567     *ZZ*GATEWAY        *261120*0800*U*00304*000000031*0*P*>~\
GS*PO*BUYERAPP*GATEAPP*261120*0800*31*X*003040~ST*850*1~BEG*00*SA*PO-31**261120~PO1*1*2*EA***VN*A~SE*4*1~GE*1*31~IEA*1*000000031~";
    let rep = validate_for_ack(Cursor::new(f.as_bytes())).unwrap();
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    assert_eq!(rep.app_ids, Some(("BUYERAPP".into(), "GATEAPP".into())));
    let version = super::writer::ack_version(&rep.groups[0].version);
    assert_eq!(version, "003040");
    let p = EnvelopeProfile {
        version: version.into(),
        sender_qualifier: "ZZ".into(),
        sender_id: "GATEWAY".into(),
        receiver_qualifier: "12".into(),
        receiver_id: "5551234567".into(),
        usage: 'P',
        element_separator: '*',
        segment_terminator: '~',
        component_separator: '>',
        line_break: true,
    };
    let mut out = Vec::new();
    super::ack::build_997_to(
        &mut out,
        &p,
        Some(("GATEAPP", "BUYERAPP")),
        CTL,
        now(),
        &rep.groups,
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("*U*00304*"), "{text}");
    assert!(text.contains("GS*FA*GATEAPP*BUYERAPP*"), "{text}");
    assert!(text.contains("*003040~"), "{text}");
    assert!(text.contains("AK1*PO*31~"), "{text}");
    assert!(text.contains("AK2*850*0001~"), "{text}");
    let dir = tmp_dir("ak202");
    let path = dir.0.join("997-003040.x12");
    std::fs::write(&path, &text).unwrap();
    validate_files(&[path]);
    // 4010 partners (with an industry suffix) are answered in 004010.
    assert_eq!(super::writer::ack_version("004010VICS"), "004010");
    assert_eq!(super::writer::ack_version("005010X222A1"), "005010");
    assert_eq!(super::writer::ack_version("002001"), "004010");
}
