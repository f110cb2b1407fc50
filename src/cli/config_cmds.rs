//! `beaker config show`: every setting's effective value and where it came from (flag,
//! environment, which config file, or the default).

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use beaker::settings::{Setting, Settings, Source};

use super::args::ConfigCommand;
use super::context::Context;
use super::output::Output;

#[derive(Serialize)]
struct Row {
    key: &'static str,
    value: String,
    source: Source,
}

pub fn run(cmd: ConfigCommand, ctx: &Context, out: Output) -> Result<()> {
    let ConfigCommand::Show = cmd;
    let rows = rows(ctx)?;
    if out.json {
        #[derive(Serialize)]
        struct Show {
            user_file: Option<PathBuf>,
            system_file: PathBuf,
            settings: Vec<Row>,
        }
        return out.json(&Show {
            user_file: Settings::user_file(),
            system_file: Settings::system_file(),
            settings: rows,
        });
    }
    for r in &rows {
        println!("{:16} {:40} ({})", r.key, r.value, r.source);
    }
    out.note(format!(
        "config files: {} (user), {} (system)",
        Settings::user_file().map_or_else(|| "none".into(), |p| p.display().to_string()),
        Settings::system_file().display()
    ));
    Ok(())
}

/// Every setting: its effective value and where it came from.
fn rows(ctx: &Context) -> Result<Vec<Row>> {
    let (store, store_from) = ctx.store_root()?;
    let (manifests, manifests_from) = ctx.manifests();
    let fetch = ctx.pull_options()?.fetch;
    let lock_timeout = ctx.settings.lock_timeout.as_ref();
    let mut rows = vec![
        Row {
            key: "store",
            value: store.display().to_string(),
            source: store_from,
        },
        Row {
            key: "catalogues",
            value: if manifests.is_empty() {
                "(the bundled catalogue)".into()
            } else {
                let paths: Vec<_> = manifests.iter().map(|p| p.display().to_string()).collect();
                paths.join(", ")
            },
            source: manifests_from,
        },
    ];
    rows.extend(fetch_rows(&fetch, &ctx.settings));
    if ctx.offline_flag() {
        if let Some(r) = rows.iter_mut().find(|r| r.key == "offline") {
            r.source = Source::Flag;
        }
    }
    rows.push(Row {
        key: "lock_timeout",
        value: lock_timeout.map_or_else(
            || "none (wait as long as it takes)".into(),
            |x| format!("{:?}", x.value),
        ),
        source: lock_timeout.map_or(Source::Default, |x| Source::File(x.from.clone())),
    });
    Ok(rows)
}

/// The fetch settings: each from its variable if set, else the file that set it, else the
/// default.
fn fetch_rows(fetch: &beaker::fetch::Config, s: &Settings) -> [Row; 4] {
    fn row<T>(key: &'static str, value: String, var: &str, file: &Option<Setting<T>>) -> Row {
        let source = if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            Source::Env(var.into())
        } else {
            file.as_ref()
                .map_or(Source::Default, |f| Source::File(f.from.clone()))
        };
        Row { key, value, source }
    }
    let secs = |d: std::time::Duration| format!("{d:?}");
    [
        row(
            "offline",
            fetch.offline.to_string(),
            "BEAKER_OFFLINE",
            &s.offline,
        ),
        row(
            "connect_timeout",
            secs(fetch.connect_timeout),
            "BEAKER_CONNECT_TIMEOUT",
            &s.connect_timeout,
        ),
        row(
            "stall_timeout",
            secs(fetch.stall_timeout),
            "BEAKER_STALL_TIMEOUT",
            &s.stall_timeout,
        ),
        row(
            "retries",
            fetch.retries.to_string(),
            "BEAKER_RETRIES",
            &s.retries,
        ),
    ]
}
