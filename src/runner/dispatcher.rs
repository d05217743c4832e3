//! The one owner of run state. Every job's phase, the spend ledger, the admission queue and the
//! timers live here; `ready_ops` says what to start, `handle` takes each result. Synchronous and
//! free of I/O, so every transition is testable without a runtime; records for the journal come
//! out of `take_records`.

use super::job::{JobRun, JobState, Op, StopReason};
use super::schedule::{PollSchedule, Pressure, Shape, ShapeId};
use crate::journal::{Failure, FailureKind, Phase, Record, Replayed};
use crate::plan::Plan;
use crate::runner::budget::Ledger;
use crate::store::Fence;
use crate::util::money::Money;
use crate::util::rng::Rng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Settings {
    pub run_id: String,
    pub concurrency: usize,
    pub max_attempts: u32,
    /// `--retry-failed[=PATTERN]`: failed jobs (whose reason contains PATTERN, if one is given)
    /// get `max_attempts` new attempts, each with a new key.
    pub retry_failed: Option<String>,
    /// `--refresh-expired-uploads`: a create of unknown outcome whose uploads expired is uploaded
    /// again and re-sent under the same key (a task the first send made answers 409, never a
    /// second bill).
    pub cap: Option<Money>,
    pub task_deadline: Duration,
    /// `--time-scale`, if given: a hint of how much faster than real time the service runs.
    pub time_hint: Option<f64>,
    /// `--rate`: requests per second, for how dear a status read is.
    pub rate: f64,
    pub downloads_at_once: usize,
    pub seed: u64,
    /// A worker of a shared sweep (`--state`): it works the jobs it claims.
    pub shared: Option<SharedSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SharedSettings {
    /// How long a claim holds without a heartbeat.
    pub lease: Duration,
}

/// Transient create failures tolerated before the job is left unresolved for a rerun.
const MAX_SUBMIT_RETRIES: u32 = 10;
const MAX_DOWNLOAD_RETRIES: u32 = 8;
const MAX_REFETCHES: u32 = 4;
/// Transient upload failures tolerated before the job fails (nothing was created for it).
const MAX_UPLOAD_RETRIES: u32 = 5;
/// Answers of 409 `source_task_not_ready` a step takes (each a new attempt after a wait) before
/// it fails: its parent was seen completed, so the service should agree soon.
const MAX_NOT_READY: u32 = 8;
/// First sends held back for expiring uploads, per job and run, before the job fails.
const MAX_UNSENT: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// A job back to the admission queue (a step whose source the service did not see ready).
    Admit,
    Prepare,
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
    /// Each job's shape as the schedule knows it.
    shape_ids: Vec<ShapeId>,
    /// Jobs generating, by shape: who is re-planned when a shape's plan changes.
    generating: Vec<HashSet<usize>>,
    /// When the dispatcher was made: the run's clock for the schedule.
    started: Instant,
    /// Creates and polls handed out per second, lately (an average over about two seconds).
    usage: Usage,
    ledger: Ledger,
    settings: Settings,
    schedule: PollSchedule,
    queue: VecDeque<usize>,
    timers: BinaryHeap<Reverse<(Instant, u64, usize, Timer)>>,
    sequence: u64,
    in_flight: usize,
    downloads_running: usize,
    ready_downloads: VecDeque<usize>,
    /// Jobs whose uploads are done and whose intent waits to go out with its create.
    ready_submits: VecDeque<usize>,
    stop: Option<StopReason>,
    abandon: bool,
    /// Records for the journal, each with the fence of the claim its job was held under.
    records: Vec<(Record, Option<Fence>)>,
    /// Jobs whose operations in flight are to be dropped (another worker holds them now).
    cancelled: Vec<usize>,
    rng: Rng,
    /// The most the service has settled per shape.
    settled: HashMap<Shape, Money>,
    over_reservation: Money,
    /// Each job's steps (the jobs that continue its task).
    children: HashMap<usize, Vec<usize>>,
    /// A shared sweep's claims and heartbeats.
    shared: claims::SharedRun,
}

/// A decaying count of requests started, for the request rate of the last seconds.
#[derive(Debug, Clone, Copy)]
struct Usage {
    count: f64,
    at: Option<Instant>,
}

