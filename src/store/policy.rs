//! Who may touch a store, and what a hostile user of a shared store cannot do (docs/design.md#shared-stores).
//!
//! A group store is shared by the members of one Unix group: every directory is group-owned,
//! group-writable and setgid (2775, so new files inherit the group), the manifest and lock files are
//! 0664, blobs 0444. All modes are set explicitly with chmod/fchmod after creation, never left to
//! the umask. A private store stays private (0755 directories, 0644 files).
//!
//! Inside a group-writable directory any member can plant a symlink or a foreign file. beaker never
//! follows one: every path inside the store is resolved from the store's root descriptor with no
//! symlink followed in any component (`crate::sys::fsx::beneath`), the top-level directories and
//! `store.toml` are checked with `lstat` when the store is opened (so a planted link is named with
//! the command that fixes it, rather than failing each call with "too many levels of symbolic
//! links"), names and hashes are validated before they become paths, and temp files are created
//! `O_EXCL|O_NOFOLLOW` (a name planted in advance makes the create fail; it is never written
//! through).
//!
//! The rules live in one table (`TABLE`): the open-time check refuses the violations its rows
//! mark as refused, and `info` reports every violation of every row, in the same words (and
//! every directory inside a snapshot, whose group a group store needs as much as its own).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::sys::error::IoError;
use crate::sys::fsx::{self, Meta, Rooted};
use crate::sys::who;

use super::{layout, Config, Layout, Sharing, StoreError};

/// Bits a directory of a group store must have: setgid and group rwx.
const GROUP_DIR_BITS: u32 = 0o2070;
/// Bits the manifest and lock files of a group store must have: group rw.
const GROUP_FILE_BITS: u32 = 0o060;

/// A file or directory that breaks the store's policy, for `beaker store info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub path: PathBuf,
    /// Owner, group and mode as found.
    pub found: String,
    pub problem: String,
    /// A command that fixes it.
    pub remedy: String,
}

/// What a path of a store must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Dir,
    File,
}

