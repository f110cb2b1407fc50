//! [core]: the store through the real binary — add/path/ls/rm/info and bad input (`cli`),
//! concurrency and crashes (`concurrency`), the exit-code contract (`contract`), models of several
//! files (`bundle`), one record per name (`records`), `ls` rows (`ls_rows`), paths that must never
//! hang (`hangs`), filesystems without working flock (`broken_flock`), configuration and
//! discovery (`ux`), `export` (copies by default), `add` cloning on btrfs and xfs (`reflink`).

mod broken_flock;
mod bundle;
pub mod cli;
mod concurrency;
mod contract;
mod export;
mod hangs;
mod ls_rows;
mod records;
mod reflink;
mod ux;
