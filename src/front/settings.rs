//! The configuration files (docs/design.md#layers `config`): settings a lab sets once for everybody and a user
//! may override, below flags and environment variables.
//!
//! ```text
//! precedence: flag > environment > user file > system file > built-in default
//! user file:   $BEAKER_CONFIG, else $XDG_CONFIG_HOME/beaker/config.toml (~/.config/beaker/…)
//! system file: $BEAKER_SYSTEM_CONFIG, else /etc/beaker/config.toml
//! ```
//!
//! ```toml
//! store = "/srv/models"                 # the store (like --store / BEAKER_STORE)
//! catalogues = ["/srv/catalogues/lab.toml"]  # like --catalogue / BEAKER_CATALOGUE (older: manifests)
//! offline = false                       # never download (like --offline / BEAKER_OFFLINE)
//! connect_timeout = "10s"               # like BEAKER_CONNECT_TIMEOUT
//! stall_timeout = "30s"                 # like BEAKER_STALL_TIMEOUT
//! retries = 3                           # like BEAKER_RETRIES
//! lock_timeout = "5m"                   # like --lock-timeout (default: wait as long as it takes)
//! ```
//!
//! Unknown keys and bad values are errors naming the file, line and column (a typo must not be a
//! silent default). Relative paths and `~` in `store` and `manifests` are resolved against the
//! file's directory and the home directory. A file that does not exist is simply absent. Reading
//! the files touches nothing else and keeps no store invariant.
//!
//! **Whom a file is trusted from.** A configuration file decides which store beaker writes into
//! and which catalogues it trusts, so a file that someone else could have written is refused
//! (exit 2, with the `chmod`/`chown` that fixes it), never used: one that every user may write
//! (mode `o+w`); one owned by a user other than root and the one running beaker (as `ssh` and
//! `git` refuse such files); one in a directory every user may write that has no sticky bit
//! (anyone could replace it). Group write is allowed: a lab may let its admins' group edit
//! `/etc/beaker/config.toml`.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::sys::error::{line_col, Category, IoError};

/// Where a setting's value came from (for `beaker config show`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "detail")]
pub enum Source {
    Flag,
    Env(String),
    File(PathBuf),
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => f.write_str("command line"),
            Source::Env(var) => write!(f, "environment ({var})"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A value and the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub from: PathBuf,
}

/// The settings of both files, the user's winning key by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub store: Option<Setting<PathBuf>>,
    pub manifests: Option<Setting<Vec<PathBuf>>>,
    pub offline: Option<Setting<bool>>,
    pub connect_timeout: Option<Setting<Duration>>,
    pub stall_timeout: Option<Setting<Duration>>,
    pub retries: Option<Setting<u32>>,
    pub lock_timeout: Option<Setting<Duration>>,
}

/// What to add to a configuration file's error: the valid keys (unless toml's message lists
/// them already), and for the keys people reach for by mistake, where they belong.
fn key_hint(message: &str) -> String {
    let mut hint = String::new();
    if message.starts_with("unknown field `manifest`")
        || message.starts_with("unknown field `catalogue`")
    {
        hint.push_str(
            ": the key is `catalogues`, a list (catalogues = [\"/path/to/catalogue.toml\"])",
        );
    } else if message.starts_with("unknown field `max_size`")
        || message.starts_with("unknown field `min_age`")
    {
        hint.push_str(
            ": a store's size budget is the store's own, in its store.toml (max_size = \"20G\", \
             min_age = \"1h\"), not a user's setting; `beaker store gc --max-size 20G` applies \
             one once",
        );
    }
    if !message.contains("expected one of") {
        hint.push_str(
            " (valid keys: store, catalogues, offline, connect_timeout, stall_timeout, retries, lock_timeout)",
        );
    }
    hint
}

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read the configuration file {}", error.path.display())]
    Read {
        #[source]
        error: IoError,
    },
    #[error("{}:{line}:{column}: {message}; fix the file{}", path.display(), key_hint(message))]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A file someone other than root and this user could have written (see the module doc).
    #[error("refusing the configuration file {} ({found}): {problem}; whoever can change it decides which store beaker writes into and which catalogues it trusts. To fix: {remedy}", path.display())]
    Untrusted {
        path: PathBuf,
        found: String,
        problem: String,
        remedy: String,
    },
}

impl SettingsError {
    pub fn category(&self) -> Category {
        Category::BadInput
    }
}

