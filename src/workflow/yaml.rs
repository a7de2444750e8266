//! A YAML document as a tree whose every node knows its line and column.
//!
//! Workflow validation reports errors by file, YAML path and position, so the workflow is
//! read into this located tree (with `saphyr-parser`'s event stream) rather than straight
//! into Rust types. Scalars follow the YAML 1.2 core schema, plus `_` digit separators in
//! integers (`steps: 5_000_000`). Quoted scalars are always strings. Anchors and aliases
//! are expanded; a file may hold only one YAML document. Duplicate keys are kept in the
//! tree so the schema check can name them (a duplicate node id is its own error).
//!
//! Merge keys (YAML 1.1's `<<`, as PyYAML and most loaders read them) let nodes share
//! settings: `<<: *fg_params` (or `<<: [*a, *b]`) copies the entries of the aliased
//! mapping(s) that the mapping does not write itself. Keys written in the mapping win;
//! among several merged mappings the first wins. Merged entries keep the location where
//! they were written, so an error in one points at the anchored mapping.
//!
//! A syntax error inside a flow collection (`[` or `{`) that is never closed names the
//! line where the collection opened as well as where the parser gave up.

use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A position in the source: both 1-based, columns counted in characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One node of the located tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Yaml {
    pub value: YamlValue,
    pub location: Location,
}

#[derive(Clone, Debug, PartialEq)]
pub enum YamlValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Yaml>),
    /// Entries in document order; keys are scalars (kept located for error messages).
    Map(Vec<(Yaml, Yaml)>),
}

/// A YAML syntax error, or a construct the workflow format does not accept.
#[derive(Clone, Debug, PartialEq)]
pub struct YamlError {
    pub location: Location,
    pub message: String,
}

impl YamlValue {
    /// A word for the kind of value, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            YamlValue::Null => "null",
            YamlValue::Bool(_) => "a boolean",
            YamlValue::Int(_) => "an integer",
            YamlValue::Float(_) => "a number",
            YamlValue::Str(_) => "a string",
            YamlValue::Seq(_) => "a list",
            YamlValue::Map(_) => "a mapping",
        }
    }
}

impl Yaml {
    /// The scalar text of a key or string value.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            YamlValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Yaml, Yaml)]> {
        match &self.value {
            YamlValue::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The entry of a mapping under `key`: (key node, value node).
    pub fn entry(&self, key: &str) -> Option<(&Yaml, &Yaml)> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, v)| (k, v))
    }

    pub fn get(&self, key: &str) -> Option<&Yaml> {
        self.entry(key).map(|(_, v)| v)
    }

    /// Follows a path of map keys and list indices (given as decimal strings).
    pub fn lookup<'a>(&self, path: impl IntoIterator<Item = &'a str>) -> Option<&Yaml> {
        let mut node = self;
        for segment in path {
            node = match &node.value {
                YamlValue::Map(_) => node.get(segment)?,
                YamlValue::Seq(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The value as JSON (for typed deserialization of stage parameters).
    /// Non-finite floats have no JSON form and are reported with their location.
    pub fn to_json(&self) -> Result<serde_json::Value, YamlError> {
        use serde_json::Value;
        Ok(match &self.value {
            YamlValue::Null => Value::Null,
            YamlValue::Bool(b) => Value::Bool(*b),
            YamlValue::Int(i) => Value::from(*i),
            YamlValue::Float(x) => match serde_json::Number::from_f64(*x) {
                Some(n) => Value::Number(n),
                None => {
                    return Err(YamlError {
                        location: self.location,
                        message: format!("{x} is not a finite number"),
                    });
                }
            },
            YamlValue::Str(s) => Value::String(s.clone()),
            YamlValue::Seq(items) => {
                Value::Array(items.iter().map(Yaml::to_json).collect::<Result<_, _>>()?)
            }
            YamlValue::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    let key = scalar_key(k)?;
                    if map.contains_key(&key) {
                        return Err(YamlError {
                            location: k.location,
                            message: format!("duplicate key `{key}`"),
                        });
                    }
                    map.insert(key, v.to_json()?);
                }
                Value::Object(map)
            }
        })
    }
}

fn scalar_key(key: &Yaml) -> Result<String, YamlError> {
    match &key.value {
        YamlValue::Str(s) => Ok(s.clone()),
        YamlValue::Int(i) => Ok(i.to_string()),
        YamlValue::Bool(b) => Ok(b.to_string()),
        YamlValue::Float(x) => Ok(x.to_string()),
        other => Err(YamlError {
            location: key.location,
            message: format!("a mapping key must be a scalar, found {}", other.kind()),
        }),
    }
}

fn location(span: &Span) -> Location {
    Location {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

/// Parses one YAML document into a located tree. An empty document is `Null`.
pub fn parse(text: &str) -> Result<Yaml, YamlError> {
    let mut builder = Builder::default();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            let location = Location {
                line: e.marker().line(),
                column: e.marker().col() + 1,
            };
            let mut message = e.info().to_string();
            if let Some((kind, opened)) = builder.open_flow_collection(text) {
                message =
                    format!("{message} (in the flow {kind} opened at line {opened}, not closed)");
            }
            YamlError { location, message }
        })?;
        builder.push(event, &span)?;
    }
    Ok(builder.root.unwrap_or(Yaml {
        value: YamlValue::Null,
        location: Location { line: 1, column: 1 },
    }))
}

