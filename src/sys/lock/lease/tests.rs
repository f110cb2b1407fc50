//! Unit tests of lease locks: exclusion, release, breaking a provably dead holder at once and a
//! silent one after its silence (by our clock, whatever its mtime says), the refresher keeping a
//! lease alive, the break that must not steal a fresh lease, and hostile files at the path.
// Tests plant leases, symlinks and FIFOs with raw std::fs on purpose.
#![allow(clippy::disallowed_methods)]
use super::*;
use std::path::Path;

fn root() -> (tempfile::TempDir, Rooted) {
    let dir = tempfile::tempdir().unwrap();
    let top = Rooted::top(&fsx::Root::open(dir.path()).unwrap());
    (dir, top)
}

fn try_take(path: &Rooted, wait: Wait, silence: Duration) -> Result<Option<Lease>, LockError> {
    take(path, wait, 0o644, silence, &mut |_| {})
}

/// A lease record as another process would write it.
fn plant(at: &Path, host: &str, pid: u32, boot: Option<&str>, token: &str) {
    let h = Holder {
        pid,
        user: "someone".into(),
        host: host.into(),
        since: "2026-12-04T20:00:00Z".into(),
        boot: boot.map(str::to_owned),
        token: Some(token.into()),
        ..Holder::default()
    };
    std::fs::write(at, toml::to_string(&h).unwrap()).unwrap();
}

