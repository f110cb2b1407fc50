//! Eviction (docs/design.md#eviction): which names a budget removes, least recently used first. gc
//! (`--max-size`, `--older-than`) runs it under `gc.lock` exclusive and then sweeps exactly as
//! `rm` does; after a publish into a store whose `store.toml` sets `max_size`, [`after_publish`]
//! runs the same thing if, and only if, `gc.lock` is free at that instant.
//!
//! Keeps **I4**: names are chosen and removed while `gc.lock` is held exclusively (publishers
//! record names under it shared, so the manifest cannot change meanwhile), and the blobs that go
//! are exactly those no remaining name (or `--keep` catalogue) references, by the one blob sweep.
//!
//! Never evicted:
//! - a pinned name (`pins/`, `beaker store pin`);
//! - a name *in use*: its path may have been handed out within `min_age` (`crate::store::uses::in_use`:
//!   a use record is rewritten at most once per `uses::RECORD_EVERY`, so a record dated `t`
//!   covers hand-outs until `t + RECORD_EVERY`, and the name is in use until `min_age` after
//!   that; measured in either direction, so a record a skewed clock dated a little ahead is in
//!   use and one far ahead is not);
//! - the names the caller spares (the model a pull just published).
//!
//! `--max-size` counts the bytes of the blobs that would remain: every blob a remaining name or
//! a `--keep` catalogue references (unreferenced blobs go in the same sweep). Evicting a name
//! frees only its blobs that no other name shares. When every evictable name is gone and the
//! store is still over budget, the outcome says so (`over_budget`) and names what was spared.
//!
//! **Limit**: a use record is written without a lock, so a `path` that runs *while* gc removes
//! the name can still hand out a path that is removed a moment later; the records of the chosen
//! names are read again just before the manifest is edited, which makes that window
//! milliseconds, not the whole planning.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use crate::model::digest::Blake3;
use crate::model::entry::Record;
use crate::model::manifest::Manifest;
use crate::model::name::ModelName;
use crate::store::{files_in, Store, StoreError};

pub use crate::store::DEFAULT_MIN_AGE;

/// What to evict.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    /// Evict least recently used names until the blobs that remain fit in this many bytes.
    pub max_size: Option<u64>,
    /// Evict names unused for longer than this.
    pub older_than: Option<Duration>,
    /// Names used more recently than this are in use; `None`: `store.toml`'s `min_age`, else
    /// [`DEFAULT_MIN_AGE`].
    pub min_age: Option<Duration>,
    /// Never evict these (the model just pulled).
    pub spare: Vec<ModelName>,
}

impl Budget {
    /// Whether this evicts anything at all (else gc is plain mark and sweep).
    pub fn evicts(&self) -> bool {
        self.max_size.is_some() || self.older_than.is_some()
    }

    /// The `min_age` in force for `store`.
    pub fn min_age(&self, store: &Store) -> Duration {
        self.min_age.unwrap_or_else(|| store.config().min_age())
    }
}

/// One evicted name (JSON: `{name, blake3, size, last_used}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evicted {
    pub name: ModelName,
    /// The main file's blob.
    pub blake3: Option<Blake3>,
    /// Bytes of all the model's files (what it occupied, shared blobs included).
    pub size: u64,
    /// RFC 3339 UTC, or `null` when the store never knew.
    pub last_used: Option<String>,
}

/// What a budget decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// In eviction order (least recently used first), with their last use in unix seconds.
    pub evict: Vec<(Evicted, Option<u64>)>,
    /// Bytes of the blobs that remain referenced after the eviction.
    pub remaining_bytes: u64,
    /// `max_size` could not be met by this many bytes (0: met, or no `max_size`).
    pub over_budget: u64,
    /// Names spared because they are in use (used within `min_age`) or the caller spared them.
    pub in_use: Vec<ModelName>,
    /// Names spared because they are pinned.
    pub pinned: Vec<ModelName>,
}

