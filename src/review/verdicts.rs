//! What the reviews come to, for the documents a run writes: each clip's verdict (results.csv's
//! review columns, the gallery's captions) and the table of parameter values (`review.csv`).

use super::records::{ReviewError, Reviews};
use super::scores::{ValueScore, clip_scores};
use crate::report::{Verdict, Verdicts};
use std::path::Path;

/// The file of parameter values, beside results.csv.
pub const REVIEW_CSV: &str = "review.csv";

/// Every reviewed clip's verdict.
pub(crate) fn verdicts_of(reviews: &Reviews) -> Verdicts {
    let mut out = Verdicts::new();
    for (id, clip) in &reviews.clips {
        out.insert(
            id.clone(),
            Verdict {
                rating: clip.mean_rating(),
                picked: clip.picked(),
                ..Verdict::default()
            },
        );
    }
    for (id, score) in clip_scores(&reviews.votes) {
        let v = out.entry(id).or_default();
        v.wins = score.wins;
        v.losses = score.losses;
        v.score = score.score;
    }
    out
}

/// The verdicts of the run in `dir`, when it has been reviewed (none without `reviews.jsonl`).
pub(crate) fn read_verdicts(dir: &Path) -> Result<Option<Verdicts>, ReviewError> {
    if !dir.join(super::records::REVIEWS).exists() {
        return Ok(None);
    }
    super::records::read(dir).map(|r| Some(verdicts_of(&r)))
}

/// `review.csv`: each parameter value, how often it won, its interval and how many votes.
pub fn write_review_csv(values: &[ValueScore], out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record([
        "parameter",
        "value",
        "win_rate",
        "low_95",
        "high_95",
        "wins",
        "comparisons",
    ])?;
    for v in values {
        writer.write_record([
            crate::report::inert(&v.parameter),
            crate::report::inert(&v.value),
            format!("{:.4}", v.win_rate),
            format!("{:.4}", v.low),
            format!("{:.4}", v.high),
            format!("{}", v.wins),
            v.comparisons.to_string(),
        ])?;
    }
    writer.flush()
}

/// Keeps, of every step with `only:`, the children of the parents the reviews in `dir` select,
/// and every child `history` shows begun. Returns what was chosen (empty: no step has `only:`).
pub(crate) fn choose(
    plan: &mut crate::plan::Plan,
    dir: Option<&Path>,
    history: &crate::journal::Replayed,
) -> Result<Vec<crate::plan::Chosen>, ReviewError> {
    if plan.choices.is_empty() {
        return Ok(Vec::new());
    }
    let verdicts = match dir {
        Some(dir) => read_verdicts(dir)?.unwrap_or_default(),
        None => Verdicts::new(),
    };
    let judged = |id: &str| {
        verdicts.get(id).map(|v| crate::plan::Judged {
            picked: v.picked,
            rating: v.rating,
            score: v.score,
        })
    };
    let begun: std::collections::HashSet<String> = history.jobs.keys().cloned().collect();
    Ok(plan.choose(&judged, &begun))
}

/// What `choose` chose, one line per step.
pub(crate) fn describe(chosen: &[crate::plan::Chosen]) -> Vec<String> {
    chosen
        .iter()
        .map(|c| {
            let mut line = format!(
                "step `{}` (only: {}): {} parent(s) chosen",
                c.step,
                c.rule,
                c.parents.len()
            );
            if !c.parents.is_empty() {
                let named: Vec<String> = c.parents.iter().map(|(id, why)| format!("{id} ({why})")).collect();
                line.push_str(&format!(": {}", named.join(", ")));
            }
            if !c.kept.is_empty() {
                line.push_str(&format!("; {} child(ren) begun before kept", c.kept.len()));
            }
            if c.left_out > 0 {
                line.push_str(&format!("; {} not chosen", c.left_out));
            }
            line
        })
        .collect()
}
