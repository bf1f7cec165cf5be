//! `rotor plan`: one seller's pool, three ways, side by side.

use rotor_sim::plan::{PlanInput, plan};
use rotor_sim::scenario::PolicyChoice;
use rotor_sim::scenario::value::parse_duration;

use super::CliError;
use crate::cli::{PlanArgs, PolicyArg};
use crate::exit;

impl TryFrom<&PlanArgs> for PlanInput {
    type Error = CliError;

    fn try_from(a: &PlanArgs) -> Result<Self, CliError> {
        let interval =
            parse_duration(&a.interval).map_err(|e| CliError::bad_input(format!("--interval: {e}")))?;
        let duration =
            parse_duration(&a.duration).map_err(|e| CliError::bad_input(format!("--duration: {e}")))?;
        if a.skus == 0 || a.skus > 100_000 {
            return Err(CliError::bad_input(format!("--skus is {}; valid: 1 to 100000", a.skus)));
        }
        if interval.as_millis() < 1_000 {
            return Err(CliError::bad_input("--interval must be at least 1s"));
        }
        if duration.as_millis() < 3_600_000 {
            return Err(CliError::bad_input(
                "--duration must be at least 1h, so that proxies rest and come back",
            ));
        }
        Ok(PlanInput {
            skus: a.skus,
            interval,
            policy: match a.policy {
                PolicyArg::Rest => PolicyChoice::Rest,
                PolicyArg::Window => PolicyChoice::Window,
                PolicyArg::Rate => PolicyChoice::Rate,
            },
            hypothesis: a.hypothesis.choice(),
            duration,
            seed: a.seed,
        })
    }
}

pub(crate) fn run(args: &PlanArgs) -> Result<u8, CliError> {
    let input = PlanInput::try_from(args)?;
    eprintln!(
        "rotor plan: {} SKUs every {}, {} policy, {} hypotheses; simulating {} runs (seed={})",
        input.skus,
        args.interval,
        input.policy.name(),
        input.hypothesis.name(),
        args.duration,
        input.seed
    );
    let p = plan(&input).map_err(|e| CliError::internal(format!("{e}")))?;
    println!(
        "{:<8}  {:>22}  {:>17}  {:>12}  {:>10}",
        "module", "load", "seed's arithmetic", "steady state", "simulated"
    );
    let mut total = [0u32; 3];
    let mut complete = true;
    for m in &p.modules {
        let load =
            format!("{} req / {}", m.requests_per_cycle, rotor_sim::verdict::fmt_ms(m.cycle.as_millis()));
        let sim = m.simulated.map_or_else(|| format!("> {}", m.searched_up_to), |s| s.to_string());
        println!(
            "{:<8}  {:>22}  {:>17}  {:>12}  {:>10}",
            m.module.name(),
            load,
            m.seed_estimate,
            m.steady_state,
            sim
        );
        total[0] += m.seed_estimate;
        total[1] += m.steady_state;
        match m.simulated {
            Some(s) => total[2] += s,
            None => complete = false,
        }
    }
    let cost = |n: u32| f64::from(n) / 100.0 * p.price_per_100_usd;
    println!(
        "{:<8}  {:>22}  {:>17}  {:>12}  {:>10}",
        "total",
        "",
        format!("{} (${:.2})", total[0], cost(total[0])),
        format!("{} (${:.2})", total[1], cost(total[1])),
        if complete { format!("{} (${:.2})", total[2], cost(total[2])) } else { "none".to_owned() }
    );
    println!("(costs per seller per 30 days at ${:.2} per 100 proxies)", p.price_per_100_usd);
    let notes: Vec<String> = p.modules.iter().flat_map(rotor_sim::plan::ModulePlan::disagreements).collect();
    if notes.is_empty() {
        println!("\nThe three answers agree within one proxy.");
    } else {
        println!("\nWhere they disagree:");
        for n in notes {
            println!("- {n}");
        }
    }
    Ok(exit::OK)
}
