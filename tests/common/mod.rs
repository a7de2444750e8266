//! Stages defined for the engine tests, and helpers to run workflows into temporary
//! stores.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use cgloop::artifact::{Artifact, ArtifactKind};
use cgloop::stages::{
    Context, DataFile, Inputs, Outputs, ParamDoc, ParamProblem, Port, Registry, Stage, StageError,
};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};

pub fn numbers_schema() -> Schema {
    Schema::new(vec![
        Field::new("i", DataType::Int64, false),
        Field::new("x", DataType::Float64, false),
    ])
}

pub const NUMBERS: ArtifactKind = ArtifactKind::table("numbers", numbers_schema, "i, x");
pub const LABELS: ArtifactKind = ArtifactKind::table("labels", numbers_schema, "another kind");

fn numbers(xs: Vec<f64>) -> Artifact {
    let i: Vec<i64> = (0..xs.len() as i64).collect();
    Artifact::Table(
        RecordBatch::try_new(
            Arc::new(numbers_schema()),
            vec![
                Arc::new(Int64Array::from(i)),
                Arc::new(Float64Array::from(xs)),
            ],
        )
        .unwrap(),
    )
}

fn column(batch: &RecordBatch) -> Vec<f64> {
    batch
        .column_by_name("x")
        .unwrap()
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .values()
        .to_vec()
}

/// Appends the node's stage name to the file named by CGLOOP_TEST_RUN_LOG, so tests can
/// count how often a stage really ran (across processes; each line one O_APPEND write).
fn log_run(what: &str) {
    if let Ok(path) = std::env::var("CGLOOP_TEST_RUN_LOG") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        // One write of the whole line: `writeln!` may split it into several, which
        // two processes appending at once interleave.
        f.write_all(format!("{what}\n").as_bytes()).unwrap();
    }
}

/// Sleeps, first touching CGLOOP_TEST_STARTED (so a test knows the node is mid-run);
/// not at all when CGLOOP_TEST_NO_SLEEP is set (a rerun after a kill).
fn maybe_sleep(ms: u64) {
    if ms > 0 && std::env::var_os("CGLOOP_TEST_NO_SLEEP").is_none() {
        if let Ok(path) = std::env::var("CGLOOP_TEST_STARTED") {
            std::fs::write(path, b"started").unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceParams {
    pub n: u64,
    pub scale: f64,
    pub label: String,
    pub weights: Vec<f64>,
    pub sleep_ms: u64,
}

impl Default for SourceParams {
    fn default() -> Self {
        SourceParams {
            n: 4,
            scale: 1.0,
            label: "a".into(),
            weights: vec![1.0, 2.0],
            sleep_ms: 0,
        }
    }
}

/// Random numbers from the node's generator.
pub struct Source;

impl Stage for Source {
    type Params = SourceParams;
    const NAME: &'static str = "source";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "n uniform numbers times scale";
    const INPUTS: &'static [Port] = &[];
    const OUTPUTS: &'static [Port] = &[Port {
        name: "numbers",
        kind: NUMBERS,
        about: "the numbers",
    }];
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "n",
            about: "how many",
        },
        ParamDoc {
            name: "scale",
            about: "multiplier",
        },
    ];

    fn check(p: &SourceParams) -> Result<(), ParamProblem> {
        if p.n == 0 {
            return Err(ParamProblem::new("n", "must be at least 1"));
        }
        Ok(())
    }

    fn run(p: &SourceParams, _: &Inputs, ctx: &mut Context<'_>) -> Result<Outputs, StageError> {
        log_run("source");
        maybe_sleep(p.sleep_ms);
        let xs = (0..p.n)
            .map(|_| (ctx.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * p.scale)
            .collect();
        Ok(Outputs::from([("numbers".to_string(), numbers(xs))]))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScaleParams {
    pub factor: f64,
    pub sleep_ms: u64,
}

impl Default for ScaleParams {
    fn default() -> Self {
        ScaleParams {
            factor: 2.0,
            sleep_ms: 0,
        }
    }
}

/// Multiplies numbers.
pub struct Scale;

impl Stage for Scale {
    type Params = ScaleParams;
    const NAME: &'static str = "scale";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "x times factor";
    const INPUTS: &'static [Port] = &[Port {
        name: "numbers",
        kind: NUMBERS,
        about: "",
    }];
    const OUTPUTS: &'static [Port] = &[Port {
        name: "numbers",
        kind: NUMBERS,
        about: "",
    }];
    const PARAMS: &'static [ParamDoc] = &[];

    fn run(p: &ScaleParams, inputs: &Inputs, _: &mut Context<'_>) -> Result<Outputs, StageError> {
        log_run("scale");
        maybe_sleep(p.sleep_ms);
        let xs = column(inputs.table("numbers")?)
            .into_iter()
            .map(|x| x * p.factor)
            .collect();
        Ok(Outputs::from([("numbers".to_string(), numbers(xs))]))
    }
}

