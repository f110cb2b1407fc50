//! The 401 challenge, answered as docker and oras do (credentials come from
//! [`super::credentials`]).
//!
//! A request is first sent with whatever authorization is cached for its scope (none at first).
//! A 401 carries `WWW-Authenticate`: `Basic` means "send the credentials"; `Bearer realm=…,
//! service=…,scope=…` means "fetch a token from realm" (with the credentials as Basic, or
//! anonymously), cached per registry and scope for the process and fetched again on the next 401
//! (an expired token). A 401 to freshly sent credentials or a fresh token is a refusal, reported
//! as such.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Deserialize;
use ureq::Agent;

use super::credentials::{lookup, Credentials};
use super::OciError;

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Basic realm="x"` or `Bearer realm="…",service="…",scope="…"` (quoted values may hold
/// commas, as `scope="repository:a:pull,push"` does).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

fn parse_params(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        out.insert(key, value.to_owned());
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// Bearer tokens of this process by registry and scope: a pull resolves the manifest and fetches
/// its blobs through separate clients, which share one token this way.
static TOKENS: Mutex<BTreeMap<(String, String), String>> = Mutex::new(BTreeMap::new());

/// The authorization state of one client (one registry).
#[derive(Debug, Default)]
pub(super) struct Auth {
    registry: String,
    /// Looked up on the first challenge; `Some(None)`: looked up, none set.
    creds: Option<Option<Credentials>>,
    /// The registry asked for Basic: send the credentials with every request.
    basic: bool,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

impl Auth {
    /// The `Authorization` value to send for `scope`, if any is known.
    pub(super) fn for_registry(registry: &str) -> Auth {
        Auth {
            registry: registry.to_owned(),
            ..Auth::default()
        }
    }

    pub(super) fn header(&self, scope: &str) -> Option<String> {
        let key = (self.registry.clone(), scope.to_owned());
        if let Some(t) = TOKENS.lock().ok().and_then(|t| t.get(&key).cloned()) {
            return Some(format!("Bearer {t}"));
        }
        if self.basic {
            return self.creds.clone().flatten().map(|c| c.basic());
        }
        None
    }

    pub(super) fn set_credentials(&mut self, creds: Credentials) {
        self.creds = Some(Some(creds));
    }

    fn credentials(&mut self, registry: &str) -> Result<Option<Credentials>, OciError> {
        if self.creds.is_none() {
            self.creds = Some(lookup(registry)?);
        }
        Ok(self.creds.clone().flatten())
    }

    /// Answers a 401: after this, [`Auth::header`] gives what the challenge asks for (Basic
    /// credentials or a new token for `scope`).
    pub(super) fn answer(
        &mut self,
        agent: &Agent,
        www_authenticate: Option<&str>,
        scope: &str,
        reference: &str,
        registry: &str,
        https: bool,
    ) -> Result<(), OciError> {
        let challenge = www_authenticate.and_then(parse_challenge);
        match challenge {
            None | Some(Challenge::Basic) => {
                if self.credentials(registry)?.is_none() {
                    return Err(OciError::NoCredentials {
                        reference: reference.to_owned(),
                        registry: registry.to_owned(),
                        login: super::error::login_arg(registry, https),
                    });
                }
                self.basic = true;
                Ok(())
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope: asked,
            }) => {
                // Our scope says what this operation needs (push needs pull,push even when the
                // challenge to a HEAD names only pull); the challenge's is used when we have none.
                let scope_param = if scope.is_empty() {
                    asked.unwrap_or_default()
                } else {
                    scope.to_owned()
                };
                // Credentials never travel in clear text to a token service of an HTTPS registry.
                if https && !realm.starts_with("https://") {
                    return Err(OciError::Token {
                        reference: reference.to_owned(),
                        realm,
                        detail: "the registry speaks HTTPS but its token service does not; beaker does not send credentials there".into(),
                    });
                }
                let creds = self.credentials(registry)?;
                let token = fetch_token(
                    agent,
                    &realm,
                    service.as_deref(),
                    &scope_param,
                    creds.as_ref(),
                )
                .map_err(|e| match e {
                    TokenFailure::Refused(detail) => {
                        if creds.is_none() {
                            OciError::NoCredentials {
                                reference: reference.to_owned(),
                                registry: registry.to_owned(),
                                login: super::error::login_arg(registry, https),
                            }
                        } else {
                            OciError::Unauthorized {
                                reference: reference.to_owned(),
                                login: super::error::login_arg(registry, https),
                                detail: format!(" (token service: {detail})"),
                            }
                        }
                    }
                    TokenFailure::Other(detail) => OciError::Token {
                        reference: reference.to_owned(),
                        realm: realm.clone(),
                        detail,
                    },
                })?;
                if let Ok(mut tokens) = TOKENS.lock() {
                    tokens.insert((self.registry.clone(), scope.to_owned()), token);
                }
                Ok(())
            }
        }
    }
}

enum TokenFailure {
    Refused(String),
    Other(String),
}

fn fetch_token(
    agent: &Agent,
    realm: &str,
    service: Option<&str>,
    scope: &str,
    creds: Option<&Credentials>,
) -> Result<String, TokenFailure> {
    if !(realm.starts_with("https://") || realm.starts_with("http://")) {
        return Err(TokenFailure::Other(format!(
            "realm {realm:?} is not an http(s) URL"
        )));
    }
    let mut request = agent.get(realm);
    if let Some(s) = service {
        request = request.query("service", s);
    }
    if !scope.is_empty() {
        request = request.query("scope", scope);
    }
    if let Some(c) = creds {
        request = request.header("Authorization", c.basic());
    }
    let mut response = request
        .call()
        .map_err(|e| TokenFailure::Other(e.to_string()))?;
    let status = response.status().as_u16();
    if status == 401 || status == 403 {
        return Err(TokenFailure::Refused(format!("HTTP {status}")));
    }
    if status != 200 {
        return Err(TokenFailure::Other(format!("HTTP {status}")));
    }
    let answer: TokenAnswer = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_vec()
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
        .map_err(|e| TokenFailure::Other(format!("unreadable token answer: {e}")))?;
    answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TokenFailure::Other("the answer holds no token".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_https_registry_never_sends_credentials_to_a_plain_http_token_service() {
        let agent = crate::ops::fetch::http_agent(&crate::ops::fetch::Config::default()).unwrap();
        let mut auth = Auth::for_registry("reg.example");
        let err = auth
            .answer(
                &agent,
                Some(r#"Bearer realm="http://reg.example/token",service="s""#),
                "repository:a:pull",
                "oci://reg.example/a:v1",
                "reg.example",
                true,
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not send credentials"), "{err}");
        assert_eq!(auth.header("repository:a:pull"), None);
    }

    #[test]
    fn challenges_parse_with_commas_inside_quotes() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:u/r:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:u/r:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer service=x"), None, "no realm");
        assert_eq!(parse_challenge("Negotiate"), None);
    }
}
