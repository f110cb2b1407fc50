//! Looking after a store (docs/design.md#maintenance): [`gc`] (with eviction under a budget),
//! [`verify`] (with `--deep`), [`prune`] (prune-locks). One implementation each, shared by
//! `beaker store …` and `cargo xtask …`.

pub mod gc;
pub mod prune;
pub mod verify;
