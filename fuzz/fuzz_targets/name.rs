//! Fuzzes model-name validation: an accepted name is the input unchanged, and is safe as a path
//! component list (no empty, `.`-led or `-`-led part, no `..`, only `a-z 0-9 . _ -` and one `/`).
#![no_main]

use beaker::ModelName;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = ModelName::new(text) {
        assert_eq!(name.as_str(), text);
        assert!((1..=128).contains(&text.len()));
        assert!(!text.contains(".."));
        assert!(text.matches('/').count() <= 1);
        for part in text.split('/') {
            assert!(!part.is_empty() && !part.starts_with('.') && !part.starts_with('-'));
            assert!(part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)));
        }
    }
});
