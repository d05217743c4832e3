//! The dispatcher and steps (`needs:`): a step is put up for admission once its parent's task
//! completed, skipped with its own steps when the parent failed, and sends its parent's task.

use super::Dispatcher;
use crate::runner::job::JobState;
use crate::runner::standing;

impl Dispatcher {
    /// Puts a job up for admission: a step only once its parent's task completed (else it waits,
    /// or is skipped with its own steps when the parent failed).
    pub(super) fn enqueue(&mut self, job: usize, front: bool) {
        match standing::standing(&self.plan, &self.jobs, job) {
            standing::Standing::Ready(_) => {
                self.jobs[job].state = JobState::Queued;
                if front {
                    self.queue.push_front(job);
                } else {
                    self.queue.push_back(job);
                }
            }
            standing::Standing::Wait => self.jobs[job].state = JobState::Waiting,
            standing::Standing::Skip(reason) => self.skip(job, reason),
        }
    }

    /// A step that will not run in this run (its parent failed), nor will its own steps.
    pub(super) fn skip(&mut self, job: usize, reason: String) {
        tracing::info!(job = %self.job_id(job), %reason, "skipped");
        let mut stack = vec![job];
        while let Some(j) = stack.pop() {
            if matches!(self.jobs[j].state, JobState::Queued | JobState::Waiting) {
                self.jobs[j].state = JobState::Skipped { reason: reason.clone() };
                stack.extend(self.children.get(&j).into_iter().flatten().copied());
            }
        }
    }

    /// A job's task completed or the job failed: its waiting steps go up for admission (first in
    /// line, so chains finish before new ones start) or are skipped.
    pub(super) fn release_steps(&mut self, job: usize) {
        let waiting: Vec<usize> = self
            .children
            .get(&job)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&c| matches!(self.jobs[c].state, JobState::Waiting))
            .collect();
        for child in waiting.into_iter().rev() {
            self.enqueue(child, true);
        }
    }

    /// What a job sends when the plan's request is not it: a step's, with its parent's task.
    pub(super) fn step_request(&self, job: usize) -> Option<String> {
        match standing::standing(&self.plan, &self.jobs, job) {
            standing::Standing::Ready(Some(task_id)) => {
                crate::plan::fill_parent(self.plan.jobs[job].request.as_str(), &task_id)
            }
            _ => None,
        }
    }
}
