//! R8, weak filesystems: on every profile of the kit's test filesystem (`testkit::testfs`:
//! bindfs, sshfs, per-mount locks, no hard links, stale nlink, flock no-op or ENOSYS …) a share
//! of R1's kill trials ([`super::kill::trials`]) and rounds of "two machines": a second mount of
//! the same directory whose processes run in a UTS namespace of their own with another
//! hostname, 2 + 2 concurrent pulls of one model through the two mounts, one of the four
//! SIGKILLed at a random instant in every other round. Every pull that is not killed succeeds
//! with the right bytes, the invariants hold ([`super::check`]) after each round, and in a
//! round without a kill the model is downloaded once where locks meet across mounts, at most
//! twice where each mount's locks are its own; stores where flock does nothing are made with
//! `--locking none` (the refusal at init says so), where lease files in `locks/` (shared by
//! both mounts) hold them to one download as well.
//! `exfat` is left out (init refuses it; `tests/integration/weakfs` asserts the refusal), and
//! so is `power-cut` (R10).

// Reads of the model files the pulls printed use raw std::fs (reads only).
#![allow(clippy::disallowed_methods)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use testkit::lab::{blake3_hex, finish_within, send_signal, Rng, LIMIT};
use testkit::testfs::{Locks, Mount, Options, TestFs, PROFILES};

use super::check::check_store;
use super::kill::{trials, world, World};
use super::{needs_fuse, Ctx, Outcome};

/// The model the two machines pull (3 MiB, so a kill lands mid-download).
const MODEL: &str = "one-b";
/// `BEAKER_LEASE_SILENCE` on the lockless profiles (seconds; the default 30 would make every
/// round whose killed pull held the lease wait that long).
const LEASE_SILENCE: &str = "3";
/// The hostname of the second machine's processes.
const OTHER_HOST: &str = "beaker-r8-machine-b";

pub fn run(ctx: &Ctx) -> Result<Outcome> {
    let mut out = Outcome::new("R8 weak filesystems");
    if !needs_fuse(&mut out, "R8")? {
        return Ok(out);
    }
    let profiles: Vec<&str> = PROFILES
        .iter()
        .map(|(name, _, _)| *name)
        .filter(|n| !matches!(*n, "exfat" | "power-cut"))
        .collect();
    let per_profile = (ctx.trials / profiles.len() as u64).max(10);
    let rounds = (ctx.rounds / 5).max(4);
    let mut table = String::from(
        "| profile | kill trials | killed mid-run | two-machine rounds | downloads per round without a kill (bound) | violations |\n|---|---|---|---|---|---|\n",
    );
    let mut rng = Rng::new(ctx.seed);
    for profile in profiles {
        let options = Options::profile(profile)?;
        let fs = TestFs::new(&options).with_context(|| format!("mount the {profile} profile"))?;
        let mut w = world(ctx, "weak")?;
        w.lab.store = fs.path().join("store");
        if matches!(options.locks, Locks::Noop | Locks::Enosys) {
            w.init_args = vec!["--locking", "none"];
            // A killed lease holder of the other "machine" is waited for this long.
            w.lab.push_env(&[("BEAKER_LEASE_SILENCE", LEASE_SILENCE)]);
        }
        let kills = trials(ctx, per_profile, Outcome::new("R8"), &w, None)?;
        let killed = kills
            .figures
            .iter()
            .find(|(k, _)| k == "kill mid-run")
            .map_or("?".to_owned(), |(_, v)| v.clone());
        let other = fs
            .mount_another("mnt-b", &options)
            .with_context(|| format!("a second mount of the {profile} profile"))?;
        // One download where locks (or, without them, lease files) meet across the mounts;
        // two where each mount's flocks are its own and the probe cannot tell.
        let bound = match options.locks {
            Locks::Shared | Locks::Noop | Locks::Enosys => 1,
            Locks::PerMount => 2,
        };
        let mut downloads = Vec::new();
        let mut violations: Vec<String> = kills.violations;
        for round in 0..rounds {
            match two_machines(ctx, &w, &other, round % 2 == 1, &mut rng) {
                Ok((got, problems)) => {
                    if let Some(n) = got {
                        downloads.push(n);
                        if n > bound {
                            violations.push(format!(
                                "round {round}: {n} downloads of {MODEL} by 2 + 2 pulls (at most {bound} here)"
                            ));
                        }
                    }
                    violations.extend(problems.into_iter().map(|p| format!("round {round}: {p}")));
                }
                Err(e) => violations.push(format!("round {round}: {e:#}")),
            }
        }
        drop(other);
        out.runs += kills.runs + rounds;
        table.push_str(&format!(
            "| {profile} | {} | {killed} | {rounds} | {} (≤ {bound}) | {} |\n",
            kills.runs,
            downloads
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            violations.len()
        ));
        out.violations.extend(
            violations
                .into_iter()
                .map(|v| format!("{profile} (seed {}): {v}", ctx.seed)),
        );
    }
    out.table = Some(table);
    Ok(out)
}

