//! `cargo xtask bench`: beaker side by side with its floors, in one run (P1–P10).
//!
//! Makes an incompressible model file, serves it from a real HTTP server on 127.0.0.1 (nginx
//! when installed, else a built-in static server), and times each job for beaker and for the
//! plain tools that bound it (`curl -o`, `b3sum`, `cp`, `sync FILE`, `dd conv=fsync`, `find |
//! sort | comm | rm`), alternately within each run. Prints the table and writes BENCHMARKS.md:
//! min/median/max, MB/s, peak RSS, the ratio to each floor, the machine and the command.
//! Files: `measure` (timing, RSS), `server`, `data` (inputs, filled stores), `transfer` (P1,
//! P2, P3, P5, P7), `maint` (P4, P6, P8), `filesystems` (P9, P10 on loop-mounted btrfs and
//! xfs), `report`.

mod data;
mod filesystems;
mod maint;
mod measure;
mod report;
mod server;
mod transfer;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

use measure::Series;

/// The model's name in the bench catalogue, and its file on the server.
const NAME: &str = "bench-model";
const MODEL_FILE: &str = "model.bin";
const JOBS: [&str; 10] = ["P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9", "P10"];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Size of the model file (e.g. 512M, 1M)
    #[arg(long, default_value = "512M")]
    size: String,
    /// Runs per job (each run times beaker and every floor once)
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Only these jobs (comma-separated, e.g. P1,P3); default all
    #[arg(long, value_delimiter = ',')]
    jobs: Vec<String>,
    /// Blobs in the gc job's store (half of them referenced)
    #[arg(long, default_value_t = 5000)]
    gc_blobs: usize,
    /// Names in the scale job's store
    #[arg(long, default_value_t = 20_000)]
    names: usize,
    /// The beaker binary to time; default: `cargo build --release` and target/release/beaker
    #[arg(long, value_name = "FILE")]
    beaker: Option<PathBuf>,
    /// Scratch directory (removed at the end); default target/bench-work
    #[arg(long, value_name = "DIR")]
    work: Option<PathBuf>,
    /// Where to write the report; default BENCHMARKS.md at the workspace root when every job
    /// runs (a run of some --jobs only prints its table)
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Use the built-in static server even when nginx is installed
    #[arg(long)]
    builtin_server: bool,
}

/// Everything a job needs.
pub struct Bench {
    beaker: PathBuf,
    work: PathBuf,
    runs: usize,
    server: server::Server,
    model: data::Model,
    catalogue: PathBuf,
    tools: Tools,
}

impl Bench {
    /// `beaker --store STORE --manifest CATALOGUE -q`, with no configuration file read (the
    /// lab's clean environment).
    fn beaker(&self, store: &Path) -> Command {
        let mut c = Command::new(&self.beaker);
        c.arg("--store")
            .arg(store)
            .arg("--manifest")
            .arg(&self.catalogue)
            .arg("-q");
        testkit::lab::clean_env(&mut c, &self.work);
        c
    }

    /// A new, initialised, empty store `work/<tag>` (made outside the timing).
    fn fresh_store(&self, tag: &str) -> Result<PathBuf> {
        let store = self.work.join(tag);
        if beaker::fsx::user::exists(&store) {
            beaker::fsx::user::remove_tree(&store)?;
        }
        measure::run(self.beaker(&store).args(["store", "init"]))?;
        Ok(store)
    }

    /// A path in the scratch directory.
    fn scratch(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    /// Fails unless `store` holds the model's blob at its full size (a job that "succeeded"
    /// without storing the model would time nothing).
    fn check_blob(&self, store: &Path) -> Result<()> {
        let blob = store.join("blobs").join(&self.model.blake3);
        let len = beaker::fsx::user::metadata(&blob)?
            .with_context(|| format!("the job left no blob {}", blob.display()))?
            .len();
        if len != self.model.size {
            bail!(
                "{} has {len} bytes, expected {}",
                blob.display(),
                self.model.size
            );
        }
        Ok(())
    }
}

/// The floors' tools: curl when installed; b3sum, else this program's own `bench-hash`
/// (BLAKE3 with rayon over 16 MiB reads), and the report says which.
pub struct Tools {
    curl: bool,
    b3sum: Option<PathBuf>,
    xtask: PathBuf,
}

impl Tools {
    fn find() -> Result<Tools> {
        Ok(Tools {
            curl: which("curl").is_some(),
            b3sum: which("b3sum"),
            xtask: std::env::current_exe().context("find the xtask binary")?,
        })
    }

