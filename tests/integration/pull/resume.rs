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
    assert!(
        r.stderr.contains("did not resume at 117.19 KiB (40 %)"),
        "{r:#?}"
    );
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
        .start();
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

// Unix only: signals.
#[cfg(unix)]
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
        .start();
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

// Unix only: a pseudo-terminal made by python3.
#[cfg(unix)]
/// `cmd` run with its stdout and stderr on a pseudo-terminal 100 columns wide (so beaker draws
/// its bar), through a small python parent; returns the exit code (minus the signal that
/// killed it) and everything the terminal received.
fn in_a_terminal(cmd: &std::process::Command) -> (i32, String) {
    // With INTERRUPT_ON set, Ctrl-C (SIGINT) is sent once the terminal shows that text.
    const PARENT: &str = "import fcntl, os, pty, signal, struct, sys, termios\nwhen = os.environ.pop('INTERRUPT_ON', None)\npid, fd = pty.fork()\nif pid == 0:\n    os.execv(sys.argv[1], sys.argv[1:])\nfcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 30, 100, 0, 0))\nout = b''\nwhile True:\n    try:\n        data = os.read(fd, 65536)\n    except OSError:\n        break\n    if not data:\n        break\n    out += data\n    if when and when.encode() in out:\n        os.kill(pid, signal.SIGINT)\n        when = None\n_, status = os.waitpid(pid, 0)\nsys.stdout.buffer.write(out + b'\\nEXIT %d\\n' % os.waitstatus_to_exitcode(status))\n";
    let mut py = std::process::Command::new("python3");
    py.arg("-c")
        .arg(PARENT)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => py.env(k, v),
            None => py.env_remove(k),
        };
    }
    let out = py.output().expect("run python3");
    assert!(
        out.status.success(),
        "the terminal's parent failed: {out:?}"
    );
    // The child's exit code (negative: the signal that killed it) is the last line.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (screen, code) = text
        .trim_end()
        .rsplit_once("\nEXIT ")
        .expect("the exit line");
    (
        code.trim().parse().expect("an exit code"),
        screen.to_owned(),
    )
}

/// `12.5 KiB` → bytes.
fn parse_size(text: &str) -> Option<f64> {
    let (n, unit) = text.split_once(' ')?;
    let mul = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(n.parse::<f64>().ok()? * mul)
}

// Unix only: a pseudo-terminal made by python3.
#[cfg(unix)]
/// In a terminal, the bar of a download that a server makes start over (it ignores Range)
/// starts over with it: never more bytes than the file has, no absurd speed, and the restart
/// said in units, not a byte offset.
#[test]
fn in_a_terminal_the_bar_starts_over_with_a_download_that_starts_over() {
    let (env, server, body) = (Env::new(), http_server(), bytes(LEN, 21));
    server.route(
        "/m",
        &body,
        &[Fault::CutAfter(120_000)],
        Fault::IgnoreRangeDrip(15_000, Duration::from_millis(60)),
    );
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    let mut cmd = pull_cmd(&env, &cat);
    cmd.env("BEAKER_RETRY_BASE", "20ms").arg("m");
    let (code, screen) = in_a_terminal(&cmd);
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("did not resume at 117.19 KiB (40 %)"),
        "{screen}"
    );
    let total = LEN as f64;
    let mut frames = 0;
    for frame in screen.split(['\r', '\n']) {
        // `… [====>   ] 117.19 KiB/292.97 KiB 1.2 MiB/s eta 1s`
        let Some((_, after)) = frame.rsplit_once("] ") else {
            continue;
        };
        let words: Vec<&str> = after.split_whitespace().collect();
        let Some(slash) = words.iter().position(|w| w.contains('/')) else {
            continue;
        };
        let (pos_unit, total_n) = words[slash].split_once('/').unwrap();
        let (Some(pos), Some(of)) = (
            parse_size(&format!("{} {pos_unit}", words[slash - 1])),
            parse_size(&format!(
                "{total_n} {}",
                words.get(slash + 1).unwrap_or(&"")
            )),
        ) else {
            continue;
        };
        frames += 1;
        assert!((of - total).abs() < 1024.0, "{frame}");
        assert!(pos <= of, "the bar passed 100 %: {frame}");
        assert!(!frame.contains("GiB/s"), "an absurd speed: {frame}");
    }
    assert!(frames >= 3, "the bar was drawn {frames} times: {screen}");
}

