//! What a calibration learned, each figure with its sample size and the interval it is sure of,
//! and the hypothesis file written from it (`[[kaspi.limiter]]` entries that `rotor sim` reads).

use std::fmt::Write as _;

use std::num::NonZeroU32;

use rotor_engine::{Duration, Endpoint, Instant};
use rotor_kaspi_model::file::{self, LimiterTable};
use rotor_kaspi_model::{Penalty, PenaltyStatus};

use super::core::{Answer, Settings};

/// An interval a length is sure to lie in: at least `lo`, at most `hi` (`None`: not seen to end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bracket {
    /// The least it can be.
    pub lo: Duration,
    /// The most it can be.
    pub hi: Option<Duration>,
}

impl Bracket {
    /// The middle of the interval (its least length when it has no end).
    pub fn estimate(&self) -> Duration {
        self.hi
            .map_or(self.lo, |hi| Duration::from_millis(u64::midpoint(self.lo.as_millis(), hi.as_millis())))
    }
}

/// The rate at which the first refusal comes.
#[derive(Debug, Clone, PartialEq)]
pub enum RateFinding {
    /// Held `clean` without a refusal; `refused` was refused.
    Refused {
        /// The highest rate held clean (requests per second).
        clean: f64,
        /// The lowest rate refused.
        refused: f64,
    },
    /// No refusal up to the ceiling.
    NoneUpTo {
        /// The ceiling.
        ceiling: f64,
    },
    /// Not measured, and why.
    NotMeasured(String),
}

/// Whether a count limit exists.
#[derive(Debug, Clone, PartialEq)]
pub enum CountFinding {
    /// Every request of the count run was answered.
    NoneUpTo {
        /// Requests answered.
        requests: u32,
        /// Over this long.
        over: Duration,
    },
    /// The count run was refused after `accepted` requests.
    Limit {
        /// Requests accepted before the first refusal.
        accepted: u32,
        /// When the first of them was sent.
        first: Instant,
        /// The window: from the first accepted request to answers coming back.
        window: Option<Bracket>,
    },
}

/// The first refusal's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Its status.
    pub status: u16,
    /// The start of its body.
    pub body: String,
    /// Refusals seen in all.
    pub count: u32,
}

/// One request, for the ramp chart: when it was sent, at what rate, and its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// When it was sent.
    pub at: Instant,
    /// The rate being held (0 for a ban probe).
    pub rate_sent: f64,
    /// Sent by the count run, whose pace is not a rate under test.
    pub count_run: bool,
    /// Its answer, once it came.
    pub answer: Option<Answer>,
}

/// Latency quantiles (ms) with a 95% interval for the median.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyFigures {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50: u64,
    /// The median lies in this interval with 95% confidence (order statistics).
    pub p50_interval: (u64, u64),
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
}

/// Everything a calibration learned.
#[derive(Debug, Clone, PartialEq)]
pub struct Findings {
    /// What it was allowed to do.
    pub settings: Settings,
    /// The rate limit (`None`: not reached yet).
    pub rate: Option<RateFinding>,
    /// The count limit (`None`: not measured yet).
    pub count: Option<CountFinding>,
    /// The first refusal.
    pub refusal: Option<Refusal>,
    /// Each ban waited out.
    pub bans: Vec<Bracket>,
    /// Latency of each answered request (ms).
    pub latency_ms: Vec<u64>,
    /// Every request.
    pub samples: Vec<Sample>,
    /// Requests sent.
    pub sent: u32,
    /// Why it stopped early, if it did.
    pub stopped: Option<String>,
}

impl Findings {
    /// The ban's length: the intersection of every ban's bracket, or their union when they do
    /// not agree (a ban that restarts on each request during it measures as the gap that ended
    /// it).
    pub fn ban(&self) -> Option<Bracket> {
        Findings::ban_of(&self.bans)
    }

