//! One chart type for every figure: named series of points (lines or scatter), drawn with plotters
//! to PNG and SVG. Scatter charts can name each point in place, which keeps methods that land on the
//! same point (WiSE-FT trains exactly like SFT before it averages) readable.

use anyhow::{bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

mod labels;

use labels::{
    label_offsets, point_labels, LabelBox, LABEL_FONT_PX, LABEL_GAP_PX, LABEL_RISE_PX,
    MARKER_RADIUS_PX,
};

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub line: bool,
    /// Empty, or one entry per point: for a point that averages several runs, the runs' (x, y)
    /// ranges, drawn as whiskers through it.
    pub spreads: Vec<Option<Spread>>,
}

impl Series {
    /// Points joined by a line, in the order given.
    pub fn line(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
            line: true,
            spreads: Vec::new(),
        }
    }

    /// Points drawn as dots.
    pub fn scatter(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            line: false,
            ..Series::line(name, points)
        }
    }

    /// The same series with each point's run ranges (one entry per point).
    pub fn with_spreads(self, spreads: Vec<Option<Spread>>) -> Series {
        debug_assert_eq!(spreads.len(), self.points.len());
        Series { spreads, ..self }
    }

    /// Whether any point averages several runs that differ.
    pub fn has_spread(&self) -> bool {
        self.spreads
            .iter()
            .flatten()
            .any(|w| w.x.0 < w.x.1 || w.y.0 < w.y.1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub x: (f64, f64),
    pub y: (f64, f64),
}

impl Spread {
    /// The ranges of `points`; `None` for fewer than two.
    pub fn of(points: &[(f64, f64)]) -> Option<Spread> {
        let range = |v: &mut dyn Iterator<Item = f64>| {
            v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                (lo.min(x), hi.max(x))
            })
        };
        (points.len() > 1).then(|| Spread {
            x: range(&mut points.iter().map(|p| p.0)),
            y: range(&mut points.iter().map(|p| p.1)),
        })
    }
}

/// How x values map to tick labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XScale {
    Linear,
    /// The x values are log10 of the quantity (a learning rate); ticks name the quantity at its
    /// powers of ten, where `-4.8` would mean nothing to a reader.
    Log10,
}

pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub x_scale: XScale,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Write each scatter series' name beside its points; coincident points share one label.
    pub name_points: bool,
}

/// Tick labels without float noise: 3 decimal places, trailing zeros dropped.
pub fn tick_label(v: &f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// Tick labels on a log10 axis: `1e-4` at each power of ten, nothing between.
pub fn log10_tick_label(v: &f64) -> String {
    let power = v.round();
    if (v - power).abs() < 1e-6 {
        format!("1e{power}")
    } else {
        String::new()
    }
}

fn font_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("TALR_FONT") {
        return Ok(PathBuf::from(p));
    }
    for p in [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/Library/Fonts/Arial.ttf",
    ] {
        if Path::new(p).exists() {
            return Ok(PathBuf::from(p));
        }
    }
    bail!("no TrueType font found for figure text; set TALR_FONT to a .ttf file (e.g. DejaVuSans.ttf)")
}

fn register_font() -> Result<()> {
    static ONCE: Once = Once::new();
    let path = font_path()?;
    let bytes = std::fs::read(&path).with_context(|| format!("reading font {}", path.display()))?;
    ONCE.call_once(|| {
        let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, leaked);
    });
    Ok(())
}

