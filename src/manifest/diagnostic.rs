//! A problem found in a manifest, with the place it is at and what to do about it.

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// Where a manifest value came from, before it is resolved to a line and column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// A node of the YAML manifest, by path (`prompts[1].vars.style[0]`). `key` points at the key
    /// of a mapping entry rather than its value.
    Yaml { path: String, key: bool },
    /// A cell of a CSV file: its 1-based line in the file and 1-based column.
    Csv {
        file: PathBuf,
        line: u64,
        column: usize,
        name: String,
    },
    /// A whole file.
    File(PathBuf),
}

impl Origin {
    pub fn yaml(path: impl Into<String>) -> Origin {
        Origin::Yaml {
            path: path.into(),
            key: false,
        }
    }

    pub fn yaml_key(path: impl Into<String>) -> Origin {
        Origin::Yaml {
            path: path.into(),
            key: true,
        }
    }
}

/// A resolved place: file, line and column (1-based) where known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Place {
    pub file: PathBuf,
    pub line: Option<u64>,
    pub column: Option<u64>,
    /// A CSV column's header name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column_name: Option<String>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub place: Place,
    /// The prompt or job the problem concerns, when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    /// How many jobs share this exact problem (1 for a problem not about jobs).
    pub occurrences: usize,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.place)?;
        if let Some(name) = &self.place.column_name {
            write!(f, "column `{name}`: ")?;
        }
        if let Some(subject) = &self.subject {
            write!(f, "{subject}: ")?;
        }
        write!(f, "{}", self.message)?;
        if self.occurrences > 1 {
            write!(f, " (in {} jobs)", self.occurrences)?;
        }
        for hint in &self.hints {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// A problem before its place is resolved; what the parsing and expansion stages produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: Origin,
    pub subject: Option<String>,
    pub message: String,
    pub hints: Vec<String>,
}

impl Problem {
    pub fn new(origin: Origin, message: impl Into<String>) -> Problem {
        Problem {
            origin,
            subject: None,
            message: message.into(),
            hints: Vec::new(),
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Problem {
        self.hints.push(hint.into());
        self
    }

    pub fn maybe_hint(mut self, hint: Option<String>) -> Problem {
        self.hints.extend(hint);
        self
    }

    pub fn subject(mut self, subject: impl Into<String>) -> Problem {
        self.subject = Some(subject.into());
        self
    }
}
