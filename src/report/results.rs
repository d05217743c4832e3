//! `results.csv`: one row per job with its status, request, swept parameters, task, cost, video
//! and metadata. Cells a spreadsheet would execute (a leading `=`, `+`, `-`, `@`, tab or CR) are
//! made inert with a leading apostrophe.

use super::plan::cell;
use crate::plan::Plan;
use crate::runner::JobRun;
use std::collections::BTreeSet;

const FIXED: &[&str] = &[
    "job_id",
    "status",
    "endpoint",
    "model",
    "prompt",
    "task_id",
    "cost_usd",
    "video_path",
    "bytes",
    "checksum",
    "attempts",
    "error",
    "submitted_at",
    "completed_at",
];

/// Whether a results.csv column is one of the tool's own (the job, its outcome, its step, the
/// reviews, `meta.*`), not a swept parameter: what a reader of the file tells them apart by.
pub(crate) fn is_own_column(name: &str) -> bool {
    FIXED.contains(&name)
        || REVIEW_COLUMNS.contains(&name)
        || ["step", "parent_job_id"].contains(&name)
        || name.starts_with("meta.")
}

/// A cell as a spreadsheet should see it: never a formula.
pub(crate) fn inert(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// A paid job the journal holds that the manifest no longer has: its video stays listed.
#[derive(Debug, Clone)]
pub(crate) struct Removed {
    pub id: String,
    pub facts: crate::journal::JobFacts,
}

/// The paid jobs of `history` that `plan` no longer has, by id.
pub(crate) fn removed_paid(plan: &Plan, history: &crate::journal::Replayed) -> Vec<Removed> {
    let planned: std::collections::HashSet<&str> = plan.jobs.iter().map(|j| j.id.as_str()).collect();
    let mut removed: Vec<Removed> = history
        .jobs
        .iter()
        .filter(|(id, facts)| !planned.contains(id.as_str()) && (facts.cost.is_some() || facts.video.is_some()))
        .map(|(id, facts)| Removed {
            id: id.clone(),
            facts: facts.clone(),
        })
        .collect();
    removed.sort_by(|a, b| a.id.cmp(&b.id));
    removed
}

/// What reviewers said of one clip (`kling-batch review`), as results.csv and the gallery show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Verdict {
    /// The mean of the reviewers' ratings (1–5).
    pub rating: Option<f64>,
    pub picked: bool,
    pub wins: u32,
    pub losses: u32,
    /// Its Bradley–Terry score from blind votes (0: average).
    pub score: Option<f64>,
}

/// Every clip's verdict, by job id: present once a run has been reviewed.
pub(crate) type Verdicts = std::collections::HashMap<String, Verdict>;

/// The review columns of results.csv.
const REVIEW_COLUMNS: [&str; 5] = ["rating", "picked", "wins", "losses", "score"];

fn review_cells(verdict: Option<&Verdict>) -> [String; 5] {
    let Some(v) = verdict else {
        return Default::default();
    };
    [
        v.rating.map_or(String::new(), |r| format!("{r:.2}")),
        v.picked.to_string(),
        v.wins.to_string(),
        v.losses.to_string(),
        v.score.map_or(String::new(), |s| format!("{s:.3}")),
    ]
}

/// The status results.csv gives a paid job the manifest no longer has.
pub(crate) const NOT_IN_MANIFEST: &str = "not_in_manifest";

