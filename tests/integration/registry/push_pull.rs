//! `store push`, `oci://` pulls and `ls-remote` through the real binary against a real registry
//! (distribution 2.8, see `server`): round trips of one- and several-file models, a
//! re-push that uploads and hashes nothing, chunked uploads, bad references and missing tags.

use std::process::Command;

use super::server::Registry;
use super::{add_model, reg_cmd, reg_run, sha256_hex, PushedJson};
use crate::support::*;

#[test]
fn push_then_pull_into_a_second_store_gives_the_same_files_and_blobs() {
    let reg = Registry::start();
    let (a, b) = (Env::new(), Env::new());
    let onnx = bytes(200_000, 41);
    let data = bytes(1_500_000, 42);
    add_model(
        &a,
        "cutout",
        &[("model.onnx", &onnx), ("model.onnx.data", &data)],
    );
    let reference = reg.reference("lab/cutout:v1");
    let pushed: PushedJson = reg_run(&a, &["--json", "store", "push", "cutout", &reference]).json();
    assert_eq!(pushed.name, "cutout");
    assert_eq!(pushed.reference, reference);
    assert!(pushed.digest.starts_with("sha256:") && pushed.digest.len() == 71);
    assert_eq!(
        pushed.uploaded_bytes,
        (onnx.len() + data.len() + 2) as u64,
        "two files and {{}}"
    );

    let printed = reg_run(&b, &["store", "pull", &reference]).ok();
    assert_model_file(&b.store, &printed, &onnx);
    let dir = std::path::Path::new(printed.trim()).parent().unwrap();
    assert_eq!(std::fs::read(dir.join("model.onnx.data")).unwrap(), data);
    assert_eq!(a.blob_names(), b.blob_names(), "the same blobs, by BLAKE3");
    assert_blobs_named_by_hash(&b.store);
    // The name comes from the reference's repository (not the manifest's annotation); the
    // store records the oci:// sources.
    let manifest = std::fs::read_to_string(b.store.join("names/lab+cutout.toml")).unwrap();
    assert!(manifest.contains("[models.\"lab/cutout\"]"), "{manifest}");
    assert!(
        manifest.contains(&format!("{}@sha256:", reg.reference("lab/cutout"))),
        "{manifest}"
    );
    // A second pull is the fast path: nothing downloaded, same path.
    let again =
        reg_run(&b, &["--json", "store", "pull", &reference]).json::<Vec<serde_json::Value>>();
    assert_eq!(again[0]["downloaded"], false);
    assert_eq!(again[0]["path"].as_str().unwrap(), printed.trim());
}

#[test]
fn a_re_push_uploads_nothing_and_hashes_nothing() {
    let reg = Registry::start();
    let env = Env::new();
    let body = bytes(700_000, 43);
    add_model(&env, "small", &[("small.onnx", &body)]);
    let first: PushedJson = reg_run(
        &env,
        &[
            "--json",
            "store",
            "push",
            "small",
            &reg.reference("m/small:a"),
        ],
    )
    .json();
    assert_eq!(first.uploaded_bytes, body.len() as u64 + 2);
    // Another tag in the same repository: every blob is there already.
    let second: PushedJson = reg_run(
        &env,
        &[
            "--json",
            "store",
            "push",
            "small",
            &reg.reference("m/small:b"),
        ],
    )
    .json();
    assert_eq!(second.uploaded_bytes, 0, "HEAD found every blob");
    assert_eq!(
        second.digest, first.digest,
        "the same model is the same manifest"
    );

    // The sha256 is read from the store's record, not computed again: a record planted with a
    // wrong (but well-formed) sha256 is what the next push uses, and the registry refuses it.
    let id = blake3_hex(&body);
    let record = env.store.join("index").join(format!("blake3-{id}"));
    assert!(record.is_file(), "the first push remembered the sha256");
    let body_line = format!(
        "v2 blake3 {id} sha256 {} size {}",
        "ab".repeat(32),
        body.len()
    );
    let check = blake3_hex(body_line.as_bytes());
    std::fs::write(&record, format!("{body_line} check {check}\n")).unwrap();
    reg_run(
        &env,
        &["store", "push", "small", &reg.reference("other/small")],
    )
    .fails(1, &["oci+http://", "other/small:latest", "DIGEST_INVALID"]);
}

