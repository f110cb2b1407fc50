//! beaker — a content-addressed model store.
//!
//! Models live in a *store* directory under their BLAKE3 hash (`blobs/<hex>`); records map names
//! to hashes. Many processes and many Unix users can share one store: publishing is atomic and
//! no-clobber, so a crash or a race never leaves a corrupt blob (docs/design.md#invariants).
//!
//! The code lives in layers, each a folder, each using only the layers before it
//! (docs/design.md#layers, checked by `tests/layers.rs`):
//!
//! - [`sys`]: errors with paths, the file-system calls (inside a store, never through a symlink),
//!   locks, users and groups, progress reporting.
//! - [`model`]: the value types and formats: digests, names, durations, sizes, file lists,
//!   references and URLs, models and records, the manifest format, catalogues.
//! - [`onnx`]: ONNX models: inspect, check with ONNX Runtime (loaded at run time).
//! - [`store`]: the store itself: layout, records, indexes, snapshots, use records, the publish
//!   protocol (the only way bytes enter a store), `rm`, `ls`, `info`, format upgrades.
//! - [`ops`]: operations over a store: sources, the registry, pull, push, add, export, show, the
//!   ONNX session helper.
//! - [`maint`]: gc (with eviction), verify, prune-locks.
//! - [`front`]: what the `beaker` binary and `cargo xtask` share: configuration files, exit
//!   codes, maintenance flags.
//!
//! The paths below the layers (`beaker::pull`, `beaker::digest`, …) are the library's public
//! names; each is one module of a layer, re-exported.

pub mod front;
pub mod maint;
pub mod model;
pub mod onnx;
pub mod ops;
pub mod store;
pub mod sys;

// The public names of the library: one module of a layer each.
#[cfg(feature = "cli")]
pub use front::maint_args;
pub use front::{exit, settings};
pub use maint::gc::{self, evict};
pub use maint::{prune, verify};
pub use model::{catalogue, digest, duration, entry, file_path, manifest, name, size, url};
#[cfg(feature = "onnx")]
pub use ops::session;
pub use ops::{add, export, fetch, pull, show};
pub use store::{partials, publish, snapshot, uses};
pub use sys::{error, fsx, lock, par, progress, who};

/// The OCI registry remote: references, the client, push, and the registry side of pulls.
pub mod oci {
    pub use crate::model::reference::{BadReference, Reference, Scheme, Target};
    pub use crate::ops::fetch::registry::*;
    pub use crate::ops::pull::registry as pull;
    pub use crate::ops::push;
}

pub use error::Category;
pub use model::catalogue::Catalogue;
pub use model::digest::Blake3;
pub use model::entry::{Model, Record};
pub use model::manifest::Manifest;
pub use model::name::ModelName;
pub use store::{Store, StoreError};
