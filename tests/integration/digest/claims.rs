//! Upstream digests that a catalogue entry or a registry manifest *claims* (md5, sha256, the
//! `dev.beaker.blake3` annotation) next to a BLAKE3 the store already holds, through the real
//! binary: a claim that the blob's bytes contradict is refused with the same "mismatch" error a
//! fresh store gives, and enters no record and no index file, so a later pull of the model those
//! digests really name gets its own bytes. A right claim is checked once and then served with no
//! re-hash; a wrong mapping an older beaker wrote into the index is a hint, checked before use.

use std::path::{Path, PathBuf};

use testkit::server::Fault;

use crate::digest::index::md5_hex;
use crate::maint::add;
use crate::registry::{reg_run, sha256_hex};
use crate::support::*;

const LEN: usize = 20_000;

/// The upstream digest a test lies with.
#[derive(Debug, Clone, Copy)]
enum Algo {
    Md5,
    Sha256,
}

impl Algo {
    fn key(self) -> &'static str {
        match self {
            Algo::Md5 => "md5",
            Algo::Sha256 => "sha256",
        }
    }

    fn hex(self, bytes: &[u8]) -> String {
        match self {
            Algo::Md5 => md5_hex(bytes),
            Algo::Sha256 => sha256_hex(bytes),
        }
    }
}

/// A catalogue in `dir` with `entries` (TOML bodies, one per model), written as `catalogue.toml`.
fn catalogue(dir: &Path, entries: &[(&str, String)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut text = String::from("version = 1\n");
    for (name, body) in entries {
        text.push_str(&format!("[models.{name}]\n{body}"));
    }
    let path = dir.join("catalogue.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Every file of `names/` and `index/`, as text: nothing in it may mention `hex`.
fn records_and_index(env: &Env) -> String {
    let mut all = String::new();
    for dir in ["names", "index"] {
        for n in list_names(&env.store.join(dir)) {
            all.push_str(&format!("{dir}/{n}: "));
            all.push_str(
                &std::fs::read_to_string(env.store.join(dir).join(&n)).unwrap_or_default(),
            );
        }
    }
    all
}

#[test]
fn a_wrong_upstream_digest_next_to_a_present_blake3_is_refused_and_recorded_nowhere() {
    for algo in [Algo::Md5, Algo::Sha256] {
        let env = Env::new();
        let (real, other) = (bytes(LEN, 1), bytes(LEN, 2));
        let dir = env.path("cat");
        let real_file = env.file("cat/real.bin", &real);
        let other_file = env.file("cat/other.bin", &other);
        // `liar` pins other's BLAKE3 and size, and real's md5 (or sha256).
        let lie = algo.hex(&real);
        let cat = catalogue(
            &dir,
            &[
                (
                    "liar",
                    format!(
                        "blake3 = \"{}\"\nsize = {LEN}\n{} = \"{lie}\"\nurls = [\"{}\"]\n",
                        blake3_hex(&other),
                        algo.key(),
                        other_file.display()
                    ),
                ),
                (
                    "real",
                    format!(
                        "{} = \"{lie}\"\nurls = [\"{}\"]\n",
                        algo.key(),
                        real_file.display()
                    ),
                ),
            ],
        );
        let cat_s = cat.to_str().unwrap();
        let mismatch = format!("{} mismatch", algo.key());

        // A fresh store downloads other's bytes and refuses them.
        Env::new()
            .run(&["--manifest", cat_s, "store", "pull", "liar"])
            .fails(1, &[&mismatch]);

        // The same entry when the store already holds other's blob: refused the same way.
        add(&env, "other", &other);
        env.run(&["--manifest", cat_s, "store", "pull", "liar", "--offline"])
            .fails(1, &[&mismatch, "liar"]);
        assert!(
            !records_and_index(&env).contains(&lie),
            "{algo:?}: the unchecked digest was recorded: {}",
            records_and_index(&env)
        );
        assert!(!env.store.join("names/liar.toml").exists());

        // A pull of the model that digest really names gets its own bytes.
        let printed = env
            .run(&["--manifest", cat_s, "store", "pull", "real"])
            .ok();
        assert_model_file(&env.store, &printed, &real);
        // And after `rm`, nothing maps the digest to other's blob either.
        env.run(&["store", "rm", "real"]).ok();
        remove(&real_file);
        let r = env.run(&["--manifest", cat_s, "store", "pull", "real", "--offline"]);
        assert_ne!(
            r.code, 0,
            "{algo:?}: an md5-only pull with no source must not be served other's blob: {r:?}"
        );
    }
}

#[test]
fn a_right_upstream_digest_next_to_a_present_blake3_is_checked_once_and_indexed() {
    let env = Env::new();
    let model = bytes(LEN, 3);
    let file = env.file("cat/m.bin", &model);
    let cat = catalogue(
        &env.path("cat"),
        &[(
            "m",
            format!(
                "blake3 = \"{}\"\nsize = {LEN}\nmd5 = \"{}\"\nsha256 = \"{}\"\nurls = [\"{}\"]\n",
                blake3_hex(&model),
                md5_hex(&model),
                sha256_hex(&model),
                file.display()
            ),
        )],
    );
    add(&env, "added", &model);
    let cat_s = cat.to_str().unwrap();
    let printed = env
        .run(&["--manifest", cat_s, "store", "pull", "m", "--offline"])
        .ok();
    assert_model_file(&env.store, &printed, &model);
    // Both digests were computed from the blob, so both now map to it.
    let index = list_names(&env.store.join("index"));
    for want in [
        format!("md5-{}", md5_hex(&model)),
        format!("sha256-{}", sha256_hex(&model)),
        format!("blake3-{}", blake3_hex(&model)),
    ] {
        assert!(index.contains(&want), "{want} missing from {index:?}");
    }
    assert_eq!(
        env.run(&["--manifest", cat_s, "store", "pull", "m", "--offline"])
            .ok(),
        printed
    );
}

#[test]
fn a_present_file_of_a_model_of_several_files_is_checked_before_the_name_is_recorded() {
    let env = Env::new();
    let (graph, weights, other) = (bytes(LEN, 4), bytes(LEN, 5), bytes(LEN, 6));
    let graph_file = env.file("cat/g.bin", &graph);
    let weights_file = env.file("cat/w.bin", &weights);
    // The weights file pins other's BLAKE3 (present) and the weights' md5: the graph is
    // downloaded, the weights are "present".
    let cat = catalogue(
        &env.path("cat"),
        &[(
            "two",
            format!(
                "[[models.two.files]]\npath = \"g.bin\"\nblake3 = \"{}\"\nsize = {LEN}\nurls = [\"{}\"]\n\
                 [[models.two.files]]\npath = \"w.bin\"\nblake3 = \"{}\"\nsize = {LEN}\nmd5 = \"{}\"\nurls = [\"{}\"]\n",
                blake3_hex(&graph),
                graph_file.display(),
                blake3_hex(&other),
                md5_hex(&weights),
                weights_file.display()
            ),
        )],
    );
    add(&env, "other", &other);
    env.run(&["--manifest", cat.to_str().unwrap(), "store", "pull", "two"])
        .fails(1, &["md5 mismatch", "w.bin"]);
    assert!(!env.store.join("names/two.toml").exists());
    assert!(!records_and_index(&env).contains(&md5_hex(&weights)));
}

#[test]
fn a_wrong_mapping_an_older_beaker_indexed_is_checked_before_it_is_served() {
    let env = Env::new();
    let (real, other) = (bytes(LEN, 7), bytes(LEN, 8));
    let real_file = env.file("cat/real.bin", &real);
    let cat = catalogue(
        &env.path("cat"),
        &[(
            "real",
            format!(
                "md5 = \"{}\"\nurls = [\"{}\"]\n",
                md5_hex(&real),
                real_file.display()
            ),
        )],
    );
    add(&env, "other", &other);
    // What the defect left behind: a well-formed v1 record mapping real's md5 to other's blob.
    let body = format!(
        "v1 md5 {} blake3 {} size {LEN}",
        md5_hex(&real),
        blake3_hex(&other)
    );
    let record = format!("{body} check {}\n", blake3_hex(body.as_bytes()));
    env.file(
        &format!("store/index/md5-{}", md5_hex(&real)),
        record.as_bytes(),
    );
    let printed = env
        .run(&["--manifest", cat.to_str().unwrap(), "store", "pull", "real"])
        .ok();
    assert_model_file(&env.store, &printed, &real);
    assert!(
        std::fs::read_to_string(env.store.join(format!("index/md5-{}", md5_hex(&real))))
            .unwrap()
            .contains(&blake3_hex(&real)),
        "the wrong mapping is replaced by the one computed from the bytes"
    );
}

/// The manifest of a one-file model whose layer claims `sha` and (when given) `blake3`.
fn manifest(sha: &str, blake3: Option<&str>, size: usize) -> Vec<u8> {
    let annotation = blake3.map_or(String::new(), |b| format!(r#","dev.beaker.blake3":"{b}""#));
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"sha256:{sha}","size":{size},"annotations":{{"org.opencontainers.image.title":"w.bin"{annotation}}}}}]}}"#
    )
    .into_bytes()
}

