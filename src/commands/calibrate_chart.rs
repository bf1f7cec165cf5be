//! `rotor calibrate`'s ramp chart: the rate sent, and the answers and refusals that came back,
//! per second of the calibration.

use rotor_engine::Instant;
use rotor_live::calibrate::{Answer, Findings};

/// Per second since `start`: requests sent, answered, refused.
pub(crate) fn per_second(f: &Findings, start: Instant) -> [Vec<(f64, f64)>; 3] {
    let last = f.samples.last().map_or(0, |s| s.at.saturating_since(start).as_millis() / 1000) as usize;
    let mut counts = vec![[0u32; 3]; last + 1];
    for s in &f.samples {
        let second = (s.at.saturating_since(start).as_millis() / 1000) as usize;
        let row = &mut counts[second.min(last)];
        row[0] += 1;
        match s.answer {
            Some(Answer::Ok) => row[1] += 1,
            Some(Answer::Refused { .. }) => row[2] += 1,
            _ => {}
        }
    }
    std::array::from_fn(|k| counts.iter().enumerate().map(|(t, row)| (t as f64, f64::from(row[k]))).collect())
}

/// The chart as SVG.
pub(crate) fn svg(f: &Findings, start: Instant) -> Result<String, String> {
    let [sent, answered, refused] = per_second(f, start);
    rotor_sim::report::charts::lines_svg(
        "rate sent and answers, per second",
        "seconds since the start",
        "requests per second",
        &[("sent".into(), sent), ("answered 2xx".into(), answered), ("refused".into(), refused)],
    )
}
