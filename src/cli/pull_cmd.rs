//! `beaker store pull NAME…`: a thin layer over [`beaker::pull::Puller`]. The flags become a
//! [`Request`] (checked before anything is read or fetched), every name of it is resolved (so a
//! typo fails before anything is fetched), then each is pulled in order, printing each model's
//! path (or one JSON array); one that fails is reported and the others still pulled. An `oci://`
//! reference is resolved through its registry's manifest ([`beaker::oci::pull::resolve`]) and
//! then pulled like a catalogue entry.

use std::path::{Path, PathBuf};

use anyhow::Result;

use beaker::catalogue::Resolved;
use beaker::digest::{Md5, Sha256};
use beaker::lock::Wait;
use beaker::oci::Reference;
use beaker::progress::Progress;
use beaker::pull::{Options, Puller};
use beaker::{Blake3, Catalogue, ModelName, Store};

use super::args::{is_plain_url, PinArgs, PullArgs};
use super::context::Context;
use super::error::{self, BadUsage, Reported};
use super::output::{size, Output};

pub fn run(root: &Path, ctx: &Context, args: PullArgs, out: Output) -> Result<()> {
    let request = Request::parse(&args)?;
    let lookup = Lookup::load(ctx, request.looks_up_names())?;
    let options = options(ctx, &args)?;
    let todo = request.resolve(&lookup, &options.fetch, out)?;
    let store = Store::open_or_create(root)?;
    match &args.to {
        Some(dir) => pull_to(&store, todo, options, dir, out),
        None => pull_each(&store, todo, options, out),
    }
}

/// `pull --to DIR`: the one model pulled into the store as ever, then its files copied into
/// `DIR` under their names ([`beaker::export`]); prints the main file's path in `DIR`.
fn pull_to(
    store: &Store,
    todo: Vec<Todo>,
    options: Options,
    dir: &Path,
    out: Output,
) -> Result<()> {
    let [item] = <[Todo; 1]>::try_from(todo).map_err(|todo| {
        BadUsage(format!(
            "--to DIR takes one model ({} asked); pull the others separately",
            todo.len()
        ))
    })?;
    let mut puller = Puller::new(store, options);
    let mut progress = out.progress();
    let (name, row) = pull_one(store, &mut puller, item, progress.as_mut());
    let row = row?;
    let name = ModelName::new(&name)?;
    let exported = beaker::export::export(store, &name, dir, beaker::export::How::Copy)?;
    // The main file's place in DIR: its path in the snapshot, below the snapshot's directory.
    let main = match &row {
        Row::Pulled(p) => p.path.strip_prefix(&p.dir).ok().map(|rel| dir.join(rel)),
        Row::Held {
            path, dir: snap, ..
        } => snap
            .as_ref()
            .and_then(|d| path.strip_prefix(d).ok())
            .map(|rel| dir.join(rel)),
    }
    .unwrap_or_else(|| dir.to_owned());
    if out.json {
        return out.json(&serde_json::json!([{
            "name": name,
            "path": main,
            "dir": dir,
            "store_path": row.path(),
            "files": exported.files,
        }]));
    }
    print_row_note(&row, out);
    println!("{}", main.display());
    Ok(())
}

/// What `store pull` was asked for: one of the three shapes the flags allow, so no later step
/// meets a combination they do not (a URL without `--name`, `--name` with two names, …).
enum Request {
    /// Catalogue names (or names the store holds) and registry references, in order, each
    /// recorded under its own name.
    Each(Vec<Asked>),
    /// One registry reference, recorded under `--name`.
    Renamed {
        reference: Reference,
        name: ModelName,
    },
    /// One plain URL, recorded under `--name`, with the digests it must have (none: trust on
    /// first use).
    Url {
        url: String,
        name: ModelName,
        pins: Pins,
    },
}

