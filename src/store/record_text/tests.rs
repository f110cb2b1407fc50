//! The quick reader against the full parser: it reads what beaker writes, and whenever it answers
//! at all it answers exactly what `Manifest::<Record>::parse` does.

// Records are read back from a real store with raw std::fs.
#![allow(clippy::disallowed_methods)]
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::model::entry::{Expected, File, Model, Pin, Single, Upstreams};
use crate::model::manifest::Manifest;
use crate::model::tree::TreeId;
use crate::store::{InitOptions, Store};

fn name(s: &str) -> ModelName {
    ModelName::new(s).unwrap()
}

/// What the full parser makes of a record of `name`: its one record, or `None` when it refuses
/// the text or finds anything else in it.
fn full(text: &str, name: &ModelName) -> Option<Record> {
    let mut m = Manifest::<Record>::parse(text, Path::new("r.toml")).ok()?;
    let entry = m.models.remove(name)?;
    m.models.is_empty().then_some(entry)
}

/// The text `write_record` gives `record` (its two comment lines, then the manifest of one name).
fn record_text(name: &ModelName, record: &Record) -> String {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::init(&dir.path().join("s"), InitOptions::default()).unwrap();
    store.write_record(name, record).unwrap();
    std::fs::read_to_string(store.layout().name_record(name).path()).unwrap()
}

fn pin(seed: &[u8]) -> Expected {
    Expected::Pinned(Pin {
        blake3: Blake3::of(seed),
        size: seed.len() as u64,
    })
}

fn file(path: &str, seed: &[u8], urls: &[&str]) -> File {
    File {
        path: FilePath::new(path).unwrap(),
        blob: pin(seed),
        upstream: Upstreams::default(),
        urls: urls.iter().map(|u| (*u).to_owned()).collect(),
    }
}

/// `model` as the store records it, with its time and tree.
fn record(model: Model, added: &Option<String>, tree: Option<Blake3>) -> Record {
    Record {
        model: model.into_pinned().unwrap(),
        added: added.clone(),
        tree: tree.map(TreeId),
    }
}

#[test]
fn the_records_add_and_pull_write_are_read_by_the_quick_reader() {
    let added = Some("2026-11-28T03:50:47Z".to_owned());
    let tree = Some(Blake3::of(b"tree"));
    let added_one = name("bench-model-00001");
    let one = Single {
        file: Some(FilePath::new("model.bin").unwrap()),
        blob: pin(b"one"),
        ..Single::default()
    };
    let pulled = name("lab/det.v2");
    let det = Single {
        blob: Expected::Pinned(Pin {
            blake3: Blake3::of(b"det"),
            size: 40_123_456,
        }),
        upstream: Upstreams {
            sha256: Some(Sha256::from_bytes([3; 32])),
            md5: Some(Md5::from_bytes([9; 16])),
        },
        urls: vec![
            "https://example.org/m/detector.onnx".into(),
            "mirror/detector.onnx".into(),
        ],
        format: Some(Format::Onnx),
        ..Single::default()
    };
    let mut det = Model::single(&pulled, det);
    det.description = Some("RF-DETR détecteur, int8 (v2)".into());
    det.check = true;
    let cutout = name("cutout");
    let mut several = Model::listed(
        &cutout,
        vec![
            file("model.onnx", b"graph", &["https://h/model.onnx"]),
            file("weights/model.onnx.data", b"weights", &[]),
        ],
        Some(FilePath::new("model.onnx").unwrap()),
    )
    .unwrap();
    several.format = Some(Format::Onnx);
    let cases = [
        // `add` of one file.
        (
            added_one.clone(),
            record(Model::single(&added_one, one), &added, tree),
        ),
        // `pull` from a catalogue: URLs, format, description, upstream digests, org/name.
        (pulled, record(det, &added, tree)),
        // A model of several files with a main file.
        (cutout, record(several, &added, tree)),
    ];
    for (name, entry) in cases {
        let text = record_text(&name, &entry);
        assert_eq!(parse(&text, &name), Some(entry.clone()), "{text}");
        assert_eq!(full(&text, &name), Some(entry), "{text}");
    }
}

