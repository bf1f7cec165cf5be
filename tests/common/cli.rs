//! Helpers for the tests that run the `rotor` binary: run it, read its output, and write
//! scenario files into a scratch directory unique to the test.
#![allow(dead_code)] // each test file uses the helpers it needs

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `rotor` with `args` and waits for it.
pub(crate) fn rotor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rotor")).args(args).output().unwrap()
}

/// Output bytes as text.
pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An empty scratch directory unique to this test binary, process and `name`.
pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rotor-{}-{}-{name}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `body` to `dir/name` (creating its directories) and returns the path.
pub(crate) fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, body).unwrap();
    p.to_string_lossy().into_owned()
}
