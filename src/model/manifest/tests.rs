//! Every validation rule of docs/design.md#manifest-format has a failing example here, with the message it must give.

use super::*;
use proptest::prelude::*;

const H: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(text, Path::new("cat.toml"))
}

/// Asserts that `text` fails at `line:column` with a message containing `needle`.
fn fails_at(text: &str, line: usize, column: usize, needle: &str) {
    let err = parse(text).expect_err("manifest should be rejected");
    let shown = err.to_string();
    match err {
        ManifestError::Invalid {
            line: l,
            column: c,
            ref message,
            ..
        } => {
            assert!(
                message.contains(needle),
                "{shown:?} should contain {needle:?}"
            );
            assert_eq!((l, c), (line, column), "wrong place in {shown:?}");
            assert!(
                shown.starts_with(&format!("cat.toml:{line}:{column}: ")),
                "{shown}"
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn parses_a_full_entry() {
    let m = parse(&format!(
        r#"version = 1

[models.bird-detector]
blake3 = "{H}"
size = 40
urls = ["https://example.org/a.onnx", "mirror/a.onnx"]
format = "onnx"
description = "RF-DETR"
md5 = "f1e20fe90da342a7529c89f4d39b7ff9"

[models."org/x.y"]
md5 = "f1e20fe90da342a7529c89f4d39b7ff9"
urls = ["file:///srv/x"]
"#
    ))
    .unwrap();
    let e = &m.models[&ModelName::new("bird-detector").unwrap()];
    assert_eq!(e.files().len(), 1);
    let f = e.main();
    assert_eq!(f.blob.blake3().unwrap().to_hex(), H);
    assert_eq!(f.blob.size(), Some(40));
    assert_eq!(f.urls.len(), 2);
    assert_eq!(f.path.as_str(), "a.onnx");
    assert_eq!(e.format, Some(Format::Onnx));
    assert_eq!(e.description.as_deref(), Some("RF-DETR"));
    assert!(f.upstream.md5.is_some() && f.upstream.sha256.is_none());
    let upstream = m.models[&ModelName::new("org/x.y").unwrap()].main();
    assert_eq!(upstream.blob, Expected::Unpinned { size: None });
    assert_eq!(upstream.path.as_str(), "x");
}

#[test]
fn empty_manifest_is_valid() {
    assert!(parse("version = 1\n").unwrap().models.is_empty());
}

#[test]
fn bad_hash() {
    fails_at(
        "version = 1\n[models.a]\nblake3 = \"abc\"\nsize = 1\n",
        3,
        10,
        "a blake3 digest is 64 hex characters, this one has 3",
    );
    fails_at(
        &format!(
            "version = 1\n[models.a]\nblake3 = \"{}\"\nsize = 1\n",
            H.to_uppercase()
        ),
        3,
        10,
        "lowercase hex",
    );
}

#[test]
fn bad_name() {
    fails_at(
        &format!("version = 1\n[models.Bird]\nblake3 = \"{H}\"\nsize = 1\n"),
        2,
        9,
        "model name \"Bird\" contains 'B'",
    );
}

#[test]
fn dot_dot_in_name() {
    fails_at(
        &format!("version = 1\n[models.\"../etc\"]\nblake3 = \"{H}\"\nsize = 1\n"),
        2,
        9,
        "contains '..'",
    );
}

#[test]
fn unknown_key() {
    fails_at(
        &format!("version = 1\n[models.a]\nblake3 = \"{H}\"\nsize = 1\nurl = \"x\"\n"),
        5,
        1,
        "unknown field `url`",
    );
    fails_at("version = 1\nmodel = 3\n", 2, 1, "unknown field `model`");
}

#[test]
fn missing_size() {
    fails_at(
        &format!("version = 1\n\n[models.a]\nblake3 = \"{H}\"\n"),
        3,
        9,
        "model a has no size",
    );
}

#[test]
fn missing_digest() {
    fails_at(
        "version = 1\n[models.a]\nsize = 3\n",
        2,
        9,
        "model a has no digest",
    );
}

#[test]
fn wrong_or_missing_version() {
    fails_at("version = 2\n", 1, 11, "version 2 is newer");
    fails_at("version = 0\n", 1, 11, "unsupported manifest version 0");
    fails_at("version = \"1\"\n", 1, 11, "unsupported manifest version");
    fails_at("[models]\n", 1, 1, "missing `version = 1`");
}

#[test]
fn negative_size_and_bad_url() {
    fails_at(
        &format!("version = 1\n[models.a]\nblake3 = \"{H}\"\nsize = -1\n"),
        4,
        8,
        "invalid value",
    );
    fails_at(
        &format!("version = 1\n[models.a]\nblake3 = \"{H}\"\nsize = 1\nurls = [\"ftp://x/y\"]\n"),
        5,
        10,
        "unsupported scheme \"ftp\"",
    );
}

#[test]
fn data_and_javascript_urls_and_bad_ports_are_refused_at_the_url() {
    for (url, needle) in [
        ("data:text/plain,x", "unsupported scheme \"data\""),
        ("javascript:alert(1)", "unsupported scheme \"javascript\""),
        (
            "http://h:70000/m",
            "port \"70000\" is not a number from 1 to 65535",
        ),
        ("http://h:0/m", "port \"0\""),
    ] {
        fails_at(
            &format!(
                "version = 1\n[models.a]\nblake3 = \"{H}\"\nsize = 1\nurls = [\"ok.onnx\", \"{url}\"]\n"
            ),
            5,
            21,
            needle,
        );
    }
}

#[test]
fn syntax_error_has_position() {
    fails_at(
        "version = 1\n[models.a\n",
        2,
        10,
        "invalid table header; expected",
    );
}

#[test]
fn multibyte_text_before_error_counts_characters() {
    fails_at(
        "version = 1\n[models.a]\ndescription = \"é\"\nblake3 = \"zz\"\nsize = 1\n",
        4,
        10,
        "blake3",
    );
}

fn arb_entry() -> impl Strategy<Value = RawEntry> {
    (
        proptest::option::of(proptest::array::uniform32(any::<u8>())),
        0..=i64::MAX as u64,
        proptest::collection::vec("[a-z]{1,8}/[a-z]{1,8}\\.onnx", 0..3),
        proptest::option::of(prop_oneof![Just(Format::Onnx), Just(Format::Other)]),
        proptest::option::of("\\PC{0,30}"),
        proptest::option::of(proptest::array::uniform16(any::<u8>())),
        any::<bool>(),
    )
        .prop_map(|(b3, size, urls, format, description, md5, check)| {
            let md5 = match (b3, md5) {
                (None, None) => Some([7u8; 16]),
                (_, m) => m,
            };
            RawEntry {
                blake3: b3.map(Blake3::from_bytes),
                size: Some(size),
                urls,
                format,
                description,
                sha256: None,
                md5: md5.map(Md5::from_bytes),
                check,
                ..RawEntry::default()
            }
        })
}

/// A model of several files (docs/design.md#snapshots), with distinct paths and maybe a `main`.
fn arb_bundle() -> impl Strategy<Value = RawEntry> {
    (
        proptest::collection::btree_map(
            "[a-z]{1,6}(/[a-z.]{1,6})?",
            (proptest::array::uniform32(any::<u8>()), 0..=i64::MAX as u64),
            1..4,
        ),
        any::<bool>(),
    )
        .prop_filter_map("a file inside another file", |(files, with_main)| {
            let files: Vec<RawFile> = files
                .into_iter()
                .map(|(path, (b3, size))| {
                    Some(RawFile {
                        path: FilePath::new_portable(&path).ok()?,
                        blake3: Some(Blake3::from_bytes(b3)),
                        size: Some(size),
                        urls: vec![format!("https://h/{path}")],
                        sha256: None,
                        md5: None,
                    })
                })
                .collect::<Option<_>>()?;
            let clash = files.iter().any(|f| {
                f.path
                    .parents()
                    .iter()
                    .any(|p| files.iter().any(|g| &g.path == p))
            });
            (!clash).then(|| RawEntry {
                main: with_main.then(|| files[files.len() - 1].path.clone()),
                files: Some(files),
                ..RawEntry::default()
            })
        })
}

proptest! {
    #[test]
    fn serialize_parse_round_trips(
        entries in proptest::collection::btree_map(
            "[a-z0-9_][a-z0-9._-]{0,12}(/[a-z0-9_][a-z0-9_-]{0,8})?",
            prop_oneof![arb_entry(), arb_bundle()],
            0..5)
    ) {
        let raw: BTreeMap<ModelName, RawEntry> = entries
            .into_iter()
            .filter_map(|(k, v)| ModelName::new(&k).ok().map(|n| (n, v)))
            .collect();
        let mut models = BTreeMap::new();
        for (name, r) in &raw {
            let model = Model::from_raw(name, r.clone())
                .map_err(|p| TestCaseError::fail(format!("{p:?}\n{r:?}")))?;
            // Written back, a model is the table it was read from.
            prop_assert_eq!(&model.to_raw(), r);
            models.insert(name.clone(), model);
        }
        let m = Manifest { models };
        let text = m.to_toml().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back, m);
    }
}

#[test]
fn size_beyond_toml_integers_is_an_error_not_a_panic() {
    let name = ModelName::new("huge").unwrap();
    let huge = Single {
        blob: Expected::Pinned(Pin {
            blake3: Blake3::of(b""),
            size: u64::MAX,
        }),
        ..Single::default()
    };
    let mut m = Manifest::default();
    m.models.insert(name.clone(), Model::single(&name, huge));
    assert!(m.to_toml().is_err());
}

proptest! {
    /// Whatever bytes a catalogue holds, parsing returns a value or an error with a position; it
    /// never panics (multi-byte text, odd offsets and all).
    #[test]
    fn parse_never_panics(text in "\\PC{0,200}") {
        if let Err(ManifestError::Invalid { line, column, .. }) = parse(&text) {
            prop_assert!(line >= 1 && column >= 1);
        }
    }

    /// Near-misses of a valid manifest: each mutation parses or fails with a position.
    #[test]
    fn mutated_manifests_never_panic(cut in 0usize..120, insert in "[\\[\\]=\"a-z0-9 \\n.é]{0,6}") {
        let good = format!("version = 1\n[models.a]\nblake3 = \"{H}\"\nsize = 1\nurls = [\"x\"]\n");
        let mut text = good.clone();
        let mut at = cut.min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.insert_str(at, &insert);
        let _ = parse(&text);
    }
}

fn bundle(files: &str) -> String {
    format!("version = 1\n[models.m]\nformat = \"onnx\"\n{files}")
}

fn file(path: &str) -> String {
    format!("[[models.m.files]]\npath = {path:?}\nblake3 = \"{H}\"\nsize = 1\n")
}

#[test]
fn parses_a_model_of_several_files_with_main() {
    let text = bundle(&format!(
        "main = \"model.onnx\"\n{}{}",
        file("model.onnx.data"),
        file("model.onnx")
    ));
    let m = parse(&text).unwrap();
    let e = &m.models[&ModelName::new("m").unwrap()];
    assert_eq!(e.files().len(), 2);
    assert_eq!(e.files()[0].path.as_str(), "model.onnx.data");
    assert_eq!(e.main().path.as_str(), "model.onnx");
    assert!(e.single_file().is_none());
}

#[test]
fn bad_file_paths_are_refused_with_their_line() {
    for bad in ["../x", "/etc/passwd", "a//b", ""] {
        let text = bundle(&file(bad));
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.starts_with("cat.toml:5:"), "{bad:?}: {err}");
        assert!(err.contains("file path"), "{bad:?}: {err}");
    }
}

#[test]
fn a_bundle_needs_distinct_files_and_at_least_one() {
    fails_at(&bundle("files = []\n"), 2, 9, "empty `files` list");
    fails_at(
        &bundle(&format!("{}{}", file("a.onnx"), file("a.onnx"))),
        2,
        9,
        "lists the file a.onnx twice",
    );
    fails_at(
        &bundle(&format!("{}{}", file("a"), file("a/b"))),
        2,
        9,
        "a path cannot be both",
    );
    fails_at(
        &bundle(&format!("main = \"b.onnx\"\n{}", file("a.onnx"))),
        2,
        9,
        "is not one of its files",
    );
    fails_at(
        &bundle(&format!("size = 3\n{}", file("a.onnx"))),
        2,
        9,
        "belong to each file",
    );
}

#[test]
fn check_is_an_optional_boolean_written_only_when_true() {
    let m = parse(&format!(
        "version = 1\n[models.a]\nblake3 = \"{H}\"\nsize = 0\nformat = \"onnx\"\ncheck = true\n"
    ))
    .unwrap();
    let a = &m.models[&ModelName::new("a").unwrap()];
    assert!(a.check);
    assert!(m.to_toml().unwrap().contains("check = true"));
    let plain = parse(&format!(
        "version = 1\n[models.a]\nblake3 = \"{H}\"\nsize = 0\n"
    ))
    .unwrap();
    let a = &plain.models[&ModelName::new("a").unwrap()];
    assert!(!a.check);
    assert!(!plain.to_toml().unwrap().contains("check"));
    fails_at(
        &format!("version = 1\n[models.a]\nblake3 = \"{H}\"\nsize = 0\ncheck = \"yes\"\n"),
        5,
        9,
        "bool",
    );
}

#[test]
fn serde_messages_name_the_tables_as_they_always_did() {
    fails_at(
        "version = 1\n[models]\nm = 3\n",
        3,
        5,
        "expected struct Entry",
    );
    fails_at(
        "version = 1\n[models.m]\nfiles = [1]\n",
        3,
        10,
        "expected struct FileEntry",
    );
}

#[test]
fn a_record_pins_every_file_and_a_catalogue_need_not() {
    let upstream = "version = 1\n[models.m]\nmd5 = \"f1e20fe90da342a7529c89f4d39b7ff9\"\n";
    let listed = format!(
        "version = 1\n\n[models.m]\n{}[[models.m.files]]\npath = \"b\"\nsha256 = \"{H}\"\n",
        file("a")
    );
    assert!(parse(upstream).is_ok());
    assert!(parse(&listed).is_ok());
    let record = |text: &str| {
        let e = Manifest::<Record>::parse(text, Path::new("r.toml")).unwrap_err();
        e.to_string()
    };
    assert_eq!(
        record(upstream),
        "r.toml:2:9: model m has no blake3: a store records a model only with every file pinned by its BLAKE3 and size; remove the entry (a record in names/ is the whole file), then pull or add the model again"
    );
    assert!(
        record(&listed).starts_with("r.toml:3:9: model m, file b has no blake3: "),
        "{}",
        record(&listed)
    );
}

#[test]
fn a_record_reads_back_as_it_was_written_and_a_catalogue_leaves_out_added_and_tree() {
    let text = format!(
        "version = 1\n\n[models.m]\nblake3 = \"{H}\"\nsize = 3\nurls = [\"https://h/m.onnx\"]\nmd5 = \"f1e20fe90da342a7529c89f4d39b7ff9\"\nadded = \"2026-01-02T03:04:05Z\"\ntree = \"{H}\"\n"
    );
    let records = Manifest::<Record>::parse(&text, Path::new("r.toml")).unwrap();
    let r = &records.models[&ModelName::new("m").unwrap()];
    assert_eq!(r.added.as_deref(), Some("2026-01-02T03:04:05Z"));
    assert_eq!(r.tree.map(|t| t.to_hex()).as_deref(), Some(H));
    // Its file is named by its URL, and written back without `file`, as it was read.
    assert_eq!(r.model.main().path.as_str(), "m.onnx");
    assert_eq!(records.to_toml().unwrap(), text);
    let catalogue = parse(&text).unwrap();
    let raw = catalogue.models[&ModelName::new("m").unwrap()].to_raw();
    assert_eq!((raw.added, raw.tree), (None, None));
    assert_eq!(raw.blake3.map(|b| b.to_hex()).as_deref(), Some(H));
}

#[test]
fn a_catalogue_names_only_files_windows_can_hold_but_an_old_record_still_reads() {
    let entry = |path: &str| {
        format!("version = 1\n[models.m]\n[[models.m.files]]\npath = \"{path}\"\nblake3 = \"{H}\"\nsize = 1\nurls = [\"https://h/m\"]\n")
    };
    for path in ["CON", "w/nul.bin", "a:b.onnx", "trailing."] {
        let e = parse(&entry(path)).unwrap_err().to_string();
        // (On Windows the path itself is refused where it is read, at its own line.)
        let at = if cfg!(windows) {
            "cat.toml:4:8: file path"
        } else {
            "cat.toml:2:9: model m: file path"
        };
        assert!(e.starts_with(at) && e.contains("Windows"), "{path}: {e}");
    }
    assert!(parse(&entry("console.onnx")).is_ok());
    // A store's record of such a name (an earlier beaker wrote it on Linux) still reads there.
    let record = Manifest::<Record>::parse(&entry("a:b.onnx"), Path::new("names/m.toml"));
    assert_eq!(record.is_ok(), cfg!(unix), "{record:?}");
}
