#!/usr/bin/env python3
"""cgloop's MD engine and OpenMM side by side, alternating, on a shared machine whose
speed drifts by tens of percent within minutes (issue 3's speed goals).

Each round runs `cargo bench --bench md -- CASE` (CGLOOP_BENCH_SECONDS=S) and then
bench/openmm_peer.py on the same molecule and settings (300 K, 2 fs, H-bond constraints,
one trajectory) for each peer platform of the case; the round's ratio is cgloop's
steps/s over the fastest peer platform's in that round. Prints one JSON line per round
and a summary per case: the median ratio with a distribution-free confidence interval
(order statistics of the rounds, taken as independent; at least 95 % from 6 rounds on,
and with 8 rounds it spans the smallest to the largest, so use 16 or more to learn
whether a goal is met), and the smallest ratio.

  python3 bench/md_rounds.py --rounds 16 --seconds 2 [--case vacuum] [--cgloop CMD]

Needs `openmm` importable by this Python (pip install openmm in a venv; never a
dependency of cgloop). The peer platforms per case are those measured fastest on the
2-core development machine: Reference (and CPU with 1 thread) for alanine dipeptide in
vacuum, Reference and CPU with 1 and 2 threads for CLN025 with OBC2 (the alanine
dipeptide OBC2 case of `cargo bench --bench md` has no peer here).
"""
import argparse, json, math, os, statistics, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    'alanine_dipeptide_vacuum': ('datasets/alanine_dipeptide/ala2_ff14SB', 'vacuum', ['Reference', 'CPU:1']),
    'cln025_obc2': ('datasets/chignolin/cln025_ff14SB', 'obc2', ['Reference', 'CPU:1', 'CPU:2']),
}


def lines(out):
    return [json.loads(l) for l in out.splitlines() if l.startswith('{')]


def median_interval(values, confidence=0.95):
    """(lo, hi, coverage): order statistics x_(k) <= median <= x_(n+1-k) for the largest k
    whose coverage 1 - 2 P(Binomial(n, 1/2) < k) is at least `confidence` (no assumption
    on the distribution of the rounds beyond independence). Below 6 rounds no k reaches
    95 %: then k = 1 (smallest to largest) with its smaller coverage, as reported."""
    x, n = sorted(values), len(values)
    below = lambda k: sum(math.comb(n, i) for i in range(k)) / 2 ** n
    k = 1
    while k + 1 <= n // 2 and 1 - 2 * below(k + 1) >= confidence:
        k += 1
    return x[k - 1], x[n - k], 1 - 2 * below(k)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--rounds', type=int, default=10)
    ap.add_argument('--seconds', type=float, default=3.0)
    ap.add_argument('--case', action='append', help='substring of a case name (repeatable)')
    ap.add_argument('--cgloop', default='cargo bench --bench md --',
                    help="command printing cgloop's JSON lines; the case name is appended")
    a = ap.parse_args()
    cases = [c for c in CASES if not a.case or any(s in c for s in a.case)]
    env = dict(os.environ, CGLOOP_BENCH_SECONDS=str(a.seconds))
    ratios = {c: [] for c in cases}
    for r in range(a.rounds):
        for case in cases:
            base, solvent, platforms = CASES[case]
            ours = lines(subprocess.run(f'{a.cgloop} {case}', shell=True, env=env, check=True,
                                        cwd=ROOT, stdout=subprocess.PIPE, text=True).stdout)
            ours = next(o['steps_per_s'] for o in ours if o['case'] == case)
            cmd = [sys.executable, str(ROOT / 'bench/openmm_peer.py'), f'{base}.prmtop',
                   f'{base}.inpcrd', '--solvent', solvent, '--seconds', str(a.seconds)]
            for p in platforms:
                cmd += ['--platform', p]
            peer = lines(subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.PIPE,
                                        text=True).stdout)
            best = max(peer, key=lambda p: p['steps_per_s'])
            name = best['platform'] + (f":{best['Threads']}" if 'Threads' in best else '')
            ratio = ours / best['steps_per_s']
            ratios[case].append(ratio)
            print(json.dumps({'round': r + 1, 'case': case, 'cgloop_steps_per_s': ours,
                              'openmm_steps_per_s': best['steps_per_s'], 'openmm_platform': name,
                              'ratio': round(ratio, 2)}), flush=True)
    for case in cases:
        lo, hi, coverage = median_interval(ratios[case])
        print(json.dumps({'case': case, 'rounds': a.rounds, 'seconds': a.seconds,
                          'median_ratio': round(statistics.median(ratios[case]), 2),
                          'median_interval': [round(lo, 2), round(hi, 2)],
                          'interval_coverage': round(coverage, 3),
                          'min_ratio': round(min(ratios[case]), 2)}), flush=True)


if __name__ == '__main__':
    main()
