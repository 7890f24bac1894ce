//! Where a scatter point's name goes: beside its point, clear of the other names and points, and
//! inside the plotting area.

use super::Series;

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
pub(super) const MARKER_RADIUS_PX: i32 = 5;

/// Space between a point and its label, in pixels.
pub(super) const LABEL_GAP_PX: i32 = 7;

/// How far above its point a label's top edge sits, in pixels.
pub(super) const LABEL_RISE_PX: i32 = 16;

/// Point labels' font size in pixels.
pub(super) const LABEL_FONT_PX: i32 = 13;

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

    pub(super) fn overlaps(&self, o: &LabelBox) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }

    pub(super) fn contains(&self, o: &LabelBox) -> bool {
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
}
