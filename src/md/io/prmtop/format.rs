//! The `%FLAG` / `%FORMAT` layer of a prmtop file: sections of fixed-width Fortran
//! fields (`(10I8)`, `(5E16.8)`, `(20a4)`), typed access to them, and errors that name the
//! file, the flag, the entry and the line. Knows nothing of what the flags mean.

use std::collections::HashMap;

use crate::md::error::MdError;

/// One `%FLAG` section: its fields (trimmed) with their 1-based line numbers.
pub(super) struct Section<'a> {
    pub(super) kind: FieldKind,
    pub(super) fields: Vec<(&'a str, usize)>,
    pub(super) flag_line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum FieldKind {
    Text,
    Integer,
    Real,
}

pub(super) struct Sections<'a> {
    pub(super) file: &'a str,
    pub(super) by_flag: HashMap<&'a str, Section<'a>>,
}

/// Parse a Fortran edit descriptor such as `(10I8)`, `(5E16.8)`, `(20a4)`.
fn parse_format(spec: &str) -> Option<(FieldKind, usize)> {
    let inner = spec.trim().strip_prefix('(')?.split(')').next()?;
    let inner = inner.trim_start_matches(|c: char| c.is_ascii_digit());
    let mut chars = inner.chars();
    let kind = match chars.next()?.to_ascii_uppercase() {
        'A' => FieldKind::Text,
        'I' => FieldKind::Integer,
        'E' | 'F' | 'D' | 'G' => FieldKind::Real,
        _ => return None,
    };
    let width: String = chars.take_while(|c| c.is_ascii_digit()).collect();
    let width = width.parse().ok().filter(|&w| w > 0)?;
    Some((kind, width))
}

impl<'a> Sections<'a> {
    pub(super) fn parse(text: &'a str, file: &'a str) -> Result<Self, MdError> {
        let mut by_flag: HashMap<&'a str, Section<'a>> = HashMap::new();
        let mut current: Option<(&'a str, Option<(FieldKind, usize)>)> = None;
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = line.trim_end_matches('\r');
            if let Some(rest) = line.strip_prefix('%') {
                if let Some(flag) = rest.strip_prefix("FLAG") {
                    let flag = flag.trim();
                    if flag.is_empty() {
                        return Err(syntax(file, line_no, "%FLAG without a name"));
                    }
                    if by_flag.contains_key(flag) {
                        return Err(syntax(file, line_no, format!("%FLAG {flag} appears twice")));
                    }
                    by_flag.insert(
                        flag,
                        Section {
                            kind: FieldKind::Text,
                            fields: Vec::new(),
                            flag_line: line_no,
                        },
                    );
                    current = Some((flag, None));
                } else if let Some(spec) = rest.strip_prefix("FORMAT") {
                    let Some((flag, format)) = current.as_mut() else {
                        return Err(syntax(file, line_no, "%FORMAT before any %FLAG"));
                    };
                    let parsed = parse_format(spec).ok_or_else(|| {
                        syntax(
                            file,
                            line_no,
                            format!("%FLAG {flag}: unreadable %FORMAT{}", spec.trim()),
                        )
                    })?;
                    *format = Some(parsed);
                    if let Some(section) = by_flag.get_mut(*flag) {
                        section.kind = parsed.0;
                    }
                }
                // %VERSION, %COMMENT and unknown directives carry no data.
                continue;
            }
            let Some((flag, format)) = current else {
                if line.trim().is_empty() {
                    continue;
                }
                return Err(syntax(file, line_no, "data before the first %FLAG"));
            };
            let Some((kind, width)) = format else {
                return Err(syntax(
                    file,
                    line_no,
                    format!("%FLAG {flag}: data before %FORMAT"),
                ));
            };
            let section = by_flag.get_mut(flag).expect("current flag was inserted");
            if flag == "TITLE" || flag == "CTITLE" {
                section.fields.push((line.trim(), line_no));
                continue;
            }
            // Fixed-width fields: numbers may touch each other, so never split on spaces.
            let mut start = 0;
            while start < line.len() {
                let end = (start + width).min(line.len());
                let field = line.get(start..end).ok_or_else(|| {
                    syntax(file, line_no, format!("%FLAG {flag}: non-ASCII data"))
                })?;
                let trimmed = field.trim();
                if !trimmed.is_empty() || kind == FieldKind::Text {
                    section.fields.push((trimmed, line_no));
                }
                start = end;
            }
        }
        Ok(Sections { file, by_flag })
    }

