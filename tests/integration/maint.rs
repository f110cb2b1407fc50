//! gc, verify and prune-locks through the real binary (DESIGN §7), on real files and with real
//! lock holders in other processes.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::maint_helpers::*;
use crate::support::*;

// ---------------------------------------------------------------- gc

#[test]
fn gc_removes_exactly_the_unreferenced_blobs_and_dry_run_reports_the_same_set() {
    let env = Env::new();
    let x1 = add(&env, "a", &bytes(3000, 1));
    let x2 = add(&env, "a", &bytes(3100, 2)); // replaces x1: x1 is now unreferenced
    let y1 = add(&env, "b", &bytes(200, 3));
    let y2 = add(&env, "b", &bytes(210, 4));
    let z = add(&env, "c", &bytes(5000, 5));
    let shared = add(&env, "d", &bytes(5000, 5)); // same bytes as c: one blob, two names
    let orphan = plant_orphan(&env, &bytes(777, 6));
    let unreferenced: BTreeSet<String> = [x1.clone(), y1.clone(), orphan.clone()].into();
    assert_eq!(shared, z);
    let referenced: BTreeSet<String> = [x2, y2, z].into();
    let before = env.blob_names();

    let dry: GcJson = env.run(&["--json", "store", "gc", "--dry-run"]).json();
    assert!(dry.dry_run);
    assert_eq!(set(&dry.removed_blobs), unreferenced);
    assert_eq!(env.blob_names(), before, "--dry-run removes nothing");

    let real = env.run(&["--json", "store", "gc"]);
    real.ok();
    let real: GcJson = real.json();
    assert_eq!(
        set(&real.removed_blobs),
        unreferenced,
        "the same set as the dry run"
    );
    assert_eq!(real.freed_bytes, dry.freed_bytes);
    assert_eq!(real.freed_bytes, 3000 + 200 + 777);
    assert_eq!(real.kept_blobs, 3);
    assert_eq!(
        env.blob_names().into_iter().collect::<BTreeSet<_>>(),
        referenced
    );
    for name in ["a", "b", "c", "d"] {
        env.run(&["store", "path", name]).ok();
    }
    assert_blobs_named_by_hash(&env.store);

    let again: GcJson = env.run(&["--json", "store", "gc"]).json();
    assert!(again.removed_blobs.is_empty() && again.freed_bytes == 0);

    // The text report names what was removed and the bytes freed.
    plant_orphan(&env, &bytes(10, 7));
    let text = env.run(&["store", "gc"]);
    text.ok();
    assert!(
        text.stdout.contains("removed blob") && text.stdout.contains("freed 10 B"),
        "{text:#?}"
    );
}

#[test]
fn gc_keeps_blobs_named_by_a_keep_catalogue() {
    let env = Env::new();
    add(&env, "a", b"in use");
    let content = bytes(500, 8);
    let orphan = plant_orphan(&env, &content);
    let cat = env.file(
        "keep.toml",
        format!("version = 1\n\n[models.kept]\nblake3 = \"{orphan}\"\nsize = 500\n").as_bytes(),
    );
    let cat = cat.to_str().unwrap();
    let kept: GcJson = env.run(&["--json", "store", "gc", "--keep", cat]).json();
    assert!(kept.removed_blobs.is_empty(), "{kept:?}");
    assert!(blob_path(&env, &orphan).exists());

    // A bad --keep catalogue stops gc before anything is deleted, naming file:line:col.
    let bad = env.file(
        "bad.toml",
        b"version = 1\n[models.x]\nblake3 = \"nothex\"\n",
    );
    env.run(&["store", "gc", "--keep", bad.to_str().unwrap()])
        .fails(2, &["bad.toml:3:", "nothing was deleted"]);
    let missing = env.path("nope.toml");
    env.run(&["store", "gc", "--keep", missing.to_str().unwrap()])
        .fails(1, &["nope.toml"]);
    assert!(blob_path(&env, &orphan).exists());

    let gone: GcJson = env.run(&["--json", "store", "gc"]).json();
    assert_eq!(gone.removed_blobs, vec![orphan]);
}

