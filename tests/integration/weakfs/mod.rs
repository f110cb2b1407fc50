//! [weakfs] beaker through the kit's test filesystem (`testkit::testfs`) on every profile, with
//! the real binary and its real mix of operations: add, path, pull, 4 concurrent pulls (and how
//! many downloads), 2 + 2 pulls through two mounts ("two machines"), gc, verify, rm, a group
//! store. Each test prints its row on stderr (`-- --nocapture`; the matrix in
//! docs/design.md#filesystems) and asserts it: every operation succeeds and hands out the right
//! bytes, downloads stay at one per model (one per mount across two mounts) where locks work
//! and, through the lease file, where they do not (`--locking none`),
//! and `probe.toml` records what the profile takes away; or beaker refuses at `init`, naming
//! the missing capability and the fix, and leaves no file behind.
//!
//! `real`: the real bindfs and fuse-overlayfs (Debian's packages) where the issue saw them fail.
//!
//! The harness is asserted too: the store really is on a FUSE mount of the profile; a file
//! written and fsynced through the mount is in the backing directory; a clean unmount leaves
//! the backing directory exactly as the mount showed it; in power-cut mode the model replays
//! beaker's operations without an error, and after a cut the remount shows the backing
//! directory.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use testkit::server::{Fault, Server};
use testkit::testfs::{fuse_only, InoNumbers, Locks, Nodes, Options, TestFs};

use crate::support::*;

mod real;

const LEN: usize = 400_000;

/// Every path under `dir` with its bytes (`None`: a directory or symlink) and mode.
fn tree(dir: &Path) -> BTreeMap<String, (Option<Vec<u8>>, u32)> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, (Option<Vec<u8>>, u32)>) {
        let Ok(rd) = std::fs::read_dir(d) else {
            return;
        };
        for e in rd {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                out.insert(rel, (None, m.mode()));
                walk(root, &p, out);
            } else if m.is_file() {
                out.insert(rel, (std::fs::read(&p).ok(), m.mode()));
            } else {
                out.insert(rel, (None, m.mode()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn fuse_mount_of(path: &Path) -> Option<String> {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[1] == path.to_str().unwrap())
        .map(|f| format!("{} {}", f[0], f[2]))
}

/// `ok`, or the exit code and beaker's message (a table cell).
fn cell(r: &Run) -> String {
    if r.success() {
        "ok".to_owned()
    } else {
        r.describe()
    }
}

/// `beaker --store STORE` with the lab's clean environment.
fn at(env: &Env, store: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(&env.bin);
    c.arg("--store").arg(store);
    env.clean(&mut c);
    c
}

fn pull_cmd(env: &Env, manifest: &Path, store: &Path, name: &str) -> std::process::Command {
    let mut c = at(env, store);
    c.envs(FAST_NETWORK)
        .arg("--manifest")
        .arg(manifest)
        .args(["store", "pull", name]);
    c
}

/// A catalogue of `models` (name, bytes), each served by `server` at `/NAME`.
fn catalogue(env: &Env, server: &Server, models: &[(&str, &[u8])]) -> PathBuf {
    let mut text = String::from("version = 1\n");
    for (name, body) in models {
        text.push_str(&format!(
            "[models.{name}]\nblake3 = \"{}\"\nsize = {}\nurls = [\"{}\"]\n",
            blake3_hex(body),
            body.len(),
            server.url(&format!("/{name}"))
        ));
    }
    env.file("catalogue.toml", text.as_bytes())
}

fn spawn(mut c: std::process::Command) -> Child {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn beaker")
}

/// "n/4 ok" (with the first failure), and whether all succeeded.
fn concurrent(children: Vec<Child>) -> (String, bool) {
    let runs: Vec<Run> = children
        .into_iter()
        .map(|c| {
            testkit::lab::finish_within(c, testkit::lab::LIMIT).unwrap_or_else(|e| Run {
                code: -1,
                signal: None,
                stdout: String::new(),
                stderr: format!("hang: {e:#}"),
            })
        })
        .collect();
    let ok = runs.iter().filter(|r| r.success()).count();
    let mut s = format!("{ok}/{} ok", runs.len());
    if let Some(bad) = runs.iter().find(|r| !r.success()) {
        s.push_str(&format!(" ({})", bad.describe()));
    }
    (s, ok == runs.len())
}

/// What the probe must find on a profile: the capabilities its switches take away.
fn expected_capabilities(o: &Options) -> BTreeMap<&'static str, bool> {
    let flock = matches!(o.locks, Locks::Shared | Locks::PerMount);
    let per_inode = o.nodes == Nodes::PerInode;
    BTreeMap::from([
        ("flock", flock),
        (
            "flock_across_names",
            o.hard_links && (o.locks == Locks::Shared || (o.locks == Locks::PerMount && per_inode)),
        ),
        ("rename_noreplace", o.rename_flags),
        ("hard_links", o.hard_links),
        (
            "stable_inodes",
            o.hard_links && o.ino == InoNumbers::Passthrough,
        ),
        ("accurate_nlink", o.hard_links && o.stale_nlink.is_none()),
    ])
}

/// The capabilities `probe.toml` of `store` records (the booleans the profile decides).
fn recorded_capabilities(store: &Path) -> BTreeMap<&'static str, bool> {
    let text = std::fs::read_to_string(store.join("probe.toml"))
        .unwrap_or_else(|e| panic!("{}/probe.toml: {e}", store.display()));
    let t: toml::Table = text.parse().unwrap();
    expected_capabilities(&Options::default())
        .into_keys()
        .map(|k| (k, t[k].as_bool().unwrap()))
        .collect()
}

/// What a profile must refuse at `init`, and the words the refusal must have: the missing
/// capability and the fix.
fn expected_refusal(o: &Options) -> Option<&'static [&'static str]> {
    if !o.hard_links && !o.rename_flags {
        Some(&["RENAME_NOREPLACE", "hard links", "put the store on"])
    } else if matches!(o.locks, Locks::Noop | Locks::Enosys) {
        Some(&["file locks do not work", "--locking none"])
    } else {
        None
    }
}

