//! Use records and pins (docs/design.md#eviction): when a path to each name was last handed out, and which
//! names must never be evicted. `crate::maint::gc::evict` reads both; nothing here deletes a blob.
//!
//! **Use records** are empty files `uses/<key>` (see [`crate::store::Layout::use_record`]) whose *mtime* is the
//! last use. A blob cannot carry it: it is 0444 and owned by whoever published it, so in a group
//! store nobody else may change its times. A use record is created with the store's file mode
//! (0664 in a group store, in the setgid `uses/`, so in the store's group), and setting a file's
//! times to *now* (`utimensat` with `UTIME_NOW`) needs only write access, so every member of the
//! group can record a use of a model another member pulled.
//!
//! Recording is relatime-like and never in the way of a read:
//! - [`touch`] (a path handed out: `store path`, the pull fast path, the library's `locate`)
//!   costs one `lstat`, and writes (one `utimensat`, or one exclusive create) only when the
//!   record is missing or at least [`RECORD_EVERY`] (a minute) away from now, so at most once
//!   per name per minute; it takes no lock and ignores every failure (a read-only store, a full
//!   disk, a store this user may only read): reading a model never fails because of it.
//! - [`record_now`] (a name recorded by `add`/`pull`): always sets now, so a name never used since
//!   it was added counts as used then. The manifest's `added` stands in for a name that has no
//!   record (recorded before use records existed, or by a user who could not write `uses/`).
//!
//! **What a record proves, and "in use"** ([`in_use`]). Because a hit within [`RECORD_EVERY`] of
//! the record writes nothing, a record dated `t` says only that the name was last handed out
//! somewhere in `[t, t + RECORD_EVERY)`. So eviction counts a name as in use while
//! `now - t < min_age + RECORD_EVERY` (any non-zero `min_age`): whatever `min_age` a gc is given
//! (`--min-age`, `store.toml`, the default), a model handed out less than `min_age` ago is never
//! evicted. The interval cannot instead follow `min_age`: the writer (`store path`) does not
//! know which `--min-age` a later gc will use. The interval is a fixed minute because it is the
//! price both ways: a cache hit writes at most once a minute per name (one `utimensat`: P2 stays
//! an `lstat`), and a name stays in use at most a minute longer than `min_age` asks. A `min_age`
//! of zero protects nothing, as it says. (A beaker from before this rule wrote at most once an
//! hour; its uses of a shared store are only known to the hour.)
//!
//! **Pins** are empty files `pins/<key>`: present means pinned. [`pin`] refuses a name the store
//! does not hold (exit 3); [`unpin`] removes the file. `rm` drops both records of the names it
//! removes ([`forget`]); gc drops the records of names the manifest no longer holds ([`sweep`]),
//! which also tidies a record a racing `path` re-created after an `rm`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::model::entry::Record;
use crate::model::manifest::Manifest;
use crate::model::name::ModelName;
use crate::store::{files_in, name_of_record, names_in, Store, StoreError};
use crate::sys::error::IoError;
use crate::sys::fsx;

/// A use record is rewritten at most this often: a cache hit normally costs only an `lstat`.
/// Eviction adds it to `min_age` ([`in_use`]), so it bounds how much longer than asked a name
/// stays in use.
pub const RECORD_EVERY: Duration = Duration::from_secs(60);

/// Whether a name last recorded as used at `last` (unix seconds: its use record, else `added`)
/// may have been handed out less than `min_age` before `now`, and so must not be evicted: a use
/// after `last` writes nothing for [`RECORD_EVERY`], so the last hand-out may be that much later
/// (see the module doc). Measured in either direction: a record a skewed clock dated a little
/// ahead is in use, one far ahead is not (a broken clock cannot make a name unevictable). A zero
/// `min_age` protects nothing.
pub fn in_use(last: u64, now: u64, min_age: Duration) -> bool {
    if min_age.is_zero() {
        return false;
    }
    // Whole seconds, rounded up: times are compared in seconds and `500ms` must still protect.
    let min_age = min_age.as_secs() + u64::from(min_age.subsec_nanos() > 0);
    now.abs_diff(last) < min_age.saturating_add(RECORD_EVERY.as_secs())
}

/// Now, in seconds since the epoch (0 for a clock before 1970).
pub fn now_secs() -> u64 {
    secs_of(SystemTime::now())
}

fn secs_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Records that a path to `name` was handed out, unless the record already says so within
/// [`RECORD_EVERY`] (either direction: a record dated far in the future by a skewed clock is
/// rewritten too). Takes no lock, never waits, and ignores every failure.
pub fn touch(store: &Store, name: &ModelName) {
    let path = store.layout().use_record(name);
    match fsx::stat(&path) {
        Ok(Some(meta)) if meta.is_file() => {
            let recent = now_secs().abs_diff(secs_of(meta.modified())) < RECORD_EVERY.as_secs();
            if !recent {
                let _ = fsx::set_mtime(&path, None);
            }
        }
        // A symlink or anything else planted there is not ours: leave it (`info` reports it).
        Ok(Some(_)) => {}
        Ok(None) => {
            let _ = create_or_set(store, name, None);
        }
        Err(_) => {}
    }
}

