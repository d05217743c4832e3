//! The one owner of run state. Every job's phase, the spend ledger, the admission queue and the
//! timers live here; `ready_ops` says what to start (`admission`), `handle` takes each result
//! (`transitions`). Where a job starts (`placing`), its timers (`polls`), how its work ends short
//! of done (`endings`), steps (`steps`) and a shared sweep's claims (`claims`) are the other rooms
//! of the same state. Synchronous and free of I/O, so every transition is testable without a
//! runtime; records for the journal come out of `take_stamped`.

use super::job::{JobPhase, JobRun, JobState, Op, StopReason};
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
    /// The spend cap the run starts with.
    pub cap: CapRule,
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

/// The spend cap a run starts with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CapRule {
    /// This amount, or none.
    Fixed(Option<Money>),
    /// The estimate the run shows: what it has spent and holds, plus a reservation for every job
    /// it will submit (made once the jobs are placed). A worker of a shared sweep is given the
    /// sweep's cap instead, settled with the database.
    AtEstimate,
}

impl CapRule {
    fn fixed(self) -> Option<Money> {
        match self {
            CapRule::Fixed(cap) => cap,
            CapRule::AtEstimate => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SharedSettings {
    /// How long a claim holds without a heartbeat.
    pub lease: Duration,
    /// `--state-outage`: how long the state database may answer nothing (heartbeats, claims)
    /// before this worker stops, resumable.
    pub outage: Duration,
}

/// Transient create failures tolerated before the job is left unresolved for a rerun.
const MAX_SUBMIT_RETRIES: u32 = 10;
/// Re-sends of a create of unknown outcome refused outright (4xx) before the job is left for a
/// rerun: a refused replay proves nothing about the first send, and ten tries took ~110 s a run.
const MAX_REFUSED_REPLAYS: u32 = 3;
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
            ledger: Ledger::new(settings.cap.fixed(), history.spent, history.reserved),
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
            d.ledger = Ledger::new(d.settings.cap.fixed(), Money::ZERO, Money::ZERO);
            d.ledger.set_others(history.spent.saturating_add(history.reserved));
            return d;
        }
        // A step comes after its parent in the plan, so its parent is placed first.
        for (i, spec) in plan.jobs.iter().enumerate() {
            let facts = history.jobs.get(spec.id.as_str()).cloned();
            d.place(i, facts, files_ok.get(i).copied().unwrap_or(false), now);
        }
        if d.settings.cap == CapRule::AtEstimate {
            let estimate = d
                .ledger
                .spent()
                .saturating_add(d.ledger.reserved())
                .saturating_add(d.to_submit());
            d.set_cap(Some(estimate));
        }
        d
    }

    /// What the jobs still to submit reserve, at the prices quoted when the run started.
    pub fn to_submit(&self) -> Money {
        self.jobs
            .iter()
            .zip(&self.reservations)
            .filter(|(j, _)| j.phase() == JobPhase::Queued)
            .map(|(_, m)| *m)
            .sum()
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
        self.settings.cap = CapRule::Fixed(cap);
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
            .send_until()
            .and_then(crate::util::time_format::parse_rfc3339)
    }

    /// Jobs whose operations in flight must stop now (their claim is lost).
    pub fn take_cancelled(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.cancelled)
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

    /// Applies an intent record before its op is handed out (the executor makes it durable).
    fn record_intent(&mut self, job: usize, intent: &Record) {
        self.remember_before_intent(job, intent);
        self.jobs[job].facts.apply(intent);
    }
}

mod admission;
mod endings;
mod placing;
mod polls;
mod transitions;

mod steps;

mod claims;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod steps_tests;

#[cfg(test)]
mod claims_tests;
