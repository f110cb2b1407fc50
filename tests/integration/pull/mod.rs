//! [pull]: `beaker store pull` over HTTP(S) and from files, through the real binary against the
//! kit's fault server on loopback — verification, retries, mirrors, offline mode (`http`), resume
//! after a cut, a stall, SIGKILL or Ctrl-C (`resume`), lease files on stores without locks
//! (`lease`), a private CA (`tls`) — and the helpers the
//! other areas pull with.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

mod http;
mod lease;
mod resume;
pub mod tls;

pub(crate) const LEN: usize = 300_000;

/// A catalogue with one entry per `(name, bytes, urls)`, pinned by blake3 and size.
pub(crate) fn catalogue(env: &Env, models: &[(&str, &[u8], Vec<String>)]) -> PathBuf {
    let mut text = String::from("version = 1\n");
    for (name, bytes, urls) in models {
        text.push_str(&format!(
            "[models.{name}]\nblake3 = \"{}\"\nsize = {}\nurls = {urls:?}\n",
            blake3_hex(bytes),
            bytes.len()
        ));
    }
    env.file("catalogue/models.toml", text.as_bytes())
}

/// `beaker --store S --manifest M store pull …` with fast failure settings and no proxies.
pub(crate) fn pull_cmd(env: &Env, manifest: &Path) -> Command {
    let mut c = env.cmd();
    c.envs(FAST_NETWORK)
        .arg("--manifest")
        .arg(manifest)
        .args(["store", "pull"]);
    c
}

pub(crate) fn pull(env: &Env, manifest: &Path, args: &[&str]) -> Run {
    Run::from(
        pull_cmd(env, manifest)
            .args(args)
            .output()
            .expect("spawn beaker"),
    )
}

pub(crate) fn partials(env: &Env) -> Vec<String> {
    list_names(&env.store.join("tmp"))
        .into_iter()
        .filter(|n| n.ends_with(".part"))
        .collect()
}

pub(crate) fn blob_path(env: &Env, bytes: &[u8]) -> String {
    env.store
        .join("blobs")
        .join(blake3_hex(bytes))
        .display()
        .to_string()
}
