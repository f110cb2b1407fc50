//! The system layer: what every other layer stands on, and the only code that talks to the
//! operating system directly (docs/design.md#layers).
//!
//! - [`error`]: the I/O error that carries its path, and the [`error::Category`] every error
//!   maps to (the exit codes).
//! - [`who`]: users, groups, ids, the host name, times (libc).
//! - [`par`]: work split over the cores.
//! - [`fsx`]: every call that touches the disk by path; inside a store, paths resolved from the
//!   store's root descriptor without following a symlink (`fsx::beneath`).
//! - [`lock`]: flock locks with holder records, safe acquire and prune.
//! - [`progress`]: how long operations report progress without printing.

pub mod error;
pub mod fsx;
pub mod lock;
pub mod par;
pub mod progress;
pub mod who;
