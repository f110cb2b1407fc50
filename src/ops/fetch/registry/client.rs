//! A blocking registry client on ureq 3: the handful of distribution-spec calls beaker makes, each
//! sent through [`Client::send`], which answers a 401 challenge ([`super::auth`]) and sends again.
//!
//! Status codes are answers, not errors (the agent is built by `crate::ops::fetch::http_agent` with
//! the pull's timeouts, CA bundle and proxy settings); redirects are followed without the
//! `Authorization` header (ureq's default), which is what blob storage behind a registry expects.

use std::io::Read;

use ureq::http::Response;
use ureq::{Agent, Body};

use super::auth::Auth;
use super::types::{self, Manifest};
use super::OciError;
use crate::model::digest::Sha256;
use crate::model::reference::Reference;
use crate::ops::fetch::{self, FetchError};

/// The largest manifest read (the spec suggests registries accept 4 MiB).
pub const MAX_MANIFEST: u64 = 4 << 20;

/// One request, made with the agent and the `Authorization` value it is handed (sent again
/// after a 401 is answered, so it must be repeatable: it reopens any file it sends).
pub type Call<'a> = dyn FnMut(&Agent, Option<&str>) -> Result<Response<Body>, ureq::Error> + 'a;

/// What an operation needs from the token service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
    /// No repository (`GET /v2/`): the challenge's own scope is used.
    Registry,
}

/// One registry, with its authorization state.
pub struct Client {
    agent: Agent,
    base: String,
    registry: String,
    config: fetch::Config,
    auth: Auth,
}

impl Client {
    pub fn new(reference: &Reference, config: &fetch::Config) -> Result<Client, OciError> {
        let agent = fetch::http_agent(config).map_err(|error| OciError::Transport {
            reference: reference.to_string(),
            error,
        })?;
        Ok(Client {
            agent,
            base: reference.base_url(),
            registry: reference.registry.clone(),
            config: config.clone(),
            auth: Auth::for_registry(&reference.registry),
        })
    }

    /// Uses `creds` instead of looking credentials up (`registry login` checks the ones typed).
    pub fn use_credentials(&mut self, creds: super::credentials::Credentials) {
        self.auth.set_credentials(creds);
    }

    /// The fetch settings this client was made with.
    pub fn config(&self) -> &fetch::Config {
        &self.config
    }

