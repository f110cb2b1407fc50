//! The flags of the maintenance operations, declared once for `beaker store gc | verify` and
//! `cargo xtask gc | verify`: both command lines flatten these [`clap::Args`] structs, so the
//! flags, their defaults, value parsers and help text cannot drift apart. Each struct turns
//! itself into the library's options ([`crate::gc::Options`], [`crate::verify::Options`]).
//!
//! Only what both command lines share lives here: `--store` and `--json` are global flags of
//! `beaker` but per-command flags of xtask, so each keeps its own. Nothing here touches a store.

use std::path::PathBuf;
use std::time::Duration;

use crate::name::{InvalidName, ModelName};

/// `gc` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct GcArgs {
    /// Report what would be removed; remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Remove temp files untouched for at least this long (250ms, 30s, 1.5m, 24h, 7d) whose writer is gone
    #[arg(long, value_name = "D", default_value = "24h", value_parser = crate::duration::parse)]
    pub tmp_age: Duration,
    /// Also keep every blob this catalogue names: by blake3, or by md5/sha256 through the store's digest index (repeatable)
    #[arg(long, value_name = "MANIFEST")]
    pub keep: Vec<PathBuf>,
}

impl GcArgs {
    pub fn options(&self) -> crate::gc::Options {
        crate::gc::Options {
            dry_run: self.dry_run,
            tmp_age: self.tmp_age,
            keep: self.keep.clone(),
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
    pub fn options(&self) -> Result<crate::verify::Options, InvalidName> {
        Ok(crate::verify::Options {
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
        assert_eq!(gc.args.tmp_age, crate::gc::DEFAULT_TMP_AGE);
        assert_eq!(gc.args.options().tmp_age, crate::gc::DEFAULT_TMP_AGE);
    }

    #[test]
    fn tmp_age_uses_the_one_duration_grammar() {
        let gc = Gc::try_parse_from(["gc", "--tmp-age", "1.5m"]).unwrap();
        assert_eq!(gc.args.tmp_age, Duration::from_secs(90));
        let err = Gc::try_parse_from(["gc", "--tmp-age=-1s"]).unwrap_err();
        assert!(err.to_string().contains("is not a duration"), "{err}");
    }
}