#[test]
fn what_the_quick_reader_leaves_to_the_full_parser() {
    let n = name("m");
    let h = Blake3::of(b"m").to_hex();
    let good = format!("version = 1\n\n[models.m]\nblake3 = \"{h}\"\nsize = 1\n");
    assert!(parse(&good, &n).is_some());
    let declined = [
        // Valid TOML, read the same by the full parser, but outside the subset.
        good.replace('\n', "\r\n"),
        good.replace("size = 1", "size = 1 # bytes"),
        good.replace("size = 1", "  size = 1"),
        good.replace("size = 1", "size = 1_0"),
        good.replace("size = 1", "size = 0x1"),
        good.replace("[models.m]", "[models.\"m\" ]"),
        good.replace("[models.m]", "[ models.m ]"),
        good.replace(&format!("\"{h}\""), &format!("'{h}'")),
        good + "description = \"a \\\"quoted\\\" word\"\n",
    ];
    for text in &declined {
        assert_eq!(parse(text, &n), None, "{text}");
    }
    let h2 = Blake3::of(b"x").to_hex();
    let wrong = [
        // Not a record of `m`, or not a valid entry: the full parser gives the error.
        format!("version = 1\n[models.other]\nblake3 = \"{h}\"\nsize = 1\n"),
        format!("version = 2\n[models.m]\nblake3 = \"{h}\"\nsize = 1\n"),
        format!("[models.m]\nblake3 = \"{h}\"\nsize = 1\nversion = 1\n"),
        format!("version = 1\n[models.m]\nblake3 = \"{h}\"\nsize = 1\nsize = 2\n"),
        format!("version = 1\n[models.m]\nblake3 = \"{h}\"\n"),
        format!("version = 1\n[models.m]\nblake3 = \"{h}\"\nsize = -1\n"),
        format!("version = 1\n[models.m]\nblake3 = \"{h}\"\nsize = 01\n"),
        format!("version = 1\n[models.m]\nblake3 = \"{h}\"\nsize = 1\nsizes = 1\n"),
        format!("version = 1\n[models.m]\nblake3 = \"{h}\"\nsize = 1\n[models.m]\n"),
        format!("version = 1\n[models.m]\nsize = 1\nmain = \"a\"\nblake3 = \"{h}\"\n"),
        format!("version = 1\n[models.m]\n[[models.m.files]]\nblake3 = \"{h}\"\nsize = 1\n"),
        format!("version = 1\n[models.m]\nblake3 = \"{h}\"\nsize = 1\ntree = \"{h2}x\"\n"),
        format!("version = 1\n[models.m]\nblake3 = \"{h}\"\nsize = 99999999999999999999\n"),
        format!("version = 1\n[models.m]\nblake3 = \"{h}\"\nsize = 1\nurls = [\"data:x\"]\n"),
        "version = 1\n".to_owned(),
        String::new(),
    ];
    for text in &wrong {
        assert_eq!(parse(text, &n), None, "{text}");
        assert_eq!(full(text, &n), None, "{text}");
    }
}

fn arb_text() -> impl Strategy<Value = String> {
    // Mostly plain, sometimes with what TOML must escape or the quick reader refuses.
    prop_oneof![
        3 => "[a-zA-Z0-9 ./:_-]{0,24}",
        1 => "\\PC{0,12}",
        1 => "[a-z\"'\\\\\t#\\[\\]=,]{0,8}",
    ]
}

fn arb_file() -> impl Strategy<Value = (String, [u8; 32], u64, Vec<String>)> {
    (
        "[a-z]{1,6}(/[a-z.]{1,6})?",
        proptest::array::uniform32(any::<u8>()),
        0..=i64::MAX as u64,
        proptest::collection::vec("https://h/[a-z]{1,8}", 0..3),
    )
}

/// Tables as the store records them: single-file or several files, with any optional field (and
/// some that are no valid record: a path twice, a file inside another).
fn arb_entry() -> impl Strategy<Value = RawEntry> {
    (
        proptest::option::of(proptest::collection::vec(arb_file(), 1..4)),
        arb_file(),
        proptest::option::of(arb_text()),
        proptest::option::of(arb_text()),
        proptest::option::of(prop_oneof![Just(Format::Onnx), Just(Format::Other)]),
        proptest::option::of(proptest::array::uniform16(any::<u8>())),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(several, one, description, added, format, md5, check, main)| {
                let mut e = RawEntry {
                    description,
                    added,
                    format,
                    check,
                    tree: Some(Blake3::of(b"t")),
                    ..RawEntry::default()
                };
                match several {
                    Some(files) => {
                        let files: Vec<RawFile> = files
                            .into_iter()
                            .filter_map(|(p, b3, size, urls)| {
                                Some(RawFile {
                                    path: FilePath::new(&p).ok()?,
                                    blake3: Some(Blake3::from_bytes(b3)),
                                    size: Some(size),
                                    urls,
                                    sha256: None,
                                    md5: md5.map(Md5::from_bytes),
                                })
                            })
                            .collect();
                        if main {
                            e.main = files.first().map(|f| f.path.clone());
                        }
                        e.files = Some(files);
                    }
                    None => {
                        let (p, b3, size, urls) = one;
                        e.blake3 = Some(Blake3::from_bytes(b3));
                        e.size = Some(size);
                        e.urls = urls;
                        e.md5 = md5.map(Md5::from_bytes);
                        e.file = FilePath::new(&p).ok();
                    }
                }
                e
            },
        )
}

