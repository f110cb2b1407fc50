//! `add` on filesystems that clone (btrfs, xfs with reflink): the blob is a clone of the source
//! (its bytes not copied: the disk's used space barely moves), hashed from the clone, and stays
//! the right model when the source is changed afterwards. Each filesystem is made for the test
//! on a loop-mounted image (root; `.ci/run` installs `btrfs-progs` and `xfsprogs`).

use std::io::{Seek, SeekFrom, Write};

use testkit::lab::LoopDisk;

use crate::support::*;

const MIB: u64 = 1 << 20;
const LEN: usize = 48 << 20;

fn add_clones_then_survives_the_source_changing(fs: &str, mkfs: &[&str]) {
    if !root_only(&format!("loop-mounts a {fs} image")) {
        return;
    }
    let mut env = Env::new();
    let disk = LoopDisk::mount(&env.path("fs.img"), &env.path("mnt"), 400, fs, mkfs)
        .unwrap_or_else(|e| panic!("{e:#}"));
    env.store = disk.dir.join("store");
    env.run(&["store", "init"]).ok();

    let model = bytes(LEN, 61);
    let src = env.file("mnt/model.bin", &model);
    let before = disk.used().unwrap();
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "m"])
        .ok();
    let grew = disk.used().unwrap().saturating_sub(before);
    assert!(
        grew < 8 * MIB,
        "{fs}: a cloned add of {} MiB took {} MiB of disk",
        LEN as u64 / MIB,
        grew / MIB
    );
    let printed = env.run(&["store", "path", "m"]).ok();
    assert_model_file(&env.store, &printed, &model);

    // The source is written over in place: the blob shares no longer, and keeps its bytes.
    let mut f = std::fs::OpenOptions::new().write(true).open(&src).unwrap();
    f.seek(SeekFrom::Start(MIB)).unwrap();
    f.write_all(&vec![0u8; MIB as usize]).unwrap();
    f.sync_all().unwrap();
    drop(f);
    assert_model_file(&env.store, &printed, &model);
    env.run(&["store", "verify"]).ok();
    assert_blobs_named_by_hash(&env.store);

    // The control: the same add copying takes the model's size, so `used` above measured.
    let other = bytes(LEN, 62);
    let src2 = env.file("mnt/other.bin", &other);
    let before = disk.used().unwrap();
    let out = env
        .cmd()
        .env("BEAKER_NO_REFLINK", "1")
        .args(["store", "add", src2.to_str().unwrap(), "--name", "o"])
        .output()
        .unwrap();
    Run::from(out).ok();
    let grew = disk.used().unwrap().saturating_sub(before);
    assert!(
        grew >= LEN as u64 - MIB,
        "{fs}: a copied add of {} MiB took only {} MiB",
        LEN as u64 / MIB,
        grew / MIB
    );
    let printed = env.run(&["store", "path", "o"]).ok();
    assert_model_file(&env.store, &printed, &other);
    drop(disk);
}

#[test]
fn add_on_btrfs_clones_the_source_and_keeps_its_bytes_when_it_changes() {
    add_clones_then_survives_the_source_changing("btrfs", &["-q", "-f"]);
}

#[test]
fn add_on_xfs_clones_the_source_and_keeps_its_bytes_when_it_changes() {
    add_clones_then_survives_the_source_changing("xfs", &["-q", "-f", "-m", "reflink=1"]);
}
