//! `rotor plan`: one seller's pool, three ways, side by side, under each hypothesis and policy
//! asked for, with the constraint that binds each module.

mod robust;

use rotor_sim::plan::robust::RobustInput;
use rotor_sim::plan::{ModulePlan, Plan, PlanInput, plan};
use rotor_sim::scenario::value::parse_duration;
use rotor_sim::scenario::{HypothesisChoice, PolicyChoice};
use rotor_sim::verdict::fmt_ms;

use super::CliError;
use crate::cli::{PlanArgs, PolicyArg};
use crate::exit;

const ALL_HYPOTHESES: [HypothesisChoice; 3] =
    [HypothesisChoice::Seed, HypothesisChoice::Community, HypothesisChoice::Measured];
const ALL_POLICIES: [PolicyChoice; 3] = [PolicyChoice::Rest, PolicyChoice::Window, PolicyChoice::Rate];

/// The hypotheses asked for: all three with --compare-hypotheses or --robust unless named,
/// else the seed's unless named.
fn hypotheses(a: &PlanArgs) -> Vec<HypothesisChoice> {
    if a.compare_hypotheses || (a.robust && a.hypothesis.is_empty()) {
        ALL_HYPOTHESES.to_vec()
    } else if a.hypothesis.is_empty() {
        vec![HypothesisChoice::Seed]
    } else {
        a.hypothesis.iter().map(|h| h.choice()).collect()
    }
}

/// The policies asked for, or `default` when none is named.
fn policies(asked: &[PolicyArg], default: &[PolicyChoice]) -> Vec<PolicyChoice> {
    if asked.is_empty() {
        return default.to_vec();
    }
    asked
        .iter()
        .map(|p| match p {
            PolicyArg::Rest => PolicyChoice::Rest,
            PolicyArg::Window => PolicyChoice::Window,
            PolicyArg::Rate => PolicyChoice::Rate,
        })
        .collect()
}

/// The plan's inputs, checked: one per (hypothesis, policy) pair asked for.
fn inputs(a: &PlanArgs) -> Result<Vec<PlanInput>, CliError> {
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
    if !(a.price_change_share.is_finite() && (0.0..=1.0).contains(&a.price_change_share)) {
        return Err(CliError::bad_input(format!(
            "--price-change-share is {}; valid: a share from 0 to 1",
            a.price_change_share
        )));
    }
    if !(a.margin.is_finite() && (0.1..=2.0).contains(&a.margin)) {
        return Err(CliError::bad_input(format!(
            "--margin is {}; valid: 0.1 to 2.0 (1.0 plans at the rate observed safe, 0.8 at four fifths of it)",
            a.margin
        )));
    }
    let mut out = Vec::new();
    for hypothesis in hypotheses(a) {
        for policy in policies(&a.policy, &[PolicyChoice::Rest]) {
            out.push(PlanInput {
                skus: a.skus,
                interval,
                policy,
                hypothesis,
                duration,
                seed: a.seed,
                price_change_share: a.price_change_share,
                margin: a.margin,
            });
        }
    }
    Ok(out)
}

pub(crate) fn run(args: &PlanArgs) -> Result<u8, CliError> {
    let inputs = inputs(args)?;
    if args.robust {
        return robust::run(args, &robust_input(args, &inputs));
    }
    let limits = match &args.limits {
        Some(path) => {
            let sc = rotor_sim::scenario::Scenario::load(path).map_err(CliError::bad_input)?;
            Some(sc.kaspi.hypotheses)
        }
        None => None,
    };
    let inputs: Vec<PlanInput> = match limits {
        Some(_) => {
            inputs.into_iter().map(|i| PlanInput { hypothesis: HypothesisChoice::File, ..i }).collect()
        }
        None => inputs,
    };
    let mut plans = Vec::new();
    for input in &inputs {
        tracing::info!(
            "rotor plan: {} SKUs every {}, {} policy, {} hypotheses; simulating {} runs (seed={})",
            input.skus,
            args.interval,
            input.policy.name(),
            input.hypothesis.name(),
            args.duration,
            input.seed
        );
        let planned = match &limits {
            Some(h) => rotor_sim::plan::plan_with(input, h.clone()),
            None => plan(input),
        };
        plans.push(planned.map_err(|e| CliError::internal(format!("{e}")))?);
    }
    if args.json {
        let doc: Vec<serde_json::Value> = inputs.iter().zip(&plans).map(|(i, p)| json(i, p)).collect();
        let text = serde_json::to_string_pretty(&doc).map_err(|e| CliError::internal(e.to_string()))?;
        println!("{text}");
    } else if inputs.len() > 1 {
        side_by_side(&inputs, &plans);
        if args.compare_hypotheses {
            println!();
            robust::run(args, &robust_input(args, &inputs))?;
        }
    } else if let (Some(_), Some(p)) = (inputs.first(), plans.first()) {
        table(p);
    }
    Ok(exit::OK)
}

