//! `beaker catalogue ls` and `beaker catalogue show NAME`: what can be pulled, from which
//! catalogue, and whether the store already has it.

use anyhow::Result;
use serde::Serialize;

use beaker::catalogue::Resolved;
use beaker::entry::{File, Known};

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
    present: bool,
}

pub fn run(cmd: CatalogueCommand, ctx: &Context, out: Output) -> Result<()> {
    let catalogue = ctx.catalogue()?;
    let store = ctx.existing_store()?;
    let present = |m: &Resolved| -> Result<bool> {
        Ok(match &store {
            Some(s) => beaker::pull::key::is_present(s, &m.model)?,
            None => false,
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
        CatalogueCommand::Show { name } => {
            let m = catalogue.get(&name)?;
            show(m, row(m, present(m)?), out)
        }
    }
}

fn row(m: &Resolved, present: bool) -> Row<'_> {
    Row {
        name: m.name.as_str(),
        size: m.model.size(),
        format: m.model.format.map(|f| f.to_string()),
        files: m.model.files().len(),
        description: m.model.description.as_deref(),
        catalogue: m.manifest.display().to_string(),
        present,
    }
}

/// `catalogue ls`: one line per model.
fn ls(rows: &[Row], out: Output) -> Result<()> {
    if out.json {
        return out.json(&rows);
    }
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:width$}  {:>10}  {:6}  {:7}  DESCRIPTION",
        "NAME", "SIZE", "FORMAT", "STORE"
    );
    for r in rows {
        println!(
            "{:width$}  {:>10}  {:6}  {:7}  {}",
            r.name,
            r.size.map_or_else(|| "?".into(), size),
            r.format.as_deref().unwrap_or("-"),
            if r.present { "present" } else { "-" },
            r.description.unwrap_or("")
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
    println!("in store:    {}", if r.present { "yes" } else { "no" });
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
