//! Fuzzes the duration and size grammars of every flag, variable and store.toml key: they never
//! panic (no overflow in unit arithmetic, no slicing inside a character).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = beaker::duration::parse(text) {
        let _ = d.as_secs_f64();
    }
    let _ = beaker::size::parse(text);
    let _ = beaker::size::parse_budget(text);
});
