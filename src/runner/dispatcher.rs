//! The one owner of run state. Every job's phase, the spend ledger, the admission queue and the
//! timers live here; `ready_ops` says what to start, `handle` takes each result. Synchronous and
//! free of I/O, so every transition is testable without a runtime; records for the journal come
//! out of `take_records`.

use super::job::{Event, JobPhase, JobRun, Op, StopReason};
use super::schedule::{PollSchedule, Shape};
use crate::budget::Ledger;
use crate::client::{Class, TaskStatus};
use crate::download::DownloadError;
use crate::journal::{FailureKind, Phase, Record, Replayed};
use crate::money::Money;
use crate::plan::Plan;
use crate::rng::Rng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Settings {
    pub run_id: String,
    pub concurrency: usize,
    pub max_attempts: u32,
    pub cap: Option<Money>,
    pub task_deadline: Duration,
    /// Real seconds per simulated second of generation (1 against the real service).
    pub time_scale: f64,
    pub downloads_at_once: usize,
    pub seed: u64,
}

/// Transient create failures tolerated before the job is left unresolved for a rerun.
const MAX_SUBMIT_RETRIES: u32 = 10;
const MAX_DOWNLOAD_RETRIES: u32 = 8;
const MAX_REFETCHES: u32 = 4;
const MAX_LOOKUP_FAILURES: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Submit,
    Poll,
    Download,
}

#[derive(Debug)]
pub struct Dispatcher {
    plan: Arc<Plan>,
    reservations: Vec<Money>,
    jobs: Vec<JobRun>,
    shapes: Vec<Shape>,
    ledger: Ledger,
    settings: Settings,
    schedule: PollSchedule,
    queue: VecDeque<usize>,
    timers: BinaryHeap<Reverse<(Instant, u64, usize, Timer)>>,
    sequence: u64,
    in_flight: usize,
    downloads_running: usize,
    ready_downloads: VecDeque<usize>,
    stop: Option<StopReason>,
    abandon: bool,
    records: Vec<Record>,
    rng: Rng,
}

/// The idempotency key of one attempt: the same run, job and attempt always give the same key.
pub fn idempotency_key(run_id: &str, job_id: &str, attempt: u32) -> String {
    format!("kb1-{run_id}-{job_id}-a{attempt}")
}

impl Dispatcher {
    /// Picks up where `history` left off. `reservations[i]` is what job i holds while in flight;
    /// `files_ok[i]` says whether a downloaded job's file verified.
    pub fn new(
        plan: Arc<Plan>,
        reservations: Vec<Money>,
        history: &Replayed,
        files_ok: &[bool],
        settings: Settings,
        now: Instant,
    ) -> Dispatcher {
        let shapes = plan
            .jobs
            .iter()
            .map(|j| Shape::of(&j.priced, j.estimate.seconds))
            .collect();
        let mut d = Dispatcher {
            jobs: Vec::with_capacity(plan.jobs.len()),
            shapes,
            reservations,
            ledger: Ledger::new(settings.cap, history.spent, history.reserved),
            schedule: PollSchedule::new(settings.time_scale, settings.seed),
            rng: Rng::new(settings.seed ^ 0x5eed),
            settings,
            queue: VecDeque::new(),
            timers: BinaryHeap::new(),
            sequence: 0,
            in_flight: 0,
            downloads_running: 0,
            ready_downloads: VecDeque::new(),
            stop: None,
            abandon: false,
            records: Vec::new(),
            plan: Arc::clone(&plan),
        };
        for (i, spec) in plan.jobs.iter().enumerate() {
            let Some(h) = history.jobs.get(spec.id.as_str()) else {
                d.jobs.push(JobRun::queued());
                d.queue.push_back(i);
                continue;
            };
            let mut job = JobRun::from_history(h);
            let paid_but_not_on_disk = job.task_id.is_some() && job.cost.is_some();
            match h.phase {
                None | Some(Phase::Waiting) => {
                    d.queue.push_back(i);
                }
                Some(Phase::Submitting) => {
                    job.phase = JobPhase::Submitting;
                    d.in_flight += 1;
                    d.push_timer(now, i, Timer::Submit);
                }
                Some(Phase::Submitted | Phase::TimedOut) => {
                    job.phase = JobPhase::Generating;
                    job.submitted = Some(now);
                    d.in_flight += 1;
                    d.push_timer(now, i, Timer::Poll);
                }
                Some(Phase::Completed) => {
                    job.phase = JobPhase::Downloading;
                    d.ready_downloads.push_back(i);
                }
                Some(Phase::Downloaded) if files_ok.get(i).copied().unwrap_or(false) => job.phase = JobPhase::Done,
                Some(Phase::Downloaded) => {
                    // Missing or changed on disk: fetch a fresh URL and download again.
                    job.phase = JobPhase::Downloading;
                    job.file = None;
                    d.push_timer(now, i, Timer::Poll);
                }
                Some(Phase::Failed)
                    if job.failure.as_ref().is_some_and(|f| f.0 == FailureKind::Download) && paid_but_not_on_disk =>
                {
                    // Paid for but never saved: a rerun tries the download again.
                    job.phase = JobPhase::Downloading;
                    job.failure = None;
                    d.push_timer(now, i, Timer::Poll);
                }
                Some(Phase::Failed) => job.phase = JobPhase::Failed,
            }
            d.jobs.push(job);
        }
        d
    }

