//! The subcommands. Printing happens here; the library returns data.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::CliError;
use super::args::{Cli, ClusterArgs, Command, ExecutorArg};
use crate::artifact::decode_table;
use crate::exec::slurm::worker::exec_node;
use crate::exec::structures::{ExportError, ExportRequest, export_structures};
use crate::exec::verify::{gc, verify};
use crate::exec::{
    ExecError, ExecutorChoice, NodeState, Outcome, RunOptions, SlurmOptions, Store, StoreError,
    WorkerCommand, compute_keys, plan_run, run,
};
use crate::stages::Registry;
use crate::workflow::{self, Key, Workflow};

pub fn dispatch(cli: Cli) -> Result<(), CliError> {
    let store_root = cli
        .store
        .clone()
        .unwrap_or_else(|| PathBuf::from("results/store"));
    let registry = Registry::builtin();
    match cli.command {
        Command::Run {
            workflow,
            until,
            force,
            jobs,
            dry_run,
            overrides,
            cluster,
        } => {
            let wf = load_with(&workflow, &registry, &overrides.overrides())?;
            let store = open(&store_root)?;
            let executor = match cluster.executor {
                ExecutorArg::Local => ExecutorChoice::Local,
                ExecutorArg::Slurm => slurm_choice(&workflow, &overrides, &cluster)?,
            };
            let options = RunOptions {
                jobs,
                until,
                force,
                progress: std::io::stderr().is_terminal(),
                executor,
            };
            if dry_run {
                return print_plan(&wf, &store, &options);
            }
            let report = run(&wf, &store, &options).map_err(exec_error)?;
            for node in &report.nodes {
                let short = &node.key.to_string()[..12];
                match &node.outcome {
                    Outcome::Ran { wall_s } => {
                        eprintln!("  ran      {:<20} {short}  {wall_s:.2} s", node.id)
                    }
                    Outcome::Cached => eprintln!("  cached   {:<20} {short}", node.id),
                    Outcome::Failed(msg) => eprintln!("  FAILED   {:<20} {short}  {msg}", node.id),
                    Outcome::Skipped { failed_upstream } => eprintln!(
                        "  skipped  {:<20} {short}  (upstream node `{failed_upstream}` failed)",
                        node.id
                    ),
                }
            }
            eprintln!("{}", report.summary());
            if let Some(load) = &report.scheduler {
                eprintln!("{}", load.summary());
            }
            let dir = crate::exec::export::export_dir(&store_root, &wf.name);
            let files =
                crate::exec::export::export_files(&store, &report, &dir).map_err(store_error)?;
            if !files.is_empty() {
                eprintln!("figures and reports: {}/", dir.display());
            }
            if report.succeeded() {
                Ok(())
            } else {
                Err(CliError::NodeFailed(format!(
                    "failed: {}",
                    report.ids(|o| matches!(o, Outcome::Failed(_))).join(", ")
                )))
            }
        }
        Command::ExecNode {
            workflow,
            overrides,
            run_dir,
            batch,
            index,
        } => {
            let store = open(&store_root)?;
            // A workflow that no longer validates still gets a record, so the driver
            // reports why instead of waiting out its grace period.
            let outcome = match load_with(&workflow, &registry, &overrides.overrides()) {
                Ok(wf) => exec_node(&wf, &store, &run_dir, &batch, index),
                Err(e) => write_failure(&run_dir, &batch, index, &e.to_string())
                    .map(|()| Outcome::Failed(e.to_string())),
            }
            .map_err(CliError::Internal)?;
            match outcome {
                Outcome::Ran { .. } | Outcome::Cached => Ok(()),
                Outcome::Failed(m) => Err(CliError::NodeFailed(m)),
                Outcome::Skipped { failed_upstream } => Err(CliError::NodeFailed(format!(
                    "upstream node `{failed_upstream}` failed"
                ))),
            }
        }
        Command::Plan {
            workflow,
            until,
            force,
            overrides,
        } => {
            let wf = load_with(&workflow, &registry, &overrides.overrides())?;
            let store = open(&store_root)?;
            let options = RunOptions {
                until,
                force,
                ..RunOptions::default()
            };
            print_plan(&wf, &store, &options)
        }
        Command::Show {
            target,
            workflow,
            overrides,
        } => {
            let store = open(&store_root)?;
            let key = resolve_target_with(
                &target,
                workflow.as_deref(),
                &store,
                &registry,
                &overrides.overrides(),
            )?;
            show(&store, &key)
        }
        Command::Inspect { file, rows } => inspect(&file, rows),
        Command::Export {
            target,
            workflow,
            output,
            out,
            temperature_index,
            frames,
            resample,
            seed,
        } => {
            let store = open(&store_root)?;
            let key = resolve_target(&target, workflow.as_deref(), &store, &registry)?;
            let request = ExportRequest {
                key,
                output,
                out,
                temperature_index,
                frames: frames.unwrap_or_default(),
                resample,
                seed,
            };
            let summary = export_structures(&store, &request).map_err(|e| match e {
                ExportError::Request(message) => CliError::User(message),
                ExportError::Store(e) => store_error(e),
            })?;
            let files: Vec<String> = summary
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            println!(
                "wrote {} frames of {} atoms to {} (atoms from {})",
                summary.frames,
                summary.atoms,
                files.join(" and "),
                summary.atoms_from
            );
            Ok(())
        }
        Command::Verify => {
            let store = open(&store_root)?;
            let (count, problems) = verify(&store).map_err(store_error)?;
            for p in &problems {
                println!("{}: {}", p.key, p.message);
            }
            if problems.is_empty() {
                println!(
                    "{count} nodes verified in {}: clean",
                    store.root().display()
                );
                Ok(())
            } else {
                Err(CliError::Integrity(format!(
                    "{} problem(s) in {count} nodes",
                    problems.len()
                )))
            }
        }
        Command::Gc { keep, dry_run } => {
            let store = open(&store_root)?;
            let mut kept = BTreeSet::new();
            for wf in &keep {
                let wf = load(wf, &registry)?;
                kept.extend(
                    compute_keys(&wf)
                        .map_err(store_error)?
                        .iter()
                        .map(|k| k.key),
                );
            }
            let report = gc(&store, &kept, dry_run).map_err(store_error)?;
            let verb = if dry_run { "would delete" } else { "deleted" };
            for (key, bytes) in &report.removed {
                println!("{verb} {key} ({bytes} bytes)");
            }
            for tmp in &report.temporary {
                println!("{verb} leftover {}", tmp.display());
            }
            println!(
                "{verb} {} nodes ({} bytes); kept {}",
                report.removed.len(),
                report.removed.iter().map(|(_, b)| b).sum::<u64>(),
                report.kept
            );
            Ok(())
        }
        Command::Stages { name } => stages(&registry, name.as_deref()),
        Command::Energy {
            topology,
            coordinates,
            solvent,
            json,
        } => super::energy::energy(&topology, &coordinates, solvent, json),
    }
}

