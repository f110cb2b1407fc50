//! gc and verify through the real binary (docs/design.md#maintenance), on real files, with a live temp-file writer
//! held from another process.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{
    add, age, blob_path, date_ahead, plant_orphan, set, GcJson, Holder, VerifyJson, DAY, HOUR,
};
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
        .fails(2, &["nope.toml", NOT_FOUND]);
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

#[test]
fn gc_removes_temp_and_quarantine_files_dated_in_the_future_once_past_the_age_limit() {
    let env = Env::new();
    add(&env, "a", b"x");
    let tmp = env.store.join("tmp");
    // A dead writer's partial dated three days ahead (its host's clock runs fast): past 24h.
    let far = tmp.join("pull.4242.0000aaaa.part");
    std::fs::write(&far, bytes(1000, 1)).unwrap();
    date_ahead(&far, 3 * DAY);
    // An hour ahead is within the limit either way: kept.
    let near = tmp.join("pull.4243.0000bbbb.part");
    std::fs::write(&near, bytes(100, 2)).unwrap();
    date_ahead(&near, HOUR);
    // Far ahead but its writer is alive: the date alone never removes it.
    let live = tmp.join("pull.4244.0000cccc.part");
    std::fs::write(&live, bytes(100, 3)).unwrap();
    date_ahead(&live, 3 * DAY);
    let _writer = Holder::new(&live);

    let q = env.store.join("quarantine");
    let hex = blake3_hex(b"whatever");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let far_q = format!("{hex}.{}", now + 8 * 86_400);
    let near_q = format!("{hex}.{}", now + 86_400);
    std::fs::write(q.join(&far_q), b"bad bytes").unwrap();
    std::fs::write(q.join(&near_q), b"bad bytes").unwrap();
    // No time in its name: judged by its mtime, eight days ahead.
    let unnamed = q.join("left-by-hand");
    std::fs::write(&unnamed, b"??").unwrap();
    date_ahead(&unnamed, 8 * DAY);

    let out: GcJson = env.run(&["--json", "store", "gc"]).json();
    assert_eq!(out.removed_partials, vec!["pull.4242.0000aaaa.part"]);
    assert_eq!(out.live_partials, vec!["pull.4244.0000cccc.part"]);
    assert_eq!(
        set(&out.removed_quarantine),
        set(&[far_q, "left-by-hand".to_string()])
    );
    assert!(!far.exists() && near.exists() && live.exists());
    assert_eq!(list_names(&q), vec![near_q]);
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
    chmod(&blob, 0o644);
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
    // The snapshot that linked the bad inode was rebuilt: the path is the good blob again.
    assert_model_file(
        &env.store,
        &env.run(&["store", "path", "big"]).ok(),
        &content,
    );
    assert_eq!(mode(&blob), 0o444);
    env.run(&["store", "verify"]).ok();
    assert_blobs_named_by_hash(&env.store);
}

// Unix only: Unix semantics.
#[cfg(unix)]
/// Blobs of 64 KiB and more are hashed through a memory map (src/fsx/mapped.rs): a truncated
/// or edited large blob is still reported as such and quarantined, a good one passes.
#[test]
fn verify_reports_truncated_and_tampered_blobs_hashed_through_a_map() {
    const MIB: usize = 1 << 20;
    let env = Env::new();
    let t = add(&env, "truncated", &bytes(5 * MIB, 11));
    let e = add(&env, "edited", &bytes(MIB, 12));
    let ok = add(&env, "fine", &bytes(5 * MIB + 7, 13));
    for hex in [&t, &e] {
        chmod(&blob_path(&env, hex), 0o644);
    }
    let writable = |hex: &str| {
        std::fs::File::options()
            .write(true)
            .open(blob_path(&env, hex))
            .unwrap()
    };
    writable(&t).set_len(MIB as u64).unwrap();
    // One byte changed in the last page of the file.
    std::os::unix::fs::FileExt::write_all_at(&writable(&e), b"!", (MIB - 3) as u64).unwrap();

    let run = env.run(&["--json", "store", "verify"]);
    assert_eq!(run.code, 1, "{run:#?}");
    let v: VerifyJson = run.json();
    assert_eq!((v.checked, v.ok, v.corrupt.len()), (3, 1, 2), "{v:?}");
    let problem = |hex: &str| {
        let c = v
            .corrupt
            .iter()
            .find(|c| c.blake3 == hex)
            .expect("reported");
        assert!(c.quarantined_to.is_some(), "{c:?}");
        c.problem.clone()
    };
    assert!(
        problem(&t).contains(&format!("truncated: {MIB} bytes, expected {}", 5 * MIB)),
        "{v:?}"
    );
    assert!(problem(&e).contains("content hashes to"), "{v:?}");
    let v: VerifyJson = env.run(&["--json", "store", "verify", "fine"]).json();
    assert_eq!((v.checked, v.ok, v.corrupt.len()), (1, 1, 0));
    let _ = ok;
}

