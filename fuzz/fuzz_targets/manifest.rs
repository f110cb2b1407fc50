//! Fuzzes the catalogue / store manifest parser: any text either is refused with an error naming
//! a line and column inside the text, or parses into a manifest that serializes and parses back
//! to the same manifest (what the store writes, it can read) — read as a catalogue (models) and
//! as a store's records.
#![no_main]

use std::fmt::Debug;
use std::path::Path;

use beaker::manifest::{Manifest, ManifestError, Table};
use beaker::{Model, Record};
use libfuzzer_sys::fuzz_target;

/// The round trip of `text` read as a manifest of `E`s.
fn round_trip<E: Table + PartialEq + Debug>(text: &str) {
    match Manifest::<E>::parse(text, Path::new("fuzz.toml")) {
        Ok(m) => {
            let again = m.to_toml().expect("a parsed manifest serializes");
            let back = Manifest::<E>::parse(&again, Path::new("again.toml"))
                .unwrap_or_else(|e| panic!("its own output does not parse: {e}\n{again}"));
            assert_eq!(back, m, "the round trip changed the manifest");
        }
        Err(ManifestError::Invalid { line, column, .. }) => {
            assert!(line >= 1 && column >= 1, "line {line} column {column}");
            assert!(line <= text.lines().count().max(1) + 1, "line {line} is past the text");
        }
        Err(e) => panic!("parse of text gave a non-positional error: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    round_trip::<Model>(text);
    round_trip::<Record>(text);
});
