//! `oci://` pulls against a registry that misbehaves, served in-process (`testkit::server`): wrong
//! bytes, a short body (the registry-gc hazard of a real registry), a manifest whose sizes or
//! digest lie, 404/401/500, documents that are not a model; and the good cases a real registry
//! cannot stage on demand: a cut mid-body resumed with `Range`, eight processes sharing one
//! download. Each failure exits 1 naming the reference and why, with nothing published.

use std::process::Stdio;
use std::time::Duration;

use testkit::server::{Fault, Server};

use super::auth::manifest_for;
use super::{reg_cmd, reg_run};
use crate::support::*;

const LEN: usize = 400_000;

/// A server holding the manifest of a one-file model (`w.bin`, `LEN` bytes from `seed`) at
/// `r:v1`, whose layer claims `size` bytes, and the blob with `blob_faults`.
fn model(
    server: &Server,
    seed: u64,
    size: usize,
    blob_faults: &[Fault],
    default: Fault,
) -> (Vec<u8>, String) {
    let body = bytes(LEN, seed);
    let (sha, manifest) = manifest_for(&body, "w.bin", size);
    server.route("/v2/r/manifests/v1", &manifest, &[], Fault::None);
    let blob_path = format!("/v2/r/blobs/sha256:{sha}");
    server.route(&blob_path, &body, blob_faults, default);
    (body, blob_path)
}

fn reference(server: &Server) -> String {
    format!("oci+http://127.0.0.1:{}/r:v1", server.port)
}

/// Nothing in blobs/, no name recorded.
fn nothing_published(env: &Env) {
    assert!(env.blob_names().is_empty(), "{:?}", env.blob_names());
    // Store format 3: one record per name in names/; none may exist.
    assert!(
        list_names(&env.store.join("names")).is_empty(),
        "no name recorded: {:?}",
        list_names(&env.store.join("names"))
    );
}

#[test]
fn wrong_bytes_from_the_registry_are_refused_by_sha256() {
    let server = http_server();
    model(&server, 61, LEN, &[], Fault::Flip(1000));
    let env = Env::new();
    reg_run(&env, &["store", "pull", &reference(&server)])
        .fails(1, &["sha256 mismatch", "/r@sha256:"]);
    nothing_published(&env);
}

#[test]
fn a_short_body_is_an_error_not_a_model() {
    // What a real registry sends for a blob its gc deleted while its cache still knew it: the
    // full Content-Length, then nothing.
    let server = http_server();
    model(&server, 62, LEN, &[], Fault::CutAfter(0));
    let env = Env::new();
    reg_run(&env, &["store", "pull", &reference(&server)])
        .fails(1, &[&format!("ended after 0 of {LEN} bytes"), "/r@sha256:"]);
    nothing_published(&env);
}

#[test]
fn a_manifest_whose_sizes_or_digests_lie_publishes_nothing() {
    // Claims one byte more than the blob has.
    let server = http_server();
    model(&server, 63, LEN + 1, &[], Fault::None);
    let env = Env::new();
    reg_run(&env, &["store", "pull", &reference(&server)])
        .fails(1, &[&format!("ended after {LEN} of {} bytes", LEN + 1)]);
    nothing_published(&env);
    // Claims one byte less.
    let server = http_server();
    model(&server, 64, LEN - 1, &[], Fault::None);
    reg_run(&env, &["store", "pull", &reference(&server)])
        .fails(1, &[&format!("more than the {} bytes", LEN - 1)]);
    nothing_published(&env);
    // A layer digest that is not the blob's: the registry serves other bytes under it.
    let server = http_server();
    let (_, blob_path) = model(&server, 65, LEN, &[], Fault::None);
    server.route(&blob_path, &bytes(LEN, 66), &[], Fault::None);
    reg_run(&env, &["store", "pull", &reference(&server)]).fails(1, &["sha256 mismatch"]);
    nothing_published(&env);
    // A manifest pulled by a digest its bytes do not have.
    let wrong = "0".repeat(64);
    let (_, manifest) = manifest_for(b"x", "x.bin", 1);
    server.route(
        &format!("/v2/r/manifests/sha256:{wrong}"),
        &manifest,
        &[],
        Fault::None,
    );
    let by_digest = format!("oci+http://127.0.0.1:{}/r@sha256:{wrong}", server.port);
    reg_run(&env, &["store", "pull", &by_digest]).fails(1, &[&by_digest, "the digest asked for"]);
    nothing_published(&env);
    // A BLAKE3 annotation that is not the layer's: the right sha256 is not enough.
    let server = http_server();
    let (body, _) = model(&server, 71, LEN, &[], Fault::None);
    let (_, manifest) = manifest_for(&body, "w.bin", LEN);
    let lying = String::from_utf8(manifest).unwrap().replace(
        r#""org.opencontainers.image.title":"w.bin""#,
        &format!(
            r#""org.opencontainers.image.title":"w.bin","dev.beaker.blake3":"{}""#,
            blake3_hex(b"something else")
        ),
    );
    server.route("/v2/r/manifests/v1", lying.as_bytes(), &[], Fault::None);
    reg_run(&env, &["store", "pull", &reference(&server)]).fails(1, &["blake3 mismatch"]);
    nothing_published(&env);
}

