//! Users and processes on Windows, which has no uids, gids or user database of that kind: the
//! user is `%USERNAME%`, every file is this user's (a shared store relies on its directory's
//! ACL, docs/design.md#platforms), and no process is root.
#![allow(
    unsafe_code,
    reason = "OpenProcess and GetExitCodeProcess have no std wrapper"
)]

use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, ERROR_ACCESS_DENIED, STILL_ACTIVE,
};
use windows_sys::Win32::System::Threading::{
    GetExitCodeProcess, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
};

/// The uid beaker reports for this user and for every file: not 0, so nothing is taken for
/// root's.
const UID: u32 = 1000;

/// `%USERNAME%`, or "unknown".
pub fn user() -> String {
    std::env::var("USERNAME").unwrap_or_else(|_| "unknown".into())
}

/// This user's name for [`UID`]; nothing for another.
pub fn user_name(uid: u32) -> Option<String> {
    (uid == UID).then(user)
}

/// Windows files have no group.
pub fn group_name(_gid: u32) -> Option<String> {
    None
}

/// `%COMPUTERNAME%`, or "unknown".
pub fn host() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_else(|_| "unknown".into())
}

/// Whether a process `pid` runs on this machine: it can be opened and has not exited, or
/// opening it is refused (another user's process).
pub fn process_exists(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    // SAFETY: OpenProcess takes plain values; the handle it returns is closed below.
    let handle = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if handle.is_null() {
        // SAFETY: reads this thread's last error.
        return unsafe { GetLastError() } == ERROR_ACCESS_DENIED;
    }
    let mut code = 0u32;
    // SAFETY: a live process handle and a place for its exit code.
    let ok = unsafe { GetExitCodeProcess(handle, &mut code) };
    // SAFETY: the handle is ours and closed once.
    unsafe { CloseHandle(handle) };
    ok == 0 || code == STILL_ACTIVE as u32
}

/// Windows has no groups beaker can give files to.
pub fn group_id(_name: &str) -> Option<u32> {
    None
}

/// Windows has no groups beaker can give files to.
pub fn in_group(_gid: u32) -> bool {
    false
}

/// The uid beaker reports for this user ([`UID`]).
pub fn euid() -> u32 {
    UID
}
