//! The real-time figures of a load run (`load.json`): throughput, latency per endpoint and
//! module, decision-to-wire time, the engine's share of CPU, descriptors, and memory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use hdrhistogram::Histogram;
use rotor_engine::{Endpoint, Module};

use super::recorder::{Inner, Latencies};

/// Times decision-to-wire: the driver stamps each request with its decision time (UTC epoch
/// ns), and each loopback proxy calls [`DecisionTimer::head`] when it has read the request
/// head. The figure is an upper bound on decision-to-socket (it includes the proxy's accept and
/// read), and works across processes on one machine (`rotor mock --scenario`).
pub struct DecisionTimer {
    hist: Mutex<Histogram<u64>>,
}

impl Default for DecisionTimer {
    fn default() -> Self {
        let h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
            .unwrap_or_else(|_| unreachable!("the bounds and precision are constants known to be valid"));
        DecisionTimer { hist: Mutex::new(h) }
    }
}

impl DecisionTimer {
    /// A proxy read a request head with these headers.
    pub fn head(&self, headers: &[(String, String)]) {
        let Some(ns) = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-rotor-decided-ns"))
            .and_then(|(_, v)| v.parse::<u64>().ok())
        else {
            return;
        };
        let now = u64::try_from(rotor_live::clock::unix_nanos()).unwrap_or(u64::MAX);
        if let Ok(mut h) = self.hist.lock() {
            h.saturating_record(now.saturating_sub(ns).max(1));
        }
    }

    /// Its quantiles in microseconds.
    pub fn quantiles_us(&self) -> Quantiles {
        self.hist.lock().map_or_else(|_| Quantiles::default(), |h| Quantiles::of(&h, 1_000.0))
    }
}

/// Samples descriptors, resident memory and CPU time from `/proc/self` during the run.
pub struct Sampler {
    peak_fds: u64,
    peak_rss: u64,
    cpu_start: f64,
    cpu_now: f64,
}

impl Sampler {
    /// Starts sampling (reads the CPU time used so far).
    pub fn start() -> Self {
        let cpu = cpu_seconds();
        Sampler { peak_fds: open_fds(), peak_rss: rss_bytes(), cpu_start: cpu, cpu_now: cpu }
    }

    /// One sample.
    pub fn sample(&mut self) {
        self.peak_fds = self.peak_fds.max(open_fds());
        self.peak_rss = self.peak_rss.max(rss_bytes());
        self.cpu_now = cpu_seconds();
    }
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// Resident memory (bytes), from `/proc/self/status`.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
        })
        .map_or(0, |kb| kb * 1024)
}

/// User plus system CPU time of this process (s), from `/proc/self/stat` (100 ticks/s).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// What the run measured besides the histograms.
pub struct Inputs {
    /// Real time from the first cycle to the end.
    pub wall: std::time::Duration,
    /// Real time spent inside the engine.
    pub engine_time: std::time::Duration,
    /// Resident memory added by building the proxy clients.
    pub client_bytes: u64,
    /// How many clients.
    pub clients: u64,
    /// Decision-to-wire as the proxies measured it (µs).
    pub wire_us: Quantiles,
}

/// p50, p90, p99, p99.9 and max of a histogram, in its unit divided by `div`.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Quantiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Quantiles {
    fn of(h: &Histogram<u64>, div: f64) -> Self {
        if h.is_empty() {
            return Quantiles::default();
        }
        let q = |x: f64| h.value_at_quantile(x) as f64 / div;
        Quantiles {
            count: h.len(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: h.max() as f64 / div,
        }
    }
}

/// Latency quantiles (ms of real time) per endpoint and per module.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LatencyTable {
    /// Per endpoint name.
    pub endpoint: BTreeMap<String, Quantiles>,
    /// Per module name.
    pub module: BTreeMap<String, Quantiles>,
}

impl LatencyTable {
    fn of(l: &Latencies) -> Self {
        let ms = |h: &Histogram<u64>| Quantiles::of(h, 1_000.0);
        LatencyTable {
            endpoint: Endpoint::ALL
                .iter()
                .filter(|e| !l.endpoint[e.index()].is_empty())
                .map(|e| (e.name().to_owned(), ms(&l.endpoint[e.index()])))
                .collect(),
            module: Module::ALL
                .iter()
                .filter(|m| !l.module[m.index()].is_empty())
                .map(|m| (m.name().to_owned(), ms(&l.module[m.index()])))
                .collect(),
        }
    }
}