#[test]
fn a_large_blob_goes_up_in_chunks_and_comes_back_identical() {
    let reg = Registry::start();
    let (a, b) = (Env::new(), Env::new());
    let body = bytes(5_000_000, 44);
    add_model(&a, "big", &[("big.bin", &body)]);
    let reference = reg.reference("big:v1");
    // 1 MB chunks: a 5 MB blob is sent as 5 PATCHes and a closing PUT.
    let out = reg_cmd(&a)
        .env("BEAKER_PUSH_CHUNK", "1000000")
        .args(["--json", "store", "push", "big", &reference])
        .output()
        .unwrap();
    let pushed: PushedJson = Run::from(out).json();
    assert_eq!(pushed.uploaded_bytes, body.len() as u64 + 2);
    let printed = reg_run(&b, &["store", "pull", &reference]).ok();
    assert_model_file(&b.store, &printed, &body);
}

#[test]
fn ls_remote_lists_tags_with_their_model_names() {
    let reg = Registry::start();
    let env = Env::new();
    add_model(&env, "alpha", &[("a.bin", b"alpha")]);
    reg_run(&env, &["store", "push", "alpha", &reg.reference("r:v1")]).ok();
    reg_run(&env, &["store", "push", "alpha", &reg.reference("r:v2")]).ok();
    let run = reg_run(&env, &["store", "ls-remote", &reg.reference("r")]);
    run.ok();
    assert_eq!(run.stdout, "v1\talpha\nv2\talpha\n");
}

#[test]
fn pull_with_name_records_it_and_a_missing_tag_publishes_nothing() {
    let reg = Registry::start();
    let (a, b) = (Env::new(), Env::new());
    add_model(&a, "alpha", &[("a.bin", b"alpha bytes")]);
    reg_run(&a, &["store", "push", "alpha", &reg.reference("r:v1")]).ok();
    reg_run(
        &b,
        &["store", "pull", &reg.reference("r:v1"), "--name", "beta"],
    )
    .ok();
    let ls = reg_run(&b, &["store", "ls"]).ok();
    assert!(ls.contains("beta") && !ls.contains("alpha"), "{ls}");

    let c = Env::new();
    reg_run(&c, &["store", "pull", &reg.reference("r:nope")])
        .fails(1, &["r:nope", "404", "MANIFEST_UNKNOWN"]);
    assert!(c.blob_names().is_empty());
    // A push of a name the store does not hold says so (exit 3) and sends nothing.
    reg_run(&a, &["store", "push", "ghost", &reg.reference("r:v9")]).fails(3, &["ghost"]);
}

#[test]
fn malformed_references_are_refused_before_any_request() {
    let env = Env::new();
    for (reference, needle) in [
        ("oci://127.0.0.1:9/", "no repository"),
        ("oci://127.0.0.1:9/Upper", "lowercase"),
        ("oci://127.0.0.1:9/r:bad+tag", "tag"),
        ("oci://127.0.0.1:9/r@sha256:1234", "64 lowercase hex"),
        ("oci://127.0.0.1:9/r@sha256:1234", "64 lowercase hex"),
        ("ftp://127.0.0.1:9/r", "starts with oci://"),
    ] {
        reg_run(&env, &["store", "push", "m", reference]).fails(2, &[reference, needle]);
        reg_run(&env, &["store", "ls-remote", reference]).fails(2, &[reference]);
    }
    for (reference, needle) in [
        ("oci://127.0.0.1:9/", "no repository"),
        ("oci://127.0.0.1:9/Upper:v1", "lowercase"),
        ("oci+http://127.0.0.1:9/r@sha256:zz", "64 lowercase hex"),
    ] {
        reg_run(&env, &["store", "pull", reference]).fails(2, &[reference, needle]);
    }
    // --name needs exactly one reference.
    reg_run(&env, &["store", "pull", "a", "--name", "b"]).fails(2, &["--name"]);
    assert!(!env.store.join("blobs").exists() || env.blob_names().is_empty());
}