/// Records a use of `name` now, whatever the record says (a name just added or pulled). Ignores
/// every failure, like [`touch`].
pub fn record_now(store: &Store, name: &ModelName) {
    let _ = create_or_set(store, name, None);
}

/// Sets `name`'s last use to `when` (for tests and administrators: setting a time other than now
/// needs the record's owner or root).
///
/// # Errors
/// [`StoreError::NotWritable`] (or an I/O error) naming the record that could not be written.
pub fn set_last_used(store: &Store, name: &ModelName, when: SystemTime) -> Result<(), StoreError> {
    create_or_set(store, name, Some(when)).map_err(|e| StoreError::writing(store.root(), e))
}

/// Creates the record (its mtime is then now) or sets the time of the one there; `to`: as
/// [`fsx::set_mtime`].
fn create_or_set(store: &Store, name: &ModelName, to: Option<SystemTime>) -> Result<(), IoError> {
    let path = store.layout().use_record(name);
    match fsx::create_exclusive(&path, store.config().file_mode()) {
        Ok(_) if to.is_none() => Ok(()),
        Ok(_) => fsx::set_mtime(&path, to),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => fsx::set_mtime(&path, to),
        Err(e) => Err(e),
    }
}

/// When `name` was last used, in seconds since the epoch: its use record, else `added`, the time
/// its record says it was recorded; `None` when neither is known.
pub fn last_used(store: &Store, name: &ModelName, added: Option<&str>) -> Option<u64> {
    let record = fsx::stat(&store.layout().use_record(name)).ok().flatten();
    last_used_of(record.as_ref(), added)
}

/// [`last_used`] from what `lstat` said of the use record (`None`: there is none), for a caller
/// that has it already (`ls` stats the records it found in one listing of `uses/`).
pub(crate) fn last_used_of(record: Option<&fsx::Meta>, added: Option<&str>) -> Option<u64> {
    record
        .filter(|m| m.is_file())
        .map(|m| secs_of(m.modified()))
        .or_else(|| added.and_then(crate::sys::who::parse_rfc3339))
}

/// The last use of every name of `manifest` ([`last_used`]).
pub fn last_used_all(
    store: &Store,
    manifest: &Manifest<Record>,
) -> BTreeMap<ModelName, Option<u64>> {
    manifest
        .models
        .iter()
        .map(|(name, r)| (name.clone(), last_used(store, name, r.added.as_deref())))
        .collect()
}

/// Pins `names`: all or nothing, like `rm`. Pinning a pinned name changes nothing.
///
/// # Errors
/// [`StoreError::PinAbsent`] (exit 3) listing the names the store does not hold, with nothing
/// pinned; [`StoreError::NotWritable`] when `pins/` cannot be written.
pub fn pin(store: &Store, names: &[ModelName]) -> Result<(), StoreError> {
    let manifest = store.read_manifest()?;
    let absent = manifest.unknown(names);
    if !absent.is_empty() {
        return Err(StoreError::PinAbsent { names: absent });
    }
    for name in names {
        let path = store.layout().pin(name);
        match fsx::create_exclusive(&path, store.config().file_mode()) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && is_file(&path) => {}
            Err(e) => return Err(StoreError::writing(store.root(), e)),
        }
    }
    fsx::sync_dir(&store.layout().pins())?;
    Ok(())
}

/// Unpins `names`; returns those that were pinned. A name that was not pinned is no error.
///
/// # Errors
/// [`StoreError::NotWritable`] when a pin cannot be removed.
pub fn unpin(store: &Store, names: &[ModelName]) -> Result<Vec<ModelName>, StoreError> {
    let mut was = Vec::new();
    for name in names {
        if fsx::remove_file_if_exists(&store.layout().pin(name))
            .map_err(|e| StoreError::writing(store.root(), e))?
        {
            was.push(name.clone());
        }
    }
    Ok(was)
}

/// Every pinned name (pins that are regular files named after a valid name).
///
/// # Errors
/// An I/O error naming `pins/` when it cannot be listed.
pub fn pinned(store: &Store) -> Result<BTreeSet<ModelName>, StoreError> {
    let dir = store.layout().pins();
    Ok(files_in(&dir)?
        .into_iter()
        .filter(|(key, _)| is_file(&dir.join(key)))
        .filter_map(|(key, _)| name_of_record(&key))
        .collect())
}

/// Removes the use records and pins of `names` (their names are gone). Best effort: a record
/// left behind is removed by the next gc.
pub fn forget(store: &Store, names: &[ModelName]) {
    for name in names {
        let _ = fsx::remove_file_if_exists(&store.layout().use_record(name));
        let _ = fsx::remove_file_if_exists(&store.layout().pin(name));
    }
}