/// One name of a [`Request::Each`].
enum Asked {
    /// A catalogue name, or a name the store holds that no catalogue lists.
    Name(String),
    /// `oci://…` or `oci+http://…`: resolved through the registry's manifest.
    Registry(Reference),
}

/// The digests `--blake3/--sha256/--md5` pin a plain URL to.
struct Pins {
    blake3: Option<Blake3>,
    sha256: Option<Sha256>,
    md5: Option<Md5>,
}

const URL_ALONE: &str = "a URL is pulled alone and with --name N (the name to record it under); \
                         add --blake3/--sha256/--md5 to pin its content";

impl Request {
    /// Checks the flags against each other and parses every name, reference and digest, before
    /// a catalogue is read or the network touched.
    fn parse(args: &PullArgs) -> Result<Request> {
        let (urls, others): (Vec<&String>, Vec<&String>) =
            args.names.iter().partition(|n| is_plain_url(n));
        match (&args.name, urls.as_slice(), others.as_slice()) {
            (Some(name), [url], []) => Ok(Request::Url {
                url: url.to_string(),
                name: ModelName::new(name)?,
                pins: Pins::parse(&args.pins)?,
            }),
            (_, [_, ..], _) => Err(BadUsage(URL_ALONE.into()).into()),
            (Some(name), [], [reference]) if is_oci(reference) => {
                no_pins(&args.pins)?;
                Ok(Request::Renamed {
                    name: ModelName::new(name)?,
                    reference: Reference::parse(reference, args.plain_http)?,
                })
            }
            (Some(_), [], _) => Err(beaker::oci::BadReference {
                reference: args.names.join(" "),
                problem: "--name goes with exactly one oci:// reference or URL".into(),
            }
            .into()),
            (None, [], names) => {
                no_pins(&args.pins)?;
                let each = names
                    .iter()
                    .map(|n| Asked::parse(n, args.plain_http))
                    .collect::<Result<_, _>>()?;
                Ok(Request::Each(each))
            }
        }
    }

    /// Whether a name is to be looked up (in the catalogues, then the store).
    fn looks_up_names(&self) -> bool {
        matches!(self, Request::Each(each) if each.iter().any(|a| matches!(a, Asked::Name(_))))
    }

    /// What each name is: a model to pull (a catalogue entry, a registry's manifest read now,
    /// or a URL's entry), or a name only the store holds.
    fn resolve(
        self,
        lookup: &Lookup,
        fetch: &beaker::fetch::Config,
        out: Output,
    ) -> Result<Vec<Todo>> {
        let registry = |reference: &Reference, name: Option<ModelName>| -> Result<Todo> {
            let remote = beaker::oci::pull::resolve(reference, name, fetch)?;
            Ok(Todo::Pull(Box::new(remote.model)))
        };
        match self {
            Request::Url { url, name, pins } => {
                if pins.none() {
                    out.note(format!(
                        "{name}: no digest given: trusting what {url} serves now (trust on first use); the BLAKE3 received is recorded, pin it next time with --blake3"
                    ));
                }
                Ok(vec![Todo::Pull(Box::new(url_entry(&url, name, pins)))])
            }
            Request::Renamed { reference, name } => Ok(vec![registry(&reference, Some(name))?]),
            Request::Each(each) => each
                .into_iter()
                .map(|asked| match asked {
                    Asked::Name(n) => lookup.find(&n, out),
                    Asked::Registry(reference) => registry(&reference, None),
                })
                .collect(),
        }
    }
}

impl Asked {
    fn parse(n: &str, plain_http: bool) -> Result<Asked, beaker::oci::BadReference> {
        Ok(match is_oci(n) {
            true => Asked::Registry(Reference::parse(n, plain_http)?),
            false => Asked::Name(n.to_owned()),
        })
    }
}

