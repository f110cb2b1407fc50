//! The one HTTP/1.1 server of the tests, the fault campaign and the bench, on 127.0.0.1: it lies
//! on purpose when told to.
//!
//! It serves bodies by path, from memory ([`Server::route`]) or from a file, streamed with
//! sendfile ([`Server::route_file`], what the bench serves a 512 MiB model with); honours
//! `Range: bytes=N-` and `HEAD`; logs every request ([`Seen`]); counts the body bytes it sent and
//! the bodies (200/206 to a GET) per path; and injects faults: each route has a queue of
//! [`Fault`]s consumed one per request, then a default for every later request. Every response
//! carries `Connection: close`, so one request is one connection. Pauses are server-side: the
//! server holds a connection open mid-body, which is how tests make processes overlap or stall,
//! and [`Fault::Gate`] holds a download at an exact byte until the client goes away or the test
//! calls [`Server::release_gate`].

// A file body is opened with raw std::fs: a fixture outside any store.
#![allow(clippy::disallowed_methods)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result};

/// What the server does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Serve normally (Range honoured).
    None,
    /// Answer this status with an empty body (and `Retry-After: secs` when given).
    Status(u16, Option<u64>),
    /// Announce the full length, send the file up to this offset, then close.
    CutAfter(usize),
    /// Flip the byte at this offset of the file.
    Flip(usize),
    /// Send up to this offset, pause, then send the rest.
    PauseAt(usize, Duration),
    /// Send up to this offset, go silent for the duration, then close.
    StallAt(usize, Duration),
    /// Send up to this offset, tell [`Server::wait_gate`], then hold the connection until the
    /// client closes it (a killed client does at once) or [`Server::release_gate`]; then close.
    Gate(usize),
    /// Answer 200 with the whole file even when a Range is asked for.
    IgnoreRange,
    /// [`Fault::IgnoreRange`], the body sent as [`Fault::Drip`] sends it.
    IgnoreRangeDrip(usize, Duration),
    /// Answer a Range request with 206 whose Content-Range starts this many bytes earlier than
    /// asked (and the body from there).
    WrongOffset(usize),
    /// Send the file plus this many extra bytes, close-delimited (no Content-Length).
    Oversize(usize),
    /// Send the body in chunks of this many bytes with a pause after each.
    Drip(usize, Duration),
    /// Answer 302 with this Location.
    Redirect(String),
    /// Send the body gzip-compressed with `Content-Encoding: gzip`.
    Gzip,
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
}

/// Where a route's bytes come from.
#[derive(Clone)]
enum Body {
    Bytes(Arc<[u8]>),
    File(PathBuf),
}

struct Route {
    body: Body,
    queue: VecDeque<Fault>,
    default: Fault,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    seen: Vec<Seen>,
    body_bytes: u64,
    bodies: HashMap<String, usize>,
}

/// Connections held at a [`Fault::Gate`], and whether the gate is open for good.
#[derive(Default)]
struct Gate {
    released: bool,
    held: HashMap<u64, TcpStream>,
    next: u64,
}

struct Shared {
    state: Mutex<State>,
    gate: Mutex<Gate>,
    reached: Mutex<Sender<()>>,
    stop: AtomicBool,
}

/// A running server; it stops accepting (and opens its gate) when dropped.
pub struct Server {
    pub port: u16,
    shared: Arc<Shared>,
    reached: Mutex<Receiver<()>>,
}

