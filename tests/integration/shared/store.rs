//! A group store shared by real users (set-up in [`super`]): blobs reused across users, modes under
//! any umask, lock files, planted symlinks, the group policy `store info` checks, users outside
//! the group, lockless races between users.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{
    as_user, as_user_cmd, as_user_with_umask, assert_group_policy, group_store, public_file,
    shared_env, users, User, GROUP,
};
use crate::support::*;

fn init_group_store(env: &Env, user: &User) {
    group_store(env, user, "flock");
}

#[test]
fn alice_adds_bob_reuses_the_blob_and_can_remove_it() {
    let Some(u) = users() else { return };
    let env = shared_env();
    init_group_store(&env, &u.alice);
    let data = bytes(200_000, 7);
    let src = public_file(&env, "m.onnx", &data);

    let p1 = as_user(
        &u.alice,
        &env.store,
        &["store", "add", src.to_str().unwrap(), "--name", "m"],
    )
    .ok();
    let blob_path = as_user(&u.alice, &env.store, &["store", "path", "m", "--blob"]).ok();
    let blob = Path::new(&blob_path);
    let blob_ino = std::fs::metadata(blob).unwrap().ino();
    assert_eq!(std::fs::metadata(blob).unwrap().uid(), u.alice.uid);

    let p2 = as_user(
        &u.bob,
        &env.store,
        &["store", "add", src.to_str().unwrap(), "--name", "bobs"],
    )
    .ok();
    assert_eq!(p1, p2, "same file name and content: one snapshot");
    assert_eq!(
        std::fs::metadata(&p2).unwrap().ino(),
        blob_ino,
        "bob reused alice's blob"
    );
    assert_eq!(
        as_user(&u.bob, &env.store, &["store", "path", "m"]).ok(),
        p1
    );
    assert_group_policy(&env.store, u.lab_gid);

    // m is alice's: bob is asked, and without a terminal refused unless he says -y.
    let r = as_user(&u.bob, &env.store, &["store", "rm", "m", "bobs"]);
    r.fails(2, &["m (by beaker-alice)", "nothing was removed", "-y"]);
    assert!(blob.exists(), "nothing removed");
    assert!(
        !r.stderr.contains("bobs (by"),
        "his own is not asked about: {}",
        r.stderr
    );
    as_user(&u.bob, &env.store, &["store", "rm", "-y", "m", "bobs"]).ok();
    assert!(
        !blob.exists(),
        "bob, a group member, removed alice's now unused blob"
    );
}

#[test]
fn modes_are_right_even_with_umask_077() {
    let Some(u) = users() else { return };
    let env = shared_env();
    let init = ["store", "init", "--shared", "group", "--group", GROUP];
    as_user_with_umask(&u.alice, "077", &env.store, &init).ok();
    let src = public_file(&env, "a.bin", &bytes(5000, 8));
    let add = ["store", "add", src.to_str().unwrap(), "--name", "a"];
    as_user_with_umask(&u.alice, "077", &env.store, &add).ok();
    assert_group_policy(&env.store, u.lab_gid);
    // And bob, also with umask 077, can use what alice made.
    let src2 = public_file(&env, "b.bin", &bytes(5000, 9));
    let add = ["store", "add", src2.to_str().unwrap(), "--name", "b"];
    as_user_with_umask(&u.bob, "077", &env.store, &add).ok();
    assert_group_policy(&env.store, u.lab_gid);
}

