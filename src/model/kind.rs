//! What kind of file a model file is, from its name and its first bytes: the per-file format
//! `store show` prints. A model's `format` (the record's) says what the model is; a model of
//! several files holds files of several kinds (an ONNX graph, its external data, a tokenizer's
//! JSON, a YAML config), and each is shown as what it is.

use std::fmt;

use serde::Serialize;

/// A file's kind. Magic numbers win over names; names over the look of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// An ONNX model (`.onnx`, or bytes that read as one).
    Onnx,
    /// An ONNX model's external data (`.onnx.data`, `.onnx_data`, `.data`).
    OnnxData,
    /// safetensors: a little-endian u64 header length, then a JSON header.
    Safetensors,
    /// GGUF (llama.cpp): `GGUF` magic.
    Gguf,
    /// TensorFlow Lite: `TFL3` at byte 4.
    Tflite,
    Json,
    Yaml,
    /// UTF-8 text without NUL bytes.
    Text,
    Other,
}

/// How many bytes [`FileKind::sniff`] looks at (more are ignored).
pub const HEAD: usize = 4096;

impl FileKind {
    /// The kind of a file named `name` (its path in the model) whose first bytes are `head`
    /// (up to [`HEAD`]) and whose size is `len`.
    pub fn sniff(name: &str, head: &[u8], len: u64) -> FileKind {
        if head.starts_with(b"GGUF") {
            return FileKind::Gguf;
        }
        if head.get(4..8) == Some(b"TFL3") {
            return FileKind::Tflite;
        }
        if is_safetensors(head, len) {
            return FileKind::Safetensors;
        }
        let lower = name.to_ascii_lowercase();
        let ext = lower.rsplit_once('.').map_or("", |(_, e)| e);
        match ext {
            "onnx" => return FileKind::Onnx,
            "data" | "onnx_data" => return FileKind::OnnxData,
            "json" => return FileKind::Json,
            "yaml" | "yml" => return FileKind::Yaml,
            "txt" | "md" | "csv" | "tsv" => return FileKind::Text,
            _ => {}
        }
        match text(head) {
            Some(t) if t.trim_start().starts_with(['{', '[']) => FileKind::Json,
            Some(_) => FileKind::Text,
            None => FileKind::Other,
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Onnx => "onnx",
            FileKind::OnnxData => "onnx-data",
            FileKind::Safetensors => "safetensors",
            FileKind::Gguf => "gguf",
            FileKind::Tflite => "tflite",
            FileKind::Json => "json",
            FileKind::Yaml => "yaml",
            FileKind::Text => "text",
            FileKind::Other => "other",
        })
    }
}

/// safetensors: an 8-byte little-endian header length that fits in the file, then `{`.
fn is_safetensors(head: &[u8], len: u64) -> bool {
    let Some(n) = head.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
        return false;
    };
    let header = u64::from_le_bytes(n);
    header >= 2 && header.saturating_add(8) <= len && head.get(8) == Some(&b'{')
}

/// `head` as text, if it is UTF-8 without NULs (a character cut by the end of `head` is fine).
fn text(head: &[u8]) -> Option<&str> {
    if head.is_empty() || head.contains(&0) {
        return None;
    }
    match std::str::from_utf8(head) {
        Ok(t) => Some(t),
        // Only an incomplete last character (at most 3 bytes) is forgiven.
        Err(e) if e.error_len().is_none() && head.len() - e.valid_up_to() < 4 => {
            std::str::from_utf8(&head[..e.valid_up_to()]).ok()
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers_win_over_names() {
        assert_eq!(
            FileKind::sniff("model.onnx", b"GGUF\x03\0\0\0", 100),
            FileKind::Gguf
        );
        assert_eq!(
            FileKind::sniff("m.bin", b"\x1c\0\0\0TFL3\0\0", 100),
            FileKind::Tflite
        );
        let mut st = 14u64.to_le_bytes().to_vec();
        st.extend_from_slice(br#"{"a":{"b":1}}"#);
        assert_eq!(FileKind::sniff("w", &st, 40), FileKind::Safetensors);
        // A header longer than the file is no safetensors file.
        assert_eq!(FileKind::sniff("w", &st, 10), FileKind::Other);
    }

    #[test]
    fn names_then_the_look_of_the_bytes() {
        assert_eq!(FileKind::sniff("det.ONNX", b"\x08\x07", 2), FileKind::Onnx);
        assert_eq!(
            FileKind::sniff("model.onnx.data", b"\x01\x02", 2),
            FileKind::OnnxData
        );
        assert_eq!(FileKind::sniff("config.yaml", b"a: 1\n", 5), FileKind::Yaml);
        assert_eq!(
            FileKind::sniff("vocab", b"  {\"a\": 1}", 10),
            FileKind::Json
        );
        assert_eq!(
            FileKind::sniff("labels", "chat\ncåt\n".as_bytes(), 10),
            FileKind::Text
        );
        // A character cut by the end of the head is still text; a NUL is not.
        assert_eq!(
            FileKind::sniff("l", &"aé".as_bytes()[..2], 3),
            FileKind::Text
        );
        assert_eq!(FileKind::sniff("l", b"a\0b", 3), FileKind::Other);
        assert_eq!(FileKind::sniff("w", b"\xff\xfe\x00", 3), FileKind::Other);
        assert_eq!(FileKind::sniff("empty", b"", 0), FileKind::Other);
    }

    #[test]
    fn kinds_print_as_json_spells_them() {
        assert_eq!(FileKind::OnnxData.to_string(), "onnx-data");
        assert_eq!(
            serde_json::to_string(&FileKind::OnnxData).unwrap(),
            "\"onnx-data\""
        );
    }
}