/// gc: removes (or, dry, lists) the use records and pins of names `manifest` does not hold, as
/// `uses/<key>` and `pins/<key>`. Entries that are not regular files, or whose key is no name,
/// are not ours and are left alone (returned second, for gc's `foreign`).
///
/// # Errors
/// An I/O error naming the directory or the file that could not be listed or removed.
pub fn sweep(
    store: &Store,
    manifest: &Manifest<Record>,
    dry_run: bool,
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let mut removed = Vec::new();
    let mut foreign = Vec::new();
    for (label, dir) in [
        ("uses", store.layout().uses()),
        ("pins", store.layout().pins()),
    ] {
        for key in names_in(&dir)? {
            let path = dir.join(&key);
            let name = name_of_record(&key);
            // A record of a name the store holds stays, whatever it is (no `stat` of each).
            if name
                .as_ref()
                .is_some_and(|n| manifest.models.contains_key(n))
            {
                continue;
            }
            match name {
                Some(_) if is_file(&path) => {
                    if !dry_run {
                        fsx::remove_file_if_exists(&path)
                            .map_err(|e| StoreError::writing(store.root(), e))?;
                    }
                    removed.push(format!("{label}/{key}"));
                }
                _ => foreign.push(format!("{label}/{key}")),
            }
        }
    }
    Ok((removed, foreign))
}

fn is_file(path: &fsx::Rooted) -> bool {
    fsx::stat(path).is_ok_and(|m| m.is_some_and(|m| m.is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::InitOptions;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(&dir.path().join("s"), InitOptions::default()).unwrap();
        (dir, store)
    }

    fn name(s: &str) -> ModelName {
        ModelName::new(s).unwrap()
    }

    #[test]
    fn touch_writes_at_most_once_a_minute_and_rewrites_an_old_record() {
        let (_d, s) = store();
        let n = name("lab/m");
        touch(&s, &n);
        let rec = s.layout().use_record(&n);
        assert!(rec.rel().ends_with("uses/lab+m"));
        let first = last_used(&s, &n, None).unwrap();
        assert!(now_secs().abs_diff(first) < 5);
        // Within the minute: no write (the time set below survives a touch).
        let half_minute_ago = SystemTime::now() - Duration::from_secs(30);
        set_last_used(&s, &n, half_minute_ago).unwrap();
        touch(&s, &n);
        assert_eq!(last_used(&s, &n, None), Some(secs_of(half_minute_ago)));
        // Older than that, or far in the future: rewritten to now.
        for t in [
            SystemTime::now() - Duration::from_secs(120),
            SystemTime::now() + Duration::from_secs(86_400),
        ] {
            set_last_used(&s, &n, t).unwrap();
            touch(&s, &n);
            let got = last_used(&s, &n, None).unwrap();
            assert!(now_secs().abs_diff(got) < 5, "{got}");
        }
    }

    #[test]
    fn in_use_covers_min_age_after_the_last_hand_out_a_record_can_hide() {
        let every = RECORD_EVERY.as_secs();
        let now = 1_000_000;
        let min = Duration::from_secs;
        // A record `every - 1` old may hide a hand-out just now: in use for any min_age > 0.
        for m in [
            min(1),
            min(2),
            Duration::from_millis(500),
            min(600),
            min(3600),
        ] {
            assert!(in_use(now - (every - 1), now, m), "{m:?}");
            let limit = m.as_secs().max(1) + every;
            assert!(in_use(now - (limit - 1), now, m), "{m:?}");
            assert!(!in_use(now - limit, now, m), "{m:?}");
        }
        // min_age 0 protects nothing; a record dated a little ahead is in use, far ahead is not.
        assert!(!in_use(now, now, Duration::ZERO));
        assert!(in_use(now + 30, now, min(2)));
        assert!(!in_use(now + every + 3600, now, min(3600)));
    }

    #[test]
    fn last_used_is_the_record_else_when_the_name_was_added() {
        let (_d, s) = store();
        let n = name("m");
        let added = Some("2026-01-02T03:04:05Z");
        assert_eq!(last_used(&s, &n, added), Some(1_767_323_045));
        set_last_used(&s, &n, UNIX_EPOCH + Duration::from_secs(1_000)).unwrap();
        assert_eq!(last_used(&s, &n, added), Some(1_000));
        assert_eq!(last_used(&s, &n, None), Some(1_000));
    }

    #[test]
    fn pins_of_absent_names_are_refused_all_or_nothing() {
        let (_d, s) = store();
        let err = pin(&s, &[name("absent")]).unwrap_err();
        assert!(matches!(err, StoreError::PinAbsent { .. }), "{err:?}");
        assert_eq!(pinned(&s).unwrap(), BTreeSet::new());
        assert_eq!(unpin(&s, &[name("absent")]).unwrap(), vec![]);
    }
}
