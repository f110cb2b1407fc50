//! Registry references (`oci://HOST[:PORT]/REPO[:TAG|@sha256:HEX]`), parsed once at the edge.
//!
//! The grammar is the distribution spec's, narrowed to what beaker writes and reads:
//! - `oci://` talks HTTPS; `oci+http://` (or `--plain-http`) plain HTTP, for a registry on a
//!   trusted network or loopback (as oras's `--plain-http`);
//! - HOST is a DNS name, an IPv4 address or a bracketed IPv6 address, with an optional port;
//! - REPO is one or more `/`-separated components of `[a-z0-9._-]`, each starting and ending with
//!   a letter or digit: registries refuse uppercase (distribution 2.8 answers "page not found"),
//!   so an uppercase repository is refused here, before any request;
//! - TAG is `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`; a digest is `sha256:` and 64 lowercase hex digits
//!   (the only algorithm beaker pushes and checks). With both, the digest decides.
//!
//! A [`Reference`] is therefore always well formed: every URL built from it is a valid request.

use std::fmt;

use crate::model::digest::Sha256;
use crate::model::name::ModelName;

/// How beaker talks to a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Https,
    /// Plain HTTP (`oci+http://` or `--plain-http`).
    Http,
}

/// What a reference points at inside its repository.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Tag(String),
    Digest(Sha256),
}

/// A parsed `oci://` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub scheme: Scheme,
    /// `host[:port]`, host lowercased.
    pub registry: String,
    /// The repository path (lowercase).
    pub repository: String,
    /// `None` when the reference names only a repository (`ls-remote`, or push's default tag).
    pub target: Option<Target>,
}

/// Why a reference is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid registry reference {reference:?}: {problem}")]
pub struct BadReference {
    pub reference: String,
    pub problem: String,
}

/// The longest tag the distribution spec allows.
const MAX_TAG: usize = 128;

impl Reference {
    /// Parses `oci://…` or `oci+http://…`; `plain_http` turns `oci://` into plain HTTP.
    pub fn parse(text: &str, plain_http: bool) -> Result<Reference, BadReference> {
        let bad = |problem: &str| BadReference {
            reference: text.to_owned(),
            problem: problem.to_owned(),
        };
        let (scheme, rest) = if let Some(rest) = strip_prefix_ci(text, "oci://") {
            (
                if plain_http {
                    Scheme::Http
                } else {
                    Scheme::Https
                },
                rest,
            )
        } else if let Some(rest) = strip_prefix_ci(text, "oci+http://") {
            (Scheme::Http, rest)
        } else {
            return Err(bad("a registry reference starts with oci:// (or oci+http:// for plain HTTP), e.g. oci://ghcr.io/org/model:v1"));
        };
        if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains whitespace or a control character"));
        }
        let Some((host, path)) = rest.split_once('/') else {
            return Err(bad("it has no repository; write oci://HOST/REPO[:TAG]"));
        };
        let registry = check_host(host).map_err(|p| bad(&p))?;
        let (path, digest) = match path.split_once('@') {
            Some((p, d)) => (p, Some(parse_digest(d).map_err(|p| bad(&p))?)),
            None => (path, None),
        };
        // A tag follows the last ':' after the last '/'.
        let last = path.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match path[last..].find(':') {
            Some(i) => (&path[..last + i], Some(&path[last + i + 1..])),
            None => (path, None),
        };
        check_repository(repository).map_err(|p| bad(&p))?;
        if let Some(tag) = tag {
            check_tag(tag).map_err(|p| bad(&p))?;
        }
        let target = match (digest, tag) {
            (Some(d), _) => Some(Target::Digest(d)),
            (None, Some(t)) => Some(Target::Tag(t.to_owned())),
            (None, None) => None,
        };
        Ok(Reference {
            scheme,
            registry,
            repository: repository.to_owned(),
            target,
        })
    }

    /// `https://HOST` or `http://HOST`: what every API path is appended to.
    pub fn base_url(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Https => "https",
            Scheme::Http => "http",
        };
        format!("{scheme}://{}", self.registry)
    }

    /// The same repository at `target`.
    pub fn with_target(&self, target: Target) -> Reference {
        Reference {
            target: Some(target),
            ..self.clone()
        }
    }

    /// The tag or digest as the API spells it in `/manifests/<it>`.
    pub fn target_str(&self) -> Option<String> {
        self.target.as_ref().map(|t| match t {
            Target::Tag(t) => t.clone(),
            Target::Digest(d) => format!("sha256:{}", d.to_hex()),
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Https => "oci",
            Scheme::Http => "oci+http",
        };
        write!(f, "{scheme}://{}/{}", self.registry, self.repository)?;
        match &self.target {
            Some(Target::Tag(t)) => write!(f, ":{t}"),
            Some(Target::Digest(d)) => write!(f, "@sha256:{}", d.to_hex()),
            None => Ok(()),
        }
    }
}

