//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Workflows for learned, invertible coarse-graining of biomolecules.
///
/// A study is a YAML workflow: a DAG of stages (fine-grained MD, learning the CG map,
/// force matching, CG sampling, the backmapping flow, reweighting, observables). Each
/// node is keyed by a content hash of its stage, params, inputs and seed, and cached as
/// Parquet in the store, so a study replays bit for bit and a change recomputes only
/// what depends on it. Every artifact opens in pyarrow, polars or DuckDB.
///
/// Start with `cgloop stages` (what nodes exist), `cgloop plan WF` (what would run and
/// why), `cgloop run WF`, then `cgloop show NODE --workflow WF` and `cgloop inspect`.
#[derive(Debug, Parser)]
#[command(name = "cgloop", version, max_term_width = 100)]
#[command(after_help = "Exit codes: 0 success; 1 a node failed; 2 user error \
(bad workflow, arguments or files); 3 the store failed verification; 70 internal error.\n\
Logs: -v, -vv, or RUST_LOG (e.g. RUST_LOG=cgloop=debug).\n\
Threads: RAYON_NUM_THREADS (default: the CPUs this process may use), for MD replicas, \
CG chains, samples and each matrix product; results are the same bytes for any count.")]
pub struct Cli {
    /// The store folder [default: results/store].
    #[arg(long, global = true, env = "CGLOOP_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a workflow: compute every node the store does not hold yet.
    ///
    /// Validates the whole workflow first (every error, with file, YAML path and
    /// line). Independent nodes run in parallel up to --jobs. A node that fails stops
    /// its dependents; the others go on. Nothing half-written is ever published, so a
    /// killed run can simply be run again. Afterwards the figures and reports of the
    /// nodes (PNG, SVG, Markdown) are copied to results/<workflow name>/<node>/ beside
    /// the store, and a node's `report` to results/<workflow name>/report.md.
    Run {
        /// The workflow file (YAML).
        workflow: PathBuf,
        /// Stop after these nodes (and what they need); repeatable.
        #[arg(long, value_name = "NODE")]
        until: Vec<String>,
        /// Recompute these nodes even if the store holds them; repeatable.
        #[arg(long, value_name = "NODE")]
        force: Vec<String>,
        /// Nodes run at once; the networks' matrix products then take the CPUs divided
        /// by N threads (RAYON_NUM_THREADS, if set, is used as it is).
        #[arg(short, long, default_value_t = 1, value_name = "N")]
        jobs: usize,
        /// Show the plan and stop.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        overrides: OverrideArgs,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Compute one node into the store: what a Slurm job of `run --executor slurm` runs.
    ///
    /// The node is line INDEX of the batch file the driver wrote (its key, id and
    /// whether it is forced). The workflow is validated with the same --seed and --set
    /// as the driver's, so the node is found by its key; the job writes its record
    /// (ran, cached or failed) into RUN_DIR/records/ for the driver. Not meant to be
    /// typed by hand, but safe to: it computes nothing the store already holds.
    ExecNode {
        workflow: PathBuf,
        #[command(flatten)]
        overrides: OverrideArgs,
        /// The run's folder (<store>/.runs/<run>).
        #[arg(long, value_name = "RUN_DIR")]
        run_dir: PathBuf,
        /// The batch file: one `key node forced` line per node.
        #[arg(long, value_name = "FILE")]
        batch: PathBuf,
        /// The line of the batch file (an array job's SLURM_ARRAY_TASK_ID).
        #[arg(long, default_value_t = 0)]
        index: usize,
    },
    /// Show each node's key, and whether it is cached or would run (and why).
    Plan {
        workflow: PathBuf,
        #[arg(long, value_name = "NODE")]
        until: Vec<String>,
        #[arg(long, value_name = "NODE")]
        force: Vec<String>,
        #[command(flatten)]
        overrides: OverrideArgs,
    },
    /// Show a stored node: provenance, params, inputs, outputs and their schemas.
    Show {
        /// A key (or a unique prefix of one), or a node id (with --workflow, or the
        /// last one of that id run into this store).
        target: String,
        /// Resolve a node id through this workflow.
        #[arg(long, short, value_name = "WF")]
        workflow: Option<PathBuf>,
        /// With --workflow: the node of the run made with these --seed and --set.
        #[command(flatten)]
        overrides: OverrideArgs,
    },
    /// Print a Parquet file's schema, metadata and first rows.
    Inspect {
        file: PathBuf,
        /// Rows to print.
        #[arg(long, default_value_t = 5)]
        rows: usize,
    },
    /// Write a stored trajectory as multi-model PDB or DCD, for VMD, PyMOL, ChimeraX or
    /// MDTraj.
    ///
    /// TARGET is a node id (with --workflow, or the last one of that id run into this
    /// store) or a key. The atom names come from the nearest `atoms` table upstream (CG
    /// beads become pseudo-atoms B1, B2, ...). A .dcd file gets its topology beside it as
    /// a PDB of the first frame (x.dcd and x.pdb). Examples:
    ///   cgloop export fg -w workflows/alanine_dipeptide_quick.yaml --out fg.dcd --frames ::10
    ///   cgloop export reweight -w WF --out reweighted.pdb --resample 200
    Export {
        /// A node id or a key (or a unique prefix of one).
        target: String,
        /// Resolve a node id through this workflow.
        #[arg(long, short, value_name = "WF")]
        workflow: Option<PathBuf>,
        /// The node's trajectory output to write.
        #[arg(long, default_value = "trajectory", value_name = "NAME")]
        output: String,
        /// The file to write: .pdb (multi-model) or .dcd (plus a .pdb topology beside it).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Only frames at this rung of the temperature ladder (0: the lowest).
        #[arg(long, value_name = "K")]
        temperature_index: Option<i32>,
        /// Frames START:STOP:STEP (after --temperature-index), e.g. ::10 or 1000:2000.
        #[arg(long, value_name = "SLICE", value_parser = crate::exec::structures::FrameSlice::parse)]
        frames: Option<crate::exec::structures::FrameSlice>,
        /// Draw N frames by the node's `weights` (systematic resampling), so the frames
        /// follow the reweighted ensemble; for `reweight` nodes.
        #[arg(long, value_name = "N")]
        resample: Option<usize>,
        /// Seed of the resampling draw.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Rehash every artifact in the store against its manifest.
    Verify,
    /// Delete every stored node that none of the kept workflows reaches.
    Gc {
        /// Workflows whose nodes to keep; repeatable.
        #[arg(long, required = true, value_name = "WF")]
        keep: Vec<PathBuf>,
        /// List what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the stages: inputs, outputs, params and their defaults.
    Stages {
        /// Only this stage.
        name: Option<String>,
    },
    /// Single-point energy by term (kJ/mol) and forces (kJ/mol/nm) of one structure.
    ///
    /// The AMBER force field without cutoff, as `fg_sample` uses it. Prints a table of
    /// the terms, the total and the largest force; with --json one JSON object:
    /// total_kj_per_mol, terms_kj_per_mol (bonds, angles, torsions, coulomb,
    /// lennard_jones, coulomb_14, lennard_jones_14, gb) and forces_kj_per_mol_nm (one
    /// [fx, fy, fz] per atom, topology order), at full precision.
    Energy {
        /// AMBER prmtop.
        #[arg(long, value_name = "PRMTOP")]
        topology: PathBuf,
        /// inpcrd/rst7 or PDB (its first model), atoms in topology order.
        #[arg(long, value_name = "FILE")]
        coordinates: PathBuf,
        /// Implicit solvent.
        #[arg(long, value_enum, default_value_t = SolventArg::Vacuum)]
        solvent: SolventArg,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// Where `run` computes nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecutorArg {
    /// Threads of this process (--jobs at once).
    Local,
    /// One Slurm job per node (job arrays for nodes ready together), over a store on a
    /// file system every cluster node sees. This process stays as the driver: it
    /// submits what is ready and not cached, and follows the jobs until the workflow
    /// ends; Ctrl-C cancels its jobs.
    Slurm,
}

/// `run --executor slurm` settings. Per-node CPUs, memory and time come from the
/// workflow's `resources:` (defaults: 1 CPU, 2 GB per CPU, 120 minutes).
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Where nodes compute.
    #[arg(long, value_enum, default_value_t = ExecutorArg::Local)]
    pub executor: ExecutorArg,
    /// Slurm partition for every job [default: the cluster's].
    #[arg(long, value_name = "P")]
    pub partition: Option<String>,
    /// Nodes queued or running at once (Slurm).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_jobs: usize,
    /// Seconds between two `squeue` calls (Slurm).
    #[arg(long, default_value_t = 30.0, value_name = "S")]
    pub poll_interval: f64,
    /// Seconds a job may be gone from the queue without a result before its node fails
    /// (files written on another machine can take this long to appear on NFS).
    #[arg(long, default_value_t = 120.0, value_name = "S")]
    pub grace: f64,
    /// One more sbatch option for every job, e.g. --sbatch-arg=--account=chem;
    /// repeatable.
    #[arg(long, value_name = "OPTION", allow_hyphen_values = true)]
    pub sbatch_arg: Vec<String>,
    /// One job per node, even for nodes ready together (no job arrays).
    #[arg(long)]
    pub no_arrays: bool,
}

/// One-off changes to the workflow, for `run`, `plan` and `show`.
#[derive(Debug, Clone, clap::Args)]
pub struct OverrideArgs {
    /// Another realization of the whole study: replaces the workflow's `seed` (every
    /// node's seed derives from it, so every node gets a new key).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Set one param of one node, e.g. `--set cg.chains=64` or `--set fg.ladder=[300,
    /// 350]` (the value is read as YAML); repeatable. It enters the node's key like a
    /// param written in the file, and `plan` names it as the reason a node reruns.
    #[arg(long = "set", value_name = "NODE.PARAM=VALUE", value_parser = parse_set)]
    pub set: Vec<crate::workflow::ParamOverride>,
}

impl OverrideArgs {
    /// The same overrides as command-line arguments (for a Slurm job's command).
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(seed) = self.seed {
            args.extend(["--seed".to_string(), seed.to_string()]);
        }
        for o in &self.set {
            args.extend(["--set".to_string(), o.text.clone()]);
        }
        args
    }

    pub fn overrides(&self) -> crate::workflow::Overrides {
        crate::workflow::Overrides {
            seed: self.seed,
            params: self.set.clone(),
        }
    }
}

fn parse_set(text: &str) -> Result<crate::workflow::ParamOverride, String> {
    crate::workflow::ParamOverride::parse(text)
}

/// Implicit solvent model on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SolventArg {
    /// Gas phase.
    Vacuum,
    /// GBSA-OBC2 implicit solvent (needs the prmtop's RADII and SCREEN).
    Obc2,
}
