//! Unit tests of the SIGBUS-safe mapping: a file truncated while mapped is an error and not a
//! crash, a size change is caught, small files are not mapped, and a SIGBUS that is not ours still
//! kills the process (checked in a child process: this test binary re-run with one test).
use super::*;
use crate::sys::fsx::{self, Rooted};
use std::os::unix::process::ExitStatusExt;

const MIB: usize = 1 << 20;

/// A file of `len` non-zero bytes (so zeros read in its place are visible).
fn write_file(dir: &Path, name: &str, len: usize) -> (Rooted, Vec<u8>) {
    let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
    let path = top(dir).join(name);
    fsx::overwrite(&fsx::create_exclusive(&path, 0o644).unwrap(), &bytes, &path).unwrap();
    (path, bytes)
}

/// `dir` opened as a root.
fn top(dir: &Path) -> Rooted {
    Rooted::top(&fsx::Root::open(dir).unwrap())
}

fn mapped(path: &Rooted) -> MappedFile {
    match map_read(fsx::open_read(path).unwrap(), &path.path()).unwrap() {
        Mapping::Mapped(m) => m,
        Mapping::Unmapped(_) => panic!("{} was not mapped", path.display()),
    }
}

/// Reads the whole view in 256 KiB chunks, as verify does.
fn read_all(view: &MappedFile) -> Vec<u8> {
    let mut all = Vec::new();
    view.for_each_chunk(256 << 10, |s| all.extend_from_slice(s));
    all
}

#[test]
fn mapped_file_reads_the_file_and_finishes_ok() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = write_file(dir.path(), "f", 3 * MIB + 123);
    let view = mapped(&path);
    assert_eq!(view.len(), bytes.len() as u64);
    assert!(read_all(&view) == bytes);
    view.finish().unwrap();
}

#[test]
fn truncated_while_mapped_is_an_error_not_a_crash_and_the_process_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = write_file(dir.path(), "blob", 4 * MIB);
    let view = mapped(&path);
    let writer = fsx::open_read_write(&path).unwrap();
    fsx::truncate(&writer, (2 * MIB) as u64, &path).unwrap();

    let seen = read_all(&view);
    // The pages past the new end read as zeros (the handler's), never as the old content.
    assert_eq!(seen.len(), 4 * MIB);
    assert!(seen[..2 * MIB] == bytes[..2 * MIB]);
    assert!(seen[2 * MIB..].iter().all(|&b| b == 0));
    let err = view.finish().unwrap_err();
    assert!(err.faulted, "{err}");
    assert_eq!(
        (err.mapped, err.now),
        ((4 * MIB) as u64, Some((2 * MIB) as u64))
    );
    assert!(
        err.to_string()
            .contains("changed while being read (truncated?)"),
        "{err}"
    );

    // The process still works: the slot was freed and another file maps and reads cleanly.
    let (other, other_bytes) = write_file(dir.path(), "other", MIB);
    let view = mapped(&other);
    assert!(read_all(&view) == other_bytes);
    view.finish().unwrap();
}

#[test]
fn truncated_to_zero_while_mapped_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_file(dir.path(), "blob", MIB + 1);
    let view = mapped(&path);
    fsx::truncate(&fsx::open_read_write(&path).unwrap(), 0, &path).unwrap();
    assert!(read_all(&view).iter().all(|&b| b == 0));
    let err = view.finish().unwrap_err();
    assert_eq!((err.faulted, err.now), (true, Some(0)));
}

#[test]
fn grown_while_mapped_is_an_error_without_a_fault() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = write_file(dir.path(), "blob", MIB);
    let view = mapped(&path);
    fsx::truncate(
        &fsx::open_read_write(&path).unwrap(),
        (2 * MIB) as u64,
        &path,
    )
    .unwrap();
    assert!(read_all(&view) == bytes);
    let err = view.finish().unwrap_err();
    assert_eq!((err.faulted, err.now), (false, Some((2 * MIB) as u64)));
}

