//! What a catalogue URL may be (docs/design.md#manifest-format), written once: manifest validation uses it (so `manifest
//! check` and every catalogue load refuse a bad URL with file:line:col, exit 2) and so does
//! [`crate::ops::fetch::Source::parse`] (so nothing malformed ever reaches the HTTP client, whose
//! complaints would read like the server's).
//!
//! The forms:
//! - `https://HOST[:PORT]/…` and `http://…`: a non-empty host, a port (if any) of 1–65535, no
//!   whitespace or control characters;
//! - `file:///absolute/path` or `file://localhost/absolute/path`;
//! - `oci://HOST[:PORT]/REPO@sha256:HEX` (or `oci+http://` for plain HTTP): one blob of an OCI
//!   registry, named by its digest ([`crate::model::reference::Reference`] has the grammar); or
//!   `oci://HOST[:PORT]/REPO:TAG`: the layer of that manifest titled as the entry's file (or its
//!   only layer), whose digests must be the ones the entry pins (a moved tag is refused);
//! - a path with no scheme, relative to the catalogue's directory (or absolute).
//!
//! Anything that starts like a scheme (`letter *(letter / digit / + - .) ":"`) and is none of
//! the above is refused: `data:`, `javascript:`, `ftp://`, `c:/…`. A relative path containing a
//! colon in its first segment must be written `./a:b`. On Windows alone, a drive path
//! (`C:\models\a.onnx`, `C:/models/a.onnx`) is a path, and `file:///C:/models/a.onnx` names it.

/// A URL that passed [`classify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Url<'a> {
    /// `http://` or `https://`, as written.
    Http(&'a str),
    /// The absolute path of a `file://` URL, still percent-encoded.
    File(&'a str),
    /// A path with no scheme (relative to the catalogue, or absolute).
    Path(&'a str),
    /// A registry blob (`oci://…@sha256:…`), or a file of a tagged manifest (`oci://…:TAG`).
    Oci(crate::model::reference::Reference),
}

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    #[error("is empty")]
    Empty,
    /// A scheme (or a `file://` host) beaker does not fetch from.
    #[error("has unsupported scheme {0:?}; use https://, http://, file://, oci:// or a path relative to the manifest (write a relative path with a colon as ./a:b)")]
    UnsupportedScheme(String),
    /// A supported scheme, but not a usable URL.
    #[error("is malformed: {0}")]
    Malformed(String),
}

/// Sorts `url` into one of the forms above, or says why it is none of them.
pub fn classify(url: &str) -> Result<Url<'_>, UrlProblem> {
    if url.trim().is_empty() {
        return Err(UrlProblem::Empty);
    }
    if url.chars().any(char::is_control) {
        return Err(UrlProblem::Malformed(
            "it contains a control character".into(),
        ));
    }
    if cfg!(windows) && is_drive_path(url) {
        return Ok(Url::Path(url));
    }
    let Some(scheme) = scheme_of(url) else {
        return Ok(Url::Path(url));
    };
    let rest = &url[scheme.len() + 1..];
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => {
            let Some(after) = rest.strip_prefix("//") else {
                return Err(UrlProblem::Malformed(format!(
                    "{scheme}: must be followed by //HOST"
                )));
            };
            check_authority(after)?;
            Ok(Url::Http(url))
        }
        "file" => {
            let Some(after) = rest.strip_prefix("//") else {
                return Err(UrlProblem::Malformed(
                    "write file:///absolute/path (three slashes)".into(),
                ));
            };
            let path = after.strip_prefix("localhost").unwrap_or(after);
            if path.starts_with('/') {
                Ok(Url::File(path))
            } else {
                Err(UrlProblem::UnsupportedScheme(
                    "file:// with a host other than localhost".into(),
                ))
            }
        }
        "oci" | "oci+http" => {
            let reference = crate::model::reference::Reference::parse(url, false)
                .map_err(|e| UrlProblem::Malformed(e.problem))?;
            match reference.target {
                Some(_) => Ok(Url::Oci(reference)),
                None => Err(UrlProblem::Malformed(
                    "an oci:// URL in a catalogue names a tag (oci://HOST/REPO:TAG: the file of that manifest titled as the entry's file) or one blob (oci://HOST/REPO@sha256:<layer digest>)".into(),
                )),
            }
        }
        _ => Err(UrlProblem::UnsupportedScheme(scheme.to_owned())),
    }
}

/// Whether `url` starts with a Windows drive: a letter, `:`, then `\` or `/`.
pub fn is_drive_path(url: &str) -> bool {
    let b = url.as_bytes();
    b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'\\' | b'/')
}

