//! `rotor plan --robust` (and the last section of `--compare-hypotheses`): the cheapest policy
//! and pool safe and on time under every hypothesis at once, next to the cheapest under each
//! alone, and the price of not knowing.

use rotor_sim::plan::robust::{Costed, RobustInput, RobustPlan, robust_plan};

use super::{PLAN_SCHEMA_VERSION, account_note, modules_json, verified_json};
use crate::cli::PlanArgs;
use crate::commands::CliError;
use crate::exit;

pub(super) fn run(args: &PlanArgs, input: &RobustInput) -> Result<u8, CliError> {
    let answer = robust_plan(input, |what| tracing::info!("rotor plan --robust: simulating the {what}"))
        .map_err(|e| CliError::internal(format!("{e}")))?;
    if args.json && !args.compare_hypotheses {
        let text = serde_json::to_string_pretty(&json(input, &answer))
            .map_err(|e| CliError::internal(e.to_string()))?;
        println!("{text}");
    } else {
        table(input, &answer);
    }
    Ok(exit::OK)
}

fn usd(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |x| format!("${x:.2}"))
}

/// Right-aligned columns, one per module.
fn cells(items: impl Iterator<Item = String>) -> String {
    items.map(|c| format!("{c:>8}")).collect::<Vec<_>>().join("  ")
}

/// A module's pool, or the bound its search stopped at.
fn count(n: Option<u32>, searched_up_to: u32) -> String {
    n.map_or_else(|| format!("> {searched_up_to}"), |n| n.to_string())
}

fn table(input: &RobustInput, a: &RobustPlan) {
    let names: Vec<&str> = a.hypotheses.iter().map(|h| h.name()).collect();
    let load = &input.load;
    println!(
        "Robust plan: safe and on time under {} at once ({} SKUs, demper every {}, {:.0}% of prices change per cycle)",
        names.join(" + "),
        load.skus,
        rotor_sim::verdict::fmt_ms(load.interval.as_millis()),
        load.price_change_share * 100.0
    );
    let modules: Vec<_> =
        a.robust.first().map(|c| c.plan.modules.iter().map(|m| m.module).collect()).unwrap_or_default();
    let head = format!("{:<7}  {}", "policy", cells(modules.iter().map(|m| m.name().to_owned())));
    println!("{head}  {:>6}  {:>9}  binds", "total", "cost/30d");
    for c in &a.robust {
        let row = format!(
            "{:<7}  {}",
            c.policy.name(),
            cells(c.plan.modules.iter().map(|m| count(m.simulated, m.searched_up_to)))
        );
        let binds: Vec<String> =
            c.plan.modules.iter().map(|m| format!("{} {}", m.module, m.binding.name())).collect();
        println!(
            "{row}  {:>6}  {:>9}  {}",
            c.total().map_or_else(|| "-".to_owned(), |n| n.to_string()),
            usd(c.monthly_cost_usd()),
            binds.join(", ")
        );
    }
    if let Some(c) = a.cheapest() {
        println!(
            "\nCheapest under all at once: the {} policy, {} proxies, {} per seller per 30 days.",
            c.policy.name(),
            c.total().unwrap_or_default(),
            usd(c.monthly_cost_usd())
        );
    } else {
        println!("\nNo policy asked for is safe and on time under all of them at once:");
        let notes: Vec<String> = a
            .robust
            .iter()
            .flat_map(|c| c.plan.modules.iter().filter(|m| m.simulated.is_none()))
            .flat_map(rotor_sim::plan::ModulePlan::disagreements)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for n in notes {
            println!("- {n}");
        }
        let accounts: std::collections::BTreeSet<String> = a
            .robust
            .iter()
            .flat_map(|c| c.plan.modules.iter())
            .filter(|m| m.binding == rotor_sim::plan::Binding::AccountRate)
            .map(|m| format!("{}: the merchant account allows {}", m.module, account_note(m)))
            .collect();
        for n in accounts {
            println!("- {n}");
        }
    }
    for (h, ok) in &a.checked {
        if *ok {
            println!("Checked: that pool is safe and on time under {} alone too.", h.name());
        } else {
            println!(
                "WARNING: that pool is NOT safe and on time under {} alone (a limit interacts with another).",
                h.name()
            );
        }
    }
    println!("\nUnder each hypothesis alone:");
    println!(
        "{:<10}  {:<15}  {:>7}  {:>9}  price of not knowing",
        "hypothesis", "cheapest policy", "proxies", "cost/30d"
    );
    for s in &a.single {
        let best = a.cheapest_under(s.hypothesis);
        println!(
            "{:<10}  {:<15}  {:>7}  {:>9}  {}",
            s.hypothesis.name(),
            best.map_or("none", |c| c.policy.name()),
            best.and_then(Costed::total).map_or_else(|| "-".to_owned(), |n| n.to_string()),
            usd(best.and_then(Costed::monthly_cost_usd)),
            match (a.price_of_not_knowing(s.hypothesis), best) {
                (Some(x), _) => format!("${x:.2} per seller per 30 days"),
                (None, None) => "no plan under it alone".to_owned(),
                (None, Some(_)) => "no robust plan".to_owned(),
            }
        );
    }
    if let Some(p) = a.robust.first() {
        println!("(costs at ${:.2} per 100 proxies per 30 days)", p.plan.price_per_100_usd);
    }
}

fn costed_json(c: Option<&Costed>) -> serde_json::Value {
    c.map_or(serde_json::Value::Null, |c| {
        serde_json::json!({
            "policy": c.policy.name(),
            "proxies": c.total(),
            "monthly_cost_usd": c.monthly_cost_usd().map(round_cents),
        })
    })
}

fn round_cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The robust plan as `docs/plan-json.md` describes it.
fn json(input: &RobustInput, a: &RobustPlan) -> serde_json::Value {
    let load = &input.load;
    serde_json::json!({
        "schema": "rotor-robust-plan",
        "version": PLAN_SCHEMA_VERSION,
        "skus": load.skus,
        "interval_ms": load.interval.as_millis(),
        "price_change_share": load.price_change_share,
        "price_per_100_usd": a.robust.first().map(|c| c.plan.price_per_100_usd),
        "hypotheses": a.hypotheses.iter().map(|h| h.name()).collect::<Vec<_>>(),
        "robust": a.robust.iter().map(|c| serde_json::json!({
            "policy": c.policy.name(),
            "proxies": c.total(),
            "monthly_cost_usd": c.monthly_cost_usd().map(round_cents),
            "verified": verified_json(&c.plan),
            "modules": modules_json(&c.plan),
        })).collect::<Vec<_>>(),
        "cheapest": costed_json(a.cheapest()),
        "checked_alone": a.checked.iter().map(|(h, ok)| serde_json::json!({ "hypothesis": h.name(), "holds": ok })).collect::<Vec<_>>(),
        "single": a.single.iter().map(|s| serde_json::json!({
            "hypothesis": s.hypothesis.name(),
            "cheapest": costed_json(a.cheapest_under(s.hypothesis)),
            "price_of_not_knowing_usd": a.price_of_not_knowing(s.hypothesis).map(round_cents),
            "plans": s.plans.iter().map(|c| costed_json(Some(c))).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