/// The text of a record of `name` holding the table `entry` (as `Manifest::to_toml` writes it).
fn render(name: &ModelName, entry: &RawEntry) -> String {
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        version: i64,
        models: std::collections::BTreeMap<&'a ModelName, &'a RawEntry>,
    }
    let one = Doc {
        version: 1,
        models: [(name, entry)].into(),
    };
    format!(
        "# a record\n# of {name}\n{}",
        toml::to_string(&one).unwrap()
    )
}

fn is_plain(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(|s| {
        !s.bytes()
            .any(|c| c == b'"' || c == b'\\' || c == b'\'' || c < 0x20 || c == 0x7f)
    })
}

proptest! {
    #[test]
    fn the_quick_reader_agrees_with_the_full_parser_on_written_records(
        entry in arb_entry(),
        name in "[a-z0-9][a-z0-9_-]{0,8}(/[a-z0-9][a-z0-9._-]{0,8})?"
            .prop_filter_map("a valid name", |n| ModelName::new(&n).ok()),
    ) {
        let text = render(&name, &entry);
        let whole = full(&text, &name);
        let quick = parse(&text, &name);
        if quick.is_some() {
            prop_assert_eq!(&quick, &whole, "{}", text);
        }
        // Strings that need no escaping are in the subset: a valid entry takes the quick path.
        if whole.is_some() && is_plain(&entry.description) && is_plain(&entry.added) {
            prop_assert_eq!(&quick, &whole, "{}", text);
        }
    }

    #[test]
    fn a_damaged_record_is_never_read_differently_by_the_quick_reader(
        entry in arb_entry(),
        edits in proptest::collection::vec(
            (any::<prop::sample::Index>(), 0..4u8, prop::sample::select(&[
                '"', '\\', '[', ']', '=', '#', '\n', '\r', '\t', ' ', ',', '.', '0', '1', 'a', '\'', '{', '-',
            ][..])),
            1..4,
        ),
    ) {
        let name = name("lab/m");
        let mut text: Vec<char> = render(&name, &entry).chars().collect();
        for (at, how, c) in edits {
            let i = at.index(text.len() + 1);
            match how {
                0 => text.insert(i, c),
                1 if i < text.len() => { text.remove(i); }
                2 if i < text.len() => text[i] = c,
                _ => {
                    // Repeat the line at i.
                    let s: String = text.iter().collect();
                    let line = s[..s.char_indices().nth(i).map_or(s.len(), |(b, _)| b)]
                        .rsplit('\n').next().unwrap_or("").to_owned();
                    text.splice(i..i, format!("\n{line}").chars());
                }
            }
        }
        let text: String = text.into_iter().collect();
        if let Some(quick) = parse(&text, &name) {
            prop_assert_eq!(Some(quick), full(&text, &name), "{}", text);
        }
    }
}

/// The quick reader knows every key of [`RawEntry`] and [`RawFile`]: a field added to either
/// breaks this pattern, so whoever adds it is sent here (a record with a key the quick reader
/// does not know would still be read right, by the full parser, but at its speed).
#[test]
fn every_field_of_an_entry_is_a_key_of_the_quick_reader() {
    let RawEntry {
        blake3: _,
        size: _,
        urls: _,
        format: _,
        description: _,
        sha256: _,
        md5: _,
        check: _,
        added: _,
        file: _,
        files: _,
        main: _,
        tree: _,
    } = RawEntry::default();
    let RawFile {
        path: _,
        blake3: _,
        size: _,
        urls: _,
        sha256: _,
        md5: _,
    } = RawFile::from(&file("f", b"f", &[]));
}
