//! The commit rotor was built from, for `rotor_build_info` on `/metrics`: `git rev-parse` when
//! the source is a git checkout, `ROTOR_COMMIT` when a packager sets it, else "unknown".

fn main() {
    println!("cargo:rerun-if-env-changed=ROTOR_COMMIT");
    // The checkout's HEAD and its branches: a new commit renews the build info. Named only when
    // they exist: a path that does not would rerun this script, and rebuild the crate, every time.
    for path in ["../../.git/HEAD", "../../.git/refs/heads"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = std::env::var("ROTOR_COMMIT").ok().filter(|c| !c.is_empty()).or_else(|| {
        let out =
            std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
    });
    println!("cargo:rustc-env=ROTOR_COMMIT={}", commit.as_deref().unwrap_or("unknown"));
}