fn load(path: &Path, registry: &Registry) -> Result<Workflow, CliError> {
    load_with(path, registry, &workflow::Overrides::default())
}

fn load_with(
    path: &Path,
    registry: &Registry,
    overrides: &workflow::Overrides,
) -> Result<Workflow, CliError> {
    workflow::load_with(path, registry, overrides).map_err(|e| CliError::User(e.to_string()))
}

fn open(root: &Path) -> Result<Store, CliError> {
    Store::open(root).map_err(store_error)
}

fn store_error(e: StoreError) -> CliError {
    match e {
        StoreError::Corrupt { .. } | StoreError::BadManifest { .. } => {
            CliError::Integrity(e.to_string())
        }
        _ => CliError::Internal(e.to_string()),
    }
}

fn exec_error(e: ExecError) -> CliError {
    match e {
        ExecError::UnknownNode { .. } => CliError::User(e.to_string()),
        ExecError::Store(s) => store_error(s),
        ExecError::Slurm(m) => CliError::User(m),
    }
}

/// `--executor slurm`: the job command repeats this driver's workflow (as an absolute
/// path) and overrides, and runs this very binary.
fn slurm_choice(
    workflow: &Path,
    overrides: &super::args::OverrideArgs,
    cluster: &ClusterArgs,
) -> Result<ExecutorChoice, CliError> {
    let seconds = |s: f64, what: &str| {
        if s.is_finite() && s >= 0.0 {
            Ok(std::time::Duration::from_secs_f64(s))
        } else {
            Err(CliError::User(format!(
                "--{what}: expected seconds >= 0, got {s}"
            )))
        }
    };
    let program = std::env::current_exe()
        .map_err(|e| CliError::Internal(format!("cannot find the cgloop binary: {e}")))?;
    let workflow = workflow
        .canonicalize()
        .map_err(|e| CliError::User(format!("{}: {e}", workflow.display())))?;
    Ok(ExecutorChoice::Slurm(SlurmOptions {
        partition: cluster.partition.clone(),
        max_jobs: cluster.max_jobs.max(1),
        poll_interval: seconds(cluster.poll_interval, "poll-interval")?,
        grace: seconds(cluster.grace, "grace")?,
        sbatch_args: cluster.sbatch_arg.clone(),
        arrays: !cluster.no_arrays,
        worker: WorkerCommand {
            program,
            workflow,
            args: overrides.to_args(),
        },
    }))
}

