//! The jobs on a filled store: P4 verify (re-hash the model) against `b3sum`, P6 gc of a store
//! whose blobs are half dead against `find | sort | comm | rm`, and P8 one add, rm and ls in a
//! store of many names (cost must not grow with the number of names).

use std::process::Command;

use anyhow::{bail, Result};

use super::measure::{self, Series};
use super::{Bench, Row};

/// P4: `beaker store verify` of a store holding the model against `b3sum FILE`.
pub fn p4_verify(b: &Bench) -> Result<Row> {
    let store = b.fresh_store("p4")?;
    measure::run(b.beaker(&store).args(["store", "pull", super::NAME]))?;
    // The floor hashes the very file verify hashes, the blob `pull` wrote: the bench's source
    // file was written in 1 MiB pieces and the blob as the socket delivered it, and the page
    // cache holds the two in pieces of different sizes, which costs a mapping reader (b3sum or
    // verify alike) up to 13 % more CPU for the blob.
    let blob = only_blob(&store)?;
    let (mut beaker, mut hash) = (Series::default(), Series::default());
    for _ in 0..b.runs {
        beaker.push(measure::run(b.beaker(&store).args(["store", "verify"]))?);
        hash.push(measure::run(&mut b.tools.b3sum(&blob))?);
    }
    beaker::fsx::user::remove_tree(&store)?;
    let mut row = Row::new("P4", "verify", beaker, b.model.size);
    row.floor(b.tools.b3sum_name(), hash);
    row.target = "≥ 0.9 × b3sum throughput (time ratio ≤ 1.11)".into();
    row.goal = Some((0, 1.0 / 0.9));
    Ok(row)
}

/// P6: `beaker store gc` of a store with `blobs` small blobs, half referenced by names, against
/// deleting the same files with `find | sort | comm | rm` given the sorted list of live hashes.
pub fn p6_gc(b: &Bench, blobs: usize) -> Result<Row> {
    let template = b.work.join("p6-template");
    let live = blobs / 2;
    super::data::fill_store(&template, blobs, live, live)?;
    let listed = beaker::Store::open(&template)?.read_manifest()?;
    let mut hashes: Vec<String> = listed.roots().iter().map(|h| h.to_hex()).collect();
    hashes.sort();
    let live_list = b.work.join("p6-live.txt");
    beaker::fsx::user::write_file(&live_list, (hashes.join("\n") + "\n").as_bytes())?;
    let (mut beaker, mut floor) = (Series::default(), Series::default());
    for run in 0..b.runs {
        let store = b.work.join(format!("p6-{run}"));
        copy_tree(&template, &store)?;
        beaker.push(measure::run(b.beaker(&store).args(["store", "gc"]))?);
        let left = count_files(&store.join("blobs"))?;
        if left != live {
            bail!("P6: gc left {left} blobs, expected the {live} live ones");
        }
        beaker::fsx::user::remove_tree(&store)?;
        copy_tree(&template, &store)?;
        floor.push(measure::run(Command::new("sh").arg("-c").arg(format!(
            "cd {blobs} && find . -type f -printf '%f\\n' | LC_ALL=C sort | LC_ALL=C comm -23 - {live} | xargs -r rm -f",
            blobs = store.join("blobs").display(),
            live = live_list.display(),
        )))?);
        let left = count_files(&store.join("blobs"))?;
        if left != live {
            bail!("P6: the floor left {left} blobs, expected {live}");
        }
        beaker::fsx::user::remove_tree(&store)?;
    }
    beaker::fsx::user::remove_tree(&template)?;
    let mut row = Row::new("P6", &format!("gc, {blobs} blobs half dead"), beaker, 0);
    row.floor("find | sort | comm | rm", floor);
    row.target = "≤ 1.0 × floor".into();
    row.goal = Some((0, 1.0));
    Ok(row)
}

/// P8: in a store of `names` names, one `add` of a new small file, one `ls`, one `rm` of it, per
/// run; three rows (add, rm, ls) with their peak RSS.
pub fn p8_scale(b: &Bench, names: usize) -> Result<Vec<Row>> {
    let store = b.work.join("p8");
    super::data::fill_store(&store, names.clamp(1, 1000), names.clamp(1, 1000), names)?;
    let (mut add, mut rm, mut ls) = (Series::default(), Series::default(), Series::default());
    for run in 0..b.runs {
        let file = b.scratch("p8-new.bin");
        super::data::make_file(&file, 4096, 0xadd0 + run as u64)?;
        add.push(measure::run(
            b.beaker(&store)
                .args(["store", "add"])
                .arg(&file)
                .args(["--name", "bench-new"]),
        )?);
        ls.push(measure::run(b.beaker(&store).args(["store", "ls"]))?);
        rm.push(measure::run(b.beaker(&store).args([
            "store",
            "rm",
            "bench-new",
        ]))?);
        beaker::fsx::user::remove_file_if_exists(&file)?;
    }
    let held = beaker::Store::open(&store)?.read_manifest()?.models.len();
    if held != names {
        bail!("P8: the store holds {held} names after the runs, expected {names}");
    }
    beaker::fsx::user::remove_tree(&store)?;
    let n = super::thousands(names);
    let mut rows = Vec::new();
    for (what, series, limit) in [("add", add, 0.05), ("rm", rm, 0.05), ("ls", ls, 0.15)] {
        let mut row = Row::new("P8", &format!("scale: {what} at {n} names"), series, 0);
        row.target = format!("≤ {} ms, RSS ≤ 32 MiB", (limit * 1000.0) as u32);
        row.goal_abs = Some(limit);
        row.rss_limit = Some(32 << 20);
        rows.push(row);
    }
    Ok(rows)
}

/// The one blob in `store` (P4 pulls one model).
fn only_blob(store: &std::path::Path) -> Result<std::path::PathBuf> {
    let blobs = store.join("blobs");
    let found = beaker::fsx::user::read_dir(&blobs)?;
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "P4: expected one blob in {}, found {}",
            blobs.display(),
            found.len()
        ),
    }
}

/// `cp -a`: a copy of a store that keeps hard links (snapshots link to blobs) and modes.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status()?;
    if !status.success() {
        bail!(
            "cp -a {} {} failed ({status})",
            from.display(),
            to.display()
        );
    }
    Ok(())
}

fn count_files(dir: &std::path::Path) -> Result<usize> {
    let mut n = 0;
    for p in beaker::fsx::user::read_dir(dir)? {
        if beaker::fsx::user::symlink_metadata(&p)?.is_some_and(|m| m.is_file()) {
            n += 1;
        }
    }
    Ok(n)
}
