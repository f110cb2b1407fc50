//! Regression tests for the holes [harden] closed in the publish protocol, each through the real
//! binary: resuming into a published blob through a hard-linked partial (I2), the fast path
//! recording a name before `blobs/` is durable (I3), and a full disk / `ulimit -f` leaving a
//! partial that keeps the disk full or a process killed by SIGXFSZ with no message.
//!
//! Crashes and system-call order are made observable with an LD_PRELOAD shim (built with `cc`,
//! as in `core::broken_flock`): it logs `fsync`/`rename` with the paths they act on, and can
//! SIGKILL the process right after a `link` into `blobs/` — exactly between the two calls of the
//! no-clobber fallback that `BEAKER_NO_RENAME_NOREPLACE=1` forces on ext4.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use testkit::server::Fault;

use crate::pull::{partials, pull, pull_cmd, LEN};
use crate::support::*;

const SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* SYSLOG_FILE=path: append "fsync <path>" and "rename <from> <to>" lines, in call order.
   KILL_AFTER_BLOB_LINK=1: SIGKILL this process right after a successful link into blobs/. */

static void log_line(const char *what, const char *a, const char *b) {
    const char *file = getenv("SYSLOG_FILE");
    if (!file) return;
    FILE *f = fopen(file, "a");
    if (!f) return;
    fprintf(f, "%s %s%s%s\n", what, a, b ? " " : "", b ? b : "");
    fclose(f);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = dlsym(RTLD_NEXT, "fsync");
    char proc[64], path[PATH_MAX];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, path, sizeof path - 1);
    if (n > 0) { path[n] = 0; log_line("fsync", path, NULL); }
    return real(fd);
}

int rename(const char *from, const char *to) {
    static int (*real)(const char *, const char *);
    if (!real) real = dlsym(RTLD_NEXT, "rename");
    log_line("rename", from, to);
    return real(from, to);
}

/* The full path of `name` relative to directory descriptor `fd` (beaker reaches everything in a
   store through *at calls on descriptors). */
static void at_path(int fd, const char *name, char *out, size_t len) {
    if (name[0] == '/' || fd == AT_FDCWD) { snprintf(out, len, "%s", name); return; }
    char proc[64], dir[PATH_MAX];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, dir, sizeof dir - 1);
    if (n <= 0) { snprintf(out, len, "%s", name); return; }
    dir[n] = 0;
    snprintf(out, len, "%s/%s", dir, name);
}

int renameat2(int fd1, const char *from, int fd2, const char *to, unsigned int flags) {
    static int (*real)(int, const char *, int, const char *, unsigned int);
    if (!real) real = dlsym(RTLD_NEXT, "renameat2");
    char a[PATH_MAX], b[PATH_MAX];
    at_path(fd1, from, a, sizeof a);
    at_path(fd2, to, b, sizeof b);
    log_line("rename", a, b);
    return real(fd1, from, fd2, to, flags);
}

int renameat(int fd1, const char *from, int fd2, const char *to) {
    static int (*real)(int, const char *, int, const char *);
    if (!real) real = dlsym(RTLD_NEXT, "renameat");
    char a[PATH_MAX], b[PATH_MAX];
    at_path(fd1, from, a, sizeof a);
    at_path(fd2, to, b, sizeof b);
    log_line("rename", a, b);
    return real(fd1, from, fd2, to);
}

static void maybe_die(const char *to) {
    const char *k = getenv("KILL_AFTER_BLOB_LINK");
    if (k && strcmp(k, "1") == 0 && strstr(to, "/blobs/")) raise(SIGKILL);
}

int link(const char *from, const char *to) {
    static int (*real)(const char *, const char *);
    if (!real) real = dlsym(RTLD_NEXT, "link");
    int rc = real(from, to);
    if (rc == 0) maybe_die(to);
    return rc;
}

int linkat(int fd1, const char *from, int fd2, const char *to, int flags) {
    static int (*real)(int, const char *, int, const char *, int);
    if (!real) real = dlsym(RTLD_NEXT, "linkat");
    int rc = real(fd1, from, fd2, to, flags);
    char b[PATH_MAX];
    at_path(fd2, to, b, sizeof b);
    if (rc == 0) maybe_die(b);
    return rc;
}
"#;

