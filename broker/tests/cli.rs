//! The `warren` binary's command line: settings it must refuse before it
//! starts anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["--listen", "127.0.0.1:0", "--data-dir", "none"])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?} was not refused");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn a_memory_limit_must_be_a_size_or_a_fraction() {
    for bad in ["lots", "1.5", "12XB"] {
        let err = refused(&["--memory-limit", bad]);
        assert!(err.contains("--memory-limit"), "{err}");
    }
}

#[test]
fn an_unknown_fsync_policy_is_refused() {
    let err = refused(&["--fsync", "sometimes"]);
    assert!(err.contains("sometimes") || err.contains("fsync"), "{err}");
}
