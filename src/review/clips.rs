//! The clips a review shows: every job of the run with what a reviewer needs — its prompt, its
//! parameters (each by name, as the gallery and the scores read them), where it stands and its
//! video — and the grid's row and column each falls in (the gallery's default axes).

use crate::plan::{JobSpec, Plan};
use crate::runner::JobRun;
use serde::Serialize;
use std::collections::BTreeMap;

/// Request fields a reviewer compares clips by, when a job has them.
const COMPARED: &[&str] = &[
    "model",
    "mode",
    "duration_seconds",
    "aspect_ratio",
    "output_resolution",
    "enable_sound",
];

#[derive(Debug, Clone, Serialize)]
pub struct Clip {
    pub id: String,
    /// The prompt entry's id, or the start of its text.
    pub label: String,
    pub prompt: String,
    /// Every parameter it was made with that clips may differ in, by name (the prompt's label
    /// as `prompt`, template variables, and the compared request fields).
    pub params: BTreeMap<String, String>,
    /// The grid's row and column (indices into `Grid`).
    pub row: usize,
    pub column: usize,
    /// Where it stands (`completed`, `failed`, …).
    pub status: String,
    /// Its video, relative to the run folder, once stored and verified.
    #[serde(skip)]
    pub video: Option<String>,
}

/// The grid's headers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Grid {
    pub rows: Vec<String>,
    pub columns: Vec<String>,
}

/// A job's parameters as a reviewer compares them.
pub fn params_of(spec: &JobSpec) -> BTreeMap<String, String> {
    let mut params: BTreeMap<String, String> = spec
        .params
        .iter()
        .map(|(k, v)| (k.to_string(), crate::report::cell(Some(v))))
        .collect();
    for key in COMPARED {
        if let Some(value) = spec.request.get(key) {
            params
                .entry((*key).to_string())
                .or_insert_with(|| crate::report::cell(Some(&value)));
        }
    }
    params.insert("prompt".to_string(), spec.label.to_string());
    params
}

/// The clips of `plan` as `jobs` stand, laid out on the gallery's default axes.
pub fn clips(plan: &Plan, jobs: &[JobRun]) -> (Vec<Clip>, Grid) {
    let axes = crate::report::Axes::default_for(plan);
    let mut grid = Grid::default();
    let mut rows: BTreeMap<String, usize> = BTreeMap::new();
    let mut columns: BTreeMap<String, usize> = BTreeMap::new();
    let mut place = |names: &[String], params: &BTreeMap<String, String>, spec: &JobSpec, column: bool| {
        let text: Vec<String> = names
            .iter()
            .filter_map(|a| match a.as_str() {
                "prompt" => Some(spec.label.to_string()),
                _ => params.get(a).map(|v| format!("{a}={v}")),
            })
            .collect();
        let text = if text.is_empty() {
            "all".to_string()
        } else {
            text.join(" · ")
        };
        let (map, list) = if column {
            (&mut columns, &mut grid.columns)
        } else {
            (&mut rows, &mut grid.rows)
        };
        *map.entry(text.clone()).or_insert_with(|| {
            list.push(text);
            list.len() - 1
        })
    };
    let mut out = Vec::with_capacity(plan.jobs.len());
    for (spec, job) in plan.jobs.iter().zip(jobs) {
        let params = params_of(spec);
        let row = place(&axes.rows, &params, spec, false);
        let column = place(&axes.columns, &params, spec, true);
        out.push(Clip {
            id: spec.id.to_string(),
            label: spec.label.to_string(),
            prompt: spec.prompt().unwrap_or_default(),
            params,
            row,
            column,
            status: job.state_name().to_string(),
            video: job.video().map(|v| v.path.clone()),
        });
    }
    (out, grid)
}