/// results.csv, row by row into `out`: the plan's jobs, then the paid jobs it no longer has.
pub(crate) fn write_results_csv(
    plan: &Plan,
    jobs: &[JobRun],
    removed: &[Removed],
    verdicts: Option<&Verdicts>,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let swept: Vec<&String> = plan.swept.iter().filter(|s| !FIXED.contains(&s.as_str())).collect();
    let meta: BTreeSet<&String> = plan.jobs.iter().flat_map(|j| j.meta.keys()).collect();
    let mut writer = csv::WriterBuilder::new().buffer_capacity(64 * 1024).from_writer(out);
    // With steps (`needs:`): the entry each job came from and the job whose task it continues.
    let steps = plan.has_steps();
    let mut header: Vec<String> = FIXED[..5].iter().map(|s| s.to_string()).collect();
    if steps {
        header.extend(["step".to_string(), "parent_job_id".to_string()]);
    }
    header.extend(swept.iter().map(|s| s.to_string()));
    header.extend(FIXED[5..].iter().map(|s| s.to_string()));
    header.extend(meta.iter().map(|k| format!("meta.{k}")));
    if verdicts.is_some() {
        header.extend(REVIEW_COLUMNS.iter().map(|s| s.to_string()));
    }
    writer.write_record(&header)?;
    for (spec, job) in plan.jobs.iter().zip(jobs) {
        let mut row: Vec<String> = vec![
            spec.id.to_string(),
            job.state_name().to_string(),
            spec.endpoint.to_string(),
            spec.model().unwrap_or("").to_string(),
            spec.prompt().unwrap_or_default(),
        ];
        if steps {
            row.push(spec.label.to_string());
            row.push(spec.parent.map_or(String::new(), |p| plan.jobs[p].id.to_string()));
        }
        row.extend(
            swept
                .iter()
                .map(|s| spec.params.get(s).map_or(String::new(), |v| cell(Some(v)))),
        );
        row.extend(outcome_cells(&job.facts, job.video(), job.error().unwrap_or_default()));
        row.extend(meta.iter().map(|k| spec.meta.get(*k).cloned().unwrap_or_default()));
        if let Some(v) = verdicts {
            row.extend(review_cells(v.get(spec.id.as_str())));
        }
        writer.write_record(row.iter().map(|c| inert(c)))?;
    }
    for job in removed {
        let facts = &job.facts;
        let mut row: Vec<String> = vec![job.id.clone(), NOT_IN_MANIFEST.to_string()];
        row.extend(std::iter::repeat_n(
            String::new(),
            3 + swept.len() + if steps { 2 } else { 0 },
        ));
        row.extend(outcome_cells(
            facts,
            facts.video.as_ref(),
            "the manifest no longer has this job; its paid video is kept".to_string(),
        ));
        row.extend(meta.iter().map(|_| String::new()));
        if let Some(v) = verdicts {
            row.extend(review_cells(v.get(&job.id)));
        }
        writer.write_record(row.iter().map(|c| inert(c)))?;
    }
    writer.flush()
}

/// The cells from `task_id` to `completed_at`: the task, its cost, the video, attempts, the error.
fn outcome_cells(
    facts: &crate::journal::JobFacts,
    video: Option<&crate::journal::StoredVideo>,
    error: String,
) -> [String; 9] {
    let (path, bytes, checksum) = video.map_or((String::new(), String::new(), String::new()), |v| {
        (v.path.clone(), v.bytes.to_string(), v.checksum.clone())
    });
    [
        facts.task_id.clone().unwrap_or_default(),
        facts.cost.map_or(String::new(), |c| format!("{:.4}", c.usd())),
        path,
        bytes,
        checksum,
        facts.attempt.to_string(),
        error,
        facts.submitted_at.clone().unwrap_or_default(),
        facts.completed_at.clone().unwrap_or_default(),
    ]
}

#[cfg(test)]
mod tests {
    use super::inert;

    #[test]
    fn the_tools_own_columns_are_told_from_parameters() {
        for own in ["job_id", "cost_usd", "step", "rating", "score", "meta.owner"] {
            assert!(super::is_own_column(own), "{own}");
        }
        for param in ["aspect_ratio", "style", "enable_sound"] {
            assert!(!super::is_own_column(param), "{param}");
        }
    }

    #[test]
    fn formulas_are_made_inert() {
        for dangerous in ["=1+1", "+cmd", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert!(inert(dangerous).starts_with('\''), "{dangerous:?}");
        }
        assert_eq!(inert("a lake"), "a lake");
    }
}
