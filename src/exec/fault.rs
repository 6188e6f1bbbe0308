//! Fault injection, for testing the engine's fault tolerance: a worker process that exits
//! abruptly in the middle of an attempt, or an attempt that straggles. Off by default.
//!
//! Whether an attempt is hit is decided by a hash of (seed, task, attempt), so a run with the
//! same seed injects the same faults whichever worker runs which attempt.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::types::{AttemptId, Phase};

/// Exit code of a worker process killed by an injected failure.
pub const INJECTED_EXIT_CODE: i32 = 86;

/// Faults injected into the attempts of one phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhaseFaults {
    /// Probability in [0, 1] that the worker process exits abruptly during an attempt.
    pub failure: f64,
    /// Probability in [0, 1] that an attempt sleeps `straggler_delay_ms` before it starts.
    pub straggler: f64,
    /// How long a straggling attempt sleeps, in milliseconds.
    pub straggler_delay_ms: u64,
}

/// Faults injected into a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Faults of map attempts.
    pub map: PhaseFaults,
    /// Faults of reduce attempts.
    pub reduce: PhaseFaults,
    /// Seed of the decisions.
    pub seed: u64,
}

/// The faults one attempt suffers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptFaults {
    /// Exit the process once this many records are processed.
    pub crash_at_records: Option<u64>,
    /// Sleep this long before starting.
    pub delay: Option<Duration>,
}

impl Faults {
    /// The probabilities, each with its key in the configuration file.
    pub fn probabilities(&self) -> [(&'static str, f64); 4] {
        [
            ("faults.map.failure", self.map.failure),
            ("faults.map.straggler", self.map.straggler),
            ("faults.reduce.failure", self.reduce.failure),
            ("faults.reduce.straggler", self.reduce.straggler),
        ]
    }

    /// Decides the faults of one attempt.
    pub fn for_attempt(&self, attempt: AttemptId) -> AttemptFaults {
        let phase = match attempt.task.phase {
            Phase::Map => &self.map,
            Phase::Reduce => &self.reduce,
        };
        let draw = |salt: u8| {
            let mut key = [0u8; 10];
            key[0] = attempt.task.phase as u8;
            key[1..5].copy_from_slice(&attempt.task.index.to_le_bytes());
            key[5..9].copy_from_slice(&attempt.attempt.to_le_bytes());
            key[9] = salt;
            xxhash_rust::xxh3::xxh3_64_with_seed(&key, self.seed)
        };
        let unit = |h: u64| (h >> 11) as f64 / (1u64 << 53) as f64;
        AttemptFaults {
            crash_at_records: (unit(draw(0)) < phase.failure).then(|| draw(1) % 2048),
            delay: (unit(draw(2)) < phase.straggler).then(|| Duration::from_millis(phase.straggler_delay_ms)),
        }
    }
}

/// Ends this process at once, as a crash would: no cleanup, no report.
pub fn crash() -> ! {
    eprintln!("mr worker: injected failure: exiting abruptly");
    std::process::exit(INJECTED_EXIT_CODE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::TaskId;

    #[test]
    fn rates_and_reproducibility() {
        let faults = Faults { map: PhaseFaults { failure: 0.3, ..Default::default() }, seed: 5, ..Default::default() };
        let attempts = (0..10_000).map(|i| AttemptId { task: TaskId { phase: Phase::Map, index: i }, attempt: 0 });
        let hit = attempts.clone().filter(|&a| faults.for_attempt(a).crash_at_records.is_some()).count();
        assert!((2700..3300).contains(&hit), "{hit} of 10000 at p = 0.3");
        let again = attempts.filter(|&a| faults.for_attempt(a).crash_at_records.is_some()).count();
        assert_eq!(hit, again);
        let reduce = AttemptId { task: TaskId { phase: Phase::Reduce, index: 0 }, attempt: 0 };
        assert_eq!(faults.for_attempt(reduce), AttemptFaults::default(), "reduce faults are off");
    }
}
