//! beaker's integration tests: one test binary (fast to link), one module per area. Every test
//! drives the real `beaker` binary in real processes against a fresh temp store.

mod support;

mod broken_flock;
mod core_cli;
mod core_concurrency;
mod http_server;
mod maint;
mod maint_bad_input;
mod maint_helpers;
mod maint_locks;
mod maint_race;
mod onnx;
mod onnx_helpers;
mod onnx_show;
mod pull;
mod pull_resume;
mod pull_tls;
mod shared;
mod shared_pull;
