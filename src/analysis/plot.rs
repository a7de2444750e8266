//! Rendering helpers: a free-energy map over two periodic angles (a Ramachandran plot)
//! with region boundaries, region labels, a title, a legend line and a colour bar, as SVG
//! text or as a PNG.
//!
//! Both go through `plotters` with pure-Rust backends only: the SVG backend writes text as
//! `<text font-family="sans-serif">` for the viewer to set; the bitmap backend rasterizes
//! text with `ab_glyph` from the bundled DejaVu Sans (`assets/fonts/`, Bitstream Vera
//! licence), and the RGB buffer is encoded by the `png` crate. Nothing depends on system
//! fonts, the clock or hash order, so equal maps give equal bytes.
//!
//! Colours: viridis (matplotlib's stops, linearly interpolated) from 0 (dark) to the
//! largest finite free energy (bright); empty bins are white.

use std::sync::Once;

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use plotters::style::FontStyle;

/// A map's width and height in pixels (SVG user units for the SVG).
pub const SIZE: (u32, u32) = (900, 760);

static FONT: Once = Once::new();

/// Registers the bundled DejaVu Sans as plotters' `sans-serif` (once per process). With
/// the `ab_glyph` feature plotters has no other font, and it measures text even for SVG:
/// any plotting code must call this before drawing.
pub fn register_font() {
    FONT.call_once(|| {
        let registered = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../../assets/fonts/DejaVuSans.ttf"),
        );
        assert!(
            registered.is_ok(),
            "the bundled DejaVu Sans is a valid font"
        );
    });
}

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("plot: {0}")]
pub struct PlotError(String);

pub(crate) fn plot_error<E: std::fmt::Display>(e: E) -> PlotError {
    PlotError(e.to_string())
}

/// A straight line in data coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub from: (f64, f64),
    pub to: (f64, f64),
}

/// Text placed at a point in data coordinates (its left end, vertically centred).
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub at: (f64, f64),
    pub text: String,
}

/// A free-energy map on [-180, 180) x [-180, 180) degrees.
#[derive(Clone, Debug)]
pub struct FreeEnergyMap<'a> {
    pub title: String,
    /// A line under the title (e.g. the populations).
    pub legend: String,
    pub x_label: String,
    pub y_label: String,
    pub nx: usize,
    pub ny: usize,
    /// Free energy per bin in kJ/mol, x-major (`[i * ny + j]`); `None` for empty bins.
    pub free_energy: &'a [Option<f64>],
    /// Lines drawn over the map (basin boundaries).
    pub boundaries: Vec<Segment>,
    /// Text drawn over the map (basin names).
    pub labels: Vec<Label>,
}

/// A picture that draws itself on any plotters backend: rendered as an SVG document or
/// as a PNG (8-bit RGB) by the provided methods.
pub trait Drawing {
    /// Width and height in pixels (SVG user units for the SVG).
    fn size(&self) -> (u32, u32);

    /// Draws the whole picture onto `root`, which is [`Drawing::size`] large.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError>;

    /// The picture as an SVG document.
    fn to_svg(&self) -> Result<String, PlotError> {
        register_font();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size()).into_drawing_area();
            self.draw(&root)?;
            root.present().map_err(plot_error)?;
        }
        Ok(svg)
    }

    /// The picture as a PNG (8-bit RGB).
    fn to_png(&self) -> Result<Vec<u8>, PlotError> {
        register_font();
        let (w, h) = self.size();
        let mut rgb = vec![0u8; w as usize * h as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
            self.draw(&root)?;
            root.present().map_err(plot_error)?;
        }
        encode_png(&rgb, w, h)
    }
}

impl Drawing for FreeEnergyMap<'_> {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        assert_eq!(self.free_energy.len(), self.nx * self.ny);
        root.fill(&WHITE).map_err(plot_error)?;
        let root = root
            .titled(&self.title, ("sans-serif", 24))
            .map_err(plot_error)?;
        let root = root
            .titled(&self.legend, ("sans-serif", 17))
            .map_err(plot_error)?;
        let (map_area, bar_area) = root.split_horizontally(SIZE.0 - 130);
        let f_max = largest_free_energy(self.free_energy);
        draw_map(&map_area, self, f_max, 16, 18)?;
        draw_colour_bar(&bar_area, f_max, "F (kJ/mol)")
    }
}

