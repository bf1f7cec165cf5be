//! rotor CLI.
fn main() {}
