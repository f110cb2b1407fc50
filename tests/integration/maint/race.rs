//! gc racing add and rm across processes (invariant I4): never a referenced blob missing, never
//! a manifest entry whose blob is absent once everyone is done.

use std::time::{Duration, Instant};

use super::{add, GcJson};
use crate::support::*;

// Unix only: under wine processes start too slowly for the race it asserts to happen.
#[cfg(unix)]
#[test]
fn gc_racing_add_and_rm_never_loses_a_referenced_blob() {
    let env = Env::new();
    add(&env, "seed", b"seed");
    let deadline = Instant::now() + Duration::from_secs(3);
    let stats = std::thread::scope(|s| {
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                let env = &env;
                s.spawn(move || {
                    let mut adds = 0;
                    let mut k = 0u64;
                    while Instant::now() < deadline {
                        k += 1;
                        let name = format!("w{w}-{}", k % 3);
                        // Few distinct contents: re-adding one that a rm or replace just made
                        // unreferenced takes the fast path (reference an existing blob), the
                        // case a racing gc must not break.
                        let content = bytes(2000 + (k % 4) as usize, w * 100 + k % 4);
                        let src = env.file(&format!("src/{w}-{}", k % 4), &content);
                        let r = env.run(&["store", "add", src.to_str().unwrap(), "--name", &name]);
                        r.ok();
                        adds += 1;
                        // Nobody else touches this name: its blob must be there, with its bytes.
                        let path = env.run(&["store", "path", &name]);
                        let path = path.ok();
                        let on_disk = std::fs::read(&path).expect("referenced blob must exist");
                        assert_eq!(blake3_hex(&on_disk), blake3_hex(&content));
                        if k.is_multiple_of(5) {
                            env.run(&["store", "rm", &name]).ok();
                        }
                    }
                    adds
                })
            })
            .collect();
        let gcs = s.spawn(|| {
            let mut runs = 0;
            let mut removed = 0;
            while Instant::now() < deadline {
                let out: GcJson = env
                    .run(&["--json", "store", "gc", "--tmp-age", "0s"])
                    .json();
                removed += out.removed_blobs.len();
                runs += 1;
            }
            (runs, removed)
        });
        let adds: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
        (adds, gcs.join().unwrap())
    });
    let (adds, (gc_runs, gc_removed)) = stats;
    eprintln!("race: {adds} adds, {gc_runs} gc runs removing {gc_removed} blobs");
    assert!(
        adds > 10 && gc_runs > 5,
        "too little contention to mean anything: {stats:?}"
    );

    // After the dust settles: every name's blob is there and right; verify agrees.
    let ls = assert_every_name_whole(&env);
    // And a final gc leaves exactly the referenced blobs.
    env.run(&["store", "gc"]).ok();
    assert_eq!(
        env.blob_names().len(),
        ls.iter()
            .map(|r| r["blake3"].as_str().unwrap().to_owned())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
}

/// I4 with eviction: pulls race `gc --max-size` and the eviction every pull runs after a publish
/// (store.toml `max_size`, `min_age = "0s"`, so nothing is protected as "in use"). Names come and
/// go, but a name the manifest holds always has its blobs, every blob is its hash, and every
/// pull succeeds (a blob evicted under it is fetched again).
#[test]
fn eviction_racing_pulls_never_loses_a_referenced_blob() {
    let env = Env::new();
    let models: Vec<(String, Vec<u8>)> = (0..6u64)
        .map(|i| (format!("m{i}"), bytes(3000, 500 + i)))
        .collect();
    let entries: Vec<(String, Vec<u8>, Vec<String>)> = models
        .iter()
        .map(|(n, b)| {
            let src = env.file(&format!("src/{n}"), b);
            (n.clone(), b.clone(), vec![file_url(&src)])
        })
        .collect();
    let refs: Vec<(&str, &[u8], Vec<String>)> = entries
        .iter()
        .map(|(n, b, u)| (n.as_str(), b.as_slice(), u.clone()))
        .collect();
    let cat = crate::pull::catalogue(&env, &refs);
    env.run(&["store", "init"]).ok();
    let toml = env.store.join("store.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        format!("{text}max_size = \"7000\"\nmin_age = \"0s\"\n"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let (pulls, (gc_runs, evicted)) = std::thread::scope(|s| {
        let pullers: Vec<_> = (0..2usize)
            .map(|w| {
                let (env, cat, models) = (&env, &cat, &models);
                s.spawn(move || {
                    let mut pulls = 0;
                    let mut k = w;
                    while Instant::now() < deadline {
                        let (name, body) = &models[k % models.len()];
                        k += 1;
                        let printed = crate::pull::pull(env, cat, &[name]).ok();
                        pulls += 1;
                        // The path may be evicted a moment later (min_age 0s): if it is still
                        // there, it holds exactly the model's bytes.
                        if let Ok(on_disk) = std::fs::read(&printed) {
                            assert_eq!(blake3_hex(&on_disk), blake3_hex(body));
                        }
                    }
                    pulls
                })
            })
            .collect();
        let gcs = s.spawn(|| {
            let (mut runs, mut evicted) = (0, 0);
            while Instant::now() < deadline {
                let out: serde_json::Value = env
                    .run(&[
                        "--json",
                        "store",
                        "gc",
                        "--max-size",
                        "4000",
                        "--min-age",
                        "0s",
                    ])
                    .json();
                evicted += out["evicted"].as_array().map_or(0, Vec::len);
                runs += 1;
            }
            (runs, evicted)
        });
        let pulls: usize = pullers.into_iter().map(|p| p.join().unwrap()).sum();
        (pulls, gcs.join().unwrap())
    });
    eprintln!("eviction race: {pulls} pulls, {gc_runs} gc runs evicting {evicted} names");
    assert!(
        pulls > 10 && gc_runs > 5 && evicted > 0,
        "too little contention to mean anything: {pulls} pulls, {gc_runs} gc, {evicted} evicted"
    );
    let ls = assert_every_name_whole(&env);
    let out: serde_json::Value = env
        .run(&[
            "--json",
            "store",
            "gc",
            "--max-size",
            "7000",
            "--min-age",
            "0s",
        ])
        .json();
    assert_eq!(out["over_budget"], 0, "{out}");
    assert!(ls.len() <= 6);
}

/// After a race: every blob is named by its hash, every recorded name's blob is present, and
/// verify agrees. Returns `store ls --json`'s rows.
fn assert_every_name_whole(env: &Env) -> Vec<serde_json::Value> {
    assert_blobs_named_by_hash(&env.store);
    let ls: Vec<serde_json::Value> = env.run(&["--json", "store", "ls"]).json();
    for row in &ls {
        assert_eq!(
            row["present"], true,
            "manifest entry without its blob: {row}"
        );
    }
    env.run(&["store", "verify"]).ok();
    ls
}
