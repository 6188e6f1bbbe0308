//! Randomized fault schedules, each checked against the scheduler's invariants.
//!
//! A seed picks a small cluster and job, a policy, and faults: worker deaths (some
//! restarted), slowed machines, lost heartbeats, network partitions. The job is simulated
//! with and without the faults, and the run with faults must keep these invariants:
//! - every task commits exactly once: in the end each task has exactly one committed
//!   attempt, and no reduce task's completion is accepted twice;
//! - the job ends (succeeds) within the time limit;
//! - no reduce attempt is told of a map output whose worker the scheduler had already
//!   declared dead, when lost workers' outputs are re-executed (a reduce never reads an
//!   output that was lost: it can only stall on it and report it);
//! - its time stays within a bound of the fault-free time (see [`time_bound_ms`]).

use std::collections::HashMap;
use std::ops::Range;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::{Cluster, Death, End, Faults, Partition, Policy, Scenario, Workload, below, unit};
use crate::control::scheduler::Outcome;
use crate::types::Millis;

/// The scenario of a seed, without its faults.
pub fn base_scenario(seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_fa17);
    let machines = 4 + below(&mut rng, 28) as u32;
    let racks = 1 + below(&mut rng, 4) as u32;
    let map_tasks = 1 + below(&mut rng, 120) as u32;
    let reduce_tasks = 1 + below(&mut rng, 16) as u32;
    // 20-200 MB per map task: a few seconds each on these machines.
    let input_bytes = u64::from(map_tasks) * (20 + below(&mut rng, 180)) * 1_000_000;
    Scenario {
        cluster: Cluster {
            machines,
            racks,
            disk_mb_s: 60.0,
            nic_mb_s: 125.0,
            rack_uplink_mb_s: 250.0,
            root_mb_s: 500.0,
        },
        workload: Workload {
            name: "check".into(),
            input_bytes,
            map_tasks,
            reduce_tasks,
            map_output_ratio: 0.2 + unit(&mut rng),
            output_ratio: 1.0,
            map_ns_per_byte: 15.0,
            sort_ns_per_byte: 0.0,
            reduce_ns_per_byte: 3.0,
            input_replicas: 1 + below(&mut rng, 3) as u32,
            output_replicas: 1 + below(&mut rng, 2) as u32,
            record_bytes: 100,
        },
        faults: Faults::default(),
        policy: Policy {
            speculative: below(&mut rng, 2) == 0,
            rerun_maps_of_lost_workers: below(&mut rng, 4) != 0,
            // Many attempts of a task may be lost to deaths, which do not count; only the
            // task timeout's abandonments count, and slowed machines still make progress.
            max_attempts: 4,
            ..Policy::default()
        },
        seed,
        step_ms: 100,
        time_limit_ms: 6 * 3_600_000,
        bin_ms: 5_000,
    }
}

/// The faults of a seed, for a job that takes `fault_free_ms` without them.
pub fn faults(seed: u64, sc: &Scenario, fault_free_ms: Millis) -> Faults {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xdead_beef);
    let n = sc.cluster.machines;
    let span = fault_free_ms.max(1_000);
    let mut deaths = Vec::new();
    // Fewer than half the machines die for good.
    let mut gone = 0;
    for _ in 0..below(&mut rng, 6) {
        let machine = below(&mut rng, u64::from(n)) as u32;
        let restart = if below(&mut rng, 3) == 0 && (gone + 1) * 2 < n {
            gone += 1;
            None
        } else {
            Some(below(&mut rng, 30_000))
        };
        deaths.push(Death { at_ms: below(&mut rng, span), machine, restart_after_ms: restart });
    }
    let partitions = (0..below(&mut rng, 4))
        .map(|_| {
            let from = below(&mut rng, span);
            Partition {
                machine: below(&mut rng, u64::from(n)) as u32,
                from_ms: from,
                until_ms: from + 500 + below(&mut rng, 40_000),
            }
        })
        .collect();
    let slowed = below(&mut rng, 3) != 0;
    Faults {
        deaths,
        slow_fraction: if slowed { unit(&mut rng) * 0.3 } else { 0.0 },
        slow_factor: if slowed { 2.0 + unit(&mut rng) * 18.0 } else { 1.0 },
        heartbeat_loss: if below(&mut rng, 2) == 0 { unit(&mut rng) * 0.5 } else { 0.0 },
        partitions,
    }
}

/// The bound on the time of a job with faults: the fault-free time, stretched by the
/// slowdown when there are no backups to beat it (or by 2 with them), then, per death and
/// partition, the detection, the retries, the restart, and one more fault-free time (what
/// it lost may have to run again).
pub fn time_bound_ms(sc: &Scenario, fault_free_ms: Millis) -> Millis {
    let f = &sc.faults;
    let stretch = if f.slow_fraction > 0.0 { f.slow_factor.max(2.0) } else { 2.0 };
    let p = &sc.policy;
    let per_fault = p.worker_timeout_ms + p.fetch_retry_ms + p.lost_timeout_ms + 30_000 + fault_free_ms;
    let partitions: Millis = f.partitions.iter().map(|x| x.until_ms - x.from_ms).sum();
    let restarts: Millis = f.deaths.iter().filter_map(|d| d.restart_after_ms).sum();
    (fault_free_ms as f64 * stretch) as Millis
        + (f.deaths.len() + f.partitions.len()) as Millis * per_fault
        + partitions
        + restarts
        + 60_000
}

