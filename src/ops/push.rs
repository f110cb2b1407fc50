//! `beaker store push NAME oci://…`: a model of the store as an OCI artifact (docs/design.md#registry).
//!
//! What goes up: the empty config `{}`, one layer per file of the model (its blob, streamed from
//! `blobs/<blake3>` in constant memory), then an image manifest with `artifactType:
//! application/vnd.beaker.model.v1`, each layer titled with the file's path and annotated with its
//! BLAKE3, and the model's name, description and main file as manifest annotations.
//!
//! - A blob the registry already has (`HEAD` 200 with the right size) is not uploaded, so a
//!   re-push sends only the manifest; the sha256 of each blob is computed once and remembered by
//!   the store ([`crate::store::sums`]), so a re-push hashes nothing either.
//! - Blobs below [`CHUNKED_FROM`] go up in one request (`POST` then `PUT …?digest=` with the
//!   file as the body: the fastest form on the registry measured in docs/registry.md). Larger ones go up
//!   in [`CHUNK`] `PATCH`es; when one fails (connection, 5xx) the upload asks the registry how far
//!   it got (`GET <Location>` → `Range`) and continues from there, up to `BEAKER_RETRIES` times.
//!   Only the newest `Location` is used: its state token carries the offset. A registry that
//!   dropped the session instead (distribution 2.8 does when part of the failed `PATCH` arrived:
//!   the data no longer matches the state token) answers 404/400, and the upload starts over in
//!   a new session.
//! - Nothing in the store changes except the remembered sha256 records.

use std::io::{Read, Seek, SeekFrom};

use serde::Serialize;
use sha2::Digest as _;
use ureq::SendBody;

use crate::model::digest::Sha256;
use crate::model::entry::Format;
use crate::model::name::ModelName;
use crate::model::reference::{Reference, Target};
use crate::ops::fetch;
use crate::ops::fetch::registry::client::{expect, header_str, with_auth, Access};
use crate::ops::fetch::registry::types::{self, Descriptor, Manifest};
use crate::ops::fetch::registry::{Client, OciError};
use crate::store::{BlobState, Store, StoreError};
use crate::sys::fsx;
use crate::sys::progress::Progress;

/// Blobs of this size and more are uploaded in chunks, with resume (256 MiB).
pub const CHUNKED_FROM: u64 = 256 << 20;
/// The size of one `PATCH` (64 MiB).
pub const CHUNK: u64 = 64 << 20;

/// What `push` did (the `--json` shape of `beaker store push`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pushed {
    pub name: ModelName,
    /// The reference pushed to, with its tag.
    pub reference: String,
    /// The manifest's digest, `sha256:…`.
    pub digest: String,
    /// Blob bytes actually sent (0 when the registry had every blob).
    pub uploaded_bytes: u64,
}

/// Upload settings: the fetch settings (timeouts, CA, retries) and the chunking thresholds.
#[derive(Debug, Clone)]
pub struct PushOptions {
    pub fetch: fetch::Config,
    pub chunked_from: u64,
    pub chunk: u64,
}

impl PushOptions {
    pub fn new(fetch: fetch::Config) -> Self {
        PushOptions {
            fetch,
            chunked_from: CHUNKED_FROM,
            chunk: CHUNK,
        }
    }

    /// [`PushOptions::new`] with `BEAKER_PUSH_CHUNK` (bytes per `PATCH`; blobs of 4 chunks or
    /// more are then sent in chunks) applied.
    pub fn from_env(fetch: fetch::Config) -> Result<Self, OciError> {
        let mut options = PushOptions::new(fetch);
        if let Some(v) = std::env::var("BEAKER_PUSH_CHUNK")
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            let chunk = v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&c| c > 0)
                .ok_or_else(|| {
                    OciError::Setting(fetch::FetchError::BadSetting {
                        setting: "BEAKER_PUSH_CHUNK",
                        value: v.clone(),
                        reason: "expected a number of bytes greater than 0".into(),
                    })
                })?;
            options.chunk = chunk;
            options.chunked_from = chunk.saturating_mul(4);
        }
        Ok(options)
    }
}

/// One blob to send.
struct Blob {
    sha256: Sha256,
    size: u64,
    /// The file's path in the model and its blob; `None` for the config (sent from memory).
    file: Option<(String, crate::sys::fsx::Rooted)>,
}

