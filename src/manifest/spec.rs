//! The validated manifest: what the expansion stage consumes. Every value remembers where it came
//! from, so problems found later (a duration a model refuses) still point at the right line.

use super::diagnostic::{Diagnostic, Origin, Place, Problem};
use super::locate::Index;
use crate::kling::pricing::PriceRule;
use crate::util::money::Money;
use serde_json::Value;
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::OnceLock;

/// A value with the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub origin: Origin,
}

/// Request fields by name (plus `endpoint`), each with its origin.
pub type FieldMap = BTreeMap<String, Sourced<Value>>;

#[derive(Debug, Clone, PartialEq)]
pub struct PromptEntry {
    /// The user's readable id, already checked to be filesystem-safe.
    pub id: Option<String>,
    pub origin: Origin,
    pub fields: FieldMap,
    /// Template variables in the order written: one job per combination of values.
    pub vars: Vec<(String, Vec<Sourced<String>>)>,
    /// User metadata that travels to the results.
    pub meta: BTreeMap<String, String>,
    /// `needs: <prompt id>`: this entry is a step that runs once for every completed job of the
    /// named entry, continuing that job's task (`source_task_id`).
    pub needs: Option<Sourced<String>>,
    /// `only: picked | "rating >= 4" | "top 2 per prompt"`: a step runs only for the parents its
    /// run's reviews select (`kling-batch review`).
    pub only: Option<Sourced<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MatrixEntry {
    pub origin: Origin,
    pub fields: FieldMap,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matrix {
    /// Axes in the order written.
    pub axes: Vec<(String, Vec<Sourced<Value>>)>,
    pub exclude: Vec<MatrixEntry>,
    pub include: Vec<MatrixEntry>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub max_spend: Option<Money>,
    pub concurrency: Option<NonZeroU32>,
    pub rate_per_second: Option<f64>,
}

/// What to do when a matrix value does not fit a job's model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnUnsupported {
    /// A validation error (the default): nothing is dropped silently.
    #[default]
    Error,
    /// Leave out matrix keys the model does not take; skip combinations whose values it refuses.
    /// Both are listed by `plan`.
    Adapt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    Yaml,
    Csv,
}

#[derive(Debug)]
pub struct Manifest {
    pub name: Option<String>,
    pub path: PathBuf,
    pub kind: ManifestKind,
    pub defaults: FieldMap,
    pub prompts: Vec<PromptEntry>,
    pub matrix: Matrix,
    pub repeat: NonZeroU32,
    pub limits: Limits,
    pub pricing: Vec<PriceRule>,
    pub on_unsupported: OnUnsupported,
    pub(crate) sources: Sources,
}

/// The text a YAML manifest was read from, to turn origins into lines and columns on demand.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    pub(crate) yaml: Option<(PathBuf, String)>,
    index: OnceLock<Index>,
}

impl Sources {
    pub(crate) fn yaml(path: PathBuf, text: String) -> Sources {
        Sources {
            yaml: Some((path, text)),
            index: OnceLock::new(),
        }
    }

    pub(crate) fn place(&self, origin: &Origin) -> Place {
        match origin {
            Origin::Yaml { path, key } => {
                let Some((file, text)) = &self.yaml else {
                    return Place {
                        file: PathBuf::new(),
                        line: None,
                        column: None,
                        column_name: None,
                    };
                };
                let pos = self.index.get_or_init(|| Index::build(text)).find(path, *key);
                Place {
                    file: file.clone(),
                    line: pos.map(|p| p.line),
                    column: pos.map(|p| p.column),
                    column_name: None,
                }
            }
            Origin::Csv {
                file,
                line,
                column,
                name,
            } => Place {
                file: file.clone(),
                line: Some(*line),
                column: Some(*column as u64),
                column_name: (!name.is_empty()).then(|| name.clone()),
            },
            Origin::File(file) => Place {
                file: file.clone(),
                line: None,
                column: None,
                column_name: None,
            },
        }
    }

    /// Resolves problems to diagnostics, merging repeats of one problem (same place, subject and
    /// message) into one with a count, in the order first seen.
    pub(crate) fn resolve(&self, problems: Vec<Problem>) -> Vec<Diagnostic> {
        let mut out: Vec<Diagnostic> = Vec::new();
        let mut seen: BTreeMap<(Origin, Option<String>, String), usize> = BTreeMap::new();
        for problem in problems {
            let key = (problem.origin.clone(), problem.subject.clone(), problem.message.clone());
            if let Some(&i) = seen.get(&key) {
                out[i].occurrences += 1;
                continue;
            }
            seen.insert(key, out.len());
            out.push(Diagnostic {
                place: self.place(&problem.origin),
                subject: problem.subject,
                message: problem.message,
                hints: problem.hints,
                occurrences: 1,
            });
        }
        out
    }
}