#[test]
fn a_catalogue_may_name_a_registry_blob_by_digest() {
    let reg = Registry::start();
    let (a, b) = (Env::new(), Env::new());
    let body = bytes(300_000, 45);
    add_model(&a, "alpha", &[("alpha.onnx", &body)]);
    reg_run(
        &a,
        &["store", "push", "alpha", &reg.reference("cat/alpha:v1")],
    )
    .ok();
    let sha = sha256_hex(&body);
    let cat = b.file(
        "catalogue/models.toml",
        format!(
            "version = 1\n[models.alpha]\nblake3 = \"{}\"\nsize = {}\nurls = [\"{}@sha256:{sha}\"]\n",
            blake3_hex(&body),
            body.len(),
            reg.reference("cat/alpha")
        )
        .as_bytes(),
    );
    let printed = reg_run(
        &b,
        &[
            "--manifest",
            cat.to_str().unwrap(),
            "store",
            "pull",
            "alpha",
        ],
    )
    .ok();
    assert_model_file(&b.store, &printed, &body);
    // A reference with neither tag nor digest names nothing: refused at load with the line.
    let bad = b.file(
        "catalogue/bad.toml",
        format!(
            "version = 1\n[models.x]\nblake3 = \"{}\"\nsize = 1\nurls = [\"{}\"]\n",
            blake3_hex(b"x"),
            reg.reference("cat/alpha")
        )
        .as_bytes(),
    );
    reg_run(&b, &["manifest", "check", bad.to_str().unwrap()])
        .fails(2, &["bad.toml", "names a tag"]);
}

/// A lab's catalogue names models by tag, single- and multi-file: the pins are checked against
/// the tag's manifest before anything is downloaded, and a tag moved to other bytes is refused
/// (nothing recorded), as a changed URL is.
#[test]
fn a_catalogue_may_name_a_model_by_tag_and_a_moved_tag_is_refused() {
    let reg = Registry::start();
    let (a, b) = (Env::new(), Env::new());
    let (bird, graph, data) = (bytes(200_000, 51), bytes(100_000, 52), bytes(400_000, 53));
    add_model(&a, "bird", &[("bird.onnx", &bird)]);
    add_model(
        &a,
        "pair",
        &[("model.onnx", &graph), ("model.onnx.data", &data)],
    );
    reg_run(
        &a,
        &["store", "push", "bird", &reg.reference("vision/bird:v3")],
    )
    .ok();
    reg_run(
        &a,
        &["store", "push", "pair", &reg.reference("vision/pair:v1")],
    )
    .ok();
    let tag = |t: &str| reg.reference(t);
    let text = format!(
        "version = 1\n\
         [models.bird]\nformat = \"onnx\"\nblake3 = \"{}\"\nsize = {}\nurls = [\"{}\"]\n\
         [models.pair]\nmain = \"model.onnx\"\n\
         [[models.pair.files]]\npath = \"model.onnx\"\nblake3 = \"{}\"\nsize = {}\nurls = [\"{}\"]\n\
         [[models.pair.files]]\npath = \"model.onnx.data\"\nsha256 = \"{}\"\nurls = [\"{}\"]\n",
        blake3_hex(&bird),
        bird.len(),
        tag("vision/bird:v3"),
        blake3_hex(&graph),
        graph.len(),
        tag("vision/pair:v1"),
        sha256_hex(&data),
        tag("vision/pair:v1"),
    );
    let cat = b.file("catalogue/lab.toml", text.as_bytes());
    let cat = cat.to_str().unwrap();
    reg_run(&b, &["manifest", "check", cat]).ok();
    let printed = reg_run(&b, &["--manifest", cat, "store", "pull", "bird"]).ok();
    assert_model_file(&b.store, &printed, &bird);
    assert!(printed.ends_with("/bird.onnx"), "{printed}");
    let printed = reg_run(&b, &["--manifest", cat, "store", "pull", "pair"]).ok();
    assert_model_file(&b.store, &printed, &graph);
    let dir = std::path::Path::new(printed.trim()).parent().unwrap();
    assert_eq!(std::fs::read(dir.join("model.onnx.data")).unwrap(), data);

    // The tag moves to other bytes: a fresh store refuses it before downloading, records nothing.
    let moved = bytes(200_000, 54);
    add_model(&a, "bird2", &[("bird.onnx", &moved)]);
    reg_run(
        &a,
        &["store", "push", "bird2", &reg.reference("vision/bird:v3")],
    )
    .ok();
    let c = Env::new();
    let r = reg_run(&c, &["--manifest", cat, "store", "pull", "bird"]);
    r.fails(
        1,
        &[
            "the tag now names other bytes for bird.onnx",
            "nothing was downloaded",
        ],
    );
    assert!(c.blob_names().is_empty(), "{:?}", c.blob_names());
    assert!(!c.store.join("names/bird.toml").exists());
    // The store that has it keeps answering from its own bytes.
    assert_model_file(
        &b.store,
        &reg_run(&b, &["--manifest", cat, "store", "pull", "bird"]).ok(),
        &bird,
    );
}