/// Where a rule applies: one path of the layout, or every entry of one of its directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The store root itself.
    Root,
    /// A path directly under the root (`layout::DIRS`, `layout::FILES`).
    Path(&'static str),
    /// Each entry of this directory.
    EntriesOf(&'static str),
}

/// One row of the policy table: what is checked, and whether opening the store refuses a
/// violation (else only `info` reports it).
#[derive(Debug, Clone, Copy)]
struct Rule {
    target: Target,
    want: Want,
    /// Group stores: the bits it must have, and the store's group as its group.
    group_bits: Option<u32>,
    /// Any store: the exact permission bits it must have.
    exact_mode: Option<u32>,
    /// Opening the store refuses a wrong type here (everything inside the store trusts it).
    refuse_wrong_type: bool,
    /// Opening a group store refuses a wrong group or mode here.
    refuse_wrong_group: bool,
}

const fn dir(name: &'static str) -> Rule {
    Rule {
        target: Target::Path(name),
        want: Want::Dir,
        group_bits: Some(GROUP_DIR_BITS),
        exact_mode: None,
        refuse_wrong_type: true,
        refuse_wrong_group: true,
    }
}

const fn file(name: &'static str, refuse_wrong_type: bool) -> Rule {
    Rule {
        target: Target::Path(name),
        want: Want::File,
        group_bits: Some(GROUP_FILE_BITS),
        exact_mode: None,
        refuse_wrong_type,
        refuse_wrong_group: false,
    }
}

/// store.toml is read on every open: a symlink there is refused like a symlinked directory.
const STORE_TOML: Rule = file("store.toml", true);

/// The store's policy, written once: [`check_on_open`] refuses the violations marked `refuse_*`,
/// [`problems`] (for `info`) reports every violation of every row, with the same words.
const TABLE: [Rule; 22] = [
    Rule {
        target: Target::Root,
        want: Want::Dir,
        group_bits: Some(GROUP_DIR_BITS),
        exact_mode: None,
        refuse_wrong_type: false, // checked by `Store::open` before the table is read
        refuse_wrong_group: false,
    },
    STORE_TOML,
    file("CACHEDIR.TAG", false),
    file("manifest.toml", false),
    dir("blobs"),
    dir("tmp"),
    dir("locks"),
    dir("quarantine"),
    dir("index"),
    dir("snapshots"),
    dir("uses"),
    dir("pins"),
    dir("names"),
    dir("referrers"),
    Rule {
        target: Target::EntriesOf("blobs"),
        want: Want::File,
        group_bits: None,
        exact_mode: Some(0o444),
        refuse_wrong_type: false,
        refuse_wrong_group: false,
    },
    Rule {
        target: Target::EntriesOf("locks"),
        want: Want::File,
        group_bits: Some(GROUP_FILE_BITS),
        exact_mode: None,
        refuse_wrong_type: false,
        refuse_wrong_group: false,
    },
    // One directory per model, holding links to blobs (their content is verify's business).
    Rule {
        target: Target::EntriesOf("snapshots"),
        want: Want::Dir,
        group_bits: Some(GROUP_DIR_BITS),
        exact_mode: None,
        refuse_wrong_type: false,
        refuse_wrong_group: false,
    },
    // Use records: every member touches them (utimensat to now needs write access), so 0664.
    Rule {
        target: Target::EntriesOf("uses"),
        want: Want::File,
        group_bits: Some(GROUP_FILE_BITS),
        exact_mode: None,
        refuse_wrong_type: false,
        refuse_wrong_group: false,
    },
    // Pins: any member may unpin (unlink needs only the directory), but they are the store's
    // files like the manifest, so 0664 in the store's group.
    Rule {
        target: Target::EntriesOf("pins"),
        want: Want::File,
        group_bits: Some(GROUP_FILE_BITS),
        exact_mode: None,
        refuse_wrong_type: false,
        refuse_wrong_group: false,
    },
    // The store manifest's records (format 3): rewritten by any member, like manifest.toml.
    Rule {
        target: Target::EntriesOf("names"),
        want: Want::File,
        group_bits: Some(GROUP_FILE_BITS),
        exact_mode: None,
        refuse_wrong_type: false,
        refuse_wrong_group: false,
    },
    // The reverse index (format 4): one directory per blob, written by every member.
    Rule {
        target: Target::EntriesOf("referrers"),
        want: Want::Dir,
        group_bits: Some(GROUP_DIR_BITS),
        exact_mode: None,
        refuse_wrong_type: false,
        refuse_wrong_group: false,
    },
    Rule {
        target: Target::EntriesOf("tmp"),
        want: Want::File,
        group_bits: None,
        exact_mode: None,
        refuse_wrong_type: false,
        refuse_wrong_group: false,
    },
];

/// Which violation a [`Problem`] is, so the caller knows whether the rule refuses it on open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broken {
    Type,
    Group,
    Mode,
}

