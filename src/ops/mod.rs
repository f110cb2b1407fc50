//! The operations that bring models in and hand them out, over the store (docs/design.md#layers):
//! sources and the registry's transport ([`fetch`]), [`pull`] and [`push`],
//! [`add`] of local files, [`export`], [`show`], and the ONNX [`session`] helper for embedding.

pub mod add;
pub mod export;
pub mod fetch;
pub mod pull;
pub mod push;

#[cfg(feature = "onnx")]
pub mod session;
pub mod show;
