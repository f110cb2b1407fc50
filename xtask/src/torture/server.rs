//! An HTTP/1.1 server on 127.0.0.1 that lies on purpose, for the campaign's pulls (a copy, grown,
//! of the integration tests' server: xtask cannot use `tests/` modules).
//!
//! It serves byte bodies by path, honours `Range: bytes=N-`, records every request, and injects
//! faults: each route has a queue of faults consumed one per request, then a default for every
//! later request. Every response closes its connection, so one request is one connection.
//! [`Fault::Gate`] holds a download at a chosen byte until the client goes away, which is how
//! the kill trials SIGKILL a pull at an exact offset.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
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
    /// Announce the full length, send this many bytes of the file (absolute offset), then close.
    CutAfter(usize),
    /// Flip the byte at this offset of the file.
    Flip(usize),
    /// Send up to this offset, go silent for the duration, then close.
    StallAt(usize, Duration),
    /// Send up to this offset, tell [`Server::wait_gate`], then hold the connection until the
    /// client closes it (a killed client does at once).
    Gate(usize),
    /// Answer 200 with the whole file even when a Range is asked for.
    IgnoreRange,
    /// Answer a Range request with 206 whose Content-Range starts this many bytes earlier than
    /// asked (and the body from there).
    WrongOffset(usize),
    /// Send the file plus this many extra bytes, close-delimited (no Content-Length).
    Oversize(usize),
    /// Send the body in chunks of this many bytes with a pause between them.
    Drip(usize, Duration),
    /// Answer 302 with this Location.
    Redirect(String),
    /// Send the body gzip-compressed with `Content-Encoding: gzip`.
    Gzip,
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
}

struct Route {
    body: Arc<Vec<u8>>,
    queue: VecDeque<Fault>,
    default: Fault,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    seen: Vec<Seen>,
}

pub struct Server {
    pub port: u16,
    state: Arc<Mutex<State>>,
    reached: Mutex<Receiver<()>>,
}

/// Locks `m`, carrying on past a panicked holder (the state stays usable for a report).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Server {
    pub fn start() -> Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1")?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State::default()));
        let (tx, reached) = channel();
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (s, tx) = (s.clone(), tx.clone());
                std::thread::spawn(move || handle(conn, &s, &tx));
            }
        });
        Ok(Server {
            port,
            state,
            reached: Mutex::new(reached),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Serves `body` at `path`: first the `queue` faults, one per request, then `default`.
    pub fn route(&self, path: &str, body: &[u8], queue: &[Fault], default: Fault) {
        lock(&self.state).routes.insert(
            path.to_owned(),
            Route {
                body: Arc::new(body.to_vec()),
                queue: queue.iter().cloned().collect(),
                default,
            },
        );
    }

    /// Replaces the pending faults of `path` (its body stays).
    pub fn faults(&self, path: &str, queue: &[Fault]) {
        if let Some(r) = lock(&self.state).routes.get_mut(path) {
            r.queue = queue.iter().cloned().collect();
        }
    }

    /// Requests seen so far (and forgets them).
    pub fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut lock(&self.state).seen)
    }

    /// Waits until a request reaches a [`Fault::Gate`]; `false` after `limit`.
    pub fn wait_gate(&self, limit: Duration) -> bool {
        lock(&self.reached).recv_timeout(limit).is_ok()
    }

    /// Forgets gate notifications nobody waited for.
    pub fn drain_gates(&self) {
        while lock(&self.reached).try_recv().is_ok() {}
    }
}

fn handle(mut conn: TcpStream, state: &Mutex<State>, reached: &Sender<()>) {
    let Some(seen) = read_request(&conn) else {
        return;
    };
    let (body, fault) = {
        let mut st = lock(state);
        st.seen.push(seen.clone());
        match st.routes.get_mut(&seen.path) {
            None => (Arc::new(Vec::new()), Fault::Status(404, None)),
            Some(r) => {
                let f = r.queue.pop_front().unwrap_or_else(|| r.default.clone());
                (r.body.clone(), f)
            }
        }
    };
    let len = body.len();
    let asked = seen
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let start = match fault {
        Fault::IgnoreRange | Fault::Oversize(_) | Fault::Gzip => None,
        Fault::WrongOffset(back) => asked.map(|s| s.saturating_sub(back)),
        _ => asked,
    };
    let close = "Connection: close\r\n\r\n";
    let head = match (&fault, start) {
        (Fault::Status(code, retry), _) => {
            let retry = retry.map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
            let _ = write!(
                conn,
                "HTTP/1.1 {code} Fault\r\nContent-Length: 0\r\n{retry}{close}"
            );
            return;
        }
        (Fault::Redirect(to), _) => {
            let _ = write!(
                conn,
                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n{close}"
            );
            return;
        }
        (Fault::Gzip, _) => {
            let z = gzip_stored(&body);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n{close}",
                z.len()
            );
            let _ = conn.write_all(&z);
            let _ = conn.shutdown(Shutdown::Write);
            return;
        }
        (_, Some(s)) if s >= len => {
            let _ = write!(
                conn,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n{close}"
            );
            return;
        }
        (Fault::Oversize(_), _) => format!("HTTP/1.1 200 OK\r\n{close}"),
        (_, Some(s)) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\nContent-Length: {}\r\n{close}",
            len - 1,
            len - s
        ),
        (_, None) => format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n{close}"),
    };
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    let from = start.unwrap_or(0);
    let mut payload = body[from..].to_vec();
    match fault {
        Fault::Flip(at) if at >= from && at < len => payload[at - from] ^= 0xff,
        Fault::Oversize(extra) => payload.extend(std::iter::repeat_n(0x5a, extra)),
        _ => {}
    }
    let split = |at: usize| at.saturating_sub(from).min(payload.len());
    let send = |conn: &mut TcpStream, bytes: &[u8]| {
        conn.write_all(bytes).and_then(|()| conn.flush()).is_ok()
    };
    match fault {
        Fault::CutAfter(n) => {
            send(&mut conn, &payload[..split(n)]);
        }
        Fault::StallAt(n, d) => {
            if send(&mut conn, &payload[..split(n)]) {
                std::thread::sleep(d);
            }
        }
        Fault::Gate(n) => {
            if send(&mut conn, &payload[..split(n)]) {
                let _ = reached.send(());
                // Hold the connection until the client closes it (or dies).
                let mut sink = [0u8; 512];
                while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
            }
        }
        Fault::Drip(chunk, pause) => {
            for part in payload.chunks(chunk.max(1)) {
                if !send(&mut conn, part) {
                    break;
                }
                std::thread::sleep(pause);
            }
        }
        _ => {
            send(&mut conn, &payload);
        }
    }
    let _ = conn.shutdown(Shutdown::Write);
}

fn read_request(conn: &TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
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
    Some(Seen { path, range })
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
    use super::crc32;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }
}
