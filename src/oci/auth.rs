//! Registry credentials and the 401 challenge, as docker and oras do them.
//!
//! Credentials, first found wins: `BEAKER_REGISTRY_USER` + `BEAKER_REGISTRY_PASSWORD`; then the
//! docker config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): `credHelpers[host]`
//! or `credsStore` (run as `docker-credential-<helper> get`, host on stdin, `{Username, Secret}`
//! on stdout), else `auths[host].auth` (base64 `user:password`). [`save_login`] writes `auths`
//! (0600, replaced atomically), which is what `docker login` writes without a helper.
//!
//! A request is first sent with whatever authorization is cached for its scope (none at first).
//! A 401 carries `WWW-Authenticate`: `Basic` means "send the credentials"; `Bearer realm=…,
//! service=…,scope=…` means "fetch a token from realm" (with the credentials as Basic, or
//! anonymously), cached per registry and scope for the process and fetched again on the next 401
//! (an expired token). A 401 to
//! freshly sent credentials or a fresh token is a refusal, reported as such.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use base64::Engine;
use serde::Deserialize;
use ureq::Agent;

use super::OciError;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <password>)", self.user)
    }
}

impl Credentials {
    fn basic(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

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

/// Where docker keeps its config: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => dirs::home_dir().map(|h| h.join(".docker").join("config.json")),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
}

/// The largest docker config read.
const MAX_CONFIG: u64 = 4 << 20;

/// The credentials for `registry` (`host[:port]`), if any are set.
pub fn lookup(registry: &str) -> Result<Option<Credentials>, OciError> {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    if let (Some(user), Some(password)) =
        (var("BEAKER_REGISTRY_USER"), var("BEAKER_REGISTRY_PASSWORD"))
    {
        return Ok(Some(Credentials { user, password }));
    }
    let Some(path) = docker_config_path() else {
        return Ok(None);
    };
    let config = match read_config(&path)? {
        Some(text) => parse_config(&path, &text)?,
        None => return Ok(None),
    };
    let helper = config
        .cred_helpers
        .get(registry)
        .or(config.creds_store.as_ref());
    if let Some(helper) = helper {
        return run_helper(helper, registry);
    }
    for (key, entry) in &config.auths {
        if host_of_key(key) != registry {
            continue;
        }
        let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
            continue;
        };
        return decode_auth(auth)
            .map(Some)
            .ok_or_else(|| OciError::Credentials {
                path: path.clone(),
                detail: format!("auths.{key:?}.auth is not base64 of user:password"),
            });
    }
    Ok(None)
}

fn read_config(path: &Path) -> Result<Option<String>, OciError> {
    match crate::fsx::read_user_file(path, MAX_CONFIG) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| OciError::Credentials {
                path: path.to_owned(),
                detail: "it is not UTF-8".into(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(OciError::Credentials {
            path: path.to_owned(),
            detail: e.source.to_string(),
        }),
    }
}

fn parse_config(path: &Path, text: &str) -> Result<DockerConfig, OciError> {
    serde_json::from_str(text).map_err(|e| OciError::Credentials {
        path: path.to_owned(),
        detail: format!("not a docker config: {e}"),
    })
}

/// `https://host/v1/` and `host` both name `host`.
fn host_of_key(key: &str) -> &str {
    let rest = key.split_once("://").map_or(key, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

fn decode_auth(auth: &str) -> Option<Credentials> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some(Credentials {
        user: user.to_owned(),
        password: password.to_owned(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

/// `docker-credential-<helper> get` with the host on stdin, as docker runs it.
fn run_helper(helper: &str, registry: &str) -> Result<Option<Credentials>, OciError> {
    let fail = |detail: String| OciError::Helper {
        helper: helper.to_owned(),
        registry: registry.to_owned(),
        detail,
    };
    if !helper
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(fail(
            "the helper name has characters a program name cannot".into(),
        ));
    }
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if said.contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!("{}: {}", out.status, said.trim())));
    }
    let answer: HelperAnswer =
        serde_json::from_slice(&out.stdout).map_err(|e| fail(format!("unreadable answer: {e}")))?;
    Ok(Some(Credentials {
        user: answer.username,
        password: answer.secret,
    }))
}

/// Stores `creds` for `registry` in the docker config (`auths[registry].auth`), keeping every
/// other key as it is. The file is written 0600 and replaced atomically.
pub fn save_login(registry: &str, creds: &Credentials) -> Result<PathBuf, OciError> {
    let path = docker_config_path().ok_or_else(|| OciError::Credentials {
        path: PathBuf::from("~/.docker/config.json"),
        detail: "no home directory; set DOCKER_CONFIG".into(),
    })?;
    let mut doc: serde_json::Value = match read_config(&path)? {
        Some(text) => serde_json::from_str(&text).map_err(|e| OciError::Credentials {
            path: path.clone(),
            detail: format!("not a docker config: {e}"),
        })?,
        None => serde_json::json!({}),
    };
    let bad = || OciError::Credentials {
        path: path.clone(),
        detail: "its top level or its \"auths\" is not a JSON object".into(),
    };
    let auths = doc
        .as_object_mut()
        .ok_or_else(bad)?
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}));
    let raw = format!("{}:{}", creds.user, creds.password);
    auths.as_object_mut().ok_or_else(bad)?.insert(
        registry.to_owned(),
        serde_json::json!({ "auth": base64::engine::general_purpose::STANDARD.encode(raw) }),
    );
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::fsx::create_dir_all(dir)?;
    let text = serde_json::to_string_pretty(&doc).map_err(|e| OciError::Credentials {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    crate::fsx::write_replace(dir, &path, format!("{text}\n").as_bytes(), 0o600)?;
    Ok(path)
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
    ) -> Result<(), OciError> {
        let challenge = www_authenticate.and_then(parse_challenge);
        match challenge {
            None | Some(Challenge::Basic) => {
                if self.credentials(registry)?.is_none() {
                    return Err(OciError::NoCredentials {
                        reference: reference.to_owned(),
                        registry: registry.to_owned(),
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
                            }
                        } else {
                            OciError::Unauthorized {
                                reference: reference.to_owned(),
                                registry: registry.to_owned(),
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

    #[test]
    fn docker_auths_decode_and_keys_name_hosts() {
        let c = decode_auth("dXNlcjpwYTpzcw==").unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("user", "pa:ss"));
        assert!(decode_auth("not base64!").is_none());
        assert_eq!(
            host_of_key("https://index.docker.io/v1/"),
            "index.docker.io"
        );
        assert_eq!(host_of_key("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(
            format!("{c:?}"),
            "Credentials(user, <password>)",
            "no password in debug output"
        );
    }
}
