//! The Slurm executor: each node that is ready and not cached becomes a Slurm job that
//! runs `cgloop exec-node`, which computes that one node into the shared store; nodes
//! ready together with the same resources go as one job array. The driver (this
//! process) keeps the DAG and the cache logic, exactly as with local threads, so a run
//! gives the same keys and bytes on either executor.
//!
//! A node's state comes from the shared file system first: the record its job writes
//! when the node ends ([`record`]), or the store holding its key. The queue is read with
//! one `squeue --me` per `poll_interval` (never in a tight loop, never `sacct`); a job
//! that has left the queue, or ended, without a record is failed after `grace` (on NFS
//! a finished job's files can take a while to appear), with its log path in the error.
//! Ctrl-C or SIGTERM cancels this run's own jobs (`scancel` of their ids, nothing else).

pub mod record;
pub mod scheduler;
pub mod worker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use self::record::{BatchLine, JobRecord, logs_dir, read_records, shell_quote, write_batch};
use self::scheduler::{JobRequest, is_finished, sbatch, scancel, squeue};
use super::executor::{Executor, Submission};
use super::plan::KeyedNode;
use super::run::{ExecError, Outcome};
use super::store::Store;
use crate::workflow::{Resources, Workflow};

/// How to use the cluster.
#[derive(Clone, Debug)]
pub struct SlurmOptions {
    /// `--partition` for every job (the cluster's default when `None`).
    pub partition: Option<String>,
    /// Nodes in flight at most (queued or running).
    pub max_jobs: usize,
    /// Time between two `squeue` calls.
    pub poll_interval: Duration,
    /// How long a job may be gone from the queue without a record before its node fails.
    pub grace: Duration,
    /// More `sbatch` options for every job (e.g. `--account=chem`).
    pub sbatch_args: Vec<String>,
    /// Submit nodes that are ready together (same resources) as one job array.
    pub arrays: bool,
    /// What a job runs.
    pub worker: WorkerCommand,
}

/// The command line a job runs: `<program> --store S exec-node <workflow> <args>
/// --batch F --index I`. `args` repeat the driver's `--seed`/`--set`, so the job
/// validates the same workflow and finds the node by its key.
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub workflow: PathBuf,
    pub args: Vec<String>,
}

/// What a run asked of the scheduler.
#[derive(Clone, Debug, Default)]
pub struct SchedulerLoad {
    pub run_dir: PathBuf,
    /// Submissions (a job array counts once).
    pub submissions: usize,
    pub arrays: usize,
    pub nodes: usize,
    pub squeue_calls: usize,
    pub scancel_calls: usize,
    pub wall_s: f64,
}

impl SchedulerLoad {
    pub fn summary(&self) -> String {
        let minutes = (self.wall_s / 60.0).max(1e-9);
        let count =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        format!(
            "slurm: {} in {} ({}); {} in {:.0} s ({:.1} per minute); jobs' files in {}",
            count(self.nodes, "node", "nodes"),
            count(self.submissions, "submission", "submissions"),
            count(self.arrays, "job array", "job arrays"),
            count(self.squeue_calls, "squeue call", "squeue calls"),
            self.wall_s,
            self.squeue_calls as f64 / minutes,
            self.run_dir.display()
        )
    }
}

struct InFlight {
    index: usize,
    /// A forced node is not done because the store holds its key.
    force: bool,
    key: String,
    job: String,
    log: PathBuf,
    /// When the queue first stopped listing the job as pending or running.
    ended_at: Option<Instant>,
    last_state: String,
}

pub struct SlurmExecutor<'a> {
    workflow: &'a Workflow,
    keyed: &'a [KeyedNode],
    store: &'a Store,
    options: SlurmOptions,
    run_dir: PathBuf,
    run_id: String,
    in_flight: Vec<InFlight>,
    /// Outcomes known at submission (a failed sbatch), returned by the next `wait`.
    ready: Vec<(usize, Outcome)>,
    batches: usize,
    load: SchedulerLoad,
    last_squeue: Option<Instant>,
    started: Instant,
    interrupted: bool,
}

/// Tasks per job array at most: Slurm's default MaxArraySize is 1001 (indices 0-1000).
const MAX_ARRAY_TASKS: usize = 1000;

static INTERRUPT: AtomicBool = AtomicBool::new(false);

/// Ctrl-C and SIGTERM set a flag the driver polls (installed once per process).
fn catch_interrupts() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        if let Err(e) = ctrlc::set_handler(|| INTERRUPT.store(true, Ordering::SeqCst)) {
            warn!("cannot catch Ctrl-C ({e}); cancel this run's jobs by hand if it is killed");
        }
    });
}

