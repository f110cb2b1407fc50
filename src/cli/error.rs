//! How a failure reaches the user (docs/design.md#cli): its exit code, the `beaker: error: …` line
//! on stderr, and with `--json` the error object `{message, kind, exit_code}` on stdout — built
//! here and nowhere else, for the whole command and for each failed name of a pull.

use std::process::ExitCode;

use beaker::Category;

/// A command line that does not make sense (exit 2, like any bad input).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadUsage(pub String);

/// A failure the command has already reported on stdout/stderr itself; the process exits with
/// this code and prints nothing more.
#[derive(Debug, thiserror::Error)]
#[error("already reported")]
pub struct Reported(pub u8);

/// The category of `e`: a [`BadUsage`] anywhere in its chain is bad input, else the first
/// library error in it decides ([`beaker::exit::category_of`]).
fn category(e: &anyhow::Error) -> Category {
    if e.chain().any(|c| c.is::<BadUsage>()) {
        Category::BadInput
    } else {
        beaker::exit::category_of(e.chain())
    }
}

/// The `kind` of a `--json` error: `failed` (exit 1), `bad_input` (2), `not_present` (3).
fn kind(category: Category) -> &'static str {
    match category {
        Category::Failed => "failed",
        Category::BadInput => "bad_input",
        Category::NotPresent => "not_present",
    }
}

/// The `error` object of a `--json` document: `{message, kind, exit_code}`. Scripts that asked
/// for JSON never have to parse prose, failures included.
pub fn json(e: &anyhow::Error) -> serde_json::Value {
    let category = category(e);
    serde_json::json!({
        "message": format!("{e:#}"),
        "kind": kind(category),
        "exit_code": beaker::exit::code(category),
    })
}

/// Says `e` on stderr, the one line every failure gets.
pub fn say(e: &anyhow::Error) {
    eprintln!("beaker: error: {e:#}");
}

/// Reports the error a command ended with — on stderr, and with `json` as one document
/// `{"error": …}` on stdout — and gives the exit code. A [`Reported`] failure was reported by
/// its command: only its code is left.
pub fn report(e: &anyhow::Error, json: bool) -> ExitCode {
    if let Some(Reported(code)) = e.downcast_ref::<Reported>() {
        return ExitCode::from(*code);
    }
    say(e);
    if json {
        println!("{}", serde_json::json!({ "error": self::json(e) }));
    }
    ExitCode::from(beaker::exit::code(category(e)))
}

/// A command line clap refused. With `--json` anywhere in it, the same `{"error": …}` document
/// as any failure (kind `bad_input`, exit 2) goes to stdout, clap's text to stderr; without,
/// and for `--help` and `--version`, clap prints and exits as it always does.
/// `beaker pull x`, `beaker ls`: a store command given without `store`. clap says only
/// "unrecognized subcommand"; the tip names the command meant.
fn store_command_tip(e: &mut clap::Error) {
    use clap::builder::StyledStr;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use clap::CommandFactory;
    if e.kind() != ErrorKind::InvalidSubcommand {
        return;
    }
    let Some(ContextValue::String(sub)) = e.get(ContextKind::InvalidSubcommand) else {
        return;
    };
    let cli = super::args::Cli::command();
    let is_store_command = cli
        .find_subcommand("store")
        .is_some_and(|store| store.find_subcommand(sub).is_some());
    if is_store_command {
        let tip = format!("`{sub}` is a store command: beaker store {sub} …");
        e.insert(
            ContextKind::Suggested,
            ContextValue::StyledStrs(vec![StyledStr::from(tip)]),
        );
    }
}

pub fn usage(mut e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    store_command_tip(&mut e);
    let json = std::env::args_os().skip(1).any(|a| a == "--json");
    if !json || matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let _ = e.print();
    let text = e.render().to_string();
    // clap's first paragraph is the message; the usage and the hint follow it.
    let message = if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        "a subcommand is missing; add --help to list them".to_owned()
    } else {
        text.split("\n\n")
            .next()
            .unwrap_or_default()
            .trim()
            .trim_start_matches("error: ")
            .to_owned()
    };
    let e = anyhow::Error::new(BadUsage(message));
    println!("{}", serde_json::json!({ "error": self::json(&e) }));
    ExitCode::from(beaker::exit::code(Category::BadInput))
}