impl Pins {
    fn parse(flags: &PinArgs) -> Result<Pins, beaker::digest::ParseDigestError> {
        let hex = |h: &Option<String>| h.as_ref().map(|h| h.trim().to_ascii_lowercase());
        Ok(Pins {
            blake3: hex(&flags.blake3)
                .map(|h| Blake3::from_hex(&h))
                .transpose()?,
            sha256: hex(&flags.sha256)
                .map(|h| Sha256::from_hex(&h))
                .transpose()?,
            md5: hex(&flags.md5).map(|h| Md5::from_hex(&h)).transpose()?,
        })
    }

    fn none(&self) -> bool {
        self.blake3.is_none() && self.sha256.is_none() && self.md5.is_none()
    }
}

/// Refuses `--blake3/--sha256/--md5` where no URL is pulled.
fn no_pins(flags: &PinArgs) -> Result<(), BadUsage> {
    match flags.blake3.is_some() || flags.sha256.is_some() || flags.md5.is_some() {
        true => Err(BadUsage(
            "--blake3/--sha256/--md5 pin a URL pulled with --name; a catalogue name has its own digests".into(),
        )),
        false => Ok(()),
    }
}

fn is_oci(n: &str) -> bool {
    let lower = n.to_ascii_lowercase();
    lower.starts_with("oci://") || lower.starts_with("oci+http://")
}

/// The catalogue entry a plain URL pulled with `--name` stands for: its digests as given (none:
/// trust on first use, and the BLAKE3 received is recorded), its format from its file name.
fn url_entry(url: &str, name: ModelName, pins: Pins) -> Resolved {
    let Pins {
        blake3,
        sha256,
        md5,
    } = pins;
    let onnx = url
        .split(['?', '#'])
        .next()
        .is_some_and(|p| p.to_ascii_lowercase().ends_with(".onnx"));
    let single = beaker::entry::Single {
        file: None,
        blob: match blake3 {
            Some(b) => beaker::entry::Expected::Blake3(b),
            None => beaker::entry::Expected::default(),
        },
        upstream: beaker::entry::Upstreams { sha256, md5 },
        urls: vec![url.to_owned()],
        format: onnx.then_some(beaker::manifest::Format::Onnx),
    };
    Resolved {
        model: beaker::Model::single(&name, single),
        name,
        manifest: PathBuf::from("<command line>"),
    }
}

/// Where a name is looked up: the catalogues (read only when a name is to be looked up), then
/// the names the store holds.
struct Lookup {
    catalogue: Catalogue,
    existing: Option<Store>,
}

impl Lookup {
    fn load(ctx: &Context, names: bool) -> Result<Lookup> {
        Ok(Lookup {
            catalogue: match names {
                true => ctx.catalogue()?,
                false => Catalogue::default(),
            },
            existing: ctx.existing_store()?,
        })
    }

    /// A catalogue entry, else a name the store holds that no catalogue lists (added with
    /// `add`), else the catalogues' "unknown model" error.
    fn find(&self, n: &str, out: Output) -> Result<Todo> {
        let unknown = match self.catalogue.get(n) {
            Ok(model) => {
                if out.verbose > 0 {
                    eprintln!("{n}: from the catalogue {}", model.manifest.display());
                }
                return Ok(Todo::Pull(Box::new(model.clone())));
            }
            Err(unknown) => unknown,
        };
        let held = ModelName::new(n).ok().filter(|name| {
            self.existing
                .as_ref()
                .and_then(|s| s.read_entry(name).ok())
                .is_some_and(|e| e.is_some())
        });
        held.map(Todo::Held).ok_or_else(|| unknown.into())
    }
}

/// The pull options: the configuration files' values under the environment's, and the flags
/// over both.
fn options(ctx: &Context, args: &PullArgs) -> Result<Options> {
    let mut options = ctx.pull_options()?;
    options.check = args.check;
    if let Some(ca) = &args.ca_cert {
        options.fetch.ca_cert = Some(ca.clone());
    }
    if let Some(d) = args.lock_timeout {
        options.lock_wait = Wait::For(d);
    }
    Ok(options)
}