    fn b3sum_name(&self) -> &'static str {
        if self.b3sum.is_some() {
            "b3sum"
        } else {
            "bench-hash (b3sum not installed)"
        }
    }

    /// The hash command as a shell word list.
    fn b3sum_cmd(&self) -> String {
        match &self.b3sum {
            Some(p) => format!("'{}'", p.display()),
            None => format!("'{}' bench-hash", self.xtask.display()),
        }
    }

    fn b3sum(&self, file: &Path) -> Command {
        let mut c = match &self.b3sum {
            Some(p) => Command::new(p),
            None => {
                let mut c = Command::new(&self.xtask);
                c.arg("bench-hash");
                c
            }
        };
        c.arg(file);
        c
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| beaker::fsx::user::metadata(p).is_ok_and(|m| m.is_some_and(|m| m.is_file())))
    })
}

/// One row of the table: beaker's series, its floors, and the target.
pub struct Row {
    id: &'static str,
    job: String,
    beaker: Series,
    /// Bytes moved per run, for MB/s (0: not a throughput job).
    bytes: u64,
    floors: Vec<(String, Series)>,
    target: String,
    /// Met when beaker's median / floors[i]'s median ≤ the limit.
    goal: Option<(usize, f64)>,
    /// Met when beaker's median ≤ this many seconds.
    goal_abs: Option<f64>,
    rss_limit: Option<u64>,
    /// A row that reports a peak RSS only (P7).
    rss_only: Option<u64>,
    met: Option<bool>,
    no_rss: bool,
    notes: Vec<String>,
}

