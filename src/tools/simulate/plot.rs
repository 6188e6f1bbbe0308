//! The data-rate timelines of a simulated job as SVG, after the three panels of the paper's
//! Figure 3: input read, shuffle and output rates over time.

use std::path::Path;

use plotters::prelude::*;

use super::Report;
use crate::error::{Error, Result};

/// Writes the three panels (input, shuffle, output rate in MB/s over seconds) to `path`.
pub fn write_svg(path: &Path, title: &str, report: &Report) -> Result<()> {
    let svg = render_svg(title, report)?;
    std::fs::write(path, svg).map_err(Error::io("cannot write", path))
}

/// The plot as SVG text.
pub fn render_svg(title: &str, report: &Report) -> Result<String> {
    let t = &report.timeline;
    let per_s = 1_000.0 / t.bin_ms as f64 / 1e6;
    let bins = t.input.len().max(t.shuffle.len()).max(t.output.len()).max(1);
    let seconds = (bins as f64 * t.bin_ms as f64 / 1e3).max(1.0);
    let series =
        [("Input (MB/s)", &t.input, BLUE), ("Shuffle (MB/s)", &t.shuffle, GREEN), ("Output (MB/s)", &t.output, RED)];
    let top = series.iter().flat_map(|(_, s, _)| s.iter()).fold(1.0f64, |m, &v| m.max(v * per_s)) * 1.05;
    let bottom = t.input.iter().fold(0.0f64, |m, &v| m.min(v * per_s)) * 1.05;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 900)).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| Error::Job(format!("cannot draw the plot: {e}"));
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let root = root.titled(title, ("sans-serif", 22)).map_err(|e| fail(&e))?;
        let panels = root.split_evenly((3, 1));
        for (area, (name, data, color)) in panels.iter().zip(series) {
            let low = if name.starts_with("Input") { bottom } else { 0.0 };
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(32)
                .y_label_area_size(70)
                .build_cartesian_2d(0f64..seconds, low..top)
                .map_err(|e| fail(&e))?;
            chart.configure_mesh().x_desc("Seconds").y_desc(name).disable_x_mesh().draw().map_err(|e| fail(&e))?;
            let points = data.iter().enumerate().map(|(i, &v)| (i as f64 * t.bin_ms as f64 / 1e3, v * per_s));
            chart
                .draw_series(AreaSeries::new(points, 0.0, color.mix(0.35)).border_style(color))
                .map_err(|e| fail(&e))?;
        }
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}
