//! The `RunStore` on PostgreSQL: records go to one writer task that commits them in groups, each
//! group one transaction. Besides the record itself, each commit keeps what workers share in step
//! with the records: the job's held and billed amounts (absolute values, so a group committed twice
//! after a lost answer counts once), the sweep's totals, the job's state for claims (a failed job's
//! steps are skipped), and — for a submit intent — the cap: an intent that would take the sweep's
//! billed + held past the cap is refused, not written, and its create is never sent.
//!
//! When the database goes away, groups are retried with backoff (a worker's submits wait, since
//! their intents cannot be made durable); after `outage` without a commit, waiting intents fail,
//! which stops the worker, resumable.

use super::{Conn, StateError};
use crate::journal::{JobFacts, Phase, Record, WriteError};
use crate::store::RunStore;
use futures::FutureExt;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

type Ack = oneshot::Sender<Result<(), WriteError>>;

enum Message {
    Record(Record, Option<Ack>),
    Close(oneshot::Sender<Result<(), WriteError>>),
}

#[derive(Debug)]
pub struct PgRunStore {
    sender: mpsc::UnboundedSender<Message>,
    /// Facts of every job as committed: the writer's, shared for reading.
    facts: Arc<Mutex<HashMap<String, JobFacts>>>,
}

/// Records committed per transaction at most.
const MAX_GROUP: usize = 512;

/// What a group's commit did to one record.
enum Outcome {
    Written,
    /// A submit intent the cap refused.
    OverCap,
}

impl PgRunStore {
    /// Starts the writer for sweep `sweep` on its own connection. `facts` are the jobs' facts as
    /// replayed; `index` each job id's index in the plan.
    pub fn start(
        conn: Conn,
        sweep: i64,
        worker: String,
        facts: HashMap<String, JobFacts>,
        index: HashMap<String, i32>,
        outage: Duration,
    ) -> PgRunStore {
        let (sender, receiver) = mpsc::unbounded_channel();
        let facts = Arc::new(Mutex::new(facts));
        let writer = Writer {
            statements: None,
            conn,
            sweep,
            worker,
            facts: Arc::clone(&facts),
            index,
            outage,
        };
        tokio::spawn(writer.run(receiver));
        PgRunStore { sender, facts }
    }

    /// Folds records learned from the database (another worker's, read at a claim) into the facts
    /// the writer computes its deltas from.
    pub fn learn(&self, records: &[Record]) {
        let mut facts = self.facts.lock().unwrap_or_else(|e| e.into_inner());
        for record in records {
            if let Some(job) = record.job() {
                facts.entry(job.to_string()).or_default().apply(record);
            }
        }
    }
}

fn closed() -> WriteError {
    WriteError {
        message: "the state database writer has stopped".into(),
        disk_full: false,
        over_cap: false,
    }
}

impl RunStore for PgRunStore {
    fn append(&self, record: &Record) {
        let _ = self.sender.send(Message::Record(record.clone(), None));
    }

    fn append_durable<'a>(&'a self, record: &'a Record) -> BoxFuture<'a, Result<(), WriteError>> {
        let (ack, done) = oneshot::channel();
        let sent = self.sender.send(Message::Record(record.clone(), Some(ack)));
        async move {
            sent.map_err(|_| closed())?;
            done.await.unwrap_or_else(|_| Err(closed()))
        }
        .boxed()
    }

    fn close(&self) -> BoxFuture<'_, Result<(), WriteError>> {
        let (ack, done) = oneshot::channel();
        let sent = self.sender.send(Message::Close(ack));
        async move {
            sent.map_err(|_| closed())?;
            done.await.unwrap_or_else(|_| Err(closed()))
        }
        .boxed()
    }
}

/// The statements a commit uses, prepared once per connection.
struct Statements {
    reserve: tokio_postgres::Statement,
    totals: tokio_postgres::Statement,
    job: tokio_postgres::Statement,
    skip: tokio_postgres::Statement,
    insert: tokio_postgres::Statement,
}