/// A configuration file is small; anything larger is not one.
const MAX_FILE: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    store: Option<String>,
    #[serde(alias = "manifests")]
    catalogues: Option<Vec<String>>,
    offline: Option<bool>,
    connect_timeout: Option<toml::Spanned<String>>,
    stall_timeout: Option<toml::Spanned<String>>,
    retries: Option<u32>,
    lock_timeout: Option<toml::Spanned<String>>,
}

impl Settings {
    /// The user's file: `$BEAKER_CONFIG`, else `<config dir>/beaker/config.toml`.
    pub fn user_file() -> Option<PathBuf> {
        match std::env::var_os("BEAKER_CONFIG") {
            Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
            _ => dirs::config_dir().map(|d| d.join("beaker").join("config.toml")),
        }
    }

    /// The system file: `$BEAKER_SYSTEM_CONFIG`, else `/etc/beaker/config.toml`
    /// (`%ProgramData%\beaker\config.toml` on Windows).
    pub fn system_file() -> PathBuf {
        match std::env::var_os("BEAKER_SYSTEM_CONFIG") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ if cfg!(windows) => std::env::var_os("ProgramData")
                .map_or_else(|| PathBuf::from(r"C:\ProgramData"), PathBuf::from)
                .join("beaker")
                .join("config.toml"),
            _ => PathBuf::from("/etc/beaker/config.toml"),
        }
    }

    /// Reads the system file, then the user's over it.
    pub fn load() -> Result<Settings, SettingsError> {
        let mut s = Settings::default();
        s.read_over(&Self::system_file())?;
        if let Some(user) = Self::user_file() {
            s.read_over(&user)?;
        }
        Ok(s)
    }

    /// Reads `path` (if it exists); each key it sets replaces the one in `self`.
    pub fn read_over(&mut self, path: &Path) -> Result<(), SettingsError> {
        // A file this user cannot even reach (a directory on the way is not searchable, as with
        // another user's HOME under sudo) is absent; one that is there but unreadable is an error.
        match crate::sys::fsx::user::metadata(path) {
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => return Ok(()),
            Ok(Some(meta)) => check_trusted(path, &meta)?,
            Err(_) => {}
        }
        let bytes = match crate::sys::fsx::user::read(path, MAX_FILE) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(SettingsError::Read { error }),
        };
        let text = String::from_utf8_lossy(&bytes);
        let at = |offset: usize, message: String| {
            let (line, column) = line_col(&text, offset);
            SettingsError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let file: File = toml::from_str(&text).map_err(|e| {
            at(
                e.span().map_or(0, |s| s.start),
                e.message().trim().replace('\n', "; "),
            )
        })?;
        let dir = path.parent().unwrap_or(Path::new("/"));
        fn set<T>(value: T, path: &Path) -> Setting<T> {
            Setting {
                value,
                from: path.to_owned(),
            }
        }
        let duration = |v: toml::Spanned<String>| {
            crate::model::duration::parse(v.get_ref())
                .map_err(|e| at(v.span().start, e.to_string()))
        };
        if let Some(v) = file.store {
            self.store = Some(set(resolve(&v, dir), path));
        }
        if let Some(v) = file.catalogues {
            self.manifests = Some(set(v.iter().map(|m| resolve(m, dir)).collect(), path));
        }
        if let Some(v) = file.offline {
            self.offline = Some(set(v, path));
        }
        if let Some(v) = file.connect_timeout {
            self.connect_timeout = Some(set(duration(v)?, path));
        }
        if let Some(v) = file.stall_timeout {
            self.stall_timeout = Some(set(duration(v)?, path));
        }
        if let Some(v) = file.retries {
            self.retries = Some(set(v, path));
        }
        if let Some(v) = file.lock_timeout {
            self.lock_timeout = Some(set(duration(v)?, path));
        }
        Ok(())
    }

    /// `fetch` applies these below the environment (see `fetch::Config::from_env_over`).
    pub fn fetch_base(&self) -> crate::ops::fetch::Config {
        let mut c = crate::ops::fetch::Config::default();
        if let Some(s) = &self.offline {
            c.offline = s.value;
        }
        if let Some(s) = &self.connect_timeout {
            c.connect_timeout = s.value;
        }
        if let Some(s) = &self.stall_timeout {
            c.stall_timeout = s.value;
        }
        if let Some(s) = &self.retries {
            c.retries = s.value;
        }
        c
    }
}

