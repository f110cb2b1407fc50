//! The command line (DESIGN §10), declared with clap derive. Global flags work before or after the
//! subcommand.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "beaker",
    version,
    about = "A content-addressed model store shared by many processes and users",
    long_about = "beaker keeps model files (ONNX and others) under their BLAKE3 hash in a store \
directory that many processes and Unix users can share. Publishing is lock-guarded and atomic: \
a crash or a race never leaves a corrupt model behind.",
    after_help = "Exit codes: 0 ok, 1 operation failed, 2 bad usage or input, 3 `path` of a name not present."
)]
pub struct Cli {
    /// Store directory [default: $XDG_CACHE_HOME/beaker/store]
    #[arg(long, global = true, env = "BEAKER_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Catalogue manifest to resolve names through (repeatable) [default: $BEAKER_MANIFEST, else the bundled one]
    #[arg(long = "manifest", global = true, value_name = "FILE")]
    pub manifests: Vec<PathBuf>,
    /// Print one JSON document on stdout instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only results and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Say more about what is happening (on stderr)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// ONNX Runtime library (libonnxruntime.so*) for --check, verify --deep [default:
    /// $ORT_DYLIB_PATH, else python3's onnxruntime, else the checkout's .ort/]
    #[arg(long, global = true, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with the model store
    #[command(subcommand)]
    Store(StoreCommand),
    /// Work with catalogue manifests
    #[command(subcommand)]
    Manifest(ManifestCommand),
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create a store (a private one is also created on first use)
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
    /// Copy a local file into the store under NAME (hashing it in the same pass)
    Add {
        /// The file to add
        file: PathBuf,
        /// The name to record it under (a-z, 0-9, '.', '_', '-', optionally ORG/NAME)
        #[arg(long)]
        name: String,
        /// Load an ONNX model (a .onnx file) in ONNX Runtime first; one that fails is not added
        #[arg(long)]
        check: bool,
    },
    /// Fetch models from the catalogues into the store (once, however many processes ask) and
    /// print one blob path per name
    Pull {
        /// Catalogue names (see --manifest)
        #[arg(required = true)]
        names: Vec<String>,
        /// Never open a connection: succeed only for models already in the store [env: BEAKER_OFFLINE=1]
        #[arg(long)]
        offline: bool,
        /// Give up waiting for another process downloading the same model after D (e.g. 30s, 5m)
        #[arg(long, value_name = "D", value_parser = parse_duration)]
        lock_timeout: Option<std::time::Duration>,
        /// PEM file of CA certificates to trust instead of the built-in roots (default: $SSL_CERT_FILE)
        #[arg(long, value_name = "FILE")]
        ca_cert: Option<PathBuf>,
        /// Load each ONNX model in ONNX Runtime before publishing it; one that fails is not published
        #[arg(long)]
        check: bool,
    },
    /// Show what the store knows about a model (a name, or a blob's BLAKE3) and, for ONNX, its
    /// inputs, outputs, opsets, producer and metadata
    #[command(
        after_help = "--json prints {name, blake3, size, format, inputs: [{name, type, shape}], outputs, opsets, producer, ir_version, metadata, …}; see docs/onnx.md."
    )]
    Show {
        /// A name the store holds, or a 64-hex BLAKE3
        target: String,
    },
    /// Print the blob path of NAME (exit 3 if the store does not hold it)
    Path { name: String },
    /// List the names the store holds
    Ls,
    /// Remove names from the store, and the blobs no other name uses
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Show where the store is, how it is set up, and what uses its space
    Info,
    /// Delete blobs no name references, stale temp files and old quarantine (mark and sweep)
    #[command(
        after_help = "--json prints {removed_blobs: [hex…], freed_bytes, removed_partials: [name…], kept_blobs: count, …}; see docs/maint.md."
    )]
    Gc(GcArgs),
    /// Re-hash blobs; move corrupt ones to quarantine/ and list names whose blob is missing (exit 1 if any)
    #[command(
        after_help = "--json prints {checked, ok, corrupt: [{blake3, quarantined_to, problem}], missing: [name…], …}; see docs/maint.md."
    )]
    Verify(VerifyArgs),
    /// Remove lock files nobody holds (held ones are listed with their holder); report stale temp files
    PruneLocks,
}

/// `gc` flags, shared with `cargo xtask gc`.
#[derive(Debug, Clone, clap::Args)]
pub struct GcArgs {
    /// Report what would be removed; remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Remove temp files untouched for at least this long (30s, 10m, 24h, 7d) whose writer is gone
    #[arg(long, value_name = "D", default_value = "24h", value_parser = beaker::gc::parse_age)]
    pub tmp_age: std::time::Duration,
    /// Also keep every blob this catalogue names (repeatable)
    #[arg(long, value_name = "MANIFEST")]
    pub keep: Vec<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Only the blobs of these names [default: every blob in the store]
    pub names: Vec<String>,
    /// Also load every ONNX model in ONNX Runtime and list those that fail
    #[arg(long)]
    pub deep: bool,
}

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Validate catalogue manifests (exit 2 with file:line:col on the first error)
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
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

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    beaker::fetch::parse_duration(s)
}
