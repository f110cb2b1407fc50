//! [`FilePath`]: the path of one file inside a model (docs/design.md#snapshots), e.g. `model.onnx` or
//! `tokenizer/vocab.txt`.
//!
//! These paths become real paths under `<store>/snapshots/<tree>/` and under the directory
//! `beaker store export` writes to, so they are validated once, here, and nowhere else is a string
//! joined onto a directory: relative, `/`-separated, no empty, `.` or `..` part (so never outside
//! the model's directory), no NUL, no backslash, no control characters, at most 255 bytes a part
//! and 1024 bytes in all. Comparison and ordering are by the string, which is also the order the
//! tree id sorts by.
//!
//! A name Windows cannot hold — a part that is a device name (`CON`, `NUL`, `COM1`, … with any
//! extension, in any case), holds `< > : " | ? *`, or ends in a dot or a space — is
//! [`FilePath::new_portable`]'s to refuse: where a name enters (a catalogue, `add`, a registry
//! title), on every platform, so that a catalogue made anywhere works on Windows too. A store's
//! records are read with [`FilePath::new`], which refuses such names only on Windows (where
//! `a:b` would name a stream of `a`): a record an older beaker wrote on Linux still reads there.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A validated relative path of a file in a model.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FilePath(String);

/// Why a string is not a valid model file path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("file path {path:?} {problem}; a model's file paths are relative, '/'-separated, with no empty, '.' or '..' parts (e.g. \"model.onnx\", \"weights/model.onnx.data\")")]
pub struct InvalidFilePath {
    pub path: String,
    pub problem: &'static str,
}

const MAX_PART: usize = 255;
const MAX_PATH: usize = 1024;

impl FilePath {
    pub fn new(s: &str) -> Result<Self, InvalidFilePath> {
        let bad = |problem| {
            Err(InvalidFilePath {
                path: s.to_owned(),
                problem,
            })
        };
        if s.is_empty() {
            return bad("is empty");
        }
        if s.len() > MAX_PATH {
            return bad("is longer than 1024 bytes");
        }
        if s.starts_with('/') {
            return bad("is absolute");
        }
        if s.contains('\\') {
            return bad("contains a backslash");
        }
        if s.chars().any(char::is_control) {
            return bad("contains a control character");
        }
        for part in s.split('/') {
            match part {
                "" => return bad("has an empty part ('//' or a trailing '/')"),
                "." => return bad("has a '.' part"),
                ".." => return bad("has a '..' part"),
                p if p.len() > MAX_PART => return bad("has a part longer than 255 bytes"),
                _ => {}
            }
        }
        let path = FilePath(s.to_owned());
        if cfg!(windows) {
            path.check_portable()?;
        }
        Ok(path)
    }

    /// [`FilePath::new`], refusing also what Windows cannot hold (see the module doc): for a
    /// name that enters beaker (a catalogue, `add`, a registry title).
    pub fn new_portable(s: &str) -> Result<Self, InvalidFilePath> {
        let path = FilePath::new(s)?;
        path.check_portable()?;
        Ok(path)
    }

    /// Refuses a path with a part Windows cannot hold as a file name.
    pub fn check_portable(&self) -> Result<(), InvalidFilePath> {
        let bad = |problem| {
            Err(InvalidFilePath {
                path: self.0.clone(),
                problem,
            })
        };
        for part in self.0.split('/') {
            if part.contains(['<', '>', ':', '"', '|', '?', '*']) {
                return bad("has a character Windows refuses in file names (< > : \" | ? *)");
            }
            if part.ends_with(['.', ' ']) {
                return bad("has a part ending in a dot or a space, which Windows drops");
            }
            if is_device_name(part) {
                return bad(
                    "has a part Windows reserves for a device (CON, PRN, AUX, NUL, COM1-9, LPT1-9)",
                );
            }
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This path under `dir` (always inside `dir`: no part can climb out).
    pub fn under(&self, dir: &Path) -> PathBuf {
        self.0
            .split('/')
            .fold(dir.to_owned(), |p, part| p.join(part))
    }

    /// This path under the store directory `dir` (always inside it: no part can climb out).
    pub fn beneath(&self, dir: &crate::sys::fsx::Rooted) -> crate::sys::fsx::Rooted {
        self.0.split('/').fold(dir.clone(), |p, part| p.join(part))
    }

    /// The directories this path needs under the model's root, outermost first
    /// (`a/b/c.txt` → `a`, `a/b`).
    pub fn parents(&self) -> Vec<FilePath> {
        let parts: Vec<&str> = self.0.split('/').collect();
        (1..parts.len())
            .map(|n| FilePath(parts[..n].join("/")))
            .collect()
    }

    /// The number of `/`-separated parts.
    pub fn depth(&self) -> usize {
        self.0.split('/').count()
    }

    /// A file name made from the last segment of a URL or path (`…/rfdetr.onnx?x=1` →
    /// `rfdetr.onnx`), if that is a valid single-part path.
    pub fn from_url_tail(url: &str) -> Option<FilePath> {
        let path = url.split(['?', '#']).next().unwrap_or(url);
        let tail = path.rsplit('/').next()?;
        FilePath::new_portable(tail).ok().filter(|p| p.depth() == 1)
    }
}

/// Whether `part` names a Windows device: `CON`, `PRN`, `AUX`, `NUL`, `COM0`–`COM9`,
/// `LPT0`–`LPT9`, in any case, alone or before an extension (`nul.txt` is `NUL` there too).
fn is_device_name(part: &str) -> bool {
    let stem = part.split('.').next().unwrap_or(part).trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" => true,
        _ => {
            let b = upper.as_bytes();
            b.len() == 4
                && (upper.starts_with("COM") || upper.starts_with("LPT"))
                && b[3].is_ascii_digit()
        }
    }
}

impl fmt::Display for FilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::str::FromStr for FilePath {
    type Err = InvalidFilePath;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FilePath::new(s)
    }
}