#[test]
fn gc_removes_stale_temp_files_and_old_quarantine_but_not_live_or_recent_ones() {
    let env = Env::new();
    add(&env, "a", b"x");
    let tmp = env.store.join("tmp");
    let stale = tmp.join("add.4242.0000aaaa.part");
    std::fs::write(&stale, bytes(1000, 1)).unwrap();
    age(&stale, 2 * DAY);
    let two_hours = tmp.join("add.4243.0000bbbb.part");
    std::fs::write(&two_hours, bytes(100, 2)).unwrap();
    age(&two_hours, 2 * HOUR);
    let live = tmp.join("pull.4244.0000cccc.part");
    std::fs::write(&live, bytes(100, 3)).unwrap();
    age(&live, 2 * DAY);
    let _writer = Holder::new(&live);
    let recent = tmp.join("add.4245.0000dddd.part");
    std::fs::write(&recent, bytes(100, 4)).unwrap();

    let q = env.store.join("quarantine");
    let hex = blake3_hex(b"whatever");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let old_q = format!("{hex}.{}", now - 8 * 86_400);
    let new_q = format!("{hex}.{}", now - 86_400);
    std::fs::write(q.join(&old_q), b"bad bytes").unwrap();
    std::fs::write(q.join(&new_q), b"bad bytes").unwrap();

    // Default --tmp-age 24h: only the two-day-old dead partial goes; the live one is reported.
    let out: GcJson = env.run(&["--json", "store", "gc"]).json();
    assert_eq!(
        out.removed_partials,
        vec!["add.4242.0000aaaa.part".to_string()]
    );
    assert_eq!(
        out.live_partials,
        vec!["pull.4244.0000cccc.part".to_string()]
    );
    assert_eq!(out.removed_quarantine, vec![old_q]);
    assert_eq!(out.freed_bytes, 1000 + 9);
    assert!(!stale.exists() && live.exists() && two_hours.exists() && recent.exists());
    assert_eq!(list_names(&q), vec![new_q.clone()]);

    // --tmp-age 1h takes the two-hour-old one too; a file written just now is never probed.
    let out: GcJson = env
        .run(&["--json", "store", "gc", "--tmp-age", "1h"])
        .json();
    assert_eq!(
        out.removed_partials,
        vec!["add.4243.0000bbbb.part".to_string()]
    );
    let out: GcJson = env
        .run(&["--json", "store", "gc", "--tmp-age", "0s"])
        .json();
    assert!(out.removed_partials.is_empty(), "{out:?}");
    assert!(live.exists() && recent.exists());
    env.run(&["store", "gc", "--tmp-age", "3weeks"])
        .fails(2, &["unknown unit"]);
}

// ---------------------------------------------------------------- verify

#[test]
fn verify_quarantines_a_tampered_blob_and_the_next_add_restores_it() {
    let env = Env::new();
    // Over 4 MiB, so it is hashed with rayon inside the file.
    let content = bytes(6 << 20, 11);
    let src = env.file("big.onnx", &content);
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "big"])
        .ok();
    add(&env, "small", b"fine");
    let hex = blake3_hex(&content);
    let blob = blob_path(&env, &hex);
    env.run(&["store", "verify"]).ok();

    // Tamper: make it writable, flip one byte.
    std::process::Command::new("chmod")
        .arg("u+w")
        .arg(&blob)
        .status()
        .unwrap();
    let mut bad = std::fs::read(&blob).unwrap();
    bad[4 << 20] ^= 0xff;
    std::fs::write(&blob, &bad).unwrap();

    let run = env.run(&["--json", "store", "verify"]);
    assert_eq!(run.code, 1, "{run:#?}");
    let v: VerifyJson = run.json();
    assert_eq!((v.checked, v.ok), (2, 1));
    assert_eq!(v.corrupt.len(), 1);
    assert_eq!(v.corrupt[0].blake3, hex);
    assert!(v.corrupt[0].problem.contains("content hashes to"), "{v:?}");
    let q = v.corrupt[0].quarantined_to.clone().expect("quarantined");
    assert!(q.starts_with(env.store.join("quarantine")));
    assert_eq!(
        std::fs::read(&q).unwrap(),
        bad,
        "the bad bytes are kept for inspection"
    );
    assert!(!blob.exists());

    env.run(&["store", "path", "big"]).fails(3, &["missing"]);
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "big"])
        .ok();
    assert_eq!(
        env.run(&["store", "path", "big"]).ok(),
        blob.to_str().unwrap()
    );
    assert_eq!(mode(&blob), 0o444);
    env.run(&["store", "verify"]).ok();
    assert_blobs_named_by_hash(&env.store);
}

