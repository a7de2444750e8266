//! The Slurm command-line tools, as the executor calls them: `sbatch` to submit,
//! `squeue` to see the run's own jobs, `scancel` to cancel them. No Slurm library and
//! no accounting database (`sacct` fails where accounting is off, as on many clusters
//! and on the test cluster).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tracing::{debug, warn};

/// One submission: a job, or an array job of `tasks` tasks.
#[derive(Clone, Debug)]
pub struct JobRequest<'a> {
    pub script: &'a Path,
    pub name: &'a str,
    pub comment: &'a str,
    /// The log file pattern (`%j`, `%A`, `%a` expanded by Slurm).
    pub log: &'a Path,
    pub cpus: u32,
    pub memory_mb: u64,
    pub time_min: u64,
    /// An array job of this many tasks (indices 0..tasks) when above 1.
    pub tasks: usize,
    pub partition: Option<&'a str>,
    pub extra: &'a [String],
}

/// The job id sbatch gave (for an array job, the array's id).
pub fn sbatch(request: &JobRequest) -> Result<String, String> {
    let mut args: Vec<String> = vec![
        "--parsable".into(),
        format!("--job-name={}", request.name),
        format!("--comment={}", request.comment),
        format!("--output={}", request.log.display()),
        format!("--cpus-per-task={}", request.cpus),
        format!("--mem={}M", request.memory_mb),
        format!("--time={}", request.time_min),
        "--no-requeue".into(),
        "--ntasks=1".into(),
    ];
    if request.tasks > 1 {
        args.push(format!("--array=0-{}", request.tasks - 1));
    }
    if let Some(p) = request.partition {
        args.push(format!("--partition={p}"));
    }
    args.extend(request.extra.iter().cloned());
    args.push(request.script.display().to_string());
    // A timed-out sbatch may still have queued the job; a second submission then
    // computes the same key, which the store's publish-by-rename tolerates.
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(2 << attempt));
        }
        match run("sbatch", &args) {
            Ok(out) => {
                let id = out.trim().split(';').next().unwrap_or_default().to_string();
                if !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) {
                    return Ok(id);
                }
                return Err(format!("sbatch printed no job id: `{}`", out.trim()));
            }
            Err(e) => {
                warn!("sbatch failed (attempt {}): {e}", attempt + 1);
                last = e;
            }
        }
    }
    Err(last)
}

/// The state of each of this user's jobs and array tasks (`12`, `12_3`), finished
/// ones included while the controller still lists them.
pub fn squeue() -> Result<HashMap<String, String>, String> {
    let out = run(
        "squeue",
        &[
            "--me",
            "--noheader",
            "--array",
            "--states=all",
            "--format=%i|%T",
        ]
        .map(String::from),
    )?;
    Ok(parse_squeue(&out))
}

pub fn parse_squeue(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().split_once('|'))
        .map(|(id, state)| (id.trim().to_string(), state.trim().to_string()))
        .collect()
}

/// Whether a state means the job will not run (any more).
pub fn is_finished(state: &str) -> bool {
    !matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "COMPLETING"
            | "CONFIGURING"
            | "SUSPENDED"
            | "REQUEUED"
            | "RESIZING"
            | "SIGNALING"
            | "STAGE_OUT"
            | "STOPPED"
            | "RESV_DEL_HOLD"
            | "REQUEUE_FED"
            | "REQUEUE_HOLD"
    )
}

/// Cancels these jobs (only ids this run submitted).
pub fn scancel(ids: &[String]) -> Result<(), String> {
    if ids.is_empty() {
        return Ok(());
    }
    run("scancel", ids).map(|_| ())
}

fn run(program: &str, args: &[String]) -> Result<String, String> {
    debug!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `{program}`: {e} (is Slurm installed and on PATH?)"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program}` exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_parse_into_states() {
        let states = parse_squeue("12|RUNNING\n13_0|COMPLETED\n13_1|PENDING\n\n");
        assert_eq!(states["12"], "RUNNING");
        assert_eq!(states["13_0"], "COMPLETED");
        assert_eq!(states.len(), 3);
        assert!(is_finished("COMPLETED") && is_finished("CANCELLED") && is_finished("TIMEOUT"));
        assert!(!is_finished("PENDING") && !is_finished("RUNNING"));
    }
}
