//! P9 and P10: beaker on the filesystems that clone, each on a loop-mounted image made for the
//! run (root, `mkfs.btrfs`, `mkfs.xfs`; a filesystem that cannot be made is a note, not a
//! failure).
//!
//! - P9 `add` of a model on the store's own filesystem: cloned (`FICLONE`, then the clone
//!   hashed) against the same add copying (`BEAKER_NO_REFLINK=1`), and `cp --reflink=always` +
//!   hash + `sync`; the space each add took, from `df`.
//! - P10 `pull` as it runs by default (early writeback, `sync_file_range` every 8 MiB, except on
//!   btrfs where it cost 4–12%) against the same pull with `BEAKER_NO_EARLY_WRITEBACK=1` and
//!   `dd conv=fsync`: the default is never the slower one.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use testkit::lab::LoopDisk;

use super::measure::{self, Series};
use super::{Bench, Row};

/// The filesystems tried: name (`mkfs.<name>`) and mkfs's arguments before the image path.
const FILESYSTEMS: [(&str, &[&str]); 2] = [
    ("btrfs", &["-q", "-f"]),
    ("xfs", &["-q", "-f", "-m", "reflink=1"]),
];

/// A `fs` image three times the model's size (at least 1 GiB), loop-mounted in the work
/// directory until dropped.
fn mount(b: &Bench, fs: &str, args: &[&str]) -> Result<LoopDisk> {
    if !beaker::who::is_root() {
        bail!("needs root (loop mounts)");
    }
    let mib = (b.model.size * 3).max(1 << 30) >> 20;
    LoopDisk::mount(
        &b.scratch(&format!("{fs}.img")),
        &b.scratch(&format!("mnt-{fs}")),
        mib,
        fs,
        args,
    )
}

/// Unmounts whatever a killed earlier run left mounted under `work` (best effort; a mount
/// that stays makes removing `work` fail with a message naming it).
pub fn unmount_under(work: &Path) {
    let Ok(mounts) = beaker::fsx::user::read_to_string(Path::new("/proc/self/mounts")) else {
        return;
    };
    for point in mounts.lines().filter_map(|l| l.split(' ').nth(1)) {
        if Path::new(point).starts_with(work) {
            let _ = Command::new("umount").arg(point).status();
        }
    }
}

fn ok(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim().to_owned()
        );
    }
    Ok(())
}

fn mib(bytes: i128) -> String {
    format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// P9 and P10 rows for every filesystem in [`FILESYSTEMS`] this machine can make and mount.
pub fn p9_p10(b: &Bench, want_add: bool, want_pull: bool) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (fs, args) in FILESYSTEMS {
        let disk = match mount(b, fs, args) {
            Ok(m) => m,
            Err(e) => {
                let mut row = Row::new("P9", &format!("add on {fs}"), Series::default(), 0);
                row.note(&format!("{fs}: not run: {e:#}"));
                rows.push(row);
                continue;
            }
        };
        if want_add {
            rows.push(p9_add(b, fs, &disk)?);
        }
        if want_pull {
            rows.push(p10_pull(b, fs, &disk.dir)?);
        }
    }
    Ok(rows)
}

fn p9_add(b: &Bench, fs: &str, disk: &LoopDisk) -> Result<Row> {
    let dir = &disk.dir;
    let src = dir.join("source.bin");
    ok(Command::new("cp").arg(&b.model.path).arg(&src))?;
    let (mut cloned, mut copied, mut floor) =
        (Series::default(), Series::default(), Series::default());
    let (mut space_clone, mut space_copy) = (0i128, 0i128);
    for run in 0..b.runs {
        for clone in [true, false] {
            let store = dir.join(format!("p9-{run}-{clone}"));
            measure::run(b.beaker(&store).args(["store", "init"]))?;
            let before = disk.used()?;
            let mut cmd = b.beaker(&store);
            cmd.args(["store", "add"])
                .arg(&src)
                .args(["--name", super::NAME]);
            if !clone {
                cmd.env("BEAKER_NO_REFLINK", "1");
            }
            let sample = measure::run(&mut cmd)?;
            b.check_blob(&store)?;
            let grew = i128::from(disk.used()?) - i128::from(before);
            if clone {
                cloned.push(sample);
                space_clone = space_clone.max(grew);
            } else {
                copied.push(sample);
                space_copy = space_copy.max(grew);
            }
            beaker::fsx::user::remove_tree(&store)?;
        }
        let out = dir.join("p9.out");
        floor.push(measure::run(Command::new("sh").arg("-c").arg(format!(
            "cp --reflink=always {src} {o} && {hash} {o} >/dev/null && sync {o}",
            src = src.display(),
            o = out.display(),
            hash = b.tools.b3sum_cmd(),
        )))?);
        beaker::fsx::user::remove_file_if_exists(&out)?;
    }
    let mut row = Row::new("P9", &format!("add on {fs} (clone)"), cloned, b.model.size);
    row.floor("the same add copying (BEAKER_NO_REFLINK=1)", copied);
    row.floor(
        &format!("cp --reflink=always + {} + sync FILE", b.tools.b3sum_name()),
        floor,
    );
    row.target = "≤ 0.8 × the add copying; no new data extents".into();
    row.goal = Some((0, 0.8));
    row.note(&format!(
        "P9 {fs}: space an add took (most of {} runs): cloned {}, copied {}",
        b.runs,
        mib(space_clone),
        mib(space_copy)
    ));
    Ok(row)
}

fn p10_pull(b: &Bench, fs: &str, dir: &Path) -> Result<Row> {
    let (mut early, mut late, mut dd) = (Series::default(), Series::default(), Series::default());
    for run in 0..b.runs {
        for hint in [true, false] {
            let store = dir.join(format!("p10-{run}-{hint}"));
            measure::run(b.beaker(&store).args(["store", "init"]))?;
            let mut cmd = b.beaker(&store);
            cmd.args(["store", "pull", super::NAME]);
            if !hint {
                cmd.env("BEAKER_NO_EARLY_WRITEBACK", "1");
            }
            let sample = measure::run(&mut cmd)?;
            b.check_blob(&store)?;
            let series = if hint { &mut early } else { &mut late };
            series.push(sample);
            beaker::fsx::user::remove_tree(&store)?;
        }
        let out = dir.join("p10.out");
        dd.push(measure::run(
            Command::new("dd")
                .arg(format!("if={}", b.model.path.display()))
                .arg(format!("of={}", out.display()))
                .args(["bs=4M", "conv=fsync", "status=none"]),
        )?);
        beaker::fsx::user::remove_file_if_exists(&out)?;
    }
    let mut row = Row::new(
        "P10",
        &format!("pull on {fs} (early writeback unless btrfs)"),
        early,
        b.model.size,
    );
    row.floor(
        "the same pull without early writeback (BEAKER_NO_EARLY_WRITEBACK=1)",
        late,
    );
    row.floor("dd conv=fsync (disk's durable write)", dd);
    row.target = "≤ 1.05 × the pull without it".into();
    row.goal = Some((0, 1.05));
    Ok(row)
}