/// Locks `m`, carrying on past a panicked holder (the log stays readable for a report).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Server {
    /// Listens on a free port of 127.0.0.1, one thread per connection.
    pub fn start() -> Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1")?;
        let port = listener.local_addr().context("the bound address")?.port();
        let (tx, reached) = channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            gate: Mutex::new(Gate::default()),
            reached: Mutex::new(tx),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || handle(conn, &s));
            }
        });
        Ok(Server {
            port,
            shared,
            reached: Mutex::new(reached),
        })
    }

    /// `http://127.0.0.1:PORT` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Serves `body` at `path`: first the `queue` faults, one per request, then `default`.
    pub fn route(&self, path: &str, body: &[u8], queue: &[Fault], default: Fault) {
        self.add(path, Body::Bytes(body.into()), queue, default);
    }

    /// Serves the file `file` at `path` (read at each request, sent with sendfile), faults as in
    /// [`Server::route`].
    pub fn route_file(&self, path: &str, file: &Path, queue: &[Fault], default: Fault) {
        self.add(path, Body::File(file.to_owned()), queue, default);
    }

    fn add(&self, path: &str, body: Body, queue: &[Fault], default: Fault) {
        lock(&self.shared.state).routes.insert(
            path.to_owned(),
            Route {
                body,
                queue: queue.iter().cloned().collect(),
                default,
            },
        );
    }

    /// Replaces the pending faults of `path` (its body and default stay).
    pub fn faults(&self, path: &str, queue: &[Fault]) {
        if let Some(r) = lock(&self.shared.state).routes.get_mut(path) {
            r.queue = queue.iter().cloned().collect();
        }
    }

    /// Every request so far, in order of arrival.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.state).seen.clone()
    }

    /// The requests since the last call (and forgets them).
    pub fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut lock(&self.shared.state).seen)
    }

    /// How many requests arrived (since the last [`Server::take_seen`]).
    pub fn requests(&self) -> usize {
        lock(&self.shared.state).seen.len()
    }

    /// Body bytes written to clients, over all requests.
    pub fn body_bytes(&self) -> u64 {
        lock(&self.shared.state).body_bytes
    }

    /// How many responses to a GET of `path` carried a body (200 or 206).
    pub fn bodies(&self, path: &str) -> usize {
        lock(&self.shared.state)
            .bodies
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until a request reaches a [`Fault::Gate`]; `false` after `limit`.
    pub fn wait_gate(&self, limit: Duration) -> bool {
        lock(&self.reached).recv_timeout(limit).is_ok()
    }

    /// Forgets gate notifications nobody waited for.
    pub fn drain_gates(&self) {
        while lock(&self.reached).try_recv().is_ok() {}
    }

    /// Opens the gate for good: every held connection closes (the client sees the body end
    /// where the gate held it), and later [`Fault::Gate`]s no longer hold.
    pub fn release_gate(&self) {
        let mut g = lock(&self.shared.gate);
        g.released = true;
        for (_, conn) in g.held.drain() {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.release_gate();
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and closes the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn handle(mut conn: TcpStream, shared: &Shared) {
    let Some(seen) = read_request(&conn) else {
        return;
    };
    let found = {
        let mut st = lock(&shared.state);
        st.seen.push(seen.clone());
        st.routes.get_mut(&seen.path).map(|r| {
            let f = r.queue.pop_front().unwrap_or_else(|| r.default.clone());
            (r.body.clone(), f)
        })
    };
    let (body, fault) = found.unwrap_or((Body::Bytes(Arc::from([])), Fault::Status(404, None)));
    // An error here is the client going away (or a file body gone): the response just ends.
    let _ = respond(&mut conn, shared, &seen, &body, fault);
    let _ = conn.shutdown(Shutdown::Write);
}

/// A body opened for one response.
enum Source {
    Bytes(Arc<[u8]>),
    File(std::fs::File, usize),
}

impl Source {
    fn open(body: &Body) -> std::io::Result<Source> {
        Ok(match body {
            Body::Bytes(b) => Source::Bytes(b.clone()),
            Body::File(p) => {
                let f = std::fs::File::open(p)?;
                let len = usize::try_from(f.metadata()?.len()).map_err(std::io::Error::other)?;
                Source::File(f, len)
            }
        })
    }

    fn len(&self) -> usize {
        match self {
            Source::Bytes(b) => b.len(),
            Source::File(_, len) => *len,
        }
    }

    /// The bytes of `range`, in memory.
    fn read(&mut self, range: Range<usize>) -> std::io::Result<Vec<u8>> {
        match self {
            Source::Bytes(b) => Ok(b[range].to_vec()),
            Source::File(f, _) => {
                let mut v = vec![0u8; range.len()];
                f.seek(SeekFrom::Start(range.start as u64))?;
                f.read_exact(&mut v)?;
                Ok(v)
            }
        }
    }

    /// Writes the bytes of `range` to `conn` (a file with sendfile).
    fn write(&mut self, conn: &mut TcpStream, range: Range<usize>) -> std::io::Result<()> {
        match self {
            Source::Bytes(b) => conn.write_all(&b[range])?,
            Source::File(f, _) => {
                let want = range.len() as u64;
                f.seek(SeekFrom::Start(range.start as u64))?;
                // std copies a file to a socket with sendfile(2) on Linux.
                let sent = std::io::copy(&mut (&mut *f).take(want), conn)?;
                if sent != want {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file is shorter than when the response began",
                    ));
                }
            }
        }
        conn.flush()
    }
}

/// Writes `bytes` and counts them as body bytes.
fn send_bytes(conn: &mut TcpStream, shared: &Shared, bytes: &[u8]) -> bool {
    let ok = conn.write_all(bytes).and_then(|()| conn.flush()).is_ok();
    if ok {
        lock(&shared.state).body_bytes += bytes.len() as u64;
    }
    ok
}

/// Writes `range` of the body and counts it.
fn send(conn: &mut TcpStream, shared: &Shared, src: &mut Source, range: Range<usize>) -> bool {
    let n = range.len() as u64;
    let ok = src.write(conn, range).is_ok();
    if ok {
        lock(&shared.state).body_bytes += n;
    }
    ok
}

fn respond(
    conn: &mut TcpStream,
    shared: &Shared,
    seen: &Seen,
    body: &Body,
    fault: Fault,
) -> std::io::Result<()> {
    let close = "Connection: close\r\n\r\n";
    match &fault {
        Fault::Status(code, retry) => {
            let retry = retry.map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
            return write!(
                conn,
                "HTTP/1.1 {code} Fault\r\nContent-Length: 0\r\n{retry}{close}"
            );
        }
        Fault::Redirect(to) => {
            return write!(
                conn,
                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n{close}"
            );
        }
        _ => {}
    }
    let mut src = match Source::open(body) {
        Ok(s) => s,
        Err(_) => {
            return write!(
                conn,
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n{close}"
            );
        }
    };
    let len = src.len();
    let get = seen.method != "HEAD";
    let counted = |shared: &Shared| {
        if get {
            *lock(&shared.state)
                .bodies
                .entry(seen.path.clone())
                .or_default() += 1;
        }
    };
    if fault == Fault::Gzip {
        let z = gzip_stored(&src.read(0..len)?);
        write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n{close}",
            z.len()
        )?;
        if get {
            counted(shared);
            send_bytes(conn, shared, &z);
        }
        return Ok(());
    }
    let asked = seen
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let start = match fault {
        Fault::IgnoreRange | Fault::IgnoreRangeDrip(..) | Fault::Oversize(_) => None,
        Fault::WrongOffset(back) => asked.map(|s| s.saturating_sub(back)),
        _ => asked,
    };
    let head = match (&fault, start) {
        (_, Some(s)) if s >= len => {
            return write!(
                conn,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n{close}"
            );
        }
        (Fault::Oversize(_), _) => format!("HTTP/1.1 200 OK\r\n{close}"),
        (_, Some(s)) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\nContent-Length: {}\r\n{close}",
            len - 1,
            len - s
        ),
        (_, None) => format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n{close}"),
    };
    conn.write_all(head.as_bytes())?;
    if !get {
        return Ok(());
    }
    counted(shared);
    let from = start.unwrap_or(0);
    // Cut points are absolute offsets of the file.
    let upto = |at: usize| at.clamp(from, len);
    match fault {
        Fault::CutAfter(n) => {
            send(conn, shared, &mut src, from..upto(n));
        }
        Fault::PauseAt(n, d) => {
            if send(conn, shared, &mut src, from..upto(n)) {
                std::thread::sleep(d);
                send(conn, shared, &mut src, upto(n)..len);
            }
        }
        Fault::StallAt(n, d) => {
            if send(conn, shared, &mut src, from..upto(n)) {
                std::thread::sleep(d);
            }
        }
        Fault::Gate(n) => {
            if send(conn, shared, &mut src, from..upto(n)) {
                hold(conn, shared);
            }
        }
        Fault::Drip(chunk, pause) | Fault::IgnoreRangeDrip(chunk, pause) => {
            let mut at = from;
            while at < len {
                let end = (at + chunk.max(1)).min(len);
                if !send(conn, shared, &mut src, at..end) {
                    break;
                }
                std::thread::sleep(pause);
                at = end;
            }
        }
        Fault::Flip(at) if at >= from && at < len => {
            let mut payload = src.read(from..len)?;
            payload[at - from] ^= 0xff;
            send_bytes(conn, shared, &payload);
        }
        Fault::Oversize(extra) => {
            let mut payload = src.read(0..len)?;
            payload.extend(std::iter::repeat_n(0x5a, extra));
            send_bytes(conn, shared, &payload);
        }
        _ => {
            send(conn, shared, &mut src, from..len);
        }
    }
    Ok(())
}