/// Adds two inputs elementwise.
pub struct Sum;

impl Stage for Sum {
    type Params = Empty;
    const NAME: &'static str = "sum";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "a + b";
    const INPUTS: &'static [Port] = &[
        Port {
            name: "a",
            kind: NUMBERS,
            about: "",
        },
        Port {
            name: "b",
            kind: NUMBERS,
            about: "",
        },
    ];
    const OUTPUTS: &'static [Port] = &[Port {
        name: "numbers",
        kind: NUMBERS,
        about: "",
    }];
    const PARAMS: &'static [ParamDoc] = &[];

    fn run(_: &Empty, inputs: &Inputs, _: &mut Context<'_>) -> Result<Outputs, StageError> {
        log_run("sum");
        let a = column(inputs.table("a")?);
        let b = column(inputs.table("b")?);
        let xs = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        Ok(Outputs::from([("numbers".to_string(), numbers(xs))]))
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Empty {}

/// Always fails.
pub struct Fail;

impl Stage for Fail {
    type Params = Empty;
    const NAME: &'static str = "fail";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "fails";
    const INPUTS: &'static [Port] = &[Port {
        name: "numbers",
        kind: NUMBERS,
        about: "",
    }];
    const OUTPUTS: &'static [Port] = &[Port {
        name: "numbers",
        kind: NUMBERS,
        about: "",
    }];
    const PARAMS: &'static [ParamDoc] = &[];

    fn run(_: &Empty, _: &Inputs, _: &mut Context<'_>) -> Result<Outputs, StageError> {
        Err(StageError::Failed("simulated blow-up at step 7".into()))
    }
}

/// Emits a different kind, for type-mismatch tests.
pub struct Labels;

impl Stage for Labels {
    type Params = Empty;
    const NAME: &'static str = "labels";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "labels";
    const INPUTS: &'static [Port] = &[];
    const OUTPUTS: &'static [Port] = &[Port {
        name: "labels",
        kind: LABELS,
        about: "",
    }];
    const PARAMS: &'static [ParamDoc] = &[];

    fn run(_: &Empty, _: &Inputs, _: &mut Context<'_>) -> Result<Outputs, StageError> {
        Ok(Outputs::from([("labels".to_string(), numbers(vec![1.0]))]))
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileParams {
    pub file: DataFile,
}

/// Reads a data file named in params: one row per byte.
pub struct ReadFile;

impl Stage for ReadFile {
    type Params = FileParams;
    const NAME: &'static str = "read_file";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "bytes of a file";
    const INPUTS: &'static [Port] = &[];
    const OUTPUTS: &'static [Port] = &[Port {
        name: "numbers",
        kind: NUMBERS,
        about: "",
    }];
    const PARAMS: &'static [ParamDoc] = &[];

    fn data_files(p: &FileParams) -> Vec<(&'static str, &DataFile)> {
        vec![("file", &p.file)]
    }

    fn run(p: &FileParams, inputs: &Inputs, _: &mut Context<'_>) -> Result<Outputs, StageError> {
        let bytes = inputs.file(&p.file)?;
        Ok(Outputs::from([(
            "numbers".to_string(),
            numbers(bytes.iter().map(|&b| b as f64).collect()),
        )]))
    }
}

pub fn registry() -> Registry {
    Registry::new()
        .register::<Source>()
        .register::<Scale>()
        .register::<Sum>()
        .register::<Fail>()
        .register::<Labels>()
        .register::<ReadFile>()
}

