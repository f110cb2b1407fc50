//! The exit-code contract (0 ok, 1 failed, 2 bad input, 3 not present) where issue 8 found it
//! inconsistent, and catalogue URLs that are not URLs beaker fetches. Each test is named after the
//! rule it pins.

use crate::pull::{catalogue, pull_cmd};
use crate::support::*;

#[test]
fn data_javascript_unknown_schemes_and_bad_ports_are_refused_with_file_line_col() {
    let env = Env::new();
    for (url, needle) in [
        (
            "data:application/octet-stream,AAAA",
            "unsupported scheme \"data\"",
        ),
        ("javascript:alert(1)", "unsupported scheme \"javascript\""),
        ("gopher://h/m", "unsupported scheme \"gopher\""),
        (
            "http://127.0.0.1:99999/m",
            "port \"99999\" is not a number from 1 to 65535",
        ),
        ("http://127.0.0.1:0/m", "port \"0\""),
        ("http:///m", "it has no host"),
    ] {
        let cat = catalogue(&env, &[("m", b"bytes", vec![url.to_string()])]);
        let at = format!("{}:5:10: model m: url {url:?}", cat.display());
        env.run(&["manifest", "check", cat.to_str().unwrap()])
            .fails(2, &[&at, needle]);
        // Refused at catalogue load too: never tried as a relative path, never sent anywhere.
        let run = Run::from(pull_cmd(&env, &cat).arg("m").output().unwrap());
        run.fails(2, &[&at, needle]);
        assert!(!run.stderr.contains("the server answered"), "{run:#?}");
        assert!(!run.stderr.contains("no such file"), "{run:#?}");
    }
}
