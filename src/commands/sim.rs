//! `rotor sim`: one scenario through the simulator.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant as WallClock;

use rotor_sim::run::{Progress, RunOptions};
use rotor_sim::scenario::Scenario;
use rotor_sim::verdict;

use super::CliError;
use crate::cli::SimArgs;
use crate::exit;

/// Scenarios compiled into the binary, so `rotor sim` works from any directory.
pub(crate) const BUILTIN: &[(&str, &str)] = &[("seed-500", include_str!("../../scenarios/seed-500.toml"))];

/// A scenario file, or a built-in scenario by name.
pub(crate) fn load_scenario(which: &str) -> Result<Scenario, CliError> {
    let path = Path::new(which);
    if path.exists() {
        Scenario::load(path).map_err(CliError::bad_input)
    } else if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == which) {
        Scenario::parse(name, &format!("<built-in {name}>"), text).map_err(CliError::bad_input)
    } else {
        let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
        Err(CliError::bad_input(format!(
            "no scenario file `{which}`, and no built-in scenario of that name; built-in: {}",
            names.join(", ")
        )))
    }
}

/// A validated `rotor sim` invocation.
pub(crate) struct SimConfig {
    scenario: Scenario,
    out: Option<PathBuf>,
    trace: Option<PathBuf>,
    max_steps: u64,
    timeline_user: u32,
    quiet: bool,
    shrink: bool,
    baseline: Option<rotor_sim::diff::Side>,
}

impl TryFrom<SimArgs> for SimConfig {
    type Error = CliError;

    fn try_from(args: SimArgs) -> Result<Self, CliError> {
        let which = args.scenario.unwrap_or_else(|| "seed-500".to_owned());
        let mut scenario = load_scenario(&which)?;
        if let Some(seed) = args.seed {
            scenario.seed = seed;
            scenario.engine.seed = seed;
        }
        if args.max_steps == 0 {
            return Err(CliError::bad_input("--max-steps must be at least 1"));
        }
        Ok(SimConfig {
            scenario,
            out: args.out,
            trace: args.trace,
            max_steps: args.max_steps,
            timeline_user: args.timeline_user,
            quiet: args.quiet,
            shrink: args.shrink,
            baseline: args
                .baseline
                .as_deref()
                .map(rotor_sim::diff::read_side)
                .transpose()
                .map_err(CliError::bad_input)?,
        })
    }
}

/// Runs the scenario, prints the verdicts, writes the files; returns 0 or 3.
pub(crate) fn run(cfg: &SimConfig) -> Result<u8, CliError> {
    let sc = &cfg.scenario;
    if !cfg.quiet {
        tracing::info!("rotor sim: scenario {} seed={} duration={}", sc.name, sc.seed, sc.duration);
    }
    let mut trace_file = match &cfg.trace {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p)
                .map_err(|e| CliError::bad_input(format!("cannot create {}: {e}", p.display())))?,
        )),
        None => None,
    };
    let show_progress = !cfg.quiet && std::io::stderr().is_terminal();
    let mut progress = |p: Progress| {
        let pct = (p.now_ms as f64 / p.duration_ms.max(1) as f64 * 100.0).min(100.0);
        eprint!("\r  simulated {:>5.1}% of {}  ({} events)   ", pct, sc.duration, p.steps);
    };
    let started = WallClock::now();
    let opts = RunOptions {
        max_steps: cfg.max_steps,
        trace: trace_file.as_mut().map(|w| w as &mut dyn Write),
        progress: if show_progress { Some(&mut progress) } else { None },
        timeline_user: Some(cfg.timeline_user),
        engine_hook: None,
    };
    let report =
        rotor_sim::run::run(sc, opts).map_err(|e| CliError::internal(format!("{e} (seed={})", sc.seed)))?;
    if let Some(mut w) = trace_file {
        w.flush().map_err(|e| CliError::internal(format!("cannot write the trace: {e}")))?;
    }
    let wall = started.elapsed();
    if show_progress {
        eprint!("\r{:70}\r", "");
    }
    let verdicts = verdict::verdicts(sc, &report.summary);
    print!("{}", verdict::table(&verdicts));
    let s = &report.summary;
    let (line, _) = verdict::outcome(sc, s, &verdicts);
    println!("\nverdict: {line}");
    print!("\n{}", verdict::figures(s));
    if let Some(dir) = &cfg.out {
        rotor_sim::output::write_all(&report, dir)
            .map_err(|e| CliError::internal(format!("cannot write into {}: {e}", dir.display())))?;
        let mut origin = rotor_sim::report::html::Origin::default();
        if let Some(base) = &cfg.baseline {
            let this = rotor_sim::diff::Side::of_summary(
                &report.summary,
                &dir.join("summary.json").display().to_string(),
            );
            let d = rotor_sim::diff::compare(base, &this);
            origin.section = d.html();
            std::fs::write(dir.join("diff.md"), d.markdown(false))
                .map_err(|e| CliError::internal(format!("cannot write into {}: {e}", dir.display())))?;
        }
        rotor_sim::report::write_with(sc, &report, &verdicts, dir, &origin).map_err(|e| {
            CliError::internal(format!("cannot write the report into {}: {e}", dir.display()))
        })?;
    }
    let pass = verdict::all_pass(&verdicts);
    if cfg.shrink
        && let Some(failed) = verdicts.iter().find(|v| v.failed())
    {
        let dir = cfg.out.clone().unwrap_or_default();
        let path = super::shrink::shrunk_path(&dir, &sc.name, sc.seed);
        if !cfg.quiet {
            tracing::info!(
                "rotor sim: shrinking the scenario while `{}` fails (seed={})",
                failed.id,
                sc.seed
            );
        }
        let replay = super::shrink::shrink_to_file(sc, sc.seed, &failed.id, &path, cfg.max_steps, cfg.quiet)?;
        println!("\nshrunk: {} still fails `{}`; replay: {replay}", path.display(), failed.id);
    }
    if !cfg.quiet {
        tracing::info!(
            "rotor sim: {} in {:.2}s wall ({} events); seed={}",
            if pass { line } else { format!("CHECKS FAILED: {line}") },
            wall.as_secs_f64(),
            s.steps,
            sc.seed
        );
    }
    Ok(if pass { exit::OK } else { exit::FAILED_CHECK })
}
