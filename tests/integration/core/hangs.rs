//! Item 5 of issue 8: paths that are not regular files must never hang beaker. A catalogue that
//! is a FIFO (opening one blocks until a writer appears) or `/dev/zero` (a read that never ends),
//! and a `file://` source that is a FIFO (which used to hang while holding the model's download
//! lock) are refused at once, exit 2, naming the path. Every run has a watchdog, so a regression
//! fails here instead of hanging the suite.

use std::time::Duration;

use crate::pull::{catalogue, pull_cmd};
use crate::support::*;

/// Far above what any of these runs needs (milliseconds), far below a CI job's patience.
const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn a_fifo_or_dev_zero_catalogue_is_refused_without_hanging() {
    let env = Env::new();
    let fifo = env.path("catalogue.fifo");
    mkfifo(&fifo);
    for path in [fifo.to_str().unwrap(), "/dev/zero"] {
        let kind = if path == "/dev/zero" {
            "device"
        } else {
            "FIFO"
        };
        // --manifest, BEAKER_MANIFEST, manifest check and gc --keep all read catalogues.
        run_within(
            env.cmd().args(["--manifest", path, "store", "pull", "m"]),
            LIMIT,
        )
        .fails(2, &[path, kind, "not a regular file"]);
        run_within(
            env.cmd()
                .env("BEAKER_MANIFEST", path)
                .args(["store", "pull", "m"]),
            LIMIT,
        )
        .fails(2, &[path, kind]);
        run_within(env.cmd().args(["manifest", "check", path]), LIMIT).fails(2, &[path, kind]);
        env.run(&["store", "init"]);
        run_within(env.cmd().args(["store", "gc", "--keep", path]), LIMIT)
            .fails(2, &[path, kind, "nothing was deleted"]);
    }
}

#[test]
fn a_catalogue_larger_than_the_cap_is_refused_with_a_message() {
    let env = Env::new();
    let big = env.path("huge.toml");
    // Sparse: 16 MiB + 1 byte of zeros, written in no time.
    let f = std::fs::File::create(&big).unwrap();
    f.set_len((16 << 20) + 1).unwrap();
    drop(f);
    run_within(
        env.cmd().args(["manifest", "check", big.to_str().unwrap()]),
        LIMIT,
    )
    .fails(2, &["huge.toml", "larger than 16777216 bytes"]);
}

#[test]
fn a_fifo_file_source_is_refused_without_hanging_and_the_lock_is_free_after() {
    let env = Env::new();
    let body = bytes(1000, 7);
    let cat = catalogue(&env, &[("m", &body, vec!["pipe.onnx".into()])]);
    let fifo = cat.parent().unwrap().join("pipe.onnx");
    mkfifo(&fifo);
    run_within(pull_cmd(&env, &cat).arg("m"), LIMIT).fails(
        2,
        &[
            fifo.to_str().unwrap(),
            "FIFO",
            "a file source must be a regular file",
        ],
    );
    // /dev/zero as a source: refused the same way, never read.
    let zero = env.file(
        "zero.toml",
        format!(
            "version = 1\n[models.z]\nblake3 = \"{}\"\nsize = 5\nurls = [\"file:///dev/zero\"]\n",
            blake3_hex(b"zeros")
        )
        .as_bytes(),
    );
    run_within(pull_cmd(&env, &zero).arg("z"), LIMIT).fails(2, &["/dev/zero", "device"]);
    // The refused pull released the model's download lock: a real file at the same path is
    // pulled at once, with no waiting on a holder.
    remove(&fifo);
    std::fs::write(&fifo, &body).unwrap();
    let run = run_within(
        pull_cmd(&env, &cat).args(["--lock-timeout", "5s", "m"]),
        LIMIT,
    );
    run.ok();
    assert!(!run.stderr.contains("waiting"), "{run:#?}");
}
