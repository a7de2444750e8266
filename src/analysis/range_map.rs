//! Free-energy maps over two ordinary (not periodic) coordinates, such as TIC1 x TIC2 or
//! RMSD x radius of gyration: a weighted 2D histogram on `nx x ny` bins over given
//! ranges, F_ij = -ln(p_ij / max p) in kT (empty bins blank), drawn with a viridis colour
//! bar like [`super::plot::FreeEnergyMap`] (same fonts, same bytes on every machine).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::plot::{
    Drawing, PlotError, SIZE, draw_colour_bar, largest_free_energy, plot_error, viridis,
};

/// A weighted histogram over [x0, x1) x [y0, y1); points outside are not counted.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram2d {
    pub nx: usize,
    pub ny: usize,
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
    /// Weight per bin, x-major (`[i * ny + j]`).
    pub weights: Vec<f64>,
}

impl Histogram2d {
    /// The histogram of the points (x_t, y_t) with weights w_t.
    pub fn of(
        nx: usize,
        ny: usize,
        x_range: (f64, f64),
        y_range: (f64, f64),
        x: &[f64],
        y: &[f64],
        w: &[f64],
    ) -> Self {
        let mut weights = vec![0.0; nx * ny];
        let bin = |v: f64, (lo, hi): (f64, f64), n: usize| {
            let f = (v - lo) / (hi - lo);
            (0.0..1.0)
                .contains(&f)
                .then(|| ((f * n as f64) as usize).min(n - 1))
        };
        for ((&a, &b), &wt) in x.iter().zip(y).zip(w) {
            if let (Some(i), Some(j)) = (bin(a, x_range, nx), bin(b, y_range, ny)) {
                weights[i * ny + j] += wt;
            }
        }
        Histogram2d {
            nx,
            ny,
            x_range,
            y_range,
            weights,
        }
    }

    /// Free energy per bin in kT relative to the most probable bin; `None` when empty.
    pub fn free_energy_kt(&self) -> Vec<Option<f64>> {
        let top = self.weights.iter().copied().fold(0.0, f64::max);
        self.weights
            .iter()
            .map(|&w| (w > 0.0 && top > 0.0).then(|| -(w / top).ln()))
            .collect()
    }
}

/// A range [lo, hi) that holds every finite value of `values` (widened a little so the
/// largest falls inside; (0, 1) when there is none).
pub fn range_of(values: &[f64]) -> (f64, f64) {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let lo = finite.clone().fold(f64::INFINITY, f64::min);
    let hi = finite.fold(f64::NEG_INFINITY, f64::max);
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let pad = 1e-6 * (hi - lo).abs().max(1e-9);
    (lo, hi + pad)
}

/// A free-energy map with its title, a legend line and axis labels.
#[derive(Clone, Debug)]
pub struct RangeMap {
    pub title: String,
    pub legend: String,
    pub x_label: String,
    pub y_label: String,
    pub histogram: Histogram2d,
}

impl Drawing for RangeMap {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let h = &self.histogram;
        let free_energy = h.free_energy_kt();
        root.fill(&WHITE).map_err(plot_error)?;
        let root = root
            .titled(&self.title, ("sans-serif", 24))
            .map_err(plot_error)?;
        let root = root
            .titled(&self.legend, ("sans-serif", 17))
            .map_err(plot_error)?;
        let (map_area, bar_area) = root.split_horizontally(SIZE.0 - 130);
        let f_max = largest_free_energy(&free_energy);
        let (x0, x1) = h.x_range;
        let (y0, y1) = h.y_range;
        let mut chart = ChartBuilder::on(&map_area)
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(plot_error)?;
        let (dx, dy) = ((x1 - x0) / h.nx as f64, (y1 - y0) / h.ny as f64);
        chart
            .draw_series((0..h.nx).flat_map(|i| {
                let free_energy = &free_energy;
                (0..h.ny).filter_map(move |j| {
                    let f = free_energy[i * h.ny + j]?;
                    let (a, b) = (x0 + i as f64 * dx, y0 + j as f64 * dy);
                    Some(Rectangle::new(
                        [(a, b), (a + dx, b + dy)],
                        viridis(f / f_max).filled(),
                    ))
                })
            }))
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .x_label_formatter(&|x| format!("{x:.2}"))
            .y_label_formatter(&|y| format!("{y:.2}"))
            .draw()
            .map_err(plot_error)?;
        draw_colour_bar(&bar_area, f_max, "F (kT)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_energies_follow_the_counts() {
        let (x, y) = ([0.1, 0.1, 0.1, 0.6, 1.5], [0.2, 0.2, 0.2, 0.7, 0.2]);
        let h = Histogram2d::of(2, 2, (0.0, 1.0), (0.0, 1.0), &x, &y, &[1.0; 5]);
        // Three points in bin (0, 0), one in (1, 1), one outside.
        assert_eq!(h.weights, vec![3.0, 0.0, 0.0, 1.0]);
        let f = h.free_energy_kt();
        assert_eq!(f[0], Some(0.0));
        assert!((f[3].unwrap() - 3f64.ln()).abs() < 1e-12);
        assert_eq!(f[1], None);
        let (lo, hi) = range_of(&[2.0, -1.0, f64::NAN, 5.0]);
        assert!(lo == -1.0 && hi > 5.0 && hi < 5.001);
    }

    #[test]
    fn maps_render_the_same_bytes_twice() {
        let x: Vec<f64> = (0..500).map(|i| (i as f64 * 0.37).sin()).collect();
        let y: Vec<f64> = (0..500).map(|i| (i as f64 * 0.11).cos()).collect();
        let map = RangeMap {
            title: "t".into(),
            legend: "l".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            histogram: Histogram2d::of(20, 20, range_of(&x), range_of(&y), &x, &y, &[1.0; 500]),
        };
        let (a, b) = (map.to_png().unwrap(), map.to_png().unwrap());
        assert_eq!(a, b);
        assert!(map.to_svg().unwrap().contains("<svg"));
    }
}
