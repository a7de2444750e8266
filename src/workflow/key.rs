//! Node keys: blake3 over a canonical encoding of everything that determines a node's
//! outputs, and nothing else.
//!
//! Ingredients: the stage name, its `VERSION`, its params with every default written out
//! (files named in params replaced by `blake3:<content hash>`, so a path never enters the
//! key), the keys and output names of its inputs (in input-name order), and the node's
//! seed. Never outputs, timestamps, paths, `HashMap` order or `Debug` text.
//!
//! Encoding (version 1): the domain tag `cgloop key v1\0`, then each field as a tagged
//! value. `n` null; `b` bool (one byte); `u`/`i` 64-bit integers, little-endian; `f` an
//! f64 by its bits (`-0.0` as `0.0`), never formatted; `s` a UTF-8 string with its
//! length as u64; `l` a list (length, items in order); `m` a map (length, entries sorted
//! by key bytes). Golden tests in `tests/suite/keys.rs` pin this encoding: changing it changes
//! every key in every store, so it is bumped to `v2`, never edited.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A node key: 32 bytes, shown as 64 hex digits (the node's folder in the store).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 32]);

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Key {
    pub fn parse(hex: &str) -> Option<Key> {
        blake3::Hash::from_hex(hex).ok().map(|h| Key(*h.as_bytes()))
    }
}

/// An input as it enters the key: the upstream node's key and which output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRef {
    pub key: String,
    pub output: String,
}

/// Everything that determines a node's outputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ingredients {
    pub stage: String,
    pub version: u32,
    pub params: Value,
    pub inputs: BTreeMap<String, InputRef>,
    /// The node seed in hex.
    pub seed: String,
}

impl Ingredients {
    /// The canonical bytes the key hashes.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = b"cgloop key v1\0".to_vec();
        string(&mut out, &self.stage);
        out.push(b'u');
        out.extend_from_slice(&u64::from(self.version).to_le_bytes());
        value(&mut out, &self.params);
        out.push(b'm');
        out.extend_from_slice(&(self.inputs.len() as u64).to_le_bytes());
        for (name, input) in &self.inputs {
            string(&mut out, name);
            string(&mut out, &input.key);
            string(&mut out, &input.output);
        }
        string(&mut out, &self.seed);
        out
    }

    pub fn key(&self) -> Key {
        Key(*blake3::hash(&self.canonical_bytes()).as_bytes())
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b's');
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(b'n'),
        Value::Bool(b) => out.extend_from_slice(&[b'b', u8::from(*b)]),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push(b'u');
                out.extend_from_slice(&u.to_le_bytes());
            } else if let Some(i) = n.as_i64() {
                out.push(b'i');
                out.extend_from_slice(&i.to_le_bytes());
            } else {
                let x = n.as_f64().expect("a JSON number is u64, i64 or f64");
                let x = if x == 0.0 { 0.0 } else { x };
                out.push(b'f');
                out.extend_from_slice(&x.to_bits().to_le_bytes());
            }
        }
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            out.push(b'l');
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                value(out, item);
            }
        }
        Value::Object(map) => {
            // Sorted here, whatever order the map iterates in.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'm');
            out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
            for (k, v) in entries {
                string(out, k);
                value(out, v);
            }
        }
    }
}

/// Hex of 32 bytes.
pub fn hex(bytes: &[u8; 32]) -> String {
    Key(*bytes).to_string()
}
