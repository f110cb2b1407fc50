//! Tests of the test filesystem itself: each switch does what it says, and the power cut keeps
//! exactly what was made durable. Every test mounts (root; [`fuse_only`]).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};

use super::*;

fn fs(spec: &str) -> TestFs {
    TestFs::new(&Options::parse(spec).unwrap()).unwrap_or_else(|e| panic!("mount {spec}: {e:#}"))
}

fn write(p: &Path, bytes: &[u8], fsync: bool) {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(p)
        .unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    f.write_all(bytes).unwrap();
    if fsync {
        f.sync_all().unwrap();
    }
}

fn fsync_dir(p: &Path) {
    File::open(p)
        .and_then(|d| d.sync_all())
        .unwrap_or_else(|e| panic!("fsync {}: {e}", p.display()));
}

fn read(p: &Path) -> Option<Vec<u8>> {
    std::fs::read(p).ok()
}

fn lock_nb(f: &File) -> std::io::Result<()> {
    flock(f, FlockOperation::NonBlockingLockExclusive).map_err(std::io::Error::from)
}

/// Every path under `dir` with its bytes (`None` for a directory), and the link count.
fn tree(dir: &Path) -> BTreeMap<String, (Option<Vec<u8>>, u64)> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, (Option<Vec<u8>>, u64)>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                out.insert(rel, (None, 1));
                walk(root, &p, out);
            } else {
                out.insert(rel, (read(&p), m.nlink()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Polls `f` until it returns `Some`, for at most `limit`.
fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn passthrough_writes_reach_the_backing_directory_and_locks_meet_everywhere() {
    if !fuse_only() {
        return;
    }
    let t = fs("passthrough");
    let m = t.path();
    write(&m.join("a"), b"through the mount", false);
    assert_eq!(read(&t.backing().join("a")).unwrap(), b"through the mount");
    std::fs::hard_link(m.join("a"), m.join("b")).unwrap();
    let (a, b) = (
        std::fs::metadata(m.join("a")).unwrap(),
        std::fs::metadata(m.join("b")).unwrap(),
    );
    let under = std::fs::metadata(t.backing().join("a")).unwrap();
    assert_eq!((a.ino(), b.ino(), a.nlink()), (under.ino(), under.ino(), 2));
    // One lock, whichever name, mount or direct path it is taken through.
    let held = File::open(m.join("a")).unwrap();
    lock_nb(&held).unwrap();
    for other in [m.join("a"), m.join("b"), t.backing().join("a")] {
        let e = lock_nb(&File::open(&other).unwrap()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "{}", other.display());
    }
    drop(held);
    lock_nb(&File::open(m.join("b")).unwrap()).unwrap();
    // The control file answers, and is not listed.
    let status = std::fs::read_to_string(m.join(CONTROL)).unwrap();
    assert!(status.contains("profile passthrough"), "{status}");
    let names: Vec<_> = std::fs::read_dir(&m)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn a_blocking_flock_waits_for_the_holder_without_stopping_the_filesystem() {
    if !fuse_only() {
        return;
    }
    let t = fs("passthrough");
    write(&t.path().join("l"), b"", false);
    let held = File::open(t.path().join("l")).unwrap();
    lock_nb(&held).unwrap();
    let p = t.path().join("l");
    let waiter = std::thread::spawn(move || {
        let f = File::open(&p).unwrap();
        flock(&f, FlockOperation::LockExclusive).unwrap();
    });
    // Meanwhile the filesystem serves others.
    for i in 0..20 {
        write(&t.path().join(format!("f{i}")), b"x", false);
    }
    assert!(!waiter.is_finished(), "the waiter got a held lock");
    drop(held);
    waiter.join().unwrap();
}

#[test]
fn flock_noop_lets_every_caller_hold_the_lock() {
    if !fuse_only() {
        return;
    }
    let t = fs("flock-noop");
    write(&t.path().join("l"), b"", false);
    let a = File::open(t.path().join("l")).unwrap();
    let b = File::open(t.path().join("l")).unwrap();
    lock_nb(&a).unwrap();
    lock_nb(&b).unwrap();
}

#[test]
fn flock_enosys_fails_every_flock_with_enosys() {
    if !fuse_only() {
        return;
    }
    let t = fs("flock-enosys");
    write(&t.path().join("l"), b"", false);
    let e = lock_nb(&File::open(t.path().join("l")).unwrap()).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSYS), "{e}");
}

#[test]
fn per_mount_locks_meet_inside_a_mount_but_never_across_two() {
    if !fuse_only() {
        return;
    }
    let t = fs("per-mount-locks");
    let other = t
        .mount_another("machine-b", &Options::profile("per-mount-locks").unwrap())
        .unwrap();
    write(&t.path().join("l"), b"", false);
    let here = File::open(t.path().join("l")).unwrap();
    lock_nb(&here).unwrap();
    let e = lock_nb(&File::open(t.path().join("l")).unwrap()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "same mount: excluded");
    let there = File::open(other.path().join("l")).unwrap();
    lock_nb(&there).expect("another mount: the locks never meet");
    // With shared locks, the same two mounts do exclude each other.
    let shared = fs("passthrough");
    let other = shared
        .mount_another("machine-b", &Options::default())
        .unwrap();
    write(&shared.path().join("l"), b"", false);
    let a = File::open(shared.path().join("l")).unwrap();
    lock_nb(&a).unwrap();
    let e = lock_nb(&File::open(other.path().join("l")).unwrap()).unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::WouldBlock,
        "shared: one lock across mounts"
    );
}

#[test]
fn no_hardlinks_refuses_link_with_eperm() {
    if !fuse_only() {
        return;
    }
    let t = fs("no-hardlinks");
    write(&t.path().join("a"), b"x", false);
    let e = std::fs::hard_link(t.path().join("a"), t.path().join("b")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
    assert!(!t.backing().join("b").exists());
}

#[test]
fn link_inodes_a_flock_through_one_name_does_not_exclude_one_through_the_other() {
    if !fuse_only() {
        return;
    }
    for (spec, meet) in [("link-inodes", false), ("per-mount-locks", true)] {
        let t = fs(spec);
        let m = t.path();
        write(&m.join("a"), b"x", false);
        std::fs::hard_link(m.join("a"), m.join("b")).unwrap();
        let (a, b) = (
            std::fs::metadata(m.join("a")).unwrap(),
            std::fs::metadata(m.join("b")).unwrap(),
        );
        assert_eq!(a.ino(), b.ino(), "{spec}: stat shows one file");
        let fa = File::open(m.join("a")).unwrap();
        lock_nb(&fa).unwrap();
        let through_b = lock_nb(&File::open(m.join("b")).unwrap());
        assert_eq!(through_b.is_err(), meet, "{spec}: {through_b:?}");
        // Two descriptors of one name still exclude each other.
        lock_nb(&File::open(m.join("a")).unwrap()).unwrap_err();
    }
}

#[test]
fn per_path_ino_gives_a_hard_link_its_own_inode_number() {
    if !fuse_only() {
        return;
    }
    let t = fs("per-path-ino");
    let m = t.path();
    write(&m.join("a"), b"x", false);
    std::fs::hard_link(m.join("a"), m.join("b")).unwrap();
    let (a, b) = (
        std::fs::metadata(m.join("a")).unwrap(),
        std::fs::metadata(m.join("b")).unwrap(),
    );
    assert_ne!(a.ino(), b.ino());
    assert_eq!((a.nlink(), b.nlink()), (2, 2));
    // Stable for a name while the kernel remembers it, and through an open descriptor.
    let f = File::open(m.join("a")).unwrap();
    assert_eq!(f.metadata().unwrap().ino(), a.ino());
    assert_eq!(std::fs::metadata(m.join("a")).unwrap().ino(), a.ino());
}

#[test]
fn stale_nlink_keeps_saying_2_after_link_and_unlink_for_a_while() {
    if !fuse_only() {
        return;
    }
    for spec in ["stale-nlink", "bindfs"] {
        let t = fs(spec);
        let m = t.path();
        write(&m.join("tmp"), b"x", false);
        std::fs::hard_link(m.join("tmp"), m.join("final")).unwrap();
        std::fs::remove_file(m.join("tmp")).unwrap();
        let f = File::open(m.join("final")).unwrap();
        let t0 = Instant::now();
        assert_eq!(f.metadata().unwrap().nlink(), 2, "{spec}: stale");
        let fresh = poll(STALE_NLINK * 4, || {
            (f.metadata().unwrap().nlink() == 1).then(Instant::now)
        })
        .unwrap_or_else(|| panic!("{spec}: never 1"));
        assert!(
            fresh - t0 <= STALE_NLINK + Duration::from_millis(500),
            "{spec}"
        );
        assert_eq!(
            std::fs::metadata(t.backing().join("final"))
                .unwrap()
                .nlink(),
            1
        );
    }
}

#[test]
fn no_noreplace_refuses_renameat2_flags_with_einval_and_plain_rename_works() {
    if !fuse_only() {
        return;
    }
    for (spec, flags_work) in [("no-noreplace", false), ("passthrough", true)] {
        let t = fs(spec);
        let m = t.path();
        write(&m.join("a"), b"x", false);
        let r = rustix::fs::renameat_with(
            rustix::fs::CWD,
            m.join("a"),
            rustix::fs::CWD,
            m.join("b"),
            rustix::fs::RenameFlags::NOREPLACE,
        );
        match r {
            Ok(()) => assert!(flags_work, "{spec}"),
            Err(e) => {
                assert!(!flags_work, "{spec}: {e}");
                assert_eq!(e, rustix::io::Errno::INVAL, "{spec}");
                std::fs::rename(m.join("a"), m.join("b")).unwrap();
            }
        }
        assert_eq!(read(&m.join("b")).unwrap(), b"x");
    }
}

#[test]
fn new_entries_belong_to_their_creator_and_take_a_setgid_group_unless_setgid_is_off() {
    if !fuse_only() {
        return;
    }
    const GID: u32 = 4242;
    const USER: u32 = 4243;
    for (spec, inherit) in [("passthrough", true), ("no-setgid", false)] {
        let t = fs(spec);
        let shared = t.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::os::unix::fs::chown(&shared, None, Some(GID)).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o3777)).unwrap();
        // Made by another user, with their umask: theirs, with the mode they asked for.
        let st = Command::new("setpriv")
            .args([
                &format!("--reuid={USER}"),
                &format!("--regid={USER}"),
                "--clear-groups",
                "--",
                "sh",
                "-c",
                "umask 027 && mkdir \"$0/sub\" && echo x > \"$0/file\"",
            ])
            .arg(&shared)
            .status()
            .unwrap();
        assert!(st.success(), "{spec}: setpriv");
        let group = if inherit { GID } else { USER };
        for (name, mode) in [("sub", 0o750), ("file", 0o640)] {
            let md = std::fs::metadata(shared.join(name)).unwrap();
            let under = std::fs::metadata(t.backing().join("shared").join(name)).unwrap();
            assert_eq!((md.uid(), md.gid()), (USER, group), "{spec}: {name}");
            assert_eq!((under.uid(), under.gid()), (USER, group), "{spec}: {name}");
            let setgid = if inherit && name == "sub" { 0o2000 } else { 0 };
            assert_eq!(md.mode() & 0o7777, mode | setgid, "{spec}: {name}");
        }
    }
}

