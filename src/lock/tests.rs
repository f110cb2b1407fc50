//! Unit tests of the lock primitives: exclusion, holder records, safe prune, hostile files at
//! lock paths (symlink, FIFO), unsupported filesystems.
// Tests plant files (a symlink target) with raw std::fs on purpose.
#![allow(clippy::disallowed_methods)]
use super::*;

fn take(path: &Path, mode: Mode, wait: Wait) -> Result<LockGuard, LockError> {
    acquire(path, mode, wait, 0o644, &mut |_| {})
}

#[test]
fn exclusive_excludes_and_records_holder() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.lock");
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
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gc.lock");
    let _a = take(&p, Mode::Shared, Wait::NoWait).unwrap();
    let _b = take(&p, Mode::Shared, Wait::NoWait).unwrap();
    assert!(matches!(
        take(&p, Mode::Exclusive, Wait::NoWait),
        Err(LockError::Timeout { .. })
    ));
}

#[test]
fn prune_removes_free_and_keeps_held() {
    let dir = tempfile::tempdir().unwrap();
    let free = dir.path().join("free.lock");
    let held = dir.path().join("held.lock");
    drop(take(&free, Mode::Exclusive, Wait::NoWait).unwrap());
    let _g = take(&held, Mode::Exclusive, Wait::NoWait).unwrap();
    assert_eq!(prune(&free).unwrap(), Pruned::Removed);
    assert!(!free.exists());
    assert!(matches!(prune(&held).unwrap(), Pruned::Held(Some(h)) if h.pid == std::process::id()));
    assert!(held.exists());
    assert_eq!(prune(&free).unwrap(), Pruned::Gone);
}

#[test]
fn acquire_after_prune_locks_the_new_file() {
    // A guard taken on a file that is then pruned must not be "shared" with a later taker:
    // here the first holder keeps its orphan; the second gets the file now at the path.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.lock");
    drop(take(&p, Mode::Exclusive, Wait::NoWait).unwrap());
    let opened_before_prune = fsx::open_read(&p).unwrap();
    assert_eq!(prune(&p).unwrap(), Pruned::Removed);
    let g = take(&p, Mode::Exclusive, Wait::NoWait).unwrap();
    // The stale descriptor is not the file at the path any more.
    assert!(!still_at_path(&opened_before_prune, &p).unwrap());
    assert!(still_at_path(&g.held.as_ref().unwrap().0, &p).unwrap());
}

#[test]
fn replaces_a_symlinked_lock_file_without_writing_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("precious");
    std::fs::write(&target, b"data").unwrap();
    let p = dir.path().join("x.lock");
    std::os::unix::fs::symlink(&target, &p).unwrap();
    let g = take(&p, Mode::Exclusive, Wait::NoWait).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"data");
    assert!(std::fs::symlink_metadata(&p).unwrap().file_type().is_file());
    drop(g);
}

#[test]
fn a_fifo_at_a_lock_path_does_not_hang_and_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.lock");
    let made = std::process::Command::new("mkfifo")
        .arg(&p)
        .status()
        .unwrap();
    assert!(made.success());
    let _g = take(&p, Mode::Exclusive, Wait::NoWait).unwrap();
    assert!(std::fs::symlink_metadata(&p).unwrap().file_type().is_file());
}

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
    let dir = tempfile::tempdir().unwrap();
    probe(dir.path()).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