/// A collection being built.
struct Open {
    node: Yaml,
    anchor: usize,
    /// For a mapping: the key waiting for its value.
    pending: Pending,
    /// For a mapping: the values of its merge keys, in order.
    merges: Vec<Yaml>,
}

enum Pending {
    None,
    Key(Yaml),
    /// A plain `<<` key: its value is merged, not stored.
    Merge,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    anchors: Vec<(usize, Yaml)>,
    root: Option<Yaml>,
    documents: usize,
}

impl Builder {
    fn push(&mut self, event: Event<'_>, span: &Span) -> Result<(), YamlError> {
        let at = location(span);
        match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(YamlError {
                        location: at,
                        message: "a workflow file holds one YAML document; found a second `---`"
                            .into(),
                    });
                }
            }
            Event::Alias(id) => {
                let node = self
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, _)| *a == id)
                    .map(|(_, n)| n.clone())
                    .ok_or_else(|| YamlError {
                        location: at,
                        message: "alias to an unknown anchor".into(),
                    })?;
                self.complete(node, 0)?;
            }
            Event::Scalar(text, style, anchor, _tag) => {
                if style == ScalarStyle::Plain && text == "<<" && self.awaiting_key() {
                    self.stack.last_mut().expect("awaiting a key").pending = Pending::Merge;
                    return Ok(());
                }
                let value = if style == ScalarStyle::Plain {
                    resolve_plain(&text)
                } else {
                    YamlValue::Str(text.into_owned())
                };
                self.complete(
                    Yaml {
                        value,
                        location: at,
                    },
                    anchor,
                )?;
            }
            Event::SequenceStart(anchor, _) => self.open(YamlValue::Seq(Vec::new()), at, anchor),
            Event::MappingStart(anchor, _) => self.open(YamlValue::Map(Vec::new()), at, anchor),
            Event::SequenceEnd | Event::MappingEnd => {
                let open = self.stack.pop().expect("balanced YAML events");
                let mut node = open.node;
                if let YamlValue::Map(entries) = &mut node.value {
                    merge(entries, &open.merges)?;
                }
                self.complete(node, open.anchor)?;
            }
        }
        Ok(())
    }

    fn open(&mut self, value: YamlValue, location: Location, anchor: usize) {
        self.stack.push(Open {
            node: Yaml { value, location },
            anchor,
            pending: Pending::None,
            merges: Vec::new(),
        });
    }

    /// Whether the innermost collection is a mapping waiting for a key.
    fn awaiting_key(&self) -> bool {
        self.stack.last().is_some_and(|open| {
            matches!(open.node.value, YamlValue::Map(_)) && matches!(open.pending, Pending::None)
        })
    }

    fn complete(&mut self, node: Yaml, anchor: usize) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.push((anchor, node.clone()));
        }
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        match &mut parent.node.value {
            YamlValue::Seq(items) => items.push(node),
            YamlValue::Map(entries) => {
                match std::mem::replace(&mut parent.pending, Pending::None) {
                    Pending::None => parent.pending = Pending::Key(node),
                    Pending::Key(key) => entries.push((key, node)),
                    Pending::Merge => parent.merges.push(node),
                }
            }
            _ => unreachable!("only collections are pushed on the stack"),
        }
        Ok(())
    }

    /// The innermost flow collection still open, if any: its kind and where it opened.
    /// (A block collection starts at its first entry; a flow one at its bracket.)
    fn open_flow_collection(&self, text: &str) -> Option<(&'static str, Location)> {
        self.stack.iter().rev().find_map(|open| {
            let line = text.lines().nth(open.node.location.line.checked_sub(1)?)?;
            let bracket = line
                .chars()
                .nth(open.node.location.column.checked_sub(1)?)?;
            match (bracket, &open.node.value) {
                ('[', YamlValue::Seq(_)) => Some(("sequence", open.node.location)),
                ('{', YamlValue::Map(_)) => Some(("mapping", open.node.location)),
                _ => None,
            }
        })
    }
}

