//! The digest index (`<store>/index/`, upstream md5/sha256 -> BLAKE3) through the real binary:
//! `gc --keep` protects an md5-only model after its name is gone, a later pull is served from it
//! with no source, keep-entries that match nothing are reported, a damaged record never maps to a
//! wrong blob, and in a group store every member can add to it and gc it.

use std::path::{Path, PathBuf};

use md5::Digest;
use serde::Deserialize;

use crate::maint::*;
use crate::support::*;

/// The gc `--json` fields this file looks at.
#[derive(Debug, Deserialize)]
struct Gc {
    removed_blobs: Vec<String>,
    keep_unmatched: Vec<String>,
    removed_index: Vec<String>,
}

pub fn md5_hex(bytes: &[u8]) -> String {
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A catalogue in `dir` whose entries pin only an md5 (no blake3, no size), as the bundled one
/// does, each fetched from a file next to it.
pub fn md5_catalogue(dir: &Path, models: &[(&str, &[u8])]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut text = String::from("version = 1\n");
    for (name, bytes) in models {
        std::fs::write(dir.join(format!("{name}.onnx")), bytes).unwrap();
        text.push_str(&format!(
            "[models.{name}]\nmd5 = \"{}\"\nurls = [\"{name}.onnx\"]\n",
            md5_hex(bytes)
        ));
    }
    let cat = dir.join("catalogue.toml");
    std::fs::write(&cat, text).unwrap();
    cat
}

fn record(env: &Env, bytes: &[u8]) -> PathBuf {
    env.store
        .join("index")
        .join(format!("md5-{}", md5_hex(bytes)))
}

#[test]
fn gc_keep_protects_an_md5_only_model_after_its_name_is_gone_and_pull_serves_it_offline() {
    let env = Env::new();
    env.run(&["store", "init"]).ok();
    // A store from before the index existed: no index/ yet; it is created when first needed.
    std::fs::remove_dir(env.store.join("index")).unwrap();
    let model = bytes(30_000, 1);
    let cat = md5_catalogue(&env.path("cat"), &[("m", &model)]);
    let cat_s = cat.to_str().unwrap();
    let first = env.run(&["--manifest", cat_s, "store", "pull", "m"]).ok();
    let blob = blake3_hex(&model);
    assert_model_file(&env.store, &first, &model);
    let rec = std::fs::read_to_string(record(&env, &model)).expect("pull recorded the md5");
    assert!(
        rec.starts_with(&format!(
            "v2 md5 {} blake3 {blob} size 30000 check ",
            md5_hex(&model)
        )),
        "{rec}"
    );

    // The name is re-pointed to other bytes, then removed: no name holds the model's blob any
    // more, and the store manifest no longer knows what the md5 meant.
    add(&env, "m", b"something else");
    env.run(&["store", "rm", "m"]).ok();
    assert!(blob_path(&env, &blob).exists());
    let without: Gc = env.run(&["--json", "store", "gc", "--dry-run"]).json();
    assert_eq!(
        without.removed_blobs,
        vec![blob.clone()],
        "only --keep saves it"
    );

    let kept: Gc = env.run(&["--json", "store", "gc", "--keep", cat_s]).json();
    assert!(kept.removed_blobs.is_empty(), "{kept:?}");
    assert!(kept.keep_unmatched.is_empty(), "{kept:?}");
    assert!(kept.removed_index.is_empty(), "{kept:?}");
    assert!(blob_path(&env, &blob).exists());

    // The source is gone and the pull is offline: only the index can serve it.
    remove(env.path("cat/m.onnx"));
    let again = env
        .run(&["--manifest", cat_s, "store", "pull", "m", "--offline"])
        .ok();
    assert_eq!(again, first);
    assert_eq!(env.run(&["store", "path", "m"]).ok(), first);
}

#[test]
fn gc_reports_the_keep_entries_that_match_no_blob() {
    let env = Env::new();
    let pulled = bytes(1000, 2);
    let never = bytes(1000, 3);
    let cat = md5_catalogue(&env.path("cat"), &[("pulled", &pulled), ("never", &never)]);
    // A blake3 entry whose blob is not in the store either.
    let absent = bytes(10, 4);
    let mut text = std::fs::read_to_string(&cat).unwrap();
    text.push_str(&format!(
        "[models.absent]\nblake3 = \"{}\"\nsize = 10\nurls = [\"nowhere\"]\n",
        blake3_hex(&absent)
    ));
    std::fs::write(&cat, text).unwrap();
    let cat_s = cat.to_str().unwrap();
    env.run(&["--manifest", cat_s, "store", "pull", "pulled"])
        .ok();

    let out: Gc = env.run(&["--json", "store", "gc", "--keep", cat_s]).json();
    assert_eq!(out.keep_unmatched, vec!["absent", "never"]);
    let text = env.run(&["store", "gc", "--keep", cat_s]);
    assert!(
        text.stdout
            .contains("--keep: 2 matched no blob in this store")
            && text.stdout.contains("absent, never"),
        "{text:?}"
    );
}

// Unix only: a FIFO.
#[cfg(unix)]
#[test]
fn a_torn_or_garbage_index_record_is_ignored_and_never_maps_to_a_wrong_blob() {
    let env = Env::new();
    let model = bytes(5000, 5);
    let other = bytes(5000, 6);
    let cat = md5_catalogue(&env.path("cat"), &[("m", &model), ("o", &other)]);
    let cat_s = cat.to_str().unwrap();
    env.run(&["--manifest", cat_s, "store", "pull", "m", "o"])
        .ok();
    // Re-point both names so only the index could say what the md5s meant.
    add(&env, "m", b"new m");
    add(&env, "o", b"new o");
    let good = std::fs::read_to_string(record(&env, &model)).unwrap();
    let others = std::fs::read_to_string(record(&env, &other)).unwrap();
    let wrong = good.replace(&blake3_hex(&model), &blake3_hex(&other));
    assert_ne!(wrong, good);
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("torn", good.as_bytes()[..good.len() / 2].to_vec()),
        ("empty", Vec::new()),
        (
            "pointed at another blob, check not redone",
            wrong.into_bytes(),
        ),
        ("another digest's valid record", others.into_bytes()),
        ("binary junk", bytes(300, 7)),
    ];
    remove(env.path("cat/m.onnx"));
    for (what, content) in &garbage {
        std::fs::write(record(&env, &model), content).unwrap();
        let r = env.run(&["--manifest", cat_s, "store", "pull", "m", "--offline"]);
        assert_eq!(r.code, 1, "{what}: must not be served: {r:?}");
        assert!(r.stdout.is_empty(), "{what}: {r:?}");
    }
    // A FIFO at the record's path: read without blocking, ignored.
    remove(record(&env, &model));
    let status = std::process::Command::new("mkfifo")
        .arg(record(&env, &model))
        .status()
        .unwrap();
    assert!(status.success());
    env.run(&["--manifest", cat_s, "store", "pull", "m", "--offline"])
        .fails(1, &[]);
    remove(record(&env, &model));

    // gc keeps `other` through its good record, and drops a garbage record rather than trust it.
    std::fs::write(record(&env, &model), &garbage[2].1).unwrap();
    let out: Gc = env.run(&["--json", "store", "gc", "--keep", cat_s]).json();
    assert_eq!(out.keep_unmatched, vec!["m"]);
    assert_eq!(out.removed_blobs, vec![blake3_hex(&model)]);
    assert_eq!(out.removed_index, vec![format!("md5-{}", md5_hex(&model))]);
    assert!(blob_path(&env, &blake3_hex(&other)).exists());
    assert!(!record(&env, &model).exists());
}

