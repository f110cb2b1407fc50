//! The switches of the test filesystem and the named profiles built from them (the table is in
//! the module doc of [`super`]).

use std::time::Duration;

use anyhow::{bail, Result};

/// What `flock(2)` does through the mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locks {
    /// Taken on the file underneath (`flock` on the passthrough's own descriptor): locks meet
    /// whatever mount, name or direct access they come through — a local filesystem, or a
    /// network one whose lock manager works.
    Shared,
    /// The kernel's own locks on the mount's inodes (the filesystem does not take them): they
    /// meet inside one mount only, so two mounts of one directory are two machines whose locks
    /// never meet; with [`Nodes::PerName`], two names of one file do not meet either.
    PerMount,
    /// Every `flock` succeeds at once, for every caller (some Lustre/GPFS/NFS mounts).
    Noop,
    /// Every `flock` fails with `ENOSYS` (Lustre without `-o flock`).
    Enosys,
}

/// Which kernel inode a name gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nodes {
    /// One per file: hard links share it (what the kernel does on a local filesystem).
    PerInode,
    /// One per name: a name made by `link(2)` is another kernel inode (high-level libfuse:
    /// bindfs, sshfs, unionfs-fuse), so kernel-side state — `PerMount` locks, the attribute
    /// and page caches — is not shared between the names of one file.
    PerName,
}

/// What `st_ino` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InoNumbers {
    /// The file's inode number underneath: the same for every name of a file.
    Passthrough,
    /// A number per name, given when the name is first looked up (libfuse's node id, as sshfs
    /// and unionfs-fuse show it): a hard link's `st_ino` differs from its target's, and a name
    /// the kernel forgot may come back with a new one. Needs [`Nodes::PerName`].
    PerPath,
}

/// One mount's behaviour. [`Options::default`] is the `passthrough` profile: nothing is weak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The profile name this was parsed from (for messages and `Subtype`).
    pub name: String,
    pub locks: Locks,
    pub nodes: Nodes,
    pub ino: InoNumbers,
    /// `link(2)` works; off: it fails with `EPERM` (exFAT, rclone).
    pub hard_links: bool,
    /// `renameat2` flags work; off: any flag (`RENAME_NOREPLACE`, `RENAME_EXCHANGE`) fails with
    /// `EINVAL` (bindfs, sshfs, unionfs-fuse).
    pub rename_flags: bool,
    /// New files and directories in a setgid directory take its group (and new directories its
    /// setgid bit); off: they take the creator's group and no setgid bit (fuse-overlayfs).
    pub setgid_inherit: bool,
    /// `st_nlink` is the value sampled up to this long ago: a node samples its link count when
    /// it is made or linked to, and again only once the sample is older; after link + unlink
    /// the new name still says 2 (bindfs' attribute cache).
    pub stale_nlink: Option<Duration>,
    /// Writes and directory operations reach the backing directory only when made durable by
    /// fsync; a power cut drops the rest (see the module doc of [`super`]).
    pub power_cut: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            name: "passthrough".to_owned(),
            locks: Locks::Shared,
            nodes: Nodes::PerInode,
            ino: InoNumbers::Passthrough,
            hard_links: true,
            rename_flags: true,
            setgid_inherit: true,
            stale_nlink: None,
            power_cut: false,
        }
    }
}

/// How long the `stale-nlink` profiles keep a sampled link count.
pub const STALE_NLINK: Duration = Duration::from_secs(2);

/// The named profiles: name, the switches it sets (over `passthrough`), what it plays.
pub const PROFILES: &[(&str, &str, &str)] = &[
    ("passthrough", "", "a local filesystem: nothing is weak"),
    ("flock-noop", "flock=noop", "flock succeeds for everyone (some Lustre/GPFS/NFS)"),
    ("flock-enosys", "flock=enosys", "flock fails with ENOSYS (Lustre without flock)"),
    (
        "per-mount-locks",
        "flock=per-mount",
        "two mounts of one directory are two machines whose locks never meet",
    ),
    ("no-hardlinks", "hardlinks=no", "link(2) fails with EPERM (exFAT, rclone)"),
    (
        "link-inodes",
        "nodes=per-name,flock=per-mount",
        "a name made by link(2) is another inode: a flock through one name does not exclude one through the other",
    ),
    (
        "per-path-ino",
        "nodes=per-name,ino=per-path",
        "inode numbers per path: a hard link's st_ino differs from its target's (sshfs, unionfs-fuse)",
    ),
    (
        "stale-nlink",
        "stale-nlink=2",
        "st_nlink is up to 2 s old: after link + unlink the new name still says 2",
    ),
    (
        "no-noreplace",
        "rename-flags=no",
        "renameat2(RENAME_NOREPLACE) fails with EINVAL",
    ),
    (
        "no-setgid",
        "setgid=no",
        "new entries of a setgid directory do not inherit its group (fuse-overlayfs)",
    ),
    (
        "bindfs",
        "nodes=per-name,flock=per-mount,rename-flags=no,stale-nlink=2",
        "what bindfs did here",
    ),
    (
        "sshfs",
        "nodes=per-name,ino=per-path,flock=per-mount,rename-flags=no",
        "what sshfs and unionfs-fuse did here",
    ),
    (
        "exfat",
        "hardlinks=no,rename-flags=no",
        "what exfat-fuse and rclone mount did here",
    ),
    ("fuse-overlayfs", "setgid=no", "what fuse-overlayfs did here"),
    (
        "power-cut",
        "power-cut",
        "a local filesystem that loses what was not fsynced when the power is cut",
    ),
];