/// The largest finite free energy of a map (at least 1e-9): the top of its colour scale.
pub fn largest_free_energy(free_energy: &[Option<f64>]) -> f64 {
    free_energy
        .iter()
        .flatten()
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-9)
}

/// Draws `map`'s bins (coloured on 0..`f_max`, empty bins left blank), axes,
/// boundaries and labels into `area` (its title and legend are the caller's);
/// `label_size` and `desc_size` are the tick and axis-title font sizes.
pub(crate) fn draw_map<DB: DrawingBackend>(
    map_area: &DrawingArea<DB, Shift>,
    map: &FreeEnergyMap<'_>,
    f_max: f64,
    label_size: u32,
    desc_size: u32,
) -> Result<(), PlotError> {
    let mut chart = ChartBuilder::on(map_area)
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(AngleAxis, AngleAxis)
        .map_err(plot_error)?;
    let dx = 360.0 / map.nx as f64;
    let dy = 360.0 / map.ny as f64;
    chart
        .draw_series((0..map.nx).flat_map(|i| {
            (0..map.ny).filter_map(move |j| {
                let f = map.free_energy[i * map.ny + j]?;
                let (x0, y0) = (-180.0 + i as f64 * dx, -180.0 + j as f64 * dy);
                Some(Rectangle::new(
                    [(x0, y0), (x0 + dx, y0 + dy)],
                    viridis(f / f_max).filled(),
                ))
            })
        }))
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(map.x_label.as_str())
        .y_desc(map.y_label.as_str())
        .label_style(("sans-serif", label_size))
        .axis_desc_style(("sans-serif", desc_size))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(plot_error)?;
    let line = ShapeStyle {
        color: RGBColor(220, 20, 60).to_rgba(),
        filled: false,
        stroke_width: 3,
    };
    for s in &map.boundaries {
        chart
            .draw_series(std::iter::once(PathElement::new(vec![s.from, s.to], line)))
            .map_err(plot_error)?;
    }
    let text = ("sans-serif", 17).into_font().color(&BLACK);
    for label in &map.labels {
        let (w, h) = map_area
            .estimate_text_size(&label.text, &text)
            .map_err(plot_error)?;
        let (w, h) = (w as i32, h as i32);
        chart
            .draw_series(std::iter::once(
                EmptyElement::at(label.at)
                    + Rectangle::new(
                        [(-4, -h / 2 - 4), (w + 4, h / 2 + 4)],
                        WHITE.mix(0.85).filled(),
                    )
                    + Text::new(label.text.clone(), (0, -h / 2), text.clone()),
            ))
            .map_err(plot_error)?;
    }
    Ok(())
}

/// A vertical viridis colour bar from 0 to `f_max`, its axis titled `label`.
pub(crate) fn draw_colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    f_max: f64,
    label: &str,
) -> Result<(), PlotError> {
    let mut bar = ChartBuilder::on(area)
        .margin_top(12)
        .margin_bottom(62)
        .margin_right(10)
        .y_label_area_size(0)
        .right_y_label_area_size(80)
        .build_cartesian_2d(0f64..1f64, 0f64..f_max)
        .map_err(plot_error)?;
    let steps = 200;
    bar.draw_series((0..steps).map(|k| {
        let (a, b) = (k as f64 / steps as f64, (k + 1) as f64 / steps as f64);
        Rectangle::new(
            [(0.0, a * f_max), (1.0, b * f_max)],
            viridis(0.5 * (a + b)).filled(),
        )
    }))
    .map_err(plot_error)?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_desc(label)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// An axis of angles over [-180, 180) degrees, ticked every 60 degrees.
struct AngleAxis;

impl Ranged for AngleAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let fraction = (value + 180.0) / 360.0;
        limit.0 + (fraction * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        (-3..=3).map(|k| 60.0 * f64::from(k)).collect()
    }

    fn range(&self) -> Range<f64> {
        -180.0..180.0
    }
}

/// Viridis at `t` in [0, 1] (clamped).
pub fn viridis(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        1.0
    };
    let x = t * (STOPS.len() - 1) as f64;
    let k = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - k as f64;
    let mix = |a: u8, b: u8| (a as f64 + f * (b as f64 - a as f64)).round() as u8;
    let (a, b) = (STOPS[k], STOPS[k + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Encodes 8-bit RGB pixels (row-major, top row first) as a PNG.
pub fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, PlotError> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(plot_error)?;
        writer.write_image_data(rgb).map_err(plot_error)?;
        writer.finish().map_err(plot_error)?;
    }
    Ok(out)
}
