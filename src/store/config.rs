//! `store.toml`: the store's format version and its policies (DESIGN §4).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::line_col;

/// The store format this beaker writes. Bump together with `layout.rs`.
///
/// Format 2 added `snapshots/` (DESIGN §13): every recorded name has one, and records its tree.
/// A format-1 store is still read, and upgraded in place by the first writer that opens it
/// (`super::upgrade`); a beaker that knows only format 1 refuses a format-2 store.
pub const FORMAT: i64 = 2;

/// The oldest store format this beaker reads (and upgrades).
pub const OLDEST_FORMAT: i64 = 1;

/// Who may use the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// One user: directories 0755, manifest and lock files 0644.
    #[default]
    Private,
    /// A Unix group: directories 2775 (setgid), manifest and lock files 0664 (DESIGN §8).
    Group,
}

/// Whether publishers take advisory locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Locking {
    /// flock(2): de-duplicates downloads and serialises manifest edits.
    #[default]
    Flock,
    /// No locks at all, for filesystems where flock is broken. Blobs stay correct (I1–I3 rest on
    /// hashing and no-clobber publish); duplicate downloads are no longer avoided.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub format: i64,
    #[serde(default)]
    pub mode: Sharing,
    #[serde(default)]
    pub locking: Locking,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            format: FORMAT,
            mode: Sharing::Private,
            locking: Locking::Flock,
        }
    }
}

/// Why `store.toml` could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigProblem {
    UnknownFormat(String),
    Invalid {
        line: usize,
        column: usize,
        message: String,
    },
}

#[derive(Deserialize)]
struct FormatProbe {
    format: Option<toml::Value>,
}

impl Config {
    pub fn parse(text: &str) -> Result<Self, ConfigProblem> {
        let invalid = |e: toml::de::Error| {
            let (line, column) = line_col(text, e.span().map_or(0, |s| s.start));
            ConfigProblem::Invalid {
                line,
                column,
                message: e.message().trim().replace('\n', "; "),
            }
        };
        let probe: FormatProbe = toml::from_str(text).map_err(invalid)?;
        match probe.format {
            Some(toml::Value::Integer(n)) if (OLDEST_FORMAT..=FORMAT).contains(&n) => {}
            Some(other) => return Err(ConfigProblem::UnknownFormat(other.to_string())),
            None => return Err(ConfigProblem::UnknownFormat("(missing)".into())),
        }
        toml::from_str(text).map_err(invalid)
    }

    pub fn to_toml(&self) -> String {
        format!(
            "# beaker store (format {}); see `beaker store info`. Do not edit while beaker runs.\n\
             format = {}\nmode = \"{}\"\nlocking = \"{}\"\n",
            self.format,
            self.format,
            match self.mode {
                Sharing::Private => "private",
                Sharing::Group => "group",
            },
            match self.locking {
                Locking::Flock => "flock",
                Locking::None => "none",
            }
        )
    }

    /// Mode for directories inside the store.
    pub fn dir_mode(&self) -> u32 {
        match self.mode {
            Sharing::Private => 0o755,
            Sharing::Group => 0o2775,
        }
    }

    /// Mode for the store manifest, store.toml and lock files.
    pub fn file_mode(&self) -> u32 {
        match self.mode {
            Sharing::Private => 0o644,
            Sharing::Group => 0o664,
        }
    }

    /// Describes the store for messages (`private, flock`).
    pub fn describe(&self, path: &Path) -> String {
        format!(
            "{} ({:?}, locking {:?})",
            path.display(),
            self.mode,
            self.locking
        )
        .to_lowercase()
    }
}

/// Published blobs: read-only for everyone (invariant I2).
pub const BLOB_MODE: u32 = 0o444;
/// Temp files: only the writer can change bytes that are about to be published.
pub const TEMP_MODE: u32 = 0o600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pins_bytes() {
        let c = Config {
            format: 1,
            mode: Sharing::Group,
            locking: Locking::None,
        };
        let text = c.to_toml();
        assert!(
            text.ends_with("format = 1\nmode = \"group\"\nlocking = \"none\"\n"),
            "{text}"
        );
        assert_eq!(Config::parse(&text).unwrap(), c);
    }

    #[test]
    fn unknown_format_and_keys_are_refused() {
        assert_eq!(
            Config::parse("format = 3\n"),
            Err(ConfigProblem::UnknownFormat("3".into()))
        );
        assert_eq!(Config::parse("format = 1\n").unwrap().format, 1);
        assert_eq!(Config::parse("format = 2\n").unwrap().format, 2);
        assert!(matches!(
            Config::parse("format = 1\nlocks = \"x\"\n"),
            Err(ConfigProblem::Invalid {
                line: 2,
                column: 1,
                ..
            })
        ));
        assert!(matches!(
            Config::parse("format = 1\nlocking = \"nfs\"\n"),
            Err(ConfigProblem::Invalid { line: 2, .. })
        ));
    }
}