fn bounds<'a>(
    series: impl IntoIterator<Item = &'a Series>,
    name_points: bool,
) -> ((f64, f64), (f64, f64)) {
    let pts: Vec<(f64, f64)> = series
        .into_iter()
        .flat_map(|s| {
            let ends = s
                .spreads
                .iter()
                .flatten()
                .flat_map(|w| [(w.x.0, w.y.0), (w.x.1, w.y.1)]);
            s.points.iter().copied().chain(ends)
        })
        .collect();
    let span = |v: Vec<f64>, top: f64| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let pad = ((hi - lo) * 0.08).max(1e-3);
        (lo - pad, hi + pad.max((hi - lo) * top))
    };
    // Headroom keeps the legend (upper right) off the data; a chart that names its points in place
    // has no legend but needs room to the right of and above its points for the names.
    let (right, top) = if name_points {
        (0.35, 0.12)
    } else {
        (0.0, 0.35)
    };
    (
        span(pts.iter().map(|p| p.0).collect(), right),
        span(pts.iter().map(|p| p.1).collect(), top),
    )
}

/// The axes' ranges for panels drawn side by side: one range over all of them, so that the same
/// point sits at the same place in every panel.
fn shared_bounds(charts: &[Chart]) -> ((f64, f64), (f64, f64)) {
    let (x, y) = bounds(
        charts.iter().flat_map(|c| &c.series),
        charts.iter().any(|c| c.name_points),
    );
    if charts.iter().any(|c| c.x_scale == XScale::Log10) {
        (reach_two_powers_of_ten(x), y)
    } else {
        (x, y)
    }
}

/// A log10 axis labels only its powers of ten, so a range inside one decade (all runs at one
/// learning rate) would have no x labels at all: widen it to the decade's ends.
fn reach_two_powers_of_ten((lo, hi): (f64, f64)) -> (f64, f64) {
    if hi.floor() - lo.ceil() >= 1.0 {
        return (lo, hi);
    }
    let lo = lo.floor();
    let hi = hi.ceil().max(lo + 1.0);
    let pad = (hi - lo) * 0.08;
    (lo - pad, hi + pad)
}

fn draw_panels<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, charts: &[Chart]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let ranges = shared_bounds(charts);
    let palette = panel_palette(charts);
    for ((area, chart), colors) in root
        .split_evenly((1, charts.len()))
        .into_iter()
        .zip(charts)
        .zip(palette)
    {
        draw(&area, chart, ranges, &colors)?;
    }
    root.present().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