/// The shim, built once per test run.
fn shim() -> &'static Path {
    static SHIM_SO: OnceLock<PathBuf> = OnceLock::new();
    SHIM_SO.get_or_init(|| build_shim("syslog", SHIM))
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    format!("{:x}", md5::Md5::digest(bytes))
}

/// A catalogue with one upstream-only entry `m` (md5, no size, no blake3), like the bundled ones.
fn md5_catalogue(env: &Env, md5: &str, url: &str) -> PathBuf {
    env.file(
        "catalogue/models.toml",
        format!("version = 1\n[models.m]\nmd5 = \"{md5}\"\nurls = [\"{url}\"]\n").as_bytes(),
    )
}

#[test]
fn a_pull_killed_between_link_and_unlink_never_lets_resume_write_into_the_blob() {
    let (env, server) = (Env::new(), http_server());
    let good = bytes(LEN, 41);
    server.route("/m", &good, &[], Fault::None);
    let cat = md5_catalogue(&env, &md5_hex(&good), &server.url("/m"));

    // Pull 1 publishes through link+unlink and is killed between the two: the blob is named,
    // its temp name is still a second link to it, and no name is recorded.
    let killed = pull_cmd(&env, &cat)
        .env("BEAKER_NO_RENAME_NOREPLACE", "1")
        .env("LD_PRELOAD", shim())
        .env("KILL_AFTER_BLOB_LINK", "1")
        .arg("m")
        .status()
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&killed),
        Some(9),
        "the shim kills the pull after link"
    );
    let blob = env.store.join("blobs").join(blake3_hex(&good));
    assert_eq!(std::fs::read(&blob).unwrap(), good);
    let leftover = partials(&env);
    assert_eq!(leftover.len(), 1, "the crash left the temp name behind");
    let meta = std::fs::metadata(env.store.join("tmp").join(&leftover[0])).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::nlink(&meta), 2);

    // Pull 2 (as root in CI, where 0444 does not stop a writer) would find that partial. The
    // server now ignores Range and serves other bytes: resuming into the partial would truncate
    // and overwrite the published blob.
    let evil = bytes(LEN, 42);
    server.route("/m", &evil, &[], Fault::IgnoreRange);
    pull(&env, &cat, &["m"]).fails(1, &["md5 mismatch"]);
    assert_eq!(
        std::fs::read(&blob).unwrap(),
        good,
        "the published blob is untouched (I2)"
    );
    assert_blobs_named_by_hash(&env.store);

    // And with the right bytes served again, the model is pulled and named.
    server.route("/m", &good, &[], Fault::None);
    assert_model_file(&env.store, &pull(&env, &cat, &["m"]).ok(), &good);
}

#[test]
fn the_link_fallback_publishes_the_same_blob_and_leaves_no_temp_file() {
    let (env, server) = (Env::new(), http_server());
    let body = bytes(LEN, 43);
    server.route("/m", &body, &[], Fault::None);
    let cat = md5_catalogue(&env, &md5_hex(&body), &server.url("/m"));
    let r = Run::from(
        pull_cmd(&env, &cat)
            .env("BEAKER_NO_RENAME_NOREPLACE", "1")
            .arg("m")
            .output()
            .unwrap(),
    );
    assert_model_file(&env.store, &r.ok(), &body);
    assert!(partials(&env).is_empty());
    assert_blobs_named_by_hash(&env.store);
}

#[test]
fn the_fast_path_syncs_blobs_dir_before_recording_a_name() {
    let env = Env::new();
    let body = bytes(1000, 44);
    let src = env.file("model.bin", &body);
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "first"])
        .ok();
    // A catalogue entry with the blob's BLAKE3: `pull` takes the fast path and only records it.
    let cat = env.file(
        "catalogue/models.toml",
        format!(
            "version = 1\n[models.second]\nblake3 = \"{}\"\nsize = {}\nurls = [\"http://127.0.0.1:9/x\"]\n",
            blake3_hex(&body),
            body.len()
        )
        .as_bytes(),
    );
    let log = env.path("syscalls.log");
    let r = Run::from(
        pull_cmd(&env, &cat)
            .env("LD_PRELOAD", shim())
            .env("SYSLOG_FILE", &log)
            .arg("second")
            .output()
            .unwrap(),
    );
    r.ok();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    let blobs = env.store.join("blobs");
    let blobs_synced = log
        .lines()
        .position(|l| l == format!("fsync {}", blobs.display()))
        .unwrap_or_else(|| panic!("blobs/ never fsynced before recording:\n{log}"));
    let recorded = log
        .lines()
        .position(|l| l.starts_with("rename ") && l.ends_with("/names/second.toml"))
        .unwrap_or_else(|| panic!("the manifest was never rewritten:\n{log}"));
    assert!(
        blobs_synced < recorded,
        "blobs/ must be durable before the name (I3):\n{log}"
    );
}

