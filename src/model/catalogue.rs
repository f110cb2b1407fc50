//! Catalogues: the set of manifests a name is resolved through (docs/design.md#manifest-format).
//!
//! Sources, in order of precedence: `--catalogue FILE` (repeatable), else `BEAKER_CATALOGUE` (a
//! `:`-separated path list), else the bundled `manifests/models.toml` compiled into the binary.
//! The same name in two catalogues is fine when both pin the same content (their URLs are merged,
//! first catalogue first); different content is an error, never a guess.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::model::entry::Model;
use crate::model::manifest::{Manifest, ManifestError};
use crate::model::name::ModelName;

/// The catalogue compiled into beaker: the real models of the beaker bird tools.
pub const BUNDLED: &str = include_str!("../../manifests/models.toml");
/// How the bundled catalogue is named in messages.
pub const BUNDLED_PATH: &str = "<bundled>/manifests/models.toml";

/// A model and the manifest file it came from (relative URLs are relative to that file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub name: ModelName,
    pub model: Model,
    pub manifest: PathBuf,
}

impl Resolved {
    /// The directory relative URLs are resolved against (`None` for the bundled catalogue).
    pub fn base_dir(&self) -> Option<&Path> {
        if self.manifest.as_os_str() == BUNDLED_PATH {
            None
        } else {
            self.manifest.parent()
        }
    }
}

#[derive(Debug, Default)]
pub struct Catalogue {
    models: BTreeMap<ModelName, Resolved>,
}

/// A name none of the catalogues define.
#[derive(Debug, thiserror::Error)]
#[error("unknown model {name:?} (catalogues: {}){}", catalogues.join(", "), suggest(close))]
pub struct UnknownName {
    pub name: String,
    pub close: Vec<String>,
    pub catalogues: Vec<String>,
}

fn suggest(close: &[String]) -> String {
    if close.is_empty() {
        "; `beaker catalogue ls` lists what the catalogues offer".into()
    } else {
        format!(
            "; did you mean {}? (`beaker catalogue ls` lists them all)",
            close.join(", ")
        )
    }
}

impl Catalogue {
    /// Loads the catalogues named by `--catalogue` flags, else `BEAKER_CATALOGUE`, else the bundled one.
    pub fn load(flags: &[PathBuf], env: Option<&std::ffi::OsStr>) -> Result<Self, ManifestError> {
        let paths: Vec<PathBuf> = if !flags.is_empty() {
            flags.to_vec()
        } else if let Some(list) = env.filter(|v| !v.is_empty()) {
            std::env::split_paths(list).collect()
        } else {
            return Self::bundled();
        };
        let mut loaded = Vec::with_capacity(paths.len());
        for p in paths {
            let m = Manifest::load(&p)?;
            loaded.push((p, m));
        }
        Self::from_manifests(loaded)
    }

    pub fn bundled() -> Result<Self, ManifestError> {
        let m = Manifest::parse(BUNDLED, Path::new(BUNDLED_PATH))?;
        Self::from_manifests(vec![(PathBuf::from(BUNDLED_PATH), m)])
    }

    /// Merges manifests in order; see the module docs for the conflict rule.
    pub fn from_manifests(manifests: Vec<(PathBuf, Manifest)>) -> Result<Self, ManifestError> {
        let mut models: BTreeMap<ModelName, Resolved> = BTreeMap::new();
        for (path, manifest) in manifests {
            for (name, model) in manifest.models {
                match models.get_mut(&name) {
                    None => {
                        models.insert(
                            name.clone(),
                            Resolved {
                                name,
                                model,
                                manifest: path.clone(),
                            },
                        );
                    }
                    Some(first) if first.model.same_content(&model) => {
                        // Same bytes: later catalogues add mirrors (absolute URLs only: a
                        // relative one is relative to another directory).
                        first.model.add_mirrors(&model);
                    }
                    Some(first) => {
                        return Err(ManifestError::Conflict {
                            name,
                            first: first.manifest.clone(),
                            second: path.clone(),
                        })
                    }
                }
            }
        }
        Ok(Self { models })
    }

    pub fn get(&self, name: &str) -> Result<&Resolved, UnknownName> {
        ModelName::new(name)
            .ok()
            .and_then(|n| self.models.get(&n))
            .ok_or_else(|| UnknownName {
                name: name.to_owned(),
                close: close_matches(name, self.models.keys().map(ModelName::as_str)),
                catalogues: self.sources(),
            })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Resolved> {
        self.models.values()
    }

    fn sources(&self) -> Vec<String> {
        let mut s: Vec<String> = self
            .models
            .values()
            .map(|r| r.manifest.display().to_string())
            .collect();
        s.dedup();
        s.sort();
        s.dedup();
        s
    }
}

/// Up to three known names within a small edit distance of `name`, closest first.
pub fn close_matches<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut scored: Vec<(f64, &str)> = known
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, k)| *score > 0.8 || k.contains(name))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored
        .into_iter()
        .take(3)
        .map(|(_, k)| k.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> Manifest {
        Manifest::parse(text, Path::new("t.toml")).unwrap()
    }

    const H1: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
    const H2: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn duplicate_name_with_different_content_is_an_error() {
        let a = manifest(&format!(
            "version = 1\n[models.m]\nblake3 = \"{H1}\"\nsize = 1\n"
        ));
        let b = manifest(&format!(
            "version = 1\n[models.m]\nblake3 = \"{H2}\"\nsize = 1\n"
        ));
        let err = Catalogue::from_manifests(vec![("a.toml".into(), a), ("b.toml".into(), b)])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "model m is defined differently in a.toml and b.toml; remove one or give it another name"
        );
    }

    #[test]
    fn duplicate_name_with_same_content_merges_mirrors() {
        let a = manifest(&format!(
            "version = 1\n[models.m]\nblake3 = \"{H1}\"\nsize = 1\nurls = [\"a/m\"]\n"
        ));
        let b = manifest(&format!(
            "version = 1\n[models.m]\nblake3 = \"{H1}\"\nsize = 1\nurls = [\"https://x/m\"]\n"
        ));
        let c =
            Catalogue::from_manifests(vec![("a.toml".into(), a), ("b.toml".into(), b)]).unwrap();
        assert_eq!(
            c.get("m").unwrap().model.main().urls,
            ["a/m", "https://x/m"]
        );
    }

    #[test]
    fn unknown_name_suggests_close_ones() {
        let c = Catalogue::bundled().unwrap();
        let err = c.get("bird-detectr").unwrap_err();
        assert_eq!(err.close.first().map(String::as_str), Some("bird-detector"));
        assert!(err.to_string().contains("did you mean bird-detector"));
    }

    #[test]
    fn bundled_catalogue_parses_and_pins_upstream_md5() {
        let c = Catalogue::bundled().unwrap();
        for name in ["bird-detector", "bird-cutout", "bird-quality"] {
            let f = c.get(name).unwrap().model.main();
            assert!(f.upstream.md5.is_some() && f.blob.pin().is_none(), "{name}");
            assert!(
                f.urls[0].starts_with("https://github.com/ericphanson/beaker/releases/download/")
            );
        }
    }
}