/// Runs `cmd` to completion and returns it with its peak RSS in KiB.
///
/// Not `wait4` on a child of this test process: Rust spawns with vfork, and Linux carries the
/// parent's high-water mark (this fat, multi-threaded test binary) into the child's `ru_maxrss`
/// at exec. A small python parent forks and execs beaker instead and reports `wait4`'s figure
/// (an upper bound: at most python's own few MiB are counted in).
fn run_with_peak_rss(cmd: &Command) -> (Run, u64) {
    const PARENT: &str = "import os, sys\npid = os.fork()\nif pid == 0:\n    os.execv(sys.argv[1], sys.argv[1:])\n_, status, usage = os.wait4(pid, 0)\nsys.stderr.write(f'\\nMAXRSS {usage.ru_maxrss}\\n')\nsys.exit(os.waitstatus_to_exitcode(status))\n";
    let mut py = Command::new("python3");
    py.arg("-c")
        .arg(PARENT)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => py.env(k, v),
            None => py.env_remove(k),
        };
    }
    let mut run = Run::from(
        py.stdin(std::process::Stdio::null())
            .output()
            .expect("run python3"),
    );
    let (rest, rss) = run
        .stderr
        .rsplit_once("\nMAXRSS ")
        .expect("the python parent reports MAXRSS");
    let rss = rss.trim().parse().expect("MAXRSS is a number");
    run.stderr = rest.to_owned();
    (run, rss)
}

#[test]
fn push_and_pull_of_512_mib_stay_under_32_mib_of_memory() {
    const SIZE: u64 = 512 << 20;
    let reg = Registry::start();
    let (a, b) = (Env::new(), Env::new());
    // Deterministic bytes, written in 4 MiB pieces (the test itself stays small too).
    let src = a.path("big.bin");
    {
        use std::io::Write;
        let mut xof = blake3::Hasher::new().update(b"512 MiB").finalize_xof();
        let mut file = std::fs::File::create(&src).unwrap();
        let mut buf = vec![0u8; 4 << 20];
        for _ in 0..SIZE / buf.len() as u64 {
            xof.fill(&mut buf);
            file.write_all(&buf).unwrap();
        }
    }
    reg_run(
        &a,
        &["store", "add", src.to_str().unwrap(), "--name", "big"],
    )
    .ok();
    std::fs::remove_file(&src).unwrap();
    let reference = reg.reference("big/model:v1");

    let (run, push_rss) =
        run_with_peak_rss(reg_cmd(&a).args(["-q", "--json", "store", "push", "big", &reference]));
    let pushed: PushedJson = run.json();
    assert_eq!(pushed.uploaded_bytes, SIZE + 2);
    let (run, pull_rss) = run_with_peak_rss(reg_cmd(&b).args(["-q", "store", "pull", &reference]));
    run.ok();
    assert_eq!(a.blob_names(), b.blob_names());
    assert_blobs_named_by_hash(&b.store);
    assert!(push_rss <= 32 << 10, "push peaked at {push_rss} KiB");
    assert!(pull_rss <= 32 << 10, "pull peaked at {pull_rss} KiB");
}

