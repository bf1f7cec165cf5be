//! What the simulator observes: the safety invariants, and the other figures.

pub(crate) mod metrics;
pub(crate) mod safety;
pub(crate) mod timeline;

pub use metrics::{Accounting, CycleFigures, CycleRecord};
pub use safety::SafetyFigures;
pub use timeline::{MinuteEvents, MinuteRow, ProxySpan, SpanKind};