/// The real-time figures of a load run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Perf {
    /// The time scale K.
    pub time_scale: f64,
    /// Real time of the run (s).
    pub wall_s: f64,
    /// Attempts sent (each one exchange through a proxy).
    pub attempts: u64,
    /// Attempts per second of real time.
    pub requests_per_s: f64,
    /// Send to answer per attempt (ms), corrected for coordinated omission against each
    /// module's schedule.
    pub attempt_latency_ms: LatencyTable,
    /// Intended start to end per request (ms), engine waits and retries included.
    pub request_latency_ms: LatencyTable,
    /// The engine's decision to the request head read at the proxy (µs).
    pub decision_to_wire_us: Quantiles,
    /// Engine time over the process's CPU time during the run.
    pub engine_cpu_share: f64,
    /// Process CPU time during the run (s).
    pub cpu_s: f64,
    /// Rotations (leases opened).
    pub rotations: u64,
    /// Real time until the 1000th rotation (s), if there were that many.
    pub time_to_1000_rotations_s: Option<f64>,
    /// Most file descriptors open at once.
    pub peak_fds: u64,
    /// Peak resident memory (MiB).
    pub peak_rss_mib: f64,
    /// Resident memory per proxy client, measured while building them (bytes).
    pub bytes_per_client: u64,
    /// Most requests in flight on one proxy at once.
    pub max_in_flight_per_proxy: u32,
}

impl Perf {
    pub(crate) fn build(inner: &Inner, s: &Sampler, i: &Inputs, k: f64) -> Self {
        let wall_s = i.wall.as_secs_f64();
        let cpu_s = (s.cpu_now - s.cpu_start).max(0.0);
        let attempts = inner.obs.attempts();
        Perf {
            time_scale: k,
            wall_s,
            attempts,
            requests_per_s: if wall_s > 0.0 { attempts as f64 / wall_s } else { 0.0 },
            attempt_latency_ms: LatencyTable::of(&inner.attempt),
            request_latency_ms: LatencyTable::of(&inner.request),
            decision_to_wire_us: i.wire_us,
            engine_cpu_share: if cpu_s > 0.0 { i.engine_time.as_secs_f64() / cpu_s } else { 0.0 },
            cpu_s,
            rotations: inner.rotations_at.len() as u64,
            time_to_1000_rotations_s: inner.rotations_at.get(999).map(std::time::Duration::as_secs_f64),
            peak_fds: s.peak_fds,
            peak_rss_mib: s.peak_rss as f64 / 1_048_576.0,
            bytes_per_client: i.client_bytes / i.clients.max(1),
            max_in_flight_per_proxy: inner.max_in_flight,
        }
    }

    /// The figures as a few lines of text.
    pub fn text(&self) -> String {
        let mut out = format!(
            "  real time            {:.2} s at time scale {}\n  throughput           {:.0} requests/s ({} attempts)\n",
            self.wall_s, self.time_scale, self.requests_per_s, self.attempts
        );
        let d = &self.decision_to_wire_us;
        let _ = writeln!(
            out,
            "  decision→wire        p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
            d.p50, d.p99, d.max
        );
        for (name, q) in &self.attempt_latency_ms.endpoint {
            let _ = writeln!(
                out,
                "  latency {name:<24} p50 {:.2} ms, p99 {:.2} ms ({} samples)",
                q.p50, q.p99, q.count
            );
        }
        let _ = writeln!(
            out,
            "  engine CPU share     {:.1}% of {:.2} s CPU\n  rotations            {}{}\n  peak fds             {}\n  peak RSS             {:.1} MiB; {} bytes per proxy client",
            self.engine_cpu_share * 100.0,
            self.cpu_s,
            self.rotations,
            self.time_to_1000_rotations_s.map_or_else(String::new, |t| format!(" (1000 in {t:.2} s)")),
            self.peak_fds,
            self.peak_rss_mib,
            self.bytes_per_client
        );
        out
    }
}
