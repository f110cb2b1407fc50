//! [registry]: `store push`, `oci://` pulls and `ls-remote` through the real binary against a
//! real registry (`server`: Debian's docker-registry per test) — round trips (`push_pull`),
//! authentication (`auth`), a push cut mid-upload (`cut`), interop with oras-py (`oras`) — and
//! against a misbehaving one served by the kit's fault server (`faults`); the helpers they share.

use std::process::Command;

use serde::Deserialize;

use crate::support::*;

pub mod auth;
mod cut;
mod faults;
mod oras;
mod push_pull;
pub mod server;

/// A `beaker` command for registry tests: no credentials from the environment or from the
/// user's docker config, fast failures.
pub(crate) fn reg_cmd(env: &Env) -> Command {
    let mut c = env.cmd();
    c.env("DOCKER_CONFIG", env.path("docker"))
        .env_remove("BEAKER_REGISTRY_USER")
        .env_remove("BEAKER_REGISTRY_PASSWORD")
        .env_remove("BEAKER_PUSH_CHUNK")
        .env("BEAKER_RETRIES", "0")
        .env("BEAKER_CONNECT_TIMEOUT", "5s")
        .env("BEAKER_STALL_TIMEOUT", "5s");
    c
}

pub(crate) fn reg_run(env: &Env, args: &[&str]) -> Run {
    Run::from(reg_cmd(env).args(args).output().expect("spawn beaker"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct PushedJson {
    pub name: String,
    pub reference: String,
    pub digest: String,
    pub uploaded_bytes: u64,
}

/// A store at `env.store` holding `name`: a directory model of two files (an ONNX file and its
/// external data) or one file.
pub(crate) fn add_model(env: &Env, name: &str, files: &[(&str, &[u8])]) {
    let dir = env.path(&format!("src-{name}"));
    for (path, bytes) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let what = if files.len() == 1 {
        dir.join(files[0].0)
    } else {
        dir.clone()
    };
    reg_run(
        env,
        &["store", "add", what.to_str().unwrap(), "--name", name],
    )
    .ok();
}

/// The sha256 of `bytes`, hex (through sha256sum, so the test does not share beaker's code).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}
