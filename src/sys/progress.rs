//! Progress reporting. The library never prints: long operations report through this trait and
//! the CLI draws a bar on stderr (only on a terminal, never with `--json`/`-q`).

/// Receives progress of one long operation. Every method has a do-nothing default.
pub trait Progress {
    /// A new phase begins; `total` is the byte count when known.
    fn start(&mut self, _what: &str, _total: Option<u64>) {}
    /// `bytes` more were processed.
    fn advance(&mut self, _bytes: u64) {}
    /// The total became known after the phase began (e.g. from a response's Content-Length).
    fn set_total(&mut self, _total: u64) {}
    /// `bytes` were already done before this run (a resumed download): they count towards the
    /// position, not towards this run's speed. By default the same as [`Progress::advance`].
    fn resumed(&mut self, bytes: u64) {
        self.advance(bytes);
    }
    /// The phase is over (successfully or not).
    fn finish(&mut self) {}
    /// A one-line notice for the user (e.g. who holds the lock we wait for).
    fn notice(&mut self, _message: &str) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {}
