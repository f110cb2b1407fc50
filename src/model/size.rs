//! The one size grammar of beaker: `gc --max-size` (for `beaker store gc` and `cargo xtask gc`)
//! and `max_size` in `store.toml` are parsed by [`parse`], so they accept the same spellings and
//! refuse with the same message.
//!
//! Grammar (surrounding whitespace is ignored, and so is whitespace between the number and its
//! unit, as humansize prints `1.50 GiB`; units are case-insensitive):
//!
//! ```text
//! size = digits [ "." digits ] [ unit ]          a bare number is bytes
//! unit = "B"
//!      | "K" | "M" | "G" | "T" | "P"             powers of 1024 (as du, ls -h, sort -h)
//!      | "Ki" | "Mi" | "Gi" | "Ti" | "Pi"        powers of 1024
//!      | "KiB" | "MiB" | "GiB" | "TiB" | "PiB"   powers of 1024
//!      | "KB" | "MB" | "GB" | "TB" | "PB"        powers of 1000 (as coreutils, humansize DECIMAL)
//! ```
//!
//! e.g. `20G`, `20g`, `500MiB`, `1.5 TiB`, `800MB`, `1gb`, `1Gi`, `4096`.
//! Refused: an empty string, a sign (`-1G`), a missing number or fraction (`G`, `.5G`, `1.G`),
//! more than 9 decimal places, unknown units (`12 parsecs`, `1e9`), and anything above
//! `u64::MAX` bytes. The value is exact in integer arithmetic (a fraction of a byte is
//! rounded down). Zero is a valid size here; a caller for which zero makes no sense (a budget)
//! refuses it itself ([`parse_budget`]). This module touches no disk and keeps no store invariant.

/// Why a text is not a size. Its message is the same wherever the text came from; the caller adds
/// the flag or file it was given in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a size ({reason}); write a number with an optional unit, e.g. 20G, 500MiB, 1.5T, 800MB (K, M, G, T, Ki, KiB, MiB, … are powers of 1024; KB, MB, … of 1000; any case; a bare number is bytes)")]
pub struct InvalidSize {
    /// The text as given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses `text` by the grammar in the module doc.
///
/// # Errors
/// [`InvalidSize`] saying what is wrong and how to write a size.
pub fn parse(text: &str) -> Result<u64, InvalidSize> {
    let fail = |reason| InvalidSize {
        input: text.to_owned(),
        reason,
    };
    let t = text.trim();
    if t.is_empty() {
        return Err(fail("it is empty"));
    }
    let number_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(number_end);
    let unit_bytes: u128 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "t" | "ti" | "tib" => 1 << 40,
        "p" | "pi" | "pib" => 1 << 50,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "pb" => 1_000_000_000_000_000,
        _ if number.is_empty() => return Err(fail("it does not start with a number")),
        _ => return Err(fail("unknown unit")),
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (number, None),
    };
    if whole.is_empty() {
        return Err(fail("it does not start with a number"));
    }
    let whole: u128 = whole.parse().map_err(|_| fail("the number is too large"))?;
    let mut bytes = whole
        .checked_mul(unit_bytes)
        .ok_or_else(|| fail("it is too large"))?;
    if let Some(f) = fraction {
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail("a decimal point must be followed by digits"));
        }
        if f.len() > 9 {
            return Err(fail("more than 9 decimal places"));
        }
        // f.len() <= 9 and unit_bytes <= 2^50: the product fits a u128 with room to spare.
        let digits: u128 = f.parse().map_err(|_| fail("bad fraction"))?;
        let scale = 10u128.pow(f.len() as u32);
        bytes = bytes
            .checked_add(digits * unit_bytes / scale)
            .ok_or_else(|| fail("it is too large"))?;
    }
    u64::try_from(bytes).map_err(|_| fail("it is too large"))
}

