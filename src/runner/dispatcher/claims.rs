//! The dispatcher as one worker of a shared sweep (`--state`): it claims jobs in batches and works
//! only those; a heartbeat renews its leases and brings the sweep's totals (what other workers
//! have billed and hold counts against the cap here too). A job whose lease this worker lost is
//! given up at once — another worker has it, and will re-send its key or poll its task — and its
//! operations in flight are dropped (a download, an upload, a poll).
//!
//! Each claim carries a fence; every record and operation for the job carries it, and the store
//! refuses a stale one. A worker that wakes from a pause longer than its lease (a heartbeat that
//! comes back late, or a clock that jumped) starts nothing until a heartbeat tells it which jobs
//! it still holds.

use super::Dispatcher;
use crate::journal::{JobFacts, Record};
use crate::runner::job::{JobState, Op, StopReason};
use crate::store::Fence;
use crate::store::postgres::{Claimed, SweepTotals};
use crate::util::money::Money;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

/// A shared sweep's bookkeeping in this worker.
#[derive(Debug, Default)]
pub(super) struct SharedRun {
    pub(super) next_claim: Option<Instant>,
    pub(super) next_heartbeat: Option<Instant>,
    claiming: bool,
    beating: bool,
    /// The sweep has nothing left to do, as the last heartbeat heard.
    finished: bool,
    /// When the last heartbeat the database answered was sent (its leases run from then), on the
    /// run's clock and on the wall clock (the monotonic clock stands still while a machine
    /// sleeps; the database's does not).
    last_beat: Option<Instant>,
    last_beat_wall: Option<std::time::SystemTime>,
    /// When the heartbeat out now was sent.
    beat_sent: Option<(Instant, std::time::SystemTime)>,
    /// When this worker found its leases may have run out: only a heartbeat sent after that
    /// can say which jobs are still its own (one sent before a pause answers for before it).
    suspect_since: Option<Instant>,
    /// The last claim found nothing to take.
    last_claim_empty: bool,
    /// Workers sharing the sweep's rate, as the last heartbeat heard.
    pub(super) workers: u64,
    /// The rate binds this worker (set when requests run at 90 % of its share or more, cleared
    /// below half): it holds only its share of `--concurrency` in flight.
    pub(super) rate_bound: bool,
    /// The last heartbeat is older than a lease (this worker was paused, or the database did not
    /// answer): nothing starts until one answers.
    pub(super) suspect: bool,
    /// Jobs given up because another worker claimed them.
    pub(super) lost: u64,
    /// The jobs the heartbeat out now gives back (done here, their claim let go once it answers),
    /// and those done here with a claim when the last heartbeat was sent (sorted).
    giving_back: Vec<usize>,
    done_at_last_beat: Vec<usize>,
    /// When the state database last answered a heartbeat or a claim (or this worker began):
    /// `--state-outage` counts from here, whatever the failure looks like.
    last_answer: Option<Instant>,
}

impl Dispatcher {
    fn lease(&self) -> Option<Duration> {
        self.settings.shared.map(|s| s.lease)
    }

    /// Whether this worker must start nothing for its jobs now: its leases may have run out.
    pub(super) fn suspect(&self) -> bool {
        self.shared.suspect
    }

    /// Jobs this worker gave up to others in this run.
    pub fn jobs_lost(&self) -> u64 {
        self.shared.lost
    }

    /// When a claim or heartbeat is due.
    pub(super) fn shared_wakeup(&self) -> Option<Instant> {
        self.lease()?;
        if self.shared.suspect {
            // Only the heartbeat that settles what this worker holds.
            return self.shared.next_heartbeat.filter(|_| !self.shared.beating);
        }
        let claim = self.shared.next_claim.filter(|_| !self.shared.claiming);
        let beat = self.shared.next_heartbeat.filter(|_| !self.shared.beating);
        [claim, beat].into_iter().flatten().min()
    }

    /// Whether a shared sweep lets this worker stop: its work is done and the sweep's is too (or
    /// it was told to stop). Always, for a run of its own.
    pub(super) fn shared_done(&self) -> bool {
        self.lease().is_none()
            || self.stop.is_some()
            || (!self.shared.claiming && (self.shared.finished || self.only_stuck_left()))
    }

