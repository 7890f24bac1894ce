//! One chart type for every figure: named series of points (lines or scatter), drawn with plotters
//! to PNG and SVG. Scatter charts can name each point in place, which keeps methods that land on the
//! same point (WiSE-FT trains exactly like SFT before it averages) readable.

use anyhow::{bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

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

/// The labels to write beside scatter points: one per distinct point, naming every series on it.
pub fn point_labels(series: &[Series]) -> Vec<((f64, f64), String)> {
    let mut at: Vec<((f64, f64), Vec<&str>)> = Vec::new();
    for s in series.iter().filter(|s| !s.line) {
        for p in &s.points {
            match at.iter_mut().find(|(q, _)| q == p) {
                Some((_, names)) if !names.contains(&s.name.as_str()) => names.push(&s.name),
                Some(_) => {}
                None => at.push((*p, vec![&s.name])),
            }
        }
    }
    at.into_iter()
        .map(|(p, names)| (p, names.join(" = ")))
        .collect()
}

/// Scatter points' radius in pixels.
const MARKER_RADIUS_PX: i32 = 5;

/// Space between a point and its label, in pixels.
const LABEL_GAP_PX: i32 = 7;

/// How far above its point a label's top edge sits, in pixels.
const LABEL_RISE_PX: i32 = 16;

/// Point labels' font size in pixels.
const LABEL_FONT_PX: i32 = 13;

/// A label's text box in pixels, top-left corner first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelBox {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

impl LabelBox {
    /// The box of a label drawn `text_width` pixels wide at `(x, y)`. It is a full line tall:
    /// the backend's estimate is the height of the ink (10 px for 13 px text), so labels that far apart
    /// passed as clear while their parentheses and descenders touched.
    pub fn line_at(x: i32, y: i32, text_width: i32) -> LabelBox {
        LabelBox {
            x,
            y,
            w: text_width,
            h: LABEL_FONT_PX * 5 / 4,
        }
    }

    /// The square a scatter point covers, centred on `(x, y)`.
    pub fn marker_at(x: i32, y: i32) -> LabelBox {
        LabelBox {
            x: x - MARKER_RADIUS_PX,
            y: y - MARKER_RADIUS_PX,
            w: 2 * MARKER_RADIUS_PX,
            h: 2 * MARKER_RADIUS_PX,
        }
    }

    fn overlaps(&self, o: &LabelBox) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }

    fn contains(&self, o: &LabelBox) -> bool {
        self.x <= o.x
            && o.x + o.w <= self.x + self.w
            && self.y <= o.y
            && o.y + o.h <= self.y + self.h
    }
}

