//! [core] under concurrency and crashes: many processes adding at once (with and without locks),
//! SIGKILL in the middle of an add, and a lock file swapped under a waiting process.

use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beaker::lock::{self, Mode, Wait};

use crate::support::*;

fn spawn_add(env: &Env, src: &std::path::Path, name: &str) -> Child {
    env.cmd()
        .args(["store", "add", src.to_str().unwrap(), "--name", name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .start()
}

fn race_adds(env: &Env, src: &std::path::Path, n: usize) -> Vec<Run> {
    let children: Vec<Child> = (0..n)
        .map(|i| spawn_add(env, src, &format!("m{}", i % 3)))
        .collect();
    children
        .into_iter()
        .map(|c| Run::from(c.wait_with_output().expect("wait")))
        .collect()
}

#[test]
fn eight_processes_adding_the_same_file_make_exactly_one_blob() {
    let env = Env::new();
    let data = bytes(8 << 20, 10);
    let src = env.file("big.onnx", &data);
    // No init: the racers also race to create the store.
    let runs = race_adds(&env, &src, 8);
    let paths: Vec<String> = runs.iter().map(Run::ok).collect();
    assert!(paths.iter().all(|p| *p == paths[0]), "{paths:?}");
    assert_eq!(env.blob_names(), vec![blake3_hex(&data)]);
    assert_blobs_named_by_hash(&env.store);
    assert!(list_names(&env.store.join("tmp")).is_empty());
    let rows: Vec<serde_json::Value> = env.run(&["--json", "store", "ls"]).json();
    assert_eq!(rows.len(), 3, "m0, m1, m2 all recorded: {rows:?}");
}

#[test]
fn without_locks_racing_adds_still_make_one_correct_blob() {
    // I1 must not rest on locks: `locking = "none"` takes none at all.
    let env = Env::new();
    env.run(&["store", "init", "--locking", "none"]).ok();
    for round in 0..3 {
        let data = bytes(2 << 20, 100 + round);
        let src = env.file(&format!("r{round}.bin"), &data);
        for r in race_adds(&env, &src, 8) {
            r.ok();
        }
        assert!(env.blob_names().contains(&blake3_hex(&data)));
    }
    assert_eq!(env.blob_names().len(), 3);
    assert_blobs_named_by_hash(&env.store);
    assert!(
        list_names(&env.store.join("locks")).is_empty(),
        "locking = none takes no locks"
    );
}

#[test]
fn sigkill_during_add_never_leaves_a_misnamed_blob() {
    let env = Env::new();
    env.run(&["store", "init"]).ok();
    let data = bytes(48 << 20, 20);
    let src = env.file("large.onnx", &data);
    // Kill at a spread of moments: before the copy, during it, around publish.
    for (i, delay_ms) in [0u64, 2, 5, 10, 20, 40, 80, 120, 200]
        .into_iter()
        .enumerate()
    {
        let mut child = spawn_add(&env, &src, &format!("k{i}"));
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_blobs_named_by_hash(&env.store);
        // I3: whatever the kill interrupted, a recorded name never points at an absent blob.
        let rows: Vec<serde_json::Value> = env.run(&["--json", "store", "ls"]).json();
        for row in &rows {
            assert_eq!(
                row["present"], true,
                "name recorded before its blob was published: {row}"
            );
        }
        for name in list_names(&env.store.join("blobs")) {
            let m = mode(&env.store.join("blobs").join(&name));
            assert_eq!(m, 0o444, "published blob {name} must be read-only");
        }
    }
    // Whatever the kills left behind, the next add succeeds and is correct.
    let path = env
        .run(&["store", "add", src.to_str().unwrap(), "--name", "after"])
        .ok();
    assert_eq!(blake3_hex(&std::fs::read(path).unwrap()), blake3_hex(&data));
    // The store manifest is always parseable (atomic rewrite).
    env.run(&["store", "ls"]).ok();
}

// Unix only: flock(1) from util-linux.
#[cfg(unix)]
/// Holds an exclusive flock on `path` in a separate process (util-linux `flock`) until its stdin
/// is closed.
fn hold_with_flock_cmd(path: &std::path::Path) -> Child {
    let mut child = std::process::Command::new("flock")
        .arg(path)
        .args(["-c", "echo held; cat > /dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("flock(1) from util-linux is needed for this test");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "held");
    child
}

/// Whether this process has `path` open (so a waiter has really opened the old lock file).
fn this_process_has_open(path: &std::path::Path) -> bool {
    process_has_open(std::process::id(), path)
}

/// Whether process `pid` has `path` open.
fn process_has_open(pid: u32, path: &std::path::Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == path))
}

// Unix only: flock(1) from util-linux.
#[cfg(unix)]
#[test]
fn a_lock_file_swapped_under_a_waiter_never_gives_two_holders() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob.lock");
    let at =
        beaker::fsx::Rooted::top(&beaker::fsx::Root::open(dir.path()).unwrap()).join("blob.lock");
    let mut holder = hold_with_flock_cmd(&path); // another process holds the original file

    let active = Arc::new(AtomicUsize::new(0));
    let max_active = Arc::new(AtomicUsize::new(0));
    let enter = |active: &AtomicUsize, max: &AtomicUsize| {
        let now = active.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(now, Ordering::SeqCst);
    };

    // The waiter opens the original file and waits on it.
    let waiter = {
        let (at, active, max) = (at.clone(), active.clone(), max_active.clone());
        std::thread::spawn(move || {
            let g = lock::acquire(&at, Mode::Exclusive, Wait::Forever, 0o644, &mut |_| {}).unwrap();
            enter(&active, &max);
            std::thread::sleep(Duration::from_millis(20));
            active.fetch_sub(1, Ordering::SeqCst);
            drop(g);
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !this_process_has_open(&path) {
        assert!(
            Instant::now() < deadline,
            "waiter never opened the lock file"
        );
        std::thread::yield_now();
    }

    // The file is unlinked and a new one created and locked at the same path.
    remove(&path);
    let newcomer = lock::acquire(&at, Mode::Exclusive, Wait::NoWait, 0o644, &mut |_| {}).unwrap();
    enter(&active, &max_active);

    // The original holder lets go: the waiter now gets the flock on the orphaned file, must notice
    // it is no longer the file at the path, and wait for the newcomer instead.
    drop(holder.stdin.take());
    holder.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200)); // give a broken waiter time to misbehave
    assert_eq!(max_active.load(Ordering::SeqCst), 1, "two holders at once");
    active.fetch_sub(1, Ordering::SeqCst);
    drop(newcomer);
    waiter.join().unwrap();
    assert_eq!(max_active.load(Ordering::SeqCst), 1);
}

// Unix only: flock(1) from util-linux.
#[cfg(unix)]
#[test]
fn an_add_waits_for_the_manifest_lock_and_then_records_its_name() {
    let env = Env::new();
    env.run(&["store", "init"]).ok();
    let manifest_lock = env.store.join("locks/manifest.lock");
    let mut holder = hold_with_flock_cmd(&manifest_lock);
    let src = env.file("a", b"abc");
    let mut child = spawn_add(&env, &src, "m");
    // Wait until the add has reached the lock (it has the lock file open), then check it is
    // waiting there rather than recording its name without the lock.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process_has_open(child.id(), &manifest_lock) {
        assert!(
            Instant::now() < deadline,
            "add never reached the manifest lock"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "add finished without the manifest lock"
        );
        std::thread::yield_now();
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "add finished while the manifest lock was held"
    );
    drop(holder.stdin.take());
    holder.wait().unwrap();
    let r = Run::from(child.wait_with_output().unwrap());
    r.ok();
    env.run(&["store", "path", "m"]).ok();
}
