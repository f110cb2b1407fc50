//! Unit tests of the fsx primitives: exclusive create, modes despite the umask, no-clobber persist,
//! atomic replace. (Symlinks on the way are `beneath`'s tests.)
// Tests plant files with raw std::fs on purpose.
#![allow(clippy::disallowed_methods)]
use super::*;
use std::fs;

/// A temp directory opened as a root, and a path in it.
fn root() -> (tempfile::TempDir, Rooted) {
    let dir = tempfile::tempdir().unwrap();
    let top = Rooted::top(&Root::open(dir.path()).unwrap());
    (dir, top)
}

#[cfg(unix)]
#[test]
fn create_exclusive_refuses_existing_file_and_symlink() {
    let (_d, top) = root();
    let victim = top.join("victim");
    fs::write(victim.path(), b"precious").unwrap();
    let link = top.join("link");
    std::os::unix::fs::symlink(victim.path(), link.path()).unwrap();

    assert_eq!(
        create_exclusive(&victim, 0o600).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    assert!(create_exclusive(&link, 0o600).is_err());
    assert_eq!(fs::read(victim.path()).unwrap(), b"precious");
}

#[cfg(unix)]
#[test]
fn create_exclusive_sets_mode_despite_umask() {
    let (_d, top) = root();
    use std::os::unix::fs::MetadataExt;
    let f = create_exclusive(&top.join("f"), 0o640).unwrap();
    assert_eq!(f.metadata().unwrap().mode() & 0o7777, 0o640);
}

#[test]
fn persist_noclobber_keeps_the_existing_file() {
    let (_d, top) = root();
    let (a, b, dest) = (top.join("a"), top.join("b"), top.join("d"));
    fs::write(a.path(), b"first").unwrap();
    fs::write(b.path(), b"second").unwrap();
    assert_eq!(persist_noclobber(&a, &dest).unwrap(), Persisted::Created);
    assert_eq!(
        persist_noclobber(&b, &dest).unwrap(),
        Persisted::AlreadyExists
    );
    assert_eq!(fs::read(dest.path()).unwrap(), b"first");
    assert!(!a.path().exists() && !b.path().exists());
}

#[test]
fn write_replace_replaces_atomically() {
    let (_d, top) = root();
    let dest = top.join("m.toml");
    write_replace(&top, &dest, b"one", 0o644).unwrap();
    write_replace(&top, &dest, b"two", 0o644).unwrap();
    assert_eq!(fs::read(dest.path()).unwrap(), b"two");
    assert_eq!(fs::read_dir(top.path()).unwrap().count(), 1, "no temp left");
}

#[test]
fn a_directory_is_moved_aside_even_without_rename_noreplace() {
    let (_d, top) = root();
    let (from, to) = (top.join("d"), top.join("e"));
    create_dir_exclusive(&from, 0o700).unwrap();
    fs::write(from.join("f").path(), b"x").unwrap();
    rename_exclusive(&from, &to).unwrap();
    assert_eq!(fs::read(to.join("f").path()).unwrap(), b"x");
}

#[test]
fn a_read_only_handle_is_the_same_file_or_refused_when_its_name_was_taken() {
    let (_d, top) = root();
    let at = top.join("t");
    let mut file = create_exclusive(&at, 0o600).unwrap();
    file.write_all(b"ours").unwrap();
    let again = read_only_handle(&file, &at).unwrap();
    // Unix needs no second handle; Windows gives one to the same file.
    assert_eq!(again.is_some(), cfg!(windows));
    if let Some(reading) = again {
        assert!(Meta::of(&reading)
            .unwrap()
            .same_file(&Meta::of(&file).unwrap()));
    }
    // Another member renames ours away and puts theirs under its name.
    fs::rename(at.path(), top.join("moved").path()).unwrap();
    fs::write(at.path(), b"theirs").unwrap();
    if cfg!(windows) {
        let e = read_only_handle(&file, &at).unwrap_err();
        assert!(e.to_string().contains("reopen for reading"), "{e}");
    } else {
        assert!(read_only_handle(&file, &at).unwrap().is_none());
    }
}
