//! Regression tests for issue 18 ([trust]) through the real binary: what a member of a shared
//! store plants in it (symlinks in `referrers/` and in snapshots, a deleted `referrers/` or
//! `locks/`, a store deleted under a running process) must never make beaker touch a file
//! outside the store, hand out bytes from outside it, trust an index that lost entries, or spin.
//! Each symlink attack runs twice: with `openat2` and with the per-component walk that kernels
//! without it use (`BEAKER_NO_OPENAT2=1`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::shared::{as_user, group_store, public_file, shared_env, users};
use crate::support::*;

/// Both resolutions of a path inside the store.
const RESOLUTIONS: [&str; 2] = ["0", "1"];

/// `beaker --store S args…` with `BEAKER_NO_OPENAT2` set to `walk`.
fn run(env: &Env, walk: &str, args: &[&str]) -> Run {
    Run::from(
        env.cmd()
            .env("BEAKER_NO_OPENAT2", walk)
            .args(args)
            .output()
            .unwrap(),
    )
}

/// A directory outside the store holding files whose names are valid model names (what `rm`
/// would delete from a list), and their contents, to check afterwards.
fn victim(env: &Env) -> (PathBuf, Vec<(PathBuf, Vec<u8>)>) {
    let dir = env.path("victim");
    let files: Vec<(PathBuf, Vec<u8>)> = ["a", "b", "org+c", "notes.txt"]
        .iter()
        .map(|n| {
            (
                env.file(&format!("victim/{n}"), n.as_bytes()),
                n.as_bytes().to_vec(),
            )
        })
        .collect();
    (dir, files)
}

fn assert_untouched(dir: &Path, files: &[(PathBuf, Vec<u8>)]) {
    for (p, bytes) in files {
        assert_eq!(
            std::fs::read(p).ok().as_deref(),
            Some(bytes.as_slice()),
            "{} was changed or removed",
            p.display()
        );
    }
    assert_eq!(
        list_names(dir).len(),
        files.len(),
        "something was created in {}",
        dir.display()
    );
}

/// `store add` of `bytes` as `name`.
fn add(env: &Env, walk: &str, name: &str, bytes: &[u8]) {
    let src = env.file(&format!("src/{name}.bin"), bytes);
    run(
        env,
        walk,
        &["store", "add", src.to_str().unwrap(), "--name", name],
    )
    .ok();
}

/// Defect 1: `referrers/<blob>` replaced by a symlink to a directory outside the store; `rm` of
/// a name using that blob, and `verify`, must leave that directory alone.
#[test]
fn rm_and_verify_never_act_through_a_symlinked_referrers_list() {
    for walk in RESOLUTIONS {
        let env = Env::new();
        add(&env, walk, "a", b"shared bytes");
        add(&env, walk, "b", b"shared bytes");
        let (dir, files) = victim(&env);
        let list = env
            .store
            .join("referrers")
            .join(blake3_hex(b"shared bytes"));
        std::fs::remove_dir_all(&list).unwrap();
        std::os::unix::fs::symlink(&dir, &list).unwrap();

        run(&env, walk, &["store", "verify"]);
        assert_untouched(&dir, &files);
        // verify replaced the planted link by a real list.
        assert!(std::fs::symlink_metadata(&list).unwrap().is_dir(), "{walk}");

        std::fs::remove_dir_all(&list).unwrap();
        std::os::unix::fs::symlink(&dir, &list).unwrap();
        run(&env, walk, &["store", "rm", "a"]).ok();
        assert_untouched(&dir, &files);
        // b still uses the blob: rm did not trust the broken list, it read every record.
        assert_eq!(env.blob_names(), [blake3_hex(b"shared bytes")], "{walk}");
        run(&env, walk, &["store", "path", "b"]).ok();
        run(&env, walk, &["store", "rm", "b"]).ok();
        assert!(env.blob_names().is_empty(), "{walk}");
        assert_untouched(&dir, &files);
    }
}

/// Defect 1 as root: root's `rm` must not delete root's own files outside the store either.
#[test]
fn roots_rm_never_deletes_files_outside_the_store_through_a_planted_list() {
    if !root_only("it checks that root's rm leaves root-owned files alone") {
        return;
    }
    let env = Env::new();
    add(&env, "0", "a", b"bytes of a");
    let (dir, files) = victim(&env);
    for (p, _) in &files {
        std::os::unix::fs::chown(p, Some(0), Some(0)).unwrap();
    }
    let list = env.store.join("referrers").join(blake3_hex(b"bytes of a"));
    std::fs::remove_dir_all(&list).unwrap();
    std::os::unix::fs::symlink(&dir, &list).unwrap();
    run(&env, "0", &["store", "rm", "a"]).ok();
    assert_untouched(&dir, &files);
    assert!(env.blob_names().is_empty());
}

