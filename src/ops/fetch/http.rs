//! One attempt at an `http://` or `https://` source, through ureq 3 with rustls. The agent
//! ([`agent`]), the handling of one response ([`receive`]) and the error classification
//! ([`classify`]) serve registry blobs too ([`crate::ops::fetch::registry`]).
//!
//! Settings: connect timeout and a per-read *stall* timeout (no total timeout: a large model on a
//! slow link may take long, but it must keep moving); proxies from `HTTPS_PROXY`/`HTTP_PROXY`/
//! `ALL_PROXY`/`NO_PROXY` (ureq reads them); `--ca-cert`/`SSL_CERT_FILE` replaces the built-in
//! web roots; status codes are answers, not errors, so they can be classified here; no
//! `Accept-Encoding`, so the bytes on the wire are the bytes of the file (sizes and `Range`
//! offsets then mean the same thing).
//!
//! Resume: with bytes already in the temp blob the request carries `Range: bytes=N-`. Only a
//! `206` whose `Content-Range` starts at `N` is appended; a `200` (the server ignores `Range`), a
//! `206` elsewhere or a `416` starts the temp blob over. Whether the result is right is still
//! decided by hashing in `publish` (I1).

use std::io;
use std::time::Duration;

use ureq::tls::{PemItem, RootCerts, TlsConfig};
use ureq::Agent;

use super::{stream, Config, FetchError};
use crate::store::publish::TempBlob;
use crate::sys::progress::Progress;

pub(super) struct Client {
    agent: Agent,
    config: Config,
}

