//! The dispatcher's transitions: what each operation's result does to its job. Every durable
//! change goes through `record` (the journal's fold); the rest is this run's bookkeeping.

use super::{
    Dispatcher, MAX_DOWNLOAD_RETRIES, MAX_NOT_READY, MAX_REFETCHES, MAX_REFUSED_REPLAYS, MAX_SUBMIT_RETRIES,
    MAX_UNSENT, MAX_UPLOAD_RETRIES, Timer,
};
use crate::client::uploads::{PreparedBody, UploadError};
use crate::client::{ApiError, Class, CreatedTask, TaskStatus, TaskView};
use crate::journal::{FailureKind, Record};
use crate::output::download::{DownloadError, Downloaded};
use crate::runner::job::{Event, JobState, StopReason};
use crate::util::money::Money;
use crate::util::time_format;
use std::time::Duration;
use tokio::time::Instant;

impl Dispatcher {
    /// Takes one operation's result.
    pub fn handle(&mut self, event: Event, now: Instant) {
        let Some(job) = event.job() else {
            match event {
                Event::Claimed { result } => self.on_claimed(result, now),
                Event::Heartbeat { result } => self.on_heartbeat(result, now),
                _ => {}
            }
            return;
        };
        if let Event::Cancelled { .. } = event {
            // Dropped when its claim was lost: `disown` has settled what it held.
            return;
        }
        self.jobs[job].busy = false;
        if let Event::Downloaded { .. } = event {
            self.downloads_running = self.downloads_running.saturating_sub(1);
        }
        if self.abandon {
            return;
        }
        match event {
            Event::JournalFailed { error, .. } if error.over_cap => self.on_intent_over_cap(job),
            Event::JournalFailed { error, .. } if error.fenced => self.on_fenced(job),
            Event::JournalFailed { error, .. } => {
                self.stop_everything(StopReason::Local(error.to_string()));
            }
            Event::Claimed { .. } | Event::Heartbeat { .. } | Event::Cancelled { .. } => {}
            Event::Prepared { result, .. } => self.on_prepared(job, result, now),
            Event::Submitted { result, .. } => self.on_submitted(job, result, now),
            Event::Polled { result, .. } => self.on_polled(job, result, now),
            Event::Downloaded { result, .. } => self.on_downloaded(job, result, now),
        }
    }

    /// A job's local files are uploaded (its body names them) or could not be: the intent goes
    /// out with the body, or the job fails (or tries again) with nothing created.
    fn on_prepared(&mut self, job: usize, result: Result<PreparedBody, UploadError>, now: Instant) {
        let JobState::Preparing { reserve } = self.jobs[job].state.clone() else {
            return;
        };
        let body = match result {
            Ok(body) => body,
            Err(error) if error.transient && self.jobs[job].retries < MAX_UPLOAD_RETRIES => {
                self.jobs[job].retries += 1;
                self.jobs[job].note = Some(error.message);
                let wait = self.backoff(self.jobs[job].retries);
                self.push_timer(now + wait, job, Timer::Prepare);
                return;
            }
            Err(error) => return self.fail(job, FailureKind::Upload, error.message),
        };
        let id = self.job_id(job);
        if self.stop.is_some() {
            // Stopped while uploading: nothing was sent; the job waits for a rerun.
            self.ledger.release(reserve);
            self.in_flight = self.in_flight.saturating_sub(1);
            self.jobs[job].state = JobState::Queued;
            return;
        }
        let attempt = self.jobs[job].facts.attempt + 1;
        let key = super::idempotency_key(&self.settings.run_id, &id, attempt);
        // Journaled before it goes: the executor makes the intent durable, then sends.
        let intent = Record::Submitting {
            job: id,
            attempt,
            key: key.clone(),
            reserve: reserve.micro_cents(),
            body: Some(body.body),
            send_until: body.send_until.map(time_format::rfc3339),
            at: time_format::now(),
        };
        self.record_intent(job, &intent);
        let j = &mut self.jobs[job];
        j.retries = 0;
        j.polls = 0;
        j.outcome_unknown = false;
        j.intent = Some(Box::new(intent));
        j.state = JobState::Submitting { key };
        self.ready_submits.push_back(job);
    }