/// The record of a job whose workflow did not validate.
fn write_failure(run_dir: &Path, batch: &Path, index: usize, message: &str) -> Result<(), String> {
    use crate::exec::slurm::record::{JobRecord, read_batch_line, write_record};
    let line = read_batch_line(batch, index)?;
    let record = JobRecord {
        key: line.key,
        node: line.node,
        status: "failed".into(),
        message: message.to_string(),
        wall_s: 0.0,
        job: std::env::var("SLURM_JOB_ID").unwrap_or_default(),
        host: crate::exec::store::host_name(),
    };
    write_record(run_dir, &record).map_err(|e| format!("{}: {e}", run_dir.display()))
}

fn print_plan(wf: &Workflow, store: &Store, options: &RunOptions) -> Result<(), CliError> {
    let (_, planned) = plan_run(wf, store, options).map_err(exec_error)?;
    let mut to_run = 0;
    for p in &planned {
        let short = &p.key.to_string()[..12];
        let stage = wf.nodes[p.index].stage.name();
        match &p.state {
            NodeState::Cached => println!("cached  {:<20} {:<16} {short}", p.id, stage),
            NodeState::ToRun(reasons) => {
                to_run += 1;
                println!("run     {:<20} {:<16} {short}", p.id, stage);
                for r in reasons {
                    println!("          - {r}");
                }
            }
        }
    }
    println!(
        "{} nodes: {to_run} to run, {} cached",
        planned.len(),
        planned.len() - to_run
    );
    Ok(())
}

fn resolve_target(
    target: &str,
    workflow_file: Option<&Path>,
    store: &Store,
    registry: &Registry,
) -> Result<Key, CliError> {
    resolve_target_with(
        target,
        workflow_file,
        store,
        registry,
        &workflow::Overrides::default(),
    )
}