/// The one place the rules are judged: the violation of `rule` by `path` (with `meta` from
/// `lstat`), if any, in the words both `open` and `info` use.
fn judge(
    rule: &Rule,
    path: &Path,
    meta: &Meta,
    group: Option<(u32, &str)>,
    root: &Path,
) -> Option<(Broken, Problem)> {
    let report = |problem: String, remedy: String| Problem {
        path: path.to_owned(),
        found: who::describe_owner(meta.uid(), meta.gid(), meta.mode()),
        problem,
        remedy,
    };
    let is_right_type = match rule.want {
        Want::Dir => meta.is_dir(),
        Want::File => meta.is_file(),
    };
    if !is_right_type {
        let kind = meta.kind();
        let (problem, remedy) = match (rule.target, rule.want) {
            (Target::Path(d), Want::Dir) => (
                format!("is a {kind} where the store's {d}/ directory should be"),
                format!("remove it and recreate the directory: rm {0} && mkdir {0}", path.display()),
            ),
            (Target::Path("store.toml"), Want::File) => (
                format!("is a {kind} where the store's settings file should be"),
                format!(
                    "replace it with a regular file: cp --remove-destination \"$(readlink -f {0})\" {0}",
                    path.display()
                ),
            ),
            (Target::Path(f), Want::File) => (
                format!("is a {kind} where the store's {f} file should be"),
                format!("rm {}", path.display()),
            ),
            (Target::EntriesOf(d), Want::Dir) => (
                format!("is a {kind} inside {d}/, where only directories belong"),
                format!("rm {}", path.display()),
            ),
            (Target::EntriesOf(d), Want::File) => (
                format!("is a {kind} inside {d}/, where only regular files belong"),
                format!("rm {}", path.display()),
            ),
            (Target::Root, _) => (
                format!("is a {kind}, not a directory"),
                "point --store at a directory".into(),
            ),
        };
        return Some((Broken::Type, report(problem, remedy)));
    }
    if let Some(want) = rule.exact_mode {
        if meta.mode() & 0o7777 != want {
            return Some((
                Broken::Mode,
                report(
                    format!("must be mode {want:04o} (published blobs are read-only)"),
                    "beaker store verify (checks the content, quarantines it if damaged)".into(),
                ),
            ));
        }
    }
    if let (Some(bits), Some((gid, name))) = (rule.group_bits, group) {
        if meta.gid() != gid || meta.mode() & bits != bits {
            let (problem, remedy) = match (rule.target, rule.want) {
                (Target::EntriesOf("locks"), _) => (
                    format!("should belong to the store's group {name} and be group-writable (0664)"),
                    "beaker store prune-locks (removes unheld lock files)".into(),
                ),
                (_, Want::Dir) => (
                    format!("should belong to the store's group {name} with mode 2775 (group-writable, setgid)"),
                    fix_group_command(root, name),
                ),
                (_, Want::File) => (
                    format!("should belong to the store's group {name} and be group-writable (0664)"),
                    fix_file(path, name),
                ),
            };
            return Some((Broken::Group, report(problem, remedy)));
        }
    }
    None
}

/// Every violation of the table in the store, with whether opening it is refused for it.
/// `entries`: also look inside `blobs/`, `locks/` and `tmp/` (`info` does; `open` does not).
fn violations(
    layout: &Layout,
    config: &Config,
    entries: bool,
) -> Result<Vec<(bool, Problem)>, IoError> {
    let root = layout.root();
    let top = layout.top();
    let root_meta = stat_top(&top)?;
    let gid = root_meta.gid();
    // Only a group store needs the group's name (a database lookup, possibly over LDAP).
    let name = match config.mode {
        Sharing::Group => group_label(gid),
        Sharing::Private => String::new(),
    };
    let group = (config.mode == Sharing::Group).then_some((gid, name.as_str()));
    let mut out = Vec::new();
    let mut check = |rule: &Rule, path: &Path, meta: &Meta| {
        if let Some((broken, problem)) = judge(rule, path, meta, group, root) {
            let refused = match broken {
                Broken::Type => rule.refuse_wrong_type,
                Broken::Group => rule.refuse_wrong_group,
                Broken::Mode => false,
            };
            out.push((refused, problem));
        }
    };
    for rule in &TABLE {
        match rule.target {
            Target::Root => check(rule, root, &root_meta),
            Target::Path(rel) => {
                let p = top.join(rel);
                if let Ok(Some(meta)) = fsx::stat(&p) {
                    check(rule, &p.path(), &meta);
                }
            }
            Target::EntriesOf(rel) if entries => {
                let dir = top.join(rel);
                let Ok(Some(opened)) = fsx::Dir::open(&dir) else {
                    continue; // not a directory: reported by the directory's own row
                };
                for name in opened.names()? {
                    let Ok(Some(meta)) = opened.stat(&name) else {
                        continue;
                    };
                    let p = dir.join(&name);
                    // The index's own mark of completeness (see `super::referrers`).
                    if rel == "referrers" && name == ".complete" && meta.is_file() {
                        continue;
                    }
                    // tmp/ also holds snapshots being built (`snap-….d`) or going away
                    // (`damaged-….d`) and index lists being made (`refs-….d`): directories
                    // that beaker makes there.
                    let staging = rel == "tmp"
                        && meta.is_dir()
                        && p.rel().extension().is_some_and(|e| e == "d");
                    if !staging {
                        check(rule, &p.path(), &meta);
                    }
                    // The directories inside a snapshot need the store's group as much as the
                    // snapshot itself: without it, other members cannot remove the model.
                    if rel == "snapshots" && meta.is_dir() {
                        each_subdir(&p, 0, &mut |sub, meta| check(rule, &sub.path(), meta))?;
                    }
                }
            }
            Target::EntriesOf(_) => {}
        }
    }
    Ok(out)
}

