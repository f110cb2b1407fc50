//! `beaker env`: what a bug report needs, in one place: beaker's version and the system, the
//! store (where, from which setting, its format and what its filesystem can do), the
//! configuration files, the catalogues, and which ONNX Runtime `--check` would load. Reads only;
//! a part that cannot be found says why instead of failing the rest.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use beaker::settings::Settings;
use beaker::Store;

use super::context::Context;
use super::output::Output;

#[derive(Serialize)]
struct Report {
    beaker: String,
    system: String,
    store: String,
    store_from: String,
    /// `format 4, group, locking flock`, or why there is no usable store there.
    store_state: String,
    /// What the probe found on the store's filesystem (`null` without a store).
    filesystem: Option<beaker::store::probe::Capabilities>,
    user_config: Option<PathBuf>,
    system_config: PathBuf,
    catalogues: Vec<PathBuf>,
    catalogues_from: String,
    /// The library's path and where it was found, or why there is none.
    onnxruntime: String,
}

pub fn run(ctx: &Context, out: Output) -> Result<()> {
    let (store, from) = ctx.store_root()?;
    let (state, filesystem) = match Store::open(&store) {
        Ok(s) => (
            format!(
                "format {}, {}",
                s.config().format,
                format!("{:?}, locking {:?}", s.config().mode, s.config().locking).to_lowercase()
            ),
            s.capabilities().ok(),
        ),
        Err(e) => (format!("not usable: {e}"), None),
    };
    let (catalogues, catalogues_from) = ctx.manifests();
    let report = Report {
        beaker: env!("CARGO_PKG_VERSION").to_owned(),
        system: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        store: store.display().to_string(),
        store_from: from.to_string(),
        store_state: state,
        filesystem,
        user_config: Settings::user_file(),
        system_config: Settings::system_file(),
        catalogues,
        catalogues_from: catalogues_from.to_string(),
        onnxruntime: match beaker::onnx::runtime_found() {
            Ok((origin, path)) => format!("{} (from {origin})", path.display()),
            Err(why) => format!("none: {why}"),
        },
    };
    if out.json {
        return out.json(&report);
    }
    let catalogues = if report.catalogues.is_empty() {
        "the bundled catalogue".to_owned()
    } else {
        report
            .catalogues
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rows = [
        ("beaker", report.beaker.clone()),
        ("system", report.system.clone()),
        ("store", format!("{} ({})", report.store, report.store_from)),
        ("store state", report.store_state.clone()),
        (
            "filesystem",
            match &report.filesystem {
                Some(_) => super::store_cmds::filesystem(report.filesystem.as_ref()),
                None => "-".into(),
            },
        ),
        (
            "config files",
            format!(
                "{} (user), {} (system)",
                report
                    .user_config
                    .as_ref()
                    .map_or_else(|| "none".into(), |p| p.display().to_string()),
                report.system_config.display()
            ),
        ),
        (
            "catalogues",
            format!("{catalogues} ({})", report.catalogues_from),
        ),
        ("onnxruntime", report.onnxruntime.clone()),
    ];
    for (label, value) in rows {
        println!("{label:<14}{value}");
    }
    Ok(())
}
