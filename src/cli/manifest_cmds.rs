//! `beaker catalogue check FILE…`: validate catalogues, including conflicts between them.
//! `beaker catalogue entry FILE|URL --name N`: print the catalogue entry that pins it (`beaker
//! manifest check|entry` is the older spelling of both).

use std::path::PathBuf;

use anyhow::Result;

use beaker::{Catalogue, Manifest};

use super::args::ManifestCommand;
use super::output::Output;

pub fn run(cmd: ManifestCommand, out: Output) -> Result<()> {
    let files = match cmd {
        ManifestCommand::Check { files } => files,
        ManifestCommand::Entry { source, name } => return entry(&source, &name, out),
    };
    let mut loaded = Vec::with_capacity(files.len());
    for file in files {
        let m = Manifest::load(&file)?;
        out.note(format!(
            "{}: ok ({} models)",
            file.display(),
            m.models.len()
        ));
        loaded.push((file, m));
    }
    let paths: Vec<PathBuf> = loaded.iter().map(|(p, _)| p.clone()).collect();
    let catalogue = Catalogue::from_manifests(loaded)?;
    if out.json {
        return out.json(&serde_json::json!({
            "valid": true,
            "files": paths,
            "models": catalogue.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        }));
    }
    Ok(())
}

/// Hashes `source` (a file, or a URL downloaded into a scratch store that is deleted after) and
/// prints a catalogue entry for it: BLAKE3, size, SHA-256 and the URL or path.
fn entry(source: &str, name: &str, out: Output) -> Result<()> {
    use std::io::Read;
    let name = beaker::ModelName::new(name)?;
    if !super::args::is_plain_url(source) {
        let (blake3, size, sha256) = hash(std::path::Path::new(source))?;
        return print_entry(&name, blake3, size, sha256, source, out);
    }
    // A URL: pulled (trust on first use) into a scratch store, hashed, and the store deleted.
    let scratch = tempfile::Builder::new()
        .prefix("beaker-manifest-entry-")
        .tempdir()?;
    let store = beaker::Store::open_or_create(&scratch.path().join("store"))?;
    let single = beaker::entry::Single {
        urls: vec![source.to_owned()],
        ..beaker::entry::Single::default()
    };
    let model = beaker::catalogue::Resolved {
        name: name.clone(),
        model: beaker::Model::single(&name, single),
        manifest: PathBuf::from("<command line>"),
    };
    let mut puller = beaker::pull::Puller::new(&store, beaker::pull::Options::from_env()?);
    let pulled = puller.pull(&model, out.progress().as_mut())?;
    let (blake3, size, sha256) = hash(&pulled.path)?;
    return print_entry(&name, blake3, size, sha256, source, out);

    fn hash(path: &std::path::Path) -> Result<(String, u64, String)> {
        use sha2::Digest;
        let mut file = beaker::fsx::user::open(path)?;
        let (mut b3, mut sha) = (blake3::Hasher::new(), sha2::Sha256::new());
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            b3.update(&buf[..n]);
            sha.update(&buf[..n]);
            size += n as u64;
        }
        let sha: [u8; 32] = sha.finalize().into();
        let sha = sha.iter().map(|b| format!("{b:02x}")).collect();
        Ok((b3.finalize().to_hex().to_string(), size, sha))
    }
}

fn print_entry(
    name: &beaker::ModelName,
    blake3: String,
    size: u64,
    sha256: String,
    source: &str,
    out: Output,
) -> Result<()> {
    let onnx = source.to_ascii_lowercase().ends_with(".onnx");
    if out.json {
        return out.json(&serde_json::json!({
            "name": name, "blake3": blake3, "size": size, "sha256": sha256, "urls": [source],
            "format": onnx.then_some("onnx"),
        }));
    }
    // A whole catalogue: what it prints, saved as a new file, checks and pulls.
    println!("version = 1\n");
    let key = if name.as_str().contains('/') {
        format!("\"{name}\"")
    } else {
        name.to_string()
    };
    println!("[models.{key}]");
    println!("blake3 = \"{blake3}\"");
    println!("size = {size}");
    println!("sha256 = \"{sha256}\"");
    println!("urls = [{source:?}]");
    if onnx {
        println!("format = \"onnx\"");
    }
    Ok(())
}
