//! [digest]: upstream digests (md5, sha256, the registry's BLAKE3 annotation) through the real
//! binary — the digest index that maps them to blobs (`index`), and claims next to a BLAKE3 the
//! store already holds, refused when wrong and recorded nowhere (`claims`).

// Unix only: its claims come from the registry server.
#[cfg(unix)]
mod claims;
pub mod index;
