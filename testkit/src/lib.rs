//! beaker's test kit: what the integration tests (`tests/integration`), the fault campaign
//! (`cargo xtask torture`) and the benchmark (`cargo xtask bench`) share, written once.
//!
//! - [`server`]: the one HTTP/1.1 server on 127.0.0.1 — bodies by path (from memory or a file),
//!   `Range`, a request log, per-route fault queues, bodies counted per path.
//! - [`lab`]: a temp directory with a store path, the beaker binary run with a clean environment,
//!   finished runs ([`lab::Run`]) and bounded waits, deterministic bytes, BLAKE3, a seeded random
//!   source, the catalogue writer, and a small tmpfs for full-disk runs.
//! - [`users`]: the real Unix users `beaker-alice`, `beaker-bob`, `beaker-eve` and the group
//!   `beaker-lab`, commands run as one of them through `setpriv`, and what a root-only run does
//!   as another user (`BEAKER_TEST_REQUIRE_ROOT`).
//! - [`shim`]: LD_PRELOAD shims (and other small shared objects) built from C with `cc`.
//! - [`testfs`]: the test filesystem — a FUSE passthrough with the switches of weak filesystems
//!   (flock no-op/ENOSYS/per mount, no hard links, link names as separate inodes, inode numbers
//!   per path, stale nlink, no RENAME_NOREPLACE, no setgid inheritance) and a power-cut mode;
//!   mounted on threads of the calling process (`beaker-testfs` is the same from a shell).
//!
//! Functions that touch the world outside return `anyhow::Result`; the few that are assertions
//! for tests by design ([`lab::Run::ok`], [`lab::Run::fails`], [`users::root_only`], …) panic with
//! the whole run or the reason in the message, and say so. The kit is a dev-dependency of beaker
//! and a dependency of xtask, never a dependency of the beaker library.

pub mod lab;
pub mod server;
#[cfg(unix)]
pub mod shim;
#[cfg(unix)]
pub mod testfs;
#[cfg(unix)]
pub mod users;
