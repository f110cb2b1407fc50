//! R5, real users: `beaker-alice` and `beaker-bob`, members of the group `beaker-lab`, each race
//! `--rounds` pulls, adds, rm and gc on one group store (alice with umask 077, bob with 022),
//! while `beaker-eve`, who is not a member, tries the same. Every member operation must succeed (an rm
//! may find the name already gone), every one of eve's must be refused, and afterwards the store
//! must pass [`super::check`], own no file of eve's, and show no policy problem in `store info`.
//! Creating users needs root: as another user the case reports "not run" (a violation when
//! `BEAKER_TEST_REQUIRE_ROOT=1`, as in CI).

// The public input files are made readable with raw std::fs (outside the store); the ownership
// check reads the store with raw std::fs.
#![allow(clippy::disallowed_methods)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Result;
use testkit::lab::{bytes, catalogue, run_within, Lab, ModelFile, Rng, Run, FAST_NETWORK, LIMIT};
use testkit::server::{Fault, Server};
use testkit::users::{
    as_user_cmd, create_all, open_to_all, root_decision, shared_binary, RootOnly, User, GROUP,
};

use super::check::check_store;
use super::{Ctx, Outcome};

/// `beaker --store S args…` as `user` with `umask`, with its groups and the fast network.
fn as_user(lab: &Lab, bin: &Path, user: &User, umask: &str, args: &[String]) -> Result<Run> {
    let mut c = as_user_cmd(user, umask, bin, &lab.store);
    c.envs(FAST_NETWORK).args(args);
    run_within(&mut c, LIMIT)
}