/// Tells [`Server::wait_gate`], then holds `conn` until the client closes it or the gate is
/// released.
fn hold(conn: &TcpStream, shared: &Shared) {
    let _ = lock(&shared.reached).send(());
    let id = {
        let mut g = lock(&shared.gate);
        let Ok(clone) = conn.try_clone() else { return };
        if g.released {
            return;
        }
        g.next += 1;
        let id = g.next;
        g.held.insert(id, clone);
        id
    };
    let mut sink = [0u8; 512];
    let mut reader = conn;
    while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
    lock(&shared.gate).held.remove(&id);
}

fn read_request(conn: &TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let method = words.next()?.to_owned();
    let path = words.next()?.to_owned();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_owned());
            }
        }
    }
    Some(Seen {
        method,
        path,
        range,
    })
}

/// `data` as a gzip member of stored (uncompressed) deflate blocks: a valid gzip stream without a
/// compressor, enough to see what a client does with `Content-Encoding: gzip`.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[]]
    } else {
        data.chunks(0xffff).collect()
    };
    for (i, c) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let n = c.len() as u16;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(!n).to_le_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE), bitwise: gzip's trailer checksum.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    /// A raw HTTP exchange: the whole response, headers and body.
    fn get(server: &Server, path: &str, range: Option<&str>, method: &str) -> Vec<u8> {
        let mut c = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        let range = range.map_or(String::new(), |r| format!("Range: {r}\r\n"));
        write!(c, "{method} {path} HTTP/1.1\r\nHost: x\r\n{range}\r\n").expect("send");
        let mut out = Vec::new();
        c.read_to_end(&mut out).expect("read");
        out
    }

    fn split(resp: &[u8]) -> (String, Vec<u8>) {
        let at = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a head");
        (
            String::from_utf8_lossy(&resp[..at]).into_owned(),
            resp[at + 4..].to_vec(),
        )
    }

    #[test]
    fn a_file_and_a_memory_body_serve_the_same_ranges_and_count_bodies() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let file = dir.path().join("f.bin");
        std::fs::write(&file, &data).expect("write");
        let server = Server::start().expect("start");
        server.route("/m", &data, &[], Fault::None);
        server.route_file("/f", &file, &[Fault::CutAfter(100)], Fault::None);
        let (head, body) = split(&get(&server, "/f", None, "GET"));
        assert!(head.contains("Content-Length: 10000"), "{head}");
        assert!(body == data[..100], "the first request is cut at 100 bytes");
        for path in ["/m", "/f"] {
            let (head, body) = split(&get(&server, path, Some("bytes=4000-"), "GET"));
            assert!(head.starts_with("HTTP/1.1 206"), "{head}");
            assert!(
                head.contains("Content-Range: bytes 4000-9999/10000"),
                "{head}"
            );
            assert!(body == data[4000..], "{path}: the bytes from 4000");
        }
        let (head, body) = split(&get(&server, "/f", None, "HEAD"));
        assert!(head.contains("Content-Length: 10000"), "{head}");
        assert!(body.is_empty(), "HEAD has no body");
        assert_eq!((server.bodies("/m"), server.bodies("/f")), (1, 2));
        assert_eq!(server.body_bytes(), 100 + 6000 + 6000);
        let (head, _) = split(&get(&server, "/nowhere", None, "GET"));
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        assert_eq!(server.requests(), 5);
    }

    #[test]
    fn a_gate_holds_until_released_and_then_closes_where_it_held() {
        let server = Server::start().expect("start");
        server.route("/g", &[7u8; 1000], &[Fault::Gate(300)], Fault::None);
        let port = server.port;
        let client = std::thread::spawn(move || {
            let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            write!(c, "GET /g HTTP/1.1\r\n\r\n").expect("send");
            let mut out = Vec::new();
            c.read_to_end(&mut out).expect("read");
            out
        });
        assert!(
            server.wait_gate(Duration::from_secs(20)),
            "the gate was reached"
        );
        server.release_gate();
        let (_, body) = split(&client.join().expect("client"));
        assert_eq!(body.len(), 300);
        // Released for good: a later gate does not hold.
        server.faults("/g", &[Fault::Gate(10)]);
        let (_, body) = split(&get(&server, "/g", None, "GET"));
        assert_eq!(body.len(), 10);
    }
}
