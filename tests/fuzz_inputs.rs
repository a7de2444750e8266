//! Inputs users hand us never panic: each reader (prmtop, inpcrd, PDB, DCD, XTC, the
//! workflow YAML with its schema and graph, and the Parquet tables a stage reads from the
//! store) gets mutated copies of valid files (bytes flipped, ranges cut or repeated,
//! truncations, numbers and tokens that parsers trip on) and must return a result: a
//! value or an error, never a panic. A parsed topology also builds a force field and
//! evaluates it once.
//!
//! CI runs `CGLOOP_FUZZ_CASES` (default 200) cases per reader, seconds in all; `just
//! fuzz` runs many more. Mutations come from a seeded ChaCha stream
//! (`CGLOOP_FUZZ_SEED`, default 1), so a failure replays; the first panicking input of
//! each reader is written to `target/fuzz-failures/`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use cgloop::artifact::atoms::{AtomRow, from_table as atoms_from_table, to_table as atoms_table};
use cgloop::artifact::force_field::ForceFieldRecord;
use cgloop::artifact::trajectory::{FrameRecord, Trajectory};
use cgloop::artifact::{decode_table, encode_table};
use cgloop::md::forcefield::{ForceField, Solvent};
use cgloop::md::io::coordinates::parse_inpcrd;
use cgloop::md::io::dcd::parse_dcd;
use cgloop::md::io::pdb::parse_pdb;
use cgloop::md::io::prmtop::parse_prmtop;
use cgloop::md::io::xtc::parse_xtc;
use cgloop::stages::Registry;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cases() -> usize {
    std::env::var("CGLOOP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

fn rng(target: &str) -> ChaCha20Rng {
    let seed: u64 = std::env::var("CGLOOP_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    for (k, b) in key[8..].iter_mut().zip(target.bytes()) {
        *k = b;
    }
    ChaCha20Rng::from_seed(key)
}

const TOKENS: &[&str] = &[
    "-1",
    "0",
    "1e308",
    "-1e308",
    "NaN",
    "inf",
    "99999999999999999999",
    "2147483648",
    "%FLAG",
    "%FORMAT(",
    "%FORMAT(10I8)",
    "\n",
    " ",
    "\t",
    "ATOM  ",
    "HETATM",
    "MODEL",
    "ENDMDL",
    "END",
    ":",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "*",
    "&",
    "<<",
    "\"",
    "'",
    "#",
    "?",
    "é",
    "\u{0}",
    "1.5.5",
    "-",
    ".",
    "nodes:",
    "inputs:",
    "stage:",
    "params:",
    "seed:",
];

fn below(rng: &mut ChaCha20Rng, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (rng.next_u64() % n as u64) as usize
    }
}

/// One to four mutations of `data`.
fn mutate(rng: &mut ChaCha20Rng, data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    for _ in 0..1 + below(rng, 4) {
        let n = out.len();
        let at = below(rng, n + 1);
        match below(rng, 7) {
            0 if n > 0 => out[below(rng, n)] = rng.next_u32() as u8,
            1 => {
                let end = (at + 1 + below(rng, 64)).min(n);
                out.drain(at..end);
            }
            2 => {
                let end = (at + 1 + below(rng, 256)).min(n);
                let piece = out[at..end].to_vec();
                let to = below(rng, n + 1);
                out.splice(to..to, piece);
            }
            3 => out.truncate(at),
            4 | 5 => {
                let token = TOKENS[below(rng, TOKENS.len())].as_bytes();
                let end = if below(rng, 2) == 0 {
                    at
                } else {
                    // Replace the number or word at `at`.
                    let mut e = at;
                    while e < n && !out[e].is_ascii_whitespace() {
                        e += 1;
                    }
                    e
                };
                out.splice(at..end, token.iter().copied());
            }
            _ if n > 0 => {
                // A digit changed, where there is one near `at`.
                if let Some(p) = (at..n).find(|&p| out[p].is_ascii_digit()) {
                    out[p] = b'0' + below(rng, 10) as u8;
                }
            }
            _ => {}
        }
    }
    out
}

/// Feeds `cases()` mutations of each seed to `target`; panics, after all cases, with the
/// number of inputs that panicked and the first one's message.
fn fuzz(name: &str, seeds: &[Vec<u8>], target: impl Fn(&[u8])) {
    let mut rng = rng(name);
    let mut panics = 0;
    let mut first: Option<(String, Vec<u8>)> = None;
    let n = cases();
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for case in 0..n {
        let seed = &seeds[case % seeds.len()];
        let input = mutate(&mut rng, seed);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
            panics += 1;
            if first.is_none() {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                first = Some((what, input));
            }
        }
    }
    std::panic::set_hook(quiet);
    eprintln!("{name}: {n} inputs, {panics} panicked");
    if let Some((what, input)) = first {
        let dir = root().join("target/fuzz-failures");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{name}.bin"));
        std::fs::write(&file, &input).unwrap();
        panic!(
            "{name}: {panics} of {n} inputs panicked; the first ({}): {what}",
            file.display()
        );
    }
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(root().join(path)).unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn prmtop_and_the_force_field_built_from_it() {
    let positions = parse_inpcrd(
        &text(&read("datasets/alanine_dipeptide/ala2_ff14SB.inpcrd")),
        "ala2.inpcrd",
    )
    .unwrap()
    .positions;
    fuzz(
        "prmtop",
        &[read("datasets/alanine_dipeptide/ala2_ff14SB.prmtop")],
        |bytes| {
            let Ok(topology) = parse_prmtop(&text(bytes), "fuzz.prmtop") else {
                return;
            };
            for solvent in [Solvent::Vacuum, Solvent::Obc2] {
                let Ok(mut ff) = ForceField::new(&topology, solvent) else {
                    continue;
                };
                if topology.n_atoms() == positions.len() {
                    let mut forces = vec![[0.0; 3]; positions.len()];
                    ff.compute(&positions, &mut forces);
                }
            }
        },
    );
}

#[test]
fn inpcrd() {
    fuzz(
        "inpcrd",
        &[read("datasets/alanine_dipeptide/ala2_ff14SB.inpcrd")],
        |bytes| {
            let _ = parse_inpcrd(&text(bytes), "fuzz.inpcrd");
        },
    );
}

#[test]
fn pdb() {
    fuzz(
        "pdb",
        &[
            read("datasets/alanine_dipeptide/ala2_ff14SB.pdb"),
            read("datasets/alanine_dipeptide/ala2_ff14SB_c7ax.pdb"),
        ],
        |bytes| {
            let _ = parse_pdb(&text(bytes), "fuzz.pdb");
        },
    );
}

#[test]
fn dcd() {
    fuzz(
        "dcd",
        &[read("tests/data/import_trajectory/ala2_frames.dcd")],
        |bytes| {
            let _ = parse_dcd(bytes, "fuzz.dcd");
        },
    );
}

#[test]
fn xtc() {
    fuzz(
        "xtc",
        &[read("tests/data/import_trajectory/ala2_frames.xtc")],
        |bytes| {
            let _ = parse_xtc(bytes, "fuzz.xtc");
        },
    );
}

#[test]
fn workflow_yaml() {
    std::env::set_current_dir(root()).unwrap();
    let registry = Registry::builtin();
    let files = [
        "workflows/smoke.yaml",
        "workflows/alanine_dipeptide.yaml",
        "workflows/alanine_dipeptide_quick.yaml",
        "workflows/alanine_dipeptide_cg.yaml",
        "workflows/alanine_dipeptide_md.yaml",
        "tests/fixtures/stage_pins.yaml",
    ];
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| read(f)).collect();
    fuzz("workflow", &seeds, |bytes| {
        let _ = cgloop::workflow::parse(&text(bytes), Path::new("fuzz.yaml"), &registry);
    });
}

