//! A figure of line plots: panels in a grid, each with its own axes, a legend and
//! optionally a logarithmic y axis (learning curves, histograms of two distributions).
//!
//! Drawn like [`super::plot`]: `plotters` with pure-Rust backends, text in the bundled
//! DejaVu Sans for the PNG (`sans-serif` in the SVG), pixels encoded by
//! [`super::plot::encode_png`]. Nothing depends on system fonts, the clock or hash order,
//! so equal figures give equal bytes.
//!
//! Layout: panels fill a grid row by row, `columns` wide (at most one column per panel),
//! each `panel_size` pixels; a band of [`TITLE_BAND`] pixels above the grid holds the
//! figure's title (no band when the title is empty). [`Figure::size`] gives the result's
//! size in pixels.
//!
//! Data: each panel's axes span its own finite points with a margin of 5 % of the range
//! on each side (on a log axis, 5 % of the range in decades). A non-finite point, or on
//! a log axis a point with y <= 0, is skipped: the line breaks there rather than joining
//! its neighbours. A series of one drawable point is drawn as a dot. A panel without
//! drawable points gets the unit range (1 to 10 on a log axis) and still draws its axes
//! and legend.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor;

use super::axes::{LogAxis, ROUNDING, linear_range, log_range, tick};
use super::plot::{Drawing, PlotError, plot_error};

/// Height in pixels of the band that holds a figure's title (when it has one).
pub const TITLE_BAND: u32 = 40;

/// The line colours, indexed by [`Series::color`] modulo its length (Tableau 10).
pub const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// Colour `index` of the palette (wrapping around).
pub fn palette(index: usize) -> RGBColor {
    let (r, g, b) = PALETTE[index % PALETTE.len()];
    RGBColor(r, g, b)
}

/// One line: its legend label (empty: no legend entry), its points (x, y) in the order
/// they are joined, and its colour as an index into [`PALETTE`]; optionally drawn as
/// markers only, and with an error band.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: usize,
    pub style: SeriesStyle,
    /// Empty, or one (low, high) per point: a translucent band between them, broken
    /// where the point or its bounds are not finite.
    pub band: Vec<(f64, f64)>,
}

/// Values by epoch, epochs numbered from `first_epoch`: the points of a learning curve.
pub fn per_epoch(first_epoch: usize, values: &[f64]) -> Vec<(f64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(e, &v)| ((e + first_epoch) as f64, v))
        .collect()
}

/// A learning curve's series: `train` and `validation` by epoch (numbered from
/// `first_epoch`), then the kept epoch and its value as one marked point (colours 0, 1
/// and 3). More series (reference levels) may go before the last.
pub fn learning_curve(
    first_epoch: usize,
    train: &[f64],
    validation: &[f64],
    kept: (usize, f64),
) -> Vec<Series> {
    vec![
        Series {
            label: "train".into(),
            points: per_epoch(first_epoch, train),
            color: 0,
            ..Default::default()
        },
        Series {
            label: "validation".into(),
            points: per_epoch(first_epoch, validation),
            color: 1,
            ..Default::default()
        },
        Series {
            label: format!("kept: epoch {}", kept.0),
            points: vec![(kept.0 as f64, kept.1)],
            color: 3,
            ..Default::default()
        },
    ]
}

/// How a series is drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SeriesStyle {
    /// Points joined by a line, broken where a point is not drawable.
    #[default]
    Line,
    /// A marker at each point, nothing joining them (values of unrelated observables).
    Markers,
    /// A thin grey dashed reference line (a threshold, not data); not in the legend.
    Guide,
}

/// One set of axes.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// A logarithmic y axis (points with y <= 0 are skipped).
    pub log_y: bool,
    pub series: Vec<Series>,
}

/// Panels in a grid under a title.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub title: String,
    /// Panels per row.
    pub columns: usize,
    /// Width and height of each panel in pixels (SVG user units for the SVG).
    pub panel_size: (u32, u32),
    pub panels: Vec<Panel>,
}