/// A pid that existed and is gone now.
fn dead_pid() -> u32 {
    // The test program itself, listing its tests: a program every platform has.
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--list")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

const LONG: Duration = Duration::from_secs(3600);

#[test]
fn a_lease_excludes_names_its_holder_and_is_gone_when_dropped() {
    let (dir, top) = root();
    let p = top.join("k.lease");
    let held = try_take(&p, Wait::NoWait, LONG).unwrap().unwrap();
    let text = std::fs::read_to_string(dir.path().join("k.lease")).unwrap();
    let h: Holder = toml::from_str(&text).unwrap();
    assert_eq!(h.pid, std::process::id());
    assert_eq!(h.host, crate::sys::who::host());
    assert!(h.token.is_some() && h.boot == crate::sys::lock::boot_id());

    let err = try_take(&p, Wait::For(Duration::from_millis(50)), LONG).unwrap_err();
    let LockError::Timeout {
        holder: Some(by), ..
    } = err
    else {
        panic!("a timeout naming the holder, got {err:?}")
    };
    assert_eq!(by.pid, std::process::id());

    // The record follows what the holder says it writes, and keeps the token.
    let mut now = Holder::me();
    now.expected_size = Some(42);
    held.record(&now);
    let h: Holder =
        toml::from_str(&std::fs::read_to_string(dir.path().join("k.lease")).unwrap()).unwrap();
    assert_eq!(h.expected_size, Some(42));
    assert!(h.token.is_some());

    drop(held);
    assert!(!dir.path().join("k.lease").exists());
    assert!(try_take(&p, Wait::NoWait, LONG).unwrap().is_some());
}

#[test]
fn a_lease_of_a_dead_process_of_this_host_is_broken_at_once() {
    let (dir, top) = root();
    let at = dir.path().join("k.lease");
    let host = crate::sys::who::host();
    plant(
        &at,
        &host,
        dead_pid(),
        crate::sys::lock::boot_id().as_deref(),
        "t1",
    );
    assert!(matches!(state(&top.join("k.lease")), State::Stale(_)));
    let got = try_take(&top.join("k.lease"), Wait::NoWait, LONG).unwrap();
    assert!(
        got.is_some(),
        "a dead holder's lease is broken without waiting"
    );
    // Nothing renamed aside is left.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1);
}

#[test]
fn a_lease_of_this_host_from_an_earlier_boot_is_broken_at_once_though_its_pid_lives() {
    let (dir, top) = root();
    let at = dir.path().join("k.lease");
    // Our own pid: alive, but the record says another boot.
    let host = crate::sys::who::host();
    plant(&at, &host, std::process::id(), Some("another-boot"), "t1");
    if crate::sys::lock::boot_id().is_none() {
        return; // no boot id on this system: nothing to compare
    }
    assert!(try_take(&top.join("k.lease"), Wait::NoWait, LONG)
        .unwrap()
        .is_some());
}

#[test]
fn a_silent_lease_of_a_live_pid_of_this_host_is_broken_after_its_silence_not_before() {
    // A pid that lives (ours) but never refreshes: its holder died and the pid was reused.
    let (dir, top) = root();
    let at = dir.path().join("k.lease");
    plant(
        &at,
        &crate::sys::who::host(),
        std::process::id(),
        None,
        "t1",
    );
    assert!(matches!(state(&top.join("k.lease")), State::Held(_)));
    let silence = Duration::from_millis(400);
    let err = try_take(
        &top.join("k.lease"),
        Wait::For(Duration::from_millis(200)),
        silence,
    );
    assert!(matches!(err, Err(LockError::Timeout { .. })), "{err:?}");
    assert!(at.exists(), "kept within its silence");
    let started = Instant::now();
    let got = try_take(
        &top.join("k.lease"),
        Wait::For(Duration::from_secs(10)),
        silence,
    )
    .unwrap();
    assert!(got.is_some());
    assert!(started.elapsed() >= silence);
}

#[test]
fn another_machines_silent_lease_is_broken_after_the_silence_by_our_clock_even_with_a_future_mtime()
{
    let (dir, top) = root();
    let at = dir.path().join("k.lease");
    plant(&at, "elsewhere", 1, Some("b"), "t1");
    // Its clock is far ahead: the mtime says 2100. Only our own clock counts.
    let future = std::time::UNIX_EPOCH + Duration::from_secs(4_102_444_800);
    fsx::set_mtime(&top.join("k.lease"), Some(future)).unwrap();
    let silence = Duration::from_millis(300);
    let started = Instant::now();
    let got = try_take(
        &top.join("k.lease"),
        Wait::For(Duration::from_secs(10)),
        silence,
    )
    .unwrap();
    let took = started.elapsed();
    assert!(got.is_some());
    assert!(took >= silence, "broken after {took:?}, before its silence");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // Another machine's lease is never called stale without watching it.
    plant(&at, "elsewhere", 1, Some("b"), "t2");
    assert!(matches!(state(&top.join("k.lease")), State::Held(_)));
}

#[test]
fn a_refreshed_lease_of_another_machine_is_not_broken() {
    let (dir, top) = root();
    let silence = Duration::from_millis(300);
    let held = try_take(&top.join("k.lease"), Wait::NoWait, silence)
        .unwrap()
        .unwrap();
    // The holder now says it runs elsewhere: only its refresher speaks for it.
    let mut other = Holder::me();
    other.host = "elsewhere".into();
    held.record(&other);
    let err = try_take(
        &top.join("k.lease"),
        Wait::For(Duration::from_millis(1500)),
        silence,
    );
    assert!(
        matches!(err, Err(LockError::Timeout { .. })),
        "a lease refreshed every 50 ms was broken: {err:?}"
    );
    assert!(dir.path().join("k.lease").exists());
    drop(held);
    assert!(!dir.path().join("k.lease").exists());
}

#[test]
fn breaking_a_lease_that_was_replaced_meanwhile_puts_the_new_one_back() {
    let (dir, top) = root();
    let at = dir.path().join("k.lease");
    plant(&at, "elsewhere", 1, None, "fresh");
    // We judged a lease with other bytes stale; the one at the path now is another.
    let judged = Seen {
        bytes: b"old bytes".to_vec(),
        len: 9,
        mtime: std::time::UNIX_EPOCH,
    };
    assert!(break_lease(&top.join("k.lease"), &judged).is_some());
    let text = std::fs::read_to_string(&at).unwrap();
    assert!(text.contains("fresh"), "the fresh lease was stolen: {text}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

// Unix only: the test deletes the lease file while its holder has it open, which on wine (and
// Windows without POSIX delete semantics) leaves the name until the holder closes it.
#[cfg(unix)]
#[test]
fn dropping_a_lease_that_was_broken_and_taken_again_leaves_the_new_holders_lease() {
    let (dir, top) = root();
    let held = try_take(&top.join("k.lease"), Wait::NoWait, LONG)
        .unwrap()
        .unwrap();
    std::fs::remove_file(dir.path().join("k.lease")).unwrap();
    plant(&dir.path().join("k.lease"), "elsewhere", 1, None, "theirs");
    drop(held);
    let text = std::fs::read_to_string(dir.path().join("k.lease")).unwrap();
    assert!(text.contains("theirs"), "{text}");
}

#[cfg(unix)]
#[test]
fn a_symlink_or_fifo_at_a_lease_path_is_removed_never_followed_or_opened() {
    let (dir, top) = root();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"keep").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("k.lease")).unwrap();
    let got = try_take(&top.join("k.lease"), Wait::NoWait, LONG).unwrap();
    assert!(got.is_some());
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    assert!(!std::fs::symlink_metadata(dir.path().join("k.lease"))
        .unwrap()
        .is_symlink());
    drop(got);

    let fifo = dir.path().join("f.lease");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let got = try_take(&top.join("f.lease"), Wait::NoWait, LONG).unwrap();
    assert!(got.is_some());
}

#[test]
fn a_huge_garbage_lease_is_read_only_in_part_and_broken_after_its_silence() {
    let (dir, top) = root();
    std::fs::write(dir.path().join("k.lease"), vec![b'x'; 8 << 20]).unwrap();
    let silence = Duration::from_millis(200);
    let got = try_take(
        &top.join("k.lease"),
        Wait::For(Duration::from_secs(10)),
        silence,
    )
    .unwrap();
    assert!(got.is_some());
}

#[test]
fn where_no_lease_file_can_be_made_there_is_no_lease_and_no_error() {
    let (dir, top) = root();
    // `locks` is a file here: creating in it fails (ENOTDIR), as in a `locks/` we may not write.
    std::fs::write(dir.path().join("locks"), b"").unwrap();
    let got = try_take(&top.join("locks/k.lease"), Wait::NoWait, LONG).unwrap();
    assert!(got.is_none());
}
