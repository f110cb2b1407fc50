//! The OCI types beaker reads and writes (image-spec v1.1), as plain serde structs: a manifest,
//! its descriptors, and the media types and annotation keys of a beaker model (docs/design.md#registry).
//!
//! Reading is lenient where registries and other clients differ (missing `mediaType`, extra
//! fields) and strict where beaker's safety depends on it: every layer needs a sha256 digest and a
//! size, and the caller checks that a title names each file.

use sha2::Digest as _;

use super::OciError;
use crate::model::digest::Sha256;
use crate::model::reference::{Reference, Target};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An OCI image manifest.
pub const MANIFEST_V1: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index (several manifests, e.g. one per platform): not a model.
pub const INDEX_V1: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's manifest list (the same idea as an index).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The empty config (`{}`) of an artifact.
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
/// The config bytes of [`EMPTY_CONFIG`].
pub const EMPTY_CONFIG_BYTES: &[u8] = b"{}";
/// What a beaker model is, as an OCI artifact.
pub const ARTIFACT_TYPE: &str = "application/vnd.beaker.model.v1";
/// An ONNX file's layer.
pub const ONNX: &str = "application/vnd.onnx";
/// Any other file's layer.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The file path of a layer (what oras and others save it as).
pub const TITLE: &str = "org.opencontainers.image.title";
/// The model's description.
pub const DESCRIPTION: &str = "org.opencontainers.image.description";
/// When the content was created (RFC 3339): a model's record time on push.
pub const CREATED: &str = "org.opencontainers.image.created";
/// oras' mark of a layer that is a directory packed as tar+gzip, to be unpacked on pull.
pub const ORAS_UNPACK: &str = "io.deis.oras.content.unpack";
/// The layer type oras-py gives a directory it packs (and unpacks on pull).
pub const TAR_GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// A layer's BLAKE3, checked on pull when present.
pub const BLAKE3: &str = "dev.beaker.blake3";
/// The model's name in the store it was pushed from.
pub const MODEL_NAME: &str = "dev.beaker.model.name";
/// The model's main file (what `store path` prints), when it is not the first layer.
pub const MAIN: &str = "dev.beaker.model.main";

/// The `Accept` of a manifest GET: the OCI types (distribution 2.8 answers 404 to an OCI manifest
/// without them), and Docker's, so that an index or a list is recognised and refused by name.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image manifest. Serialized in this field order, which is the order of the spec's examples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Just enough of any manifest-like document to tell what it is.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Option<serde_json::Value>,
}

/// `GET /v2/<repo>/tags/list`.
#[derive(Debug, Deserialize)]
pub struct TagList {
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// Checks manifest bytes and parses them (see the module doc for what is refused).
pub(crate) fn parse_manifest(
    reference: &Reference,
    bytes: &[u8],
    content_type: &str,
    announced: Option<&str>,
) -> Result<(Manifest, Sha256, u64), OciError> {
    let bad = |detail: String| OciError::BadManifest {
        reference: reference.to_string(),
        detail,
    };
    if bytes.len() as u64 > super::client::MAX_MANIFEST {
        return Err(bad(format!(
            "the manifest is larger than {} bytes",
            super::client::MAX_MANIFEST
        )));
    }
    let digest = Sha256::from_bytes(sha2::Sha256::digest(bytes).into());
    let mismatch = |what: &str, want: &str| OciError::Mismatch {
        reference: reference.to_string(),
        detail: format!(
            "the manifest's bytes hash to sha256:{}, not {want} ({what})",
            digest.to_hex()
        ),
    };
    if let Some(Target::Digest(want)) = &reference.target {
        if *want != digest {
            return Err(mismatch(
                "the digest asked for",
                &format!("sha256:{}", want.to_hex()),
            ));
        }
    }
    if let Some(announced) = announced
        .map(str::trim)
        .filter(|a| a.starts_with("sha256:"))
    {
        if announced != format!("sha256:{}", digest.to_hex()) {
            return Err(mismatch(
                "the Docker-Content-Digest the registry sent",
                announced,
            ));
        }
    }
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("the manifest is not JSON: {e}")))?;
    let content_type = content_type.split(';').next().unwrap_or("").trim();
    let kind = probe.media_type.as_deref().unwrap_or(content_type);
    if kind == INDEX_V1 || kind == DOCKER_LIST || probe.manifests.is_some() {
        return Err(bad(
            "this is an image index (a list of manifests, e.g. one per platform), not a model; pull one of its manifests by digest (oci://HOST/REPO@sha256:…)".into(),
        ));
    }
    let manifest: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| bad(format!("this is not an OCI image manifest: {e}")))?;
    if manifest.schema_version != 2 {
        return Err(bad(format!(
            "schemaVersion {} is not 2; beaker reads OCI image manifests",
            manifest.schema_version
        )));
    }
    Ok((manifest, digest, bytes.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifest the notes record as accepted by distribution 2.8, byte for byte.
    #[test]
    fn a_manifest_serializes_in_spec_order() {
        let m = Manifest {
            schema_version: 2,
            media_type: Some(MANIFEST_V1.into()),
            artifact_type: Some(ARTIFACT_TYPE.into()),
            config: Descriptor {
                media_type: EMPTY_CONFIG.into(),
                digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
                    .into(),
                size: 2,
                annotations: BTreeMap::new(),
            },
            layers: vec![Descriptor {
                media_type: ONNX.into(),
                digest: "sha256:fc023002a593dbbb531931f06d269625c49f6a33b7c443298a97a66bd5c1e949"
                    .into(),
                size: 5000000,
                annotations: [(TITLE.to_owned(), "small.onnx".to_owned())].into(),
            }],
            annotations: [(MODEL_NAME.to_owned(), "small".to_owned())].into(),
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.beaker.model.v1","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.onnx","digest":"sha256:fc023002a593dbbb531931f06d269625c49f6a33b7c443298a97a66bd5c1e949","size":5000000,"annotations":{"org.opencontainers.image.title":"small.onnx"}}],"annotations":{"dev.beaker.model.name":"small"}}"#
        );
        let back: Manifest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }
}
