//! An OCI registry as the shared remote (docs/design.md#registry): `beaker store push`, `oci://` pulls,
//! `ls-remote` and `registry login`, on a blocking ureq client with no async runtime.
//!
//! - [`reference`](mod@reference): `oci://HOST[:PORT]/REPO[:TAG|@sha256:HEX]`, parsed and checked at the edge;
//! - [`types`]: the OCI manifest and descriptor as serde structs, media types, annotation keys;
//! - [`client`]: the distribution-spec calls, each answering a 401 challenge through [`auth`]
//!   with the credentials of [`credentials`];
//! - [`push`]: a model of the store as an artifact (config `{}`, one layer per file);
//! - [`pull`]: a manifest as a catalogue entry of `oci://…@sha256:…` files, which the ordinary
//!   pull ([`crate::ops::pull`]) downloads through [`crate::ops::fetch`] like any source.
//!
//! Nothing here writes into the store except through the publish protocol (pulls) and the
//! remembered sha256 records ([`crate::store::sums`]).

pub mod auth;
pub mod client;
pub mod credentials;
mod error;
pub mod types;

pub use crate::model::reference::{BadReference, Reference, Scheme, Target};
pub use client::Client;
pub use error::OciError;

/// `ls-remote`: one tag and the model name its manifest carries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RemoteTag {
    pub tag: String,
    /// `dev.beaker.model.name`, when the manifest is a beaker model.
    pub name: Option<String>,
    /// The manifest's digest.
    pub digest: Option<String>,
}

/// Lists the tags of `reference`'s repository, each with the model name its manifest annotates
/// (a tag whose manifest cannot be read is listed without one).
pub fn list_remote(
    reference: &Reference,
    config: &crate::ops::fetch::Config,
) -> Result<Vec<RemoteTag>, OciError> {
    let mut client = Client::new(reference, config)?;
    let tags = client.tags(reference)?;
    let mut out = Vec::with_capacity(tags.len());
    for tag in tags {
        let at = reference.with_target(Target::Tag(tag.clone()));
        let (name, digest) = match client.get_manifest(&at) {
            Ok((m, d, _)) => (
                m.annotations.get(types::MODEL_NAME).cloned(),
                Some(format!("sha256:{}", d.to_hex())),
            ),
            Err(_) => (None, None),
        };
        out.push(RemoteTag { tag, name, digest });
    }
    Ok(out)
}

/// `registry login`: checks `creds` against the registry (`GET /v2/`, answering its challenge),
/// then saves them in the docker config. Returns the file written.
pub fn login(
    reference: &Reference,
    creds: credentials::Credentials,
    config: &crate::ops::fetch::Config,
) -> Result<std::path::PathBuf, OciError> {
    let mut client = Client::new(reference, config)?;
    client.use_credentials(creds.clone());
    client.ping(reference)?;
    credentials::save_login(&reference.registry, &creds)
}
