//! `rotor sweep`: a scenario over a grid, in parallel, with a progress bar.

use std::io::IsTerminal;
use std::time::Instant as WallClock;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rotor_sim::scenario::Scenario;
use rotor_sim::sweep::{points, run_all};

use super::CliError;
use crate::cli::SweepArgs;
use crate::exit;

/// Runs the grid and writes its report; exits 0 (a sweep has no pass or fail of its own).
pub(crate) fn run(args: &SweepArgs) -> Result<u8, CliError> {
    let mut sc = Scenario::load(&args.scenario).map_err(CliError::bad_input)?;
    let Some(mut spec) = sc.sweep.clone() else {
        return Err(CliError::bad_input(format!(
            "{}: no [sweep] table; add one with lists such as `skus = [500, 1000]` and `demper = [50, 70, 90]` (docs/scenarios.md)",
            args.scenario.display()
        )));
    };
    if !args.hypothesis.is_empty() {
        spec.hypothesis = args.hypothesis.iter().map(|h| h.choice()).collect();
    }
    if let Some(path) = &args.limits {
        sc.kaspi.hypotheses = Scenario::load(path).map_err(CliError::bad_input)?.kaspi.hypotheses;
        spec.hypothesis = vec![rotor_sim::scenario::HypothesisChoice::File];
    }
    if args.max_steps == 0 {
        return Err(CliError::bad_input("--max-steps must be at least 1"));
    }
    let n = points(&spec).len() as u64;
    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::hidden())
    } else {
        ProgressBar::new(n)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} runs, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if !args.quiet {
        tracing::info!(
            "rotor sweep: {} with {n} grid points on {} threads, seed={}",
            sc.name,
            rayon_threads(),
            sc.seed
        );
    }
    let started = WallClock::now();
    let mut results = run_all(&sc, &spec, args.max_steps, &|| bar.inc(1))
        .map_err(|e| CliError::internal(format!("{e} (seed={})", sc.seed)))?;
    // Each frontier answer again under the next seeds, every module at once, before it is
    // reported.
    rotor_sim::sweep::verify_frontier(&mut results, &sc, args.max_steps)
        .map_err(|e| CliError::internal(format!("{e} (seed={})", sc.seed)))?;
    bar.finish_and_clear();
    let front = rotor_sim::report::sweep::write(&sc, &results, &args.out)
        .map_err(|e| CliError::internal(format!("cannot write into {}: {e}", args.out.display())))?;
    println!(
        "{:>6}  {:>9}  {:>7}  {:>10}  {:>6}  {:>6}  {:>7}  {:>14}",
        "skus", "interval", "policy", "hypotheses", "demper", "orders", "catalog", "cost/user/30d"
    );
    let opt = |v: Option<u32>| v.map_or_else(|| "-".to_owned(), |x| x.to_string());
    for f in &front {
        println!(
            "{:>6}  {:>9}  {:>7}  {:>10}  {:>6}  {:>6}  {:>7}  {:>14}",
            f.skus,
            rotor_sim::verdict::fmt_ms(f.interval.as_millis()),
            f.policy.name(),
            f.hypothesis.name(),
            opt(f.demper),
            opt(f.orders),
            opt(f.catalog),
            f.cost_per_user_usd.map_or_else(|| "-".to_owned(), |c| format!("${c:.2}"))
        );
    }
    if !args.quiet {
        tracing::info!(
            "rotor sweep: {n} runs in {:.1}s wall; report in {}",
            started.elapsed().as_secs_f64(),
            args.out.join("report.html").display()
        );
    }
    Ok(exit::OK)
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}
