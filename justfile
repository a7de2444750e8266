# cgloop recipes (https://github.com/casey/just). Every recipe is a plain cargo command,
# so nothing here is needed to use cgloop.

# Run a workflow (default: the quick alanine dipeptide study, about a minute).
run workflow="workflows/alanine_dipeptide_quick.yaml":
    cargo run --release -- run {{workflow}} -j 2

# The default test suite (what CI runs).
test:
    cargo test --release

# The Slurm executor against a real one-node Slurm cluster (installed from Debian's
# packages and started by scripts/slurm-cluster, stopped afterwards; needs root).
test-slurm:
    #!/usr/bin/env bash
    set -euo pipefail
    trap 'scripts/slurm-cluster stop' EXIT
    eval "$(scripts/slurm-cluster start)"
    cargo test --release --test slurm -- --ignored --test-threads=1

# Long scientific checks (minutes to hours): converged populations, long MD.
test-slow:
    cargo test --release -- --ignored --nocapture

# The 300 K alanine dipeptide reference populations (replica exchange, vacuum and OBC2),
# and the same ensemble from 4 fs steps with hydrogen mass repartitioning.
md-populations:
    cargo test --release --test long_alanine_md -- --ignored --nocapture

# The quick study's CG chains on workflow seeds 1-10: none may blow up.
cg-seeds:
    cargo test --release --test long_cg_seeds quick -- --ignored --nocapture

# The full study's cg on workflow seeds 1-10 (about 45 minutes on 2 cores).
cg-seeds-full:
    cargo test --release --test long_cg_seeds full -- --ignored --nocapture

# The committor of alanine dipeptide at 450 K (about 40 minutes on 2 cores from an empty
# store): the Hill rate out of sample against the count, and the committor test.
committor:
    cargo test --release --test long_alanine_committor -- --ignored --nocapture

# The committor from short runs on one 0.1 ps grid, three realizations each at 450 K
# (about 20 minutes on 2 cores with the brute-force walkers stored; Hill rates printed
# beside the count's 95 % interval) and at 300 K (about 20 minutes; the rates' spread
# over realizations printed): the committor test on each.
committor-fine:
    cargo test --release --test long_alanine_committor_fine -- --ignored --nocapture

# The committor at 300 K, where no run crosses, by windows, shots and refits from runs
# started in each core (about 10 minutes on 2 cores): the committor test on samples no
# fit has seen, and the Hill rate.
committor-300k:
    cargo test --release --test long_alanine_committor_300k -- --ignored --nocapture

# The chignolin FG reference (about 3.6 h on 2 cores from an empty store): runs A and B
# must agree on the folded fraction at 340 K within 2 combined standard errors.
chignolin-md:
    cargo test --release --test long_chignolin_md -- --ignored --nocapture

# The chignolin study (the reference above, then about an hour more): backmapped and
# reweighted C-alpha CG samples against the reference's folded fraction and JS, and the
# ESS.
chignolin-study:
    cargo test --release --test long_chignolin_study -- --ignored --nocapture

# Time per part of a force evaluation (bonds, angles, torsions, pair kernels, GB) on the
# bundled molecules, with the production kernels: where the MD step's force time goes.
md-terms:
    cargo test --release --lib term_timing -- --ignored --nocapture

# Learned coarse-graining of alanine dipeptide: learned vs fixed map, force-matched CG
# potentials, CG chains, and JS divergences of every CG observable.
cg-study:
    cargo test --release --test long_alanine_cg -- --ignored --nocapture

# Long fuzzing of every reader users hand inputs to (prmtop, inpcrd, PDB, DCD, XTC,
# workflow YAML, Parquet tables): CASES mutated inputs per reader from seed SEED; the
# default suite runs 200 per reader.
fuzz CASES="500000" SEED="2":
    CGLOOP_FUZZ_CASES={{CASES}} CGLOOP_FUZZ_SEED={{SEED}} cargo test --release --test fuzz_inputs -- --nocapture

# The alanine dipeptide backmapping study (FG, CG, flow, backmap, reweight, compare),
# with the issue-5 check on the reweighted populations; report in
# results/alanine_dipeptide/report.md after `cgloop run workflows/alanine_dipeptide.yaml`.
study:
    cargo test --release --test long_alanine_study -- --ignored --nocapture

# Benchmarks: engine overhead, MD speed (one JSON line per case), and MD speed side by
# side with OpenMM when `openmm` is importable by $PYTHON (default python3; never a
# dependency of cgloop): 16 alternating rounds of 2 s, each round's ratio against
# OpenMM's fastest platform in that round, then per case the median ratio with a
# distribution-free 95 % interval and the smallest ratio.
bench:
    cargo bench --bench engine
    cargo bench --bench md
    if "${PYTHON:-python3}" -c "import openmm" 2>/dev/null; then \
      "${PYTHON:-python3}" bench/md_rounds.py --rounds 16 --seconds 2; \
    else echo "openmm not importable: pip install openmm (in a venv; PYTHON=venv/bin/python) for the peer numbers"; fi

# Training speed (force matching, train_map's joint step) side by side with PyTorch on the
# CPU, when `torch` is importable by $PYTHON (default python3; PyTorch is never a
# dependency of cgloop): ten alternating rounds, the peer with one thread and with all
# cores; the last lines give cgloop's median speed-up over the peer's faster count. The
# peer's check that it computes cgloop's losses and gradients:
#   CGLOOP_BENCH_EXPORT=/tmp/nn CGLOOP_BENCH_SECONDS=0.1 cargo bench --bench nn
#   python3 bench/torch_peer.py --check /tmp/nn
bench-nn:
    cargo bench --bench nn
    if "${PYTHON:-python3}" -c "import torch" 2>/dev/null; then \
      "${PYTHON:-python3}" bench/torch_peer.py --rounds 10 --seconds 3 --threads 1 --threads "$(nproc)"; \
    else echo "torch not importable: pip install torch (in a venv; PYTHON=venv/bin/python) for the peer numbers"; fi

fmt:
    cargo fmt

lint:
    cargo fmt --check
    cargo clippy --release --all-targets -- -D warnings
