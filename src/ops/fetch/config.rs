//! How fetching behaves: timeouts, retries, the CA bundle, offline mode (docs/design.md#sources).
//!
//! Defaults are the design's (connect 10 s, stall 30 s, 3 retries with exponential backoff from
//! 1 s). Each can be changed through the environment so scripts and the test suite can make
//! failures fast; the CLI layers `--offline` and `--ca-cert` on top. This file touches no disk and
//! keeps no invariant of its own.

use std::path::PathBuf;
use std::time::Duration;

use super::FetchError;

/// Fetch settings. `Config::default()` is the design's defaults with no environment applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Never open a connection or read a source (`--offline`, `BEAKER_OFFLINE=1`).
    pub offline: bool,
    /// Time to establish a connection, TLS included (`BEAKER_CONNECT_TIMEOUT`).
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response before giving up on the connection
    /// (`BEAKER_STALL_TIMEOUT`).
    pub stall_timeout: Duration,
    /// Retries per URL after the first attempt, on connection errors, stalls, 5xx and 429
    /// (`BEAKER_RETRIES`).
    pub retries: u32,
    /// First backoff; doubled on each retry (`BEAKER_RETRY_BASE`).
    pub backoff_base: Duration,
    /// Upper bound on a server's `Retry-After` (`BEAKER_RETRY_AFTER_MAX`).
    pub retry_after_max: Duration,
    /// PEM bundle of CA certificates to trust *instead of* the built-in web roots (`--ca-cert`,
    /// else `SSL_CERT_FILE`).
    pub ca_cert: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            offline: false,
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            retries: 3,
            backoff_base: Duration::from_secs(1),
            retry_after_max: Duration::from_secs(60),
            ca_cert: None,
        }
    }
}

impl Config {
    /// The defaults with the environment applied (variables named on each field).
    ///
    /// # Errors
    /// [`FetchError::BadSetting`] naming the variable when a value does not parse.
    pub fn from_env() -> Result<Self, FetchError> {
        Self::from_env_over(Config::default())
    }

    /// Like [`Config::from_env`], over `base` instead of the defaults (the configuration files'
    /// values: the environment wins over them). `BEAKER_OFFLINE=1` turns offline on; it never
    /// turns a file's `offline = true` off.
    pub fn from_env_over(base: Config) -> Result<Self, FetchError> {
        let mut c = base;
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let dur = |name: &'static str, into: &mut Duration| -> Result<(), FetchError> {
            if let Some(v) = var(name) {
                *into = crate::model::duration::parse(&v).map_err(|e| FetchError::BadSetting {
                    setting: name,
                    value: v,
                    reason: e.to_string(),
                })?;
            }
            Ok(())
        };
        dur("BEAKER_CONNECT_TIMEOUT", &mut c.connect_timeout)?;
        dur("BEAKER_STALL_TIMEOUT", &mut c.stall_timeout)?;
        dur("BEAKER_RETRY_BASE", &mut c.backoff_base)?;
        dur("BEAKER_RETRY_AFTER_MAX", &mut c.retry_after_max)?;
        if let Some(v) = var("BEAKER_RETRIES") {
            c.retries = v.trim().parse().map_err(|_| FetchError::BadSetting {
                setting: "BEAKER_RETRIES",
                value: v.clone(),
                reason: "expected a whole number".into(),
            })?;
        }
        c.offline |= var("BEAKER_OFFLINE").is_some_and(|v| truthy(&v));
        c.ca_cert = std::env::var_os("SSL_CERT_FILE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Ok(c)
    }

    /// The wait before retry number `retry` (0-based): the server's `Retry-After` when it sent
    /// one (capped by `retry_after_max`), else `backoff_base * 2^retry`.
    pub fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(d) => d.min(self.retry_after_max),
            None => self
                .backoff_base
                .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX)),
        }
    }
}

fn truthy(v: &str) -> bool {
    !matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "" | "0" | "false" | "no" | "off"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_retry_after_is_capped() {
        let c = Config::default();
        assert_eq!(c.backoff(0, None), Duration::from_secs(1));
        assert_eq!(c.backoff(2, None), Duration::from_secs(4));
        assert_eq!(
            c.backoff(0, Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(
            c.backoff(0, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
        assert!(
            c.backoff(40, None) > Duration::from_secs(3600),
            "saturates, never panics"
        );
    }
}
