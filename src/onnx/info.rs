//! [`inspect`]: what an ONNX model takes and gives, read from the file itself with no runtime.
//!
//! The `ModelProto` is walked with the small streaming reader of `wire`: inputs and
//! outputs (name, element type in numpy's spelling, shape with symbolic dims), opset imports,
//! producer, IR version and custom metadata. Weights are skipped with a seek, so inspecting a
//! large model reads only its small parts. Graph inputs that are also initializers (weights that
//! older exporters list as inputs) are not listed: nobody feeds them.
//!
//! This reads the model; it does not load it. Whether ONNX Runtime accepts the graph is
//! [`super::check`]'s question.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Seek};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::wire::{Reader, Value, WireError};
use crate::sys::error::{Category, IoError};

/// What [`inspect`] learns about a model (the ONNX part of `beaker store show --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    pub inputs: Vec<Tensor>,
    pub outputs: Vec<Tensor>,
    /// Opset imports: domain (`ai.onnx` for the default domain) and version.
    pub opsets: Vec<Opset>,
    pub producer: Producer,
    pub ir_version: i64,
    /// The model's custom metadata (`metadata_props`).
    pub metadata: BTreeMap<String, String>,
}

/// A graph input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tensor {
    pub name: String,
    /// The element type in numpy's spelling (`float32`, `int64`, …); `sequence<…>`, `map<…,…>`
    /// or `optional<…>` for the non-tensor types; `unknown` when the model does not say.
    #[serde(rename = "type")]
    pub ty: String,
    /// One entry per dimension; `None` (JSON `null`) when the model gives no shape at all.
    pub shape: Option<Vec<Dim>>,
}

/// One dimension: a fixed size, a symbolic name (`"batch"`), or unknown (JSON `null`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Dim {
    Fixed(i64),
    Symbolic(String),
    Unknown(()),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Opset {
    pub domain: String,
    pub version: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Producer {
    pub name: String,
    pub version: String,
}

/// Why a file could not be read as an ONNX model.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{} is not a readable ONNX model: {reason}", path.display())]
    NotOnnx { path: PathBuf, reason: String },
}

impl InspectError {
    pub fn category(&self) -> Category {
        Category::Failed
    }
}

/// Reads the inputs, outputs, opsets, producer, IR version and metadata of the ONNX model at
/// `path`. Needs no runtime.
///
/// # Errors
/// [`InspectError::NotOnnx`] when the bytes are not an ONNX model (empty, truncated, not a
/// protobuf, no graph); [`InspectError::Io`] when the file cannot be read.
pub fn inspect(path: &Path) -> Result<ModelInfo, InspectError> {
    // A path the user names: followed, but only a regular file is read, and opening never blocks
    // on a FIFO.
    inspect_file(crate::sys::fsx::user::open(path)?, path)
}

/// [`inspect`] of a file already open (a blob, opened inside its store without following a
/// symlink); `path` is for messages.
///
/// # Errors
/// As [`inspect`]; a file that is not a regular file is [`InspectError::NotOnnx`].
pub fn inspect_file(file: std::fs::File, path: &Path) -> Result<ModelInfo, InspectError> {
    let len = file
        .metadata()
        .map_err(|e| IoError::new("inspect", path, e))?
        .len();
    let not_onnx = |reason: String| InspectError::NotOnnx {
        path: path.to_owned(),
        reason,
    };
    if len == 0 {
        return Err(not_onnx("the file is empty (0 bytes)".into()));
    }
    read(BufReader::new(file), len)
        .map_err(|e| match e {
            WireError::Io(e) => InspectError::Io(IoError::new("read", path, e)),
            e => not_onnx(e.to_string()),
        })?
        .ok_or_else(|| not_onnx("it has no graph (is it an ONNX file?)".into()))
}

/// [`inspect`] over any reader of `len` bytes: `None` when the message has no graph.
fn read<R: BufRead + Seek>(r: R, len: u64) -> Result<Option<ModelInfo>, WireError> {
    model(&mut Reader::new(r), len)
}

