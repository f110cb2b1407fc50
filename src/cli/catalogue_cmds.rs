//! `beaker catalogue ls` and `beaker catalogue show NAME`: what can be pulled, from which
//! catalogue, and whether the store already has it: under this name (`yes`, as `store path`
//! answers), under other names only (`as NAME`), or its bytes under no name (`bytes`).

use anyhow::Result;
use serde::Serialize;

use beaker::catalogue::Resolved;
use beaker::entry::{File, Known};
use beaker::pull::key::Holding;

use super::args::CatalogueCommand;
use super::context::Context;
use super::output::{size, Output};

#[derive(Serialize)]
struct Row<'a> {
    name: &'a str,
    /// Bytes of all files, when the catalogue gives every size.
    size: Option<u64>,
    format: Option<String>,
    files: usize,
    description: Option<&'a str>,
    catalogue: String,
    /// Every file's bytes are in the store (a pull downloads nothing).
    present: bool,
    /// The store holds the model under this very name (`store path NAME` answers).
    held: bool,
    /// The names the store holds these files under (this one, or others).
    held_as: Vec<String>,
}

pub fn run(cmd: CatalogueCommand, ctx: &Context, out: Output) -> Result<()> {
    // `check` and `entry` read the files they are given, not the configured catalogues.
    let cmd = match cmd {
        CatalogueCommand::Files(files) => return super::manifest_cmds::run(files, out),
        other => other,
    };
    let catalogue = ctx.catalogue()?;
    let store = ctx.existing_store()?;
    let records = match &store {
        Some(s) => Some(s.read_manifest()?),
        None => None,
    };
    let present = |m: &Resolved| -> Result<Holding> {
        Ok(match (&store, &records) {
            (Some(s), Some(r)) => beaker::pull::key::holding(s, r, &m.model)?,
            _ => Holding::default(),
        })
    };
    match cmd {
        CatalogueCommand::Ls => {
            let rows = catalogue
                .iter()
                .map(|m| Ok(row(m, present(m)?)))
                .collect::<Result<Vec<_>>>()?;
            ls(&rows, out)
        }
        CatalogueCommand::Files(_) => Ok(()), // handled above
        CatalogueCommand::Show { name } => {
            let m = catalogue.get(&name)?;
            show(m, row(m, present(m)?), out)
        }
    }
}

fn row(m: &Resolved, holding: Holding) -> Row<'_> {
    Row {
        name: m.name.as_str(),
        size: m.model.size(),
        format: m.model.format.map(|f| f.to_string()),
        files: m.model.files().len(),
        description: m.model.description.as_deref(),
        catalogue: m.manifest.display().to_string(),
        present: holding.bytes,
        held: holding.names.contains(&m.name),
        held_as: holding.names.iter().map(ToString::to_string).collect(),
    }
}

/// What the store holds of a row's model, in words: `yes` (under this name), the names its
/// bytes are held under, `bytes` (no name records them; a pull names them without a
/// download), or `-`.
fn in_store(r: &Row) -> String {
    if r.held {
        "yes".into()
    } else if !r.held_as.is_empty() {
        format!("as {}", r.held_as.join(", "))
    } else if r.present {
        "bytes".into()
    } else {
        "-".into()
    }
}

/// `catalogue ls`: one line per model.
fn ls(rows: &[Row], out: Output) -> Result<()> {
    if out.json {
        return out.json(&rows);
    }
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let held: Vec<String> = rows.iter().map(in_store).collect();
    let store_width = held.iter().map(String::len).max().unwrap_or(5).max(5);
    println!(
        "{:width$}  {:>10}  {:6}  {:store$}  DESCRIPTION",
        "NAME",
        "SIZE",
        "FORMAT",
        "STORE",
        store = store_width
    );
    for (r, held) in rows.iter().zip(&held) {
        println!(
            "{:width$}  {:>10}  {:6}  {:store$}  {}",
            r.name,
            r.size.map_or_else(|| "?".into(), size),
            r.format.as_deref().unwrap_or("-"),
            held,
            r.description.unwrap_or(""),
            store = store_width
        );
    }
    Ok(())
}

/// `catalogue show NAME`: its row, then every file with its digests and sources.
fn show(m: &Resolved, r: Row, out: Output) -> Result<()> {
    let files = m.model.files();
    if out.json {
        #[derive(Serialize)]
        struct Show<'a> {
            #[serde(flatten)]
            row: Row<'a>,
            main: String,
            file_list: &'a [File],
        }
        return out.json(&Show {
            row: r,
            main: m.model.main().path.to_string(),
            file_list: files,
        });
    }
    println!("name:        {}", r.name);
    println!("catalogue:   {}", r.catalogue);
    if let Some(d) = r.description {
        println!("description: {d}");
    }
    println!("format:      {}", r.format.as_deref().unwrap_or("-"));
    println!(
        "in store:    {}",
        match in_store(&r).as_str() {
            "-" => "no".to_owned(),
            "bytes" => "its bytes, under no name (a pull names them, no download)".to_owned(),
            held => held.to_owned(),
        }
    );
    for f in files {
        println!("file:        {}", f.path);
        if let Some(s) = f.blob.size() {
            println!("  size:      {} ({s} bytes)", size(s));
        }
        if let Some(d) = f.blob.blake3() {
            println!("  blake3:    {}", d.to_hex());
        }
        if let Some(d) = f.upstream.sha256 {
            println!("  sha256:    {}", d.to_hex());
        }
        if let Some(d) = f.upstream.md5 {
            println!("  md5:       {}", d.to_hex());
        }
        for u in &f.urls {
            println!("  url:       {u}");
        }
    }
    Ok(())
}
