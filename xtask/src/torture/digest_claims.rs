//! R9, digest claims: upstream digests that lie next to right BLAKE3s. Each trial builds a fresh
//! store, sometimes holding the blob a lying entry pins (pulled with its right digests, or added),
//! then pulls one lie through the real binary against the campaign's HTTP server:
//!
//! - a catalogue entry pinning blob O's BLAKE3 and size with the md5 and/or sha256 of other bytes
//!   R (each digest none, right or wrong, at least one wrong);
//! - the same inside a model of two files, the other file right;
//! - a registry manifest (served as `oci+http://`) whose layer digest is R's sha256 while its
//!   `dev.beaker.blake3` annotation names O, with the layer's bytes being R (the annotation lies)
//!   or O (the layer digest lies);
//! - and, as a control, an entry whose digests are all O's: it must succeed and be served O.
//!
//! A lie must be refused (exit 1, a "mismatch" message, nothing printed). After it, [`check`]'s
//! I5 must hold: no record and no index file holds a digest that its blob's bytes do not have
//! (md5/sha256 computed by Python's `hashlib`). Then the model the lying digest really names is
//! pulled by that digest alone: it must be served R's bytes; and I1–I5 must hold again.
//!
//! The model bytes come from a small pool whose digests are computed once by the oracle, so the
//! catalogues' digests do not come from beaker's own hash crates either.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use testkit::lab::{blake3_hex, bytes, run_within, Lab, Rng, Run, LIMIT};
use testkit::server::{Fault, Server};

use super::check::{check_digests, check_store};
use super::{Ctx, Outcome};

/// Bytes of each model file.
const LEN: usize = 24_000;
/// Distinct bodies a trial picks its files from.
const POOL: usize = 12;

/// One body of the pool, with its digests (from the oracle's md5/sha256 and the blake3 crate).
struct Body {
    bytes: Vec<u8>,
    blake3: String,
    md5: String,
    sha256: String,
    /// Where the server serves it.
    url: String,
}

/// What a trial pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A catalogue entry: O's BLAKE3 and size, wrong md5 and/or sha256 (R's).
    Catalogue,
    /// The same as the second file of a model of two.
    TwoFiles,
    /// A registry layer of R's bytes and sha256, annotated with O's BLAKE3.
    AnnotationLies,
    /// A registry layer of O's bytes and BLAKE3 annotation, with R's sha256 as its digest.
    LayerDigestLies,
    /// A catalogue entry whose digests are all O's: must be served O.
    RightClaims,
}

const KINDS: [Kind; 5] = [
    Kind::Catalogue,
    Kind::TwoFiles,
    Kind::AnnotationLies,
    Kind::LayerDigestLies,
    Kind::RightClaims,
];

/// An upstream digest of an entry: absent, O's (right), or R's (a lie).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    None,
    Right,
    Wrong,
}

