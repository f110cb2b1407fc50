//! beaker — a content-addressed model store.
//!
//! Models live in a *store* directory under their BLAKE3 hash (`blobs/<hex>`); a manifest maps
//! names to hashes. Many processes and many Unix users can share one store: publishing is atomic
//! and no-clobber, so a crash or a race never leaves a corrupt blob (DESIGN §5, invariants I1–I4).
//!
//! Module map:
//! - [`digest`], [`name`]: the validated value types (a hash becomes a path only through [`digest::Blake3`]).
//! - [`manifest`], [`catalogue`]: the TOML manifest format and the catalogues names resolve through;
//!   [`url`]: the URL forms a catalogue may use.
//! - [`store`]: layout, open/init, the store manifest, read-only views.
//! - [`publish`]: the publish protocol, the only way bytes enter a store; [`add`] builds on it.
//! - [`lock`]: flock-based locks with holder info and safe pruning; [`fsx`]: every disk mutation.
//! - [`progress`]: how long operations report progress without printing.
//! - [`gc`], [`verify`], [`prune`]: the maintenance operations (DESIGN §7), one module each, shared
//!   by `beaker store …` and `cargo xtask …` (whose flags are [`maint_args`]); [`partials`] tells
//!   live temp files from stale ones.
//! - [`duration`], [`size`]: the one duration grammar and the one size grammar of every flag,
//!   environment variable and `store.toml` key.
//! - [`uses`]: when each name was last used, and pins; [`evict`]: which names a budget evicts.
//! - [`show`]: what the store knows about one model, with its ONNX inputs and outputs.
//! - [`onnx`]: ONNX models: inspect, check with ONNX Runtime (loaded at run time), sessions.
//! - [`oci`]: an OCI registry as the shared remote (push, `oci://` pulls, auth).

pub mod add;
pub mod catalogue;
pub mod digest;
pub mod duration;
pub mod error;
pub mod evict;
#[doc(hidden)] // internal: the beaker binary and xtask use it; not part of the library's API
pub mod exit;
pub mod export;
pub mod fetch;
pub mod file_path;
#[doc(hidden)] // internal: the beaker binary and xtask use it; not part of the library's API
pub mod fsx;
pub mod gc;
pub mod lock;
#[cfg(feature = "cli")]
pub mod maint_args;
pub mod manifest;
pub mod name;
pub mod oci;
pub mod onnx;
#[doc(hidden)] // internal: the beaker binary and xtask use it; not part of the library's API
pub mod par;
pub mod partials;
pub mod progress;
pub mod prune;
pub mod publish;
pub mod pull;
pub mod settings;
pub mod show;
pub mod size;
pub mod snapshot;
pub mod store;
pub mod url;
pub mod uses;
pub mod verify;
#[doc(hidden)] // internal: the beaker binary and xtask use it; not part of the library's API
pub mod who;

pub use catalogue::Catalogue;
pub use digest::Blake3;
pub use error::Category;
pub use manifest::{Entry, Manifest};
pub use name::ModelName;
pub use store::{Store, StoreError};
