//! Fuzzes digest parsing (the only way a hash becomes a path): an accepted BLAKE3 or SHA-256 is
//! exactly 64 lowercase hex digits and prints back as the input; an MD5 likewise with 32.
#![no_main]

use std::str::FromStr;

use beaker::digest::{Md5, Sha256};
use beaker::Blake3;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lower_hex = |n: usize| text.len() == n && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    match Blake3::from_str(text) {
        Ok(d) => assert_eq!(d.to_hex(), text),
        Err(_) => assert!(!lower_hex(64)),
    }
    match Sha256::from_str(text) {
        Ok(d) => assert_eq!(d.to_hex(), text),
        Err(_) => assert!(!lower_hex(64)),
    }
    match Md5::from_str(text) {
        Ok(d) => assert_eq!(d.to_hex(), text),
        Err(_) => assert!(!lower_hex(32)),
    }
});
