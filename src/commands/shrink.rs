//! `--shrink` for `rotor sim` and `rotor test`: a failed check's scenario made small, written
//! next to the output with its seed, and the command that replays it.

use std::path::{Path, PathBuf};

use rotor_sim::scenario::Scenario;
use rotor_sim::shrink::shrink;

use super::CliError;

/// The most runs one shrink may make.
pub(crate) const MAX_RUNS: u32 = 300;

/// Where a shrunk copy of `file` (seed `seed`) goes: in `dir`, named after the file.
pub(crate) fn shrunk_path(dir: &Path, scenario: &str, seed: u64) -> PathBuf {
    dir.join(format!("{scenario}.seed{seed}.shrunk.toml"))
}

/// Shrinks `sc` under `seed` while check `id` fails, writes the result to `path` with a header
/// saying what it is, and returns the command that replays it.
pub(crate) fn shrink_to_file(
    sc: &Scenario,
    seed: u64,
    id: &str,
    path: &Path,
    max_steps: u64,
    quiet: bool,
) -> Result<String, CliError> {
    let mut progress = |step: &str| {
        if !quiet {
            tracing::info!("  shrink: {step}");
        }
    };
    let shrunk = shrink(sc, seed, id, MAX_RUNS, max_steps, &mut progress).map_err(CliError::internal)?;
    let s = &shrunk.scenario;
    let header = format!(
        "# Shrunk by rotor from {} (seed {seed}): check `{id}` still fails ({}).\n\
         # {} runs; kept: {}.\n# {} users x {}..{} SKUs, {} proxies each, {}, {} faults.\n",
        sc.name,
        shrunk.figure,
        shrunk.runs,
        if shrunk.steps.is_empty() { "nothing smaller failed".to_owned() } else { shrunk.steps.join("; ") },
        s.users.count,
        s.users.skus.lo,
        s.users.skus.hi,
        s.users.split.total(),
        s.duration,
        s.faults.len()
    );
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::internal(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(path, format!("{header}{}", shrunk.toml))
        .map_err(|e| CliError::internal(format!("cannot write {}: {e}", path.display())))?;
    Ok(rotor_sim::suite::replay_command(&path.display().to_string(), seed))
}
