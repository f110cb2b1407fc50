//! R1, kill trials: pulls (some held by the server at a chosen byte), multi-file pulls, pulls of
//! several names, adds of a file and of a directory, gc, verify and rm, each SIGKILLed at a random
//! instant of its run. After each kill the store must hold the invariants ([`super::check`]);
//! then the same operation runs again and must succeed (a pull must resume a partial it left,
//! with `Range`), and the invariants must hold again.
//!
//! The random instant is uniform over a window per operation: at first the longest of two unkilled
//! runs, then shrunk by a fifth each time the run ends before its kill and grown by 5% each time
//! the kill lands, so kills land in start-up, download, publish and record alike, on a fast
//! machine or a loaded one.
//! All trials share one store, so every trial starts from what the earlier ones left.
//! [`trials`] also runs R10 ([`super::power_cut`]): the same trials, stopped by a power cut.

// Reads of model files a pull printed, and of partial sizes, use raw std::fs (reads only).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use testkit::lab::{blake3_hex, bytes, catalogue, finish_within, Lab, ModelFile, Rng, LIMIT};
use testkit::server::{Fault, Server};
use testkit::testfs::TestFs;

use super::check::check_store;
use super::{Ctx, Outcome};

/// The operations a trial can kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    /// Pull a single-file model over HTTP.
    Pull,
    /// Pull over HTTP, killed while the server holds the download at a chosen byte.
    PullGated,
    /// Pull the three-file model.
    PullMulti,
    /// Pull two names in one command.
    PullSeveral,
    /// Pull a model whose source is a file next to the catalogue.
    PullFile,
    AddFile,
    AddDir,
    Gc,
    Verify,
    Rm,
}

const OPS: [Op; 10] = [
    Op::Pull,
    Op::PullGated,
    Op::PullMulti,
    Op::PullSeveral,
    Op::PullFile,
    Op::AddFile,
    Op::AddDir,
    Op::Gc,
    Op::Verify,
    Op::Rm,
];

/// The models of the campaign and the store they go into.
pub(super) struct World {
    pub(super) lab: Lab,
    pub(super) server: Server,
    pub(super) catalogue: PathBuf,
    /// Single-file models by name: their bytes.
    pub(super) single: BTreeMap<&'static str, Vec<u8>>,
    multi_main: Vec<u8>,
    add_file: PathBuf,
    add_file_bytes: Vec<u8>,
    add_dir: PathBuf,
    /// Arguments after `store init` (`--locking none` where locks do not work).
    pub(super) init_args: Vec<&'static str>,
}

const SINGLE: [&str; 2] = ["one-a", "one-b"];