/// A fresh temporary folder under target/, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("cgloop-test-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file into the folder and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every file under a folder (relative path, bytes), skipping manifests and dot-folders.
pub fn artifact_bytes(store: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(store).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(entry.path()).unwrap() {
            let file = file.unwrap();
            let fname = file.file_name().to_string_lossy().to_string();
            if fname != "manifest.json" {
                out.push((
                    format!("{name}/{fname}"),
                    std::fs::read(file.path()).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// A bundled workflow run into `results/store` (or `CGLOOP_STORE`) from the crate root,
/// two nodes at a time, as the long checks do; panics unless every node succeeded.
pub struct BundledRun {
    pub store: cgloop::exec::Store,
    pub report: cgloop::exec::RunReport,
}

impl BundledRun {
    pub fn new(workflow_file: &str) -> BundledRun {
        BundledRun::with_seed(workflow_file, None)
    }

    /// As [`BundledRun::new`], with the workflow's seed replaced (another realization,
    /// as `--seed`).
    pub fn with_seed(workflow_file: &str, seed: Option<u64>) -> BundledRun {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::env::set_current_dir(root).unwrap();
        let overrides = cgloop::workflow::Overrides {
            seed,
            ..Default::default()
        };
        let wf =
            cgloop::workflow::load_with(Path::new(workflow_file), &Registry::builtin(), &overrides)
                .unwrap_or_else(|e| panic!("{e}"));
        let dir = std::env::var("CGLOOP_STORE").unwrap_or_else(|_| "results/store".into());
        let store = cgloop::exec::Store::open(&dir).unwrap();
        let options = cgloop::exec::RunOptions {
            jobs: 2,
            ..cgloop::exec::RunOptions::default()
        };
        let report = cgloop::exec::run(&wf, &store, &options).unwrap();
        assert!(report.succeeded(), "{}", report.summary());
        BundledRun { store, report }
    }

    /// Output `output` of node `id`, a table.
    pub fn table(&self, id: &str, output: &str) -> RecordBatch {
        let node = self.report.nodes.iter().find(|n| n.id == id).unwrap();
        self.store
            .load_output(&node.key, output)
            .unwrap()
            .as_table()
            .unwrap_or_else(|| panic!("{id}.{output} is not a table"))
            .clone()
    }
}

/// The committor tests `nodes` (low, mid and high q ranges) of a run: prints each
/// summary and checks that the mid range's mean p_B is within 0.5 +- 0.1 and that p_B
/// rises from low to high.
pub fn committor_tests(study: &BundledRun, nodes: [&str; 3]) {
    let mut means = Vec::new();
    for node in nodes {
        let t = study.table(node, "summary");
        let value = |c: &str| f64_column(&t, c)[0];
        println!(
            "{node}: mean q {:.3}, mean p_B {:.3} +- {:.3}, sd over configurations {:.3} \
             (binomial {:.3})",
            value("mean_q"),
            value("mean_p_b"),
            value("mean_p_b_se"),
            value("sd_p_b"),
            value("binomial_sd")
        );
        means.push(value("mean_p_b"));
    }
    assert!(
        (means[1] - 0.5).abs() <= 0.1,
        "{}: mean p_B {}",
        nodes[1],
        means[1]
    );
    assert!(
        means[0] < means[1] && means[1] < means[2],
        "{nodes:?}: {means:?}"
    );
}

/// The Hill rate of `committor_rate` node `node` (per ns) and its error, printed with
/// its exits and, where they decide, the count along them.
pub fn hill_rate(study: &BundledRun, node: &str) -> (f64, f64) {
    let t = study.table(node, "summary");
    let value = |c: &str| f64_column(&t, c)[0];
    let (k, se) = (value("rate_ab_per_ns"), value("rate_ab_se_per_ns"));
    println!(
        "{node}: {} exits in {:.1} ns committed to A, mean q at exits {:.2e}: Hill k_AB \
         {k:.4} +- {se:.4} per ns; count along the same exits {:.4} +- {:.4} ({} to B)",
        i64_column(&t, "exits")[0],
        value("time_a_ps") / 1000.0,
        value("mean_q_exit"),
        value("outcome_rate_ab_per_ns"),
        value("outcome_rate_ab_se_per_ns"),
        i64_column(&t, "exits_to_b")[0],
    );
    (k, se)
}

/// A float64 column of a table.
pub fn f64_column(t: &RecordBatch, name: &str) -> Vec<f64> {
    t.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap_or_else(|| panic!("column {name} is not float64"))
        .values()
        .to_vec()
}

/// An int64 column of a table.
pub fn i64_column(t: &RecordBatch, name: &str) -> Vec<i64> {
    t.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .unwrap_or_else(|| panic!("column {name} is not int64"))
        .values()
        .to_vec()
}

/// A utf8 column of a table.
pub fn string_column(t: &RecordBatch, name: &str) -> Vec<String> {
    t.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<arrow_array::StringArray>()
        .unwrap_or_else(|| panic!("column {name} is not utf8"))
        .iter()
        .map(|s| s.unwrap_or_default().to_string())
        .collect()
}

/// A stage's inputs made of tables alone, by input name (no files).
pub fn table_inputs(tables: Vec<(&str, RecordBatch)>) -> Inputs {
    Inputs {
        artifacts: tables
            .into_iter()
            .map(|(name, table)| (name.to_string(), Arc::new(Artifact::Table(table))))
            .collect(),
        files: std::collections::BTreeMap::new(),
    }
}
