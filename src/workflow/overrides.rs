//! One-off changes to a workflow from the command line: `--seed N` (another realization
//! of the whole study) and `--set NODE.PARAM=VALUE` (one param of one node).
//!
//! An override changes the validated workflow exactly as editing the file would: a set
//! param enters the node's params (and so its key) like a written one, and is checked by
//! the stage like one; the seed replaces the workflow's `seed`. Each node remembers which
//! of its params came from `--set`, so `plan` can name the override as the reason a node
//! reruns. Errors in an override name the `--set` argument instead of a file line.

use super::yaml::{self, Yaml};

/// `--set NODE.PARAM=VALUE`: VALUE is read as YAML (`64`, `1e-3`, `[300, 350]`, `text`).
#[derive(Clone, Debug, PartialEq)]
pub struct ParamOverride {
    pub node: String,
    pub param: String,
    pub value: Yaml,
    /// The argument as given, for messages.
    pub text: String,
}

impl ParamOverride {
    /// Parses `NODE.PARAM=VALUE`; the error says what was expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (target, value) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}`: expected NODE.PARAM=VALUE (e.g. cg.chains=64)"))?;
        let (node, param) = target
            .split_once('.')
            .ok_or_else(|| format!("`{text}`: expected NODE.PARAM before `=`, found `{target}`"))?;
        if node.is_empty() || param.is_empty() || param.contains('.') {
            return Err(format!(
                "`{text}`: expected NODE.PARAM before `=` (one node id, one top-level param)"
            ));
        }
        let value = yaml::parse(value)
            .map_err(|e| format!("`{text}`: the value is not YAML: {}", e.message))?;
        Ok(ParamOverride {
            node: node.to_string(),
            param: param.to_string(),
            value,
            text: text.to_string(),
        })
    }
}

/// Everything the command line changes in a workflow.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// Replaces the workflow's `seed`.
    pub seed: Option<u64>,
    /// Applied in order; a later one for the same param wins.
    pub params: Vec<ParamOverride>,
}

impl Overrides {
    /// The overrides of node `id`, last one per param.
    pub(crate) fn for_node<'a>(&'a self, id: &str) -> Vec<&'a ParamOverride> {
        let mut out: Vec<&ParamOverride> = Vec::new();
        for o in self.params.iter().filter(|o| o.node == id) {
            out.retain(|p| p.param != o.param);
            out.push(o);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::yaml::YamlValue;

    #[test]
    fn set_arguments_parse_values_as_yaml() {
        let o = ParamOverride::parse("cg.chains=64").unwrap();
        assert_eq!((o.node.as_str(), o.param.as_str()), ("cg", "chains"));
        assert_eq!(o.value.value, YamlValue::Int(64));
        let o = ParamOverride::parse("fg.ladder=[300, 350.5]").unwrap();
        assert!(matches!(o.value.value, YamlValue::Seq(ref v) if v.len() == 2));
        let o = ParamOverride::parse("fg.solvent=obc2").unwrap();
        assert_eq!(o.value.value, YamlValue::Str("obc2".into()));
    }

    #[test]
    fn malformed_set_arguments_say_what_was_expected() {
        for bad in [
            "cg.chains",
            "chains=64",
            "=64",
            "cg.=1",
            "cg.a.b=1",
            "cg.x=[1,",
        ] {
            let err = ParamOverride::parse(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn the_last_override_of_a_param_wins() {
        let o = Overrides {
            seed: None,
            params: ["a.x=1", "b.x=2", "a.x=3", "a.y=4"]
                .iter()
                .map(|t| ParamOverride::parse(t).unwrap())
                .collect(),
        };
        let a: Vec<&str> = o.for_node("a").iter().map(|p| p.text.as_str()).collect();
        assert_eq!(a, ["a.x=3", "a.y=4"]);
    }
}