    pub fn jobs(&self) -> &[JobRun] {
        &self.jobs
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn stop_reason(&self) -> Option<&StopReason> {
        self.stop.as_ref()
    }

    pub fn abandoned(&self) -> bool {
        self.abandon
    }

    /// Records for the journal produced since the last call, in order.
    pub fn take_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }

    fn push_timer(&mut self, at: Instant, job: usize, kind: Timer) {
        self.sequence += 1;
        self.timers.push(Reverse((at, self.sequence, job, kind)));
    }

    /// Full-jitter exponential backoff: a random wait up to min(cap, base × 2^n).
    fn backoff(&mut self, retries: u32) -> Duration {
        let base = 0.5 / self.settings.time_scale.max(1.0).sqrt();
        let ceiling = (base * 2f64.powi(retries.min(16) as i32)).min(30.0);
        Duration::from_secs_f64(self.rng.between(ceiling / 4.0, ceiling))
    }

    fn stop_submitting(&mut self, reason: StopReason) {
        if self.stop.as_ref().is_none_or(|current| reason < *current) {
            self.stop = Some(reason);
        }
    }

    fn stop_everything(&mut self, reason: StopReason) {
        self.stop_submitting(reason);
        self.abandon = true;
    }

    /// Ctrl-C: the first stops new submissions; a second abandons what is in flight.
    pub fn interrupt(&mut self, level: u8) {
        self.stop_submitting(StopReason::Interrupted);
        if level >= 2 {
            self.abandon = true;
        }
    }

    /// `--max-runtime` elapsed: submit nothing more.
    pub fn stop_for_runtime(&mut self) {
        self.stop_submitting(StopReason::MaxRuntime);
    }

    /// The earliest timer, for the executor's one sleep.
    pub fn next_wakeup(&self) -> Option<Instant> {
        if self.abandon {
            None
        } else {
            self.timers.peek().map(|Reverse((at, ..))| *at)
        }
    }

    /// Nothing running, nothing scheduled, nothing admissible: the run is over.
    pub fn idle(&self) -> bool {
        self.abandon
            || (self.timers.is_empty()
                && self.ready_downloads.is_empty()
                && !self.jobs.iter().any(|j| j.busy)
                && (self.queue.is_empty() || self.stop.is_some()))
    }

    fn record(&mut self, record: Record) {
        self.records.push(record);
    }

    fn job_id(&self, job: usize) -> String {
        self.plan.jobs[job].id.to_string()
    }

    /// The operations to start now.
    pub fn ready_ops(&mut self, now: Instant) -> Vec<Op> {
        let mut ops = Vec::new();
        if self.abandon {
            return ops;
        }
        while let Some(Reverse((at, _, job, kind))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.jobs[job].busy {
                continue;
            }
            match (kind, self.jobs[job].phase) {
                (Timer::Submit, JobPhase::Submitting) => {
                    let key = self.jobs[job].key.clone().unwrap_or_default();
                    self.jobs[job].busy = true;
                    ops.push(Op::Submit { job, key, intent: None });
                }
                (Timer::Poll, JobPhase::Generating) => {
                    let overdue = self.jobs[job]
                        .submitted
                        .is_some_and(|s| now.duration_since(s) > self.settings.task_deadline);
                    if overdue {
                        self.time_out(job);
                        continue;
                    }
                    self.start_poll(job, &mut ops);
                }
                (Timer::Poll, JobPhase::Downloading) => self.start_poll(job, &mut ops),
                (Timer::Download, JobPhase::Downloading) => self.ready_downloads.push_back(job),
                _ => {}
            }
        }
        while self.downloads_running < self.settings.downloads_at_once.max(1) {
            let Some(job) = self.ready_downloads.pop_front() else {
                break;
            };
            let Some(url) = self.jobs[job].url.clone() else {
                self.push_timer(now, job, Timer::Poll);
                continue;
            };
            self.jobs[job].busy = true;
            self.downloads_running += 1;
            ops.push(Op::Download { job, url });
        }
        if self.stop.is_none() {
            while self.in_flight < self.settings.concurrency {
                let Some(&job) = self.queue.front() else { break };
                let amount = self.reservations[job];
                if let Err(cap) = self.ledger.try_reserve(amount) {
                    self.stop_submitting(StopReason::CapReached {
                        needed: cap.needed,
                        left: cap.left,
                    });
                    break;
                }
                self.queue.pop_front();
                let id = self.job_id(job);
                let j = &mut self.jobs[job];
                j.attempt += 1;
                j.retries = 0;
                j.polls = 0;
                j.phase = JobPhase::Submitting;
                j.reserved = amount;
                j.busy = true;
                let key = idempotency_key(&self.settings.run_id, &id, j.attempt);
                j.key = Some(key.clone());
                let intent = Record::Submitting {
                    job: id,
                    attempt: j.attempt,
                    key: key.clone(),
                    reserve: amount.micro_cents(),
                    at: crate::time_format::now(),
                };
                self.in_flight += 1;
                ops.push(Op::Submit {
                    job,
                    key,
                    intent: Some(intent),
                });
            }
        }
        ops
    }

