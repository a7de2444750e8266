//! XTC trajectory reader (GROMACS' compressed format), decoding with the pure-Rust
//! `molly` crate.
//!
//! Each frame is XDR (big-endian): magic 1995 (or 2023 for very large systems), NATOMS,
//! step, time (ps), the box (9 float32, nm), NATOMS again, then the positions: as plain
//! float32 for 9 atoms or fewer, else integers at a given precision (usually 1000, i.e.
//! 1e-3 nm) packed by the xdrfile compression. Positions are in nm already. Compressed
//! positions are returned as the integers over the precision, evaluated in f64 (the
//! closest f64 to what was written), so a value written as 0.123 nm reads as 0.123.
//!
//! Frames are counted from 1 in messages.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use molly::{Frame, XTCReader};

use crate::md::error::MdError;

/// One XTC frame, in cgloop units.
#[derive(Debug, Clone, PartialEq)]
pub struct XtcFrame {
    /// The integration step written in the frame.
    pub step: u32,
    /// The time written in the frame, ps.
    pub time_ps: f32,
    /// Compression precision (1/nm); `None` for uncompressed frames of 9 atoms or fewer.
    pub precision: Option<f32>,
    /// nm.
    pub positions: Vec<[f64; 3]>,
}

/// Bytes of the frame header: magic, natoms, step, time, box (9), natoms.
const HEADER_BYTES: usize = 4 * 14;

/// Read an XTC file from disk (display name = the path).
pub fn read_xtc(path: &std::path::Path) -> Result<Vec<XtcFrame>, MdError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| MdError::Io {
        file: file.clone(),
        source,
    })?;
    parse_xtc(&bytes, &file)
}

