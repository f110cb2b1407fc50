//! Real Unix users for the multi-user runs: `beaker-alice` and `beaker-bob` (each with a primary
//! group of their own) share stores through the group `beaker-lab`; `beaker-eve` is not in it.
//! Creating them ([`create_all`], [`ensure_user`]), a command run as one of them through
//! `setpriv` with their groups and a umask ([`as_user_cmd`]), a copy of the binary every user can
//! execute ([`shared_binary`]), and what a run that needs root does as another user
//! ([`root_only_decision`], [`root_only`]): "not run" and pass, unless
//! `BEAKER_TEST_REQUIRE_ROOT=1` (CI) makes that a failure — a multi-user guarantee nobody tested
//! is not a guarantee.

// The binary's copy and the sticky directories are made with raw std::fs: outside any store.
#![allow(clippy::disallowed_methods)]

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The group the members share stores through.
pub const GROUP: &str = "beaker-lab";

/// Set to `1` (CI does, in .ci/run) to make a root-only run that cannot run here fail instead of
/// reporting "not run".
pub const REQUIRE_ROOT_VAR: &str = "BEAKER_TEST_REQUIRE_ROOT";

/// One real user.
#[derive(Debug, Clone)]
pub struct User {
    pub name: &'static str,
    pub uid: u32,
    /// The user's primary group (never the lab group).
    pub gid: u32,
    /// In [`GROUP`].
    pub member: bool,
}

/// The three users and the lab group's id.
#[derive(Debug, Clone)]
pub struct Users {
    pub alice: User,
    pub bob: User,
    /// Not a member.
    pub eve: User,
    pub lab_gid: u32,
}

/// Runs `cmd args…` to completion; an error when it cannot start or fails (with its stderr).
pub fn sh(cmd: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("run {cmd}"))?;
    if !out.status.success() {
        bail!("{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn id(flag: &str, name: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, name]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Makes the group [`GROUP`] if missing; returns its id.
pub fn ensure_group() -> Result<u32> {
    sh("groupadd", &["-f", GROUP])?;
    beaker::who::group_id(GROUP).with_context(|| format!("the group {GROUP} has no id"))
}

/// The user `name`, created if missing (no home, no login shell, a primary group of its own),
/// and added to [`GROUP`] if `member` (which must exist: [`ensure_group`]).
pub fn ensure_user(name: &'static str, member: bool) -> Result<User> {
    if id("-u", name).is_none() {
        sh(
            "useradd",
            &[
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
        )?;
    }
    if member {
        sh("usermod", &["-aG", GROUP, name])?;
    }
    Ok(User {
        name,
        uid: id("-u", name).with_context(|| format!("no uid for {name}"))?,
        gid: id("-g", name).with_context(|| format!("no gid for {name}"))?,
        member,
    })
}

/// The group and the three users, created where missing (needs root).
pub fn create_all() -> Result<Users> {
    let lab_gid = ensure_group()?;
    let users = Users {
        alice: ensure_user("beaker-alice", true)?,
        bob: ensure_user("beaker-bob", true)?,
        eve: ensure_user("beaker-eve", false)?,
        lab_gid,
    };
    if users.alice.gid == lab_gid {
        bail!("beaker-alice's primary group must differ from the store's group {GROUP}");
    }
    Ok(users)
}

/// Makes `dir` a directory every user can create things in (mode 1777, sticky like /tmp).
pub fn open_to_all(dir: &Path) -> Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777))
        .with_context(|| format!("chmod 1777 {}", dir.display()))
}

/// Copies the binary `bin` to `dir/beaker` with `dir` and the copy world-readable and
/// executable (the build tree may not be reachable by the other users); returns the copy.
pub fn shared_binary(bin: &Path, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod 755 {}", dir.display()))?;
    let copy = dir.join("beaker");
    std::fs::copy(bin, &copy)
        .with_context(|| format!("copy {} to {}", bin.display(), copy.display()))?;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod 755 {}", copy.display()))?;
    Ok(copy)
}

/// `bin --store STORE` run as `user` through `setpriv`, with the user's groups, the given
/// `umask`, HOME and the configuration files pointing nowhere, and the lab's clean environment
/// ([`crate::lab::clean_env`]). Add the command's arguments with `.args(…)`.
pub fn as_user_cmd(user: &User, umask: &str, bin: &Path, store: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .arg("--init-groups")
        .args(["--", "sh", "-c", "umask \"$0\"; exec \"$@\"", umask])
        .arg(bin)
        .arg("--store")
        .arg(store)
        .env("HOME", "/nonexistent");
    crate::lab::clean_env(&mut c, Path::new("/nonexistent"));
    c
}

/// What a root-only run does, given whether we are root and the value of [`REQUIRE_ROOT_VAR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootOnly {
    Run,
    /// Report "not run" and pass.
    NotRun,
    /// Fail: the environment demands that every root-only run runs.
    Fail,
}

/// The decision for `is_root` and the value of [`REQUIRE_ROOT_VAR`] (only `1` requires root).
pub fn root_only_decision(is_root: bool, require: Option<&OsStr>) -> RootOnly {
    match (is_root, require) {
        (true, _) => RootOnly::Run,
        (false, Some(v)) if v == "1" => RootOnly::Fail,
        (false, _) => RootOnly::NotRun,
    }
}

/// The decision for this process: its euid and its environment.
pub fn root_decision() -> RootOnly {
    root_only_decision(
        beaker::who::is_root(),
        std::env::var_os(REQUIRE_ROOT_VAR).as_deref(),
    )
}

/// For a test that needs root (real users, ownership changes, mounts): `true` when it can run.
/// As another user it prints `not run: <test>: needs root: <reason>` on stderr and returns
/// `false` (the test returns and passes), unless `BEAKER_TEST_REQUIRE_ROOT=1`, which makes it
/// panic: a test assertion by design.
pub fn root_only(reason: &str) -> bool {
    let current = std::thread::current();
    let test = current.name().unwrap_or("this test");
    match root_decision() {
        RootOnly::Run => true,
        RootOnly::NotRun => {
            eprintln!("not run: {test}: needs root: {reason} (set {REQUIRE_ROOT_VAR}=1 to make this a failure)");
            false
        }
        RootOnly::Fail => panic!(
            "{test} needs root ({reason}), and {REQUIRE_ROOT_VAR}=1 demands that it runs; run the tests as root"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_only_tests_run_as_root_are_not_run_otherwise_and_fail_when_root_is_required() {
        assert_eq!(root_only_decision(true, None), RootOnly::Run);
        assert_eq!(
            root_only_decision(true, Some(OsStr::new("1"))),
            RootOnly::Run
        );
        assert_eq!(root_only_decision(false, None), RootOnly::NotRun);
        assert_eq!(
            root_only_decision(false, Some(OsStr::new("0"))),
            RootOnly::NotRun
        );
        assert_eq!(
            root_only_decision(false, Some(OsStr::new("1"))),
            RootOnly::Fail
        );
    }
}
