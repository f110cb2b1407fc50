//! The store as a cache with a budget (docs/design.md#eviction), through the real binary: use records, LRU
//! eviction by `gc --max-size` / `--older-than`, pins, models in use, `max_size` in store.toml
//! (auto-eviction after a publish), the `ls`/`info` columns and bad input. Times of use are set
//! through the library's `uses::set_last_used` ([`used`]), never by sleeping.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::maint::add;
use crate::support::*;

const DAY: Duration = Duration::from_secs(86_400);

/// Sets `name`'s recorded last use to `ago` before now (the test helper the issue asks for).
pub fn used(store: &Path, name: &str, ago: Duration) {
    let store = beaker::Store::open(store).expect("open store");
    let name = beaker::ModelName::new(name).expect("name");
    beaker::uses::set_last_used(&store, &name, SystemTime::now() - ago).expect("set last use");
}

#[derive(Debug, Deserialize)]
pub struct EvictGc {
    pub dry_run: bool,
    pub removed_blobs: Vec<String>,
    pub freed_bytes: u64,
    pub evicted: Vec<EvictedJson>,
    pub over_budget: u64,
    pub remaining_bytes: Option<u64>,
    pub spared_in_use: Vec<String>,
    pub spared_pinned: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct EvictedJson {
    pub name: String,
    pub blake3: String,
    pub size: u64,
    pub last_used: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LsRow {
    name: String,
    last_used: Option<String>,
    pinned: bool,
}

fn names(e: &[EvictedJson]) -> Vec<&str> {
    e.iter().map(|e| e.name.as_str()).collect()
}

fn ls(env: &Env) -> Vec<LsRow> {
    env.run(&["--json", "store", "ls"]).json()
}

fn held(env: &Env) -> Vec<String> {
    ls(env).into_iter().map(|r| r.name).collect()
}

/// Seconds since the epoch of an RFC 3339 time beaker printed.
fn secs(rfc: &str) -> u64 {
    beaker::who::parse_rfc3339(rfc).expect("RFC 3339")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// a, b, c of 1000 bytes each, used 3, 1 and 2 days ago.
fn three_models(env: &Env) -> [String; 3] {
    let hexes = ["a", "b", "c"].map(|n| add(env, n, &bytes(1000, n.as_bytes()[0] as u64)));
    used(&env.store, "a", 3 * DAY);
    used(&env.store, "b", DAY);
    used(&env.store, "c", 2 * DAY);
    hexes
}

#[test]
fn gc_max_size_evicts_least_recently_used_first_and_dry_run_reports_the_same() {
    let env = Env::new();
    let [a, _b, c] = three_models(&env);
    let dry: EvictGc = env
        .run(&["--json", "store", "gc", "--max-size", "1000", "--dry-run"])
        .json();
    assert!(dry.dry_run);
    assert_eq!(names(&dry.evicted), ["a", "c"]);
    assert_eq!(held(&env), ["a", "b", "c"], "a dry run removes nothing");
    assert_eq!(env.blob_names().len(), 3);

    let out: EvictGc = env
        .run(&["--json", "store", "gc", "--max-size", "1000"])
        .json();
    assert_eq!(names(&out.evicted), ["a", "c"]);
    assert_eq!(out.evicted[0].blake3, a);
    assert_eq!(out.evicted[0].size, 1000);
    let last = secs(out.evicted[0].last_used.as_deref().unwrap());
    assert!(now().abs_diff(last + 3 * 86_400) < 60, "{out:?}");
    assert_eq!(set_of(&out.removed_blobs), set_of(&[a, c]));
    assert_eq!(out.removed_blobs, dry.removed_blobs);
    assert_eq!((out.freed_bytes, out.over_budget), (2000, 0));
    assert_eq!(out.remaining_bytes, Some(1000));
    assert_eq!(held(&env), ["b"]);
    env.run(&["store", "path", "b"]).ok();
    env.run(&["store", "path", "a"])
        .fails(3, &["not in the store"]);
    // Their use records went with them.
    assert_eq!(list_names(&env.store.join("uses")), ["b"]);
}

#[test]
fn gc_older_than_evicts_only_names_unused_for_longer() {
    let env = Env::new();
    three_models(&env);
    let out: EvictGc = env
        .run(&["--json", "store", "gc", "--older-than", "36h"])
        .json();
    assert_eq!(names(&out.evicted), ["a", "c"]);
    assert_eq!(held(&env), ["b"]);
    let text = env.run(&["store", "gc", "--older-than", "12h"]).ok();
    assert!(text.contains("freed"), "{text}");
    assert!(held(&env).is_empty());
}

#[test]
fn pinned_names_survive_any_budget_and_unpin_lets_them_go() {
    let env = Env::new();
    three_models(&env);
    env.run(&["store", "pin", "a"]).ok();
    let rows = ls(&env);
    assert!(rows[0].pinned && !rows[1].pinned, "{rows:?}");
    let out: EvictGc = env
        .run(&[
            "--json",
            "store",
            "gc",
            "--max-size",
            "1",
            "--older-than",
            "0s",
        ])
        .json();
    assert_eq!(names(&out.evicted), ["c", "b"]);
    assert_eq!(out.spared_pinned, ["a"]);
    assert_eq!(out.over_budget, 999);
    assert_eq!(held(&env), ["a"]);
    env.run(&["store", "unpin", "a"]).ok();
    env.run(&["store", "gc", "--max-size", "1"]).ok();
    assert!(held(&env).is_empty());
    assert!(env.blob_names().is_empty());
}

#[test]
fn pin_of_an_absent_name_exits_3_and_pins_nothing() {
    let env = Env::new();
    add(&env, "here", b"here");
    env.run(&["store", "pin", "here", "absent"])
        .fails(3, &["absent", "nothing was pinned"]);
    assert!(list_names(&env.store.join("pins")).is_empty());
    env.run(&["store", "pin", "Bad!"]).fails(2, &["Bad!"]);
    let empty = Env::new();
    empty.run(&["store", "pin", "x"]).fails(3, &["x"]);
}

#[test]
fn a_model_in_use_is_never_evicted_and_gc_says_the_budget_could_not_be_met() {
    let env = Env::new();
    add(&env, "busy", &bytes(1000, 1));
    add(&env, "idle", &bytes(1000, 2));
    used(&env.store, "busy", 2 * DAY);
    used(&env.store, "idle", DAY);
    // A path handed out now: busy is in use for the next hour.
    env.run(&["store", "path", "busy"]).ok();
    let run = env.run(&["store", "gc", "--max-size", "1"]);
    let text = run.ok();
    assert!(run.stdout.contains("evicted idle"), "{run:?}");
    assert!(
        run.stdout.contains("could not be met") && run.stdout.contains("busy"),
        "{run:?}"
    );
    assert!(text.contains("freed"), "{text}");
    assert_eq!(held(&env), ["busy"]);
    let out: EvictGc = env
        .run(&["--json", "store", "gc", "--max-size", "1"])
        .json();
    assert!(out.evicted.is_empty());
    assert_eq!(
        (out.spared_in_use, out.over_budget),
        (vec!["busy".to_owned()], 999)
    );
    // --min-age decides what "in use" means.
    let out: EvictGc = env
        .run(&[
            "--json",
            "store",
            "gc",
            "--max-size",
            "1",
            "--min-age",
            "0s",
        ])
        .json();
    assert_eq!(names(&out.evicted), ["busy"]);
}

/// Moves `name`'s use record `by` into the past: the same, for eviction, as `by` passing (the
/// test helper that stands in for waiting).
fn time_passes(store: &Path, name: &str, by: Duration) {
    let key = name.replace('/', "+");
    let at = std::fs::metadata(store.join("uses").join(key))
        .and_then(|m| m.modified())
        .expect("use record");
    let store = beaker::Store::open(store).expect("open store");
    let name = beaker::ModelName::new(name).expect("name");
    beaker::uses::set_last_used(&store, &name, at - by).expect("set last use");
}

/// [trust] 7: "in use" protects a model just handed out, whatever the interval at which use
/// records are rewritten: a model handed out less than `min_age` ago is never evicted.
#[test]
fn a_model_handed_out_less_than_min_age_ago_is_never_evicted() {
    let env = Env::new();
    add(&env, "m", &bytes(1000, 7));
    let spared = |min_age: Option<&str>| -> bool {
        let mut args = vec!["--json", "store", "gc", "--max-size", "1"];
        if let Some(m) = min_age {
            args.extend(["--min-age", m]);
        }
        let out: EvictGc = env.run(&args).json();
        out.evicted.is_empty() && out.spared_in_use == ["m"]
    };
    // Last recorded 59 minutes ago; `path` hands it out now; 61 seconds pass. With the default
    // min_age (1h) it is in use (it was evicted here: the record was not rewritten within the
    // hour, so it looked 60 minutes old).
    used(&env.store, "m", Duration::from_secs(59 * 60));
    env.run(&["store", "path", "m"]).ok();
    time_passes(&env.store, "m", Duration::from_secs(61));
    assert!(spared(None), "evicted 61 s after it was handed out");
    // The same with --min-age 10m, handed out seconds ago.
    used(&env.store, "m", Duration::from_secs(30 * 60));
    env.run(&["store", "path", "m"]).ok();
    time_passes(&env.store, "m", Duration::from_secs(5));
    assert!(spared(Some("10m")), "evicted 5 s after it was handed out");
    // A record recent enough that `path` need not rewrite it: the hand-out may be later than the
    // record says, so even a 2 s min_age keeps the model.
    used(&env.store, "m", Duration::from_secs(30));
    env.run(&["store", "path", "m"]).ok();
    assert!(spared(Some("2s")), "evicted right after it was handed out");
    // Not handed out for two hours: it goes, with a short min_age or the default.
    used(&env.store, "m", 2 * Duration::from_secs(3600));
    assert!(!spared(Some("2s")));
    assert!(held(&env).is_empty());
}

#[test]
fn store_path_records_a_use_at_most_once_a_minute() {
    let env = Env::new();
    add(&env, "m", b"model");
    let added = secs(ls(&env)[0].last_used.as_deref().unwrap());
    assert!(now().abs_diff(added) < 60, "adding counts as a use");
    used(&env.store, "m", Duration::from_secs(30));
    env.run(&["store", "path", "m"]).ok();
    let t = secs(ls(&env)[0].last_used.as_deref().unwrap());
    assert!(now().abs_diff(t + 30) < 5, "no write within the minute");
    used(&env.store, "m", Duration::from_secs(2 * 60));
    env.run(&["store", "path", "m"]).ok();
    let t = secs(ls(&env)[0].last_used.as_deref().unwrap());
    assert!(now().abs_diff(t) < 5, "recorded again after a minute");
    let text = env.run(&["store", "ls"]).stdout;
    assert!(
        text.contains("LAST USED") && text.contains("PINNED"),
        "{text}"
    );
}

#[test]
fn a_pull_that_finds_the_model_present_records_a_use() {
    let env = Env::new();
    let body = bytes(2000, 9);
    let src = env.file("src/m.bin", &body);
    let cat = crate::pull::catalogue(&env, &[("m", &body, vec![file_url(&src)])]);
    crate::pull::pull(&env, &cat, &["m"]).ok();
    used(&env.store, "m", 3 * DAY);
    crate::pull::pull(&env, &cat, &["m", "--offline"]).ok();
    let t = secs(ls(&env)[0].last_used.as_deref().unwrap());
    assert!(now().abs_diff(t) < 60);
}

#[test]
fn max_size_in_store_toml_evicts_after_each_pull_and_spares_the_model_just_pulled() {
    let env = Env::new();
    let models: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("m{i}"), bytes(1000, 40 + i)))
        .collect();
    let srcs: Vec<_> = models
        .iter()
        .map(|(n, b)| env.file(&format!("src/{n}"), b))
        .collect();
    let entries: Vec<(&str, &[u8], Vec<String>)> = models
        .iter()
        .zip(&srcs)
        .map(|((n, b), s)| (n.as_str(), b.as_slice(), vec![file_url(s)]))
        .collect();
    let cat = crate::pull::catalogue(&env, &entries);
    env.run(&["store", "init"]).ok();
    let toml = env.store.join("store.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        format!("{text}max_size = \"2500\"\nmin_age = \"10m\"\n"),
    )
    .unwrap();
    for (i, (name, _)) in models.iter().enumerate() {
        crate::pull::pull(&env, &cat, &[name]).ok();
        // Everything pulled so far is old, except what the next pull must keep.
        used(&env.store, name, DAY * (10 - i as u32));
    }
    // m0 and m1 went (least recently used); m3 was just pulled; the store is within budget.
    assert_eq!(held(&env), ["m2", "m3"]);
    assert_eq!(env.blob_names().len(), 2);
    let info: serde_json::Value = env.run(&["--json", "store", "info"]).json();
    assert_eq!(info["max_size"], 2500);
    assert_eq!(info["min_age_secs"], 600);
    assert!(info["blobs"]["bytes"].as_u64().unwrap() <= 2500, "{info}");
    let text = env.run(&["store", "info"]).stdout;
    assert!(text.contains("80% full"), "{text}");
    // A model in use is not evicted even to meet the budget: the store may stay over it.
    used(&env.store, "m2", Duration::from_secs(60));
    used(&env.store, "m3", Duration::from_secs(60));
    crate::pull::pull(&env, &cat, &["m0"]).ok();
    assert_eq!(held(&env), ["m0", "m2", "m3"]);
    // store.toml's min_age (10m) is gc's default too: used 20 minutes ago is no longer in use
    // (the built-in default of 1h would spare it).
    used(&env.store, "m2", Duration::from_secs(20 * 60));
    let out: EvictGc = env
        .run(&["--json", "store", "gc", "--max-size", "2500"])
        .json();
    assert_eq!(names(&out.evicted), ["m2"]);
    assert_eq!(held(&env), ["m0", "m3"]);
}

#[test]
fn a_budget_that_is_not_a_size_is_bad_input() {
    let env = Env::new();
    add(&env, "m", b"m");
    for bad in ["0", "-1G", "12 parsecs"] {
        env.run(&["store", "gc", &format!("--max-size={bad}")])
            .fails(2, &["is not a size"]);
    }
    env.run(&["store", "gc", "--older-than=-1d"])
        .fails(2, &["is not a duration"]);
    env.run(&["store", "gc", "--min-age", "soon"])
        .fails(2, &["is not a duration"]);
    assert_eq!(held(&env), ["m"]);
    let toml = env.store.join("store.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let line = text.lines().count() + 1;
    std::fs::write(&toml, format!("{text}max_size = \"12 parsecs\"\n")).unwrap();
    env.run(&["store", "ls"]).fails(
        2,
        &[&format!("{}:{line}:", toml.display()), "is not a size"],
    );
}

fn set_of(v: &[String]) -> std::collections::BTreeSet<String> {
    v.iter().cloned().collect()
}