/// Applies a mapping's merge keys: each merged mapping contributes the entries whose
/// keys are not yet present (written keys first, then earlier merges).
fn merge(entries: &mut Vec<(Yaml, Yaml)>, merges: &[Yaml]) -> Result<(), YamlError> {
    let mut sources: Vec<&Yaml> = Vec::new();
    for value in merges {
        match &value.value {
            YamlValue::Map(_) => sources.push(value),
            YamlValue::Seq(items) if items.iter().all(|i| i.as_map().is_some()) => {
                sources.extend(items.iter())
            }
            other => {
                return Err(YamlError {
                    location: value.location,
                    message: format!(
                        "a merge key `<<` takes a mapping or a list of mappings (e.g. `<<: *defaults`), found {}",
                        other.kind()
                    ),
                });
            }
        }
    }
    for source in sources {
        for (key, value) in source.as_map().unwrap_or_default() {
            let present = entries.iter().any(|(k, _)| k.value == key.value);
            if !present {
                entries.push((key.clone(), value.clone()));
            }
        }
    }
    Ok(())
}

/// YAML 1.2 core schema for plain scalars, with `_` allowed between digits of integers.
fn resolve_plain(text: &str) -> YamlValue {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return YamlValue::Null,
        "true" | "True" | "TRUE" => return YamlValue::Bool(true),
        "false" | "False" | "FALSE" => return YamlValue::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return YamlValue::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return YamlValue::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return YamlValue::Float(f64::NAN),
        _ => {}
    }
    if let Some(i) = parse_int(text) {
        return YamlValue::Int(i);
    }
    let looks_numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-' | '_'))
        && text.chars().any(|c| c.is_ascii_digit());
    if looks_numeric && let Ok(x) = text.replace('_', "").parse::<f64>() {
        return YamlValue::Float(x);
    }
    YamlValue::Str(text.to_string())
}

