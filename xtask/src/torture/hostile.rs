//! R7, a hostile member: plants symlinks, FIFOs, directories, files where directories belong,
//! and stale or missing markers in every directory of a store (`referrers/`,
//! `snapshots/<tree>/sub/`, `index/`, `uses/`, `locks/`, `tmp/`, `pins/`, `names/`, `blobs/`,
//! `quarantine/`, `probe.toml`, a lease in `locks/` of a store without locks), then runs every command against it, as another member and as root (as this
//! user when not root), and checks after each command:
//!
//! - nothing outside the store changed: a tree of sentinel files (names a command might act on:
//!   model names, blob hashes, lock names), their bytes, modes, owners and times, hashed before
//!   and after (symlinks in the store point into it);
//! - every path a command handed out (`path`, `pull`, `add`, `path --dir`) holds the model's
//!   bytes, read right then;
//! - no command hung (killed after 30 s) or panicked (exit 101) or died of a signal;
//! - the blobs are sound (I1, I2), apart from the planted entry itself.
//!
//! A member can still deny service (make commands fail, delete what the group shares); what
//! this case shows is that a member can never make beaker touch a file outside the store or
//! hand out bytes that are not the model's.

// Plants hostile files and reads the sentinel tree with raw std::fs on purpose.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use testkit::lab::{blake3_hex, bytes, run_within, Lab, Run, FAST_NETWORK};
use testkit::users::{
    as_user_cmd, ensure_group, ensure_user, open_to_all, shared_binary, User, GROUP,
};

use super::check::check_blobs;
use super::{Ctx, Outcome};

/// How long one command may take before it counts as a hang.
const HANG: Duration = Duration::from_secs(30);

/// The models every trial's store holds: `m0` one file (added), `m1` a directory with `sub/`
/// (added), `m2` one file pulled from a catalogue that pins its sha256 (so the digest index has
/// an entry).
struct Models {
    m0: Vec<u8>,
    m1_main: Vec<u8>,
    m1_sub: Vec<u8>,
    m2: Vec<u8>,
}

impl Models {
    fn new() -> Models {
        Models {
            m0: bytes(70_000, 901),
            m1_main: bytes(3_000, 902),
            m1_sub: bytes(90_000, 903),
            m2: bytes(5_000, 904),
        }
    }

    /// `(model path, bytes)` of each file of `name`.
    fn files(&self, name: &str) -> Vec<(&'static str, &[u8])> {
        match name {
            "m0" => vec![("m0.bin", &self.m0)],
            "m1" => vec![("main.bin", &self.m1_main), ("sub/w.bin", &self.m1_sub)],
            "m2" => vec![("m2.bin", &self.m2)],
            _ => Vec::new(),
        }
    }

    /// The tree id of `m1`, as `crate::snapshot::TreeId` computes it.
    fn m1_tree(&self) -> String {
        let mut h = blake3::Hasher::new();
        for (path, b) in self.files("m1") {
            h.update(format!("{path}\0{}\0{}\n", blake3_hex(b), b.len()).as_bytes());
        }
        h.finalize().to_hex().to_string()
    }
}

/// One planted thing: where (relative to the store) and what.
#[derive(Clone, Copy)]
enum What {
    /// A symlink to the sentinel directory.
    LinkToDir,
    /// A symlink to a sentinel file.
    LinkToFile,
    Fifo,
    /// A regular file where a directory belongs.
    File,
    /// A directory holding a symlink to the sentinel directory (and one to a sentinel file).
    DirOfLinks,
    /// The entry removed (a missing marker, a lost index).
    Removed,
    /// A symlink to a directory of the attacker's holding hard links to the model's own blobs
    /// under their names: every file "is its blob", but the attacker can swap them any time.
    LinkToLookalike,
    /// An empty file (a stale marker).
    Empty,
    /// A lease record of another machine (`host = "r7-elsewhere"`), never refreshed.
    ForeignLease,
    /// [`What::ForeignLease`], mode 0600: only its owner (the planter) may read it.
    UnreadableLease,
}

