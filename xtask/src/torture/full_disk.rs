//! R6, a full disk and `ulimit -f`: a pull, an add and a multi-file pull that run out of space
//! (a 2 MiB tmpfs, root only) or past the file size limit (`ulimit -f` in the shell that starts
//! beaker). Each must exit 1 naming the cause, publish nothing (no blob, no name), and leave
//! nothing that blocks the store: once there is room (the tmpfs remounted larger, the limit
//! lifted) the same command succeeds, and the store then passes [`super::check`].

// Lists tmp/ and blobs/ of the store under test with raw std::fs (reads only).
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::Command;

use anyhow::Result;
use testkit::lab::{bytes, catalogue, run_within, ModelFile, Run, LIMIT};
use testkit::server::{Fault, Server};
use testkit::users::{root_decision, RootOnly};

use super::check::check_store;
use super::{Ctx, Outcome};

/// How the space runs out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Limit {
    /// A 2 MiB tmpfs holds the store (remounted at 32 MiB to make room).
    SmallDisk,
    /// `ulimit -f 2048` (512-byte blocks in POSIX sh: 1 MiB) for the beaker process.
    Ulimit,
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

pub fn run(ctx: &Ctx) -> Result<Outcome> {
    let mut out = Outcome::new("R6 full disk");
    let mut table = String::from("| limit | operation | exit | message | blobs | names | temp files left | after making room |\n|---|---|---|---|---|---|---|---|\n");
    let server = Server::start()?;
    let big = bytes(3 << 20, 600);
    let (m_small, m_big) = (bytes(500_000, 601), bytes(3 << 20, 602));
    server.route("/big", &big, &[], Fault::None);
    server.route("/multi/a", &m_small, &[], Fault::None);
    server.route("/multi/b", &m_big, &[], Fault::None);
    for limit in [Limit::Ulimit, Limit::SmallDisk] {
        for op in ["pull", "add", "pull multi-file"] {
            out.runs += 1;
            let mut lab = super::new_lab(ctx, "fulldisk")?;
            let disk = if limit == Limit::SmallDisk {
                let root = root_decision();
                if root != RootOnly::Run {
                    out.figure("small disk", "not run: mounting a tmpfs needs root");
                    if root == RootOnly::Fail {
                        out.violations.push("the small-disk rows need root and BEAKER_TEST_REQUIRE_ROOT=1 demands them".into());
                    }
                    break;
                }
                let d = match testkit::lab::SmallDisk::mount(&lab.path("disk"), 2 << 10) {
                    Ok(d) => d,
                    Err(e) => {
                        out.violations.push(format!(
                            "cannot mount a tmpfs (the small-disk rows did not run): {e:#}"
                        ));
                        break;
                    }
                };
                lab.store = d.dir.join("store");
                Some(d)
            } else {
                None
            };
            let input = lab.file("in/big.bin", &big)?;
            let cat = catalogue(
                &lab,
                "models.toml",
                &[
                    (
                        "big",
                        vec![ModelFile {
                            path: "big.bin",
                            bytes: &big,
                            urls: vec![server.url("/big")],
                        }],
                    ),
                    (
                        "multi",
                        vec![
                            ModelFile {
                                path: "a.bin",
                                bytes: &m_small,
                                urls: vec![server.url("/multi/a")],
                            },
                            ModelFile {
                                path: "b.bin",
                                bytes: &m_big,
                                urls: vec![server.url("/multi/b")],
                            },
                        ],
                    ),
                ],
            )?;
            let init = lab.run(&["store", "init"])?;
            anyhow::ensure!(init.success(), "store init: {}", init.describe());
            let args: Vec<String> = match op {
                "pull" => vec![
                    "--manifest".into(),
                    cat.to_string_lossy().into(),
                    "store".into(),
                    "pull".into(),
                    "big".into(),
                ],
                "add" => vec![
                    "store".into(),
                    "add".into(),
                    input.to_string_lossy().into(),
                    "--name".into(),
                    "big".into(),
                ],
                _ => vec![
                    "--manifest".into(),
                    cat.to_string_lossy().into(),
                    "store".into(),
                    "pull".into(),
                    "multi".into(),
                ],
            };
            let limited = {
                let mut c = Command::new("sh");
                c.args(["-c", "ulimit -f \"$0\" && exec \"$@\""]);
                c.arg(if limit == Limit::Ulimit {
                    "2048"
                } else {
                    "unlimited"
                });
                c.arg(&lab.bin).arg("--store").arg(&lab.store).args(&args);
                lab.clean(&mut c);
                run_within(&mut c, LIMIT)?
            };
            let (blobs, names) = (
                count(&lab.store.join("blobs")),
                lab.run(&["store", "ls"])?
                    .stdout
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .count(),
            );
            let temps = count(&lab.store.join("tmp"));
            let mut problems = Vec::new();
            let want = if limit == Limit::Ulimit {
                "file size limit"
            } else {
                "no space left"
            };
            if limited.code != 1 || !limited.stderr.contains(want) {
                problems.push(format!(
                    "expected exit 1 naming \"{want}\": {}",
                    limited.describe()
                ));
            }
            // The small file of the multi-file model may be published (it fits); no name may be.
            let allowed_blobs = usize::from(op == "pull multi-file");
            if blobs > allowed_blobs {
                problems.push(format!("{blobs} blob(s) published"));
            }
            if names > 0 {
                problems.push("a name was recorded".into());
            }
            problems.extend(check_store(&lab.store, &ctx.oracle)?);
            if let Some(d) = &disk {
                d.grow(32 << 10)?;
            }
            let mut c = lab.cmd();
            c.args(&args);
            let again: Run = run_within(&mut c, LIMIT)?;
            if !again.success() {
                problems.push(format!(
                    "with room again, the same command failed: {}",
                    again.describe()
                ));
            }
            problems.extend(
                check_store(&lab.store, &ctx.oracle)?
                    .into_iter()
                    .map(|v| format!("after making room: {v}")),
            );
            table.push_str(&format!(
                "| {limit:?} | {op} | {} | {} | {blobs} | {names} | {temps} | {} |\n",
                limited.code_text(),
                brief(&limited.message()).replace('|', "\\|"),
                if again.success() { "ok" } else { "FAILED" }
            ));
            for p in problems {
                out.violations.push(format!("{limit:?} {op}: {p}"));
            }
            drop(disk);
        }
    }
    out.table = Some(table);
    Ok(out)
}

/// The part of a no-space message that says what ran out (the words in parentheses).
fn brief(message: &str) -> String {
    let cause = message
        .split_once(" (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(cause, _)| cause);
    match cause {
        Some(c) if message.contains("no space left") => {
            format!("no space left for the store ({c}); …")
        }
        _ => message.chars().take(110).collect(),
    }
}