/// Names under `dir` (recursively), for "nothing was left behind".
fn files_under(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_iter()
        .filter(|(_, (bytes, _))| bytes.is_some())
        .map(|(k, _)| k)
        .collect()
}

/// Runs the row of `spec`, prints it (the matrix in docs/design.md#filesystems) and asserts it:
/// every operation succeeds, concurrent pulls download once (at most once per mount across two
/// mounts) where locks work, and the probe records what the profile takes away; or, where beaker
/// cannot work safely, it refuses at once, naming the missing capability and the fix, and leaves
/// no file behind. A profile whose locks do not work runs again with `--locking none`: every
/// pull still succeeds with the right bytes.
fn row(spec: &str) {
    let options = Options::parse(spec).unwrap();
    let mut fs = TestFs::new(&options).unwrap_or_else(|e| panic!("mount {spec}: {e:#}"));
    let mut env = Env::new();
    env.store = fs.path().join("store");
    let mounted = fuse_mount_of(&fs.path()).expect("the test filesystem is mounted");
    assert!(mounted.ends_with(" fuse"), "{mounted}");

    // The harness: a file written and fsynced (with its directory) through the mount is in
    // the backing directory.
    std::fs::write(fs.path().join("probe"), b"through the mount").unwrap();
    std::fs::File::open(fs.path().join("probe"))
        .and_then(|f| f.sync_all())
        .unwrap();
    std::fs::File::open(fs.path())
        .and_then(|d| d.sync_all())
        .unwrap();
    assert_eq!(
        std::fs::read(fs.backing().join("probe")).unwrap(),
        b"through the mount"
    );
    std::fs::remove_file(fs.path().join("probe")).unwrap();

    let mut locking = "flock";
    if let Some(words) = expected_refusal(&options) {
        let init = testkit::lab::run_within(
            at(&env, &env.store).args(["store", "init"]),
            testkit::lab::LIMIT,
        )
        .unwrap();
        eprintln!("weakfs row {spec}: init refused: {}", cell(&init));
        assert!(!init.success(), "{spec}: init must refuse");
        for w in words {
            assert!(init.stderr.contains(w), "{spec}: {w:?} in {}", init.stderr);
        }
        let left = files_under(&fs.path());
        assert!(left.is_empty(), "{spec}: init left {left:?}");
        if options.hard_links || options.rename_flags {
            // Locks that do not work: the store runs without them, as the refusal says.
            locking = "none";
            let init = env.run(&["store", "init", "--locking", "none"]);
            assert!(init.success(), "{spec}: {}", init.describe());
        } else {
            finish(spec, fs);
            return;
        }
    }
    operations(spec, &options, &mut fs, &env, locking);
    finish(spec, fs);
}

/// The harness again: the model replayed everything, and a clean unmount leaves the backing
/// directory exactly as the mount showed it.
fn finish(spec: &str, mut fs: TestFs) {
    let status = fs.mount().unwrap().status();
    assert!(status.errors.is_empty(), "{spec}: {:?}", status.errors);
    let seen = tree(&fs.path());
    fs.unmount().unwrap();
    assert_eq!(tree(&fs.backing()), seen, "{spec}");
}

