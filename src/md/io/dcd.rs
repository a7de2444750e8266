//! DCD trajectory reader (CHARMM, NAMD and OpenMM flavour; X-PLOR files without the
//! CHARMM extensions too) and writer (CHARMM flavour, no unit cell, as NAMD writes a
//! vacuum run: what VMD, MDTraj, MDAnalysis and OpenMM read).
//!
//! A DCD file is a sequence of Fortran unformatted records, each framed by its payload
//! length as a 4-byte integer before and after:
//!
//! 1. header, 84 bytes: `CORD` and 20 int32 `ICNTRL`: [0] NSET frames, [1] ISTART,
//!    [2] NSAVC, [8] NAMNF fixed atoms, [9] DELTA (float32 timestep, AKMA units),
//!    [10] unit cell present, [11] fourth dimension present, [19] CHARMM version
//!    (non-zero: the CHARMM extensions [10] and [11] apply);
//! 2. title: int32 NTITLE, then NTITLE lines of 80 characters;
//! 3. int32 NATOM;
//! 4. per frame: the unit cell (6 float64) when [10] is set, then X, Y and Z, each
//!    NATOM float32 in Å; a fourth-dimension record when [11] is set (skipped).
//!
//! Positions are returned in nm. Only little-endian files with 4-byte record markers
//! are read (what CHARMM, NAMD and OpenMM write on every current machine); big-endian
//! files, 8-byte markers and fixed atoms (NAMNF > 0) are recognised and refused with a
//! message that says so. Frames are counted from 1 in messages.

use crate::md::error::MdError;
use crate::md::units::{ANGSTROM_TO_NM, NM_TO_ANGSTROM};

/// The contents of a DCD file, in cgloop units.
#[derive(Debug, Clone, PartialEq)]
pub struct DcdTrajectory {
    pub n_atoms: usize,
    /// NSET as written in the header (writers that were killed may leave it stale).
    pub header_frames: usize,
    /// ISTART: the integration step of the first frame.
    pub first_step: i64,
    /// NSAVC: integration steps between frames.
    pub steps_between_frames: i64,
    pub title: Vec<String>,
    /// One frame of positions (nm) per saved frame, in file order.
    pub frames: Vec<Vec<[f64; 3]>>,
}

/// AKMA time units (CHARMM's DELTA) per picosecond: 1 AKMA = 0.0488882129 ps.
const AKMA_PER_PS: f64 = 1.0 / 0.048_888_212_9;

/// Writes frames (nm) as a little-endian DCD of float32 Å: CHARMM version 24, no unit
/// cell, one title line. `first_step` and `steps_between_frames` fill ISTART and NSAVC;
/// `frame_interval_ps` gives DELTA (the time between frames, stored per NSAVC step).
pub fn write_dcd(
    frames: &[Vec<[f64; 3]>],
    title: &str,
    first_step: i64,
    steps_between_frames: i64,
    frame_interval_ps: f64,
) -> Result<Vec<u8>, MdError> {
    let n_atoms = frames.first().map_or(0, Vec::len);
    if let Some((i, f)) = frames.iter().enumerate().find(|(_, f)| f.len() != n_atoms) {
        return Err(MdError::invalid(
            "DCD writer",
            format!("frame {}", i + 1),
            format!("{} positions, the first frame has {n_atoms}", f.len()),
        ));
    }
    let int32 = |v: i64, what: &str| {
        i32::try_from(v)
            .map_err(|_| MdError::invalid("DCD writer", what, format!("{v} does not fit in int32")))
    };
    let mut icntrl = [0i32; 20];
    icntrl[0] = int32(frames.len() as i64, "frame count")?;
    icntrl[1] = int32(first_step, "first step")?;
    icntrl[2] = int32(steps_between_frames.max(1), "steps between frames")?;
    icntrl[3] = int32(
        first_step + steps_between_frames.max(1) * frames.len() as i64,
        "last step",
    )?;
    let delta_akma = (frame_interval_ps / steps_between_frames.max(1) as f64 * AKMA_PER_PS) as f32;
    icntrl[9] = i32::from_le_bytes(delta_akma.to_le_bytes());
    icntrl[19] = 24;
    let mut out = Vec::new();
    let mut header = b"CORD".to_vec();
    header.extend(icntrl.iter().flat_map(|v| v.to_le_bytes()));
    push_record(&mut out, &header);
    let mut title_record = 1i32.to_le_bytes().to_vec();
    let line: String = title
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .take(80)
        .collect();
    title_record.extend(format!("{line:<80}").bytes());
    push_record(&mut out, &title_record);
    push_record(
        &mut out,
        &int32(n_atoms as i64, "atom count")?.to_le_bytes(),
    );
    for frame in frames {
        for d in 0..3 {
            let values: Vec<u8> = frame
                .iter()
                .flat_map(|p| ((p[d] * NM_TO_ANGSTROM) as f32).to_le_bytes())
                .collect();
            push_record(&mut out, &values);
        }
    }
    Ok(out)
}

