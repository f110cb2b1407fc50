//! What the two front ends — the `beaker` binary and `cargo xtask` — share, above the library
//! proper (docs/design.md#layers): the configuration files ([`settings`]), the exit codes
//! ([`exit`]) and the maintenance flags ([`maint_args`]).

pub mod exit;
#[cfg(feature = "cli")]
pub mod maint_args;
pub mod settings;