/// add, path, pull, 4 concurrent pulls, 2 + 2 pulls through two mounts, gc, verify, rm and a
/// group store, on `fs`; prints the row and asserts it.
fn operations(spec: &str, options: &Options, fs: &mut TestFs, env: &Env, locking: &str) {
    let store = env.store.clone();
    let server = Server::start().unwrap();
    let (single, shared, machines) = (bytes(LEN, 1), bytes(LEN, 2), bytes(LEN, 3));
    server.route("/single", &single, &[], Fault::None);
    // Held open mid-body, so that concurrent pulls overlap.
    let pause = Fault::PauseAt(LEN / 2, Duration::from_millis(400));
    server.route("/shared", &shared, &[], pause.clone());
    server.route("/machines", &machines, &[], pause);
    let manifest = {
        let mut text = String::from("version = 1\n");
        for (name, body) in [
            ("single", &single),
            ("shared", &shared),
            ("machines", &machines),
        ] {
            text.push_str(&format!(
                "[models.{name}]\nblake3 = \"{}\"\nsize = {LEN}\nurls = [\"{}\"]\n",
                blake3_hex(body),
                server.url(&format!("/{name}"))
            ));
        }
        env.file("catalogue.toml", text.as_bytes())
    };
    let src = env.file("model.onnx", &bytes(300_000, 4));
    let run = |args: &[&str]| {
        testkit::lab::run_within(env.cmd().args(args), testkit::lab::LIMIT).unwrap_or_else(|e| {
            Run {
                code: -1,
                signal: None,
                stdout: String::new(),
                stderr: format!("hang: {e:#}"),
            }
        })
    };
    let locks_work = locking == "flock";
    // Downloads allowed for 4 pulls of one model: one through one mount, two across two
    // mounts (locks of one mount may not meet the other's); where locks do not work at all
    // (`--locking none`) the lease file does the same.
    let (one_mount, two_mounts) = (1, 2);

    let mut cells: Vec<(&str, String)> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    let mut check = |what: &'static str, r: &Run| {
        cells.push((what, cell(r)));
        if !r.success() {
            failed.push(format!("{what}: {}", r.describe()));
        }
    };
    check(
        "add",
        &run(&["store", "add", src.to_str().unwrap(), "--name", "added"]),
    );
    let path = run(&["store", "path", "added"]);
    check("path", &path);
    check(
        "pull",
        &testkit::lab::run_within(
            &mut pull_cmd(env, &manifest, &store, "single"),
            testkit::lab::LIMIT,
        )
        .unwrap(),
    );
    let mut pulled = |label: &'static str, children: Vec<Child>, route: &str, most: usize| {
        let (summary, all_ok) = concurrent(children);
        let downloads = server.bodies(route);
        cells.push((label, format!("{summary}, {downloads} download(s)")));
        if !all_ok || downloads > most {
            failed.push(format!(
                "{label}: {summary}, {downloads} downloads (at most {most})"
            ));
        }
    };
    let four = (0..4)
        .map(|_| spawn(pull_cmd(env, &manifest, &store, "shared")))
        .collect();
    pulled("4 pulls", four, "/shared", one_mount);
    // Two machines: two mounts of one directory (not in power-cut mode, where each mount has
    // a private live copy).
    let other = (!options.power_cut).then(|| fs.mount_another("machine-b", options).unwrap());
    if let Some(other) = &other {
        let there = other.path().join("store");
        let four = (0..4)
            .map(|i| {
                let s = if i % 2 == 0 { &store } else { &there };
                spawn(pull_cmd(env, &manifest, s, "machines"))
            })
            .collect();
        pulled("2+2 pulls, 2 mounts", four, "/machines", two_mounts);
    }
    drop(other);
    for (name, body) in [
        ("single", &single),
        ("shared", &shared),
        ("machines", &machines),
    ] {
        let p = run(&["store", "path", name]);
        if options.power_cut && name == "machines" {
            continue;
        }
        let got = std::fs::read(p.stdout.trim()).unwrap_or_default();
        if !p.success() || &got != body {
            failed.push(format!(
                "{name}: path handed out the wrong bytes ({})",
                cell(&p)
            ));
        }
    }
    let mut check = |what: &'static str, r: &Run| {
        cells.push((what, cell(r)));
        if !r.success() {
            failed.push(format!("{what}: {}", r.describe()));
        }
    };
    check("gc", &run(&["store", "gc"]));
    check("verify", &run(&["store", "verify"]));
    check("rm", &run(&["store", "rm", "added"]));
    let recorded = recorded_capabilities(&store);
    testkit::users::ensure_group().unwrap();
    let gstore = fs.path().join("group-store");
    let init = testkit::lab::run_within(
        at(env, &gstore).args([
            "store",
            "init",
            "--shared",
            "group",
            "--group",
            testkit::users::GROUP,
            "--locking",
            locking,
        ]),
        testkit::lab::LIMIT,
    )
    .unwrap();
    let gadd = testkit::lab::run_within(
        at(env, &gstore).args(["store", "add", src.to_str().unwrap(), "--name", "g"]),
        testkit::lab::LIMIT,
    )
    .unwrap();
    cells.push((
        "group store",
        format!("init {}, add {}", cell(&init), cell(&gadd)),
    ));
    for (what, r) in [("group init", &init), ("group add", &gadd)] {
        if !r.success() {
            failed.push(format!("{what}: {}", r.describe()));
        }
    }
    eprintln!(
        "weakfs row {spec}{}: {}",
        if locks_work { "" } else { " (locking none)" },
        cells
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    assert!(failed.is_empty(), "{spec}: {failed:#?}");

    // The probe recorded what the profile takes away, and nothing else.
    let mut expected = expected_capabilities(options);
    if options.power_cut {
        // The power-cut model keeps its own nodes: its link counts and inode numbers are
        // its own, not a profile's switches.
        expected.retain(|k, _| !matches!(*k, "stable_inodes" | "accurate_nlink"));
    }
    let recorded: BTreeMap<_, _> = recorded
        .into_iter()
        .filter(|(k, _)| expected.contains_key(k))
        .collect();
    assert_eq!(recorded, expected, "{spec}: probe.toml");
    let group_probe = std::fs::read_to_string(gstore.join("probe.toml")).unwrap();
    assert!(
        group_probe.contains(&format!("setgid_inherited = {}", options.setgid_inherit)),
        "{spec}: {group_probe}"
    );
}