pub(super) fn world(ctx: &Ctx, case: &str) -> Result<World> {
    let lab = super::new_lab(ctx, case)?;
    let server = Server::start()?;
    let mut single = BTreeMap::new();
    single.insert("one-a", bytes(1 << 20, 11));
    single.insert("one-b", bytes(3 << 20, 12));
    for (name, body) in &single {
        server.route(&format!("/{name}"), body, &[], Fault::None);
    }
    let (m_main, m_data, m_labels) = (bytes(200_000, 21), bytes(2 << 20, 22), bytes(10_000, 23));
    for (route, body) in [
        ("/multi/model.onnx", &m_main),
        ("/multi/model.onnx.data", &m_data),
        ("/multi/labels.txt", &m_labels),
    ] {
        server.route(route, body, &[], Fault::None);
    }
    let local = bytes(2 << 20, 31);
    lab.file("catalogue/local.bin", &local)?;
    let mut models: Vec<(&str, Vec<ModelFile<'_>>)> = single
        .iter()
        .map(|(name, body)| {
            (
                *name,
                vec![ModelFile {
                    path: "model.bin",
                    bytes: body,
                    urls: vec![server.url(&format!("/{name}"))],
                }],
            )
        })
        .collect();
    models.push((
        "multi",
        vec![
            ModelFile {
                path: "model.onnx",
                bytes: &m_main,
                urls: vec![server.url("/multi/model.onnx")],
            },
            ModelFile {
                path: "model.onnx.data",
                bytes: &m_data,
                urls: vec![server.url("/multi/model.onnx.data")],
            },
            ModelFile {
                path: "labels.txt",
                bytes: &m_labels,
                urls: vec![server.url("/multi/labels.txt")],
            },
        ],
    ));
    models.push((
        "local",
        vec![ModelFile {
            path: "local.bin",
            bytes: &local,
            urls: vec!["local.bin".into()],
        }],
    ));
    let catalogue = catalogue(&lab, "catalogue/models.toml", &models)?;
    let add_file_bytes = bytes(3 << 19, 41);
    let add_file = lab.file("inputs/added.bin", &add_file_bytes)?;
    lab.file("inputs/dir/model.onnx", &bytes(300_000, 42))?;
    lab.file("inputs/dir/sub/weights.bin", &bytes(1 << 20, 43))?;
    let add_dir = lab.path("inputs/dir");
    single.insert("local", local);
    Ok(World {
        lab,
        server,
        catalogue,
        single,
        multi_main: m_main,
        add_file,
        add_file_bytes,
        add_dir,
        init_args: Vec::new(),
    })
}

impl World {
    /// The command line of `op` (model choices drawn from `rng`), and the name it concerns.
    fn args(&self, op: Op, rng: &mut Rng) -> (Vec<String>, &'static str) {
        let m = self.catalogue.to_string_lossy().into_owned();
        let pull = |names: &[&str]| {
            let mut v = vec![
                "--manifest".to_owned(),
                m.clone(),
                "store".into(),
                "pull".into(),
            ];
            v.extend(names.iter().map(|s| (*s).to_owned()));
            v
        };
        let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        match op {
            Op::Pull | Op::PullGated => {
                let name = *rng.pick(&SINGLE);
                (pull(&[name]), name)
            }
            Op::PullMulti => (pull(&["multi"]), "multi"),
            Op::PullSeveral => (pull(&["one-a", "multi"]), "one-a"),
            Op::PullFile => (pull(&["local"]), "local"),
            Op::AddFile => {
                let f = self.add_file.to_string_lossy().into_owned();
                (
                    s(&["store", "add", &f, "--name", "added-file"]),
                    "added-file",
                )
            }
            Op::AddDir => {
                let d = self.add_dir.to_string_lossy().into_owned();
                (s(&["store", "add", &d, "--name", "added-dir"]), "added-dir")
            }
            Op::Gc => {
                if rng.below(2) == 0 {
                    (s(&["store", "gc", "--tmp-age", "0"]), "")
                } else {
                    (s(&["store", "gc"]), "")
                }
            }
            Op::Verify => (s(&["store", "verify"]), ""),
            Op::Rm => {
                let name = *rng.pick(&["one-a", "multi", "added-file", "local"]);
                (s(&["store", "rm", name]), name)
            }
        }
    }

    /// Makes `op` have work to do: removes the name it pulls or adds (unkilled), most of the time.
    fn prepare(&self, op: Op, name: &str, rng: &mut Rng) -> Result<()> {
        let wants_absent = matches!(
            op,
            Op::Pull
                | Op::PullGated
                | Op::PullMulti
                | Op::PullSeveral
                | Op::PullFile
                | Op::AddFile
                | Op::AddDir
        );
        // A gated pull must download (the gate is its kill); the others sometimes find the model.
        if wants_absent && (op == Op::PullGated || rng.below(4) != 0) {
            let mut names = vec![name];
            if op == Op::PullSeveral {
                names.push("multi");
            }
            for n in names {
                let r = self.lab.run(&["store", "rm", n])?;
                // 3: not in the store (already absent).
                anyhow::ensure!(
                    matches!(r.code, 0 | 3),
                    "preparing a trial: rm {n}: {}",
                    r.describe()
                );
            }
        }
        if op == Op::Rm {
            // Something to remove: make sure the name is there.
            let r = finish_within(spawn(self, &self.restore_args(name))?, LIMIT)?;
            anyhow::ensure!(
                r.success(),
                "preparing a trial: restore {name}: {}",
                r.describe()
            );
        }
        Ok(())
    }

    fn restore_args(&self, name: &str) -> Vec<String> {
        let m = self.catalogue.to_string_lossy().into_owned();
        match name {
            "added-file" => vec![
                "store".into(),
                "add".into(),
                self.add_file.to_string_lossy().into_owned(),
                "--name".into(),
                name.into(),
            ],
            _ => vec![
                "--manifest".into(),
                m,
                "store".into(),
                "pull".into(),
                name.into(),
            ],
        }
    }

    fn cmd(&self, args: &[String]) -> Command {
        let mut c = self.lab.cmd();
        c.args(args);
        c
    }

    /// Bytes of the size of the one partial download of `name`'s blob in `tmp/`, if any.
    fn partial_len(&self, name: &str) -> Option<u64> {
        let hex = blake3_hex(self.single.get(name)?);
        let rd = std::fs::read_dir(self.lab.store.join("tmp")).ok()?;
        rd.filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&hex))
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .max()
    }

    /// What a power cut lost of `op` on `name`, which had succeeded before it: a pull or add
    /// must still be recorded with its bytes, an `rm` still gone.
    fn lost_to_the_cut(&self, op: Op, name: &str) -> Result<Vec<String>> {
        let path = self.lab.run(&["store", "path", name])?;
        let mut lost = Vec::new();
        match op {
            Op::Gc | Op::Verify => {}
            Op::Rm if path.code != 3 => lost.push(format!(
                "rm {name} had succeeded before the cut; after it, path says {}",
                path.describe()
            )),
            Op::Rm => {}
            _ if !path.success() => lost.push(format!(
                "{op:?} of {name} had succeeded before the cut; after it, path says {}",
                path.describe()
            )),
            _ => {
                if let Some(want) = self.expected_main(op, name) {
                    if std::fs::read(path.last_line()).ok().as_deref() != Some(want) {
                        lost.push(format!(
                            "{op:?} of {name} had succeeded before the cut; after it, {} does not hold its bytes",
                            path.last_line()
                        ));
                    }
                }
            }
        }
        Ok(lost)
    }

    /// The bytes the follow-up's printed path must hold.
    fn expected_main(&self, op: Op, name: &str) -> Option<&[u8]> {
        match op {
            Op::PullMulti => Some(&self.multi_main),
            Op::AddFile => Some(&self.add_file_bytes),
            Op::Pull | Op::PullGated | Op::PullFile => self.single.get(name).map(Vec::as_slice),
            _ => None,
        }
    }
}