#[test]
fn parquet_tables_a_stage_reads() {
    let mut trajectory = Trajectory::new(2);
    for i in 0..3 {
        let x = [[0.1 * i as f64, 0.2, 0.3], [0.4, 0.5, 0.6]];
        trajectory.push(FrameRecord {
            temperature_index: 0,
            replica: 0,
            temperature_k: 300.0,
            step: i,
            time_ps: i as f64,
            positions_nm: &x,
            forces: &x,
            potential: -1.0,
            kinetic_temperature_k: 299.0,
        });
    }
    let atoms = vec![AtomRow {
        name: "CA".into(),
        residue_name: "ALA".into(),
        residue_index: 0,
        atomic_number: 6,
        mass_amu: 12.01,
        charge_e: 0.1,
    }];
    let force_field = ForceFieldRecord::new("a.prmtop", "%VERSION\n", "vacuum");
    let metadata = Default::default();
    let seeds = vec![
        encode_table(&trajectory.to_table(), &metadata).unwrap(),
        encode_table(&atoms_table(&atoms), &metadata).unwrap(),
        encode_table(&force_field.to_table(), &metadata).unwrap(),
    ];
    fuzz("parquet", &seeds, |bytes| {
        let Ok((table, _)) = decode_table(bytes.to_vec().into()) else {
            return;
        };
        let _ = Trajectory::from_table(&table);
        let _ = atoms_from_table(&table);
        let _ = ForceFieldRecord::from_table(&table);
    });
}

/// What the fuzzing found, kept as plain regressions: counts in a header that no file of
/// that size can hold are errors, not allocations that abort the process.
#[test]
fn impossible_counts_are_errors() {
    let mut dcd = read("tests/data/import_trajectory/ala2_frames.dcd");
    let title = i32::from_le_bytes(dcd[92..96].try_into().unwrap()) as usize;
    let natom = 92 + 4 + title + 4 + 4;
    assert_eq!(
        i32::from_le_bytes(dcd[natom..natom + 4].try_into().unwrap()),
        22
    );
    dcd[natom..natom + 4].copy_from_slice(&i32::MAX.to_le_bytes());
    let err = parse_dcd(&dcd, "huge.dcd").unwrap_err().to_string();
    assert!(err.contains("NATOM 2147483647"), "{err}");

    let prmtop = text(&read("datasets/alanine_dipeptide/ala2_ff14SB.prmtop"));
    let at = prmtop.find("%FLAG DIHEDRAL_PERIODICITY").unwrap();
    let values = at + prmtop[at..].find("\n%FORMAT").unwrap() + 1;
    let values = values + prmtop[values..].find('\n').unwrap() + 1;
    let mut huge = prmtop.clone();
    huge.replace_range(values..values + 16, "  1.00000000E+10");
    let err = parse_prmtop(&huge, "huge.prmtop").unwrap_err().to_string();
    assert!(
        err.contains("DIHEDRAL_PERIODICITY") && err.contains("1 to 12"),
        "{err}"
    );
}
