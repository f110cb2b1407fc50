//! `pull` over HTTPS from a server whose certificate is signed by a private CA: refused with a
//! message naming `--ca-cert` / `SSL_CERT_FILE`, accepted with either. The CA, the certificate and
//! the server come from the `openssl` command (`req`, `x509`, `s_server -WWW`), on 127.0.0.1 only.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::support::*;

/// An `openssl s_server` serving files from a directory; killed on drop.
struct TlsServer {
    child: Child,
    port: u16,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a CA (`ca.pem`) and a 127.0.0.1 server certificate it signs (`cert.pem`, `key.pem`) in
/// `dir`. The registry tests use them too.
pub(crate) fn make_private_ca(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=beaker-test-ca",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req"],
            &ec[..],
            &[
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

/// Makes a CA and a 127.0.0.1 server certificate it signs, and serves `dir` over HTTPS.
fn serve_with_private_ca(dir: &Path) -> TlsServer {
    make_private_ca(dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            "cert.pem",
            "-key",
            "key.pem",
            "-WWW",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .start();
    // s_server prints ACCEPT once it listens: wait for that line (a pipe, not a sleep).
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("ACCEPT"))),
        "s_server did not start"
    );
    TlsServer { child, port }
}

// Unix only: its certificates are made with openssl.
#[cfg(unix)]
#[test]
fn https_with_a_private_ca_needs_ca_cert_or_ssl_cert_file() {
    let env = Env::new();
    let body = bytes(20_000, 40);
    let site = env.path("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("m.bin"), &body).unwrap();
    let server = serve_with_private_ca(&site);
    let cat = env.file(
        "cat.toml",
        format!(
            "version = 1\n[models.m]\nblake3 = \"{}\"\nsize = {}\nurls = [\"https://127.0.0.1:{}/m.bin\"]\n",
            blake3_hex(&body),
            body.len(),
            server.port
        )
        .as_bytes(),
    );
    let pull = |extra: &[&str], ssl_cert_file: Option<&Path>| {
        let mut c = env.cmd();
        if let Some(f) = ssl_cert_file {
            c.env("SSL_CERT_FILE", f);
        }
        Run::from(
            c.arg("--manifest")
                .arg(&cat)
                .args(["store", "pull", "m"])
                .args(extra)
                .output()
                .unwrap(),
        )
    };

    let r = pull(&[], None);
    r.fails(
        1,
        &["TLS failure", "UnknownIssuer", "--ca-cert", "SSL_CERT_FILE"],
    );
    r.one_error_line();

    let ca = site.join("ca.pem");
    let path = pull(&["--ca-cert", ca.to_str().unwrap()], None).ok();
    assert_eq!(std::fs::read(path).unwrap(), body);

    remove_all(&env.store);
    pull(&[], Some(&ca)).ok();
    assert_blobs_named_by_hash(&env.store);
}