/// Parse an XTC file given as bytes; `source` names the file in errors.
pub fn parse_xtc(bytes: &[u8], source: &str) -> Result<Vec<XtcFrame>, MdError> {
    let mut reader = XTCReader::new(Cursor::new(bytes));
    let mut frames = Vec::new();
    loop {
        let start = reader.file.position() as usize;
        if start >= bytes.len() {
            break;
        }
        let number = frames.len() + 1;
        let problem =
            |message: String| MdError::invalid(source, format!("XTC frame {number}"), message);
        // Check the header here: molly asserts (panics) on some inconsistencies.
        let magic = bytes
            .get(start..start + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if magic.is_some_and(|m| m != 1995 && m != 2023) || (number == 1 && magic.is_none()) {
            let magic = magic.unwrap_or(0);
            return Err(problem(if number == 1 {
                format!("not an XTC file: magic number {magic} at byte 0, expected 1995 or 2023")
            } else {
                format!("magic number {magic} at byte {start}, expected 1995 or 2023: corrupt?")
            }));
        }
        let header = bytes.get(start..start + HEADER_BYTES).ok_or_else(|| {
            problem(format!(
                "file ends inside the frame header (at byte {start} of {}): truncated?",
                bytes.len()
            ))
        })?;
        let word = |i: usize| {
            i32::from_be_bytes([
                header[4 * i],
                header[4 * i + 1],
                header[4 * i + 2],
                header[4 * i + 3],
            ])
        };
        let (natoms, natoms_again) = (word(1), word(13));
        if natoms < 0 || natoms != natoms_again {
            return Err(problem(format!(
                "header gives {natoms} and {natoms_again} atoms: corrupt?"
            )));
        }
        // Bound what molly will allocate by what the file holds: a corrupt count must
        // give an error, not an allocation of gigabytes.
        let natoms = natoms as usize;
        let rest = bytes.len() - start - HEADER_BYTES;
        if natoms <= 9 {
            if rest < 12 * natoms {
                return Err(problem(format!(
                    "file ends inside the frame (it starts at byte {start} of {}): truncated?",
                    bytes.len()
                )));
            }
        } else {
            // precision, minint (3), maxint (3), smallidx, then the byte count.
            let at = start + HEADER_BYTES + 32;
            let count = match magic {
                Some(2023) => bytes
                    .get(at..at + 8)
                    .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")) as usize),
                _ => bytes
                    .get(at..at + 4)
                    .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize),
            };
            let available = bytes.len().saturating_sub(at);
            match count {
                Some(count) if count <= available && natoms / 8 <= count.max(1) => {}
                Some(count) if count <= available => {
                    return Err(problem(format!(
                        "{natoms} atoms cannot fit in {count} compressed bytes: corrupt?"
                    )));
                }
                _ => {
                    return Err(problem(format!(
                        "file ends inside the frame (it starts at byte {start} of {}): truncated?",
                        bytes.len()
                    )));
                }
            }
        }
        let mut frame = Frame::default();
        let read = catch_unwind(AssertUnwindSafe(|| reader.read_frame(&mut frame)));
        match read {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let message = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    format!(
                        "file ends inside the frame (it starts at byte {start} of {}): truncated?",
                        bytes.len()
                    )
                } else {
                    format!("cannot decode: {e}")
                };
                return Err(problem(message));
            }
            Err(_) => {
                return Err(problem(format!(
                    "cannot decode the compressed positions (frame starts at byte {start}): corrupt?"
                )));
            }
        }
        if frame.natoms() != natoms {
            return Err(problem(format!(
                "decoded {} atoms, the header says {natoms}",
                frame.natoms()
            )));
        }
        let compressed = natoms > 9;
        let precision = f64::from(frame.precision);
        let value = |x: f32| {
            if compressed && precision > 0.0 {
                (f64::from(x) * precision).round() / precision
            } else {
                f64::from(x)
            }
        };
        frames.push(XtcFrame {
            step: frame.step,
            time_ps: frame.time,
            precision: compressed.then_some(frame.precision),
            positions: frame
                .coords()
                .map(|p| [value(p[0]), value(p[1]), value(p[2])])
                .collect(),
        });
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(n: usize, atoms: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut writer = molly::XTCWriter::new(&mut out);
        for k in 0..n {
            let frame = Frame {
                step: 10 * k as u32,
                time: k as f32,
                boxvec: [0.0; 9],
                precision: 1000.0,
                positions: (0..3 * atoms)
                    .map(|i| 0.001 * (i * 37 % 1000) as f32 + 0.1 * k as f32)
                    .collect(),
            };
            writer.write_frame(&frame).unwrap();
        }
        out
    }

    #[test]
    fn reads_what_molly_wrote_to_the_precision() {
        let read = parse_xtc(&frames(3, 22), "t.xtc").unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(read[2].step, 20);
        assert_eq!(read[1].positions.len(), 22);
        // Coordinate 4 of frame 1 was written as 0.001 * 148 + 0.1 (in f32): stored as
        // 248 thousandths, read back as the f64 closest to 0.248.
        assert_eq!(read[1].positions[1][1], 0.248);
        assert_eq!(read[1].precision, Some(1000.0));
    }

    #[test]
    fn truncation_and_garbage_name_file_and_frame() {
        let mut bytes = frames(3, 22);
        bytes.truncate(bytes.len() - 7);
        let err = parse_xtc(&bytes, "cut.xtc").unwrap_err().to_string();
        assert!(err.contains("cut.xtc") && err.contains("frame 3"), "{err}");
        let err = parse_xtc(
            b"definitely not an xtc file at all, no sir, not at all",
            "x.xtc",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("x.xtc") && err.contains("not an XTC"), "{err}");
        // A corrupt atom count is refused before anything is allocated for it.
        let mut bytes = frames(2, 22);
        let frame_bytes = frames(1, 22).len();
        for at in [frame_bytes + 4, frame_bytes + 52] {
            bytes[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        }
        let err = parse_xtc(&bytes, "big.xtc").unwrap_err().to_string();
        assert!(
            err.contains("big.xtc") && err.contains("frame 2") && err.contains("cannot fit"),
            "{err}"
        );
    }
}