#[test]
fn power_cut_drops_what_was_not_fsynced_and_keeps_what_was() {
    if !fuse_only() {
        return;
    }
    let mut t = fs("power-cut");
    let m = t.path();
    std::fs::create_dir(m.join("d")).unwrap();
    fsync_dir(&m);
    write(&m.join("d/synced"), b"v1", true);
    write(&m.join("d/named-no-data"), b"lost bytes", false);
    write(&m.join("d/data-then-name"), b"kept", true);
    fsync_dir(&m.join("d"));
    write(&m.join("d/synced"), b"v2, never fsynced", false);
    write(&m.join("create-not-synced"), b"gone", true);
    std::fs::create_dir(m.join("dir-not-synced")).unwrap();
    // Visible through the mount at once, not in the backing directory.
    assert_eq!(read(&m.join("d/synced")).unwrap(), b"v2, never fsynced");
    assert!(m.join("create-not-synced").exists());
    assert!(!t.backing().join("create-not-synced").exists());
    assert_eq!(read(&t.backing().join("d/synced")).unwrap(), b"v1");
    let status = t.mount().unwrap().status();
    assert_eq!(
        (status.pending_ops, status.errors.len()),
        (2, 0),
        "{status:?}"
    );

    t.cut_power().unwrap();
    let expect: BTreeMap<String, (Option<Vec<u8>>, u64)> = [
        ("d", None),
        ("d/data-then-name", Some(&b"kept"[..])),
        ("d/named-no-data", Some(&b""[..])),
        ("d/synced", Some(&b"v1"[..])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), (v.map(<[u8]>::to_vec), 1)))
    .collect();
    assert_eq!(tree(&t.backing()), expect);
    t.remount().unwrap();
    assert_eq!(tree(&t.path()), expect, "the mount after the cut");
}

