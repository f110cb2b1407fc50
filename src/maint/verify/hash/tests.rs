//! Unit tests of verify's hashing: the mapped path agrees with BLAKE3, a symlink to a good blob is
//! not followed into it, and a blob that changed while mapped is judged by what happened to it.
use super::*;
use std::path::Path;

/// `dir` opened as a root.
fn top(dir: &Path) -> Rooted {
    Rooted::top(&fsx::Root::open(dir).unwrap())
}

fn blob(dir: &Path, len: usize) -> (Blake3, Rooted) {
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
    let id = Blake3::from_bytes(*blake3::hash(&bytes).as_bytes());
    let path = top(dir).join(id.to_hex());
    fsx::overwrite(&fsx::create_exclusive(&path, 0o444).unwrap(), &bytes, &path).unwrap();
    (id, path)
}

#[test]
fn mapped_and_streamed_blobs_of_every_size_class_hash_to_their_name() {
    let dir = tempfile::tempdir().unwrap();
    // Streamed (under 64 KiB), mapped without rayon, mapped with rayon over several chunks.
    for len in [1000, 64 << 10, (LARGE as usize) + 1, 2 * CHUNK + 4097] {
        let (id, path) = blob(dir.path(), len);
        let mut seen = 0;
        let got = check(&id, &path, Some(len as u64), &mut |n| seen += n);
        assert!(matches!(got, Checked::Good { mode: _ }), "{len} bytes");
        assert_eq!(seen, len as u64, "progress of {len} bytes");
    }
}

// Unix only: wine's CreateSymbolicLinkW reports success and makes nothing.
#[cfg(unix)]
#[test]
fn symlink_to_a_good_large_blob_is_reported_not_hashed_through() {
    let dir = tempfile::tempdir().unwrap();
    let (id, target) = blob(dir.path(), 1 << 20);
    let link = top(dir.path()).join("link");
    fsx::symlink(&target.path(), &link).unwrap();
    match check(&id, &link, Some(1 << 20), &mut |_| {}) {
        Checked::Bad { problem, .. } => assert!(problem.contains("a symlink"), "{problem}"),
        _ => panic!("a symlink to a good blob was not reported"),
    }
}

#[test]
fn changed_while_mapped_is_truncated_when_smaller_and_unreadable_when_it_only_faulted() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = blob(dir.path(), 100);
    let meta = fsx::stat(&path).unwrap().unwrap();
    let c = |now, faulted| Changed {
        path: path.path(),
        mapped: 1000,
        now,
        faulted,
    };
    match changed(c(Some(400), true), Some(1000), &meta) {
        Checked::Bad { problem, .. } => assert!(
            problem.starts_with("truncated: 400 bytes, expected 1000"),
            "{problem}"
        ),
        _ => panic!("a blob truncated while mapped was not reported as truncated"),
    }
    match changed(c(Some(2000), false), Some(1000), &meta) {
        Checked::Bad { problem, .. } => assert!(problem.contains("2000 bytes"), "{problem}"),
        _ => panic!("a blob grown while mapped was not reported"),
    }
    for now in [Some(1000), None] {
        match changed(c(now, true), Some(1000), &meta) {
            Checked::Unreadable(e) => {
                assert!(
                    e.source.to_string().contains("changed while being read"),
                    "{e}"
                )
            }
            _ => panic!("a fault without a size change was not reported as unreadable"),
        }
    }
}