macro_rules! rows {
    ($($test:ident: $spec:expr,)*) => {$(
        #[test]
        fn $test() {
            if !fuse_only() {
                return;
            }
            row($spec);
        }
    )*};
}

rows! {
    beaker_runs_on_passthrough: "passthrough",
    beaker_runs_on_flock_noop: "flock-noop",
    beaker_runs_on_flock_enosys: "flock-enosys",
    beaker_runs_on_per_mount_locks: "per-mount-locks",
    beaker_runs_on_no_hardlinks: "no-hardlinks",
    beaker_runs_on_link_inodes: "link-inodes",
    beaker_runs_on_per_path_ino: "per-path-ino",
    beaker_runs_on_stale_nlink: "stale-nlink",
    beaker_runs_on_no_noreplace: "no-noreplace",
    beaker_runs_on_no_setgid: "no-setgid",
    beaker_runs_on_bindfs: "bindfs",
    beaker_runs_on_sshfs: "sshfs",
    beaker_runs_on_exfat: "exfat",
    beaker_runs_on_fuse_overlayfs: "fuse-overlayfs",
    beaker_runs_on_power_cut: "power-cut",
}

#[test]
fn a_power_cut_under_a_store_keeps_the_backing_directory_and_the_mount_comes_back() {
    if !fuse_only() {
        return;
    }
    let mut fs = TestFs::new(&Options::profile("power-cut").unwrap()).unwrap();
    let mut env = Env::new();
    env.store = fs.path().join("store");
    let src = env.file("model.onnx", &bytes(300_000, 5));
    let add = env.run(&["store", "add", src.to_str().unwrap(), "--name", "m"]);
    let status = fs.mount().unwrap().status();
    assert!(status.errors.is_empty(), "{:?}", status.errors);
    fs.cut_power().unwrap();
    let durable = tree(&fs.backing());
    fs.remount().unwrap();
    assert_eq!(
        tree(&fs.path()),
        durable,
        "the remount shows what was durable"
    );
    let after = env.run(&["store", "path", "m"]);
    let verify = env.run(&["store", "verify"]);
    eprintln!(
        "weakfs power cut after add ({}): {} paths durable, {} operations lost; then path: {}, verify: {}",
        cell(&add),
        durable.len(),
        status.pending_ops,
        cell(&after),
        cell(&verify)
    );
}