/// Every plant: a label, the path in the store (with `{m0}`, `{m2}`, `{tree}` filled in), what.
fn plants() -> Vec<(&'static str, &'static str, What)> {
    use What::*;
    vec![
        ("referrers list -> dir", "referrers/{m0}", LinkToDir),
        ("referrers list -> file", "referrers/{m0}", LinkToFile),
        ("referrers list is a file", "referrers/{m0}", File),
        ("referrers list is a FIFO", "referrers/{m0}", Fifo),
        ("referrers/ -> dir", "referrers", LinkToDir),
        ("referrers marker missing", "referrers/{m0}/m0", Removed),
        ("referrers stale marker", "referrers/{m0}/m9", Empty),
        (
            "referrers/.complete missing",
            "referrers/.complete",
            Removed,
        ),
        ("referrers marker -> file", "referrers/{m0}/m0", LinkToFile),
        ("snapshot sub/ -> dir", "snapshots/{tree}/sub", LinkToDir),
        (
            "snapshot sub/ -> lookalike",
            "snapshots/{tree}/sub",
            LinkToLookalike,
        ),
        ("snapshot -> lookalike", "snapshots/{tree}", LinkToLookalike),
        ("snapshot sub/ is a FIFO", "snapshots/{tree}/sub", Fifo),
        (
            "snapshot file -> file",
            "snapshots/{tree}/main.bin",
            LinkToFile,
        ),
        ("snapshot -> dir", "snapshots/{tree}", LinkToDir),
        (
            "snapshot extra link",
            "snapshots/{tree}/sub/extra",
            LinkToFile,
        ),
        ("snapshots/ -> dir", "snapshots", LinkToDir),
        ("index entry -> file", "index/sha256-{m2sha}", LinkToFile),
        ("index entry is a FIFO", "index/sha256-{m2sha}", Fifo),
        ("index/ -> dir", "index", LinkToDir),
        ("use record -> file", "uses/m0", LinkToFile),
        ("use record is a FIFO", "uses/m0", Fifo),
        ("uses/ -> dir", "uses", LinkToDir),
        ("pin -> file", "pins/m0", LinkToFile),
        ("gc.lock -> file", "locks/gc.lock", LinkToFile),
        ("manifest.lock is a dir", "locks/manifest.lock", DirOfLinks),
        ("blob lock is a FIFO", "locks/{m2}.lock", Fifo),
        ("locks/ -> dir", "locks", LinkToDir),
        ("locks/ removed", "locks", Removed),
        ("temp file -> file", "tmp/{m2}.1.00000000.part", LinkToFile),
        (
            "temp file of a gone writer here -> file",
            "tmp/{m2}@{host}.4000000.00000000.part",
            LinkToFile,
        ),
        ("probe record -> file", "probe.toml", LinkToFile),
        ("probe record is a FIFO", "probe.toml", Fifo),
        ("probe record is a dir of links", "probe.toml", DirOfLinks),
        (
            "staging dir of links",
            "tmp/snap-{tree}.1.00000000.d",
            DirOfLinks,
        ),
        ("tmp/ -> dir", "tmp", LinkToDir),
        ("record -> file", "names/m0.toml", LinkToFile),
        ("blob -> file", "blobs/{m2}", LinkToFile),
        ("blob is a dir of links", "blobs/{m2}", DirOfLinks),
        ("quarantine entry -> dir", "quarantine/{m0}.1", LinkToDir),
        // Leases are used where locks do not work: these trials run on a `--locking none`
        // store, and `m2` is pulled by the commands, through the planted lease path.
        ("lease -> file", "locks/{m2}.lease", LinkToFile),
        ("lease is a FIFO", "locks/{m2}.lease", Fifo),
        ("lease is a dir of links", "locks/{m2}.lease", DirOfLinks),
        (
            "lease of a silent machine",
            "locks/{m2}.lease",
            ForeignLease,
        ),
        (
            "lease others may not read",
            "locks/{m2}.lease",
            UnreadableLease,
        ),
    ]
}

/// The commands each trial runs, in order (the destructive ones last).
fn commands(lab: &Lab, cat: &Path) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|a| (*a).to_owned()).collect::<Vec<String>>();
    let cat = cat.to_string_lossy().into_owned();
    let input = lab.path("in/m3.bin").to_string_lossy().into_owned();
    let out = lab.path("export").to_string_lossy().into_owned();
    vec![
        s(&["store", "path", "m0"]),
        s(&["store", "path", "m1", "--dir"]),
        s(&["--manifest", &cat, "store", "pull", "m2"]),
        s(&["store", "add", &input, "--name", "m3"]),
        s(&["store", "ls"]),
        s(&["store", "info"]),
        s(&["store", "show", "m0"]),
        s(&["store", "pin", "m0"]),
        s(&["store", "unpin", "m0"]),
        s(&["store", "export", "m1", &out]),
        s(&["store", "verify"]),
        s(&["store", "path", "m1", "--dir"]),
        s(&["store", "prune-locks"]),
        s(&["store", "gc", "--tmp-age", "0s"]),
        s(&["store", "rm", "-y", "m0"]),
        s(&["store", "rm", "-y", "m1"]),
        s(&["store", "gc"]),
    ]
}

