//! The calibration as a state machine without I/O: it says when to send, is told each answer,
//! and keeps the books the findings are made from. Time is an argument, so the tests drive it
//! against Kaspi's model on a virtual clock and the shell drives it over a proxy.
//!
//! The order of the phases (docs/calibrate.md): a count run at a rate below every rate limit
//! anyone has reported, so that a count limit cannot pass for a rate limit; then a step-up ramp
//! with holds; after the first refusal, the ban's length (probing at growing gaps until answers
//! return); then a bisection between the last clean rate and the first refused one, waiting
//! out each ban it causes.

use std::collections::BTreeMap;

use rotor_engine::{Duration, Instant};

use super::findings::{Bracket, CountFinding, Findings, RateFinding, Refusal, Sample};

/// What the calibration may do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// The ramp's first rate (requests per second).
    pub start_rps: f64,
    /// Each ramp step's rate over the one before.
    pub step: f64,
    /// How long each rate is held.
    pub hold: Duration,
    /// No rate above this is ever sent.
    pub ceiling_rps: f64,
    /// The bisection stops when the refused and the clean rate differ by less than this share.
    pub precision: f64,
    /// Requests in all, at most.
    pub budget: u32,
    /// Requests of the count run (more than the seed's 250 in 30 minutes by default).
    pub count_requests: u32,
    /// The count run's rate.
    pub count_rps: f64,
    /// The first ban probe goes this long after the refusal...
    pub probe_first: Duration,
    /// ...and each probe after a refused one waits this much longer than the gap before.
    pub probe_factor: f64,
    /// A ban longer than this ends the calibration.
    pub max_ban: Duration,
    /// This many answers in a row that never came end the calibration (the proxy is broken).
    pub max_failures_in_row: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            start_rps: 1.0,
            step: 1.5,
            hold: Duration::from_secs(30),
            ceiling_rps: 20.0,
            precision: 0.04,
            budget: 6_000,
            count_requests: 300,
            count_rps: 1.0,
            probe_first: Duration::from_secs(1),
            probe_factor: 1.2,
            max_ban: Duration::from_mins(120),
            max_failures_in_row: 5,
        }
    }
}

impl Settings {
    /// What is wrong with these settings, naming the flag and the valid values.
    pub fn check(&self) -> Result<(), String> {
        let rate = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 && v <= 1000.0 {
                Ok(())
            } else {
                Err(format!("{name} is {v}; valid: a rate above 0 and at most 1000 per second"))
            }
        };
        rate("--start-rps", self.start_rps)?;
        rate("--ceiling-rps", self.ceiling_rps)?;
        rate("--count-rps", self.count_rps)?;
        if self.start_rps > self.ceiling_rps {
            return Err(format!(
                "--start-rps {} is above --ceiling-rps {}; valid: at most the ceiling",
                self.start_rps, self.ceiling_rps
            ));
        }
        if self.count_rps > self.ceiling_rps {
            return Err(format!(
                "--count-rps {} is above --ceiling-rps {}",
                self.count_rps, self.ceiling_rps
            ));
        }
        if !(self.step.is_finite() && self.step > 1.0 && self.step <= 4.0) {
            return Err(format!("--step is {}; valid: a factor above 1 and at most 4", self.step));
        }
        if !(self.precision > 0.0 && self.precision < 1.0) {
            return Err(format!("--precision is {}; valid: a share above 0 and below 1", self.precision));
        }
        if self.hold < Duration::from_secs(1) {
            return Err(format!("--hold is {}; valid: at least 1s", self.hold));
        }
        if self.budget == 0 {
            return Err("--budget is 0; valid: at least 1 request".into());
        }
        if !(self.probe_factor.is_finite() && self.probe_factor > 1.0 && self.probe_factor <= 4.0) {
            return Err(format!("probe factor {}; valid: above 1 and at most 4", self.probe_factor));
        }
        Ok(())
    }

    /// The ramp's rates: from the start, each `step` times the one before, ending at the ceiling.
    pub fn ramp(&self) -> Vec<f64> {
        let mut out = Vec::new();
        let mut r = self.start_rps;
        while r < self.ceiling_rps * (1.0 - 1e-9) {
            out.push(r);
            r *= self.step;
        }
        out.push(self.ceiling_rps);
        out
    }

    /// Requests sent while holding `rate` (at least one).
    pub fn per_hold(&self, rate: f64) -> u32 {
        ((rate * self.hold.as_millis() as f64 / 1000.0).round() as u32).max(1)
    }
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A 2xx.
    Ok,
    /// A refusal: a 429, a 403, or another status that is not a 2xx, with the start of its body.
    Refused {
        /// The status.
        status: u16,
        /// The body's first bytes, printable characters only.
        body: String,
    },
    /// No answer: a timeout or a proxy failure.
    Failed,
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send one request now; tell [`Calibrator::answered`] its answer under this id.
    Send(u64),
    /// Nothing to send before this instant (or an answer, whichever comes first).
    Wait(Instant),
    /// Nothing to send until an answer comes.
    Await,
    /// Finished: read [`Calibrator::findings`].
    Done,
}

