//! The bench's table and BENCHMARKS.md: the generated part (machine, command, table) is
//! rewritten by every run; everything from the notes marker on is hand-written analysis (the
//! profile, where the time goes) and is kept as it is.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use super::measure::Series;
use super::Row;

/// The line after which BENCHMARKS.md is written by hand and kept by the bench.
pub const NOTES_MARKER: &str = "<!-- hand-written notes below: kept by `cargo xtask bench` -->";

/// Where and how the numbers were taken.
pub struct Environment {
    lines: Vec<String>,
}

impl Environment {
    pub fn probe(work: &Path, server: &str, beaker: &Path, root: &Path, command: &str) -> Self {
        let cpu = beaker::fsx::user::read_to_string(Path::new("/proc/cpuinfo"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mem = beaker::fsx::user::read_to_string(Path::new("/proc/meminfo"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|k| k.parse::<u64>().ok())
            })
            .map_or("?".into(), |kib| format!("{} GiB", kib >> 20));
        let kernel = beaker::fsx::user::read_to_string(Path::new("/proc/sys/kernel/osrelease"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let fs = output(Command::new("stat").args(["-f", "-c", "%T"]).arg(work));
        let commit = output(
            Command::new("git")
                .args(["rev-parse", "--short", "HEAD"])
                .current_dir(root),
        );
        let date = output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]));
        Environment {
            lines: vec![
                format!("- Command: `cargo xtask {command}` ({date}, commit {commit})"),
                format!("- Machine: {cpu}, {cores} cores, {mem} RAM, Linux {kernel}, work directory on {fs}"),
                format!("- HTTP server: {server} on 127.0.0.1"),
                format!("- beaker: {}", beaker.display()),
            ],
        }
    }
}

fn output(cmd: &mut Command) -> String {
    cmd.output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn secs(s: f64) -> String {
    if s < 0.1 {
        format!("{:.1} ms", s * 1000.0)
    } else {
        format!("{s:.3} s")
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

fn median(s: &Series) -> Option<f64> {
    s.secs().map(|st| st.median)
}

/// The markdown table of every row, then the notes of the rows that have some.
pub fn table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| job | beaker min / median / max | MB/s | peak RSS | floors in the same run: median (ratio) | target | met |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let stats = r.beaker.secs();
        let timing = stats.map_or("—".into(), |s| {
            format!("{} / **{}** / {}", secs(s.min), secs(s.median), secs(s.max))
        });
        let mbs = match (stats, r.bytes) {
            (Some(s), b) if b > 0 => format!("{:.0}", b as f64 / 1e6 / s.median),
            _ => "—".into(),
        };
        let rss = match r.rss_only {
            Some(p) => format!("**{}**", mib(p)),
            None if r.no_rss => "—".into(),
            None => mib(r.beaker.peak_rss()),
        };
        let floors: Vec<String> = r
            .floors
            .iter()
            .map(|(label, s)| match (r.rss_only, median(s), stats) {
                (Some(_), _, _) => format!("{label}: {}", mib(s.peak_rss())),
                (None, Some(f), Some(b)) => {
                    format!("{label}: {} (**{:.2}**)", secs(f), b.median / f)
                }
                _ => format!("{label}: —"),
            })
            .collect();
        let met = met(r, stats.map(|s| s.median));
        let floors: Vec<String> = floors.iter().map(|f| f.replace('|', "\\|")).collect();
        t.push_str(&format!(
            "| {} {} | {timing} | {mbs} | {rss} | {} | {} | {} |\n",
            r.id,
            r.job,
            if floors.is_empty() {
                "—".into()
            } else {
                floors.join("<br>")
            },
            r.target,
            match met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            }
        ));
    }
    let notes: Vec<String> = rows
        .iter()
        .filter(|r| !r.notes.is_empty())
        .map(|r| format!("- {} {}: {}", r.id, r.job, r.notes.join("; ")))
        .collect();
    if !notes.is_empty() {
        t.push('\n');
        t.push_str(&notes.join("\n"));
        t.push('\n');
    }
    t
}

fn met(r: &Row, beaker_median: Option<f64>) -> Option<bool> {
    if let Some(m) = r.met {
        return Some(m);
    }
    let m = beaker_median?;
    let rss_ok = r.rss_limit.is_none_or(|l| r.beaker.peak_rss() <= l);
    if let Some(limit) = r.goal_abs {
        return Some(m <= limit && rss_ok);
    }
    let (i, limit) = r.goal?;
    let f = median(&r.floors.get(i)?.1)?;
    Some(m / f <= limit && rss_ok)
}

/// Writes `out`: the generated part, then the hand-written notes the old file had (if any).
pub fn write(out: &Path, env: &Environment, table: &str) -> Result<()> {
    let kept = beaker::fsx::user::read_to_string(out)
        .ok()
        .and_then(|old| old.find(NOTES_MARKER).map(|i| old[i..].to_string()))
        .unwrap_or_else(|| format!("{NOTES_MARKER}\n"));
    let text = format!(
        "# Benchmarks\n\n\
         Written by `cargo xtask bench` (xtask/src/bench/); rerun it to refresh everything above the\n\
         notes. Each run times beaker and then each floor on fresh state (a new store, a new output\n\
         file), alternately, so both see the same machine at the same moment; the page cache is\n\
         warm for both. **Ratio** = beaker's median time / the floor's median time in this run\n\
         (lower is better). Peak RSS is the kernel's (`wait4`), of the process and the children it\n\
         waited for.\n\n{}\n\n{table}\n{kept}",
        env.lines.join("\n")
    );
    beaker::fsx::user::write_file(out, text.as_bytes())?;
    Ok(())
}