/// Runs `cmd` with RLIMIT_FSIZE set to `bytes` (what `ulimit -f` sets).
fn with_file_size_limit(cmd: &mut Command, bytes: u64) -> &mut Command {
    #[allow(
        unsafe_code,
        reason = "pre_exec runs setrlimit(2), async-signal-safe, in the child"
    )]
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

#[test]
fn a_pull_past_ulimit_f_fails_cleanly_and_keeps_no_partial() {
    let (env, server) = (Env::new(), http_server());
    let body = bytes(LEN, 45);
    server.route("/m", &body, &[], Fault::None);
    let cat = crate::pull::catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    env.run(&["store", "init"]).ok(); // the store's own files are written without the limit
    let r = Run::from(
        with_file_size_limit(pull_cmd(&env, &cat).arg("m"), 100_000)
            .output()
            .unwrap(),
    );
    r.fails(
        1,
        &["file size limit exceeded", "ulimit -f", "beaker store gc"],
    );
    assert!(
        partials(&env).is_empty(),
        "a partial that hit the limit is deleted"
    );
    assert!(env.blob_names().is_empty());
    // Nothing blocks the next pull.
    pull(&env, &cat, &["m"]).ok();
    assert_blobs_named_by_hash(&env.store);
}

#[test]
fn an_add_past_ulimit_f_fails_cleanly_and_leaves_nothing() {
    let env = Env::new();
    let src = env.file("big.bin", &bytes(LEN, 46));
    env.run(&["store", "init"]).ok();
    let r = Run::from(
        with_file_size_limit(
            env.cmd()
                .args(["store", "add", src.to_str().unwrap(), "--name", "big"]),
            100_000,
        )
        .output()
        .unwrap(),
    );
    r.fails(1, &["file size limit exceeded"]);
    assert!(list_names(&env.store.join("tmp")).is_empty());
    assert!(env.blob_names().is_empty());
}

#[test]
fn adding_a_fifo_is_refused_at_once() {
    let env = Env::new();
    let fifo = env.path("pipe.onnx");
    mkfifo(&fifo);
    let mut child = env
        .cmd()
        .args(["store", "add", fifo.to_str().unwrap(), "--name", "p"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("`store add` of a FIFO hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Run::from(child.wait_with_output().unwrap()).fails(2, &["not a regular file"]);
    assert!(env.blob_names().is_empty());
}

#[test]
fn a_full_disk_deletes_the_partial_and_the_gc_the_error_names_frees_the_rest() {
    if !root_only("mounts a small tmpfs to fill a real disk (ENOSPC)") {
        return;
    }
    let (mut env, server) = (Env::new(), http_server());
    let disk =
        testkit::lab::SmallDisk::mount(&env.path("disk"), 512).unwrap_or_else(|e| panic!("{e:#}"));
    env.store = disk.dir.join("store");
    let body = bytes(LEN, 47);
    server.route("/m", &body, &[], Fault::None);
    let cat = crate::pull::catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    env.run(&["store", "init"]).ok();
    // An abandoned download of something else fills most of the disk: its writer is gone and it
    // has not been touched for two minutes.
    let stale = env
        .store
        .join("tmp")
        .join(format!("{}.4242.0badf00d.part", "a".repeat(64)));
    std::fs::write(&stale, bytes(300_000, 48)).unwrap();
    std::fs::set_permissions(&stale, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    crate::maint::age(&stale, std::time::Duration::from_secs(120));

    pull(&env, &cat, &["m"]).fails(1, &["the disk is full", "beaker store gc --tmp-age 0"]);
    assert_eq!(
        partials(&env),
        [stale.file_name().unwrap().to_str().unwrap()],
        "only the stale partial is left"
    );
    assert!(env.blob_names().is_empty());

    // The command the error names frees the space, and the pull then works.
    env.run(&["store", "gc", "--tmp-age", "0"]).ok();
    assert!(!stale.exists());
    pull(&env, &cat, &["m"]).ok();
    assert_blobs_named_by_hash(&env.store);
    drop(disk);
}