#[test]
fn verify_reports_truncated_and_missing_blobs_and_wrong_modes() {
    let env = Env::new();
    let t = add(&env, "truncated", &bytes(1000, 1));
    let m = add(&env, "missing", &bytes(1000, 2));
    let ok = add(&env, "fine", &bytes(1000, 3));
    let loose = add(&env, "loose", &bytes(1000, 4));
    let tb = blob_path(&env, &t);
    std::process::Command::new("chmod")
        .arg("u+w")
        .arg(&tb)
        .status()
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&tb)
        .unwrap()
        .set_len(400)
        .unwrap();
    std::fs::remove_file(blob_path(&env, &m)).unwrap();
    std::process::Command::new("chmod")
        .arg("0644")
        .arg(blob_path(&env, &loose))
        .status()
        .unwrap();

    let run = env.run(&["--json", "store", "verify"]);
    assert_eq!(run.code, 1, "{run:#?}");
    let v: VerifyJson = run.json();
    assert_eq!(v.corrupt.len(), 1);
    assert_eq!(v.corrupt[0].blake3, t);
    assert!(
        v.corrupt[0]
            .problem
            .contains("truncated: 400 bytes, expected 1000"),
        "{v:?}"
    );
    assert_eq!(v.missing, vec!["missing".to_string()]);
    assert_eq!((v.checked, v.ok), (3, 2));
    assert_eq!(v.wrong_mode.len(), 1);
    assert_eq!(
        (
            v.wrong_mode[0].blake3.as_str(),
            v.wrong_mode[0].mode.as_str()
        ),
        (loose.as_str(), "0644")
    );

    // Named: only those blobs; a name the store does not hold is bad input.
    let v: VerifyJson = env.run(&["--json", "store", "verify", "fine"]).json();
    assert_eq!((v.checked, v.ok, v.corrupt.len()), (1, 1, 0));
    let _ = ok;
    env.run(&["store", "verify", "nosuch"])
        .fails(2, &["nosuch"]);
    env.run(&["store", "verify", "missing"])
        .fails(1, &["1 missing"]);

    // Text: every problem on its own line.
    let text = env.run(&["store", "verify"]);
    assert_eq!(text.code, 1);
    assert!(text.stdout.contains("missing: missing"), "{text:#?}");
    assert!(text.stdout.contains("0644"), "{text:#?}");
}

#[test]
fn verify_deep_says_it_is_not_available_yet() {
    let env = Env::new();
    add(&env, "a", b"x");
    env.run(&["store", "verify", "--deep"])
        .fails(2, &["--deep", "not available"]);
}

// ---------------------------------------------------------------- prune-locks and info

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
        .spawn()
        .unwrap();
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
    let path = env
        .store
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

// ---------------------------------------------------------------- bad input

#[test]
fn maintenance_refuses_a_store_whose_manifest_does_not_parse_and_deletes_nothing() {
    let env = Env::new();
    add(&env, "a", b"x");
    let orphan = plant_orphan(&env, b"orphan");
    let manifest = env.store.join("manifest.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[models.b]\nblake3 = 12\n");
    std::fs::write(&manifest, text).unwrap();
    let before = env.blob_names();
    let locks_before = list_names(&env.store.join("locks"));

    env.run(&["store", "gc"]).fails(
        2,
        &["refusing to gc", "nothing was deleted", "manifest.toml:"],
    );
    env.run(&["store", "gc", "--dry-run"])
        .fails(2, &["manifest.toml:"]);
    env.run(&["store", "verify"]).fails(2, &["manifest.toml:"]);
    env.run(&["store", "prune-locks"])
        .fails(2, &["manifest.toml:", "nothing was removed"]);
    assert_eq!(env.blob_names(), before);
    assert!(blob_path(&env, &orphan).exists());
    assert_eq!(list_names(&env.store.join("locks")), locks_before);
}

#[test]
fn maintenance_on_something_that_is_not_a_store_is_bad_input() {
    let env = Env::new();
    let folder = env.path("folder");
    env.file("folder/notes.txt", b"mine");
    let missing = env.path("nothing-here");
    let at = |store: &std::path::Path, cmd: &str| {
        let out = std::process::Command::new(BIN)
            .arg("--store")
            .arg(store)
            .args(["store", cmd])
            .env_remove("BEAKER_STORE")
            .output()
            .unwrap();
        Run::from(out)
    };
    for cmd in ["gc", "verify", "prune-locks"] {
        at(&folder, cmd).fails(2, &["not a beaker store"]);
        at(&missing, cmd).fails(2, &["no beaker store"]);
    }
    assert!(!missing.exists(), "maintenance never creates a store");
    assert_eq!(list_names(&folder), vec!["notes.txt".to_string()]);

    // A store of a format this beaker does not know.
    add(&env, "a", b"x");
    plant_orphan(&env, b"orphan");
    std::fs::write(env.store.join("store.toml"), "format = 2\n").unwrap();
    let before = env.blob_names();
    for cmd in ["gc", "verify", "prune-locks"] {
        env.run(&["store", cmd]).fails(2, &["format 2"]);
    }
    assert_eq!(env.blob_names(), before);
}