pub fn run(ctx: &Ctx) -> Result<Outcome> {
    let mut out = Outcome::new("R9 digest claims");
    let server = Server::start()?;
    let pool_lab = super::new_lab(ctx, "digests-pool")?;
    let pool = pool(ctx, &pool_lab, &server)?;
    let mut rng = Rng::new(ctx.seed.wrapping_mul(7919));
    let mut table = std::collections::BTreeMap::<(Kind, bool), (u64, u64)>::new();
    let (mut compared, mut refused, mut store_checks) = (0usize, 0u64, 0u64);
    for trial in 0..ctx.trials {
        out.runs += 1;
        let kind = *rng.pick(&KINDS);
        let present = rng.below(2) == 1;
        let (r, o, a) = three(&mut rng);
        let (r, o, a) = (&pool[r], &pool[o], &pool[a]);
        let (md5, sha256) = claims(kind, &mut rng);
        let lab = super::new_lab(ctx, "digests")?;
        let mut problems = Vec::new();
        let what = format!(
            "trial {trial} ({kind:?}, O {}present)",
            if present { "" } else { "not " }
        );

        if present {
            // O in the store: pulled with its right digests (so the index holds right records to
            // check too), or added (no upstream digest anywhere).
            let setup = if rng.below(2) == 0 {
                let entry = single(o, Claim::Right, Claim::Right, o, true);
                let cat = write(&lab, "setup.toml", &[("other", entry)])?;
                lab.run(&["--manifest", &cat, "store", "pull", "other"])?
            } else {
                let file = lab.file("o.bin", &o.bytes)?;
                lab.run(&["store", "add", &file.to_string_lossy(), "--name", "other"])?
            };
            anyhow::ensure!(
                setup.success(),
                "{what}: putting O in the store failed: {}",
                setup.describe()
            );
        }

        // The pull that claims: refused, unless every claim is right.
        let claimed = match kind {
            Kind::Catalogue | Kind::RightClaims => {
                let cat = write(
                    &lab,
                    "claims.toml",
                    &[("liar", single(o, md5, sha256, r, true))],
                )?;
                lab.run(&["--manifest", &cat, "store", "pull", "liar"])?
            }
            Kind::TwoFiles => {
                let mut entry = String::new();
                file_entry(&mut entry, "liar", "a.bin", a, Claim::None, Claim::None, a);
                file_entry(&mut entry, "liar", "o.bin", o, md5, sha256, r);
                let cat = write(&lab, "claims.toml", &[("liar", entry)])?;
                lab.run(&["--manifest", &cat, "store", "pull", "liar"])?
            }
            Kind::AnnotationLies | Kind::LayerDigestLies => {
                let served = if kind == Kind::AnnotationLies { r } else { o };
                let repo = format!("t{trial}");
                registry(&server, &repo, &r.sha256, Some(&o.blake3), served);
                let reference = format!("oci+http://127.0.0.1:{}/{repo}:v1", server.port);
                pull_oci(&lab, &reference)?
            }
        };
        if kind == Kind::RightClaims {
            if !claimed.success() {
                problems.push(format!("right claims were refused: {}", claimed.describe()));
            } else {
                served(&claimed, o, "O", &mut problems);
            }
        } else if claimed.code == 1
            && claimed.stdout.is_empty()
            && claimed.message().contains("mismatch")
        {
            refused += 1;
        } else {
            problems.push(format!(
                "the lie was not refused as promised (exit 1, a mismatch): {}, stdout {:?}",
                claimed.describe(),
                claimed.stdout.trim()
            ));
        }
        let (bad, n) = check_digests(&lab.store, &ctx.oracle)?;
        compared += n;
        problems.extend(bad.into_iter().map(|v| format!("after the claim: {v}")));

        // The model the lying digests really name, pulled by them alone: R's bytes.
        if kind != Kind::RightClaims {
            let real = match kind {
                Kind::AnnotationLies | Kind::LayerDigestLies => {
                    let repo = format!("f{trial}");
                    registry(&server, &repo, &r.sha256, None, r);
                    let reference = format!("oci+http://127.0.0.1:{}/{repo}:v1", server.port);
                    pull_oci(&lab, &reference)?
                }
                _ => {
                    // Only the digests that lied, as an upstream-only entry does.
                    let only = |c| {
                        if c == Claim::Wrong {
                            Claim::Wrong
                        } else {
                            Claim::None
                        }
                    };
                    let entry = single(o, only(md5), only(sha256), r, false);
                    let cat = write(&lab, "real.toml", &[("real", entry)])?;
                    lab.run(&["--manifest", &cat, "store", "pull", "real"])?
                }
            };
            if real.success() {
                served(&real, r, "R", &mut problems);
            } else {
                problems.push(format!("the real model's pull failed: {}", real.describe()));
            }
        }
        store_checks += 1;
        problems.extend(check_store(&lab.store, &ctx.oracle)?);
        let (bad, n) = check_digests(&lab.store, &ctx.oracle)?;
        compared += n;
        problems.extend(bad);

        let row = table.entry((kind, present)).or_default();
        row.0 += 1;
        row.1 += problems.len() as u64;
        for p in problems {
            out.violations.push(format!("{what}: {p}"));
        }
    }
    let mut md = String::from("| claim | O present | trials | violations |\n|---|---|---|---|\n");
    for ((kind, present), (trials, violations)) in &table {
        let _ = writeln!(md, "| {kind:?} | {present} | {trials} | {violations} |");
    }
    out.table = Some(md);
    out.figure("lies refused", refused);
    out.figure("digests compared", compared);
    out.figure("store checks", store_checks);
    Ok(out)
}

/// The pool: `POOL` bodies written to files and served, their md5/sha256 from the oracle.
fn pool(ctx: &Ctx, lab: &Lab, server: &Server) -> Result<Vec<Body>> {
    let mut paths = Vec::with_capacity(POOL);
    let mut all = Vec::with_capacity(POOL);
    for i in 0..POOL {
        let b = bytes(
            LEN,
            ctx.seed.wrapping_mul(1000).wrapping_add(800 + i as u64),
        );
        paths.push(lab.file(&format!("pool/{i}.bin"), &b)?);
        all.push(b);
    }
    let digests = ctx.oracle.digest_files(&paths)?;
    let mut pool = Vec::with_capacity(POOL);
    for (i, (b, (md5, sha256))) in all.into_iter().zip(digests).enumerate() {
        let route = format!("/b{i}");
        server.route(&route, &b, &[], Fault::None);
        pool.push(Body {
            blake3: blake3_hex(&b),
            bytes: b,
            md5,
            sha256,
            url: server.url(&route),
        });
    }
    Ok(pool)
}

/// Three distinct bodies: R (what the lying digests name), O (the blob pinned), A (a bystander).
fn three(rng: &mut Rng) -> (usize, usize, usize) {
    let r = rng.below(POOL as u64) as usize;
    let o = (r + 1 + rng.below(POOL as u64 - 1) as usize) % POOL;
    let mut a = rng.below(POOL as u64) as usize;
    while a == r || a == o {
        a = (a + 1) % POOL;
    }
    (r, o, a)
}

