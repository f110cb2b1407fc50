//! What the filesystem under a store can do, found by trying (docs/design.md#filesystems):
//! whether flocks exclude (across descriptors, and across two names of one file), whether a
//! rename can refuse to replace (`RENAME_NOREPLACE`), hard links, whether a hard link keeps its
//! target's inode number, whether the link count is right at once, whether a setgid directory
//! passes its group on, and whether files can be cloned (reflink).
//!
//! `init` probes in `tmp/` before it writes anything else, refuses a filesystem beaker cannot
//! publish on without risking a clobber (neither `RENAME_NOREPLACE` nor hard links: exFAT, rclone
//! mounts), and records what it found in `probe.toml`, with the device it found it on. A store
//! opened on another device since (the same directory reached through another mount: NFS, a FUSE
//! filesystem over it) is probed again by the first writer that opens it there, and the record
//! rewritten. `store info` shows the record.
//!
//! The record lives beside `store.toml`, not in it: beakers of the same store format read
//! `store.toml` strictly (an unknown key is an error), and ignore files they do not know.

use std::io;

use serde::{Deserialize, Serialize};

use crate::sys::error::IoError;
use crate::sys::fsx::{self, Meta, Rooted};
use crate::sys::lock;

/// What the filesystem under a store can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// The device (`st_dev`) of the store's root when this was found.
    pub device: u64,
    /// Two descriptors of one file exclude each other's flocks.
    pub flock: bool,
    /// A flock through one name of a file excludes one through another name (high-level FUSE
    /// filesystems such as bindfs give each name its own kernel inode); untried, so `false`,
    /// without hard links.
    pub flock_across_names: bool,
    /// `renameat2(RENAME_NOREPLACE)` works (else publishing links and unlinks).
    pub rename_noreplace: bool,
    /// Hard links can be made (else snapshots are symlinks to the blobs).
    pub hard_links: bool,
    /// A hard link has its target's inode number (sshfs and unionfs-fuse number inodes per path).
    pub stable_inodes: bool,
    /// After a link is removed, the link count says so at once (bindfs caches it for seconds).
    pub accurate_nlink: bool,
    /// A directory made in a setgid directory takes its group (fuse-overlayfs: not).
    pub setgid_inherited: bool,
    /// A file can be cloned without copying (`FICLONE`: btrfs, xfs with reflink).
    pub reflink: bool,
}

/// The file the record lives in, at the store's root.
pub const FILE: &str = "probe.toml";

impl Capabilities {
    /// What is missing for beaker to publish without clobbering, if anything: the refusal, a
    /// phrase following "the filesystem".
    pub fn cannot_publish(&self) -> Option<String> {
        (!self.rename_noreplace && !self.hard_links).then(|| {
            "can neither rename without replacing (renameat2 RENAME_NOREPLACE) nor make hard links \
             (as exFAT and rclone mounts), so a blob could not be published without risking to replace \
             one another process just published; put the store on a filesystem that has either \
             (ext4, xfs, btrfs, tmpfs, NFS, most FUSE filesystems)"
                .to_owned()
        })
    }

    /// The record's text.
    pub fn to_toml(&self) -> String {
        let mut text = String::from(
            "# What the filesystem under this store can do, found by trying (beaker store info shows it).\n",
        );
        text.push_str(&toml::to_string(self).unwrap_or_default());
        text
    }

    /// Reads a record; `None` when it does not parse (it is probed again).
    pub fn parse(text: &str) -> Option<Capabilities> {
        toml::from_str(text).ok()
    }
}

