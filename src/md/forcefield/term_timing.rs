//! Time per part of [`ForceField::compute`] with the production kernels (the widest
//! lane type the CPU has), on the bundled alanine dipeptide (vacuum) and CLN025 (OBC2):
//! where a force evaluation's time goes, for work on the kernels. An ignored test:
//!
//!     just md-terms
//!     cargo test --release --lib term_timing -- --ignored --nocapture
//!
//! Each part runs alone in batches of about 0.5 ms (as many calls as a whole evaluation
//! fits), 600 batches alternating over the parts; the fastest batch (the machine
//! undisturbed) and the median are printed in ns per call. "all" is
//! [`ForceField::compute`] itself, which runs either the 1-4 list and the ordinary
//! pairs, or the rows with the 1-4 pairs (the header says which). A part's inputs stay
//! fixed and its force outputs accumulate, which does not change its cost. Timings only:
//! nothing is asserted.
//!
//! Keep "all" a call of `compute`: inlined here, beside the parts, the whole evaluation
//! once ran 1.7 us where `compute` takes 1.0 (alanine dipeptide), an artefact of how the
//! compiler laid out one huge function (the reason angles and torsions run out of line).

use super::nonbonded::PairPart;
use super::simd::Lanes;
use super::{ForceField, OrdinaryPairs, Solvent};
use std::time::Instant;

/// Batches per part (each about 0.5 ms): about 3 s per molecule, so that the fastest
/// batch finds the machine undisturbed.
const BATCHES: usize = 600;

const PARTS: [&str; 10] = [
    "all (compute)",
    "zero + load",
    "bonds",
    "angles",
    "torsions",
    "1-4 pairs (list)",
    "ordinary pairs",
    "rows with 1-4",
    "gb (obc2)",
    "store",
];

/// One call of part `p`, returning something to keep.
#[inline(always)]
fn part<W: Lanes>(ff: &mut ForceField, p: usize, x: &[[f64; 3]], f: &mut [[f64; 3]]) -> f64 {
    match p {
        0 => ff.compute(x, f).total(),
        1 => {
            f.iter_mut().for_each(|v| *v = [0.0; 3]);
            ff.soa.load(x);
            f[0][0]
        }
        2 => ff.bonded.bonds(x, f),
        3 => ff.bonded.angles::<W>(&ff.soa, f),
        4 => ff.bonded.torsions::<W>(&ff.soa, f),
        5 => ff.pairs_14.accumulate_lanes::<W>(&ff.soa, f).0,
        6 => match &ff.pairs {
            OrdinaryPairs::Rows(rows) => rows.accumulate::<W>(PairPart::Both, &mut ff.soa).0,
            OrdinaryPairs::List(list) => list.accumulate(PairPart::Both, x, f).0,
        },
        7 => match &ff.pairs {
            OrdinaryPairs::Rows(rows) => rows.accumulate_with_one_four::<W>(&mut ff.soa).coulomb,
            OrdinaryPairs::List(_) => 0.0,
        },
        8 => match ff.obc.as_mut() {
            Some(obc) => obc.compute::<W>(&mut ff.soa),
            None => 0.0,
        },
        _ => {
            ff.soa.store_add(f);
            f[0][0]
        }
    }
}

/// (fastest, median) ns per call of every part.
#[inline(always)]
fn time_parts<W: Lanes>(ff: &mut ForceField, x: &[[f64; 3]]) -> Vec<(f64, f64)> {
    let mut f = vec![[0.0; 3]; x.len()];
    let mut sink = 0.0;
    let mut per_call = f64::MAX;
    for _ in 0..20 {
        let start = Instant::now();
        for _ in 0..10 {
            sink += part::<W>(ff, 0, x, &mut f);
        }
        per_call = per_call.min(start.elapsed().as_secs_f64() / 10.0);
    }
    let calls = (5e-4 / per_call).clamp(1.0, 5000.0) as usize;
    let mut batches = vec![Vec::new(); PARTS.len()];
    for _ in 0..BATCHES {
        for (p, times) in batches.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..calls {
                sink += part::<W>(ff, p, x, &mut f);
            }
            times.push(start.elapsed().as_secs_f64() * 1e9 / calls as f64);
        }
    }
    std::hint::black_box(sink);
    batches
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            (t[0], t[t.len() / 2])
        })
        .collect()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
fn time_avx512(ff: &mut ForceField, x: &[[f64; 3]]) -> Vec<(f64, f64)> {
    time_parts::<super::simd::F64x8>(ff, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn time_avx2(ff: &mut ForceField, x: &[[f64; 3]]) -> Vec<(f64, f64)> {
    time_parts::<super::simd::F64x4x2>(ff, x)
}

#[test]
#[ignore]
fn force_field_time_per_part() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, base, solvent) in [
        (
            "alanine dipeptide, vacuum",
            "datasets/alanine_dipeptide/ala2_ff14SB",
            Solvent::Vacuum,
        ),
        (
            "CLN025, OBC2",
            "datasets/chignolin/cln025_ff14SB",
            Solvent::Obc2,
        ),
    ] {
        let s = crate::md::io::structure::Structure::read(
            &root.join(format!("{base}.prmtop")),
            &root.join(format!("{base}.inpcrd")),
        )
        .unwrap();
        let mut ff = ForceField::new(&s.topology, solvent).unwrap();
        let x = &s.positions;
        #[allow(unused_mut)]
        let mut lanes = "portable (8 lanes in arrays)";
        #[cfg(target_arch = "x86_64")]
        let times = match ff.lanes {
            // SAFETY: `lanes` names an instruction set only after a runtime check for it.
            super::InstructionSet::Avx512 => {
                lanes = "AVX-512 (8 lanes)";
                unsafe { time_avx512(&mut ff, x) }
            }
            // SAFETY: as above.
            super::InstructionSet::Avx2 => {
                lanes = "AVX2 (8 lanes in two registers)";
                unsafe { time_avx2(&mut ff, x) }
            }
            super::InstructionSet::Portable => time_parts::<super::simd::Portable>(&mut ff, x),
        };
        #[cfg(not(target_arch = "x86_64"))]
        let times = time_parts::<super::simd::Portable>(&mut ff, x);
        let one_four = match &ff.pairs {
            OrdinaryPairs::Rows(rows) if rows.holds_one_four() => "in the rows",
            _ => "in a list",
        };
        println!(
            "{name}: {} atoms, {} ordinary pairs, {} 1-4 pairs ({one_four}); {lanes}; ns per call, fastest batch (median)",
            ff.n_atoms(),
            ff.n_pairs(),
            ff.pairs_14.len()
        );
        for (label, (fastest, median)) in PARTS.iter().zip(&times) {
            println!("  {label:<16} {fastest:>9.0} ({median:.0})");
        }
    }
}