#[test]
fn power_cut_keeps_a_rename_whole_and_an_unlink_only_once_its_directory_is_fsynced() {
    if !fuse_only() {
        return;
    }
    let mut t = fs("power-cut");
    let m = t.path();
    for d in ["tmp", "blobs", "snap"] {
        std::fs::create_dir(m.join(d)).unwrap();
    }
    fsync_dir(&m);
    // Publish by rename: fsync of the target directory alone makes the whole rename durable.
    write(&m.join("tmp/a.part"), b"blob a", true);
    std::fs::rename(m.join("tmp/a.part"), m.join("blobs/a")).unwrap();
    fsync_dir(&m.join("blobs"));
    // Publish by link + unlink: the unlink waits for its own directory's fsync.
    write(&m.join("tmp/b.part"), b"blob b", true);
    std::fs::hard_link(m.join("tmp/b.part"), m.join("blobs/b")).unwrap();
    std::fs::remove_file(m.join("tmp/b.part")).unwrap();
    fsync_dir(&m.join("blobs"));
    // A link into a directory never fsynced is not durable; its source is.
    std::fs::hard_link(m.join("blobs/a"), m.join("snap/a")).unwrap();
    t.cut_power().unwrap();
    let b = t.backing();
    assert_eq!(read(&b.join("blobs/a")).unwrap(), b"blob a");
    assert_eq!(read(&b.join("blobs/b")).unwrap(), b"blob b");
    assert!(!b.join("tmp/a.part").exists(), "the rename's source side");
    assert_eq!(
        std::fs::metadata(b.join("tmp/b.part")).unwrap().ino(),
        std::fs::metadata(b.join("blobs/b")).unwrap().ino(),
        "the unlink of tmp/b.part was never made durable"
    );
    assert!(!b.join("snap/a").exists());
    assert_eq!(std::fs::metadata(b.join("blobs/a")).unwrap().nlink(), 1);
}

