//! The writer task of the `RunStore` on PostgreSQL: it commits records in groups, each group one
//! transaction. Besides the record itself, each commit keeps what workers share in step
//! with the records: the job's held and billed amounts, the sweep's totals, the job's state for
//! claims (a failed job's steps are skipped), and — for a submit intent — the cap: an intent that
//! would take the sweep's billed + held past the cap is refused, not written, and its create is
//! never sent.
//!
//! Fencing: every record about a job carries the fence of the claim it was made under. The group's
//! transaction first locks the rows of its jobs that this worker holds under exactly those fences;
//! a record whose fence is not the job's current one (another worker claimed it while this one was
//! paused) is refused — not written, its money not counted. Money is written as a change from the
//! job's values as this worker knows them to its new ones, applied only where the database still
//! holds the old ones (compare and set), so a worker's view can never overwrite another's facts;
//! a finished job is never reopened by a record. A group is committed once: its number and what
//! became of each record are kept (`kb_groups`), so a commit whose answer was lost and that is
//! sent again changes nothing twice.
//!
//! When the database goes away, groups are retried with backoff (a worker's submits wait, since
//! their intents cannot be made durable); after `outage` without a commit, waiting intents fail,
//! which stops the worker, resumable.

use super::changes::{
    Ack, Change, CommitError, Holdings, Pending, before_of, fence_value, flush, hold, micro, set_job, state_of,
};
use super::{Conn, StateError};
use crate::journal::{JobFacts, Phase, Record, WriteError};
use crate::plan::JobId;
use crate::store::Fence;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub(super) enum Message {
    Record(Box<Record>, Option<Fence>, Option<Ack>),
    Close(oneshot::Sender<Result<(), WriteError>>),
}

/// Records committed per transaction at most.
const MAX_GROUP: usize = 512;

/// What a group's commit did to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Written,
    /// A submit intent the cap refused.
    OverCap,
    /// Made under a claim that is no longer the job's: not written.
    Fenced,
}

impl Outcome {
    fn letter(self) -> char {
        match self {
            Outcome::Written => 'w',
            Outcome::OverCap => 'c',
            Outcome::Fenced => 'f',
        }
    }

    fn of_letter(c: char) -> Outcome {
        match c {
            'c' => Outcome::OverCap,
            'f' => Outcome::Fenced,
            _ => Outcome::Written,
        }
    }
}

pub(super) fn closed() -> WriteError {
    WriteError {
        message: "the state database writer has stopped".into(),
        disk_full: false,
        over_cap: false,
        fenced: false,
    }
}

/// The statements a commit uses, prepared once per connection.
struct Statements {
    /// Locks the group's jobs that this worker holds, with their fences and values.
    held: tokio_postgres::Statement,
    reserve: tokio_postgres::Statement,
    totals: tokio_postgres::Statement,
    skip: tokio_postgres::Statement,
    insert: tokio_postgres::Statement,
    done_before: tokio_postgres::Statement,
    done: tokio_postgres::Statement,
}

pub(super) struct Writer {
    statements: Option<Statements>,
    conn: Conn,
    sweep: i64,
    worker: String,
    held: Arc<Holdings>,
    lost: Arc<Mutex<HashSet<usize>>>,
    index: Arc<HashMap<JobId, i32>>,
    outage: Duration,
    /// Groups this writer has committed (the next one's number).
    groups: i64,
}

impl Writer {
    pub(super) fn new(
        conn: Conn,
        sweep: i64,
        worker: String,
        held: Arc<Holdings>,
        lost: Arc<Mutex<HashSet<usize>>>,
        index: Arc<HashMap<JobId, i32>>,
        outage: Duration,
    ) -> Writer {
        Writer {
            statements: None,
            conn,
            sweep,
            worker,
            held,
            lost,
            index,
            outage,
            groups: 0,
        }
    }