/// What one name became: a model to pull, or a name only the store holds.
enum Todo {
    /// From the catalogues, a registry or a URL: pull it.
    Pull(Box<Resolved>),
    /// In no catalogue, but the store holds it (added with `add`): its path, as the fast path.
    Held(ModelName),
}

/// Pulls every item in order. The only item's failure is the command's error; of several, each
/// failure is reported (on stderr, and as its row with `--json`), the others still pulled, and
/// the command exits 1.
fn pull_each(store: &Store, todo: Vec<Todo>, options: Options, out: Output) -> Result<()> {
    let count = todo.len();
    let mut puller = Puller::new(store, options);
    let mut progress = out.progress();
    let mut rows = Vec::with_capacity(count);
    let mut failed = Vec::new();
    for item in todo {
        let (name, result) = pull_one(store, &mut puller, item, progress.as_mut());
        match result {
            Ok(row) => {
                print_row(&row, out);
                rows.push(serde_json::to_value(&row)?);
            }
            Err(e) if count == 1 => return Err(e),
            Err(e) => {
                error::say(&e);
                rows.push(serde_json::json!({ "name": name, "error": error::json(&e) }));
                failed.push(name);
            }
        }
    }
    if out.json {
        out.json(&rows)?;
    }
    if !failed.is_empty() {
        eprintln!(
            "beaker: error: {} of {count} models failed: {}",
            failed.len(),
            failed.join(", ")
        );
        return Err(Reported(1).into());
    }
    Ok(())
}

/// Pulls one item: its name, and its row or why not.
fn pull_one(
    store: &Store,
    puller: &mut Puller,
    item: Todo,
    progress: &mut dyn Progress,
) -> (String, Result<Row>) {
    match item {
        Todo::Pull(model) => {
            let pulled = puller.pull(&model, progress).inspect(|p| {
                if p.downloaded {
                    // store.toml's max_size: evict down to it if gc.lock is free (never waits,
                    // spares this model). Housekeeping: the pull is complete and its errors are
                    // not the pull's (`beaker store gc` reports them).
                    let _ = beaker::evict::after_publish(store, &model.name);
                }
            });
            let row = pulled.map(Row::Pulled).map_err(anyhow::Error::from);
            (model.name.to_string(), row)
        }
        Todo::Held(name) => {
            let located = beaker::snapshot::locate(store, &name).map(|l| Row::Held {
                name: name.clone(),
                path: l.main,
                dir: l.dir,
                downloaded: false,
                replaced: None,
            });
            (name.to_string(), located.map_err(anyhow::Error::from))
        }
    }
}

/// Prints a row that worked as text: a note if it was downloaded, and its path.
fn print_row(row: &Row, out: Output) {
    if out.json {
        return;
    }
    print_row_note(row, out);
    println!("{}", row.path().display());
}

/// The notes of a row: downloaded (with its whole BLAKE3), a name re-pointed.
fn print_row_note(row: &Row, out: Output) {
    if let Row::Pulled(p) = row {
        if p.downloaded {
            // The whole BLAKE3: what a catalogue entry or `--blake3` pins it by.
            out.note(format!(
                "pulled {}: {} blake3 {}",
                p.name,
                size(p.size),
                p.blake3.to_hex()
            ));
        }
        if let Some(before) = &p.replaced {
            out.note(format!(
                "{} pointed at other content before (blake3 {}); it now names blake3 {} (`beaker store gc` frees the old content if unused)",
                p.name,
                before.short(),
                p.blake3.short()
            ));
        }
    }
}

/// One `--json` row of a pull that worked.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Row {
    Pulled(beaker::pull::Pulled),
    Held {
        name: ModelName,
        path: PathBuf,
        dir: Option<PathBuf>,
        downloaded: bool,
        replaced: Option<beaker::digest::Blake3>,
    },
}

impl Row {
    fn path(&self) -> &Path {
        match self {
            Row::Pulled(p) => &p.path,
            Row::Held { path, .. } => path,
        }
    }
}
