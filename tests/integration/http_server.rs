//! An in-process HTTP/1.1 test server on 127.0.0.1 for the pull tests (DESIGN §11).
//!
//! It serves byte bodies by path, honours `Range: bytes=N-`, counts requests and body bytes
//! actually sent, and injects faults: each route has a queue of faults consumed one per request
//! (then a default that applies to every later request). Every response carries
//! `Connection: close`, so one request is one connection. Pauses are server-side: the server
//! holds the connection open mid-body, which is how tests make processes overlap or stall.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What the server does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Serve normally (Range honoured).
    None,
    /// Answer this status with an empty body (and `Retry-After` when given).
    Status(u16, Option<u64>),
    /// Announce the full length, send this many body bytes, then close.
    CutAfter(usize),
    /// Flip the byte at this offset of the file.
    Flip(usize),
    /// Send this many bytes, pause, then send the rest.
    PauseAt(usize, Duration),
    /// Send this many bytes, then go silent for the duration, then close.
    StallAt(usize, Duration),
    /// Send this many bytes, tell the test (see [`Server::wait_gate`]), wait for
    /// [`Server::release_gate`], then close.
    Gate(usize),
    /// Answer 200 with the whole file even when a Range is asked for.
    IgnoreRange,
    /// Send the file plus this many extra bytes, close-delimited (no Content-Length).
    Oversize(usize),
    /// Answer 302 with this Location.
    Redirect(String),
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
}

struct Route {
    body: Vec<u8>,
    queue: VecDeque<Fault>,
    default: Fault,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    seen: Vec<Seen>,
    body_bytes: u64,
}

struct Gate {
    open: Mutex<bool>,
    cond: Condvar,
}

pub struct Server {
    pub port: u16,
    state: Arc<Mutex<State>>,
    gate: Arc<Gate>,
    reached: Receiver<()>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let gate = Arc::new(Gate {
            open: Mutex::new(false),
            cond: Condvar::new(),
        });
        let (tx, reached) = channel();
        let (s, g) = (state.clone(), gate.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (s, g, tx) = (s.clone(), g.clone(), tx.clone());
                std::thread::spawn(move || handle(conn, &s, &g, &tx));
            }
        });
        Server {
            port,
            state,
            gate,
            reached,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Serves `body` at `path`: first the `queue` faults, one per request, then `default`.
    pub fn route(&self, path: &str, body: &[u8], queue: &[Fault], default: Fault) {
        self.state.lock().unwrap().routes.insert(
            path.to_owned(),
            Route {
                body: body.to_vec(),
                queue: queue.iter().cloned().collect(),
                default,
            },
        );
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().seen.len()
    }

    /// Body bytes written to clients, over all requests.
    pub fn body_bytes(&self) -> u64 {
        self.state.lock().unwrap().body_bytes
    }

    /// Blocks until a request reaches a [`Fault::Gate`] (at most 20 s).
    pub fn wait_gate(&self) {
        self.reached
            .recv_timeout(Duration::from_secs(20))
            .expect("no request reached the gate");
    }

    pub fn release_gate(&self) {
        *self.gate.open.lock().unwrap() = true;
        self.gate.cond.notify_all();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.release_gate();
    }
}

fn handle(mut conn: TcpStream, state: &Mutex<State>, gate: &Gate, reached: &Sender<()>) {
    let Some(seen) = read_request(&conn) else {
        return;
    };
    let (body, fault) = {
        let mut st = state.lock().unwrap();
        st.seen.push(seen.clone());
        match st.routes.get_mut(&seen.path) {
            None => (Vec::new(), Fault::Status(404, None)),
            Some(r) => {
                let f = r.queue.pop_front().unwrap_or_else(|| r.default.clone());
                (r.body.clone(), f)
            }
        }
    };
    let len = body.len();
    let start = match (&fault, &seen.range) {
        (Fault::IgnoreRange | Fault::Oversize(_), _) | (_, None) => None,
        (_, Some(r)) => r
            .strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<usize>().ok()),
    };
    let mut head = match (&fault, start) {
        (Fault::Status(code, retry), _) => {
            let mut h = format!("HTTP/1.1 {code} Fault\r\nContent-Length: 0\r\n");
            if let Some(s) = retry {
                h.push_str(&format!("Retry-After: {s}\r\n"));
            }
            let _ = conn.write_all(format!("{h}Connection: close\r\n\r\n").as_bytes());
            return;
        }
        (Fault::Redirect(to), _) => {
            let h = format!(
                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = conn.write_all(h.as_bytes());
            return;
        }
        (_, Some(s)) if s >= len => {
            let h = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = conn.write_all(h.as_bytes());
            return;
        }
        (Fault::Oversize(_), _) => "HTTP/1.1 200 OK\r\n".to_owned(),
        (_, Some(s)) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\nContent-Length: {}\r\n",
            len - 1,
            len - s
        ),
        (_, None) => format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n"),
    };
    head.push_str("Connection: close\r\n\r\n");
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    let from = start.unwrap_or(0);
    let mut payload = body[from..].to_vec();
    if let Fault::Flip(at) = fault {
        if at >= from && at < len {
            payload[at - from] ^= 0xff;
        }
    }
    if let Fault::Oversize(extra) = fault {
        payload.extend(std::iter::repeat_n(0x5a, extra));
    }
    // `pause_at` is an absolute file offset; the cut/stop point likewise.
    let send = |conn: &mut TcpStream, bytes: &[u8]| -> bool {
        let ok = conn.write_all(bytes).and_then(|()| conn.flush()).is_ok();
        if ok {
            state.lock().unwrap().body_bytes += bytes.len() as u64;
        }
        ok
    };
    let split = |at: usize| at.saturating_sub(from).min(payload.len());
    match fault {
        Fault::CutAfter(n) => {
            send(&mut conn, &payload[..split(n)]);
        }
        Fault::PauseAt(n, d) => {
            if send(&mut conn, &payload[..split(n)]) {
                std::thread::sleep(d);
                send(&mut conn, &payload[split(n)..]);
            }
        }
        Fault::StallAt(n, d) => {
            if send(&mut conn, &payload[..split(n)]) {
                std::thread::sleep(d);
            }
        }
        Fault::Gate(n) => {
            if send(&mut conn, &payload[..split(n)]) {
                let _ = reached.send(());
                let mut open = gate.open.lock().unwrap();
                while !*open {
                    open = gate.cond.wait(open).unwrap();
                }
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