/// Pushes `name` from `store` to `reference` (tag `latest` when it names none).
pub fn push(
    store: &Store,
    name: &ModelName,
    reference: &Reference,
    options: &PushOptions,
    progress: &mut dyn Progress,
) -> Result<Pushed, OciError> {
    let tag = match &reference.target {
        Some(Target::Tag(t)) => t.clone(),
        None => "latest".to_owned(),
        Some(Target::Digest(_)) => {
            return Err(OciError::BadPush {
                reference: reference.to_string(),
                detail: "a push goes to a tag (oci://HOST/REPO:TAG), not to a digest".into(),
            })
        }
    };
    let target = reference.with_target(Target::Tag(tag.clone()));
    let recorded = store.read_manifest()?;
    let record = recorded
        .models
        .get(name)
        .ok_or_else(|| StoreError::NotInStore {
            name: name.clone(),
            close: Vec::new(),
        })?;
    let entry = &record.model;
    let files = entry.model_files();
    let main = &entry.main().path;

    // The sha256 of every file: remembered, or computed once now and remembered.
    let mut layers = Vec::with_capacity(files.len());
    let mut blobs = Vec::with_capacity(files.len() + 1);
    for f in &files {
        let path = store.layout().blob(&f.blake3);
        match store.blob_state(&f.blake3, Some(f.size))? {
            BlobState::Present { .. } => {}
            BlobState::Absent => {
                return Err(StoreError::BlobMissing {
                    name: name.clone(),
                    blob: f.blake3,
                    path: path.path(),
                }
                .into())
            }
            BlobState::Damaged { problem } => {
                return Err(StoreError::DamagedBlob {
                    path: path.path(),
                    problem,
                }
                .into())
            }
        }
        let sha256 = match store.sha256_of(&f.blake3, f.size) {
            Some(d) => d,
            None => {
                progress.start(&format!("sha256 of {}", f.path), Some(f.size));
                let d = sha256_file(&path, f.size, progress);
                progress.finish();
                let d = d?;
                // A hint for the next push; failing to write it costs a re-hash, not this push.
                let _ = store.remember_sha256(&f.blake3, f.size, &d);
                d
            }
        };
        let onnx = entry.format == Some(Format::Onnx) && f.path.as_str().ends_with(".onnx");
        let mut annotations = std::collections::BTreeMap::new();
        annotations.insert(types::TITLE.to_owned(), f.path.to_string());
        annotations.insert(types::BLAKE3.to_owned(), f.blake3.to_hex());
        layers.push(Descriptor {
            media_type: if onnx {
                types::ONNX
            } else {
                types::OCTET_STREAM
            }
            .to_owned(),
            digest: format!("sha256:{}", sha256.to_hex()),
            size: f.size,
            annotations,
        });
        blobs.push(Blob {
            sha256,
            size: f.size,
            file: Some((f.path.to_string(), path)),
        });
    }
    let config_digest = Sha256::from_bytes(sha2::Sha256::digest(types::EMPTY_CONFIG_BYTES).into());
    blobs.insert(
        0,
        Blob {
            sha256: config_digest,
            size: types::EMPTY_CONFIG_BYTES.len() as u64,
            file: None,
        },
    );

    let mut annotations = std::collections::BTreeMap::new();
    annotations.insert(types::MODEL_NAME.to_owned(), name.to_string());
    if let Some(d) = &entry.description {
        annotations.insert(types::DESCRIPTION.to_owned(), d.clone());
    }
    // When the model was recorded, as oras stamps its pushes; the record's time, not the push's,
    // so that the same model pushed twice is the same manifest.
    if let Some(added) = &record.added {
        annotations.insert(types::CREATED.to_owned(), added.clone());
    }
    if files.first().is_some_and(|f| &f.path != main) {
        annotations.insert(types::MAIN.to_owned(), main.to_string());
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(types::MANIFEST_V1.into()),
        artifact_type: Some(types::ARTIFACT_TYPE.into()),
        config: Descriptor {
            media_type: types::EMPTY_CONFIG.into(),
            digest: format!("sha256:{}", config_digest.to_hex()),
            size: types::EMPTY_CONFIG_BYTES.len() as u64,
            annotations: Default::default(),
        },
        layers,
        annotations,
    };
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| OciError::BadPush {
        reference: target.to_string(),
        detail: format!("cannot serialize the manifest: {e}"),
    })?;

    let mut client = Client::new(&target, &options.fetch)?;
    let mut uploaded = 0;
    for blob in &blobs {
        // Blobs are linked per repository: the config too must be in this one.
        if client.head_blob(&target, &blob.sha256)? == Some(blob.size) {
            continue;
        }
        let label = match &blob.file {
            Some((file, _)) => format!("{name}: {file}"),
            None => format!("{name}: config"),
        };
        progress.start(&label, Some(blob.size));
        let sent = upload(&mut client, &target, blob, options, progress);
        progress.finish();
        uploaded += sent?;
    }
    let ours = format!(
        "sha256:{}",
        Sha256::from_bytes(sha2::Sha256::digest(&manifest_bytes).into()).to_hex()
    );
    let theirs = client.put_manifest(&target, &tag, &manifest_bytes)?;
    if let Some(theirs) = theirs.filter(|t| *t != ours) {
        return Err(OciError::Mismatch {
            reference: target.to_string(),
            detail: format!(
                "the registry stored the manifest as {theirs}, but its bytes hash to {ours}"
            ),
        });
    }
    Ok(Pushed {
        name: name.clone(),
        reference: target.to_string(),
        digest: ours,
        uploaded_bytes: uploaded,
    })
}

