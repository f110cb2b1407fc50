//! beaker's integration tests: one test binary (fast to link), one module per area. Every test
//! drives the real `beaker` binary in real processes against a fresh temp store.
// Tests plant hostile files (symlinks, foreign owners, odd modes) and set up fixtures with raw
// std::fs on purpose; clippy.toml's ban on raw fs mutations is for the library, not for them.
#![allow(clippy::disallowed_methods)]

mod support;
mod ux;

mod broken_flock;
mod bundle;
mod contract;
mod core_cli;
mod core_concurrency;
mod digest_claims;
mod digest_index;
mod evict;
mod evict_shared;
mod hangs;
mod harden_publish;
mod ls_rows;
mod maint;
mod maint_bad_input;
mod maint_helpers;
mod maint_locks;
mod maint_race;
mod onnx;
mod onnx_bundle;
mod onnx_every_file;
mod onnx_helpers;
mod onnx_show;
mod pull;
mod pull_resume;
mod pull_tls;
mod records;
mod registry;
mod registry_auth;
mod registry_cut;
mod registry_faults;
mod registry_oras;
mod registry_server;
mod root_only;
mod shared;
mod shared_pull;
mod trust;
