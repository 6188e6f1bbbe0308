//! Progress of a running job on stderr: two bars on a terminal (map: bytes of input read;
//! reduce: bytes of map output merged; each with its tasks, rate, elapsed time, and an ETA once
//! there is a rate), plain lines every few seconds and at the end of each phase otherwise,
//! nothing with `--quiet` or `--json`.

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
    show_from(move || snapshot(&coordinator), input_bytes, mode, stop).await;
}

/// Shows the progress of a job that `source` tells (a cluster's job, as `mr submit` last heard
/// of it) until `stop` is cancelled, as [`show`] does.
pub async fn show_from(source: impl Fn() -> Snapshot, input_bytes: u64, mode: ProgressMode, stop: CancellationToken) {
    if mode == ProgressMode::Off {
        return;
    }
    if std::io::stderr().is_terminal() {
        bars(&source, input_bytes, stop).await;
    } else {
        plain(&source, stop).await;
    }
}

/// What the display shows of a job at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Map tasks committed.
    pub map_done: u32,
    /// Map tasks.
    pub maps: u32,
    /// Input bytes of the committed map attempts.
    pub map_bytes: u64,
    /// Reduce tasks committed.
    pub reduce_done: u32,
    /// Reduce tasks.
    pub reduces: u32,
    /// Bytes the committed reduce attempts merged.
    pub reduce_bytes: u64,
    /// Bytes the reduce tasks merge in all: the records of every committed map output.
    pub reduce_total: u64,
}

/// What the display shows of `coordinator`'s job now.
pub fn snapshot(coordinator: &Coordinator) -> Snapshot {
    let s = coordinator.scheduler();
    let (map_done, maps) = s.progress(Phase::Map);
    let (reduce_done, reduces) = s.progress(Phase::Reduce);
    let map = s.counters(Phase::Map);
    let overhead = crate::data::mapout::overhead(reduces) * u64::from(map_done);
    Snapshot {
        map_done,
        maps,
        map_bytes: map.input_bytes,
        reduce_done,
        reduces,
        reduce_bytes: s.counters(Phase::Reduce).input_bytes,
        reduce_total: map.output_bytes.saturating_sub(overhead),
    }
}

/// A bar's style: the estimated time left only once there is a rate to estimate it from.
fn style(phase: &str, with_eta: bool) -> ProgressStyle {
    let eta = if with_eta { " ETA {eta}" } else { "" };
    let template = format!(
        "{phase:<6} [{{bar:24}}] {{bytes}}/{{total_bytes}} {{msg}} {{binary_bytes_per_sec}}{eta} in {{elapsed}}"
    );
    ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
}

/// The reduce bar's style before the first map output is committed: nothing to merge yet.
fn waiting_style() -> ProgressStyle {
    ProgressStyle::with_template("reduce waiting for map outputs, {msg} in {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Moves a bar to `position`, showing the ETA from the first byte on.
fn advance(bar: &ProgressBar, phase: &str, position: u64) {
    if position > 0 && bar.position() == 0 {
        bar.set_style(style(phase, true));
    }
    bar.set_position(position.min(bar.length().unwrap_or(0)));
}

async fn bars(source: &impl Fn() -> Snapshot, input_bytes: u64, stop: CancellationToken) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(5));
    let map = multi.add(ProgressBar::new(input_bytes).with_style(style("map", false)));
    let reduce = multi.add(ProgressBar::new(0).with_style(waiting_style()));
    loop {
        // Once stopped, draw the final state, then leave.
        let stopped = stop.is_cancelled();
        let now = source();
        advance(&map, "map", now.map_bytes);
        map.set_message(format!("{}/{} tasks", now.map_done, now.maps));
        if now.reduce_total > 0 && reduce.length() == Some(0) {
            reduce.set_style(style("reduce", false));
        }
        reduce.set_length(now.reduce_total);
        advance(&reduce, "reduce", now.reduce_bytes);
        reduce.set_message(format!("{}/{} tasks", now.reduce_done, now.reduces));
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

async fn plain(source: &impl Fn() -> Snapshot, stop: CancellationToken) {
    let mut last = None;
    let mut printed = Instant::now();
    loop {
        let stopped = stop.is_cancelled();
        let Snapshot { map_done, maps, reduce_done, reduces, .. } = source();
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