/// Decides which names of `manifest` go. `keep`: blobs that stay whatever happens (`--keep`).
/// Reads use records, pins and the sizes in `blobs/`; changes nothing.
///
/// # Errors
/// An I/O error naming `blobs/` or `pins/` when they cannot be listed.
pub fn plan(
    store: &Store,
    manifest: &Manifest<Record>,
    keep: &BTreeSet<Blake3>,
    budget: &Budget,
) -> Result<Plan, StoreError> {
    let now = crate::store::uses::now_secs();
    let min_age = budget.min_age(store);
    let pinned = crate::store::uses::pinned(store)?;
    let used = crate::store::uses::last_used_all(store, manifest);
    let sizes: BTreeMap<Blake3, u64> = files_in(&store.layout().blobs())?
        .into_iter()
        .filter_map(|(n, size)| Blake3::from_hex(&n).ok().map(|id| (id, size)))
        .collect();
    // How many remaining names reference each present blob (`keep` counts as one more).
    let mut refs: BTreeMap<Blake3, usize> = BTreeMap::new();
    for record in manifest.models.values() {
        for id in record.blobs() {
            *refs.entry(id).or_default() += 1;
        }
    }
    for id in keep {
        *refs.entry(*id).or_default() += 1;
    }
    let mut remaining: u64 = refs.keys().filter_map(|id| sizes.get(id)).sum();

    let mut out = Plan::default();
    let mut candidates: Vec<(Option<u64>, &ModelName)> = Vec::new();
    for name in manifest.models.keys() {
        let last = used.get(name).copied().flatten();
        if pinned.contains(name) {
            out.pinned.push(name.clone());
        } else if budget.spare.contains(name)
            || last.is_some_and(|t| crate::store::uses::in_use(t, now, min_age))
        {
            out.in_use.push(name.clone());
        } else {
            candidates.push((last, name));
        }
    }
    // Least recently used first; a name with no known use is the oldest; ties by name.
    candidates.sort();
    let mut evict = |name: &ModelName, last: Option<u64>, remaining: &mut u64| {
        let model = &manifest.models[name].model;
        for id in manifest.models[name].blobs() {
            if let Some(n) = refs.get_mut(&id) {
                *n -= 1;
                if *n == 0 {
                    *remaining -= sizes.get(&id).copied().unwrap_or(0);
                }
            }
        }
        out.evict.push((
            Evicted {
                name: name.clone(),
                blake3: Some(model.main().blob.blake3),
                size: model.bytes(),
                last_used: last.map(crate::sys::who::rfc3339),
            },
            last,
        ));
    };
    let mut rest = Vec::new();
    for (last, name) in candidates {
        let old = budget
            .older_than
            .is_some_and(|d| last.is_none_or(|t| now.abs_diff(t) >= d.as_secs()));
        if old {
            evict(name, last, &mut remaining);
        } else {
            rest.push((last, name));
        }
    }
    if let Some(max) = budget.max_size {
        for (last, name) in rest {
            if remaining <= max {
                break;
            }
            evict(name, last, &mut remaining);
        }
        out.over_budget = remaining.saturating_sub(max);
    }
    out.remaining_bytes = remaining;
    Ok(out)
}

/// Removes the planned names from the store manifest (under `manifest.lock`; the caller holds
/// `gc.lock` exclusively), except those whose use record changed since the plan was made and
/// says they are in use (`crate::store::uses::in_use`). Returns the names removed, and drops their use records.
///
/// # Errors
/// Errors reading or writing the store manifest.
pub fn apply(
    store: &Store,
    _gc: &crate::store::GcExclusive,
    plan: &Plan,
    min_age: Duration,
) -> Result<Vec<ModelName>, StoreError> {
    let now = crate::store::uses::now_secs();
    let removed = store.edit_manifest(|m| {
        let mut removed = Vec::new();
        for (e, planned_last) in &plan.evict {
            let Some(entry) = m.models.get(&e.name) else {
                continue;
            };
            let last = crate::store::uses::last_used(store, &e.name, entry.added.as_deref());
            let used_since = last != *planned_last
                && last.is_some_and(|t| crate::store::uses::in_use(t, now, min_age));
            if !used_since {
                m.models.remove(&e.name);
                removed.push(e.name.clone());
            }
        }
        Ok(removed)
    })?;
    crate::store::uses::forget(store, &removed);
    Ok(removed)
}

