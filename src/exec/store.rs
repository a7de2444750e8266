//! The content-addressed store: one folder per node key.
//!
//! ```text
//! <store>/<key>/manifest.json        outputs, their hashes, the key's ingredients
//! <store>/<key>/<output>.parquet     tables (and .png/.svg/.md files)
//! <store>/.tmp/                      nodes being written; never read
//! <store>/.locks/<key>.lock          one lock per key, held while a node computes
//! <store>/.index/<workflow>.json     node id -> last key, for `cgloop plan`'s reasons
//! ```
//!
//! A node is written into `.tmp/` and published by one `rename`, so a killed run
//! leaves nothing that looks published. The per-key lock (an OS file lock, released
//! when its process dies) keeps two processes from computing the same node twice.
//! Every read of an output checks its blake3 hash against the manifest.
//!
//! On a shared file system (NFS, Lustre, GPFS: a cluster's store) what holds and what
//! does not:
//! - Publishing stays correct without locks: a rename onto a published folder fails,
//!   and the later writer keeps the winner's copy ([`Store::publish`]). Nothing is ever
//!   half-published, whichever machine dies.
//! - The key lock is a local guarantee only: NFS emulates `flock` with byte-range locks
//!   that can be lost, and Lustre may refuse it. Without it two jobs may compute the
//!   same node at once; the cost is the duplicate work, never a wrong node.
//! - `gc` and `--force` must not run while another driver uses the same keys.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::manifest::{MANIFEST_FILE, Manifest};
use crate::artifact::{Artifact, ArtifactError, decode_table};
use crate::workflow::Key;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: corrupt artifact: blake3 {found} but the manifest says {expected}", path.display())]
    Corrupt {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{}: unreadable manifest: {message}", path.display())]
    BadManifest { path: PathBuf, message: String },
    #[error("node {key} has no output `{output}`")]
    NoSuchOutput { key: String, output: String },
    #[error("{}: {source}", path.display())]
    Artifact {
        path: PathBuf,
        source: ArtifactError,
    },
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A store rooted at a folder.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// A held per-key lock; released when dropped (or when the process dies).
pub struct KeyLock {
    _file: File,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Whose copy of a node the store holds after [`Store::publish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// This call's folder became the node.
    Ours,
    /// Another writer published the same key first; this call's copy was dropped.
    Theirs,
}

/// This machine's name, for temporary names that stay unique across cluster nodes
/// sharing a store.
pub fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        })
        .unwrap_or_else(|| "host".to_string())
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        for sub in [".tmp", ".locks", ".index"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        }
        Ok(Store { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn node_dir(&self, key: &Key) -> PathBuf {
        self.root.join(key.to_string())
    }

    /// Whether a node is published (its manifest exists; publishing is atomic).
    pub fn contains(&self, key: &Key) -> bool {
        self.node_dir(key).join(MANIFEST_FILE).is_file()
    }

    fn lock_file(&self, key: &Key) -> Result<(File, PathBuf), StoreError> {
        let path = self.root.join(".locks").join(format!("{key}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))?;
        Ok((file, path))
    }

    /// Takes the key's lock, waiting for another process that holds it.
    pub fn lock(&self, key: &Key) -> Result<KeyLock, StoreError> {
        let (file, path) = self.lock_file(key)?;
        file.lock().map_err(io_error(&path))?;
        Ok(KeyLock { _file: file })
    }

    /// Like [`Store::lock`], but `None` instead of waiting.
    pub fn try_lock(&self, key: &Key) -> Result<Option<KeyLock>, StoreError> {
        let (file, path) = self.lock_file(key)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(KeyLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(io_error(&path)(e)),
        }
    }

    pub fn read_manifest(&self, key: &Key) -> Result<Manifest, StoreError> {
        let path = self.node_dir(key).join(MANIFEST_FILE);
        let text = fs::read(&path).map_err(io_error(&path))?;
        serde_json::from_slice(&text).map_err(|e| StoreError::BadManifest {
            path,
            message: e.to_string(),
        })
    }

    /// Reads an output's bytes and checks them against the manifest's hash.
    pub fn read_output_bytes(
        &self,
        key: &Key,
        manifest: &Manifest,
        output: &str,
    ) -> Result<Vec<u8>, StoreError> {
        let record = manifest
            .outputs
            .get(output)
            .ok_or_else(|| StoreError::NoSuchOutput {
                key: key.to_string(),
                output: output.to_string(),
            })?;
        let path = self.node_dir(key).join(&record.file);
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        let found = blake3::hash(&bytes).to_hex().to_string();
        if found != record.blake3 {
            return Err(StoreError::Corrupt {
                path,
                expected: record.blake3.clone(),
                found,
            });
        }
        Ok(bytes)
    }

    /// Loads a verified output as an artifact (tables decoded).
    pub fn load_output(&self, key: &Key, output: &str) -> Result<Artifact, StoreError> {
        let manifest = self.read_manifest(key)?;
        let bytes = self.read_output_bytes(key, &manifest, output)?;
        let record = &manifest.outputs[output];
        if record.file.ends_with(".parquet") {
            let path = self.node_dir(key).join(&record.file);
            let (batch, _) = decode_table(Bytes::from(bytes))
                .map_err(|source| StoreError::Artifact { path, source })?;
            Ok(Artifact::Table(batch))
        } else {
            Ok(Artifact::File(bytes))
        }
    }

    /// Writes a node's files and manifest into a fresh temporary folder and publishes it
    /// with one rename.
    ///
    /// Two writers of one key (two drivers, or jobs on two cluster nodes, where file
    /// locks may not work) need no lock: a key's bytes are a function of the key, the
    /// first complete folder to land is the node, and a rename onto it fails (a folder
    /// onto a non-empty folder), so the later writer checks the winner's manifest and
    /// drops its own copy ([`Published::Theirs`]). A rename reported failed is checked
    /// against the target too (on NFS a retried rename can report an error for a rename
    /// that happened). `replace` (a forced rerun) moves a published folder aside first
    /// and removes it after.
    pub fn publish(
        &self,
        key: &Key,
        manifest: &Manifest,
        files: &[(String, Vec<u8>)],
        replace: bool,
    ) -> Result<Published, StoreError> {
        let tmp = self.root.join(".tmp").join(format!(
            "{key}.{}.{}.{}",
            host_name(),
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&tmp).map_err(io_error(&tmp))?;
        let write = |name: &str, bytes: &[u8]| -> Result<(), StoreError> {
            let path = tmp.join(name);
            let mut f = File::create(&path).map_err(io_error(&path))?;
            f.write_all(bytes).map_err(io_error(&path))?;
            f.sync_all().map_err(io_error(&path))
        };
        let manifest_json = serde_json::to_vec_pretty(manifest).expect("manifest serializes");
        let written = files
            .iter()
            .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
            .chain([(MANIFEST_FILE, manifest_json.as_slice())])
            .try_for_each(|(name, bytes)| write(name, bytes));
        if let Err(e) = written {
            // A full disk (or any failed write): nothing was published, and the partial
            // folder would only hold on to the space.
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let target = self.node_dir(key);
        let mut old = None;
        // A forced rerun replaces the node; a folder without a manifest is not a
        // published node (a removal that was killed half-way) and is moved aside too.
        if target.exists() && (replace || !self.contains(key)) {
            let aside = self.root.join(".tmp").join(format!(
                "{key}.old.{}.{}",
                std::process::id(),
                TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            match fs::rename(&target, &aside) {
                Ok(()) => old = Some(aside),
                // Another writer moved or replaced it first: the rename below decides.
                Err(_) if !target.exists() || self.contains(key) => {}
                Err(e) => return Err(io_error(&target)(e)),
            }
        }
        let outcome = match fs::rename(&tmp, &target) {
            Ok(()) => Published::Ours,
            Err(e) => {
                let ours_landed = self.read_manifest(key).is_ok_and(|m| m == *manifest);
                if ours_landed {
                    Published::Ours
                } else if self.verifies(key) {
                    let _ = fs::remove_dir_all(&tmp);
                    Published::Theirs
                } else {
                    let _ = fs::remove_dir_all(&tmp);
                    return Err(io_error(&target)(e));
                }
            }
        };
        if let Ok(dir) = File::open(&self.root) {
            let _ = dir.sync_all();
        }
        if let Some(old) = old {
            let _ = fs::remove_dir_all(old);
        }
        Ok(outcome)
    }

    /// Whether a published node's manifest reads and every output matches its hash.
    pub fn verifies(&self, key: &Key) -> bool {
        let Ok(manifest) = self.read_manifest(key) else {
            return false;
        };
        manifest.key == key.to_string()
            && manifest
                .outputs
                .keys()
                .all(|o| self.read_output_bytes(key, &manifest, o).is_ok())
    }

    /// Every published key.
    pub fn keys(&self) -> Result<Vec<Key>, StoreError> {
        let mut keys = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(io_error(&self.root))? {
            let entry = entry.map_err(io_error(&self.root))?;
            if let Some(key) = entry.file_name().to_str().and_then(Key::parse)
                && entry.path().join(MANIFEST_FILE).is_file()
            {
                keys.push(key);
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Keys whose hex starts with `prefix`.
    pub fn find(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        Ok(self
            .keys()?
            .into_iter()
            .filter(|k| k.to_string().starts_with(prefix))
            .collect())
    }

    /// Removes a published node.
    pub fn remove(&self, key: &Key) -> Result<(), StoreError> {
        let dir = self.node_dir(key);
        fs::remove_dir_all(&dir).map_err(io_error(&dir))?;
        let lock = self.root.join(".locks").join(format!("{key}.lock"));
        let _ = fs::remove_file(lock);
        Ok(())
    }

    /// Leftovers of killed runs in `.tmp/` (safe to delete when no run is active).
    pub fn temporary_entries(&self) -> Result<Vec<PathBuf>, StoreError> {
        let dir = self.root.join(".tmp");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_error(&dir))? {
            out.push(entry.map_err(io_error(&dir))?.path());
        }
        out.sort();
        Ok(out)
    }

    fn index_path(&self, workflow: &str) -> PathBuf {
        self.root.join(".index").join(format!("{workflow}.json"))
    }

    /// The last key each node of a workflow had (node id -> key hex).
    pub fn read_index(&self, workflow: &str) -> BTreeMap<String, String> {
        fs::read(self.index_path(workflow))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Records node keys for a workflow (merged over what was there), atomically.
    pub fn write_index(
        &self,
        workflow: &str,
        entries: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let mut index = self.read_index(workflow);
        if entries.iter().all(|(k, v)| index.get(k) == Some(v)) {
            return Ok(());
        }
        index.extend(entries.iter().map(|(k, v)| (k.clone(), v.clone())));
        let path = self.index_path(workflow);
        let tmp = path.with_extension(format!("json.{}", std::process::id()));
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(&index).expect("index serializes"),
        )
        .map_err(io_error(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_error(&path))
    }
}
