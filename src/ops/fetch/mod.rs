//! Sources (docs/design.md#sources): getting a model's bytes from one URL into a [`TempBlob`], resuming and
//! retrying as needed.
//!
//! This module owns *transport* only: which URL forms exist ([`Source`]), how one attempt runs
//! (`http`, `file`, and `oci`: a registry blob, fetched through [`crate::ops::fetch::registry::Client`] and
//! received like HTTP), and the retry loop ([`Fetcher::fetch`]). It writes nothing but the temp blob
//! it is handed, through [`TempBlob::append`]/[`TempBlob::restart`]; whether the bytes are right is
//! decided afterwards by [`crate::store::publish::publish`] (invariant I1 never depends on the source).
//! What it guarantees on its side:
//!
//! - constant memory in the model size: bytes stream through a fixed buffer into the temp file;
//! - never more than `limit` bytes are written: the attempt fails the moment a body goes past the
//!   catalogue's size ([`FetchError::TooLarge`]);
//! - a retry or a later run continues from the bytes already written (`Range: bytes=N-`), and a
//!   source that cannot continue (a `200` answer) starts the file over instead of appending.

mod config;
mod error;
mod file;
mod http;
mod oci;
pub mod registry;

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

pub use config::Config;
pub use error::FetchError;
pub(crate) use http::{agent as http_agent, classify as classify_http_error};

use crate::store::publish::TempBlob;
use crate::sys::progress::Progress;

/// Read size while streaming: large enough for throughput, small enough to be constant memory.
const CHUNK: usize = 256 * 1024;

/// One entry of a manifest's `urls`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `http://` or `https://`.
    Http(String),
    /// `file://` or a path relative to the manifest's directory.
    File(PathBuf),
    /// A blob in an OCI registry: `oci://HOST/REPO@sha256:HEX` (or `oci+http://`).
    Oci(crate::model::reference::Reference),
}

impl Source {
    /// Resolves `url` from a manifest in `base` (`None` for a catalogue with no directory, like
    /// the bundled one, where relative paths cannot be resolved).
    pub fn parse(url: &str, base: Option<&Path>, catalogue: &Path) -> Result<Source, FetchError> {
        use crate::model::url::{classify, Url, UrlProblem};
        match classify(url) {
            Ok(Url::Http(u)) => Ok(Source::Http(u.to_owned())),
            Ok(Url::File(path)) => {
                let path = percent_decode(path);
                // `file:///C:/x` names `C:/x` on Windows.
                let path = match path.strip_prefix('/') {
                    Some(drive) if cfg!(windows) && crate::model::url::is_drive_path(drive) => {
                        drive.to_owned()
                    }
                    _ => path,
                };
                Ok(Source::File(PathBuf::from(path)))
            }
            Ok(Url::Oci(reference)) => Ok(Source::Oci(reference)),
            Ok(Url::Path(p)) => {
                let rel = Path::new(p);
                if rel.is_absolute() {
                    return Ok(Source::File(rel.to_owned()));
                }
                match base {
                    Some(dir) => Ok(Source::File(dir.join(rel))),
                    None => Err(FetchError::RelativeWithoutBase {
                        url: url.to_owned(),
                        catalogue: catalogue.display().to_string(),
                    }),
                }
            }
            Err(UrlProblem::UnsupportedScheme(_)) => Err(FetchError::UnsupportedScheme {
                url: url.to_owned(),
            }),
            Err(problem @ (UrlProblem::Empty | UrlProblem::Malformed(_))) => {
                Err(FetchError::BadUrl {
                    url: url.to_owned(),
                    detail: problem.to_string(),
                })
            }
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Http(u) => f.write_str(u),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Oci(r) => write!(f, "{r}"),
        }
    }
}

/// Fetches sources with one [`Config`]; the HTTP client is built on first use (so offline and
/// file-only pulls never set up TLS).
pub struct Fetcher {
    config: Config,
    http: Option<http::Client>,
    /// One registry client per registry, so tokens are fetched once per pull.
    registries: Vec<(String, crate::ops::fetch::registry::Client)>,
    /// The manifests tags named, read once per fetcher (one pull command): every file of a
    /// model by tag is checked against the same manifest, fetched once.
    tagged: Vec<(String, registry::types::Manifest)>,
}