/// What `fstat` says of the store's root directory.
fn stat_top(top: &Rooted) -> Result<Meta, IoError> {
    fsx::stat(top)?.ok_or_else(|| IoError::new("inspect", top, std::io::ErrorKind::NotFound.into()))
}

/// How deep [`each_subdir`] looks (a model's file paths are never deeper).
const MAX_DEPTH: u32 = 32;

/// Calls `each` with every directory under `dir` (not `dir` itself) and its `lstat`, never
/// following a symlink.
fn each_subdir(
    dir: &Rooted,
    depth: u32,
    each: &mut dyn FnMut(&Rooted, &Meta),
) -> Result<(), IoError> {
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    let Some(opened) = fsx::Dir::open(dir)? else {
        return Ok(());
    };
    for name in opened.names()? {
        if let Some(meta) = opened.stat(&name)?.filter(|m| m.is_dir()) {
            let sub = dir.join(&name);
            each(&sub, &meta);
            each_subdir(&sub, depth + 1, each)?;
        }
    }
    Ok(())
}

/// Checks run every time a store is opened: refuse a store that is unsafe to use (the rows of the
/// policy table marked to refuse), naming the cause and the fix. The only change made is
/// recreating a store directory that was deleted by hand (best effort).
pub(crate) fn check_on_open(layout: &Layout, config: &Config) -> Result<(), StoreError> {
    let root = layout.root();
    let top = layout.top();
    check_parent(root)?;
    for d in layout::DIRS {
        let dir = top.join(d);
        // Deleted by hand: recreate it (best effort; a reader without write access can still
        // use the rest of the store, and a writer gets a clear error where it needs the dir).
        if fsx::stat(&dir)?.is_none() {
            let _ = fsx::ensure_dir(&dir, config.dir_mode());
        }
    }
    if config.mode == Sharing::Group {
        let root_meta = stat_top(&top)?;
        let gid = root_meta.gid();
        let group = group_label(gid);
        if !who::is_root() && !who::in_group(gid) {
            return Err(StoreError::Unsafe {
                path: root.to_owned(),
                found: who::describe_owner(root_meta.uid(), root_meta.gid(), root_meta.mode()),
                problem: format!(
                    "is a group store of group {group}, and {} is not in that group",
                    who::user()
                ),
                remedy: format!(
                    "ask an administrator: usermod -aG {group} {} (then log in again)",
                    who::user()
                ),
            });
        }
    }
    refuse_first(violations(layout, config, false)?)
}

/// `store.toml` must be a regular file before it is read (a symlink there is refused, exit 2, like
/// a symlinked `blobs/`): the store.toml row of the table, checked before the config is known.
pub(crate) fn check_config_file(layout: &Layout) -> Result<(), StoreError> {
    let path = layout.config();
    let Ok(Some(meta)) = fsx::stat(&path) else {
        return Ok(()); // reading it reports what is wrong
    };
    match judge(&STORE_TOML, &path.path(), &meta, None, layout.root()) {
        Some((Broken::Type, p)) => refuse_first(vec![(true, p)]),
        _ => Ok(()),
    }
}

fn refuse_first(found: Vec<(bool, Problem)>) -> Result<(), StoreError> {
    match found.into_iter().find(|(refused, _)| *refused) {
        Some((_, p)) => Err(StoreError::Unsafe {
            path: p.path,
            found: p.found,
            problem: p.problem,
            remedy: p.remedy,
        }),
        None => Ok(()),
    }
}