    fn on_submitted(&mut self, job: usize, result: Result<CreatedTask, ApiError>, now: Instant) {
        if !matches!(self.jobs[job].state, JobState::Submitting { .. }) {
            return;
        }
        let created = match result {
            Ok(created) => created,
            Err(error) => return self.on_create_refused(job, &error, now),
        };
        let id = self.job_id(job);
        let attempt = self.jobs[job].facts.attempt;
        let task_id = created.view.id.clone();
        tracing::info!(job = %id, task = %task_id, attempt, replayed = created.replayed, "submitted");
        self.record(
            job,
            Record::Submitted {
                job: id,
                attempt,
                task_id: task_id.clone(),
                at: time_format::now(),
            },
        );
        let j = &mut self.jobs[job];
        j.state = JobState::Generating { task_id };
        j.submitted = Some(now);
        j.last_unfinished = Duration::ZERO;
        j.not_before = None;
        j.learnable = true;
        j.retries = 0;
        let shape = self.shape_ids[job];
        self.generating[shape.index()].insert(job);
        self.schedule
            .started(shape, job, now.saturating_duration_since(self.started).as_secs_f64());
        match created.view.status {
            TaskStatus::Completed | TaskStatus::Failed => self.set_poll(job, now),
            _ => self.plan_poll(job, now),
        }
    }

    /// A create answered with an error (or not at all). A key whose outcome is unknown stays
    /// unresolved whatever the answer says: the first send may have made a task, and only a task
    /// id or a replay for that key settles it.
    fn on_create_refused(&mut self, job: usize, error: &ApiError, now: Instant) {
        let id = self.job_id(job);
        let class = error.class();
        if class == Class::RateLimited {
            let wait = error.retry_after().unwrap_or(Duration::from_secs(1));
            self.push_timer(now + wait, job, Timer::Submit);
            return;
        }
        self.jobs[job].note = Some(error.message());
        if class == Class::NotSent && !self.jobs[job].outcome_unknown {
            // A first send held back at the last moment: its uploads would have expired before
            // the service saw them (it waited for the rate, or this worker was paused). Nothing
            // went out; the attempt ends unsent and the job uploads again under a new key.
            self.jobs[job].unsent += 1;
            if self.jobs[job].unsent > MAX_UNSENT {
                let message = format!(
                    "its uploads kept expiring before its create could be sent ({}); raise --rate or lower --concurrency",
                    error.message()
                );
                return self.fail(job, FailureKind::Upload, message);
            }
            self.end_unsent(job, error.message());
            self.enqueue(job, true);
            return;
        }
        if class == Class::Transient || self.jobs[job].outcome_unknown {
            self.jobs[job].outcome_unknown = true;
            self.jobs[job].retries += 1;
            tracing::info!(job = %id, error = %error, "create outcome unknown: re-sending with the same key later");
            match class {
                Class::Auth => {
                    let message = format!(
                        "the outcome of its create is unknown; the resend was refused: {}",
                        error.message()
                    );
                    self.leave_for_rerun(job, message);
                    self.stop_everything(StopReason::Auth(error.message()));
                    return;
                }
                Class::Credits => self.stop_submitting(StopReason::Credits(error.message())),
                _ => {}
            }
            if class == Class::Invalid {
                self.jobs[job].refused_replays = self.jobs[job].refused_replays.saturating_add(1);
            }
            // Refused outright a few times (not a one-off refusal a later replay gets past): what
            // the first send did cannot be learned this run.
            let refused = u32::from(self.jobs[job].refused_replays) >= MAX_REFUSED_REPLAYS;
            if refused || self.jobs[job].retries > MAX_SUBMIT_RETRIES {
                let message = if class == Class::Invalid {
                    // The contract answers a replay (the same key, the same bytes) with the task
                    // the first send made; a refusal may only mean its uploads expired, which
                    // proves nothing about the first send.
                    format!(
                        "the outcome of its create is unknown: re-sending its exact first request under the same key was refused ({}); if the first send made a task, it is paid and its money stays held; a rerun re-sends it again",
                        error.message()
                    )
                } else {
                    format!(
                        "the outcome of its create is unknown (last answer: {}); a rerun re-sends it with the same key",
                        error.message()
                    )
                };
                self.leave_for_rerun(job, message);
            } else {
                let wait = self.backoff(self.jobs[job].retries);
                self.push_timer(now + wait, job, Timer::Submit);
            }
            return;
        }
        // The first send of this key, refused outright: no task was made.
        match class {
            Class::Credits | Class::Auth => {
                self.end_unsent(job, error.message());
                self.queue.push_front(job);
                if class == Class::Auth {
                    self.stop_everything(StopReason::Auth(error.message()));
                } else {
                    self.stop_submitting(StopReason::Credits(error.message()));
                }
            }
            Class::NotReady => {
                // The parent was seen completed; the service has not caught up. No task was
                // made: this attempt ends, and the step is admitted again after a wait.
                self.jobs[job].not_ready += 1;
                if self.jobs[job].not_ready > MAX_NOT_READY {
                    let message = format!(
                        "its source task was still not ready after {MAX_NOT_READY} tries: {}",
                        error.message()
                    );
                    return self.fail(job, FailureKind::Continuation, message);
                }
                self.end_unsent(job, error.message());
                let wait = self.backoff(self.jobs[job].not_ready);
                self.push_timer(now + wait, job, Timer::Admit);
            }
            Class::Invalid
                if matches!(
                    error.code(),
                    Some("source_task_unusable" | "continuation_not_supported")
                ) =>
            {
                self.fail(job, FailureKind::Continuation, error.message())
            }
            Class::Invalid => self.fail(job, FailureKind::Invalid, error.message()),
            Class::Conflict => self.fail(job, FailureKind::Conflict, error.message()),
            _ => self.fail(job, FailureKind::Refused, error.message()),
        }
    }