#[test]
fn registry_errors_exit_1_with_the_status_and_the_reference() {
    let env = Env::new();
    for (fault, needle) in [
        (Fault::Status(404, None), "HTTP 404"),
        (Fault::Status(500, None), "HTTP 500"),
        (Fault::Status(401, None), "asks for credentials"),
    ] {
        // On the manifest…
        let server = http_server();
        model(&server, 67, LEN, &[], Fault::None);
        let (_, manifest) = manifest_for(&bytes(LEN, 67), "w.bin", LEN);
        server.route("/v2/r/manifests/v1", &manifest, &[], fault.clone());
        reg_run(&env, &["store", "pull", &reference(&server)])
            .fails(1, &[needle, &reference(&server)]);
        nothing_published(&env);
        // …and on the blob.
        let server = http_server();
        model(&server, 68, LEN, &[], fault);
        reg_run(&env, &["store", "pull", &reference(&server)]).fails(1, &[needle, "/r@sha256:"]);
        nothing_published(&env);
    }
}

#[test]
fn documents_that_are_not_a_model_are_refused_by_name() {
    let env = Env::new();
    let hex = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    for (doc, needle) in [
        ("<html>no</html>".to_owned(), "not JSON"),
        (
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#.to_owned(),
            "image index",
        ),
        (r#"{"schemaVersion":2,"layers":"no"}"#.to_owned(), "not an OCI image manifest"),
        (
            format!(r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"sha256:{hex}","size":2}},"layers":[{{"mediaType":"x","digest":"sha256:{hex}","size":2}}]}}"#),
            "no org.opencontainers.image.title",
        ),
        (
            format!(r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"sha256:{hex}","size":2}},"layers":[{{"mediaType":"x","digest":"sha256:{hex}","size":2,"annotations":{{"org.opencontainers.image.title":"../etc/passwd"}}}}]}}"#),
            "is not a file path",
        ),
        (
            format!(r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"sha256:{hex}","size":2}},"layers":[]}}"#),
            "no layers",
        ),
    ] {
        let server = http_server();
        server.route("/v2/r/manifests/v1", doc.as_bytes(), &[], Fault::None);
        reg_run(&env, &["store", "pull", &reference(&server)]).fails(1, &[needle, &reference(&server)]);
        nothing_published(&env);
    }
}

#[test]
fn a_pull_cut_mid_body_resumes_with_range() {
    let server = http_server();
    let (body, blob_path) = model(&server, 69, LEN, &[Fault::CutAfter(LEN / 2)], Fault::None);
    let env = Env::new();
    reg_run(&env, &["store", "pull", &reference(&server)])
        .fails(1, &[&format!("ended after {} of {LEN} bytes", LEN / 2)]);
    nothing_published(&env);
    let printed = reg_run(&env, &["store", "pull", &reference(&server)]).ok();
    assert_model_file(&env.store, &printed, &body);
    let ranges: Vec<Option<String>> = server
        .seen()
        .into_iter()
        .filter(|s| s.path == blob_path)
        .map(|s| s.range)
        .collect();
    assert_eq!(ranges, [None, Some(format!("bytes={}-", LEN / 2))]);
    // Two manifest GETs (one per pull) and the blob's bytes once.
    let manifest_len = manifest_for(&body, "w.bin", LEN).1.len();
    assert_eq!(
        server.body_bytes() as usize,
        2 * manifest_len + LEN,
        "no byte sent twice"
    );
}

#[test]
fn eight_processes_pulling_one_reference_download_one_body() {
    let server = http_server();
    // The one download pauses mid-body (server-side) so the others are certainly waiting on its
    // lock meanwhile.
    let (body, blob_path) = model(
        &server,
        70,
        LEN,
        &[Fault::PauseAt(LEN / 2, Duration::from_millis(1500))],
        Fault::None,
    );
    let env = Env::new();
    reg_run(&env, &["store", "init"]).ok();
    let children: Vec<_> = (0..8)
        .map(|_| {
            reg_cmd(&env)
                .args(["store", "pull", &reference(&server)])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let run = Run::from(c.wait_with_output().unwrap());
        assert_model_file(&env.store, &run.ok(), &body);
    }
    let blob_gets = server.seen().iter().filter(|s| s.path == blob_path).count();
    assert_eq!(blob_gets, 1, "one download for eight processes");
}
