//! Stored trajectories as structure files for molecular viewers (VMD, PyMOL, ChimeraX,
//! MDTraj): a multi-model PDB, or a DCD with a PDB of its first frame as the topology.
//!
//! The atoms come from the nearest `atoms` table with as many rows as the trajectory has
//! atoms: the node's own output, else the inputs of the node and of its upstream nodes,
//! nearest first (a backmapped trajectory finds the FG run's atoms through its flow). A
//! trajectory no such table matches (CG beads) is written with one pseudo-atom per bead,
//! `B1`, `B2`, ... in residues `CG` numbered from 1.
//!
//! Frames are chosen in three steps: those at one rung of the temperature ladder (when
//! asked), then a slice `START:STOP:STEP` of those (Python's, non-negative), then, when
//! asked, `n` frames resampled by weight (systematic resampling, Kitagawa 1996: one
//! uniform draw u from a ChaCha20 stream seeded by `seed`, frame i taken for each
//! (u + k) / n, k = 0..n-1, that falls in its share of the cumulative normalized
//! weight). Resampled frames follow the reweighted distribution: what a viewer shows is
//! then the ensemble the weights estimate, not the proposal's.
//!
//! Files are written beside their final name and renamed into place, so a failed export
//! leaves no half-written file.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use arrow_array::{Array, Float64Array};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::manifest::Manifest;
use super::store::{Store, StoreError};
use crate::artifact::atoms::{self, AtomRow};
use crate::artifact::trajectory::Trajectory;
use crate::md::io::dcd::write_dcd;
use crate::md::io::pdb::{PdbAtom, element_symbol, write_pdb};
use crate::workflow::Key;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request cannot be met as asked (the user can fix it).
    #[error("{0}")]
    Request(String),
}

/// The file formats written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StructureFormat {
    Pdb,
    Dcd,
}

impl StructureFormat {
    /// The format named by a file's extension (`.pdb`, `.dcd`; any case).
    pub fn of(path: &Path) -> Option<StructureFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "pdb" => Some(StructureFormat::Pdb),
            "dcd" => Some(StructureFormat::Dcd),
            _ => None,
        }
    }
}

/// `START:STOP:STEP` over frames, each part optional (`::10`, `100:`, `5`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameSlice {
    pub start: usize,
    pub stop: Option<usize>,
    pub step: usize,
}

impl Default for FrameSlice {
    fn default() -> Self {
        FrameSlice {
            start: 0,
            stop: None,
            step: 1,
        }
    }
}

impl FrameSlice {
    /// Parses `START:STOP:STEP` (a lone number selects that one frame).
    pub fn parse(text: &str) -> Result<FrameSlice, String> {
        let number = |part: &str, what: &str| -> Result<Option<usize>, String> {
            let part = part.trim();
            if part.is_empty() {
                return Ok(None);
            }
            part.parse::<usize>().map(Some).map_err(|_| {
                format!("`{text}`: {what} `{part}` is not a non-negative integer (START:STOP:STEP)")
            })
        };
        let parts: Vec<&str> = text.split(':').collect();
        match parts.as_slice() {
            [one] => {
                let i = number(one, "frame")?
                    .ok_or_else(|| format!("`{text}`: expected START:STOP:STEP"))?;
                Ok(FrameSlice {
                    start: i,
                    stop: Some(i + 1),
                    step: 1,
                })
            }
            [start, stop] | [start, stop, _] => {
                let step = match parts.get(2) {
                    Some(s) => number(s, "STEP")?.unwrap_or(1),
                    None => 1,
                };
                if step == 0 {
                    return Err(format!("`{text}`: STEP must be at least 1"));
                }
                Ok(FrameSlice {
                    start: number(start, "START")?.unwrap_or(0),
                    stop: number(stop, "STOP")?,
                    step,
                })
            }
            _ => Err(format!("`{text}`: expected START:STOP:STEP")),
        }
    }

    /// The chosen positions among `n`.
    pub fn select(&self, n: usize) -> Vec<usize> {
        let stop = self.stop.unwrap_or(n).min(n);
        (self.start..stop).step_by(self.step).collect()
    }
}

