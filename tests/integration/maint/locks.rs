//! prune-locks and info's lock listing: free lock files go, held ones stay with their holder
//! (held from other processes), and safe acquire stays exclusive while files are pruned under it.

use std::collections::BTreeSet;

use super::{add, age, plant_orphan, GcJson, Holder, PruneJson, HOUR};
use crate::support::*;

#[test]
fn prune_locks_removes_free_lock_files_and_keeps_held_ones_with_their_holder() {
    let env = Env::new();
    add(&env, "a", b"x"); // leaves gc.lock and manifest.lock behind
    let locks = env.store.join("locks");
    let free = locks.join(format!("{}.lock", blake3_hex(b"free")));
    std::fs::write(&free, b"").unwrap();
    let held = locks.join(format!("{}.lock", blake3_hex(b"held")));
    std::fs::write(
        &held,
        b"pid = 31337\nuser = \"someone\"\nhost = \"box\"\nsince = \"2026-01-01T00:00:00Z\"\n",
    )
    .unwrap();
    let _holder = Holder::new(&held);
    let tmp = env.store.join("tmp");
    let stale = tmp.join("pull.999.0000aaaa.part");
    std::fs::write(&stale, bytes(300, 1)).unwrap();
    age(&stale, 2 * HOUR);
    let live = tmp.join("pull.998.0000bbbb.part");
    std::fs::write(&live, bytes(30, 1)).unwrap();
    age(&live, 2 * HOUR);
    let _writer = Holder::new(&live);

    // info sees the held lock and who recorded it.
    let info = env.run(&["store", "info"]);
    info.ok();
    assert!(
        info.stdout.contains("held (last holder: pid 31337"),
        "{info:#?}"
    );

    let out: PruneJson = env.run(&["--json", "store", "prune-locks"]).json();
    let removed: BTreeSet<String> = out.removed.iter().cloned().collect();
    let free_name = free.file_name().unwrap().to_str().unwrap().to_string();
    let expect: BTreeSet<String> = [free_name, "gc.lock".into(), "manifest.lock".into()].into();
    assert_eq!(removed, expect);
    assert_eq!(out.held.len(), 1);
    assert_eq!(
        out.held[0].name,
        held.file_name().unwrap().to_str().unwrap()
    );
    assert_eq!(out.held[0].holder.as_ref().map(|h| h.pid), Some(31337));
    assert!(held.exists() && !free.exists());
    assert_eq!(
        out.stale_temp
            .iter()
            .map(|t| (t.name.as_str(), t.size))
            .collect::<Vec<_>>(),
        [("pull.999.0000aaaa.part", 300)]
    );
    assert_eq!(out.live_temp.len(), 1);
    assert!(
        stale.exists(),
        "prune-locks only reports temp files; gc removes them"
    );

    // The store still works after pruning, and the lock files come back on use.
    add(&env, "b", b"y");
    env.run(&["store", "path", "b"]).ok();
    let text = env.run(&["store", "prune-locks"]);
    assert!(
        text.stdout.contains("held (last holder: pid 31337"),
        "{text:#?}"
    );
}

#[test]
fn a_process_waiting_for_gc_lock_while_prune_locks_runs_still_gets_it() {
    let env = Env::new();
    add(&env, "a", b"x");
    plant_orphan(&env, b"orphan");
    let gc_lock = env.store.join("locks/gc.lock");
    let holder = Holder::new(&gc_lock);
    // gc waits for gc.lock exclusively; meanwhile prune-locks must keep the held file.
    let gc = env
        .cmd()
        .args(["--json", "store", "gc"])
        .stdout(std::process::Stdio::piped())
        .start();
    let out: PruneJson = env.run(&["--json", "store", "prune-locks"]).json();
    assert!(out.held.iter().any(|h| h.name == "gc.lock"), "{out:?}");
    drop(holder);
    // Now free: prune-locks may remove it under the waiting gc; gc still gets a real lock.
    env.run(&["store", "prune-locks"]).ok();
    let gc = Run::from(gc.wait_with_output().unwrap());
    gc.ok();
    let out: GcJson = gc.json();
    assert_eq!(out.removed_blobs, vec![blake3_hex(b"orphan")]);
}

#[test]
fn safe_acquire_stays_exclusive_while_prune_locks_removes_the_file_underneath() {
    // Threads take the lock through the library (each its own open file description, so flock
    // behaves as between processes) while real `beaker store prune-locks` processes and an
    // in-process pruner unlink it whenever it is free. Never may two threads hold it at once.
    use beaker::lock::{acquire, prune, Mode, Wait};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let env = Env::new();
    add(&env, "a", b"x");
    let path = beaker::fsx::Rooted::top(&beaker::fsx::Root::open(&env.store).unwrap())
        .join("locks")
        .join(format!("{}.lock", blake3_hex(b"contended")));
    let inside = AtomicUsize::new(0);
    let overlaps = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let prunes = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..300 {
                        let g = acquire(&path, Mode::Exclusive, Wait::Forever, 0o644, &mut |_| {})
                            .unwrap();
                        if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                            overlaps.fetch_add(1, Ordering::SeqCst);
                        }
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        drop(g);
                    }
                })
            })
            .collect();
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                if prune(&path).unwrap() == beaker::lock::Pruned::Removed {
                    prunes.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                env.run(&["store", "prune-locks"]).ok();
            }
        });
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
    });
    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "two holders of one lock at once"
    );
    assert!(
        prunes.load(Ordering::SeqCst) > 0,
        "the pruner never got to remove the file: the test proved nothing"
    );
}
