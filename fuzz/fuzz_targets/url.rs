//! Fuzzes the catalogue URL classifier: it never panics, and what it accepts as HTTP(S) starts
//! with the scheme it claims.
#![no_main]

use beaker::url::{classify, Url};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = classify(text) {
        let shown = format!("{url:?}");
        assert!(!shown.is_empty());
        if let Url::Http(u) = url {
            let lower = u.to_ascii_lowercase();
            assert!(lower.starts_with("http://") || lower.starts_with("https://"), "{u}");
        }
    }
});
