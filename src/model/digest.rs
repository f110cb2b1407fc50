//! Content addresses.
//!
//! [`Blake3`] is the store's address type: 32 bytes shown as 64 lowercase hex characters. It is the
//! *only* way a hash becomes a path (see `store::Layout::blob`), so a string from a manifest, a file
//! name or the command line has to pass [`Blake3::from_hex`] before it can touch the disk. That keeps
//! path tricks (`../`, `/`, NUL, upper-case aliases of the same blob) out of the store by construction.
//!
//! [`Sha256`] and [`Md5`] are the upstream digests a catalogue may pin; they are checked while
//! streaming but never used as addresses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid hex digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseDigestError {
    #[error("a {algo} digest is {expected} hex characters, this one has {actual}")]
    Length {
        algo: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("a {algo} digest is lowercase hex (0-9, a-f); found {found:?} at position {position}")]
    Char {
        algo: &'static str,
        found: char,
        position: usize,
    },
}

/// A digest of `N` bytes written as `2N` lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HexDigest<const N: usize>([u8; N]);

impl<const N: usize> HexDigest<N> {
    pub const fn from_bytes(bytes: [u8; N]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; N] {
        &self.0
    }

    /// Parses exactly `2N` lowercase hex characters; upper case is refused so one digest has one
    /// spelling (and so one file name).
    pub fn parse(algo: &'static str, s: &str) -> Result<Self, ParseDigestError> {
        if s.len() != 2 * N {
            return Err(ParseDigestError::Length {
                algo,
                expected: 2 * N,
                actual: s.chars().count(),
            });
        }
        // Two hex digits per byte, on bytes (`ls` and gc parse thousands of digests); a bad
        // one is reported by its character and position, counted in characters.
        let mut out = [0u8; N];
        for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
            match (nibble(pair[0]), nibble(pair[1])) {
                (Some(high), Some(low)) => *o = high << 4 | low,
                _ => {
                    let (position, found) = s
                        .chars()
                        .enumerate()
                        .find(|(_, c)| !matches!(c, '0'..='9' | 'a'..='f'))
                        .unwrap_or((0, '?'));
                    return Err(ParseDigestError::Char {
                        algo,
                        found,
                        position,
                    });
                }
            }
        }
        Ok(Self(out))
    }

    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(2 * N);
        for b in self.0 {
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 0xf)] as char);
        }
        s
    }
}

/// The value of a lowercase hex digit.
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

