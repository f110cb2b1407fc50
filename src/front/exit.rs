//! From any beaker error to the exit code scripts rely on (docs/design.md#cli), in one place for the
//! `beaker` binary and `cargo xtask` alike: 0 ok, 1 operation failed, 2 bad input, 3 not present.
//!
//! Every error type of the library is listed once in `categorized!` below, with where its
//! category comes from (so a listed type cannot lack one), and the test
//! `every_error_type_of_the_library_is_categorized` reads the sources and fails when a new
//! `thiserror` type is not listed (so a new type cannot silently exit 1).

use std::error::Error;

use crate::sys::error::{Category, IoError};

/// An error that knows which exit code it deserves.
pub trait Categorized: Error + 'static {
    fn category(&self) -> Category;
}

/// Lists every library error type once: those with their own `category()` method, then those
/// that always mean bad input, then those that always mean failure. Generates the
/// [`Categorized`] impls, the lookup [`known`], and `KNOWN` (the names, read by the test).
macro_rules! categorized {
    (
        by_method: [$($m:path),* $(,)?],
        bad_input: [$($b:path),* $(,)?],
        failed: [$($f:path),* $(,)?] $(,)?
    ) => {
        $(impl Categorized for $m {
            fn category(&self) -> Category {
                <$m>::category(self)
            }
        })*
        $(impl Categorized for $b {
            fn category(&self) -> Category {
                Category::BadInput
            }
        })*
        $(impl Categorized for $f {
            fn category(&self) -> Category {
                Category::Failed
            }
        })*

        #[cfg(test)]
        const KNOWN: &[&str] = &[$(stringify!($m),)* $(stringify!($b),)* $(stringify!($f),)*];

        /// The category of `cause` if it is one of the library's error types.
        fn known(cause: &(dyn Error + 'static)) -> Option<Category> {
            $(if let Some(e) = cause.downcast_ref::<$m>() {
                return Some(Categorized::category(e));
            })*
            $(if cause.is::<$b>() {
                return Some(Category::BadInput);
            })*
            $(if cause.is::<$f>() {
                return Some(Category::Failed);
            })*
            None
        }
    };
}

categorized!(
    by_method: [
        crate::store::StoreError,
        crate::model::manifest::ManifestError,
        crate::sys::lock::LockError,
        crate::maint::gc::Error,
        crate::maint::verify::Error,
        crate::maint::prune::Error,
        crate::ops::pull::PullError,
        crate::ops::fetch::FetchError,
        crate::store::publish::Error,
        crate::ops::add::Error,
        crate::ops::export::Error,
        crate::front::settings::SettingsError,
        crate::onnx::CheckError,
        crate::onnx::InspectError,
        crate::maint::verify::deep::DeepError,
        crate::ops::show::ShowError,
        crate::ops::fetch::registry::OciError,
    ],
    bad_input: [
        crate::model::catalogue::UnknownName,
        crate::model::name::InvalidName,
        crate::model::digest::ParseDigestError,
        crate::model::duration::InvalidDuration,
        crate::model::size::InvalidSize,
        crate::model::file_path::InvalidFilePath,
        crate::model::entry::Invalid,
        crate::model::url::UrlProblem,
        crate::model::reference::BadReference,
    ],
    failed: [
        IoError,
        crate::sys::fsx::mapped::Changed,
        crate::onnx::runtime::RuntimeError
    ],
);

/// Error types that exist only with a cargo feature (the test knows them by this list).
#[cfg(test)]
const FEATURE_GATED: &[&str] = &["crate::ops::session::SessionError"];

/// Error types of private modules that never leave them: each is turned into a listed type
/// before it crosses the module's boundary (`onnx::wire::WireError` → `onnx::InspectError`).
#[cfg(test)]
const INTERNAL: &[&str] = &["crate::onnx::wire::WireError"];

#[cfg(feature = "onnx")]
impl Categorized for crate::ops::session::SessionError {
    fn category(&self) -> Category {
        crate::ops::session::SessionError::category(self)
    }
}

/// [`known`], and the error types that exist only with a cargo feature.
fn known_or_gated(cause: &(dyn Error + 'static)) -> Option<Category> {
    #[cfg(feature = "onnx")]
    if let Some(e) = cause.downcast_ref::<crate::ops::session::SessionError>() {
        return Some(Categorized::category(e));
    }
    known(cause)
}

/// The category of the first beaker error in `chain` (outermost first, e.g. `anyhow::Error::chain`).
/// Anything beaker does not know is an operation failure.
pub fn category_of<'a>(chain: impl IntoIterator<Item = &'a (dyn Error + 'static)>) -> Category {
    chain
        .into_iter()
        .find_map(known_or_gated)
        .unwrap_or(Category::Failed)
}

/// The process exit code of a category.
pub fn code(category: Category) -> u8 {
    match category {
        Category::Failed => 1,
        Category::BadInput => 2,
        Category::NotPresent => 3,
    }
}

#[cfg(test)]
mod tests {
    // The test reads the crate's own sources.
    #![allow(clippy::disallowed_methods)]
    use super::*;

    #[test]
    fn the_first_known_error_in_the_chain_decides() {
        let name_err = crate::model::name::ModelName::new("Bad").unwrap_err();
        assert_eq!(code(category_of([&name_err as &(dyn Error + 'static)])), 2);
        let not_present = crate::store::StoreError::NotInStore {
            name: crate::model::name::ModelName::new("m").unwrap(),
            close: Vec::new(),
        };
        assert_eq!(
            code(category_of([&not_present as &(dyn Error + 'static)])),
            3
        );
        let io = std::io::Error::other("disk on fire");
        assert_eq!(code(category_of([&io as &(dyn Error + 'static)])), 1);
        let bad_source = crate::ops::add::Error::BadSource {
            path: "/x".into(),
            reason: "r".into(),
        };
        assert_eq!(
            code(category_of([&bad_source as &(dyn Error + 'static)])),
            2
        );
    }

    /// Reads `src/` for `#[derive(…thiserror::Error…)]` types and checks each is in [`KNOWN`]
    /// (a type named `Error` by its module path, others by name).
    #[test]
    fn every_error_type_of_the_library_is_categorized() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut missing = Vec::new();
        for entry in walkdir::WalkDir::new(&src) {
            let entry = entry.unwrap();
            if entry.path().extension().is_none_or(|e| e != "rs") {
                continue;
            }
            // The binary's own modules (src/cli/, src/main.rs) are not the library's errors.
            let rel = entry.path().strip_prefix(&src).unwrap();
            if rel.starts_with("cli") || rel == std::path::Path::new("main.rs") {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let rel = entry.path().strip_prefix(&src).unwrap();
            let module = module_path(rel);
            let mut lines = text.lines();
            while let Some(line) = lines.next() {
                if !(line.trim_start().starts_with("#[derive(")
                    && line.contains("thiserror::Error"))
                {
                    continue;
                }
                let Some(decl) = lines.find(|l| l.contains("enum ") || l.contains("struct "))
                else {
                    continue;
                };
                let name = decl
                    .split_whitespace()
                    .skip_while(|w| *w != "enum" && *w != "struct")
                    .nth(1)
                    .unwrap()
                    .trim_end_matches(['{', '<', ';', '(']);
                let all = || KNOWN.iter().chain(FEATURE_GATED).chain(INTERNAL);
                let listed = if name == "Error" {
                    all().any(|k| *k == format!("{module}::Error"))
                } else {
                    all().any(|k| k.rsplit("::").next() == Some(name))
                };
                if !listed {
                    missing.push(format!("{name} in src/{}", rel.display()));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "error types with no exit code (add them to categorized! in src/exit.rs): {missing:?}"
        );
    }

    /// `add.rs` → `crate::ops::add`, `publish/mod.rs` → `crate::store::publish`.
    fn module_path(rel: &std::path::Path) -> String {
        let mut parts: Vec<String> = rel
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
            parts.pop();
        }
        std::iter::once("crate".to_owned())
            .chain(parts)
            .collect::<Vec<_>>()
            .join("::")
    }
}
