//! Free-energy maps over two periodic angles side by side, on one colour scale: the
//! classic picture comparing estimates of one distribution (reference, raw, reweighted
//! over (phi, psi)).
//!
//! Each map is F_ij = -ln(p_ij / max p) in kT (see [`super::histogram`]), empty bins left
//! blank (white). The colour scale runs from 0 to the largest finite free energy over all
//! maps, capped at `ceiling_kt` (bins above it take the top colour), so equal colours mean
//! equal free energies across panels. Drawn like [`super::plot::FreeEnergyMap`].

use plotters::prelude::*;
use plotters::style::text_anchor;

use super::histogram::PeriodicHistogram2d;
use super::plot::{
    Drawing, FreeEnergyMap, PlotError, draw_colour_bar, draw_map, largest_free_energy, plot_error,
};

/// Width and height of one map in pixels.
const MAP_SIZE: (u32, u32) = (520, 500);
/// Width of the colour bar.
const BAR_WIDTH: u32 = 110;
/// Height of the title band.
const TITLE_HEIGHT: u32 = 44;

/// One map of the figure: its title and its free energies (kT, x-major, `None` empty).
#[derive(Clone, Debug, PartialEq)]
pub struct PanelMap {
    pub title: String,
    pub free_energy: Vec<Option<f64>>,
}

impl PanelMap {
    /// The map of angle pairs (degrees) with frame weights on `nx x ny` bins.
    pub fn from_angles(title: &str, nx: usize, ny: usize, x: &[f64], y: &[f64], w: &[f64]) -> Self {
        PanelMap {
            title: title.to_string(),
            free_energy: PeriodicHistogram2d::from_angles(nx, ny, x, y, w).free_energy(1.0),
        }
    }
}

/// Maps side by side with one colour bar.
#[derive(Clone, Debug, PartialEq)]
pub struct FreeEnergyPanels {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub nx: usize,
    pub ny: usize,
    pub maps: Vec<PanelMap>,
    /// The top of the colour scale at most (kT).
    pub ceiling_kt: f64,
}

impl FreeEnergyPanels {
    /// The top of the shared colour scale: the largest finite free energy of any map,
    /// at most the ceiling.
    pub fn scale_max(&self) -> f64 {
        self.maps
            .iter()
            .map(|m| largest_free_energy(&m.free_energy))
            .fold(1e-9, f64::max)
            .min(self.ceiling_kt)
    }
}

impl Drawing for FreeEnergyPanels {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32) {
        (
            MAP_SIZE.0 * self.maps.len().max(1) as u32 + BAR_WIDTH,
            MAP_SIZE.1 + TITLE_HEIGHT,
        )
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), PlotError> {
        if self
            .maps
            .iter()
            .any(|m| m.free_energy.len() != self.nx * self.ny)
        {
            return Err(plot_error("every map needs nx * ny bins"));
        }
        root.fill(&WHITE).map_err(plot_error)?;
        let (band, rest) = root.split_vertically(TITLE_HEIGHT);
        let (w, h) = band.dim_in_pixel();
        let centred = |size: u32| {
            ("sans-serif", size)
                .into_font()
                .color(&BLACK)
                .pos(text_anchor::Pos::new(
                    text_anchor::HPos::Center,
                    text_anchor::VPos::Center,
                ))
        };
        band.draw_text(&self.title, &centred(22), (w as i32 / 2, h as i32 / 2))
            .map_err(plot_error)?;
        let f_max = self.scale_max();
        let (maps_area, bar_area) =
            rest.split_horizontally(MAP_SIZE.0 * self.maps.len().max(1) as u32);
        let cells = maps_area.split_evenly((1, self.maps.len().max(1)));
        for (map, cell) in self.maps.iter().zip(&cells) {
            let cell = cell
                .titled(&map.title, ("sans-serif", 18))
                .map_err(plot_error)?;
            let capped: Vec<Option<f64>> = map
                .free_energy
                .iter()
                .map(|f| f.map(|f| f.min(f_max)))
                .collect();
            let drawn = FreeEnergyMap {
                title: String::new(),
                legend: String::new(),
                x_label: self.x_label.clone(),
                y_label: self.y_label.clone(),
                nx: self.nx,
                ny: self.ny,
                free_energy: &capped,
                boundaries: Vec::new(),
                labels: Vec::new(),
            };
            draw_map(&cell, &drawn, f_max, 14, 16)?;
        }
        let (_, bar_area) = bar_area.split_vertically(24);
        draw_colour_bar(&bar_area, f_max, "F (kT)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panels() -> FreeEnergyPanels {
        // Two maps: one dense around (0, 0), one with a single occupied bin elsewhere.
        let a = PanelMap::from_angles(
            "a",
            12,
            12,
            &[0.0, 1.0, 40.0],
            &[0.0, 1.0, 40.0],
            &[1.0, 1.0, 0.01],
        );
        let b = PanelMap::from_angles("b", 12, 12, &[-170.0], &[100.0], &[1.0]);
        FreeEnergyPanels {
            title: "t".into(),
            x_label: "phi".into(),
            y_label: "psi".into(),
            nx: 12,
            ny: 12,
            maps: vec![a, b],
            ceiling_kt: 12.0,
        }
    }

    #[test]
    fn empty_bins_stay_blank_and_the_scale_is_shared() {
        let p = panels();
        // Map b has one occupied bin at 0 kT; the rest are empty (drawn white).
        assert_eq!(p.maps[1].free_energy.iter().flatten().count(), 1);
        // The shared scale is map a's largest free energy: ln(200) = 5.3 kT.
        assert!((p.scale_max() - 200f64.ln()).abs() < 1e-12);
        let mut capped = p.clone();
        capped.ceiling_kt = 2.0;
        assert_eq!(capped.scale_max(), 2.0);
    }

    #[test]
    fn draws_png_and_svg_of_the_stated_size() {
        let p = panels();
        let png = p.to_png().unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = p.to_svg().unwrap();
        let (w, h) = p.size();
        assert!(
            svg.contains(&format!("width=\"{w}\"")) && svg.contains(&format!("height=\"{h}\""))
        );
    }
}
