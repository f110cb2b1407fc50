//! How results reach the user, and the global flags that choose it (`--json`, `-q`, `-v`): stdout
//! for results (text or `--json`), stderr for notes and the progress bar, which is drawn only on
//! a terminal and never with `--json` or `-q`.

use std::io::IsTerminal;

use humansize::{format_size, BINARY};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use beaker::progress::Progress;

/// How results are printed: the global flags `--json`, `-q` and `-v` (flattened into
/// [`super::args::Cli`]).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Output {
    /// Print one JSON document on stdout instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only results and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Say more about what is happening (on stderr)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress bar, even on a terminal: one line per file instead, as in a log
    #[arg(long, global = true, env = "BEAKER_NO_PROGRESS", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_progress: bool,
}

impl Output {
    /// A note for people, on stderr (suppressed by `-q` and `--json`).
    pub fn note(&self, msg: impl std::fmt::Display) {
        if !self.quiet && !self.json {
            eprintln!("{msg}");
        }
    }

    /// Prints `value` as one JSON document on stdout.
    pub fn json(&self, value: &impl Serialize) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(value)?);
        Ok(())
    }

    /// A progress reporter: a bar on an interactive stderr; elsewhere only the notices (who holds
    /// a lock we wait for, retries), as plain lines; nothing with `--json`/`-q`.
    pub fn progress(&self) -> Box<dyn Progress> {
        if self.json || self.quiet {
            Box::new(beaker::progress::Silent)
        } else if self.no_progress || !std::io::stderr().is_terminal() {
            Box::new(Notices::default())
        } else {
            Box::new(Bar(None))
        }
    }
}