/// Refuses a configuration file at `path` (`meta`: its metadata, symlinks followed) that anyone
/// but root and this user could have written (see the module doc).
fn check_trusted(path: &Path, meta: &std::fs::Metadata) -> Result<(), SettingsError> {
    use crate::sys::fsx::user::Owner;
    let untrusted = |problem: String, remedy: String| SettingsError::Untrusted {
        path: path.to_owned(),
        found: crate::sys::who::describe_owner(meta.uid(), meta.gid(), meta.mode()),
        problem,
        remedy,
    };
    if meta.mode() & 0o002 != 0 {
        return Err(untrusted(
            "every user may write it".into(),
            format!("chmod o-w {}", path.display()),
        ));
    }
    let me = crate::sys::who::euid();
    if meta.uid() != 0 && meta.uid() != me {
        let owner =
            crate::sys::who::user_name(meta.uid()).unwrap_or_else(|| format!("uid {}", meta.uid()));
        let path = path.display();
        return Err(if me == 0 {
            untrusted(
                format!("it belongs to {owner}, not to root"),
                format!("chown root {path}"),
            )
        } else {
            let user = crate::sys::who::user();
            untrusted(
                format!("it belongs to {owner}, who is neither root nor {user}"),
                format!(
                    "sudo chown root {path} (a file only for yourself: sudo chown {user} {path})"
                ),
            )
        });
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(Some(d)) = crate::sys::fsx::user::metadata(dir) {
        if d.mode() & 0o002 != 0 && d.mode() & 0o1000 == 0 {
            return Err(untrusted(
                format!(
                    "its directory {} may be written by every user and has no sticky bit (anyone could replace the file)",
                    dir.display()
                ),
                format!("chmod o-w {} (or move the file)", dir.display()),
            ));
        }
    }
    Ok(())
}

/// `~/x` → the home directory's `x`; a relative path → under `dir`; absolute paths as they are.
pub fn resolve(text: &str, dir: &Path) -> PathBuf {
    let p = expand_home(text);
    if p.is_absolute() {
        p
    } else {
        dir.join(p)
    }
}

/// `~` and `~/…` → the home directory (when known); anything else unchanged.
pub fn expand_home(text: &str) -> PathBuf {
    match (text.strip_prefix('~'), dirs::home_dir()) {
        (Some(""), Some(home)) => home,
        (Some(rest), Some(home)) if rest.starts_with('/') => home.join(&rest[1..]),
        _ => PathBuf::from(text),
    }
}

#[cfg(test)]
mod tests {
    // Tests write configuration files with raw std::fs on purpose.
    #![allow(clippy::disallowed_methods)]
    use super::*;

    /// An absolute path on this platform.
    const ABSOLUTE: &str = if cfg!(windows) {
        r"C:\srv\models"
    } else {
        "/srv/models"
    };

    #[test]
    fn the_user_file_wins_key_by_key_and_paths_are_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let system = dir.path().join("system.toml");
        let user = dir.path().join("u/config.toml");
        std::fs::create_dir_all(user.parent().unwrap()).unwrap();
        std::fs::write(
            &system,
            format!("store = '{ABSOLUTE}'\nretries = 5\nstall_timeout = \"1m\"\n"),
        )
        .unwrap();
        std::fs::write(&user, "manifests = [\"lab.toml\"]\nretries = 1\n").unwrap();
        let mut s = Settings::default();
        s.read_over(&system).unwrap();
        s.read_over(&user).unwrap();
        assert_eq!(s.store.unwrap().value, PathBuf::from(ABSOLUTE));
        assert_eq!(s.retries.clone().unwrap().value, 1);
        assert_eq!(s.retries.unwrap().from, user);
        assert_eq!(s.stall_timeout.unwrap().value, Duration::from_secs(60));
        assert_eq!(
            s.manifests.unwrap().value,
            vec![dir.path().join("u/lab.toml")]
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "store = \"/s\"\nstroe = \"/t\"\n").unwrap();
        let e = Settings::default().read_over(&f).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:2:1:", f.display())), "{e}");
        std::fs::write(&f, "stall_timeout = \"soon\"\n").unwrap();
        let e = Settings::default().read_over(&f).unwrap_err().to_string();
        assert!(
            e.contains(":1:17:") && e.contains("is not a duration"),
            "{e}"
        );
        // A missing file is no error.
        Settings::default()
            .read_over(&dir.path().join("absent.toml"))
            .unwrap();
    }
}
