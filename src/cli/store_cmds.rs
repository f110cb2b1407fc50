//! `beaker store init | add | path | export | ls | dir | rm | pin | unpin | info`: each a few
//! lines over the library (`cli::store` dispatches every `store` command to its module).

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use beaker::store::{Info, InitOptions, Listing, Locking, Sharing};
use beaker::{ModelName, Store};

use super::args::{LockingArg, SharedMode};
use super::output::{size, Output};

/// `dir`: the store's directory, absolute.
pub fn dir(root: &Path, out: Output) -> Result<()> {
    if out.json {
        return out.json(&serde_json::json!({ "path": root }));
    }
    println!("{}", root.display());
    Ok(())
}

pub fn init(
    root: &Path,
    shared: Option<SharedMode>,
    group: Option<String>,
    locking: LockingArg,
    out: Output,
) -> Result<()> {
    let opts = InitOptions {
        mode: match shared {
            Some(SharedMode::Group) => Sharing::Group,
            None => Sharing::Private,
        },
        locking: match locking {
            LockingArg::Flock => Locking::Flock,
            LockingArg::None => Locking::None,
        },
        group,
    };
    let store = Store::init(root, opts)?;
    if out.json {
        return out.json(&serde_json::json!({
            "path": store.root(),
            "mode": format!("{:?}", store.config().mode).to_lowercase(),
            "locking": format!("{:?}", store.config().locking).to_lowercase(),
        }));
    }
    out.note(format!(
        "store ready: {}",
        store.config().describe(store.root())
    ));
    println!("{}", store.root().display());
    Ok(())
}

#[derive(Serialize)]
struct AddJson<'a> {
    name: &'a ModelName,
    blake3: String,
    size: u64,
    path: &'a Path,
    dir: &'a Path,
    files: usize,
    new_blob: bool,
    /// The BLAKE3 (main file) the name pointed at before, when it pointed at other content.
    replaced: Option<String>,
}

pub fn add(root: &Path, file: &Path, name: &str, check: bool, out: Output) -> Result<()> {
    let name = ModelName::new(name)?;
    let store = Store::open_or_create(root)?;
    let published = beaker::add::add(&store, file, &name, check, out.progress().as_mut())?;
    // store.toml's max_size: evict down to it if gc.lock is free, sparing this model. The add is
    // complete; eviction's errors are not its errors (`beaker store gc` reports them).
    let _ = beaker::evict::after_publish(&store, &name);
    if out.json {
        return out.json(&AddJson {
            name: &name,
            blake3: published.blake3.to_hex(),
            size: published.size,
            path: &published.model.main,
            dir: &published.model.dir,
            files: published.model.files.len(),
            new_blob: published.created,
            replaced: published
                .replaced
                .as_ref()
                .map(|r| r.model.main().blob.blake3.to_hex()),
        });
    }
    let how = if published.created {
        "new blob"
    } else {
        "same content already stored"
    };
    out.note(format!(
        "added {name}: {} blake3 {} ({how})",
        size(published.size),
        published.blake3.short()
    ));
    if let Some(before) = &published.replaced {
        out.note(format!(
            "{name} pointed at other content before (blake3 {}); `beaker store gc` frees it if unused",
            before.model.main().blob.blake3.short()
        ));
    }
    println!("{}", published.model.main.display());
    Ok(())
}

pub fn path(root: &Path, name: &str, dir: bool, blob: bool, out: Output) -> Result<()> {
    let name = ModelName::new(name)?;
    let store = match Store::open(root) {
        Ok(store) => store,
        // No store holds nothing: the name is absent (exit 3), as in a store without it.
        Err(e @ beaker::StoreError::NoStore { .. }) => {
            return Err(anyhow::Error::new(beaker::StoreError::NotInStore {
                name,
                close: Vec::new(),
            })
            .context(e.to_string()))
        }
        Err(e) => return Err(e.into()),
    };
    let located = beaker::snapshot::locate(&store, &name)?;
    let path = if blob {
        located.blob.clone()
    } else if dir {
        located.dir.clone().unwrap_or_else(|| located.blob.clone())
    } else {
        located.main.clone()
    };
    if out.json {
        return out.json(&serde_json::json!({
            "name": name,
            "path": path,
            "dir": located.dir,
            "blob": located.blob,
        }));
    }
    println!("{}", path.display());
    Ok(())
}