/// The agent every HTTP request of beaker uses (plain sources and registries alike): the
/// settings above, with status codes as answers.
pub(crate) fn agent(config: &Config) -> Result<Agent, FetchError> {
    let mut tls = TlsConfig::builder();
    if let Some(path) = &config.ca_cert {
        tls = tls.root_certs(load_roots(path)?);
    }
    Ok(Agent::config_builder()
        .http_status_as_error(false)
        .timeout_resolve(Some(config.connect_timeout))
        .timeout_connect(Some(config.connect_timeout))
        .timeout_per_read(Some(config.stall_timeout))
        .max_redirects(10)
        .user_agent(concat!("beaker/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls.build())
        .build()
        .into())
}

impl Client {
    pub(super) fn new(config: &Config) -> Result<Self, FetchError> {
        Ok(Client {
            agent: agent(config)?,
            config: config.clone(),
        })
    }

    pub(super) fn attempt(
        &self,
        url: &str,
        temp: &mut TempBlob,
        limit: Option<u64>,
        progress: &mut dyn Progress,
    ) -> Result<(), FetchError> {
        let mut get = |start: u64| {
            let mut request = self.agent.get(url);
            if start > 0 {
                request = request.header("Range", format!("bytes={start}-"));
            }
            request.call().map_err(|e| self.classify(e, url))
        };
        receive(url, temp, limit, progress, &mut get, &|e| {
            self.classify(e, url)
        })
    }

    fn classify(&self, e: ureq::Error, url: &str) -> FetchError {
        classify(e, url, &self.config)
    }
}

/// One GET of `url` into `temp` through `get` (which sends `Range: bytes=N-` when handed N > 0):
/// the answer decides whether the bytes are appended, the temp blob starts over, or it fails.
/// Registries use it too, with a `get` that authenticates ([`crate::ops::fetch::registry`]).
pub(crate) fn receive(
    url: &str,
    temp: &mut TempBlob,
    limit: Option<u64>,
    progress: &mut dyn Progress,
    get: &mut dyn FnMut(u64) -> Result<ureq::http::Response<ureq::Body>, FetchError>,
    classify: &dyn Fn(ureq::Error) -> FetchError,
) -> Result<(), FetchError> {
    let start = temp.len();
    let mut response = get(start)?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let resumed_at = content_range_start(header("content-range").as_deref());
    let retry_after = header("retry-after").as_deref().and_then(parse_retry_after);
    match status {
        206 if start > 0 && resumed_at == Some(start) => {}
        200 if start > 0 => {
            // The server ignores Range and sends the whole file: start over with this body.
            progress.notice(&format!(
                "{url}: the server did not resume at {} (HTTP 200); starting over",
                crate::sys::progress::at_byte(start, limit)
            ));
            temp.restart()?;
            progress.restarted(0);
        }
        206 | 416 if start > 0 => {
            // It cannot continue where we stopped: ask again, once, for the whole file.
            progress.notice(&format!(
                "{url}: the server did not resume at {} (HTTP {status}); starting over",
                crate::sys::progress::at_byte(start, limit)
            ));
            drop(response);
            temp.restart()?;
            progress.restarted(0);
            return receive(url, temp, limit, progress, get, classify);
        }
        200 => {}
        206 => {
            return Err(FetchError::BadResponse {
                detail: "206 Partial Content to a request for the whole file".into(),
            })
        }
        _ => {
            return Err(FetchError::Status {
                status,
                retry_after,
            })
        }
    }
    let announced = response.body().content_length().map(|n| temp.len() + n);
    if let (Some(limit), Some(total)) = (limit, announced) {
        if total > limit {
            return Err(FetchError::TooLarge { limit });
        }
    }
    let expected = limit.or(announced);
    if let (None, Some(total)) = (limit, announced) {
        // The catalogue gave no size (md5/sha256-only entries): the server's is the next best.
        progress.set_total(total);
    }
    let mut body = response.body_mut().as_reader();
    let streamed = stream(&mut body, temp, limit, progress, &|e| {
        classify(ureq::Error::from(e))
    });
    match streamed {
        // The peer closed or reset mid-body: say how far it got (that is what resumes).
        Err(FetchError::Connection { .. }) if expected.is_some_and(|x| temp.len() < x) => {
            return Err(FetchError::ShortBody {
                got: temp.len(),
                expected: expected.unwrap_or_default(),
            })
        }
        other => other?,
    }
    match expected {
        Some(expected) if temp.len() < expected => Err(FetchError::ShortBody {
            got: temp.len(),
            expected,
        }),
        _ => Ok(()),
    }
}

/// Turns a ureq error into one line a user can act on, and a retry decision.
pub(crate) fn classify(e: ureq::Error, url: &str, config: &Config) -> FetchError {
    {
        use ureq::Timeout;
        let https = url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
        match e {
            ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => {
                FetchError::ConnectTimeout {
                    after: config.connect_timeout,
                }
            }
            ureq::Error::Timeout(_) => FetchError::Stalled {
                after: config.stall_timeout,
            },
            ureq::Error::HostNotFound => FetchError::Dns { host: host(url) },
            ureq::Error::TooManyRedirects => FetchError::RedirectLoop,
            ureq::Error::BadUri(detail) => FetchError::BadUrl {
                url: url.to_owned(),
                detail,
            },
            // The request could not even be built from the URL: nothing was sent, so this is
            // never "the server answered …".
            ureq::Error::Http(e) => FetchError::BadUrl {
                url: url.to_owned(),
                detail: e.to_string(),
            },
            ureq::Error::Tls(detail) => FetchError::Tls {
                host: host(url),
                detail: detail.to_owned(),
            },
            ureq::Error::Rustls(e) => FetchError::Tls {
                host: host(url),
                detail: e.to_string(),
            },
            // The system resolver's failure arrives as a plain I/O error.
            ureq::Error::Io(e)
                if e.to_string().contains("failed to lookup address")
                    || crate::sys::error::os_error_is(&e, crate::sys::error::Os::HostNotFound) =>
            {
                FetchError::Dns { host: host(url) }
            }
            ureq::Error::Io(e) => match e.kind() {
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => FetchError::Stalled {
                    after: config.stall_timeout,
                },
                // rustls reports handshake and certificate failures as InvalidData I/O errors.
                io::ErrorKind::InvalidData if https => FetchError::Tls {
                    host: host(url),
                    detail: e.to_string(),
                },
                _ => FetchError::Connection {
                    detail: e.to_string(),
                },
            },
            ureq::Error::ConnectionFailed | ureq::Error::Protocol(_) => FetchError::Connection {
                detail: e.to_string(),
            },
            other => FetchError::BadResponse {
                detail: other.to_string(),
            },
        }
    }
}

/// The largest CA bundle read (a full system bundle is about 200 KiB).
const MAX_CA_BUNDLE: u64 = 16 << 20;

/// Reads a PEM bundle of CA certificates for `--ca-cert` / `SSL_CERT_FILE`.
fn load_roots(path: &std::path::Path) -> Result<RootCerts, FetchError> {
    let bad = |reason: String| FetchError::CaCert {
        path: path.to_owned(),
        reason,
    };
    let pem =
        crate::sys::fsx::user::read(path, MAX_CA_BUNDLE).map_err(|e| bad(e.source.to_string()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(bad(e.to_string())),
        }
    }
    if certs.is_empty() {
        return Err(bad("it holds no PEM certificate".into()));
    }
    Ok(RootCerts::new_with_certs(&certs))
}

/// The host part of a URL, for messages.
fn host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    authority.to_owned()
}

/// `bytes 100-999/1000` → 100.
fn content_range_start(value: Option<&str>) -> Option<u64> {
    let v = value?.trim().strip_prefix("bytes")?.trim_start();
    v.split('-').next()?.trim().parse().ok()
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3), relative to `now`. A date in
/// the past means "now" (zero wait).
fn parse_retry_after_at(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn parse_retry_after(value: &str) -> Option<Duration> {
    parse_retry_after_at(value, std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    // Tests plant files (a symlink target, a bad certificate) with raw std::fs on purpose.
    #![allow(clippy::disallowed_methods)]
    use super::*;

    #[test]
    fn header_parsing() {
        assert_eq!(content_range_start(Some("bytes 100-999/1000")), Some(100));
        assert_eq!(content_range_start(Some("bytes */1000")), None);
        assert_eq!(content_range_start(None), None);
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after_at("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after_at("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means retry now"
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            host("https://u:p@example.com:8443/a/b?c"),
            "example.com:8443"
        );
    }

    #[test]
    fn unreadable_ca_bundle_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate\n").unwrap();
        let err = load_roots(&p).err().unwrap().to_string();
        assert!(
            err.contains("no PEM certificate") && err.contains("--ca-cert"),
            "{err}"
        );
    }
}
