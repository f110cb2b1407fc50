//! `beaker config show`: every setting's effective value and where it came from (flag,
//! environment, which config file, or the default).

use anyhow::Result;
use serde::Serialize;

use beaker::settings::{Settings, Source};

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
    let (store, store_from) = ctx.store_root()?;
    let (manifests, manifests_from) = ctx.manifests();
    let fetch = ctx.pull_options()?.fetch;
    let s = &ctx.settings;
    let env_or = |var: &str, file: Option<&std::path::Path>| {
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            Source::Env(var.into())
        } else {
            file.map_or(Source::Default, |f| Source::File(f.to_owned()))
        }
    };
    fn from(o: Option<&std::path::PathBuf>) -> Option<&std::path::Path> {
        o.map(|p| p.as_path())
    }
    let rows = vec![
        Row {
            key: "store",
            value: store.display().to_string(),
            source: store_from,
        },
        Row {
            key: "manifests",
            value: if manifests.is_empty() {
                "(the bundled catalogue)".into()
            } else {
                manifests
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            source: manifests_from,
        },
        Row {
            key: "offline",
            value: fetch.offline.to_string(),
            source: env_or("BEAKER_OFFLINE", from(s.offline.as_ref().map(|x| &x.from))),
        },
        Row {
            key: "connect_timeout",
            value: format!("{:?}", fetch.connect_timeout),
            source: env_or(
                "BEAKER_CONNECT_TIMEOUT",
                from(s.connect_timeout.as_ref().map(|x| &x.from)),
            ),
        },
        Row {
            key: "stall_timeout",
            value: format!("{:?}", fetch.stall_timeout),
            source: env_or(
                "BEAKER_STALL_TIMEOUT",
                from(s.stall_timeout.as_ref().map(|x| &x.from)),
            ),
        },
        Row {
            key: "retries",
            value: fetch.retries.to_string(),
            source: env_or("BEAKER_RETRIES", from(s.retries.as_ref().map(|x| &x.from))),
        },
        Row {
            key: "lock_timeout",
            value: s.lock_timeout.as_ref().map_or_else(
                || "none (wait as long as it takes)".into(),
                |x| format!("{:?}", x.value),
            ),
            source: s
                .lock_timeout
                .as_ref()
                .map_or(Source::Default, |x| Source::File(x.from.clone())),
        },
    ];
    if out.json {
        #[derive(Serialize)]
        struct Show {
            user_file: Option<std::path::PathBuf>,
            system_file: std::path::PathBuf,
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