/// Tries every capability in `tmp` (a directory of the store), leaving nothing behind.
/// `device` is the store root's; `group`: the store's group, for a group store (else the
/// setgid question is not asked and counts as yes).
///
/// # Errors
/// An I/O error of `tmp` itself (it cannot be written); a capability that fails is a `false`.
pub fn probe(tmp: &Rooted, device: u64, group: Option<u32>) -> Result<Capabilities, IoError> {
    let (a, a_path) = fsx::create_unique(tmp, "probe", "a", 0o600)?;
    let b_path = fsx::unique_path(tmp, "probe", "b");
    let c_path = fsx::unique_path(tmp, "probe", "c");
    let found = (|| {
        let flock = lock::probe_file(&a, &a_path).is_ok();
        let hard_links = fsx::hard_link(&a_path, &b_path).is_ok();
        let (mut stable_inodes, mut accurate_nlink, mut flock_across_names) = (false, false, false);
        // The name the file has when the rename is tried.
        let mut name = &a_path;
        if hard_links {
            let ma = Meta::of(&a).map_err(io_at(&a_path))?;
            stable_inodes = fsx::stat(&b_path)?.is_some_and(|mb| mb.same_file(&ma));
            if flock {
                let other = fsx::open_read(&b_path)?;
                flock_across_names = lock::exclude_each_other(&a, &other);
            }
            // As publishing does: the first name goes, the link stays and must say 1 at once.
            fsx::remove_file(&a_path)?;
            name = &b_path;
            accurate_nlink = fsx::stat(&b_path)?.is_some_and(|m| m.nlink() == 1);
        }
        let rename_noreplace = fsx::rename_exclusive_no_fallback(name, &c_path).is_ok();
        let at = if rename_noreplace { &c_path } else { name };
        let reflink = reflinks(tmp, &a);
        let setgid_inherited = match group {
            Some(g) => setgid_passes_on(tmp, g)?,
            None => true,
        };
        let _ = fsx::remove_file_if_exists(at);
        Ok(Capabilities {
            device,
            flock,
            flock_across_names,
            rename_noreplace,
            hard_links,
            stable_inodes,
            accurate_nlink,
            setgid_inherited,
            reflink,
        })
    })();
    for p in [&a_path, &b_path, &c_path] {
        let _ = fsx::remove_file_if_exists(p);
    }
    found
}

fn io_at(at: &Rooted) -> impl Fn(io::Error) -> IoError + '_ {
    move |e| IoError::new("inspect", at, e)
}

/// Whether `FICLONE` from `src` to a fresh file works.
fn reflinks(tmp: &Rooted, src: &std::fs::File) -> bool {
    use std::io::Write;
    let Ok((mut with, with_path)) = fsx::create_unique(tmp, "probe", "r", 0o600) else {
        return false;
    };
    // Some filesystems clone only non-empty files.
    let mut src_w = src;
    let _ = src_w.write_all(b"probe");
    let _ = with.flush();
    let ok = fsx::ficlone(&with, src).is_ok();
    let _ = fsx::remove_file_if_exists(&with_path);
    ok
}

/// Whether a directory made in `tmp` (setgid, group `group`) takes `group`.
fn setgid_passes_on(tmp: &Rooted, group: u32) -> Result<bool, IoError> {
    let d = fsx::unique_path(tmp, "probe", "d");
    fsx::create_dir_exclusive(&d, 0o700)?;
    let passed = fsx::stat(&d)?.is_some_and(|m| m.gid() == group);
    let _ = fsx::remove_tree(&d);
    Ok(passed)
}

