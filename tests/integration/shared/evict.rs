//! Use records and eviction with real users (root only, like `shared`): members of a group store
//! record uses of each other's models and evict each other's models; a user who may only read a
//! store reads models as before, its use simply not recorded.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use super::{
    as_user, as_user_with_umask, assert_group_policy, group_store, public_file, shared_env, users,
};
use crate::maint::evict::used;
use crate::support::*;

const DAY: Duration = Duration::from_secs(86_400);

fn names(run: &Run) -> Vec<String> {
    let rows: Vec<serde_json::Value> = run.json();
    rows.iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

fn record_mtime(store: &Path, name: &str) -> i64 {
    std::fs::symlink_metadata(store.join("uses").join(name))
        .expect("use record")
        .mtime()
}

#[test]
fn two_members_of_a_group_store_record_uses_and_evict_each_others_models() {
    let Some(u) = users() else { return };
    let env = shared_env();
    group_store(&env, &u.alice, "flock");
    let a = public_file(&env, "a.bin", &bytes(3000, 71));
    let b = public_file(&env, "b.bin", &bytes(3000, 72));
    as_user_with_umask(
        &u.alice,
        "077",
        &env.store,
        &["store", "add", a.to_str().unwrap(), "--name", "alices"],
    )
    .ok();
    as_user_with_umask(
        &u.bob,
        "077",
        &env.store,
        &["store", "add", b.to_str().unwrap(), "--name", "bobs"],
    )
    .ok();
    used(&env.store, "alices", 3 * DAY);
    used(&env.store, "bobs", 2 * DAY);
    // Bob uses Alice's model: his use is recorded in her record (0664, the store's group).
    let before = record_mtime(&env.store, "alices");
    as_user(&u.bob, &env.store, &["store", "path", "alices"]).ok();
    assert!(record_mtime(&env.store, "alices") > before + 86_400);
    assert_eq!(
        std::fs::symlink_metadata(env.store.join("uses/alices"))
            .unwrap()
            .uid(),
        u.alice.uid,
        "Alice's record, touched by Bob"
    );
    // So Bob's own model is now the least recently used: Alice's gc evicts it.
    let out: serde_json::Value = as_user(
        &u.alice,
        &env.store,
        &["--json", "store", "gc", "--max-size", "3000"],
    )
    .json();
    assert_eq!(out["evicted"][0]["name"], "bobs", "{out}");
    assert_eq!(
        names(&as_user(&u.bob, &env.store, &["--json", "store", "ls"])),
        ["alices"]
    );
    // And Bob evicts Alice's once it is old.
    used(&env.store, "alices", 3 * DAY);
    let out: serde_json::Value = as_user(
        &u.bob,
        &env.store,
        &["--json", "store", "gc", "--older-than", "1d"],
    )
    .json();
    assert_eq!(out["evicted"][0]["name"], "alices", "{out}");
    assert!(env.blob_names().is_empty());
    assert_group_policy(&env.store, u.lab_gid);
}

#[test]
fn pins_and_use_records_in_a_group_store_have_the_stores_modes() {
    let Some(u) = users() else { return };
    let env = shared_env();
    group_store(&env, &u.alice, "flock");
    let a = public_file(&env, "a.bin", &bytes(100, 73));
    as_user_with_umask(
        &u.alice,
        "077",
        &env.store,
        &["store", "add", a.to_str().unwrap(), "--name", "lab/m"],
    )
    .ok();
    as_user_with_umask(&u.bob, "077", &env.store, &["store", "pin", "lab/m"]).ok();
    assert_group_policy(&env.store, u.lab_gid);
    // Alice may unpin what Bob pinned.
    as_user(&u.alice, &env.store, &["store", "unpin", "lab/m"]).ok();
    assert!(list_names(&env.store.join("pins")).is_empty());
}

#[test]
fn recording_use_in_a_store_the_user_may_only_read_does_not_fail_the_read() {
    let Some(u) = users() else { return };
    let env = shared_env();
    // Alice's private store: Bob may read it (0755 directories, 0644 files), not write it.
    let a = public_file(&env, "a.bin", &bytes(500, 74));
    as_user(
        &u.alice,
        &env.store,
        &["store", "add", a.to_str().unwrap(), "--name", "m"],
    )
    .ok();
    used(&env.store, "m", 2 * DAY);
    let before = record_mtime(&env.store, "m");
    let printed = as_user(&u.bob, &env.store, &["store", "path", "m"]).ok();
    assert_model_file(&env.store, &printed, &bytes(500, 74));
    assert_eq!(
        record_mtime(&env.store, "m"),
        before,
        "not writable: not recorded"
    );
    // No record at all, and none can be created: the read still succeeds.
    std::fs::remove_file(env.store.join("uses/m")).unwrap();
    as_user(&u.bob, &env.store, &["store", "path", "m"]).ok();
    assert!(list_names(&env.store.join("uses")).is_empty());
    // ls as Bob still works and falls back to when the name was added.
    let rows: Vec<serde_json::Value> =
        as_user(&u.bob, &env.store, &["--json", "store", "ls"]).json();
    assert!(rows[0]["last_used"].is_string(), "{rows:?}");
}