/// A store inside a world-writable directory without the sticky bit (like a misconfigured /tmp)
/// can be renamed away or replaced by anyone.
pub(crate) fn check_parent(root: &Path) -> Result<(), StoreError> {
    let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    let Ok(Some(meta)) = fsx::user::metadata(parent) else {
        return Ok(());
    };
    use crate::sys::fsx::user::Owner;
    let world_writable = meta.mode() & 0o002 != 0;
    let sticky = meta.mode() & 0o1000 != 0;
    if world_writable && !sticky {
        return Err(StoreError::Unsafe {
            path: parent.to_owned(),
            found: who::describe_owner(meta.uid(), meta.gid(), meta.mode()),
            problem: "is writable by everyone and has no sticky bit, so anyone could replace the store inside it".into(),
            remedy: format!("chmod +t {} (or put the store somewhere else)", parent.display()),
        });
    }
    Ok(())
}

/// Everything in the store that breaks its policy (wrong type, group or mode), for `info`: every
/// row of the same table `check_on_open` refuses from, so the two cannot disagree.
pub fn problems(layout: &Layout, config: &Config) -> Result<Vec<Problem>, IoError> {
    Ok(violations(layout, config, true)?
        .into_iter()
        .map(|(_, p)| p)
        .collect())
}

fn group_label(gid: u32) -> String {
    who::group_name(gid).unwrap_or_else(|| gid.to_string())
}

fn fix_file(path: &Path, group: &str) -> String {
    format!("chgrp {group} {0} && chmod 0664 {0}", path.display())
}

fn fix_group_command(root: &Path, group: &str) -> String {
    format!(
        "chgrp -R {group} {0} && find {0} -type d -exec chmod 2775 {{}} +",
        root.display()
    )
}

#[cfg(all(test, unix))]
mod tests {
    // Tests break stores on purpose (modes, symlinks) with raw std::fs.
    #![allow(clippy::disallowed_methods)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::store::{InitOptions, Store};

    fn group_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let opts = InitOptions {
            mode: Sharing::Group,
            ..InitOptions::default()
        };
        let store = Store::init(&dir.path().join("s"), opts).unwrap();
        (dir, store)
    }

    fn refused(e: StoreError) -> Problem {
        match e {
            StoreError::Unsafe {
                path,
                found,
                problem,
                remedy,
            } => Problem {
                path,
                found,
                problem,
                remedy,
            },
            other => panic!("expected Unsafe, got {other:?}"),
        }
    }

    #[test]
    fn a_violation_refused_on_open_is_reported_by_info_in_the_same_words() {
        let (_dir, store) = group_store();
        assert_eq!(problems(store.layout(), store.config()).unwrap(), []);
        let blobs = store.layout().blobs();
        std::fs::set_permissions(blobs.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let on_open = refused(Store::open(store.root()).unwrap_err());
        assert_eq!(on_open.path, blobs.path());
        assert!(on_open.problem.contains("with mode 2775"), "{on_open:?}");
        assert_eq!(problems(store.layout(), store.config()).unwrap(), [on_open]);
    }

    #[test]
    fn a_symlinked_store_toml_is_refused_on_open_and_reported_by_info() {
        let (dir, store) = group_store();
        let config = store.layout().config();
        let moved = dir.path().join("elsewhere.toml");
        std::fs::rename(config.path(), &moved).unwrap();
        std::os::unix::fs::symlink(&moved, config.path()).unwrap();
        let on_open = refused(Store::open(store.root()).unwrap_err());
        assert_eq!(on_open.path, config.path());
        assert!(on_open.problem.starts_with("is a symlink"), "{on_open:?}");
        assert!(problems(store.layout(), store.config())
            .unwrap()
            .contains(&on_open));
    }

    #[test]
    fn a_violation_only_info_reports_does_not_stop_open() {
        let (_dir, store) = group_store();
        let manifest = store.layout().manifest();
        std::fs::write(manifest.path(), "version = 1\n").unwrap();
        std::fs::set_permissions(manifest.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        Store::open(store.root()).unwrap();
        let found = problems(store.layout(), store.config()).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, manifest.path());
        assert!(
            found[0].problem.contains("group-writable (0664)"),
            "{found:?}"
        );
        assert!(found[0].remedy.contains("chmod 0664"), "{found:?}");
    }
}
