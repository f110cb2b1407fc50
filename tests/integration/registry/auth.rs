//! Registry authentication through the real binary: Basic against a real registry with
//! `htpasswd` auth (no credentials, a wrong password, the right one from the environment, from
//! `registry login`'s docker config, from a credential helper), and the Bearer flow against a
//! token service and registry served in-process (token fetched with the credentials, renewed on
//! a 401, a refused password reported as such, the redirect to blob storage followed without the
//! Authorization header).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use super::server::Registry;
use super::{add_model, reg_cmd, reg_run, sha256_hex};
use crate::support::*;

#[test]
fn basic_auth_refuses_no_or_wrong_credentials_and_takes_the_right_ones() {
    let reg = Registry::start_basic("ana", "s3cret");
    let env = Env::new();
    add_model(&env, "alpha", &[("a.onnx", &bytes(50_000, 51))]);
    let reference = reg.reference("team/alpha:v1");
    let host = reg.host();

    // The registry speaks plain HTTP: the command given says so ([models] 6).
    reg_run(&env, &["store", "push", "alpha", &reference]).fails(
        1,
        &[
            "asks for credentials",
            &format!("beaker registry login http://{host}`"),
        ],
    );
    let with = |user: &str, password: &str, args: &[&str]| {
        Run::from(
            reg_cmd(&env)
                .env("BEAKER_REGISTRY_USER", user)
                .env("BEAKER_REGISTRY_PASSWORD", password)
                .args(args)
                .output()
                .unwrap(),
        )
    };
    with("ana", "wrong", &["store", "push", "alpha", &reference]).fails(
        1,
        &[
            "refused the credentials",
            &reference,
            &format!("beaker registry login http://{host}`"),
        ],
    );
    with("ana", "s3cret", &["store", "push", "alpha", &reference]).ok();

    // `registry login` checks the password before saving anything.
    // Either way of naming a plain-HTTP registry: `HOST --plain-http`, or `http://HOST` as the
    // errors above say.
    let hinted = format!("http://{host}");
    let login = |password: &str| {
        let target: &[&str] = if password == "wrong" {
            &[&host, "--plain-http"]
        } else {
            &[&hinted]
        };
        let mut child = reg_cmd(&env)
            .args(["registry", "login"])
            .args(target)
            .args(["-u", "ana", "--password-stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        Run::from(child.wait_with_output().unwrap())
    };
    let config = env.path("docker/config.json");
    login("wrong").fails(1, &["refused the credentials"]);
    assert!(!config.exists(), "a refused login writes nothing");
    login("s3cret").ok();
    assert_eq!(mode(&config), 0o600);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains(&host) && text.contains("YW5hOnMzY3JldA=="),
        "{text}"
    );

    // The saved login is used by push and pull, with nothing in the environment.
    let other = Env::new();
    let printed = Run::from(
        reg_cmd(&other)
            .env("DOCKER_CONFIG", env.path("docker"))
            .args(["store", "pull", &reference])
            .output()
            .unwrap(),
    )
    .ok();
    assert!(printed.ends_with("a.onnx"), "{printed}");
    assert_eq!(env.blob_names(), other.blob_names());
}

#[test]
fn a_docker_credential_helper_supplies_the_password() {
    let reg = Registry::start_basic("ana", "s3cret");
    let env = Env::new();
    add_model(&env, "alpha", &[("a.bin", b"helper bytes")]);
    let bin = env.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-beakertest");
    // The helper reads the host on stdin, as docker runs it, and answers only for that host.
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread host\n[ \"$host\" = \"{}\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\necho '{{\"Username\":\"ana\",\"Secret\":\"s3cret\"}}'\n",
            reg.host()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.file(
        "docker/config.json",
        format!("{{\"credHelpers\":{{\"{}\":\"beakertest\"}}}}", reg.host()).as_bytes(),
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = Run::from(
        reg_cmd(&env)
            .env("PATH", path)
            .args(["store", "push", "alpha", &reg.reference("h/alpha")])
            .output()
            .unwrap(),
    );
    run.ok();
}

/// A token service and a registry that only answers with a current token, in one server.
struct Bearer {
    port: u16,
    state: Arc<Mutex<BearerState>>,
}

#[derive(Default)]
struct BearerState {
    token_fetches: usize,
    current: Option<String>,
    /// Invalidate the token after the manifest is served (it "expires").
    expire_after_manifest: bool,
    scopes: Vec<String>,
    /// Every registry request: its path and the Authorization it carried.
    requests: Vec<(String, String)>,
}

impl Bearer {
    fn start(routes: Vec<(String, Vec<u8>)>, user_pass_b64: &'static str) -> Bearer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(BearerState {
            expire_after_manifest: true,
            ..BearerState::default()
        }));
        let st = state.clone();
        let routes = Arc::new(routes);
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let (st, routes) = (st.clone(), routes.clone());
                std::thread::spawn(move || serve(conn, port, &st, &routes, user_pass_b64));
            }
        });
        Bearer { port, state }
    }
}

