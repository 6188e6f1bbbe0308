//! Progress of a running job on stderr: two bars (map: bytes of input, with tasks, rate and
//! ETA; reduce: tasks) on a terminal, plain lines every few seconds and at the end of each
//! phase otherwise, nothing with `--quiet` or `--json`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::control::coordinator::Coordinator;
use crate::types::Phase;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal, plain lines otherwise.
    Auto,
    /// Nothing.
    Off,
}

/// How often the display is refreshed.
const TICK: Duration = Duration::from_millis(200);
/// How often a plain line is printed while nothing else changes.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Shows the progress of `coordinator`'s job until `stop` is cancelled.
pub async fn show(coordinator: Coordinator, input_bytes: u64, mode: ProgressMode, stop: CancellationToken) {
    if mode == ProgressMode::Off {
        return;
    }
    if std::io::stderr().is_terminal() {
        bars(coordinator, input_bytes, stop).await;
    } else {
        plain(coordinator, stop).await;
    }
}

/// (map done, map total, map input bytes committed, reduce done, reduce total)
fn snapshot(coordinator: &Coordinator) -> (u32, u32, u64, u32, u32) {
    let s = coordinator.scheduler();
    let (map_done, maps) = s.progress(Phase::Map);
    let (reduce_done, reduces) = s.progress(Phase::Reduce);
    (map_done, maps, s.counters(Phase::Map).input_bytes, reduce_done, reduces)
}

async fn bars(coordinator: Coordinator, input_bytes: u64, stop: CancellationToken) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(5));
    let map_style =
        ProgressStyle::with_template("map    [{bar:30}] {bytes}/{total_bytes} {msg} {bytes_per_sec} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    let reduce_style = ProgressStyle::with_template("reduce [{bar:30}] {pos}/{len} tasks {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let map = multi.add(ProgressBar::new(input_bytes).with_style(map_style));
    let reduce = multi.add(ProgressBar::new(0).with_style(reduce_style));
    loop {
        // Once stopped, draw the final state, then leave.
        let stopped = stop.is_cancelled();
        let (map_done, maps, bytes, reduce_done, reduces) = snapshot(&coordinator);
        map.set_position(bytes.min(input_bytes));
        map.set_message(format!("{map_done}/{maps} tasks"));
        reduce.set_length(u64::from(reduces));
        reduce.set_position(u64::from(reduce_done));
        if stopped {
            break;
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
    }
    map.finish();
    reduce.finish();
}

async fn plain(coordinator: Coordinator, stop: CancellationToken) {
    let mut last = None;
    let mut printed = Instant::now();
    loop {
        let stopped = stop.is_cancelled();
        let (map_done, maps, _, reduce_done, reduces) = snapshot(&coordinator);
        let phase_ended = |l: Option<(u32, u32)>| {
            l.is_some_and(|(m, r)| (m < maps && map_done == maps) || (r < reduces && reduce_done == reduces))
        };
        let now = (map_done, reduce_done);
        let due = printed.elapsed() >= PLAIN_EVERY || stopped;
        if last.is_none() || phase_ended(last) || (due && last != Some(now)) {
            eprintln!("mr: map {map_done}/{maps} tasks, reduce {reduce_done}/{reduces} tasks");
            printed = Instant::now();
            last = Some(now);
        }
        if stopped {
            return;
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}
