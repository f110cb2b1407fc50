//! A real OCI registry for the tests: Debian's `docker-registry` (CNCF distribution 2.8), started
//! on a free loopback port with a config in a temp dir, and killed when the guard drops.
//!
//! The tests never skip when it is missing: they fail and say how to install it (`.ci/run` does).
//! Startup is synchronised on the registry's own "listening on" log line, not on a sleep.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
pub const HTPASSWD_BIN: &str = "/usr/bin/htpasswd";

/// A running registry; killed (and waited for) on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    /// Config, data and log; removed when the guard drops.
    _dir: tempfile::TempDir,
}

impl Registry {
    /// A registry with no authentication.
    pub fn start() -> Registry {
        Registry::start_with(None, None)
    }

    /// A registry serving HTTPS with `cert.pem` and `key.pem` from `dir`.
    pub fn start_tls(dir: &Path) -> Registry {
        Registry::start_with(None, Some(dir))
    }

    /// A registry with `htpasswd` (Basic) authentication for `user`:`password`.
    pub fn start_basic(user: &str, password: &str) -> Registry {
        assert!(
            Path::new(HTPASSWD_BIN).exists(),
            "{HTPASSWD_BIN} is missing: install it with `apt-get install -y apache2-utils` (.ci/run does)"
        );
        let out = Command::new(HTPASSWD_BIN)
            .args(["-Bbn", user, password])
            .output()
            .expect("run htpasswd");
        assert!(out.status.success(), "htpasswd failed: {out:?}");
        Registry::start_with(Some(out.stdout), None)
    }

    fn start_with(htpasswd: Option<Vec<u8>>, tls: Option<&Path>) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: install it with `apt-get install -y docker-registry` (.ci/run does)"
        );
        // A port the kernel just handed out is free unless another process takes it between
        // here and the registry's bind; then the registry exits and we try another one.
        for _ in 0..5 {
            if let Some(r) = Registry::try_start(htpasswd.as_deref(), tls) {
                return r;
            }
        }
        panic!("the registry did not start on any of 5 free ports");
    }

    fn try_start(htpasswd: Option<&[u8]>, tls: Option<&Path>) -> Option<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("beaker-registry-")
            .tempdir()
            .expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let auth = match htpasswd {
            Some(bytes) => {
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, bytes).expect("write htpasswd");
                format!(
                    "auth: {{htpasswd: {{realm: beaker-test, path: {}}}}}\n",
                    path.display()
                )
            }
            None => String::new(),
        };
        let tls = match tls {
            Some(d) => format!(
                ", tls: {{certificate: {}, key: {}}}",
                d.join("cert.pem").display(),
                d.join("key.pem").display()
            ),
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog: {{level: info, fields: {{service: registry}}}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\n  cache: {{blobdescriptor: inmemory}}\nhttp: {{addr: \"127.0.0.1:{port}\", secret: beaker-local-test-secret{tls}}}\n{auth}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let mut child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start docker-registry");
        let stderr = child.stderr.take().expect("registry stderr");
        let (tx, rx) = mpsc::channel();
        let log = dir.path().join("registry.log");
        std::thread::spawn(move || {
            let mut sent = false;
            let mut kept = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && line.contains("listening on") {
                    let _ = tx.send(true);
                    sent = true;
                }
                kept.push_str(&line);
                kept.push('\n');
                let _ = std::fs::write(&log, &kept);
            }
            let _ = tx.send(false); // exited before (or after) listening
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(true) => Some(Registry {
                child,
                port,
                _dir: dir,
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        }
    }

    /// `oci+http://127.0.0.1:PORT/<rest>`.
    pub fn reference(&self, rest: &str) -> String {
        format!("oci+http://127.0.0.1:{}/{rest}", self.port)
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
