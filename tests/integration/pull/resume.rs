//! Resume through the real binary (docs/design.md#publish step 3): after a cut, a stall, SIGKILL or Ctrl-C the
//! next pull continues with `Range`; a server ignoring `Range` restarts from zero; `locking =
//! "none"` never resumes. Server-side gates and pauses place each interruption at a known byte.

use std::process::Stdio;
use std::time::{Duration, Instant};

use testkit::server::Fault;

use super::{blob_path, catalogue, partials, pull, pull_cmd, LEN};
use crate::support::*;

/// Waits (polling the file, bounded) until the one partial in tmp/ holds `at` bytes.
fn wait_for_partial(env: &Env, at: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while partials(env)
        .first()
        .map(|p| std::fs::metadata(env.store.join("tmp").join(p)).map_or(0, |m| m.len()))
        != Some(at as u64)
    {
        assert!(
            Instant::now() < deadline,
            "partial never reached {at} bytes"
        );
        std::thread::yield_now();
    }
}

#[test]
fn a_cut_download_is_resumed_with_range_by_the_next_pull() {
    let (env, server, body) = (Env::new(), http_server(), bytes(LEN, 3));
    server.route("/m", &body, &[Fault::CutAfter(100_000)], Fault::None);
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);

    let r = Run::from(
        pull_cmd(&env, &cat)
            .env("BEAKER_RETRIES", "0")
            .arg("m")
            .output()
            .unwrap(),
    );
    r.fails(
        1,
        &[
            "ended after 100000 of 300000 bytes",
            "the next pull resumes",
        ],
    );
    assert_eq!(partials(&env).len(), 1, "the partial is kept");
    assert!(env.blob_names().is_empty());

    assert_model_file(&env.store, &pull(&env, &cat, &["m"]).ok(), &body);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].range.as_deref(), Some("bytes=100000-"));
    assert_eq!(server.body_bytes(), LEN as u64, "no byte sent twice");
    assert!(partials(&env).is_empty());
    assert_blobs_named_by_hash(&env.store);
}

#[test]
fn a_cut_is_retried_within_one_pull() {
    let (env, server, body) = (Env::new(), http_server(), bytes(LEN, 4));
    server.route(
        "/m",
        &body,
        &[Fault::CutAfter(70_000), Fault::CutAfter(140_000)],
        Fault::None,
    );
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    assert_model_file(&env.store, &pull(&env, &cat, &["m"]).ok(), &body);
    let ranges: Vec<_> = server.seen().into_iter().map(|s| s.range).collect();
    assert_eq!(
        ranges,
        [
            None,
            Some("bytes=70000-".into()),
            Some("bytes=140000-".into())
        ]
    );
}

#[test]
fn a_stall_fails_after_the_stall_timeout_and_the_next_pull_resumes() {
    let (env, server, body) = (Env::new(), http_server(), bytes(LEN, 8));
    server.route(
        "/m",
        &body,
        &[Fault::StallAt(50_000, Duration::from_secs(5))],
        Fault::None,
    );
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);

    let t = Instant::now();
    let r = Run::from(
        pull_cmd(&env, &cat)
            .env("BEAKER_STALL_TIMEOUT", "300ms")
            .env("BEAKER_RETRIES", "0")
            .arg("m")
            .output()
            .unwrap(),
    );
    r.fails(1, &["stall timeout"]);
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "gave up after {:?}",
        t.elapsed()
    );
    assert_eq!(partials(&env).len(), 1);

    assert_model_file(&env.store, &pull(&env, &cat, &["m"]).ok(), &body);
    assert_eq!(server.seen()[1].range.as_deref(), Some("bytes=50000-"));
}

