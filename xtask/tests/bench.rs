//! `cargo xtask bench` at a tiny size, so the bench cannot rot: every job runs against the real
//! beaker binary and the built-in HTTP server, and every row of the report is there. No timing is
//! asserted (the machine is shared); what is asserted is what the bench reports as facts: the
//! rows, the server it used, the one download eight concurrent pulls cost, the notes it keeps.
// The test writes its own scratch files, outside any store, with plain std::fs.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

/// The beaker binary of this build (`cargo build --bin beaker`, a no-op when it is fresh), next
/// to the xtask binary.
fn beaker_binary() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--package", "beaker", "--bin", "beaker"])
        .current_dir(root)
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --bin beaker failed");
    let bin = Path::new(XTASK).with_file_name("beaker");
    assert!(bin.is_file(), "no beaker binary at {}", bin.display());
    bin
}

#[test]
fn bench_at_a_tiny_size_produces_every_row_and_keeps_the_notes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("BENCHMARKS.md");
    let notes = "<!-- hand-written notes below: kept by `cargo xtask bench` -->\n\nWhere the time goes: kept.\n";
    std::fs::write(&out, format!("# old table\n\n{notes}")).unwrap();
    let work = dir.path().join("work");
    let o = Command::new(XTASK)
        .args([
            "bench",
            "--size",
            "1M",
            "--runs",
            "1",
            "--names",
            "50",
            "--gc-blobs",
            "20",
        ])
        .arg("--builtin-server")
        .arg("--beaker")
        .arg(beaker_binary())
        .arg("--work")
        .arg(&work)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    let report = std::fs::read_to_string(&out).unwrap();
    for row in [
        "| P1 pull (verified, durable) |",
        "| P2 cache hit (`store path`) |",
        "| P3 add (durable) |",
        "| P4 verify |",
        "| P5 8 concurrent pulls |",
        "| P6 gc, 20 blobs half dead |",
        "| P7 peak RSS, 1 MiB pull/add |",
        "| P8 scale: add at 50 names |",
        "| P8 scale: rm at 50 names |",
        "| P8 scale: ls at 50 names |",
    ] {
        assert!(stdout.contains(row), "stdout lacks {row}:\n{stdout}");
        assert!(report.contains(row), "report lacks {row}:\n{report}");
    }
    assert!(report.starts_with("# Benchmarks\n"), "{report}");
    assert!(!report.contains("# old table"), "{report}");
    assert!(
        report.ends_with(notes),
        "the hand-written notes were not kept:\n{report}"
    );
    assert!(report.contains("built-in static server"), "{report}");
    // Eight pulls at once into an empty store download the model once, and all succeed.
    assert!(report.contains("per run: 1 body, 8/8 ok"), "{report}");
    assert!(!work.exists(), "the scratch directory was left behind");
}

#[test]
fn bench_refuses_an_unknown_job_before_doing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("B.md");
    let o = Command::new(XTASK)
        .args([
            "bench",
            "--jobs",
            "P1,P99",
            "--beaker",
            "/nonexistent/beaker",
            "--out",
        ])
        .arg(&out)
        .arg("--work")
        .arg(dir.path().join("work"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("unknown job P99"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn a_run_of_some_jobs_only_leaves_benchmarks_md_alone() {
    let report = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("BENCHMARKS.md");
    let before = std::fs::read(&report).ok();
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(XTASK)
        .args(["bench", "--jobs", "P2", "--size", "1M", "--runs", "1"])
        .arg("--builtin-server")
        .arg("--beaker")
        .arg(beaker_binary())
        .arg("--work")
        .arg(dir.path().join("work"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("| P2 cache hit (`store path`) |"),
        "{stdout}"
    );
    assert!(!stdout.contains("| P1 "), "{stdout}");
    assert!(stderr.contains("BENCHMARKS.md not written"), "{stderr}");
    assert_eq!(std::fs::read(&report).ok(), before);
}