/// The sha256 of the blob at `path`, read once in fixed-size pieces (`sha2` uses SHA-NI where
/// the CPU has it). The blob must hold exactly `size` bytes.
fn sha256_file(
    path: &crate::sys::fsx::Rooted,
    size: u64,
    progress: &mut dyn Progress,
) -> Result<Sha256, OciError> {
    let mut file = fsx::open_read(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| crate::sys::error::IoError::new("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
        progress.advance(n as u64);
    }
    if total != size {
        return Err(StoreError::DamagedBlob {
            path: path.path(),
            problem: format!("{total} bytes, {size} expected"),
        }
        .into());
    }
    Ok(Sha256::from_bytes(hasher.finalize().into()))
}

/// Uploads one blob; returns the bytes sent.
fn upload(
    client: &mut Client,
    target: &Reference,
    blob: &Blob,
    options: &PushOptions,
    progress: &mut dyn Progress,
) -> Result<u64, OciError> {
    let mut location = start_upload(client, target)?;
    let digest = format!("sha256:{}", blob.sha256.to_hex());
    let Some((_, path)) = &blob.file else {
        let url = with_digest(&client.url(&location), &digest);
        let ours = client.same_origin(&url);
        let response = client.send(target, Access::Push, &mut |agent, auth| {
            with_auth(agent.put(&url), auth.filter(|_| ours))
                .header("Content-Type", "application/octet-stream")
                .send(types::EMPTY_CONFIG_BYTES)
        })?;
        expect(target, "uploading the config", response, &[201])?;
        return Ok(blob.size);
    };
    if blob.size < options.chunked_from {
        let url = with_digest(&client.url(&location), &digest);
        let ours = client.same_origin(&url);
        let response = client.send(target, Access::Push, &mut |agent, auth| {
            let file = fsx::open_read(path).map_err(|e| ureq::Error::Io(e.source))?;
            with_auth(agent.put(&url), auth.filter(|_| ours))
                .header("Content-Type", "application/octet-stream")
                .send(file)
        })?;
        expect(
            target,
            &format!("uploading blob {digest}"),
            response,
            &[201],
        )?;
        progress.advance(blob.size);
        return Ok(blob.size);
    }
    // Chunked, resuming from the registry's Range after a failed PATCH.
    let mut offset = 0u64;
    let mut retries = 0u32;
    while offset < blob.size {
        let len = options.chunk.min(blob.size - offset);
        match patch(client, target, &location, path, offset, len) {
            Ok((next, end)) => {
                progress.advance(end.saturating_sub(offset));
                location = next;
                offset = end;
            }
            Err(e) if retries < options.fetch.retries && transient(&e) => {
                retries += 1;
                let wait = options.fetch.backoff(retries - 1, None);
                progress.notice(&format!(
                    "{target}: {e}; asking the registry how far the upload got (retry {retries} of {})",
                    options.fetch.retries
                ));
                std::thread::sleep(wait);
                match upload_status(client, target, &location) {
                    Ok((next, end)) => {
                        progress.notice(&format!("{target}: continuing the upload at byte {end}"));
                        location = next;
                        offset = end;
                    }
                    // distribution 2.8 drops a session whose last PATCH broke off after some
                    // of its bytes arrived (its state no longer matches the data): start over.
                    Err(OciError::Status {
                        status: 400 | 404, ..
                    }) => {
                        progress.notice(&format!(
                            "{target}: the registry dropped the interrupted upload; starting it over"
                        ));
                        location = start_upload(client, target)?;
                        offset = 0;
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    let url = with_digest(&client.url(&location), &digest);
    let ours = client.same_origin(&url);
    let response = client.send(target, Access::Push, &mut |agent, auth| {
        with_auth(agent.put(&url), auth.filter(|_| ours))
            .header("Content-Type", "application/octet-stream")
            .send_empty()
    })?;
    expect(
        target,
        &format!("finishing blob {digest}"),
        response,
        &[201],
    )?;
    Ok(blob.size)
}

/// `POST /v2/<repo>/blobs/uploads/` → the upload's `Location`.
fn start_upload(client: &mut Client, target: &Reference) -> Result<String, OciError> {
    let url = client.url(&format!("/v2/{}/blobs/uploads/", target.repository));
    let response = client.send(target, Access::Push, &mut |agent, auth| {
        with_auth(agent.post(&url), auth).send_empty()
    })?;
    let response = expect(target, "starting an upload", response, &[202])?;
    location_of(target, &response)
}

/// One `PATCH` of `len` bytes from `offset`; returns the new `Location` and the offset the
/// registry now has (from its `Range: 0-N`).
fn patch(
    client: &mut Client,
    target: &Reference,
    location: &str,
    path: &crate::sys::fsx::Rooted,
    offset: u64,
    len: u64,
) -> Result<(String, u64), OciError> {
    let url = client.url(location);
    let ours = client.same_origin(&url);
    let response = client.send(target, Access::Push, &mut |agent, auth| {
        let mut file = fsx::open_read(path).map_err(|e| ureq::Error::Io(e.source))?;
        file.seek(SeekFrom::Start(offset))?;
        let mut piece = file.take(len);
        with_auth(agent.patch(&url), auth.filter(|_| ours))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{offset}-{}", offset + len - 1))
            .send(SendBody::from_reader(&mut piece))
    })?;
    let response = expect(target, "uploading a chunk", response, &[202])?;
    Ok((location_of(target, &response)?, range_end(&response)))
}

/// `GET <Location>` → 204 with `Range`: how far an interrupted upload got.
fn upload_status(
    client: &mut Client,
    target: &Reference,
    location: &str,
) -> Result<(String, u64), OciError> {
    let url = client.url(location);
    let ours = client.same_origin(&url);
    let response = client.send(target, Access::Push, &mut |agent, auth| {
        with_auth(agent.get(&url), auth.filter(|_| ours)).call()
    })?;
    let response = expect(target, "asking how far the upload got", response, &[204])?;
    let next = location_of(target, &response).unwrap_or_else(|_| location.to_owned());
    Ok((next, range_end(&response)))
}

/// The offset after `Range: 0-N` (N + 1), or 0 when the registry has nothing (`0-0` with no
/// bytes is ambiguous in the spec; distribution sends it for an empty upload, so it means 0 only
/// before any byte was sent — the next PATCH's answer corrects it).
fn range_end(response: &ureq::http::Response<ureq::Body>) -> u64 {
    header_str(response, "range")
        .and_then(|r| {
            let end = r
                .trim()
                .trim_start_matches("bytes=")
                .split('-')
                .nth(1)?
                .trim()
                .to_owned();
            end.parse::<u64>().ok()
        })
        .map_or(0, |end| end + 1)
}

fn location_of(
    target: &Reference,
    response: &ureq::http::Response<ureq::Body>,
) -> Result<String, OciError> {
    header_str(response, "location").ok_or_else(|| OciError::BadPush {
        reference: target.to_string(),
        detail: "the registry started an upload but sent no Location".into(),
    })
}

/// `LOCATION?digest=…` or `LOCATION&digest=…`.
fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

fn transient(e: &OciError) -> bool {
    match e {
        OciError::Transport { error, .. } => error.is_transient(),
        OciError::Status { status, .. } => *status == 429 || (500..600).contains(status),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_joins_the_location_query() {
        assert_eq!(
            with_digest("http://h/u/1", "sha256:a"),
            "http://h/u/1?digest=sha256:a"
        );
        assert_eq!(
            with_digest("http://h/u/1?_state=x", "sha256:a"),
            "http://h/u/1?_state=x&digest=sha256:a"
        );
    }
}