/// Who runs the commands: as a member (needs root to become one) or as root / this user.
enum Actor<'a> {
    Me,
    Member(&'a User, &'a Path),
}

impl Actor<'_> {
    fn label(&self) -> &'static str {
        match self {
            Actor::Me if beaker::who::is_root() => "root",
            Actor::Me => "this user",
            Actor::Member(..) => "member",
        }
    }

    fn run(&self, lab: &Lab, args: &[String]) -> Result<Run> {
        let mut c = match self {
            Actor::Me => lab.cmd(),
            Actor::Member(user, bin) => {
                let mut c = as_user_cmd(user, "022", bin, &lab.store);
                c.envs(FAST_NETWORK);
                c
            }
        };
        // A lease of a "silent machine" is waited for this long (not the default 30 s: a hang).
        c.env("BEAKER_LEASE_SILENCE", "2");
        run_within(c.args(args), HANG)
    }
}

pub fn run(ctx: &Ctx) -> Result<Outcome> {
    let mut out = Outcome::new("R7 hostile member");
    let lab = super::new_lab(ctx, "hostile")?;
    let models = Models::new();
    // As root: a group store; the planted files belong to bob (a member); the commands run as
    // alice (another member) and as root.
    let member = if beaker::who::is_root() {
        ensure_group()?;
        let alice = ensure_user("beaker-alice", true)?;
        let bob = ensure_user("beaker-bob", true)?;
        open_to_all(lab.dir.path())?;
        let bin = shared_binary(&ctx.bin, &lab.path("bin"))?;
        Some((alice, bob, bin))
    } else {
        out.figure("members", "not run: becoming another user needs root");
        None
    };
    let inputs = write_inputs(&lab, &models)?;
    let mut rows: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut trials = 0u64;
    for (label, at, what) in plants() {
        let mut actors = vec![Actor::Me];
        if let Some((alice, _, bin)) = &member {
            actors.push(Actor::Member(alice, bin));
        }
        for actor in &actors {
            trials += 1;
            let planter = member.as_ref().map(|(_, bob, _)| bob);
            let found = trial(
                ctx,
                &lab,
                &models,
                &inputs,
                planter,
                (label, at, what),
                actor,
            )
            .with_context(|| format!("R7 trial {label} as {}", actor.label()))?;
            let row = rows
                .entry(format!("{label} | {}", actor.label()))
                .or_default();
            row.0 += found.commands;
            for v in found.violations {
                row.1 += 1;
                out.violations
                    .push(format!("{label}, as {}: {v}", actor.label()));
            }
        }
    }
    out.runs = trials;
    out.figure("plants", plants().len());
    out.figure("commands run", rows.values().map(|(n, _)| n).sum::<u64>());
    let mut table = String::from("| plant | who | commands | violations |\n|---|---|---|---|\n");
    for (k, (n, v)) in rows {
        table.push_str(&format!("| {k} | {n} | {v} |\n"));
    }
    out.table = Some(table);
    Ok(out)
}

/// The files outside the store the trials read: the catalogue of `m2` (with its file next to
/// it), the sources of `m0`, `m1` and `m3`.
struct Inputs {
    cat: PathBuf,
    m0: PathBuf,
    m1: PathBuf,
}