/// What one seed found: the broken invariants, if any.
pub struct SeedResult {
    /// The scenario with its faults.
    pub scenario: Scenario,
    /// The time of the job without faults, and with them.
    pub fault_free_ms: Millis,
    /// With the faults: how it ended.
    pub end: End,
    /// The broken invariants.
    pub violations: Vec<String>,
}

/// Runs one seed.
pub fn check_seed(seed: u64) -> SeedResult {
    let mut sc = base_scenario(seed);
    let free = super::run(&sc, None);
    let fault_free_ms = match free.end {
        End::Succeeded(ms) => ms,
        _ => sc.time_limit_ms,
    };
    let mut violations: Vec<String> = free.violations.iter().map(|v| format!("without faults: {v}")).collect();
    if !matches!(free.end, End::Succeeded(_)) {
        violations.push(format!("without faults the job did not succeed: {:?}", free.end));
    }
    sc.faults = faults(seed, &sc, fault_free_ms);
    let (report, scheduler) = super::run_keeping(&sc, None);
    violations.extend(report.violations.iter().cloned());
    match report.end {
        End::Succeeded(ms) => {
            let bound = time_bound_ms(&sc, fault_free_ms);
            if ms > bound {
                violations.push(format!(
                    "the job took {ms} ms, over the bound of {bound} ms (fault-free: {fault_free_ms} ms)"
                ));
            }
        }
        ref other => violations.push(format!("the job did not succeed: {other:?}")),
    }
    // Every task has exactly one committed attempt.
    let mut committed: HashMap<_, u32> = HashMap::new();
    for a in scheduler.attempts() {
        if a.outcome == Outcome::Committed {
            *committed.entry(a.id.task).or_default() += 1;
        }
    }
    if matches!(report.end, End::Succeeded(_)) {
        let (m, r) = (sc.workload.map_tasks, sc.workload.reduce_tasks);
        for (phase, count) in [(crate::types::Phase::Map, m), (crate::types::Phase::Reduce, r)] {
            for index in 0..count {
                let task = crate::types::TaskId { phase, index };
                match committed.get(&task).copied().unwrap_or(0) {
                    1 => {}
                    n => violations.push(format!("{task} has {n} committed attempts")),
                }
            }
        }
    }
    SeedResult { scenario: sc, fault_free_ms, end: report.end, violations }
}

/// Runs `seeds`, printing each failing seed with its reproducer (and every seed's outcome
/// when `verbose`), then the count of failures. Returns the number of failing seeds.
pub fn run_seeds(seeds: Range<u64>, verbose: bool, out: &mut dyn FnMut(String)) -> u64 {
    let mut failures = 0;
    for seed in seeds.clone() {
        let r = check_seed(seed);
        if verbose || !r.violations.is_empty() {
            let sc = &r.scenario;
            out(format!(
                "seed {seed}: {} machines in {} racks, M = {}, R = {}, backups {}, rerun lost outputs {}; {:?}; fault-free {} ms, with faults {:?}",
                sc.cluster.machines,
                sc.cluster.racks,
                sc.workload.map_tasks,
                sc.workload.reduce_tasks,
                sc.policy.speculative,
                sc.policy.rerun_maps_of_lost_workers,
                sc.faults,
                r.fault_free_ms,
                r.end
            ));
        }
        if !r.violations.is_empty() {
            failures += 1;
            for v in &r.violations {
                out(format!("  broken: {v}"));
            }
            out(format!("  reproduce: mr simulate check --seed {seed} (add --trace FILE for its events)"));
        }
    }
    out(format!("{failures} of {} seeds failed", seeds.end - seeds.start));
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few hundred seeds; `scripts/simulate-check.sh` runs thousands.
    #[test]
    fn random_fault_schedules_keep_the_invariants() {
        let mut lines = Vec::new();
        let failures = run_seeds(0..300, false, &mut |l| lines.push(l));
        assert_eq!(failures, 0, "\n{}", lines.join("\n"));
    }

    #[test]
    fn a_seed_gives_the_same_trace_byte_for_byte() {
        for seed in [3, 17] {
            let mut sc = base_scenario(seed);
            sc.faults = faults(seed, &sc, 60_000);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let ra = super::super::run(&sc, Some(&mut a));
            let rb = super::super::run(&sc, Some(&mut b));
            assert!(!a.is_empty());
            assert!(a == b, "seed {seed}: traces differ");
            assert_eq!(ra.trace_digest, rb.trace_digest);
        }
        let mut other = base_scenario(3);
        other.seed = 4;
        assert_ne!(
            super::super::run(&other, None).trace_digest,
            super::super::run(&base_scenario(3), None).trace_digest
        );
    }
}