/// A size budget (`--max-size`, `max_size`): a size by [`parse`] that is not zero (a budget of
/// nothing would evict every model that is not in use).
///
/// # Errors
/// [`InvalidSize`] for text that is not a size, or is zero.
pub fn parse_budget(text: &str) -> Result<u64, InvalidSize> {
    match parse(text)? {
        0 => Err(InvalidSize {
            input: text.to_owned(),
            reason: "a budget must be more than 0 bytes",
        }),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_binary_and_decimal_units_and_fractions() {
        assert_eq!(parse("20G"), Ok(20 << 30));
        assert_eq!(parse("500MiB"), Ok(500 << 20));
        assert_eq!(parse("800MB"), Ok(800_000_000));
        assert_eq!(parse("1.5T"), Ok(3 << 39));
        assert_eq!(parse("4096"), Ok(4096));
        assert_eq!(parse("4096B"), Ok(4096));
        assert_eq!(parse("1k"), Ok(1024));
        assert_eq!(parse("1kB"), Ok(1000));
        assert_eq!(parse(" 2K "), Ok(2048));
        assert_eq!(parse("0.5K"), Ok(512));
        assert_eq!(parse("0.0001K"), Ok(0), "a fraction of a byte rounds down");
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn units_are_case_insensitive_and_may_follow_a_space_as_humansize_prints_them() {
        assert_eq!(parse("1m"), Ok(1 << 20));
        assert_eq!(parse("1g"), Ok(1 << 30));
        assert_eq!(parse("1gb"), Ok(1_000_000_000));
        assert_eq!(parse("1Gb"), Ok(1_000_000_000));
        assert_eq!(parse("1Gi"), Ok(1 << 30));
        assert_eq!(parse("1gib"), Ok(1 << 30));
        assert_eq!(parse("12 G"), Ok(12 << 30));
        assert_eq!(parse("1.50 GiB"), Ok(3 << 29));
        assert_eq!(parse("1.95 KiB"), Ok(1996));
        assert_eq!(parse("300 MB"), Ok(300_000_000));
        assert_eq!(parse("7 b"), Ok(7));
        // What humansize prints reads back (to its two decimals).
        for n in [0u64, 1, 1023, 1024, 1 << 20, 3 << 30, 5_000_000_000] {
            for style in [humansize::BINARY, humansize::DECIMAL] {
                let shown = humansize::format_size(n, style);
                let back = parse(&shown).unwrap_or_else(|e| panic!("{shown}: {e}"));
                assert!(
                    back.abs_diff(n) * 100 <= n.max(1),
                    "{shown} read as {back}, was {n}"
                );
            }
        }
    }

    #[test]
    fn refuses_junk_negatives_and_overflow() {
        for bad in [
            "",
            " ",
            "G",
            "-1G",
            "+1G",
            "12 parsecs",
            "12parsecs",
            ".5G",
            "1.G",
            "1..2G",
            "1e9",
            "1 2G",
            "1Gib5",
            "1.0000000001G",
            "18446744073709551616",
            "16384P",
            "99999999999999999999999999999999999999999",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn a_budget_of_zero_is_refused_with_the_reason() {
        let err = parse_budget("0").unwrap_err();
        assert!(err.to_string().contains("more than 0 bytes"), "{err}");
        assert!(parse_budget("0G").is_err());
        assert_eq!(parse_budget("1"), Ok(1));
    }

    #[test]
    fn one_message_names_the_input_and_the_grammar() {
        let msg = parse("12 parsecs").unwrap_err().to_string();
        assert!(msg.starts_with("\"12 parsecs\" is not a size"), "{msg}");
        assert!(msg.contains("500MiB"), "{msg}");
    }

    proptest! {
        #[test]
        fn whole_numbers_round_trip_in_every_unit(n in 0u64..1_000_000, unit in 0usize..6) {
            let (suffix, mul) = [("", 1u64), ("K", 1 << 10), ("MiB", 1 << 20), ("G", 1 << 30),
                                 ("KB", 1000), ("GB", 1_000_000_000)][unit];
            prop_assert_eq!(parse(&format!("{n}{suffix}")), Ok(n * mul));
        }

        #[test]
        fn never_panics(s in "\\PC{0,30}") {
            let _ = parse(&s);
        }
    }
}
