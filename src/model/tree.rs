//! A model's file list and its tree id (docs/design.md#on-disk): the BLAKE3 of the canonical
//! list, one line per file sorted by path, `"<path>\0<blake3 hex>\0<size>\n"`. It names the
//! model's snapshot (`snapshots/<tree>`), and every name with the same files shares it.

use serde::Serialize;

use crate::model::digest::Blake3;
use crate::model::file_path::FilePath;

/// One file of a model, as the snapshot holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelFile {
    pub path: FilePath,
    pub blake3: Blake3,
    pub size: u64,
}

/// The id of a model's file list (docs/design.md#snapshots): names `snapshots/<tree>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TreeId(pub Blake3);

impl TreeId {
    /// BLAKE3 of `"<path>\0<blake3 hex>\0<size>\n"` per file, sorted by path.
    pub fn of(files: &[ModelFile]) -> TreeId {
        let mut sorted: Vec<&ModelFile> = files.iter().collect();
        sorted.sort_by(|a, b| a.path.cmp(&b.path));
        let mut h = blake3::Hasher::new();
        for f in sorted {
            h.update(f.path.as_str().as_bytes());
            h.update(b"\0");
            h.update(f.blake3.to_hex().as_bytes());
            h.update(b"\0");
            h.update(f.size.to_string().as_bytes());
            h.update(b"\n");
        }
        TreeId(h.finalize().into())
    }

    pub fn to_hex(&self) -> String {
        self.0.to_hex()
    }
}

impl std::fmt::Display for TreeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, bytes: &[u8]) -> ModelFile {
        ModelFile {
            path: FilePath::new(path).unwrap(),
            blake3: Blake3::of(bytes),
            size: bytes.len() as u64,
        }
    }

    #[test]
    fn tree_id_is_the_hash_of_the_sorted_canonical_list() {
        let a = file("model.onnx", b"graph");
        let b = file("model.onnx.data", b"weights");
        let expected = blake3::hash(
            format!(
                "model.onnx\0{}\05\nmodel.onnx.data\0{}\07\n",
                Blake3::of(b"graph").to_hex(),
                Blake3::of(b"weights").to_hex()
            )
            .as_bytes(),
        );
        assert_eq!(
            TreeId::of(&[b.clone(), a.clone()]).to_hex(),
            expected.to_hex().to_string()
        );
        assert_eq!(TreeId::of(&[a.clone(), b.clone()]), TreeId::of(&[b, a]));
    }
}
