//! The command line (docs/design.md#cli), declared with clap derive. Global flags work before or after the
//! subcommand. A group of flags more than one command or front end takes is one `clap::Args`
//! struct, flattened where it is used: [`Locations`], [`Output`] (with the printing it chooses,
//! in `output.rs`), [`RemoteArgs`], [`PinArgs`], and `beaker::maint_args` (shared with
//! `cargo xtask`). Also: [`is_plain_url`], what a URL argument is.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use super::output::Output;

#[derive(Debug, Parser)]
#[command(
    name = "beaker",
    version,
    about = "A content-addressed model store shared by many processes and users",
    long_about = "beaker keeps model files (ONNX and others) under their BLAKE3 hash in a store \
directory that many processes and Unix users can share. Publishing is lock-guarded and atomic: \
a crash or a race never leaves a corrupt model behind.",
    after_help = "Examples:\n  beaker pull tiny-add\n  beaker store add ./model.onnx --name my-model\n  beaker path my-model\n  beaker ls\n\n\
Exit codes: 0 ok, 1 operation failed, 2 bad usage or input, 3 a name the store does not hold.\n\
Environment: BEAKER_STORE, BEAKER_CATALOGUE (older: BEAKER_MANIFEST), BEAKER_OFFLINE, BEAKER_CONNECT_TIMEOUT, BEAKER_STALL_TIMEOUT, \
BEAKER_RETRIES, BEAKER_RETRY_BASE, BEAKER_RETRY_AFTER_MAX, BEAKER_CONFIG, BEAKER_SYSTEM_CONFIG, \
BEAKER_NO_PROGRESS, BEAKER_LEASE_SILENCE, ORT_DYLIB_PATH, SSL_CERT_FILE, HTTPS_PROXY/NO_PROXY, \
BEAKER_REGISTRY_USER/BEAKER_REGISTRY_PASSWORD.\n\
Config files: ~/.config/beaker/config.toml over /etc/beaker/config.toml (`beaker config show`)."
)]
pub struct Cli {
    #[command(flatten)]
    pub locations: Locations,
    #[command(flatten)]
    pub output: Output,
    /// ONNX Runtime library (libonnxruntime.so*) for --check, verify --deep [default:
    /// $ORT_DYLIB_PATH, else python3's onnxruntime, else the checkout's .ort/]
    #[arg(long, global = true, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the store and the catalogues are (resolved with the environment and the configuration
/// files by [`super::context::Context`]).
#[derive(Debug, Clone, clap::Args)]
pub struct Locations {
    /// Store directory [env: BEAKER_STORE] [default: `store` in a config file, else
    /// $XDG_CACHE_HOME/beaker/store]
    #[arg(long, global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// A catalogue to resolve names through (repeatable) [default: $BEAKER_CATALOGUE, else the
    /// bundled one] (`--manifest` is its older name)
    #[arg(
        long = "catalogue",
        alias = "manifest",
        global = true,
        value_name = "FILE"
    )]
    pub manifests: Vec<PathBuf>,
    /// Never open a connection: a pull succeeds only for models already in the store
    /// [env: BEAKER_OFFLINE=1]
    #[arg(long, global = true)]
    pub offline: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with the model store
    #[command(subcommand)]
    Store(StoreCommand),
    /// The older name of `beaker catalogue check|entry`
    #[command(subcommand, hide = true)]
    Manifest(ManifestCommand),
    /// Catalogues: what they offer, checking one, writing an entry
    #[command(subcommand)]
    Catalogue(CatalogueCommand),
    /// The configuration files and the effective settings
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (e.g. `beaker completions bash > /etc/bash_completion.d/beaker`)
    #[command(
        after_help = "Examples:\n  beaker completions bash > /etc/bash_completion.d/beaker\n  beaker completions zsh > ~/.zfunc/_beaker"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages (beaker.1 and one per subcommand) into DIR (`cargo xtask man` runs this)
    #[command(hide = true)]
    Man { dir: PathBuf },
    /// Work with OCI registries (the shared remote)
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// What a bug report needs: versions, the store and its filesystem, the configuration, the
    /// catalogues, the ONNX Runtime found
    #[command(
        after_help = "Examples:\n  beaker env\n  beaker --json env > beaker-env.json   # attach to a bug report"
    )]
    Env,
    #[command(flatten)]
    Short(Short),
}

