//! What a node asks of a cluster scheduler: CPUs, memory and wall time. Used only by
//! `--executor slurm`; resources never enter a node's key (they do not change its
//! bytes).
//!
//! ```yaml
//! resources:                       # optional, per stage (as `defaults:`)
//!   fg_sample: {cpus: 2, memory_gb: 4, time_min: 60}
//! nodes:
//!   fg:
//!     stage: fg_sample
//!     resources: {time_min: 90}    # optional, per node; wins over the stage's
//! ```

use std::path::Path;

use super::diagnostic::{Diagnostic, ErrorKind};
use super::spec::join;
use super::yaml::{Yaml, YamlValue};

/// A node's requests; `None` takes the default (see [`Resources::cpus_or_default`] and
/// the others).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Resources {
    pub cpus: Option<u32>,
    pub memory_gb: Option<f64>,
    pub time_min: Option<f64>,
}

pub const RESOURCE_KEYS: &[&str] = &["cpus", "memory_gb", "time_min"];

impl Resources {
    /// Default CPUs per node: 1.
    pub fn cpus_or_default(&self) -> u32 {
        self.cpus.unwrap_or(1)
    }

    /// Default memory: 2 GB per CPU.
    pub fn memory_mb_or_default(&self) -> u64 {
        match self.memory_gb {
            Some(gb) => (gb * 1024.0).ceil() as u64,
            None => 2048 * u64::from(self.cpus_or_default()),
        }
    }

    /// Default wall time: 120 minutes (a node should stay under an hour; chain
    /// segments of long runs).
    pub fn time_min_or_default(&self) -> u64 {
        self.time_min.map_or(120, |t| t.ceil() as u64)
    }

    /// `self`'s fields, with `fallback`'s where `self` has none.
    pub fn or(self, fallback: Resources) -> Resources {
        Resources {
            cpus: self.cpus.or(fallback.cpus),
            memory_gb: self.memory_gb.or(fallback.memory_gb),
            time_min: self.time_min.or(fallback.time_min),
        }
    }
}

/// Reads a `resources:` mapping at `path`, pushing an error for each bad entry.
pub(crate) fn parse_resources(
    node: &Yaml,
    file: &Path,
    path: &str,
    errors: &mut Vec<Diagnostic>,
) -> Resources {
    let mut out = Resources::default();
    let YamlValue::Map(entries) = &node.value else {
        errors.push(Diagnostic::new(
            ErrorKind::WrongType,
            file,
            path,
            Some(node.location),
            format!(
                "expected resources (a mapping of {}), found {}",
                RESOURCE_KEYS.join(", "),
                node.value.kind()
            ),
        ));
        return out;
    };
    for (key, value) in entries {
        let name = key.as_str().unwrap_or_default();
        let at = join(path, name);
        let number = match value.value {
            YamlValue::Int(i) => Some(i as f64),
            YamlValue::Float(f) => Some(f),
            _ => None,
        };
        let positive = number.filter(|x| x.is_finite() && *x > 0.0);
        let mut bad = |what: &str| {
            errors.push(Diagnostic::new(
                ErrorKind::WrongType,
                file,
                at.as_str(),
                Some(value.location),
                format!("expected {what}, found {}", describe(value)),
            ))
        };
        match name {
            "cpus" => match value.value {
                YamlValue::Int(i) if (1..=4096).contains(&i) => out.cpus = Some(i as u32),
                _ => bad("a whole number of CPUs from 1 to 4096"),
            },
            "memory_gb" => match positive {
                Some(x) => out.memory_gb = Some(x),
                None => bad("a positive number of gigabytes"),
            },
            "time_min" => match positive {
                Some(x) => out.time_min = Some(x),
                None => bad("a positive number of minutes"),
            },
            _ => errors.push(
                Diagnostic::new(
                    ErrorKind::UnknownKey,
                    file,
                    at.as_str(),
                    Some(key.location),
                    format!("unknown key `{name}`"),
                )
                .with_choices(
                    "keys",
                    RESOURCE_KEYS.iter().map(|s| s.to_string()).collect(),
                ),
            ),
        }
    }
    out
}

fn describe(value: &Yaml) -> String {
    match &value.value {
        YamlValue::Int(i) => i.to_string(),
        YamlValue::Float(f) => f.to_string(),
        YamlValue::Str(s) => format!("`{s}`"),
        other => other.kind().to_string(),
    }
}