/// Offsets (pixels) that keep point labels from overlapping: each label, in order, takes the
/// nearest line-height step up or down from its own place, right of its point or else mirrored to
/// its left, that lies inside the plotting `area` (not over the axes' tick labels) and that neither
/// an earlier label nor one of the `markers` (the drawn points) occupies.
pub fn label_offsets(boxes: &[LabelBox], markers: &[LabelBox], area: LabelBox) -> Vec<(i32, i32)> {
    let mut placed: Vec<LabelBox> = markers.to_vec();
    boxes
        .iter()
        .map(|b| {
            let step = b.h.max(1) + 2;
            let to_left = -(2 * LABEL_GAP_PX + b.w);
            let moved = |(dx, dy): (i32, i32)| LabelBox {
                x: b.x + dx,
                y: b.y + dy,
                ..*b
            };
            let offset = (0..40)
                .flat_map(|k| [-k * step, k * step])
                .flat_map(|dy| [(0, dy), (to_left, dy)])
                .find(|&o| {
                    let at = moved(o);
                    area.contains(&at) && placed.iter().all(|p| !p.overlaps(&at))
                })
                .unwrap_or((0, 0));
            placed.push(moved(offset));
            offset
        })
        .collect()
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
    bounds(
        charts.iter().flat_map(|c| &c.series),
        charts.iter().any(|c| c.name_points),
    )
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
    fn coincident_points_share_one_label_and_lines_get_none() {
        let dot = |name: &str, x: f64, y: f64| Series::scatter(name, vec![(x, y)]);
        let series = vec![
            dot("sft", 0.091, 0.067),
            dot("lora", 0.109, 0.044),
            dot("wise_ft", 0.091, 0.067),
            Series::line("fit", vec![(0.091, 0.067), (0.2, 0.1)]),
        ];
        let labels = point_labels(&series);
        assert_eq!(
            labels,
            vec![
                ((0.091, 0.067), "sft = wise_ft".to_string()),
                ((0.109, 0.044), "lora".to_string()),
            ]
        );
    }

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

    /// A plotting area wide enough for every label in these tests.
    const WIDE_AREA: LabelBox = LabelBox {
        x: 0,
        y: 0,
        w: 1000,
        h: 600,
    };

    fn placed(boxes: &[LabelBox], markers: &[LabelBox]) -> Vec<LabelBox> {
        placed_in(boxes, markers, WIDE_AREA)
    }

    fn placed_in(boxes: &[LabelBox], markers: &[LabelBox], area: LabelBox) -> Vec<LabelBox> {
        let offsets = label_offsets(boxes, markers, area);
        boxes
            .iter()
            .zip(offsets)
            .map(|(b, (dx, dy))| LabelBox {
                x: b.x + dx,
                y: b.y + dy,
                ..*b
            })
            .collect()
    }

    #[test]
    fn overlapping_point_labels_are_moved_apart_and_others_stay() {
        // Two labels on one line, 60 px apart (the talr_no_floor / talr_tau_0_5 case), and one
        // far away.
        let boxes = [
            LabelBox::line_at(100, 300, 150),
            LabelBox::line_at(160, 300, 150),
            LabelBox::line_at(600, 100, 150),
        ];
        let at = placed(&boxes, &[]);
        assert_eq!((at[0].x, at[0].y), (100, 300), "the first keeps its place");
        assert!(!at[0].overlaps(&at[1]), "moved clear of the first: {at:?}");
        assert_eq!(
            (at[2].x, at[2].y),
            (600, 100),
            "a label with room keeps its place"
        );
    }

    #[test]
    fn labels_a_little_more_than_ink_height_apart_are_still_separated() {
        // The l2 and lora points of fig2_methods_table1: 12 px apart, same column, labels whose
        // ink is 10 px tall. Drawn there they touched.
        let boxes = [
            LabelBox::line_at(600, 100, 115),
            LabelBox::line_at(600, 112, 126),
        ];
        let at = placed(&boxes, &[]);
        assert!(!at[0].overlaps(&at[1]), "{at:?}");
        let (gap_x, gap_y) = (at[1].x - at[0].x, at[1].y - at[0].y);
        assert!(
            gap_y.abs() >= LABEL_FONT_PX + 2 || gap_x.abs() >= 115,
            "one text line or one label width apart at least: {at:?}"
        );
    }

    #[test]
    fn labels_keep_clear_of_other_points() {
        // fig2_methods_table1: flow's point sat under the lora label's text.
        let label = LabelBox::line_at(600, 100, 126);
        let at = placed(&[label], &[LabelBox::marker_at(645, 110)]);
        assert!(!at[0].overlaps(&LabelBox::marker_at(645, 110)), "{at:?}");
    }

    #[test]
    fn a_crowded_label_goes_to_the_left_of_its_point_before_it_goes_far() {
        // Points 12 px apart in one column, each label starting 7 px right of its point: the
        // second label's nearest free place is beside its own point, on the left, not two lines
        // away from it.
        let (x, y0, y1) = (600, 116, 128);
        let boxes = [
            LabelBox::line_at(x + LABEL_GAP_PX, y0 - LABEL_RISE_PX, 115),
            LabelBox::line_at(x + LABEL_GAP_PX, y1 - LABEL_RISE_PX, 126),
        ];
        let at = placed(
            &boxes,
            &[LabelBox::marker_at(x, y0), LabelBox::marker_at(x, y1)],
        );
        assert_eq!(at[0], boxes[0]);
        assert_eq!(at[1].y, boxes[1].y, "{at:?}");
        assert_eq!(
            at[1].x + at[1].w,
            x - LABEL_GAP_PX,
            "ends 7 px left of its point"
        );
    }

    #[test]
    fn a_label_crowded_at_the_left_edge_stays_inside_the_plotting_area() {
        // fig2_methods_table2's CoT panel: lora and dft sit at domain 0, by the y axis, one just
        // above the other; the second label went left of its point, over the axis' tick labels.
        let area = LabelBox {
            x: 60,
            y: 40,
            w: 700,
            h: 500,
        };
        let (x, y0, y1) = (70, 300, 310);
        let boxes = [
            LabelBox::line_at(x + LABEL_GAP_PX, y0 - LABEL_RISE_PX, 150),
            LabelBox::line_at(x + LABEL_GAP_PX, y1 - LABEL_RISE_PX, 140),
        ];
        let markers = [LabelBox::marker_at(x, y0), LabelBox::marker_at(x, y1)];
        let at = placed_in(&boxes, &markers, area);
        assert!(at.iter().all(|b| area.contains(b)), "{at:?}");
        assert!(!at[0].overlaps(&at[1]), "{at:?}");
        assert_eq!(at[1].x, boxes[1].x, "kept right of its point: {at:?}");
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