/// Seconds over which `Usage` averages.
const USAGE_WINDOW: f64 = 2.0;

impl Usage {
    fn decayed(&self, now: Instant) -> f64 {
        self.at.map_or(0.0, |at| {
            self.count * (-now.saturating_duration_since(at).as_secs_f64() / USAGE_WINDOW).exp()
        })
    }

    fn note(&mut self, now: Instant) {
        self.count = self.decayed(now) + 1.0;
        self.at = Some(now);
    }

    fn per_second(&self, now: Instant) -> f64 {
        self.decayed(now) / USAGE_WINDOW
    }
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
        let shapes: Vec<Shape> = plan
            .jobs
            .iter()
            .map(|j| Shape::of(&j.priced, j.estimate.seconds))
            .collect();
        let mut schedule = PollSchedule::new(settings.time_hint);
        let shape_ids: Vec<ShapeId> = shapes.iter().map(|s| schedule.shape_id(s)).collect();
        let distinct = shape_ids.iter().map(|id| id.index() + 1).max().unwrap_or(0);
        let mut d = Dispatcher {
            jobs: Vec::new(),
            shapes,
            shape_ids,
            generating: vec![HashSet::new(); distinct],
            usage: Usage { count: 0.0, at: None },
            started: now,
            reservations,
            ledger: Ledger::new(settings.cap, history.spent, history.reserved),
            schedule,
            rng: Rng::new(settings.seed ^ 0x5eed),
            settings,
            queue: VecDeque::new(),
            timers: BinaryHeap::new(),
            sequence: 0,
            in_flight: 0,
            downloads_running: 0,
            ready_downloads: VecDeque::new(),
            ready_submits: VecDeque::new(),
            stop: None,
            abandon: false,
            records: Vec::new(),
            cancelled: Vec::new(),
            plan: Arc::clone(&plan),
            settled: HashMap::new(),
            over_reservation: Money::ZERO,
            children: HashMap::new(),
            shared: claims::SharedRun::default(),
        };
        for (i, spec) in plan.jobs.iter().enumerate() {
            if let Some(parent) = spec.parent {
                d.children.entry(parent).or_default().push(i);
            }
        }
        d.jobs = vec![JobRun::queued(); plan.jobs.len()];
        if d.settings.shared.is_some() {
            // A worker of a shared sweep works only the jobs it claims; it knows the others' facts
            // (a step needs its parent's task) but leaves them alone.
            for (i, spec) in plan.jobs.iter().enumerate() {
                if let Some(facts) = history.jobs.get(spec.id.as_str()) {
                    if let Some(cost) = facts.cost {
                        d.saw_settlement(i, cost);
                    }
                    d.jobs[i].facts = facts.clone();
                }
                d.jobs[i].state = JobState::Elsewhere;
            }
            d.shared.next_claim = Some(now);
            d.shared.next_heartbeat = Some(now);
            // This worker's own ledger starts empty; until the first heartbeat the others hold
            // what the sweep's records say.
            d.ledger = Ledger::new(d.settings.cap, Money::ZERO, Money::ZERO);
            d.ledger.set_others(history.spent.saturating_add(history.reserved));
            return d;
        }
        // A step comes after its parent in the plan, so its parent is placed first.
        for (i, spec) in plan.jobs.iter().enumerate() {
            let facts = history.jobs.get(spec.id.as_str()).cloned();
            d.place(i, facts, files_ok.get(i).copied().unwrap_or(false), now);
        }
        d
    }

    /// Puts job `i` where its facts say it stands (none: never started), as a resume does: queued
    /// (or waiting for its parent), re-sent, polled, downloaded, or left as it ended.
    fn place(&mut self, i: usize, facts: Option<crate::journal::JobFacts>, video_ok: bool, now: Instant) {
        let Some(facts) = facts else {
            self.jobs[i] = JobRun::queued();
            self.enqueue(i, false);
            return;
        };
        if let Some(cost) = facts.cost {
            self.saw_settlement(i, cost);
        }
        let state = JobState::resumed(&facts, video_ok);
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

    /// Sets the spend cap before the run starts (a default made from its estimate).
    pub fn set_cap(&mut self, cap: Option<Money>) {
        self.ledger.set_cap(cap);
        self.settings.cap = cap;
    }

    pub fn stop_reason(&self) -> Option<&StopReason> {
        self.stop.as_ref()
    }

    pub fn abandoned(&self) -> bool {
        self.abandon
    }

    /// Records for the journal produced since the last call, in order, each with the fence of
    /// the claim it was made under (none for a run of its own).
    pub fn take_stamped(&mut self) -> Vec<(Record, Option<Fence>)> {
        std::mem::take(&mut self.records)
    }

    /// `take_stamped` without the fences.
    pub fn take_records(&mut self) -> Vec<Record> {
        self.take_stamped().into_iter().map(|(r, _)| r).collect()
    }

    /// The fence of the claim this worker holds `job` under (none for a run of its own): what
    /// an operation started for it now carries.
    pub fn fence_of(&self, job: usize) -> Option<Fence> {
        self.jobs[job].fence
    }

    /// Until when the body of the job's current attempt may be sent at all (its uploads' life).
    fn send_until(&self, job: usize) -> Option<std::time::SystemTime> {
        self.jobs[job]
            .facts
            .send_until
            .as_deref()
            .and_then(crate::util::time_format::parse_rfc3339)
    }

    /// Jobs whose operations in flight must stop now (their claim is lost).
    pub fn take_cancelled(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.cancelled)
    }

    fn push_timer(&mut self, at: Instant, job: usize, kind: Timer) {
        self.sequence += 1;
        self.timers.push(Reverse((at, self.sequence, job, kind)));
    }

    /// Looks at the job's task at `at` (not before a `Retry-After` it was given): this replaces
    /// any look planned earlier.
    fn set_poll(&mut self, job: usize, at: Instant) {
        let at = self.jobs[job].not_before.map_or(at, |nb| at.max(nb));
        self.push_timer(at, job, Timer::Poll);
        self.jobs[job].poll_seq = self.sequence;
        self.jobs[job].poll_at = Some(at);
    }

    /// A look replaced by a later plan.
    fn stale(&self, seq: u64, job: usize, kind: Timer) -> bool {
        kind == Timer::Poll && self.jobs[job].poll_seq != seq
    }

    /// Drops replaced looks from the top of the timers, so a run is not kept waiting by them.
    fn prune_stale(&mut self) {
        while let Some(Reverse((_, seq, job, kind))) = self.timers.peek().copied()
            && self.stale(seq, job, kind)
        {
            self.timers.pop();
        }
    }

    /// When to look next at a generating task, from what the schedule knows now (never before
    /// now); `None` for a task whose create time is unknown.
    fn next_look(&mut self, job: usize, now: Instant) -> Option<Instant> {
        let submitted = self.jobs[job].submitted?;
        let elapsed = now.saturating_duration_since(submitted).as_secs_f64();
        let seen = self.jobs[job].last_unfinished.as_secs_f64();
        let pressure = self.pressure(now);
        let at = self
            .schedule
            .next_poll(self.shape_ids[job], job, seen, elapsed, pressure);
        Some((submitted + Duration::from_secs_f64(at.clamp(0.0, 1e7))).max(now))
    }

    /// Plans the next look at a generating task.
    fn plan_poll(&mut self, job: usize, now: Instant) {
        let at = self.next_look(job, now).unwrap_or(now);
        self.set_poll(job, at);
    }

    /// `plan_poll` for a task that has a look planned already: the timer is replaced only when
    /// the plan moved it (by more than a millisecond).
    fn replan_poll(&mut self, job: usize, now: Instant) {
        let Some(at) = self.next_look(job, now) else {
            return;
        };
        let at = self.jobs[job].not_before.map_or(at, |nb| at.max(nb));
        let moved = self.jobs[job].poll_at.is_none_or(|old| {
            let gap = if old > at { old - at } else { at - old };
            gap > Duration::from_millis(1)
        });
        if moved {
            self.set_poll(job, at);
        }
    }

    /// Re-plans the tasks in flight of shapes whose plan changed: a look planned later than the
    /// new plan comes forward, one planned sooner waits.
    fn replan(&mut self, shapes: &[ShapeId], now: Instant) {
        for shape in shapes {
            let jobs: Vec<usize> = self.generating[shape.index()].iter().copied().collect();
            for job in jobs {
                if !self.jobs[job].busy && matches!(self.jobs[job].state, JobState::Generating { .. }) {
                    self.replan_poll(job, now);
                }
            }
        }
    }

    /// The job's task no longer generates (finished, failed, left): the schedule forgets it.
    fn stop_generating(&mut self, job: usize) {
        let shape = self.shape_ids[job];
        if self.generating[shape.index()].remove(&job) {
            self.schedule.left(shape, job);
        }
    }

    /// How dear a status read is now, from the requests handed out lately against `--rate`.
    fn pressure(&self, now: Instant) -> Pressure {
        // A worker of a shared sweep has its share of the sweep's rate.
        let rate = self.settings.rate / self.shared.workers.max(1) as f64;
        let used = self.usage.per_second(now) / rate.max(0.01);
        if used < 0.5 {
            Pressure::Spare
        } else if used < 0.9 {
            Pressure::Normal
        } else {
            Pressure::Busy
        }
    }

    /// Full-jitter exponential backoff: a random wait up to min(cap, base × 2^n), the base
    /// following the service's speed as learned (or hinted).
    fn backoff(&mut self, retries: u32) -> Duration {
        let base = 0.5 * self.schedule.speed().clamp(1e-6, 1.0).sqrt();
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
            return None;
        }
        if self.suspect() {
            return self.shared_wakeup();
        }
        let job_timer = self.timers.peek().map(|Reverse((at, ..))| *at);
        [job_timer, self.shared_wakeup()].into_iter().flatten().min()
    }

    /// Nothing running, nothing scheduled, nothing admissible: the run is over.
    pub fn idle(&self) -> bool {
        self.abandon
            || (self.timers.is_empty()
                && self.ready_downloads.is_empty()
                && self.ready_submits.is_empty()
                && !self.jobs.iter().any(|j| j.busy)
                && (self.queue.is_empty() || self.stop.is_some())
                && self.shared_done())
    }

    /// Emits a record for the journal and folds it into the job's facts with the journal's own
    /// fold: the only way the dispatcher changes what a job durably is.
    fn record(&mut self, job: usize, record: Record) {
        self.jobs[job].facts.apply(&record);
        self.records.push((record, self.jobs[job].fence));
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
        self.shared_ops(now, &mut ops);
        if self.suspect() {
            return ops;
        }
        while let Some(Reverse((at, seq, job, kind))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.jobs[job].busy || self.stale(seq, job, kind) {
                continue;
            }
            match (kind, &self.jobs[job].state) {
                (Timer::Submit, JobState::Submitting { key }) => {
                    // A resend: the same key and exactly the bytes first sent (contract §17: a
                    // replay answers with the task the first send made, whether or not its
                    // uploads have expired since). A first send held back by a 429 is still a
                    // first send: it goes only while its uploads live.
                    let key = key.clone();
                    self.jobs[job].busy = true;
                    let body = self.jobs[job].facts.body.clone();
                    let send_until = (!self.jobs[job].outcome_unknown)
                        .then(|| self.send_until(job))
                        .flatten();
                    ops.push(Op::Submit {
                        job,
                        key,
                        intent: None,
                        body,
                        send_until,
                    });
                }
                (Timer::Prepare, JobState::Preparing { .. }) => {
                    self.jobs[job].busy = true;
                    let request = self.step_request(job);
                    ops.push(Op::Prepare { job, request });
                }
                (Timer::Admit, JobState::Queued) => self.enqueue(job, true),
                (Timer::Poll, JobState::Generating { task_id }) => {
                    let task_id = task_id.clone();
                    let overdue = self.jobs[job]
                        .submitted
                        .is_some_and(|s| now.duration_since(s) > self.settings.task_deadline);
                    if overdue {
                        self.time_out(job);
                        continue;
                    }
                    self.jobs[job].busy = true;
                    ops.push(Op::Poll { job, task_id });
                }
                (Timer::Poll, JobState::Downloading { task_id, .. }) => {
                    let task_id = task_id.clone();
                    if self.download_overdue(job, now) {
                        self.leave_for_rerun(job, "its video could not be fetched before the deadline".into());
                        continue;
                    }
                    self.jobs[job].busy = true;
                    ops.push(Op::Poll { job, task_id });
                }
                (Timer::Download, JobState::Downloading { .. }) => self.ready_downloads.push_back(job),
                _ => {}
            }
        }
        while self.downloads_running < self.settings.downloads_at_once.max(1) {
            let Some(job) = self.ready_downloads.pop_front() else {
                break;
            };
            let JobState::Downloading { url, .. } = &self.jobs[job].state else {
                continue;
            };
            let Some(url) = url.clone() else {
                self.set_poll(job, now);
                continue;
            };
            self.jobs[job].busy = true;
            self.downloads_running += 1;
            ops.push(Op::Download { job, url });
        }
        while let Some(job) = self.ready_submits.pop_front() {
            let (Some(intent), JobState::Submitting { key }) = (self.jobs[job].intent.take(), &self.jobs[job].state)
            else {
                continue;
            };
            let key = key.clone();
            let body = self.jobs[job].facts.body.clone();
            let send_until = self.send_until(job);
            self.jobs[job].busy = true;
            ops.push(Op::Submit {
                job,
                key,
                intent: Some(Box::new(intent)),
                body,
                send_until,
            });
        }
        if self.stop.is_none() {
            while self.in_flight < self.settings.concurrency {
                let Some(&job) = self.queue.front() else { break };
                if !matches!(self.jobs[job].state, JobState::Queued) {
                    // Given up to another worker since it was queued.
                    self.queue.pop_front();
                    continue;
                }
                // A step sends its parent's task in its request, made now and journaled with
                // its intent, so a resend is byte for byte the same.
                let request = self.step_request(job);
                if self.plan.jobs[job].parent.is_some() && request.is_none() {
                    self.queue.pop_front();
                    self.enqueue(job, false);
                    continue;
                }
                let amount = self.reservation(job);
                if let Err(cap) = self.ledger.try_reserve(amount) {
                    self.stop_submitting(StopReason::CapReached {
                        needed: cap.needed,
                        left: cap.left,
                    });
                    break;
                }
                self.queue.pop_front();
                let text = request.as_deref().unwrap_or(self.plan.jobs[job].request.as_str());
                if text.contains(crate::inputs::PLACEHOLDER) {
                    // Local files first; the intent follows with the body that names them.
                    let j = &mut self.jobs[job];
                    j.retries = 0;
                    j.busy = true;
                    j.state = JobState::Preparing { reserve: amount };
                    self.in_flight += 1;
                    ops.push(Op::Prepare { job, request });
                    continue;
                }
                let id = self.job_id(job);
                let attempt = self.jobs[job].facts.attempt + 1;
                let key = idempotency_key(&self.settings.run_id, &id, attempt);
                let intent = Record::Submitting {
                    job: id,
                    attempt,
                    key: key.clone(),
                    reserve: amount.micro_cents(),
                    body: request.clone(),
                    send_until: None,
                    at: crate::util::time_format::now(),
                };
                self.record_intent(job, &intent);
                let j = &mut self.jobs[job];
                j.retries = 0;
                j.polls = 0;
                j.outcome_unknown = false;
                j.busy = true;
                j.state = JobState::Submitting { key: key.clone() };
                self.in_flight += 1;
                ops.push(Op::Submit {
                    job,
                    key,
                    intent: Some(Box::new(intent)),
                    body: request,
                    send_until: None,
                });
            }
        }
        for op in &ops {
            if matches!(op, Op::Submit { .. } | Op::Poll { .. }) {
                self.usage.note(now);
            }
        }
        self.prune_stale();
        ops
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
    fn fail(&mut self, job: usize, kind: FailureKind, message: String) {
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

    /// Applies an intent record before its op is handed out (the executor makes it durable).
    fn record_intent(&mut self, job: usize, intent: &Record) {
        self.remember_before_intent(job, intent);
        self.jobs[job].facts.apply(intent);
    }
}

mod transitions;

mod steps;

mod claims;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod steps_tests;

#[cfg(test)]
mod claims_tests;
