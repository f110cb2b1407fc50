//! beaker's integration tests: one test binary (fast to link), one directory per area (each
//! `mod.rs` says what it covers and holds the helpers its tests share); the HTTP server, the lab
//! and the real users come from the workspace's test kit (`testkit`). Every test drives the real
//! `beaker` binary in real processes against a fresh temp store.
// Tests plant hostile files (symlinks, foreign owners, odd modes) and set up fixtures with raw
// std::fs on purpose; clippy.toml's ban on raw fs mutations is for the library, not for them.
#![allow(clippy::disallowed_methods)]
// Helpers that only the Unix-only tests use are unused on Windows.
#![cfg_attr(not(unix), allow(dead_code, unused_imports))]

mod support;

mod core;
mod digest;
mod maint;
mod onnx;
mod pull;
// Unix only: a registry server, real users, planted symlinks and FUSE filesystems are Linux
// programs and Unix semantics (the Windows run is docs/design.md#platforms).
#[cfg(unix)]
mod registry;
#[cfg(unix)]
mod shared;
#[cfg(unix)]
mod trust;
#[cfg(unix)]
mod weakfs;