impl Figure {
    /// (columns, rows) of the grid actually drawn: `columns` clamped to 1..=panels.
    pub fn grid(&self) -> (usize, usize) {
        let columns = self.columns.clamp(1, self.panels.len().max(1));
        let rows = self.panels.len().div_ceil(columns).max(1);
        (columns, rows)
    }
}

impl Drawing for Figure {
    /// Width and height of the figure in pixels.
    fn size(&self) -> (u32, u32) {
        let (columns, rows) = self.grid();
        let band = if self.title.is_empty() { 0 } else { TITLE_BAND };
        (
            columns as u32 * self.panel_size.0,
            rows as u32 * self.panel_size.1 + band,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        if self.panel_size.0 == 0 || self.panel_size.1 == 0 {
            return Err(plot_error("a figure's panels need a positive size"));
        }
        root.fill(&WHITE).map_err(plot_error)?;
        let grid_area = if self.title.is_empty() {
            root.clone()
        } else {
            let (band, rest) = root.split_vertically(TITLE_BAND);
            let (w, h) = band.dim_in_pixel();
            let style = ("sans-serif", 22)
                .into_font()
                .color(&BLACK)
                .pos(text_anchor::Pos::new(
                    text_anchor::HPos::Center,
                    text_anchor::VPos::Center,
                ));
            band.draw_text(&self.title, &style, (w as i32 / 2, h as i32 / 2))
                .map_err(plot_error)?;
            rest
        };
        let (columns, rows) = self.grid();
        let cells = grid_area.split_evenly((rows, columns));
        for (panel, cell) in self.panels.iter().zip(&cells) {
            panel.draw(cell)?;
        }
        Ok(())
    }
}

impl Panel {
    /// Each series cut into runs of consecutive drawable points.
    fn runs(&self) -> Vec<Vec<Vec<(f64, f64)>>> {
        let log_y = self.log_y;
        let drawable = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0);
        self.series
            .iter()
            .map(|s| split_runs(s.points.iter().map(|p| drawable(p).then_some(*p))))
            .collect()
    }

