//! Reading a model out of a registry: the manifest is fetched and checked here, and turned into a
//! catalogue entry whose files are `oci://…@sha256:…` blobs. The pull itself is the ordinary one
//! ([`crate::ops::pull::Puller`]): each layer is downloaded through the same lock / temp file / resume /
//! publish path as an HTTP source, checked against the layer's sha256 and size (pinned in the
//! entry) and its `dev.beaker.blake3` annotation when present.
//!
//! What is refused, naming the reference: bytes that are not JSON, an image index or Docker list
//! (several manifests), a document that is not an image manifest, manifest bytes whose sha256 is
//! not the digest asked for or the one the registry announced, a layer without
//! `org.opencontainers.image.title` (beaker names files by it), two layers with one title, a
//! digest that is not sha256.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::model::catalogue::Resolved;
use crate::model::digest::{Blake3, Sha256};
use crate::model::entry::{Expected, File, Format, Model, Pin, Upstreams};
use crate::model::file_path::FilePath;
use crate::model::name::ModelName;
use crate::model::reference::{default_name, Reference, Target};
use crate::ops::fetch;
use crate::ops::fetch::registry::types::{self, Manifest};
use crate::ops::fetch::registry::{Client, OciError};

/// A model found in a registry, ready for [`crate::ops::pull::Puller::pull`].
#[derive(Debug, Clone)]
pub struct Remote {
    pub model: Resolved,
    /// The manifest's digest (`sha256:…`).
    pub digest: String,
}

/// Fetches the manifest `reference` names (tag `latest` when it names none) and makes the entry
/// to pull. `name` overrides the manifest's `dev.beaker.model.name` and the repository's name.
pub fn resolve(
    reference: &Reference,
    name: Option<ModelName>,
    config: &fetch::Config,
) -> Result<Remote, OciError> {
    if config.offline {
        return Err(OciError::Transport {
            reference: reference.to_string(),
            error: crate::ops::fetch::FetchError::Connection {
                detail: "offline mode forbids fetching the manifest".into(),
            },
        });
    }
    let mut client = Client::new(reference, config)?;
    let (manifest, digest, _) = client.get_manifest(reference)?;
    let model = to_model(reference, &manifest, name)?;
    Ok(Remote {
        model,
        digest: format!("sha256:{}", digest.to_hex()),
    })
}

