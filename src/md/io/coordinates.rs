//! AMBER ASCII coordinate/restart reader (`.inpcrd`, `.rst7`).
//!
//! Layout: a title line; a line with NATOM (and optionally the time in ps); NATOM x 3
//! coordinates in Å, six 12-character fields per line; optionally as many velocities
//! (Å per 1/20.455 ps); optionally a box line (a, b, c in Å, then three angles in degrees).
//! Positions are returned in nm, velocities in nm/ps.

use crate::md::error::MdError;
use crate::md::units::{AMBER_VELOCITY_FACTOR, ANGSTROM_TO_NM};

/// Contents of an AMBER restart file, in cgloop units.
#[derive(Debug, Clone, PartialEq)]
pub struct AmberCoordinates {
    pub title: String,
    /// Time in ps, if given.
    pub time: Option<f64>,
    /// nm.
    pub positions: Vec<[f64; 3]>,
    /// nm/ps, if present.
    pub velocities: Option<Vec<[f64; 3]>>,
    /// Box lengths (nm) and angles (degrees), if present.
    pub periodic_box: Option<([f64; 3], [f64; 3])>,
}

/// Read an inpcrd/rst7 file from disk (display name = the path).
pub fn read_inpcrd(path: &std::path::Path) -> Result<AmberCoordinates, MdError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| MdError::Io {
        file: file.clone(),
        source,
    })?;
    parse_inpcrd(&text, &file)
}

/// Parse inpcrd text; `source` names the file in errors.
pub fn parse_inpcrd(text: &str, source: &str) -> Result<AmberCoordinates, MdError> {
    let mut lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    let bad = |line: usize, context: &str, expected: &'static str, found: &str| MdError::BadValue {
        file: source.to_string(),
        line,
        context: context.to_string(),
        expected,
        found: found.to_string(),
    };
    let title = lines
        .first()
        .map(|l| l.trim().to_string())
        .unwrap_or_default();
    let header = lines
        .get(1)
        .ok_or_else(|| bad(2, "atom count line", "NATOM", ""))?;
    let mut words = header.split_whitespace();
    let count_word = words.next().unwrap_or("");
    let n_atoms: usize = count_word
        .parse()
        .map_err(|_| bad(2, "atom count line", "the number of atoms", count_word))?;
    let time = match words.next() {
        Some(w) => Some(
            w.parse::<f64>()
                .map_err(|_| bad(2, "atom count line", "the time in ps", w))?,
        ),
        None => None,
    };
    let block = n_atoms.div_ceil(2);
    let body = &lines[2..];
    let (has_velocities, has_box) = match body.len() {
        n if n == block => (false, false),
        n if n == block + 1 => (false, true),
        n if n == 2 * block => (true, false),
        n if n == 2 * block + 1 => (true, true),
        found => {
            return Err(MdError::WrongCount {
                file: source.to_string(),
                context: format!("lines after the header for {n_atoms} atoms"),
                expected: block,
                found,
            });
        }
    };
    let read_block = |first: usize, scale: f64| -> Result<Vec<[f64; 3]>, MdError> {
        let mut values = Vec::with_capacity(3 * n_atoms);
        for (offset, line) in body[first..first + block].iter().enumerate() {
            let line_no = first + offset + 3;
            let wanted = (3 * n_atoms - values.len()).min(6);
            for f in 0..wanted {
                let field = line
                    .get(12 * f..(12 * f + 12).min(line.len()))
                    .unwrap_or("")
                    .trim();
                let value: f64 = field.parse().map_err(|_| {
                    bad(
                        line_no,
                        &format!("field {}", f + 1),
                        "a 12-character real",
                        field,
                    )
                })?;
                values.push(value * scale);
            }
        }
        Ok(values.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect())
    };
    let positions = read_block(0, ANGSTROM_TO_NM)?;
    let velocities = if has_velocities {
        Some(read_block(block, AMBER_VELOCITY_FACTOR * ANGSTROM_TO_NM)?)
    } else {
        None
    };
    let periodic_box = if has_box {
        let line_index = body.len() - 1;
        let line = body[line_index];
        let mut v = [0.0; 6];
        for (f, slot) in v.iter_mut().enumerate() {
            let field = line
                .get(12 * f..(12 * f + 12).min(line.len()))
                .unwrap_or("")
                .trim();
            *slot = field
                .parse()
                .map_err(|_| bad(line_index + 3, "box line", "six 12-character reals", field))?;
        }
        Some((
            [
                v[0] * ANGSTROM_TO_NM,
                v[1] * ANGSTROM_TO_NM,
                v[2] * ANGSTROM_TO_NM,
            ],
            [v[3], v[4], v[5]],
        ))
    } else {
        None
    };
    Ok(AmberCoordinates {
        title,
        time,
        positions,
        velocities,
        periodic_box,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_positions_in_nm() {
        let text = "title\n    3\n   1.0000000   2.0000000   3.0000000  -1.5000000   0.0000000  10.0000000\n   0.1000000   0.2000000   0.3000000\n";
        let c = parse_inpcrd(text, "t.inpcrd").unwrap();
        assert_eq!(c.positions.len(), 3);
        assert!((c.positions[1][2] - 1.0).abs() < 1e-15);
        assert!((c.positions[2][0] - 0.01).abs() < 1e-15);
        assert!(c.velocities.is_none() && c.periodic_box.is_none());
    }

    #[test]
    fn bad_number_names_line() {
        let text = "title\n    2\n   1.0000000   2.0000000   x.0000000  -1.5000000   0.0000000  10.0000000\n";
        let err = parse_inpcrd(text, "bad.inpcrd").unwrap_err().to_string();
        assert!(
            err.contains("bad.inpcrd") && err.contains("line 3"),
            "{err}"
        );
    }
}
