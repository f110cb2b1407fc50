//! A quick reader for the record shapes beaker itself writes in `names/` (see `records`), so
//! `ls` and `rm` at 20,000 names do not spend a third of their time in the general TOML parser
//! (issue 14, P8).
//!
//! [`parse`] understands one strict, line-based subset of TOML: comment lines that start with
//! `#`, empty lines, `version = 1`, one `[models.NAME]` header (a bare or a quoted key) with
//! `key = value` lines under it, and `[[models.NAME.files]]` headers for a model of several files;
//! values are basic strings without escapes or control characters, decimal integers, booleans and
//! one-line arrays of such strings. That is what `Manifest::to_toml` writes for every record whose
//! strings need no escaping (all of them, in practice: hashes, sizes, file names, URLs, RFC 3339
//! times). For anything else — a `\r`, an escape, a literal or multi-line string, a trailing
//! comment, an indented line, an unknown or repeated key, a value of the wrong type, an entry the
//! manifest rules reject — it answers `None`, and the caller parses the text with
//! [`crate::model::manifest::Manifest::parse`], which reads all of TOML and gives every error its line
//! and column. So a record is never read differently, or accepted where the full parser would
//! refuse it; the tests check that against the full parser on generated and on damaged records.

use crate::model::digest::{Blake3, Md5, Sha256};
use crate::model::entry::{Format, Record};
use crate::model::file_path::FilePath;
use crate::model::manifest::{RawEntry, RawFile, Table};
use crate::model::name::ModelName;

/// `name`'s record from the text of its file, when the text is in the subset above and holds
/// exactly `[models.NAME]` with a valid record; `None` means "ask the full parser". The table is
/// validated by the full parser's own rules ([`Table::from_raw`]).
pub(super) fn parse(text: &str, name: &ModelName) -> Option<Record> {
    let mut version = false;
    let mut section = Section::Top;
    let mut entry = RawEntry::default();
    let mut seen = Seen::default();
    let mut files: Vec<(PartialFile, Seen)> = Vec::new();
    for line in text.split('\n') {
        let Some(&first) = line.as_bytes().first() else {
            continue;
        };
        match first {
            b'#' => {
                if line.bytes().any(is_control) {
                    return None;
                }
            }
            b'[' => {
                if !version {
                    return None;
                }
                section = match (section, header(line, name)?) {
                    (Section::Top, Header::Model) => Section::Model,
                    (Section::Model | Section::File, Header::File) => {
                        files.push((PartialFile::default(), Seen::default()));
                        Section::File
                    }
                    // A second `[models.NAME]`, or files before their model: not ours.
                    _ => return None,
                };
            }
            _ => {
                let (key, value) = key_value(line)?;
                match section {
                    Section::Top => {
                        if key != "version" || version || !matches!(value, Value::Int(1)) {
                            return None;
                        }
                        version = true;
                    }
                    Section::Model => model_key(&mut entry, &mut seen, key, value)?,
                    Section::File => {
                        let (file, seen) = files.last_mut()?;
                        file_key(file, seen, key, value)?;
                    }
                }
            }
        }
    }
    if section == Section::Top {
        return None;
    }
    if !files.is_empty() {
        entry.files = Some(
            files
                .into_iter()
                .map(|(f, _)| f.finish())
                .collect::<Option<Vec<_>>>()?,
        );
    }
    Record::from_raw(name, entry).ok()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Top,
    Model,
    File,
}

enum Header {
    Model,
    File,
}

/// Which keys a table has had: TOML refuses a key given twice.
#[derive(Default)]
struct Seen(u16);

impl Seen {
    /// Marks `bit`; false when it was already marked.
    fn first(&mut self, bit: u16) -> bool {
        let fresh = self.0 & bit == 0;
        self.0 |= bit;
        fresh
    }
}

/// A `[[models.NAME.files]]` table as read so far (`path` is required).
#[derive(Default)]
struct PartialFile {
    path: Option<FilePath>,
    blake3: Option<Blake3>,
    size: Option<u64>,
    urls: Vec<String>,
    sha256: Option<Sha256>,
    md5: Option<Md5>,
}

impl PartialFile {
    fn finish(self) -> Option<RawFile> {
        Some(RawFile {
            path: self.path?,
            blake3: self.blake3,
            size: self.size,
            urls: self.urls,
            sha256: self.sha256,
            md5: self.md5,
        })
    }
}

enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Strs(Vec<&'a str>),
}

impl<'a> Value<'a> {
    fn str(self) -> Option<&'a str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    fn size(self) -> Option<u64> {
        match self {
            Value::Int(n) => u64::try_from(n).ok(),
            _ => None,
        }
    }

    fn strings(self) -> Option<Vec<String>> {
        match self {
            Value::Strs(v) => Some(v.into_iter().map(str::to_owned).collect()),
            _ => None,
        }
    }
}

