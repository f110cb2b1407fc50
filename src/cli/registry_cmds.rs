//! `beaker store push`, `beaker store ls-remote` and `beaker registry login`: a few lines each
//! over [`beaker::oci`].

use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, Result};

use beaker::fetch;
use beaker::oci::{self, credentials::Credentials, push, Reference};
use beaker::{ModelName, Store};

use super::args::RemoteArgs;
use super::output::{size, Output};

/// The fetch settings from the environment, with `--ca-cert` on top.
fn config(remote: &RemoteArgs) -> Result<fetch::Config> {
    let mut config = fetch::Config::from_env()?;
    if let Some(ca) = &remote.ca_cert {
        config.ca_cert = Some(ca.clone());
    }
    Ok(config)
}

pub fn push(
    root: &Path,
    name: &str,
    reference: &str,
    remote: &RemoteArgs,
    out: Output,
) -> Result<()> {
    let name = ModelName::new(name)?;
    let reference = Reference::parse(reference, remote.plain_http)?;
    let options = push::PushOptions::from_env(config(remote)?)?;
    let store = Store::open(root)?;
    let mut progress = out.progress();
    let pushed = push::push(&store, &name, &reference, &options, progress.as_mut())?;
    drop(progress);
    if out.json {
        return out.json(&pushed);
    }
    out.note(format!(
        "pushed {} to {} ({} uploaded)",
        pushed.name,
        pushed.reference,
        size(pushed.uploaded_bytes)
    ));
    println!("{}", pushed.digest);
    Ok(())
}

pub fn ls_remote(reference: &str, remote: &RemoteArgs, out: Output) -> Result<()> {
    let reference = Reference::parse(reference, remote.plain_http)?;
    let tags = oci::list_remote(&reference, &config(remote)?)?;
    if out.json {
        return out.json(&tags);
    }
    for t in &tags {
        match &t.name {
            Some(name) => println!("{}\t{name}", t.tag),
            None => println!("{}", t.tag),
        }
    }
    Ok(())
}

pub fn login(
    host: &str,
    username: Option<String>,
    password_stdin: bool,
    remote: &RemoteArgs,
    out: Output,
) -> Result<()> {
    // A registry is checked through a reference to it; the repository is never used. `docker
    // login https://host` is common, so a scheme in front is accepted (http:// means plain HTTP).
    let (host, plain) = match (host.strip_prefix("https://"), host.strip_prefix("http://")) {
        (Some(h), _) => (h, false),
        (_, Some(h)) => (h, true),
        _ => (host, false),
    };
    let host = host.trim_end_matches('/');
    let reference = Reference::parse(&format!("oci://{host}/login"), remote.plain_http || plain)?;
    let user = username
        .or_else(|| std::env::var("BEAKER_REGISTRY_USER").ok())
        .filter(|u| !u.is_empty())
        .context("no user name: pass --username or set BEAKER_REGISTRY_USER")?;
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        std::env::var("BEAKER_REGISTRY_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
            .context("no password: pass --password-stdin or set BEAKER_REGISTRY_PASSWORD")?
    };
    let creds = Credentials { user, password };
    let path = oci::login(&reference, creds, &config(remote)?)?;
    if out.json {
        return out.json(&serde_json::json!({ "registry": reference.registry, "config": path }));
    }
    out.note(format!(
        "login to {} succeeded; saved in {}",
        reference.registry,
        path.display()
    ));
    Ok(())
}