    /// Nothing this worker holds can go on in this run: every job it still has is left for a
    /// rerun (a deadline passed, a create's outcome stayed unknown), and the last claim found
    /// nothing. It ends (resumable) and gives them back; a later worker tries them again.
    fn only_stuck_left(&self) -> bool {
        self.shared.last_claim_empty
            && self
                .jobs
                .iter()
                .any(|j| matches!(j.state, JobState::Parked | JobState::Unresolved { .. }))
            && !self.jobs.iter().any(|j| {
                matches!(
                    j.state,
                    JobState::Queued
                        | JobState::Waiting
                        | JobState::Preparing { .. }
                        | JobState::Submitting { .. }
                        | JobState::Generating { .. }
                        | JobState::Downloading { .. }
                )
            })
    }

    /// Whether job `i` is one this worker is still working on (its lease must hold; the others
    /// it ever claimed its heartbeat gives back).
    fn working_on(&self, i: usize) -> bool {
        !matches!(
            self.jobs[i].state,
            JobState::Elsewhere | JobState::Done { .. } | JobState::Failed { .. } | JobState::Skipped { .. }
        )
    }

    fn send_heartbeat(&mut self, now: Instant, ops: &mut Vec<Op>) {
        self.shared.beating = true;
        self.shared.beat_sent = Some((now, std::time::SystemTime::now()));
        // Done here since at least the last heartbeat: its last records have had a beat's time to
        // reach the sweep, so giving it back cannot race them to another worker's claim.
        let now_done: Vec<usize> = (0..self.jobs.len())
            .filter(|&i| self.jobs[i].fence.is_some() && !self.working_on(i))
            .collect();
        let before = std::mem::replace(&mut self.shared.done_at_last_beat, now_done);
        let done: Vec<usize> = before
            .into_iter()
            .filter(|i| self.shared.done_at_last_beat.binary_search(i).is_ok())
            .collect();
        self.shared.giving_back.clone_from(&done);
        ops.push(Op::Heartbeat {
            in_flight: self.in_flight,
            done,
        });
    }

    /// Claims and heartbeats that are due.
    pub(super) fn shared_ops(&mut self, now: Instant, ops: &mut Vec<Op>) {
        let Some(lease) = self.lease() else { return };
        self.shared.last_answer.get_or_insert(now);
        if !self.shared.beating && self.shared.next_heartbeat.is_some_and(|at| at <= now) {
            self.send_heartbeat(now, ops);
        }
        let since = self.shared.last_beat.map(|last| {
            let wall = self
                .shared
                .last_beat_wall
                .and_then(|w| std::time::SystemTime::now().duration_since(w).ok())
                .unwrap_or_default();
            now.saturating_duration_since(last).max(wall)
        });
        if let Some(since) = since
            && since > lease
            && !self.shared.suspect
        {
            // Our leases may have run out (a pause, a partition, a machine that slept): other
            // workers may hold these jobs now. Nothing starts until the heartbeat says which are
            // still ours.
            tracing::warn!(
                seconds = since.as_secs_f64(),
                "no heartbeat for longer than the lease: holding all work until the state database says which jobs are still this worker's"
            );
            self.shared.suspect = true;
            self.shared.suspect_since = Some(now);
            self.shared.next_heartbeat = Some(now);
            if !self.shared.beating {
                self.send_heartbeat(now, ops);
            }
        }
        if self.shared.suspect
            || self.shared.claiming
            || self.stop.is_some()
            || self.shared.next_claim.is_none_or(|at| at > now)
        {
            return;
        }
        let want = (self.admission_limit(now) * 3 / 2 + 1).saturating_sub(self.queue.len() + self.in_flight);
        if want == 0 {
            self.shared.next_claim = Some(now + Duration::from_millis(200));
            return;
        }
        self.shared.claiming = true;
        ops.push(Op::Claim { n: want });
    }