    /// [`Findings::ban`] of these brackets.
    pub(crate) fn ban_of(bans: &[Bracket]) -> Option<Bracket> {
        let first = *bans.first()?;
        let mut meet = first;
        for b in &bans[1..] {
            meet.lo = meet.lo.max(b.lo);
            meet.hi = match (meet.hi, b.hi) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, None) => x,
                (None, y) => y,
            };
        }
        if meet.hi.is_some_and(|hi| hi < meet.lo) {
            let lo = bans.iter().map(|b| b.lo).min().unwrap_or(first.lo);
            let hi = bans.iter().map(|b| b.hi).try_fold(Duration::ZERO, |m, h| h.map(|h| m.max(h)));
            return Some(Bracket { lo, hi });
        }
        Some(meet)
    }

    /// Latency figures, when at least one answer came.
    pub fn latency(&self) -> Option<LatencyFigures> {
        let mut v = self.latency_ms.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let n = v.len();
        let at = |q: f64| v[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        // Ranks n/2 ± 1.96 √n / 2 hold the median with 95% confidence.
        let half = 1.96 * (n as f64).sqrt() / 2.0;
        let lo = ((n as f64 / 2.0 - half).floor() as usize).clamp(1, n) - 1;
        let hi = ((n as f64 / 2.0 + half).ceil() as usize).clamp(1, n) - 1;
        Some(LatencyFigures { n, p50: at(0.5), p50_interval: (v[lo], v[hi]), p90: at(0.9), p99: at(0.99) })
    }

    /// The findings as text: one line per figure, with its sample size and interval.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let holds = self.samples.iter().filter(|s| s.rate_sent > 0.0).count();
        let _ = match &self.rate {
            Some(RateFinding::Refused { clean, refused }) => writeln!(
                out,
                "rate limit     first refusal between {clean:.2} and {refused:.2} requests/s (clean at {clean:.2}; {holds} requests at held rates)"
            ),
            Some(RateFinding::NoneUpTo { ceiling }) => {
                writeln!(
                    out,
                    "rate limit     none up to the ceiling, {ceiling:.2} requests/s ({holds} requests)"
                )
            }
            Some(RateFinding::NotMeasured(why)) => writeln!(out, "rate limit     not measured: {why}"),
            None => writeln!(out, "rate limit     not reached"),
        };
        if let Some(r) = &self.refusal {
            let _ = writeln!(out, "refusal        {} ({} refusals); body: {}", r.status, r.count, r.body);
        }
        let _ = match self.ban() {
            Some(Bracket { lo, hi: Some(hi) }) => {
                writeln!(
                    out,
                    "ban            between {} and {} ({} bans waited out)",
                    span(lo),
                    span(hi),
                    self.bans.len()
                )
            }
            Some(Bracket { lo, hi: None }) => {
                writeln!(out, "ban            longer than {} (not seen to end)", span(lo))
            }
            None => writeln!(out, "ban            none seen"),
        };
        let _ = match &self.count {
            Some(CountFinding::NoneUpTo { requests, over }) => {
                writeln!(out, "count limit    none: {requests} requests answered over {}", span(*over))
            }
            Some(CountFinding::Limit { accepted, window, .. }) => match window {
                Some(Bracket { lo, hi: Some(hi) }) => {
                    writeln!(
                        out,
                        "count limit    {accepted} requests per window of {} to {}",
                        span(*lo),
                        span(*hi)
                    )
                }
                _ => writeln!(
                    out,
                    "count limit    {accepted} requests, then refused; the window was not seen to end"
                ),
            },
            None => writeln!(out, "count limit    not measured"),
        };
        if let Some(l) = self.latency() {
            let _ = writeln!(
                out,
                "latency        p50 {} ms (95% interval {}-{} ms), p90 {} ms, p99 {} ms, {} answers",
                l.p50, l.p50_interval.0, l.p50_interval.1, l.p90, l.p99, l.n
            );
        }
        let _ = writeln!(out, "requests       {} sent", self.sent);
        if let Some(why) = &self.stopped {
            let _ = writeln!(out, "stopped early  {why}");
        }
        out
    }

    /// The hypothesis file: `[[kaspi.limiter]]` entries for `endpoint`, conservative where the
    /// measurement leaves a range (the clean rate, the longer ban, the longer window). A run with
    /// no refusal up to the ceiling writes the ceiling as the limit, and says so.
    pub fn hypothesis_toml(&self, endpoint: Endpoint, header: &str) -> String {
        let mut out = String::new();
        for line in header.lines() {
            let _ = writeln!(out, "# {line}");
        }
        let _ = writeln!(out, "#\n# {}", self.text().trim_end().replace('\n', "\n# "));
        let status = match self.refusal.as_ref().map_or(429, |r| r.status) {
            403 => PenaltyStatus::Forbidden,
            429 => PenaltyStatus::TooManyRequests,
            other => {
                let _ = writeln!(
                    out,
                    "#\n# The refusal was a {other}; rotor models 429, 403 or \"timeout\", so 429 here."
                );
                PenaltyStatus::TooManyRequests
            }
        };
        let mut penalty = Penalty::answer(status);
        if let Some(ban) = self.ban().map(|b| b.hi.unwrap_or(b.lo)) {
            penalty = penalty.banning(Duration::from_secs(ban.as_millis().div_ceil(1000)));
        }
        let name = |what: &str| format!("calibrated-{endpoint}-{what}");
        let mut tables = Vec::new();
        match &self.rate {
            Some(RateFinding::Refused { clean, refused }) if *clean > 0.0 && refused > clean => {
                // Kaspi's threshold lies between the two; the model refuses halfway, and a plan
                // keeps to the rate seen safe (times its margin).
                // Rounded outwards to hundredths, so the safe figure stays below the refused one.
                let (safe, banned) = (round2(*clean), (refused * 100.0).ceil() / 100.0);
                let rate = ((safe + banned) * 50.0).round() / 100.0;
                tables.push(
                    LimiterTable::rate(&name("rate"), rate, &[endpoint], &penalty).observed(safe, banned),
                );
            }
            Some(RateFinding::Refused { clean, .. }) if *clean > 0.0 => {
                tables.push(LimiterTable::rate(&name("rate"), round2(*clean), &[endpoint], &penalty));
            }
            Some(RateFinding::NoneUpTo { ceiling }) => {
                out.push_str(
                    "#\n# No refusal up to the ceiling: its rate is the ceiling, not a measured limit.\n",
                );
                tables.push(LimiterTable::rate(&name("ceiling"), round2(*ceiling), &[endpoint], &penalty));
            }
            _ => {}
        }
        if let Some(CountFinding::Limit { accepted, window, .. }) = &self.count
            && let Some(limit) = NonZeroU32::new(*accepted)
        {
            let w = window.map_or(Duration::from_mins(30), |b| b.hi.unwrap_or(b.lo));
            let w = Duration::from_secs(w.as_millis().div_ceil(1000));
            tables.push(LimiterTable::sliding_window(&name("count"), limit, w, &[endpoint], &penalty));
        }
        out.push('\n');
        out.push_str(&file::to_toml(&tables));
        out
    }
}

/// A span for people: "9.7 s", "27.9 min", "2.0 h".
pub fn span(d: Duration) -> String {
    let s = d.as_millis() as f64 / 1000.0;
    if s >= 7200.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s >= 120.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.1} s")
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).floor() / 100.0
}