fn serve(
    mut conn: TcpStream,
    port: u16,
    state: &Mutex<BearerState>,
    routes: &[(String, Vec<u8>)],
    user_pass_b64: &str,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut auth = String::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                auth = v.trim().to_owned();
            }
        }
    }
    let reply = |conn: &mut TcpStream, status: &str, extra: &str, body: &[u8]| {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
            body.len()
        );
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(body);
    };
    if let Some(query) = target.strip_prefix("/token?") {
        let mut st = state.lock().unwrap();
        st.scopes.push(query.to_owned());
        if auth != format!("Basic {user_pass_b64}") {
            return reply(&mut conn, "401 Unauthorized", "", b"{}");
        }
        st.token_fetches += 1;
        let token = format!("tok-{}", st.token_fetches);
        st.current = Some(token.clone());
        return reply(
            &mut conn,
            "200 OK",
            "",
            format!("{{\"token\":\"{token}\",\"expires_in\":300}}").as_bytes(),
        );
    }
    let mut st = state.lock().unwrap();
    st.requests.push((target.clone(), auth.clone()));
    // "Blob storage": what a blob GET is redirected to, answering without any token.
    if let Some(blob) = target.strip_prefix("/cdn") {
        drop(st);
        return match routes.iter().find(|(p, _)| p == blob) {
            Some((_, body)) => reply(&mut conn, "200 OK", "", body),
            None => reply(&mut conn, "404 Not Found", "", b""),
        };
    }
    let valid = st
        .current
        .as_ref()
        .is_some_and(|t| auth == format!("Bearer {t}"));
    if !valid {
        let challenge = format!(
            "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake\",scope=\"repository:r:pull\"\r\n"
        );
        return reply(&mut conn, "401 Unauthorized", &challenge, b"");
    }
    match routes.iter().find(|(p, _)| *p == target) {
        Some((_, body)) => {
            if target.contains("/manifests/") && st.expire_after_manifest {
                st.current = None;
            }
            drop(st);
            if target.contains("/blobs/") {
                let to = format!("Location: http://127.0.0.1:{port}/cdn{target}\r\n");
                return reply(&mut conn, "307 Temporary Redirect", &to, b"");
            }
            reply(&mut conn, "200 OK", "", body)
        }
        None => reply(&mut conn, "404 Not Found", "", b""),
    }
}

/// The manifest of a one-file model whose layer is `body`, titled `title`.
pub(crate) fn manifest_for(body: &[u8], title: &str, size: usize) -> (String, Vec<u8>) {
    let sha = sha256_hex(body);
    let json = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"sha256:{sha}","size":{size},"annotations":{{"org.opencontainers.image.title":"{title}"}}}}]}}"#
    );
    (sha, json.into_bytes())
}

#[test]
fn bearer_tokens_are_fetched_with_the_credentials_and_renewed_on_401() {
    let body = bytes(120_000, 52);
    let (sha, manifest) = manifest_for(&body, "w.bin", body.len());
    let routes = vec![
        ("/v2/r/manifests/v1".to_owned(), manifest),
        (format!("/v2/r/blobs/sha256:{sha}"), body.clone()),
    ];
    // base64("ana:s3cret")
    let server = Bearer::start(routes, "YW5hOnMzY3JldA==");
    let reference = format!("oci+http://127.0.0.1:{}/r:v1", server.port);
    let env = Env::new();
    env.file(
        "docker/config.json",
        format!(
            "{{\"auths\":{{\"127.0.0.1:{}\":{{\"auth\":\"YW5hOnMzY3JldA==\"}}}}}}",
            server.port
        )
        .as_bytes(),
    );
    let printed = reg_run(&env, &["store", "pull", &reference]).ok();
    assert_model_file(&env.store, &printed, &body);
    let st = server.state.lock().unwrap();
    assert_eq!(
        st.token_fetches, 2,
        "one token for the manifest, a renewed one after the blob GET's 401"
    );
    let blob: Vec<(&str, &str)> = st
        .requests
        .iter()
        .filter(|(p, _)| p.contains("/blobs/"))
        .map(|(p, a)| (&p[..4], a.as_str()))
        .collect();
    assert_eq!(
        blob,
        [("/v2/", "Bearer tok-1"), ("/v2/", "Bearer tok-2"), ("/cdn", "")],
        "the cached token is tried, refused, renewed; the redirect to blob storage carries no Authorization"
    );
    assert!(
        st.scopes
            .iter()
            .all(|q| q.contains("service=fake") && q.contains("scope=repository%3Ar%3Apull")),
        "{:?}",
        st.scopes
    );
}

#[test]
fn a_refused_password_at_the_token_service_is_reported_and_nothing_is_published() {
    let body = bytes(10_000, 53);
    let (sha, manifest) = manifest_for(&body, "w.bin", body.len());
    let routes = vec![
        ("/v2/r/manifests/v1".to_owned(), manifest),
        (format!("/v2/r/blobs/sha256:{sha}"), body),
    ];
    let server = Bearer::start(routes, "YW5hOnMzY3JldA==");
    let reference = format!("oci+http://127.0.0.1:{}/r:v1", server.port);
    let env = Env::new();
    let run = Run::from(
        reg_cmd(&env)
            .env("BEAKER_REGISTRY_USER", "ana")
            .env("BEAKER_REGISTRY_PASSWORD", "nope")
            .args(["store", "pull", &reference])
            .output()
            .unwrap(),
    );
    run.fails(1, &["refused the credentials", "token service", &reference]);
    assert!(env.blob_names().is_empty());
    // No credentials at all: the message says how to give some.
    reg_run(&env, &["store", "pull", &reference])
        .fails(1, &["registry login", "BEAKER_REGISTRY_USER"]);
}
