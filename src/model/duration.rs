//! The one duration grammar of beaker: every flag and environment variable that takes a length of
//! time (`--tmp-age`, `--lock-timeout`, `BEAKER_CONNECT_TIMEOUT`, `BEAKER_STALL_TIMEOUT`,
//! `BEAKER_RETRY_BASE`, `BEAKER_RETRY_AFTER_MAX`, and the same flags of `cargo xtask`) is parsed
//! by [`parse`], so they all accept the same spellings and refuse with the same message.
//!
//! Grammar (surrounding whitespace is ignored, nothing else is):
//!
//! ```text
//! duration = digits [ "." digits ]              a bare number is seconds
//!          | term { [ " " ] term }               terms add up: `1h 30m`, `1d12h`
//! term     = digits [ "." digits ] unit
//! unit     = "ms" | "s" | "m" | "h" | "d"         m = minutes, d = 24 hours
//! ```
//!
//! e.g. `250ms`, `30s`, `2`, `1.5m`, `24h`, `7d`, `1h 30m`. Refused: an empty string, a sign (`-1s`,
//! `+1s`), a missing number (`h`, `.5s`) or fraction (`1.s`), more than 9 decimal places,
//! exponents, unknown units, spaces inside, and anything longer than [`Duration::MAX`].
//!
//! The value is computed exactly in integer nanoseconds (no floating point), so `0.1s` is 100 ms
//! to the nanosecond and an overflow is an error, never a wrap or a saturation. This module
//! touches no disk and keeps no store invariant.

use std::time::Duration;

/// Why a text is not a duration. Its message is the same wherever the text came from; the caller
/// adds the flag or variable it was given for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a duration ({reason}); write a number with an optional unit ms, s, m, h or d, e.g. 250ms, 30s, 1.5m, 24h, 7d (a bare number is seconds)")]
pub struct InvalidDuration {
    /// The text as given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Parses `text` by the grammar in the module doc.
///
/// # Errors
/// [`InvalidDuration`] saying what is wrong and how to write a duration.
pub fn parse(text: &str) -> Result<Duration, InvalidDuration> {
    let fail = |reason| InvalidDuration {
        input: text.to_owned(),
        reason,
    };
    let t = text.trim();
    if t.is_empty() {
        return Err(fail("it is empty"));
    }
    // One or more "<number><unit>" terms, optionally separated by spaces (`1h 30m`, `1h30m`); a
    // bare number (seconds) only on its own.
    let mut rest = t;
    let mut nanos: u128 = 0;
    let mut terms = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        let unit_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, tail) = after.split_at(unit_end);
        if number.is_empty() {
            return Err(fail("it does not start with a number"));
        }
        if unit.is_empty() && (terms > 0 || !tail.is_empty()) {
            return Err(fail(
                "a number without a unit is only allowed alone (seconds)",
            ));
        }
        nanos = nanos
            .checked_add(term(number, unit).map_err(fail)?)
            .ok_or_else(|| fail("it is too long"))?;
        terms += 1;
        rest = tail.trim_start_matches(' ');
        if !tail.is_empty()
            && rest.len() == tail.len()
            && !tail.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(fail("unexpected characters"));
        }
    }
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| fail("it is too long"))?;
    // The remainder is < 10^9, so it fits a u32.
    let subsec = (nanos % NANOS_PER_SEC) as u32;
    Ok(Duration::new(secs, subsec))
}

/// One `<number><unit>` term in nanoseconds (an empty unit is seconds).
fn term(number: &str, unit: &str) -> Result<u128, &'static str> {
    let unit_nanos: u128 = match unit {
        "ms" => 1_000_000,
        "" | "s" => NANOS_PER_SEC,
        "m" => 60 * NANOS_PER_SEC,
        "h" => 3600 * NANOS_PER_SEC,
        "d" => 86_400 * NANOS_PER_SEC,
        _ => return Err("unknown unit"),
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (number, None),
    };
    if whole.is_empty() {
        return Err("it does not start with a number");
    }
    let whole: u128 = whole.parse().map_err(|_| "the number is too large")?;
    let mut nanos = whole.checked_mul(unit_nanos).ok_or("it is too long")?;
    if let Some(f) = fraction {
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err("a decimal point must be followed by digits");
        }
        if f.len() > 9 {
            return Err("more than 9 decimal places");
        }
        // f.len() <= 9, so both fit easily; the product is exact before the division.
        let digits: u128 = f.parse().map_err(|_| "bad fraction")?;
        let scale = 10u128.pow(f.len() as u32);
        nanos = nanos
            .checked_add(digits * unit_nanos / scale)
            .ok_or("it is too long")?;
    }
    Ok(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_add_up_with_or_without_spaces() {
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1d 12h"), Ok(Duration::from_secs(129_600)));
        assert_eq!(parse("1m 500ms"), Ok(Duration::from_millis(60_500)));
        for bad in ["1h 30", "30 1h", "1h -30m", "1h, 30m", "1h  x"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
    use proptest::prelude::*;

    #[test]
    fn accepts_every_unit_and_fractions() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse(" 10m "), Ok(Duration::from_secs(600)));
        assert_eq!(
            parse("0.1"),
            Ok(Duration::from_millis(100)),
            "exact, no float"
        );
        assert_eq!(parse("1.000000001"), Ok(Duration::new(1, 1)));
        assert_eq!(parse("0.5ms"), Ok(Duration::from_micros(500)));
    }

    #[test]
    fn refuses_junk_negatives_and_overflow() {
        for bad in [
            "",
            "   ",
            "h",
            "soon",
            "5 parsecs",
            "5w",
            "1 s",
            "-1s",
            "+1s",
            "1e3",
            ".5s",
            "1.s",
            "1..2s",
            "1.2.3",
            "1.0000000001",
            "99999999999999999999d",
            "18446744073709551616",
            "213503982334602d",
            "1sm",
            "1S",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            parse("18446744073709551615"),
            Ok(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn one_message_names_the_input_and_the_grammar() {
        let msg = parse("-1s").unwrap_err().to_string();
        assert!(msg.starts_with("\"-1s\" is not a duration"), "{msg}");
        assert!(msg.contains("ms, s, m, h or d"), "{msg}");
    }

    proptest! {
        #[test]
        fn whole_numbers_round_trip_in_every_unit(n in 0u64..1_000_000, unit in 0usize..5) {
            let (suffix, secs_per, ms) = [("ms", 0, true), ("s", 1, false), ("m", 60, false),
                                          ("h", 3600, false), ("d", 86_400, false)][unit];
            let want = if ms { Duration::from_millis(n) } else { Duration::from_secs(n * secs_per) };
            prop_assert_eq!(parse(&format!("{n}{suffix}")), Ok(want));
        }

        #[test]
        fn never_panics(s in "\\PC{0,30}") {
            let _ = parse(&s);
        }

        #[test]
        fn anything_with_a_sign_is_refused(s in "[-+][0-9]{1,5}(ms|s|m|h|d)?") {
            prop_assert!(parse(&s).is_err());
        }
    }
}