/// A store made where flock works, then reached through a mount where flock is a no-op (the
/// same share mounted by a machine whose lock manager does not work): the first writer there
/// probes again and records it, `store info` says so, and concurrent pulls through that mount
/// all succeed with the right bytes and download once: the flock cannot tell them apart, so
/// the lease file does.
#[test]
fn a_store_reached_through_a_mount_without_locks_is_probed_again_and_still_right() {
    if !fuse_only() {
        return;
    }
    let fs = TestFs::new(&Options::profile("passthrough").unwrap()).unwrap();
    let mut env = Env::new();
    env.store = fs.path().join("store");
    let init = env.run(&["store", "init"]);
    assert!(init.success(), "{}", init.describe());
    let first = std::fs::read_to_string(env.store.join("probe.toml")).unwrap();
    assert!(first.contains("flock = true"), "{first}");

    let other = fs
        .mount_another("no-locks", &Options::profile("flock-noop").unwrap())
        .unwrap();
    let there = other.path().join("store");
    let server = Server::start().unwrap();
    let body = bytes(LEN, 7);
    server.route(
        "/m",
        &body,
        &[],
        Fault::PauseAt(LEN / 2, Duration::from_millis(400)),
    );
    let manifest = catalogue(&env, &server, &[("m", &body)]);
    let four = (0..4)
        .map(|_| spawn(pull_cmd(&env, &manifest, &there, "m")))
        .collect();
    let (summary, all_ok) = concurrent(four);
    assert!(all_ok, "{summary}");
    let again = std::fs::read_to_string(there.join("probe.toml")).unwrap();
    assert!(again.contains("flock = false"), "{again}");
    assert_ne!(again, first, "the record names the new device");
    let info = testkit::lab::run_within(
        at(&env, &there).args(["store", "info"]),
        testkit::lab::LIMIT,
    )
    .unwrap();
    assert!(
        info.stdout
            .contains("locks do not exclude here: downloads are shared through lease files"),
        "{}",
        info.stdout
    );
    assert_eq!(
        server.bodies("/m"),
        1,
        "4 pulls through a mount without working flock: the lease lets one download ({summary})"
    );
    let path = testkit::lab::run_within(
        at(&env, &there).args(["store", "path", "m"]),
        testkit::lab::LIMIT,
    )
    .unwrap();
    assert_eq!(std::fs::read(path.stdout.trim()).unwrap(), body);
    eprintln!(
        "weakfs re-probe: 4 pulls through a flock-noop mount of a flock store: {summary}, {} download(s)",
        server.bodies("/m")
    );
}

/// A pull killed mid-download, then the next pull: it claims the partial and asks only for the
/// rest (`Range`), on every profile where a rename is a link + unlink with a stale link count
/// after it (bindfs) or gives the new name another inode number (sshfs), as on a local one.
#[test]
fn a_killed_pull_is_resumed_on_bindfs_and_sshfs_profiles() {
    if !fuse_only() {
        return;
    }
    const AT: usize = LEN / 2;
    for profile in ["passthrough", "bindfs", "sshfs"] {
        let fs = TestFs::new(&Options::profile(profile).unwrap()).unwrap();
        let mut env = Env::new();
        env.store = fs.path().join("store");
        env.run(&["store", "init"]).ok();
        let server = Server::start().unwrap();
        let body = bytes(LEN, 9);
        server.route("/m", &body, &[Fault::Gate(AT)], Fault::None);
        let manifest = catalogue(&env, &server, &[("m", &body)]);
        let mut child = spawn(pull_cmd(&env, &manifest, &env.store, "m"));
        assert!(
            server.wait_gate(Duration::from_secs(20)),
            "{profile}: no request reached the gate"
        );
        // The server has sent AT bytes; wait until they are in the partial.
        let tmp = env.store.join("tmp");
        let until = std::time::Instant::now() + Duration::from_secs(20);
        while !std::fs::read_dir(&tmp).unwrap().any(|e| {
            let e = e.unwrap();
            e.file_name().to_string_lossy().ends_with(".part")
                && e.metadata().is_ok_and(|m| m.len() == AT as u64)
        }) {
            assert!(
                std::time::Instant::now() < until,
                "{profile}: no partial of {AT} bytes"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        server.release_gate();

        let next = testkit::lab::run_within(
            &mut pull_cmd(&env, &manifest, &env.store, "m"),
            testkit::lab::LIMIT,
        )
        .unwrap();
        assert!(next.success(), "{profile}: {}", next.describe());
        assert_eq!(std::fs::read(next.last_line()).unwrap(), body, "{profile}");
        assert_eq!(
            server.seen().last().unwrap().range,
            Some(format!("bytes={AT}-")),
            "{profile}: the next pull did not resume"
        );
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".part"))
            .collect();
        assert!(left.is_empty(), "{profile}: partials left behind: {left:?}");
    }
}
