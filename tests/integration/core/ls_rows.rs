//! `store ls` makes its rows from one listing of `blobs/` and of `uses/` (issue 14, P8): what it
//! says of each name must stay what `path` and the use records say, with few names (read on one
//! core) and with many (read by several threads, each looking up a shared blob once).

use std::collections::BTreeMap;

use crate::support::*;

/// What `ls --json` shows of a name.
#[derive(Debug)]
struct Row {
    present: bool,
    last_used: Option<String>,
    added: Option<String>,
}

fn ls(env: &Env) -> BTreeMap<String, Row> {
    let rows: Vec<serde_json::Value> = env.run(&["--json", "store", "ls"]).json();
    rows.iter()
        .map(|r| {
            let text = |key: &str| r[key].as_str().map(str::to_owned);
            let row = Row {
                present: r["present"].as_bool().unwrap(),
                last_used: text("last_used"),
                added: text("added"),
            };
            (text("name").unwrap(), row)
        })
        .collect()
}

fn add(env: &Env, path: &std::path::Path, name: &str) {
    env.run(&["store", "add", path.to_str().unwrap(), "--name", name])
        .ok();
}

fn blob(env: &Env, bytes: &[u8]) -> std::path::PathBuf {
    env.store.join("blobs").join(blake3_hex(bytes))
}

// Unix only: a planted symlink (wine makes none).
#[cfg(unix)]
#[test]
fn ls_says_present_only_when_every_blob_is_there_with_its_size_with_few_or_many_names() {
    let env = Env::new();
    let shared = bytes(2_000, 1);
    add(&env, &env.file("shared", &shared), "shared-a");
    add(&env, &env.file("shared", &shared), "shared-b");
    let (gone, short, linked) = (bytes(2_000, 2), bytes(2_000, 3), bytes(2_000, 4));
    add(&env, &env.file("gone", &gone), "gone");
    add(&env, &env.file("short", &short), "short");
    add(&env, &env.file("linked", &linked), "linked");
    // 4096 bytes: the size of an empty directory on ext4, so only its type tells it apart.
    let dir = bytes(4_096, 9);
    add(&env, &env.file("dir", &dir), "dir");
    env.file("whole/net.onnx", &bytes(1_000, 5));
    env.file("whole/weights.bin", &bytes(3_000, 6));
    add(&env, &env.path("whole"), "bundle-whole");
    let lost = bytes(3_000, 8);
    env.file("half/net.onnx", &bytes(1_000, 7));
    env.file("half/weights.bin", &lost);
    add(&env, &env.path("half"), "bundle-half");

    // Damage the store by hand: a blob removed, one truncated, one replaced by a symlink to a
    // file with its bytes, one by a directory, one file of a model of two removed; and a record
    // that says another size for the shared blob.
    remove(blob(&env, &gone));
    remove(blob(&env, &short));
    std::fs::write(blob(&env, &short), &short[..1_000]).unwrap();
    let elsewhere = env.file("elsewhere", &linked);
    remove(blob(&env, &linked));
    std::os::unix::fs::symlink(&elsewhere, blob(&env, &linked)).unwrap();
    remove(blob(&env, &lost));
    remove(blob(&env, &dir));
    std::fs::create_dir(blob(&env, &dir)).unwrap();
    let record = env.store.join("names/shared-b.toml");
    let text = std::fs::read_to_string(&record).unwrap();
    std::fs::write(&record, text.replace("size = 2000", "size = 2001")).unwrap();

    // Last use: shared-a's record dated by hand; gone has none (so: when it was added).
    let day = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_767_323_045);
    std::fs::File::options()
        .write(true)
        .open(env.store.join("uses/shared-a"))
        .unwrap()
        .set_modified(day)
        .unwrap();
    remove(env.store.join("uses/gone"));

    let expected = |rows: &BTreeMap<String, Row>| {
        for (name, present) in [
            ("shared-a", true),
            ("shared-b", false),
            ("gone", false),
            ("short", false),
            ("linked", false),
            ("dir", false),
            ("bundle-whole", true),
            ("bundle-half", false),
        ] {
            assert_eq!(rows[name].present, present, "{name}: {rows:?}");
        }
        let shared_a = &rows["shared-a"];
        assert_eq!(shared_a.last_used.as_deref(), Some("2026-01-02T03:04:05Z"));
        assert!(rows["gone"].added.is_some());
        assert_eq!(rows["gone"].last_used, rows["gone"].added);
    };
    let few = ls(&env);
    assert_eq!(few.len(), 8);
    expected(&few);
    // `path` agrees on each damaged name.
    for name in ["gone", "short", "linked", "dir", "bundle-half"] {
        assert_ne!(env.run(&["store", "path", name]).code, 0, "{name}");
    }

    // Enough names that the records are read by several threads: copies of shared-a's record (its
    // blob present) and of gone's (its blob absent) under new names.
    let a = std::fs::read_to_string(env.store.join("names/shared-a.toml")).unwrap();
    let g = std::fs::read_to_string(env.store.join("names/gone.toml")).unwrap();
    for i in 0..300 {
        let (from, text) = if i % 2 == 0 {
            ("shared-a", &a)
        } else {
            ("gone", &g)
        };
        let name = format!("copy-{i:03}");
        std::fs::write(
            env.store.join(format!("names/{name}.toml")),
            text.replace(&format!("[models.{from}]"), &format!("[models.{name}]")),
        )
        .unwrap();
    }
    let many = ls(&env);
    assert_eq!(many.len(), 308);
    expected(&many);
    for i in 0..300 {
        let name = format!("copy-{i:03}");
        assert_eq!(many[&name].present, i % 2 == 0, "{name}");
    }
}

#[test]
fn the_ls_table_has_every_name_once_in_order_when_its_lines_are_made_on_every_core() {
    let env = Env::new();
    add(&env, &env.file("seed", b"seed"), "seed");
    let text = std::fs::read_to_string(env.store.join("names/seed.toml")).unwrap();
    // More names than one core formats (2,048), in an order readdir will not keep, with one long
    // name so every line is padded to it.
    let mut names = vec!["seed".to_owned(), format!("z/{}", "w".repeat(40))];
    names.extend((0..2_500).map(|i| format!("n{}", (i * 7_919) % 10_007)));
    for name in &names[1..] {
        let key = name.replace('/', "+");
        std::fs::write(
            env.store.join(format!("names/{key}.toml")),
            text.replace("[models.seed]", &format!("[models.\"{name}\"]")),
        )
        .unwrap();
    }
    names.sort();
    let json: Vec<serde_json::Value> = env.run(&["--json", "store", "ls"]).json();
    let listed: Vec<&str> = json.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(listed, names);
    for args in [&["store", "ls"][..], &["store", "ls", "--long"][..]] {
        let run = env.run(args);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert!(lines[0].starts_with(&format!("NAME{}  BLAKE3", " ".repeat(38))));
        let shown: Vec<&str> = lines[1..]
            .iter()
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(shown, names, "{args:?}");
        let blake3 = &blake3_hex(b"seed")[..12];
        for line in &lines[1..] {
            assert_eq!(&line[44..56], blake3, "{line}");
            assert_eq!(&line[70..73], "yes", "{line}");
        }
    }
}
