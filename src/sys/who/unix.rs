//! Users, groups, ids and the host name from libc (the user and group databases).
#![allow(
    unsafe_code,
    reason = "libc calls with no std wrapper; each has its SAFETY note"
)]

use std::ffi::CStr;

/// The user name of the real uid, or the numeric uid if it has no passwd entry.
pub fn user() -> String {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    user_name(uid).unwrap_or_else(|| uid.to_string())
}

/// The first buffer size tried for the reentrant database lookups; [`lookup`] doubles it on
/// `ERANGE` (a group with thousands of members, as LDAP lab groups have, needs far more).
const FIRST_BUFFER: usize = 4096;
/// The largest buffer [`lookup`] tries before giving up (a group line of 64 MiB is not a group).
const MAX_BUFFER: usize = 64 << 20;

/// Runs one reentrant lookup (`getpwuid_r`, `getgrgid_r`, `getgrnam_r`), growing its string
/// buffer from `first` bytes while the call answers `ERANGE` ("the entry does not fit"), so a
/// large entry is found rather than reported as absent. `call` gets the buffer and returns the
/// function's return code and, on success, the entry's value; any other error is `None`.
fn lookup<T>(
    first: usize,
    mut call: impl FnMut(&mut [libc::c_char]) -> (i32, Option<T>),
) -> Option<T> {
    let mut size = first.max(1);
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        match call(&mut buf) {
            (0, found) => return found,
            (libc::ERANGE, _) if size < MAX_BUFFER => size = (size * 2).min(MAX_BUFFER),
            _ => return None,
        }
    }
}

/// The name of `uid` from the passwd database, if it has one.
pub fn user_name(uid: u32) -> Option<String> {
    user_name_from(uid, FIRST_BUFFER)
}

fn user_name_from(uid: u32, first: usize) -> Option<String> {
    lookup(first, |buf| {
        // SAFETY: passwd is plain data; getpwuid_r writes into pwd and buf (its length passed).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return (rc, None);
        }
        // SAFETY: on success pw_name points to a NUL-terminated string inside buf.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) };
        (0, Some(name.to_string_lossy().into_owned()))
    })
}

/// The name of `gid` from the group database, if it has one.
pub fn group_name(gid: u32) -> Option<String> {
    group_name_from(gid, FIRST_BUFFER)
}

fn group_name_from(gid: u32, first: usize) -> Option<String> {
    lookup(first, |buf| {
        // SAFETY: as in `user_name_from`, for the group database.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc =
            unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc != 0 || result.is_null() || grp.gr_name.is_null() {
            return (rc, None);
        }
        // SAFETY: on success gr_name points to a NUL-terminated string inside buf.
        let name = unsafe { CStr::from_ptr(grp.gr_name) };
        (0, Some(name.to_string_lossy().into_owned()))
    })
}

/// This machine's host name.
pub fn host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its full length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Whether a process `pid` exists on this machine (in this pid namespace): `kill(pid, 0)`
/// succeeds, or fails only for want of permission (another user's process).
pub fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The gid of the group called `name`, if it exists.
pub fn group_id(name: &str) -> Option<u32> {
    group_id_from(name, FIRST_BUFFER)
}

fn group_id_from(name: &str, first: usize) -> Option<u32> {
    let cname = std::ffi::CString::new(name).ok()?;
    lookup(first, |buf| {
        // SAFETY: as in `user_name_from`, for the group database; cname is NUL-terminated.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        (rc, (rc == 0 && !result.is_null()).then_some(grp.gr_gid))
    })
}

/// Whether this process acts with the privileges of group `gid` (effective or supplementary).
pub fn in_group(gid: u32) -> bool {
    // SAFETY: getegid cannot fail; getgroups(0, NULL) returns the count, then fills our buffer.
    if unsafe { libc::getegid() } == gid {
        return true;
    }
    #[cfg(not(target_os = "macos"))]
    {
        let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        if n <= 0 {
            return false;
        }
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let n = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
        n > 0 && groups[..n as usize].contains(&gid)
    }
    // macOS: getgroups(2) reports at most 16 groups; the user's full list comes from
    // getgrouplist(3), by name.
    #[cfg(target_os = "macos")]
    {
        let Ok(name) = std::ffi::CString::new(user()) else {
            return false;
        };
        let mut groups = vec![0 as libc::c_int; 1024];
        let mut n = groups.len() as libc::c_int;
        // SAFETY: getgid cannot fail.
        let base = unsafe { libc::getgid() } as libc::c_int;
        // SAFETY: a NUL-terminated name, a buffer of `n` ints and its length, as documented.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), base, groups.as_mut_ptr(), &mut n) };
        rc == 0 && groups[..n.max(0) as usize].iter().any(|g| *g as u32 == gid)
    }
}

/// The effective uid of this process (the owner of the files it creates).
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_root() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(group_name(0).as_deref(), Some("root"));
        assert_eq!(group_id("root"), Some(0));
    }

    #[test]
    fn an_entry_larger_than_the_buffer_is_found_not_reported_absent() {
        // A 1-byte first buffer cannot hold any entry: every lookup starts with ERANGE, as one
        // for a group with thousands of members does with the default buffer.
        assert_eq!(user_name_from(0, 1).as_deref(), Some("root"));
        assert_eq!(group_name_from(0, 1).as_deref(), Some("root"));
        assert_eq!(group_id_from("root", 1), Some(0));
        assert_eq!(group_id_from("no-such-group-beaker", 1), None);
    }

    #[test]
    fn lookup_grows_only_on_erange_and_stops_at_the_cap() {
        let mut sizes = Vec::new();
        let found = lookup(1, |buf| {
            sizes.push(buf.len());
            if buf.len() < 8 {
                (libc::ERANGE, None)
            } else {
                (0, Some(buf.len()))
            }
        });
        assert_eq!(found, Some(8));
        assert_eq!(sizes, [1, 2, 4, 8]);
        // Another error is not retried.
        let mut calls = 0;
        assert_eq!(
            lookup(1, |_| {
                calls += 1;
                (libc::EIO, None::<()>)
            }),
            None
        );
        assert_eq!(calls, 1);
        // ERANGE forever ends at MAX_BUFFER.
        let mut last = 0;
        assert_eq!(
            lookup(MAX_BUFFER / 2, |buf| {
                last = buf.len();
                (libc::ERANGE, None::<()>)
            }),
            None
        );
        assert_eq!(last, MAX_BUFFER);
    }
}