    fn start_poll(&mut self, job: usize, ops: &mut Vec<Op>) {
        match self.jobs[job].task_id.clone() {
            Some(task_id) => {
                self.jobs[job].busy = true;
                ops.push(Op::Poll { job, task_id });
            }
            None => self.fail(job, FailureKind::NotFound, "no task id is known for this job".into()),
        }
    }

    fn time_out(&mut self, job: usize) {
        let id = self.job_id(job);
        let task_id = self.jobs[job].task_id.clone().unwrap_or_default();
        self.jobs[job].phase = JobPhase::TimedOut;
        self.jobs[job].last_error = Some(format!("still generating after {:?}", self.settings.task_deadline));
        self.in_flight = self.in_flight.saturating_sub(1);
        tracing::warn!(job = %id, task = %task_id, "still generating at the deadline: left for a rerun");
        self.record(Record::TimedOut {
            job: id,
            task_id,
            at: crate::time_format::now(),
        });
    }

    /// Ends a job for good, releasing anything it still holds.
    fn fail(&mut self, job: usize, kind: FailureKind, message: String) {
        tracing::info!(job = %self.job_id(job), kind = kind.as_str(), %message, "job failed");
        let id = self.job_id(job);
        let j = &mut self.jobs[job];
        if matches!(j.phase, JobPhase::Submitting | JobPhase::Generating) {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        let held = std::mem::take(&mut j.reserved);
        self.ledger.release(held);
        j.phase = JobPhase::Failed;
        j.failure = Some((kind, message.clone()));
        j.last_error = Some(message.clone());
        self.record(Record::Failed {
            job: id,
            kind,
            message,
            at: crate::time_format::now(),
        });
    }

    /// Takes one operation's result.
    pub fn handle(&mut self, event: Event, now: Instant) {
        let job = event.job();
        self.jobs[job].busy = false;
        if let Event::Downloaded { .. } = event {
            self.downloads_running = self.downloads_running.saturating_sub(1);
        }
        if self.abandon {
            return;
        }
        match event {
            Event::JournalFailed { error, .. } => {
                self.stop_everything(StopReason::Local(error.to_string()));
            }
            Event::Submitted { result, .. } => self.on_submitted(job, result, now),
            Event::Polled { result, .. } => self.on_polled(job, result, now),
            Event::Downloaded { result, .. } => self.on_downloaded(job, result, now),
        }
    }

    fn on_submitted(
        &mut self,
        job: usize,
        result: Result<crate::client::CreatedTask, crate::client::ApiError>,
        now: Instant,
    ) {
        let id = self.job_id(job);
        match result {
            Ok(created) => {
                let j = &mut self.jobs[job];
                j.task_id = Some(created.view.id.clone());
                j.phase = JobPhase::Generating;
                j.submitted = Some(now);
                j.retries = 0;
                j.submitted_at.get_or_insert_with(crate::time_format::now);
                let attempt = j.attempt;
                tracing::info!(job = %id, task = %created.view.id, attempt, replayed = created.replayed, "submitted");
                self.record(Record::Submitted {
                    job: id,
                    attempt,
                    task_id: created.view.id.clone(),
                    at: crate::time_format::now(),
                });
                let first = match created.view.status {
                    TaskStatus::Completed | TaskStatus::Failed => Duration::ZERO,
                    _ => self.schedule.first(&self.shapes[job]),
                };
                self.push_timer(now + first, job, Timer::Poll);
            }
            Err(error) => match error.class() {
                Class::Transient => {
                    tracing::info!(job = %id, error = %error, "create outcome unknown: re-sending with the same key");
                    self.jobs[job].retries += 1;
                    self.jobs[job].last_error = Some(error.message());
                    if self.jobs[job].retries > MAX_SUBMIT_RETRIES {
                        // The task may exist: keep the reservation and the key for a rerun.
                        self.jobs[job].phase = JobPhase::Unresolved;
                        self.in_flight = self.in_flight.saturating_sub(1);
                    } else {
                        let wait = self.backoff(self.jobs[job].retries);
                        self.push_timer(now + wait, job, Timer::Submit);
                    }
                }
                Class::RateLimited => {
                    let wait = error.retry_after().unwrap_or(Duration::from_secs(1));
                    self.push_timer(now + wait, job, Timer::Submit);
                }
                Class::Credits | Class::Auth => {
                    let j = &mut self.jobs[job];
                    let held = std::mem::take(&mut j.reserved);
                    self.ledger.release(held);
                    j.phase = JobPhase::Queued;
                    j.last_error = Some(error.message());
                    let attempt = j.attempt;
                    self.in_flight = self.in_flight.saturating_sub(1);
                    self.queue.push_front(job);
                    self.record(Record::Unsubmitted {
                        job: id,
                        attempt,
                        reason: error.message(),
                        at: crate::time_format::now(),
                    });
                    if error.class() == Class::Auth {
                        self.stop_everything(StopReason::Auth(error.message()));
                    } else {
                        self.stop_submitting(StopReason::Credits(error.message()));
                    }
                }
                Class::Invalid => self.fail(job, FailureKind::Invalid, error.message()),
                Class::Conflict => self.fail(job, FailureKind::Conflict, error.message()),
                Class::NotFound | Class::Refused => self.fail(job, FailureKind::Refused, error.message()),
            },
        }
    }

    fn on_polled(
        &mut self,
        job: usize,
        result: Result<crate::client::TaskView, crate::client::ApiError>,
        now: Instant,
    ) {
        let phase = self.jobs[job].phase;
        if !matches!(phase, JobPhase::Generating | JobPhase::Downloading) {
            return;
        }
        let elapsed = self.jobs[job]
            .submitted
            .map_or(Duration::ZERO, |s| now.duration_since(s));
        let view = match result {
            Ok(view) => view,
            Err(error) => {
                self.jobs[job].last_error = Some(error.message());
                match error.class() {
                    Class::Auth => self.stop_everything(StopReason::Auth(error.message())),
                    Class::Transient | Class::RateLimited => {
                        self.jobs[job].retries += 1;
                        let wait = error
                            .retry_after()
                            .unwrap_or_else(|| self.backoff(self.jobs[job].retries));
                        self.push_timer(now + wait, job, Timer::Poll);
                    }
                    _ => {
                        self.jobs[job].retries += 1;
                        if self.jobs[job].retries >= MAX_LOOKUP_FAILURES {
                            self.fail(job, FailureKind::NotFound, error.message());
                        } else {
                            let wait = self.backoff(self.jobs[job].retries);
                            self.push_timer(now + wait, job, Timer::Poll);
                        }
                    }
                }
                return;
            }
        };
        self.jobs[job].retries = 0;
        self.jobs[job].polls += 1;
        let id = self.job_id(job);
        match view.status {
            TaskStatus::Completed => {
                let Some(url) = view.video_url.clone() else {
                    self.jobs[job].refetches += 1;
                    if self.jobs[job].refetches > MAX_REFETCHES {
                        self.fail(
                            job,
                            FailureKind::Refused,
                            "the task completed without a video URL".into(),
                        );
                    } else {
                        let wait = self.backoff(self.jobs[job].refetches);
                        self.push_timer(now + wait, job, Timer::Poll);
                    }
                    return;
                };
                if phase == JobPhase::Generating {
                    let low = self.jobs[job].last_unfinished;
                    self.schedule.learn(&self.shapes[job], low, elapsed);
                    let j = &mut self.jobs[job];
                    let held = std::mem::take(&mut j.reserved);
                    let cost = view.cost.unwrap_or(held);
                    self.ledger.settle(held, cost);
                    j.cost = Some(cost);
                    j.completed_at = Some(crate::time_format::now());
                    self.in_flight = self.in_flight.saturating_sub(1);
                    tracing::info!(job = %id, task = %view.id, cost = %cost, "completed");
                    self.record(Record::Completed {
                        job: id,
                        task_id: view.id.clone(),
                        url: url.clone(),
                        cost: cost.micro_cents(),
                        at: crate::time_format::now(),
                    });
                }
                let j = &mut self.jobs[job];
                j.url = Some(url);
                j.phase = JobPhase::Downloading;
                self.ready_downloads.push_back(job);
            }
            TaskStatus::Failed => {
                if phase == JobPhase::Downloading {
                    self.fail(
                        job,
                        FailureKind::Download,
                        "the task reports failed after completing".into(),
                    );
                    return;
                }
                let message = view.error.clone().unwrap_or_else(|| "the task failed".into());
                let j = &mut self.jobs[job];
                let held = std::mem::take(&mut j.reserved);
                self.ledger.release(held);
                j.task_failures += 1;
                j.task_id = None;
                j.last_error = Some(message.clone());
                let attempt = j.attempt;
                let retry = j.task_failures < self.settings.max_attempts;
                self.in_flight = self.in_flight.saturating_sub(1);
                tracing::info!(job = %id, task = %view.id, %message, "task failed");
                self.record(Record::AttemptFailed {
                    job: id.clone(),
                    attempt,
                    task_id: view.id.clone(),
                    message: message.clone(),
                    at: crate::time_format::now(),
                });
                if retry {
                    self.jobs[job].phase = JobPhase::Queued;
                    self.queue.push_front(job);
                } else {
                    let attempts = self.jobs[job].task_failures;
                    let message = format!(
                        "{message} (after {attempts} attempt{})",
                        if attempts == 1 { "" } else { "s" }
                    );
                    let j = &mut self.jobs[job];
                    j.phase = JobPhase::Failed;
                    j.failure = Some((FailureKind::TaskFailed, message.clone()));
                    self.record(Record::Failed {
                        job: id,
                        kind: FailureKind::TaskFailed,
                        message,
                        at: crate::time_format::now(),
                    });
                }
            }
            TaskStatus::Pending | TaskStatus::Processing | TaskStatus::Other(_) => {
                if phase == JobPhase::Downloading {
                    // A refetch that found the task not finished: odd, but look again later.
                    let wait = self.backoff(1);
                    self.push_timer(now + wait, job, Timer::Poll);
                    return;
                }
                self.jobs[job].last_unfinished = elapsed;
                let polls = self.jobs[job].polls;
                let wait = self.schedule.next(&self.shapes[job], elapsed, polls, view.retry_after);
                self.push_timer(now + wait, job, Timer::Poll);
            }
        }
    }

    fn on_downloaded(&mut self, job: usize, result: Result<crate::download::Downloaded, DownloadError>, now: Instant) {
        if self.jobs[job].phase != JobPhase::Downloading {
            return;
        }
        match result {
            Ok(d) => {
                let id = self.job_id(job);
                self.jobs[job].file = Some((d.path.clone(), d.bytes, d.checksum.clone()));
                self.jobs[job].phase = JobPhase::Done;
                tracing::info!(job = %id, path = %d.path, bytes = d.bytes, "downloaded");
                self.record(Record::Downloaded {
                    job: id,
                    path: d.path,
                    bytes: d.bytes,
                    checksum: d.checksum,
                    at: crate::time_format::now(),
                });
            }
            Err(DownloadError::Expired(status)) => {
                self.jobs[job].refetches += 1;
                if self.jobs[job].refetches > MAX_REFETCHES {
                    self.fail(
                        job,
                        FailureKind::Download,
                        format!("the video URL kept expiring (HTTP {status})"),
                    );
                } else {
                    self.push_timer(now, job, Timer::Poll);
                }
            }
            Err(DownloadError::Transient(message)) => {
                self.jobs[job].retries += 1;
                self.jobs[job].last_error = Some(message.clone());
                if self.jobs[job].retries > MAX_DOWNLOAD_RETRIES {
                    self.fail(job, FailureKind::Download, message);
                } else {
                    let wait = self.backoff(self.jobs[job].retries);
                    self.push_timer(now + wait, job, Timer::Download);
                }
            }
            Err(DownloadError::Fatal(message)) => self.fail(job, FailureKind::Download, message),
            Err(error @ DownloadError::Io { .. }) => {
                let message = if error.disk_full() {
                    format!("the disk is full: {error}")
                } else {
                    error.to_string()
                };
                self.jobs[job].last_error = Some(message.clone());
                self.stop_everything(StopReason::Local(message));
            }
        }
    }
}

#[cfg(test)]
#[path = "dispatcher_tests.rs"]
mod tests;
