//! R4's inputs: the malformed catalogues, names, hashes, command lines, `store.toml` and config
//! files, each with the exit code docs/cli.md promises for it.

// The FIFO fixture is made with mkfifo(1), outside the store under test.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use testkit::lab::{bytes, Lab};

/// One bad input: a label, how to run it, and the promised exit code.
pub struct Input {
    pub kind: &'static str,
    pub what: String,
    pub how: How,
    pub expect: i32,
}

pub enum How {
    /// `beaker --manifest <file with this text> store pull good`
    Catalogue(Vec<u8>),
    /// `beaker --manifest PATH store pull good` (a path that is not a catalogue file)
    CataloguePath(PathBuf),
    /// `beaker` with these arguments after `--store STORE`
    Args(Vec<String>),
    /// `beaker store ls` on a copy of the store whose store.toml holds this text
    StoreToml(String),
    /// `beaker --store STORE config show` with this user configuration file
    Config(String),
}

const GOOD: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn entry(body: &str) -> Vec<u8> {
    format!("version = 1\n[models.good]\n{body}\n").into_bytes()
}

fn single(blake3: &str, size: &str, urls: &str) -> Vec<u8> {
    entry(&format!("blake3 = {blake3}\nsize = {size}\nurls = {urls}"))
}

pub fn inputs(lab: &Lab) -> Result<Vec<Input>> {
    let mut v = Vec::new();
    let mut cat = |what: &str, text: Vec<u8>| {
        v.push(Input {
            kind: "catalogue",
            what: what.to_owned(),
            how: How::Catalogue(text),
            expect: 2,
        })
    };
    let h = format!("\"{GOOD}\"");
    let u = "[\"m.bin\"]";
    cat("empty file", Vec::new());
    cat("no version", b"[models.good]\nsize = 1\n".to_vec());
    cat("version = 2", b"version = 2\n".to_vec());
    cat("version = \"1\"", b"version = \"1\"\n".to_vec());
    cat("not TOML", b"version = 1\n[[[models\n".to_vec());
    cat("binary garbage", bytes(4096, 7));
    cat("not UTF-8", b"version = 1\n# \xff\xfe\n".to_vec());
    cat(
        "unknown top-level key",
        b"version = 1\nmodles = 3\n".to_vec(),
    );
    cat(
        "unknown model key",
        entry(&format!(
            "blake3 = {h}\nsize = 1\nurls = {u}\ncolour = \"red\""
        )),
    );
    cat(
        "models is a string",
        b"version = 1\nmodels = \"x\"\n".to_vec(),
    );
    cat(
        "model is a number",
        b"version = 1\n[models]\ngood = 3\n".to_vec(),
    );
    for (what, b) in [
        ("blake3 of 63 hex digits", format!("\"{}\"", &GOOD[1..])),
        ("blake3 of 65 hex digits", format!("\"{GOOD}0\"")),
        ("blake3 in upper case", format!("\"{}\"", "A".repeat(64))),
        ("blake3 not hex", format!("\"{}\"", "g".repeat(64))),
        ("blake3 with a space", format!("\"{} \"", &GOOD[1..])),
        ("blake3 a number", "7".to_owned()),
        ("blake3 empty", "\"\"".to_owned()),
        ("blake3 with a 0x prefix", format!("\"0x{}\"", &GOOD[2..])),
        ("blake3 path-like", format!("\"../{}\"", &GOOD[3..])),
    ] {
        cat(what, single(&b, "1", u));
    }
    for (what, s) in [
        ("size negative", "-1"),
        ("size a string", "\"1\""),
        ("size a float", "1.5"),
        ("size beyond u64", "99999999999999999999"),
    ] {
        cat(what, single(&h, s, u));
    }
    cat(
        "size without blake3",
        entry(&format!("size = 1\nurls = {u}")),
    );
    cat(
        "neither blake3 nor sha256 nor md5",
        entry(&format!("urls = {u}")),
    );
    for (what, s) in [
        (
            "sha256 of 63 hex digits",
            format!("sha256 = \"{}\"", "a".repeat(63)),
        ),
        ("sha256 not hex", format!("sha256 = \"{}\"", "z".repeat(64))),
        (
            "md5 of 31 hex digits",
            format!("md5 = \"{}\"", "a".repeat(31)),
        ),
        (
            "md5 of 64 hex digits",
            format!("md5 = \"{}\"", "a".repeat(64)),
        ),
    ] {
        cat(what, entry(&format!("{s}\nurls = {u}")));
    }
    for (what, url) in [
        ("URL javascript:", "javascript:alert(1)"),
        ("URL data:", "data:text/plain,hi"),
        ("URL ftp://", "ftp://example.org/m"),
        ("URL gopher://", "gopher://example.org/m"),
        ("URL port 0", "http://127.0.0.1:0/m"),
        ("URL port 65536", "http://127.0.0.1:65536/m"),
        ("URL port 99999999", "https://example.org:99999999/m"),
        ("URL without host", "https:///m"),
        ("URL file: relative", "file:m.bin"),
        ("URL empty", ""),
        ("URL scheme only", "http://"),
        ("URL with a space in the host", "http://exa mple.org/m"),
    ] {
        cat(what, single(&h, "1", &format!("[{url:?}]")));
    }
    cat("urls a string", single(&h, "1", "\"m.bin\""));
    cat("urls of numbers", single(&h, "1", "[1, 2]"));
    for (what, name) in [
        ("name in upper case", "Good"),
        ("name with ..", "a..b"),
        ("name starting with -", "-x"),
        ("name starting with .", ".x"),
        ("name of 129 characters", &*"n".repeat(129)),
        ("name with a space", "a b"),
        ("name not ASCII", "mödel"),
        ("name with three parts", "a/b/c"),
        ("name with an empty part", "org/"),
        ("name with a backslash", "a\\\\b"),
    ] {
        cat(
            what,
            format!("version = 1\n[models.\"{name}\"]\nblake3 = {h}\nsize = 1\nurls = {u}\n")
                .into_bytes(),
        );
    }
    cat(
        "format tensorflow",
        entry(&format!(
            "blake3 = {h}\nsize = 1\nurls = {u}\nformat = \"tensorflow\""
        )),
    );
    cat(
        "check a string",
        entry(&format!(
            "blake3 = {h}\nsize = 1\nurls = {u}\ncheck = \"yes\""
        )),
    );
    cat(
        "description a number",
        entry(&format!(
            "blake3 = {h}\nsize = 1\nurls = {u}\ndescription = 5"
        )),
    );
    let file = |path: &str| {
        format!("[[models.good.files]]\npath = {path:?}\nblake3 = {h}\nsize = 1\nurls = {u}\n")
    };
    for (what, files) in [
        ("file path ..", file("../x")),
        ("file path absolute", file("/etc/passwd")),
        ("file path empty", file("")),
        ("file path with .", file("a/./b")),
        ("file path with a backslash", file("a\\\\b")),
        ("file path with a control character", file("a\u{1}b")),
        ("two files of one path", [file("a"), file("a")].concat()),
        (
            "a file that is the directory of another",
            [file("a"), file("a/b")].concat(),
        ),
        (
            "files and a top-level blake3",
            format!("blake3 = {h}\n{}", file("a")),
        ),
    ] {
        cat(
            what,
            format!("version = 1\n[models.good]\n{files}").into_bytes(),
        );
    }
    cat(
        "files empty",
        b"version = 1\n[models.good]\nfiles = []\n".to_vec(),
    );
    cat(
        "main not among the files",
        format!("version = 1\n[models.good]\nmain = \"zz\"\n{}", file("a")).into_bytes(),
    );
    cat("catalogue of 17 MiB", {
        let mut t = b"version = 1\n".to_vec();
        t.extend(std::iter::repeat_n(b'#', 17 << 20));
        t
    });

    // Paths that are not catalogue files.
    let fifo = lab.path("catalogue.fifo");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .context("run mkfifo")?;
    anyhow::ensure!(made.success(), "mkfifo {}", fifo.display());
    for (what, p) in [
        ("catalogue is a FIFO", fifo),
        ("catalogue is /dev/zero", PathBuf::from("/dev/zero")),
        ("catalogue is a directory", lab.path("")),
        ("catalogue is missing", lab.path("no-such.toml")),
    ] {
        v.push(Input {
            kind: "catalogue",
            what: what.to_owned(),
            how: How::CataloguePath(p),
            expect: 2,
        });
    }

    // Names and command lines.
    let mut args = |kind: &'static str, what: &str, a: &[&str], expect: i32| {
        v.push(Input {
            kind,
            what: what.to_owned(),
            how: How::Args(a.iter().map(|s| (*s).to_owned()).collect()),
            expect,
        })
    };
    for name in [
        "UPPER",
        "a..b",
        ".hidden",
        "a/b/c",
        "a b",
        "mödel",
        "org/",
        "/abs",
        "a\\b",
        &*"n".repeat(129),
        "",
    ] {
        args(
            "name",
            &format!("pull {name:?}"),
            &["store", "pull", name],
            2,
        );
    }
    for name in ["UPPER", "a..b", "../../etc"] {
        args(
            "name",
            &format!("add --name {name:?}"),
            &["store", "add", "/etc/hostname", "--name", name],
            2,
        );
        args(
            "name",
            &format!("path {name:?}"),
            &["store", "path", name],
            2,
        );
    }
    // 63 hex digits are a valid name, which the store does not hold.
    args(
        "hash",
        "show of 63 hex digits",
        &["store", "show", &GOOD[1..]],
        3,
    );
    args(
        "hash",
        "show of 64 upper-case hex digits",
        &["store", "show", &"A".repeat(64)],
        2,
    );
    args(
        "hash",
        "show of 65 hex digits",
        &["store", "show", &format!("{GOOD}0")],
        3,
    );
    args(
        "hash",
        "show of an unknown hash",
        &["store", "show", GOOD],
        3,
    );
    for (what, a) in [
        ("unknown subcommand", vec!["store", "explode"]),
        ("unknown flag", vec!["store", "ls", "--colour"]),
        ("pull with no name", vec!["store", "pull"]),
        (
            "gc --tmp-age banana",
            vec!["store", "gc", "--tmp-age", "banana"],
        ),
        ("gc --tmp-age -1d", vec!["store", "gc", "--tmp-age", "-1d"]),
        (
            "gc --max-size 12Q",
            vec!["store", "gc", "--max-size", "12Q"],
        ),
        (
            "gc --max-size 18446744073709551616",
            vec!["store", "gc", "--max-size", "18446744073709551616"],
        ),
        (
            "gc --older-than 5parsecs",
            vec!["store", "gc", "--older-than", "5parsecs"],
        ),
        ("gc --min-age ''", vec!["store", "gc", "--min-age", ""]),
        (
            "pull --lock-timeout soon",
            vec!["store", "pull", "--lock-timeout", "soon", "x"],
        ),
        (
            "add a missing file",
            vec!["store", "add", "/nonexistent/model.onnx", "--name", "x"],
        ),
        (
            "add /dev/zero",
            vec!["store", "add", "/dev/zero", "--name", "x"],
        ),
        ("add a FIFO", vec!["store", "add", "FIFO", "--name", "x"]),
        (
            "add an empty directory",
            vec!["store", "add", "EMPTY", "--name", "x"],
        ),
        (
            "init --locking maybe",
            vec!["store", "init", "--locking", "maybe"],
        ),
        (
            "init --shared with a group that does not exist",
            vec![
                "store",
                "init",
                "--shared",
                "group",
                "--group",
                "no-such-group-xyz",
            ],
        ),
        (
            "export to a file in the way",
            vec!["store", "export", "good", "INWAY"],
        ),
        (
            "verify an unknown name",
            vec!["store", "verify", "no-such-name"],
        ),
        ("rm an unknown name", vec!["store", "rm", "no-such-name"]),
        ("pin an unknown name", vec!["store", "pin", "no-such-name"]),
        (
            "--json with a bad flag",
            vec!["--json", "store", "gc", "--tmp-age", "x"],
        ),
    ] {
        // A name the store does not hold is exit 3 whichever command asks ([cli] 7).
        let code = if what.ends_with("an unknown name") {
            3
        } else {
            2
        };
        args("command line", what, &a, code);
    }

    // store.toml files.
    for (what, text) in [
        ("empty", ""),
        (
            "format 99",
            "format = 99\nmode = \"private\"\nlocking = \"flock\"\n",
        ),
        (
            "format a string",
            "format = \"2\"\nmode = \"private\"\nlocking = \"flock\"\n",
        ),
        (
            "mode public",
            "format = 2\nmode = \"public\"\nlocking = \"flock\"\n",
        ),
        (
            "locking maybe",
            "format = 2\nmode = \"private\"\nlocking = \"maybe\"\n",
        ),
        (
            "unknown key",
            "format = 2\nmode = \"private\"\nlocking = \"flock\"\ncolour = 1\n",
        ),
        (
            "max_size lots",
            "format = 2\nmode = \"private\"\nlocking = \"flock\"\nmax_size = \"lots\"\n",
        ),
        (
            "max_size a number",
            "format = 2\nmode = \"private\"\nlocking = \"flock\"\nmax_size = 5\n",
        ),
        (
            "min_age forever",
            "format = 2\nmode = \"private\"\nlocking = \"flock\"\nmin_age = \"forever\"\n",
        ),
        ("not TOML", "format = = 2\n"),
        ("not UTF-8", "format = 2 # \u{fffd}\n\u{0}\n"),
        (
            "format 0",
            "format = 0\nmode = \"private\"\nlocking = \"flock\"\n",
        ),
    ] {
        v.push(Input {
            kind: "store.toml",
            what: what.to_owned(),
            how: How::StoreToml(text.to_owned()),
            expect: 2,
        });
    }
    for (what, text) in [
        ("config: not TOML", "store = \n"),
        ("config: unknown key", "colour = 1\n"),
        ("config: offline a string", "offline = \"yes\"\n"),
        ("config: retries negative", "retries = -1\n"),
        (
            "config: stall_timeout banana",
            "stall_timeout = \"banana\"\n",
        ),
    ] {
        v.push(Input {
            kind: "config file",
            what: what.to_owned(),
            how: How::Config(text.to_owned()),
            expect: 2,
        });
    }
    Ok(v)
}