struct Writer {
    statements: Option<Statements>,
    conn: Conn,
    sweep: i64,
    worker: String,
    facts: Arc<Mutex<HashMap<String, JobFacts>>>,
    index: HashMap<String, i32>,
    outage: Duration,
}

/// The state a job's facts put it in, for claims.
fn state_of(facts: &JobFacts) -> &'static str {
    match facts.phase {
        Some(Phase::Downloaded) => "finished",
        Some(Phase::Failed) => "failed",
        Some(Phase::Completed) => "completed",
        _ if facts.cost.is_some() => "completed",
        _ => "open",
    }
}

fn micro(m: crate::util::money::Money) -> i64 {
    i64::try_from(m.micro_cents()).unwrap_or(i64::MAX)
}

impl Writer {
    async fn run(mut self, mut receiver: mpsc::UnboundedReceiver<Message>) {
        let mut closing: Option<oneshot::Sender<Result<(), WriteError>>> = None;
        let mut failed: Option<WriteError> = None;
        loop {
            let mut group: Vec<(Record, Option<Ack>)> = Vec::new();
            if closing.is_none() {
                match receiver.recv().await {
                    Some(Message::Record(r, a)) => group.push((r, a)),
                    Some(Message::Close(done)) => closing = Some(done),
                    None => return,
                }
                while group.len() < MAX_GROUP {
                    match receiver.try_recv() {
                        Ok(Message::Record(r, a)) => group.push((r, a)),
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
                    for (_, ack) in group {
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
                let mut rest: Vec<(Record, Option<Ack>)> = Vec::new();
                while let Ok(Message::Record(r, a)) = receiver.try_recv() {
                    rest.push((r, a));
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
    async fn commit_with_retries(&mut self, group: Vec<(Record, Option<Ack>)>) -> Result<(), WriteError> {
        let started = tokio::time::Instant::now();
        let mut wait = Duration::from_millis(100);
        let records: Vec<(Record, bool)> = group.iter().map(|(r, a)| (r.clone(), a.is_some())).collect();
        loop {
            match self.commit(&records).await {
                Ok(outcomes) => {
                    for ((_, ack), outcome) in group.into_iter().zip(outcomes) {
                        if let Some(ack) = ack {
                            let _ = ack.send(match outcome {
                                Outcome::Written => Ok(()),
                                Outcome::OverCap => Err(WriteError {
                                    message: "the sweep's spend cap has no room for it (other workers hold the rest)"
                                        .into(),
                                    disk_full: false,
                                    over_cap: true,
                                }),
                            });
                        }
                    }
                    return Ok(());
                }
                Err(e) => {
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
                        };
                        for (_, ack) in group {
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

    /// One transaction for the group. The shared facts change only once it is committed.
    async fn commit(&mut self, records: &[(Record, bool)]) -> Result<Vec<Outcome>, StateError> {
        let sweep = self.sweep;
        let mut scratch: HashMap<String, JobFacts> = HashMap::new();
        let mut outcomes = Vec::with_capacity(records.len());
        let client = self.conn.get().await?;
        if self.statements.is_none() {
            self.statements = Some(Statements {
                reserve: client
                    .prepare(
                        "with old as (select reserved from kb_jobs where sweep = $1 and idx = $2) \
                         update kb_sweeps s set reserved = s.reserved + ($3 - old.reserved) from old \
                         where s.id = $1 and ($3 <= old.reserved or s.cap is null or s.spent + s.reserved + ($3 - old.reserved) <= s.cap) returning 1",
                    )
                    .await?,
                totals: client
                    .prepare(
                        "with new as (select * from unnest($2::int4[], $3::int8[], $4::int8[], $5::text[]) as t(idx, reserved, cost, state)), \
                         old as (select j.idx, j.reserved, j.cost from kb_jobs j join new using (idx) where j.sweep = $1 for update of j), \
                         upd as (update kb_jobs j set reserved = new.reserved, cost = new.cost, state = new.state, \
                                   owner = case when new.state in ('finished', 'failed') then null else j.owner end \
                                 from new where j.sweep = $1 and j.idx = new.idx) \
                         update kb_sweeps s set \
                           reserved = s.reserved + (select coalesce(sum(new.reserved - old.reserved), 0) from new join old using (idx)), \
                           spent = s.spent + (select coalesce(sum(new.cost - old.cost), 0) from new join old using (idx)) \
                         where s.id = $1",
                    )
                    .await?,
                job: client
                    .prepare(
                        "update kb_jobs set reserved = $3, cost = $4, state = $5, \
                           owner = case when $5 in ('finished', 'failed') then null else owner end \
                         where sweep = $1 and idx = $2",
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
            });
        }
        let Some(st) = self.statements.as_ref() else {
            return Err(StateError::Db("no prepared statements".into()));
        };
        let (reserve, totals, job, skip) = (&st.reserve, &st.totals, &st.job, &st.skip);
        let tx = client.transaction().await?;
        let mut job_ids: Vec<Option<String>> = Vec::new();
        let mut texts: Vec<String> = Vec::new();
        // Jobs' new values since the last flush (the last record of a job in the group wins: the
        // values are absolute, and the deltas are taken against what the database holds).
        let mut pending: Vec<(i32, i64, i64, &'static str)> = Vec::new();
        let mut failed_now: Vec<i32> = Vec::new();
        for (record, durable) in records {
            let Some(job_id) = record.job() else {
                job_ids.push(None);
                texts.push(record.to_line());
                outcomes.push(Outcome::Written);
                continue;
            };
            let before = match scratch.get(job_id) {
                Some(f) => f.clone(),
                None => self
                    .facts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(job_id)
                    .cloned()
                    .unwrap_or_default(),
            };
            let mut after = before.clone();
            after.apply(record);
            if let Some(idx) = self.index.get(job_id).copied() {
                let reserved = micro(after.reserved);
                let cost = micro(after.cost.unwrap_or_default());
                let state = state_of(&after);
                if matches!(record, Record::Submitting { .. }) && *durable {
                    // The cap is checked against everything before it in the group, and only for
                    // money the intent adds: a resend of an attempt that holds its reservation
                    // already (new uploads, the same key) is never refused.
                    flush(&tx, totals, sweep, &mut pending).await?;
                    let room = tx.query_opt(reserve, &[&sweep, &idx, &reserved]).await?;
                    if room.is_none() {
                        outcomes.push(Outcome::OverCap);
                        continue;
                    }
                    tx.execute(job, &[&sweep, &idx, &reserved, &cost, &state]).await?;
                } else {
                    pending.retain(|p| p.0 != idx);
                    pending.push((idx, reserved, cost, state));
                }
                if state == "failed" && before.phase != Some(Phase::Failed) {
                    failed_now.push(idx);
                }
            }
            job_ids.push(Some(job_id.to_string()));
            texts.push(record.to_line());
            scratch.insert(job_id.to_string(), after);
            outcomes.push(Outcome::Written);
        }
        flush(&tx, totals, sweep, &mut pending).await?;
        for idx in failed_now {
            tx.execute(skip, &[&sweep, &idx]).await?;
        }
        if !texts.is_empty() {
            tx.execute(&st.insert, &[&sweep, &self.worker, &job_ids, &texts])
                .await?;
        }
        tx.commit().await?;
        let mut facts = self.facts.lock().unwrap_or_else(|e| e.into_inner());
        facts.extend(scratch);
        Ok(outcomes)
    }
}

/// Writes the jobs' new values and the sweep's totals for `pending`, in one statement.
async fn flush(
    tx: &tokio_postgres::Transaction<'_>,
    totals: &tokio_postgres::Statement,
    sweep: i64,
    pending: &mut Vec<(i32, i64, i64, &'static str)>,
) -> Result<(), StateError> {
    if pending.is_empty() {
        return Ok(());
    }
    let idxs: Vec<i32> = pending.iter().map(|p| p.0).collect();
    let reserved: Vec<i64> = pending.iter().map(|p| p.1).collect();
    let costs: Vec<i64> = pending.iter().map(|p| p.2).collect();
    let states: Vec<&str> = pending.iter().map(|p| p.3).collect();
    tx.execute(totals, &[&sweep, &idxs, &reserved, &costs, &states]).await?;
    pending.clear();
    Ok(())
}
