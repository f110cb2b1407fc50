//! R2, lockless races: a store with `locking = "none"` and 8 processes at once, each running
//! `--rounds` rounds of a random pull, add or gc on the same few names. Without locks nothing
//! avoids duplicate work and two manifest edits are last-writer-wins (docs/design.md#lockless-stores), but
//! bytes must never suffer: afterwards every blob must pass [`super::check`] (0 corrupt blobs).
//! Names a process was told were recorded but that are absent at the end are *lost names*,
//! counted separately (a documented limit); a pull or add of each must then restore it.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Result;
use testkit::lab::{bytes, catalogue, run_within, ModelFile, Rng, Run, LIMIT};
use testkit::server::{Fault, Server};

use super::check::{check_blobs, check_store};
use super::{Ctx, Outcome};

const WORKERS: u64 = 8;
const MODELS: [&str; 4] = ["r0", "r1", "r2", "r3"];

/// What the workers saw, merged.
#[derive(Default)]
struct Seen {
    recorded: BTreeSet<String>,
    ops: u64,
    failed: Vec<String>,
}

pub fn run(ctx: &Ctx) -> Result<Outcome> {
    let mut out = Outcome::new("R2 lockless races");
    let lab = super::new_lab(ctx, "races")?;
    let server = Server::start()?;
    let bodies: Vec<Vec<u8>> = (0..4).map(|i| bytes(512 << 10, 200 + i)).collect();
    for (name, body) in MODELS.iter().zip(&bodies) {
        server.route(&format!("/{name}"), body, &[], Fault::None);
    }
    let models: Vec<(&str, Vec<ModelFile<'_>>)> = MODELS
        .iter()
        .zip(&bodies)
        .map(|(name, body)| {
            let urls = vec![server.url(&format!("/{name}"))];
            (
                *name,
                vec![ModelFile {
                    path: "m.bin",
                    bytes: body,
                    urls,
                }],
            )
        })
        .collect();
    let cat = catalogue(&lab, "models.toml", &models)?
        .to_string_lossy()
        .into_owned();
    let inputs: Vec<String> = (0..4)
        .map(|i| lab.file(&format!("in/a{i}.bin"), &bytes(256 << 10, 300 + i)))
        .map(|p| p.map(|p| p.to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    let init = lab.run(&["store", "init", "--locking", "none"])?;
    anyhow::ensure!(
        init.success(),
        "store init --locking none: {}",
        init.describe()
    );

    let seen = Mutex::new(Seen::default());
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..WORKERS {
            let (lab, cat, inputs, seen) = (&lab, &cat, &inputs, &seen);
            let mut rng = Rng::new(ctx.seed.wrapping_mul(1000).wrapping_add(w));
            s.spawn(move || {
                for _ in 0..ctx.rounds {
                    let pick = rng.below(10);
                    let (args, name): (Vec<&str>, Option<String>) = if pick < 4 {
                        let m = *rng.pick(&MODELS);
                        (
                            vec!["--manifest", cat, "store", "pull", m],
                            Some(m.to_owned()),
                        )
                    } else if pick < 8 {
                        let i = rng.below(4) as usize;
                        let name = format!("added-{i}");
                        (vec!["store", "add", &inputs[i], "--name"], Some(name))
                    } else if pick < 9 {
                        (vec!["store", "gc"], None)
                    } else {
                        (vec!["store", "gc", "--tmp-age", "0"], None)
                    };
                    let mut c = lab.cmd();
                    c.args(&args);
                    if let (Some(n), true) = (&name, args.contains(&"add")) {
                        c.arg(n);
                    }
                    let r = run_within(&mut c, LIMIT);
                    let mut st = seen
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    st.ops += 1;
                    match r {
                        Ok(r) if r.success() => {
                            if let Some(n) = name {
                                st.recorded.insert(n);
                            }
                        }
                        Ok(r) => {
                            st.failed
                                .push(format!("{}: {}", args.join(" "), Run::describe(&r)))
                        }
                        Err(e) => st.failed.push(format!("{}: {e:#}", args.join(" "))),
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let seen = seen
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    out.runs = seen.ops;

    let corrupt = check_blobs(&lab.store, &ctx.oracle)?;
    let blobs = beaker::fsx::user::read_dir(&lab.store.join("blobs")).map_or(0, |b| b.len());
    for v in &corrupt {
        out.violations.push(format!("after the race: {v}"));
    }
    // Lost names: reported as recorded, absent now.
    let mut lost = Vec::new();
    for name in &seen.recorded {
        if lab.run(&["store", "path", name])?.code != 0 {
            lost.push(name.clone());
        }
    }
    // Every name comes back with one more pull or add, and then the store is sound.
    for (i, name) in MODELS.iter().enumerate() {
        let r = lab.run(&["--manifest", &cat, "store", "pull", name])?;
        let a = lab.run(&["store", "add", &inputs[i], "--name", &format!("added-{i}")])?;
        for (what, r) in [(name.to_string(), r), (format!("added-{i}"), a)] {
            if !r.success() {
                out.violations
                    .push(format!("restoring {what} after the race: {}", r.describe()));
            }
        }
    }
    for v in check_store(&lab.store, &ctx.oracle)? {
        out.violations.push(format!("after restoring: {v}"));
    }
    out.figure("processes", WORKERS);
    out.figure("operations", seen.ops);
    out.figure(
        "ops/s",
        format!("{:.0}", seen.ops as f64 / elapsed.as_secs_f64()),
    );
    out.figure("blobs at the end", blobs);
    out.figure("corrupt blobs", corrupt.len());
    out.figure(
        "lost names",
        format!("{} of {}", lost.len(), seen.recorded.len()),
    );
    out.figure("failed operations", seen.failed.len());
    let mut table = String::from("| failed operation (exit: message) |\n|---|\n");
    for f in seen.failed.iter().take(20) {
        table.push_str(&format!("| {} |\n", f.replace('|', "\\|")));
    }
    if lost.is_empty() && seen.failed.is_empty() {
        table = "No operation failed and no name was lost.\n".to_owned();
    } else if !lost.is_empty() {
        table.push_str(&format!(
            "\nLost names (restored by the next pull/add): {}\n",
            lost.join(", ")
        ));
    }
    out.table = Some(table);
    Ok(out)
}
