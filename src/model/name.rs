//! Model names: the keys of manifests and the handles users type.
//!
//! A [`ModelName`] is 1–128 characters of `[a-z0-9._-]`, optionally one `org/name` slash, with no
//! `..` and no segment starting with `.` or `-` (so a name can never look like a flag or a hidden or
//! parent path). Names never become paths in the store, but validating them here means every name in
//! a manifest, in the store and on the command line obeys the same rules (docs/design.md#manifest-format).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const MAX_NAME_LEN: usize = 128;

/// A validated model name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModelName(String);

/// Why a string is not a valid model name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    #[error("a model name cannot be empty")]
    Empty,
    #[error("model name {name:?} is {len} characters long; the limit is {MAX_NAME_LEN}")]
    TooLong { name: String, len: usize },
    #[error("model name {name:?} contains {found:?}; use only a-z, 0-9, '.', '_', '-' and at most one '/'")]
    BadChar { name: String, found: char },
    #[error("model name {name:?} has more than one '/'; the form is NAME or ORG/NAME")]
    TooManySlashes { name: String },
    #[error("model name {name:?} has an empty part around '/'")]
    EmptySegment { name: String },
    #[error("model name {name:?} contains '..'")]
    DotDot { name: String },
    #[error("model name {name:?} has a part starting with {first:?}; parts must start with a-z, 0-9 or '_'")]
    BadStart { name: String, first: char },
}

impl ModelName {
    pub fn new(s: &str) -> Result<Self, InvalidName> {
        let name = || s.to_owned();
        if s.is_empty() {
            return Err(InvalidName::Empty);
        }
        let len = s.chars().count();
        if len > MAX_NAME_LEN {
            return Err(InvalidName::TooLong { name: name(), len });
        }
        if let Some(found) = s
            .chars()
            .find(|&c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-' | '/'))
        {
            return Err(InvalidName::BadChar {
                name: name(),
                found,
            });
        }
        if s.matches('/').count() > 1 {
            return Err(InvalidName::TooManySlashes { name: name() });
        }
        if s.contains("..") {
            return Err(InvalidName::DotDot { name: name() });
        }
        for segment in s.split('/') {
            match segment.chars().next() {
                None => return Err(InvalidName::EmptySegment { name: name() }),
                Some(first @ ('.' | '-')) => {
                    return Err(InvalidName::BadStart {
                        name: name(),
                        first,
                    })
                }
                Some(_) => {}
            }
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl FromStr for ModelName {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl Serialize for ModelName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ModelName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_good_names() {
        for ok in [
            "bird-detector",
            "a",
            "org/name",
            "v1.2_x",
            "0abc",
            "_x",
            &"a".repeat(128),
        ] {
            assert!(ModelName::new(ok).is_ok(), "{ok} should be valid");
        }
    }

    #[test]
    fn refuses_bad_names_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "cannot be empty"),
            ("Bird", "contains 'B'"),
            ("a b", "contains ' '"),
            ("a/b/c", "more than one '/'"),
            ("a..b", "contains '..'"),
            ("../etc", "contains '..'"),
            (".hidden", "starting with '.'"),
            ("-rf", "starting with '-'"),
            ("org/-x", "starting with '-'"),
            ("/abs", "empty part"),
            ("org/", "empty part"),
            ("a\0b", "contains '\\0'"),
        ];
        for (bad, why) in cases {
            let err = ModelName::new(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err:?} should mention {why:?}");
        }
        let long = "a".repeat(129);
        assert!(ModelName::new(&long)
            .unwrap_err()
            .to_string()
            .contains("limit is 128"));
    }

    proptest! {
        #[test]
        fn valid_names_round_trip(s in "[a-z0-9_][a-z0-9_-]{0,20}(/[a-z0-9_][a-z0-9_-]{0,20})?") {
            let n = ModelName::new(&s).unwrap();
            prop_assert_eq!(n.as_str(), s.as_str());
        }

        #[test]
        fn never_panics(s in "\\PC{0,140}") {
            let _ = ModelName::new(&s);
        }
    }
}
