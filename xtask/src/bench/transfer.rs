//! The jobs that move one large model: P1 pull, P2 cache hit, P3 add, P5 concurrent pulls and
//! P7 peak memory (read from P1 and P3). Each run times beaker and then its floors, alternately,
//! on fresh state (a new store, a new output file), so both see the same machine at the same
//! moment; the page cache is warm for both (the file was just written).

use std::process::Command;

use anyhow::{bail, Result};

use super::measure::{self, Series};
use super::{Bench, Row};

/// P1: `beaker store pull` over HTTP into an empty store, against `curl -o`, the durable
/// floor `curl -o` + `b3sum` + `sync FILE`, and the disk's own durable write (`dd conv=fsync`).
pub fn p1_pull(b: &Bench) -> Result<(Row, Series)> {
    let mut beaker = Series::default();
    let (mut durable, mut curl, mut dd) = (Series::default(), Series::default(), Series::default());
    let url = b.server.url(super::MODEL_FILE);
    for run in 0..b.runs {
        let store = b.fresh_store(&format!("p1-{run}"))?;
        beaker.push(measure::run(b.beaker(&store).args([
            "store",
            "pull",
            super::NAME,
        ]))?);
        b.check_blob(&store)?;
        beaker::fsx::user::remove_tree(&store)?;
        let out = b.scratch("p1.out");
        if b.tools.curl {
            durable.push(measure::run(Command::new("sh").arg("-c").arg(format!(
                "curl -sS -o {o} {url} && {hash} {o} >/dev/null && sync {o}",
                o = out.display(),
                hash = b.tools.b3sum_cmd(),
            )))?);
            beaker::fsx::user::remove_file_if_exists(&out)?;
            curl.push(measure::run(
                Command::new("curl").args(["-sS", "-o"]).arg(&out).arg(&url),
            )?);
            beaker::fsx::user::remove_file_if_exists(&out)?;
        }
        dd.push(measure::run(
            Command::new("dd")
                .arg(format!("if={}", b.model.path.display()))
                .arg(format!("of={}", out.display()))
                .args(["bs=4M", "conv=fsync", "status=none"]),
        )?);
        beaker::fsx::user::remove_file_if_exists(&out)?;
    }
    let mut row = Row::new(
        "P1",
        "pull (verified, durable)",
        beaker.clone(),
        b.model.size,
    );
    row.target = "≤ 0.7 × durable floor; ≤ 1.1 × dd conv=fsync".into();
    if b.tools.curl {
        row.floor(
            &format!("curl -o + {} + sync FILE", b.tools.b3sum_name()),
            durable,
        );
        row.floor("curl -o", curl);
    } else {
        row.note("curl is not installed: its floors were not run");
    }
    row.floor("dd conv=fsync (disk's durable write)", dd);
    row.goal = Some(if b.tools.curl { (0, 0.7) } else { (0, 1.1) });
    Ok((row, beaker))
}

/// P2: `beaker store path` of a present model (the cache hit: no network, no re-hash) against
/// re-hashing the file every run (`b3sum`).
pub fn p2_cache_hit(b: &Bench) -> Result<Row> {
    let store = b.fresh_store("p2")?;
    measure::run(b.beaker(&store).args(["store", "pull", super::NAME]))?;
    let (mut beaker, mut hash) = (Series::default(), Series::default());
    for _ in 0..b.runs.max(3) {
        beaker.push(measure::run(b.beaker(&store).args([
            "store",
            "path",
            super::NAME,
        ]))?);
        hash.push(measure::run(&mut b.tools.b3sum(&b.model.path))?);
    }
    beaker::fsx::user::remove_tree(&store)?;
    let mut row = Row::new("P2", "cache hit (`store path`)", beaker, 0);
    row.floor(&format!("re-hash per run ({})", b.tools.b3sum_name()), hash);
    row.target = "≤ 3 ms whole process".into();
    row.goal_abs = Some(0.003);
    Ok(row)
}

