//! Attacks on the one way into a store: symlinks planted on the way and at the end, `..`, a store
//! moved while open. Each resolution is tried both ways: `openat2` and the per-component walk.
// Tests plant symlinks and files with raw std::fs on purpose.
#![allow(clippy::disallowed_methods)]

use super::*;
use crate::sys::fsx;
use std::path::PathBuf;

/// A store-like root with a `victim/` directory *outside* it holding a file.
struct Lab {
    _tmp: tempfile::TempDir,
    victim: PathBuf,
    top: Rooted,
}

fn lab() -> Lab {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let victim = tmp.path().join("victim");
    std::fs::create_dir_all(root.join("referrers")).unwrap();
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("precious"), b"keep me").unwrap();
    let top = Rooted::top(&Root::open(&root).unwrap());
    Lab {
        _tmp: tmp,
        victim,
        top,
    }
}

impl Lab {
    /// `store/<at>` becomes a symlink to the victim directory.
    fn plant_link(&self, at: &str) {
        std::os::unix::fs::symlink(&self.victim, self.top.join(at).path()).unwrap();
    }

    fn victim_untouched(&self) {
        assert_eq!(
            std::fs::read(self.victim.join("precious")).unwrap(),
            b"keep me"
        );
        let names: Vec<_> = std::fs::read_dir(&self.victim)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["precious"], "nothing created or removed outside");
    }
}

/// The error of a lookup through a symlink: `ELOOP` (`RESOLVE_NO_SYMLINKS`, or `O_NOFOLLOW` on
/// the last component) or `ENOTDIR` (`O_DIRECTORY | O_NOFOLLOW` on a symlink).
fn is_loop(e: &IoError) -> bool {
    matches!(e.source.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR))
}

#[test]
fn a_symlink_on_the_way_is_never_followed_by_any_operation() {
    let l = lab();
    l.plant_link("referrers/abc");
    let inside = l.top.join("referrers/abc/precious");
    let new = l.top.join("referrers/abc/new");
    assert!(is_loop(&fsx::open_read(&inside).unwrap_err()));
    assert!(is_loop(&fsx::stat(&inside).unwrap_err()));
    assert!(is_loop(&fsx::remove_file_if_exists(&inside).unwrap_err()));
    assert!(is_loop(&fsx::create_exclusive(&new, 0o644).unwrap_err()));
    assert!(is_loop(&fsx::ensure_dir(&new, 0o755).unwrap_err()));
    assert!(fsx::set_mtime(&inside, None).is_err());
    assert!(fsx::hard_link(&inside, &l.top.join("referrers/x")).is_err());
    assert!(fsx::rename_exclusive(&inside, &l.top.join("referrers/x")).is_err());
    assert!(fsx::list(&l.top.join("referrers/abc")).is_err());
    assert!(Dir::open(&l.top.join("referrers/abc")).is_err());
    assert!(fsx::sync_dir(&l.top.join("referrers/abc")).is_err());
    l.victim_untouched();
}

#[test]
fn a_symlink_at_the_end_is_acted_on_as_itself() {
    let l = lab();
    l.plant_link("referrers/abc");
    let link = l.top.join("referrers/abc");
    assert!(fsx::stat(&link).unwrap().unwrap().is_symlink());
    assert!(fsx::open_read(&link).is_err());
    assert!(fsx::set_dir_mode(&link, 0o777).is_err());
    // remove_tree unlinks the link; it never descends into what it points at.
    fsx::remove_tree(&link).unwrap();
    assert!(fsx::stat(&link).unwrap().is_none());
    l.victim_untouched();
    // A directory holding a link to the victim: the link goes, the victim stays.
    std::fs::create_dir(link.path()).unwrap();
    std::os::unix::fs::symlink(&l.victim, link.join("inner").path()).unwrap();
    std::fs::write(link.join("marker").path(), b"").unwrap();
    fsx::remove_tree(&link).unwrap();
    assert!(fsx::stat(&link).unwrap().is_none());
    l.victim_untouched();
}

#[test]
fn the_walk_refuses_what_openat2_refuses() {
    let l = lab();
    l.plant_link("referrers/abc");
    std::fs::create_dir_all(l.top.join("referrers/real/sub").path()).unwrap();
    let root = l.top.root();
    for rel in ["referrers/abc", "referrers/abc/x", "referrers/real/sub"] {
        let walked = walk(
            root,
            Path::new(rel),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        );
        let kernel = resolve_dir(root, Path::new(rel), OFlags::RDONLY);
        let blocked = |r: &io::Result<OwnedFd>| match r {
            Ok(_) => None,
            Err(e) => Some(matches!(
                e.raw_os_error(),
                Some(libc::ELOOP | libc::ENOTDIR)
            )),
        };
        assert_eq!(blocked(&walked), blocked(&kernel), "{rel}");
    }
    assert_eq!(
        walk(root, Path::new("referrers/abc/x"), OFlags::PATH)
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ELOOP)
    );
}

#[test]
fn dot_dot_and_absolute_parts_are_refused_before_any_system_call() {
    let l = lab();
    for bad in [
        "../victim/precious",
        "referrers/../../victim/precious",
        "/etc/passwd",
        "./x",
    ] {
        let at = l.top.join(bad);
        let e = fsx::open_read(&at).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}: {e}");
        assert!(fsx::remove_file_if_exists(&at).is_err(), "{bad}");
    }
    for bad in ["", ".", "..", "a/b"] {
        assert!(!fsx::is_leaf(OsStr::new(bad)), "{bad:?}");
    }
    l.victim_untouched();
}

#[test]
fn a_store_moved_while_open_is_worked_on_where_it_went() {
    let l = lab();
    let old = l.top.path();
    let moved = old.with_file_name("moved");
    std::fs::rename(&old, &moved).unwrap();
    // Something else appears at the old path: never touched.
    std::fs::create_dir_all(old.join("referrers")).unwrap();
    let f = fsx::create_exclusive(&l.top.join("referrers/x"), 0o644).unwrap();
    drop(f);
    assert!(moved.join("referrers/x").exists());
    assert!(!old.join("referrers/x").exists());
}

#[test]
fn listing_and_stat_through_an_opened_directory() {
    let l = lab();
    let dir = l.top.join("referrers");
    for n in ["a", "b"] {
        drop(fsx::create_exclusive(&dir.join(n), 0o600).unwrap());
    }
    std::os::unix::fs::symlink(&l.victim, dir.join("c").path()).unwrap();
    let opened = Dir::open(&dir).unwrap().unwrap();
    let mut names = opened.names().unwrap();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(opened.stat(OsStr::new("c")).unwrap().unwrap().is_symlink());
    assert!(opened.stat(OsStr::new("gone")).unwrap().is_none());
    assert!(opened.stat(OsStr::new("../x")).is_err());
    assert!(opened.remove_file(OsStr::new("c")).unwrap());
    assert!(!opened.remove_file(OsStr::new("c")).unwrap());
    assert!(Dir::open(&l.top.join("nothing")).unwrap().is_none());
    l.victim_untouched();
}