fn model<R: BufRead + Seek>(r: &mut Reader<R>, end: u64) -> Result<Option<ModelInfo>, WireError> {
    let mut info = ModelInfo {
        inputs: Vec::new(),
        outputs: Vec::new(),
        opsets: Vec::new(),
        producer: Producer::default(),
        ir_version: 0,
        metadata: BTreeMap::new(),
    };
    let mut graph = None;
    while let Some((field, value)) = r.next(end)? {
        match (field, value) {
            (1, Value::Varint(v)) => info.ir_version = v as i64,
            (2, Value::Len { end: to }) => info.producer.name = r.string(to)?,
            (3, Value::Len { end: to }) => info.producer.version = r.string(to)?,
            (7, Value::Len { end: to }) => graph = Some(read_graph(r, to)?),
            (8, Value::Len { end: to }) => {
                let (domain, version) = pair(r, to)?;
                let domain = if domain.is_empty() {
                    "ai.onnx".to_owned()
                } else {
                    domain
                };
                let version = match version {
                    Pair::Int(v) => v,
                    _ => 0,
                };
                info.opsets.push(Opset { domain, version });
            }
            (14, Value::Len { end: to }) => {
                if let (key, Pair::Text(value)) = pair(r, to)? {
                    info.metadata.insert(key, value);
                }
            }
            (_, v) => r.skip(v, end)?,
        }
    }
    Ok(graph.map(|(inputs, outputs)| ModelInfo {
        inputs,
        outputs,
        ..info
    }))
}

type Io = (Vec<Tensor>, Vec<Tensor>);

/// GraphProto: inputs (11), outputs (12), initializer names (5) to drop from the inputs.
fn read_graph<R: BufRead + Seek>(r: &mut Reader<R>, end: u64) -> Result<Io, WireError> {
    let (mut inputs, mut outputs, mut weights) = (Vec::new(), Vec::new(), BTreeSet::new());
    while let Some((field, value)) = r.next(end)? {
        match (field, value) {
            (11, Value::Len { end: to }) => inputs.push(value_info(r, to)?),
            (12, Value::Len { end: to }) => outputs.push(value_info(r, to)?),
            (5, Value::Len { end: to }) => {
                // TensorProto: only its name (8); its data is skipped.
                while let Some((f, v)) = r.next(to)? {
                    match (f, v) {
                        (8, Value::Len { end: t }) => {
                            weights.insert(r.string(t)?);
                        }
                        (_, v) => r.skip(v, to)?,
                    }
                }
            }
            (_, v) => r.skip(v, end)?,
        }
    }
    inputs.retain(|t: &Tensor| !weights.contains(&t.name));
    Ok((inputs, outputs))
}

/// ValueInfoProto: name (1), type (2).
fn value_info<R: BufRead + Seek>(r: &mut Reader<R>, end: u64) -> Result<Tensor, WireError> {
    let mut t = Tensor {
        name: String::new(),
        ty: "unknown".into(),
        shape: None,
    };
    while let Some((field, value)) = r.next(end)? {
        match (field, value) {
            (1, Value::Len { end: to }) => t.name = r.string(to)?,
            (2, Value::Len { end: to }) => (t.ty, t.shape) = type_proto(r, to)?,
            (_, v) => r.skip(v, end)?,
        }
    }
    Ok(t)
}

