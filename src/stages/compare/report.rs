//! The report of `compare` in words and tables.

use std::fmt::Write as _;

use super::tables::{Summary, worst_name};
use super::{CompareParams, Definitions, HELD_FIXED};
use crate::analysis::agreement::Agreement;
use crate::analysis::basin::Basin;
use crate::analysis::bootstrap::{Estimate, Moments};
use crate::analysis::uncertainty::plus_minus;
use crate::analysis::weight_tail::{PARETO_K_UNRELIABLE, WeightTail};

/// The tail of the weights in words: whether k-hat lets the reweighted estimates be used.
pub(super) fn tail_sentence(tail: &WeightTail) -> String {
    let verdict = if tail.pareto_k.is_nan() {
        "too few weights to estimate it".to_string()
    } else if tail.is_reliable() {
        format!("at most {PARETO_K_UNRELIABLE}: the weights' tail allows the estimates")
    } else {
        format!(
            "above {PARETO_K_UNRELIABLE}: the weights' tail is too heavy, and the reweighted \
             estimates are not to be trusted whatever their error bars say"
        )
    };
    format!(
        "Tail of the weights: Pareto k-hat {:.2} ({verdict}); ESS without the {} largest \
         weights {:.1}.",
        tail.pareto_k, tail.dropped, tail.ess_without_largest
    )
}

pub(super) fn report(
    p: &CompareParams,
    populations: &[Vec<Estimate>],
    basin_ess: &[(usize, f64)],
    defs: &Definitions,
    moments: &[Vec<Moments>],
    summary: &Summary,
    agreements: &[(&'static str, &'static str, Agreement)],
) -> String {
    let mut out = String::new();
    let pm = |e: &Estimate| plus_minus(e.mean, e.std_error);
    let _ = writeln!(out, "# {}\n", p.title);
    if summary.weighted {
        let _ = writeln!(
            out,
            "{} reference frames, {} backmapped samples, effective sample size of the weights \
             {:.1} ({:.4} of the samples). Errors are block-bootstrap standard errors ({} blocks).\n",
            summary.reference_frames,
            summary.sample_frames,
            summary.ess,
            summary.ess / summary.sample_frames as f64,
            p.blocks
        );
        let _ = writeln!(out, "{}\n", tail_sentence(&summary.tail));
    } else {
        let _ = writeln!(
            out,
            "{} reference frames, {} sample frames, unweighted (no `weights` input: the \
             reweighted estimates are the raw ones). Errors are block-bootstrap standard \
             errors ({} blocks).\n",
            summary.reference_frames, summary.sample_frames, p.blocks
        );
    }
    let _ = writeln!(
        out,
        "![comparison](./plot.png)\n\n![free energy over phi and psi](./free_energy_2d.png)\n\n## Basin populations\n"
    );
    let _ = writeln!(
        out,
        "| basin | reference | raw | reweighted | samples | ESS of their weights |\n\
         |---|---|---|---|---|---|"
    );
    for (b, basin) in Basin::ALL.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.1} |",
            basin.name(),
            pm(&populations[0][b]),
            pm(&populations[1][b]),
            pm(&populations[2][b]),
            basin_ess[b].0,
            basin_ess[b].1
        );
    }
    if summary.weighted {
        let (b, &(_, least)) = basin_ess
            .iter()
            .enumerate()
            .min_by(|x, y| x.1.1.total_cmp(&y.1.1))
            .expect("three basins");
        let _ = writeln!(
            out,
            "\nThe reweighted population of {} rests on {least:.1} effective samples, the \
             fewest of any basin.",
            Basin::ALL[b].name()
        );
    }
    let _ = writeln!(
        out,
        "\n## Bonds, angles, energy\n\n{}Fraction of the {} observables whose mean (variance) \
         lies within 2 standard errors of the reference: raw {:.2} ({:.2}), reweighted {:.2} \
         ({:.2}).\n",
        if defs.held_fixed > 0 {
            format!(
                "{} observables the reference holds fixed (constrained bonds: spread below \
                 {HELD_FIXED:e} of their length) are left out. ",
                defs.held_fixed
            )
        } else {
            String::new()
        },
        defs.names.len(),
        summary.raw_means,
        summary.raw_variances,
        summary.reweighted_means,
        summary.reweighted_variances
    );
    let _ = writeln!(
        out,
        "Joint tests against the bootstrap distribution of the z-scores (which keeps the \
         correlations between observables; a small p says the estimate and the reference \
         differ by more than their errors allow): the fraction within 2 standard errors, \
         the sum of z^2 over the observables, and the largest |z|.\n\n\
         | estimate | moment | within 2 SE (p) | sum of z^2 (p) | largest \\|z\\| (p) | at |\n\
         |---|---|---|---|---|---|"
    );
    for (e, m, a) in agreements {
        let _ = writeln!(
            out,
            "| {e} | {m} | {:.2} ({:.3}) | {:.1} ({:.3}) | {:.2} ({:.3}) | {} |",
            a.within_2se,
            a.within_2se_p,
            a.sum_z2,
            a.sum_z2_p,
            a.max_abs_z,
            a.max_abs_z_p,
            worst_name(defs, a)
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| observable | unit | reference mean | raw mean | reweighted mean | reference variance | raw variance | reweighted variance |\n|---|---|---|---|---|---|---|---|"
    );
    for o in 0..defs.names.len() {
        let e = |k: usize, variance: bool| {
            let m = &moments[k][o];
            pm(if variance { &m.variance } else { &m.mean })
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            defs.names[o],
            defs.units[o],
            e(0, false),
            e(1, false),
            e(2, false),
            e(0, true),
            e(1, true),
            e(2, true)
        );
    }
    out
}
