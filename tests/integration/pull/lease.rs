//! Lease files (docs/design.md#leases) on stores without working locks (`locking = "none"`),
//! through the real binary: concurrent pulls download once and the waiter names the holder; a
//! holder SIGKILLed on this host is replaced at once; a lease of another machine is broken only
//! after its silence, however far its mtime lies in the future; and whatever a member plants at
//! a lease path (a symlink out of the store, a FIFO, a directory) delays nothing and touches
//! nothing outside the store.

use std::process::Stdio;
use std::time::Duration;

use testkit::server::Fault;

use super::{catalogue, pull, pull_cmd, LEN};
use crate::support::*;

const AT: usize = 100_000;

fn lockless() -> Env {
    let env = Env::new();
    env.run(&["store", "init", "--locking", "none"]).ok();
    env
}

fn lease_path(env: &Env, body: &[u8]) -> std::path::PathBuf {
    env.store
        .join("locks")
        .join(format!("{}.lease", blake3::hash(body).to_hex()))
}

#[test]
fn on_a_lockless_store_concurrent_pulls_download_once_and_the_waiter_names_the_holder() {
    let (env, server, body) = (lockless(), http_server(), bytes(LEN, 61));
    // The body pauses half-way, so the second pull comes while the first downloads.
    let pause = Fault::PauseAt(AT, Duration::from_secs(2));
    server.route("/m", &body, &[pause], Fault::None);
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    // The pause must not read as a stall (the kit's stall timeout is 2 s, the pause's length):
    // a stall would be a second body, by the same pull, that this test does not count.
    let first = pull_cmd(&env, &cat)
        .arg("m")
        .env("BEAKER_STALL_TIMEOUT", "20s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .start();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // The lease file, with its holder's record (written just after it is made).
    let lease = loop {
        let text = std::fs::read_to_string(lease_path(&env, &body)).unwrap_or_default();
        if text.contains("pid = ") {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "no lease was taken");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(lease.contains(&format!("pid = {}", first.id())), "{lease}");
    pull(&env, &cat, &["m", "--lock-timeout", "300ms"])
        .fails(1, &["timed out", &format!("held by pid {}", first.id())]);
    let second = pull_cmd(&env, &cat)
        .arg("m")
        .env("BEAKER_STALL_TIMEOUT", "20s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .start();
    for child in [first, second] {
        let r = Run::from(child.wait_with_output().unwrap());
        assert_model_file(&env.store, &r.ok(), &body);
    }
    assert_eq!(server.bodies("/m"), 1, "one download for two pulls");
    assert!(!lease_path(&env, &body).exists(), "the lease is released");
    assert_blobs_named_by_hash(&env.store);
}

#[test]
fn a_lease_holder_killed_on_this_host_is_replaced_at_once() {
    let (env, server, body) = (lockless(), http_server(), bytes(LEN, 62));
    server.route("/m", &body, &[Fault::Gate(AT)], Fault::None);
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    let mut child = pull_cmd(&env, &cat)
        .arg("m")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .start();
    assert!(server.wait_gate(Duration::from_secs(20)), "no request");
    assert!(lease_path(&env, &body).exists());
    child.kill().unwrap(); // SIGKILL: the lease file stays behind
    child.wait().unwrap();
    server.release_gate();
    assert!(lease_path(&env, &body).exists());
    // Far less than the default silence (30 s): a dead pid of this host is not waited for.
    let r = Run::from(
        pull_cmd(&env, &cat)
            .env_remove("BEAKER_LEASE_SILENCE")
            .args(["m", "--lock-timeout", "10s"])
            .output()
            .unwrap(),
    );
    assert_model_file(&env.store, &r.ok(), &body);
    assert!(!lease_path(&env, &body).exists());
}

/// A lease as another machine (or a member pretending to be one) leaves it.
fn plant_foreign_lease(at: &std::path::Path) {
    std::fs::write(
        at,
        "pid = 1\nuser = \"mallory\"\nhost = \"elsewhere\"\nsince = \"2099-01-01T00:00:00Z\"\n",
    )
    .unwrap();
    // Its clock is 70 years ahead.
    let future = std::time::UNIX_EPOCH + Duration::from_secs(4_102_444_800);
    std::fs::File::options()
        .write(true)
        .open(at)
        .and_then(|f| f.set_modified(future))
        .unwrap();
}

#[test]
fn another_machines_lease_is_waited_for_its_silence_then_broken_whatever_its_mtime() {
    let (env, server, body) = (lockless(), http_server(), bytes(LEN, 63));
    server.route("/m", &body, &[], Fault::None);
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    plant_foreign_lease(&lease_path(&env, &body));
    // Within its silence it holds: a bounded wait names it.
    Run::from(
        pull_cmd(&env, &cat)
            .env("BEAKER_LEASE_SILENCE", "5")
            .args(["m", "--lock-timeout", "300ms"])
            .output()
            .unwrap(),
    )
    .fails(1, &["timed out", "mallory@elsewhere"]);
    assert_eq!(server.bodies("/m"), 0);
    // After it, the lease is broken and the pull downloads.
    let r = Run::from(
        pull_cmd(&env, &cat)
            .env("BEAKER_LEASE_SILENCE", "1")
            .args(["m", "--lock-timeout", "20s"])
            .output()
            .unwrap(),
    );
    assert_model_file(&env.store, &r.ok(), &body);
    assert!(!lease_path(&env, &body).exists());
    let left: Vec<_> = std::fs::read_dir(env.store.join("locks"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "nothing renamed aside is left: {left:?}");
}

// Unix only: a planted symlink (wine makes none).
#[cfg(unix)]
#[test]
fn whatever_a_member_plants_at_a_lease_path_delays_nothing_and_nothing_outside_is_touched() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"not the store's").unwrap();
    for plant in ["symlink", "fifo", "directory"] {
        let (env, server, body) = (lockless(), http_server(), bytes(LEN, 64));
        server.route("/m", &body, &[], Fault::None);
        let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
        let at = lease_path(&env, &body);
        match plant {
            "symlink" => std::os::unix::fs::symlink(&victim, &at).unwrap(),
            "fifo" => mkfifo(&at),
            _ => {
                std::fs::create_dir(&at).unwrap();
                std::os::unix::fs::symlink(&victim, at.join("inner")).unwrap();
            }
        }
        let r = run_within(
            pull_cmd(&env, &cat).args(["m", "--lock-timeout", "10s"]),
            Duration::from_secs(60),
        );
        assert_model_file(&env.store, &r.ok(), &body);
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            b"not the store's",
            "{plant}"
        );
        assert!(
            !at.exists() && std::fs::symlink_metadata(&at).is_err(),
            "{plant}"
        );
    }
}

#[test]
fn prune_locks_removes_a_dead_holders_lease_and_keeps_another_machines() {
    let env = lockless();
    let locks = env.store.join("locks");
    // A pull of this host killed long ago: its pid is gone.
    let dead = dead_pid();
    let host = beaker::sys::who::host();
    std::fs::write(
        locks.join("dead.lease"),
        format!(
            "pid = {dead}\nuser = \"me\"\nhost = \"{host}\"\nsince = \"2026-12-04T20:00:00Z\"\n"
        ),
    )
    .unwrap();
    plant_foreign_lease(&locks.join("foreign.lease"));
    let info = env.run(&["store", "info"]).ok();
    assert!(info.contains("foreign.lease"), "{info}");
    let r = env.run(&["store", "prune-locks"]);
    assert!(r.success(), "{}", r.describe());
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(out.contains("removed locks/dead.lease"), "{out}");
    assert!(out.contains("kept locks/foreign.lease: held"), "{out}");
    assert!(out.contains("mallory@elsewhere"), "{out}");
    assert!(!locks.join("dead.lease").exists());
    assert!(locks.join("foreign.lease").exists());
}
