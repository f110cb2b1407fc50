//! gc racing add and rm across processes (invariant I4): never a referenced blob missing, never
//! a manifest entry whose blob is absent once everyone is done.

use std::time::{Duration, Instant};

use crate::maint_helpers::*;
use crate::support::*;

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
    assert_blobs_named_by_hash(&env.store);
    let ls: Vec<serde_json::Value> = env.run(&["--json", "store", "ls"]).json();
    for row in &ls {
        assert_eq!(
            row["present"], true,
            "manifest entry without its blob: {row}"
        );
    }
    env.run(&["store", "verify"]).ok();
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
