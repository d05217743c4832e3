//! How a job's work in this run ends short of done: timed out (re-attached by a rerun), left for
//! a rerun with what it holds, or failed for good (never a paid video).

use super::*;

impl Dispatcher {
    pub(super) fn download_overdue(&self, job: usize, now: Instant) -> bool {
        self.jobs[job]
            .downloading_since
            .is_some_and(|s| now.duration_since(s) > self.settings.task_deadline)
    }

    pub(super) fn time_out(&mut self, job: usize) {
        let message = format!("still generating after {:?}", self.settings.task_deadline);
        self.leave_for_rerun(job, message);
    }

    /// Stops working on a job for this run without giving it up: whatever it holds (a key whose
    /// outcome is unknown, a task, a reservation, a paid video) stays in the journal for a rerun.
    pub(super) fn leave_for_rerun(&mut self, job: usize, message: String) {
        let id = self.job_id(job);
        self.stop_generating(job);
        let state = std::mem::replace(&mut self.jobs[job].state, JobState::Parked);
        if matches!(state, JobState::Submitting { .. } | JobState::Generating { .. }) {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        tracing::warn!(job = %id, %message, "left for a rerun");
        self.jobs[job].note = Some(message);
        match state {
            JobState::Submitting { key } => self.jobs[job].state = JobState::Unresolved { key },
            JobState::Generating { task_id } => self.record(
                job,
                Record::TimedOut {
                    job: id,
                    task_id,
                    at: crate::util::time_format::now(),
                },
            ),
            _ => {}
        }
    }

    /// Ends a job for good, releasing anything it still holds.
    pub(super) fn fail(&mut self, job: usize, kind: FailureKind, message: String) {
        tracing::info!(job = %self.job_id(job), kind = kind.as_str(), %message, "job failed");
        let id = self.job_id(job);
        self.stop_generating(job);
        // A job mid-upload has nothing journaled for this attempt: only this run's reservation.
        let (held, flying) = match self.jobs[job].state {
            JobState::Preparing { reserve, .. } => (reserve, true),
            JobState::Submitting { .. } | JobState::Generating { .. } => (self.jobs[job].facts.reserved, true),
            _ => (self.jobs[job].facts.reserved, false),
        };
        if flying {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        self.ledger.release(held);
        self.record(
            job,
            Record::Failed {
                job: id,
                kind,
                message: message.clone(),
                at: crate::util::time_format::now(),
            },
        );
        self.jobs[job].state = JobState::Failed {
            failure: Failure { kind, message },
        };
        self.release_steps(job);
    }
}