    /// Whether `url` is on this registry (same scheme, host and port): only there is the
    /// `Authorization` header sent. An upload `Location` may point elsewhere.
    pub fn same_origin(&self, url: &str) -> bool {
        url.strip_prefix(&self.base)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// `BASE/v2/…` for a path, or a `Location` the registry gave (absolute, or relative to BASE).
    pub fn url(&self, path_or_location: &str) -> String {
        if path_or_location.starts_with("http://") || path_or_location.starts_with("https://") {
            path_or_location.to_owned()
        } else {
            format!("{}{path_or_location}", self.base)
        }
    }

    /// Sends the request `call` makes (with the authorization it is handed), answering a 401
    /// once: a second 401 to fresh credentials or a fresh token is a refusal.
    pub fn send(
        &mut self,
        reference: &Reference,
        access: Access,
        call: &mut Call<'_>,
    ) -> Result<Response<Body>, OciError> {
        let scope = match access {
            Access::Pull => format!("repository:{}:pull", reference.repository),
            Access::Push => format!("repository:{}:pull,push", reference.repository),
            Access::Registry => String::new(),
        };
        let mut answered = false;
        loop {
            let header = self.auth.header(&scope);
            let response = call(&self.agent, header.as_deref()).map_err(|e| {
                let error = match fetch::classify_http_error(e, &self.base, &self.config) {
                    FetchError::Tls { host, detail } => FetchError::Tls {
                        host,
                        detail: format!(
                            "{detail}; if the registry speaks plain HTTP, write oci+http:// or pass --plain-http"
                        ),
                    },
                    other => other,
                };
                OciError::Transport {
                    reference: reference.to_string(),
                    error,
                }
            })?;
            if response.status().as_u16() != 401 {
                return Ok(response);
            }
            let www = header_str(&response, "www-authenticate");
            if answered {
                return Err(OciError::Unauthorized {
                    reference: reference.to_string(),
                    login: super::error::login_arg(
                        &self.registry,
                        self.base.starts_with("https://"),
                    ),
                    detail: String::new(),
                });
            }
            self.auth.answer(
                &self.agent,
                www.as_deref(),
                &scope,
                &reference.to_string(),
                &self.registry,
                self.base.starts_with("https://"),
            )?;
            answered = true;
        }
    }

    /// `GET /v2/`: is the registry there, and do the credentials work?
    pub fn ping(&mut self, reference: &Reference) -> Result<(), OciError> {
        let url = self.url("/v2/");
        let response = self.send(reference, Access::Registry, &mut |agent, auth| {
            with_auth(agent.get(&url), auth).call()
        })?;
        expect(reference, "GET /v2/", response, &[200]).map(drop)
    }

    /// The manifest `reference` names, with its bytes' sha256 (checked against a pinned digest,
    /// and against the registry's `Docker-Content-Digest` when it sends one).
    pub fn get_manifest(
        &mut self,
        reference: &Reference,
    ) -> Result<(Manifest, Sha256, u64), OciError> {
        let target = reference.target_str().unwrap_or_else(|| "latest".into());
        let url = self.url(&format!("/v2/{}/manifests/{target}", reference.repository));
        let response = self.send(reference, Access::Pull, &mut |agent, auth| {
            with_auth(agent.get(&url), auth)
                .header("Accept", types::MANIFEST_ACCEPT)
                .call()
        })?;
        let mut response = expect(reference, "fetching the manifest", response, &[200])?;
        let announced = header_str(&response, "docker-content-digest");
        let content_type = header_str(&response, "content-type").unwrap_or_default();
        let mut bytes = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| OciError::Transport {
                reference: reference.to_string(),
                error: FetchError::Connection {
                    detail: e.to_string(),
                },
            })?;
        super::types::parse_manifest(reference, &bytes, &content_type, announced.as_deref())
    }

    /// `PUT /v2/<repo>/manifests/<tag>`; returns the digest the registry gives (or ours).
    pub fn put_manifest(
        &mut self,
        reference: &Reference,
        tag: &str,
        bytes: &[u8],
    ) -> Result<Option<String>, OciError> {
        let url = self.url(&format!("/v2/{}/manifests/{tag}", reference.repository));
        let response = self.send(reference, Access::Push, &mut |agent, auth| {
            with_auth(agent.put(&url), auth)
                .header("Content-Type", types::MANIFEST_V1)
                .send(bytes)
        })?;
        let response = expect(reference, "uploading the manifest", response, &[200, 201])?;
        Ok(header_str(&response, "docker-content-digest"))
    }

    /// `HEAD /v2/<repo>/blobs/<digest>`: the size the registry has, or `None` (404).
    pub fn head_blob(
        &mut self,
        reference: &Reference,
        digest: &Sha256,
    ) -> Result<Option<u64>, OciError> {
        let url = self.blob_url(reference, digest);
        let response = self.send(reference, Access::Push, &mut |agent, auth| {
            with_auth(agent.head(&url), auth).call()
        })?;
        match response.status().as_u16() {
            404 => Ok(None),
            _ => {
                let r = expect(reference, "checking a blob", response, &[200])?;
                Ok(header_str(&r, "content-length").and_then(|v| v.parse().ok()))
            }
        }
    }

