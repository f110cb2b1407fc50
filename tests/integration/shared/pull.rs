//! [shared] across pull, gc and prune-locks with real users (see `shared/mod.rs` for the set-up and
//! why these tests need root): one download serves every user, any member can clean up after
//! another, and planted files never redirect a pull.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use testkit::server::Fault;

use super::{
    as_user, as_user_cmd, assert_group_policy, group_store, public_file, shared_env, users, User,
};
use crate::support::*;

const LEN: usize = 200_000;

/// A catalogue every user can read, one entry per `(name, bytes, url)`.
fn catalogue(env: &Env, models: &[(String, Vec<u8>, String)]) -> PathBuf {
    let mut text = String::from("version = 1\n");
    for (name, bytes, url) in models {
        text.push_str(&format!(
            "[models.{name}]\nblake3 = \"{}\"\nsize = {}\nurls = [{url:?}]\n",
            blake3_hex(bytes),
            bytes.len()
        ));
    }
    let p = public_file(env, "catalogue.toml", text.as_bytes());
    std::fs::set_permissions(p.parent().unwrap(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    p
}

fn pull_args<'a>(manifest: &'a Path, names: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--manifest", manifest.to_str().unwrap(), "store", "pull"];
    v.extend_from_slice(names);
    v
}

fn spawn_as(user: &User, store: &Path, args: &[&str]) -> Child {
    as_user_cmd(user, "022", store, args)
        .env("BEAKER_RETRY_BASE", "20ms")
        .env("BEAKER_STALL_TIMEOUT", "10s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

#[test]
fn bob_gets_the_blob_alice_pulled_without_a_second_download() {
    let Some(u) = users() else { return };
    let env = shared_env();
    group_store(&env, &u.alice, "flock");
    let server = http_server();
    let body = bytes(LEN, 31);
    server.route("/m", &body, &[], Fault::None);
    let cat = catalogue(&env, &[("m".into(), body.clone(), server.url("/m"))]);

    let a = as_user(&u.alice, &env.store, &pull_args(&cat, &["m"])).ok();
    let b = as_user(&u.bob, &env.store, &pull_args(&cat, &["m"])).ok();
    assert_eq!(a, b);
    assert_eq!(server.requests(), 1, "bob's pull must not download again");
    assert_eq!(server.body_bytes(), LEN as u64);
    assert_eq!(std::fs::metadata(&a).unwrap().uid(), u.alice.uid);
    assert_group_policy(&env.store, u.lab_gid);
}

#[test]
fn bob_can_gc_a_blob_alice_left_unreferenced() {
    let Some(u) = users() else { return };
    let env = shared_env();
    group_store(&env, &u.alice, "flock");
    let v1 = public_file(&env, "v1", &bytes(5000, 32));
    let v2 = public_file(&env, "v2", &bytes(5000, 33));
    as_user(
        &u.alice,
        &env.store,
        &["store", "add", v1.to_str().unwrap(), "--name", "m"],
    )
    .ok();
    let old = as_user(&u.alice, &env.store, &["store", "path", "m", "--blob"]).ok();
    as_user(
        &u.alice,
        &env.store,
        &["store", "add", v2.to_str().unwrap(), "--name", "m"],
    )
    .ok();
    assert!(Path::new(&old).exists());
    let out: serde_json::Value = as_user(&u.bob, &env.store, &["--json", "store", "gc"]).json();
    assert_eq!(out["removed_blobs"].as_array().unwrap().len(), 1, "{out}");
    assert!(
        !Path::new(&old).exists(),
        "bob's gc removed alice's unreferenced blob"
    );
    as_user(&u.bob, &env.store, &["store", "path", "m"]).ok();
}

#[test]
fn alice_prunes_bobs_stale_locks_while_bobs_pulls_wait_unharmed() {
    let Some(u) = users() else { return };
    let env = shared_env();
    group_store(&env, &u.alice, "flock");
    let server = http_server();
    let (one, two) = (bytes(LEN, 34), bytes(LEN, 35));
    server.route("/one", &one, &[], Fault::None);
    server.route("/two", &two, &[Fault::Gate(LEN / 2)], Fault::None);
    let cat = catalogue(
        &env,
        &[
            ("one".into(), one.clone(), server.url("/one")),
            ("two".into(), two.clone(), server.url("/two")),
        ],
    );
    // bob's finished pull leaves a stale lock file behind.
    as_user(&u.bob, &env.store, &pull_args(&cat, &["one"])).ok();
    let stale = format!("{}.lock", blake3_hex(&one));
    assert!(env.store.join("locks").join(&stale).exists());

    // bob downloads `two` (stopped half-way by the server) and a second bob pull waits for it.
    let downloader = spawn_as(&u.bob, &env.store, &pull_args(&cat, &["two"]));
    assert!(
        server.wait_gate(std::time::Duration::from_secs(20)),
        "no request reached the gate"
    );
    let waiter = spawn_as(&u.bob, &env.store, &pull_args(&cat, &["two"]));

    let pruned: serde_json::Value =
        as_user(&u.alice, &env.store, &["--json", "store", "prune-locks"]).json();
    let removed: Vec<&str> = pruned["removed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(removed.contains(&stale.as_str()), "{pruned}");
    let held = format!("{}.lock", blake3_hex(&two));
    let held_rows = pruned["held"].as_array().unwrap();
    let row = held_rows
        .iter()
        .find(|h| h["name"] == held.as_str())
        .unwrap_or_else(|| panic!("{pruned}"));
    assert_eq!(row["holder"]["user"], "beaker-bob");

    server.release_gate();
    let d = Run::from(downloader.wait_with_output().unwrap()).ok();
    let w = Run::from(waiter.wait_with_output().unwrap()).ok();
    assert_eq!(d, w);
    assert_eq!(std::fs::read(&d).unwrap(), two);
    // The gate closes the connection after its first half; the downloader resumes the rest with
    // Range, and the waiter downloads nothing: every byte of each model crossed the wire once.
    assert_eq!(
        server.body_bytes() as usize,
        2 * LEN,
        "no byte downloaded twice"
    );
    assert!(
        server.seen().iter().any(|s| s.range.is_some()),
        "the cut download resumed"
    );
    assert_blobs_named_by_hash(&env.store);
}

#[test]
fn planted_symlinks_and_foreign_partials_never_redirect_a_pull() {
    let Some(u) = users() else { return };
    let env = shared_env();
    group_store(&env, &u.alice, "flock");
    let secret = env.path("alice-notes.txt");
    std::fs::write(&secret, b"alice's data").unwrap();
    std::os::unix::fs::lchown(&secret, Some(u.alice.uid), Some(u.alice.gid)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();

    let server = http_server();
    let body = bytes(LEN, 36);
    server.route("/m", &body, &[], Fault::None);
    let cat = catalogue(&env, &[("m".into(), body.clone(), server.url("/m"))]);
    let hex = blake3_hex(&body);
    // bob plants: a symlink at the blob lock alice's pull takes, a symlink posing as a resumable
    // partial, and a regular partial of his own full of garbage.
    let plant = |path: PathBuf| {
        std::os::unix::fs::symlink(&secret, &path).unwrap();
        std::os::unix::fs::lchown(&path, Some(u.bob.uid), Some(u.lab_gid)).unwrap();
    };
    plant(env.store.join("locks").join(format!("{hex}.lock")));
    plant(
        env.store
            .join("tmp")
            .join(format!("{hex}.4242.0badf00d.part")),
    );
    let garbage = env
        .store
        .join("tmp")
        .join(format!("{hex}.4243.0badf00e.part"));
    std::fs::write(&garbage, bytes(LEN / 2, 99)).unwrap();
    std::os::unix::fs::lchown(&garbage, Some(u.bob.uid), Some(u.lab_gid)).unwrap();

    let path = as_user(&u.alice, &env.store, &pull_args(&cat, &["m"])).ok();
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert_eq!(
        std::fs::read(&secret).unwrap(),
        b"alice's data",
        "written through a planted symlink"
    );
    let first = &server.seen()[0];
    assert_eq!(
        first.range, None,
        "alice must not resume from a partial she did not write"
    );
    assert!(
        std::fs::symlink_metadata(env.store.join("locks").join(format!("{hex}.lock")))
            .unwrap()
            .is_file()
    );
}

#[test]
fn without_locks_two_users_racing_pulls_and_adds_keep_every_blob_correct() {
    // I1 with no locks at all, 50 rounds: 4 pulls and 4 adds of the same model, alice and bob.
    let Some(u) = users() else { return };
    let env = shared_env();
    group_store(&env, &u.alice, "none");
    let server = http_server();
    let rounds = 50u64;
    let models: Vec<(String, Vec<u8>, String)> = (0..rounds)
        .map(|r| {
            let body = bytes(32 * 1024 + r as usize, 2000 + r);
            server.route(&format!("/r{r}"), &body, &[], Fault::None);
            (format!("r{r}"), body, server.url(&format!("/r{r}")))
        })
        .collect();
    let cat = catalogue(&env, &models);
    for (name, body, _) in &models {
        let src = public_file(&env, &format!("src-{name}"), body);
        let s = src.to_str().unwrap().to_owned();
        let children: Vec<Child> = (0..8)
            .map(|i| {
                let user = if i % 2 == 0 { &u.alice } else { &u.bob };
                if i < 4 {
                    spawn_as(user, &env.store, &pull_args(&cat, &[name.as_str()]))
                } else {
                    spawn_as(
                        user,
                        &env.store,
                        &["store", "add", &s, "--name", &format!("{name}-added")],
                    )
                }
            })
            .collect();
        for c in children {
            Run::from(c.wait_with_output().unwrap()).ok();
        }
        assert_blobs_named_by_hash(&env.store);
        assert!(
            env.store.join("blobs").join(blake3_hex(body)).exists(),
            "{name}"
        );
    }
    assert!(
        list_names(&env.store.join("locks")).is_empty(),
        "locking = none takes no locks"
    );
    assert_group_policy(&env.store, u.lab_gid);
}

/// On a store without locks, a lease bob holds in a file alice may not read (mode 0600, as his
/// umask 077 makes it, or on purpose) is judged by its size and mtime: alice's pull waits out its
/// silence, breaks it (or, where she may not rename it, goes on without a lease) and succeeds;
/// before, an unreadable lease made the pull spin to "the lock file changed under beaker".
#[test]
fn a_lease_alice_may_not_read_only_delays_her_pull() {
    let Some(u) = users() else { return };
    let env = shared_env();
    group_store(&env, &u.alice, "none");
    let server = http_server();
    let body = bytes(LEN, 35);
    server.route("/m", &body, &[], Fault::None);
    let cat = catalogue(&env, &[("m".into(), body.clone(), server.url("/m"))]);
    let lease = env
        .store
        .join("locks")
        .join(format!("{}.lease", blake3_hex(&body)));
    std::fs::write(
        &lease,
        "pid = 1\nuser = \"bob\"\nhost = \"elsewhere\"\nsince = \"x\"\n",
    )
    .unwrap();
    std::os::unix::fs::chown(&lease, Some(u.bob.uid), Some(u.lab_gid)).unwrap();
    std::fs::set_permissions(&lease, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = Run::from(
        as_user_cmd(&u.alice, "022", &env.store, &pull_args(&cat, &["m"]))
            .env("BEAKER_LEASE_SILENCE", "1")
            .args(["--lock-timeout", "30s"])
            .output()
            .unwrap(),
    );
    assert_model_file(&env.store, &r.ok(), &body);
    assert_eq!(server.bodies("/m"), 1);
}