/// P3: `beaker store add` into an empty store against `cp` + `b3sum` + `sync FILE`.
pub fn p3_add(b: &Bench) -> Result<(Row, Series)> {
    let (mut beaker, mut floor) = (Series::default(), Series::default());
    for run in 0..b.runs {
        let store = b.fresh_store(&format!("p3-{run}"))?;
        beaker.push(measure::run(
            b.beaker(&store)
                .args(["store", "add"])
                .arg(&b.model.path)
                .args(["--name", super::NAME]),
        )?);
        b.check_blob(&store)?;
        beaker::fsx::user::remove_tree(&store)?;
        let out = b.scratch("p3.out");
        floor.push(measure::run(Command::new("sh").arg("-c").arg(format!(
            "cp {src} {o} && {hash} {o} >/dev/null && sync {o}",
            src = b.model.path.display(),
            o = out.display(),
            hash = b.tools.b3sum_cmd(),
        )))?);
        beaker::fsx::user::remove_file_if_exists(&out)?;
    }
    let mut row = Row::new("P3", "add (durable)", beaker.clone(), b.model.size);
    row.floor(&format!("cp + {} + sync FILE", b.tools.b3sum_name()), floor);
    row.target = "≤ 1.0 × floor".into();
    row.goal = Some((0, 1.0));
    Ok((row, beaker))
}

/// P5: eight `beaker store pull` of the same model started at once into one empty store: the
/// wall time until the last one exits, how many bodies the server sent, and how many succeeded,
/// against one pull (P1's median).
pub fn p5_concurrent(b: &Bench, one_pull: &Series) -> Result<Row> {
    let mut all = Series::default();
    let mut notes = Vec::new();
    for run in 0..b.runs {
        let store = b.fresh_store(&format!("p5-{run}"))?;
        let before = b.server.bodies(super::MODEL_FILE)?;
        let start = std::time::Instant::now();
        let running = (0..8)
            .map(|_| measure::spawn(b.beaker(&store).args(["store", "pull", super::NAME])))
            .collect::<Result<Vec<_>>>()?;
        let mut ok = 0;
        for r in running {
            ok += usize::from(r.wait()?);
        }
        let wall = start.elapsed();
        let bodies = b.server.bodies(super::MODEL_FILE)? - before;
        b.check_blob(&store)?;
        beaker::fsx::user::remove_tree(&store)?;
        if ok != 8 {
            bail!("P5: only {ok}/8 concurrent pulls succeeded");
        }
        all.push(measure::Sample { wall, rss: 0 });
        notes.push(format!(
            "{bodies} bod{}, {ok}/8 ok",
            if bodies == 1 { "y" } else { "ies" }
        ));
    }
    let mut row = Row::new("P5", "8 concurrent pulls", all, 0);
    row.floor("one pull (P1)", one_pull.clone());
    row.note(&format!("per run: {}", notes.join("; ")));
    row.target = "≤ 1.2 × one pull, 1 body".into();
    row.goal = Some((0, 1.2));
    row.no_rss = true;
    Ok(row)
}

/// P7: the peak RSS of the pulls and adds above against curl's.
pub fn p7_rss(b: &Bench, pull: &Series, add: &Series, curl: Option<&Series>) -> Row {
    let peak = pull.peak_rss().max(add.peak_rss());
    let mut row = Row::new(
        "P7",
        &format!("peak RSS, {} pull/add", super::human(b.model.size)),
        Series::default(),
        0,
    );
    row.rss_only = Some(peak);
    if let Some(c) = curl {
        row.floor("curl -o", c.clone());
    }
    row.note(&format!(
        "pull {} MiB, add {} MiB",
        pull.peak_rss() >> 20,
        add.peak_rss() >> 20
    ));
    row.target = "≤ 32 MiB at any size".into();
    row.met = Some(peak <= 32 << 20);
    row
}