/// The model name a pulled repository gets when neither `--name` nor the manifest gives one: its
/// last one or two components (`org/name`) as far as they are a valid name.
pub fn default_name(reference: &Reference) -> Option<ModelName> {
    let parts: Vec<&str> = reference.repository.rsplit('/').take(2).collect();
    if let [name, org] = parts.as_slice() {
        if let Ok(n) = ModelName::new(&format!("{org}/{name}")) {
            return Some(n);
        }
    }
    ModelName::new(parts.first()?).ok()
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn check_host(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("it has no registry host".into());
    }
    if host.contains('@') {
        return Err("credentials do not belong in a reference; use `beaker registry login` or BEAKER_REGISTRY_USER/BEAKER_REGISTRY_PASSWORD".into());
    }
    let (name, port) = if let Some(v6) = host.strip_prefix('[') {
        let (inside, tail) = v6
            .split_once(']')
            .ok_or("an IPv6 host is missing its ']'")?;
        if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(format!("{inside:?} is not an IPv6 address"));
        }
        match tail {
            "" => (host, None),
            t => match t.strip_prefix(':') {
                Some(p) => (&host[..host.len() - t.len()], Some(p)),
                None => return Err(format!("unexpected {t:?} after the IPv6 host")),
            },
        }
    } else {
        match host.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        }
    };
    if !name.starts_with('[')
        && (name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')))
    {
        return Err(format!("{name:?} is not a host name"));
    }
    if let Some(port) = port {
        let ok = !port.is_empty()
            && port.chars().all(|c| c.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
        if !ok {
            return Err(format!("port {port:?} is not a number from 1 to 65535"));
        }
    }
    Ok(host.to_ascii_lowercase())
}

fn check_repository(repo: &str) -> Result<(), String> {
    if repo.is_empty() {
        return Err("it has no repository; write oci://HOST/REPO[:TAG]".into());
    }
    if repo.len() > 255 {
        return Err("the repository name is longer than 255 characters".into());
    }
    if repo.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "repository {repo:?} has uppercase letters; registries accept only lowercase (try {:?})",
            repo.to_ascii_lowercase()
        ));
    }
    for part in repo.split('/') {
        let alnum =
            |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !alnum(part.chars().next()) || !alnum(part.chars().last()) {
            return Err(format!(
                "repository {repo:?}: each '/'-separated part must start and end with a-z or 0-9"
            ));
        }
        if let Some(c) = part
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-'))
        {
            return Err(format!(
                "repository {repo:?} contains {c:?}; use a-z, 0-9, '.', '_', '-' and '/'"
            ));
        }
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), String> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok
        || tag.len() > MAX_TAG
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "tag {tag:?} is invalid: 1-{MAX_TAG} characters of A-Z a-z 0-9 . _ -, not starting with . or -"
        ));
    }
    Ok(())
}

fn parse_digest(d: &str) -> Result<Sha256, String> {
    let Some(hex) = d.strip_prefix("sha256:") else {
        return Err(format!(
            "digest {d:?} is invalid: beaker reads sha256:<64 lowercase hex digits>"
        ));
    };
    if hex.len() != 64 || !hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(format!(
            "digest {d:?} is invalid: sha256: must be followed by 64 lowercase hex digits"
        ));
    }
    Sha256::from_hex(hex).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    #[test]
    fn accepted_forms_round_trip() {
        for text in [
            "oci://ghcr.io/org/model:v1",
            "oci://127.0.0.1:5000/m",
            "oci+http://localhost:5000/a/b/c:latest",
            "oci://[::1]:5000/m:t",
            &format!("oci://h/r@sha256:{HEX}"),
        ] {
            let r = Reference::parse(text, false).unwrap();
            assert_eq!(r.to_string(), text);
        }
        let r = Reference::parse("oci://H:5000/a/b:Tag_1", true).unwrap();
        assert_eq!(r.scheme, Scheme::Http);
        assert_eq!(r.registry, "h:5000");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.target, Some(Target::Tag("Tag_1".into())));
        assert_eq!(r.base_url(), "http://h:5000");
        let r = Reference::parse(&format!("oci://h/r:t@sha256:{HEX}"), false).unwrap();
        assert!(
            matches!(r.target, Some(Target::Digest(_))),
            "the digest decides"
        );
    }

    #[test]
    fn malformed_references_say_what_is_wrong() {
        for (text, needle) in [
            ("https://h/r", "starts with oci://"),
            ("h/r", "starts with oci://"),
            ("oci://h", "no repository"),
            ("oci://h/", "no repository"),
            ("oci:///r", "no registry host"),
            ("oci://h/Model", "uppercase"),
            ("oci://h/r:", "tag \"\""),
            ("oci://h/r:-x", "tag"),
            ("oci://h/r:a+b", "tag"),
            ("oci://h/r@sha256:abc", "64 lowercase hex"),
            ("oci://h/r@md5:abc", "sha256:"),
            (
                &format!("oci://h/r@sha256:{}", HEX.to_uppercase()),
                "64 lowercase",
            ),
            ("oci://h:0/r", "port"),
            ("oci://h:x/r", "port"),
            ("oci://u:p@h/r", "credentials"),
            ("oci://h/r//x", "start and end"),
            ("oci://h/r-/x", "start and end"),
            ("oci://h/r x", "whitespace"),
            ("oci://h_x/r", "host name"),
        ] {
            let err = Reference::parse(text, false).unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains(text), "{text}: {err}");
        }
    }

    #[test]
    fn default_names_come_from_the_repository() {
        let name =
            |t: &str| default_name(&Reference::parse(t, false).unwrap()).map(|n| n.to_string());
        assert_eq!(name("oci://h/org/model:v1").as_deref(), Some("org/model"));
        assert_eq!(name("oci://h/a/b/model").as_deref(), Some("b/model"));
        assert_eq!(name("oci://h/model").as_deref(), Some("model"));
    }
}
