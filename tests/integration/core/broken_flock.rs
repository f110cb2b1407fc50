//! Filesystems where flock(2) is refused or silently does nothing (some NFS, Lustre, GPFS mounts),
//! simulated for real processes by an LD_PRELOAD shim that replaces libc's `flock`. beaker must
//! refuse to run unlocked by accident, name the path and offer `locking = "none"`, and with
//! `locking = "none"` work correctly without ever calling flock.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::support::*;

const SHIM: &str = r#"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
/* NOFLOCK_MODE=enolck: every flock fails like a filesystem without lock support.
   NOFLOCK_MODE=noop:   every flock "succeeds" without locking anything. */
int flock(int fd, int op) {
    (void)fd; (void)op;
    const char *mode = getenv("NOFLOCK_MODE");
    if (mode && strcmp(mode, "noop") == 0) return 0;
    errno = ENOLCK;
    return -1;
}
"#;

/// The shim, built once per test run.
fn shim() -> &'static Path {
    static SHIM_SO: OnceLock<PathBuf> = OnceLock::new();
    SHIM_SO.get_or_init(|| build_shim("noflock", SHIM))
}

fn run_with(env: &Env, mode: &str, args: &[&str]) -> Run {
    Run::from(
        env.cmd()
            .env("LD_PRELOAD", shim())
            .env("NOFLOCK_MODE", mode)
            .args(args)
            .output()
            .expect("spawn"),
    )
}

#[test]
fn init_refuses_a_filesystem_where_flock_fails_and_offers_locking_none() {
    let env = Env::new();
    let r = run_with(&env, "enolck", &["store", "init"]);
    r.fails(
        1,
        &[
            "file locks do not work on the filesystem of",
            "locks",
            "locking = \"none\"",
        ],
    );
    assert!(
        !env.store.join("store.toml").exists(),
        "no store may be created that would run unlocked"
    );
    // The suggested remedy works, on the same filesystem, and finishes the half-made store.
    run_with(&env, "enolck", &["store", "init", "--locking", "none"]).ok();
    let src = env.file("m", &bytes(100_000, 50));
    let path = run_with(
        &env,
        "enolck",
        &["store", "add", src.to_str().unwrap(), "--name", "m"],
    )
    .ok();
    assert_eq!(std::fs::read(path).unwrap(), bytes(100_000, 50));
    assert_blobs_named_by_hash(&env.store);
}

#[test]
fn init_refuses_a_filesystem_where_flock_silently_does_nothing() {
    let env = Env::new();
    run_with(&env, "noop", &["store", "init"]).fails(
        1,
        &[
            "two descriptors could lock the same file at once",
            "locking = \"none\"",
        ],
    );
    assert!(!env.store.join("store.toml").exists());
}

#[test]
fn a_flock_store_moved_to_a_filesystem_without_locks_fails_clearly() {
    let env = Env::new();
    env.run(&["store", "init"]).ok();
    let src = env.file("m", b"bytes");
    run_with(
        &env,
        "enolck",
        &["store", "add", src.to_str().unwrap(), "--name", "m"],
    )
    .fails(1, &["file locks do not work", "locking = \"none\""]);
    assert_blobs_named_by_hash(&env.store);
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "m"])
        .ok();
}
