//! The value types and formats: what a model, a name, a digest, a catalogue is, parsed and
//! validated at the edge so that everything above holds values that are already valid
//! (docs/design.md#layers). Nothing here touches a store.
//!
//! - [`digest`]: `Blake3` (the only way a hash becomes a path), sha256/md5, upstream digests.
//! - [`name`], [`file_path`]: model names and the paths of a model's files.
//! - [`kind`]: what kind of file a model file is (by magic number, name, or the look of it).
//! - [`duration`], [`size`]: the one duration and the one size grammar of every flag and key.
//! - [`tree`]: a model's file list and its tree id (what names a snapshot).
//! - [`reference`], [`url`]: OCI references and the URL forms a catalogue may use.
//! - [`entry`]: a model, parsed and validated once: a catalogue's `Model` (a file may wait for its
//!   BLAKE3 until it is downloaded) and a store's `Record` (every file pinned).
//! - [`manifest`], [`catalogue`]: the TOML manifest format, and resolving names through
//!   catalogues.

pub mod catalogue;
pub mod digest;
pub mod duration;
pub mod entry;
pub mod file_path;
pub mod kind;
pub mod manifest;
pub mod name;
pub mod reference;
pub mod size;
pub mod tree;
pub mod url;
