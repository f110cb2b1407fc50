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
    /// The phase goes back to `at` bytes (a server that could not resume: the download starts
    /// over; the next source after one whose bytes were discarded): the position is `at` again
    /// and the speed counts from here. By default nothing.
    fn restarted(&mut self, _at: u64) {}
    /// The phase is over (successfully or not).
    fn finish(&mut self) {}
    /// A one-line notice for the user (e.g. who holds the lock we wait for).
    fn notice(&mut self, _message: &str) {}
}

/// A point in a transfer for people: `100 MiB (33 %)` when the total is known, else `100 MiB`.
pub fn at_byte(bytes: u64, total: Option<u64>) -> String {
    let shown = humansize::format_size(bytes, humansize::BINARY);
    match total.filter(|t| *t > 0) {
        Some(t) => format!("{shown} ({} %)", bytes.saturating_mul(100) / t),
        None => shown,
    }
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {}

#[cfg(test)]
mod tests {
    #[test]
    fn a_point_in_a_transfer_reads_in_units_and_percent() {
        assert_eq!(
            super::at_byte(104_857_600, Some(314_572_800)),
            "100 MiB (33 %)"
        );
        assert_eq!(super::at_byte(512, None), "512 B");
        assert_eq!(super::at_byte(0, Some(0)), "0 B");
    }
}