impl<'a> SlurmExecutor<'a> {
    pub fn new(
        workflow: &'a Workflow,
        keyed: &'a [KeyedNode],
        store: &'a Store,
        options: &SlurmOptions,
    ) -> Result<Self, ExecError> {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let run_id = format!("{}-{unix}-{}", workflow.name, std::process::id());
        let run_dir = store.root().join(".runs").join(&run_id);
        std::fs::create_dir_all(logs_dir(&run_dir))
            .and_then(|()| std::fs::create_dir_all(record::records_dir(&run_dir)))
            .map_err(|e| ExecError::Slurm(format!("{}: {e}", run_dir.display())))?;
        let run_dir = run_dir
            .canonicalize()
            .map_err(|e| ExecError::Slurm(format!("{}: {e}", run_dir.display())))?;
        catch_interrupts();
        info!(
            "slurm run {run_id}: jobs' scripts, logs and records in {}",
            run_dir.display()
        );
        Ok(SlurmExecutor {
            workflow,
            keyed,
            store,
            options: options.clone(),
            load: SchedulerLoad {
                run_dir: run_dir.clone(),
                ..SchedulerLoad::default()
            },
            run_dir,
            run_id,
            in_flight: Vec::new(),
            ready: Vec::new(),
            batches: 0,
            last_squeue: None,
            started: Instant::now(),
            interrupted: false,
        })
    }

    /// Ends the run: what it asked of the scheduler.
    pub fn finish(mut self) -> SchedulerLoad {
        self.load.wall_s = self.started.elapsed().as_secs_f64();
        self.load
    }

    fn key(&self, index: usize) -> String {
        self.keyed[index].key.to_string()
    }

    /// Writes the batch file and job script of one submission and submits it.
    fn submit_group(&mut self, resources: Resources, group: &[Submission]) {
        let n = self.batches;
        self.batches += 1;
        let batch = self.run_dir.join(format!("batch-{n}.tsv"));
        let script = self.run_dir.join(format!("batch-{n}.sh"));
        let lines: Vec<BatchLine> = group
            .iter()
            .map(|s| BatchLine {
                key: self.key(s.index),
                node: self.workflow.nodes[s.index].id.clone(),
                force: s.force,
            })
            .collect();
        let first = &self.workflow.nodes[group[0].index].id;
        let name = if group.len() == 1 {
            format!("{}.{first}", self.workflow.name)
        } else {
            format!("{}.{first}+{}", self.workflow.name, group.len() - 1)
        };
        let log_pattern = if group.len() == 1 {
            logs_dir(&self.run_dir).join(format!("{name}.%j.log"))
        } else {
            logs_dir(&self.run_dir).join(format!("{name}.%A_%a.log"))
        };
        let written =
            write_batch(&batch, &lines).and_then(|()| std::fs::write(&script, self.script(&batch)));
        let submitted = written
            .map_err(|e| format!("{}: {e}", batch.display()))
            .and_then(|()| {
                sbatch(&JobRequest {
                    script: &script,
                    name: &name,
                    comment: &format!("cgloop run {}", self.run_id),
                    log: &log_pattern,
                    cpus: resources.cpus_or_default(),
                    memory_mb: resources.memory_mb_or_default(),
                    time_min: resources.time_min_or_default(),
                    tasks: group.len(),
                    partition: self.options.partition.as_deref(),
                    extra: &self.options.sbatch_args,
                })
            });
        self.load.submissions += 1;
        self.load.nodes += group.len();
        match submitted {
            Ok(id) => {
                if group.len() > 1 {
                    self.load.arrays += 1;
                }
                for (task, s) in group.iter().enumerate() {
                    let job = if group.len() == 1 {
                        id.clone()
                    } else {
                        format!("{id}_{task}")
                    };
                    let log = logs_dir(&self.run_dir).join(if group.len() == 1 {
                        format!("{name}.{id}.log")
                    } else {
                        format!("{name}.{id}_{task}.log")
                    });
                    info!("node `{}`: job {job}", self.workflow.nodes[s.index].id);
                    self.in_flight.push(InFlight {
                        index: s.index,
                        force: s.force,
                        key: self.key(s.index),
                        job,
                        log,
                        ended_at: None,
                        last_state: "SUBMITTED".into(),
                    });
                }
            }
            Err(e) => {
                for s in group {
                    self.ready
                        .push((s.index, Outcome::Failed(format!("not submitted: {e}"))));
                }
            }
        }
    }

    fn script(&self, batch: &Path) -> String {
        let w = &self.options.worker;
        let mut command = vec![
            shell_quote(&w.program.display().to_string()),
            "--store".into(),
            shell_quote(
                &self
                    .store
                    .root()
                    .canonicalize()
                    .unwrap_or_else(|_| self.store.root().to_path_buf())
                    .display()
                    .to_string(),
            ),
            "-v".into(),
            "exec-node".into(),
            shell_quote(&w.workflow.display().to_string()),
        ];
        command.extend(w.args.iter().map(|a| shell_quote(a)));
        command.extend([
            "--run-dir".into(),
            shell_quote(&self.run_dir.display().to_string()),
            "--batch".into(),
            shell_quote(&batch.display().to_string()),
            "--index".into(),
            "\"${SLURM_ARRAY_TASK_ID:-0}\"".into(),
        ]);
        format!(
            "#!/bin/sh\n# cgloop run {}: computes one node into the store; see the batch file.\n\
             export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\n\
             exec {}\n",
            self.run_id,
            command.join(" ")
        )
    }

