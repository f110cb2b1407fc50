//! [trust] 12 through the binary: what `store init` prints keeps the path as given; a catalogue
//! whose size disagrees with a healthy blob is told apart from a damaged blob; a configuration
//! file someone else could have written is refused.

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