#[test]
fn small_and_empty_files_are_not_mapped_and_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for len in [0, 1, MIN_MAP_LEN as usize - 1] {
        let (path, _) = write_file(dir.path(), &format!("f{len}"), len);
        let m = map_read(fsx::open_read(&path).unwrap(), &path.path()).unwrap();
        assert!(matches!(m, Mapping::Unmapped(_)), "{len} bytes were mapped");
    }
    let (path, _) = write_file(dir.path(), "big", MIN_MAP_LEN as usize);
    assert!(matches!(
        map_read(fsx::open_read(&path).unwrap(), &path.path()).unwrap(),
        Mapping::Mapped(_)
    ));
    let sub = top(dir.path()).join("d");
    fsx::create_dir_exclusive(&sub, 0o755).unwrap();
    let err = map_read(fsx::open_read(&sub).unwrap(), dir.path())
        .err()
        .unwrap();
    assert!(
        err.source.to_string().contains("not a regular file"),
        "{err}"
    );
}

#[test]
fn symlink_to_a_large_file_is_not_opened_for_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let (target, _) = write_file(dir.path(), "target", MIB);
    let link = top(dir.path()).join("link");
    fsx::symlink(&target.path(), &link).unwrap();
    // The opener verify maps through refuses the symlink itself (O_NOFOLLOW): nothing to map.
    let err = fsx::open_read(&link).unwrap_err();
    assert_eq!(err.source.raw_os_error(), Some(libc::ELOOP), "{err}");
}

/// Set in the child process of [`foreign_sigbus_is_not_swallowed`] to the way it faults.
const CHILD_ENV: &str = "BEAKER_TEST_FOREIGN_SIGBUS";

#[test]
fn foreign_sigbus_is_not_swallowed() {
    if let Ok(how) = std::env::var(CHILD_ENV) {
        die_of_foreign_sigbus(&how);
    }
    // This test's own name, as the test harness knows it (the module path without the crate).
    let me = format!(
        "{}::foreign_sigbus_is_not_swallowed",
        module_path!().trim_start_matches("beaker::")
    );
    for how in ["fault", "kill"] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([me.as_str(), "--exact", "--test-threads=1", "--nocapture"])
            .env(CHILD_ENV, how)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("child: handler installed"),
            "{how}: {out:?}"
        );
        assert_eq!(out.status.signal(), Some(libc::SIGBUS), "{how}: {out:?}");
    }
}

/// The child: registers a mapping (so our handler is installed and a slot is live), then takes a
/// SIGBUS outside it — a read past the end of another, unregistered mapping of a truncated file,
/// or one sent with raise(3). Either must kill it; returning is a failure.
fn die_of_foreign_sigbus(how: &str) {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit with a valid struct (no core file from the deliberate crash); alarm has
    // no preconditions (a handler that swallowed the fault would retry it forever: SIGALRM
    // ends that child, and the parent sees the wrong signal).
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::alarm(60);
    }
    if how == "kill" {
        // Rust's runtime installs a SIGBUS handler of its own (stack-overflow detection) that
        // ignores a *sent* SIGBUS once, so "as before" would mean surviving it. Start from the
        // default action instead, so that a swallowed signal shows as a child that survives.
        // SAFETY: installing SIG_DFL has no memory-safety preconditions.
        unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
    }
    let dir = tempfile::tempdir().unwrap();
    let (ours, _) = write_file(dir.path(), "ours", MIB);
    let view = mapped(&ours);
    eprintln!("child: handler installed");
    if how == "kill" {
        // SAFETY: raise has no preconditions.
        unsafe { libc::raise(libc::SIGBUS) };
    } else {
        let (theirs, _) = write_file(dir.path(), "theirs", MIB);
        let file = fsx::open_read(&theirs).unwrap();
        // SAFETY: a fresh read-only mapping of an open file; reading it past the truncated end
        // is the point of the test (it must raise SIGBUS).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MIB,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        fsx::truncate(&fsx::open_read_write(&theirs).unwrap(), 0, &theirs).unwrap();
        // SAFETY: `p` maps MIB bytes; the volatile read faults, which is what is tested.
        let b = unsafe { std::ptr::read_volatile(p.cast::<u8>().add(MIB / 2)) };
        eprintln!("child: read {b} past the end and survived");
    }
    drop(view);
    eprintln!("child: survived a foreign SIGBUS ({how})");
    std::process::exit(0);
}