/// The robust plan's question: the load of `inputs`, every policy unless named, every
/// hypothesis asked for.
fn robust_input(args: &PlanArgs, inputs: &[PlanInput]) -> RobustInput {
    RobustInput {
        load: inputs[0].clone(),
        policies: policies(&args.policy, &ALL_POLICIES),
        hypotheses: hypotheses(args),
    }
}

fn cost(p: &Plan, n: u32) -> f64 {
    p.cost_usd(n)
}

/// `rotor plan --json`'s schema version (`docs/schemas/plan.schema.json`), in every element.
const PLAN_SCHEMA_VERSION: u32 = 1;

/// One plan as `docs/plan-json.md` describes it.
fn json(i: &PlanInput, p: &Plan) -> serde_json::Value {
    serde_json::json!({
        "schema": "rotor-plan",
        "version": PLAN_SCHEMA_VERSION,
        "hypothesis": i.hypothesis.name(),
        "policy": i.policy.name(),
        "skus": i.skus,
        "interval_ms": i.interval.as_millis(),
        "price_change_share": i.price_change_share,
        "price_per_100_usd": p.price_per_100_usd,
        "margin": p.margin,
        "rates": p.rates.iter().map(|r| serde_json::json!({
            "hypothesis": r.hypothesis,
            "scope": r.scope,
            "modelled_per_s": r.modelled_per_s,
            "safe_per_s": r.safe_per_s,
            "banned_per_s": r.banned_per_s,
            "planned_per_s": r.planned_per_s,
        })).collect::<Vec<_>>(),
        "verified": verified_json(p),
        "modules": modules_json(p),
    })
}

/// How a plan was verified as deployed, as `rotor plan --json` writes it.
fn verified_json(p: &Plan) -> serde_json::Value {
    let v = &p.verified;
    serde_json::json!({
        "seeds": v.seeds,
        "hypotheses": v.hypotheses,
        "holds": v.holds,
        "raised_from": v.raised_from,
        "failures": v.failures,
    })
}

/// A plan's modules, by name, as `rotor plan --json` writes them.
fn modules_json(p: &Plan) -> serde_json::Value {
    let modules: serde_json::Map<String, serde_json::Value> = p
        .modules
        .iter()
        .map(|m| {
            let mut v = serde_json::json!({
                "proxies": m.simulated,
                "monthly_cost_usd": m.simulated.map(|n| (cost(p, n) * 100.0).round() / 100.0),
                "binding_constraint": m.binding.name(),
                "requests_per_cycle": m.requests_per_cycle,
                "cycle_ms": m.cycle.as_millis(),
                "seed_arithmetic": m.seed_estimate,
                "steady_state": m.steady_state,
                "searched_up_to": m.searched_up_to,
                "concurrency_floor_ms": m.concurrency_floor_ms,
                "binding_figure": m.binding_figure(),
            });
            if m.module == rotor_engine::Module::Demper {
                v["account_rate_per_s"] = serde_json::json!(m.account_rate_per_s);
                v["account_ceiling_updates_per_cycle"] =
                    serde_json::json!(m.account_ceiling_updates_per_cycle);
                v["shortest_cycle_ms"] = serde_json::json!(m.shortest_cycle_ms);
            }
            (m.module.name().to_owned(), v)
        })
        .collect();
    serde_json::Value::Object(modules)
}

/// Several plans: one row per (hypothesis, policy, module).
fn side_by_side(inputs: &[PlanInput], plans: &[Plan]) {
    println!(
        "{:<10}  {:<7}  {:<8}  {:>9}  {:>10}  {:<13}  account",
        "hypothesis", "policy", "module", "simulated", "cost/30d", "binds"
    );
    for (i, p) in inputs.iter().zip(plans) {
        for m in &p.modules {
            let sim = m.simulated.map_or_else(|| format!("> {}", m.searched_up_to), |n| n.to_string());
            let dollars = m.simulated.map_or_else(|| "-".to_owned(), |n| format!("${:.2}", cost(p, n)));
            println!(
                "{:<10}  {:<7}  {:<8}  {:>9}  {:>10}  {:<13}  {}",
                i.hypothesis.name(),
                i.policy.name(),
                m.module.name(),
                sim,
                dollars,
                m.binding.name(),
                account_note(m)
            );
        }
    }
}

