#![no_main]
//! The 856 shipment reader over arbitrary bytes: it may refuse, never
//! panic; whatever it reads can be handed to the 856 writer without a panic.

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use stockgate::formats::x12::{
    read_856_with, write_856, ControlNumbers, EnvelopeProfile, Item856, Pack856, Profile856,
    Shipment856, X12Error,
};

fuzz_target!(|data: &[u8]| {
    let wanted = vec!["VN".to_owned(), "UP".to_owned()];
    let mut shipments: Vec<Shipment856> = Vec::new();
    let read = read_856_with(Cursor::new(data), &wanted, |l| {
        if l.error.is_none() {
            let item = Item856 {
                line: l.line,
                ids: l.ids,
                shipped: l.quantity.parse().unwrap_or(0),
                ordered: l.ordered.parse().unwrap_or(0),
            };
            shipments.push(Shipment856 {
                shipment_id: l.shipment_id,
                shipped_at: l.shipped_at.unwrap_or_default(),
                carrier: l.carrier,
                service: l.service,
                order_id: l.order_id,
                po_number: l.po_number,
                packs: vec![Pack856 {
                    package: l.package,
                    tracking: l.tracking,
                    items: vec![item],
                }],
                ..Default::default()
            });
        }
        Ok::<(), X12Error>(())
    });
    if read.is_ok() && !shipments.is_empty() {
        let p = Profile856 {
            envelope: EnvelopeProfile {
                version: "005010".into(),
                sender_qualifier: "ZZ".into(),
                sender_id: "US".into(),
                receiver_qualifier: "ZZ".into(),
                receiver_id: "THEM".into(),
                usage: 'T',
                element_separator: '*',
                segment_terminator: '~',
                component_separator: '>',
                line_break: false,
            },
            unit: "EA".into(),
        };
        let ctl = ControlNumbers { interchange: 1, group: 1 };
        let _ = write_856(Vec::new(), &p, ctl, Default::default(), &shipments);
    }
});
