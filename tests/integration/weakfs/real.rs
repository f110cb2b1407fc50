//! Real filesystems, through the real binary: the kernel's ext4, xfs, btrfs (loop-mounted
//! images), tmpfs and overlayfs, and the FUSE filesystems the profiles play, from Debian's
//! packages (`.ci/run` installs `bindfs`, `fuse-overlayfs`, `btrfs-progs`, `xfsprogs`), where
//! the [fs] issue saw each break. bindfs: no RENAME_NOREPLACE, a hard link is another kernel inode, a cached
//! link count: concurrent pulls download once per mount, a killed pull is resumed, gc racing a
//! 120-file add removes none of its blobs. fuse-overlayfs: new directories do not inherit the
//! setgid group, so a group store gives each its group itself.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use testkit::lab::LoopDisk;
use testkit::server::{Fault, Server};
use testkit::testfs::fuse_only;

use super::{at, catalogue, concurrent, pull_cmd, spawn, LEN};
use crate::support::*;

/// A FUSE mount made by a real filesystem's binary; unmounted (lazily) when dropped.
struct Real {
    mnt: PathBuf,
}

impl Real {
    fn mount(program: &str, args: &[&str], mnt: &Path) -> Real {
        std::fs::create_dir_all(mnt).unwrap();
        let out = Command::new(program)
            .args(args)
            .arg(mnt)
            .output()
            .unwrap_or_else(|e| panic!("{program} (install it: apt-get install {program}): {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Real {
            mnt: mnt.to_owned(),
        }
    }
}

impl Drop for Real {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

fn wait_for_partial(tmp: &Path, len: u64) {
    let until = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_dir(tmp).unwrap().any(|e| {
        let e = e.unwrap();
        e.file_name().to_string_lossy().ends_with(".part")
            && e.metadata().is_ok_and(|m| m.len() == len)
    }) {
        assert!(
            Instant::now() < until,
            "no partial of {len} bytes in {}",
            tmp.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// On the store `env.store` (not made yet), and through `other`, a second mount of the same
/// directory if there is one: init, 4 concurrent pulls (one download where locks work), 2 + 2
/// pulls across the two mounts (at most one per mount), a pull killed mid-download and then
/// resumed (`Range`), a 120-file add against gc in a loop, verify, rm, gc; every model handed
/// out with its bytes. Prints the row; returns the store's `probe.toml`.
fn exercise(label: &str, env: &Env, other: Option<&Path>) -> String {
    env.run(&["store", "init"]).ok();
    let probe = std::fs::read_to_string(env.store.join("probe.toml")).unwrap();
    let locks = probe.contains("flock = true");

    let server = Server::start().unwrap();
    let (shared, machines, resumed) = (bytes(LEN, 21), bytes(LEN, 22), bytes(LEN, 23));
    let pause = Fault::PauseAt(LEN / 2, Duration::from_millis(400));
    server.route("/shared", &shared, &[], pause.clone());
    server.route("/machines", &machines, &[], pause);
    server.route("/resumed", &resumed, &[Fault::Gate(LEN / 2)], Fault::None);
    let manifest = catalogue(
        env,
        &server,
        &[
            ("shared", &shared),
            ("machines", &machines),
            ("resumed", &resumed),
        ],
    );

    // 4 concurrent pulls through one mount: all right, one download where locks work.
    let four = (0..4)
        .map(|_| spawn(pull_cmd(env, &manifest, &env.store, "shared")))
        .collect();
    let (summary, ok) = concurrent(four);
    assert!(ok, "{label}: 4 pulls: {summary}");
    assert!(
        !locks || server.bodies("/shared") == 1,
        "4 pulls through one bindfs mount: {} downloads",
        server.bodies("/shared")
    );
    // 2 + 2 through two mounts of one directory: all right, at most one each.
    let there = other.map_or_else(|| env.store.clone(), |o| o.join("store"));
    let four = (0..4)
        .map(|i| {
            let s = if i % 2 == 0 { &env.store } else { &there };
            spawn(pull_cmd(env, &manifest, s, "machines"))
        })
        .collect();
    let (summary, ok) = concurrent(four);
    assert!(ok, "{label}: 2 + 2 pulls: {summary}");
    assert!(
        !locks || server.bodies("/machines") <= 2,
        "{label}: 2 + 2 pulls through two mounts: {} downloads",
        server.bodies("/machines")
    );

    // A pull killed mid-download is resumed: the next one asks for the rest only.
    let mut child = spawn(pull_cmd(env, &manifest, &env.store, "resumed"));
    assert!(
        server.wait_gate(Duration::from_secs(20)),
        "no request reached the gate"
    );
    wait_for_partial(&env.store.join("tmp"), LEN as u64 / 2);
    child.kill().unwrap();
    child.wait().unwrap();
    server.release_gate();
    let next = testkit::lab::run_within(
        &mut pull_cmd(env, &manifest, &env.store, "resumed"),
        testkit::lab::LIMIT,
    )
    .unwrap();
    assert!(next.success(), "{}", next.describe());
    assert_eq!(
        server.seen().last().unwrap().range,
        Some(format!("bytes={}-", LEN / 2)),
        "the pull after the kill did not resume"
    );
    for (name, body) in [
        ("shared", &shared),
        ("machines", &machines),
        ("resumed", &resumed),
    ] {
        let p = env.run(&["store", "path", name]).ok();
        assert_eq!(&std::fs::read(p.trim()).unwrap(), body, "{name}");
    }

    // gc in a loop while a model of 120 files is added: the add succeeds with every file.
    let dir = env.path("many");
    for i in 0..120u64 {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("f{i:03}.bin")), bytes(4096, 300 + i)).unwrap();
    }
    let mut gcs = Vec::new();
    let mut add = spawn({
        let mut c = at(env, &env.store);
        c.args(["store", "add", dir.to_str().unwrap(), "--name", "many"]);
        c
    });
    while add.try_wait().unwrap().is_none() {
        gcs.push(env.run(&["store", "gc", "--tmp-age", "0"]));
    }
    let added = testkit::lab::finish_within(add, testkit::lab::LIMIT).unwrap();
    assert!(
        added.success(),
        "add racing {} gc runs: {}",
        gcs.len(),
        added.describe()
    );
    for g in &gcs {
        assert!(g.success(), "{}", g.describe());
    }
    // `path` prints the model's main file, in its snapshot directory.
    let main = PathBuf::from(env.run(&["store", "path", "many"]).ok().trim());
    let snap = main.parent().unwrap();
    for i in 0..120u64 {
        assert_eq!(
            std::fs::read(snap.join(format!("f{i:03}.bin"))).unwrap(),
            bytes(4096, 300 + i),
            "file {i} of the model added while gc ran"
        );
    }
    env.run(&["store", "verify"]).ok();
    env.run(&["store", "rm", "many"]).ok();
    env.run(&["store", "gc"]).ok();
    assert_blobs_named_by_hash(&env.store);
    eprintln!(
        "weakfs real {label}: locks {locks}; 4 pulls {} download(s); 2+2{} {}; killed pull resumed; add of 120 files against {} gc runs ok",
        server.bodies("/shared"),
        if other.is_some() { " across 2 mounts" } else { "" },
        server.bodies("/machines"),
        gcs.len()
    );
    probe
}

#[test]
fn beaker_runs_on_real_bindfs() {
    if !fuse_only() {
        return;
    }
    let mut env = Env::new();
    let backing = env.path("backing");
    std::fs::create_dir_all(&backing).unwrap();
    let backing_s = backing.to_str().unwrap().to_owned();
    let a = Real::mount("bindfs", &[&backing_s], &env.path("mnt-a"));
    let b = Real::mount("bindfs", &[&backing_s], &env.path("mnt-b"));
    env.store = a.mnt.join("store");
    let probe = exercise("bindfs", &env, Some(&b.mnt));
    assert!(probe.contains("rename_noreplace = false"), "{probe}");
    assert!(probe.contains("flock_across_names = false"), "{probe}");
    drop(b);
    drop(a);
}

/// The kernel's own filesystems, each made for the test: every capability there.
fn on_loop(fs: &str, mkfs: &[&str]) {
    if !root_only(&format!("loop-mounts a {fs} image")) {
        return;
    }
    let mut env = Env::new();
    let disk = LoopDisk::mount(&env.path("fs.img"), &env.path("mnt"), 400, fs, mkfs)
        .unwrap_or_else(|e| panic!("{e:#}"));
    env.store = disk.dir.join("store");
    let probe = exercise(fs, &env, None);
    for cap in ["flock", "rename_noreplace", "hard_links", "stable_inodes"] {
        assert!(probe.contains(&format!("{cap} = true")), "{fs}: {probe}");
    }
    drop(disk);
}

#[test]
fn beaker_runs_on_ext4() {
    on_loop("ext4", &["-q", "-F"]);
}

#[test]
fn beaker_runs_on_xfs() {
    on_loop("xfs", &["-q", "-f", "-m", "reflink=1"]);
}

#[test]
fn beaker_runs_on_btrfs() {
    on_loop("btrfs", &["-q", "-f"]);
}

#[test]
fn beaker_runs_on_tmpfs() {
    if !root_only("mounts a tmpfs") {
        return;
    }
    let mut env = Env::new();
    let disk = testkit::lab::SmallDisk::mount(&env.path("mnt"), 256 * 1024)
        .unwrap_or_else(|e| panic!("{e:#}"));
    env.store = disk.dir.join("store");
    let probe = exercise("tmpfs", &env, None);
    assert!(probe.contains("rename_noreplace = true"), "{probe}");
    drop(disk);
}

/// The kernel's overlayfs, the store in the merged directory (a container's writable layer).
#[test]
fn beaker_runs_on_kernel_overlayfs() {
    if !root_only("mounts an overlayfs") {
        return;
    }
    let mut env = Env::new();
    let dirs: Vec<String> = ["lower", "upper", "work", "merged"]
        .iter()
        .map(|d| {
            let p = env.path(d);
            std::fs::create_dir_all(&p).unwrap();
            p.to_str().unwrap().to_owned()
        })
        .collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        dirs[0], dirs[1], dirs[2]
    );
    let ok = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts, &dirs[3]])
        .status()
        .unwrap()
        .success();
    assert!(ok, "mount -t overlay {opts}");
    let merged = Real {
        mnt: PathBuf::from(&dirs[3]),
    };
    env.store = merged.mnt.join("store");
    exercise("overlayfs", &env, None);
    drop(merged);
}