fn write_inputs(lab: &Lab, models: &Models) -> Result<Inputs> {
    use sha2::Digest;
    lab.file("in/cat/m2.bin", &models.m2)?;
    let sha = format!("{:x}", sha2::Sha256::digest(&models.m2));
    let cat = lab.file(
        "in/cat/models.toml",
        format!(
            "version = 1\n[models.m2]\nblake3 = \"{}\"\nsha256 = \"{sha}\"\nsize = {}\nurls = [\"m2.bin\"]\n",
            blake3_hex(&models.m2),
            models.m2.len()
        )
        .as_bytes(),
    )?;
    let m0 = lab.file("in/m0.bin", &models.m0)?;
    lab.file("in/m1/main.bin", &models.m1_main)?;
    lab.file("in/m1/sub/w.bin", &models.m1_sub)?;
    lab.file("in/m3.bin", &bytes(1_000, 905))?;
    // Every user reads them.
    for d in ["in", "in/cat", "in/m1", "in/m1/sub"] {
        std::fs::set_permissions(lab.path(d), std::fs::Permissions::from_mode(0o755))?;
    }
    for f in [
        "in/cat/m2.bin",
        "in/cat/models.toml",
        "in/m0.bin",
        "in/m1/main.bin",
        "in/m1/sub/w.bin",
        "in/m3.bin",
    ] {
        std::fs::set_permissions(lab.path(f), std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(Inputs {
        cat,
        m0,
        m1: lab.path("in/m1"),
    })
}

/// What one trial found.
struct Found {
    commands: u64,
    violations: Vec<String>,
}

fn trial(
    ctx: &Ctx,
    lab: &Lab,
    models: &Models,
    inputs: &Inputs,
    planter: Option<&User>,
    (label, at, what): (&str, &str, What),
    actor: &Actor<'_>,
) -> Result<Found> {
    let mut found = Found {
        commands: 0,
        violations: Vec::new(),
    };
    // A fresh store with the three models, made by this process (root, or this user).
    let _ = std::fs::remove_dir_all(&lab.store);
    let _ = std::fs::remove_dir_all(lab.path("export"));
    let mut init: Vec<&str> = if planter.is_some() {
        vec!["store", "init", "--shared", "group", "--group", GROUP]
    } else {
        vec!["store", "init"]
    };
    let lockless = at.ends_with(".lease");
    if lockless {
        init.extend(["--locking", "none"]);
    }
    ensure_ok(lab.run(&init)?, "init")?;
    let (m0, m1) = (inputs.m0.to_string_lossy(), inputs.m1.to_string_lossy());
    ensure_ok(lab.run(&["store", "add", &m0, "--name", "m0"])?, "add m0")?;
    ensure_ok(lab.run(&["store", "add", &m1, "--name", "m1"])?, "add m1")?;
    let cat = inputs.cat.to_string_lossy();
    if !lockless {
        ensure_ok(
            lab.run(&["--manifest", &cat, "store", "pull", "m2"])?,
            "pull m2",
        )?;
    }

    let victim = match actor {
        Actor::Member(user, _) => Some(*user),
        Actor::Me => None,
    };
    let sentinel = Sentinel::make(lab, victim)?;
    let before = sentinel.snapshot()?;
    let planted = plant(lab, models, &sentinel, at, what, planter)
        .with_context(|| format!("plant {label}"))?;

    for args in commands(lab, &inputs.cat) {
        found.commands += 1;
        let shown = args.join(" ");
        let r = match actor.run(lab, &args) {
            Ok(r) => r,
            Err(e) => {
                found.violations.push(format!("`{shown}`: {e:#}"));
                continue;
            }
        };
        match (r.signal, r.code) {
            (Some(_), _) => found.violations.push(format!("`{shown}` died of a signal")),
            (None, 101) => found
                .violations
                .push(format!("`{shown}` panicked: {}", r.stderr.trim())),
            _ => {}
        }
        if r.success() {
            found.violations.extend(
                handed_out(&lab.store, models, &args, &r)
                    .into_iter()
                    .map(|v| format!("`{shown}`: {v}")),
            );
        }
        let now = sentinel.snapshot()?;
        if now != before {
            found.violations.push(format!(
                "`{shown}` changed files outside the store: {}",
                diff(&before, &now)
            ));
            break;
        }
    }
    // The blobs beaker wrote are sound; the planted entry (if still there) is not beaker's.
    for v in check_blobs(&lab.store, &ctx.oracle)? {
        if !planted.iter().any(|p| v.contains(p.as_str())) {
            found.violations.push(format!("after the commands: {v}"));
        }
    }
    Ok(found)
}

fn ensure_ok(r: Run, what: &str) -> Result<()> {
    anyhow::ensure!(r.success(), "{what}: {}", r.describe());
    Ok(())
}

/// For a command that hands out a path (`path`, `pull`, `add`): the files there must hold the
/// model's bytes, read now. Violations, one per wrong file.
fn handed_out(store: &Path, models: &Models, args: &[String], r: &Run) -> Vec<String> {
    let verb = args
        .iter()
        .position(|a| a == "store")
        .and_then(|i| args.get(i + 1));
    let name = match verb.map(String::as_str) {
        Some("path" | "pull") => args.iter().rev().find(|a| a.starts_with('m')),
        _ => None,
    };
    let Some(name) = name else {
        return Vec::new();
    };
    let printed = PathBuf::from(r.last_line());
    let dir = args.iter().any(|a| a == "--dir");
    let mut bad = Vec::new();
    // Right bytes through a planted link are still the attacker's to swap the moment after:
    // nothing handed out may lead through a symlink inside the store.
    if let Some(link) = symlink_on_the_way(store, &printed) {
        bad.push(format!(
            "handed out {} through the symlink {}",
            printed.display(),
            link.display()
        ));
    }
    for (path, bytes) in models.files(name) {
        let file = if dir {
            printed.join(path)
        } else if models.files(name).len() == 1 {
            printed.clone()
        } else {
            continue;
        };
        if let Some(link) = symlink_on_the_way(store, &file) {
            bad.push(format!(
                "handed out {} through the symlink {}",
                file.display(),
                link.display()
            ));
        }
        match std::fs::read(&file) {
            Ok(b) if b == bytes => {}
            Ok(b) => bad.push(format!(
                "handed out {} holding {} bytes that are not {name}'s {path}",
                file.display(),
                b.len()
            )),
            Err(e) => bad.push(format!(
                "handed out {} that cannot be read: {e}",
                file.display()
            )),
        }
    }
    bad
}

/// The first component of `path` below `store` that is a symlink, if any — except a snapshot's
/// own link to its blob (`../../blobs/<hex>` as the last component, what beaker makes where a
/// hard link is refused), which leads nowhere but into `blobs/`.
fn symlink_on_the_way(store: &Path, path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(store).ok()?;
    let parts: Vec<_> = rel.components().collect();
    let mut at = store.to_owned();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        if !std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            continue;
        }
        let last = i + 1 == parts.len();
        let to_blob = std::fs::read_link(&at).is_ok_and(|t| {
            let climbs = t
                .components()
                .take_while(|c| *c == std::path::Component::ParentDir)
                .count();
            let rest: Vec<_> = t.components().skip(climbs).collect();
            climbs == i && rest.len() == 2 && rest[0].as_os_str() == "blobs"
        });
        if !(last && to_blob) {
            return Some(at);
        }
    }
    None
}