/// `store path`'s arguments.
#[derive(Debug, clap::Args)]
pub struct PathArgs {
    /// A name the store holds
    pub name: String,
    /// Print the model's directory (its snapshot, every file under its real name)
    #[arg(long, conflicts_with = "blob")]
    pub dir: bool,
    /// Print the main file's blob (`blobs/<blake3>`) instead
    #[arg(long)]
    pub blob: bool,
}

/// `store ls`'s arguments.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Only these names (`*` matches any run of characters: `lab/*`, `*-int8`)
    pub names: Vec<String>,
    /// Also FORMAT, FILES, ADDED, PATH and DESCRIPTION (all of them are always in --json)
    #[arg(long, short)]
    pub long: bool,
    /// Order: by name, by size (largest first), or by last use (most recent first)
    #[arg(long, value_enum, default_value_t = SortBy::Name)]
    pub sort: SortBy,
}

/// `store ls --sort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SortBy {
    Name,
    Size,
    Used,
}

/// `store rm`'s arguments.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Names the store holds (all or nothing: an unknown name removes none)
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Say what would be removed and freed; remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Remove names other users pulled or added without asking (without it, rm asks at a
    /// terminal and refuses elsewhere)
    #[arg(long, short)]
    pub yes: bool,
}

/// The store commands people type most, without `store` (as `uv` and `hf` have short verbs).
#[derive(Debug, Subcommand)]
pub enum Short {
    /// Short for `beaker store pull`
    #[command(
        after_help = "Examples:\n  beaker pull tiny-add\n  beaker pull oci://registry.lab/vision/bird:v3 --name bird"
    )]
    Pull(PullArgs),
    /// Short for `beaker store path`
    #[command(after_help = "Examples:\n  beaker path tiny-add\n  beaker path tiny-ext --dir")]
    Path(PathArgs),
    /// Short for `beaker store ls`
    #[command(after_help = "Examples:\n  beaker ls\n  beaker ls 'lab/*' --sort size -l")]
    Ls(LsArgs),
    /// Short for `beaker store rm`
    #[command(after_help = "Examples:\n  beaker rm tiny-add\n  beaker rm old-model --dry-run")]
    Rm(RmArgs),
}