#[test]
fn lock_files_of_one_user_are_lockable_by_another_even_read_only() {
    let Some(u) = users() else { return };
    let env = shared_env();
    init_group_store(&env, &u.alice);
    let src = public_file(&env, "a", b"shared bytes");
    as_user(
        &u.alice,
        &env.store,
        &["store", "add", src.to_str().unwrap(), "--name", "a"],
    )
    .ok();
    // Make alice's lock files read-only for everyone else: flock needs no write access.
    for l in list_names(&env.store.join("locks")) {
        std::fs::set_permissions(
            env.store.join("locks").join(l),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let src2 = public_file(&env, "b", b"other bytes");
    as_user(
        &u.bob,
        &env.store,
        &["store", "add", src2.to_str().unwrap(), "--name", "b"],
    )
    .ok();
    as_user(&u.bob, &env.store, &["store", "path", "b"]).ok();
}

#[test]
fn a_symlink_planted_at_a_lock_path_is_not_written_through() {
    let Some(u) = users() else { return };
    let env = shared_env();
    init_group_store(&env, &u.alice);
    // A file only alice can write: bob wants alice's beaker to clobber it for him.
    let secret = env.path("alice-notes.txt");
    std::fs::write(&secret, b"alice's data").unwrap();
    std::os::unix::fs::lchown(&secret, Some(u.alice.uid), Some(u.alice.gid)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();

    let data = bytes(10_000, 11);
    let hex = blake3_hex(&data);
    let locks = env.store.join("locks");
    for name in [
        format!("{hex}.lock"),
        "manifest.lock".into(),
        "gc.lock".into(),
    ] {
        let link = locks.join(&name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(u.bob.uid), Some(u.lab_gid)).unwrap();
    }
    let src = public_file(&env, "m", &data);
    let path = as_user(
        &u.alice,
        &env.store,
        &["store", "add", src.to_str().unwrap(), "--name", "m"],
    )
    .ok();
    assert_eq!(
        std::fs::read(&secret).unwrap(),
        b"alice's data",
        "written through a planted symlink"
    );
    assert_eq!(std::fs::read(path).unwrap(), data);
    // The locks add takes were replaced by real lock files; the per-blob lock (which add does not
    // take) is still bob's symlink, never followed.
    for l in ["manifest.lock", "gc.lock"] {
        assert!(
            std::fs::symlink_metadata(locks.join(l)).unwrap().is_file(),
            "{l} replaced by a real lock file"
        );
    }
}

#[test]
fn a_symlink_planted_as_a_store_directory_is_refused() {
    let Some(u) = users() else { return };
    let env = shared_env();
    init_group_store(&env, &u.alice);
    let elsewhere = env.path("bobs-dir");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::remove_dir(env.store.join("tmp")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.store.join("tmp")).unwrap();
    let src = public_file(&env, "m", b"bytes");
    as_user(
        &u.alice,
        &env.store,
        &["store", "add", src.to_str().unwrap(), "--name", "m"],
    )
    .fails(
        2,
        &[
            "tmp",
            "is a symlink where the store's tmp/ directory should be",
            "rm ",
        ],
    );
    assert!(
        list_names(&elsewhere).is_empty(),
        "nothing written through the symlink"
    );
}

#[test]
fn info_flags_files_that_break_the_group_policy() {
    let Some(u) = users() else { return };
    let env = shared_env();
    init_group_store(&env, &u.alice);
    let src = public_file(&env, "m", b"bytes");
    as_user(
        &u.alice,
        &env.store,
        &["store", "add", src.to_str().unwrap(), "--name", "m"],
    )
    .ok();
    let info: serde_json::Value = as_user(&u.bob, &env.store, &["--json", "store", "info"]).json();
    assert_eq!(info["mode"], "group");
    assert_eq!(info["problems"].as_array().unwrap().len(), 0, "{info}");

    let record = env.store.join("names/m.toml");
    std::fs::set_permissions(&record, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = as_user(&u.bob, &env.store, &["store", "info"]);
    assert!(
        r.stdout
            .contains("names/m.toml should belong to the store's group beaker-lab and be group-writable (0664)"),
        "{r:#?}"
    );
    assert!(
        r.stdout
            .contains("owned by beaker-alice:beaker-lab, mode 0644"),
        "{r:#?}"
    );
    assert!(
        r.stdout
            .contains(&format!("chmod 0664 {}", record.display())),
        "{r:#?}"
    );
}

#[test]
fn a_user_outside_the_group_is_told_why() {
    let Some(u) = users() else { return };
    let env = shared_env();
    init_group_store(&env, &u.alice);
    as_user(&u.eve, &env.store, &["store", "ls"]).fails(
        2,
        &[
            "group store of group beaker-lab",
            "beaker-eve is not in that group",
            "usermod -aG beaker-lab beaker-eve",
        ],
    );
    as_user(
        &u.eve,
        &env.store,
        &["store", "init", "--shared", "group", "--group", GROUP],
    )
    .fails(2, &["beaker-eve is not a member of group beaker-lab"]);
}

#[test]
fn a_store_directory_of_another_group_is_refused_and_left_alone() {
    let Some(u) = users() else { return };
    let env = shared_env();
    init_group_store(&env, &u.alice);
    std::os::unix::fs::lchown(env.store.join("blobs"), None, Some(u.eve.gid)).unwrap();
    let src = public_file(&env, "m", b"bytes");
    as_user(
        &u.alice,
        &env.store,
        &["store", "add", src.to_str().unwrap(), "--name", "m"],
    )
    .fails(
        2,
        &[
            "blobs should belong to the store's group beaker-lab",
            "owned by beaker-alice:beaker-eve",
            "chgrp -R beaker-lab",
        ],
    );
    assert!(list_names(&env.store.join("blobs")).is_empty());
}

#[test]
fn a_store_in_a_world_writable_directory_without_sticky_bit_is_refused() {
    let env = Env::new();
    let open_dir = env.path("open");
    std::fs::create_dir(&open_dir).unwrap();
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("--store")
            .arg(open_dir.join("store"))
            .args(args)
            .env_remove("BEAKER_STORE");
        Run::from(cmd.output().unwrap())
    };
    run(&["store", "init"]).fails(
        2,
        &["writable by everyone and has no sticky bit", "chmod +t"],
    );
    assert!(!open_dir.join("store").exists(), "nothing created");
    // A store made safely, whose parent later becomes world-writable, is refused too.
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    run(&["store", "init"]).ok();
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    run(&["store", "ls"]).fails(2, &["writable by everyone and has no sticky bit"]);
}

fn spawn_as(user: &User, store: &Path, args: &[&str]) -> Child {
    as_user_cmd(user, "022", store, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

#[test]
fn without_locks_two_users_racing_keep_every_blob_correct() {
    // I1 with no locks at all: 8 processes of two users add the same content, 50 rounds.
    let Some(u) = users() else { return };
    let env = shared_env();
    group_store(&env, &u.alice, "none");
    for round in 0..50u64 {
        let data = bytes(64 * 1024 + round as usize, 1000 + round);
        let src = public_file(&env, &format!("r{round}"), &data);
        let s = src.to_str().unwrap();
        let children: Vec<Child> = (0..8)
            .map(|i| {
                let user = if i % 2 == 0 { &u.alice } else { &u.bob };
                spawn_as(
                    user,
                    &env.store,
                    &["store", "add", s, "--name", &format!("n{}", i % 4)],
                )
            })
            .collect();
        for c in children {
            Run::from(c.wait_with_output().unwrap()).ok();
        }
        assert_blobs_named_by_hash(&env.store);
        assert!(
            env.store.join("blobs").join(blake3_hex(&data)).exists(),
            "round {round}"
        );
    }
    assert!(
        list_names(&env.store.join("locks")).is_empty(),
        "locking = none takes no locks"
    );
    assert_group_policy(&env.store, u.lab_gid);
}

/// `fs.protected_hardlinks` (on by default) forbids bob to hard-link alice's 0444 blob, so his
/// snapshot of the same content under another file name is a symlink to the blob instead: it
/// opens the right bytes, verify accepts it, and gc after rm frees what no name uses.
#[test]
fn bob_snapshots_alices_blob_through_a_symlink_where_links_are_refused() {
    let Some(u) = users() else { return };
    let env = shared_env();
    init_group_store(&env, &u.alice);
    let data = bytes(20_000, 8);
    let a = public_file(&env, "alice.onnx", &data);
    let b = public_file(&env, "bob.onnx", &data);
    as_user(
        &u.alice,
        &env.store,
        &["store", "add", a.to_str().unwrap(), "--name", "a"],
    )
    .ok();
    let printed = as_user(
        &u.bob,
        &env.store,
        &["store", "add", b.to_str().unwrap(), "--name", "b"],
    )
    .ok();
    assert!(printed.ends_with("/bob.onnx"), "{printed}");
    assert_eq!(std::fs::read(&printed).unwrap(), data);
    let protected =
        std::fs::read_to_string("/proc/sys/fs/protected_hardlinks").is_ok_and(|v| v.trim() == "1");
    let meta = std::fs::symlink_metadata(&printed).unwrap();
    if protected {
        assert!(
            meta.file_type().is_symlink(),
            "a link to alice's blob is refused"
        );
        assert_eq!(
            std::fs::read_link(&printed).unwrap(),
            Path::new("../../blobs").join(blake3_hex(&data))
        );
    }
    assert_group_policy(&env.store, u.lab_gid);
    let v: serde_json::Value = as_user(&u.bob, &env.store, &["--json", "store", "verify"]).json();
    assert_eq!(v["snapshots_rebuilt"], serde_json::json!([]), "{v}");
    as_user(&u.alice, &env.store, &["store", "rm", "-y", "a", "b"]).ok();
    assert!(env.blob_names().is_empty());
    assert!(list_names(&env.store.join("snapshots")).is_empty());
}
