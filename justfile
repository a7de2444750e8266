# cgloop recipes (https://github.com/casey/just). Every recipe is a plain cargo command,
# so nothing here is needed to use cgloop.

# Run a workflow (default: the quick end-to-end check).
run workflow="workflows/smoke.yaml":
    cargo run --release -- run {{workflow}}

# The default test suite (what CI runs).
test:
    cargo test --release

# Long scientific checks (minutes to hours): converged populations, long MD.
test-slow:
    cargo test --release -- --ignored --nocapture

# The 300 K alanine dipeptide reference populations (replica exchange, vacuum and OBC2).
md-populations:
    cargo test --release --test long_alanine_md -- --ignored --nocapture

# Benchmarks: engine overhead, and MD speed side by side with OpenMM (when importable).
bench:
    cargo bench --bench engine
    cargo bench --bench md
    if python3 -c "import openmm" 2>/dev/null; then \
      python3 bench/openmm_peer.py datasets/alanine_dipeptide/ala2_ff14SB.prmtop datasets/alanine_dipeptide/ala2_ff14SB.inpcrd --solvent vacuum; \
      python3 bench/openmm_peer.py datasets/chignolin/cln025_ff14SB.prmtop datasets/chignolin/cln025_ff14SB.inpcrd --solvent obc2; \
    else echo "openmm not importable: pip install openmm (in a venv) for the peer numbers"; fi

fmt:
    cargo fmt

lint:
    cargo fmt --check
    cargo clippy --release --all-targets -- -D warnings