    pub(super) fn get(&self, flag: &str) -> Option<&Section<'a>> {
        self.by_flag.get(flag)
    }

    pub(super) fn require(
        &self,
        flag: &str,
        needed_for: &'static str,
    ) -> Result<&Section<'a>, MdError> {
        self.get(flag).ok_or_else(|| MdError::MissingFlag {
            file: self.file.to_string(),
            flag: flag.to_string(),
            needed_for,
        })
    }

    pub(super) fn integers(
        &self,
        flag: &str,
        needed_for: &'static str,
    ) -> Result<Vec<i64>, MdError> {
        let section = self.require(flag, needed_for)?;
        self.check_kind(flag, section, FieldKind::Integer)?;
        section
            .fields
            .iter()
            .enumerate()
            .map(|(entry, &(field, line))| {
                field
                    .parse::<i64>()
                    .map_err(|_| self.bad_value(flag, entry, line, "an integer", field))
            })
            .collect()
    }

    pub(super) fn reals(&self, flag: &str, needed_for: &'static str) -> Result<Vec<f64>, MdError> {
        let section = self.require(flag, needed_for)?;
        self.check_kind(flag, section, FieldKind::Real)?;
        section
            .fields
            .iter()
            .enumerate()
            .map(|(entry, &(field, line))| {
                let value: Option<f64> = field.replace(['D', 'd'], "E").parse().ok();
                value
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| self.bad_value(flag, entry, line, "a real number", field))
            })
            .collect()
    }

    pub(super) fn reals_if_present(&self, flag: &str) -> Result<Option<Vec<f64>>, MdError> {
        match self.get(flag) {
            Some(_) => self.reals(flag, "optional data").map(Some),
            None => Ok(None),
        }
    }

    pub(super) fn texts(
        &self,
        flag: &str,
        needed_for: &'static str,
    ) -> Result<Vec<String>, MdError> {
        let section = self.require(flag, needed_for)?;
        Ok(section.fields.iter().map(|(f, _)| f.to_string()).collect())
    }

    fn check_kind(&self, flag: &str, section: &Section, kind: FieldKind) -> Result<(), MdError> {
        if section.kind == kind {
            return Ok(());
        }
        Err(syntax(
            self.file,
            section.flag_line,
            format!(
                "%FLAG {flag}: %FORMAT gives {:?} fields, expected {kind:?}",
                section.kind
            ),
        ))
    }

    fn bad_value(
        &self,
        flag: &str,
        entry: usize,
        line: usize,
        expected: &'static str,
        found: &str,
    ) -> MdError {
        MdError::BadValue {
            file: self.file.to_string(),
            line,
            context: format!("%FLAG {flag} entry {}", entry + 1),
            expected,
            found: found.to_string(),
        }
    }

    pub(super) fn expect_len<T>(
        &self,
        flag: &str,
        values: &[T],
        expected: usize,
    ) -> Result<(), MdError> {
        if values.len() == expected {
            return Ok(());
        }
        Err(MdError::WrongCount {
            file: self.file.to_string(),
            context: format!("%FLAG {flag}"),
            expected,
            found: values.len(),
        })
    }
}

pub(super) fn syntax(file: &str, line: usize, message: impl Into<String>) -> MdError {
    MdError::Syntax {
        file: file.to_string(),
        line,
        message: message.into(),
    }
}

pub(super) fn check_tuples(
    s: &Sections,
    flag: &str,
    raw: &[i64],
    width: usize,
) -> Result<(), MdError> {
    if raw.len().is_multiple_of(width) {
        return Ok(());
    }
    Err(MdError::WrongCount {
        file: s.file.to_string(),
        context: format!("%FLAG {flag} (groups of {width})"),
        expected: raw.len().next_multiple_of(width),
        found: raw.len(),
    })
}