/// The md5 and sha256 an entry pins next to O's BLAKE3: at least one wrong, except for the
/// control, where both are right (or one absent).
fn claims(kind: Kind, rng: &mut Rng) -> (Claim, Claim) {
    if kind == Kind::RightClaims {
        return *rng.pick(&[
            (Claim::Right, Claim::Right),
            (Claim::Right, Claim::None),
            (Claim::None, Claim::Right),
        ]);
    }
    *rng.pick(&[
        (Claim::Wrong, Claim::None),
        (Claim::None, Claim::Wrong),
        (Claim::Wrong, Claim::Wrong),
        (Claim::Wrong, Claim::Right),
        (Claim::Right, Claim::Wrong),
    ])
}

/// The TOML body of a single-file entry: `pinned`'s BLAKE3 and size (when `blake3`), the md5 and
/// sha256 `md5`/`sha256` say (right: `pinned`'s, wrong: `lie`'s), fetched from `lie` when the
/// entry is an upstream-only one (no BLAKE3), else from `pinned`.
fn single(pinned: &Body, md5: Claim, sha256: Claim, lie: &Body, blake3: bool) -> String {
    let mut s = String::new();
    if blake3 {
        let _ = writeln!(s, "blake3 = \"{}\"\nsize = {LEN}", pinned.blake3);
    }
    digests(&mut s, pinned, md5, sha256, lie);
    let from = if blake3 { pinned } else { lie };
    let _ = writeln!(s, "urls = [\"{}\"]\nfile = \"m.bin\"", from.url);
    s
}

/// One `[[models.NAME.files]]` table of `path`, pinned to `pinned`, claims as in [`single`].
fn file_entry(
    s: &mut String,
    name: &str,
    path: &str,
    pinned: &Body,
    md5: Claim,
    sha256: Claim,
    lie: &Body,
) {
    let _ = writeln!(
        s,
        "[[models.{name}.files]]\npath = \"{path}\"\nblake3 = \"{}\"\nsize = {LEN}\nurls = [\"{}\"]",
        pinned.blake3, pinned.url
    );
    digests(s, pinned, md5, sha256, lie);
}

fn digests(s: &mut String, pinned: &Body, md5: Claim, sha256: Claim, lie: &Body) {
    let pick = |c, right: &str, wrong: &str| match c {
        Claim::None => None,
        Claim::Right => Some(right.to_owned()),
        Claim::Wrong => Some(wrong.to_owned()),
    };
    if let Some(d) = pick(md5, &pinned.md5, &lie.md5) {
        let _ = writeln!(s, "md5 = \"{d}\"");
    }
    if let Some(d) = pick(sha256, &pinned.sha256, &lie.sha256) {
        let _ = writeln!(s, "sha256 = \"{d}\"");
    }
}

/// Writes a catalogue of `models` (name, TOML body); returns its path.
fn write(lab: &Lab, rel: &str, models: &[(&str, String)]) -> Result<String> {
    let mut text = String::from("version = 1\n");
    for (name, body) in models {
        // A model of several files has only `[[models.NAME.files]]` tables.
        if !body.starts_with("[[") {
            let _ = writeln!(text, "[models.{name}]");
        }
        text.push_str(body);
    }
    Ok(lab
        .file(rel, text.as_bytes())?
        .to_string_lossy()
        .into_owned())
}

/// Serves repository `repo`'s manifest `v1`: one layer `w.bin` of `LEN` bytes with digest
/// `sha256:<sha256>` (and a `dev.beaker.blake3` annotation when given), whose blob is `body`.
fn registry(server: &Server, repo: &str, sha256: &str, blake3: Option<&str>, body: &Body) {
    let annotation = blake3.map_or(String::new(), |b| format!(r#","dev.beaker.blake3":"{b}""#));
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"sha256:{sha256}","size":{LEN},"annotations":{{"org.opencontainers.image.title":"w.bin"{annotation}}}}}]}}"#
    );
    server.route(
        &format!("/v2/{repo}/manifests/v1"),
        manifest.as_bytes(),
        &[],
        Fault::None,
    );
    server.route(
        &format!("/v2/{repo}/blobs/sha256:{sha256}"),
        &body.bytes,
        &[],
        Fault::None,
    );
}

/// `beaker store pull REFERENCE` with no registry credentials from anywhere.
fn pull_oci(lab: &Lab, reference: &str) -> Result<Run> {
    let mut c = lab.cmd();
    c.env("DOCKER_CONFIG", lab.path("docker"))
        .env_remove("BEAKER_REGISTRY_USER")
        .env_remove("BEAKER_REGISTRY_PASSWORD")
        .args(["store", "pull", reference]);
    run_within(&mut c, LIMIT)
}

/// The path a pull printed must hold `body`'s bytes.
fn served(run: &Run, body: &Body, which: &str, problems: &mut Vec<String>) {
    let path = PathBuf::from(run.last_line());
    #[allow(
        clippy::disallowed_methods,
        reason = "the checker reads what beaker handed out, as a tool would"
    )]
    let got = std::fs::read(&path).with_context(|| format!("read {}", path.display()));
    match got {
        Ok(b) if b == body.bytes => {}
        Ok(b) => problems.push(format!(
            "{} was handed out for {which}, but holds bytes whose BLAKE3 is {}",
            path.display(),
            blake3_hex(&b)
        )),
        Err(e) => problems.push(format!("{e:#}")),
    }
}