impl super::Store {
    /// What the filesystem under the store can do: the record in `probe.toml` when it was made on
    /// the device the store is on now; else probed again here and, when this user can write the
    /// store, recorded (a store reached through another mount, or made before the record existed).
    ///
    /// # Errors
    /// Reading the store's root fails, or a probe is needed and `tmp/` cannot be written.
    pub fn capabilities(&self) -> Result<Capabilities, super::StoreError> {
        let layout = self.layout();
        let device = fsx::stat(&layout.top())?.map_or(0, |m| m.dev());
        // Missing, unreadable, oversized (a member's plant) or unparsable: probed again.
        let recorded = fsx::open_read(&layout.probe()).ok().and_then(|f| {
            let mut text = String::new();
            io::Read::read_to_string(&mut io::Read::take(f, 4096), &mut text).ok()?;
            Capabilities::parse(&text)
        });
        if let Some(found) = recorded.filter(|c| c.device == device) {
            return Ok(found);
        }
        let found = probe(&layout.tmp(), device, self.group)?;
        // A reader that cannot write the store still learns what it found.
        let _ = fsx::write_replace(
            &layout.tmp(),
            &layout.probe(),
            found.to_toml().as_bytes(),
            self.config().file_mode(),
        );
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    // Tests plant records and look at directories with raw std::fs on purpose.
    #![allow(clippy::disallowed_methods)]
    use super::*;
    use crate::store::{InitOptions, Store};

    fn names_in(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_local_filesystem_can_do_what_publishing_needs_and_the_probe_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(&dir.path().join("s"), InitOptions::default()).unwrap();
        let found = store.capabilities().unwrap();
        // The test machine's temp directory is a local filesystem (ext4, tmpfs, overlayfs).
        assert!(found.flock && found.flock_across_names, "{found:?}");
        assert!(found.hard_links && found.stable_inodes, "{found:?}");
        // (wine reports one link for every file: its nlink is not accurate; NTFS's is.)
        if cfg!(unix) {
            assert!(found.accurate_nlink, "{found:?}");
        }
        assert!(found.setgid_inherited);
        assert_eq!(found.cannot_publish(), None);
        assert!(names_in(&dir.path().join("s/tmp")).is_empty());
        let text = std::fs::read_to_string(dir.path().join("s").join(FILE)).unwrap();
        assert_eq!(Capabilities::parse(&text), Some(found));
    }

    #[test]
    fn without_noreplace_and_hard_links_publishing_is_refused_naming_both() {
        let none = Capabilities {
            device: 1,
            flock: true,
            flock_across_names: false,
            rename_noreplace: false,
            hard_links: false,
            stable_inodes: false,
            accurate_nlink: false,
            setgid_inherited: true,
            reflink: false,
        };
        let why = none.cannot_publish().unwrap();
        assert!(
            why.contains("RENAME_NOREPLACE") && why.contains("hard links"),
            "{why}"
        );
        for one in [
            Capabilities {
                hard_links: true,
                ..none.clone()
            },
            Capabilities {
                rename_noreplace: true,
                ..none.clone()
            },
        ] {
            assert_eq!(one.cannot_publish(), None, "{one:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_record_of_another_device_or_a_planted_one_is_probed_again_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        let store = Store::init(&root, InitOptions::default()).unwrap();
        let real = store.capabilities().unwrap();
        // A record of another device that claims nothing works: not believed.
        let other = Capabilities {
            device: real.device.wrapping_add(1),
            flock: false,
            hard_links: false,
            ..real.clone()
        };
        std::fs::write(root.join(FILE), other.to_toml()).unwrap();
        assert_eq!(store.capabilities().unwrap(), real);
        assert_eq!(
            Capabilities::parse(&std::fs::read_to_string(root.join(FILE)).unwrap()),
            Some(real.clone())
        );
        // Garbage, a huge file, a symlink to a file outside the store: probed again, never
        // followed, the outside file untouched.
        let outside = dir.path().join("outside.toml");
        std::fs::write(&outside, other.to_toml()).unwrap();
        for plant in ["garbage", "huge", "symlink"] {
            let _ = std::fs::remove_file(root.join(FILE));
            match plant {
                "garbage" => std::fs::write(root.join(FILE), "flock = maybe").unwrap(),
                "huge" => std::fs::write(
                    root.join(FILE),
                    format!("{}{}", "#".repeat(10_000), real.to_toml()),
                )
                .unwrap(),
                _ => std::os::unix::fs::symlink(&outside, root.join(FILE)).unwrap(),
            }
            assert_eq!(store.capabilities().unwrap(), real, "{plant}");
        }
        assert_eq!(
            std::fs::read_to_string(&outside).unwrap(),
            other.to_toml(),
            "the symlink's target is untouched"
        );
        assert!(!std::fs::symlink_metadata(root.join(FILE))
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