    /// Claimed jobs are placed as a resume places them, from every record the sweep has of them.
    pub(super) fn on_claimed(&mut self, result: Result<Claimed, String>, now: Instant) {
        self.shared.claiming = false;
        let lease = self.lease().unwrap_or(Duration::from_secs(30));
        let claimed = match result {
            Ok(c) => c,
            Err(message) => {
                tracing::warn!(%message, "claiming jobs failed; trying again");
                self.shared.next_claim = Some(now + Duration::from_secs(1));
                self.outage_check(&message, now);
                return;
            }
        };
        self.shared.last_answer = Some(now);
        let mut facts: HashMap<&str, JobFacts> = HashMap::new();
        for record in &claimed.records {
            if let Some(job) = record.job() {
                facts.entry(job).or_default().apply(record);
            }
        }
        let claimed_set: HashSet<usize> = claimed.jobs.iter().copied().collect();
        // Parents first: a step's standing reads its parent's facts (the claim brought their
        // records; a parent held here keeps its own).
        for &i in &claimed.jobs {
            if let Some(p) = self.plan.jobs[i].parent
                && !claimed_set.contains(&p)
                && matches!(self.jobs[p].state, JobState::Elsewhere)
                && let Some(f) = facts.get(self.plan.jobs[p].id.as_str())
            {
                self.jobs[p].facts = f.clone();
            }
        }
        for (k, &i) in claimed.jobs.iter().enumerate() {
            // The claim's fence goes with every record and operation of the job from now on.
            self.jobs[i].fence = claimed.fences.get(k).copied();
            if !matches!(self.jobs[i].state, JobState::Elsewhere) {
                continue;
            }
            let f = facts.get(self.plan.jobs[i].id.as_str()).cloned();
            if let Some(f) = &f {
                // Its reservation (a create in flight, a task generating) was made by the worker
                // before: this one holds it now.
                self.ledger.hold(f.reserved);
            }
            tracing::debug!(job = %self.plan.jobs[i].id, "claimed");
            let fence = self.jobs[i].fence;
            self.place(i, f, false, now);
            self.jobs[i].fence = fence;
            if let JobState::Failed { failure } = &self.jobs[i].state {
                // Given back for a retry this worker was not asked for: it stays failed, and the
                // sweep hears so (the record is the same; the fold is idempotent).
                let record = Record::Failed {
                    job: self.plan.jobs[i].id.to_string(),
                    kind: failure.kind,
                    message: failure.message.clone(),
                    at: crate::util::time_format::now(),
                };
                self.record(i, record);
            }
        }
        self.shared.finished = claimed.open == 0;
        let got = claimed.jobs.len();
        self.shared.last_claim_empty = got == 0;
        self.shared.next_claim = Some(if got > 0 {
            now + Duration::from_millis(100)
        } else {
            // Nothing free: look again soon for steps whose parents completed elsewhere and for
            // jobs a dead worker leaves.
            now + (lease / 3).clamp(Duration::from_millis(50), Duration::from_secs(1))
        });
    }

    /// The leases this worker still holds, and how the sweep stands.
    pub(super) fn on_heartbeat(&mut self, result: Result<(Vec<(usize, Fence)>, SweepTotals), String>, now: Instant) {
        self.shared.beating = false;
        let lease = self.lease().unwrap_or(Duration::from_secs(30));
        let (held, totals) = match result {
            Ok(r) => r,
            Err(message) => {
                tracing::warn!(%message, "the heartbeat failed; trying again");
                self.shared.next_heartbeat = Some(now + Duration::from_secs(1));
                self.outage_check(&message, now);
                return;
            }
        };
        self.shared.last_answer = Some(now);
        // Given back: their claims are no longer this worker's to send again.
        for i in std::mem::take(&mut self.shared.giving_back) {
            if !self.working_on(i) {
                self.jobs[i].fence = None;
            }
        }
        let (sent, sent_wall) = self
            .shared
            .beat_sent
            .take()
            .unwrap_or((now, std::time::SystemTime::now()));
        // An answer to a heartbeat sent before this worker found itself suspect (it was paused
        // with the answer on its way) speaks for before the pause: it can show jobs lost, never
        // that the others are still held.
        let fresh = self.shared.suspect_since.is_none_or(|since| sent >= since);
        if fresh {
            self.shared.last_beat = Some(sent);
            self.shared.last_beat_wall = Some(sent_wall);
        }
        self.shared.next_heartbeat = Some(if fresh {
            now + (lease / 3).max(Duration::from_millis(50))
        } else {
            now
        });
        let held: HashMap<usize, Fence> = held.into_iter().collect();
        for i in 0..self.jobs.len() {
            // Held under another fence is not held: the job was claimed again since.
            if self.working_on(i) && held.get(&i).copied() != self.jobs[i].fence {
                self.disown(i);
            }
        }
        if self.shared.suspect && fresh {
            self.shared.suspect = false;
            self.shared.suspect_since = None;
            tracing::warn!(
                kept = held.len(),
                "the state database answered again: going on with the jobs still held"
            );
        }
        let mine = self.ledger.spent().saturating_add(self.ledger.reserved());
        let everyone = totals.spent.saturating_add(totals.reserved);
        self.ledger.set_others(everyone.saturating_sub(mine));
        self.shared.finished = totals.open == 0;
        self.shared.workers = totals.workers.max(1);
        if totals.cap != self.ledger.cap() {
            // The sweep has one cap; another worker changed it on purpose. Every worker says so.
            let show = |c: Option<Money>| c.map_or_else(|| "no cap".to_string(), |c| c.to_string());
            tracing::warn!(
                "the sweep's spend cap changed from {} to {} (another worker's --max-spend)",
                show(self.ledger.cap()),
                show(totals.cap)
            );
            self.set_cap(totals.cap);
        }
    }