#[test]
fn gc_drops_the_index_records_of_blobs_it_removes() {
    let env = Env::new();
    let model = bytes(2000, 8);
    let cat = md5_catalogue(&env.path("cat"), &[("m", &model)]);
    env.run(&["--manifest", cat.to_str().unwrap(), "store", "pull", "m"])
        .ok();
    add(&env, "m", b"re-pointed");
    let dry: Gc = env.run(&["--json", "store", "gc", "--dry-run"]).json();
    let name = format!("md5-{}", md5_hex(&model));
    assert_eq!(dry.removed_index, vec![name.clone()]);
    assert!(record(&env, &model).exists(), "--dry-run removes nothing");
    let out: Gc = env.run(&["--json", "store", "gc"]).json();
    assert_eq!(out.removed_blobs, vec![blake3_hex(&model)]);
    assert_eq!(out.removed_index, vec![name]);
    assert!(!record(&env, &model).exists());
}

// Unix only: a group store of real users
#[cfg(unix)]
#[test]
fn in_a_group_store_every_member_adds_to_the_index_and_gcs_it_with_group_modes() {
    use crate::shared::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some(u) = users() else { return };
    let env = shared_env();
    group_store(&env, &u.alice, "flock");
    // As if the store predated the index: it is created on demand, with the store's group modes.
    std::fs::remove_dir(env.store.join("index")).unwrap();
    let (a, b) = (bytes(3000, 9), bytes(3000, 10));
    let dir = env.path("cat");
    let cat = md5_catalogue(&dir, &[("a", &a), ("b", &b)]);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in ["catalogue.toml", "a.onnx", "b.onnx"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let cat_s = cat.to_str().unwrap();
    let pull = |user: &User, name: &str| {
        as_user_with_umask(
            user,
            "077",
            &env.store,
            &["--manifest", cat_s, "store", "pull", name],
        )
        .ok()
    };
    pull(&u.alice, "a");
    pull(&u.bob, "b");
    let (ra, rb) = (record(&env, &a), record(&env, &b));
    assert_eq!(std::fs::metadata(&ra).unwrap().uid(), u.alice.uid);
    assert_eq!(std::fs::metadata(&rb).unwrap().uid(), u.bob.uid);
    // index/ 2775 and the records 0664, all in the store's group, despite umask 077.
    assert_group_policy(&env.store, u.lab_gid);

    // Alice re-points both names. Bob's `gc --keep` keeps both blobs by md5 alone; his plain gc
    // then removes them and drops both records, alice's included.
    let other = public_file(&env, "other", b"other bytes");
    for name in ["a", "b"] {
        as_user(
            &u.alice,
            &env.store,
            &["store", "add", other.to_str().unwrap(), "--name", name],
        )
        .ok();
    }
    let kept: Gc = as_user(
        &u.bob,
        &env.store,
        &["--json", "store", "gc", "--keep", cat_s],
    )
    .json();
    assert!(
        kept.removed_blobs.is_empty() && kept.keep_unmatched.is_empty(),
        "{kept:?}"
    );
    let out: Gc = as_user(&u.bob, &env.store, &["--json", "store", "gc"]).json();
    let mut blobs = vec![blake3_hex(&a), blake3_hex(&b)];
    blobs.sort();
    assert_eq!(out.removed_blobs, blobs);
    let mut records = vec![
        format!("md5-{}", md5_hex(&a)),
        format!("md5-{}", md5_hex(&b)),
    ];
    records.sort();
    assert_eq!(out.removed_index, records);
    assert!(!ra.exists() && !rb.exists());
    assert_group_policy(&env.store, u.lab_gid);
}