/// Which part of the calibration a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tag {
    Count,
    Hold(f64),
    Probe,
}

/// Where the calibration is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Count(Run),
    /// The ramp's step, and its run.
    Ramp(usize, Run),
    Bisect(Run),
    Ban(Ban),
    Done,
}

/// A run of `total` requests paced evenly at `rate`, begun at `start`, `sent` of them sent.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    tag: Tag,
    rate: f64,
    total: u32,
    start: Instant,
    sent: u32,
}

/// Waiting out a ban: probes one at a time, at growing gaps.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ban {
    /// When the first refused request of this ban was sent.
    started: Instant,
    /// When the latest refused request was sent.
    last_refused: Instant,
    /// The next probe's time.
    next: Instant,
    /// The gap before the next probe.
    gap: Duration,
    /// Until this instant probes keep the same gap: a ban measured before is probed finely
    /// around its known length, so that each new ban narrows the interval.
    even_until: Instant,
    /// The probe in flight.
    probe: Option<u64>,
    /// What follows the ban.
    then: AfterBan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterBan {
    /// The count run was refused: the ban's end gives the window; the calibration ends.
    CountDone,
    /// Go on bisecting.
    Bisect,
}

/// The calibration: see the module documentation.
#[derive(Debug, Clone)]
pub struct Calibrator {
    settings: Settings,
    ramp: Vec<f64>,
    phase: Phase,
    next_id: u64,
    /// Each request in flight: when it was sent, what for, and its sample.
    in_flight: BTreeMap<u64, (Instant, Tag, usize)>,
    sent: u32,
    failures_in_row: u32,
    /// The highest rate held without a refusal, and the lowest refused.
    clean: f64,
    refused: Option<f64>,
    count_accepted: u32,
    count: Option<CountFinding>,
    count_first: Option<Instant>,
    rate: Option<RateFinding>,
    refusal: Option<Refusal>,
    bans: Vec<Bracket>,
    latency_ms: Vec<u64>,
    samples: Vec<Sample>,
    stopped: Option<String>,
}

impl Calibrator {
    /// A calibration with `settings` (checked), starting at `now`.
    pub fn new(settings: Settings, now: Instant) -> Result<Self, String> {
        settings.check()?;
        let phase = if settings.count_requests > 0 {
            Phase::Count(Run {
                tag: Tag::Count,
                rate: settings.count_rps,
                total: settings.count_requests,
                start: now,
                sent: 0,
            })
        } else {
            Phase::Ramp(0, held(&settings, settings.start_rps, now))
        };
        Ok(Calibrator {
            ramp: settings.ramp(),
            settings,
            phase,
            next_id: 0,
            in_flight: BTreeMap::new(),
            sent: 0,
            failures_in_row: 0,
            clean: 0.0,
            refused: None,
            count_accepted: 0,
            count: None,
            count_first: None,
            rate: None,
            refusal: None,
            bans: Vec::new(),
            latency_ms: Vec::new(),
            samples: Vec::new(),
            stopped: None,
        })
    }

    /// Requests sent so far.
    pub fn sent(&self) -> u32 {
        self.sent
    }

    /// Whether the calibration has finished.
    pub fn done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// A line on where it is, for progress output.
    pub fn progress(&self) -> String {
        match self.phase {
            Phase::Count(run) => format!("count run: {}/{} at {} rps", run.sent, run.total, run.rate),
            Phase::Ramp(_, run) => format!("ramp: holding {:.2} rps", run.rate),
            Phase::Bisect(run) => format!(
                "bisection: holding {:.2} rps (clean {:.2}, refused {:.2})",
                run.rate,
                self.clean,
                self.refused.unwrap_or(f64::NAN)
            ),
            Phase::Ban(b) => format!("waiting out a ban: next probe after a gap of {}", b.gap),
            Phase::Done => "done".to_owned(),
        }
    }

    /// Stops now (Ctrl-C, say): what was learned stays; `why` is reported.
    pub fn stop(&mut self, why: &str) {
        if self.phase != Phase::Done {
            self.stopped.get_or_insert_with(|| why.to_owned());
            self.phase = Phase::Done;
        }
    }

