//! Who may touch a store, and what a hostile user of a shared store cannot do (DESIGN §8).
//!
//! A group store is shared by the members of one Unix group: every directory is group-owned,
//! group-writable and setgid (2775, so new files inherit the group), the manifest and lock files are
//! 0664, blobs 0444. All modes are set explicitly with chmod/fchmod after creation, never left to
//! the umask. A private store stays private (0755 directories, 0644 files).
//!
//! Inside a group-writable directory any member can plant a symlink or a foreign file. beaker never
//! follows one: every open inside the store uses `O_NOFOLLOW` (see `fsx`), the top-level directories
//! are checked with `lstat` when the store is opened, names and hashes are validated before they
//! become paths, and temp files are created `O_EXCL` under unpredictable names.
//!
//! **Limit**: the directories are checked when the store is opened. A member of the group who swaps
//! `blobs/` for a symlink *between* that check and a later write could redirect the write; closing
//! that window needs `openat`-relative I/O for every path, which beaker does not do yet. Members of
//! the store's group are trusted not to attack each other in that way; non-members cannot.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{IoContext, IoError};
use crate::who;

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

/// Checks run every time a store is opened: refuse a store that is unsafe to use, naming the
/// cause and the fix. Nothing is changed.
pub(crate) fn check_on_open(layout: &Layout, config: &Config) -> Result<(), StoreError> {
    let root = layout.root();
    check_parent(root)?;
    for d in layout::DIRS {
        let dir = root.join(d);
        let meta = match std::fs::symlink_metadata(&dir) {
            Ok(m) => m,
            // Deleted by hand: recreate it (best effort; a reader without write access can still
            // use the rest of the store, and a writer gets a clear error where it needs the dir).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = crate::fsx::ensure_dir(&dir, config.dir_mode());
                continue;
            }
            Err(e) => return Err(IoError::new("inspect", &dir, e).into()),
        };
        if !meta.file_type().is_dir() {
            return Err(StoreError::Unsafe {
                path: dir.clone(),
                found: who::describe_owner(&meta),
                problem: format!(
                    "is a {} where the store's {d}/ directory should be",
                    kind(&meta)
                ),
                remedy: format!(
                    "remove it and recreate the directory: rm {0} && mkdir {0}",
                    dir.display()
                ),
            });
        }
    }
    if config.mode == Sharing::Group {
        let root_meta = std::fs::metadata(root).at("inspect", root)?;
        let gid = root_meta.gid();
        let group = group_label(gid);
        if !who::is_root() && !who::in_group(gid) {
            return Err(StoreError::Unsafe {
                path: root.to_owned(),
                found: who::describe_owner(&root_meta),
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
        for d in layout::DIRS {
            let dir = root.join(d);
            let Ok(meta) = std::fs::symlink_metadata(&dir) else {
                continue;
            };
            if meta.gid() != gid || meta.mode() & GROUP_DIR_BITS != GROUP_DIR_BITS {
                return Err(StoreError::Unsafe {
                    path: dir.clone(),
                    found: who::describe_owner(&meta),
                    problem: format!("should belong to the store's group {group} with mode 2775"),
                    remedy: fix_group_command(root, &group),
                });
            }
        }
    }
    Ok(())
}

/// A store inside a world-writable directory without the sticky bit (like a misconfigured /tmp)
/// can be renamed away or replaced by anyone.
pub(crate) fn check_parent(root: &Path) -> Result<(), StoreError> {
    let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    let Ok(meta) = std::fs::metadata(parent) else {
        return Ok(());
    };
    let world_writable = meta.mode() & 0o002 != 0;
    let sticky = meta.mode() & 0o1000 != 0;
    if world_writable && !sticky {
        return Err(StoreError::Unsafe {
            path: parent.to_owned(),
            found: who::describe_owner(&meta),
            problem: "is writable by everyone and has no sticky bit, so anyone could replace the store inside it".into(),
            remedy: format!("chmod +t {} (or put the store somewhere else)", parent.display()),
        });
    }
    Ok(())
}

/// Everything in the store that breaks its policy (wrong type, group or mode), for `info`.
pub fn problems(layout: &Layout, config: &Config) -> Result<Vec<Problem>, IoError> {
    let root = layout.root();
    let root_meta = std::fs::metadata(root).at("inspect", root)?;
    let gid = root_meta.gid();
    let group = config.mode == Sharing::Group;
    let mut out = Vec::new();
    let mut report = |path: &Path, meta: &std::fs::Metadata, problem: String, remedy: String| {
        out.push(Problem {
            path: path.to_owned(),
            found: who::describe_owner(meta),
            problem,
            remedy,
        })
    };
    let fix = fix_group_command(root, &group_label(gid));
    if group && root_meta.mode() & GROUP_DIR_BITS != GROUP_DIR_BITS {
        report(
            root,
            &root_meta,
            "store directory is not group-writable and setgid (2775)".into(),
            fix.clone(),
        );
    }
    for name in layout::FILES {
        let p = root.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if !meta.file_type().is_file() {
            report(
                &p,
                &meta,
                format!("is a {}, expected a regular file", kind(&meta)),
                format!("rm {}", p.display()),
            );
        } else if group && (meta.gid() != gid || meta.mode() & GROUP_FILE_BITS != GROUP_FILE_BITS) {
            report(
                &p,
                &meta,
                "should be group-owned and group-writable (0664)".into(),
                fix_file(&p, &group_label(gid)),
            );
        }
    }
    for d in layout::DIRS {
        let dir = root.join(d);
        let Ok(meta) = std::fs::symlink_metadata(&dir) else {
            continue;
        };
        if !meta.file_type().is_dir() {
            report(
                &dir,
                &meta,
                format!("is a {}, expected a directory", kind(&meta)),
                format!("rm {0} && mkdir {0}", dir.display()),
            );
            continue;
        }
        if group && (meta.gid() != gid || meta.mode() & GROUP_DIR_BITS != GROUP_DIR_BITS) {
            report(
                &dir,
                &meta,
                "should be group-owned, group-writable and setgid (2775)".into(),
                fix.clone(),
            );
        }
        for entry in std::fs::read_dir(&dir).at("list", &dir)? {
            let entry = entry.at("list", &dir)?;
            let p = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            // snapshots/ holds one directory per model (links to blobs, checked by verify);
            // tmp/ also holds snapshots being built (`snap-….d`) and damaged ones going away.
            let dir_expected = d == "snapshots"
                || (d == "tmp" && entry.file_name().to_string_lossy().ends_with(".d"));
            if dir_expected && meta.file_type().is_dir() {
                continue;
            }
            if !meta.file_type().is_file() {
                report(
                    &p,
                    &meta,
                    format!("is a {} inside {d}/", kind(&meta)),
                    format!("rm {}", p.display()),
                );
                continue;
            }
            match d {
                "blobs" if meta.mode() & 0o7777 != 0o444 => report(
                    &p,
                    &meta,
                    "published blobs must be mode 0444".into(),
                    "beaker store verify (checks the content, quarantines it if damaged)".into(),
                ),
                "locks"
                    if group
                        && (meta.gid() != gid
                            || meta.mode() & GROUP_FILE_BITS != GROUP_FILE_BITS) =>
                {
                    report(
                        &p,
                        &meta,
                        "lock files of a group store should be group-owned and 0664".into(),
                        "beaker store prune-locks (removes unheld lock files)".into(),
                    )
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

fn kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "regular file"
    } else {
        "special file"
    }
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