    /// Nodes whose record appeared, or whose key another writer published.
    fn collect_finished(&mut self) -> Vec<(usize, Outcome)> {
        let records: BTreeMap<String, JobRecord> = read_records(&self.run_dir)
            .into_iter()
            .map(|r| (r.key.clone(), r))
            .collect();
        let mut done = Vec::new();
        let mut keep = Vec::new();
        for f in self.in_flight.drain(..) {
            match records.get(&f.key) {
                Some(r) => done.push((f.index, outcome_of(r, &f))),
                None => keep.push(f),
            }
        }
        self.in_flight = keep;
        done
    }

    fn poll_queue(&mut self) {
        self.load.squeue_calls += 1;
        self.last_squeue = Some(Instant::now());
        let states = match squeue() {
            Ok(s) => s,
            Err(e) => {
                warn!(
                    "squeue failed ({e}); trying again in {:?}",
                    self.options.poll_interval
                );
                return;
            }
        };
        for f in &mut self.in_flight {
            let state = states.get(&f.job).cloned();
            let ended = state.as_deref().is_none_or(is_finished);
            f.last_state = state.unwrap_or_else(|| "gone from the queue".into());
            if ended {
                f.ended_at.get_or_insert_with(Instant::now);
            } else {
                f.ended_at = None;
            }
        }
    }

    fn cancel_all(&mut self) -> Vec<(usize, Outcome)> {
        let ids: Vec<String> = self.in_flight.iter().map(|f| f.job.clone()).collect();
        self.load.scancel_calls += 1;
        let cancelled = scancel(&ids);
        if let Err(e) = &cancelled {
            warn!("scancel failed: {e}");
        }
        self.in_flight
            .drain(..)
            .map(|f| {
                (
                    f.index,
                    Outcome::Failed(format!(
                        "interrupted: its job {} was cancelled (log: {})",
                        f.job,
                        f.log.display()
                    )),
                )
            })
            .collect()
    }
}

fn outcome_of(record: &JobRecord, f: &InFlight) -> Outcome {
    match record.status.as_str() {
        "ran" => Outcome::Ran {
            wall_s: record.wall_s,
        },
        "cached" => Outcome::Cached,
        _ => Outcome::Failed(format!(
            "{} (job {} on {}; log: {})",
            record.message,
            f.job,
            record.host,
            f.log.display()
        )),
    }
}

impl Executor for SlurmExecutor<'_> {
    fn capacity(&self) -> usize {
        self.options.max_jobs.max(1)
    }

    fn submit(&mut self, batch: Vec<Submission>) {
        // Group by resources (in submission order), one job array per group of at most
        // MAX_ARRAY_TASKS.
        let mut groups: Vec<(Resources, Vec<Submission>)> = Vec::new();
        for s in batch {
            let r = self.workflow.nodes[s.index].resources;
            let arrays = self.options.arrays;
            match groups
                .iter_mut()
                .find(|(g, members)| *g == r && arrays && members.len() < MAX_ARRAY_TASKS)
            {
                Some((_, members)) => members.push(s),
                None => groups.push((r, vec![s])),
            }
        }
        for (resources, group) in groups {
            self.submit_group(resources, &group);
        }
    }

    fn wait(&mut self) -> Vec<(usize, Outcome)> {
        let tick = self.options.poll_interval.min(Duration::from_secs(1));
        loop {
            let mut done = std::mem::take(&mut self.ready);
            if INTERRUPT.load(Ordering::SeqCst) && !self.interrupted {
                self.interrupted = true;
                warn!("interrupted: cancelling this run's jobs");
                done.extend(self.cancel_all());
            }
            done.extend(self.collect_finished());
            if !done.is_empty() || self.in_flight.is_empty() {
                return done;
            }
            let due = self
                .last_squeue
                .is_none_or(|t| t.elapsed() >= self.options.poll_interval);
            if due {
                self.poll_queue();
                // A record written just before the job left the queue.
                let late = self.collect_finished();
                if !late.is_empty() {
                    return late;
                }
                let grace = self.options.grace;
                let expired = |f: &InFlight| f.ended_at.is_some_and(|t| t.elapsed() >= grace);
                let mut failed = Vec::new();
                let mut keep = Vec::new();
                for f in std::mem::take(&mut self.in_flight) {
                    if !expired(&f) {
                        keep.push(f);
                    } else if !f.force && self.store.contains(&self.keyed[f.index].key) {
                        // The node is in the store (another writer), whatever our job did.
                        failed.push((f.index, Outcome::Cached));
                    } else {
                        failed.push((
                            f.index,
                            Outcome::Failed(format!(
                                "job {} ended without a result ({}; no record after {:.0} s); \
                                 log: {}",
                                f.job,
                                f.last_state,
                                grace.as_secs_f64(),
                                f.log.display()
                            )),
                        ));
                    }
                }
                self.in_flight = keep;
                if !failed.is_empty() {
                    return failed;
                }
            }
            std::thread::sleep(tick);
        }
    }

    fn interrupted(&self) -> bool {
        self.interrupted
    }
}
