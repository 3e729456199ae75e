//! The report's PNG plots: feature size per split (cf. paper Fig. 6), accuracy against bytes for
//! aware and naive training (cf. Fig. 7), and latency and energy per split per network (the
//! figures of Table 4 drawn).
//!
//! Drawing uses plotters' bitmap backend into an RGB buffer, encoded with the `png` crate. Text
//! goes through plotters' `ab_glyph` renderer with DejaVu Sans embedded in the binary
//! (`assets/DejaVuSans.ttf`), so nothing depends on system fonts or fontconfig.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use bottlenet_partition::{SearchMode, TrainingResults};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::prelude::*;
use plotters::style::register_font;

use crate::error::{Error, Result};
use crate::inputs::{AccuracyPoint, FeatureSizes};
use crate::tables::Tables;

/// DejaVu Sans 2.37 (Bitstream Vera licence, `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Registers the embedded font under the family names plotters asks for. Idempotent.
fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        ["sans-serif", "serif", "monospace"]
            .into_iter()
            .all(|family| register_font(family, FontStyle::Normal, FONT).is_ok())
    });
    if ok { Ok(()) } else { Err(Error::Font) }
}

/// Draws with `draw` on a white `size` canvas and writes it to `path` as an 8-bit RGB PNG.
fn render(
    path: &Path,
    size: (u32, u32),
    plot: &'static str,
    draw: impl FnOnce(&Area<'_>) -> DrawResult,
) -> Result<()> {
    ensure_font()?;
    let (w, h) = size;
    let mut buffer = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, size).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(Into::into));
        drawn.map_err(|e| Error::Plot {
            plot,
            reason: e.to_string(),
        })?;
    }
    let mut encoded = Vec::new();
    let png_error = |source| Error::Png {
        path: path.to_path_buf(),
        source,
    };
    {
        let mut encoder = png::Encoder::new(&mut encoded, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(png_error)?;
        writer.write_image_data(&buffer).map_err(png_error)?;
        writer.finish().map_err(png_error)?;
    }
    // Atomic like every other report file (see report.rs).
    Ok(bottlenet_partition::write_atomic(path, &encoded)?)
}

/// A categorical axis: category `i` sits at `i`, the axis spans `-0.5 ..= n − 0.5`, and its key
/// points are the categories (every k-th when there are more than the axis can label), labelled
/// with their names. Bars within a category use fractional positions.
#[derive(Debug, Clone)]
struct Categories {
    names: Vec<String>,
}

impl Ranged for Categories {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let Range { start, end } = self.range();
        let fraction = (value - start) / (end - start);
        limit.0 + (fraction * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        let n = self.names.len();
        let step = n.div_ceil(hint.max_num_points().max(1)).max(1);
        (0..n).step_by(step).map(|i| i as f64).collect()
    }

    fn range(&self) -> Range<f64> {
        -0.5..(self.names.len() as f64 - 0.5)
    }
}

impl ValueFormatter<f64> for Categories {
    fn format_ext(&self, value: &f64) -> String {
        let i = value.round();
        if i >= 0.0 && (i as usize) < self.names.len() {
            self.names[i as usize].clone()
        } else {
            String::new()
        }
    }
}

/// A logarithmic axis over `range` (both ends > 0) whose key points are the "nice" values
/// 1-2-5 × 10^k inside it, thinned to 1-3 × 10^k and then to powers of ten when the axis has
/// room for fewer labels. (plotters' own log scale labels only some decades.)
#[derive(Debug, Clone)]
struct LogAxis {
    range: Range<f64>,
}

impl LogAxis {
    fn points(&self, mantissas: &[f64]) -> Vec<f64> {
        let Range { start, end } = self.range;
        let mut out = Vec::new();
        let mut decade = 10f64.powf(start.log10().floor());
        while decade <= end {
            for m in mantissas {
                let v = m * decade;
                if v >= start && v <= end {
                    out.push(v);
                }
            }
            decade *= 10.0;
        }
        out
    }
}