impl Serialize for FilePath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FilePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FilePath::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    // Tests only compute paths.
    #![allow(clippy::disallowed_methods)]
    use super::*;

    #[test]
    fn accepts_relative_slash_separated_paths() {
        for ok in [
            "model.onnx",
            "a/b/c.txt",
            "model.onnx.data",
            ".hidden",
            "a b/ü.bin",
        ] {
            assert_eq!(FilePath::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_paths_that_could_leave_the_model_directory() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/",
            "./a",
            "a/./b",
            "..",
            "a\\b",
            "a\0b",
            "a\nb",
        ] {
            assert!(FilePath::new(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(FilePath::new(&"x".repeat(256)).is_err());
        assert!(FilePath::new(&["x"; 600].join("/")).is_err());
    }

    #[test]
    fn refuses_names_windows_cannot_hold_so_a_catalogue_works_everywhere() {
        for bad in [
            "CON",
            "con.onnx",
            "a/Nul.txt",
            "aux",
            "COM1.bin",
            "lpt9",
            "prn.tar.gz",
            "a:b.onnx",
            "what?.onnx",
            "a/b*.bin",
            "x<y",
            "q\"uote",
            "p|ipe",
            "trailing.",
            "dir./x",
            "space /x",
        ] {
            let e = FilePath::new_portable(bad).unwrap_err();
            assert_eq!(e.path, bad, "{e}");
            assert!(
                e.problem.contains("Windows"),
                "{bad:?} must be refused for Windows' sake: {e}"
            );
        }
        // Near misses are names like any other.
        for ok in [
            "console.onnx",
            "com10.bin",
            "lpt.txt",
            "nul_model.onnx",
            "a.b/c",
            "x.onnx",
        ] {
            assert_eq!(FilePath::new_portable(ok).unwrap().as_str(), ok);
        }
        // A record an older beaker wrote on Linux with such a name still reads there; on
        // Windows `a:b` would name a stream of `a`, so it never does.
        assert_eq!(FilePath::new("a:b.onnx").is_ok(), cfg!(unix));
        assert_eq!(FilePath::new("con.onnx").is_ok(), cfg!(unix));
    }

    #[test]
    fn under_and_parents() {
        let p = FilePath::new("a/b/c.txt").unwrap();
        assert_eq!(p.under(Path::new("/s")), Path::new("/s/a/b/c.txt"));
        let parents: Vec<String> = p.parents().iter().map(|p| p.to_string()).collect();
        assert_eq!(parents, ["a", "a/b"]);
        assert!(FilePath::new("m.onnx").unwrap().parents().is_empty());
    }

    #[test]
    fn url_tails() {
        let tail = |u| FilePath::from_url_tail(u).map(|p| p.to_string());
        assert_eq!(
            tail("https://h/x/rfdetr.onnx?dl=1").as_deref(),
            Some("rfdetr.onnx")
        );
        assert_eq!(tail("models/tiny.onnx").as_deref(), Some("tiny.onnx"));
        assert_eq!(tail("https://h/x/").as_deref(), None);
        assert_eq!(tail("https://h/x/..").as_deref(), None);
    }

    proptest::proptest! {
        #[test]
        fn a_valid_path_never_climbs_out(s in "[a-z./]{0,12}") {
            if let Ok(p) = FilePath::new(&s) {
                let under = p.under(Path::new("/root"));
                proptest::prop_assert!(under.starts_with("/root"));
                proptest::prop_assert!(under.components().all(|c| matches!(c, std::path::Component::RootDir | std::path::Component::Normal(_))));
            }
        }
    }
}
