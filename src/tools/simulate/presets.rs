//! The paper's scenarios (Dean & Ghemawat, OSDI 2004, section 5), at its scale.
//!
//! The cluster is the paper's: about 1,800 machines, each with two disks, a gigabit NIC, in a
//! two-level tree network with 100-200 Gbps at the root. The per-byte CPU costs are mr's own,
//! measured on one core of the machine that runs the tests (docs/SIMULATION.md says how).

use super::{Cluster, Death, Faults, Policy, Scenario, Workload};

/// The presets, by name.
pub const NAMES: [&str; 5] = ["sort-normal", "sort-no-backup", "sort-kill-200", "grep", "scale"];

/// CPU of a sort map attempt (read, partition, group, sort, write), ns per input byte:
/// `mr run sort --local` on 2,000,000 TeraGen records (191 MiB), user + system time of the
/// map phase.
pub const SORT_MAP_NS_PER_BYTE: f64 = 15.0;
/// CPU of a sort reduce attempt (merge, write), ns per shuffled byte, same run.
pub const SORT_REDUCE_NS_PER_BYTE: f64 = 3.0;
/// CPU of a grep map attempt, ns per input byte: `mr run grep --local` on 200 MiB of text.
pub const GREP_MAP_NS_PER_BYTE: f64 = 2.7;

/// The paper's cluster: `machines` of them in racks of 40.
pub fn paper_cluster(machines: u32) -> Cluster {
    Cluster {
        machines,
        racks: machines.div_ceil(40),
        // Two IDE disks of about 30 MB/s each.
        disk_mb_s: 60.0,
        // Gigabit Ethernet.
        nic_mb_s: 125.0,
        // Not in the paper: four gigabit links per rack.
        rack_uplink_mb_s: 500.0,
        // 150 Gbps, the middle of the paper's 100-200 Gbps.
        root_mb_s: 18_750.0,
    }
}

/// Sorting 10^10 100-byte records (1 TB): M = 15,000, R = 4,000, two output replicas.
pub fn sort_workload() -> Workload {
    Workload {
        name: "sort".into(),
        input_bytes: 1_000_000_000_000,
        map_tasks: 15_000,
        reduce_tasks: 4_000,
        map_output_ratio: 1.0,
        output_ratio: 1.0,
        map_ns_per_byte: SORT_MAP_NS_PER_BYTE,
        sort_ns_per_byte: 0.0,
        reduce_ns_per_byte: SORT_REDUCE_NS_PER_BYTE,
        input_replicas: 3,
        output_replicas: 2,
        record_bytes: 100,
    }
}

/// Grep over 10^10 100-byte records for a rare pattern (92,337 matches): M = 15,000, R = 1.
pub fn grep_workload() -> Workload {
    Workload {
        name: "grep".into(),
        input_bytes: 1_000_000_000_000,
        map_tasks: 15_000,
        reduce_tasks: 1,
        // 92,337 matching records of about 120 bytes with their keys.
        map_output_ratio: 92_337.0 * 120.0 / 1e12,
        output_ratio: 1.0,
        map_ns_per_byte: GREP_MAP_NS_PER_BYTE,
        sort_ns_per_byte: 0.0,
        reduce_ns_per_byte: SORT_REDUCE_NS_PER_BYTE,
        input_replicas: 3,
        output_replicas: 2,
        record_bytes: 100,
    }
}

/// The stragglers of the sort presets: 1.5 % of the machines, disk and CPU 10 × slower (the
/// paper's bad disks went from 30 MB/s to 1 MB/s).
pub const SLOW_FRACTION: f64 = 0.015;
/// See [`SLOW_FRACTION`].
pub const SLOW_FACTOR: f64 = 10.0;
/// When sort-kill-200 kills its 200 workers, ms.
pub const KILL_AT_MS: u64 = 60_000;

fn scenario(cluster: Cluster, workload: Workload, faults: Faults, policy: Policy, seed: u64) -> Scenario {
    Scenario { cluster, workload, faults, policy, seed, step_ms: 100, time_limit_ms: 4 * 3_600_000, bin_ms: 2_000 }
}

fn stragglers() -> Faults {
    Faults { slow_fraction: SLOW_FRACTION, slow_factor: SLOW_FACTOR, ..Faults::default() }
}

/// The preset called `name`, or `None`.
pub fn preset(name: &str, seed: u64) -> Option<Scenario> {
    let sc = match name {
        // The paper's sort ran on 1,746 workers.
        "sort-normal" => scenario(paper_cluster(1_746), sort_workload(), stragglers(), Policy::default(), seed),
        "sort-no-backup" => scenario(
            paper_cluster(1_746),
            sort_workload(),
            stragglers(),
            Policy { speculative: false, ..Policy::default() },
            seed,
        ),
        "sort-kill-200" => {
            let mut faults = stragglers();
            // 200 distinct machines, spread by a multiplier prime to 1,746.
            faults.deaths = (0..200u32)
                .map(|i| Death {
                    at_ms: KILL_AT_MS,
                    machine: (i * 997 + seed as u32 % 1_746) % 1_746,
                    restart_after_ms: Some(5_000),
                })
                .collect();
            scenario(paper_cluster(1_746), sort_workload(), faults, Policy::default(), seed)
        }
        // The paper's grep ran on 1,764 workers.
        "grep" => scenario(paper_cluster(1_764), grep_workload(), Faults::default(), Policy::default(), seed),
        // The paper's largest typical job: M = 200,000, R = 5,000 on 2,000 machines.
        "scale" => {
            let workload =
                Workload { name: "scale".into(), map_tasks: 200_000, reduce_tasks: 5_000, ..sort_workload() };
            scenario(paper_cluster(2_000), workload, Faults::default(), Policy::default(), seed)
        }
        _ => return None,
    };
    Some(sc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::simulate::{End, run};

    fn seconds(name: &str) -> f64 {
        let report = run(&preset(name, 1).expect("a preset"), None);
        assert!(report.violations.is_empty(), "{name}: {:?}", report.violations);
        match report.end {
            End::Succeeded(ms) => ms as f64 / 1e3,
            other => panic!("{name} did not succeed: {other:?}"),
        }
    }

    /// The paper's shape, with mr's policies, at the paper's scale.
    #[test]
    fn the_presets_have_the_paper_s_shape() {
        let normal = seconds("sort-normal");
        let no_backup = seconds("sort-no-backup");
        let killed = seconds("sort-kill-200");
        let grep = seconds("grep");
        assert!(no_backup >= normal * 1.25, "no backups {no_backup} s against {normal} s");
        assert!(killed <= normal * 1.10, "200 killed {killed} s against {normal} s");
        assert!((15.0..=1_500.0).contains(&grep), "grep {grep} s, the paper's 150 s");
    }

    #[test]
    fn a_preset_plots_as_svg() {
        let mut sc = preset("grep", 1).expect("a preset");
        sc.cluster = paper_cluster(40);
        sc.workload.map_tasks = 50;
        sc.workload.input_bytes = 5_000_000_000;
        let report = run(&sc, None);
        let svg = crate::tools::simulate::plot::render_svg("grep", &report).expect("the plot draws");
        assert!(svg.starts_with("<svg") && svg.contains("Input (MB/s)") && svg.contains("<polygon"), "{svg}");
    }
}