impl Options {
    /// Parses a profile spec: comma-separated items, each a profile name from [`PROFILES`]
    /// (its switches applied over what came before) or a switch (`flock=shared|per-mount|noop|
    /// enosys`, `nodes=per-inode|per-name`, `ino=passthrough|per-path`, `hardlinks=yes|no`,
    /// `rename-flags=yes|no`, `setgid=yes|no`, `stale-nlink=SECONDS` (0: off), `power-cut`,
    /// `power-cut=yes|no`). E.g. `bindfs,power-cut`. The empty spec is `passthrough`.
    pub fn parse(spec: &str) -> Result<Options> {
        let mut o = Options::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            o.apply(item)?;
        }
        if !spec.trim().is_empty() {
            o.name = spec.trim().to_owned();
        }
        o.check()?;
        Ok(o)
    }

    /// The named profile `name` (one of [`PROFILES`]).
    pub fn profile(name: &str) -> Result<Options> {
        if !PROFILES.iter().any(|(n, _, _)| *n == name) {
            bail!("no profile {name:?}; the profiles: {}", profile_names());
        }
        Options::parse(name)
    }

    /// The same options with power-cut mode on.
    pub fn with_power_cut(mut self) -> Options {
        if !self.power_cut {
            self.power_cut = true;
            self.name.push_str(",power-cut");
        }
        self
    }

    fn apply(&mut self, item: &str) -> Result<()> {
        if let Some((_, switches, _)) = PROFILES.iter().find(|(n, _, _)| *n == item) {
            for s in switches.split(',').filter(|s| !s.is_empty()) {
                self.switch(s)?;
            }
            return Ok(());
        }
        self.switch(item)
    }

    fn switch(&mut self, item: &str) -> Result<()> {
        let (key, value) = item.split_once('=').unwrap_or((item, "yes"));
        let yes_no = |v: &str| match v {
            "yes" | "on" | "true" => Ok(true),
            "no" | "off" | "false" => Ok(false),
            _ => bail!("{key}={v}: expected yes or no"),
        };
        match key {
            "flock" => {
                self.locks = match value {
                    "shared" => Locks::Shared,
                    "per-mount" => Locks::PerMount,
                    "noop" => Locks::Noop,
                    "enosys" => Locks::Enosys,
                    _ => bail!("flock={value}: expected shared, per-mount, noop or enosys"),
                }
            }
            "nodes" => {
                self.nodes = match value {
                    "per-inode" => Nodes::PerInode,
                    "per-name" => Nodes::PerName,
                    _ => bail!("nodes={value}: expected per-inode or per-name"),
                }
            }
            "ino" => {
                self.ino = match value {
                    "passthrough" => InoNumbers::Passthrough,
                    "per-path" => InoNumbers::PerPath,
                    _ => bail!("ino={value}: expected passthrough or per-path"),
                }
            }
            "hardlinks" => self.hard_links = yes_no(value)?,
            "rename-flags" => self.rename_flags = yes_no(value)?,
            "setgid" => self.setgid_inherit = yes_no(value)?,
            "stale-nlink" => {
                let secs: f64 = value
                    .parse()
                    .map_err(|_| anyhow::anyhow!("stale-nlink={value}: expected seconds"))?;
                if !(0.0..=3600.0).contains(&secs) {
                    bail!("stale-nlink={value}: expected 0 to 3600 seconds");
                }
                self.stale_nlink = (secs > 0.0).then(|| Duration::from_secs_f64(secs));
            }
            "power-cut" => self.power_cut = yes_no(value)?,
            _ => bail!(
                "unknown profile or switch {item:?}; the profiles: {}; the switches: flock=, nodes=, ino=, hardlinks=, rename-flags=, setgid=, stale-nlink=, power-cut",
                profile_names()
            ),
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        if self.ino == InoNumbers::PerPath && self.nodes == Nodes::PerInode {
            bail!("ino=per-path needs nodes=per-name: the kernel keeps one inode number per inode");
        }
        Ok(())
    }
}

fn profile_names() -> String {
    PROFILES
        .iter()
        .map(|(n, _, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_parses_and_profiles_compose_with_switches() {
        for (name, _, _) in PROFILES {
            let o = Options::profile(name).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert_eq!(o.name, *name);
        }
        let o = Options::parse("bindfs,power-cut").unwrap();
        assert_eq!(
            (o.nodes, o.locks, o.rename_flags, o.power_cut),
            (Nodes::PerName, Locks::PerMount, false, true)
        );
        assert_eq!(o.stale_nlink, Some(STALE_NLINK));
        let o = Options::parse("bindfs,flock=shared,stale-nlink=0").unwrap();
        assert_eq!((o.locks, o.stale_nlink), (Locks::Shared, None));
        assert_eq!(Options::parse("").unwrap(), Options::default());
    }

    #[test]
    fn a_bad_spec_is_refused_with_what_is_accepted() {
        let e = format!("{:#}", Options::parse("flock=maybe").unwrap_err());
        assert!(e.contains("shared, per-mount, noop or enosys"), "{e}");
        let e = format!("{:#}", Options::parse("nfs").unwrap_err());
        assert!(e.contains("bindfs") && e.contains("flock="), "{e}");
        let e = format!("{:#}", Options::parse("ino=per-path").unwrap_err());
        assert!(e.contains("nodes=per-name"), "{e}");
        assert!(
            Options::profile("flock=noop").is_err(),
            "a switch is not a profile name"
        );
    }
}