impl Ranged for LogAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let (lo, hi) = (self.range.start.log10(), self.range.end.log10());
        let fraction = (value.max(f64::MIN_POSITIVE).log10() - lo) / (hi - lo);
        limit.0 + (fraction * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        let max = hint.max_num_points();
        for mantissas in [&[1.0, 2.0, 5.0][..], &[1.0, 3.0], &[1.0]] {
            let points = self.points(mantissas);
            if points.len() <= max {
                return points;
            }
        }
        let points = self.points(&[1.0]);
        let step = points.len().div_ceil(max.max(1));
        points.into_iter().step_by(step.max(1)).collect()
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

impl ValueFormatter<f64> for LogAxis {
    fn format_ext(&self, value: &f64) -> String {
        compact(*value)
    }
}

/// Short tick labels for a log axis: 0.5, 3, 20, 1.5k, 3.2M.
fn compact(v: f64) -> String {
    match v.abs() {
        a if a >= 1e6 => format!("{:.1}M", v / 1e6),
        a if a >= 1e3 => format!("{:.1}k", v / 1e3),
        a if a >= 10.0 => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

/// A log range covering every positive value in `values`, with a factor 1.6 of room below and
/// `top` above (room for the legend).
fn log_bounds(values: impl IntoIterator<Item = f64>, top: f64) -> Range<f64> {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo.is_finite() {
        lo / 1.6..hi * top
    } else {
        0.1..10.0
    }
}

fn color(i: usize) -> RGBAColor {
    const COLORS: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(23, 190, 207),
    ];
    COLORS[i % COLORS.len()].to_rgba()
}

/// Fig. 6: for the input and each split, the feature size as 32-bit floats and as 8-bit values,
/// beside the mean BottleNet frame `D_j` of `results` where the split has one. Log scale.
pub fn feature_size_png(
    path: &Path,
    size: (u32, u32),
    sizes: &FeatureSizes,
    results: &TrainingResults,
) -> Result<()> {
    let mut names = vec!["input".to_owned()];
    names.extend(sizes.rows.iter().map(|r| r.split.clone()));
    // (series, category, bytes); series 0 is the input image.
    let mut bars: Vec<(usize, usize, f64)> = vec![(0, 0, sizes.input_bytes as f64)];
    for (i, row) in sizes.rows.iter().enumerate() {
        bars.push((1, i + 1, row.f32_bytes as f64));
        bars.push((2, i + 1, row.u8_bytes as f64));
        if let Some(split) = results.splits.iter().find(|s| s.name == row.split) {
            bars.push((3, i + 1, split.bytes));
        }
    }
    let labels = [
        "input image (8-bit pixels)",
        "feature tensor, float32",
        "feature tensor, 8-bit",
        "BottleNet frame (mean bytes)",
    ];
    let y = log_bounds(bars.iter().map(|b| b.2), 12.0);
    render(path, size, "feature size", |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Feature size per split point (cf. paper Fig. 6)",
                ("sans-serif", 26),
            )
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(80)
            .build_cartesian_2d(
                Categories {
                    names: names.clone(),
                },
                LogAxis { range: y.clone() },
            )?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(names.len())
            .x_desc("split point")
            .y_desc("bytes per image (log scale)")
            .y_labels(12)
            .draw()?;
        for (series, label) in labels.iter().enumerate() {
            let style = color(series).filled();
            let mut rects = Vec::new();
            for &(s, category, value) in &bars {
                if s != series || value <= 0.0 {
                    continue;
                }
                let present: Vec<usize> = bars
                    .iter()
                    .filter(|b| b.1 == category)
                    .map(|b| b.0)
                    .collect();
                let slot = present.iter().position(|&p| p == series).unwrap_or(0);
                let width = 0.8 / present.len() as f64;
                let x0 = category as f64 - 0.4 + slot as f64 * width;
                rects.push(Rectangle::new(
                    [(x0, y.start), (x0 + width * 0.9, value)],
                    style,
                ));
            }
            if rects.is_empty() {
                continue;
            }
            chart
                .draw_series(rects)?
                .label(*label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], style));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 15))
            .draw()?;
        Ok(())
    })
}