/// The scheme of `url` (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`, then `:`).
fn scheme_of(url: &str) -> Option<&str> {
    let end = url.find(':')?;
    let scheme = &url[..end];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// Checks `HOST[:PORT]` at the start of what follows `http://`.
fn check_authority(after: &str) -> Result<(), UrlProblem> {
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = &after[..end];
    if authority.chars().any(char::is_whitespace) {
        return Err(UrlProblem::Malformed("the host contains whitespace".into()));
    }
    // user:password@ is allowed before the host.
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let Some((inside, tail)) = v6.split_once(']') else {
            return Err(UrlProblem::Malformed(
                "an IPv6 host is missing its ']'".into(),
            ));
        };
        if inside.is_empty() {
            return Err(UrlProblem::Malformed("it has no host".into()));
        }
        match tail {
            "" => (inside, None),
            _ => match tail.strip_prefix(':') {
                Some(port) => (inside, Some(port)),
                None => {
                    return Err(UrlProblem::Malformed(format!(
                        "unexpected {tail:?} after the IPv6 host"
                    )))
                }
            },
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(UrlProblem::Malformed("it has no host".into()));
    }
    if !host_port.starts_with('[') && host.contains(':') {
        return Err(UrlProblem::Malformed(
            "an IPv6 host must be written in brackets, e.g. http://[::1]:8080/".into(),
        ));
    }
    if let Some(port) = port {
        match port.parse::<u32>() {
            Ok(p) if (1..=65535).contains(&p) && port.chars().all(|c| c.is_ascii_digit()) => {}
            _ => {
                return Err(UrlProblem::Malformed(format!(
                    "port {port:?} is not a number from 1 to 65535"
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        for (url, want) in [
            ("https://h/x.onnx", Url::Http("https://h/x.onnx")),
            ("HTTP://h:8080/x", Url::Http("HTTP://h:8080/x")),
            ("http://u:p@h:1/x", Url::Http("http://u:p@h:1/x")),
            ("http://[::1]:65535/x", Url::Http("http://[::1]:65535/x")),
            ("http://h", Url::Http("http://h")),
            ("file:///srv/a", Url::File("/srv/a")),
            ("file://localhost/srv/a", Url::File("/srv/a")),
            ("models/a.onnx", Url::Path("models/a.onnx")),
            ("./a:b.onnx", Url::Path("./a:b.onnx")),
            ("/srv/a.onnx", Url::Path("/srv/a.onnx")),
            ("my model.onnx", Url::Path("my model.onnx")),
        ] {
            assert_eq!(classify(url), Ok(want), "{url}");
        }
    }

    #[test]
    fn data_javascript_and_unknown_schemes_are_refused_not_taken_for_paths() {
        for (url, scheme) in [
            ("data:text/plain,hello", "data"),
            ("javascript:alert(1)", "javascript"),
            ("ftp://h/x", "ftp"),
            ("mailto:a@b", "mailto"),
            ("s3://bucket/key", "s3"),
        ] {
            assert_eq!(
                classify(url),
                Err(UrlProblem::UnsupportedScheme(scheme.into())),
                "{url}"
            );
        }
        assert!(matches!(
            classify("file://otherhost/x"),
            Err(UrlProblem::UnsupportedScheme(_))
        ));
    }

    #[test]
    fn a_drive_path_is_a_path_on_windows_and_a_scheme_elsewhere() {
        for url in ["c:/models/a.onnx", r"C:\models\a.onnx"] {
            if cfg!(windows) {
                assert_eq!(classify(url), Ok(Url::Path(url)), "{url}");
            } else {
                assert_eq!(
                    classify(url),
                    Err(UrlProblem::UnsupportedScheme(url[..1].into())),
                    "{url}"
                );
            }
        }
        // A one-letter scheme not followed by a separator is a scheme everywhere.
        assert!(classify("c:models").is_err());
    }

    #[test]
    fn oci_urls_name_a_blob_by_digest_or_a_file_of_a_tag() {
        let hex = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let url = format!("oci+http://127.0.0.1:5000/org/m@sha256:{hex}");
        for url in [url.as_str(), "oci://h/vision/bird:v3"] {
            match classify(url) {
                Ok(Url::Oci(r)) => assert_eq!(r.to_string(), url),
                other => panic!("{other:?}"),
            }
        }
        for url in ["oci://h/m", "oci://h/M@sha256:00", "oci://h"] {
            assert!(
                matches!(classify(url), Err(UrlProblem::Malformed(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn malformed_http_urls_are_refused() {
        for url in [
            "http://h:0/x",
            "http://h:65536/x",
            "http://h:99999999999/x",
            "http://h:/x",
            "http://h:+80/x",
            "http://h:8o/x",
            "http:///x",
            "https://",
            "http:h/x",
            "http://a b/x",
            "http://[::1/x",
            "http://[]/x",
            "http://::1/x",
            "http://fe80::1:8080/x",
            "http://h/\u{7}",
            "file:/srv/a",
        ] {
            assert!(
                matches!(classify(url), Err(UrlProblem::Malformed(_))),
                "{url}: {:?}",
                classify(url)
            );
        }
        assert_eq!(classify("  "), Err(UrlProblem::Empty));
    }
}