impl Fetcher {
    pub fn new(config: Config) -> Self {
        Fetcher {
            config,
            http: None,
            registries: Vec::new(),
            tagged: Vec::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Brings `temp` to the complete content of `source`, continuing from `temp.len()`.
    ///
    /// `limit` is the catalogue's size, when known. Transient failures (connection errors,
    /// stalls, 5xx, 429) are retried `config.retries` times with backoff, each retry resuming.
    /// On error `temp` holds whatever arrived (keep it for a later resume unless
    /// [`FetchError::discards_partial`]).
    pub fn fetch(
        &mut self,
        source: &Source,
        temp: &mut TempBlob,
        limit: Option<u64>,
        progress: &mut dyn Progress,
    ) -> Result<(), FetchError> {
        self.fetch_from(source, temp, limit, false, progress)
    }

    /// [`Fetcher::fetch`], knowing whether another source (a mirror) comes after this one: then a
    /// connection that cannot be made (refused, unreachable, connect timeout) is not retried here,
    /// the next source is tried at once; retries are for the last source, and for answers that
    /// say "later" (5xx, 429) or a transfer cut midway.
    pub fn fetch_from(
        &mut self,
        source: &Source,
        temp: &mut TempBlob,
        limit: Option<u64>,
        more_sources: bool,
        progress: &mut dyn Progress,
    ) -> Result<(), FetchError> {
        if self.config.offline {
            // The pull driver checks this first; this is the guarantee that nothing slips through.
            return Err(FetchError::Connection {
                detail: "offline mode forbids fetching".into(),
            });
        }
        let mut retry = 0;
        loop {
            if limit.is_some_and(|l| l > 0 && temp.len() == l) {
                return Ok(()); // a resumed partial that is already complete: publish checks it
            }
            let result = match source {
                Source::Http(url) => self.client()?.attempt(url, temp, limit, progress),
                Source::File(path) => file::attempt(path, temp, limit, progress),
                Source::Oci(reference) => {
                    let client = self.registry(reference)?;
                    oci::attempt(client, reference, temp, limit, progress)
                }
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if more_sources && e.is_unreachable() => return Err(e),
                Err(e) if e.is_transient() && retry < self.config.retries => {
                    let wait = self.config.backoff(retry, e.retry_after());
                    retry += 1;
                    progress.notice(&format!(
                        "{source}: {e}; retry {retry} of {} in {wait:?}, resuming at {}",
                        self.config.retries,
                        crate::sys::progress::at_byte(temp.len(), limit)
                    ));
                    std::thread::sleep(wait);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// For a source that names a registry manifest by tag (`oci://HOST/REPO:TAG`, a catalogue
    /// entry by reference): the blob of the file at `path` in that manifest, as an
    /// `oci://…@sha256:…` source. The layer is the one titled `path`, else the only one. What
    /// the entry pins (BLAKE3 by the layer's `dev.beaker.blake3`, sha256, size) must be what the
    /// manifest says now: a tag moved to other bytes is refused before anything is downloaded
    /// (and the bytes are checked against the pins as ever after). Other sources are returned
    /// as they are.
    pub fn by_tag(
        &mut self,
        source: Source,
        path: &crate::model::file_path::FilePath,
        expect: &crate::model::entry::Expect,
    ) -> Result<Source, FetchError> {
        use crate::model::reference::Target;
        let reference = match source {
            Source::Oci(r) if matches!(r.target, Some(Target::Tag(_))) => r,
            other => return Ok(other),
        };
        let key = reference.to_string();
        let manifest = match self.tagged.iter().find(|(k, _)| *k == key) {
            Some((_, m)) => m.clone(),
            None => {
                let (m, _, _) = self
                    .registry(&reference)?
                    .get_manifest(&reference)
                    .map_err(oci::to_fetch_error)?;
                self.tagged.push((key, m.clone()));
                m
            }
        };
        let refuse = |detail: String| {
            FetchError::Registry(Box::new(registry::OciError::Mismatch {
                reference: reference.to_string(),
                detail,
            }))
        };
        let titled = |l: &&registry::types::Descriptor| {
            l.annotations
                .get(registry::types::TITLE)
                .map(String::as_str)
                == Some(path.as_str())
        };
        let layer = match manifest.layers.iter().find(titled) {
            Some(l) => l,
            None if manifest.layers.len() == 1 => &manifest.layers[0],
            None => {
                let titles: Vec<&str> = manifest
                    .layers
                    .iter()
                    .filter_map(|l| l.annotations.get(registry::types::TITLE))
                    .map(String::as_str)
                    .collect();
                return Err(refuse(format!(
                    "no layer of the manifest is titled {path} (it has {}); name the file as the \
                     manifest does (`file = …` or the files' `path`)",
                    titles.join(", ")
                )));
            }
        };
        let sha256 = layer
            .digest
            .strip_prefix("sha256:")
            .and_then(|h| crate::model::digest::Sha256::from_hex(h).ok())
            .ok_or_else(|| refuse(format!("{path}: beaker reads sha256 layer digests only")))?;
        let moved = |what: &str, pinned: String, now: String| {
            refuse(format!(
                "the tag now names other bytes for {path}: {what} {now}, where the catalogue pins \
                 {pinned}; nothing was downloaded (pin the tag's new content in the catalogue if \
                 the move was meant, or point it at a tag or mirror with the pinned bytes)"
            ))
        };
        if let Some(pinned) = expect.upstream.sha256 {
            if pinned != sha256 {
                return Err(moved("sha256", pinned.to_hex(), sha256.to_hex()));
            }
        }
        if let Some(size) = expect.size().filter(|s| *s != layer.size) {
            return Err(moved("size", size.to_string(), layer.size.to_string()));
        }
        if let (Some(pinned), Some(annotated)) = (
            expect.blake3(),
            layer.annotations.get(registry::types::BLAKE3),
        ) {
            if pinned.to_hex() != annotated.to_ascii_lowercase() {
                return Err(moved("blake3", pinned.to_hex(), annotated.clone()));
            }
        }
        Ok(Source::Oci(reference.with_target(Target::Digest(sha256))))
    }

    fn registry(
        &mut self,
        reference: &crate::model::reference::Reference,
    ) -> Result<&mut crate::ops::fetch::registry::Client, FetchError> {
        let base = reference.base_url();
        let at = match self.registries.iter().position(|(b, _)| *b == base) {
            Some(at) => at,
            None => {
                let client = crate::ops::fetch::registry::Client::new(reference, &self.config)
                    .map_err(oci::to_fetch_error)?;
                self.registries.push((base, client));
                self.registries.len() - 1
            }
        };
        Ok(&mut self.registries[at].1)
    }

    fn client(&mut self) -> Result<&http::Client, FetchError> {
        let client = match self.http.take() {
            Some(c) => c,
            None => http::Client::new(&self.config)?,
        };
        Ok(self.http.insert(client))
    }
}

/// Streams `body` into `temp` with `io::copy` through a [`CHUNK`]-sized read buffer, refusing
/// to go past `limit`.
///
/// `classify` turns a read error into a [`FetchError`] (it differs per transport); a failure on
/// the writing side (the store, or the limit) is recorded by the [`Sink`] and wins.
fn stream(
    body: &mut dyn Read,
    temp: &mut TempBlob,
    limit: Option<u64>,
    progress: &mut dyn Progress,
    classify: &dyn Fn(std::io::Error) -> FetchError,
) -> Result<(), FetchError> {
    let mut sink = Sink {
        temp,
        limit,
        progress,
        failure: None,
    };
    // io::copy from a BufReader writes each filled buffer straight through: every byte read is
    // in the temp file before the next read (a SIGKILL loses nothing that arrived).
    let copied = std::io::copy(&mut BufReader::with_capacity(CHUNK, body), &mut sink);
    match (copied, sink.failure) {
        (Ok(_), _) => Ok(()),
        (Err(_), Some(failure)) => Err(failure),
        (Err(e), None) => Err(classify(e)),
    }
}

/// The writing end of [`stream`]: enforces the size limit before a byte is written, appends to
/// the temp blob (which hashes), reports progress, and remembers why it failed.
struct Sink<'a> {
    temp: &'a mut TempBlob,
    limit: Option<u64>,
    progress: &'a mut dyn Progress,
    failure: Option<FetchError>,
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.failure.is_some() {
            return Err(std::io::Error::other("the download already failed"));
        }
        if let Some(limit) = self.limit {
            if self.temp.len() + buf.len() as u64 > limit {
                self.failure = Some(FetchError::TooLarge { limit });
                return Err(std::io::Error::other("larger than the catalogue's size"));
            }
        }
        if let Err(e) = self.temp.append(buf) {
            self.failure = Some(FetchError::Store(e));
            return Err(std::io::Error::other("cannot write into the store"));
        }
        self.progress.advance(buf.len() as u64);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `%XX` decoding for `file://` paths (invalid escapes are kept as written).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Source, FetchError> {
        Source::parse(url, Some(Path::new("/cat")), Path::new("/cat/m.toml"))
    }

    #[test]
    fn url_forms() {
        assert_eq!(
            parse("https://h/x.onnx").unwrap(),
            Source::Http("https://h/x.onnx".into())
        );
        assert_eq!(
            parse("file:///srv/m%20x.onnx").unwrap(),
            Source::File("/srv/m x.onnx".into())
        );
        assert_eq!(
            parse("file://localhost/srv/a").unwrap(),
            Source::File("/srv/a".into())
        );
        assert_eq!(
            parse("models/a.onnx").unwrap(),
            Source::File("/cat/models/a.onnx".into())
        );
        assert!(matches!(
            parse("ftp://h/x"),
            Err(FetchError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            parse("file://otherhost/x"),
            Err(FetchError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            Source::parse("a.onnx", None, Path::new("<bundled>")),
            Err(FetchError::RelativeWithoutBase { .. })
        ));
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("/a%2"), "/a%2");
        assert_eq!(percent_decode("/a%zz"), "/a%zz");
        assert_eq!(percent_decode("/%41%42"), "/AB");
    }
}
