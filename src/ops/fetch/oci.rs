//! One attempt at an `oci://` source: a blob of a registry, fetched through the registry client
//! (which authenticates) and received exactly like an HTTP source (Range resume, size limit,
//! short bodies caught). The digest in the reference is the blob's sha256; `publish` checks it
//! (the pull pins it), so a registry that serves other bytes publishes nothing (I1).

use super::{http, FetchError};
use crate::ops::fetch::registry::{Client, OciError, Reference, Target};
use crate::store::publish::TempBlob;
use crate::sys::progress::Progress;

pub(super) fn attempt(
    client: &mut Client,
    reference: &Reference,
    temp: &mut TempBlob,
    limit: Option<u64>,
    progress: &mut dyn Progress,
) -> Result<(), FetchError> {
    let Some(Target::Digest(digest)) = &reference.target else {
        return Err(FetchError::BadUrl {
            url: reference.to_string(),
            detail: "an oci:// source must name a blob by digest (@sha256:…)".into(),
        });
    };
    let url = reference.to_string();
    let config = client.config().clone();
    let mut get = |start: u64| {
        client
            .get_blob(reference, digest, start)
            .map_err(to_fetch_error)
    };
    http::receive(&url, temp, limit, progress, &mut get, &|e| {
        super::classify_http_error(e, &url, &config)
    })
}

/// A registry failure as the fetch layer classifies it: transport errors keep their retry
/// decision; everything else (refused credentials, a token service down) is one failure.
pub(super) fn to_fetch_error(e: OciError) -> FetchError {
    match e {
        OciError::Transport { error, .. } => error,
        other => FetchError::Registry(Box::new(other)),
    }
}
