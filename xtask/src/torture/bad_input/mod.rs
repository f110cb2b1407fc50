//! R4, bad input: malformed catalogues (syntax, digests, sizes, URLs, names, file lists, files
//! that are not files), names on the command line, `store.toml` files and command lines. Each
//! must exit with its promised code (2: bad input) and a one-line message, and leave the store
//! byte-for-byte as it was (every path, type, mode and content compared before and after).

// Fixtures are written with raw std::fs (bad catalogues and store.toml copies outside the store
// under test, a FIFO); the store snapshot reads with raw std::fs so it sees the disk as it is.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use testkit::lab::{blake3_hex, bytes, run_within, Run, LIMIT};

use super::{Ctx, Outcome};

mod inputs;

use inputs::{inputs, How};

/// Every path under `root` with its type, mode and content hash: what "byte-for-byte" compares.
fn snapshot(root: &Path) -> Result<BTreeMap<PathBuf, String>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))? {
            let p = e?.path();
            let m = std::fs::symlink_metadata(&p)?;
            let mode = m.permissions().mode();
            let what = if m.is_dir() {
                stack.push(p.clone());
                format!("dir {mode:o}")
            } else if m.file_type().is_symlink() {
                format!("symlink {mode:o} -> {}", std::fs::read_link(&p)?.display())
            } else if m.is_file() {
                format!("file {mode:o} {}", blake3_hex(&std::fs::read(&p)?))
            } else {
                format!("other {mode:o}")
            };
            out.insert(p.strip_prefix(root)?.to_owned(), what);
        }
    }
    Ok(out)
}

fn diff(a: &BTreeMap<PathBuf, String>, b: &BTreeMap<PathBuf, String>) -> Vec<String> {
    let mut d = Vec::new();
    for (p, x) in a {
        match b.get(p) {
            None => d.push(format!("{} disappeared", p.display())),
            Some(y) if y != x => d.push(format!("{} changed ({x} -> {y})", p.display())),
            Some(_) => {}
        }
    }
    for p in b.keys().filter(|p| !a.contains_key(*p)) {
        d.push(format!("{} appeared", p.display()));
    }
    d
}

pub fn run(ctx: &Ctx) -> Result<Outcome> {
    let mut out = Outcome::new("R4 bad input");
    let lab = super::new_lab(ctx, "badinput")?;
    // A store that holds something, so "unchanged" means something.
    let model = lab.file("good/model.bin", &bytes(100_000, 400))?;
    let r = lab.run(&["store", "add", &model.to_string_lossy(), "--name", "good"])?;
    anyhow::ensure!(r.success(), "preparing: add: {}", r.describe());
    let r = lab.run(&["store", "path", "good"])?;
    anyhow::ensure!(r.success(), "preparing: path: {}", r.describe());
    let fifo_in = lab.path("in.fifo");
    let made = Command::new("mkfifo").arg(&fifo_in).status()?;
    anyhow::ensure!(made.success(), "mkfifo");
    std::fs::create_dir_all(lab.path("empty-dir"))?;
    lab.file("export/model.bin", b"other bytes")?;
    let fill = |a: &str| match a {
        "FIFO" => fifo_in.to_string_lossy().into_owned(),
        "EMPTY" => lab.path("empty-dir").to_string_lossy().into_owned(),
        "INWAY" => lab.path("export").to_string_lossy().into_owned(),
        other => other.to_owned(),
    };

    let mut table = String::from("| kind | input | exit | promised | message | store unchanged |\n|---|---|---|---|---|---|\n");
    let list = inputs(&lab)?;
    for (i, input) in list.iter().enumerate() {
        out.runs += 1;
        // Each store.toml case gets its own copy of the store.
        let store = match &input.how {
            How::StoreToml(_) => {
                let copy = lab.path(&format!("copy-{i}"));
                let ok = Command::new("cp")
                    .arg("-a")
                    .arg(&lab.store)
                    .arg(&copy)
                    .status()?
                    .success();
                anyhow::ensure!(ok, "cp -a the store");
                copy
            }
            _ => lab.store.clone(),
        };
        if let How::StoreToml(text) = &input.how {
            let cfg = store.join("store.toml");
            std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644))?;
            std::fs::write(&cfg, text)?;
        }
        let before = snapshot(&store)?;
        let mut c = Command::new(&lab.bin);
        lab.clean(&mut c);
        c.arg("--store").arg(&store);
        match &input.how {
            How::Catalogue(text) => {
                let p = lab.file(&format!("cat/{i}.toml"), text)?;
                c.arg("--manifest").arg(p).args(["store", "pull", "good"]);
            }
            How::CataloguePath(p) => {
                c.arg("--manifest").arg(p).args(["store", "pull", "good"]);
            }
            How::Args(a) => {
                c.args(a.iter().map(|s| fill(s)));
            }
            How::StoreToml(_) => {
                c.args(["store", "ls"]);
            }
            How::Config(text) => {
                let p = lab.file(&format!("cfg/{i}.toml"), text.as_bytes())?;
                c.env("BEAKER_CONFIG", p).args(["config", "show"]);
            }
        }
        let r: Run = run_within(&mut c, LIMIT)?;
        let after = snapshot(&store)?;
        let changes = diff(&before, &after);
        let mut problems = Vec::new();
        if r.code != input.expect {
            problems.push(format!(
                "exit {} where {} is promised: {}",
                r.code_text(),
                input.expect,
                r.message()
            ));
        }
        // beaker's own errors are one line; clap's usage errors are a line plus a hint.
        let lines = r.stderr.lines().filter(|l| !l.trim().is_empty()).count();
        let clap = r.stderr.starts_with("error:");
        if r.stderr.trim().is_empty() || (!clap && lines != 1) {
            problems.push(format!("the message is {lines} lines: {:?}", r.stderr));
        }
        if !changes.is_empty() {
            problems.push(format!("the store changed: {}", changes.join("; ")));
        }
        let first = r
            .stderr
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("beaker: error: ");
        let mut msg: String = first.chars().take(120).collect();
        if first.chars().count() > 120 {
            msg.push('…');
        }
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            input.kind,
            input.what.replace('|', "\\|"),
            r.code_text(),
            input.expect,
            msg.replace('|', "\\|"),
            if changes.is_empty() { "yes" } else { "NO" }
        ));
        for p in problems {
            out.violations
                .push(format!("{} {:?}: {p}", input.kind, input.what));
        }
    }
    out.figure("inputs", list.len());
    out.table = Some(table);
    Ok(out)
}
