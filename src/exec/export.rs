//! Exports a run's figures and reports next to the store, where people look for them.
//!
//! After a run, every file artifact (PNG, SVG, Markdown) of the workflow's succeeded
//! nodes is copied to `<dir>/<node>/<output>.<ext>`, `<dir>` being `results/<workflow
//! name>` beside the store (`results/store` gives `results/<name>`). A Markdown output
//! named `report` is also written to `<dir>/report.md` (the first such node in workflow
//! order), with its relative links `](./X)` rewritten to `](<node>/X)` so they reach the
//! node's copies. Every file is written to a temporary name and renamed, so a reader
//! never sees half a file; the store stays the one source of truth (the export is
//! rebuilt by any later run, cached or not).

use std::fs;
use std::path::{Path, PathBuf};

use super::run::{Outcome, RunReport};
use super::store::{Store, StoreError};
use crate::artifact::kind::MARKDOWN;

/// The export folder of workflow `name` for a store at `store_root`.
pub fn export_dir(store_root: &Path, name: &str) -> PathBuf {
    store_root
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(name)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io)?;
    }
    // Unique per process: two drivers exporting one workflow at once must not share it.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = path.with_extension(format!(
        "{}.{}.partial",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    fs::write(&tmp, bytes).map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

/// Copies the file artifacts of the report's succeeded nodes into `dir`; returns the
/// files written.
pub fn export_files(
    store: &Store,
    report: &RunReport,
    dir: &Path,
) -> Result<Vec<PathBuf>, StoreError> {
    let mut written = Vec::new();
    let mut report_md: Option<(String, Vec<u8>)> = None;
    for node in &report.nodes {
        if !matches!(node.outcome, Outcome::Ran { .. } | Outcome::Cached) {
            continue;
        }
        let manifest = store.read_manifest(&node.key)?;
        for (output, record) in &manifest.outputs {
            if record.file.ends_with(".parquet") {
                continue;
            }
            let source = store.node_dir(&node.key).join(&record.file);
            let bytes = fs::read(&source).map_err(|e| StoreError::Io {
                path: source.clone(),
                source: e,
            })?;
            let target = dir.join(&node.id).join(&record.file);
            write_atomic(&target, &bytes)?;
            written.push(target);
            if output == "report" && record.kind == MARKDOWN.name && report_md.is_none() {
                report_md = Some((node.id.clone(), bytes));
            }
        }
    }
    if let Some((node, bytes)) = report_md {
        let text = String::from_utf8_lossy(&bytes).replace("](./", &format!("]({node}/"));
        let target = dir.join("report.md");
        write_atomic(&target, text.as_bytes())?;
        written.push(target);
    }
    Ok(written)
}