/// What to export.
#[derive(Clone, Debug)]
pub struct ExportRequest {
    pub key: Key,
    /// The trajectory output of that node.
    pub output: String,
    pub out: PathBuf,
    pub temperature_index: Option<i32>,
    pub frames: FrameSlice,
    /// Resample this many frames by the node's `weights` output.
    pub resample: Option<usize>,
    pub seed: u64,
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportSummary {
    pub frames: usize,
    pub atoms: usize,
    /// Where the atom names came from (`node <key> output atoms`, or pseudo-atoms).
    pub atoms_from: String,
    pub files: Vec<PathBuf>,
}

/// Writes the requested frames of a stored trajectory.
pub fn export_structures(
    store: &Store,
    request: &ExportRequest,
) -> Result<ExportSummary, ExportError> {
    let format = StructureFormat::of(&request.out).ok_or_else(|| {
        ExportError::Request(format!(
            "{}: the file name must end in .pdb (multi-model PDB) or .dcd (DCD, with a PDB \
             topology beside it)",
            request.out.display()
        ))
    })?;
    let manifest = store.read_manifest(&request.key)?;
    let record = manifest.outputs.get(&request.output).ok_or_else(|| {
        ExportError::Request(format!(
            "node `{}` ({}) has no output `{}`; its outputs: {}",
            manifest.node,
            &manifest.key[..12],
            request.output,
            manifest
                .outputs
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    if record.kind != "trajectory" {
        return Err(ExportError::Request(format!(
            "output `{}` of node `{}` is a `{}`, not a trajectory",
            request.output, manifest.node, record.kind
        )));
    }
    let table = store.load_output(&request.key, &request.output)?;
    let trajectory = Trajectory::from_table(table.as_table().expect("a trajectory is a table"))
        .map_err(|e| ExportError::Request(e.to_string()))?;

    let rung: Vec<usize> = (0..trajectory.len())
        .filter(|&i| {
            request
                .temperature_index
                .is_none_or(|k| trajectory.temperature_index[i] == k)
        })
        .collect();
    let mut chosen: Vec<usize> = request
        .frames
        .select(rung.len())
        .into_iter()
        .map(|i| rung[i])
        .collect();
    if let Some(n) = request.resample {
        let weights = node_weights(store, &request.key, &manifest, trajectory.len())?;
        let picked: Vec<f64> = chosen.iter().map(|&i| weights[i]).collect();
        chosen = resample(&picked, n, request.seed)
            .map_err(ExportError::Request)?
            .into_iter()
            .map(|k| chosen[k])
            .collect();
    }
    if chosen.is_empty() {
        return Err(ExportError::Request(format!(
            "no frames selected ({} frames in `{}`{})",
            trajectory.len(),
            request.output,
            request
                .temperature_index
                .map(|k| format!(", {} at temperature_index {k}", rung.len()))
                .unwrap_or_default()
        )));
    }
    let (pdb_atoms, atoms_from) = atoms_for(store, &request.key, trajectory.n_atoms)?;
    let frames: Vec<Vec<[f64; 3]>> = chosen.iter().map(|&i| positions(&trajectory, i)).collect();

    let mut files = Vec::new();
    match format {
        StructureFormat::Pdb => {
            let text =
                write_pdb(&pdb_atoms, &frames).map_err(|e| ExportError::Request(e.to_string()))?;
            write_atomically(&request.out, text.as_bytes())?;
            files.push(request.out.clone());
        }
        StructureFormat::Dcd => {
            let interval = match chosen.as_slice() {
                [a, b, ..] => trajectory.time_ps[*b] - trajectory.time_ps[*a],
                _ => 0.0,
            };
            let steps = match chosen.as_slice() {
                [a, b, ..] => trajectory.step[*b] - trajectory.step[*a],
                _ => 1,
            };
            let title = format!(
                "cgloop export: node {} output {} ({})",
                manifest.node,
                request.output,
                &manifest.key[..12]
            );
            let (interval, steps) = if request.resample.is_some() || steps <= 0 {
                (0.0, 1)
            } else {
                (interval, steps)
            };
            let bytes = write_dcd(&frames, &title, trajectory.step[chosen[0]], steps, interval)
                .map_err(|e| ExportError::Request(e.to_string()))?;
            let topology = request.out.with_extension("pdb");
            let text = write_pdb(&pdb_atoms, &frames[..1])
                .map_err(|e| ExportError::Request(e.to_string()))?;
            write_atomically(&request.out, &bytes)?;
            write_atomically(&topology, text.as_bytes())?;
            files.push(request.out.clone());
            files.push(topology);
        }
    }
    Ok(ExportSummary {
        frames: frames.len(),
        atoms: pdb_atoms.len(),
        atoms_from,
        files,
    })
}

fn positions(t: &Trajectory, frame: usize) -> Vec<[f64; 3]> {
    t.positions_nm[3 * t.n_atoms * frame..3 * t.n_atoms * (frame + 1)]
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect()
}

/// Systematic resampling of `n` positions by `weights` (see the module docs).
pub fn resample(weights: &[f64], n: usize, seed: u64) -> Result<Vec<usize>, String> {
    if n == 0 {
        return Err("--resample needs at least 1 frame".into());
    }
    if let Some((i, w)) = weights
        .iter()
        .enumerate()
        .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
    {
        return Err(format!("weight {w} of frame {i} is negative or not finite"));
    }
    let total: f64 = weights.iter().sum();
    if !(total > 0.0) {
        return Err("the selected frames' weights sum to zero".into());
    }
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let mut out = Vec::with_capacity(n);
    let mut cumulative = 0.0;
    let mut i = 0;
    for k in 0..n {
        let target = (u + k as f64) / n as f64 * total;
        while i + 1 < weights.len() && cumulative + weights[i] <= target {
            cumulative += weights[i];
            i += 1;
        }
        out.push(i);
    }
    Ok(out)
}

/// The `weight` column of the node's `weights` output, one per frame.
fn node_weights(
    store: &Store,
    key: &Key,
    manifest: &Manifest,
    frames: usize,
) -> Result<Vec<f64>, ExportError> {
    let node = &manifest.node;
    if !manifest.outputs.contains_key("weights") {
        return Err(ExportError::Request(format!(
            "node `{node}` has no `weights` output to resample by (export a `reweight` node's \
             trajectory)"
        )));
    }
    let artifact = store.load_output(key, "weights")?;
    let column = artifact
        .as_table()
        .and_then(|t| t.column_by_name("weight"))
        .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
        .filter(|c| c.null_count() == 0)
        .ok_or_else(|| {
            ExportError::Request(format!(
                "node `{node}`'s `weights` has no float64 column `weight` without nulls"
            ))
        })?;
    if column.len() != frames {
        return Err(ExportError::Request(format!(
            "node `{node}` has {} weights for {frames} frames",
            column.len()
        )));
    }
    Ok(column.values().to_vec())
}

/// The atoms of a trajectory of `n_atoms` (see the module docs) and where they came from.
fn atoms_for(
    store: &Store,
    key: &Key,
    n_atoms: usize,
) -> Result<(Vec<PdbAtom>, String), ExportError> {
    // Breadth first: the node, then its inputs' nodes, nearest first.
    let mut queue = VecDeque::from([*key]);
    let mut seen = BTreeSet::new();
    while let Some(node) = queue.pop_front() {
        if !seen.insert(node) || !store.contains(&node) {
            continue;
        }
        let manifest = store.read_manifest(&node)?;
        if manifest.outputs.contains_key("atoms")
            && let Some(found) = matching_atoms(store, &node, n_atoms)?
        {
            return Ok((found, format!("node `{}` output `atoms`", manifest.node)));
        }
        queue.extend(
            manifest
                .ingredients
                .inputs
                .values()
                .filter_map(|input| Key::parse(&input.key)),
        );
    }
    let beads = (0..n_atoms)
        .map(|i| PdbAtom {
            name: format!("B{}", i + 1),
            residue_name: "CG".into(),
            chain: 'A',
            residue_number: i as i32 + 1,
            element: String::new(),
            hetero: false,
        })
        .collect();
    Ok((
        beads,
        format!("no atoms table of {n_atoms} rows upstream: pseudo-atoms B1..B{n_atoms}"),
    ))
}

fn matching_atoms(
    store: &Store,
    key: &Key,
    n_atoms: usize,
) -> Result<Option<Vec<PdbAtom>>, ExportError> {
    let artifact = store.load_output(key, "atoms")?;
    let Some(table) = artifact.as_table() else {
        return Ok(None);
    };
    let Ok(rows) = atoms::from_table(table) else {
        return Ok(None);
    };
    Ok((rows.len() == n_atoms).then(|| rows.iter().map(pdb_atom).collect()))
}

fn pdb_atom(a: &AtomRow) -> PdbAtom {
    PdbAtom {
        name: a.name.clone(),
        residue_name: a.residue_name.clone(),
        chain: 'A',
        residue_number: a.residue_index + 1,
        element: u8::try_from(a.atomic_number)
            .map(element_symbol)
            .unwrap_or_default()
            .to_string(),
        hetero: false,
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.partial"));
    let failed = |e: std::io::Error| {
        let _ = std::fs::remove_file(&temporary);
        ExportError::Request(format!("cannot write {}: {e}", path.display()))
    };
    std::fs::write(&temporary, bytes).map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_slices_follow_python() {
        let s = |t: &str| FrameSlice::parse(t).unwrap().select(10);
        assert_eq!(s("::3"), [0, 3, 6, 9]);
        assert_eq!(s("2:5"), [2, 3, 4]);
        assert_eq!(s("8:"), [8, 9]);
        assert_eq!(s("4"), [4]);
        assert_eq!(s("20:30"), Vec::<usize>::new());
        for bad in ["a:b", "1:2:0", "-1:", "1:2:3:4", ""] {
            assert!(FrameSlice::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn systematic_resampling_follows_the_weights() {
        // Frame 1 carries three quarters of the weight: 750 of 1000 draws, within one.
        let picks = resample(&[1.0, 3.0, 0.0], 1000, 7).unwrap();
        let ones = picks.iter().filter(|&&i| i == 1).count();
        assert!((749..=751).contains(&ones), "{ones}");
        assert!(!picks.contains(&2), "a zero weight is never drawn");
        assert_eq!(
            picks,
            resample(&[1.0, 3.0, 0.0], 1000, 7).unwrap(),
            "seeded"
        );
        assert!(resample(&[0.0, 0.0], 3, 1).is_err());
        assert!(resample(&[1.0, f64::NAN], 3, 1).is_err());
    }
}