#[test]
fn an_https_registry_with_a_private_ca_needs_ca_cert() {
    let certs = tempfile::tempdir().unwrap();
    crate::pull::tls::make_private_ca(certs.path());
    let reg = Registry::start_tls(certs.path());
    let (a, b) = (Env::new(), Env::new());
    let body = bytes(100_000, 46);
    add_model(&a, "alpha", &[("alpha.onnx", &body)]);
    let reference = format!("oci://{}/tls/alpha:v1", reg.host());
    let ca = certs.path().join("ca.pem");
    reg_run(&a, &["store", "push", "alpha", &reference])
        .fails(1, &["TLS", "--ca-cert", &reference]);
    reg_run(
        &a,
        &[
            "store",
            "push",
            "alpha",
            &reference,
            "--ca-cert",
            ca.to_str().unwrap(),
        ],
    )
    .ok();
    let printed = reg_run(
        &b,
        &[
            "store",
            "pull",
            &reference,
            "--ca-cert",
            ca.to_str().unwrap(),
        ],
    )
    .ok();
    assert_model_file(&b.store, &printed, &body);
    // Plain HTTP to a TLS registry fails; it is not silently upgraded or downgraded.
    reg_run(
        &b,
        &["store", "pull", &reference, "--plain-http", "--name", "x"],
    )
    .fails(1, &["oci+http://"]);
}

#[test]
fn gc_drops_a_remembered_sha256_with_its_blob_and_keeps_it_while_the_blob_stays() {
    let reg = Registry::start();
    let env = Env::new();
    let body = bytes(50_000, 47);
    add_model(&env, "small", &[("s.bin", &body)]);
    reg_run(
        &env,
        &["store", "push", "small", &reg.reference("gc/small")],
    )
    .ok();
    let record = format!("blake3-{}", blake3_hex(&body));
    let gc = |env: &Env| reg_run(env, &["--json", "store", "gc"]).json::<serde_json::Value>();
    let kept = gc(&env);
    assert!(env.store.join("index").join(&record).is_file(), "{kept}");
    assert!(!kept["foreign"].to_string().contains("blake3-"), "{kept}");
    reg_run(&env, &["store", "rm", "small"]).ok();
    let swept = gc(&env);
    assert!(!env.store.join("index").join(&record).exists(), "{swept}");
    assert!(
        swept["removed_index"].to_string().contains(&record),
        "{swept}"
    );
}

#[test]
fn a_registry_pull_never_lets_the_manifest_pick_the_local_name_and_says_when_it_repoints_one() {
    let reg = Registry::start();
    let (a, b) = (Env::new(), Env::new());
    let theirs = bytes(300_000, 44);
    let ours = bytes(200_000, 45);
    // Their model is called `rapidocr` too, pushed to another repository.
    add_model(&a, "rapidocr", &[("det.onnx", &theirs)]);
    add_model(&b, "rapidocr", &[("det.onnx", &ours)]);
    let reference = reg.reference("other/thing:v1");
    reg_run(&a, &["store", "push", "rapidocr", &reference]).ok();

    // Named by the repository: our `rapidocr` is untouched, nothing is said of it.
    let r = reg_run(&b, &["store", "pull", &reference]);
    let printed = r.ok();
    assert_model_file(&b.store, &printed, &theirs);
    assert!(
        !r.stderr.contains("pointed at other content"),
        "{}",
        r.stderr
    );
    let path = b.run(&["store", "path", "rapidocr"]).ok();
    assert_eq!(std::fs::read(path.trim()).unwrap(), ours);
    let listed = b.run(&["store", "ls"]);
    assert!(listed.stdout.contains("other/thing"), "{}", listed.stdout);

    // Asked for by --name, the name is re-pointed, and the pull says so.
    let r = reg_run(&b, &["store", "pull", &reference, "--name", "rapidocr"]);
    r.ok();
    assert!(
        r.stderr
            .contains("rapidocr pointed at other content before"),
        "{}",
        r.stderr
    );
    let path = b.run(&["store", "path", "rapidocr"]).ok();
    assert_eq!(std::fs::read(path.trim()).unwrap(), theirs);
    let again = reg_run(
        &b,
        &["--json", "store", "pull", &reference, "--name", "rapidocr"],
    )
    .json::<Vec<serde_json::Value>>();
    assert!(
        again[0]["replaced"].is_null(),
        "the same content again: {again:?}"
    );
}