/// After a publish of `just` into a store whose `store.toml` sets `max_size`: evicts down to it,
/// sparing `just` and every name in use, then sweeps what the evicted names leave unreferenced.
/// Runs only if `gc.lock` is free right now (it never waits, so a pull never waits for a gc) and
/// never in a store without locks (nothing would keep it from racing a publish). Returns what it
/// did, or `None` when it did not run; its errors are returned for the caller to report, never
/// to fail the publish, which is complete.
///
/// # Errors
/// As [`crate::maint::gc::collect`] (I/O, an unreadable manifest).
pub fn after_publish(
    store: &Store,
    just: &ModelName,
) -> Result<Option<crate::maint::gc::Outcome>, crate::maint::gc::Error> {
    let Some(max_size) = store.config().max_size else {
        return Ok(None);
    };
    if store.config().locking == crate::store::Locking::None {
        return Ok(None);
    }
    let Some(gc) = store.try_gc_exclusive()? else {
        return Ok(None);
    };
    let opts = crate::maint::gc::Options {
        budget: Budget {
            max_size: Some(max_size),
            spare: vec![just.clone()],
            ..Budget::default()
        },
        ..crate::maint::gc::Options::default()
    };
    crate::maint::gc::collect_locked(store, &gc, &opts, &[], false).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::entry::{Expected, Model, Pin, Single};
    use crate::store::InitOptions;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// One name: its blob's seed (names with one seed share the blob), size and last use.
    type Named<'a> = (&'a str, &'a [u8], u64, Option<u64>);

    /// A store holding names whose blobs are planted directly (sizes matter, bytes do not).
    fn store_with(models: &[Named<'_>]) -> (tempfile::TempDir, Store, Manifest<Record>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(&dir.path().join("s"), InitOptions::default()).unwrap();
        let mut manifest = Manifest::default();
        for (name, seed, size, used) in models {
            let name = ModelName::new(name).unwrap();
            let id = Blake3::of(seed);
            let path = store.layout().blob(&id);
            if crate::sys::fsx::stat(&path).unwrap().is_none() {
                let f = crate::sys::fsx::create_exclusive(&path, 0o444).unwrap();
                crate::sys::fsx::truncate(&f, *size, &path).unwrap();
            }
            let single = Single {
                blob: Expected::Pinned(Pin {
                    blake3: id,
                    size: *size,
                }),
                ..Single::default()
            };
            let model = Model::single(&name, single).into_pinned().unwrap();
            manifest.models.insert(name.clone(), Record::new(model));
            if let Some(t) = used {
                let when = UNIX_EPOCH + Duration::from_secs(*t);
                crate::store::uses::set_last_used(&store, &name, when).unwrap();
            }
        }
        let written = manifest.clone();
        store
            .edit_manifest(|m| {
                *m = written;
                Ok(())
            })
            .unwrap();
        (dir, store, manifest)
    }

    fn names(p: &Plan) -> Vec<&str> {
        p.evict.iter().map(|(e, _)| e.name.as_str()).collect()
    }

    #[test]
    fn max_size_evicts_least_recently_used_first_until_it_fits() {
        let day = 86_400;
        let (_d, store, manifest) = store_with(&[
            ("a", b"a", 100, Some(10 * day)),
            ("b", b"b", 100, Some(30 * day)),
            ("c", b"c", 100, Some(20 * day)),
        ]);
        let budget = Budget {
            max_size: Some(150),
            ..Budget::default()
        };
        let p = plan(&store, &manifest, &BTreeSet::new(), &budget).unwrap();
        assert_eq!(names(&p), ["a", "c"]);
        assert_eq!((p.remaining_bytes, p.over_budget), (100, 0));
    }

    #[test]
    fn a_shared_blob_frees_nothing_until_its_last_name_goes() {
        let (_d, store, manifest) = store_with(&[
            ("a", b"shared", 100, Some(1)),
            ("b", b"shared", 100, Some(2)),
            ("c", b"c", 100, Some(3)),
        ]);
        let budget = Budget {
            max_size: Some(100),
            ..Budget::default()
        };
        let p = plan(&store, &manifest, &BTreeSet::new(), &budget).unwrap();
        assert_eq!(names(&p), ["a", "b"]);
        assert_eq!(p.remaining_bytes, 100);
    }

    #[test]
    fn pinned_and_in_use_names_are_spared_and_the_shortfall_reported() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (_d, store, manifest) = store_with(&[
            ("old", b"old", 100, Some(1)),
            ("pinned", b"p", 100, Some(2)),
            ("busy", b"busy", 100, Some(now - 60)),
        ]);
        crate::store::uses::pin(&store, &[ModelName::new("pinned").unwrap()]).unwrap();
        let budget = Budget {
            max_size: Some(1),
            ..Budget::default()
        };
        let p = plan(&store, &manifest, &BTreeSet::new(), &budget).unwrap();
        assert_eq!(names(&p), ["old"]);
        assert_eq!(p.over_budget, 199);
        assert_eq!(p.pinned, [ModelName::new("pinned").unwrap()]);
        assert_eq!(p.in_use, [ModelName::new("busy").unwrap()]);
    }

    #[test]
    fn older_than_evicts_only_names_unused_for_longer() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let day = 86_400;
        let (_d, store, manifest) = store_with(&[
            ("stale", b"s", 10, Some(now - 40 * day)),
            ("fresh", b"f", 10, Some(now - 3 * day)),
        ]);
        let budget = Budget {
            older_than: Some(Duration::from_secs(30 * day)),
            ..Budget::default()
        };
        let p = plan(&store, &manifest, &BTreeSet::new(), &budget).unwrap();
        assert_eq!(names(&p), ["stale"]);
    }
}
