//! Where a job starts in this run: placed as its journaled facts say — queued, re-sent, polled,
//! downloaded, or left as it ended — and what an attempt of it holds against the cap.

use super::*;

impl Dispatcher {
    /// Puts job `i` where its facts say it stands (none: never started), as a resume does: queued
    /// (or waiting for its parent), re-sent, polled, downloaded, or left as it ended.
    pub(super) fn place(&mut self, i: usize, facts: Option<crate::journal::JobFacts>, video_ok: bool, now: Instant) {
        let Some(facts) = facts else {
            self.jobs[i] = JobRun::queued();
            self.enqueue(i, false);
            return;
        };
        if let Some(cost) = facts.cost {
            self.saw_settlement(i, cost);
        }
        let state = facts.state(video_ok);
        let mut job = JobRun::new(facts.clone(), state);
        match &job.state {
            // (A resume never finds a job mid-upload: nothing is journaled before its intent.)
            JobState::Queued
            | JobState::Preparing { .. }
            | JobState::Waiting
            | JobState::Skipped { .. }
            | JobState::Elsewhere => {
                self.jobs[i] = job;
                self.enqueue(i, false);
                return;
            }
            JobState::Submitting { .. } => {
                // The intent is journaled: the POST may have gone out before the stop.
                job.outcome_unknown = true;
                self.in_flight += 1;
                self.push_timer(now, i, Timer::Submit);
            }
            JobState::Generating { .. } | JobState::Parked => {
                // A task left at an earlier deadline is polled again.
                if let Some(task_id) = facts.task_id.clone() {
                    job.state = JobState::Generating { task_id };
                }
                // When it was created is not known here: nothing is learned from it.
                job.submitted = Some(now);
                job.learnable = false;
                self.in_flight += 1;
                self.generating[self.shape_ids[i].index()].insert(i);
                self.jobs[i] = job;
                self.set_poll(i, now);
                return;
            }
            JobState::Downloading { url, .. } => {
                job.downloading_since = Some(now);
                if facts.phase == Some(Phase::Completed) && url.is_some() {
                    self.ready_downloads.push_back(i);
                } else {
                    // Missing, cut or never saved: fetch a fresh URL and download again.
                    self.jobs[i] = job;
                    self.set_poll(i, now);
                    return;
                }
            }
            JobState::Failed { failure } => {
                let failures = facts.task_failures();
                let asked = self
                    .settings
                    .retry_failed
                    .as_ref()
                    .is_some_and(|pattern| failure.to_string().to_lowercase().contains(&pattern.to_lowercase()));
                // A raised --max-attempts gives failed tasks the difference.
                let more_attempts = failure.kind == FailureKind::TaskFailed && failures < self.settings.max_attempts;
                if asked || more_attempts {
                    job.failures_before = if asked { failures } else { 0 };
                    self.jobs[i] = job;
                    self.enqueue(i, false);
                    return;
                }
            }
            JobState::Done { .. } | JobState::Unresolved { .. } => {}
        }
        self.jobs[i] = job;
    }

    /// The most the service has settled for a job's shape raises what later jobs of that shape
    /// reserve: a quote is never trusted below a bill.
    pub(super) fn saw_settlement(&mut self, job: usize, cost: Money) {
        let highest = self.settled.entry(self.shapes[job].clone()).or_insert(Money::ZERO);
        *highest = (*highest).max(cost);
    }

    /// What an attempt of `job` holds against the cap.
    pub(super) fn reservation(&self, job: usize) -> Money {
        let settled = self.settled.get(&self.shapes[job]).copied().unwrap_or(Money::ZERO);
        self.reservations[job].max(settled)
    }
}
