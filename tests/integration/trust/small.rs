//! [trust] 12 through the binary: what `store init` prints keeps the path as given; a catalogue
//! whose size disagrees with a healthy blob is told apart from a damaged blob; a configuration
//! file someone else could have written is refused.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::*;

#[test]
fn store_init_prints_the_store_path_as_given() {
    let mut env = Env::new();
    env.store = env.path("Lab/Models");
    let run = env.run(&["store", "init"]);
    assert_eq!(run.ok(), env.store.display().to_string());
    let ready = format!(
        "store ready: {} (private, locking flock)",
        env.store.display()
    );
    assert!(run.stderr.contains(&ready), "{run:?}");
    env.run(&["store", "init", "--shared", "group"]).fails(
        2,
        &[
            &env.store.display().to_string(),
            "already exists as private",
        ],
    );
}

#[test]
fn a_catalogue_whose_size_disagrees_with_a_healthy_blob_says_so_not_that_the_blob_is_damaged() {
    let env = Env::new();
    let body = b"labels of a tiny model\n";
    let src = env.file("src/labels.txt", body);
    env.run(&["store", "add", src.to_str().unwrap(), "--name", "mine"])
        .ok();
    let hex = blake3_hex(body);
    let wrong = body.len() + 1;
    let cat = env.file(
        "catalogue/models.toml",
        format!(
            "version = 1\n[models.labels]\nblake3 = \"{hex}\"\nsize = {wrong}\nurls = [\"{}\"]\n",
            src.display()
        )
        .as_bytes(),
    );
    let pull = |env: &Env| crate::pull::pull(env, &cat, &["labels", "--offline"]);
    let run = pull(&env);
    run.fails(
        2,
        &[
            &format!("pins blob {hex} at {wrong} bytes"),
            &format!("the store holds that blob with {} bytes", body.len()),
            "the stored blob is healthy and the entry's size is wrong",
            &format!("correct `size` (to {})", body.len()),
        ],
    );
    assert!(!run.stderr.contains("damaged"), "{run:?}");
    // A blob that really is damaged (cut short by hand) is still called damaged.
    let blob = env.store.join("blobs").join(&hex);
    std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&blob, &body[..5]).unwrap();
    pull(&env).fails(1, &["exists but is damaged", "beaker store verify"]);
}

/// `beaker store dir` reading `system` as the system configuration file (no user file).
fn store_dir_with(env: &Env, system: &Path) -> Run {
    let mut c = Command::new(BIN);
    c.env_remove("BEAKER_STORE")
        .env("BEAKER_CONFIG", env.path("no-user-config.toml"))
        .env("BEAKER_SYSTEM_CONFIG", system)
        .args(["store", "dir"])
        .stdin(Stdio::null());
    Run::from(c.output().expect("spawn beaker"))
}

#[test]
fn a_system_config_file_every_user_may_write_is_refused_with_the_chmod_that_fixes_it() {
    let env = Env::new();
    let etc = env.path("etc");
    let system = env.file("etc/config.toml", b"store = \"/srv/elsewhere\"\n");
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(store_dir_with(&env, &system).ok(), "/srv/elsewhere");
    std::fs::set_permissions(&system, std::fs::Permissions::from_mode(0o666)).unwrap();
    let run = store_dir_with(&env, &system);
    run.fails(
        2,
        &[
            &format!("refusing the configuration file {}", system.display()),
            "mode 0666",
            "every user may write it",
            &format!("chmod o-w {}", system.display()),
        ],
    );
    assert!(!run.stdout.contains("/srv/elsewhere"), "{run:?}");
    // A directory anyone may write, without the sticky bit: anyone could replace the file.
    std::fs::set_permissions(&system, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o777)).unwrap();
    store_dir_with(&env, &system).fails(
        2,
        &["no sticky bit", &format!("chmod o-w {}", etc.display())],
    );
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert_eq!(store_dir_with(&env, &system).ok(), "/srv/elsewhere");
}

#[test]
fn a_config_file_owned_by_another_user_is_refused() {
    if !root_only("it gives a file to another user (chown)") {
        return;
    }
    let env = Env::new();
    let system = env.file("config.toml", b"store = \"/srv/elsewhere\"\n");
    std::os::unix::fs::chown(&system, Some(65534), None).unwrap();
    store_dir_with(&env, &system).fails(
        2,
        &[
            "refusing the configuration file",
            "not to root",
            &format!("chown root {}", system.display()),
        ],
    );
    std::os::unix::fs::chown(&system, Some(0), None).unwrap();
    assert_eq!(store_dir_with(&env, &system).ok(), "/srv/elsewhere");
}