/// One key of `[models.NAME]` (the fields of [`RawEntry`] except `files`).
fn model_key(e: &mut RawEntry, seen: &mut Seen, key: &str, value: Value<'_>) -> Option<()> {
    let bit = match key {
        "blake3" => 1,
        "size" => 1 << 1,
        "urls" => 1 << 2,
        "format" => 1 << 3,
        "description" => 1 << 4,
        "sha256" => 1 << 5,
        "md5" => 1 << 6,
        "check" => 1 << 7,
        "added" => 1 << 8,
        "file" => 1 << 9,
        "main" => 1 << 10,
        "tree" => 1 << 11,
        _ => return None,
    };
    if !seen.first(bit) {
        return None;
    }
    match key {
        "blake3" => e.blake3 = Some(Blake3::from_hex(value.str()?).ok()?),
        "size" => e.size = Some(value.size()?),
        "urls" => e.urls = value.strings()?,
        "format" => {
            e.format = Some(match value.str()? {
                "onnx" => Format::Onnx,
                "other" => Format::Other,
                _ => return None,
            })
        }
        "description" => e.description = Some(value.str()?.to_owned()),
        "sha256" => e.sha256 = Some(Sha256::from_hex(value.str()?).ok()?),
        "md5" => e.md5 = Some(Md5::from_hex(value.str()?).ok()?),
        "check" => {
            let Value::Bool(b) = value else { return None };
            e.check = b;
        }
        "added" => e.added = Some(value.str()?.to_owned()),
        "file" => e.file = Some(FilePath::new(value.str()?).ok()?),
        "main" => e.main = Some(FilePath::new(value.str()?).ok()?),
        _ => e.tree = Some(Blake3::from_hex(value.str()?).ok()?),
    }
    Some(())
}

/// One key of a `[[models.NAME.files]]` table (the fields of [`RawFile`]).
fn file_key(f: &mut PartialFile, seen: &mut Seen, key: &str, value: Value<'_>) -> Option<()> {
    let bit = match key {
        "path" => 1,
        "blake3" => 1 << 1,
        "size" => 1 << 2,
        "urls" => 1 << 3,
        "sha256" => 1 << 4,
        "md5" => 1 << 5,
        _ => return None,
    };
    if !seen.first(bit) {
        return None;
    }
    match key {
        "path" => f.path = Some(FilePath::new(value.str()?).ok()?),
        "blake3" => f.blake3 = Some(Blake3::from_hex(value.str()?).ok()?),
        "size" => f.size = Some(value.size()?),
        "urls" => f.urls = value.strings()?,
        "sha256" => f.sha256 = Some(Sha256::from_hex(value.str()?).ok()?),
        _ => f.md5 = Some(Md5::from_hex(value.str()?).ok()?),
    }
    Some(())
}

/// `[models.NAME]` or `[[models.NAME.files]]`, NAME bare or in double quotes, for `name` only.
fn header(line: &str, name: &ModelName) -> Option<Header> {
    let (inner, kind) = match line.strip_prefix("[[") {
        Some(rest) => (
            rest.strip_suffix(".files]]")?.strip_prefix("models.")?,
            Header::File,
        ),
        None => (
            line.strip_prefix("[models.")?.strip_suffix(']')?,
            Header::Model,
        ),
    };
    let key = match inner.strip_prefix('"') {
        Some(quoted) => {
            let key = quoted.strip_suffix('"')?;
            if !key
                .bytes()
                .all(|c| !is_control(c) && c != b'"' && c != b'\\')
            {
                return None;
            }
            key
        }
        None if !inner.is_empty() && inner.bytes().all(is_bare) => inner,
        None => return None,
    };
    (key == name.as_str()).then_some(kind)
}

/// `key = value` with a bare key, spaces or tabs around `=`, and nothing after the value but
/// spaces or tabs.
fn key_value(line: &str) -> Option<(&str, Value<'_>)> {
    let end = line.bytes().position(|c| !is_bare(c))?;
    let (key, rest) = line.split_at(end);
    if key.is_empty() {
        return None;
    }
    let rest = rest.trim_start_matches([' ', '\t']).strip_prefix('=')?;
    let (value, rest) = value(rest.trim_start_matches([' ', '\t']))?;
    rest.trim_end_matches([' ', '\t'])
        .is_empty()
        .then_some((key, value))
}

/// A value at the start of `s`, and what follows it.
fn value(s: &str) -> Option<(Value<'_>, &str)> {
    match s.as_bytes().first()? {
        b'"' => basic_string(s).map(|(v, rest)| (Value::Str(v), rest)),
        b'[' => {
            let mut items = Vec::new();
            let mut rest = s[1..].trim_start_matches([' ', '\t']);
            loop {
                if let Some(after) = rest.strip_prefix(']') {
                    return Some((Value::Strs(items), after));
                }
                let (item, after) = basic_string(rest)?;
                items.push(item);
                rest = after.trim_start_matches([' ', '\t']);
                match rest.strip_prefix(',') {
                    Some(after) => rest = after.trim_start_matches([' ', '\t']),
                    None if rest.starts_with(']') => {}
                    None => return None,
                }
            }
        }
        b't' => s.strip_prefix("true").map(|rest| (Value::Bool(true), rest)),
        b'f' => s
            .strip_prefix("false")
            .map(|rest| (Value::Bool(false), rest)),
        b'0'..=b'9' => {
            let end = s
                .bytes()
                .position(|c| !c.is_ascii_digit())
                .unwrap_or(s.len());
            let (digits, rest) = s.split_at(end);
            if digits.len() > 1 && digits.starts_with('0') {
                return None; // TOML has no leading zeros
            }
            Some((Value::Int(digits.parse().ok()?), rest))
        }
        _ => None,
    }
}

/// `"…"` with no escape, quote or control character inside, and what follows it. (An empty
/// string followed by `"` would be a multi-line string: the caller then finds `"` after the value
/// and gives up.)
fn basic_string(s: &str) -> Option<(&str, &str)> {
    let body = s.strip_prefix('"')?;
    let end = body
        .bytes()
        .position(|c| c == b'"' || c == b'\\' || is_control(c))?;
    (body.as_bytes()[end] == b'"').then(|| (&body[..end], &body[end + 1..]))
}

/// Characters of a bare TOML key.
fn is_bare(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// What this reader refuses inside a string or comment: every control character, including tab
/// and the `\r` of a CRLF line end (the full parser knows their rules).
fn is_control(c: u8) -> bool {
    c < 0x20 || c == 0x7f
}

#[cfg(test)]
mod tests;
