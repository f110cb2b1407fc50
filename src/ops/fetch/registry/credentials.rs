//! Where registry credentials come from, and where `registry login` puts them, as docker and
//! oras do it. First found wins:
//!
//! 1. `BEAKER_REGISTRY_USER` + `BEAKER_REGISTRY_PASSWORD`;
//! 2. the docker config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
//!    `credHelpers[host]` or `credsStore` (run as `docker-credential-<helper> get`, the host on
//!    stdin, `{Username, Secret}` on stdout), else `auths[host].auth` (base64 `user:password`).
//!
//! [`save_login`] writes `auths[host].auth` (0600, replaced atomically), which is what
//! `docker login` writes without a helper.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde::Deserialize;

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
    pub(super) fn basic(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
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
    match crate::sys::fsx::user::read(path, MAX_CONFIG) {
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
    crate::sys::fsx::user::create_dir_all(dir)?;
    let text = serde_json::to_string_pretty(&doc).map_err(|e| OciError::Credentials {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    crate::sys::fsx::user::write_replace(&path, format!("{text}\n").as_bytes(), 0o600)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

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
