#![no_main]
//! Every inbound entry point over arbitrary bytes: none may panic.

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use stockgate::formats::x12::{read_846, read_850, read_997, validate_for_ack, Envelope, X12Error};

fuzz_target!(|data: &[u8]| {
    for ev in Envelope::new(Cursor::new(data)) {
        if ev.is_err() {
            break;
        }
    }
    let _ = read_846(Cursor::new(data), "VN", "33", |i| {
        let _ = (i.sku, i.quantity, i.as_of);
        Ok::<(), X12Error>(())
    });
    let _ = read_846(Cursor::new(data), "BP", "34", |_| Ok::<(), X12Error>(()));
    // Several SKU qualifiers, prices from CTP, other as-of codes, SDQ splits.
    let mut opts = stockgate::formats::x12::Read846::new("VN", "33");
    opts.sku_qualifiers.push("UP".into());
    opts.price_qualifier = Some("WHL".into());
    opts.as_of_qualifiers = vec!["036".into(), "405".into()];
    opts.split_by_sdq = true;
    let _ = stockgate::formats::x12::read_846_with(Cursor::new(data), &opts, |i| {
        let _ = (i.sku, i.quantity, i.price);
        Ok::<(), X12Error>(())
    });
    let _ = read_850(Cursor::new(data), "VN", |_| Ok::<(), X12Error>(()));
    let _ = read_997(Cursor::new(data));
    if let Ok(rep) = validate_for_ack(Cursor::new(data)) {
        // The acknowledgment of anything we accepted must be writable.
        let p = stockgate::formats::x12::EnvelopeProfile {
            version: "004010".into(),
            sender_qualifier: "ZZ".into(),
            sender_id: "US".into(),
            receiver_qualifier: "ZZ".into(),
            receiver_id: "THEM".into(),
            usage: 'T',
            element_separator: '*',
            segment_terminator: '~',
            component_separator: '>',
            line_break: false,
        };
        let ctl = stockgate::formats::x12::ControlNumbers { interchange: 1, group: 1 };
        let now = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
        let _ = stockgate::formats::x12::build_997(Vec::new(), &p, ctl, now, &rep.groups);
    }
});
