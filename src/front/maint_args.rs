//! The flags of the maintenance operations, declared once for `beaker store gc | verify` and
//! `cargo xtask gc | verify`: both command lines flatten these [`clap::Args`] structs, so the
//! flags, their defaults, value parsers and help text cannot drift apart. Each struct turns
//! itself into the library's options ([`crate::maint::gc::Options`], [`crate::maint::verify::Options`]).
//!
//! Only what both command lines share lives here: `--store` and `--json` are global flags of
//! `beaker` but per-command flags of xtask, so each keeps its own. Nothing here touches a store.

use std::path::PathBuf;
use std::time::Duration;

use crate::model::name::{InvalidName, ModelName};

/// `gc` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct GcArgs {
    /// Report what would be removed; remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Remove temp files untouched for at least this long (250ms, 30s, 1.5m, 24h, 7d) whose writer is gone
    #[arg(long, value_name = "D", default_value = "24h", value_parser = crate::model::duration::parse)]
    pub tmp_age: Duration,
    /// Also keep every blob this catalogue names: by blake3, or by md5/sha256 through the store's digest index (repeatable)
    #[arg(long, value_name = "MANIFEST")]
    pub keep: Vec<PathBuf>,
    /// Evict least recently used names (never pinned or in-use ones) until the blobs fit in SIZE (20G, 500MiB, 800MB)
    #[arg(long, value_name = "SIZE", value_parser = crate::model::size::parse_budget)]
    pub max_size: Option<u64>,
    /// Evict names unused for longer than D (30d, 12h), except pinned and in-use ones
    #[arg(long, value_name = "D", value_parser = crate::model::duration::parse)]
    pub older_than: Option<Duration>,
    /// A name used within D is in use and never evicted [default: min_age in store.toml, else 1h]
    #[arg(long, value_name = "D", value_parser = crate::model::duration::parse)]
    pub min_age: Option<Duration>,
}

impl GcArgs {
    pub fn options(&self) -> crate::maint::gc::Options {
        crate::maint::gc::Options {
            dry_run: self.dry_run,
            tmp_age: self.tmp_age,
            keep: self.keep.clone(),
            budget: crate::maint::gc::evict::Budget {
                max_size: self.max_size,
                older_than: self.older_than,
                min_age: self.min_age,
                spare: Vec::new(),
            },
        }
    }
}

/// `verify` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Only the blobs of these names [default: every blob in the store]
    pub names: Vec<String>,
    /// Also load every ONNX model in ONNX Runtime and list those that fail
    #[arg(long)]
    pub deep: bool,
}

impl VerifyArgs {
    /// # Errors
    /// [`InvalidName`] for the first name that is not a valid model name (bad input, exit 2).
    pub fn options(&self) -> Result<crate::maint::verify::Options, InvalidName> {
        Ok(crate::maint::verify::Options {
            names: self
                .names
                .iter()
                .map(|n| ModelName::new(n))
                .collect::<Result<_, _>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Gc {
        #[command(flatten)]
        args: GcArgs,
    }

    #[test]
    fn the_tmp_age_default_is_the_library_default() {
        let gc = Gc::try_parse_from(["gc"]).unwrap();
        assert_eq!(gc.args.tmp_age, crate::maint::gc::DEFAULT_TMP_AGE);
        assert_eq!(gc.args.options().tmp_age, crate::maint::gc::DEFAULT_TMP_AGE);
    }

    #[test]
    fn tmp_age_uses_the_one_duration_grammar() {
        let gc = Gc::try_parse_from(["gc", "--tmp-age", "1.5m"]).unwrap();
        assert_eq!(gc.args.tmp_age, Duration::from_secs(90));
        let err = Gc::try_parse_from(["gc", "--tmp-age=-1s"]).unwrap_err();
        assert!(err.to_string().contains("is not a duration"), "{err}");
    }

    #[test]
    fn budget_flags_use_the_size_and_duration_grammars() {
        let gc = Gc::try_parse_from(["gc", "--max-size", "500MiB", "--older-than", "30d"]).unwrap();
        let budget = gc.args.options().budget;
        assert_eq!(budget.max_size, Some(500 << 20));
        assert_eq!(budget.older_than, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(budget.min_age, None, "store.toml decides");
        for bad in [
            &["gc", "--max-size", "0"][..],
            &["gc", "--max-size=-1G"],
            &["gc", "--max-size", "12 parsecs"],
            &["gc", "--older-than=-1d"],
        ] {
            assert!(Gc::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
