//! [core]: the store through the real binary — add/path/ls/rm/info and bad input (`cli`),
//! concurrency and crashes (`concurrency`), the exit-code contract (`contract`), models of several
//! files (`bundle`), one record per name (`records`), `ls` rows (`ls_rows`), paths that must never
//! hang (`hangs`), filesystems without working flock (`broken_flock`), configuration and
//! discovery (`ux`), `export` (copies by default), `add` cloning on btrfs and xfs (`reflink`).

// Unix only: LD_PRELOAD shims.
#[cfg(unix)]
mod broken_flock;
mod bundle;
pub mod cli;
mod concurrency;
mod contract;
mod export;
// Unix only: FIFOs.
#[cfg(unix)]
mod hangs;
mod ls_rows;
mod records;
// Unix only: btrfs and xfs images mounted as root.
#[cfg(unix)]
mod reflink;
mod ux;
