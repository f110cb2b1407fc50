//! Fuzzes the catalogue / store manifest parser: any text either is refused with an error naming
//! a line and column inside the text, or parses into a manifest that serializes and parses back
//! to the same manifest (what the store writes, it can read).
#![no_main]

use std::path::Path;

use beaker::manifest::{Manifest, ManifestError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Manifest::parse(text, Path::new("fuzz.toml")) {
        Ok(m) => {
            let again = m.to_toml().expect("a parsed manifest serializes");
            let back = Manifest::parse(&again, Path::new("again.toml"))
                .unwrap_or_else(|e| panic!("its own output does not parse: {e}\n{again}"));
            assert_eq!(back, m, "the round trip changed the manifest");
        }
        Err(ManifestError::Invalid { line, column, .. }) => {
            assert!(line >= 1 && column >= 1, "line {line} column {column}");
            assert!(line <= text.lines().count().max(1) + 1, "line {line} is past the text");
        }
        Err(e) => panic!("parse of text gave a non-positional error: {e}"),
    }
});
