//! [shared] with real Unix users: `beaker-alice` and `beaker-bob` (each with a primary group of
//! their own) share a store through the group `beaker-lab`; `beaker-eve` is not in it.
//!
//! These tests create users and groups, so they need root. Run as another user (a laptop) each
//! says "not run: <test>: <reason>" on stderr and returns, so `cargo test` stays green; CI runs as
//! root and sets `BEAKER_TEST_REQUIRE_ROOT=1`, which turns "not run" into a failure: a multi-user
//! guarantee nobody tested is not a guarantee (see `testkit::users::root_only`).
//!
//! Modules: `store` (one group store), `pull` (pull, gc and prune-locks across users), `evict`
//! (use records and eviction across users), `root_only` (the root-only switch itself).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::*;

mod evict;
mod pull;
mod root_only;
mod store;

pub use testkit::users::{User, GROUP};

pub struct Users {
    pub alice: User,
    pub bob: User,
    pub eve: User,
    pub lab_gid: u32,
    /// A copy of the beaker binary every user can execute (the build tree may not be reachable).
    pub bin: PathBuf,
}

/// The users, group and binary copy, created once per test run — or `None` when not root (the
/// test then returns after `root_only` said why it did not run, or failed under
/// `BEAKER_TEST_REQUIRE_ROOT=1`).
pub fn users() -> Option<&'static Users> {
    root_only(&format!(
        "it creates the users beaker-alice, beaker-bob, beaker-eve and the group {GROUP}"
    ))
    .then(created)
}

/// Creates (once per test run) the users, the group and a world-executable copy of the binary.
/// Only for tests that `users()` let run.
fn created() -> &'static Users {
    static USERS: OnceLock<Users> = OnceLock::new();
    USERS.get_or_init(|| {
        let all = testkit::users::create_all().unwrap_or_else(|e| panic!("{e:#}"));
        let dir = std::env::temp_dir().join(format!("beaker-shared-bin-{}", std::process::id()));
        let bin =
            testkit::users::shared_binary(Path::new(BIN), &dir).unwrap_or_else(|e| panic!("{e:#}"));
        Users {
            alice: all.alice,
            bob: all.bob,
            eve: all.eve,
            lab_gid: all.lab_gid,
            bin,
        }
    })
}

/// A test directory every user can create things in (sticky, like /tmp).
pub fn shared_env() -> Env {
    let env = Env::new();
    testkit::users::open_to_all(env.dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
    env
}

/// `beaker --store S args…` as `user`, with the user's groups and the given umask.
pub fn as_user_cmd(user: &User, umask: &str, store: &Path, args: &[&str]) -> Command {
    let mut c = testkit::users::as_user_cmd(user, umask, &created().bin, store);
    c.args(args);
    c
}

pub fn as_user(user: &User, store: &Path, args: &[&str]) -> Run {
    as_user_with_umask(user, "022", store, args)
}

pub fn as_user_with_umask(user: &User, umask: &str, store: &Path, args: &[&str]) -> Run {
    Run::from(
        as_user_cmd(user, umask, store, args)
            .output()
            .expect("spawn setpriv"),
    )
}

/// A file any user can read.
pub fn public_file(env: &Env, rel: &str, bytes: &[u8]) -> PathBuf {
    let p = env.file(rel, bytes);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    p
}

/// Asserts the group-store policy on every directory and file.
pub fn assert_group_policy(store: &Path, lab_gid: u32) {
    for entry in walkdir::WalkDir::new(store)
        .into_iter()
        .filter_map(Result::ok)
    {
        let p = entry.path();
        let m = std::fs::symlink_metadata(p).unwrap();
        let mode = m.mode() & 0o7777;
        if m.is_dir() {
            assert_eq!(m.gid(), lab_gid, "{} group", p.display());
            assert_eq!(mode, 0o2775, "{} mode {mode:o}", p.display());
        } else if m.file_type().is_symlink() && p.starts_with(store.join("snapshots")) {
            // A symlink farm entry (where protected_hardlinks refused a link): to its blob.
            let target = std::fs::read_link(p).unwrap();
            assert!(target.starts_with("..") && target.to_string_lossy().contains("blobs/"));
        } else if p.parent().is_some_and(|d| d.ends_with("blobs"))
            || p.starts_with(store.join("snapshots"))
        {
            assert_eq!(mode, 0o444, "{} mode {mode:o}", p.display());
            assert_eq!(m.gid(), lab_gid, "{} group", p.display());
        } else if p.parent().is_some_and(|d| d.ends_with("tmp")) {
            assert_eq!(mode, 0o600, "{} temp files stay private", p.display());
        } else {
            assert_eq!(m.gid(), lab_gid, "{} group", p.display());
            assert_eq!(mode, 0o664, "{} mode {mode:o}", p.display());
        }
    }
}

/// `alice`/`bob` runs `store init --shared group --group beaker-lab --locking LOCKING`.
pub fn group_store(env: &Env, user: &User, locking: &str) {
    let args = [
        "store",
        "init",
        "--shared",
        "group",
        "--group",
        GROUP,
        "--locking",
        locking,
    ];
    as_user(user, &env.store, &args).ok();
}