#[test]
fn maintenance_on_a_read_only_store_fails_clearly_and_deletes_nothing() {
    let env = Env::new();
    let content = bytes(100, 1);
    let hex = add(&env, "a", &content);
    let orphan = plant_orphan(&env, b"orphan");
    let blob = blob_path(&env, &hex);
    std::process::Command::new("chmod")
        .arg("u+w")
        .arg(&blob)
        .status()
        .unwrap();
    std::fs::write(&blob, bytes(100, 2)).unwrap(); // corrupt, for verify
    let locks_before = list_names(&env.store.join("locks"));

    run_read_only(&env, &["store", "gc"]).fails(1, &["not writable"]);
    run_read_only(&env, &["store", "prune-locks"]).fails(1, &["not writable"]);
    let v = run_read_only(&env, &["--json", "store", "verify"]);
    assert_eq!(v.code, 1, "{v:#?}");
    let v: VerifyJson = v.json();
    assert_eq!(v.corrupt.len(), 1);
    assert!(v.corrupt[0].quarantined_to.is_none());
    assert!(
        v.corrupt[0]
            .quarantine_error
            .as_deref()
            .is_some_and(|e| e.contains("not writable")),
        "{v:?}"
    );
    // A dry run only looks, so it works on a store it may read.
    let dry: GcJson = run_read_only(&env, &["--json", "store", "gc", "--dry-run"]).json();
    assert_eq!(dry.removed_blobs, vec![orphan.clone()]);

    assert!(blob_path(&env, &orphan).exists() && blob.exists());
    assert_eq!(list_names(&env.store.join("locks")), locks_before);
    assert!(list_names(&env.store.join("quarantine")).is_empty());
}

#[test]
fn gc_in_a_store_without_locks_spares_freshly_published_blobs() {
    // With locking = "none", gc.lock cannot keep a publish from racing the sweep, so a blob
    // published within the last hour is kept even when unreferenced (and reported as such).
    let env = Env::new();
    env.run(&["store", "init", "--locking", "none"]).ok();
    let old = add(&env, "a", b"first");
    add(&env, "a", b"second");
    let run = env.run(&["--json", "store", "gc"]);
    run.ok();
    let v: serde_json::Value = run.json();
    assert_eq!(v["removed_blobs"], serde_json::json!([]));
    assert_eq!(v["deferred_blobs"], serde_json::json!([old]));
    assert!(blob_path(&env, &old).exists());
    let text = env.run(&["store", "gc"]);
    assert!(text.stdout.contains("store without locks"), "{text:#?}");
}

#[test]
fn verify_quarantines_symlinks_and_directories_posing_as_blobs_and_gc_expires_them() {
    let env = Env::new();
    let content = bytes(100, 1);
    let linked = add(&env, "linked", &content);
    let dir = add(&env, "dir", &bytes(100, 2));
    // A symlink to the right bytes is still not a blob (nothing inside a store follows links).
    let elsewhere = env.file("elsewhere", &content);
    std::fs::remove_file(blob_path(&env, &linked)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, blob_path(&env, &linked)).unwrap();
    std::fs::remove_file(blob_path(&env, &dir)).unwrap();
    std::fs::create_dir(blob_path(&env, &dir)).unwrap();
    std::fs::write(blob_path(&env, &dir).join("inside"), b"x").unwrap();
    // gc leaves a directory in blobs/ alone rather than failing.
    env.run(&["store", "gc"]).ok();

    let run = env.run(&["--json", "store", "verify"]);
    assert_eq!(run.code, 1, "{run:#?}");
    let v: VerifyJson = run.json();
    let problems: BTreeSet<(String, String)> = v
        .corrupt
        .iter()
        .map(|c| (c.blake3.clone(), c.problem.clone()))
        .collect();
    let expect: BTreeSet<(String, String)> = [
        (linked.clone(), "a symlink, not a blob file".to_string()),
        (dir.clone(), "a directory, not a blob file".to_string()),
    ]
    .into();
    assert_eq!(problems, expect);
    assert_eq!(
        std::fs::read(&elsewhere).unwrap(),
        content,
        "the link target is untouched"
    );
    env.run(&[
        "store",
        "add",
        elsewhere.to_str().unwrap(),
        "--name",
        "linked",
    ])
    .ok();
    assert_eq!(mode(&blob_path(&env, &linked)), 0o444);

    // Age the quarantine entries by renaming them to an old timestamp: gc removes both kinds.
    let q = env.store.join("quarantine");
    for name in list_names(&q) {
        let hex = name.split('.').next().unwrap().to_string();
        std::fs::rename(q.join(&name), q.join(format!("{hex}.1000"))).unwrap();
    }
    let out: GcJson = env.run(&["--json", "store", "gc"]).json();
    assert_eq!(out.removed_quarantine.len(), 2, "{out:?}");
    assert!(list_names(&q).is_empty());
}
