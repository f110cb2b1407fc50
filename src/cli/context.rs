//! What every command resolves the same way: the store directory, the catalogues and the pull
//! options, each from flag > environment > user config file > system config file > default
//! ([`beaker::settings`]), with where each value came from (for `beaker config show`).

use std::path::PathBuf;

use anyhow::Result;

use beaker::lock::Wait;
use beaker::pull::Options;
use beaker::settings::{expand_home, Settings, Source};
use beaker::{Catalogue, Store};

use super::args::Locations;

/// The flags and files that decide where things are.
pub struct Context {
    pub settings: Settings,
    store_flag: Option<PathBuf>,
    manifest_flags: Vec<PathBuf>,
    offline_flag: bool,
}

impl Context {
    /// Reads the configuration files under the flags.
    pub fn new(flags: Locations) -> Result<Self> {
        Ok(Self::with(flags, Settings::load()?))
    }

    /// The flags over `settings` (e.g. none from the files, when one is broken).
    pub fn with(flags: Locations, settings: Settings) -> Self {
        Context {
            settings,
            // An empty --store/BEAKER_STORE means unset.
            store_flag: flags.store.filter(|p| !p.as_os_str().is_empty()),
            manifest_flags: flags.manifests,
            offline_flag: flags.offline,
        }
    }

    /// Whether `--offline` was given.
    pub fn offline_flag(&self) -> bool {
        self.offline_flag
    }

    /// The store directory, absolute (`~` expanded), and where it came from.
    pub fn store_root(&self) -> Result<(PathBuf, Source)> {
        let env = std::env::var_os("BEAKER_STORE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let (path, source) = match (&self.store_flag, env, &self.settings.store) {
            (Some(p), _, _) => (expand_home(&p.to_string_lossy()), Source::Flag),
            (None, Some(p), _) => (
                expand_home(&p.to_string_lossy()),
                Source::Env("BEAKER_STORE".into()),
            ),
            (None, None, Some(s)) => (s.value.clone(), Source::File(s.from.clone())),
            (None, None, None) => {
                let default = dirs::cache_dir()
                    .map(|d| d.join("beaker").join("store"))
                    .ok_or_else(|| anyhow::anyhow!("no store directory: no --store, no BEAKER_STORE, no `store` in a config file and no cache directory for this user; pass --store DIR"))?;
                (default, Source::Default)
            }
        };
        Ok((std::path::absolute(&path).unwrap_or(path), source))
    }

    /// The catalogue paths (none: the bundled one), and where they came from.
    pub fn manifests(&self) -> (Vec<PathBuf>, Source) {
        if !self.manifest_flags.is_empty() {
            return (self.manifest_flags.clone(), Source::Flag);
        }
        for var in ["BEAKER_CATALOGUE", "BEAKER_MANIFEST"] {
            if let Some(list) = std::env::var_os(var).filter(|v| !v.is_empty()) {
                let paths = std::env::split_paths(&list).collect();
                return (paths, Source::Env(var.into()));
            }
        }
        match &self.settings.manifests {
            Some(s) => (s.value.clone(), Source::File(s.from.clone())),
            None => (Vec::new(), Source::Default),
        }
    }

    /// The catalogues names resolve through.
    pub fn catalogue(&self) -> Result<Catalogue> {
        let (paths, _) = self.manifests();
        Ok(Catalogue::load(&paths, None)?)
    }

    /// Pull options: the config files' values under the environment's.
    pub fn pull_options(&self) -> Result<Options> {
        let mut fetch = beaker::fetch::Config::from_env_over(self.settings.fetch_base())
            .map_err(beaker::pull::PullError::Setting)?;
        fetch.offline |= self.offline_flag;
        let lock_wait = self
            .settings
            .lock_timeout
            .as_ref()
            .map_or(Wait::Forever, |s| Wait::For(s.value));
        Ok(Options {
            fetch,
            lock_wait,
            check: false,
        })
    }

    /// Opens the store if it exists (for commands that only look).
    pub fn existing_store(&self) -> Result<Option<Store>> {
        let (root, _) = self.store_root()?;
        match Store::open(&root) {
            Ok(s) => Ok(Some(s)),
            Err(beaker::StoreError::NoStore { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