#[test]
fn a_directory_fsync_commits_its_own_pending_mkdir_but_not_its_siblings() {
    if !fuse_only() {
        return;
    }
    let mut t = fs("power-cut");
    let m = t.path();
    std::fs::create_dir_all(m.join("new/deeper")).unwrap();
    write(&m.join("new/deeper/f"), b"x", true);
    write(&m.join("new/sibling"), b"y", true);
    fsync_dir(&m.join("new/deeper"));
    t.cut_power().unwrap();
    assert_eq!(read(&t.backing().join("new/deeper/f")).unwrap(), b"x");
    assert!(!t.backing().join("new/sibling").exists());
}

#[test]
fn a_clean_unmount_makes_everything_durable() {
    if !fuse_only() {
        return;
    }
    let mut t = fs("power-cut");
    let m = t.path();
    std::fs::create_dir_all(m.join("a/b")).unwrap();
    write(&m.join("a/b/one"), b"1", false);
    write(&m.join("a/two"), &[7u8; 100_000], false);
    std::fs::hard_link(m.join("a/two"), m.join("a/b/two-again")).unwrap();
    std::fs::set_permissions(m.join("a/two"), std::fs::Permissions::from_mode(0o444)).unwrap();
    std::os::unix::fs::symlink("two", m.join("a/link")).unwrap();
    write(&m.join("gone"), b"", false);
    std::fs::remove_file(m.join("gone")).unwrap();
    let seen = tree(&m);
    t.unmount().unwrap();
    assert_eq!(tree(&t.backing()), seen);
    let md = std::fs::symlink_metadata(t.backing().join("a/two")).unwrap();
    assert_eq!(md.mode() & 0o777, 0o444);
    assert_eq!(
        std::fs::read_link(t.backing().join("a/link")).unwrap(),
        Path::new("two")
    );
}

#[test]
fn a_cut_through_the_control_file_unmounts_and_fails_open_files_with_eio() {
    if !fuse_only() {
        return;
    }
    let mut t = fs("power-cut");
    let m = t.path();
    write(&m.join("open"), b"abc", false);
    let mut f = File::open(m.join("open")).unwrap();
    std::fs::write(m.join(CONTROL), "cut\n").unwrap();
    let gone = poll(Duration::from_secs(10), || {
        let mounted = std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(m.to_str().unwrap()));
        (!mounted).then_some(())
    });
    assert!(gone.is_some(), "still mounted after the cut");
    let mut buf = Vec::new();
    let e = f.read_to_end(&mut buf).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    drop(f);
    t.cut_power().unwrap(); // the mount is already cut: this only reaps it
    assert!(!t.backing().join("open").exists());
    t.remount().unwrap();
    assert!(!t.path().join("open").exists());
}

#[test]
fn the_rust_cut_returns_while_a_process_still_holds_a_file_open() {
    if !fuse_only() {
        return;
    }
    let mut t = fs("power-cut");
    write(&t.path().join("held"), b"x", true);
    fsync_dir(&t.path());
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg("exec 3<\"$0\" && echo open && exec sleep 60")
        .arg(t.path().join("held"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "open\n", "the holder has the file open");
    let t0 = Instant::now();
    t.cut_power().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(read(&t.backing().join("held")).unwrap(), b"x");
    t.remount().unwrap();
    assert_eq!(read(&t.path().join("held")).unwrap(), b"x");
}