/// The model a manifest describes: one file per layer, named by its title, pinned by its sha256,
/// size and (when annotated) BLAKE3, fetched from `oci://…@<layer digest>`.
pub(super) fn to_model(
    reference: &Reference,
    manifest: &Manifest,
    name: Option<ModelName>,
) -> Result<Resolved, OciError> {
    let bad = |detail: String| OciError::BadManifest {
        reference: reference.to_string(),
        detail,
    };
    if manifest.layers.is_empty() {
        return Err(bad(
            "the manifest has no layers: there is no file to pull".into()
        ));
    }
    let mut files = Vec::with_capacity(manifest.layers.len());
    let mut seen = BTreeSet::new();
    let mut onnx = false;
    for (n, layer) in manifest.layers.iter().enumerate() {
        let which = format!("layer {} ({})", n + 1, layer.digest);
        let sha256 = layer
            .digest
            .strip_prefix("sha256:")
            .and_then(|h| Sha256::from_hex(h).ok())
            .ok_or_else(|| bad(format!("{which}: beaker reads sha256 digests only")))?;
        let title = layer.annotations.get(types::TITLE).ok_or_else(|| {
            bad(format!(
                "{which} has no {} annotation to name its file by; push files with a title (oras push does)",
                types::TITLE
            ))
        })?;
        let path = FilePath::new_portable(title).map_err(|e| {
            bad(format!(
                "{which}: its title {title:?} is not a file path: {e}"
            ))
        })?;
        // A directory, as oras marks one: its unpack annotation (oras), or the tar+gzip layer
        // type (oras-py, which unpacks every layer of that type). Plain files get a
        // `…layer.v1.tar` type from both, so that type alone says nothing.
        if layer
            .annotations
            .get(types::ORAS_UNPACK)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || layer.media_type == types::TAR_GZIP_LAYER
        {
            return Err(bad(format!(
                "{which} ({title:?}) is a directory packed into one tar archive (as `oras push` \
                 packs a directory); beaker keeps a model's files one per layer and does not \
                 unpack archives: push the directory's files themselves (`oras push REF \
                 {title}/*`), or `beaker store add {title} --name NAME` and `beaker store push NAME REF`"
            )));
        }
        if !seen.insert(path.clone()) {
            return Err(bad(format!("{which}: two layers are titled {title:?}")));
        }
        let blob = match layer.annotations.get(types::BLAKE3) {
            Some(hex) => Expected::Pinned(Pin {
                blake3: Blake3::from_hex(hex).map_err(|e| {
                    bad(format!(
                        "{which}: its {} annotation is invalid: {e}",
                        types::BLAKE3
                    ))
                })?,
                size: layer.size,
            }),
            None => Expected::Unpinned {
                size: Some(layer.size),
            },
        };
        // ONNX by its media type, or by its title as oras pushes it (a generic layer type).
        onnx |= layer.media_type == types::ONNX
            || path.as_str().to_ascii_lowercase().ends_with(".onnx");
        let url = reference.with_target(Target::Digest(sha256));
        files.push(File {
            path,
            blob,
            upstream: Upstreams {
                sha256: Some(sha256),
                md5: None,
            },
            urls: vec![url.to_string()],
        });
    }
    // The name is the user's (`--name`) or the reference's, never the manifest's: a registry
    // must not choose which local name a pull re-points (`dev.beaker.model.name` is shown, not
    // obeyed).
    let name = match name {
        Some(n) => n,
        None => default_name(reference)
            .ok_or_else(|| bad("its repository is no model name; pass --name".into()))?,
    };
    let main = manifest
        .annotations
        .get(types::MAIN)
        .and_then(|m| FilePath::new_portable(m).ok())
        .filter(|m| seen.contains(m));
    // Titles were checked distinct and `main` one of them above; what is left to refuse is a
    // layer titled as a directory of another (`a` and `a/b`), which no snapshot can hold.
    let mut model = Model::listed(&name, files, main).map_err(|e| bad(e.to_string()))?;
    model.description = manifest.annotations.get(types::DESCRIPTION).cloned();
    model.format = onnx.then_some(Format::Onnx);
    Ok(Resolved {
        name,
        model,
        manifest: PathBuf::from(reference.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::fetch::registry::types::parse_manifest;

    fn reference() -> Reference {
        Reference::parse("oci://h/org/m:v1", false).unwrap()
    }

    fn err(bytes: &str) -> String {
        parse_manifest(&reference(), bytes.as_bytes(), "", None)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn not_json_an_index_or_not_a_manifest_are_refused_by_name() {
        assert!(err("<html>").contains("not JSON"), "{}", err("<html>"));
        let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        assert!(err(index).contains("image index"), "{}", err(index));
        assert!(err(r#"{"schemaVersion":2}"#).contains("not an OCI image manifest"));
        assert!(err(r#"{"a":1}"#).contains("oci://h/org/m:v1"));
    }

    #[test]
    fn a_lying_digest_is_refused() {
        let body = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:00","size":2},"layers":[]}"#;
        let e = parse_manifest(&reference(), body, "", Some("sha256:0000")).unwrap_err();
        assert!(e.to_string().contains("Docker-Content-Digest"), "{e}");
        let pinned =
            Reference::parse(&format!("oci://h/m@sha256:{}", "0".repeat(64)), false).unwrap();
        let e = parse_manifest(&pinned, body, "", None).unwrap_err();
        assert!(e.to_string().contains("the digest asked for"), "{e}");
    }

    #[test]
    fn layers_become_pinned_files() {
        let hex = "fc023002a593dbbb531931f06d269625c49f6a33b7c443298a97a66bd5c1e949";
        let json = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"sha256:{hex}","size":2}},
            "layers":[{{"mediaType":"application/vnd.onnx","digest":"sha256:{hex}","size":5,
            "annotations":{{"org.opencontainers.image.title":"m.onnx"}}}}],
            "annotations":{{"dev.beaker.model.name":"small"}}}}"#
        );
        let (m, _, _) = parse_manifest(&reference(), json.as_bytes(), "", None).unwrap();
        let r = to_model(&reference(), &m, None).unwrap();
        // Named by the reference (`oci://h/org/m:v1`), not by the manifest's annotation.
        assert_eq!(r.name.as_str(), "org/m");
        let files = r.model.files();
        assert_eq!(files[0].path.as_str(), "m.onnx");
        assert_eq!(files[0].blob, Expected::Unpinned { size: Some(5) });
        assert_eq!(files[0].urls, vec![format!("oci://h/org/m@sha256:{hex}")]);
        assert_eq!(r.model.format, Some(Format::Onnx));
        let untitled = json.replace(r#""org.opencontainers.image.title":"m.onnx""#, r#""x":"y""#);
        let (m, _, _) = parse_manifest(&reference(), untitled.as_bytes(), "", None).unwrap();
        let e = to_model(&reference(), &m, None).unwrap_err().to_string();
        assert!(
            e.contains("no org.opencontainers.image.title") && e.contains("oci://h/org/m:v1"),
            "{e}"
        );
    }
}