/// Per-operation figures.
#[derive(Default)]
struct Tally {
    trials: u64,
    killed: u64,
    finished_first: u64,
    resumed: u64,
    violations: u64,
}

pub fn run(ctx: &Ctx) -> Result<Outcome> {
    let w = world(ctx, "kill")?;
    trials(ctx, ctx.trials, Outcome::new("R1 kill trials"), &w, None)
}

/// `n` trials of R1 (R8 runs them on each weak profile), or of R10 when `power` is the test
/// filesystem the store is on: the run is then stopped by a power cut (what was not durable is
/// lost) and the mount comes back before the checks; an operation that had succeeded before
/// the cut must still show.
pub(super) fn trials(
    ctx: &Ctx,
    n: u64,
    mut out: Outcome,
    w: &World,
    mut power: Option<&mut TestFs>,
) -> Result<Outcome> {
    let stop = if power.is_some() { "cut" } else { "kill" };
    let mut rng = Rng::new(ctx.seed);
    let init = w
        .lab
        .run(&[&["store", "init"][..], &w.init_args].concat())?;
    anyhow::ensure!(init.success(), "store init: {}", init.describe());

    // The kill window of each operation: the longest of two unkilled runs with work to do.
    let mut window = BTreeMap::new();
    for op in OPS {
        let mut longest = Duration::ZERO;
        for _ in 0..2 {
            let (args, name) = w.args(op, &mut rng);
            w.prepare(op, name, &mut Rng::new(1))?;
            let t = Instant::now();
            let r = finish_within(spawn(w, &args)?, LIMIT)?;
            anyhow::ensure!(r.success(), "unkilled {op:?} failed: {}", r.describe());
            longest = longest.max(t.elapsed());
        }
        window.insert(op, longest);
    }

    let mut tally: BTreeMap<Op, Tally> = BTreeMap::new();
    for trial in 0..n {
        if ctx.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        out.runs += 1;
        let op = *rng.pick(&OPS);
        let (args, name) = w.args(op, &mut rng);
        let t = tally.entry(op).or_default();
        t.trials += 1;
        // A store an earlier trial broke may fail the preparation: a violation, not the end
        // of the campaign (the earlier trial's own violation is reported too).
        if let Err(e) = w.prepare(op, name, &mut rng) {
            t.violations += 1;
            out.violations
                .push(format!("trial {trial} ({op:?}, seed {}): {e:#}", ctx.seed));
            continue;
        }
        let mut problems = Vec::new();

        // The killed run.
        let gate_at = (op == Op::PullGated).then(|| {
            let len = w.single.get(name).map_or(1, Vec::len) as u64;
            1 + rng.below(len - 1) as usize
        });
        w.server.drain_gates();
        if let Some(at) = gate_at {
            w.server.faults(&format!("/{name}"), &[Fault::Gate(at)]);
        }
        let mut child = spawn(w, &args)?;
        if gate_at.is_some() {
            // Until the download reaches the gate, or the pull ends without needing it (a
            // partial left by an earlier trial already held those bytes).
            let until = Instant::now() + Duration::from_secs(20);
            while !w.server.wait_gate(Duration::from_millis(20)) && child.try_wait()?.is_none() {
                if Instant::now() >= until {
                    problems.push(
                        "the gated pull neither reached the gate nor ended in 20 s".to_owned(),
                    );
                    break;
                }
            }
        } else {
            let max = window
                .get(&op)
                .copied()
                .unwrap_or(Duration::from_millis(50));
            std::thread::sleep(Duration::from_micros(rng.below(max.as_micros() as u64 + 1)));
        }
        // The window follows the machine's speed: it shrinks when the run beat the kill and
        // grows a little when the kill landed, so most kills land inside the run.
        let adapt = |window: &mut BTreeMap<Op, Duration>, f: f64| {
            if let Some(d) = window.get_mut(&op) {
                *d = d.mul_f64(f).max(Duration::from_millis(1));
            }
        };
        let finished = child.try_wait()?;
        if finished.is_some() {
            t.finished_first += 1;
            if gate_at.is_none() {
                adapt(&mut window, 0.8);
            }
        } else {
            t.killed += 1;
            if gate_at.is_none() {
                adapt(&mut window, 1.05);
            }
        }
        if let Some(fs) = power.as_deref_mut() {
            // The machine loses power: the disk keeps what was durable, the processes die.
            fs.cut_power()?;
            let _ = child.kill();
            let _ = child.wait();
            fs.remount()?;
            if finished.is_some_and(|s| s.success()) {
                problems.extend(w.lost_to_the_cut(op, name)?);
            }
        } else if finished.is_none() {
            child.kill().context("SIGKILL")?;
        }
        let _ = child.wait();
        if gate_at.is_some() {
            w.server.faults(&format!("/{name}"), &[]);
        }

        // The invariants after the kill (or the cut).
        if !w.lab.store.join("store.toml").exists() {
            problems.push("store.toml is gone".to_owned());
        }
        for v in check_store(&w.lab.store, &ctx.oracle)? {
            problems.push(format!("after the {stop}: {v}"));
        }

        // The next operation succeeds (and resumes what the kill left).
        let partial = if matches!(op, Op::Pull | Op::PullGated) {
            w.partial_len(name)
        } else {
            None
        };
        w.server.take_seen();
        let follow = finish_within(spawn(w, &args)?, LIMIT)?;
        let seen = w.server.take_seen();
        let rm_found_nothing =
            op == Op::Rm && follow.code == 3 && follow.message().starts_with("not in the store");
        if rm_found_nothing {
            // The killed rm had finished its work; the name must be gone for good.
            if w.lab.run(&["store", "path", name])?.code != 3 {
                problems.push(format!(
                    "rm said {name} is not in the store, but path finds it"
                ));
            }
        } else if !follow.success() {
            problems.push(format!("the next {op:?} failed: {}", follow.describe()));
        } else if let Some(want) = w.expected_main(op, name) {
            match std::fs::read(follow.last_line()) {
                Ok(got) if got == want => {}
                Ok(_) => problems.push(format!(
                    "the next {op:?} printed {} with other bytes",
                    follow.last_line()
                )),
                Err(e) => problems.push(format!(
                    "the next {op:?} printed {}: {e}",
                    follow.last_line()
                )),
            }
        }
        if let Some(len) = partial.filter(|&l| l > 0) {
            let want = format!("bytes={len}-");
            match seen.iter().find(|s| s.path == format!("/{name}")) {
                Some(s) if s.range.as_deref() == Some(want.as_str()) => t.resumed += 1,
                Some(s) => problems.push(format!(
                    "a partial of {len} bytes was left, but the next pull asked for {:?}",
                    s.range
                )),
                // A complete partial (killed between the last byte and naming) is re-hashed
                // and published without a request (docs/design.md#deviations, "A checked, never-named temp file
                // is resumed").
                None if Some(len) == w.single.get(name).map(|b| b.len() as u64) => t.resumed += 1,
                None => problems.push(format!(
                    "a partial of {len} bytes was left, but the next pull made no request for it"
                )),
            }
        }
        for v in check_store(&w.lab.store, &ctx.oracle)? {
            problems.push(format!("after the next operation: {v}"));
        }
        if !problems.is_empty() {
            t.violations += 1;
            for p in problems {
                out.violations
                    .push(format!("trial {trial} ({op:?}, seed {}): {p}", ctx.seed));
            }
        }
    }

    let mut table = format!("| operation | trials | {stop} mid-run | finished before the {stop} | partial resumed | violations |\n|---|---|---|---|---|---|\n");
    let mut total = Tally::default();
    for (op, t) in &tally {
        table.push_str(&format!(
            "| {op:?} | {} | {} | {} | {} | {} |\n",
            t.trials, t.killed, t.finished_first, t.resumed, t.violations
        ));
        total.trials += t.trials;
        total.killed += t.killed;
        total.finished_first += t.finished_first;
        total.resumed += t.resumed;
        total.violations += t.violations;
    }
    table.push_str(&format!(
        "| **all** | {} | {} | {} | {} | {} |\n",
        total.trials, total.killed, total.finished_first, total.resumed, total.violations
    ));
    out.table = Some(table);
    out.figure(&format!("{stop} mid-run"), total.killed);
    out.figure("resumed", total.resumed);
    out.figure("trials with a violation", total.violations);
    Ok(out)
}

pub(super) fn spawn(w: &World, args: &[String]) -> Result<std::process::Child> {
    w.cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", w.lab.bin.display()))
}