impl Short {
    /// The store command this is short for.
    pub fn into_store(self) -> StoreCommand {
        match self {
            Short::Pull(a) => StoreCommand::Pull(a),
            Short::Path(a) => StoreCommand::Path(a),
            Short::Ls(a) => StoreCommand::Ls(a),
            Short::Rm(a) => StoreCommand::Rm(a),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum CatalogueCommand {
    /// List every model the catalogues offer (name, size, format, whether the store has it)
    #[command(
        after_help = "Examples:\n  beaker catalogue ls\n  beaker --catalogue lab.toml catalogue ls --json"
    )]
    Ls,
    #[command(flatten)]
    Files(ManifestCommand),
    /// Show one catalogue entry: its files, digests and sources
    #[command(after_help = "Examples:\n  beaker catalogue show tiny-ext")]
    Show {
        /// A name one of the catalogues defines
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting's effective value and where it came from
    /// (flag > environment > user config > system config > default)
    #[command(
        after_help = "Examples:\n  beaker config show\n  BEAKER_STORE=/srv/models beaker config show"
    )]
    Show,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Check credentials against a registry and save them in the docker config
    /// (~/.docker/config.json, or $DOCKER_CONFIG/config.json; 0600)
    #[command(
        after_help = "Examples:\n  beaker registry login registry.lab -u alice --password-stdin < token.txt\n  beaker registry login 127.0.0.1:5000 --plain-http -u ci"
    )]
    Login {
        /// The registry: HOST[:PORT]
        host: String,
        /// User name [env: BEAKER_REGISTRY_USER]
        #[arg(short, long)]
        username: Option<String>,
        /// Read the password from stdin (one line) [else env: BEAKER_REGISTRY_PASSWORD]
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// How to reach a registry.
#[derive(Debug, Clone, clap::Args)]
pub struct RemoteArgs {
    /// Talk plain HTTP to the registry (as `oci+http://` does)
    #[arg(long)]
    pub plain_http: bool,
    /// PEM file of CA certificates to trust instead of the built-in roots (default: $SSL_CERT_FILE)
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create a store (a private one is also created on first use)
    #[command(
        after_help = "Examples:\n  beaker store init\n  beaker --store /srv/models store init --shared group --group lab\n  beaker --store /lustre/models store init --locking none"
    )]
    Init {
        /// Share the store with a Unix group (directories 2775 setgid, files 0664)
        #[arg(long, value_enum, value_name = "MODE")]
        shared: Option<SharedMode>,
        /// With --shared group: the Unix group that shares the store (default: the directory's group)
        #[arg(long, requires = "shared", value_name = "NAME")]
        group: Option<String>,
        /// Use flock locks (default) or none, for filesystems where flock does not work
        #[arg(long, value_enum, default_value_t = LockingArg::Flock)]
        locking: LockingArg,
    },
    /// Copy a model file, or a directory of a model's files, into the store under a name
    #[command(
        after_help = "Examples:\n  beaker store add ./model.onnx --name my-model\n  beaker store add ./ocr-pipeline/ --name lab/ocr --check"
    )]
    Add {
        /// The file to add, or a directory: every regular file under it, by its relative path
        file: PathBuf,
        /// The name to record it under (a-z, 0-9, '.', '_', '-', optionally ORG/NAME)
        #[arg(long)]
        name: String,
        /// Load an ONNX model (a .onnx file) in ONNX Runtime first; one that fails is not added
        #[arg(long)]
        check: bool,
    },
    /// Fetch models from the catalogues or a registry into the store (once, however many
    /// processes ask) and print the path of each model's main file
    #[command(
        after_help = "Examples:\n  beaker store pull tiny-add tiny-mul\n  beaker store pull https://host/m.onnx --name m --blake3 $BLAKE3\n  beaker store pull tiny-ext --to ./models/tiny-ext"
    )]
    Pull(PullArgs),
    /// Show what the store knows about a model (a name, or a blob's BLAKE3 or its start) and,
    /// for ONNX, its inputs, outputs, opsets, producer and metadata
    #[command(
        after_help = "Examples:\n  beaker store show tiny-multi\n  beaker store show c4754911a5b9\n\n--json prints {name, blake3, size, format, inputs: [{name, type, shape}], outputs, opsets, producer, ir_version, metadata, …}; see docs/onnx.md."
    )]
    Show {
        /// A name the store holds, a 64-hex BLAKE3, or its first 8 or more hex digits (as `ls`
        /// prints them) when no name is that
        target: String,
    },
    /// Print the path of NAME's main file, under its real name in the model's directory (exit 3
    /// if the store does not hold it)
    #[command(
        after_help = "Examples:\n  beaker store path tiny-add\n  python infer.py --model \"$(beaker store path tiny-add)\""
    )]
    Path(PathArgs),
    /// Put a model's files under their names in DIR: copies (reflinks where the filesystem can),
    /// or hard links to the blobs with --link; never overwrites a different file
    #[command(
        after_help = "Examples:\n  beaker store export tiny-ext ./deploy/tiny-ext\n  beaker store export tiny-ext ./same-fs-dir --link"
    )]
    Export {
        /// A name the store holds
        name: String,
        /// The directory to put the files in (created if missing)
        dir: PathBuf,
        /// Hard links to the blobs instead of copies: no space, but each file IS the stored blob
        /// (whoever can write it, e.g. root, changes the model in the store); fails rather than
        /// copy where a link is impossible
        #[arg(long, conflicts_with = "copy")]
        link: bool,
        /// Copies (the default; a reflink where the filesystem can): files you may edit without
        /// touching the store
        #[arg(long)]
        copy: bool,
    },
    /// Upload a model to an OCI registry (config `{}`, one layer per file, an image manifest)
    /// and print the manifest's digest
    #[command(
        after_help = "Examples:\n  beaker store push lab/ocr oci://registry.lab/vision/ocr:v2\n\n--json prints {name, reference, digest, uploaded_bytes}. Blobs the registry has are not sent."
    )]
    Push {
        /// The model's name in this store
        name: String,
        /// Where to: oci://HOST[:PORT]/REPO[:TAG] (tag default: latest; oci+http:// for plain HTTP)
        reference: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List the tags of a registry repository, with the model name each one carries
    #[command(after_help = "Examples:\n  beaker store ls-remote oci://registry.lab/vision/ocr")]
    LsRemote {
        /// oci://HOST[:PORT]/REPO
        reference: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List the names the store holds
    #[command(
        after_help = "Examples:\n  beaker store ls\n  beaker -q store ls   # names only\n  beaker store ls 'lab/*' --sort used -l"
    )]
    Ls(LsArgs),
    /// Print the store's directory (absolute)
    #[command(after_help = "Examples:\n  beaker store dir\n  du -sh \"$(beaker store dir)\"")]
    Dir,
    /// Remove names from the store, and the blobs no other name uses
    #[command(
        after_help = "Examples:\n  beaker store rm old-model\n  beaker store rm lab/ocr --dry-run\n  beaker store rm -y alices-model   # another user's, without asking"
    )]
    Rm(RmArgs),
    /// Pin names: gc and the store's max_size never evict them (exit 3 if the store does not hold one)
    #[command(after_help = "Examples:\n  beaker store pin tiny-add")]
    Pin {
        /// Names the store holds
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Unpin names, so a budget may evict them again
    #[command(after_help = "Examples:\n  beaker store unpin tiny-add")]
    Unpin {
        /// Pinned names
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Show where the store is, how it is set up, and what uses its space
    #[command(after_help = "Examples:\n  beaker store info\n  beaker --json store info")]
    Info,
    /// Delete blobs no name references, stale temp files and old quarantine (mark and sweep);
    /// with --max-size / --older-than, first evict least recently used names
    #[command(
        after_help = "Examples:\n  beaker store gc\n  beaker store gc --max-size 20G --dry-run\n\n--json prints {removed_blobs: [hex…], freed_bytes, removed_partials: [name…], kept_blobs: count, evicted: [{name, blake3, size, last_used}], …}; see docs/maint.md."
    )]
    Gc(beaker::maint_args::GcArgs),
    /// Re-hash blobs; move corrupt ones to quarantine/ and list names whose blob is missing (exit 1 if any)
    #[command(
        after_help = "Examples:\n  beaker store verify\n  beaker store verify tiny-add --deep\n\n--json prints {checked, ok, corrupt: [{blake3, quarantined_to, problem}], missing: [name…], …}; see docs/maint.md."
    )]
    Verify(beaker::maint_args::VerifyArgs),
    /// Remove lock files nobody holds (held ones are listed with their holder); report stale temp files
    #[command(after_help = "Examples:\n  beaker store prune-locks")]
    PruneLocks,
}