/// The tree of files outside the store that planted links point at.
struct Sentinel {
    dir: PathBuf,
    file: PathBuf,
}

/// What the sentinel tree holds: relative path → (type, mode, uid, mtime, bytes' hash).
type Picture = BTreeMap<PathBuf, (String, u32, u32, i64, i64, String)>;

impl Sentinel {
    /// Files named like what a command may act on: model names, record and lock names, the
    /// blobs' hashes; some this user's, some root's (and the member victim's when root).
    fn make(lab: &Lab, victim: Option<&User>) -> Result<Sentinel> {
        let dir = lab.path("sentinel");
        let _ = std::fs::remove_dir_all(&dir);
        let names = [
            "m0",
            "m1",
            "m2",
            "m9",
            "m0.toml",
            "gc.lock",
            "manifest.lock",
            "main.bin",
            "w.bin",
            "m2.bin",
            ".complete",
            "extra",
        ];
        for n in names {
            lab.file(
                &format!("sentinel/{n}"),
                format!("sentinel {n}\n").as_bytes(),
            )?;
        }
        lab.file("sentinel/sub/w.bin", b"sentinel sub/w.bin\n")?;
        let file = lab.file("sentinel-file", b"a file outside the store\n")?;
        // Old times, so a write of "now" through a link would show.
        let old = "200001010000";
        let touched = Command::new("touch")
            .args(["-h", "-t", old])
            .arg(&file)
            .args(names.iter().map(|n| dir.join(n)))
            .arg(dir.join("sub/w.bin"))
            .status()?;
        anyhow::ensure!(touched.success(), "touch the sentinel files");
        if let Some(user) = victim {
            // The victim's own files: a command of theirs that followed a planted link could
            // remove or rewrite them (root's commands could harm anyone's).
            let owned = Command::new("chown")
                .arg("-R")
                .arg(format!("{}:{}", user.uid, user.gid))
                .arg(&dir)
                .arg(&file)
                .status()?;
            anyhow::ensure!(owned.success(), "chown the sentinel files");
        }
        Ok(Sentinel { dir, file })
    }