/// A Fortran unformatted record: its length, the payload, its length again.
fn push_record(out: &mut Vec<u8>, payload: &[u8]) {
    let marker = (payload.len() as u32).to_le_bytes();
    out.extend(marker);
    out.extend(payload);
    out.extend(marker);
}

/// Read a DCD file from disk (display name = the path).
pub fn read_dcd(path: &std::path::Path) -> Result<DcdTrajectory, MdError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| MdError::Io {
        file: file.clone(),
        source,
    })?;
    parse_dcd(&bytes, &file)
}

/// A cursor over Fortran records of a little-endian file.
struct Records<'a> {
    bytes: &'a [u8],
    offset: usize,
    source: &'a str,
}

impl<'a> Records<'a> {
    fn i32_at(&self, at: usize) -> Option<i32> {
        let b = self.bytes.get(at..at + 4)?;
        Some(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The next record's payload; `what` names it in errors.
    fn next(&mut self, what: &str) -> Result<&'a [u8], MdError> {
        let start = self.offset;
        let truncated = || {
            MdError::invalid(
                self.source,
                what,
                format!(
                    "file ends inside this record (at byte {start} of {}): truncated?",
                    self.bytes.len()
                ),
            )
        };
        let length = self.i32_at(start).ok_or_else(truncated)?;
        let length = usize::try_from(length).map_err(|_| {
            MdError::invalid(
                self.source,
                what,
                format!("negative record length {length} at byte {start}"),
            )
        })?;
        let payload = self
            .bytes
            .get(start + 4..start + 4 + length)
            .ok_or_else(truncated)?;
        let trailer = self.i32_at(start + 4 + length).ok_or_else(truncated)?;
        if trailer as usize != length {
            return Err(MdError::invalid(
                self.source,
                what,
                format!(
                    "record at byte {start} opens with length {length} but closes with {trailer}"
                ),
            ));
        }
        self.offset = start + 8 + length;
        Ok(payload)
    }

    fn at_end(&self) -> bool {
        self.offset >= self.bytes.len()
    }
}

fn le_i32(bytes: &[u8], index: usize) -> i32 {
    let b = &bytes[4 * index..4 * index + 4];
    i32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Parse a DCD file given as bytes; `source` names the file in errors.
pub fn parse_dcd(bytes: &[u8], source: &str) -> Result<DcdTrajectory, MdError> {
    let header_problem = |message: String| MdError::invalid(source, "DCD header", message);
    if bytes.len() < 12 {
        return Err(header_problem(format!(
            "{} bytes is too short for a DCD file",
            bytes.len()
        )));
    }
    let first = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if i32::from_be_bytes(first) == 84 && &bytes[4..8] == b"CORD" {
        return Err(header_problem(
            "big-endian DCD file: only little-endian DCD is supported \
             (convert it, e.g. with mdconvert or catdcd)"
                .into(),
        ));
    }
    if i32::from_le_bytes(first) == 84 && bytes[4..8] == [0; 4] && &bytes[8..12] == b"CORD" {
        return Err(header_problem(
            "DCD with 8-byte record markers: only 4-byte markers are supported".into(),
        ));
    }
    if i32::from_le_bytes(first) != 84 || &bytes[4..8] != b"CORD" {
        return Err(header_problem(
            "not a DCD file: it does not start with an 84-byte `CORD` record".into(),
        ));
    }
    let mut records = Records {
        bytes,
        offset: 0,
        source,
    };
    let header = records.next("DCD header")?;
    let icntrl = |i: usize| le_i32(&header[4..], i);
    let header_frames = usize::try_from(icntrl(0)).unwrap_or(0);
    let charmm = icntrl(19) != 0;
    let has_unit_cell = charmm && icntrl(10) != 0;
    let has_fourth_dimension = charmm && icntrl(11) != 0;
    let fixed_atoms = icntrl(8);
    if fixed_atoms != 0 {
        return Err(header_problem(format!(
            "{fixed_atoms} fixed atoms (NAMNF): DCD files with fixed atoms are not supported"
        )));
    }

    let title_record = records.next("DCD title")?;
    let mut title = Vec::new();
    if title_record.len() >= 4 {
        let lines = &title_record[4..];
        for line in lines.chunks(80) {
            let text = String::from_utf8_lossy(line);
            let text = text.trim_end_matches(['\0', ' ']).to_string();
            title.push(text);
        }
    }

    let atom_record = records.next("DCD atom count")?;
    if atom_record.len() != 4 {
        return Err(MdError::invalid(
            source,
            "DCD atom count",
            format!("record of {} bytes, expected 4", atom_record.len()),
        ));
    }
    let n_atoms = usize::try_from(le_i32(atom_record, 0)).map_err(|_| {
        MdError::invalid(
            source,
            "DCD atom count",
            format!("negative NATOM {}", le_i32(atom_record, 0)),
        )
    })?;

    // A frame holds at least 12 bytes per atom: a count no file of this size can hold is
    // an error, not an allocation (NATOM and NSET are whatever the header says).
    if n_atoms > bytes.len() / 12 {
        return Err(MdError::invalid(
            source,
            "DCD atom count",
            format!(
                "NATOM {n_atoms} needs {} bytes per frame; the file has {}",
                12 * n_atoms as u128,
                bytes.len()
            ),
        ));
    }
    let mut frames = Vec::with_capacity(header_frames.min(bytes.len() / (12 * n_atoms + 24)));
    while !records.at_end() {
        let number = frames.len() + 1;
        let context = |part: &str| format!("frame {number}, {part}");
        if has_unit_cell {
            let cell = records.next(&context("unit cell"))?;
            if cell.len() != 48 {
                return Err(MdError::invalid(
                    source,
                    context("unit cell"),
                    format!("record of {} bytes, expected 48 (6 float64)", cell.len()),
                ));
            }
        }
        let mut positions = vec![[0.0; 3]; n_atoms];
        for (d, axis) in ["x", "y", "z"].into_iter().enumerate() {
            let what = context(&format!("{axis} coordinates"));
            let values = records.next(&what)?;
            if values.len() != 4 * n_atoms {
                return Err(MdError::invalid(
                    source,
                    what,
                    format!(
                        "record of {} bytes, expected {} ({n_atoms} atoms x 4)",
                        values.len(),
                        4 * n_atoms
                    ),
                ));
            }
            for (slot, value) in positions.iter_mut().zip(values.chunks_exact(4)) {
                let angstrom = f32::from_le_bytes([value[0], value[1], value[2], value[3]]);
                slot[d] = f64::from(angstrom) * ANGSTROM_TO_NM;
            }
        }
        if has_fourth_dimension {
            records.next(&context("fourth dimension"))?;
        }
        frames.push(positions);
    }
    Ok(DcdTrajectory {
        n_atoms,
        header_frames,
        first_step: i64::from(icntrl(1)),
        steps_between_frames: i64::from(icntrl(2)),
        title,
        frames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(out: &mut Vec<u8>, payload: &[u8]) {
        out.extend((payload.len() as i32).to_le_bytes());
        out.extend(payload);
        out.extend((payload.len() as i32).to_le_bytes());
    }

    /// A CHARMM-flavour DCD with a unit cell, two atoms, `frames` frames.
    fn tiny_dcd(frames: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut header = b"CORD".to_vec();
        let mut icntrl = [0i32; 20];
        icntrl[0] = frames as i32;
        icntrl[2] = 10;
        icntrl[10] = 1;
        icntrl[19] = 24;
        header.extend(icntrl.iter().flat_map(|v| v.to_le_bytes()));
        record(&mut out, &header);
        let mut title = 1i32.to_le_bytes().to_vec();
        title.extend([b' '; 80]);
        record(&mut out, &title);
        record(&mut out, &2i32.to_le_bytes());
        for k in 0..frames {
            record(&mut out, &[0u8; 48]);
            for d in 0..3 {
                let values: Vec<u8> = (0..2)
                    .flat_map(|i| ((10 * k + 3 * i + d) as f32).to_le_bytes())
                    .collect();
                record(&mut out, &values);
            }
        }
        out
    }

    #[test]
    fn reads_frames_in_nm() {
        let dcd = parse_dcd(&tiny_dcd(3), "t.dcd").unwrap();
        assert_eq!(dcd.n_atoms, 2);
        assert_eq!(dcd.frames.len(), 3);
        assert_eq!(dcd.steps_between_frames, 10);
        for (got, want) in dcd.frames[2][1].iter().zip([2.3, 2.4, 2.5]) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn truncation_names_the_frame_and_big_endian_is_refused() {
        let mut bytes = tiny_dcd(3);
        bytes.truncate(bytes.len() - 10);
        let err = parse_dcd(&bytes, "cut.dcd").unwrap_err().to_string();
        assert!(err.contains("cut.dcd") && err.contains("frame 3"), "{err}");
        let mut big = 84i32.to_be_bytes().to_vec();
        big.extend(b"CORD");
        big.extend([0u8; 80]);
        let err = parse_dcd(&big, "big.dcd").unwrap_err().to_string();
        assert!(
            err.contains("big.dcd") && err.contains("big-endian"),
            "{err}"
        );
    }
}