#[test]
fn a_registry_annotation_naming_a_present_blob_is_checked_against_the_layer_digest() {
    let (real, other) = (bytes(LEN, 9), bytes(LEN, 10));
    let server = http_server();
    let sha = sha256_hex(&real);
    // The layer is real's bytes (its sha256), but the annotation claims other's BLAKE3.
    server.route(
        "/v2/r/manifests/v1",
        &manifest(&sha, Some(&blake3_hex(&other)), LEN),
        &[],
        Fault::None,
    );
    server.route(
        &format!("/v2/r/blobs/sha256:{sha}"),
        &real,
        &[],
        Fault::None,
    );
    let reference = format!("oci+http://127.0.0.1:{}/r:v1", server.port);

    // A fresh store downloads the layer and refuses the annotation.
    reg_run(&Env::new(), &["store", "pull", &reference]).fails(1, &["blake3 mismatch"]);
    // With other's blob present, the claim is refused the same way, before any download.
    let env = Env::new();
    add(&env, "other", &other);
    reg_run(&env, &["store", "pull", &reference]).fails(1, &["sha256 mismatch"]);
    assert!(
        !records_and_index(&env).contains(&sha),
        "{}",
        records_and_index(&env)
    );
    assert_eq!(list_names(&env.store.join("names")), ["other.toml"]);

    // Without the annotation the layer is pulled by its sha256, and is real's bytes.
    server.route(
        "/v2/r/manifests/v1",
        &manifest(&sha, None, LEN),
        &[],
        Fault::None,
    );
    let printed = reg_run(&env, &["store", "pull", &reference]).ok();
    assert_model_file(&env.store, &printed, &real);
}