/// Defect 5: a directory of a snapshot replaced by a symlink to a directory the attacker owns,
/// holding a hard link to the right blob (so every file "is its blob"): `path` must never hand
/// out a path through it (the attacker could swap the file the moment after), and `verify` must
/// not pass it.
#[test]
fn a_symlinked_directory_inside_a_snapshot_is_rebuilt_never_served() {
    for walk in RESOLUTIONS {
        let env = Env::new();
        let model = env.path("model");
        env.file("model/m.bin", b"main file");
        env.file("model/sub/w.bin", b"the right weights");
        run(
            &env,
            walk,
            &["store", "add", model.to_str().unwrap(), "--name", "m"],
        )
        .ok();
        let dir = PathBuf::from(run(&env, walk, &["store", "path", "m", "--dir"]).ok());
        let evil = env.path("evil");
        let plant = || {
            std::fs::create_dir_all(&evil).unwrap();
            let _ = std::fs::remove_file(evil.join("w.bin"));
            let blob = env
                .store
                .join("blobs")
                .join(blake3_hex(b"the right weights"));
            std::fs::hard_link(&blob, evil.join("w.bin")).unwrap();
            std::fs::remove_dir_all(dir.join("sub")).unwrap();
            std::os::unix::fs::symlink(&evil, dir.join("sub")).unwrap();
        };
        plant();
        let main = PathBuf::from(run(&env, walk, &["store", "path", "m"]).ok());
        let sub = main.parent().unwrap().join("sub");
        assert!(
            !std::fs::symlink_metadata(&sub)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{walk}: path handed out a snapshot through the planted link"
        );
        // The attacker swaps their file right after: the path handed out is not theirs.
        std::fs::remove_file(evil.join("w.bin")).unwrap();
        std::fs::write(evil.join("w.bin"), b"the wrong weights").unwrap();
        assert_eq!(
            std::fs::read(sub.join("w.bin")).unwrap(),
            b"the right weights"
        );

        // verify finds the same damage and says so.
        plant();
        let v: serde_json::Value = run(&env, walk, &["--json", "store", "verify"]).json();
        assert_eq!(
            v["snapshots_rebuilt"],
            serde_json::json!(["m"]),
            "{walk}: {v}"
        );
        assert!(!std::fs::symlink_metadata(&sub)
            .unwrap()
            .file_type()
            .is_symlink());
    }
}

/// Defect 10: after `rm -rf referrers` (a partial restore), `rm` of one of two names sharing a
/// blob must keep the blob.
#[test]
fn a_lost_referrers_index_is_not_trusted_by_rm() {
    let env = Env::new();
    add(&env, "0", "a", b"shared");
    add(&env, "0", "b", b"shared");
    std::fs::remove_dir_all(env.store.join("referrers")).unwrap();
    // A writer recreates the directory, not what it held.
    add(&env, "0", "c", b"other");
    run(&env, "0", &["store", "rm", "a"]).ok();
    assert!(
        env.blob_names().contains(&blake3_hex(b"shared")),
        "b's blob was deleted"
    );
    run(&env, "0", &["store", "path", "b"]).ok();
    // That rm read every record and rebuilt the index: the next rm frees what it should.
    assert!(env.store.join("referrers/.complete").exists());
    run(&env, "0", &["store", "rm", "b"]).ok();
    assert!(!env.blob_names().contains(&blake3_hex(b"shared")));
}