/// `store pull`'s flags.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Catalogue names (see --catalogue), or registry references oci://HOST/REPO[:TAG|@sha256:HEX]
    #[arg(required = true)]
    pub names: Vec<String>,
    /// The name to record a pulled oci:// reference under (default: the repository's last one
    /// or two parts); required to pull a plain URL
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    #[command(flatten)]
    pub pins: PinArgs,
    /// Talk plain HTTP to registries (as `oci+http://` does)
    #[arg(long)]
    pub plain_http: bool,
    /// Give up waiting for another process downloading the same model after D (e.g. 250ms, 30s, 5m)
    #[arg(long, value_name = "D", value_parser = beaker::duration::parse)]
    pub lock_timeout: Option<std::time::Duration>,
    /// PEM file of CA certificates to trust instead of the built-in roots (default: $SSL_CERT_FILE)
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Load each ONNX model in ONNX Runtime before publishing it; one that fails is not published
    #[arg(long)]
    pub check: bool,
    /// Also copy the model's files into DIR under their names (as `store export`; one model),
    /// and print the main file's path there
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
}

/// `--blake3/--sha256/--md5`: the digests a plain URL pulled with `--name` must have.
#[derive(Debug, clap::Args)]
pub struct PinArgs {
    /// Pin the BLAKE3 of a plain URL pulled with --name (else trust on first use)
    #[arg(long, value_name = "HEX")]
    pub blake3: Option<String>,
    /// Pin the SHA-256 of a plain URL pulled with --name
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// Pin the MD5 of a plain URL pulled with --name
    #[arg(long, value_name = "HEX")]
    pub md5: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Validate catalogue files (exit 2 with file:line:col on the first error)
    #[command(after_help = "Examples:\n  beaker catalogue check manifests/models.toml lab.toml")]
    Check {
        /// Catalogue files (TOML, `version = 1`)
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a catalogue entry (blake3, size, sha256, urls) for a local file or a URL (a URL is
    /// downloaded into a scratch store to hash it, then deleted)
    #[command(
        after_help = "Examples:\n  beaker catalogue entry ./model.onnx --name my-model > catalogue.toml\n  beaker catalogue entry https://host/m.onnx --name m"
    )]
    Entry {
        /// A file, or an https://, http:// or file:// URL
        source: String,
        /// The model name for the entry
        #[arg(long)]
        name: String,
    },
}