    pub(super) async fn run(mut self, mut receiver: mpsc::UnboundedReceiver<Message>) {
        let mut closing: Option<oneshot::Sender<Result<(), WriteError>>> = None;
        let mut failed: Option<WriteError> = None;
        loop {
            let mut group: Vec<Pending> = Vec::new();
            if closing.is_none() {
                match receiver.recv().await {
                    Some(Message::Record(r, f, a)) => group.push((*r, f, a)),
                    Some(Message::Close(done)) => closing = Some(done),
                    None => return,
                }
                while group.len() < MAX_GROUP {
                    match receiver.try_recv() {
                        Ok(Message::Record(r, f, a)) => group.push((*r, f, a)),
                        Ok(Message::Close(done)) => {
                            closing = Some(done);
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
            if !group.is_empty() {
                if let Some(error) = &failed {
                    for (_, _, ack) in group {
                        if let Some(ack) = ack {
                            let _ = ack.send(Err(error.clone()));
                        }
                    }
                } else if let Err(error) = self.commit_with_retries(group).await {
                    failed = Some(error);
                }
            }
            if let Some(done) = closing.take() {
                // Whatever was sent before the close is in the group just committed, or queued.
                let mut rest: Vec<Pending> = Vec::new();
                while let Ok(Message::Record(r, f, a)) = receiver.try_recv() {
                    rest.push((*r, f, a));
                }
                if !rest.is_empty()
                    && failed.is_none()
                    && let Err(e) = self.commit_with_retries(rest).await
                {
                    failed = Some(e);
                }
                let _ = done.send(failed.map_or(Ok(()), Err));
                return;
            }
        }
    }

    /// Commits a group, retrying while the database is away (up to `outage`); acknowledges each
    /// durable record with its outcome.
    async fn commit_with_retries(&mut self, group: Vec<Pending>) -> Result<(), WriteError> {
        let started = tokio::time::Instant::now();
        let mut wait = Duration::from_millis(100);
        let records: Vec<(Record, Option<Fence>, bool)> =
            group.iter().map(|(r, f, a)| (r.clone(), *f, a.is_some())).collect();
        let seq = self.groups;
        self.groups += 1;
        let mut diverged: HashSet<i32> = HashSet::new();
        // Whether an earlier try may have been committed without this writer hearing so.
        let mut retrying = false;
        loop {
            match self.commit(seq, &records, &diverged, retrying).await {
                Ok(outcomes) => {
                    for ((_, _, ack), outcome) in group.into_iter().zip(outcomes) {
                        if let Some(ack) = ack {
                            let _ = ack.send(match outcome {
                                Outcome::Written => Ok(()),
                                Outcome::OverCap => Err(WriteError {
                                    message: "the sweep's spend cap has no room for it (other workers hold the rest)"
                                        .into(),
                                    disk_full: false,
                                    over_cap: true,
                                    fenced: false,
                                }),
                                Outcome::Fenced => Err(WriteError {
                                    message: "another worker has claimed this job since (this worker's lease ran out)"
                                        .into(),
                                    disk_full: false,
                                    over_cap: false,
                                    fenced: true,
                                }),
                            });
                        }
                    }
                    return Ok(());
                }
                Err(CommitError::Diverged(jobs)) => {
                    tracing::warn!(
                        jobs = jobs.len(),
                        "this worker's view of jobs differs from the database's; giving them up"
                    );
                    diverged.extend(jobs);
                }
                Err(CommitError::Db(e)) => {
                    retrying = true;
                    self.conn.reset();
                    self.statements = None;
                    if started.elapsed() >= self.outage {
                        let error = WriteError {
                            message: format!(
                                "the state database took no records for {:?} ({e}); a rerun resumes",
                                self.outage
                            ),
                            disk_full: false,
                            over_cap: false,
                            fenced: false,
                        };
                        for (_, _, ack) in group {
                            if let Some(ack) = ack {
                                let _ = ack.send(Err(error.clone()));
                            }
                        }
                        return Err(error);
                    }
                    tracing::warn!(error = %e, "the state database did not take a group of records; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn prepare(&mut self) -> Result<(), StateError> {
        if self.statements.is_some() {
            return Ok(());
        }
        let client = self.conn.get().await?;
        self.statements = Some(Statements {
            held: client
                .prepare(
                    "select idx, fence from kb_jobs where sweep = $1 and idx = any($2) and owner = $3 \
                     order by idx for update",
                )
                .await?,
            reserve: client
                .prepare(
                    "with old as (select reserved from kb_jobs where sweep = $1 and idx = $2 and fence = $4) \
                     update kb_sweeps s set reserved = s.reserved + ($3 - old.reserved) from old \
                     where s.id = $1 and ($3 <= old.reserved or s.cap is null or s.spent + s.reserved + ($3 - old.reserved) <= s.cap) returning 1",
                )
                .await?,
            totals: client
                .prepare(
                    "with new as (select * from unnest($2::int4[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::text[]) \
                                  as t(idx, fence, old_reserved, old_cost, reserved, cost, state)), \
                     upd as (update kb_jobs j set reserved = new.reserved, cost = new.cost, \
                               state = case when j.state = 'finished' then j.state else new.state end \
                             from new where j.sweep = $1 and j.idx = new.idx and j.fence = new.fence \
                               and j.reserved = new.old_reserved and j.cost = new.old_cost \
                             returning j.idx, new.reserved - new.old_reserved as dr, new.cost - new.old_cost as dc), \
                     s as (update kb_sweeps s set \
                             reserved = s.reserved + (select coalesce(sum(dr), 0) from upd), \
                             spent = s.spent + (select coalesce(sum(dc), 0) from upd) \
                           where s.id = $1) \
                     select idx from upd",
                )
                .await?,
            skip: client
                .prepare(
                    "with recursive d as ( \
                       select idx from kb_jobs where sweep = $1 and parent_idx = $2 \
                       union select j.idx from kb_jobs j join d on j.parent_idx = d.idx where j.sweep = $1) \
                     update kb_jobs set state = 'skipped', owner = null where sweep = $1 and idx in (select idx from d) and state = 'open'",
                )
                .await?,
            insert: client
                .prepare(
                    "insert into kb_records (sweep, job_id, worker, record) \
                     select $1, j, $2, r from unnest($3::text[], $4::text[]) as t(j, r)",
                )
                .await?,
            done_before: client
                .prepare("select outcomes from kb_groups where sweep = $1 and worker = $2 and seq = $3")
                .await?,
            done: client
                .prepare("insert into kb_groups (sweep, worker, seq, outcomes) values ($1, $2, $3, $4)")
                .await?,
        });
        Ok(())
    }

    /// One transaction for the group. The shared facts change only once it is committed.
    async fn commit(
        &mut self,
        seq: i64,
        records: &[(Record, Option<Fence>, bool)],
        diverged: &HashSet<i32>,
        retrying: bool,
    ) -> Result<Vec<Outcome>, CommitError> {
        let sweep = self.sweep;
        self.prepare().await?;
        let client = self.conn.get().await?;
        let Some(st) = self.statements.as_ref() else {
            return Err(StateError::Db("no prepared statements".into()).into());
        };
        let tx = client.transaction().await?;
        // The jobs of the group this worker still holds, locked until the commit: a claim by
        // another worker waits for this group, and then reads its records.
        let mut idxs: Vec<i32> = records
            .iter()
            .filter_map(|(r, _, _)| r.job().and_then(|j| self.index.get(j).copied()))
            .collect();
        idxs.sort_unstable();
        idxs.dedup();
        let held: HashMap<i32, i64> = tx
            .query(&st.held, &[&sweep, &idxs, &self.worker])
            .await?
            .iter()
            .map(|r| (r.get::<_, i32>(0), r.get::<_, i64>(1)))
            .collect();
        let earlier = if retrying {
            tx.query_opt(&st.done_before, &[&sweep, &self.worker, &seq])
                .await?
                .map(|r| r.get::<_, String>(0))
        } else {
            None
        };
        let mut scratch: HashMap<i32, JobFacts> = HashMap::new();
        let mut outcomes = Vec::with_capacity(records.len());
        let mut job_ids: Vec<Option<String>> = Vec::new();
        let mut texts: Vec<String> = Vec::new();
        // Jobs' changes since the last flush: from the values before the first of their records to
        // those after the last.
        let mut pending: Vec<Change> = Vec::new();
        let mut failed_now: Vec<i32> = Vec::new();
        let mut refused: HashSet<i32> = HashSet::new();
        for (n, (record, fence, durable)) in records.iter().enumerate() {
            if let Some(letters) = &earlier {
                // This group was committed before and its answer lost: the same outcomes, and
                // nothing written again.
                let outcome = Outcome::of_letter(letters.chars().nth(n).unwrap_or('w'));
                if outcome == Outcome::Fenced
                    && let Some(idx) = record.job().and_then(|j| self.index.get(j).copied())
                {
                    refused.insert(idx);
                }
                if outcome == Outcome::Written
                    && let Some(idx) = record.job().and_then(|j| self.index.get(j).copied())
                {
                    let mut after = before_of(&self.held, &scratch, idx);
                    after.apply(record);
                    scratch.insert(idx, after);
                }
                outcomes.push(outcome);
                continue;
            }
            let Some(job_id) = record.job() else {
                job_ids.push(None);
                texts.push(record.to_line());
                outcomes.push(Outcome::Written);
                continue;
            };
            let Some(idx) = self.index.get(job_id).copied() else {
                outcomes.push(Outcome::Fenced);
                continue;
            };
            let current = held.get(&idx).copied();
            let stale = match (fence, current) {
                (Some(f), Some(c)) => fence_value(*f) != c,
                _ => true,
            };
            if stale || diverged.contains(&idx) {
                refused.insert(idx);
                outcomes.push(Outcome::Fenced);
                continue;
            }
            let fence = current.unwrap_or_default();
            let before = before_of(&self.held, &scratch, idx);
            let mut after = before.clone();
            after.apply(record);
            let change = Change {
                idx,
                fence,
                old_reserved: micro(before.reserved),
                old_cost: micro(before.cost.unwrap_or_default()),
                reserved: micro(after.reserved),
                cost: micro(after.cost.unwrap_or_default()),
                state: state_of(&after),
            };
            if matches!(record, Record::Submitting { .. }) && *durable {
                // The cap is checked against everything before it in the group, and only for
                // money the intent adds: a resend of an attempt that holds its reservation
                // already (new uploads, the same key) is never refused.
                flush(&tx, &st.totals, sweep, &mut pending).await?;
                let room = tx
                    .query_opt(&st.reserve, &[&sweep, &idx, &change.reserved, &fence])
                    .await?;
                if room.is_none() {
                    outcomes.push(Outcome::OverCap);
                    continue;
                }
                // The sweep's reserve moved above; the job's own values follow (compare and set).
                set_job(&tx, sweep, change).await?;
            } else {
                match pending.iter_mut().find(|p| p.idx == idx) {
                    Some(p) => {
                        p.reserved = change.reserved;
                        p.cost = change.cost;
                        p.state = change.state;
                    }
                    None => pending.push(change),
                }
            }
            if change.state == "failed" && before.phase != Some(Phase::Failed) {
                failed_now.push(idx);
            }
            job_ids.push(Some(job_id.to_string()));
            texts.push(record.to_line());
            scratch.insert(idx, after);
            outcomes.push(Outcome::Written);
        }
        if earlier.is_none() {
            // The sweep's row (its totals) is every worker's: it is written last, so its lock is
            // held for as short a time as the commit allows.
            if !texts.is_empty() {
                tx.execute(&st.insert, &[&sweep, &self.worker, &job_ids, &texts])
                    .await?;
            }
            if !diverged.is_empty() {
                // A job whose values here are not this worker's is let go at once: the next claim
                // reads it afresh from its records.
                let gone: Vec<i32> = diverged.iter().copied().collect();
                tx.execute(
                    "update kb_jobs set owner = null, lease_until = null where sweep = $1 and idx = any($2) and owner = $3",
                    &[&sweep, &gone, &self.worker],
                )
                .await?;
            }
            let letters: String = outcomes.iter().map(|o| o.letter()).collect();
            tx.execute(&st.done, &[&sweep, &self.worker, &seq, &letters]).await?;
            flush(&tx, &st.totals, sweep, &mut pending).await?;
            for idx in failed_now {
                tx.execute(&st.skip, &[&sweep, &idx]).await?;
            }
        }
        tx.commit().await?;
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        for (idx, after) in scratch {
            hold(&mut held, idx, &after);
        }
        drop(held);
        if !refused.is_empty() {
            let mut lost = self.lost.lock().unwrap_or_else(|e| e.into_inner());
            lost.extend(refused.iter().map(|&i| i.max(0) as usize));
        }
        Ok(outcomes)
    }
}
