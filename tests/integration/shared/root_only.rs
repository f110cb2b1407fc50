//! The switch for tests that need root (`testkit::users::root_only`; its decision table is tested
//! in the kit): as root they run; as another user they say "not run" and pass; with
//! `BEAKER_TEST_REQUIRE_ROOT=1` (CI) "not run" is a failure.

use std::process::{Command, Stdio};

use crate::support::*;

#[test]
fn a_root_only_test_run_by_another_user_says_not_run_or_fails_when_root_is_required() {
    // Runs one real root-only test of this binary as `nobody`, as a laptop user would.
    if !root_only("it runs this test binary as `nobody` through setpriv") {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let test = "shared::store::alice_adds_bob_reuses_the_blob_and_can_remove_it";
    let run = |require: Option<&str>| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env_remove(REQUIRE_ROOT_VAR)
            .stdin(Stdio::null());
        if let Some(v) = require {
            c.env(REQUIRE_ROOT_VAR, v);
        }
        Run::from(c.output().unwrap())
    };
    let laptop = run(None);
    assert_eq!(laptop.code, 0, "{laptop:#?}");
    assert!(
        laptop.stderr.contains(&format!(
            "not run: {test}: needs root: it creates the users"
        )),
        "{laptop:#?}"
    );
    assert!(laptop.stdout.contains("1 passed"), "{laptop:#?}");
    let ci = run(Some("1"));
    assert_eq!(ci.code, 101, "{ci:#?}");
    assert!(
        ci.stdout.contains("1 failed") && ci.stderr.contains("BEAKER_TEST_REQUIRE_ROOT=1 demands"),
        "{ci:#?}"
    );
}