macro_rules! digest_type {
    ($(#[$doc:meta])* $name:ident, $n:literal, $algo:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(HexDigest<$n>);

        impl $name {
            pub const ALGO: &'static str = $algo;

            pub const fn from_bytes(bytes: [u8; $n]) -> Self {
                Self(HexDigest::from_bytes(bytes))
            }

            pub fn as_bytes(&self) -> &[u8; $n] {
                self.0.as_bytes()
            }

            pub fn from_hex(s: &str) -> Result<Self, ParseDigestError> {
                HexDigest::parse($algo, s).map(Self)
            }

            pub fn to_hex(&self) -> String {
                self.0.to_hex()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", $algo, self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = ParseDigestError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_hex(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

digest_type!(
    /// The BLAKE3 hash of a blob's bytes: its name in the store.
    Blake3,
    32,
    "blake3"
);
digest_type!(
    /// An upstream SHA-256 pinned in a catalogue.
    Sha256,
    32,
    "sha256"
);
digest_type!(
    /// An upstream MD5 pinned in a catalogue (integrity against accidents only, not attacks).
    Md5,
    16,
    "md5"
);

/// An upstream digest a catalogue entry pins (`sha256` or `md5`): the key of the store's digest
/// index (`crate::store::index`), which remembers which blob was checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Upstream {
    Sha256(Sha256),
    Md5(Md5),
}

impl Upstream {
    /// Every upstream digest of these, strongest first.
    pub fn all(sha256: Option<Sha256>, md5: Option<Md5>) -> Vec<Upstream> {
        sha256
            .map(Upstream::Sha256)
            .into_iter()
            .chain(md5.map(Upstream::Md5))
            .collect()
    }

    /// `sha256-<hex>` or `md5-<hex>`: validated hex with the algorithm in front, so it can never
    /// be mistaken for a blob address (the same spelling as a pull's download key).
    pub fn stem(&self) -> String {
        match self {
            Upstream::Sha256(d) => format!("{}-{}", Sha256::ALGO, d.to_hex()),
            Upstream::Md5(d) => format!("{}-{}", Md5::ALGO, d.to_hex()),
        }
    }

    /// The inverse of [`Upstream::stem`]; `None` for anything else.
    pub fn from_stem(stem: &str) -> Option<Upstream> {
        let (algo, hex) = stem.split_once('-')?;
        match algo {
            Sha256::ALGO => Sha256::from_hex(hex).ok().map(Upstream::Sha256),
            Md5::ALGO => Md5::from_hex(hex).ok().map(Upstream::Md5),
            _ => None,
        }
    }
}

impl Blake3 {
    /// The hash of `bytes` (for small inputs and tests; streams go through [`blake3::Hasher`]).
    pub fn of(bytes: &[u8]) -> Self {
        Self::from(blake3::hash(bytes))
    }

    /// The first 12 hex characters, for tables meant for people.
    pub fn short(&self) -> String {
        let mut hex = self.to_hex();
        hex.truncate(12);
        hex
    }
}

impl From<blake3::Hash> for Blake3 {
    fn from(h: blake3::Hash) -> Self {
        Self::from_bytes(*h.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vector() {
        // BLAKE3 of the empty input, from the BLAKE3 test vectors.
        assert_eq!(
            Blake3::of(b"").to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn refuses_wrong_length_and_case() {
        let hex = Blake3::of(b"x").to_hex();
        assert_eq!(
            Blake3::from_hex(&hex[..63]),
            Err(ParseDigestError::Length {
                algo: "blake3",
                expected: 64,
                actual: 63
            })
        );
        let upper = hex.to_uppercase();
        assert!(matches!(
            Blake3::from_hex(&upper),
            Err(ParseDigestError::Char { .. })
        ));
        assert!(Blake3::from_hex(&format!("../{}", &hex[3..])).is_err());
        assert!(Md5::from_hex("f1e20fe90da342a7529c89f4d39b7ff9").is_ok());
        assert!(Md5::from_hex(&hex).is_err());
    }

    #[test]
    fn multibyte_input_is_an_error_not_a_panic() {
        // 64 bytes but not 64 chars: must be refused cleanly.
        let s = "é".repeat(32);
        assert!(Blake3::from_hex(&s).is_err());
    }

    #[test]
    fn upstream_stems_round_trip_and_refuse_anything_else() {
        let md5 = Upstream::Md5(Md5::from_hex("f1e20fe90da342a7529c89f4d39b7ff9").unwrap());
        assert_eq!(md5.stem(), "md5-f1e20fe90da342a7529c89f4d39b7ff9");
        assert_eq!(Upstream::from_stem(&md5.stem()), Some(md5));
        let sha = Upstream::Sha256(Sha256::from_bytes([0xab; 32]));
        assert_eq!(Upstream::from_stem(&sha.stem()), Some(sha));
        for bad in [
            "md5-",
            "md5-F1E20FE90DA342A7529C89F4D39B7FF9",
            "blake3-00",
            "x",
            "md5-../a",
        ] {
            assert_eq!(Upstream::from_stem(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn hex_round_trips(bytes in proptest::array::uniform32(any::<u8>())) {
            let d = Blake3::from_bytes(bytes);
            let hex = d.to_hex();
            prop_assert_eq!(hex.len(), 64);
            prop_assert_eq!(Blake3::from_hex(&hex).unwrap(), d);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,70}") {
            let _ = Blake3::from_hex(&s);
        }
    }
}
