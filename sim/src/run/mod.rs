//! The discrete-event loop. It jumps from event to event on a virtual millisecond clock, never
//! sleeps, and drives the engine crate itself: every rotation, rest, death and backoff decision
//! below is the engine's, the simulator only plays the world around it.

//!
//! - `state.rs`: the simulator's state, its setup, event absorption and the report.
//! - `world.rs`: sellers, the pool, replacements and faults.
//! - `workloads.rs`: the per-module cycles.
//! - `request.rs`: one request from issue to finish.

mod request;
mod state;
mod workloads;
mod world;

use std::io::Write;

use rotor_engine::Engine;

use crate::scenario::Scenario;
use crate::summary::RunReport;

use state::{Ev, Sim};

/// How to run a scenario.
pub struct RunOptions<'a> {
    /// The run stops with [`SimError::StepLimit`] after this many events.
    pub max_steps: u64,
    /// Where to write one CSV row per request attempt, if anywhere.
    pub trace: Option<&'a mut dyn Write>,
    /// Called now and then with the run's progress.
    pub progress: Option<&'a mut dyn FnMut(Progress)>,
    /// Whose proxies the timeline follows (for the proxy-timeline chart). Defaults to user 1.
    pub timeline_user: Option<u32>,
    /// Called with the engine before the run starts: how a test reaches the engine (for example
    /// to make it break a rule, and prove the checker sees it).
    pub engine_hook: Option<&'a mut dyn FnMut(&mut Engine)>,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions {
            max_steps: 500_000_000,
            trace: None,
            progress: None,
            timeline_user: Some(1),
            engine_hook: None,
        }
    }
}

/// How far a run has got.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Virtual time reached (ms).
    pub now_ms: u64,
    /// The scenario's duration (ms); the run drains past it.
    pub duration_ms: u64,
    /// Events handled.
    pub steps: u64,
}

/// Why a run could not finish.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The step bound was hit: a scenario that never settles, or a bound set too low.
    #[error(
        "step limit of {steps} events hit at t={now_ms} ms (seed={seed}); raise --max-steps or shorten the scenario"
    )]
    StepLimit {
        /// Events handled.
        steps: u64,
        /// Virtual time reached.
        now_ms: u64,
        /// The run's seed, to replay it.
        seed: u64,
    },
    /// The trace could not be written.
    #[error("cannot write the trace: {0}")]
    Trace(#[from] std::io::Error),
    /// The engine refused a proxy of the simulated world.
    #[error("the simulated pool: {0}")]
    Pool(#[from] rotor_engine::PoolError),
    /// The scenario's engine configuration was refused.
    #[error("engine configuration: {0}")]
    Engine(#[from] rotor_engine::ConfigError),
}

/// Runs `scenario` to the end and reports what happened.
pub fn run(scenario: &Scenario, opts: RunOptions<'_>) -> Result<RunReport, SimError> {
    let RunOptions { max_steps, trace, mut progress, timeline_user, engine_hook } = opts;
    let mut sim = Sim::new(scenario, trace, timeline_user)?;
    if let Some(hook) = engine_hook {
        hook(&mut sim.engine);
    }
    sim.setup();
    if let Some(e) = sim.trace_error.take() {
        return Err(e);
    }
    while let Some((t, ev)) = sim.queue.pop() {
        sim.now = t;
        sim.steps += 1;
        if sim.steps > max_steps {
            return Err(SimError::StepLimit { steps: max_steps, now_ms: t, seed: scenario.seed });
        }
        if sim.steps.is_multiple_of(1 << 16)
            && let Some(p) = progress.as_mut()
        {
            p(Progress { now_ms: t, duration_ms: scenario.duration.as_millis(), steps: sim.steps });
        }
        sim.handle(ev);
        if let Some(e) = sim.trace_error.take() {
            return Err(e);
        }
    }
    if let Some(w) = sim.trace.as_mut() {
        w.flush()?;
    }
    Ok(sim.into_report())
}

impl Sim<'_, '_> {
    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::CycleDue(w) => self.cycle_due(w),
            Ev::Pump(w) => {
                self.works[w as usize].wake = None;
                self.pump(w);
            }
            Ev::Acquire(id) => self.acquire(id),
            Ev::Respond(id) => self.respond(id),
            Ev::Subscription(i) => self.subscription(i),
            Ev::HourlyJob => self.hourly_job(),
            Ev::PurchaseArrives(n) => self.purchase_arrives(n),
            Ev::Fault(i) => self.fault(i),
            Ev::ProviderRestocked => self.check_pool_level(),
        }
    }
}