/// TypeProto: tensor (1), sequence (4), map (5), sparse tensor (8), optional (9).
fn type_proto<R: BufRead + Seek>(
    r: &mut Reader<R>,
    end: u64,
) -> Result<(String, Option<Vec<Dim>>), WireError> {
    let mut out = ("unknown".to_owned(), None);
    while let Some((field, value)) = r.next(end)? {
        out = match (field, value) {
            (1 | 8, Value::Len { end: to }) => tensor_type(r, to)?,
            (4 | 9, Value::Len { end: to }) => {
                let kind = if field == 4 { "sequence" } else { "optional" };
                let mut inner = "unknown".to_owned();
                while let Some((f, v)) = r.next(to)? {
                    match (f, v) {
                        (1, Value::Len { end: t }) => inner = type_proto(r, t)?.0,
                        (_, v) => r.skip(v, to)?,
                    }
                }
                (format!("{kind}<{inner}>"), None)
            }
            (5, Value::Len { end: to }) => {
                let (mut key, mut val) = ("unknown".to_owned(), "unknown".to_owned());
                while let Some((f, v)) = r.next(to)? {
                    match (f, v) {
                        (1, Value::Varint(k)) => key = numpy_name(k).to_owned(),
                        (2, Value::Len { end: t }) => val = type_proto(r, t)?.0,
                        (_, v) => r.skip(v, to)?,
                    }
                }
                (format!("map<{key},{val}>"), None)
            }
            (_, v) => {
                r.skip(v, end)?;
                out
            }
        };
    }
    Ok(out)
}

/// TypeProto.Tensor: elem_type (1), shape (2) of dims (1) with dim_value (1) / dim_param (2).
fn tensor_type<R: BufRead + Seek>(
    r: &mut Reader<R>,
    end: u64,
) -> Result<(String, Option<Vec<Dim>>), WireError> {
    let (mut ty, mut shape) = ("unknown".to_owned(), None);
    while let Some((field, value)) = r.next(end)? {
        match (field, value) {
            (1, Value::Varint(t)) => ty = numpy_name(t).to_owned(),
            (2, Value::Len { end: to }) => {
                let mut dims = Vec::new();
                while let Some((f, v)) = r.next(to)? {
                    match (f, v) {
                        (1, Value::Len { end: d_end }) => {
                            let mut dim = Dim::Unknown(());
                            while let Some((df, dv)) = r.next(d_end)? {
                                match (df, dv) {
                                    (1, Value::Varint(n)) => dim = Dim::Fixed(n as i64),
                                    (2, Value::Len { end: t }) => dim = Dim::Symbolic(r.string(t)?),
                                    (_, v) => r.skip(v, d_end)?,
                                }
                            }
                            dims.push(dim);
                        }
                        (_, v) => r.skip(v, to)?,
                    }
                }
                shape = Some(dims);
            }
            (_, v) => r.skip(v, end)?,
        }
    }
    Ok((ty, shape))
}

enum Pair {
    None,
    Int(i64),
    Text(String),
}

/// A two-field message: a string (1) and a string or integer (2): opset ids and metadata entries.
fn pair<R: BufRead + Seek>(r: &mut Reader<R>, end: u64) -> Result<(String, Pair), WireError> {
    let (mut first, mut second) = (String::new(), Pair::None);
    while let Some((field, value)) = r.next(end)? {
        match (field, value) {
            (1, Value::Len { end: to }) => first = r.string(to)?,
            (2, Value::Len { end: to }) => second = Pair::Text(r.string(to)?),
            (2, Value::Varint(v)) => second = Pair::Int(v as i64),
            (_, v) => r.skip(v, end)?,
        }
    }
    Ok((first, second))
}

/// ONNX `TensorProto.DataType` in numpy's spelling (numpy has no bfloat16/float8/4-bit types;
/// those keep ONNX's lower-case names).
pub fn numpy_name(data_type: u64) -> &'static str {
    match data_type {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        12 => "uint32",
        13 => "uint64",
        14 => "complex64",
        15 => "complex128",
        16 => "bfloat16",
        17 => "float8e4m3fn",
        18 => "float8e4m3fnuz",
        19 => "float8e5m2",
        20 => "float8e5m2fnuz",
        21 => "uint4",
        22 => "int4",
        23 => "float4e2m1",
        _ => "unknown",
    }
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbolic(s) => f.write_str(s),
            Dim::Unknown(()) => f.write_str("?"),
        }
    }
}