fn account_note(m: &ModulePlan) -> String {
    match (m.account_ceiling_updates_per_cycle, m.shortest_cycle_ms) {
        (Some(c), Some(s)) => format!(
            "at most {c} price updates per {}; shortest cycle {}",
            fmt_ms(m.cycle.as_millis()),
            fmt_ms(s)
        ),
        _ => String::new(),
    }
}

/// One plan: the three answers per module, the totals, the binding constraint and the notes.
pub(crate) fn table(p: &Plan) {
    println!(
        "{:<8}  {:>22}  {:>17}  {:>12}  {:>10}  {:<13}",
        "module", "load", "seed's arithmetic", "steady state", "simulated", "binds"
    );
    let mut total = [0u32; 3];
    let mut complete = true;
    for m in &p.modules {
        let load = format!("{} req / {}", m.requests_per_cycle, fmt_ms(m.cycle.as_millis()));
        let sim = m.simulated.map_or_else(|| format!("> {}", m.searched_up_to), |s| s.to_string());
        println!(
            "{:<8}  {:>22}  {:>17}  {:>12}  {:>10}  {:<13}",
            m.module.name(),
            load,
            m.seed_estimate,
            m.steady_state,
            sim,
            m.binding.name()
        );
        total[0] += m.seed_estimate;
        total[1] += m.steady_state;
        match m.simulated {
            Some(s) => total[2] += s,
            None => complete = false,
        }
    }
    println!(
        "{:<8}  {:>22}  {:>17}  {:>12}  {:>10}",
        "total",
        "",
        format!("{} (${:.2})", total[0], cost(p, total[0])),
        format!("{} (${:.2})", total[1], cost(p, total[1])),
        if complete { format!("{} (${:.2})", total[2], cost(p, total[2])) } else { "none".to_owned() }
    );
    println!("(costs per seller per 30 days at ${:.2} per 100 proxies)", p.price_per_100_usd);
    if p.modules.iter().any(|m| m.module == rotor_engine::Module::Orders) {
        println!(
            "(orders' load: the list pages, one entries request per new order, and up to {} open orders \
             older than the recheck window followed by id, live mode's [orders] follow_per_poll)",
            rotor_engine::ORDERS_FOLLOW_PER_POLL
        );
    }
    for m in &p.modules {
        let note = account_note(m);
        if !note.is_empty() {
            println!("{}: the merchant account allows {note}", m.module);
        }
        println!("{} binds on {}: {}", m.module, m.binding.name(), m.binding_figure());
    }
    rates_note(p);
    verified_note(p);
    let notes: Vec<String> = p.modules.iter().flat_map(ModulePlan::disagreements).collect();
    if notes.is_empty() {
        println!("\nThe three answers agree within one proxy.");
    } else {
        println!("\nWhere they disagree:");
        for n in notes {
            println!("- {n}");
        }
    }
}

/// The rates the plan keeps to, below each measured limit, and the margin.
fn rates_note(p: &Plan) {
    if p.rates.is_empty() {
        return;
    }
    println!(
        "Rates planned at margin {} of each rate observed safe (never the modelled threshold):",
        p.margin
    );
    for r in &p.rates {
        let seen = match (r.safe_per_s, r.banned_per_s) {
            (Some(safe), Some(banned)) => {
                format!("seen safe at {safe}, refused at {banned}, modelled at {}", r.modelled_per_s)
            }
            _ => format!("modelled at {}, not measured", r.modelled_per_s),
        };
        println!(
            "- {} (per {}): {} rps planned; {seen}",
            r.hypothesis,
            r.scope,
            (r.planned_per_s * 100.0).round() / 100.0
        );
    }
}

/// Whether the whole answer held as deployed, and under what.
fn verified_note(p: &Plan) {
    let v = &p.verified;
    let seeds: Vec<String> = v.seeds.iter().map(u64::to_string).collect();
    let under =
        format!("every module at once, seeds {}, under {}", seeds.join(", "), v.hypotheses.join(" + "));
    if v.holds {
        match v.raised_from {
            Some([d, o, c]) => println!(
                "Verified as deployed ({under}): the modules' own answers ({d}/{o}/{c}) failed together; the pools above held"
            ),
            None => println!("Verified as deployed ({under}): safe and on time."),
        }
    } else {
        println!("Not verified as deployed ({under}): no pool up to the search bounds holds.");
        for f in &v.failures {
            println!("- {f}");
        }
    }
}