    /// The state database has answered nothing for `--state-outage`: this worker stops at once,
    /// resumable (it cannot record what it does, and its leases have run out; what it sent is in
    /// the database as intents, which a rerun replays under the same keys).
    fn outage_check(&mut self, message: &str, now: Instant) {
        let Some(outage) = self.settings.shared.map(|s| s.outage) else {
            return;
        };
        let silent = self
            .shared
            .last_answer
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        if silent >= outage {
            self.stop_everything(StopReason::Local(format!(
                "the state database answered nothing for {} s ({message}); everything so far is saved there, and a rerun resumes",
                silent.as_secs()
            )));
        }
    }

    /// A job of this worker finished (or its task completed): its steps may be claimable, and
    /// the sweep may be done.
    pub(super) fn claim_soon(&mut self, now: Instant) {
        if self.lease().is_some() && !self.shared.claiming {
            self.shared.next_claim = Some(self.shared.next_claim.map_or(now, |at| at.min(now)));
        }
    }

    /// The store refused a record made under this job's claim: another worker holds it now.
    pub(super) fn on_fenced(&mut self, job: usize) {
        if !matches!(self.jobs[job].state, JobState::Elsewhere) {
            self.disown(job);
        }
    }

    /// Another worker holds this job now: this one stops working on it at once (what it holds
    /// goes with it, and its operations in flight are dropped).
    fn disown(&mut self, job: usize) {
        tracing::warn!(job = %self.plan.jobs[job].id, "lease lost: another worker has this job; its work here stops");
        self.shared.lost += 1;
        self.stop_generating(job);
        if self.jobs[job].busy {
            self.jobs[job].busy = false;
            if matches!(self.jobs[job].state, JobState::Downloading { .. }) {
                self.downloads_running = self.downloads_running.saturating_sub(1);
            }
            self.cancelled.push(job);
        }
        self.jobs[job].fence = None;
        self.jobs[job].intent = None;
        self.ready_submits.retain(|&j| j != job);
        self.ready_downloads.retain(|&j| j != job);
        self.queue.retain(|&j| j != job);
        let (held, flying) = match self.jobs[job].state {
            JobState::Preparing { reserve, .. } => (reserve, true),
            JobState::Submitting { .. } | JobState::Generating { .. } => (self.jobs[job].facts.reserved, true),
            // Left for a rerun with its money held: the worker that took it holds that now.
            JobState::Unresolved { .. } | JobState::Parked => (self.jobs[job].facts.reserved, false),
            _ => (Money::ZERO, false),
        };
        self.ledger.release(held);
        if flying {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        self.jobs[job].state = JobState::Elsewhere;
    }

    /// The database refused a submit intent: the sweep's cap has no room for it (other workers
    /// hold the rest). Nothing was sent; the job waits, and this worker submits nothing more.
    pub(super) fn on_intent_over_cap(&mut self, job: usize) {
        let JobState::Submitting { .. } = self.jobs[job].state else {
            return;
        };
        if self.jobs[job].outcome_unknown {
            // A resend whose first send may have made a task is never turned into a new attempt:
            // it keeps its key and money for a rerun. (The database does not refuse one that adds
            // no money; this is the belt to those braces.)
            self.leave_for_rerun(job, "the sweep's cap refused a resend's intent".into());
            return;
        }
        let reserve = self.jobs[job].facts.reserved;
        self.ledger.release(reserve);
        self.in_flight = self.in_flight.saturating_sub(1);
        // The intent never reached the records: the job's facts are what they were before it.
        if let Some(before) = self.jobs[job].before_intent.take() {
            self.jobs[job].facts = *before;
        }
        self.jobs[job].intent = None;
        self.jobs[job].state = JobState::Queued;
        self.queue.push_front(job);
        let left = self
            .ledger
            .cap()
            .unwrap_or(Money::ZERO)
            .saturating_sub(self.ledger.spent().saturating_add(self.ledger.others()));
        self.stop_submitting(StopReason::CapReached { needed: reserve, left });
    }

    /// Records the intent's facts before it, so a refused intent can be taken back.
    pub(super) fn remember_before_intent(&mut self, job: usize, record: &Record) {
        if self.lease().is_some() && matches!(record, Record::Submitting { .. }) {
            self.jobs[job].before_intent = Some(Box::new(self.jobs[job].facts.clone()));
        }
    }
}