/// Fig. 7: accuracy against mean frame bytes, one line per training mode over the codec
/// qualities, with the baseline and the tolerance threshold. Log scale in bytes.
pub fn accuracy_png(
    path: &Path,
    size: (u32, u32),
    points: &[AccuracyPoint],
    baseline_accuracy: f64,
    tolerance_points: f64,
) -> Result<()> {
    let x = log_bounds(points.iter().map(|p| p.mean_bytes), 1.6);
    let threshold = baseline_accuracy - tolerance_points;
    let (lo, hi) = points
        .iter()
        .map(|p| p.accuracy)
        .chain([baseline_accuracy, threshold])
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let y = (lo - 3.0).max(0.0)..(hi + 3.0).min(100.0);
    render(path, size, "accuracy against bytes", |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Accuracy against compressed feature size (cf. paper Fig. 7)",
                ("sans-serif", 26),
            )
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(70)
            .build_cartesian_2d(LogAxis { range: x.clone() }, y.clone())?;
        chart
            .configure_mesh()
            .x_desc("mean frame bytes per image (log scale)")
            .x_labels(12)
            .y_desc("top-1 accuracy (%)")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .max_light_lines(2)
            .draw()?;
        chart
            .draw_series(LineSeries::new(
                [(x.start, baseline_accuracy), (x.end, baseline_accuracy)],
                BLACK.stroke_width(2),
            ))?
            .label(format!("baseline {baseline_accuracy:.1} %"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.stroke_width(2)));
        chart
            .draw_series(DashedLineSeries::new(
                [(x.start, threshold), (x.end, threshold)],
                10,
                6,
                BLACK.stroke_width(1),
            ))?
            .label(format!("threshold (baseline − {tolerance_points} points)"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.stroke_width(1)));
        for (i, (mode, label)) in [
            (SearchMode::Aware, "compression-aware training"),
            (SearchMode::Naive, "naive training"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut series: Vec<&AccuracyPoint> =
                points.iter().filter(|p| p.mode == mode).collect();
            if series.is_empty() {
                continue;
            }
            series.sort_by(|a, b| a.mean_bytes.total_cmp(&b.mean_bytes));
            let c = color(i);
            chart
                .draw_series(LineSeries::new(
                    series.iter().map(|p| (p.mean_bytes, p.accuracy)),
                    c.stroke_width(2),
                ))?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
            chart.draw_series(
                series
                    .iter()
                    .map(|p| Circle::new((p.mean_bytes, p.accuracy), 4, c.filled())),
            )?;
            // Label the qualities, at most about a dozen per line.
            let every = series.len().div_ceil(12).max(1);
            chart.draw_series(series.iter().step_by(every).map(|p| {
                Text::new(
                    format!("q{}", p.quality),
                    (p.mean_bytes, p.accuracy),
                    ("sans-serif", 13).into_font().color(&c),
                )
            }))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .label_font(("sans-serif", 15))
            .draw()?;
        Ok(())
    })
}

/// Which figure of Table 4 a per-split plot shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// End-to-end latency `TM + TU + TC`, ms.
    Latency,
    /// Phone energy `TM·PM + TU·PU`, mJ.
    Energy,
}