    /// `GET /v2/<repo>/blobs/<digest>` from byte `start` (a `Range` when `start > 0`). The
    /// response is handed back as it is: the fetch layer reads 200/206 and streams the body.
    pub fn get_blob(
        &mut self,
        reference: &Reference,
        digest: &Sha256,
        start: u64,
    ) -> Result<Response<Body>, OciError> {
        let url = self.blob_url(reference, digest);
        self.send(reference, Access::Pull, &mut |agent, auth| {
            let mut r = with_auth(agent.get(&url), auth);
            if start > 0 {
                r = r.header("Range", format!("bytes={start}-"));
            }
            r.call()
        })
    }

    /// `GET /v2/<repo>/tags/list`.
    pub fn tags(&mut self, reference: &Reference) -> Result<Vec<String>, OciError> {
        let url = self.url(&format!("/v2/{}/tags/list", reference.repository));
        let response = self.send(reference, Access::Pull, &mut |agent, auth| {
            with_auth(agent.get(&url), auth).call()
        })?;
        let mut response = expect(reference, "listing tags", response, &[200])?;
        let list: types::TagList = response
            .body_mut()
            .with_config()
            .limit(MAX_MANIFEST)
            .read_to_vec()
            .map_err(|e| e.to_string())
            .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
            .map_err(|e| OciError::BadManifest {
                reference: reference.to_string(),
                detail: format!("the tag list is not JSON: {e}"),
            })?;
        let mut tags = list.tags.unwrap_or_default();
        tags.sort();
        Ok(tags)
    }

    pub(super) fn blob_url(&self, reference: &Reference, digest: &Sha256) -> String {
        self.url(&format!(
            "/v2/{}/blobs/sha256:{}",
            reference.repository,
            digest.to_hex()
        ))
    }
}

/// Adds `Authorization` when there is one.
pub(crate) fn with_auth<B>(
    request: ureq::RequestBuilder<B>,
    auth: Option<&str>,
) -> ureq::RequestBuilder<B> {
    match auth {
        Some(a) => request.header("Authorization", a),
        None => request,
    }
}

/// A header's value as text.
pub(crate) fn header_str(response: &Response<Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The response if its status is one of `ok`, else an error with the registry's own message
/// (distribution's `{"errors":[{"code","message"}]}`).
pub(crate) fn expect(
    reference: &Reference,
    what: &str,
    mut response: Response<Body>,
    ok: &[u16],
) -> Result<Response<Body>, OciError> {
    let status = response.status().as_u16();
    if ok.contains(&status) {
        return Ok(response);
    }
    let mut body = String::new();
    let _ = response
        .body_mut()
        .as_reader()
        .take(16 << 10)
        .read_to_string(&mut body);
    Err(OciError::Status {
        reference: reference.to_string(),
        what: what.to_owned(),
        status,
        detail: registry_message(&body),
    })
}

/// `" (MANIFEST_UNKNOWN: manifest unknown)"` from a distribution error body, else empty.
fn registry_message(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_str::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => {
            let parts: Vec<String> = e
                .errors
                .iter()
                .map(|i| format!("{}: {}", i.code, i.message))
                .collect();
            format!(" ({})", parts.join("; "))
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_goes_only_to_the_registry_itself() {
        let r = Reference::parse("oci+http://reg:5000/a", false).unwrap();
        let c = Client::new(&r, &fetch::Config::default()).unwrap();
        assert!(c.same_origin("http://reg:5000/v2/a/blobs/uploads/x?_state=1"));
        assert!(c.same_origin(&c.url("/v2/a/blobs/uploads/x")));
        for other in [
            "http://reg:5001/v2/",
            "http://reg:50000/v2/",
            "https://reg:5000/v2/",
            "http://reg:5000.evil/v2/",
            "http://storage.example/upload",
        ] {
            assert!(!c.same_origin(other), "{other}");
        }
    }

    #[test]
    fn registry_errors_are_quoted() {
        assert_eq!(
            registry_message(
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#
            ),
            " (MANIFEST_UNKNOWN: manifest unknown)"
        );
        assert_eq!(registry_message("<html>"), "");
    }
}
