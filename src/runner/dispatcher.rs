//! The one owner of run state. Every job's phase, the spend ledger, the admission queue and the
//! timers live here; `ready_ops` says what to start, `handle` takes each result. Synchronous and
//! free of I/O, so every transition is testable without a runtime; records for the journal come
//! out of `take_records`.

use super::job::{Event, JobPhase, JobRun, Op, StopReason};
use super::schedule::{PollSchedule, Shape};
use crate::client::{Class, TaskStatus};
use crate::journal::{FailureKind, Phase, Record, Replayed, Resume};
use crate::output::download::DownloadError;
use crate::plan::Plan;
use crate::runner::budget::Ledger;
use crate::util::money::Money;
use crate::util::rng::Rng;
use std::cmp::Reverse;
use std::collections::HashMap;
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
    /// The most the service has settled per shape.
    settled: HashMap<Shape, Money>,
    over_reservation: Money,
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
            settled: HashMap::new(),
            over_reservation: Money::ZERO,
        };
        for (i, spec) in plan.jobs.iter().enumerate() {
            let Some(h) = history.jobs.get(spec.id.as_str()) else {
                d.jobs.push(JobRun::queued());
                d.queue.push_back(i);
                continue;
            };
            let mut job = JobRun::from_history(h);
            if let Some(cost) = job.cost {
                d.saw_settlement(i, cost);
            }
            let file_ok = files_ok.get(i).copied().unwrap_or(false);
            match h.resume(file_ok) {
                Resume::Submit => d.queue.push_back(i),
                Resume::Resend => {
                    job.phase = JobPhase::Submitting;
                    // The intent is journaled: the POST may have gone out before the stop.
                    job.outcome_unknown = true;
                    d.in_flight += 1;
                    d.push_timer(now, i, Timer::Submit);
                }
                Resume::Reattach => {
                    job.phase = JobPhase::Generating;
                    job.submitted = Some(now);
                    d.in_flight += 1;
                    d.push_timer(now, i, Timer::Poll);
                }
                Resume::Download => {
                    job.phase = JobPhase::Downloading;
                    job.downloading_since = Some(now);
                    job.failure = None;
                    if h.phase == Some(Phase::Completed) && job.url.is_some() {
                        d.ready_downloads.push_back(i);
                    } else {
                        // Missing, cut or never saved: fetch a fresh URL and download again.
                        job.file = None;
                        d.push_timer(now, i, Timer::Poll);
                    }
                }
                Resume::Done => job.phase = JobPhase::Done,
                Resume::Failed => job.phase = JobPhase::Failed,
            }
            d.jobs.push(job);
        }
        d
    }

    /// The most the service has settled for a job's shape raises what later jobs of that shape
    /// reserve: a quote is never trusted below a bill.
    fn saw_settlement(&mut self, job: usize, cost: Money) {
        let highest = self.settled.entry(self.shapes[job].clone()).or_insert(Money::ZERO);
        *highest = (*highest).max(cost);
    }

    /// What an attempt of `job` holds against the cap.
    fn reservation(&self, job: usize) -> Money {
        let settled = self.settled.get(&self.shapes[job]).copied().unwrap_or(Money::ZERO);
        self.reservations[job].max(settled)
    }

    /// What the service billed above the reservations of the attempts it billed.
    pub fn billed_above_reservations(&self) -> Money {
        self.over_reservation
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

    /// The grace period after a stop ran out: stop waiting for what is in flight (the stop's
    /// reason stays what it was).
    pub fn abandon_in_flight(&mut self) {
        self.abandon = true;
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
                (Timer::Submit, JobPhase::Submitting) => match self.jobs[job].key.clone() {
                    Some(key) => {
                        self.jobs[job].busy = true;
                        ops.push(Op::Submit { job, key, intent: None });
                    }
                    // Only a journaled intent puts a job in Submitting, and it carries its key.
                    None => self.leave_for_rerun(job, "no idempotency key is recorded for this create".into()),
                },
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
                (Timer::Poll, JobPhase::Downloading) => {
                    if self.download_overdue(job, now) {
                        self.leave_for_rerun(job, "its video could not be fetched before the deadline".into());
                        continue;
                    }
                    self.start_poll(job, &mut ops)
                }
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
                let amount = self.reservation(job);
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
                j.outcome_unknown = false;
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
                    at: crate::util::time_format::now(),
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
            None => self.leave_for_rerun(job, "no task id is recorded for this job".into()),
        }
    }

    fn download_overdue(&self, job: usize, now: Instant) -> bool {
        self.jobs[job]
            .downloading_since
            .is_some_and(|s| now.duration_since(s) > self.settings.task_deadline)
    }

    fn time_out(&mut self, job: usize) {
        let message = format!("still generating after {:?}", self.settings.task_deadline);
        self.leave_for_rerun(job, message);
    }

    /// Stops working on a job for this run without giving it up: whatever it holds (a key whose
    /// outcome is unknown, a task, a reservation, a paid video) stays in the journal for a rerun.
    fn leave_for_rerun(&mut self, job: usize, message: String) {
        let id = self.job_id(job);
        let phase = self.jobs[job].phase;
        if matches!(phase, JobPhase::Submitting | JobPhase::Generating) {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        self.jobs[job].phase = if phase == JobPhase::Submitting {
            JobPhase::Unresolved
        } else {
            JobPhase::TimedOut
        };
        tracing::warn!(job = %id, %message, "left for a rerun");
        self.jobs[job].last_error = Some(message);
        if phase == JobPhase::Generating
            && let Some(task_id) = self.jobs[job].task_id.clone()
        {
            self.record(Record::TimedOut {
                job: id,
                task_id,
                at: crate::util::time_format::now(),
            });
        }
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
            at: crate::util::time_format::now(),
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
                j.submitted_at.get_or_insert_with(crate::util::time_format::now);
                let attempt = j.attempt;
                tracing::info!(job = %id, task = %created.view.id, attempt, replayed = created.replayed, "submitted");
                self.record(Record::Submitted {
                    job: id,
                    attempt,
                    task_id: created.view.id.clone(),
                    at: crate::util::time_format::now(),
                });
                let first = match created.view.status {
                    TaskStatus::Completed | TaskStatus::Failed => Duration::ZERO,
                    _ => self.schedule.first(&self.shapes[job]),
                };
                self.push_timer(now + first, job, Timer::Poll);
            }
            Err(error) => self.on_create_refused(job, &error, now),
        }
    }

    /// A create answered with an error (or not at all). A key whose outcome is unknown stays
    /// unresolved whatever the answer says: the first send may have made a task, and only a task
    /// id or a replay for that key settles it.
    fn on_create_refused(&mut self, job: usize, error: &crate::client::ApiError, now: Instant) {
        let id = self.job_id(job);
        let class = error.class();
        if class == Class::RateLimited {
            let wait = error.retry_after().unwrap_or(Duration::from_secs(1));
            self.push_timer(now + wait, job, Timer::Submit);
            return;
        }
        self.jobs[job].last_error = Some(error.message());
        if class == Class::Transient || self.jobs[job].outcome_unknown {
            self.jobs[job].outcome_unknown = true;
            self.jobs[job].retries += 1;
            tracing::info!(job = %id, error = %error, "create outcome unknown: re-sending with the same key later");
            match class {
                Class::Auth => {
                    self.leave_for_rerun(
                        job,
                        format!(
                            "the outcome of its create is unknown; the resend was refused: {}",
                            error.message()
                        ),
                    );
                    self.stop_everything(StopReason::Auth(error.message()));
                    return;
                }
                Class::Credits => self.stop_submitting(StopReason::Credits(error.message())),
                _ => {}
            }
            if self.jobs[job].retries > MAX_SUBMIT_RETRIES {
                let message = format!(
                    "the outcome of its create is unknown (last answer: {}); a rerun re-sends it with the same key",
                    error.message()
                );
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
                let j = &mut self.jobs[job];
                let held = std::mem::take(&mut j.reserved);
                self.ledger.release(held);
                j.phase = JobPhase::Queued;
                let attempt = j.attempt;
                self.in_flight = self.in_flight.saturating_sub(1);
                self.queue.push_front(job);
                self.record(Record::Unsubmitted {
                    job: id,
                    attempt,
                    reason: error.message(),
                    at: crate::util::time_format::now(),
                });
                if class == Class::Auth {
                    self.stop_everything(StopReason::Auth(error.message()));
                } else {
                    self.stop_submitting(StopReason::Credits(error.message()));
                }
            }
            Class::Invalid => self.fail(job, FailureKind::Invalid, error.message()),
            Class::Conflict => self.fail(job, FailureKind::Conflict, error.message()),
            _ => self.fail(job, FailureKind::Refused, error.message()),
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
                // A task id we hold is never abandoned: a 404 right after the create (an eventually
                // consistent read) or any other refusal is looked at again, until the deadline.
                match error.class() {
                    Class::Auth => self.stop_everything(StopReason::Auth(error.message())),
                    _ => {
                        self.jobs[job].retries += 1;
                        let wait = error
                            .retry_after()
                            .unwrap_or_else(|| self.backoff(self.jobs[job].retries));
                        self.push_timer(now + wait, job, Timer::Poll);
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
                    // Not finished as far as we can use it: look again (the deadline bounds it).
                    self.jobs[job].refetches += 1;
                    self.jobs[job].last_error = Some("the task completed without a video URL".into());
                    let wait = self.backoff(self.jobs[job].refetches);
                    self.push_timer(now + wait, job, Timer::Poll);
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
                    j.downloading_since = Some(now);
                    if cost > held {
                        self.over_reservation = self.over_reservation.saturating_add(cost.saturating_sub(held));
                        tracing::warn!(job = %id, reserved = %held, billed = %cost, "the service billed above the reservation");
                    }
                    j.completed_at = Some(crate::util::time_format::now());
                    self.saw_settlement(job, cost);
                    if let Some(cap) = self.ledger.cap()
                        && self.ledger.spent().saturating_add(self.ledger.reserved()) > cap
                    {
                        // Billed past the cap by a service that charged above its quote.
                        self.stop_submitting(StopReason::CapReached {
                            needed: Money::ZERO,
                            left: Money::ZERO,
                        });
                    }
                    self.in_flight = self.in_flight.saturating_sub(1);
                    tracing::info!(job = %id, task = %view.id, cost = %cost, "completed");
                    self.record(Record::Completed {
                        job: id,
                        task_id: view.id.clone(),
                        url: url.clone(),
                        cost: cost.micro_cents(),
                        at: crate::util::time_format::now(),
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
                    at: crate::util::time_format::now(),
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
                        at: crate::util::time_format::now(),
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

    fn on_downloaded(
        &mut self,
        job: usize,
        result: Result<crate::output::download::Downloaded, DownloadError>,
        now: Instant,
    ) {
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
                    at: crate::util::time_format::now(),
                });
            }
            Err(DownloadError::Expired(status)) => {
                self.jobs[job].refetches += 1;
                if self.jobs[job].refetches > MAX_REFETCHES {
                    // Paid for: never given up. A rerun asks the task for a fresh URL.
                    self.leave_for_rerun(job, format!("the video URL kept expiring (HTTP {status})"));
                } else {
                    self.push_timer(now, job, Timer::Poll);
                }
            }
            Err(DownloadError::Transient(message)) => {
                self.jobs[job].retries += 1;
                self.jobs[job].last_error = Some(message.clone());
                if self.jobs[job].retries > MAX_DOWNLOAD_RETRIES || self.download_overdue(job, now) {
                    self.leave_for_rerun(job, message);
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
