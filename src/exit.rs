//! From any beaker error to the exit code scripts rely on (DESIGN §10), in one place for the
//! `beaker` binary and `cargo xtask` alike: 0 ok, 1 operation failed, 2 bad input, 3 not present.

use std::error::Error;

use crate::catalogue::UnknownName;
use crate::error::Category;
use crate::fetch::FetchError;
use crate::lock::LockError;
use crate::manifest::ManifestError;
use crate::name::InvalidName;
use crate::pull::PullError;
use crate::store::StoreError;

/// The category of the first beaker error in `chain` (outermost first, e.g. `anyhow::Error::chain`).
/// Anything beaker does not know is an operation failure.
pub fn category_of<'a>(chain: impl IntoIterator<Item = &'a (dyn Error + 'static)>) -> Category {
    for cause in chain {
        let known = cause
            .downcast_ref::<StoreError>()
            .map(StoreError::category)
            .or_else(|| {
                cause
                    .downcast_ref::<ManifestError>()
                    .map(ManifestError::category)
            })
            .or_else(|| cause.downcast_ref::<LockError>().map(LockError::category))
            .or_else(|| {
                cause
                    .downcast_ref::<crate::gc::Error>()
                    .map(crate::gc::Error::category)
            })
            .or_else(|| {
                cause
                    .downcast_ref::<crate::verify::Error>()
                    .map(crate::verify::Error::category)
            })
            .or_else(|| {
                cause
                    .downcast_ref::<crate::prune::Error>()
                    .map(crate::prune::Error::category)
            })
            .or_else(|| cause.downcast_ref::<PullError>().map(PullError::category))
            .or_else(|| onnx_category(cause))
            .or_else(|| cause.downcast_ref::<FetchError>().map(FetchError::category))
            .or_else(|| {
                (cause.is::<UnknownName>() || cause.is::<InvalidName>())
                    .then_some(Category::BadInput)
            });
        if let Some(category) = known {
            return category;
        }
    }
    Category::Failed
}

/// The categories of the errors of [`crate::onnx`].
fn onnx_category(cause: &(dyn Error + 'static)) -> Option<Category> {
    use crate::onnx::{deep::DeepError, runtime::RuntimeError, CheckError, InspectError};
    #[cfg(feature = "onnx")]
    if let Some(e) = cause.downcast_ref::<crate::onnx::SessionError>() {
        return Some(e.category());
    }
    cause
        .downcast_ref::<CheckError>()
        .map(CheckError::category)
        .or_else(|| {
            cause
                .downcast_ref::<InspectError>()
                .map(InspectError::category)
        })
        .or_else(|| cause.downcast_ref::<DeepError>().map(DeepError::category))
        .or_else(|| {
            cause
                .downcast_ref::<crate::show::ShowError>()
                .map(crate::show::ShowError::category)
        })
        .or_else(|| cause.is::<RuntimeError>().then_some(Category::Failed))
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
    use super::*;

    #[test]
    fn the_first_known_error_in_the_chain_decides() {
        let name_err = crate::name::ModelName::new("Bad").unwrap_err();
        assert_eq!(code(category_of([&name_err as &(dyn Error + 'static)])), 2);
        let not_present = StoreError::NotInStore {
            name: crate::name::ModelName::new("m").unwrap(),
        };
        assert_eq!(
            code(category_of([&not_present as &(dyn Error + 'static)])),
            3
        );
        let io = std::io::Error::other("disk on fire");
        assert_eq!(code(category_of([&io as &(dyn Error + 'static)])), 1);
    }
}
