//! `store.toml`: the store's format version and its policies (docs/design.md#on-disk), and its cache budget
//! (docs/design.md#eviction): `max_size` (a size, `crate::model::size` grammar) and `min_age` (a duration,
//! `crate::model::duration` grammar), both optional and both written as TOML strings.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sys::error::line_col;

/// The store format this beaker writes. Bump together with `layout.rs`.
///
/// Format 2 added `snapshots/` (docs/design.md#snapshots): every recorded name has one, and records its tree.
/// A format-1 store is still read, and upgraded in place by the first writer that opens it
/// (`super::upgrade`); a beaker that knows only format 1 refuses a format-2 store.
/// Format 3 keeps the store manifest as one record per name in `names/` instead of one
/// `manifest.toml` (`super::records`); a format-2 store is upgraded the same way, and a beaker
/// that knows only format 2 refuses a format-3 store (it would not see the names).
/// Format 4 adds `referrers/`, the reverse index of the records that `rm` reads
/// (`super::referrers`); a beaker that knows only format 3 refuses a format-4 store (it would
/// record names without keeping the index).
pub const FORMAT: i64 = 4;

/// The oldest store format this beaker reads (and upgrades).
pub const OLDEST_FORMAT: i64 = 1;

/// Who may use the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// One user: directories 0755, manifest and lock files 0644.
    #[default]
    Private,
    /// A Unix group: directories 2775 (setgid), manifest and lock files 0664 (docs/design.md#shared-stores).
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
    /// The store's budget: after each publish, least recently used names are evicted until the
    /// blobs fit (`crate::maint::gc::evict`). `None`: no limit.
    #[serde(
        default,
        deserialize_with = "de_size",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_size: Option<u64>,
    /// A name used more recently than this is in use and never evicted (default
    /// [`DEFAULT_MIN_AGE`]).
    #[serde(
        default,
        deserialize_with = "de_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_age: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            format: FORMAT,
            mode: Sharing::Private,
            locking: Locking::Flock,
            max_size: None,
            min_age: None,
        }
    }
}

/// `max_size = "50G"`: a budget by the size grammar (more than 0 bytes).
fn de_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let text = String::deserialize(d)?;
    crate::model::size::parse_budget(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `min_age = "1h"`: a duration by the duration grammar.
fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    crate::model::duration::parse(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `bytes` in the largest binary unit that divides it exactly (`50G`, `1536K`, `1000`), so a
/// rewritten `store.toml` keeps the value exactly and stays readable.
pub fn size_text(bytes: u64) -> String {
    for (unit, shift) in [("P", 50), ("T", 40), ("G", 30), ("M", 20), ("K", 10)] {
        if bytes != 0 && bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// `d` in the largest unit that divides it exactly (`1h`, `90s`, `250ms`; sub-millisecond parts
/// as a fraction of a second), readable back by `crate::model::duration::parse` to the same value.
pub fn duration_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        let s = d.as_secs();
        for (unit, secs) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if s != 0 && s.is_multiple_of(secs) {
                return format!("{}{unit}", s / secs);
            }
        }
        return format!("{s}s");
    }
    if d.subsec_nanos().is_multiple_of(1_000_000) && d.as_millis() <= u128::from(u64::MAX) {
        return format!("{}ms", d.as_millis());
    }
    format!("{}.{:09}s", d.as_secs(), d.subsec_nanos())
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

/// A name used more recently than this is in use (never evicted), unless `min_age` (the gc flag
/// or `store.toml`) says otherwise.
pub const DEFAULT_MIN_AGE: Duration = Duration::from_secs(3600);

impl Config {
    /// The `min_age` of this store: `store.toml`'s, else [`DEFAULT_MIN_AGE`].
    pub fn min_age(&self) -> Duration {
        self.min_age.unwrap_or(DEFAULT_MIN_AGE)
    }

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
        let mut budget = String::new();
        if let Some(n) = self.max_size {
            budget.push_str(&format!("max_size = \"{}\"\n", size_text(n)));
        }
        if let Some(d) = self.min_age {
            budget.push_str(&format!("min_age = \"{}\"\n", duration_text(d)));
        }
        format!(
            "# beaker store (format {}); see `beaker store info`. Do not edit while beaker runs.\n\
             format = {}\nmode = \"{}\"\nlocking = \"{}\"\n{budget}",
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

    /// Describes the store for messages (`/srv/Models (private, locking flock)`): the path as
    /// it is, the settings in lower case.
    pub fn describe(&self, path: &Path) -> String {
        format!(
            "{} ({})",
            path.display(),
            format!("{:?}, locking {:?}", self.mode, self.locking).to_lowercase()
        )
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
            ..Config::default()
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
            Config::parse("format = 5\n"),
            Err(ConfigProblem::UnknownFormat("5".into()))
        );
        assert_eq!(Config::parse("format = 4\n").unwrap().format, 4);
        assert_eq!(Config::parse("format = 3\n").unwrap().format, 3);
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

    #[test]
    fn the_budget_round_trips_and_pins_bytes() {
        let c = Config::parse("format = 2\nmax_size = \"50G\"\nmin_age = \"90m\"\n").unwrap();
        assert_eq!(c.max_size, Some(50 << 30));
        assert_eq!(c.min_age, Some(Duration::from_secs(5400)));
        let text = c.to_toml();
        assert!(
            text.ends_with("locking = \"flock\"\nmax_size = \"50G\"\nmin_age = \"90m\"\n"),
            "{text}"
        );
        assert_eq!(Config::parse(&text).unwrap(), c);
        for (bytes, d) in [
            (1, Duration::from_millis(250)),
            (1536 << 10, Duration::new(2, 5)),
            (1000, Duration::from_secs(86_400 * 3)),
        ] {
            let c = Config {
                max_size: Some(bytes),
                min_age: Some(d),
                ..Config::default()
            };
            assert_eq!(Config::parse(&c.to_toml()).unwrap(), c);
        }
    }

    #[test]
    fn a_bad_budget_names_the_line() {
        for (text, line) in [
            ("format = 2\nmax_size = \"12 parsecs\"\n", 2),
            ("format = 2\nmode = \"private\"\nmax_size = \"0\"\n", 3),
            ("format = 2\nmax_size = 50\n", 2),
            ("format = 2\nmin_age = \"-1d\"\n", 2),
        ] {
            match Config::parse(text) {
                Err(ConfigProblem::Invalid {
                    line: l, message, ..
                }) => {
                    assert_eq!(l, line, "{text}: {message}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