    /// Each series' band cut into runs of consecutive finite (x, low, high).
    fn band_runs(&self) -> Vec<Vec<Vec<(f64, f64, f64)>>> {
        let log_y = self.log_y;
        self.series
            .iter()
            .map(|s| {
                split_runs(s.points.iter().zip(&s.band).map(|(&(x, y), &(lo, hi))| {
                    let finite = x.is_finite() && y.is_finite() && lo.is_finite() && hi.is_finite();
                    (finite && (!log_y || lo > 0.0)).then_some((x, lo, hi))
                }))
            })
            .collect()
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let runs = self.runs();
        let bands = self.band_runs();
        // Bands count towards the axes' ranges: carry their bounds as invisible runs.
        let extent: Vec<(f64, f64)> = bands
            .iter()
            .flatten()
            .flatten()
            .flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)])
            .collect();
        let points = || runs.iter().flatten().flatten().chain(extent.iter());
        let x = linear_range(points().map(|p| p.0));
        if self.log_y {
            let (lo, hi) = log_range(points().map(|p| p.1));
            self.draw_axes(area, &runs, &bands, x, LogAxis { lo, hi }, 0.0)
        } else {
            let y = linear_range(points().map(|p| p.1));
            let y_zero = ROUNDING * (y.end - y.start);
            self.draw_axes(area, &runs, &bands, x, y, y_zero)
        }
    }

    fn draw_axes<DB, Y>(
        &self,
        area: &DrawingArea<DB, Shift>,
        runs: &[Vec<Vec<(f64, f64)>>],
        bands: &[Vec<Vec<(f64, f64, f64)>>],
        x: Range<f64>,
        y: Y,
        y_zero: f64,
    ) -> Result<(), PlotError>
    where
        DB: DrawingBackend,
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let x_zero = ROUNDING * (x.end - x.start);
        let mut builder = ChartBuilder::on(area);
        builder
            .margin(10)
            .margin_right(20)
            .x_label_area_size(45)
            .y_label_area_size(70);
        if !self.title.is_empty() {
            builder.caption(&self.title, ("sans-serif", 18));
        }
        let mut chart = builder.build_cartesian_2d(x, y).map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(WHITE)
            .bold_line_style(BLACK.mix(0.12))
            .x_labels(7)
            .y_labels(7)
            .x_label_formatter(&|v| tick(*v, x_zero))
            .y_label_formatter(&|v| tick(*v, y_zero))
            .draw()
            .map_err(plot_error)?;
        for (series, bands) in self.series.iter().zip(bands) {
            let fill = palette(series.color).mix(0.2).filled();
            for band in bands {
                let outline: Vec<(f64, f64)> = band
                    .iter()
                    .map(|&(x, lo, _)| (x, lo))
                    .chain(band.iter().rev().map(|&(x, _, hi)| (x, hi)))
                    .collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(outline, fill)))
                    .map_err(plot_error)?;
            }
        }
        let mut labelled = false;
        for (series, runs) in self.series.iter().zip(runs) {
            let color = palette(series.color);
            let line = color.stroke_width(2);
            if series.style == SeriesStyle::Guide {
                let guide = BLACK.mix(0.45).stroke_width(1);
                for run in runs {
                    chart
                        .draw_series(DashedLineSeries::new(run.iter().copied(), 6, 4, guide))
                        .map_err(plot_error)?;
                }
                continue;
            }
            for run in runs {
                if series.style == SeriesStyle::Markers {
                    chart
                        .draw_series(run.iter().map(|&p| Circle::new(p, 3, color.filled())))
                        .map_err(plot_error)?;
                } else if run.len() == 1 {
                    chart
                        .draw_series(std::iter::once(Circle::new(run[0], 4, color.filled())))
                        .map_err(plot_error)?;
                } else {
                    chart
                        .draw_series(LineSeries::new(run.iter().copied(), line))
                        .map_err(plot_error)?;
                }
            }
            if !series.label.is_empty() {
                // An empty series carries the legend entry, drawn or not: a dot for a
                // series of markers or of one point, else a line.
                let dot = series.points.len() == 1 || series.style == SeriesStyle::Markers;
                chart
                    .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())
                    .map_err(plot_error)?
                    .label(series.label.as_str())
                    .legend(move |(x, y)| {
                        if dot {
                            Circle::new((x + 10, y), 4, color.filled()).into_dyn()
                        } else {
                            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                                .into_dyn()
                        }
                    });
                labelled = true;
            }
        }
        if labelled {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(plot_error)?;
        }
        Ok(())
    }
}