#[test]
fn a_group_store_on_real_fuse_overlayfs_gives_each_new_directory_its_group() {
    if !fuse_only() {
        return;
    }
    let gid = testkit::users::ensure_group().unwrap();
    let env = Env::new();
    let dirs: Vec<String> = ["lower", "upper", "work"]
        .iter()
        .map(|d| {
            let p = env.path(d);
            std::fs::create_dir_all(&p).unwrap();
            p.to_str().unwrap().to_owned()
        })
        .collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        dirs[0], dirs[1], dirs[2]
    );
    let mnt = Real::mount("fuse-overlayfs", &["-o", &opts], &env.path("merged"));
    let store = mnt.mnt.join("store");
    let run = |args: &[&str]| {
        testkit::lab::run_within(at(&env, &store).args(args), testkit::lab::LIMIT).unwrap()
    };
    let init = run(&[
        "store",
        "init",
        "--shared",
        "group",
        "--group",
        testkit::users::GROUP,
    ]);
    assert!(init.success(), "{}", init.describe());
    let probe = std::fs::read_to_string(store.join("probe.toml")).unwrap();
    assert!(probe.contains("setgid_inherited = false"), "{probe}");
    let dir = env.path("model");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("model.onnx"), bytes(5000, 1)).unwrap();
    std::fs::write(dir.join("sub/weights.bin"), bytes(7000, 2)).unwrap();
    let add = run(&["store", "add", dir.to_str().unwrap(), "--name", "g"]);
    assert!(add.success(), "{}", add.describe());
    // Every directory beaker made holds the store's group, though none inherited it.
    let mut stack = vec![store.clone()];
    while let Some(d) = stack.pop() {
        let m = std::fs::symlink_metadata(&d).unwrap();
        assert_eq!(m.gid(), gid, "{} has group {}", d.display(), m.gid());
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    for args in [
        &["store", "verify"][..],
        &["store", "rm", "g"],
        &["store", "gc"],
    ] {
        let r = run(args);
        assert!(r.success(), "{args:?}: {}", r.describe());
    }
    assert_blobs_named_by_hash(&store);
}