#[test]
fn verify_reports_truncated_and_missing_blobs_and_wrong_modes() {
    let env = Env::new();
    let t = add(&env, "truncated", &bytes(1000, 1));
    let m = add(&env, "missing", &bytes(1000, 2));
    let ok = add(&env, "fine", &bytes(1000, 3));
    let loose = add(&env, "loose", &bytes(1000, 4));
    let tb = blob_path(&env, &t);
    chmod(&tb, 0o644);
    std::fs::File::options()
        .write(true)
        .open(&tb)
        .unwrap()
        .set_len(400)
        .unwrap();
    remove(blob_path(&env, &m));
    chmod(&blob_path(&env, &loose), 0o644);

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
        // (On Windows a writable file reads as 0600: only the read-only attribute is a mode.)
        (loose.as_str(), if cfg!(unix) { "0644" } else { "0600" })
    );

    // Named: only those blobs; a name the store does not hold is exit 3, as for every command.
    let v: VerifyJson = env.run(&["--json", "store", "verify", "fine"]).json();
    assert_eq!((v.checked, v.ok, v.corrupt.len()), (1, 1, 0));
    let _ = ok;
    env.run(&["store", "verify", "nosuch"])
        .fails(3, &["nosuch"]);
    env.run(&["store", "verify", "missing"])
        .fails(1, &["1 missing"]);

    // Text: every problem on its own line.
    let text = env.run(&["store", "verify"]);
    assert_eq!(text.code, 1);
    assert!(text.stdout.contains("missing: missing"), "{text:#?}");
    let writable = if cfg!(unix) { "0644" } else { "0600" };
    assert!(text.stdout.contains(writable), "{text:#?}");
}

#[test]
fn verify_deep_of_a_store_without_onnx_models_needs_no_runtime() {
    let env = Env::new();
    add(&env, "a", b"x");
    let r = Run::from(
        env.cmd()
            .env("ORT_DYLIB_PATH", env.path("no-runtime.so"))
            .args(["store", "verify", "--deep"])
            .output()
            .expect("spawn beaker"),
    );
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(r.stdout.contains("not ONNX, not loaded: a"), "{r:#?}");
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

// Unix only: a planted symlink (wine makes none).
#[cfg(unix)]
#[test]
fn verify_quarantines_symlinks_and_directories_posing_as_blobs_and_gc_expires_them() {
    let env = Env::new();
    let content = bytes(100, 1);
    let linked = add(&env, "linked", &content);
    let dir = add(&env, "dir", &bytes(100, 2));
    // A symlink to the right bytes is still not a blob (nothing inside a store follows links).
    let elsewhere = env.file("elsewhere", &content);
    remove(blob_path(&env, &linked));
    std::os::unix::fs::symlink(&elsewhere, blob_path(&env, &linked)).unwrap();
    remove(blob_path(&env, &dir));
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

#[test]
fn max_size_takes_units_in_any_case_and_as_ls_prints_them() {
    let env = Env::new();
    env.run(&["store", "init"]).ok();
    for size in ["1m", "1g", "1gb", "1Gi", "1.50 GiB", "20G"] {
        let r = env.run(&["--json", "store", "gc", "--max-size", size]);
        assert!(r.success(), "--max-size {size}: {}", r.describe());
    }
    env.run(&["store", "gc", "--max-size", "1 parsec"])
        .fails(2, &["\"1 parsec\" is not a size", "unknown unit"]);
}
