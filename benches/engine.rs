//! Engine overhead on a synthetic 10,000-node workflow (each node a trivial stage):
//! validation, planning against a full store, and a no-op rerun. Goal: planning and a
//! no-op rerun under 2 s. Prints one JSON line per measurement.
//!
//!     cargo bench --bench engine

use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use cgloop::artifact::{Artifact, ArtifactKind};
use cgloop::exec::{RunOptions, Store, plan_run, run};
use cgloop::stages::{Context, Inputs, Outputs, ParamDoc, Port, Registry, Stage, StageError};
use serde::{Deserialize, Serialize};

fn schema() -> Schema {
    Schema::new(vec![Field::new("value", DataType::Int64, false)])
}
const VALUE: ArtifactKind = ArtifactKind::table("value", schema, "one integer");

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Params {
    add: i64,
}

struct Add;
impl Stage for Add {
    type Params = Params;
    const NAME: &'static str = "add";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "input + add";
    const INPUTS: &'static [Port] = &[];
    const OUTPUTS: &'static [Port] = &[Port {
        name: "value",
        kind: VALUE,
        about: "",
    }];
    const PARAMS: &'static [ParamDoc] = &[];
    fn run(p: &Params, _: &Inputs, _: &mut Context<'_>) -> Result<Outputs, StageError> {
        let batch = RecordBatch::try_new(
            Arc::new(schema()),
            vec![Arc::new(Int64Array::from(vec![p.add]))],
        )
        .unwrap();
        Ok(Outputs::from([("value".into(), Artifact::Table(batch))]))
    }
}

struct Chain;
impl Stage for Chain {
    type Params = Params;
    const NAME: &'static str = "chain";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "input + add";
    const INPUTS: &'static [Port] = &[Port {
        name: "value",
        kind: VALUE,
        about: "",
    }];
    const OUTPUTS: &'static [Port] = Add::OUTPUTS;
    const PARAMS: &'static [ParamDoc] = &[];
    fn run(p: &Params, inputs: &Inputs, ctx: &mut Context<'_>) -> Result<Outputs, StageError> {
        let _ = inputs.table("value")?;
        Add::run(p, inputs, ctx)
    }
}

fn line(case: &str, nodes: usize, seconds: f64) {
    println!("{{\"case\": \"{case}\", \"nodes\": {nodes}, \"seconds\": {seconds:.3}}}");
}

fn main() {
    let n = 10_000;
    let dir = std::env::temp_dir().join(format!("cgloop-bench-engine-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut text =
        String::from("name: synthetic\nseed: 1\nnodes:\n  n0: {stage: add, params: {add: 1}}\n");
    for i in 1..n {
        // A binary tree: node i reads node (i-1)/2.
        writeln!(
            text,
            "  n{i}: {{stage: chain, inputs: {{value: n{}.value}}, params: {{add: {i}}}}}",
            (i - 1) / 2
        )
        .unwrap();
    }
    let file = dir.join("synthetic.yaml");
    std::fs::write(&file, text).unwrap();
    let registry = Registry::new().register::<Add>().register::<Chain>();
    let store = Store::open(dir.join("store")).unwrap();

    let t = Instant::now();
    let wf = cgloop::workflow::load(&file, &registry).unwrap();
    line("validate", n, t.elapsed().as_secs_f64());

    let t = Instant::now();
    let first = run(
        &wf,
        &store,
        &RunOptions {
            jobs: 2,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(first.ran().len(), n);
    line(
        "first run (10k trivial nodes)",
        n,
        t.elapsed().as_secs_f64(),
    );

    let t = Instant::now();
    let wf = cgloop::workflow::load(&file, &registry).unwrap();
    let (_, planned) = plan_run(&wf, &store, &RunOptions::default()).unwrap();
    assert_eq!(planned.len(), n);
    line("validate + plan (all cached)", n, t.elapsed().as_secs_f64());

    let t = Instant::now();
    let wf = cgloop::workflow::load(&file, &registry).unwrap();
    let again = run(&wf, &store, &RunOptions::default()).unwrap();
    assert!(again.ran().is_empty());
    line("validate + no-op rerun", n, t.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&dir);
}