    fn send(&mut self, now: Instant, tag: Tag) -> Step {
        if self.sent >= self.settings.budget {
            self.stop(&format!("the request budget ({}) is spent", self.settings.budget));
            return Step::Done;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.sent += 1;
        self.in_flight.insert(id, (now, tag, self.samples.len()));
        if tag == Tag::Count {
            self.count_first.get_or_insert(now);
        }
        let rate = match tag {
            Tag::Count => self.settings.count_rps,
            Tag::Hold(r) => r,
            Tag::Probe => 0.0,
        };
        self.samples.push(Sample { at: now, rate_sent: rate, count_run: tag == Tag::Count, answer: None });
        Step::Send(id)
    }

    /// What to do at `now`.
    pub fn poll(&mut self, now: Instant) -> Step {
        match self.phase {
            Phase::Done => Step::Done,
            Phase::Count(mut run) => {
                if let Some(step) = self.advance(&mut run, now, Phase::Count) {
                    step
                } else {
                    let over = now.saturating_since(run.start);
                    self.count = Some(CountFinding::NoneUpTo { requests: self.count_accepted, over });
                    self.phase = Phase::Ramp(0, held(&self.settings, self.ramp[0], now));
                    self.poll(now)
                }
            }
            Phase::Ramp(step, mut run) => {
                if let Some(next) = self.advance(&mut run, now, |r| Phase::Ramp(step, r)) {
                    next
                } else {
                    self.clean = run.rate;
                    if step + 1 == self.ramp.len() {
                        self.rate = Some(RateFinding::NoneUpTo { ceiling: run.rate });
                        self.phase = Phase::Done;
                        return Step::Done;
                    }
                    self.phase = Phase::Ramp(step + 1, held(&self.settings, self.ramp[step + 1], now));
                    self.poll(now)
                }
            }
            Phase::Bisect(mut run) => {
                if let Some(step) = self.advance(&mut run, now, Phase::Bisect) {
                    step
                } else {
                    self.clean = run.rate;
                    self.bisect(now);
                    self.poll(now)
                }
            }
            Phase::Ban(mut ban) => {
                if ban.probe.is_some() {
                    return Step::Await;
                }
                if now.saturating_since(ban.started) > self.settings.max_ban {
                    self.bans.push(Bracket { lo: now.saturating_since(ban.started), hi: None });
                    self.stop(&format!("a ban lasted longer than {}", self.settings.max_ban));
                    return Step::Done;
                }
                if ban.next > now {
                    return Step::Wait(ban.next);
                }
                let step = self.send(now, Tag::Probe);
                if let Step::Send(id) = step {
                    ban.probe = Some(id);
                    self.phase = Phase::Ban(ban);
                }
                step
            }
        }
    }

    /// The next step of `run` at `now` (`phase` puts it back as the phase), or `None` once
    /// every request of it is sent and answered.
    fn advance(&mut self, run: &mut Run, now: Instant, phase: impl Fn(Run) -> Phase) -> Option<Step> {
        if run.sent >= run.total {
            let waiting = self.in_flight.values().any(|&(_, t, _)| t == run.tag);
            return waiting.then_some(Step::Await);
        }
        let due = paced(run.start, run.sent, run.rate);
        if due > now {
            return Some(Step::Wait(due));
        }
        run.sent += 1;
        self.phase = phase(*run);
        Some(self.send(now, run.tag))
    }

    /// Moves to the next bisection step, or to the end (nothing is sent here: [`Self::poll`]
    /// sends).
    fn bisect(&mut self, now: Instant) {
        let hi = self.refused.unwrap_or(self.settings.ceiling_rps);
        if hi - self.clean <= self.settings.precision * hi {
            self.finish_rate();
            self.phase = Phase::Done;
        } else {
            self.phase = Phase::Bisect(held(&self.settings, f64::midpoint(self.clean, hi), now));
        }
    }

    fn finish_rate(&mut self) {
        if let Some(hi) = self.refused {
            self.rate = Some(RateFinding::Refused { clean: self.clean, refused: hi });
        }
    }

    /// The answer to request `id`, come at `now`.
    pub fn answered(&mut self, id: u64, now: Instant, answer: &Answer) {
        let Some((sent_at, tag, sample)) = self.in_flight.remove(&id) else { return };
        self.samples[sample].answer = Some(answer.clone());
        match answer {
            Answer::Failed => {
                self.failures_in_row += 1;
                if self.failures_in_row >= self.settings.max_failures_in_row {
                    self.stop(&format!(
                        "{} requests in a row got no answer: the proxy looks broken",
                        self.failures_in_row
                    ));
                }
                if let Phase::Ban(mut ban) = self.phase
                    && ban.probe == Some(id)
                {
                    // A probe that got no answer says nothing: try again after the same gap.
                    ban.probe = None;
                    ban.next = now + ban.gap;
                    self.phase = Phase::Ban(ban);
                }
                return;
            }
            Answer::Ok => {
                self.failures_in_row = 0;
                self.latency_ms.push(now.saturating_since(sent_at).as_millis());
                if tag == Tag::Count {
                    self.count_accepted += 1;
                }
            }
            Answer::Refused { status, body } => {
                self.failures_in_row = 0;
                if self.refusal.is_none() {
                    self.refusal = Some(Refusal { status: *status, body: body.clone(), count: 0 });
                }
                if let Some(r) = &mut self.refusal {
                    r.count += 1;
                }
            }
        }
        let refused = matches!(answer, Answer::Refused { .. });
        match (self.phase, tag) {
            (Phase::Ban(mut ban), Tag::Probe) if ban.probe == Some(id) => {
                ban.probe = None;
                if refused {
                    ban.last_refused = sent_at;
                    if sent_at >= ban.even_until {
                        ban.gap = Duration::from_millis(
                            (ban.gap.as_millis() as f64 * self.settings.probe_factor) as u64,
                        );
                    }
                    ban.next = sent_at + ban.gap;
                    self.phase = Phase::Ban(ban);
                } else {
                    self.ban_over(ban, sent_at, now);
                }
            }
            (Phase::Ban(mut ban), _) if refused && sent_at > ban.last_refused => {
                ban.last_refused = sent_at;
                self.phase = Phase::Ban(ban);
            }
            (Phase::Count(_), Tag::Count) if refused => {
                let first = self.count_first.unwrap_or(sent_at);
                self.count = Some(CountFinding::Limit { accepted: self.count_accepted, first, window: None });
                self.rate = Some(RateFinding::NotMeasured(
                    "the count run was refused at the count rate, so a count limit binds first".into(),
                ));
                self.start_ban(sent_at, now, AfterBan::CountDone);
            }
            (Phase::Ramp(..) | Phase::Bisect(_), Tag::Hold(rate)) if refused => {
                self.refused = Some(self.refused.map_or(rate, |r| r.min(rate)));
                self.start_ban(sent_at, now, AfterBan::Bisect);
            }
            _ => {}
        }
    }

    fn start_ban(&mut self, sent_at: Instant, now: Instant, then: AfterBan) {
        let first = self.settings.probe_first;
        // After a ban has been bracketed, probe from its least length in quarters of the
        // bracket; before that, at gaps growing from the first.
        let (next, gap, even_until) = match self.findings_ban() {
            Some(Bracket { lo, hi: Some(hi) }) if hi > lo => {
                let quarter = Duration::from_millis(((hi.as_millis() - lo.as_millis()) / 4).max(100));
                ((sent_at + lo).max(now + Duration::from_millis(1)), quarter, sent_at + hi)
            }
            _ => (now + first, first, now),
        };
        self.phase = Phase::Ban(Ban {
            started: sent_at,
            last_refused: sent_at,
            next,
            gap,
            even_until,
            probe: None,
            then,
        });
    }

    fn findings_ban(&self) -> Option<Bracket> {
        Findings::ban_of(&self.bans)
    }

    fn ban_over(&mut self, ban: Ban, ok_sent: Instant, now: Instant) {
        self.bans.push(Bracket {
            lo: ban.last_refused.saturating_since(ban.started),
            hi: Some(ok_sent.saturating_since(ban.started)),
        });
        match ban.then {
            AfterBan::CountDone => {
                if let Some(CountFinding::Limit { first, window, .. }) = &mut self.count {
                    *window = Some(Bracket {
                        lo: ban.last_refused.saturating_since(*first),
                        hi: Some(ok_sent.saturating_since(*first)),
                    });
                }
                self.phase = Phase::Done;
            }
            AfterBan::Bisect => self.bisect(now),
        }
    }

    /// What was learned (so far, if it has not finished).
    pub fn findings(&self) -> Findings {
        let mut rate = self.rate.clone();
        if rate.is_none()
            && let Some(hi) = self.refused
        {
            rate = Some(RateFinding::Refused { clean: self.clean, refused: hi });
        }
        Findings {
            settings: self.settings,
            rate,
            count: self.count.clone(),
            refusal: self.refusal.clone(),
            bans: self.bans.clone(),
            latency_ms: self.latency_ms.clone(),
            samples: self.samples.clone(),
            sent: self.sent,
            stopped: self.stopped.clone(),
        }
    }
}

/// A hold of `rate` for `settings.hold`, from `now`.
fn held(settings: &Settings, rate: f64, now: Instant) -> Run {
    Run { tag: Tag::Hold(rate), rate, total: settings.per_hold(rate), start: now, sent: 0 }
}

/// When the `n`th request (from 0) of a run at `rate` from `start` is due.
fn paced(start: Instant, n: u32, rate: f64) -> Instant {
    start + Duration::from_millis((f64::from(n) * 1000.0 / rate).round() as u64)
}
