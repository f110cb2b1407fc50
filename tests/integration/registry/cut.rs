//! A chunked push whose upload connection dies during a `PATCH` still completes with the right
//! bytes: a TCP proxy in front of the real registry cuts the connection carrying the second
//! `PATCH`. Cut before any of its body arrived, the upload continues from the registry's `Range`
//! (nothing sent twice); cut mid-body, distribution 2.8 drops the session and the upload starts
//! over in a new one.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::server::Registry;
use super::{add_model, reg_cmd, reg_run};
use crate::support::*;

/// Forwards 127.0.0.1:port to the registry, byte for byte, except that the connection carrying
/// PATCH number `cut_at` (1-based, counted over all connections) is closed after its request
/// head and `keep` bytes of its body.
struct CutProxy {
    port: u16,
    patches: Arc<AtomicUsize>,
}

impl CutProxy {
    fn start(upstream: u16, cut_at: usize, keep: usize) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let patches = Arc::new(AtomicUsize::new(0));
        let counter = patches.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let counter = counter.clone();
                std::thread::spawn(move || relay(client, upstream, &counter, cut_at, keep));
            }
        });
        CutProxy { port, patches }
    }
}

fn relay(client: TcpStream, upstream: u16, patches: &AtomicUsize, cut_at: usize, keep: usize) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let (mut from_server, mut to_client) =
        (server.try_clone().unwrap(), client.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Write);
    });
    let (mut from_client, mut to_server) = (client, server);
    let mut buf = vec![0u8; 64 << 10];
    // The chosen PATCH was seen and its head has not ended yet (it may span reads).
    let mut in_head = false;
    // Bytes still to forward before cutting, once the chosen PATCH's head has ended.
    let mut left: Option<usize> = None;
    loop {
        let n = match from_client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        let mut from = 0;
        if left.is_none() && !in_head {
            if let Some(at) = find(chunk, b"PATCH /v2/") {
                if patches.fetch_add(1, Ordering::SeqCst) + 1 == cut_at {
                    in_head = true;
                    from = at;
                }
            }
        }
        if in_head {
            if let Some(end) = find(&chunk[from..], b"\r\n\r\n") {
                in_head = false;
                left = Some(from + end + 4 + keep);
            }
        }
        if let Some(l) = left {
            let take = l.min(chunk.len());
            chunk = &chunk[..take];
            left = Some(l - take);
        }
        if to_server.write_all(chunk).is_err() {
            break;
        }
        if left == Some(0) {
            let _ = to_server.shutdown(Shutdown::Both);
            let _ = from_client.shutdown(Shutdown::Both);
            return;
        }
    }
    let _ = to_server.shutdown(Shutdown::Write);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Pushes 8 MB in 2 MB chunks through a proxy that cuts the second PATCH after `keep` body
/// bytes; returns the push's stderr and how many PATCHes went out, after checking that the
/// registry holds the model's exact bytes.
fn cut_push(keep: usize, seed: u64) -> (String, usize) {
    let reg = Registry::start();
    let proxy = CutProxy::start(reg.port, 2, keep);
    let (a, b) = (Env::new(), Env::new());
    let body = bytes(8_000_000, seed);
    add_model(&a, "big", &[("big.bin", &body)]);
    let via_proxy = format!("oci+http://127.0.0.1:{}/cut/big:v1", proxy.port);
    let run = Run::from(
        reg_cmd(&a)
            .env("BEAKER_PUSH_CHUNK", "2000000")
            .env("BEAKER_RETRIES", "2")
            .env("BEAKER_RETRY_BASE", "10ms")
            .args(["store", "push", "big", &via_proxy])
            .output()
            .unwrap(),
    );
    assert!(run.ok().starts_with("sha256:"), "{run:#?}");
    // Straight from the registry, not through the proxy: the bytes are the model's.
    let printed = reg_run(&b, &["store", "pull", &reg.reference("cut/big:v1")]).ok();
    assert_model_file(&b.store, &printed, &body);
    (run.stderr, proxy.patches.load(Ordering::SeqCst))
}

#[test]
fn a_chunked_push_cut_before_a_patch_body_continues_from_the_registrys_range() {
    let (stderr, patches) = cut_push(0, 91);
    assert!(
        stderr.contains("continuing the upload at byte 2000000"),
        "{stderr}"
    );
    assert_eq!(
        patches, 5,
        "four chunks, the cut one sent again, nothing else"
    );
}

#[test]
fn a_chunked_push_cut_mid_patch_starts_over_when_the_registry_drops_the_session() {
    let (stderr, patches) = cut_push(1_500_000, 92);
    assert!(
        stderr.contains("the registry dropped the interrupted upload; starting it over"),
        "{stderr}"
    );
    assert_eq!(patches, 2 + 4, "two before the cut, then all four again");
}