impl Row {
    fn new(id: &'static str, job: &str, beaker: Series, bytes: u64) -> Row {
        Row {
            id,
            job: job.to_string(),
            beaker,
            bytes,
            floors: Vec::new(),
            target: String::new(),
            goal: None,
            goal_abs: None,
            rss_limit: None,
            rss_only: None,
            met: None,
            no_rss: false,
            notes: Vec::new(),
        }
    }
    fn floor(&mut self, label: &str, series: Series) {
        self.floors.push((label.to_string(), series));
    }
    fn note(&mut self, text: &str) {
        self.notes.push(text.to_string());
    }
    fn floor_series(&self, label: &str) -> Option<&Series> {
        self.floors.iter().find(|f| f.0 == label).map(|f| &f.1)
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let size = beaker::size::parse(&args.size).context("--size")?;
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let jobs: Vec<String> = if args.jobs.is_empty() {
        JOBS.iter().map(|j| j.to_string()).collect()
    } else {
        args.jobs
            .iter()
            .map(|j| j.trim().to_ascii_uppercase())
            .collect()
    };
    if let Some(bad) = jobs.iter().find(|j| !JOBS.contains(&j.as_str())) {
        bail!("unknown job {bad}; the jobs are {}", JOBS.join(","));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the workspace root")?
        .to_path_buf();
    let beaker = match args.beaker.clone() {
        Some(p) => std::path::absolute(p)?,
        None => build_release(&root)?,
    };
    let work = std::path::absolute(
        args.work
            .clone()
            .unwrap_or_else(|| root.join("target/bench-work")),
    )?;
    if beaker::fsx::user::exists(&work) {
        filesystems::unmount_under(&work);
        beaker::fsx::user::remove_tree(&work)?;
    }
    beaker::fsx::user::create_dir_all(&work.join("www"))?;
    let result = run_in(&args, size, &jobs, beaker, &work, &root);
    let _ = beaker::fsx::user::remove_tree(&work);
    result
}

fn run_in(
    args: &Args,
    size: u64,
    jobs: &[String],
    beaker: PathBuf,
    work: &Path,
    root: &Path,
) -> Result<ExitCode> {
    let want = |j: &str| jobs.iter().any(|x| x == j);
    eprintln!("bench: making a {} incompressible model", human(size));
    let model = data::make_file(&work.join("www").join(MODEL_FILE), size, 0xbea4e7)?;
    let server = server::Server::start(&work.join("www"), work, args.builtin_server)?;
    eprintln!(
        "bench: serving it with {} on port {}",
        server.what, server.port
    );
    let catalogue = work.join("bench.toml");
    data::write_catalogue(&catalogue, NAME, &model, &server.url(MODEL_FILE))?;
    let b = Bench {
        beaker,
        work: work.to_path_buf(),
        runs: args.runs,
        server,
        model,
        catalogue,
        tools: Tools::find()?,
    };
    let mut rows: Vec<Row> = Vec::new();
    let (mut pull, mut add) = (None, None);
    if want("P1") || want("P5") || want("P7") {
        eprintln!("bench: P1 pull");
        let (row, series) = transfer::p1_pull(&b)?;
        pull = Some((row, series));
    }
    if want("P2") {
        eprintln!("bench: P2 cache hit");
        rows.push(transfer::p2_cache_hit(&b)?);
    }
    if want("P3") || want("P7") {
        eprintln!("bench: P3 add");
        add = Some(transfer::p3_add(&b)?);
    }
    if want("P4") {
        eprintln!("bench: P4 verify");
        rows.push(maint::p4_verify(&b)?);
    }
    if want("P5") {
        eprintln!("bench: P5 concurrent pulls");
        if let Some((_, one)) = &pull {
            rows.push(transfer::p5_concurrent(&b, one)?);
        }
    }
    if want("P6") {
        eprintln!("bench: P6 gc");
        rows.push(maint::p6_gc(&b, args.gc_blobs)?);
    }
    if want("P7") {
        if let (Some((p, ps)), Some((_, a))) = (&pull, &add) {
            rows.push(transfer::p7_rss(&b, ps, a, p.floor_series("curl -o")));
        }
    }
    if want("P8") {
        eprintln!("bench: P8 scale");
        rows.extend(maint::p8_scale(&b, args.names)?);
    }
    if want("P9") || want("P10") {
        eprintln!("bench: P9/P10 on btrfs and xfs");
        rows.extend(filesystems::p9_p10(&b, want("P9"), want("P10"))?);
    }
    if want("P3") {
        if let Some((row, _)) = add {
            rows.push(row);
        }
    }
    if want("P1") {
        if let Some((row, _)) = pull {
            rows.push(row);
        }
    }
    rows.sort_by_key(|r| r.id[1..].parse::<u32>().unwrap_or(0));
    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let env = report::Environment::probe(work, &b.server.what, &b.beaker, root, &command);
    let text = report::table(&rows);
    println!("{text}");
    // A run of some jobs only never replaces the full report, unless asked to with --out.
    let out = match &args.out {
        Some(p) => p.clone(),
        None if jobs.len() == JOBS.len() => root.join("BENCHMARKS.md"),
        None => {
            eprintln!(
                "bench: BENCHMARKS.md not written (only some jobs ran; --out FILE writes this run)"
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    report::write(&out, &env, &text)?;
    eprintln!("bench: wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// `cargo build --release --bin beaker`, and the path of what it built.
fn build_release(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("bench: cargo build --release --bin beaker");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--package",
            "beaker",
            "--bin",
            "beaker",
        ])
        .current_dir(root)
        .status()
        .context("run cargo build")?;
    if !status.success() {
        bail!("cargo build --release failed ({status})");
    }
    Ok(root.join("target/release/beaker"))
}

/// `cargo xtask bench-hash FILE`: prints the file's BLAKE3 as b3sum does (the floor when b3sum
/// is not installed): 16 MiB reads, each hashed with rayon on every core.
pub fn hash_file(file: &Path) -> Result<ExitCode> {
    use std::io::Read;
    let mut f = beaker::fsx::user::open(file)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 16 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("read {}", file.display()))?;
        if n == 0 {
            break;
        }
        h.update_rayon(&buf[..n]);
    }
    println!("{}  {}", h.finalize().to_hex(), file.display());
    Ok(ExitCode::SUCCESS)
}

/// `cargo xtask bench-exec PROGRAM ARGS…` (see [`measure::exec_and_report`]).
pub fn exec(program: &std::ffi::OsStr, args: &[std::ffi::OsString]) -> Result<ExitCode> {
    measure::exec_and_report(program, args)?;
    Ok(ExitCode::SUCCESS)
}

/// 536870912 → "512 MiB".
fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// 20000 → "20,000".
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
