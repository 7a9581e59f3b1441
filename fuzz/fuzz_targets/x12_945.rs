#![no_main]
//! The 945 shipment reader over arbitrary bytes: it may refuse, never panic.

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use stockgate::formats::x12::{read_945_with, X12Error};

fuzz_target!(|data: &[u8]| {
    for wanted in [vec!["VN".to_owned()], vec!["BP".to_owned(), "UP".to_owned()]] {
        let _ = read_945_with(Cursor::new(data), &wanted, |l| {
            let _ = (l.sku, l.quantity, l.tracking, l.shipped_at);
            Ok::<(), X12Error>(())
        });
    }
});