/// Latency or energy of every split on every network (one line each), with cloud-only per
/// network and mobile-only as dashed horizontal lines. Log scale.
pub fn per_split_png(path: &Path, size: (u32, u32), tables: &Tables, metric: Metric) -> Result<()> {
    let (title, unit, plot) = match metric {
        Metric::Latency => (
            "End-to-end latency per split point",
            "latency (ms, log scale)",
            "latency",
        ),
        Metric::Energy => (
            "Phone energy per split point",
            "energy (mJ, log scale)",
            "energy",
        ),
    };
    let pick = |latency: f64, energy: f64| match metric {
        Metric::Latency => latency,
        Metric::Energy => energy,
    };
    let names: Vec<String> = tables.table4.iter().map(|r| r.split.clone()).collect();
    let n = tables.networks.len();
    let series: Vec<Vec<(f64, f64)>> = (0..n)
        .map(|k| {
            tables
                .table4
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    r.costs
                        .get(k)
                        .map(|c| (i as f64, pick(c.latency_ms, c.energy_mj)))
                })
                .collect()
        })
        .collect();
    let cloud: Vec<Option<f64>> = tables
        .networks
        .iter()
        .map(|name| {
            tables
                .table5
                .iter()
                .find(|r| {
                    r.setup == crate::tables::Setup::CloudOnly && r.network.as_deref() == Some(name)
                })
                .map(|r| pick(r.latency_ms, r.energy_mj))
        })
        .collect();
    let mobile = tables
        .table5
        .iter()
        .find(|r| r.setup == crate::tables::Setup::MobileOnly)
        .map(|r| pick(r.latency_ms, r.energy_mj));
    let y = log_bounds(
        series
            .iter()
            .flatten()
            .map(|p| p.1)
            .chain(cloud.iter().flatten().copied())
            .chain(mobile),
        1.6,
    );
    let floor = y.start;
    let x_end = names.len() as f64 - 0.5;
    render(path, size, plot, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 26))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(70)
            .build_cartesian_2d(
                Categories {
                    names: names.clone(),
                },
                LogAxis { range: y.clone() },
            )?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(names.len())
            .x_desc("split point")
            .y_desc(unit)
            .y_labels(12)
            .draw()?;
        for (k, points) in series.iter().enumerate() {
            let c = color(k);
            let points: Vec<(f64, f64)> = points.iter().map(|&(x, v)| (x, v.max(floor))).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))?
                .label(tables.networks[k].clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
            if let Some(v) = cloud[k] {
                chart
                    .draw_series(DashedLineSeries::new(
                        [(-0.5, v), (x_end, v)],
                        10,
                        6,
                        c.stroke_width(1),
                    ))?
                    .label(format!("cloud-only, {}", tables.networks[k]))
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 20, y)], c.stroke_width(1))
                    });
            }
        }
        if let Some(v) = mobile {
            chart
                .draw_series(DashedLineSeries::new(
                    [(-0.5, v), (x_end, v)],
                    4,
                    4,
                    BLACK.stroke_width(2),
                ))?
                .label("mobile-only")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            // Deep splits cost the most, shallow ones the least: the lower right stays clear.
            .position(SeriesLabelPosition::LowerRight)
            .label_font(("sans-serif", 15))
            .draw()?;
        Ok(())
    })
}


/// One bar of [`breakdown_png`]: where the milliseconds of one setup on one network went.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BreakdownBar {
    /// Axis label, e.g. `3G RB1`.
    pub label: String,
    /// Phone compute (head + reduction + encode, or the whole network), ms.
    pub phone_ms: f64,
    /// Upload, ms.
    pub upload_ms: f64,
    /// Server (queue + decode + tail), ms.
    pub server_ms: f64,
}

/// Stacked bars of measured phone / upload / server time per setup (the demo's "where each
/// millisecond went"), linear scale.
pub fn breakdown_png(path: &Path, size: (u32, u32), title: &str, bars: &[BreakdownBar]) -> Result<()> {
    if bars.is_empty() {
        return Err(Error::InvalidInput("no bars to draw".into()));
    }
    if let Some(bad) = bars.iter().find(|b| ![b.phone_ms, b.upload_ms, b.server_ms].iter().all(|v| v.is_finite() && *v >= 0.0)) {
        return Err(Error::InvalidInput(format!("bar {:?}: times must be finite and not negative", bad.label)));
    }
    let names: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    let top = bars.iter().map(|b| b.phone_ms + b.upload_ms + b.server_ms).fold(0.0_f64, f64::max).max(1e-3) * 1.25;
    let title = title.to_string();
    render(path, size, "breakdown", |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 26))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(70)
            .build_cartesian_2d(Categories { names: names.clone() }, 0.0..top)?;
        chart.configure_mesh().disable_x_mesh().x_labels(names.len()).x_desc("network and setup").y_desc("mean latency per image (ms)").draw()?;
        type Part = fn(&BreakdownBar) -> f64;
        let parts: [(&str, Part); 3] = [("phone compute", |b| b.phone_ms), ("upload", |b| b.upload_ms), ("server", |b| b.server_ms)];
        for (k, (name, value)) in parts.into_iter().enumerate() {
            let c = color(k);
            chart
                .draw_series(bars.iter().enumerate().map(|(i, b)| {
                    let below: f64 = parts[..k].iter().map(|(_, f)| f(b)).sum();
                    let x = i as f64;
                    Rectangle::new([(x - 0.35, below), (x + 0.35, below + value(b))], c.filled())
                }))?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.9)).border_style(BLACK).position(SeriesLabelPosition::UpperRight).draw()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests;