impl std::fmt::Display for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.ty)?;
        match &self.shape {
            None => f.write_str(" (shape not given)"),
            Some(dims) => {
                let dims: Vec<String> = dims.iter().map(ToString::to_string).collect();
                write!(f, "[{}]", dims.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    // Tests read the committed demo models with raw std::fs.
    #![allow(clippy::disallowed_methods)]
    use super::*;

    fn demo(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("manifests/demo/models")
            .join(name)
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/onnx")
            .join(name)
    }

    #[test]
    fn inspect_reads_the_multi_io_demo_model() {
        let info = inspect(&demo("tiny-multi.onnx")).unwrap();
        let shown: Vec<String> = info.inputs.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["x: float32[batch, 4]", "ids: int64[batch]"]);
        let shown: Vec<String> = info.outputs.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["scaled: float32[batch, 4]", "ids_out: int64[batch]"]
        );
        assert_eq!(info.ir_version, 8);
        assert_eq!(
            info.opsets,
            [
                Opset {
                    domain: "ai.onnx".into(),
                    version: 17
                },
                Opset {
                    domain: "ai.onnx.ml".into(),
                    version: 3
                }
            ]
        );
        assert_eq!(info.producer.name, "beaker-make-onnx-models");
        assert_eq!(info.producer.version, "1.0");
        assert_eq!(
            info.metadata.get("author").map(String::as_str),
            Some("beaker")
        );
        assert_eq!(info.metadata.get("task").map(String::as_str), Some("demo"));
    }

    #[test]
    fn inspect_reads_the_hand_encoded_models() {
        let info = inspect(&demo("tiny-add.onnx")).unwrap();
        let shown: Vec<String> = info.inputs.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["a: float32[N]", "b: float32[N]"]);
        assert_eq!(info.opsets[0].version, 13);
    }

    /// A length-delimited field `num` holding `payload` (protobuf wire type 2; short payloads).
    fn field(num: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![num << 3 | 2, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn graph_inputs_that_are_initializers_are_not_listed() {
        // Older exporters list weights as graph inputs too: `w` is an input and an initializer.
        let input = |name: &[u8]| field(11, &field(1, name));
        let mut graph = input(b"x");
        graph.extend(input(b"w"));
        graph.extend(field(5, &field(8, b"w"))); // TensorProto.name = "w"
        let model = field(7, &graph);
        let info = read(std::io::Cursor::new(&model), model.len() as u64)
            .unwrap()
            .unwrap();
        let names: Vec<&str> = info.inputs.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["x"]);
        assert_eq!(info.inputs[0].ty, "unknown");
        assert_eq!(info.inputs[0].shape, None);
    }

    #[test]
    fn every_truncation_of_a_model_reads_without_panicking() {
        let bytes = std::fs::read(demo("tiny-multi.onnx")).unwrap();
        let full = read(std::io::Cursor::new(&bytes), bytes.len() as u64).unwrap();
        assert!(full.is_some());
        for cut in 0..bytes.len() {
            // Cut inside a field: an error; cut between fields: a model with less in it.
            let _ = read(std::io::Cursor::new(&bytes[..cut]), cut as u64);
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = read(std::io::Cursor::new(&bytes), bytes.len() as u64);
        }
    }

    #[test]
    fn broken_files_are_not_onnx_errors() {
        for (file, says) in [
            ("empty.onnx", "empty"),
            ("truncated.onnx", "truncated"),
            ("random-bytes.onnx", "not ONNX"),
        ] {
            let e = inspect(&fixture(file)).unwrap_err();
            assert!(matches!(e, InspectError::NotOnnx { .. }), "{file}: {e}");
            assert!(e.to_string().contains(says), "{file}: {e}");
        }
        // A valid protobuf with a bad graph reads fine: only the runtime can tell.
        assert!(inspect(&fixture("dangling.onnx")).is_ok());
    }
}
