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

# Benchmarks: engine overhead, MD speed against OpenMM (see benches/).
bench:
    cargo bench --bench engine

fmt:
    cargo fmt

lint:
    cargo fmt --check
    cargo clippy --release --all-targets -- -D warnings
