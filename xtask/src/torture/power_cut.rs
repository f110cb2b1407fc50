//! R10, power cuts: R1's operations on a store on the kit's test filesystem in power-cut mode
//! (`testkit::testfs`, docs/development.md), each stopped by a cut at a random instant of its
//! run: what was not fsynced (data, or a directory's entries) is lost, the process dies, the
//! filesystem is mounted again from what was durable. Then, as in R1, the invariants must hold
//! ([`super::check`]), and the same operation must succeed and hold them again; and an
//! operation that had succeeded before the cut must not have been lost by it (a pulled or
//! added name still recorded with its bytes, a removed one still gone).
//! All trials share one store and one filesystem, so each starts from what earlier cuts left.
//!
//! Then the format upgrade: a store as the first release wrote it (format 1: one
//! `manifest.toml`, no records, no snapshots), made durable, opened by `store ls` (which
//! upgrades it to records, snapshots and the `referrers/` index) and cut at a random instant
//! of the upgrade. After the remount the invariants hold, and `ls` lists every name with its
//! blob present: a cut upgrade is finished by the next run, never half-done for good.

// The format-1 stores are written by hand, as the first release left them, and read back raw.
#![allow(clippy::disallowed_methods)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use testkit::lab::{blake3_hex, bytes, finish_within, Lab, Rng, LIMIT};
use testkit::testfs::{Options, TestFs};

use super::check::check_store;
use super::kill::{trials, world};
use super::{needs_fuse, Ctx, Outcome};

/// Names in each format-1 store of the upgrade trials, over [`BLOBS`] blobs.
const NAMES: u64 = 40;
const BLOBS: u64 = 5;

pub fn run(ctx: &Ctx) -> Result<Outcome> {
    let mut out = Outcome::new("R10 power cuts");
    if !needs_fuse(&mut out, "R10")? {
        return Ok(out);
    }
    let mut fs = TestFs::new(&Options::profile("power-cut")?)
        .context("mount the test filesystem in power-cut mode")?;
    let mut w = world(ctx, "power")?;
    w.lab.store = fs.path().join("store");
    let mut out = trials(ctx, ctx.trials, out, &w, Some(&mut fs))?;
    let n = (ctx.trials / 10).max(10);
    upgrades(ctx, n, &w.lab, &mut fs, &mut out)?;
    Ok(out)
}

/// `n` format-1 upgrades, each cut at a random instant, then checked and finished.
fn upgrades(ctx: &Ctx, n: u64, lab: &Lab, fs: &mut TestFs, out: &mut Outcome) -> Result<()> {
    let mut rng = Rng::new(ctx.seed ^ 0x0f0f);
    // The cut window: the time of one upgrade without a cut.
    let store = fs.path().join("upgrade-window");
    format_1_store(&store)?;
    fs.mount().context("mounted")?.sync()?;
    let t = Instant::now();
    let r = finish_within(ls(lab, &store)?, LIMIT)?;
    anyhow::ensure!(
        r.success(),
        "an upgrade without a cut failed: {}",
        r.describe()
    );
    let window = t.elapsed();
    let (mut cut_mid, mut bad_trials) = (0u64, 0u64);
    for trial in 0..n {
        if ctx.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        out.runs += 1;
        let store = fs.path().join(format!("upgrade-{trial}"));
        format_1_store(&store)?;
        fs.mount().context("mounted")?.sync()?;
        let mut child = ls(lab, &store)?;
        // Up to 1.25 × an upgrade's time: most cuts land in it, some just after it ended (a
        // finished upgrade must be durable).
        std::thread::sleep(Duration::from_micros(
            rng.below(window.as_micros() as u64 * 5 / 4 + 1),
        ));
        if child.try_wait()?.is_none() {
            cut_mid += 1;
        }
        fs.cut_power()?;
        let _ = child.kill();
        let _ = child.wait();
        fs.remount()?;
        let mut problems = Vec::new();
        if !store.join("store.toml").exists() {
            problems.push("store.toml is gone".to_owned());
        }
        for v in check_store(&store, &ctx.oracle)? {
            problems.push(format!("after the cut: {v}"));
        }
        let next = finish_within(ls(lab, &store)?, LIMIT)?;
        if !next.success() {
            problems.push(format!("the next ls failed: {}", next.describe()));
        } else {
            let rows: Vec<serde_json::Value> = serde_json::from_str(&next.stdout)
                .with_context(|| format!("ls --json printed {}", next.stdout))?;
            let present = rows.iter().filter(|r| r["present"] == true).count() as u64;
            if rows.len() as u64 != NAMES || present != NAMES {
                problems.push(format!(
                    "the next ls lists {} names, {present} present (want {NAMES}, all present)",
                    rows.len()
                ));
            }
        }
        let format = std::fs::read_to_string(store.join("store.toml")).unwrap_or_default();
        if !format.contains("format = 4") {
            problems.push(format!("after the next ls, store.toml says {format:?}"));
        }
        for v in check_store(&store, &ctx.oracle)? {
            problems.push(format!("after the next ls: {v}"));
        }
        if !problems.is_empty() {
            bad_trials += 1;
        }
        out.violations.extend(
            problems
                .into_iter()
                .map(|p| format!("upgrade trial {trial} (seed {}): {p}", ctx.seed)),
        );
        // Checked: it goes (durably), so the mount, copied at each remount, stays small.
        beaker::fsx::user::remove_tree(&store)?;
        fs.mount().context("mounted")?.sync()?;
    }
    out.figure("upgrades cut mid-run", cut_mid);
    out.figure("upgrade trials with a violation", bad_trials);
    if let Some(t) = &mut out.table {
        t.push_str(&format!(
            "\nFormat-1 upgrades ({NAMES} names over {BLOBS} blobs, `store ls`): {n} trials, {cut_mid} cut mid-run, {bad_trials} with a violation.\n"
        ));
    }
    Ok(())
}

/// `beaker --store STORE --json store ls`, started.
fn ls(lab: &Lab, store: &Path) -> Result<std::process::Child> {
    let mut c = std::process::Command::new(&lab.bin);
    c.arg("--store").arg(store);
    lab.clean(&mut c);
    c.args(["--json", "store", "ls"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", lab.bin.display()))
}

/// A format-1 store at `root`, as the first release wrote it: `store.toml`, one
/// `manifest.toml` naming [`NAMES`] models over [`BLOBS`] blobs, `blobs/`, no records.
fn format_1_store(root: &Path) -> Result<()> {
    for d in ["blobs", "tmp", "locks", "quarantine"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::write(
        root.join("store.toml"),
        "format = 1\nmode = \"private\"\nlocking = \"flock\"\n",
    )?;
    let mut manifest = String::from("version = 1\n");
    for i in 0..NAMES {
        let body = bytes(20_000, 500 + i % BLOBS);
        let hex = blake3_hex(&body);
        let blob = root.join("blobs").join(&hex);
        if !blob.exists() {
            std::fs::write(&blob, &body)?;
            std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o444))?;
        }
        manifest.push_str(&format!(
            "\n[models.\"m{i:02}\"]\nblake3 = \"{hex}\"\nsize = {}\nadded = \"2026-11-28T01:36:33Z\"\n",
            body.len()
        ));
    }
    std::fs::write(root.join("manifest.toml"), manifest)?;
    Ok(())
}