/// The key of `target`: a node id of `workflow_file` (with `overrides` applied), a key or
/// a unique prefix of one, or the last key recorded for a node id in the store.
fn resolve_target_with(
    target: &str,
    workflow_file: Option<&Path>,
    store: &Store,
    registry: &Registry,
    overrides: &workflow::Overrides,
) -> Result<Key, CliError> {
    if let Some(file) = workflow_file {
        let wf = load_with(file, registry, overrides)?;
        let i = wf.index_of(target).ok_or_else(|| {
            CliError::User(format!(
                "no node `{target}` in {}; nodes: {}",
                file.display(),
                wf.nodes
                    .iter()
                    .map(|n| n.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let key = compute_keys(&wf).map_err(store_error)?[i].key;
        if !store.contains(&key) {
            return Err(CliError::User(format!(
                "node `{target}` ({key}) is not in the store; run the workflow first"
            )));
        }
        return Ok(key);
    }
    if target.len() >= 4 && target.chars().all(|c| c.is_ascii_hexdigit()) {
        let found = store.find(&target.to_lowercase()).map_err(store_error)?;
        match found.len() {
            1 => return Ok(found[0]),
            0 => {}
            n => {
                return Err(CliError::User(format!(
                    "`{target}` matches {n} keys; give more digits"
                )));
            }
        }
    }
    // A node id: the last key recorded for it in any workflow's index.
    let mut hits = Vec::new();
    let index_dir = store.root().join(".index");
    for entry in std::fs::read_dir(&index_dir)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(wf) = name.strip_suffix(".json")
            && let Some(k) = store.read_index(wf).get(target).and_then(|k| Key::parse(k))
        {
            hits.push((wf.to_string(), k));
        }
    }
    match hits.len() {
        1 => Ok(hits[0].1),
        0 => Err(CliError::User(format!(
            "`{target}` is neither a key in {} nor a node id run into it",
            store.root().display()
        ))),
        _ => Err(CliError::User(format!(
            "node id `{target}` is in several workflows ({}); use --workflow",
            hits.iter()
                .map(|h| h.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn show(store: &Store, key: &Key) -> Result<(), CliError> {
    let m = store.read_manifest(key).map_err(store_error)?;
    let dir = store.node_dir(key);
    println!("key       {}", m.key);
    println!("node      {} (workflow {})", m.node, m.workflow);
    println!(
        "stage     {} v{}",
        m.ingredients.stage, m.ingredients.version
    );
    println!("seed      {}", m.ingredients.seed);
    println!(
        "computed  {:.2} s by cgloop {} (unix time {})",
        m.wall_s, m.cgloop_version, m.started_unix_s
    );
    println!("folder    {}", dir.display());
    println!(
        "params    {}",
        serde_json::to_string_pretty(&m.ingredients.params)
            .unwrap_or_default()
            .replace('\n', "\n          ")
    );
    for (param, f) in &m.files {
        println!(
            "file      {param} = {} (blake3 {})",
            f.path,
            &f.blake3[..16]
        );
    }
    for (name, input) in &m.ingredients.inputs {
        println!(
            "input     {name} <- {} output `{}`",
            input.key, input.output
        );
    }
    for (name, out) in &m.outputs {
        println!(
            "output    {name}: {} [{}], {} bytes",
            dir.join(&out.file).display(),
            out.kind,
            out.bytes
        );
        if out.file.ends_with(".parquet") {
            let bytes = store
                .read_output_bytes(key, &m, name)
                .map_err(store_error)?;
            let (batch, _) =
                decode_table(Bytes::from(bytes)).map_err(|e| CliError::Integrity(e.to_string()))?;
            println!("          {} rows", batch.num_rows());
            for field in batch.schema().fields() {
                println!("          {}: {}", field.name(), field.data_type());
            }
        }
    }
    Ok(())
}

fn inspect(file: &Path, rows: usize) -> Result<(), CliError> {
    let bytes =
        std::fs::read(file).map_err(|e| CliError::User(format!("{}: {e}", file.display())))?;
    let (batch, metadata) = decode_table(Bytes::from(bytes))
        .map_err(|e| CliError::User(format!("{}: not a Parquet table: {e}", file.display())))?;
    println!("{}: {} rows", file.display(), batch.num_rows());
    println!("schema:");
    for field in batch.schema().fields() {
        println!(
            "  {}: {}{}",
            field.name(),
            field.data_type(),
            if field.is_nullable() {
                " (nullable)"
            } else {
                ""
            }
        );
    }
    println!("metadata:");
    for (k, v) in &metadata {
        if k == "ARROW:schema" {
            continue;
        }
        println!("  {k}: {v}");
    }
    let shown = batch.slice(0, rows.min(batch.num_rows()));
    let table = arrow_cast::pretty::pretty_format_batches(&[shown])
        .map_err(|e| CliError::Internal(e.to_string()))?;
    println!("first {} rows:\n{table}", rows.min(batch.num_rows()));
    Ok(())
}

fn stages(registry: &Registry, only: Option<&str>) -> Result<(), CliError> {
    if let Some(name) = only
        && registry.get(name).is_none()
    {
        return Err(CliError::User(format!(
            "unknown stage `{name}`; stages: {}",
            registry.names().join(", ")
        )));
    }
    if registry.names().is_empty() {
        println!("(no stages registered)");
    }
    for stage in registry.iter() {
        if only.is_some_and(|n| n != stage.name()) {
            continue;
        }
        println!("{} (version {})", stage.name(), stage.version());
        println!("  {}", stage.about());
        if !stage.inputs().is_empty() {
            println!("  inputs:");
            for p in stage.inputs() {
                let name = match (stage.is_optional_input(p.name), stage.is_list_input(p.name)) {
                    (true, true) => format!("{} (optional list)", p.name),
                    (true, false) => format!("{} (optional)", p.name),
                    (false, true) => format!("{} (list)", p.name),
                    (false, false) => p.name.to_string(),
                };
                println!("    {name:<22} {:<18} {}", p.kind.name, p.about);
            }
        }
        println!("  outputs:");
        for p in stage.outputs() {
            println!("    {:<22} {:<18} {}", p.name, p.kind.name, p.about);
        }
        println!("  params (default):");
        let defaults = stage.default_params();
        for doc in stage.param_docs() {
            let default = defaults
                .get(doc.name)
                .map(|v| v.to_string())
                // Left out of the defaults: an optional param, unset unless given.
                .unwrap_or_else(|| "unset".into());
            println!("    {:<22} {:<14} {}", doc.name, default, doc.about);
        }
        println!();
    }
    Ok(())
}