    fn snapshot(&self) -> Result<Picture> {
        let mut pic = Picture::new();
        let mut stack = vec![self.dir.clone(), self.file.clone()];
        while let Some(p) = stack.pop() {
            let m = match std::fs::symlink_metadata(&p) {
                Ok(m) => m,
                Err(_) => continue,
            };
            let kind = if m.is_dir() {
                "dir"
            } else if m.is_file() {
                "file"
            } else {
                "other"
            };
            let hash = if m.is_file() {
                blake3_hex(&std::fs::read(&p).unwrap_or_default())
            } else {
                String::new()
            };
            pic.insert(
                p.clone(),
                (
                    kind.into(),
                    m.mode() & 0o7777,
                    m.uid(),
                    m.mtime(),
                    m.mtime_nsec(),
                    hash,
                ),
            );
            if m.is_dir() {
                for e in std::fs::read_dir(&p)? {
                    stack.push(e?.path());
                }
            }
        }
        Ok(pic)
    }
}

fn diff(before: &Picture, now: &Picture) -> String {
    let mut out = Vec::new();
    for (p, v) in before {
        match now.get(p) {
            None => out.push(format!("{} removed", p.display())),
            Some(w) if w != v => out.push(format!("{} changed", p.display())),
            _ => {}
        }
    }
    for p in now.keys().filter(|p| !before.contains_key(*p)) {
        out.push(format!("{} created", p.display()));
    }
    out.join(", ")
}

/// Plants `what` at `at` (placeholders filled in); returns the store paths planted, relative,
/// for the blob check to skip.
fn plant(
    lab: &Lab,
    models: &Models,
    sentinel: &Sentinel,
    at: &str,
    what: What,
    planter: Option<&User>,
) -> Result<Vec<String>> {
    use sha2::Digest;
    let rel = at
        .replace("{m0}", &blake3_hex(&models.m0))
        .replace(
            "{m2sha}",
            &format!("{:x}", sha2::Sha256::digest(&models.m2)),
        )
        .replace("{m2}", &blake3_hex(&models.m2))
        .replace("{tree}", &models.m1_tree())
        .replace("{host}", &beaker::who::host_token());
    let p = lab.store.join(&rel);
    // What was there goes first (the member replaces it).
    if let Ok(m) = std::fs::symlink_metadata(&p) {
        if m.is_dir() {
            std::fs::remove_dir_all(&p)?;
        } else {
            std::fs::remove_file(&p)?;
        }
    }
    match what {
        What::LinkToDir => std::os::unix::fs::symlink(&sentinel.dir, &p)?,
        What::LinkToFile => std::os::unix::fs::symlink(&sentinel.file, &p)?,
        What::LinkToLookalike => {
            // The same layout as what the link replaces: the whole model, or its `sub/`.
            let fake = lab.path("attacker");
            let _ = std::fs::remove_dir_all(&fake);
            let under = if rel.ends_with("/sub") { "sub/" } else { "" };
            for (path, b) in models.files("m1") {
                let Some(inside) = path.strip_prefix(under) else {
                    continue;
                };
                let at = fake.join(inside);
                std::fs::create_dir_all(at.parent().unwrap_or(&fake))?;
                std::fs::hard_link(lab.store.join("blobs").join(blake3_hex(b)), &at)?;
            }
            std::os::unix::fs::symlink(&fake, &p)?;
        }
        What::Fifo => {
            let made = Command::new("mkfifo").arg(&p).status()?;
            anyhow::ensure!(made.success(), "mkfifo {}", p.display());
        }
        What::File | What::Empty => std::fs::write(&p, b"")?,
        What::DirOfLinks => {
            std::fs::create_dir(&p)?;
            std::os::unix::fs::symlink(&sentinel.dir, p.join("m0"))?;
            std::os::unix::fs::symlink(&sentinel.file, p.join("gc.lock"))?;
        }
        What::ForeignLease | What::UnreadableLease => {
            std::fs::write(
                &p,
                "pid = 1\nuser = \"bob\"\nhost = \"r7-elsewhere\"\nsince = \"2099-01-01T00:00:00Z\"\n",
            )?;
            if matches!(what, What::UnreadableLease) {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
            }
        }
        What::Removed => {}
    }
    if let Some(user) = planter {
        if !matches!(what, What::Removed) {
            std::os::unix::fs::lchown(&p, Some(user.uid), None)?;
        }
    }
    // Old enough for gc and quarantine expiry to act on it (through the link, if it followed).
    let _ = Command::new("touch")
        .args(["-h", "-t", "200001010000"])
        .arg(&p)
        .status();
    Ok(vec![rel])
}