/// Palette indices for each panel's series. A lone chart colours its series in order; across
/// panels a series keeps one colour by its name up to any parenthesised qualifier, so that
/// `sft (mean of 3 seeds)` in one panel and `sft` in the next are the same method in one colour.
fn panel_palette(charts: &[Chart]) -> Vec<Vec<usize>> {
    if charts.len() == 1 {
        return vec![(0..charts[0].series.len()).collect()];
    }
    let mut keys: Vec<&str> = Vec::new();
    charts
        .iter()
        .map(|c| {
            c.series
                .iter()
                .map(|s| {
                    let key = s.name.split(" (").next().unwrap_or_default();
                    keys.iter().position(|k| *k == key).unwrap_or_else(|| {
                        keys.push(key);
                        keys.len() - 1
                    })
                })
                .collect()
        })
        .collect()
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart,
    ((x0, x1), (y0, y1)): ((f64, f64), (f64, f64)),
    colors: &[usize],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut c = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let x_tick_label = match chart.x_scale {
        XScale::Linear => tick_label,
        XScale::Log10 => log10_tick_label,
    };
    c.configure_mesh()
        .x_label_formatter(&x_tick_label)
        .y_label_formatter(&tick_label)
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    for (s, &i) in chart.series.iter().zip(colors) {
        let color = Palette99::pick(i).to_rgba();
        // Whiskers with end caps: thin beside a scatter point, line-weight on a curve, where a
        // thin one disappears under the line.
        let whisker = color.mix(0.7).stroke_width(if s.line { 2 } else { 1 });
        let spread_at = || {
            s.points
                .iter()
                .zip(&s.spreads)
                .filter_map(|(&p, w)| Some((p, (*w)?)))
        };
        c.draw_series(
            spread_at()
                .filter(|(_, w)| w.x.0 < w.x.1)
                .map(|((x, y), w)| ErrorBar::new_horizontal(y, w.x.0, x, w.x.1, whisker, 8)),
        )
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        c.draw_series(
            spread_at()
                .filter(|(_, w)| w.y.0 < w.y.1)
                .map(|((x, y), w)| ErrorBar::new_vertical(x, w.y.0, y, w.y.1, whisker, 8)),
        )
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        if s.line {
            c.draw_series(LineSeries::new(s.points.clone(), color.stroke_width(2)))
                .map_err(|e| anyhow::anyhow!("{e:?}"))?
                .label(&s.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            c.draw_series(s.points.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        } else {
            c.draw_series(
                s.points
                    .iter()
                    .map(|p| Circle::new(*p, MARKER_RADIUS_PX, color.filled())),
            )
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
            .label(&s.name)
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
        }
    }
    if chart.name_points {
        let font = ("sans-serif", LABEL_FONT_PX).into_font().color(&BLACK);
        let labels = point_labels(&chart.series);
        let boxes: Vec<LabelBox> = labels
            .iter()
            .map(|(p, label)| {
                let (x, y) = c.backend_coord(p);
                let (w, _) = root.estimate_text_size(label, &font).unwrap_or((0, 0));
                LabelBox::line_at(x + LABEL_GAP_PX, y - LABEL_RISE_PX, w as i32)
            })
            .collect();
        let markers: Vec<LabelBox> = labels
            .iter()
            .map(|(p, _)| {
                let (x, y) = c.backend_coord(p);
                LabelBox::marker_at(x, y)
            })
            .collect();
        let (xs, ys) = c.plotting_area().get_pixel_range();
        let area = LabelBox {
            x: xs.start,
            y: ys.start,
            w: xs.end - xs.start,
            h: ys.end - ys.start,
        };
        let offsets = label_offsets(&boxes, &markers, area);
        c.draw_series(
            labels
                .into_iter()
                .zip(offsets)
                .map(|((p, label), (dx, dy))| {
                    EmptyElement::at(p)
                        + Text::new(label, (LABEL_GAP_PX + dx, dy - LABEL_RISE_PX), font.clone())
                }),
        )
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    } else {
        c.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    Ok(())
}

/// Writes `<out>/<name>.png` and `.svg`; a chart with no points is skipped.
pub fn write_chart(out: &Path, name: &str, chart: &Chart) -> Result<Vec<PathBuf>> {
    write_panels(out, name, std::slice::from_ref(chart))
}

/// Writes charts side by side on shared axes as `<out>/<name>.png` and `.svg`; skipped when no
/// chart has a point.
pub fn write_panels(out: &Path, name: &str, charts: &[Chart]) -> Result<Vec<PathBuf>> {
    if charts
        .iter()
        .flat_map(|c| &c.series)
        .all(|s| s.points.is_empty())
    {
        return Ok(Vec::new());
    }
    register_font()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let png = out.join(format!("{name}.png"));
    let svg = out.join(format!("{name}.svg"));
    // Two panels share a wide image rather than halving one: names written beside points need
    // the width.
    let size = (900 + 660 * (charts.len() as u32 - 1), 600);
    draw_panels(BitMapBackend::new(&png, size).into_drawing_area(), charts)?;
    draw_panels(SVGBackend::new(&svg, size).into_drawing_area(), charts)?;
    Ok(vec![png, svg])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_have_no_float_noise() {
        assert_eq!(tick_label(&0.30000000000000004), "0.3");
        assert_eq!(tick_label(&3.0), "3");
        assert_eq!(tick_label(&-4.5), "-4.5");
        assert_eq!(tick_label(&-0.0001), "0");
        assert_eq!(tick_label(&0.125), "0.125");
        assert_eq!(log10_tick_label(&-4.0), "1e-4");
        assert_eq!(log10_tick_label(&-3.0000000001), "1e-3");
        assert_eq!(log10_tick_label(&-4.8), "", "between powers of ten");
    }

    #[test]
    fn a_log_axis_always_shows_two_powers_of_ten() {
        let labelled = |(lo, hi): (f64, f64)| {
            let (lo, hi) = reach_two_powers_of_ten((lo, hi));
            (lo.ceil() as i32..=hi.floor() as i32).count()
        };
        // One learning rate (3e-4): the axis must reach 1e-4 and 1e-3.
        assert_eq!(reach_two_powers_of_ten((-3.53, -3.51)).0.ceil(), -4.0);
        assert_eq!(labelled((-3.53, -3.51)), 2);
        assert!(
            labelled((-4.001, -3.999)) >= 2,
            "a range around a power of ten"
        );
        assert!(
            labelled((-4.0, -4.0)) >= 2,
            "a range that is a power of ten"
        );
        let swept = (-5.2, -2.8);
        assert_eq!(
            reach_two_powers_of_ten(swept),
            swept,
            "a sweep keeps its range"
        );
    }

    #[test]
    fn a_point_averaging_several_runs_spans_their_ranges() {
        assert_eq!(Spread::of(&[(0.1, 0.5)]), None, "one run has no spread");
        let w = Spread::of(&[(0.1, 0.5), (0.3, 0.2), (0.2, 0.4)]).unwrap();
        assert_eq!((w.x, w.y), ((0.1, 0.3), (0.2, 0.5)));
        // The axes reach the whisker ends, not only the mean.
        let series = [Series::scatter("talr", vec![(0.2, 0.366)]).with_spreads(vec![Some(w)])];
        let ((x0, x1), (y0, y1)) = bounds(&series, true);
        assert!(x0 < 0.1 && x1 > 0.3 && y0 < 0.2 && y1 > 0.5);
        // So do a line's, point by point.
        let curve = Series::line("sft", vec![(-4.0, 0.13), (-3.0, 0.01)])
            .with_spreads(vec![Spread::of(&[(-4.0, 0.09), (-4.0, 0.17)]), None]);
        assert!(curve.has_spread());
        let (_, (y0, y1)) = bounds(&[curve], false);
        assert!(y0 < 0.01 && y1 > 0.17, "{y0} {y1}");
    }

    #[test]
    fn panels_share_axes_and_are_written_side_by_side() {
        let panel = |title: &str, point: (f64, f64)| Chart {
            title: title.into(),
            x_label: "domain accuracy".into(),
            x_scale: XScale::Linear,
            y_label: "general average".into(),
            series: vec![Series::scatter("sft", vec![point])],
            name_points: true,
        };
        let mut panels = [panel("label-only", (0.1, 0.05)), panel("cot", (0.4, 0.08))];
        panels[0].series[0].name = "sft (mean of 3 seeds)".into();
        panels[1]
            .series
            .insert(0, Series::scatter("talr", vec![(0.3, 0.07)]));
        // One method, one colour in every panel, whatever its qualifiers.
        assert_eq!(panel_palette(&panels), [vec![0], vec![1, 0]]);
        // Each panel's axes reach the other's point, so one score sits at one place in both.
        let ((x0, x1), (y0, y1)) = shared_bounds(&panels);
        assert!(x0 < 0.1 && x1 > 0.4 && y0 < 0.05 && y1 > 0.08);

        let dir = std::env::temp_dir().join(format!("talr-panels-{}", std::process::id()));
        let written = write_panels(&dir, "fig", &panels).unwrap();
        let (width, height) = image_size(&written[0]);
        assert!(width > 900 && height == 600, "{width}x{height}");
        assert!(std::fs::read_to_string(&written[1])
            .unwrap()
            .contains("cot"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Width and height from a PNG's IHDR chunk.
    fn image_size(png: &Path) -> (u32, u32) {
        let bytes = std::fs::read(png).unwrap();
        let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        (be(16), be(20))
    }
}