/// One round: `MODEL` removed (its blob too), then 2 pulls through the first mount and 2 through `other` (as
/// another host), one of them SIGKILLed when `kill`. Returns the downloads (when nothing was
/// killed: a killed pull's partial is resumed, a second body) and what went wrong.
fn two_machines(
    ctx: &Ctx,
    w: &World,
    other: &Mount,
    kill: bool,
    rng: &mut Rng,
) -> Result<(Option<usize>, Vec<String>)> {
    let rm = w.lab.run(&["store", "rm", MODEL])?;
    anyhow::ensure!(matches!(rm.code, 0 | 3), "rm {MODEL}: {}", rm.describe());
    // A lockless store's rm leaves the blob to gc, which keeps one whose inode changed within
    // the hour (an add may be about to name it): delete it as gc would, so every round
    // downloads.
    let want = w.single.get(MODEL).context("the model's bytes")?;
    let blob = w.lab.store.join("blobs").join(blake3_hex(want));
    if w.init_args.contains(&"none") && blob.exists() {
        std::fs::remove_file(&blob).with_context(|| format!("remove {}", blob.display()))?;
    }
    let path = format!("/{MODEL}");
    let before = w.server.bodies(&path);
    let other_store = other.path().join("store");
    let mut children: Vec<(Child, &str)> = Vec::new();
    for machine in ["a", "a", "b", "b"] {
        let mut c = if machine == "a" {
            w.lab.cmd()
        } else {
            let mut c = Command::new(&w.lab.bin);
            c.arg("--store").arg(&other_store);
            w.lab.clean(&mut c);
            as_other_host(&mut c);
            c
        };
        c.arg("--manifest")
            .arg(&w.catalogue)
            .args(["store", "pull", MODEL])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        children.push((c.spawn().context("start a pull")?, machine));
    }
    let victim = kill.then(|| rng.below(4) as usize);
    if let Some(v) = victim {
        std::thread::sleep(Duration::from_micros(rng.below(300_000)));
        let _ = send_signal(children[v].0.id(), libc::SIGKILL);
    }
    let mut problems = Vec::new();
    for (i, (child, machine)) in children.into_iter().enumerate() {
        let r = finish_within(child, LIMIT)?;
        if Some(i) == victim {
            continue;
        }
        if !r.success() {
            problems.push(format!(
                "a pull on machine {machine} failed: {}",
                r.describe()
            ));
        } else if std::fs::read(r.last_line()).ok().as_deref() != Some(want.as_slice()) {
            problems.push(format!(
                "a pull on machine {machine} printed {}, which does not hold {MODEL}",
                r.last_line()
            ));
        }
    }
    for v in check_store(&w.lab.store, &ctx.oracle)? {
        problems.push(format!("after 2 + 2 pulls: {v}"));
    }
    let downloads = w.server.bodies(&path) - before;
    Ok((victim.is_none().then_some(downloads), problems))
}

/// Makes `cmd` run in a UTS namespace of its own named [`OTHER_HOST`]: beaker's host token in
/// partial names and lock records then says another machine.
fn as_other_host(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    #[allow(
        unsafe_code,
        reason = "pre_exec runs unshare(2) and sethostname(2), async-signal-safe, in the child"
    )]
    // SAFETY: between fork and exec only two system calls run, both async-signal-safe, on
    // memory owned by the closure.
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWUTS) != 0
                || libc::sethostname(OTHER_HOST.as_ptr().cast(), OTHER_HOST.len()) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