pub fn export(root: &Path, name: &str, to: &Path, link: bool, out: Output) -> Result<()> {
    let name = ModelName::new(name)?;
    let store = Store::open(root)?;
    // Copies unless hard links are asked for.
    let how = if link {
        beaker::export::How::Link
    } else {
        beaker::export::How::Copy
    };
    let exported = beaker::export::export(&store, &name, to, how)?;
    if out.json {
        return out.json(&exported);
    }
    for f in &exported.files {
        out.note(format!("{} ({})", f.path.display(), f.how));
    }
    println!("{}", to.display());
    Ok(())
}

pub fn ls(root: &Path, args: &super::args::LsArgs, out: Output) -> Result<()> {
    let long = args.long;
    let mut rows = match Store::open(root) {
        Ok(store) => store.list()?,
        // Listing a store that does not exist yet is not an error: it holds nothing.
        Err(beaker::StoreError::NoStore { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    if !args.names.is_empty() {
        rows.retain(|r| {
            args.names
                .iter()
                .any(|p| matches_pattern(p, r.name.as_str()))
        });
    }
    match args.sort {
        super::args::SortBy::Name => {} // the store lists by name
        super::args::SortBy::Size => rows.sort_by_key(|r| std::cmp::Reverse(r.size)),
        // RFC 3339 UTC strings order as times; never used last.
        super::args::SortBy::Used => {
            rows.sort_by(|a, b| b.last_used.cmp(&a.last_used));
        }
    }
    if out.json {
        return out.json(&rows);
    }
    if out.quiet {
        // Results only: the names, one a line, for scripts (`for m in $(beaker -q store ls)`).
        let names: String = rows.iter().map(|r| format!("{}\n", r.name)).collect();
        return match std::io::Write::write_all(&mut std::io::stdout().lock(), names.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => Ok(other?),
        };
    }
    if rows.is_empty() {
        match args.names.is_empty() {
            true => out.note(format!("the store at {} holds no models", root.display())),
            false => out.note(format!(
                "no name in the store at {} matches {}",
                root.display(),
                args.names.join(" ")
            )),
        }
        return Ok(());
    }
    let total: u64 = rows.iter().filter_map(|r| r.size).sum();
    let width = rows
        .iter()
        .map(|r| r.name.as_str().len())
        .max()
        .unwrap_or(4)
        .max(4);
    match write_table(&ls_parts(&rows, width, long), width, long) {
        // A reader that stops early (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        other => other?,
    }
    out.note(format!(
        "{} model{}, {} in all (a file shared by several models counted in each)",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        size(total)
    ));
    Ok(())
}

/// The lines of `ls`'s table, formatted on every core (a sixth of `ls` at 20,000 names on one),
/// in parts to write in order.
fn ls_parts(rows: &[Listing], width: usize, long: bool) -> Vec<Vec<u8>> {
    let now = beaker::who::now_secs();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let per = rows.len().div_ceil(threads).max(2048);
    if rows.len() <= per {
        return vec![ls_lines(rows, width, long, now)];
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = rows
            .chunks(per)
            .map(|part| s.spawn(move || ls_lines(part, width, long, now)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Writes `ls`'s header and `parts` through one buffer (stdout is line-buffered even into a
/// pipe: one write per name was a fifth of `ls`).
fn write_table(parts: &[Vec<u8>], width: usize, long: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::io::stdout().lock());
    write!(
        w,
        "{:width$}  {:12}  {:>10}  {:7}  {:14}  {:6}",
        "NAME", "BLAKE3", "SIZE", "PRESENT", "LAST USED", "PINNED"
    )?;
    if long {
        write!(
            w,
            "  {:6}  {:>5}  {:14}  PATH  DESCRIPTION",
            "FORMAT", "FILES", "ADDED"
        )?;
    }
    writeln!(w)?;
    for part in parts {
        w.write_all(part)?;
    }
    w.flush()
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters (none included).
fn matches_pattern(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// The lines of `ls`'s table for `rows` (names padded to `width`; `long` adds format, files,
/// when added, the main file's path and the description; times are shown as how long before
/// `now`).
fn ls_lines(rows: &[Listing], width: usize, long: bool, now: u64) -> Vec<u8> {
    use std::io::Write;
    let ago = |t: &Option<String>| {
        t.as_deref()
            .and_then(beaker::who::parse_rfc3339)
            .map_or_else(|| "-".into(), |t| super::output::ago(now, t))
    };
    let mut w = Vec::with_capacity(rows.len() * 80);
    for r in rows {
        // Writing into a Vec cannot fail.
        let _ = write!(
            w,
            "{:width$}  {:12}  {:>10}  {:7}  {:14}  {:6}",
            r.name.as_str(),
            r.blake3.map(|b| b.short()).unwrap_or_else(|| "-".into()),
            r.size.map(size).unwrap_or_else(|| "-".into()),
            if r.present { "yes" } else { "no" },
            ago(&r.last_used),
            if r.pinned { "yes" } else { "no" }
        );
        if long {
            let _ = write!(
                w,
                "  {:6}  {:>5}  {:14}  {}  {}",
                r.format.as_deref().unwrap_or("-"),
                r.files,
                ago(&r.added),
                r.path
                    .as_ref()
                    .map_or_else(|| "-".into(), |p| p.display().to_string()),
                r.description.as_deref().unwrap_or("")
            );
        }
        w.push(b'\n');
    }
    w
}

/// `pin` (all or nothing; exit 3 naming the names the store does not hold) and `unpin`.
pub fn pin(root: &Path, names: &[String], pin: bool, out: Output) -> Result<()> {
    let names = names
        .iter()
        .map(|n| ModelName::new(n))
        .collect::<Result<Vec<_>, _>>()?;
    let store = match Store::open(root) {
        Ok(store) => store,
        Err(e @ beaker::StoreError::NoStore { .. }) if pin => {
            let names = names.iter().map(ToString::to_string).collect();
            return Err(
                anyhow::Error::new(beaker::StoreError::PinAbsent { names }).context(e.to_string())
            );
        }
        Err(e) => return Err(e.into()),
    };
    if pin {
        beaker::uses::pin(&store, &names)?;
        if out.json {
            return out.json(&serde_json::json!({ "pinned": names }));
        }
        for n in &names {
            println!("pinned {n}");
        }
        return Ok(());
    }
    let was = beaker::uses::unpin(&store, &names)?;
    if out.json {
        return out.json(&serde_json::json!({ "unpinned": was }));
    }
    for n in &names {
        if was.contains(n) {
            println!("unpinned {n}");
        } else {
            out.note(format!("{n} was not pinned"));
        }
    }
    Ok(())
}

pub fn rm(root: &Path, names: &[String], dry_run: bool, yes: bool, out: Output) -> Result<()> {
    let names = names
        .iter()
        .map(|n| ModelName::new(n))
        .collect::<Result<Vec<_>, _>>()?;
    let store = Store::open(root)?;
    if !dry_run && !yes {
        confirm_others(&store, &names)?;
    }
    let removed = if dry_run {
        store.plan_remove(&names)?
    } else {
        store.remove(&names)?
    };
    let freed: u64 = removed.freed.iter().map(|(_, s)| s).sum();
    if out.json {
        return out.json(&serde_json::json!({
            "dry_run": dry_run,
            "removed": removed.names.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "removed_blobs": removed.freed.iter().map(|(b, _)| b.to_hex()).collect::<Vec<_>>(),
            "freed_bytes": freed,
        }));
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    for (n, _) in &removed.names {
        println!("{verb} {n}");
    }
    let blobs = removed.freed.len();
    out.note(format!(
        "{} {} ({blobs} blob{})",
        if dry_run { "would free" } else { "freed" },
        size(freed),
        if blobs == 1 { "" } else { "s" }
    ));
    Ok(())
}

/// In a shared store, a name another user pulled or added (its record is theirs) is removed only
/// when this user says so: asked at a terminal, refused elsewhere (exit 2) unless `-y`.
fn confirm_others(store: &Store, names: &[ModelName]) -> Result<()> {
    let me = beaker::who::euid();
    let others: Vec<String> = names
        .iter()
        .filter_map(|n| {
            let uid = beaker::fsx::stat(&store.layout().name_record(n))
                .ok()
                .flatten()?
                .uid();
            (uid != me).then(|| {
                let who = beaker::who::user_name(uid).unwrap_or_else(|| format!("uid {uid}"));
                format!("{n} (by {who})")
            })
        })
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    let list = others.join(", ");
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("remove what other users pulled: {list}? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Ok(());
        }
        return Err(super::error::BadUsage(format!("nothing was removed ({list} kept)")).into());
    }
    Err(super::error::BadUsage(format!(
        "{list}: pulled or added by another user; nothing was removed (pass -y to remove them anyway)"
    ))
    .into())
}

pub fn info(root: &Path, out: Output) -> Result<()> {
    let store = Store::open(root)?;
    let i = store.info()?;
    if out.json {
        return out.json(&i);
    }
    for (label, value) in info_rows(&i) {
        println!("{label:<16}{value}");
    }
    for p in &i.problems {
        println!(
            "problem         {} {} ({}); fix: {}",
            p.path.display(),
            p.problem,
            p.found,
            p.remedy
        );
    }
    Ok(())
}

/// `info`'s `label value` lines, problems aside.
fn info_rows(i: &Info) -> Vec<(&'static str, String)> {
    let c = |c: beaker::store::Count| format!("{:>10} in {} files", size(c.bytes), c.files);
    let mut rows = vec![
        ("store", i.path.display().to_string()),
        (
            "format",
            format!("{} ({}, locking {})", i.format, i.mode, i.locking),
        ),
        ("names", i.names.to_string()),
        ("blobs", c(i.blobs)),
        ("  referenced", c(i.referenced)),
        (
            "  unreferenced",
            format!("{}  (`beaker store gc` frees)", c(i.unreferenced)),
        ),
        ("temp/partial", c(i.temp)),
        ("quarantine", c(i.quarantine)),
        ("budget", budget(i)),
        (
            "in use",
            format!(
                "names used within {} are never evicted; {} pinned",
                beaker::store::duration_text(std::time::Duration::from_secs(i.min_age_secs)),
                i.pinned
            ),
        ),
        ("filesystem", filesystem(i.filesystem.as_ref())),
        ("lock files", i.lock_files.to_string()),
    ];
    for l in &i.locks {
        let state = match (&l.holder, l.held) {
            (Some(h), true) => format!("held (last holder: {h})"),
            (None, true) => "held".to_string(),
            _ => "free".to_string(),
        };
        rows.push(("", format!("  {}  {state}", l.name)));
    }
    if !i.missing.is_empty() {
        let names: Vec<String> = i.missing.iter().map(ToString::to_string).collect();
        rows.push((
            "missing",
            format!("{} (blob absent; pull or add again)", names.join(", ")),
        ));
    }
    rows
}

/// `info`'s filesystem line: what the probe found, and what it means where it matters.
pub fn filesystem(found: Option<&beaker::store::probe::Capabilities>) -> String {
    let Some(c) = found else {
        return "not probed (the store's tmp/ is not writable by this user)".into();
    };
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut line = format!(
        "flock {} (across link names {}), rename-noreplace {}, hard links {}, stable inodes {}, \
         accurate nlink {}, setgid inherited {}, reflink {}",
        yes(c.flock),
        yes(c.flock_across_names),
        yes(c.rename_noreplace),
        yes(c.hard_links),
        yes(c.stable_inodes),
        yes(c.accurate_nlink),
        yes(c.setgid_inherited),
        yes(c.reflink),
    );
    if !c.flock {
        line.push_str(&format!(
            "\n                locks do not exclude here: downloads are shared through lease files in \
             locks/ instead (a holder silent for {} s, or gone from this host, is replaced)",
            beaker::sys::lock::lease::silence().as_secs_f64()
        ));
    }
    if let Some(why) = c.cannot_publish() {
        line.push_str(&format!(
            "\n                cannot publish: the filesystem {why}"
        ));
    }
    line
}

/// `info`'s budget line: how full the store is against `max_size`, if it has one.
fn budget(i: &Info) -> String {
    match (i.max_size, i.used_percent) {
        (Some(max), Some(pct)) => format!(
            "{} of {} ({pct:.0}% full; max_size in store.toml)",
            size(i.blobs.bytes),
            size(max)
        ),
        _ => "none (set max_size in store.toml, or run `beaker store gc --max-size`)".into(),
    }
}