fn parse_int(text: &str) -> Option<i64> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(hex) = body.strip_prefix("0x") {
        (16, hex)
    } else if let Some(oct) = body.strip_prefix("0o") {
        (8, oct)
    } else {
        (10, body)
    };
    let valid = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && digits.chars().all(|c| c == '_' || c.is_digit(radix));
    if !valid {
        return None;
    }
    let magnitude = i64::from_str_radix(&digits.replace('_', ""), radix).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_follow_the_core_schema() {
        let doc =
            parse("a: 5_000_000\nb: 1.5e-3\nc: '12'\nd: true\ne: ~\nf: -0x1F\ng: text\nh: .inf\n")
                .unwrap();
        assert_eq!(doc.get("a").unwrap().value, YamlValue::Int(5_000_000));
        assert_eq!(doc.get("b").unwrap().value, YamlValue::Float(1.5e-3));
        assert_eq!(doc.get("c").unwrap().value, YamlValue::Str("12".into()));
        assert_eq!(doc.get("d").unwrap().value, YamlValue::Bool(true));
        assert_eq!(doc.get("e").unwrap().value, YamlValue::Null);
        assert_eq!(doc.get("f").unwrap().value, YamlValue::Int(-31));
        assert_eq!(doc.get("g").unwrap().value, YamlValue::Str("text".into()));
        assert_eq!(doc.get("h").unwrap().value, YamlValue::Float(f64::INFINITY));
    }

    #[test]
    fn nodes_know_their_line_and_column() {
        let doc = parse("name: x\nnodes:\n  fg:\n    stage: fg_sample\n").unwrap();
        let stage = doc.lookup(["nodes", "fg", "stage"]).unwrap();
        assert_eq!(
            stage.location,
            Location {
                line: 4,
                column: 12
            }
        );
        let (key, _) = doc.get("nodes").unwrap().entry("fg").unwrap();
        assert_eq!(key.location, Location { line: 3, column: 3 });
    }

    #[test]
    fn duplicate_keys_are_kept_for_the_schema_check_and_refused_as_json() {
        let doc = parse("nodes:\n  a: 1\n  a: 2\n").unwrap();
        assert_eq!(doc.get("nodes").unwrap().as_map().unwrap().len(), 2);
        let err = doc.to_json().unwrap_err();
        assert_eq!(err.location.line, 3);
    }

    #[test]
    fn aliases_expand_and_syntax_errors_are_located() {
        let doc = parse("x: &p {k: 1}\ny: *p\n").unwrap();
        assert_eq!(
            doc.get("y").unwrap().get("k").unwrap().value,
            YamlValue::Int(1)
        );
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.location.line >= 1);
    }

    #[test]
    fn merge_keys_copy_the_entries_not_written() {
        let doc = parse(
            "base: &b {steps: 10, temperature_k: 300}\n\
             other: &o {friction: 1, steps: 99}\n\
             node:\n  <<: *b\n  steps: 20\n\
             both:\n  <<: [*b, *o]\n",
        )
        .unwrap();
        let node = doc.get("node").unwrap();
        assert_eq!(node.get("steps").unwrap().value, YamlValue::Int(20));
        assert_eq!(
            node.get("temperature_k").unwrap().value,
            YamlValue::Int(300)
        );
        assert_eq!(node.as_map().unwrap().len(), 2, "no `<<` entry is left");
        // Merged entries keep where they were written (the anchored mapping, line 1).
        assert_eq!(node.get("temperature_k").unwrap().location.line, 1);
        let both = doc.get("both").unwrap();
        assert_eq!(
            both.get("steps").unwrap().value,
            YamlValue::Int(10),
            "first merge wins"
        );
        assert_eq!(both.get("friction").unwrap().value, YamlValue::Int(1));
    }

    #[test]
    fn a_quoted_merge_key_is_an_ordinary_key_and_a_scalar_merge_is_refused() {
        let doc = parse("a: {'<<': 1}\n").unwrap();
        assert_eq!(
            doc.get("a").unwrap().get("<<").unwrap().value,
            YamlValue::Int(1)
        );
        let err = parse("x: 1\nnode:\n  <<: 5\n").unwrap_err();
        assert_eq!(err.location, Location { line: 3, column: 7 });
        assert!(err.message.contains("merge key"), "{}", err.message);
    }

    #[test]
    fn an_unclosed_flow_sequence_names_where_it_opened() {
        let err = parse("name: x\nseed: 1\nnodes:\n  a: [unclosed\n").unwrap_err();
        assert!(
            err.message.contains("flow sequence opened at line 4:6"),
            "{} at {}",
            err.message,
            err.location
        );
        let err = parse("a: {k: 1\n").unwrap_err();
        assert!(
            err.message.contains("flow mapping opened at line 1:4"),
            "{}",
            err.message
        );
    }
}
