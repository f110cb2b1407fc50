//! `beaker-testfs [--profile SPEC] [--SWITCH[=VALUE]]… BACKING MOUNTPOINT`: the kit's test
//! filesystem ([`testkit::testfs`]) from a shell. Mounts BACKING at MOUNTPOINT (as root) and
//! serves in the foreground until the mount goes away: `umount MOUNTPOINT` is a clean unmount
//! (in power-cut mode everything becomes durable first); `echo cut > MOUNTPOINT/.beaker-testfs`
//! cuts the power (what was not durable is lost, and the mount goes); killing this process is a
//! power cut too (then `umount -l MOUNTPOINT`). `--list` prints the profiles.
//!
//! ```sh
//! cargo run -p testkit --bin beaker-testfs -- --profile bindfs,power-cut /srv/disk /mnt/weak
//! ```

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    unix::main()
}

/// FUSE is Unix's: on other systems the command only says so.
#[cfg(not(unix))]
fn main() -> std::process::ExitCode {
    eprintln!("beaker-testfs: the test filesystem is FUSE, which this system does not have");
    std::process::ExitCode::from(2)
}

#[cfg(unix)]
mod unix {
    use std::path::PathBuf;
    use std::process::ExitCode;

    use anyhow::{bail, Result};
    use testkit::testfs::{Mount, Options, CONTROL, PROFILES};

    const USAGE: &str =
        "usage: beaker-testfs [--profile SPEC] [--SWITCH[=VALUE]]... BACKING MOUNTPOINT
       beaker-testfs --list
SPEC: profile names and switches, comma-separated (e.g. bindfs,power-cut); a switch may also be
given as its own flag (--flock=noop, --power-cut). Switches: flock=shared|per-mount|noop|enosys,
nodes=per-inode|per-name, ino=passthrough|per-path, hardlinks=yes|no, rename-flags=yes|no,
setgid=yes|no, stale-nlink=SECONDS, power-cut[=yes|no].";

    pub fn main() -> ExitCode {
        match run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("beaker-testfs: {e:#}");
                ExitCode::FAILURE
            }
        }
    }

    fn run() -> Result<()> {
        let mut items = Vec::new();
        let mut paths = Vec::new();
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "-h" | "--help" => {
                    println!("{USAGE}");
                    return Ok(());
                }
                "--list" => {
                    for (name, switches, what) in PROFILES {
                        println!("{name:16} {switches:60} {what}");
                    }
                    return Ok(());
                }
                "--profile" => match args.next() {
                    Some(spec) => items.push(spec),
                    None => bail!("--profile needs a value\n{USAGE}"),
                },
                _ => {
                    if let Some(spec) = a.strip_prefix("--profile=") {
                        items.push(spec.to_owned());
                    } else if let Some(switch) = a.strip_prefix("--") {
                        items.push(switch.to_owned());
                    } else {
                        paths.push(PathBuf::from(a));
                    }
                }
            }
        }
        let [backing, mountpoint] = paths.as_slice() else {
            bail!("expected BACKING and MOUNTPOINT\n{USAGE}");
        };
        let options = Options::parse(&items.join(","))?;
        let mount = Mount::new(backing, mountpoint, &options)?;
        eprintln!(
        "beaker-testfs: {} mounted at {} ({}); umount {} to unmount, `echo cut > {}/{CONTROL}` to cut the power",
        backing.display(),
        mountpoint.display(),
        options.name,
        mountpoint.display(),
        mountpoint.display()
    );
        mount.wait()
    }
}
