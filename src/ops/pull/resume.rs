//! Finding a partial download to continue (docs/design.md#publish step 3, "Resume").
//!
//! Partials of one download share a stem (`tmp/<key>.<pid>.<nonce>.part`, see `key`). The one with
//! the most bytes is tried first; claiming itself — flock, atomic rename, re-hash — is
//! [`TempBlob::take_over`], part of the publish protocol, so a claimed partial's bytes are hashed
//! by the process that publishes them (I1). Partials that are not claimed stay for gc.

use crate::model::entry::Expect;
use crate::store::publish::TempBlob;
use crate::store::{Locking, Store, StoreError};

/// Claims the most advanced resumable partial for `stem`, if any.
pub fn claim(store: &Store, stem: &str, entry: &Expect) -> Result<Option<TempBlob>, StoreError> {
    if store.config().locking == Locking::None {
        return Ok(None); // a live writer cannot be told from a dead one without locks
    }
    let dir = store.layout().tmp();
    let Ok(Some(listing)) = crate::sys::fsx::Dir::open(&dir) else {
        return Ok(None);
    };
    // `<stem>@<host>.…` (temp files name their writer's host), or `<stem>.…` (older names).
    let (prefix, named) = (format!("{stem}."), format!("{stem}@"));
    let mut partials: Vec<(u64, crate::sys::fsx::Rooted)> = listing
        .names()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| {
            let n = n.to_string_lossy();
            (n.starts_with(&prefix) || n.starts_with(&named)) && n.ends_with(".part")
        })
        .filter_map(|n| {
            let meta = listing.stat(&n).ok()??;
            meta.is_file().then(|| (meta.len(), dir.join(&n)))
        })
        .collect();
    partials.sort_by_key(|p| std::cmp::Reverse(p.0));
    for (_, path) in partials {
        if let Some(temp) = TempBlob::take_over(store, &path, stem, entry)? {
            return Ok(Some(temp));
        }
    }
    Ok(None)
}