#[test]
fn a_server_ignoring_range_restarts_from_zero() {
    let (env, server, body) = (Env::new(), http_server(), bytes(LEN, 9));
    server.route("/m", &body, &[Fault::CutAfter(120_000)], Fault::IgnoreRange);
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    // The first answer is also range-ignoring, but it asked for no range: it is cut short.
    Run::from(
        pull_cmd(&env, &cat)
            .env("BEAKER_RETRIES", "0")
            .arg("m")
            .output()
            .unwrap(),
    )
    .fails(1, &["ended after"]);

    let r = pull(&env, &cat, &["m"]);
    assert_model_file(&env.store, &r.ok(), &body);
    assert!(r.stderr.contains("did not resume at byte 120000"), "{r:#?}");
    assert_eq!(server.seen()[1].range.as_deref(), Some("bytes=120000-"));
    assert_eq!(server.body_bytes(), 120_000 + LEN as u64);
    assert_eq!(std::fs::read(blob_path(&env, &body)).unwrap(), body);
    assert_blobs_named_by_hash(&env.store);
}

#[test]
fn sigkill_mid_download_then_the_next_pull_resumes() {
    const AT: usize = 110_000;
    let (env, server, body) = (Env::new(), http_server(), bytes(LEN, 13));
    server.route("/m", &body, &[Fault::Gate(AT)], Fault::None);
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);

    let mut child = pull_cmd(&env, &cat)
        .arg("m")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        server.wait_gate(std::time::Duration::from_secs(20)),
        "no request reached the gate"
    );
    // The server has sent AT bytes and holds the connection; wait until they are on disk.
    wait_for_partial(&env, AT);
    // While it holds the download lock, a bounded wait gives up and names the holder.
    let r = Run::from(
        pull_cmd(&env, &cat)
            .args(["m", "--lock-timeout", "200ms"])
            .output()
            .unwrap(),
    );
    r.fails(1, &["timed out", &format!("held by pid {}", child.id())]);

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    server.release_gate();

    assert_model_file(&env.store, &pull(&env, &cat, &["m"]).ok(), &body);
    assert_eq!(
        server.seen().last().unwrap().range,
        Some(format!("bytes={AT}-"))
    );
    assert_eq!(std::fs::read(blob_path(&env, &body)).unwrap(), body);
    assert!(partials(&env).is_empty());
    assert_blobs_named_by_hash(&env.store);
}

#[test]
fn sigint_leaves_a_resumable_partial() {
    const AT: usize = 90_000;
    let (env, server, body) = (Env::new(), http_server(), bytes(LEN, 18));
    server.route("/m", &body, &[Fault::Gate(AT)], Fault::None);
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    let mut cmd = pull_cmd(&env, &cat);
    // Ctrl-C must reach beaker even if this test runner inherited SIGINT ignored.
    let mut child = default_sigint(&mut cmd)
        .arg("m")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        server.wait_gate(std::time::Duration::from_secs(20)),
        "no request reached the gate"
    );
    wait_for_partial(&env, AT);
    send_signal(child.id(), libc::SIGINT);
    assert!(!child.wait().unwrap().success());
    server.release_gate();
    assert_eq!(partials(&env).len(), 1, "Ctrl-C keeps the partial");
    assert_model_file(&env.store, &pull(&env, &cat, &["m"]).ok(), &body);
    assert_eq!(
        server.seen().last().unwrap().range,
        Some(format!("bytes={AT}-"))
    );
}

#[test]
fn without_locks_nothing_is_resumed_but_the_result_is_still_right() {
    let (env, server, body) = (Env::new(), http_server(), bytes(LEN, 19));
    server.route("/m", &body, &[Fault::CutAfter(100_000)], Fault::None);
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    env.run(&["store", "init", "--locking", "none"]).ok();
    Run::from(
        pull_cmd(&env, &cat)
            .env("BEAKER_RETRIES", "0")
            .arg("m")
            .output()
            .unwrap(),
    )
    .fails(1, &["ended after"]);
    assert_model_file(&env.store, &pull(&env, &cat, &["m"]).ok(), &body);
    assert_eq!(
        server.seen()[1].range,
        None,
        "a live writer cannot be told from a dead one without locks"
    );
    assert_blobs_named_by_hash(&env.store);
}
