//! Where a step (a job with a parent, `needs:`) stands on its parent: the one reading the
//! dispatcher, `status` and the reports share.

use super::job::{JobRun, JobState};
use crate::plan::Plan;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Admissible: a job without a parent (`None`), or a step whose parent's task completed
    /// (its task id, which goes into the step's request).
    Ready(Option<String>),
    /// The parent has not completed yet, and still may.
    Wait,
    /// The parent failed (or was skipped itself): the step will not run in this run.
    Skip(String),
}

/// The task of a job that completed: paid for, whatever became of its video since.
pub fn completed_task(job: &JobRun) -> Option<&str> {
    job.facts.cost.and(job.facts.task_id.as_deref())
}

pub fn standing(plan: &Plan, jobs: &[JobRun], job: usize) -> Standing {
    let Some(parent) = plan.jobs[job].parent else {
        return Standing::Ready(None);
    };
    let Some(p) = jobs.get(parent) else {
        return Standing::Wait;
    };
    if let Some(task_id) = completed_task(p) {
        return Standing::Ready(Some(task_id.to_string()));
    }
    match &p.state {
        JobState::Failed { failure } => Standing::Skip(format!("parent failed ({failure})")),
        JobState::Skipped { reason } => Standing::Skip(reason.clone()),
        _ => Standing::Wait,
    }
}

/// Jobs as a folder shows them at rest (`status`, `report`): a step nothing was sent for yet
/// waits for its parent, or is skipped when the parent failed.
pub fn settle_at_rest(plan: &Plan, jobs: &mut [JobRun]) {
    for i in 0..jobs.len().min(plan.jobs.len()) {
        if plan.jobs[i].parent.is_none() || !matches!(jobs[i].state, JobState::Queued) {
            continue;
        }
        jobs[i].state = match standing(plan, jobs, i) {
            Standing::Ready(_) => JobState::Queued,
            Standing::Wait => JobState::Waiting,
            Standing::Skip(reason) => JobState::Skipped { reason },
        };
    }
}