/// `https://…`, `http://…` or `file://…` (in any case): an argument that is a plain URL, not a
/// name, a path or a registry reference.
pub fn is_plain_url(arg: &str) -> bool {
    let lower = arg.to_ascii_lowercase();
    ["https://", "http://", "file://"]
        .iter()
        .any(|p| lower.starts_with(p))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SharedMode {
    /// Every member of the store directory's group can pull, add, rm and gc
    Group,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LockingArg {
    Flock,
    None,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    /// Every command a user can reach (not the hidden ones), with its full name.
    fn leaves(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
            let name = format!("{path} {}", sub.get_name());
            if sub.has_subcommands() {
                leaves(sub, &name, out);
            } else if sub.get_name() != "help" {
                out.push((name, sub.clone()));
            }
        }
    }

    /// Every command's --help ends with examples, and each example that is a beaker command
    /// line parses as one (so the examples cannot rot as flags change).
    #[test]
    fn every_help_has_examples_that_parse() {
        let cli = super::Cli::command();
        let mut all = Vec::new();
        leaves(&cli, "beaker", &mut all);
        assert!(all.len() >= 29, "{} commands", all.len());
        let mut parsed = 0;
        for (name, cmd) in all {
            let help = cmd
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            let Some(examples) = help.split("Examples:\n").nth(1) else {
                panic!("{name} --help has no Examples");
            };
            let examples = examples.split("\n\n").next().unwrap_or_default();
            for line in examples.lines() {
                // The command line only: no comment, no redirection, no pipe.
                let line = line.split(" #").next().unwrap_or_default();
                let line = line
                    .split(['>', '<', '|'])
                    .next()
                    .unwrap_or_default()
                    .trim();
                let line = line
                    .split_whitespace()
                    .skip_while(|w| w.contains('='))
                    .collect::<Vec<_>>();
                if line.first() != Some(&"beaker") {
                    continue;
                }
                let args: Vec<String> = line
                    .iter()
                    .map(|w| w.trim_matches('\'').to_owned())
                    .collect();
                if let Err(e) = super::Cli::try_parse_from(&args) {
                    panic!(
                        "{name}: the example `{}` does not parse: {e}",
                        args.join(" ")
                    );
                }
                parsed += 1;
            }
        }
        assert!(parsed >= 40, "{parsed} examples parsed");
    }
}
