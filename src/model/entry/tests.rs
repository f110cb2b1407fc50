//! The rules a model keeps whoever makes it: single-file names, the list's rules, pinning.

use super::*;

fn name(n: &str) -> ModelName {
    ModelName::new(n).unwrap()
}

fn path(p: &str) -> FilePath {
    FilePath::new(p).unwrap()
}

fn file(p: &str, seed: &[u8]) -> File<Pin> {
    File {
        path: path(p),
        blob: Pin {
            blake3: Blake3::of(seed),
            size: seed.len() as u64,
        },
        upstream: Upstreams::default(),
        urls: Vec::new(),
    }
}

#[test]
fn single_file_names_come_from_file_then_url_then_format() {
    let name = name("org/det");
    let named = |s: Single| Model::single(&name, s).main().path.to_string();
    let mut s = Single {
        urls: vec!["https://h/r/rfdetr.onnx?x=1".into()],
        ..Single::default()
    };
    assert_eq!(named(s.clone()), "rfdetr.onnx");
    s.file = Some(path("weights.bin"));
    assert_eq!(named(s.clone()), "weights.bin");
    s.file = None;
    s.urls.clear();
    assert_eq!(named(s.clone()), "det");
    s.format = Some(Format::Onnx);
    assert_eq!(named(s), "det.onnx");
}

#[test]
fn a_single_file_is_its_main_file_and_is_named_once_recorded() {
    let n = name("m");
    let mut m = Model::single(&n, Single::<Expected>::default());
    assert_eq!(m.files().len(), 1);
    assert_eq!(m.single_file(), Some(m.main()));
    assert!(!m.names_its_file() && !m.names_its_main());
    m.name_the_file();
    assert!(m.names_its_file());
    assert_eq!(m.main().path.as_str(), "m");
}

#[test]
fn a_listed_model_keeps_its_rules_in_order() {
    let n = name("m");
    let listed = |files: Vec<File<Pin>>, main: Option<&str>| {
        Model::listed(&n, files, main.map(path)).map_err(|e| e.to_string())
    };
    assert_eq!(
        listed(vec![], None).unwrap_err(),
        "model m has an empty `files` list; list at least one file, or use a single-file entry"
    );
    assert_eq!(
        listed(vec![file("a", b"1"), file("a", b"2")], None).unwrap_err(),
        "model m lists the file a twice"
    );
    assert_eq!(
        listed(vec![file("a/b", b"1"), file("a", b"2")], None).unwrap_err(),
        "model m has a file a and a file inside it (a/b); a path cannot be both"
    );
    assert_eq!(
        listed(vec![file("a", b"1")], Some("b")).unwrap_err(),
        "model m: main = \"b\" is not one of its files"
    );
    let many: Vec<File<Pin>> = (0..=MAX_FILES)
        .map(|i| file(&format!("f{i}"), b"x"))
        .collect();
    assert_eq!(
        listed(many, None).unwrap_err(),
        format!(
            "model m lists {} files; a model may have at most {MAX_FILES}",
            MAX_FILES + 1
        )
    );
    let m = listed(vec![file("a", b"1"), file("b", b"2")], Some("b")).unwrap();
    assert_eq!(m.main().path.as_str(), "b");
    assert!(m.single_file().is_none() && m.names_its_main() && m.names_its_file());
    assert_eq!(m.bytes(), 2);
    assert_eq!(m.model_files()[0], file("a", b"1").model_file());
    // A rule of the caller's runs on each file in order, after its path is found new.
    let mut seen = Vec::new();
    let twice = Model::listed_checking(
        &n,
        vec![file("a", b"1"), file("b", b"2"), file("a", b"3")],
        None,
        |f| {
            seen.push(f.path.to_string());
            Ok::<(), Invalid>(())
        },
    );
    assert!(matches!(twice, Err(Invalid::Twice { .. })));
    assert_eq!(seen, ["a", "b"]);
}

#[test]
fn a_catalogue_model_is_pinned_by_one_pin_per_file() {
    let n = name("m");
    let unpinned = File {
        path: path("a"),
        blob: Expected::Unpinned { size: Some(1) },
        upstream: Upstreams::default(),
        urls: vec!["https://h/a".into()],
    };
    let pinned = File {
        path: path("b"),
        blob: Expected::Pinned(Pin {
            blake3: Blake3::of(b"b"),
            size: 1,
        }),
        ..unpinned.clone()
    };
    let m = Model::listed(&n, vec![unpinned, pinned], None).unwrap();
    assert_eq!(m.size(), Some(2));
    assert_eq!(m.clone().into_pinned().unwrap_err().as_str(), "a");
    let pin = Pin {
        blake3: Blake3::of(b"a"),
        size: 1,
    };
    assert_eq!(m.clone().pinned(&[pin]), None);
    let p = m.clone().pinned(&[pin, pin]).unwrap();
    assert_eq!(p.files()[1].blob, pin);
    assert_eq!(p.files()[0].urls, m.files()[0].urls);
    assert!(!p.same_content(&m));
    let record = Record::new(p);
    assert_eq!(record.blobs().len(), 1);
    assert!(record.same_content(&record.clone()));
}

#[test]
fn mirrors_are_absolute_urls_added_to_a_single_file() {
    let n = name("m");
    let with = |urls: &[&str]| {
        Model::single(
            &n,
            Single {
                urls: urls.iter().map(|u| (*u).to_owned()).collect(),
                ..Single::<Expected>::default()
            },
        )
    };
    let mut first = with(&["a/m"]);
    first.add_mirrors(&with(&["b/m", "https://x/m", "a/m"]));
    first.add_mirrors(&with(&["https://x/m", "https://y/m"]));
    assert_eq!(first.main().urls, ["a/m", "https://x/m", "https://y/m"]);
    // A listed model keeps its own URLs.
    let mut listed = Model::listed(&n, vec![file("m", b"1")], None).unwrap();
    listed.add_mirrors(&Model::single(
        &n,
        Single {
            file: None,
            blob: file("m", b"1").blob,
            upstream: Upstreams::default(),
            urls: vec!["https://x/m".into()],
            format: None,
        },
    ));
    assert!(listed.main().urls.is_empty());
}