// Unix only: signals.
// Unix only: a pseudo-terminal made by python3.
#[cfg(unix)]
#[cfg(unix)]
/// Ctrl-C in a terminal: beaker says, on a line of its own, that it was interrupted and that
/// the partial download is kept, dies of SIGINT (as a shell expects), and the next pull
/// resumes.
#[test]
fn ctrl_c_in_a_terminal_says_what_is_kept_and_the_next_pull_resumes() {
    let (env, server, body) = (Env::new(), http_server(), bytes(LEN, 22));
    server.route(
        "/m",
        &body,
        &[Fault::Drip(10_000, Duration::from_millis(100))],
        Fault::None,
    );
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    let mut cmd = pull_cmd(&env, &cat);
    default_sigint(&mut cmd)
        .env("INTERRUPT_ON", "KiB/")
        .arg("m");
    let (code, screen) = in_a_terminal(&cmd);
    assert_eq!(code, -libc::SIGINT, "killed by SIGINT: {screen}");
    assert!(
        screen.contains("\nbeaker: interrupted; a download in progress is kept"),
        "{screen}"
    );
    assert_eq!(partials(&env).len(), 1, "the partial is kept");
    assert_model_file(&env.store, &pull(&env, &cat, &["m"]).ok(), &body);
    assert!(server.seen().last().unwrap().range.is_some(), "resumed");
}

// Unix only: a pseudo-terminal made by python3.
#[cfg(unix)]
/// `--no-progress` (or `BEAKER_NO_PROGRESS=1`) in a terminal: no bar, the log lines instead.
#[test]
fn no_progress_in_a_terminal_draws_no_bar() {
    let (env, server, body) = (Env::new(), http_server(), bytes(LEN, 23));
    server.route(
        "/m",
        &body,
        &[Fault::Drip(50_000, Duration::from_millis(60))],
        Fault::Drip(50_000, Duration::from_millis(60)),
    );
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    for how in ["flag", "env"] {
        let _ = std::fs::remove_dir_all(&env.store);
        let mut cmd = pull_cmd(&env, &cat);
        match how {
            "flag" => cmd.arg("--no-progress"),
            _ => cmd.env("BEAKER_NO_PROGRESS", "1"),
        };
        let (code, screen) = in_a_terminal(cmd.arg("m"));
        assert_eq!(code, 0, "{how}: {screen}");
        assert!(
            !screen.contains("\u{1b}[2K") && !screen.contains("=>"),
            "{how}: a bar: {screen}"
        );
        assert!(screen.contains("m: 292.97 KiB in"), "{how}: {screen}");
    }
}

/// A writer killed on this host whose flock outlives it for a moment (FUSE filesystems release a
/// dead process's descriptors asynchronously; R8 met it on the test filesystem): the next pull
/// waits for the release and resumes, instead of downloading everything again.
#[test]
fn a_dead_writers_flock_still_in_flight_is_waited_for_and_the_partial_resumed() {
    const AT: usize = 80_000;
    let (env, server, body) = (Env::new(), http_server(), bytes(LEN, 24));
    server.route("/m", &body, &[Fault::Gate(AT)], Fault::None);
    let cat = catalogue(&env, &[("m", &body, vec![server.url("/m")])]);
    let mut child = pull_cmd(&env, &cat)
        .arg("m")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .start();
    assert!(server.wait_gate(Duration::from_secs(20)), "no request");
    wait_for_partial(&env, AT);
    child.kill().unwrap();
    child.wait().unwrap();
    server.release_gate();
    // The dead writer's lock, as the filesystem still holds it: released 300 ms from now.
    let partial = env.store.join("tmp").join(&partials(&env)[0]);
    let held = std::fs::File::open(&partial).unwrap();
    fs2::FileExt::lock_exclusive(&held).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let releaser = std::thread::spawn(move || {
        let _ = rx.recv_timeout(Duration::from_millis(300));
        drop(held);
    });
    let r = pull(&env, &cat, &["m"]);
    drop(tx);
    releaser.join().unwrap();
    assert_model_file(&env.store, &r.ok(), &body);
    assert_eq!(
        server.seen().last().unwrap().range,
        Some(format!("bytes={AT}-")),
        "resumed once the lock was released"
    );
}