/// Holds `locks/gc.lock` exclusively in another process (as gc does) until the returned
/// child's stdin is closed.
fn hold_gc_lock(env: &Env) -> std::process::Child {
    let child = Command::new("flock")
        .arg("-x")
        .arg(env.store.join("locks/gc.lock"))
        .args(["-c", "read _"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // flock(1) takes the lock before it runs the command; give it that instant.
    std::thread::sleep(Duration::from_millis(200));
    child
}

/// `store add` started in the background: it waits for gc.lock.
fn waiting_add(env: &Env) -> std::process::Child {
    let src = env.file("src/y.bin", b"y");
    let child = env
        .cmd()
        .args(["store", "add", src.to_str().unwrap(), "--name", "y"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    child
}

/// Releases the holder and waits (at most 30 s: a spin fails the test) for the waiter.
fn release_and_finish(mut holder: std::process::Child, waiter: std::process::Child) -> Run {
    drop(holder.stdin.take());
    holder.wait().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = waiter.id();
    std::thread::spawn(move || {
        let _ = tx.send(waiter.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(out) => Run::from(out.unwrap()),
        Err(_) => {
            send_signal(pid, libc::SIGKILL);
            panic!("beaker kept running (spinning) after the lock it waited for was freed");
        }
    }
}

/// Defect 8: `locks/` removed by a member while a process waits for a lock in it: the process
/// makes `locks/` again and finishes, instead of spinning.
#[test]
fn locks_removed_under_a_waiting_process_are_made_again() {
    let env = Env::new();
    add(&env, "0", "a", b"x");
    let holder = hold_gc_lock(&env);
    let waiter = waiting_add(&env);
    std::fs::remove_dir_all(env.store.join("locks")).unwrap();
    let out = release_and_finish(holder, waiter);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(env.store.join("locks/gc.lock").is_file());
    run(&env, "0", &["store", "path", "y"]).ok();
}

/// Defect 8: a store deleted while a process waits for one of its locks: when the lock is
/// released, the process fails with a message, at once, instead of spinning forever.
#[test]
fn a_store_deleted_under_a_waiting_process_fails_instead_of_spinning() {
    let env = Env::new();
    add(&env, "0", "a", b"x");
    let holder = hold_gc_lock(&env);
    let waiter = waiting_add(&env);
    std::fs::remove_dir_all(&env.store).unwrap();
    let out = release_and_finish(holder, waiter);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("beaker: error"), "{}", out.stderr);
}

/// Defect 9: `verify` of a store on a read-only mount hashes and reports; it does not fail for
/// want of a lock it did not need.
#[test]
fn verify_of_a_sound_store_on_a_read_only_mount_succeeds() {
    if !root_only("it bind-mounts the store read-only in a mount namespace") {
        return;
    }
    let env = Env::new();
    let model = env.path("model");
    env.file("model/m.bin", b"main");
    env.file("model/sub/w.bin", b"weights");
    run(
        &env,
        "0",
        &["store", "add", model.to_str().unwrap(), "--name", "m"],
    )
    .ok();
    let ro = env.path("ro");
    std::fs::create_dir(&ro).unwrap();
    let script = format!(
        "mount --bind {s} {r} && mount -o remount,ro,bind {r} && exec \"$0\" --store {r} --json store verify",
        s = env.store.display(),
        r = ro.display()
    );
    let out = Run::from(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .arg(env!("CARGO_BIN_EXE_beaker"))
            .env("BEAKER_CONFIG", env.path("none.toml"))
            .env("BEAKER_SYSTEM_CONFIG", env.path("none.toml"))
            .output()
            .unwrap(),
    );
    let v: serde_json::Value = out.json();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(v["ok"], 2, "{v}");
    assert_eq!(v["snapshots_checked"], 1, "{v}");
}

/// Defect 6: the directories of a snapshot built by one member keep the store's group, so
/// another member can remove the model and gc the store.
#[test]
fn snapshot_subdirectories_keep_the_group_so_other_members_can_remove_them() {
    let Some(u) = users() else { return };
    let env = shared_env();
    group_store(&env, &u.alice, "flock");
    public_file(&env, "model/m.bin", b"main");
    public_file(&env, "model/sub/deeper/w.bin", b"weights");
    for d in ["model", "model/sub", "model/sub/deeper"] {
        std::fs::set_permissions(
            env.path(d),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    let model = env.path("model");
    crate::shared::as_user_with_umask(
        &u.alice,
        "077",
        &env.store,
        &["store", "add", model.to_str().unwrap(), "--name", "m"],
    )
    .ok();
    let dir = PathBuf::from(as_user(&u.alice, &env.store, &["store", "path", "m", "--dir"]).ok());
    for sub in ["", "sub", "sub/deeper"] {
        let m = std::fs::metadata(dir.join(sub)).unwrap();
        assert_eq!(m.gid(), u.lab_gid, "{sub}: group");
        assert_eq!(m.mode() & 0o7777, 0o2775, "{sub}: mode");
    }
    let info: serde_json::Value = as_user(&u.bob, &env.store, &["--json", "store", "info"]).json();
    assert_eq!(info["problems"], serde_json::json!([]), "{info}");
    as_user(&u.bob, &env.store, &["store", "rm", "-y", "m"]).ok();
    as_user(&u.bob, &env.store, &["store", "gc"]).ok();
    assert!(!dir.exists());
}

/// Defect 6, the report: a snapshot directory that lost the store's group is named by `info`,
/// with the command that fixes it.
#[test]
fn info_names_a_snapshot_subdirectory_without_the_stores_group() {
    let Some(u) = users() else { return };
    let env = shared_env();
    group_store(&env, &u.alice, "flock");
    public_file(&env, "model/m.bin", b"main");
    public_file(&env, "model/sub/w.bin", b"weights");
    std::fs::set_permissions(
        env.path("model/sub"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let model = env.path("model");
    as_user(
        &u.alice,
        &env.store,
        &["store", "add", model.to_str().unwrap(), "--name", "m"],
    )
    .ok();
    let dir = PathBuf::from(as_user(&u.alice, &env.store, &["store", "path", "m", "--dir"]).ok());
    std::os::unix::fs::chown(dir.join("sub"), None, Some(u.alice.gid)).unwrap();
    let info: serde_json::Value = as_user(&u.bob, &env.store, &["--json", "store", "info"]).json();
    let problems = info["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["path"].as_str() == Some(dir.join("sub").to_str().unwrap())),
        "{info}"
    );
}