pub fn run(ctx: &Ctx) -> Result<Outcome> {
    let mut out = Outcome::new("R5 real users");
    let root = root_decision();
    if root != RootOnly::Run {
        out.figure("not run", "creating users needs root");
        if root == RootOnly::Fail {
            out.violations
                .push("R5 needs root and BEAKER_TEST_REQUIRE_ROOT=1 demands it".into());
        }
        return Ok(out);
    }
    let all = create_all()?;
    // Alice works with umask 077, bob and eve with 022.
    let users = [(all.alice, "077"), (all.bob, "022"), (all.eve, "022")];
    let lab = super::new_lab(ctx, "users")?;
    open_to_all(lab.dir.path())?;
    let bin = shared_binary(&ctx.bin, &lab.path("bin"))?;

    let server = Server::start()?;
    let bodies: Vec<Vec<u8>> = (0..3).map(|i| bytes(400_000, 700 + i)).collect();
    let names = ["u0", "u1", "u2"];
    for (n, b) in names.iter().zip(&bodies) {
        server.route(&format!("/{n}"), b, &[], Fault::None);
    }
    let models: Vec<(&str, Vec<ModelFile<'_>>)> = names
        .iter()
        .zip(&bodies)
        .map(|(n, b)| {
            (
                *n,
                vec![ModelFile {
                    path: "m.bin",
                    bytes: b,
                    urls: vec![server.url(&format!("/{n}"))],
                }],
            )
        })
        .collect();
    let cat = catalogue(&lab, "pub/models.toml", &models)?;
    let inputs: Vec<PathBuf> = (0..2)
        .map(|i| lab.file(&format!("pub/in{i}.bin"), &bytes(200_000, 710 + i)))
        .collect::<Result<_>>()?;
    for p in inputs.iter().chain([&cat]) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644))?;
    }
    std::fs::set_permissions(lab.path("pub"), std::fs::Permissions::from_mode(0o755))?;
    let init = lab.run(&["store", "init", "--shared", "group", "--group", GROUP])?;
    anyhow::ensure!(
        init.success(),
        "store init --shared group: {}",
        init.describe()
    );

    let failures = Mutex::new(Vec::<String>::new());
    let counts = Mutex::new((0u64, 0u64));
    let codes = Mutex::new(std::collections::BTreeMap::<String, u64>::new());
    let cat = cat.to_string_lossy().into_owned();
    std::thread::scope(|s| {
        for (k, (user, umask)) in users.iter().enumerate() {
            let (lab, bin, cat, inputs, failures, counts, codes) =
                (&lab, &bin, &cat, &inputs, &failures, &counts, &codes);
            let mut rng = Rng::new(ctx.seed.wrapping_mul(77).wrapping_add(k as u64));
            s.spawn(move || {
                for _ in 0..ctx.rounds {
                    let pick = rng.below(20);
                    let name = (*rng.pick(&["u0", "u1", "u2", "added-0", "added-1"])).to_owned();
                    let args: Vec<String> = if pick < 7 {
                        let m = (*rng.pick(&names)).to_owned();
                        vec![
                            "--manifest".into(),
                            cat.clone(),
                            "store".into(),
                            "pull".into(),
                            m,
                        ]
                    } else if pick < 12 {
                        let i = rng.below(2) as usize;
                        vec![
                            "store".into(),
                            "add".into(),
                            inputs[i].to_string_lossy().into(),
                            "--name".into(),
                            format!("added-{i}"),
                        ]
                    } else if pick < 16 {
                        vec!["store".into(), "rm".into(), "-y".into(), name]
                    } else {
                        vec!["store".into(), "gc".into()]
                    };
                    let r = as_user(lab, bin, user, umask, &args);
                    let verdict = match &r {
                        Err(e) => Some(format!("{e:#}")),
                        Ok(r) if !user.member => (r.code != 2)
                            .then(|| format!("a non-member was not refused: {}", r.describe())),
                        Ok(r) if r.success() => None,
                        Ok(r)
                            if args[1] == "rm"
                                && r.code == 3
                                && r.message().starts_with("not in the store") =>
                        {
                            None
                        }
                        Ok(r) => Some(r.describe()),
                    };
                    if let Ok(r) = &r {
                        let verb = if args[0] == "--manifest" {
                            "pull"
                        } else {
                            args[1].as_str()
                        };
                        let who = if user.member { "member" } else { "non-member" };
                        let key = format!("{who} {verb}: exit {}", r.code_text());
                        *codes
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .entry(key)
                            .or_default() += 1;
                    }
                    let mut c = counts
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if user.member {
                        c.0 += 1
                    } else {
                        c.1 += 1
                    }
                    if let Some(v) = verdict {
                        failures
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(format!("{} `{}`: {v}", user.name, args.join(" ")));
                    }
                }
            });
        }
    });
    let (member_ops, eve_ops) = counts
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    out.runs = member_ops + eve_ops;
    out.violations.extend(
        failures
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    out.violations.extend(check_store(&lab.store, &ctx.oracle)?);
    let eve = &users[2].0;
    let owned = owned_by(&lab.store, eve.uid)?;
    if !owned.is_empty() {
        out.violations.push(format!(
            "the non-member owns {} file(s) in the store: {owned:?}",
            owned.len()
        ));
    }
    let (alice, umask) = &users[0];
    let info = as_user(
        &lab,
        &bin,
        alice,
        umask,
        &["--json".into(), "store".into(), "info".into()],
    )?;
    let problems = serde_json::from_str::<serde_json::Value>(&info.stdout)
        .ok()
        .and_then(|v| v.get("problems").cloned());
    match problems {
        Some(serde_json::Value::Array(p)) if p.is_empty() => {}
        other => out.violations.push(format!(
            "store info after the race: problems {other:?} ({})",
            info.describe()
        )),
    }
    out.figure("member operations", member_ops);
    out.figure("non-member operations refused", eve_ops);
    let codes = codes
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut table = String::from("| who, command: exit | count |\n|---|---|\n");
    for (k, n) in codes {
        table.push_str(&format!("| {k} | {n} |\n"));
    }
    out.table = Some(table);
    Ok(out)
}

/// Paths under `root` owned by `uid`.
fn owned_by(root: &Path, uid: u32) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let p = e?.path();
            let m = std::fs::symlink_metadata(&p)?;
            if m.uid() == uid {
                found.push(p.clone());
            }
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    Ok(found)
}
