//! R3, the HTTP fault matrix: one pull against each lie the server can tell (a cut at several
//! offsets, a flipped byte, a stall, 500/503/429 with `Retry-After`, 404, 403, `Range` ignored, a
//! 206 at the wrong offset, a body longer than the size, a slow drip, a refused connection, a
//! redirect loop, gzip), then a clean pull. Each row records the exit code, beaker's message, the
//! requests made, and what the clean pull did (resumed with `Range`, or started over); a row whose
//! exit code differs from what docs/cli.md and docs/pull.md promise, a clean pull that fails, or a broken
//! invariant is a violation.

use std::time::{Duration, Instant};

use anyhow::Result;
use testkit::lab::{bytes, catalogue, run_within, ModelFile, LIMIT};
use testkit::server::{Fault, Server};

use super::check::check_store;
use super::{Ctx, Outcome};

const LEN: usize = 300_000;

/// One row: the faults of the first pull's requests, its environment, and the promised exit.
struct Row {
    what: &'static str,
    faults: Vec<Fault>,
    env: Vec<(&'static str, &'static str)>,
    expect: i32,
    /// Which URLs the catalogue lists.
    url: Url,
    /// A pull cut by the first fault (no retries) runs first, so the row's pull has a partial.
    cut_first: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Url {
    Served,
    Refused,
    LoopsTo,
    /// A 404 mirror first, then the served URL.
    MissingMirrorFirst,
}

fn rows() -> Vec<Row> {
    let no_retry = vec![("BEAKER_RETRIES", "0")];
    let row = |what, faults, env: &Vec<(&'static str, &'static str)>, expect| Row {
        what,
        faults,
        env: env.clone(),
        expect,
        url: Url::Served,
        cut_first: false,
    };
    vec![
        row("cut at 1 byte", vec![Fault::CutAfter(1)], &no_retry, 1),
        row("cut at 10%", vec![Fault::CutAfter(LEN / 10)], &no_retry, 1),
        row("cut at 50%", vec![Fault::CutAfter(LEN / 2)], &no_retry, 1),
        row(
            "cut 1 byte short",
            vec![Fault::CutAfter(LEN - 1)],
            &no_retry,
            1,
        ),
        row(
            "two cuts, retried within the pull",
            vec![Fault::CutAfter(LEN / 3), Fault::CutAfter(2 * LEN / 3)],
            &vec![],
            0,
        ),
        row("flipped byte", vec![Fault::Flip(LEN / 2); 4], &vec![], 1),
        row(
            "stall at 50% (stall timeout 2 s)",
            vec![Fault::StallAt(LEN / 2, Duration::from_secs(4))],
            &no_retry,
            1,
        ),
        row("500 once", vec![Fault::Status(500, None)], &vec![], 0),
        row(
            "503 on every try",
            vec![Fault::Status(503, None); 4],
            &vec![],
            1,
        ),
        row(
            "429 with Retry-After: 1",
            vec![Fault::Status(429, Some(1))],
            &vec![],
            0,
        ),
        row("404", vec![Fault::Status(404, None)], &vec![], 1),
        row("403", vec![Fault::Status(403, None)], &vec![], 1),
        Row {
            cut_first: true,
            ..row(
                "Range ignored after a cut",
                vec![Fault::CutAfter(LEN / 2), Fault::IgnoreRange],
                &vec![],
                0,
            )
        },
        Row {
            cut_first: true,
            // docs: "a 206 elsewhere … starts the temp blob over"; the hash decides (I1).
            ..row(
                "206 at the wrong offset after a cut",
                vec![Fault::CutAfter(LEN / 2), Fault::WrongOffset(1000)],
                &vec![],
                0,
            )
        },
        row(
            "body longer than size",
            vec![Fault::Oversize(100); 4],
            &vec![],
            1,
        ),
        row(
            "slow drip (16 KiB / 20 ms)",
            vec![Fault::Drip(16 << 10, Duration::from_millis(20))],
            &vec![],
            0,
        ),
        row("gzip Content-Encoding", vec![Fault::Gzip; 4], &vec![], 1),
        Row {
            url: Url::Refused,
            ..row("refused connection", vec![], &vec![], 1)
        },
        Row {
            url: Url::LoopsTo,
            ..row("redirect loop", vec![], &vec![], 1)
        },
        Row {
            url: Url::MissingMirrorFirst,
            ..row("404 mirror, then a good one", vec![], &vec![], 0)
        },
    ]
}

pub fn run(ctx: &Ctx) -> Result<Outcome> {
    let mut out = Outcome::new("R3 fault matrix");
    let mut table = String::from("| fault | exit | promised | message | requests | seconds | clean pull after | violations |\n|---|---|---|---|---|---|---|---|\n");
    let server = Server::start()?;
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    for (i, row) in rows().into_iter().enumerate() {
        out.runs += 1;
        let mut lab = super::new_lab(ctx, "faults")?;
        lab.store = lab.path("store");
        let body = bytes(LEN, 100 + i as u64);
        let route = format!("/m{i}");
        server.route(&route, &body, &row.faults, Fault::None);
        server.route(
            &format!("/loop{i}"),
            b"",
            &[],
            Fault::Redirect(server.url(&format!("/loop{i}"))),
        );
        let urls = match row.url {
            Url::Served => vec![server.url(&route)],
            Url::Refused => vec![format!("http://127.0.0.1:{refused}/m")],
            Url::LoopsTo => vec![server.url(&format!("/loop{i}"))],
            Url::MissingMirrorFirst => vec![server.url("/nowhere"), server.url(&route)],
        };
        let cat = catalogue(
            &lab,
            "models.toml",
            &[(
                "m",
                vec![ModelFile {
                    path: "m.bin",
                    bytes: &body,
                    urls,
                }],
            )],
        )?;
        let cat = cat.to_string_lossy().into_owned();
        let pull = |env: &[(&str, &str)]| {
            let mut c = lab.cmd();
            c.args(["--manifest", &cat, "store", "pull", "m"])
                .envs(env.iter().copied());
            run_within(&mut c, LIMIT)
        };
        server.take_seen();
        let t = Instant::now();
        // The "Range ignored" and "wrong offset" rows need a partial first: one cut pull.
        let first = if row.cut_first {
            let cut = pull(&[("BEAKER_RETRIES", "0")])?;
            if cut.code != 1 {
                out.violations.push(format!(
                    "{}: the preparing cut pull gave {}",
                    row.what,
                    cut.describe()
                ));
            }
            server.take_seen();
            pull(&row.env)?
        } else {
            pull(&row.env)?
        };
        let secs = t.elapsed().as_secs_f64();
        let requests = server.take_seen().len();
        let mut problems = Vec::new();
        if first.code != row.expect {
            problems.push(format!(
                "exit {} where {} is promised ({})",
                first.code_text(),
                row.expect,
                first.message()
            ));
        }
        for v in check_store(&lab.store, &ctx.oracle)? {
            problems.push(v);
        }
        // Then a clean pull: the fault is gone (a served route has no faults left by now).
        server.faults(&route, &[]);
        if row.url != Url::Served {
            // The same catalogue file, now listing the served URL.
            catalogue(
                &lab,
                "models.toml",
                &[(
                    "m",
                    vec![ModelFile {
                        path: "m.bin",
                        bytes: &body,
                        urls: vec![server.url(&route)],
                    }],
                )],
            )?;
        }
        let clean = pull(&[])?;
        let seen = server.take_seen();
        let after = if !clean.success() {
            problems.push(format!("the clean pull failed: {}", clean.describe()));
            "failed".to_owned()
        } else if first.success() {
            "found it present".to_owned()
        } else {
            match seen.first().and_then(|s| s.range.clone()) {
                Some(r) => format!("resumed ({r})"),
                None => "started over".to_owned(),
            }
        };
        for v in check_store(&lab.store, &ctx.oracle)? {
            problems.push(format!("after the clean pull: {v}"));
        }
        let mut msg = if first.success() {
            "-".to_owned()
        } else {
            first.message()
        };
        if msg.len() > 140 {
            msg = format!(
                "{}…",
                &msg[..msg.char_indices().nth(140).map_or(msg.len(), |(i, _)| i)]
            );
        }
        table.push_str(&format!(
            "| {} | {} | {} | {} | {requests} | {secs:.1} | {after} | {} |\n",
            row.what,
            first.code_text(),
            row.expect,
            msg.replace('|', "\\|"),
            problems.len()
        ));
        for p in problems {
            out.violations.push(format!("{}: {p}", row.what));
        }
    }
    out.table = Some(table);
    Ok(out)
}