    /// The first send of an attempt was refused outright (no task made): the attempt ends
    /// unsubmitted, its money released, and the job is queued (the caller says when it goes again).
    fn end_unsent(&mut self, job: usize, reason: String) {
        self.ledger.release(self.jobs[job].facts.reserved);
        let attempt = self.jobs[job].facts.attempt;
        let id = self.job_id(job);
        self.record(
            job,
            Record::Unsubmitted {
                job: id,
                attempt,
                reason,
                at: time_format::now(),
            },
        );
        self.jobs[job].state = JobState::Queued;
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    fn on_polled(&mut self, job: usize, result: Result<TaskView, ApiError>, now: Instant) {
        let generating = match &self.jobs[job].state {
            JobState::Generating { .. } => true,
            JobState::Downloading { .. } => false,
            _ => return,
        };
        let elapsed = self.jobs[job]
            .submitted
            .map_or(Duration::ZERO, |s| now.duration_since(s));
        let view = match result {
            Ok(view) => view,
            Err(error) => {
                self.jobs[job].note = Some(error.message());
                // A task id we hold is never abandoned: a 404 right after the create (an eventually
                // consistent read) or any other refusal is looked at again, until the deadline.
                match error.class() {
                    Class::Auth => self.stop_everything(StopReason::Auth(error.message())),
                    _ => {
                        self.jobs[job].retries += 1;
                        let wait = error
                            .retry_after()
                            .unwrap_or_else(|| self.backoff(self.jobs[job].retries));
                        self.set_poll(job, now + wait);
                    }
                }
                return;
            }
        };
        self.jobs[job].retries = 0;
        self.jobs[job].polls += 1;
        match view.status {
            TaskStatus::Completed => self.on_completed(job, view, generating, elapsed, now),
            TaskStatus::Failed if !generating => {
                let message = "the task reports failed after completing".into();
                self.fail(job, FailureKind::Download, message);
            }
            TaskStatus::Failed => self.on_task_failed(job, &view),
            TaskStatus::Pending | TaskStatus::Processing | TaskStatus::Other(_) => {
                if !generating {
                    // A refetch that found the task not finished: odd, but look again later.
                    let wait = self.backoff(1);
                    self.set_poll(job, now + wait);
                    return;
                }
                self.jobs[job].last_unfinished = elapsed;
                if self.jobs[job].learnable {
                    self.schedule
                        .unfinished(self.shape_ids[job], job, elapsed.as_secs_f64());
                }
                // A `Retry-After` on a status answer wins over any plan, re-plans included.
                self.jobs[job].not_before = view.retry_after.map(|wait| now + wait);
                self.plan_poll(job, now);
            }
        }
    }

    fn on_completed(&mut self, job: usize, view: TaskView, generating: bool, elapsed: Duration, now: Instant) {
        let Some(url) = view.video_url.clone() else {
            // Not finished as far as we can use it: look again (the deadline bounds it).
            self.jobs[job].refetches += 1;
            self.jobs[job].note = Some("the task completed without a video URL".into());
            let wait = self.backoff(self.jobs[job].refetches);
            self.set_poll(job, now + wait);
            return;
        };
        if generating {
            let id = self.job_id(job);
            let shape = self.shape_ids[job];
            if self.jobs[job].learnable && self.generating[shape.index()].remove(&job) {
                let low = self.jobs[job].last_unfinished.as_secs_f64();
                let created = self.jobs[job]
                    .submitted
                    .map_or(0.0, |s| s.saturating_duration_since(self.started).as_secs_f64());
                let changed = self.schedule.finished(shape, job, created, low, elapsed.as_secs_f64());
                self.replan(&changed, now);
            } else {
                self.stop_generating(job);
            }
            let held = self.jobs[job].facts.reserved;
            let cost = view.cost.unwrap_or(held);
            self.ledger.settle(held, cost);
            if cost > held {
                self.over_reservation = self.over_reservation.saturating_add(cost.saturating_sub(held));
                tracing::warn!(job = %id, reserved = %held, billed = %cost, "the service billed above the reservation");
            }
            tracing::info!(job = %id, task = %view.id, cost = %cost, "completed");
            self.record(
                job,
                Record::Completed {
                    job: id,
                    task_id: view.id.clone(),
                    url: url.clone(),
                    cost: cost.micro_cents(),
                    at: time_format::now(),
                },
            );
            self.in_flight = self.in_flight.saturating_sub(1);
            self.jobs[job].downloading_since = Some(now);
            self.saw_settlement(job, cost);
            self.release_steps(job);
            self.claim_soon(now);
            if let Some(cap) = self.ledger.cap()
                && self.ledger.spent().saturating_add(self.ledger.reserved()) > cap
            {
                // Billed past the cap by a service that charged above its quote.
                self.stop_submitting(StopReason::CapReached {
                    needed: Money::ZERO,
                    left: Money::ZERO,
                });
            }
        }
        self.jobs[job].state = JobState::Downloading {
            task_id: view.id,
            url: Some(url),
        };
        self.ready_downloads.push_back(job);
    }

    /// The task ended `failed`: not billed. Another attempt (a new key) if any are left.
    fn on_task_failed(&mut self, job: usize, view: &TaskView) {
        let id = self.job_id(job);
        let message = view.error.clone().unwrap_or_else(|| "the task failed".into());
        self.ledger.release(self.jobs[job].facts.reserved);
        self.stop_generating(job);
        let attempt = self.jobs[job].facts.attempt;
        tracing::info!(job = %id, task = %view.id, %message, "task failed");
        self.record(
            job,
            Record::AttemptFailed {
                job: id.clone(),
                attempt,
                task_id: view.id.clone(),
                message: message.clone(),
                at: time_format::now(),
            },
        );
        self.in_flight = self.in_flight.saturating_sub(1);
        let attempts = self.jobs[job].facts.task_failures();
        if attempts.saturating_sub(self.jobs[job].failures_before) < self.settings.max_attempts {
            self.jobs[job].state = JobState::Queued;
            self.queue.push_front(job);
        } else {
            // `fail` counts in-flight jobs; this one has already left.
            self.jobs[job].state = JobState::Queued;
            let message = format!(
                "{message} (after {attempts} attempt{})",
                if attempts == 1 { "" } else { "s" }
            );
            self.fail(job, FailureKind::TaskFailed, message);
        }
    }

    fn on_downloaded(&mut self, job: usize, result: Result<Downloaded, DownloadError>, now: Instant) {
        if !matches!(self.jobs[job].state, JobState::Downloading { .. }) {
            return;
        }
        match result {
            Ok(d) => {
                let id = self.job_id(job);
                tracing::info!(job = %id, path = %d.path, bytes = d.bytes, "downloaded");
                self.record(
                    job,
                    Record::Downloaded {
                        job: id,
                        path: d.path,
                        bytes: d.bytes,
                        checksum: d.checksum,
                        at: time_format::now(),
                    },
                );
                if let Some(video) = self.jobs[job].facts.video.clone() {
                    self.jobs[job].state = JobState::Done { video };
                }
                self.claim_soon(now);
            }
            Err(DownloadError::ClaimLost) => self.on_fenced(job),
            Err(DownloadError::Expired(status)) => {
                self.jobs[job].refetches += 1;
                if self.jobs[job].refetches > MAX_REFETCHES {
                    // Paid for: never given up. A rerun asks the task for a fresh URL.
                    self.leave_for_rerun(job, format!("the video URL kept expiring (HTTP {status})"));
                } else {
                    self.set_poll(job, now);
                }
            }
            Err(DownloadError::Transient(message)) => {
                self.jobs[job].retries += 1;
                self.jobs[job].note = Some(message.clone());
                if self.jobs[job].retries > MAX_DOWNLOAD_RETRIES || self.download_overdue(job, now) {
                    self.leave_for_rerun(job, message);
                } else {
                    let wait = self.backoff(self.jobs[job].retries);
                    self.push_timer(now + wait, job, Timer::Download);
                }
            }
            // The task is paid: its video is never given up, whatever stopped this fetch. It is
            // left for a rerun (which `status` shows as a download to do), never failed.
            Err(DownloadError::Fatal(message)) => {
                let message = if message.contains("-byte limit") {
                    format!("{message}: it is paid; rerun with a larger --max-video-bytes to fetch it")
                } else {
                    message
                };
                self.leave_for_rerun(job, message);
            }
            Err(error @ DownloadError::Io { .. }) => {
                let message = if error.disk_full() {
                    format!("the disk is full: {error}")
                } else {
                    error.to_string()
                };
                self.jobs[job].note = Some(message.clone());
                self.stop_everything(StopReason::Local(message));
            }
        }
    }
}