/// The runs of consecutive `Some` items (a `None` ends a run).
fn split_runs<T>(items: impl Iterator<Item = Option<T>>) -> Vec<Vec<T>> {
    let mut runs = Vec::new();
    let mut run = Vec::new();
    for item in items {
        match item {
            Some(x) => run.push(x),
            None if !run.is_empty() => runs.push(std::mem::take(&mut run)),
            None => {}
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(color: usize, label: &str, f: impl Fn(f64) -> f64) -> Series {
        Series {
            label: label.into(),
            points: (0..30).map(|i| (i as f64, f(i as f64))).collect(),
            color,
            ..Default::default()
        }
    }

    fn figure() -> Figure {
        Figure {
            title: "Learning curves".into(),
            columns: 2,
            panel_size: (420, 300),
            panels: vec![
                Panel {
                    title: "Force RMSE".into(),
                    x_label: "epoch".into(),
                    y_label: "kJ/mol/nm".into(),
                    log_y: true,
                    series: vec![
                        curve(0, "train", |x| 100.0 * (-x / 5.0).exp() + 1.0),
                        curve(1, "validation", |x| 120.0 * (-x / 5.0).exp() + 2.0),
                    ],
                },
                Panel {
                    title: "Histogram".into(),
                    x_label: "d (nm)".into(),
                    y_label: "density".into(),
                    log_y: false,
                    series: vec![
                        curve(2, "reference", |x| (-(x - 15.0).powi(2) / 20.0).exp()),
                        curve(3, "model", |x| (-(x - 14.0).powi(2) / 25.0).exp()),
                    ],
                },
                Panel {
                    title: "Third".into(),
                    x_label: "x".into(),
                    y_label: "y".into(),
                    log_y: false,
                    series: vec![curve(4, "line", |x| -x)],
                },
            ],
        }
    }

    fn png_size(png: &[u8]) -> (u32, u32) {
        let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
        (be(16), be(20))
    }

    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

    #[test]
    fn png_has_the_grid_size_and_is_deterministic() {
        let f = figure();
        assert_eq!(f.grid(), (2, 2));
        assert_eq!(f.size(), (840, 600 + TITLE_BAND));
        let png = f.to_png().unwrap();
        assert_eq!(png[..8], SIGNATURE);
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(png_size(&png), (840, 640));
        assert_eq!(png, f.to_png().unwrap());
        // Not a blank canvas: the PNG of a figure with lines differs from one without.
        let mut empty = f.clone();
        for p in &mut empty.panels {
            p.series.clear();
        }
        assert_ne!(png, empty.to_png().unwrap());
    }

    #[test]
    fn svg_holds_the_titles_labels_and_legend() {
        let svg = figure().to_svg().unwrap();
        for text in [
            "Learning curves",
            "Force RMSE",
            "Histogram",
            "Third",
            "epoch",
            "validation",
            "reference",
        ] {
            assert!(svg.contains(text), "no `{text}` in the SVG");
        }
        assert!(svg.contains(r#"width="840""#) && svg.contains(r#"height="640""#));
        assert_eq!(svg, figure().to_svg().unwrap());
    }

    #[test]
    fn empty_series_nan_points_and_nonpositive_log_values_still_draw() {
        let f = Figure {
            title: String::new(),
            columns: 5,
            panel_size: (300, 200),
            panels: vec![
                Panel {
                    title: "empty".into(),
                    x_label: "x".into(),
                    y_label: "y".into(),
                    log_y: true,
                    series: vec![Series {
                        label: "nothing".into(),
                        points: vec![],
                        color: 0,
                        ..Default::default()
                    }],
                },
                Panel {
                    title: "holes".into(),
                    x_label: "x".into(),
                    y_label: "y".into(),
                    log_y: true,
                    series: vec![Series {
                        label: "gaps".into(),
                        points: vec![
                            (0.0, 1.0),
                            (1.0, f64::NAN),
                            (2.0, 0.0),
                            (3.0, -4.0),
                            (f64::INFINITY, 2.0),
                            (5.0, 3.0),
                            (6.0, 4.0),
                        ],
                        color: 17,
                        ..Default::default()
                    }],
                },
                Panel {
                    title: "single".into(),
                    x_label: "x".into(),
                    y_label: "y".into(),
                    log_y: false,
                    series: vec![
                        Series {
                            label: String::new(),
                            points: vec![(2.0, 2.0)],
                            color: 1,
                            ..Default::default()
                        },
                        Series {
                            label: "all NaN".into(),
                            points: vec![(f64::NAN, f64::NAN); 3],
                            color: 2,
                            ..Default::default()
                        },
                    ],
                },
            ],
        };
        // Three panels in one row: columns clamped, no title band.
        assert_eq!(f.size(), (900, 200));
        let png = f.to_png().unwrap();
        assert_eq!(png[..8], SIGNATURE);
        assert_eq!(png_size(&png), (900, 200));
        let svg = f.to_svg().unwrap();
        assert!(svg.contains("holes") && svg.contains("gaps"));
        // No panels at all: one empty cell.
        let none = Figure {
            title: "nothing".into(),
            columns: 3,
            panel_size: (200, 100),
            panels: vec![],
        };
        assert_eq!(png_size(&none.to_png().unwrap()), (200, 100 + TITLE_BAND));
    }
}
