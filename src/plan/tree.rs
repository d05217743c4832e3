//! The steps of a plan as a tree of prompt entries (`needs:`), for `plan`, `status` and reports.

use super::Plan;
use crate::util::money::Money;
use serde::Serialize;

/// One entry of the tree: its jobs and their estimate, and the entry it continues.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepCount {
    /// The prompt entry (0-based, manifest order).
    #[serde(skip)]
    pub entry: usize,
    pub step: String,
    /// The entry whose jobs it continues, if it is a step.
    pub needs: Option<String>,
    /// How far down its chain (0 for an entry without `needs`).
    pub depth: usize,
    pub jobs: usize,
    #[serde(serialize_with = "usd")]
    pub estimate: Money,
}

fn usd<S: serde::Serializer>(m: &Money, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(m.usd())
}

impl Plan {
    /// Whether any job continues another's task.
    pub fn has_steps(&self) -> bool {
        self.jobs.iter().any(|j| j.parent.is_some())
    }

    /// The entries that make jobs, each after the entry it needs (depth first, in manifest
    /// order), with their counts. Empty when the plan has no steps.
    pub fn step_tree(&self) -> Vec<StepCount> {
        if !self.has_steps() {
            return Vec::new();
        }
        let entries = self.jobs.iter().map(|j| j.prompt_index).max().map_or(0, |m| m + 1);
        let mut counts: Vec<Option<StepCount>> = vec![None; entries];
        let mut parent_entry: Vec<Option<usize>> = vec![None; entries];
        for job in &self.jobs {
            let e = job.prompt_index;
            let row = counts[e].get_or_insert_with(|| StepCount {
                entry: e,
                step: job.label.to_string(),
                needs: None,
                depth: 0,
                jobs: 0,
                estimate: Money::ZERO,
            });
            row.jobs += 1;
            row.estimate = row.estimate.saturating_add(job.estimate.cost);
            if let Some(p) = job.parent {
                parent_entry[e] = Some(self.jobs[p].prompt_index);
            }
        }
        let mut out = Vec::new();
        let mut stack: Vec<(usize, usize)> = (0..entries)
            .rev()
            .filter(|&e| parent_entry[e].is_none() && counts[e].is_some())
            .map(|e| (e, 0))
            .collect();
        while let Some((e, depth)) = stack.pop() {
            let Some(mut row) = counts[e].take() else { continue };
            row.depth = depth;
            row.needs = parent_entry[e]
                .and_then(|p| out.iter().find(|r: &&StepCount| r.entry == p))
                .map(|r| r.step.clone());
            out.push(row);
            stack.extend(
                (0..entries)
                    .rev()
                    .filter(|&c| parent_entry[c] == Some(e))
                    .map(|c| (c, depth + 1)),
            );
        }
        out
    }
}
