//! The bench's inputs: incompressible files (the kit's splitmix64 [`Rng`]: no filesystem or
//! link can shrink them), the catalogue that names them, and stores filled with many blobs and names through the
//! library (the gc and scale jobs), made once and copied for every run.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use beaker::entry::{Expect, Pin, Record, Single, Upstreams};
use beaker::publish::TempBlob;
use beaker::snapshot::{ModelFile, TreeId};
use beaker::{Blake3, ModelName, Store};
use testkit::lab::Rng;

/// One incompressible file and its BLAKE3.
pub struct Model {
    pub path: PathBuf,
    pub size: u64,
    pub blake3: String,
}

/// Writes `size` incompressible bytes (seeded by `seed`) to `path` and returns their hash.
pub fn make_file(path: &Path, size: u64, seed: u64) -> Result<Model> {
    let mut file = beaker::fsx::user::create_new(path, 0o644)?;
    let mut rng = Rng::new(seed);
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        rng.fill(&mut buf[..n]);
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .with_context(|| format!("write {}", path.display()))?;
        left -= n as u64;
    }
    beaker::fsx::sync_file(&file, path)?;
    Ok(Model {
        path: path.to_path_buf(),
        size,
        blake3: hasher.finalize().to_hex().to_string(),
    })
}

/// A catalogue naming `model` as `name`, downloaded from `url`.
pub fn write_catalogue(path: &Path, name: &str, model: &Model, url: &str) -> Result<()> {
    let text = format!(
        "version = 1\n\n[models.{name}]\nblake3 = \"{}\"\nsize = {}\nurls = [\"{url}\"]\n",
        model.blake3, model.size
    );
    beaker::fsx::user::write_file(path, text.as_bytes())?;
    Ok(())
}

/// Fills a new store at `root` with `blobs` distinct small blobs, and `names` names that
/// reference the first `live` of them round-robin (so `blobs - live` blobs are unreferenced).
/// Blobs go through the publish protocol; the names are recorded in one manifest edit, each with
/// its snapshot, exactly as `add` records them (the bench measures operations on such a store,
/// not its making).
pub fn fill_store(root: &Path, blobs: usize, live: usize, names: usize) -> Result<()> {
    let store = Store::init(root, beaker::store::InitOptions::default())?;
    let gc = store.gc_shared()?;
    let mut ids: Vec<(Blake3, u64)> = Vec::with_capacity(blobs);
    let mut rng = Rng::new(0x5eed);
    let mut buf = vec![0u8; 4096];
    for _ in 0..blobs {
        rng.fill(&mut buf);
        let mut temp = TempBlob::create(&store, "bench")?;
        temp.write_all(&buf).context("write a blob")?;
        let ready = beaker::publish::prepare(&store, temp, &Expect::default())
            .map_err(|f| anyhow::anyhow!("prepare a blob: {f:?}"))?;
        let blob = ready.name(&store, &gc)?;
        ids.push((blob.blake3, blob.size));
    }
    let mut entries = Vec::with_capacity(names);
    for i in 0..names {
        let (id, size) = ids[i % live.max(1)];
        let name = ModelName::new(&format!("bench-model-{i:05}"))?;
        let file = beaker::file_path::FilePath::new("model.bin")?;
        let files = [ModelFile {
            path: file.clone(),
            blake3: id,
            size,
        }];
        beaker::snapshot::ensure(&store, &files)?;
        let single = Single {
            file: Some(file),
            blob: Pin { blake3: id, size },
            upstream: Upstreams::default(),
            urls: Vec::new(),
            format: None,
        };
        let entry = Record {
            model: beaker::Model::single(&name, single),
            added: None,
            tree: Some(TreeId::of(&files)),
        };
        entries.push((name, entry));
    }
    store.edit_manifest(|m| {
        m.models.extend(entries);
        Ok(())
    })?;
    Ok(())
}
