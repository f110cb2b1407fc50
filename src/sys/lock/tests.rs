//! Unit tests of the lock primitives: exclusion, holder records, safe prune, hostile files at
//! lock paths (symlink, FIFO), unsupported filesystems.
// Tests plant files (a symlink target) with raw std::fs on purpose.
#![allow(clippy::disallowed_methods)]
use super::*;
#[cfg(unix)]
use std::path::Path;

fn take(path: &Rooted, mode: Mode, wait: Wait) -> Result<LockGuard, LockError> {
    acquire(path, mode, wait, 0o644, &mut |_| {})
}

/// A temp directory opened as a root.
fn root() -> (tempfile::TempDir, Rooted) {
    let dir = tempfile::tempdir().unwrap();
    let top = Rooted::top(&fsx::Root::open(dir.path()).unwrap());
    (dir, top)
}

#[test]
fn exclusive_excludes_and_records_holder() {
    let (_dir, top) = root();
    let p = top.join("x.lock");
    let g = take(&p, Mode::Exclusive, Wait::NoWait).unwrap();
    let err = take(&p, Mode::Exclusive, Wait::For(Duration::from_millis(30))).unwrap_err();
    let LockError::Timeout {
        holder: Some(h), ..
    } = err
    else {
        panic!("expected a timeout naming the holder, got {err:?}")
    };
    assert_eq!(h.pid, std::process::id());
    drop(g);
    let _again = take(&p, Mode::Exclusive, Wait::NoWait).unwrap();
}

#[test]
fn shared_locks_coexist_but_exclude_exclusive() {
    let (_dir, top) = root();
    let p = top.join("gc.lock");
    let _a = take(&p, Mode::Shared, Wait::NoWait).unwrap();
    let _b = take(&p, Mode::Shared, Wait::NoWait).unwrap();
    assert!(matches!(
        take(&p, Mode::Exclusive, Wait::NoWait),
        Err(LockError::Timeout { .. })
    ));
}

#[test]
fn prune_removes_free_and_keeps_held() {
    let (_dir, top) = root();
    let free = top.join("free.lock");
    let held = top.join("held.lock");
    drop(take(&free, Mode::Exclusive, Wait::NoWait).unwrap());
    let _g = take(&held, Mode::Exclusive, Wait::NoWait).unwrap();
    assert_eq!(prune(&free).unwrap(), Pruned::Removed);
    assert!(!free.path().exists());
    assert!(matches!(prune(&held).unwrap(), Pruned::Held(Some(h)) if h.pid == std::process::id()));
    assert!(held.path().exists());
    assert_eq!(prune(&free).unwrap(), Pruned::Gone);
}

// Unix only: on wine (and Windows without POSIX delete semantics) a pruned lock file's name
// stays while a waiter has it open (docs/design.md#platforms).
#[cfg(unix)]
#[test]
fn acquire_after_prune_locks_the_new_file() {
    // A guard taken on a file that is then pruned must not be "shared" with a later taker:
    // here the first holder keeps its orphan; the second gets the file now at the path.
    let (_dir, top) = root();
    let p = top.join("b.lock");
    drop(take(&p, Mode::Exclusive, Wait::NoWait).unwrap());
    let opened_before_prune = fsx::open_read(&p).unwrap();
    assert_eq!(prune(&p).unwrap(), Pruned::Removed);
    let g = take(&p, Mode::Exclusive, Wait::NoWait).unwrap();
    // The stale descriptor is not the file at the path any more.
    assert!(!still_at_path(&opened_before_prune, &p).unwrap());
    assert!(still_at_path(&g.held.as_ref().unwrap().0, &p).unwrap());
}

#[cfg(unix)]
#[test]
fn replaces_a_symlinked_lock_file_without_writing_through_it() {
    let (_dir, top) = root();
    let target = top.join("precious");
    std::fs::write(target.path(), b"data").unwrap();
    let p = top.join("x.lock");
    std::os::unix::fs::symlink(target.path(), p.path()).unwrap();
    let g = take(&p, Mode::Exclusive, Wait::NoWait).unwrap();
    assert_eq!(std::fs::read(target.path()).unwrap(), b"data");
    assert!(std::fs::symlink_metadata(p.path())
        .unwrap()
        .file_type()
        .is_file());
    drop(g);
}

#[cfg(unix)]
#[test]
fn a_fifo_at_a_lock_path_does_not_hang_and_is_replaced() {
    let (_dir, top) = root();
    let p = top.join("f.lock");
    let made = std::process::Command::new("mkfifo")
        .arg(p.path())
        .status()
        .unwrap();
    assert!(made.success());
    let _g = take(&p, Mode::Exclusive, Wait::NoWait).unwrap();
    assert!(std::fs::symlink_metadata(p.path())
        .unwrap()
        .file_type()
        .is_file());
}

#[cfg(unix)]
#[test]
fn a_filesystem_without_flock_is_refused_with_the_remedy() {
    for errno in [libc::ENOLCK, libc::EOPNOTSUPP] {
        let e = lock_failed(
            Path::new("/mnt/lustre/store"),
            io::Error::from_raw_os_error(errno),
        );
        let msg = e.to_string();
        assert!(matches!(e, LockError::Unsupported { .. }), "{msg}");
        assert!(msg.contains("/mnt/lustre/store"), "{msg}");
        assert!(msg.contains("locking = \"none\""), "{msg}");
    }
    assert!(matches!(
        lock_failed(Path::new("/x"), io::Error::from_raw_os_error(libc::EIO)),
        LockError::Io(_)
    ));
}

#[test]
fn probe_passes_on_a_local_filesystem() {
    let (dir, top) = root();
    probe(&top).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_lock_in_a_directory_that_is_gone_fails_at_once_instead_of_spinning() {
    let (_dir, top) = root();
    let locks = top.join("locks");
    fsx::create_dir_exclusive(&locks, 0o755).unwrap();
    std::fs::remove_dir(locks.path()).unwrap();
    let started = Instant::now();
    let e = take(&locks.join("gc.lock"), Mode::Exclusive, Wait::Forever).unwrap_err();
    assert!(
        matches!(&e, LockError::Io(io) if io.kind() == io::ErrorKind::NotFound),
        "{e:?}"
    );
    // Bounded by construction (no retry loop on "not found" when the directory is gone); the
    // bound here only keeps a regression from hanging the suite.
    assert!(started.elapsed() < Duration::from_secs(10));
}