/// "just now", "5 minutes ago", "3 days ago": how long before `now` the instant `then` was
/// (seconds since the epoch; a time in the future reads "just now").
pub fn ago(now: u64, then: u64) -> String {
    let secs = now.saturating_sub(then);
    let (n, unit) = match secs {
        0..=59 => return "just now".into(),
        60..=3599 => (secs / 60, "minute"),
        3600..=86_399 => (secs / 3600, "hour"),
        86_400..=2_591_999 => (secs / 86_400, "day"),
        2_592_000..=31_535_999 => (secs / 2_592_000, "month"),
        _ => (secs / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

pub fn size(bytes: u64) -> String {
    format_size(bytes, BINARY)
}

/// One line each on stderr (for logs and CI, where a bar would be noise): a download started,
/// finished, and every notice (retries, waits, mirrors tried).
#[derive(Default)]
struct Notices {
    current: Option<(String, Option<u64>, u64, std::time::Instant)>,
}

impl Progress for Notices {
    fn start(&mut self, what: &str, total: Option<u64>) {
        match total {
            Some(n) => eprintln!("{what}: {}…", size(n)),
            None => eprintln!("{what}…"),
        }
        self.current = Some((what.to_owned(), total, 0, std::time::Instant::now()));
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(c) = &mut self.current {
            c.2 += bytes;
        }
    }

    fn set_total(&mut self, total: u64) {
        if let Some(c) = &mut self.current {
            c.1 = Some(total);
        }
    }

    fn resumed(&mut self, bytes: u64) {
        if let Some((what, total, done, _)) = &mut self.current {
            *done = bytes;
            eprintln!(
                "{what}: resuming after {}",
                beaker::progress::at_byte(bytes, *total)
            );
        }
    }

    fn restarted(&mut self, at: u64) {
        if let Some(c) = &mut self.current {
            c.2 = at;
        }
    }

    /// The "done" line only for a phase that got all its bytes: one that failed says so in
    /// its error, not in a line that reads like success.
    fn finish(&mut self) {
        if let Some((what, total, done, started)) = self.current.take() {
            if total.is_none_or(|t| t == done) && done > 0 {
                let secs = started.elapsed().as_secs_f64();
                eprintln!("{what}: {} in {secs:.1} s", size(done));
            }
        }
    }

    fn notice(&mut self, message: &str) {
        eprintln!("{message}");
    }
}

/// Where this run's transfer started, and when: the speed and the ETA count only what this
/// run receives from then on (not bytes resumed from a partial, or followed from another
/// process's progress, which would read as gigabytes a second).
#[derive(Clone)]
struct Baseline(std::sync::Arc<std::sync::Mutex<(u64, std::time::Instant)>>);

impl Baseline {
    fn new() -> Self {
        Baseline(std::sync::Arc::new(std::sync::Mutex::new((
            0,
            std::time::Instant::now(),
        ))))
    }

    fn set(&self, at: u64) {
        if let Ok(mut b) = self.0.lock() {
            *b = (at, std::time::Instant::now());
        }
    }

    /// Bytes a second since the baseline, once there is half a second of it to go by.
    fn rate(&self, pos: u64) -> Option<f64> {
        let (from, since) = *self.0.lock().ok()?;
        let secs = since.elapsed().as_secs_f64();
        (secs >= 0.5 && pos > from).then(|| (pos - from) as f64 / secs)
    }
}

struct Bar(Option<(ProgressBar, Baseline)>);

impl Progress for Bar {
    fn start(&mut self, what: &str, total: Option<u64>) {
        let bar = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        let base = Baseline::new();
        let (speed, eta) = (base.clone(), base.clone());
        // `wide_bar` takes what the terminal's width leaves.
        let style = ProgressStyle::with_template(
            "{msg} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {speed} eta {left}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "speed",
            move |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = match speed.rate(s.pos()) {
                    Some(r) => write!(w, "{}/s", size(r as u64)),
                    None => write!(w, "-"),
                };
            },
        )
        .with_key(
            "left",
            move |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let left = s.len().map(|l| l.saturating_sub(s.pos()));
                let _ = match (eta.rate(s.pos()), left) {
                    (_, Some(0)) => write!(w, "0s"),
                    (Some(r), Some(l)) => write!(w, "{}s", (l as f64 / r).ceil() as u64),
                    _ => write!(w, "-"),
                };
            },
        )
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(what.to_owned());
        self.0 = Some((bar, base));
    }

    fn advance(&mut self, bytes: u64) {
        if let Some((b, _)) = &self.0 {
            b.inc(bytes);
        }
    }

    fn set_total(&mut self, total: u64) {
        if let Some((b, _)) = &self.0 {
            b.set_length(total);
        }
    }

    fn resumed(&mut self, bytes: u64) {
        if let Some((b, base)) = &self.0 {
            // Speed and ETA count only what this run receives.
            base.set(bytes);
            b.set_position(bytes);
        }
    }

    fn restarted(&mut self, at: u64) {
        if let Some((b, base)) = &self.0 {
            base.set(at);
            b.set_position(at);
        }
    }

    fn finish(&mut self) {
        if let Some((b, _)) = self.0.take() {
            b.finish_and_clear();
        }
    }

    fn notice(&mut self, message: &str) {
        match &self.0 {
            Some((b, _)) => b.println(message),
            None => eprintln!("{message}"),
        }
    }
}

/// Prints a report of many lines (and a final newline) in one `write`: stdout is line-buffered
/// even into a pipe, so `println!` of a report wrote once per line (gc's 2,500 removed blobs were
/// 2,500 system calls). A reader that stops early (`| head`) is not an error.
pub fn print_report(report: &impl std::fmt::Display) -> std::io::Result<()> {
    use std::io::Write;
    let text = format!("{report}\n");
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::ago;

    #[test]
    fn ago_reads_as_a_duration_with_plurals() {
        let now = 1_000_000_000;
        assert_eq!(ago(now, now), "just now");
        assert_eq!(ago(now, now + 50), "just now", "a time ahead of the clock");
        assert_eq!(ago(now, now - 60), "1 minute ago");
        assert_eq!(ago(now, now - 7200), "2 hours ago");
        assert_eq!(ago(now, now - 3 * 86_400), "3 days ago");
        assert_eq!(ago(now, now - 400 * 86_400), "1 year ago");
    }
}
