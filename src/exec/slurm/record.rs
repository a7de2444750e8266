//! The files a Slurm run shares between its driver and its jobs, under
//! `<store>/.runs/<run>/`:
//!
//! ```text
//! batch-<n>.tsv           one line per node of submission n: key, node id, forced (0/1)
//! batch-<n>.sh            the job script (an array job runs one line per task)
//! logs/<job name>.log     each job's stdout and stderr
//! records/<key>.json      written by the job when its node ends: ran, cached or failed
//! ```
//!
//! A record is written to a temporary name and renamed, so the driver never reads half
//! of one. The driver takes a node's state from its record (and from the store) first;
//! the scheduler's queue only tells it that a job ended without writing one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exec::store::host_name;

/// How a node's job ended, as the job wrote it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub key: String,
    pub node: String,
    /// `ran`, `cached` or `failed`.
    pub status: String,
    /// The error, for `failed`.
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub wall_s: f64,
    /// `SLURM_JOB_ID`, or `<array job>_<task>` for an array task.
    #[serde(default)]
    pub job: String,
    #[serde(default)]
    pub host: String,
}

/// One line of a batch file.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchLine {
    pub key: String,
    pub node: String,
    pub force: bool,
}

pub fn records_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("records")
}

pub fn logs_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("logs")
}

/// Writes `records/<key>.json` atomically.
pub fn write_record(run_dir: &Path, record: &JobRecord) -> std::io::Result<()> {
    let dir = records_dir(run_dir);
    fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}.json", record.key));
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        record.key,
        host_name(),
        std::process::id()
    ));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(&serde_json::to_vec_pretty(record).expect("a record serializes"))?;
    file.sync_all()?;
    fs::rename(&tmp, &path)
}

/// Every record in the run's `records/` (listing the folder also refreshes an NFS
/// client's view of it).
pub fn read_records(run_dir: &Path) -> Vec<JobRecord> {
    let Ok(entries) = fs::read_dir(records_dir(run_dir)) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".json")))
        .filter_map(|e| fs::read(e.path()).ok())
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
        .collect()
}

pub fn write_batch(path: &Path, lines: &[BatchLine]) -> std::io::Result<()> {
    let text: String = lines
        .iter()
        .map(|l| format!("{}\t{}\t{}\n", l.key, l.node, u8::from(l.force)))
        .collect();
    fs::write(path, text)
}

/// Line `index` of a batch file.
pub fn read_batch_line(path: &Path, index: usize) -> Result<BatchLine, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let line = text.lines().nth(index).ok_or_else(|| {
        format!(
            "{}: no line {index} (the batch has {} nodes)",
            path.display(),
            text.lines().count()
        )
    })?;
    let fields: Vec<&str> = line.split('\t').collect();
    match fields.as_slice() {
        [key, node, force] => Ok(BatchLine {
            key: key.to_string(),
            node: node.to_string(),
            force: *force == "1",
        }),
        _ => Err(format!(
            "{}: line {index} is not `key node force`",
            path.display()
        )),
    }
}

/// `text` quoted for a POSIX shell.
pub fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_batches_round_trip() {
        let dir = std::env::temp_dir().join(format!("cgloop-record-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let record = JobRecord {
            key: "ab".repeat(32),
            node: "fg".into(),
            status: "failed".into(),
            message: "step 7: NaN".into(),
            wall_s: 1.5,
            job: "12_3".into(),
            host: "n1".into(),
        };
        write_record(&dir, &record).unwrap();
        assert_eq!(read_records(&dir), vec![record]);
        let lines = vec![
            BatchLine {
                key: "k1".into(),
                node: "a".into(),
                force: false,
            },
            BatchLine {
                key: "k2".into(),
                node: "b".into(),
                force: true,
            },
        ];
        let batch = dir.join("batch-0.tsv");
        write_batch(&batch, &lines).unwrap();
        assert_eq!(read_batch_line(&batch, 1).unwrap(), lines[1]);
        assert!(
            read_batch_line(&batch, 2)
                .unwrap_err()
                .contains("no line 2")
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shell_quoting_survives_spaces_and_quotes() {
        assert_eq!(shell_quote("/a/b.yaml"), "/a/b.yaml");
        assert_eq!(shell_quote("cg.chains=64"), "cg.chains=64");
        assert_eq!(
            shell_quote("fg.ladder=[300, 350]"),
            "'fg.ladder=[300, 350]'"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
