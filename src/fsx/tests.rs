//! Unit tests of the fsx primitives: exclusive create, modes despite the umask, no-clobber persist,
//! atomic replace.
use super::*;
use std::os::unix::fs::MetadataExt;

#[test]
fn create_exclusive_refuses_existing_file_and_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&victim, &link).unwrap();

    assert_eq!(
        create_exclusive(&victim, 0o600).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    assert!(create_exclusive(&link, 0o600).is_err());
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
}

#[test]
fn create_exclusive_sets_mode_despite_umask() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    let f = create_exclusive(&p, 0o640).unwrap();
    assert_eq!(f.metadata().unwrap().mode() & 0o7777, 0o640);
}

#[test]
fn persist_noclobber_keeps_the_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, dest) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("d"),
    );
    fs::write(&a, b"first").unwrap();
    fs::write(&b, b"second").unwrap();
    assert_eq!(persist_noclobber(&a, &dest).unwrap(), Persisted::Created);
    assert_eq!(
        persist_noclobber(&b, &dest).unwrap(),
        Persisted::AlreadyExists
    );
    assert_eq!(fs::read(&dest).unwrap(), b"first");
    assert!(!a.exists() && !b.exists());
}

#[test]
fn write_replace_replaces_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.toml");
    write_replace(dir.path(), &dest, b"one", 0o644).unwrap();
    write_replace(dir.path(), &dest, b"two", 0o644).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), b"two");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp left");
}
