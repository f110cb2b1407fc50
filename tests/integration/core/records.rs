//! Store format 3: the store manifest as one record per name (`names/<key>.toml`). A store made
//! by a format-2 beaker (one `manifest.toml`) is upgraded in place by the first writer, and every
//! command reads it the same before and after; an add writes its own record and no other.

use crate::support::*;

/// Turns the format-3 store of `env` back into what a format-2 beaker leaves: every name in one
/// `manifest.toml`, no `names/`, `format = 2`.
fn downgrade_to_format_2(env: &Env) {
    let store = beaker::Store::open(&env.store).unwrap();
    let all = store.read_manifest().unwrap();
    std::fs::write(env.store.join("manifest.toml"), all.to_toml().unwrap()).unwrap();
    remove_all(env.store.join("names"));
    std::fs::write(
        env.store.join("store.toml"),
        "format = 2\nmode = \"private\"\nlocking = \"flock\"\n",
    )
    .unwrap();
}

#[test]
fn a_format_2_store_is_upgraded_to_records_by_its_first_writer_and_keeps_every_name() {
    let env = Env::new();
    let a = env.file("a.onnx", b"model a");
    let b = env.file("b.bin", b"model b");
    env.run(&["store", "add", a.to_str().unwrap(), "--name", "a"])
        .ok();
    env.run(&["store", "add", b.to_str().unwrap(), "--name", "org/b"])
        .ok();
    let path_a = env.run(&["store", "path", "a"]).ok();
    downgrade_to_format_2(&env);

    // The first command that opens it with write access upgrades it, and sees both names.
    let ls: serde_json::Value = env.run(&["--json", "store", "ls"]).json();
    let names: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "org/b"]);
    assert!(std::fs::read_to_string(env.store.join("store.toml"))
        .unwrap()
        .contains("format = 4"));
    assert!(!env.store.join("manifest.toml").exists());
    assert_eq!(
        list_names(&env.store.join("names")),
        ["a.toml", "org+b.toml"]
    );
    assert_eq!(env.run(&["store", "path", "a"]).ok(), path_a);
    // rm removes the record; gc keeps what the other name references.
    env.run(&["store", "rm", "a"]).ok();
    assert_eq!(list_names(&env.store.join("names")), ["org+b.toml"]);
    env.run(&["store", "gc"]).ok();
    assert_eq!(env.blob_names(), [blake3_hex(b"model b")]);
    env.run(&["store", "verify"]).ok();
}

#[test]
fn an_add_rewrites_only_its_own_record() {
    let env = Env::new();
    let a = env.file("a", b"first");
    let b = env.file("b", b"second");
    env.run(&["store", "add", a.to_str().unwrap(), "--name", "a"])
        .ok();
    let record = env.store.join("names/a.toml");
    let before = std::fs::read(&record).unwrap();
    let inode = |p: &std::path::Path| crate::support::file_id(p);
    let ino = inode(&record);
    env.run(&["store", "add", b.to_str().unwrap(), "--name", "b"])
        .ok();
    assert_eq!(inode(&record), ino, "adding b rewrote a's record");
    assert_eq!(std::fs::read(&record).unwrap(), before);
    let text = String::from_utf8(before).unwrap();
    assert!(
        text.contains("[models.a]") && text.contains(&blake3_hex(b"first")),
        "{text}"
    );
    assert!(!env.store.join("manifest.toml").exists());
}
